//! DynamoDB tables and streams: PutResourcePolicy / GetResourcePolicy /
//! DeleteResourcePolicy, revisions by RevisionId.

use aws_sdk_dynamodb::Client;

use super::{classify, Deleted, ErrorKind, LivePolicy, PutInput, Revision, ServiceError};

/// DynamoDB's own error codes. `ValidationException` about a principal usually means
/// an IAM role created moments ago and not yet propagated; other validation is final.
fn kind(code: &str, message: &str) -> Option<ErrorKind> {
    Some(match code {
        "ResourceInUseException" => ErrorKind::NotReady,
        "ResourceNotFoundException" => ErrorKind::ResourceNotFound,
        "PolicyNotFoundException" => ErrorKind::PolicyNotFound,
        "LimitExceededException" => ErrorKind::Throttled,
        "InternalServerError" => ErrorKind::Transient,
        "ValidationException" if message.to_ascii_lowercase().contains("principal") => {
            ErrorKind::InvalidPrincipal
        }
        _ => return None,
    })
}

pub async fn put(
    client: &Client,
    arn: &str,
    input: &PutInput<'_>,
) -> Result<Revision, ServiceError> {
    let out = client
        .put_resource_policy()
        .resource_arn(arn)
        .policy(input.policy.text())
        .set_confirm_remove_self_resource_access(input.confirm_remove_self_resource_access)
        .send()
        .await
        .map_err(|e| classify(&e, kind))?;
    Ok(Revision {
        revision_id: out.revision_id().map(str::to_string),
        ..Revision::default()
    })
}

pub async fn read(client: &Client, arn: &str) -> Result<Option<LivePolicy>, ServiceError> {
    match client.get_resource_policy().resource_arn(arn).send().await {
        Ok(out) => Ok(out.policy().filter(|p| !p.is_empty()).map(|p| LivePolicy {
            document: p.to_string(),
            revision: Revision {
                revision_id: out.revision_id().map(str::to_string),
                ..Revision::default()
            },
        })),
        Err(e) => match classify(&e, kind) {
            e if matches!(
                e.kind,
                ErrorKind::PolicyNotFound | ErrorKind::ResourceNotFound
            ) =>
            {
                Ok(None)
            }
            e => Err(e),
        },
    }
}

pub async fn delete(client: &Client, arn: &str) -> Result<Deleted, ServiceError> {
    match client
        .delete_resource_policy()
        .resource_arn(arn)
        .send()
        .await
    {
        Ok(_) => Ok(Deleted::Removed),
        Err(e) => match classify(&e, kind) {
            e if matches!(
                e.kind,
                ErrorKind::PolicyNotFound | ErrorKind::ResourceNotFound
            ) =>
            {
                Ok(Deleted::AlreadyGone)
            }
            e => Err(e),
        },
    }
}
