//! DynamoDB tables and streams: PutResourcePolicy / GetResourcePolicy /
//! DeleteResourcePolicy, versions by RevisionId.

use aws_sdk_dynamodb::Client;

use crate::model::target::{is_name, Resource};

use super::{
    classify, says_deleting, Deleted, ErrorKind, Expected, Facts, LivePolicy, PutInput,
    ServiceError, Version,
};

pub const FACTS: Facts = Facts {
    key: "dynamodb",
    display_name: "DynamoDB",
    // 20 KB, whitespace included: counted on the compact text actually sent.
    size_limit: Some(20 * 1024),
    options: &["ConfirmRemoveSelfResourceAccess"],
    arn_resource: Some(arn_resource),
    has_precondition: true,
    trail_key: "resourceArn",
    many_policies_per_resource: false,
};

/// `table/NAME` or `table/NAME/stream/LABEL`; an index has no policy of its own.
fn arn_resource(segments: &[&str]) -> Result<Resource, String> {
    match segments {
        ["table", table] if is_name(table, "_.-") => Ok(Resource::DynamoDbTable {
            table: table.to_string(),
        }),
        ["table", table, "stream", label] if is_name(table, "_.-") && is_name(label, ":._-") => {
            Ok(Resource::DynamoDbStream {
                table: table.to_string(),
                label: label.to_string(),
            })
        }
        ["table", _, "index", ..] => Err(
            "is a DynamoDB index, which cannot carry a policy of its own: grant index access in \
                the table's policy"
                .into(),
        ),
        _ => Err(
            "is not a DynamoDB table or stream ARN (table/NAME or table/NAME/stream/LABEL)".into(),
        ),
    }
}

/// DynamoDB's own error codes. `ValidationException` about a principal usually means
/// an IAM role created moments ago and not yet propagated; other validation is final.
fn kind(code: &str, message: &str) -> Option<ErrorKind> {
    Some(match code {
        "ResourceInUseException" if says_deleting(message) => ErrorKind::ResourceDeleting,
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

fn revision(id: Option<&str>) -> Version {
    Version::Revision(id.unwrap_or_default().to_string())
}

/// With a precondition, a mismatch (also "a policy exists" for NO_POLICY) comes back as
/// PolicyNotFoundException: a conflict.
pub async fn put(
    client: &Client,
    arn: &str,
    input: &PutInput<'_>,
) -> Result<Version, ServiceError> {
    let expected = match &input.expected {
        Expected::Anything => None,
        Expected::NoPolicy => Some("NO_POLICY".to_string()),
        Expected::Version(Version::Revision(r)) => Some(r.clone()),
        Expected::Version(_) => None,
    };
    let guarded = expected.is_some();
    let out = client
        .put_resource_policy()
        .resource_arn(arn)
        .policy(input.policy.text())
        .set_expected_revision_id(expected)
        .set_confirm_remove_self_resource_access(input.confirm_remove_self_resource_access)
        .send()
        .await
        .map_err(|e| match classify(&e, kind) {
            e if guarded && e.kind == ErrorKind::PolicyNotFound => ServiceError {
                kind: ErrorKind::Conflict,
                ..e
            },
            e => e,
        })?;
    Ok(revision(out.revision_id()))
}

pub async fn read(client: &Client, arn: &str) -> Result<Option<LivePolicy>, ServiceError> {
    match client.get_resource_policy().resource_arn(arn).send().await {
        Ok(out) => Ok(out.policy().filter(|p| !p.is_empty()).map(|p| LivePolicy {
            document: p.to_string(),
            version: revision(out.revision_id()),
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

/// With a revision to expect, a mismatch (PolicyNotFoundException) is a conflict,
/// not "already gone": someone changed the policy since it was read.
pub async fn delete(
    client: &Client,
    arn: &str,
    expected: &Expected,
) -> Result<Deleted, ServiceError> {
    let expected = match expected {
        Expected::Version(Version::Revision(r)) => Some(r.clone()),
        _ => None,
    };
    let guarded = expected.is_some();
    match client
        .delete_resource_policy()
        .resource_arn(arn)
        .set_expected_revision_id(expected)
        .send()
        .await
    {
        Ok(_) => Ok(Deleted::Removed),
        Err(e) => match classify(&e, kind) {
            e if guarded && e.kind == ErrorKind::PolicyNotFound => Err(ServiceError {
                kind: ErrorKind::Conflict,
                ..e
            }),
            e => gone_or(e),
        },
    }
}

/// A policy, table or stream that is gone or going is a finished delete.
fn gone_or(e: ServiceError) -> Result<Deleted, ServiceError> {
    match e.kind {
        ErrorKind::PolicyNotFound | ErrorKind::ResourceNotFound | ErrorKind::ResourceDeleting => {
            Ok(Deleted::AlreadyGone)
        }
        _ => Err(e),
    }
}
