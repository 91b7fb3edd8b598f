//! The five service adapters behind one face: put, read back, delete.
//!
//! Each adapter module speaks one service's API, classifies that service's errors
//! into an [`ErrorKind`] and declares the service's [`Facts`]; the retry and
//! propagation layers decide what to do with a kind, so no adapter retries on its own.
//! Everything that differs between services is reached from here: adding a sixth
//! service is one adapter file and one [`Service`] variant.

pub mod aps;
mod clients;
pub mod dynamodb;
mod error;
pub mod kinesis;
pub mod ssm;
mod version;
pub mod xray;

use std::fmt;

pub use clients::Clients;
pub(crate) use error::{classify, says_deleting};
pub use error::{ErrorKind, Landed, ServiceError};
pub use version::{shows_put, Known, LivePolicy, Version};

use crate::model::policy::Policy;
use crate::model::target::Resource;

/// The five services, by the key used in the `Service` property.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    DynamoDb,
    Kinesis,
    XRay,
    Aps,
    Ssm,
}

/// Reads the resource part of an ARN (split at `/`), or says why it does not fit.
pub type ArnResource = fn(&[&str]) -> Result<Resource, String>;

/// What differs between services outside their API calls.
#[derive(Debug)]
pub struct Facts {
    /// The key used in properties, ARNs and physical ids.
    pub key: &'static str,
    /// The name people know the service by, for messages.
    pub display_name: &'static str,
    /// Largest policy accepted, in bytes as sent (compact JSON); `None`: undocumented.
    pub size_limit: Option<usize>,
    /// Properties only this service accepts.
    pub options: &'static [&'static str],
    /// The resource kinds an ARN of this service may name (the part after the
    /// account, split at `/`); `None`: the service has no ARNs (X-Ray).
    pub arn_resource: Option<ArnResource>,
    /// Whether a put can be made conditional on the version read (a read-modify-write
    /// is then safe); Kinesis has no such precondition.
    pub has_precondition: bool,
    /// The `requestParameters` key that names the target in the service's CloudTrail
    /// events (read case-insensitively).
    pub trail_key: &'static str,
    /// Whether one resource can hold several policies, told apart by a PolicyId
    /// (SSM): the physical id then carries it, and a read needs it.
    pub many_policies_per_resource: bool,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::DynamoDb,
        Service::Kinesis,
        Service::XRay,
        Service::Aps,
        Service::Ssm,
    ];

    pub fn facts(self) -> &'static Facts {
        match self {
            Service::DynamoDb => &dynamodb::FACTS,
            Service::Kinesis => &kinesis::FACTS,
            Service::XRay => &xray::FACTS,
            Service::Aps => &aps::FACTS,
            Service::Ssm => &ssm::FACTS,
        }
    }

    pub fn key(self) -> &'static str {
        self.facts().key
    }

    pub fn from_key(key: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.key() == key)
    }

    /// Largest policy the service accepts, in bytes as sent (compact JSON).
    pub fn policy_size_limit(self) -> Option<usize> {
        self.facts().size_limit
    }

    /// Whether `property` (a service-specific option) applies to this service.
    pub fn accepts_option(self, property: &str) -> bool {
        self.facts().options.contains(&property)
    }

    /// The target a CloudTrail event names by `value` (its [`Facts::trail_key`]) in
    /// `region` of `account`: an ARN, X-Ray's policy name, or AMP's workspace id.
    pub fn target_from_trail(
        self,
        value: &str,
        region: &str,
        account: &str,
    ) -> Result<crate::model::target::Target, crate::model::target::TargetError> {
        use crate::model::target::Target;
        match self {
            Service::XRay => Target::xray(value, region),
            Service::Aps => {
                let partition = match region {
                    r if r.starts_with("cn-") => "aws-cn",
                    r if r.starts_with("us-gov-") => "aws-us-gov",
                    _ => "aws",
                };
                Target::from_arn(&format!(
                    "arn:{partition}:aps:{region}:{account}:workspace/{value}"
                ))
            }
            _ => Target::from_arn(value),
        }
    }

    /// The service that accepts `property`, for the error message.
    pub fn owner_of_option(property: &str) -> Option<Service> {
        Service::ALL
            .into_iter()
            .find(|s| s.accepts_option(property))
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// The precondition of a put: write only over this state (a read-modify-write of a
/// shared policy). Kinesis has none and ignores it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Expected {
    /// Write whatever is there (the template's document wins).
    #[default]
    Anything,
    /// Create only: fail with a conflict if a policy exists.
    NoPolicy,
    /// Only over this version (DynamoDB and X-Ray revision, AMP revisionId, SSM id and hash).
    Version(Version),
}

/// What a put needs besides the target.
#[derive(Clone, Debug)]
pub struct PutInput<'a> {
    pub policy: &'a Policy,
    pub expected: Expected,
    /// Whether the SDK may send this write again on throttling or 5xx. Not for a
    /// merged write without a precondition (Kinesis): it must be read and merged again.
    pub resendable: bool,
    /// A policy this function put earlier (SSM: its PolicyId), to update in place.
    pub known: &'a Known,
    pub confirm_remove_self_resource_access: Option<bool>,
    pub bypass_policy_lockout_check: Option<bool>,
    /// Idempotency token for services that take one (Managed Prometheus).
    pub client_token: &'a str,
}

/// The outcome of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    Removed,
    /// The resource or the policy was already gone (or going): also success.
    AlreadyGone,
}
