//! Physical resource ids: stable, readable, derived from the target, never cut.
//!
//! DynamoDB, Kinesis and Managed Prometheus: the ARN. X-Ray:
//! `xray:<region>:policy/<name>`. SSM: `<ARN>,<PolicyId>`, since one parameter can hold
//! several policies. An id that would pass CloudFormation's 1 KB limit (SSM parameter
//! names reach 1011 characters) becomes `digest:<service>:<sha256 of the ARN>` (plus
//! `,<PolicyId>`): the ARN then comes from the properties, checked against the digest.
//! A Create that failed before anything was written gets a marker id, so its rollback
//! Delete knows there is nothing to remove.

use sha2::{Digest, Sha256};

use crate::model::target::Target;
use crate::services::Known;

const MARKER_PREFIX: &str = "resource-policy-provider:failed-create:";
const DIGEST_PREFIX: &str = "digest:";
/// CloudFormation's limit for a physical id.
pub const MAX_LEN: usize = 1024;

/// What a physical id says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Named {
    /// The target itself, and what the id records of the policy (SSM's PolicyId).
    Target(Target, Known),
    /// A long target, by digest: the properties must name a target that matches.
    Digest { digest: String, known: Known },
    /// Not an id this function made.
    Unknown,
}

pub fn for_target(target: &Target, known: &Known) -> String {
    let suffix = match (
        &known.policy_id,
        target.service.facts().many_policies_per_resource,
    ) {
        (Some(policy_id), true) => format!(",{policy_id}"),
        _ => String::new(),
    };
    let id = format!("{}{suffix}", target.display_id());
    if id.len() <= MAX_LEN {
        return id;
    }
    format!(
        "{DIGEST_PREFIX}{}:{}{suffix}",
        target.service,
        digest(target)
    )
}

fn digest(target: &Target) -> String {
    Sha256::digest(target.display_id().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `target` is the one a digest id names.
pub fn digest_matches(digest_hex: &str, target: &Target) -> bool {
    digest(target) == digest_hex
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

fn known(policy_id: Option<&str>) -> Known {
    Known {
        policy_id: policy_id.filter(|p| !p.is_empty()).map(str::to_string),
    }
}

/// Reads an id back.
pub fn parse(id: &str) -> Named {
    if let Some(rest) = id.strip_prefix(DIGEST_PREFIX) {
        let (head, policy_id) = match rest.split_once(',') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        return match head.split_once(':') {
            Some((_service, digest)) if digest.len() == 64 => Named::Digest {
                digest: digest.to_string(),
                known: known(policy_id),
            },
            _ => Named::Unknown,
        };
    }
    if let Some(rest) = id.strip_prefix("xray:") {
        return match rest.split_once(":policy/") {
            Some((region, name)) => match Target::xray(name, region) {
                Ok(t) => Named::Target(t, Known::default()),
                Err(_) => Named::Unknown,
            },
            None => Named::Unknown,
        };
    }
    let (arn, policy_id) = match id.split_once(',') {
        Some((a, p)) => (a, Some(p)),
        None => (id, None),
    };
    match Target::from_arn(arn) {
        Ok(t) if t.service.facts().many_policies_per_resource => Named::Target(t, known(policy_id)),
        Ok(t) if policy_id.is_none() => Named::Target(t, Known::default()),
        _ => Named::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(id: &str) -> Known {
        Known {
            policy_id: Some(id.into()),
        }
    }

    #[test]
    fn ids_round_trip_to_their_targets() {
        let ssm =
            Target::from_arn("arn:aws:ssm:us-east-1:123456789012:parameter/app/config").unwrap();
        let id = for_target(&ssm, &with_id("p-1"));
        assert_eq!(
            id,
            "arn:aws:ssm:us-east-1:123456789012:parameter/app/config,p-1"
        );
        assert_eq!(parse(&id), Named::Target(ssm, with_id("p-1")));

        let xray = Target::xray("pol", "eu-west-1").unwrap();
        let id = for_target(&xray, &Known::default());
        assert_eq!(id, "xray:eu-west-1:policy/pol");
        assert_eq!(parse(&id), Named::Target(xray, Known::default()));

        let table = Target::from_arn("arn:aws:dynamodb:us-east-1:123456789012:table/t").unwrap();
        let id = for_target(&table, &Known::default());
        assert_eq!(parse(&id), Named::Target(table, Known::default()));
    }

    #[test]
    fn a_long_ssm_id_is_never_cut_and_still_finds_its_policy() {
        let name = "a/".repeat(505) + "z";
        let arn = format!("arn:aws:ssm:us-east-1:123456789012:parameter/{name}");
        let ssm = Target::from_arn(&arn).unwrap();
        let id = for_target(&ssm, &with_id("4e3c8d2f-policy"));
        assert!(id.len() <= MAX_LEN, "{}", id.len());
        assert!(id.ends_with(",4e3c8d2f-policy"), "{id}");
        match parse(&id) {
            Named::Digest { digest, known } => {
                assert!(digest_matches(&digest, &ssm));
                assert_eq!(known, with_id("4e3c8d2f-policy"));
                let other = Target::from_arn(&format!("{arn}x")).unwrap();
                assert!(!digest_matches(&digest, &other));
            }
            other => panic!("{other:?}"),
        }
        // Stable: the same target always gives the same id.
        assert_eq!(id, for_target(&ssm, &with_id("4e3c8d2f-policy")));
    }

    #[test]
    fn markers_are_recognised_and_name_no_target() {
        let m = marker("req-1");
        assert!(is_marker(&m));
        assert_eq!(parse(&m), Named::Unknown);
        assert!(!is_marker(
            "arn:aws:dynamodb:us-east-1:123456789012:table/t"
        ));
        assert!(marker(&"r".repeat(2000)).len() <= MAX_LEN);
    }
}
