//! Managed Prometheus workspaces: PutResourcePolicy / DescribeResourcePolicy /
//! DeleteResourcePolicy. Policies move CREATING/UPDATING -> ACTIVE; writes carry a
//! clientToken so a repeated request is idempotent.

use aws_sdk_amp::Client;

use super::{classify, Deleted, ErrorKind, LivePolicy, PutInput, Revision, ServiceError};

fn kind(code: &str, _message: &str) -> Option<ErrorKind> {
    Some(match code {
        // The workspace or its policy is mid-transition.
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
) -> Result<Revision, ServiceError> {
    let out = client
        .put_resource_policy()
        .workspace_id(workspace_id)
        .policy_document(input.policy.text())
        .client_token(client_token("put", input.client_token))
        .send()
        .await
        .map_err(|e| classify(&e, kind))?;
    Ok(Revision {
        revision_id: Some(out.revision_id().to_string()),
        policy_status: Some(out.policy_status().as_str().to_string()),
        ..Revision::default()
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
            revision: Revision {
                revision_id: Some(out.revision_id().to_string()),
                policy_status: Some(out.policy_status().as_str().to_string()),
                ..Revision::default()
            },
        })),
        Err(e) => match classify(&e, kind) {
            e if e.kind == ErrorKind::ResourceNotFound => Ok(None),
            e => Err(e),
        },
    }
}

pub async fn delete(
    client: &Client,
    workspace_id: &str,
    request_token: &str,
) -> Result<Deleted, ServiceError> {
    match client
        .delete_resource_policy()
        .workspace_id(workspace_id)
        .client_token(client_token("delete", request_token))
        .send()
        .await
    {
        Ok(_) => Ok(Deleted::Removed),
        Err(e) => match classify(&e, kind) {
            e if e.kind == ErrorKind::ResourceNotFound => Ok(Deleted::AlreadyGone),
            e => Err(e),
        },
    }
}
