//! A change that took effect, and the attributes it exposes: `Fn::GetAtt` for a
//! custom resource, the result of an apply request.

use std::collections::HashMap;
use std::time::Duration;

use crate::model::target::Target;
use crate::services::Version;

#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// The version the service reported (none for a delete).
    pub version: Option<Version>,
    /// Calls made for the write itself, retries included.
    pub attempts: u32,
    /// Time from the accepted write until it was visible; `None` when not waited for,
    /// or when visibility could not be confirmed.
    pub propagation: Option<Duration>,
}

impl Applied {
    /// The PolicyId the write left (SSM), or the one already known.
    pub fn policy_id_or(&self, known: &crate::services::Known) -> Option<String> {
        self.version
            .as_ref()
            .and_then(|v| v.known().policy_id)
            .or_else(|| known.policy_id.clone())
    }

    /// `Service`, `ResourceArn` or `PolicyName` and `Region`, the service's version
    /// fields, `Attempts` and `PropagationMs`.
    pub fn attributes(&self, target: &Target) -> HashMap<String, String> {
        let mut d = HashMap::new();
        d.insert("Service".into(), target.service.key().into());
        match &target.arn {
            Some(arn) => {
                d.insert("ResourceArn".into(), arn.clone());
            }
            None => {
                d.insert("PolicyName".into(), target.api_id().into());
                d.insert("Region".into(), target.region.clone());
            }
        }
        if let Some(v) = &self.version {
            v.attributes(&mut d);
        }
        d.insert("Attempts".into(), self.attempts.to_string());
        if let Some(p) = self.propagation {
            d.insert("PropagationMs".into(), p.as_millis().to_string());
        }
        d
    }
}
