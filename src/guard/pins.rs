//! Which conditions pin a statement's grant to someone in particular. This is IAM
//! Access Analyzer's public-access definition as DynamoDB Block Public Access states it
//! (aws-facts §11.1): a `*` principal is not public when one of fifteen trusted keys
//! restricts it to fixed values. Its own file because the same pins answer both rules:
//! whether a grant is public, and whether it stays within the allowed accounts or
//! organization.
//!
//! A condition pins only when it must hold on every request:
//! - the key is one of the fifteen (names compared without case, as IAM does);
//!   `aws:SourceIp` is not one of them;
//! - the operator requires a match: `StringEquals`, `StringEqualsIgnoreCase`,
//!   `StringLike`, and for the two ARN keys also `ArnEquals` and `ArnLike`; for
//!   `aws:PrincipalIsAWSService` only `Bool` with `true`. Negated operators (`…Not…`),
//!   `Null` and the rest restrict nothing;
//! - no `IfExists`: it lets a request without the key through, and anonymous requests
//!   carry no principal keys, requests not made by a service no source keys;
//! - no `ForAllValues:`, which holds when the request has no values at all;
//!   `ForAnyValue:` needs one match, so it pins;
//! - every value is a fixed string: none holds a wildcard (`*`, `?`) or a policy
//!   variable (`${…}`), and there is at least one.

use serde_json::Value;

use super::principals::has_wildcard;

/// The trusted condition keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    PrincipalAccount,
    PrincipalArn,
    PrincipalOrgId,
    PrincipalOrgPaths,
    SourceAccount,
    SourceArn,
    SourceVpc,
    SourceVpce,
    UserId,
    PrincipalServiceName,
    PrincipalServiceNamesList,
    PrincipalIsAwsService,
    Ec2InstanceSourceVpc,
    SourceOrgId,
    SourceOrgPaths,
}

const KEYS: [(&str, Key); 15] = [
    ("aws:PrincipalAccount", Key::PrincipalAccount),
    ("aws:PrincipalArn", Key::PrincipalArn),
    ("aws:PrincipalOrgID", Key::PrincipalOrgId),
    ("aws:PrincipalOrgPaths", Key::PrincipalOrgPaths),
    ("aws:SourceAccount", Key::SourceAccount),
    ("aws:SourceArn", Key::SourceArn),
    ("aws:SourceVpc", Key::SourceVpc),
    ("aws:SourceVpce", Key::SourceVpce),
    ("aws:UserId", Key::UserId),
    ("aws:PrincipalServiceName", Key::PrincipalServiceName),
    (
        "aws:PrincipalServiceNamesList",
        Key::PrincipalServiceNamesList,
    ),
    ("aws:PrincipalIsAWSService", Key::PrincipalIsAwsService),
    ("aws:Ec2InstanceSourceVpc", Key::Ec2InstanceSourceVpc),
    ("aws:SourceOrgID", Key::SourceOrgId),
    ("aws:SourceOrgPaths", Key::SourceOrgPaths),
];

/// One condition that pins the grant: its key and its fixed values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pin {
    pub key: Key,
    pub values: Vec<String>,
}

/// The conditions in a statement's `Condition` element that pin it.
pub(crate) fn pins(condition: Option<&Value>) -> Vec<Pin> {
    let Some(Value::Object(operators)) = condition else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (operator, block) in operators {
        let Some(operator) = requiring_operator(operator) else {
            continue;
        };
        let Value::Object(block) = block else {
            continue;
        };
        for (name, values) in block {
            let Some(key) = trusted_key(name) else {
                continue;
            };
            if let Some(values) = fixed_values(key, operator, values) {
                out.push(Pin { key, values });
            }
        }
    }
    out
}

/// The operator families that require a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    String,
    Arn,
    Bool,
}

/// The family of an operator that must match on every request, or `None`.
fn requiring_operator(operator: &str) -> Option<Operator> {
    let lower = operator.to_ascii_lowercase();
    if lower.starts_with("forallvalues:") || lower.ends_with("ifexists") {
        return None;
    }
    let base = lower.strip_prefix("foranyvalue:").unwrap_or(&lower);
    match base {
        "stringequals" | "stringequalsignorecase" | "stringlike" => Some(Operator::String),
        "arnequals" | "arnlike" => Some(Operator::Arn),
        "bool" => Some(Operator::Bool),
        _ => None,
    }
}

fn trusted_key(name: &str) -> Option<Key> {
    KEYS.iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|(_, key)| *key)
}

