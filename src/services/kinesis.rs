//! Kinesis streams and consumers: PutResourcePolicy / GetResourcePolicy /
//! DeleteResourcePolicy. No revisions: the last writer wins, so read-back compares
//! documents.

use aws_sdk_kinesis::Client;

use super::{classify, Deleted, ErrorKind, LivePolicy, PutInput, Revision, ServiceError};

fn kind(code: &str, _message: &str) -> Option<ErrorKind> {
    Some(match code {
        // "The resource must be ACTIVE": a stream or consumer still being created.
        "ResourceInUseException" => ErrorKind::NotReady,
        "ResourceNotFoundException" => ErrorKind::ResourceNotFound,
        "LimitExceededException" => ErrorKind::Throttled,
        _ => return None,
    })
}

pub async fn put(
    client: &Client,
    arn: &str,
    input: &PutInput<'_>,
) -> Result<Revision, ServiceError> {
    client
        .put_resource_policy()
        .resource_arn(arn)
        .policy(input.policy.text())
        .send()
        .await
        .map_err(|e| classify(&e, kind))?;
    Ok(Revision::default())
}

/// An empty document (or `{}`) means no policy.
pub async fn read(client: &Client, arn: &str) -> Result<Option<LivePolicy>, ServiceError> {
    match client.get_resource_policy().resource_arn(arn).send().await {
        Ok(out) => {
            let doc = out.policy().trim();
            Ok((!doc.is_empty() && doc != "{}").then(|| LivePolicy {
                document: doc.to_string(),
                revision: Revision::default(),
            }))
        }
        Err(e) => match classify(&e, kind) {
            e if e.kind == ErrorKind::ResourceNotFound => Ok(None),
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
            e if e.kind == ErrorKind::ResourceNotFound => Ok(Deleted::AlreadyGone),
            e => Err(e),
        },
    }
}
