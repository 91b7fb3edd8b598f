//! X-Ray policies, named per region: PutResourcePolicy / ListResourcePolicies /
//! DeleteResourcePolicy, versions by PolicyRevisionId.

use aws_sdk_xray::Client;

use super::{
    classify, Deleted, ErrorKind, Expected, Facts, LivePolicy, PutInput, ServiceError, Version,
};

pub const FACTS: Facts = Facts {
    key: "xray",
    display_name: "X-Ray",
    size_limit: Some(5 * 1024),
    options: &["BypassPolicyLockoutCheck"],
    // Policies are named per region; there is no ARN.
    arn_resource: None,
    has_precondition: true,
    trail_key: "policyName",
    many_policies_per_resource: false,
};

fn kind(code: &str, _message: &str) -> Option<ErrorKind> {
    Some(match code {
        "ThrottledException" => ErrorKind::Throttled,
        "InvalidPolicyRevisionIdException" => ErrorKind::Conflict,
        _ => return None,
    })
}

fn revision(id: Option<&str>) -> Version {
    Version::Revision(id.unwrap_or_default().to_string())
}

/// An upsert unless a precondition is given (revision "0": create only).
pub async fn put(
    client: &Client,
    name: &str,
    input: &PutInput<'_>,
) -> Result<Version, ServiceError> {
    let out = client
        .put_resource_policy()
        .policy_name(name)
        .policy_document(input.policy.text())
        .set_policy_revision_id(match &input.expected {
            Expected::NoPolicy => Some("0".to_string()),
            Expected::Version(Version::Revision(r)) => Some(r.clone()),
            _ => None,
        })
        .set_bypass_policy_lockout_check(input.bypass_policy_lockout_check)
        .send()
        .await
        .map_err(|e| classify(&e, kind))?;
    Ok(revision(
        out.resource_policy().and_then(|p| p.policy_revision_id()),
    ))
}

/// X-Ray has no single-policy read: list them and pick the name.
pub async fn read(client: &Client, name: &str) -> Result<Option<LivePolicy>, ServiceError> {
    let mut next: Option<String> = None;
    loop {
        let out = client
            .list_resource_policies()
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| classify(&e, kind))?;
        if let Some(p) = out
            .resource_policies()
            .iter()
            .find(|p| p.policy_name() == Some(name))
        {
            return Ok(Some(LivePolicy {
                document: p.policy_document().unwrap_or_default().to_string(),
                version: revision(p.policy_revision_id()),
            }));
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => return Ok(None),
        }
    }
}

/// With a revision to expect, a mismatch is InvalidPolicyRevisionIdException: a conflict.
pub async fn delete(
    client: &Client,
    name: &str,
    expected: &Expected,
) -> Result<Deleted, ServiceError> {
    // Deleting a name that does not exist is not an error in X-Ray's model, so a
    // repeated delete answers like the first.
    client
        .delete_resource_policy()
        .policy_name(name)
        .set_policy_revision_id(match expected {
            Expected::Version(Version::Revision(r)) => Some(r.clone()),
            _ => None,
        })
        .send()
        .await
        .map_err(|e| classify(&e, kind))?;
    Ok(Deleted::Removed)
}
