//! SSM parameters and OpsItemGroups: PutResourcePolicy / GetResourcePolicies /
//! DeleteResourcePolicy. A resource can hold several policies, each known by a
//! PolicyId; updating or deleting one needs its current PolicyHash, so this adapter
//! looks the hash up itself right before each write.
//!
//! A put without a PolicyId adds a policy, so a blind retry of one whose outcome is
//! unknown would add a second: the SDK does not retry puts here; each try first
//! re-reads and adopts the policy that landed.

use aws_config::retry::RetryConfig;
use aws_sdk_ssm::Client;

use crate::model::target::{is_name, Resource};

use super::{
    classify, Deleted, ErrorKind, Expected, Facts, Known, LivePolicy, PutInput, ServiceError,
    Version,
};
use crate::model::policy::Policy;

pub const FACTS: Facts = Facts {
    key: "ssm",
    display_name: "SSM",
    // SSM's model: "a policy can't exceed 1024 bytes" (ResourcePolicyLimitExceededException).
    size_limit: Some(1024),
    options: &["PolicyId"],
    arn_resource: Some(arn_resource),
    has_precondition: true,
    trail_key: "resourceArn",
    many_policies_per_resource: true,
};

/// `parameter/NAME` (names may hold `/`) or `opsitemgroup/NAME`.
fn arn_resource(segments: &[&str]) -> Result<Resource, String> {
    match segments {
        ["parameter", rest @ ..] if !rest.is_empty() && rest.iter().all(|s| is_name(s, "_.-")) => {
            Ok(Resource::SsmParameter {
                name: rest.join("/"),
            })
        }
        ["opsitemgroup", name] if is_name(name, "_.-") => Ok(Resource::SsmOpsItemGroup {
            name: name.to_string(),
        }),
        _ => Err(
            "is not an SSM parameter or OpsItemGroup ARN (parameter/NAME or opsitemgroup/NAME)"
                .into(),
        ),
    }
}

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
        version: version(id, hash),
    }
}

fn version(id: Option<&str>, hash: Option<&str>) -> Version {
    Version::Ssm {
        policy_id: id.unwrap_or_default().to_string(),
        hash: hash.unwrap_or_default().to_string(),
    }
}

fn id_of(p: &LivePolicy) -> Option<&str> {
    match &p.version {
        Version::Ssm { policy_id, .. } => Some(policy_id),
        _ => None,
    }
}

fn hash_of(p: &LivePolicy) -> Option<&str> {
    match &p.version {
        Version::Ssm { hash, .. } => Some(hash),
        _ => None,
    }
}

/// Every policy on the resource, following pagination.
pub async fn list(client: &Client, arn: &str) -> Result<Vec<LivePolicy>, ServiceError> {
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
    known: &Known,
    policy: Option<&Policy>,
) -> Option<&'a LivePolicy> {
    match &known.policy_id {
        Some(id) => policies.iter().find(|p| id_of(p) == Some(id)),
        None => policy.and_then(|want| policies.iter().find(|p| want.matches(&p.document))),
    }
}

/// Updates the known policy in place, or adopts an identical one (a repeated Create,
/// or a put whose answer was lost), or adds a new one.
pub async fn put(
    client: &Client,
    arn: &str,
    input: &PutInput<'_>,
) -> Result<Version, ServiceError> {
    // A read-modify-write already knows the policy's id and hash (or that it is new):
    // a stale hash must fail as a conflict, not be looked up again.
    match &input.expected {
        Expected::Version(Version::Ssm { policy_id, hash }) => {
            return write(client, arn, input, Some(policy_id), Some(hash)).await
        }
        Expected::NoPolicy => return write(client, arn, input, None, None).await,
        _ => {}
    }
    let policies = list(client, arn).await?;
    let current = find(&policies, input.known, Some(input.policy))
        .or_else(|| find(&policies, &Known::default(), Some(input.policy)));
    if let Some(same) = current.filter(|p| input.policy.matches(&p.document)) {
        return Ok(same.version.clone());
    }
    write(
        client,
        arn,
        input,
        current.and_then(id_of),
        current.and_then(hash_of),
    )
    .await
}

/// One PutResourcePolicy, never retried by the SDK (see the module comment).
async fn write(
    client: &Client,
    arn: &str,
    input: &PutInput<'_>,
    policy_id: Option<&str>,
    hash: Option<&str>,
) -> Result<Version, ServiceError> {
    let out = client
        .put_resource_policy()
        .resource_arn(arn)
        .policy(input.policy.text())
        .set_policy_id(policy_id.map(str::to_string))
        .set_policy_hash(hash.map(str::to_string))
        .customize()
        .config_override(
            aws_sdk_ssm::config::Builder::default().retry_config(RetryConfig::disabled()),
        )
        .send()
        .await
        .map_err(|e| classify(&e, kind))?;
    Ok(version(out.policy_id(), out.policy_hash()))
}

/// Every policy on the resource; none when the resource is gone.
pub async fn read_all(client: &Client, arn: &str) -> Result<Vec<LivePolicy>, ServiceError> {
    match list(client, arn).await {
        Err(e) if e.kind == ErrorKind::ResourceNotFound => Ok(Vec::new()),
        other => other,
    }
}

pub async fn read(
    client: &Client,
    arn: &str,
    known: &Known,
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

/// Removes the policy named by `known`, else the one holding `policy`. With neither,
/// nothing can be chosen: an error, never a delete that removed nothing. With an
/// expected id and hash (a read-modify-write), exactly that version is deleted: a
/// stale hash is a conflict.
pub async fn delete(
    client: &Client,
    arn: &str,
    known: &Known,
    policy: Option<&Policy>,
    expected: &Expected,
) -> Result<Deleted, ServiceError> {
    if let Expected::Version(Version::Ssm { policy_id, hash }) = expected {
        return match client
            .delete_resource_policy()
            .resource_arn(arn)
            .policy_id(policy_id)
            .policy_hash(hash)
            .send()
            .await
        {
            Ok(_) => Ok(Deleted::Removed),
            Err(e) => match classify(&e, kind) {
                e if e.kind == ErrorKind::ResourceNotFound => Ok(Deleted::AlreadyGone),
                // An unknown id or hash: the policy changed since it was read.
                e if e.kind == ErrorKind::PolicyNotFound => Err(ServiceError {
                    kind: ErrorKind::Conflict,
                    ..e
                }),
                e => Err(e),
            },
        };
    }
    if known.policy_id.is_none() && policy.is_none() {
        return Err(ServiceError::new(
            ErrorKind::Terminal,
            "PolicyIdRequired",
            "an SSM resource can hold several policies: give PolicyId (or the Policy document) \
                to say which one to delete",
        ));
    }
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
        .set_policy_id(id_of(current).map(str::to_string))
        .set_policy_hash(hash_of(current).map(str::to_string))
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
