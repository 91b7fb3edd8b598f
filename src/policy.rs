//! A policy document: parsed once, sent compact, compared by meaning.

use serde_json::Value;

use crate::target::Service;

/// A JSON policy document as it will be sent: the parsed object and its compact text.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    value: Value,
    text: String,
}

impl Policy {
    /// Accepts a JSON object or a string holding one, and checks the service's size
    /// limit against the compact text that will actually be sent.
    pub fn parse(raw: &Value, service: Service) -> Result<Policy, String> {
        let value = match raw {
            Value::Object(_) => raw.clone(),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) => {
                    return Err("Policy must be a JSON object; the string holds other JSON".into())
                }
                Err(e) => return Err(format!("Policy is not valid JSON: {e}")),
            },
            _ => return Err("Policy must be a JSON object or a string holding one".into()),
        };
        let text = value.to_string();
        if let Some(limit) = service.policy_size_limit() {
            if text.len() > limit {
                return Err(format!(
                    "Policy is {} bytes as sent (compact JSON); {} allows at most {limit}",
                    text.len(),
                    service
                ));
            }
        }
        Ok(Policy { value, text })
    }

    /// The compact JSON text sent to the service.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True when `live` (a document read back from a service) means the same policy:
    /// JSON equality after IAM's equivalences, never string equality.
    pub fn matches(&self, live: &str) -> bool {
        serde_json::from_str::<Value>(live).is_ok_and(|v| same_document(&self.value, &v))
    }
}

/// Semantic equality of two policy documents: key order and whitespace never matter,
/// and a one-element array equals its single element (`"Action": "s3:Get"` is
/// `"Action": ["s3:Get"]`), as IAM reads them.
pub fn same_document(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_document(p, q))
        }
        (Value::Array(x), other) | (other, Value::Array(x)) if x.len() == 1 => {
            same_document(&x[0], other)
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_document(v, w)))
        }
        _ => a == b,
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
        assert!(Policy::parse(&json!(["a"]), Service::Kinesis)
            .unwrap_err()
            .contains("JSON object"));
        assert!(Policy::parse(&json!("[1]"), Service::Kinesis)
            .unwrap_err()
            .contains("JSON object"));
        assert!(Policy::parse(&json!("{oops"), Service::Kinesis)
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(Policy::parse(&json!(7), Service::Kinesis).is_err());
    }

    #[test]
    fn size_limits_count_the_compact_text() {
        let big = json!({"Sid": "x".repeat(21_000)});
        let e = Policy::parse(&big, Service::DynamoDb).unwrap_err();
        assert!(e.contains("20480") && e.contains("dynamodb"), "{e}");
        assert!(Policy::parse(&json!({"Sid": "x".repeat(5_200)}), Service::XRay).is_err());
        assert!(Policy::parse(&big, Service::Kinesis).is_ok());
    }

    #[test]
    fn documents_compare_by_meaning() {
        let p = Policy::parse(&json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:Get"]}]}), Service::Kinesis).unwrap();
        assert!(p.matches(
            r#"{"Statement":{"Action":"s3:Get","Effect":"Allow"}, "Version":"2012-10-17"}"#
        ));
        assert!(!p.matches(
            r#"{"Statement":[{"Effect":"Deny","Action":"s3:Get"}],"Version":"2012-10-17"}"#
        ));
        assert!(!p.matches("not json"));
    }
}
