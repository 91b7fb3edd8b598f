//! The five service adapters behind one face: put, read back, delete.
//!
//! Each adapter module speaks one service's API and classifies that service's errors
//! into an [`ErrorKind`]; the retry and propagation layers decide what to do with a
//! kind, so no adapter retries on its own. Clients are built once per region from the
//! one shared SDK config and cached.

pub mod aps;
pub mod dynamodb;
pub mod kinesis;
pub mod ssm;
pub mod xray;

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use aws_config::{Region, SdkConfig};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::policy::Policy;
use crate::target::{Service, Target};

/// What a service error means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Rate limited, and the SDK's own retries were not enough.
    Throttled,
    /// 5xx, timeout or network failure that outlasted the SDK's retries.
    Transient,
    /// The resource or policy is in transition (CREATING, UPDATING, locked).
    NotReady,
    /// The resource itself does not exist (yet, or any more).
    ResourceNotFound,
    /// The resource exists but has no such policy.
    PolicyNotFound,
    /// DynamoDB's "invalid principal": often an IAM role created moments ago.
    InvalidPrincipal,
    /// SSM's MalformedResourcePolicyDocumentException, also raised for call bursts.
    Ambiguous,
    /// A revision or hash precondition failed: someone else changed the policy.
    Conflict,
    /// Retrying cannot help: report it.
    Terminal,
}

/// A failed call, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
}

impl ServiceError {
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError {
            kind,
            code: code.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

/// Error codes the AWS SDK's AwsErrorCodeClassifier treats as throttling.
const THROTTLING_CODES: [&str; 14] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Error codes the same classifier treats as transient.
const TRANSIENT_CODES: [&str; 2] = ["RequestTimeout", "RequestTimeoutException"];

/// Turns an SDK error into a [`ServiceError`]. `service_kind` maps the service's own
/// error codes; what it leaves alone falls back to the generic rules (throttling
/// codes, 5xx, otherwise terminal). Modeled and unmodeled errors alike carry their
/// code in the error metadata, so emulators and AWS classify the same way.
pub(crate) fn classify<E>(
    err: &SdkError<E, HttpResponse>,
    service_kind: fn(&str, &str) -> Option<ErrorKind>,
) -> ServiceError
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let status = ctx.raw().status().as_u16();
            let code = e.code().unwrap_or("").to_string();
            let message = e.message().unwrap_or("").to_string();
            let kind = service_kind(&code, &message).unwrap_or({
                if THROTTLING_CODES.contains(&code.as_str()) || status == 429 {
                    ErrorKind::Throttled
                } else if status >= 500 || TRANSIENT_CODES.contains(&code.as_str()) {
                    ErrorKind::Transient
                } else {
                    ErrorKind::Terminal
                }
            });
            let code = if code.is_empty() {
                format!("HTTP {status}")
            } else {
                code
            };
            ServiceError::new(kind, code, message)
        }
        SdkError::TimeoutError(_) => {
            ServiceError::new(ErrorKind::Transient, "Timeout", "the call timed out")
        }
        SdkError::DispatchFailure(f) => ServiceError::new(
            ErrorKind::Transient,
            "DispatchFailure",
            f.as_connector_error()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "the request could not be sent".into()),
        ),
        SdkError::ResponseError(_) => ServiceError::new(
            ErrorKind::Transient,
            "ResponseError",
            "the response could not be read",
        ),
        other => ServiceError::new(
            ErrorKind::Terminal,
            "ConstructionFailure",
            format!("{other}"),
        ),
    }
}

/// What a service reports about a policy's version: each service fills its own fields.
/// These become the `Fn::GetAtt` attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revision {
    pub revision_id: Option<String>,
    pub policy_id: Option<String>,
    pub policy_hash: Option<String>,
    pub policy_status: Option<String>,
}

impl fmt::Display for Revision {
    /// The fields the service filled, e.g. `revision 3, status ACTIVE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields = [
            ("revision", &self.revision_id),
            ("status", &self.policy_status),
            ("policy id", &self.policy_id),
            ("hash", &self.policy_hash),
        ];
        let mut first = true;
        for (name, value) in fields {
            if let Some(v) = value {
                write!(f, "{}{name} {v}", if first { "" } else { ", " })?;
                first = false;
            }
        }
        if first {
            f.write_str("no revision")?;
        }
        Ok(())
    }
}

/// A policy as read back from the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePolicy {
    pub document: String,
    pub revision: Revision,
}

/// What a put needs besides the target.
#[derive(Clone, Debug)]
pub struct PutInput<'a> {
    pub policy: &'a Policy,
    /// A policy this function put earlier (SSM: its PolicyId), to update in place.
    pub previous: &'a Revision,
    pub confirm_remove_self_resource_access: Option<bool>,
    pub bypass_policy_lockout_check: Option<bool>,
    /// Idempotency token for services that take one (Managed Prometheus).
    pub client_token: &'a str,
}

/// The outcome of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    Removed,
    /// The resource or the policy was already gone: also success.
    AlreadyGone,
}

