//! Kinesis streams and consumers: PutResourcePolicy / GetResourcePolicy /
//! DeleteResourcePolicy. No versions: the last writer wins, so read-back compares
//! documents.

use aws_sdk_kinesis::Client;

use crate::model::target::{is_name, Resource};

use super::{
    classify, says_deleting, Deleted, ErrorKind, Expected, Facts, LivePolicy, PutInput,
    ServiceError, Version,
};

pub const FACTS: Facts = Facts {
    key: "kinesis",
    display_name: "Kinesis",
    size_limit: None,
    options: &[],
    arn_resource: Some(arn_resource),
    has_precondition: false,
    trail_key: "resourceArn",
    many_policies_per_resource: false,
};

/// `stream/NAME` or `stream/NAME/consumer/NAME:EPOCH`.
fn arn_resource(segments: &[&str]) -> Result<Resource, String> {
    match segments {
        ["stream", stream] if is_name(stream, "_.-") => Ok(Resource::KinesisStream {
            stream: stream.to_string(),
        }),
        ["stream", stream, "consumer", consumer]
            if is_name(stream, "_.-") && is_name(consumer, "_.-:") =>
        {
            Ok(Resource::KinesisConsumer {
                stream: stream.to_string(),
                consumer: consumer.to_string(),
            })
        }
        _ => Err("is not a Kinesis stream or consumer ARN (stream/NAME or \
                stream/NAME/consumer/NAME:EPOCH)"
            .into()),
    }
}

fn kind(code: &str, message: &str) -> Option<ErrorKind> {
    Some(match code {
        // "The resource must be ACTIVE": a stream or consumer still being created, or
        // one being deleted.
        "ResourceInUseException" if says_deleting(message) => ErrorKind::ResourceDeleting,
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
) -> Result<Version, ServiceError> {
    let put = client
        .put_resource_policy()
        .resource_arn(arn)
        .policy(input.policy.text());
    let put = if input.resendable {
        put.send().await
    } else {
        put.customize()
            .config_override(
                aws_sdk_kinesis::config::Builder::default()
                    .retry_config(aws_config::retry::RetryConfig::disabled()),
            )
            .send()
            .await
    };
    put.map_err(|e| classify(&e, kind))?;
    Ok(Version::Unversioned)
}

/// An empty document (or `{}`) means no policy.
pub async fn read(client: &Client, arn: &str) -> Result<Option<LivePolicy>, ServiceError> {
    match client.get_resource_policy().resource_arn(arn).send().await {
        Ok(out) => {
            let doc = out.policy().trim();
            Ok((!doc.is_empty() && doc != "{}").then(|| LivePolicy {
                document: doc.to_string(),
                version: Version::Unversioned,
            }))
        }
        Err(e) => match classify(&e, kind) {
            e if e.kind == ErrorKind::ResourceNotFound => Ok(None),
            e => Err(e),
        },
    }
}

/// Kinesis has no precondition: `_expected` is ignored (last writer wins).
pub async fn delete(
    client: &Client,
    arn: &str,
    _expected: &Expected,
) -> Result<Deleted, ServiceError> {
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
                ErrorKind::ResourceNotFound | ErrorKind::ResourceDeleting
            ) =>
            {
                Ok(Deleted::AlreadyGone)
            }
            e => Err(e),
        },
    }
}
