//! The one typed, validated request every entry point turns into.
//!
//! CloudFormation sends every property value as a string ("true", "300"), other
//! callers send native JSON; both are accepted. Every check here runs before any AWS
//! call, and each error names the property at fault.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::model::policy::Policy;
use crate::model::statements::Statements;
use crate::model::target::Target;
use crate::services::Service;

/// Properties a request may carry. Anything else is refused, so a typo is not ignored.
const KNOWN: [&str; 15] = [
    "ResourceArn",
    "PolicyName",
    "Service",
    "Region",
    "Policy",
    "Statements",
    "PolicyId",
    "ConfirmRemoveSelfResourceAccess",
    "BypassPolicyLockoutCheck",
    "WaitForPropagation",
    "ServiceToken",
    "ServiceTimeout",
    "TakeOver",
    "GuardOverride",
    "DryRun",
];

/// A request that cannot be acted on, and the property at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidRequest {
    /// The property at fault (`ResourceProperties` for the whole set).
    pub property: &'static str,
    pub message: String,
}

impl InvalidRequest {
    /// `message`: text, or a typed parse error (its Display names the problem).
    pub fn new(property: &'static str, message: impl ToString) -> Self {
        InvalidRequest {
            property,
            message: message.to_string(),
        }
    }
}

/// What the caller wants done, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyRequest {
    pub target: Target,
    /// The whole policy; absent where not needed (a delete) or with `statements`.
    pub policy: Option<Policy>,
    /// The statements this request owns in a shared policy, instead of `policy`.
    pub statements: Option<Statements>,
    /// SSM: the policy to update or delete, when the function did not create it.
    pub policy_id: Option<String>,
    pub confirm_remove_self_resource_access: Option<bool>,
    pub bypass_policy_lockout_check: Option<bool>,
    pub wait_for_propagation: bool,
    /// CloudFormation's `ServiceTimeout`: also bounds this invocation's work.
    pub service_timeout: Option<Duration>,
    /// Take over a policy (or a statement's Sid) this function did not write; its
    /// document is kept and put back when this owner goes.
    pub take_over: bool,
    /// Write what the grant guard refuses: honoured only if the operator allows it.
    pub guard_override: bool,
    /// Plan only: say what would be written, write nothing.
    pub dry_run: bool,
}

/// Whether the request must carry a policy: puts do, deletes only need the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyNeeded {
    Yes,
    No,
}

impl PolicyRequest {
    /// Validates `properties`. `default_region` is the function's own region, used for
    /// X-Ray when `Region` is absent.
    pub fn from_properties(
        properties: &Value,
        default_region: &str,
        needed: PolicyNeeded,
    ) -> Result<PolicyRequest, InvalidRequest> {
        let props =
            match properties {
                Value::Object(map) => map,
                Value::Null => return Err(InvalidRequest::new(
                    "ResourceProperties",
                    "ResourceProperties are missing: ResourceArn (or PolicyName) and Policy are \
                        required",
                )),
                other => {
                    return Err(InvalidRequest::new(
                        "ResourceProperties",
                        format!("ResourceProperties must be an object, got {}", kind(other)),
                    ))
                }
            };
        if let Some(unknown) = props.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(InvalidRequest::new(
                "ResourceProperties",
                format!(
                    "unknown property {unknown:?}; known properties: {}",
                    KNOWN.join(", ")
                ),
            ));
        }

        let service = optional_string(props, "Service")?
            .map(|s| {
                Service::from_key(&s).ok_or_else(|| {
                    InvalidRequest::new(
                        "Service",
                        format!("Service {s:?} is not one of dynamodb, kinesis, xray, aps, ssm"),
                    )
                })
            })
            .transpose()?;
        let region = optional_string(props, "Region")?;
        let target = select_target(
            optional_string(props, "ResourceArn")?,
            optional_string(props, "PolicyName")?,
            service,
            region,
            default_region,
        )?;

        let statements = match props.get("Statements").filter(|v| !v.is_null()) {
            None => None,
            Some(raw) => match Statements::parse(raw) {
                Ok(s) => Some(s),
                Err(e) if needed == PolicyNeeded::Yes => {
                    return Err(InvalidRequest::new("Statements", e))
                }
                Err(_) => None,
            },
        };
        let has_policy = props.get("Policy").is_some_and(|v| !v.is_null());
        if has_policy && props.get("Statements").is_some_and(|v| !v.is_null()) {
            return Err(InvalidRequest::new(
                "Statements",
                "give Policy (the whole document) or Statements (the statements this resource \
                 owns in a shared policy), not both",
            ));
        }
        let policy = match (props.get("Policy"), needed) {
            (None | Some(Value::Null), PolicyNeeded::Yes) if statements.is_none() => {
                return Err(InvalidRequest::new(
                    "Policy",
                    "Policy is required: a JSON policy document (or Statements: the statements \
                     this resource owns in a shared policy)",
                ))
            }
            (None | Some(Value::Null), _) => None,
            (Some(raw), needed) => match Policy::parse(raw, target.service) {
                Ok(p) => Some(p),
                Err(e) if needed == PolicyNeeded::Yes => {
                    return Err(InvalidRequest::new("Policy", e))
                }
                // A delete does not send the policy: a bad one must not block it.
                Err(_) => None,
            },
        };

