//! The SDK clients, one per service and region, built on demand from the one shared
//! config, and the dispatch of put / read / delete to the right adapter.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::{Region, SdkConfig};

use super::error::NoRetryOnDns;
use super::{
    aps, dynamodb, kinesis, ssm, xray, Deleted, Expected, Known, LivePolicy, PutInput, Service,
    ServiceError, Version,
};
use crate::model::policy::Policy;
use crate::model::target::Target;

/// One client per region, built on demand.
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
    lambda: RegionCache<aws_sdk_lambda::Client>,
    events: RegionCache<aws_sdk_eventbridge::Client>,
    cloudformation: RegionCache<aws_sdk_cloudformation::Client>,
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
                    .retry_classifier(NoRetryOnDns)
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
            lambda: RegionCache::new(),
            events: RegionCache::new(),
            cloudformation: RegionCache::new(),
        }
    }

    regional_client!(dynamodb, with_dynamodb, aws_sdk_dynamodb);
    regional_client!(kinesis, with_kinesis, aws_sdk_kinesis);
    regional_client!(xray, with_xray, aws_sdk_xray);
    regional_client!(aps, with_aps, aws_sdk_amp);
    regional_client!(ssm, with_ssm, aws_sdk_ssm);
    // The ledger's table (DynamoDB, above) and the reconcile's continuation (Lambda).
    regional_client!(lambda, with_lambda, aws_sdk_lambda);
    // Detect mode's ResourcePolicyDrift events.
    regional_client!(events, with_events, aws_sdk_eventbridge);
    // Whether a CloudFormation owner's stack resource still exists (repairs).
    regional_client!(cloudformation, with_cloudformation, aws_sdk_cloudformation);

    /// Attaches the policy; returns the version the service reports.
    pub async fn put(
        &self,
        target: &Target,
        input: &PutInput<'_>,
    ) -> Result<Version, ServiceError> {
        let r = &target.region;
        let id = target.api_id();
        match target.service {
            Service::DynamoDb => dynamodb::put(&self.dynamodb(r), id, input).await,
            Service::Kinesis => kinesis::put(&self.kinesis(r), id, input).await,
            Service::XRay => xray::put(&self.xray(r), id, input).await,
            Service::Aps => aps::put(&self.aps(r), id, input).await,
            Service::Ssm => ssm::put(&self.ssm(r), id, input).await,
        }
        .map_err(|e| in_region(e, target))
    }

    /// Reads the live policy; `None` when there is none (or no resource).
    /// `known` selects among several (SSM parameters may carry more than one).
    pub async fn read(
        &self,
        target: &Target,
        known: &Known,
    ) -> Result<Option<LivePolicy>, ServiceError> {
        let r = &target.region;
        let id = target.api_id();
        match target.service {
            Service::DynamoDb => dynamodb::read(&self.dynamodb(r), id).await,
            Service::Kinesis => kinesis::read(&self.kinesis(r), id).await,
            Service::XRay => xray::read(&self.xray(r), id).await,
            Service::Aps => aps::read(&self.aps(r), id).await,
            Service::Ssm => ssm::read(&self.ssm(r), id, known).await,
        }
        .map_err(|e| in_region(e, target))
    }

    /// Every policy on the target: SSM keeps several per parameter, the others one.
    pub async fn read_all(&self, target: &Target) -> Result<Vec<LivePolicy>, ServiceError> {
        match target.service {
            Service::Ssm => ssm::read_all(&self.ssm(&target.region), target.api_id())
                .await
                .map_err(|e| in_region(e, target)),
            _ => Ok(self
                .read(target, &Known::default())
                .await?
                .into_iter()
                .collect()),
        }
    }

    /// Whether a read can tell that the policy `known` names is gone: not so for a
    /// service with several policies per resource when the function knows no id.
    pub fn can_confirm_delete(&self, target: &Target, known: &Known) -> bool {
        !target.service.facts().many_policies_per_resource || known.policy_id.is_some()
    }

    /// Removes the policy. `known` identifies it where the service needs that (SSM),
    /// `policy` is the document it should hold, used to find it when the id is unknown;
    /// `expected`, the version read (a shared policy's last statement going), makes the
    /// delete fail as a conflict if the policy changed since.
    pub async fn delete(
        &self,
        target: &Target,
        known: &Known,
        policy: Option<&Policy>,
        expected: &Expected,
        client_token: &str,
    ) -> Result<Deleted, ServiceError> {
        let r = &target.region;
        let id = target.api_id();
        let x = expected;
        match target.service {
            Service::DynamoDb => dynamodb::delete(&self.dynamodb(r), id, x).await,
            Service::Kinesis => kinesis::delete(&self.kinesis(r), id, x).await,
            Service::XRay => xray::delete(&self.xray(r), id, x).await,
            Service::Aps => aps::delete(&self.aps(r), id, client_token, x).await,
            Service::Ssm => ssm::delete(&self.ssm(r), id, known, policy, x).await,
        }
        .map_err(|e| in_region(e, target))
    }
}

/// A missing endpoint is about the region the target named: say which.
fn in_region(mut e: ServiceError, target: &Target) -> ServiceError {
    if e.kind == super::ErrorKind::NoEndpoint {
        e.message = format!(
            "no endpoint answers for {} in region {:?} (DNS lookup failed): check Region, or the \
                region in ResourceArn",
            target.service.facts().display_name,
            target.region
        );
    }
    e
}