/// Whether `live` shows the change a put made. DynamoDB, X-Ray, AMP and SSM return a
/// revision to wait for; Kinesis has none, so its document is compared by meaning.
pub fn shows_put(
    target: &Target,
    put: &Revision,
    policy: &Policy,
    live: Option<&LivePolicy>,
) -> bool {
    let Some(live) = live else { return false };
    match target.service {
        Service::Kinesis => policy.matches(&live.document),
        Service::DynamoDb | Service::XRay => live.revision.revision_id == put.revision_id,
        Service::Aps => {
            live.revision.revision_id == put.revision_id
                && live.revision.policy_status.as_deref() == Some("ACTIVE")
        }
        Service::Ssm => {
            live.revision.policy_id == put.policy_id && live.revision.policy_hash == put.policy_hash
        }
    }
}

/// One client per service and region, built on demand from the shared config.
struct RegionCache<C> {
    clients: Mutex<HashMap<String, C>>,
}

impl<C: Clone> RegionCache<C> {
    fn new() -> Self {
        RegionCache {
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, region: &str, make: impl FnOnce() -> C) -> C {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(make)
            .clone()
    }
}

/// The SDK clients, cached per region. Endpoints come from the shared config, so the
/// standard `AWS_ENDPOINT_URL[_<SERVICE>]` overrides apply and nothing else.
pub struct Clients {
    config: SdkConfig,
    dynamodb: RegionCache<aws_sdk_dynamodb::Client>,
    kinesis: RegionCache<aws_sdk_kinesis::Client>,
    xray: RegionCache<aws_sdk_xray::Client>,
    aps: RegionCache<aws_sdk_amp::Client>,
    ssm: RegionCache<aws_sdk_ssm::Client>,
}

macro_rules! regional_client {
    ($fn:ident, $preset:ident, $krate:ident) => {
        /// Uses `client` for this service in `region` instead of building one from the
        /// shared config (a client with its own configuration, or a mocked one).
        pub fn $preset(self, region: &str, client: $krate::Client) -> Self {
            self.$fn.get(region, || client);
            self
        }

        pub fn $fn(&self, region: &str) -> $krate::Client {
            self.$fn.get(region, || {
                let conf = $krate::config::Builder::from(&self.config)
                    .region(Region::new(region.to_string()))
                    .build();
                $krate::Client::from_conf(conf)
            })
        }
    };
}

impl Clients {
    pub fn new(config: SdkConfig) -> Self {
        Clients {
            config,
            dynamodb: RegionCache::new(),
            kinesis: RegionCache::new(),
            xray: RegionCache::new(),
            aps: RegionCache::new(),
            ssm: RegionCache::new(),
        }
    }

    regional_client!(dynamodb, with_dynamodb, aws_sdk_dynamodb);
    regional_client!(kinesis, with_kinesis, aws_sdk_kinesis);
    regional_client!(xray, with_xray, aws_sdk_xray);
    regional_client!(aps, with_aps, aws_sdk_amp);
    regional_client!(ssm, with_ssm, aws_sdk_ssm);

    /// Attaches the policy; returns the revision the service reports.
    pub async fn put(
        &self,
        target: &Target,
        input: &PutInput<'_>,
    ) -> Result<Revision, ServiceError> {
        let r = &target.region;
        match target.service {
            Service::DynamoDb => dynamodb::put(&self.dynamodb(r), target.api_id(), input).await,
            Service::Kinesis => kinesis::put(&self.kinesis(r), target.api_id(), input).await,
            Service::XRay => xray::put(&self.xray(r), target.api_id(), input).await,
            Service::Aps => aps::put(&self.aps(r), target.api_id(), input).await,
            Service::Ssm => ssm::put(&self.ssm(r), target.api_id(), input).await,
        }
    }

    /// Reads the live policy; `None` when there is none (or no resource).
    /// `known` selects among several (SSM parameters may carry more than one).
    pub async fn read(
        &self,
        target: &Target,
        known: &Revision,
    ) -> Result<Option<LivePolicy>, ServiceError> {
        let r = &target.region;
        match target.service {
            Service::DynamoDb => dynamodb::read(&self.dynamodb(r), target.api_id()).await,
            Service::Kinesis => kinesis::read(&self.kinesis(r), target.api_id()).await,
            Service::XRay => xray::read(&self.xray(r), target.api_id()).await,
            Service::Aps => aps::read(&self.aps(r), target.api_id()).await,
            Service::Ssm => ssm::read(&self.ssm(r), target.api_id(), known).await,
        }
    }

    /// Removes the policy. `known` identifies it where the service needs that (SSM),
    /// `policy` is the document it should hold, used to find it when the id is unknown.
    pub async fn delete(
        &self,
        target: &Target,
        known: &Revision,
        policy: Option<&Policy>,
        client_token: &str,
    ) -> Result<Deleted, ServiceError> {
        let r = &target.region;
        match target.service {
            Service::DynamoDb => dynamodb::delete(&self.dynamodb(r), target.api_id()).await,
            Service::Kinesis => kinesis::delete(&self.kinesis(r), target.api_id()).await,
            Service::XRay => xray::delete(&self.xray(r), target.api_id()).await,
            Service::Aps => aps::delete(&self.aps(r), target.api_id(), client_token).await,
            Service::Ssm => ssm::delete(&self.ssm(r), target.api_id(), known, policy).await,
        }
    }
}
