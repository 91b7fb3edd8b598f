//! What a service says about a stored policy's version, and what this function knows
//! about a policy it manages. Each variant holds exactly what its service returns.

use std::collections::HashMap;
use std::fmt;

use crate::model::policy::Policy;

/// The version a put returned, or a read shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Version {
    /// Kinesis keeps none: visibility is judged by comparing documents.
    Unversioned,
    /// DynamoDB's RevisionId, X-Ray's PolicyRevisionId.
    Revision(String),
    /// Managed Prometheus: the revision and the policy's status (CREATING, ACTIVE, ...).
    Aps { revision_id: String, status: String },
    /// SSM: the policy's id on the resource and its current hash.
    Ssm { policy_id: String, hash: String },
}

impl Version {
    /// The `Fn::GetAtt` attributes this version gives.
    pub fn attributes(&self, d: &mut HashMap<String, String>) {
        let mut set = |k: &str, v: &str| {
            d.insert(k.to_string(), v.to_string());
        };
        match self {
            Version::Unversioned => {}
            Version::Revision(r) => set("RevisionId", r),
            Version::Aps {
                revision_id,
                status,
            } => {
                set("RevisionId", revision_id);
                set("PolicyStatus", status);
            }
            Version::Ssm { policy_id, hash } => {
                set("PolicyId", policy_id);
                set("PolicyHash", hash);
            }
        }
    }

    /// What this version tells the function about the policy for later calls.
    pub fn known(&self) -> Known {
        match self {
            Version::Ssm { policy_id, .. } => Known {
                policy_id: Some(policy_id.clone()),
            },
            _ => Known::default(),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Unversioned => f.write_str("no revision"),
            Version::Revision(r) => write!(f, "revision {r}"),
            Version::Aps {
                revision_id,
                status,
            } => write!(f, "revision {revision_id}, status {status}"),
            Version::Ssm { policy_id, hash } => write!(f, "policy id {policy_id}, hash {hash}"),
        }
    }
}

/// What this function already knows about a policy it manages: SSM's PolicyId, which
/// picks one policy among several on a parameter. Empty for the other services.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Known {
    pub policy_id: Option<String>,
}

/// A policy as read back from the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePolicy {
    pub document: String,
    pub version: Version,
}

/// Whether `live` shows the change a put made: the version it returned (Managed
/// Prometheus: and ACTIVE), or for Kinesis, which has none, the same document.
pub fn shows_put(put: &Version, policy: &Policy, live: Option<&LivePolicy>) -> bool {
    let Some(live) = live else { return false };
    match (put, &live.version) {
        (Version::Unversioned, _) => policy.matches(&live.document),
        (
            Version::Aps { revision_id, .. },
            Version::Aps {
                revision_id: seen,
                status,
            },
        ) => seen == revision_id && status == "ACTIVE",
        (put, seen) => put == seen,
    }
}
