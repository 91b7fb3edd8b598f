//! Managed Prometheus workspaces: PutResourcePolicy / DescribeResourcePolicy /
//! DeleteResourcePolicy. Policies move CREATING/UPDATING -> ACTIVE; writes carry a
//! clientToken so a repeated request is idempotent.

use aws_sdk_amp::Client;

use crate::model::target::{is_name, Resource};

use super::{
    classify, says_deleting, Deleted, ErrorKind, Expected, Facts, LivePolicy, PutInput,
    ServiceError, Version,
};

pub const FACTS: Facts = Facts {
    key: "aps",
    display_name: "Managed Prometheus",
    size_limit: None,
    options: &[],
    arn_resource: Some(arn_resource),
    has_precondition: true,
    trail_key: "workspaceId",
    many_policies_per_resource: false,
};

/// `workspace/ID`.
fn arn_resource(segments: &[&str]) -> Result<Resource, String> {
    match segments {
        ["workspace", id] if is_name(id, "-_") => Ok(Resource::ApsWorkspace {
            workspace_id: id.to_string(),
        }),
        _ => Err("is not a Managed Prometheus workspace ARN (workspace/ID)".into()),
    }
}

fn kind(code: &str, message: &str) -> Option<ErrorKind> {
    Some(match code {
        // The workspace or its policy is mid-transition; DELETING will not come back.
        "ConflictException" if says_deleting(message) => ErrorKind::ResourceDeleting,
        "ConflictException" => ErrorKind::NotReady,
        "ResourceNotFoundException" => ErrorKind::ResourceNotFound,
        "ThrottlingException" => ErrorKind::Throttled,
        "InternalServerException" => ErrorKind::Transient,
        _ => return None,
    })
}

/// AMP's clientToken is 1-64 printable characters.
pub fn client_token(operation: &str, request_token: &str) -> String {
    format!("{operation}-{request_token}")
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

pub async fn put(
    client: &Client,
    workspace_id: &str,
    input: &PutInput<'_>,
) -> Result<Version, ServiceError> {
    let out = client
        .put_resource_policy()
        .workspace_id(workspace_id)
        .policy_document(input.policy.text())
        .set_revision_id(match &input.expected {
            Expected::NoPolicy => Some("NO_POLICY".to_string()),
            Expected::Version(Version::Aps { revision_id, .. }) => Some(revision_id.clone()),
            _ => None,
        })
        .client_token(client_token("put", input.client_token))
        .send()
        .await
        .map_err(|e| classify(&e, kind))?;
    Ok(Version::Aps {
        revision_id: out.revision_id().to_string(),
        status: out.policy_status().as_str().to_string(),
    })
}

pub async fn read(client: &Client, workspace_id: &str) -> Result<Option<LivePolicy>, ServiceError> {
    match client
        .describe_resource_policy()
        .workspace_id(workspace_id)
        .send()
        .await
    {
        Ok(out) => Ok(Some(LivePolicy {
            document: out.policy_document().to_string(),
            version: Version::Aps {
                revision_id: out.revision_id().to_string(),
                status: out.policy_status().as_str().to_string(),
            },
        })),
        Err(e) => match classify(&e, kind) {
            e if e.kind == ErrorKind::ResourceNotFound => Ok(None),
            e => Err(e),
        },
    }
}

/// With a revision to expect, a mismatch is a ConflictException (read as "not ready":
/// the caller reads again).
pub async fn delete(
    client: &Client,
    workspace_id: &str,
    request_token: &str,
    expected: &Expected,
) -> Result<Deleted, ServiceError> {
    match client
        .delete_resource_policy()
        .workspace_id(workspace_id)
        .set_revision_id(match expected {
            Expected::Version(Version::Aps { revision_id, .. }) => Some(revision_id.clone()),
            _ => None,
        })
        .client_token(client_token("delete", request_token))
        .send()
        .await
    {
        Ok(_) => Ok(Deleted::Removed),
        Err(e) => match classify(&e, kind) {
            e if matches!(
                e.kind,
                ErrorKind::ResourceNotFound | ErrorKind::ResourceDeleting
            ) =>
            {
                Ok(Deleted::AlreadyGone)
            }
            e => Err(e),
        },
    }
}