        // Options that only one service takes are refused elsewhere, by name.
        for option in [
            "ConfirmRemoveSelfResourceAccess",
            "BypassPolicyLockoutCheck",
            "PolicyId",
        ] {
            if props.get(option).is_some_and(|v| !v.is_null())
                && !target.service.accepts_option(option)
            {
                let owner = Service::owner_of_option(option)
                    .map(|s| s.facts().display_name)
                    .unwrap_or("another service");
                return Err(InvalidRequest::new(
                    static_name(option),
                    format!("{option} applies to {owner} only, not {}", target.service),
                ));
            }
        }
        optional_string(props, "ServiceToken")?;

        Ok(PolicyRequest {
            target,
            policy,
            statements,
            policy_id: optional_string(props, "PolicyId")?,
            confirm_remove_self_resource_access: optional_bool(
                props,
                "ConfirmRemoveSelfResourceAccess",
            )?,
            bypass_policy_lockout_check: optional_bool(props, "BypassPolicyLockoutCheck")?,
            wait_for_propagation: optional_bool(props, "WaitForPropagation")?.unwrap_or(true),
            service_timeout: service_timeout(props)?,
            take_over: optional_bool(props, "TakeOver")?.unwrap_or(false),
            guard_override: optional_bool(props, "GuardOverride")?.unwrap_or(false),
            dry_run: optional_bool(props, "DryRun")?.unwrap_or(false),
        })
    }
}

impl PolicyRequest {
    /// The properties that rebuild this request (what the ledger keeps): the target,
    /// the policy and the service options, without CloudFormation's own.
    pub fn desired_properties(&self) -> Value {
        let mut props = Map::new();
        match &self.target.arn {
            Some(arn) => {
                props.insert("ResourceArn".into(), Value::String(arn.clone()));
            }
            None => {
                props.insert("PolicyName".into(), self.target.api_id().into());
                props.insert("Region".into(), self.target.region.clone().into());
            }
        }
        if let Some(p) = &self.policy {
            props.insert("Policy".into(), p.value().clone());
        }
        if let Some(s) = &self.statements {
            props.insert("Statements".into(), s.to_value());
        }
        if let Some(b) = self.confirm_remove_self_resource_access {
            props.insert("ConfirmRemoveSelfResourceAccess".into(), b.into());
        }
        if let Some(b) = self.bypass_policy_lockout_check {
            props.insert("BypassPolicyLockoutCheck".into(), b.into());
        }
        props.insert(
            "WaitForPropagation".into(),
            self.wait_for_propagation.into(),
        );
        Value::Object(props)
    }
}

/// The property name as a `'static` string for [`InvalidRequest::property`].
fn static_name(name: &str) -> &'static str {
    KNOWN
        .iter()
        .find(|k| **k == name)
        .copied()
        .unwrap_or("ResourceProperties")
}

