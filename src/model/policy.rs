//! A policy document: parsed once, sent compact, compared by meaning.

use serde_json::{Map, Value};

use crate::services::Service;

/// A JSON policy document as it will be sent: the parsed object and its compact text.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    value: Value,
    text: String,
}

/// Why a `Policy` property is not a policy this service takes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("Policy must be a JSON object; the string holds other JSON")]
    NotAnObject,
    #[error("Policy is not valid JSON: {0}")]
    NotJson(String),
    #[error("Policy must be a JSON object or a string holding one")]
    WrongType,
    #[error("Policy is {bytes} bytes as sent (compact JSON); {service} allows at most {limit}")]
    TooLarge {
        bytes: usize,
        limit: usize,
        service: Service,
    },
}

impl Policy {
    /// Accepts a JSON object or a string holding one, and checks the service's size
    /// limit against the compact text that will actually be sent.
    pub fn parse(raw: &Value, service: Service) -> Result<Policy, PolicyError> {
        let value = match raw {
            Value::Object(_) => raw.clone(),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) => return Err(PolicyError::NotAnObject),
                Err(e) => return Err(PolicyError::NotJson(e.to_string())),
            },
            _ => return Err(PolicyError::WrongType),
        };
        let text = value.to_string();
        if let Some(limit) = service.policy_size_limit() {
            if text.len() > limit {
                return Err(PolicyError::TooLarge {
                    bytes: text.len(),
                    limit,
                    service,
                });
            }
        }
        Ok(Policy { value, text })
    }

    /// A document built here (a merged shared policy), its size already checked.
    pub fn from_document(value: Value) -> Policy {
        let text = value.to_string();
        Policy { value, text }
    }

    /// The parsed document.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The compact JSON text sent to the service.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True when `live` (a document read back from a service) means the same policy:
    /// equality after the rewrites services apply when they store a policy, never
    /// string equality.
    pub fn matches(&self, live: &str) -> bool {
        serde_json::from_str::<Value>(live).is_ok_and(|v| same_document(&self.value, &v))
    }
}

/// Semantic equality of two policy documents, as IAM reads them. These rewrites, which
/// services apply when they store a policy, do not make a difference:
/// - key order and whitespace;
/// - a single value and a one-element list (`"Action": "s3:Get"` is `["s3:Get"]`);
/// - the order of statements and of the values in any list (they are sets);
/// - the case of action names (`S3:GetObject` is `s3:getobject`);
/// - a bare account id as an AWS principal and its `arn:<partition>:iam::<id>:root`.
pub fn same_document(a: &Value, b: &Value) -> bool {
    canonical(a, None) == canonical(b, None)
}

/// The canonical form of `v`; `key` is the member name it sits under.
fn canonical(v: &Value, key: Option<&str>) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&map[k], Some(k)));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(|i| canonical(i, key)).collect();
            items.sort_by_cached_key(Value::to_string);
            items.dedup();
            match items.len() {
                1 => items.pop().unwrap_or_default(),
                _ => Value::Array(items),
            }
        }
        Value::String(s) => Value::String(match key {
            Some("Action" | "NotAction") => s.to_ascii_lowercase(),
            Some("AWS") => root_to_account(s),
            _ => s.clone(),
        }),
        other => other.clone(),
    }
}

