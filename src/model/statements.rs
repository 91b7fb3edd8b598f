//! Shared policies: a resource owns only some statements (by `Sid`) in a target's
//! policy. This is the validated list; what the policy becomes is
//! [`crate::change::plan`]'s to say.

use std::collections::HashSet;

use serde_json::Value;

/// Statements a request owns, each with a unique, non-empty `Sid`.
#[derive(Clone, Debug, PartialEq)]
pub struct Statements(Vec<Value>);

/// Why a `Statements` property is not a list of owned statements.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatementsError {
    #[error("Statements must be a JSON array of statements")]
    NotAnArray,
    #[error("Statements is not valid JSON: {0}")]
    NotJson(String),
    #[error("Statements must be a list of statements")]
    WrongType,
    #[error("Statements is empty: give at least one statement")]
    Empty,
    #[error("Statements[{0}] is not an object")]
    NotAnObject(usize),
    #[error("Statements[{0}] needs a Sid: it names what this resource owns")]
    NoSid(usize),
    #[error("Statements: Sid {0:?} appears twice")]
    Duplicate(String),
}

impl Statements {
    /// Accepts a JSON array of statement objects, or a string holding one.
    pub fn parse(raw: &Value) -> Result<Statements, StatementsError> {
        let list = match raw {
            Value::Array(items) => items.clone(),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Array(items)) => items,
                Ok(_) => return Err(StatementsError::NotAnArray),
                Err(e) => return Err(StatementsError::NotJson(e.to_string())),
            },
            _ => return Err(StatementsError::WrongType),
        };
        if list.is_empty() {
            return Err(StatementsError::Empty);
        }
        let mut seen = HashSet::new();
        for (i, s) in list.iter().enumerate() {
            let Value::Object(map) = s else {
                return Err(StatementsError::NotAnObject(i));
            };
            let sid = match map.get("Sid") {
                Some(Value::String(sid)) if !sid.trim().is_empty() => sid,
                _ => return Err(StatementsError::NoSid(i)),
            };
            if !seen.insert(sid.clone()) {
                return Err(StatementsError::Duplicate(sid.clone()));
            }
        }
        Ok(Statements(list))
    }

    pub fn items(&self) -> &[Value] {
        &self.0
    }

    pub fn sids(&self) -> Vec<String> {
        self.0
            .iter()
            .filter_map(sid_of)
            .map(str::to_string)
            .collect()
    }

    pub fn to_value(&self) -> Value {
        Value::Array(self.0.clone())
    }
}

fn sid_of(statement: &Value) -> Option<&str> {
    statement.get("Sid").and_then(Value::as_str)
}

/// A document over the service's size limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the policy would be {bytes} bytes as sent; {service} allows at most {limit}")]
pub struct TooLarge {
    pub bytes: usize,
    pub limit: usize,
    pub service: String,
}

/// Checks a planned document, as it will be sent, against the service's size limit.
pub fn check_size(text: &str, limit: Option<usize>, service: &str) -> Result<(), TooLarge> {
    let bytes = text.len();
    match limit {
        Some(limit) if bytes > limit => Err(TooLarge {
            bytes,
            limit,
            service: service.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn st(sid: &str, action: &str) -> Value {
        json!({"Sid": sid, "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": action, "Resource": "*"})
    }

    #[test]
    fn the_size_is_checked_as_sent() {
        let e = check_size(&"x".repeat(1025), Some(1024), "ssm").unwrap_err();
        assert_eq!((e.bytes, e.limit), (1025, 1024));
        assert!(e.to_string().contains("1025") && e.to_string().contains("1024"));
        assert!(check_size(&"x".repeat(5000), None, "kinesis").is_ok());
    }

    #[test]
    fn statements_are_validated() {
        assert!(Statements::parse(&json!([st("A", "x"), st("B", "y")])).is_ok());
        assert!(Statements::parse(&json!(json!([st("A", "x")]).to_string())).is_ok());
        for (bad, needle) in [
            (json!([]), "empty"),
            (json!([{"Effect": "Allow"}]), "needs a Sid"),
            (json!([st("A", "x"), st("A", "y")]), "twice"),
            (json!(["text"]), "not an object"),
            (json!({"Sid": "A"}), "list"),
        ] {
            let e = Statements::parse(&bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
