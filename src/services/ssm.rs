//! SSM parameters and OpsItemGroups: PutResourcePolicy / GetResourcePolicies /
//! DeleteResourcePolicy. A resource can hold several policies, each known by a
//! PolicyId; updating or deleting one needs its current PolicyHash, so this adapter
//! looks the hash up itself right before each write.

use aws_sdk_ssm::Client;

use super::{classify, Deleted, ErrorKind, LivePolicy, PutInput, Revision, ServiceError};
use crate::policy::Policy;

fn kind(code: &str, _message: &str) -> Option<ErrorKind> {
    Some(match code {
        // Documented for malformed documents *and* for bursts of policy calls.
        "MalformedResourcePolicyDocumentException" => ErrorKind::Ambiguous,
        "ResourceNotFoundException" => ErrorKind::ResourceNotFound,
        "ResourcePolicyNotFoundException" => ErrorKind::PolicyNotFound,
        "ResourcePolicyConflictException" => ErrorKind::Conflict,
        "InternalServerError" => ErrorKind::Transient,
        _ => return None,
    })
}

fn live(id: Option<&str>, hash: Option<&str>, doc: Option<&str>) -> LivePolicy {
    LivePolicy {
        document: doc.unwrap_or_default().to_string(),
        revision: Revision {
            policy_id: id.map(str::to_string),
            policy_hash: hash.map(str::to_string),
            ..Revision::default()
        },
    }
}

/// Every policy on the resource, following pagination.
async fn list(client: &Client, arn: &str) -> Result<Vec<LivePolicy>, ServiceError> {
    let mut all = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let out = client
            .get_resource_policies()
            .resource_arn(arn)
            .max_results(50)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| classify(&e, kind))?;
        all.extend(
            out.policies()
                .iter()
                .map(|p| live(p.policy_id(), p.policy_hash(), p.policy())),
        );
        match out.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => return Ok(all),
        }
    }
}

/// The policy this function manages: by PolicyId when known, else by its document.
fn find<'a>(
    policies: &'a [LivePolicy],
    known: &Revision,
    policy: Option<&Policy>,
) -> Option<&'a LivePolicy> {
    match &known.policy_id {
        Some(id) => policies
            .iter()
            .find(|p| p.revision.policy_id.as_ref() == Some(id)),
        None => policy.and_then(|want| policies.iter().find(|p| want.matches(&p.document))),
    }
}

/// Updates the known policy in place, or adopts an identical one (a repeated Create),
/// or adds a new one.
pub async fn put(
    client: &Client,
    arn: &str,
    input: &PutInput<'_>,
) -> Result<Revision, ServiceError> {
    let policies = list(client, arn).await?;
    let current = find(&policies, input.previous, Some(input.policy))
        .or_else(|| find(&policies, &Revision::default(), Some(input.policy)));
    if let Some(same) = current.filter(|p| input.policy.matches(&p.document)) {
        return Ok(same.revision.clone());
    }
    let out = client
        .put_resource_policy()
        .resource_arn(arn)
        .policy(input.policy.text())
        .set_policy_id(current.and_then(|p| p.revision.policy_id.clone()))
        .set_policy_hash(current.and_then(|p| p.revision.policy_hash.clone()))
        .send()
        .await
        .map_err(|e| classify(&e, kind))?;
    Ok(Revision {
        policy_id: out.policy_id().map(str::to_string),
        policy_hash: out.policy_hash().map(str::to_string),
        ..Revision::default()
    })
}

pub async fn read(
    client: &Client,
    arn: &str,
    known: &Revision,
) -> Result<Option<LivePolicy>, ServiceError> {
    match list(client, arn).await {
        Ok(policies) => Ok(match &known.policy_id {
            Some(_) => find(&policies, known, None).cloned(),
            None if policies.len() == 1 => policies.into_iter().next(),
            None => None,
        }),
        Err(e) if e.kind == ErrorKind::ResourceNotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn delete(
    client: &Client,
    arn: &str,
    known: &Revision,
    policy: Option<&Policy>,
) -> Result<Deleted, ServiceError> {
    let policies = match list(client, arn).await {
        Ok(p) => p,
        Err(e) if e.kind == ErrorKind::ResourceNotFound => return Ok(Deleted::AlreadyGone),
        Err(e) => return Err(e),
    };
    let Some(current) = find(&policies, known, policy) else {
        return Ok(Deleted::AlreadyGone);
    };
    match client
        .delete_resource_policy()
        .resource_arn(arn)
        .set_policy_id(current.revision.policy_id.clone())
        .set_policy_hash(current.revision.policy_hash.clone())
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