fn select_target(
    arn: Option<String>,
    name: Option<String>,
    service: Option<Service>,
    region: Option<String>,
    default_region: &str,
) -> Result<Target, InvalidRequest> {
    match (arn, name) {
        (Some(_), Some(_)) => Err(InvalidRequest::new(
            "ResourceArn",
            "give either ResourceArn or PolicyName, not both (PolicyName is for X-Ray, which has \
                no ARN)",
        )),
        (Some(arn), None) => {
            let target =
                Target::from_arn(&arn).map_err(|e| InvalidRequest::new(e.property(), e))?;
            if let Some(s) = service.filter(|s| *s != target.service) {
                return Err(InvalidRequest::new(
                    "Service",
                    format!(
                        "Service {:?} disagrees with ResourceArn, which is a {} ARN",
                        s.key(),
                        target.service
                    ),
                ));
            }
            if let Some(r) = region.filter(|r| *r != target.region) {
                return Err(InvalidRequest::new(
                    "Region",
                    format!(
                        "Region {r:?} disagrees with ResourceArn, which is in {}",
                        target.region
                    ),
                ));
            }
            Ok(target)
        }
        (None, Some(name)) => {
            if let Some(s) = service.filter(|s| *s != Service::XRay) {
                return Err(InvalidRequest::new(
                    "ResourceArn",
                    format!(
                        "Service {:?} needs ResourceArn; PolicyName alone names an X-Ray policy",
                        s.key()
                    ),
                ));
            }
            Target::xray(&name, region.as_deref().unwrap_or(default_region))
                .map_err(|e| InvalidRequest::new(e.property(), e))
        }
        (None, None) => Err(match service {
            Some(Service::XRay) => {
                InvalidRequest::new("PolicyName", "PolicyName is required for X-Ray")
            }
            _ => InvalidRequest::new(
                "ResourceArn",
                "ResourceArn is required (or PolicyName for an X-Ray policy)",
            ),
        }),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn optional_string(
    props: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, InvalidRequest> {
    match props.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(InvalidRequest::new(name, format!("{name} is empty")))
        }
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(InvalidRequest::new(
            name,
            format!("{name} must be a string, got {}", kind(other)),
        )),
    }
}

/// Accepts `true` / `false` and CloudFormation's `"true"` / `"false"`.
fn optional_bool(
    props: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<bool>, InvalidRequest> {
    match props.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(InvalidRequest::new(
            name,
            format!("{name} must be true or false, got {other}"),
        )),
    }
}

/// Whole seconds from 1 to 3600, as CloudFormation defines it.
fn service_timeout(props: &Map<String, Value>) -> Result<Option<Duration>, InvalidRequest> {
    let raw = match props.get("ServiceTimeout") {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let secs = match raw {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match secs {
        Some(s @ 1..=3600) => Ok(Some(Duration::from_secs(s))),
        _ => Err(InvalidRequest::new(
            "ServiceTimeout",
            format!("ServiceTimeout must be whole seconds from 1 to 3600, got {raw}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TABLE: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/orders";

    fn parse(v: Value) -> Result<PolicyRequest, InvalidRequest> {
        PolicyRequest::from_properties(&v, "eu-west-1", PolicyNeeded::Yes)
    }

    fn policy() -> Value {
        json!({"Version": "2012-10-17", "Statement": []})
    }

    #[test]
    fn cloudformation_strings_are_typed_back() {
        let r = parse(json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "ResourceArn": TABLE,
            "Policy": policy().to_string(),
            "ConfirmRemoveSelfResourceAccess": "true",
            "WaitForPropagation": "false",
            "ServiceTimeout": "120",
        }))
        .unwrap();
        assert_eq!(r.confirm_remove_self_resource_access, Some(true));
        assert!(!r.wait_for_propagation);
        assert_eq!(r.service_timeout, Some(Duration::from_secs(120)));
        assert_eq!(
            r.policy.unwrap().text(),
            r#"{"Version":"2012-10-17","Statement":[]}"#
        );
    }

    #[test]
    fn native_json_is_accepted_too() {
        let r = parse(json!({"ResourceArn": TABLE, "Policy": policy(), "WaitForPropagation": true, "ServiceTimeout": 60})).unwrap();
        assert!(r.wait_for_propagation);
        assert_eq!(r.service_timeout, Some(Duration::from_secs(60)));
    }

    #[test]
    fn xray_takes_policy_name_and_defaults_to_the_function_region() {
        let r = parse(
            json!({"PolicyName": "p1", "Policy": policy(), "BypassPolicyLockoutCheck": "false"}),
        )
        .unwrap();
        assert_eq!(r.target.service, Service::XRay);
        assert_eq!(r.target.region, "eu-west-1");
        let r = parse(json!({"PolicyName": "p1", "Service": "xray", "Region": "us-west-2", "Policy": policy()})).unwrap();
        assert_eq!(r.target.region, "us-west-2");
    }

    #[test]
    fn each_bad_property_is_named() {
        let cases = [
            (json!({"ResourceArn": TABLE}), "Policy is required"),
            (json!({"Policy": policy()}), "ResourceArn is required"),
            (
                json!({"ResourceArn": TABLE, "Policy": policy(), "Service": "kinesis"}),
                "Service \"kinesis\" disagrees",
            ),
            (
                json!({"ResourceArn": TABLE, "Policy": policy(), "Service": "s3"}),
                "Service \"s3\"",
            ),
            (json!({"ResourceArn": TABLE, "Policy": "[1,2]"}), "Policy"),
            (
                json!({"ResourceArn": TABLE, "Policy": policy(), "WaitForPropagation": "yes"}),
                "WaitForPropagation",
            ),
            (
                json!({"ResourceArn": TABLE, "Policy": policy(), "Colour": "blue"}),
                "unknown property \"Colour\"",
            ),
            (
                json!({"ResourceArn": TABLE, "Policy": policy(), "ServiceTimeout": "0"}),
                "ServiceTimeout",
            ),
            (
                json!({"ResourceArn": TABLE, "Policy": policy(), "ServiceTimeout": "soon"}),
                "ServiceTimeout",
            ),
            (
                json!({"ResourceArn": 42, "Policy": policy()}),
                "ResourceArn must be a string",
            ),
            (
                json!({"ResourceArn": TABLE, "PolicyName": "p", "Policy": policy()}),
                "not both",
            ),
            (
                json!({"ResourceArn": TABLE, "Policy": policy(), "Region": "us-west-2"}),
                "Region",
            ),
            (
                json!({"ResourceArn": TABLE, "Policy": policy(), "BypassPolicyLockoutCheck": "true"}),
                "X-Ray only",
            ),
            (
                json!({"PolicyName": "p", "Policy": policy(), "ConfirmRemoveSelfResourceAccess": "true"}),
                "DynamoDB only",
            ),
            (
                json!({"ResourceArn": TABLE, "Policy": policy(), "PolicyId": "p-1"}),
                "PolicyId applies to SSM only",
            ),
            (json!("just a string"), "must be an object"),
            (Value::Null, "ResourceProperties are missing"),
        ];
        for (props, needle) in cases {
            let err = parse(props.clone()).unwrap_err().to_string();
            assert!(err.contains(needle), "{props}: {err}");
        }
    }

    #[test]
    fn each_error_names_its_property() {
        let cases = [
            (json!({"ResourceArn": TABLE}), "Policy"),
            (
                json!({"ResourceArn": "nope", "Policy": policy()}),
                "ResourceArn",
            ),
            (
                json!({"PolicyName": "p", "Region": "moon", "Policy": policy()}),
                "Region",
            ),
            (
                json!({"PolicyName": "bad name!", "Policy": policy()}),
                "PolicyName",
            ),
            (
                json!({"ResourceArn": TABLE, "Policy": policy(), "WaitForPropagation": 3}),
                "WaitForPropagation",
            ),
            (
                json!({"ResourceArn": TABLE, "Policy": policy(), "Nope": 1}),
                "ResourceProperties",
            ),
        ];
        for (props, property) in cases {
            assert_eq!(
                parse(props.clone()).unwrap_err().property,
                property,
                "{props}"
            );
        }
    }

    #[test]
    fn desired_properties_rebuild_the_same_request() {
        let r = parse(json!({"ServiceToken": "x", "ResourceArn": TABLE, "Policy": policy().to_string(), "ConfirmRemoveSelfResourceAccess": "true", "ServiceTimeout": "60"})).unwrap();
        let again = parse(r.desired_properties()).unwrap();
        assert_eq!(again.target, r.target);
        assert_eq!(again.policy, r.policy);
        assert_eq!(again.confirm_remove_self_resource_access, Some(true));
        let x =
            parse(json!({"PolicyName": "p", "Region": "us-west-2", "Policy": policy()})).unwrap();
        assert_eq!(parse(x.desired_properties()).unwrap().target, x.target);
    }

    #[test]
    fn statements_replace_policy_and_never_go_with_it() {
        let st = json!([{"Sid": "A", "Effect": "Allow", "Principal": "*", "Action": "dynamodb:GetItem", "Resource": "*"}]);
        let r = parse(json!({"ResourceArn": TABLE, "Statements": st})).unwrap();
        assert_eq!(r.statements.unwrap().sids(), ["A"]);
        assert!(r.policy.is_none());
        let r = parse(json!({"ResourceArn": TABLE, "Statements": st.to_string()})).unwrap();
        assert!(r.statements.is_some(), "CloudFormation's string form");
        let e =
            parse(json!({"ResourceArn": TABLE, "Statements": st, "Policy": policy()})).unwrap_err();
        assert_eq!(e.property, "Statements");
        assert!(e.message.contains("not both"), "{e}");
        let e =
            parse(json!({"ResourceArn": TABLE, "Statements": [{"Effect": "Allow"}]})).unwrap_err();
        assert!(e.message.contains("Sid"), "{e}");
        let e = parse(json!({"ResourceArn": TABLE})).unwrap_err();
        assert!(e.message.contains("Statements"), "{e}");
    }

    #[test]
    fn ssm_takes_a_policy_id() {
        let r = parse(json!({"ResourceArn": "arn:aws:ssm:us-east-1:123456789012:parameter/p", "Policy": policy(), "PolicyId": "abc"})).unwrap();
        assert_eq!(r.policy_id.as_deref(), Some("abc"));
    }

    #[test]
    fn a_delete_needs_only_the_target() {
        let r = PolicyRequest::from_properties(
            &json!({"ResourceArn": TABLE, "Policy": "not json"}),
            "us-east-1",
            PolicyNeeded::No,
        )
        .unwrap();
        assert_eq!(r.policy, None);
        assert!(PolicyRequest::from_properties(
            &json!({"Policy": policy()}),
            "us-east-1",
            PolicyNeeded::No
        )
        .is_err());
    }
}
