//! Physical resource ids: stable, readable, derived from the target.
//!
//! DynamoDB, Kinesis and Managed Prometheus: the ARN. X-Ray:
//! `xray:<region>:policy/<name>`. SSM: `<ARN>,<PolicyId>`, since one parameter can hold
//! several policies. A Create that failed before anything was written gets a marker id,
//! so its rollback Delete knows there is nothing to remove.

use crate::services::Revision;
use crate::target::{Service, Target};

const MARKER_PREFIX: &str = "resource-policy-provider:failed-create:";
/// CloudFormation's limit for a physical id.
const MAX_LEN: usize = 1024;

pub fn for_target(target: &Target, revision: &Revision) -> String {
    let id = match (target.service, &revision.policy_id) {
        (Service::Ssm, Some(policy_id)) => format!("{},{policy_id}", target.display_id()),
        _ => target.display_id(),
    };
    // ARNs can be up to 2048 characters; keep the readable start within the limit.
    id.chars().take(MAX_LEN).collect()
}

pub fn marker(request_id: &str) -> String {
    format!("{MARKER_PREFIX}{request_id}")
        .chars()
        .take(MAX_LEN)
        .collect()
}

pub fn is_marker(id: &str) -> bool {
    id.starts_with(MARKER_PREFIX)
}

/// What an id says about a policy this function made: SSM's PolicyId.
pub fn known_revision(id: &str, target: &Target) -> Revision {
    let prefix = format!("{},", target.display_id());
    Revision {
        policy_id: match target.service {
            Service::Ssm => id
                .strip_prefix(&prefix)
                .filter(|p| !p.is_empty())
                .map(str::to_string),
            _ => None,
        },
        ..Revision::default()
    }
}

/// The target named by an id, for a Delete whose properties cannot be read.
pub fn target_of(id: &str) -> Option<Target> {
    if let Some(rest) = id.strip_prefix("xray:") {
        let (region, name) = rest.split_once(":policy/")?;
        return Target::xray(name, region).ok();
    }
    let arn = id.split(',').next()?;
    Target::from_arn(arn).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_to_their_targets() {
        let ssm =
            Target::from_arn("arn:aws:ssm:us-east-1:123456789012:parameter/app/config").unwrap();
        let rev = Revision {
            policy_id: Some("p-1".into()),
            ..Revision::default()
        };
        let id = for_target(&ssm, &rev);
        assert_eq!(
            id,
            "arn:aws:ssm:us-east-1:123456789012:parameter/app/config,p-1"
        );
        assert_eq!(known_revision(&id, &ssm).policy_id.as_deref(), Some("p-1"));
        assert_eq!(target_of(&id), Some(ssm));

        let xray = Target::xray("pol", "eu-west-1").unwrap();
        let id = for_target(&xray, &Revision::default());
        assert_eq!(id, "xray:eu-west-1:policy/pol");
        assert_eq!(target_of(&id), Some(xray));
    }

    #[test]
    fn markers_are_recognised_and_name_no_target() {
        let m = marker("req-1");
        assert!(is_marker(&m));
        assert!(target_of(&m).is_none());
        assert!(!is_marker(
            "arn:aws:dynamodb:us-east-1:123456789012:table/t"
        ));
    }
}