/// `arn:aws:iam::123456789012:root` (any partition) -> `123456789012`.
fn root_to_account(principal: &str) -> String {
    let parts: Vec<&str> = principal.split(':').collect();
    match parts.as_slice() {
        ["arn", _partition, "iam", "", account, "root"]
            if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) =>
        {
            account.to_string()
        }
        _ => principal.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_string_policy_is_parsed_and_sent_compact() {
        let p = Policy::parse(&json!("{ \"Version\" : \"2012-10-17\" }"), Service::Ssm).unwrap();
        assert_eq!(p.text(), r#"{"Version":"2012-10-17"}"#);
    }

    #[test]
    fn non_objects_and_bad_json_are_refused() {
        let refused = |v: Value| Policy::parse(&v, Service::Kinesis).unwrap_err();
        assert_eq!(refused(json!(["a"])), PolicyError::WrongType);
        assert_eq!(refused(json!("[1]")), PolicyError::NotAnObject);
        assert!(matches!(refused(json!("{oops")), PolicyError::NotJson(_)));
        assert!(refused(json!("{oops"))
            .to_string()
            .contains("not valid JSON"));
        assert!(refused(json!(["a"])).to_string().contains("JSON object"));
        assert_eq!(refused(json!(7)), PolicyError::WrongType);
    }

    #[test]
    fn size_limits_count_the_compact_text() {
        let big = json!({"Sid": "x".repeat(21_000)});
        let e = Policy::parse(&big, Service::DynamoDb).unwrap_err();
        assert!(
            matches!(e, PolicyError::TooLarge { limit: 20480, .. }),
            "{e}"
        );
        let e = e.to_string();
        assert!(e.contains("20480") && e.contains("dynamodb"), "{e}");
        assert!(Policy::parse(&json!({"Sid": "x".repeat(5_200)}), Service::XRay).is_err());
        assert!(Policy::parse(&big, Service::Kinesis).is_ok());
    }

    fn policy(v: Value) -> Policy {
        Policy::parse(&v, Service::Kinesis).unwrap()
    }

    fn statement(extra: Value) -> Value {
        let mut s = json!({"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": ["kinesis:GetRecords"], "Resource": "*"});
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"Version": "2012-10-17", "Statement": [s]})
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let p = policy(statement(json!({})));
        assert!(p.matches(
            r#"{ "Statement": [ {"Resource":"*","Action":["kinesis:GetRecords"],"Principal":{"AWS":"111122223333"},"Effect":"Allow"} ], "Version": "2012-10-17" }"#
        ));
    }

    #[test]
    fn a_single_value_equals_a_one_element_list() {
        let p = policy(statement(json!({"Action": ["kinesis:GetRecords"]})));
        assert!(p.matches(&statement(json!({"Action": "kinesis:GetRecords"})).to_string()));
        let p = policy(statement(json!({"Resource": "*"})));
        assert!(p.matches(&statement(json!({"Resource": ["*"]})).to_string()));
        // A statement object equals a one-statement list.
        let doc = statement(json!({}));
        let single = json!({"Version": "2012-10-17", "Statement": doc["Statement"][0]});
        assert!(policy(doc).matches(&single.to_string()));
    }

    #[test]
    fn the_order_of_statements_and_of_values_does_not_matter() {
        let a = json!({"Sid": "A", "Effect": "Allow", "Principal": "*", "Action": ["kinesis:GetRecords", "kinesis:DescribeStream"], "Resource": "*"});
        let b = json!({"Sid": "B", "Effect": "Deny", "Principal": "*", "Action": "kinesis:PutRecord", "Resource": "*"});
        let p = policy(json!({"Version": "2012-10-17", "Statement": [a.clone(), b.clone()]}));
        let mut a2 = a.clone();
        a2["Action"] = json!(["kinesis:DescribeStream", "kinesis:GetRecords"]);
        assert!(p.matches(&json!({"Version": "2012-10-17", "Statement": [b, a2]}).to_string()));
    }

    #[test]
    fn the_case_of_action_names_does_not_matter() {
        let p = policy(statement(json!({"Action": ["Kinesis:GetRecords"]})));
        assert!(p.matches(&statement(json!({"Action": ["kinesis:getrecords"]})).to_string()));
        // Resources are case-sensitive: they stay different.
        let p = policy(statement(
            json!({"Resource": "arn:aws:kinesis:us-east-1:111122223333:stream/A"}),
        ));
        assert!(!p.matches(
            &statement(json!({"Resource": "arn:aws:kinesis:us-east-1:111122223333:stream/a"}))
                .to_string()
        ));
    }

    #[test]
    fn a_bare_account_equals_its_root_arn() {
        let p = policy(statement(json!({"Principal": {"AWS": "111122223333"}})));
        assert!(p.matches(
            &statement(json!({"Principal": {"AWS": "arn:aws:iam::111122223333:root"}})).to_string()
        ));
        assert!(p.matches(
            &statement(json!({"Principal": {"AWS": ["arn:aws-cn:iam::111122223333:root"]}}))
                .to_string()
        ));
        // A role in the account is not the account.
        assert!(!p.matches(
            &statement(json!({"Principal": {"AWS": "arn:aws:iam::111122223333:role/r"}}))
                .to_string()
        ));
    }

    #[test]
    fn a_real_difference_is_still_a_difference() {
        let p = policy(statement(json!({})));
        assert!(!p.matches(&statement(json!({"Effect": "Deny"})).to_string()));
        assert!(!p.matches(
            &statement(json!({"Action": ["kinesis:GetRecords", "kinesis:PutRecord"]})).to_string()
        ));
        assert!(!p.matches("not json"));
    }
}
