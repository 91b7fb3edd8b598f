//! Shared policies: a resource owns only some statements (by `Sid`) in a target's
//! policy; statements owned by others or written by hand are kept, in their order.
//!
//! [`merge`] is the pure read-modify-write step: from the live document, the Sids this
//! owner held before and the statements it wants now, the document to write (or
//! `None` when nothing is left and the policy should go).

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::policy::same_document;

/// Statements a request owns, each with a unique, non-empty `Sid`.
#[derive(Clone, Debug, PartialEq)]
pub struct Statements(Vec<Value>);

impl Statements {
    /// Accepts a JSON array of statement objects, or a string holding one.
    pub fn parse(raw: &Value) -> Result<Statements, String> {
        let list = match raw {
            Value::Array(items) => items.clone(),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Array(items)) => items,
                Ok(_) => return Err("Statements must be a JSON array of statements".into()),
                Err(e) => return Err(format!("Statements is not valid JSON: {e}")),
            },
            _ => return Err("Statements must be a list of statements".into()),
        };
        if list.is_empty() {
            return Err("Statements is empty: give at least one statement".into());
        }
        let mut seen = HashSet::new();
        for (i, s) in list.iter().enumerate() {
            let Value::Object(map) = s else {
                return Err(format!("Statements[{i}] is not an object"));
            };
            let sid = match map.get("Sid") {
                Some(Value::String(sid)) if !sid.trim().is_empty() => sid,
                _ => {
                    return Err(format!(
                        "Statements[{i}] needs a Sid: it names what this resource owns"
                    ))
                }
            };
            if !seen.insert(sid.clone()) {
                return Err(format!("Statements: Sid {sid:?} appears twice"));
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

/// Why a merge cannot be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("Sid {sid:?} is already in the policy with a different statement, {}", owner.as_ref().map(|o| format!("owned by {o}")).unwrap_or_else(|| "written by hand or by another resource".into()))]
    Conflict { sid: String, owner: Option<String> },
    #[error("the merged policy would be {bytes} bytes as sent; {service} allows at most {limit}")]
    TooLarge {
        bytes: usize,
        limit: usize,
        service: String,
    },
    #[error("the live policy is not a JSON object with a Statement list: {0}")]
    Unreadable(String),
}

/// The result of a merge.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// The document to write; `None`: no statement is left, delete the policy.
    pub document: Option<Value>,
    /// Whether it differs from the live one (no write needed when it does not).
    pub changed: bool,
}

/// Merges `desired` (this owner's statements now; empty to remove them all) into
/// `live`, replacing the statements whose Sids this owner held before (`owned_before`)
/// and keeping every other statement where it was. `owner_of` names the owner of a
/// Sid that is not this resource's, for a conflict's message.
pub fn merge(
    live: Option<&str>,
    owned_before: &[String],
    desired: &[Value],
    owner_of: impl Fn(&str) -> Option<String>,
) -> Result<Merged, MergeError> {
    let live_doc: Option<Value> = match live {
        None => None,
        Some(text) => Some(
            serde_json::from_str::<Value>(text)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| MergeError::Unreadable(text.chars().take(100).collect()))?,
        ),
    };
    let mut doc = live_doc
        .clone()
        .unwrap_or_else(|| json!({"Version": "2012-10-17", "Statement": []}));
    let existing: Vec<Value> = match doc.get("Statement") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        Some(other) => return Err(MergeError::Unreadable(other.to_string())),
    };
    let mut placed: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    for statement in existing {
        let sid = sid_of(&statement);
        let wanted = sid.and_then(|s| desired.iter().find(|d| sid_of(d) == Some(s)));
        let ours_before = sid.is_some_and(|s| owned_before.iter().any(|o| o == s));
        match (wanted, ours_before) {
            (Some(d), _) if same_document(d, &statement) => {
                placed.insert(sid_of(d).unwrap_or_default());
                out.push(statement);
            }
            (Some(d), true) => {
                placed.insert(sid_of(d).unwrap_or_default());
                out.push(d.clone());
            }
            (Some(_), false) => {
                let sid = sid.unwrap_or_default().to_string();
                return Err(MergeError::Conflict {
                    owner: owner_of(&sid),
                    sid,
                });
            }
            (None, true) => {} // no longer ours: removed
            (None, false) => out.push(statement),
        }
    }
    for d in desired {
        if !placed.contains(sid_of(d).unwrap_or_default()) {
            out.push(d.clone());
        }
    }
    if out.is_empty() {
        return Ok(Merged {
            document: None,
            changed: live_doc.is_some(),
        });
    }
    doc["Statement"] = Value::Array(out);
    let changed = live_doc.is_none_or(|l| !same_document(&l, &doc));
    Ok(Merged {
        document: Some(doc),
        changed,
    })
}

/// Whether every statement of `desired` is in `live` as it should be.
pub fn all_present(live: Option<&str>, desired: &[Value]) -> bool {
    let Some(doc) = live.and_then(|t| serde_json::from_str::<Value>(t).ok()) else {
        return desired.is_empty();
    };
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    desired
        .iter()
        .all(|d| statements.iter().any(|s| same_document(d, s)))
}