/// The values, when each one pins under this operator: fixed strings for string and
/// ARN keys, `true` for `aws:PrincipalIsAWSService`.
fn fixed_values(key: Key, operator: Operator, values: &Value) -> Option<Vec<String>> {
    let arn_key = matches!(key, Key::PrincipalArn | Key::SourceArn);
    let fits = match (key, operator) {
        (Key::PrincipalIsAwsService, op) => op == Operator::Bool,
        (_, Operator::String) => true,
        (_, Operator::Arn) => arn_key,
        (_, Operator::Bool) => false,
    };
    if !fits {
        return None;
    }
    let items: Vec<&Value> = match values {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    if items.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let text = match (operator, item) {
            (Operator::Bool, Value::Bool(true)) => "true".to_string(),
            (Operator::Bool, Value::String(s)) if s.eq_ignore_ascii_case("true") => {
                "true".to_string()
            }
            (Operator::Bool, _) => return None,
            (_, Value::String(s)) if !has_wildcard(s) && !s.contains("${") && !s.is_empty() => {
                s.clone()
            }
            _ => return None,
        };
        out.push(text);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pinned(condition: Value) -> bool {
        !pins(Some(&condition)).is_empty()
    }

    #[test]
    fn each_trusted_key_pins_with_a_fixed_value() {
        for (key, value) in [
            ("aws:PrincipalAccount", "111122223333"),
            ("aws:PrincipalArn", "arn:aws:iam::111122223333:role/app"),
            ("aws:PrincipalOrgID", "o-a1b2c3d4e5"),
            (
                "aws:PrincipalOrgPaths",
                "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/",
            ),
            ("aws:SourceAccount", "111122223333"),
            ("aws:SourceArn", "arn:aws:sns:eu-west-1:111122223333:topic"),
            ("aws:SourceVpc", "vpc-1a2b3c4d"),
            ("aws:SourceVpce", "vpce-1a2b3c4d"),
            ("aws:UserId", "AROAEXAMPLEID:session"),
            ("aws:PrincipalServiceName", "sns.amazonaws.com"),
            ("aws:PrincipalServiceNamesList", "sns.amazonaws.com"),
            ("aws:Ec2InstanceSourceVpc", "vpc-1a2b3c4d"),
            ("aws:SourceOrgID", "o-a1b2c3d4e5"),
            ("aws:SourceOrgPaths", "o-a1b2c3d4e5/r-ab12/"),
        ] {
            assert!(pinned(json!({"StringEquals": {key: value}})), "{key}");
            assert!(pinned(json!({"StringLike": {key: [value]}})), "{key}");
            assert!(
                pinned(json!({"ForAnyValue:StringEquals": {key: value}})),
                "{key}"
            );
            // Keys are not case-sensitive.
            assert!(
                pinned(json!({"StringEquals": {key.to_ascii_lowercase(): value}})),
                "{key}"
            );
            for wild in [
                format!("{value}*"),
                "?".to_string(),
                "${aws:username}".into(),
            ] {
                assert!(
                    !pinned(json!({"StringEquals": {key: [value, wild.as_str()]}})),
                    "{key} {wild}"
                );
            }
            assert!(
                !pinned(json!({"StringEqualsIfExists": {key: value}})),
                "{key}"
            );
            assert!(
                !pinned(json!({"ForAllValues:StringEquals": {key: value}})),
                "{key}"
            );
            assert!(!pinned(json!({"StringNotEquals": {key: value}})), "{key}");
            assert!(!pinned(json!({"StringEquals": {key: []}})), "{key}");
        }
        assert!(pinned(
            json!({"Bool": {"aws:PrincipalIsAWSService": "true"}})
        ));
        assert!(pinned(json!({"Bool": {"aws:PrincipalIsAWSService": true}})));
    }

    #[test]
    fn arn_operators_pin_only_arn_keys() {
        let arn = "arn:aws:iam::111122223333:role/app";
        assert!(pinned(json!({"ArnEquals": {"aws:PrincipalArn": arn}})));
        assert!(pinned(json!({"ArnLike": {"aws:SourceArn": arn}})));
        assert!(!pinned(
            json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/*"}})
        ));
        assert!(!pinned(
            json!({"ArnEqualsIfExists": {"aws:PrincipalArn": arn}})
        ));
        assert!(!pinned(json!({"ArnNotEquals": {"aws:PrincipalArn": arn}})));
        assert!(!pinned(
            json!({"ArnEquals": {"aws:PrincipalAccount": "111122223333"}})
        ));
    }

    #[test]
    fn principal_is_aws_service_pins_only_when_true() {
        assert!(!pinned(
            json!({"Bool": {"aws:PrincipalIsAWSService": "false"}})
        ));
        assert!(!pinned(
            json!({"Bool": {"aws:PrincipalIsAWSService": ["true", "false"]}})
        ));
        assert!(!pinned(
            json!({"StringEquals": {"aws:PrincipalIsAWSService": "true"}})
        ));
        assert!(!pinned(
            json!({"BoolIfExists": {"aws:PrincipalIsAWSService": "true"}})
        ));
        assert!(!pinned(json!({"Bool": {"aws:SecureTransport": "true"}})));
    }

    #[test]
    fn other_keys_and_operators_do_not_pin() {
        assert!(!pinned(
            json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
        ));
        assert!(!pinned(
            json!({"StringEquals": {"aws:SourceIp": "10.0.0.1"}})
        ));
        assert!(!pinned(
            json!({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}})
        ));
        assert!(!pinned(json!({"Null": {"aws:PrincipalAccount": "false"}})));
        assert!(!pinned(
            json!({"StringEquals": {"aws:PrincipalAccount": 111122223333_u64}})
        ));
        assert!(pins(None).is_empty());
        assert!(!pinned(json!("StringEquals")));
    }

    #[test]
    fn a_pin_keeps_its_key_and_values() {
        let found = pins(Some(&json!({
            "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
            "StringEquals": {"aws:PrincipalOrgID": ["o-a1b2c3d4e5", "o-f6g7h8i9j0"]}
        })));
        assert_eq!(
            found,
            [Pin {
                key: Key::PrincipalOrgId,
                values: vec!["o-a1b2c3d4e5".into(), "o-f6g7h8i9j0".into()]
            }]
        );
    }
}