/// Checks the merged document, as it will be sent, against the service's size limit.
pub fn check_size(text: &str, limit: Option<usize>, service: &str) -> Result<(), MergeError> {
    let bytes = text.len();
    match limit {
        Some(limit) if bytes > limit => Err(MergeError::TooLarge {
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

    fn st(sid: &str, action: &str) -> Value {
        json!({"Sid": sid, "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": action, "Resource": "*"})
    }

    fn doc(statements: &[Value]) -> String {
        json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }

    fn sids(m: &Merged) -> Vec<String> {
        m.document.as_ref().unwrap()["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap_or("").to_string())
            .collect()
    }

    fn nobody(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn add_to_no_policy_and_to_an_existing_one() {
        let m = merge(None, &[], &[st("A", "x:Get")], nobody).unwrap();
        assert!(m.changed);
        assert_eq!(sids(&m), ["A"]);
        assert_eq!(m.document.unwrap()["Version"], "2012-10-17");
        let live = doc(&[st("Hand", "x:List")]);
        let m = merge(Some(&live), &[], &[st("A", "x:Get")], nobody).unwrap();
        assert_eq!(sids(&m), ["Hand", "A"]);
    }

    #[test]
    fn replace_keeps_the_place_and_others_order() {
        let live = doc(&[st("B", "x:1"), st("A", "x:Get"), st("C", "x:2")]);
        let m = merge(Some(&live), &["A".into()], &[st("A", "x:Put")], nobody).unwrap();
        assert_eq!(sids(&m), ["B", "A", "C"]);
        assert_eq!(m.document.unwrap()["Statement"][1]["Action"], "x:Put");
    }

    #[test]
    fn remove_what_is_no_longer_listed_and_delete_when_nothing_is_left() {
        let live = doc(&[st("B", "x:1"), st("A", "x:Get"), st("A2", "x:2")]);
        let m = merge(
            Some(&live),
            &["A".into(), "A2".into()],
            &[st("A", "x:Get")],
            nobody,
        )
        .unwrap();
        assert_eq!(sids(&m), ["B", "A"]);
        let live = doc(&[st("A", "x:Get")]);
        let m = merge(Some(&live), &["A".into()], &[], nobody).unwrap();
        assert_eq!(
            m,
            Merged {
                document: None,
                changed: true
            }
        );
        let m = merge(None, &["A".into()], &[], nobody).unwrap();
        assert_eq!(
            m,
            Merged {
                document: None,
                changed: false
            }
        );
    }

    #[test]
    fn an_unchanged_merge_needs_no_write() {
        let live = doc(&[st("B", "x:1"), st("A", "x:Get")]);
        let m = merge(Some(&live), &[], &[st("A", "x:Get")], nobody).unwrap();
        assert!(
            !m.changed,
            "same statement already there (a repeated Create)"
        );
    }

    #[test]
    fn a_sid_owned_by_someone_else_is_a_conflict_naming_it() {
        let live = doc(&[st("A", "x:Other")]);
        let e = merge(Some(&live), &[], &[st("A", "x:Get")], |sid| {
            (sid == "A").then(|| "cloudformation:stack-2/Grant".to_string())
        })
        .unwrap_err();
        assert_eq!(
            e,
            MergeError::Conflict {
                sid: "A".into(),
                owner: Some("cloudformation:stack-2/Grant".into())
            }
        );
        assert!(
            e.to_string().contains("\"A\"") && e.to_string().contains("stack-2"),
            "{e}"
        );
        let e = merge(Some(&live), &[], &[st("A", "x:Get")], nobody).unwrap_err();
        assert!(e.to_string().contains("by hand"), "{e}");
    }

    #[test]
    fn the_merged_size_is_checked() {
        let big: Vec<Value> = (0..20)
            .map(|i| st(&format!("S{i}"), &"x:A".repeat(20)))
            .collect();
        let m = merge(None, &[], &big, nobody).unwrap();
        let e =
            check_size(&m.document.as_ref().unwrap().to_string(), Some(1024), "ssm").unwrap_err();
        match e {
            MergeError::TooLarge { bytes, limit, .. } => assert!(bytes > 1024 && limit == 1024),
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("bytes") && e.to_string().contains("1024"));
        assert!(check_size(&m.document.as_ref().unwrap().to_string(), None, "kinesis").is_ok());
    }

    #[test]
    fn a_single_statement_object_is_read_as_a_list() {
        let live = json!({"Version": "2012-10-17", "Statement": st("Hand", "x:1")}).to_string();
        let m = merge(Some(&live), &[], &[st("A", "x:Get")], nobody).unwrap();
        assert_eq!(sids(&m), ["Hand", "A"]);
        assert!(all_present(Some(&live), &[st("Hand", "x:1")]));
        assert!(!all_present(Some(&live), &[st("A", "x:Get")]));
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
            let e = Statements::parse(&bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
