//! A dry run's statement-level difference between the live policy and the document the
//! apply would write, by Sid. Its own file because the plan an operator reviews and the
//! `ResourcePolicyDrift` event both report it, in the same JSON shape.
//!
//! Statements are matched by Sid and compared by meaning
//! ([`crate::model::policy::same_document`]), so a service's rewrites (key order, one-element
//! lists, `:root` ARNs) are no change. A statement without a Sid has no name to match
//! by: it is kept when the next document holds the same statement, otherwise removed
//! (or, in the next document only, added). It is named `Statement[i]` by its place in
//! the live document, or in the next one when only there.

use serde::Serialize;
use serde_json::Value;

use super::{label, sid, statements};
use crate::model::policy::same_document;

/// Which statements a write adds, removes, changes or leaves alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDiff {
    /// In the next document only.
    pub added: Vec<String>,
    /// In the live document only.
    pub removed: Vec<String>,
    /// The same Sid with a different statement.
    pub changed: Vec<String>,
    /// An owned Sid whose statement stays as it is.
    pub unchanged: Vec<String>,
    /// Statements no owner holds (a Sid not in `owned_sids`, or no Sid) that stay as
    /// they are.
    pub kept_hand_written: Vec<String>,
}

impl PolicyDiff {
    /// True when the write would change any statement.
    pub fn changes(&self) -> bool {
        !(self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty())
    }

    /// The JSON a plan or an event carries: `Added`, `Removed`, `Changed`, `Unchanged`,
    /// `KeptHandWritten`, each a list of Sids.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The difference from `live` (none: no policy yet) to `next` (none: the policy is
/// deleted). `owned_sids` are the Sids the ledger holds for any owner of the target.
pub fn diff(live: Option<&Value>, next: Option<&Value>, owned_sids: &[String]) -> PolicyDiff {
    let live = live.map(statements).unwrap_or_default();
    let next = next.map(statements).unwrap_or_default();
    let mut taken = vec![false; next.len()];
    let mut out = PolicyDiff::default();
    for (i, before) in live.iter().enumerate() {
        let name = label(before, i);
        match sid(before) {
            Some(id) => {
                let found = (0..next.len()).find(|&j| !taken[j] && sid(next[j]) == Some(id));
                match found {
                    None => out.removed.push(name),
                    Some(j) => {
                        taken[j] = true;
                        if !same_document(before, next[j]) {
                            out.changed.push(name);
                        } else if owned_sids.iter().any(|o| o == id) {
                            out.unchanged.push(name);
                        } else {
                            out.kept_hand_written.push(name);
                        }
                    }
                }
            }
            None => {
                let found = (0..next.len()).find(|&j| {
                    !taken[j] && sid(next[j]).is_none() && same_document(before, next[j])
                });
                match found {
                    None => out.removed.push(name),
                    Some(j) => {
                        taken[j] = true;
                        out.kept_hand_written.push(name);
                    }
                }
            }
        }
    }
    for (j, after) in next.iter().enumerate() {
        if !taken[j] {
            out.added.push(label(after, j));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn st(sid: &str, action: &str) -> Value {
        json!({"Sid": sid, "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": action, "Resource": "*"})
    }

    fn doc(statements: &[Value]) -> Value {
        json!({"Version": "2012-10-17", "Statement": statements})
    }

    fn owned(sids: &[&str]) -> Vec<String> {
        sids.iter().map(|s| s.to_string()).collect()
    }

    fn hand() -> Value {
        json!({"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "kinesis:DescribeStream", "Resource": "*"})
    }

    #[test]
    fn a_shared_change_adds_removes_changes_and_keeps_the_hand_written() {
        let live = doc(&[
            hand(),
            st("Ops", "kinesis:ListShards"),
            st("A", "kinesis:GetRecords"),
            st("B", "kinesis:PutRecord"),
            st("D", "kinesis:DescribeStreamSummary"),
        ]);
        let next = doc(&[
            hand(),
            st("Ops", "kinesis:ListShards"),
            st("A", "kinesis:GetShardIterator"),
            st("D", "kinesis:DescribeStreamSummary"),
            st("C", "kinesis:PutRecords"),
        ]);
        let d = diff(Some(&live), Some(&next), &owned(&["A", "B", "C", "D"]));
        assert_eq!(
            d,
            PolicyDiff {
                added: owned(&["C"]),
                removed: owned(&["B"]),
                changed: owned(&["A"]),
                unchanged: owned(&["D"]),
                kept_hand_written: owned(&["Statement[0]", "Ops"]),
            }
        );
        assert!(d.changes());
    }

    #[test]
    fn statements_are_compared_by_meaning() {
        let live = json!({"Statement": {"Resource": "*", "Action": ["KINESIS:GetRecords"], "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Effect": "Allow", "Sid": "A"}});
        let next = doc(&[st("A", "kinesis:GetRecords")]);
        let d = diff(Some(&live), Some(&next), &owned(&["A"]));
        assert_eq!(d.unchanged, ["A"]);
        assert!(!d.changes());
    }

    #[test]
    fn no_live_policy_adds_everything_and_a_delete_removes_everything() {
        let next = doc(&[st("A", "kinesis:GetRecords"), hand()]);
        let created = diff(None, Some(&next), &owned(&["A"]));
        assert_eq!(created.added, ["A", "Statement[1]"]);
        assert!(created.removed.is_empty() && created.kept_hand_written.is_empty());
        let deleted = diff(Some(&next), None, &owned(&["A"]));
        assert_eq!(deleted.removed, ["A", "Statement[1]"]);
        assert!(deleted.added.is_empty());
        assert_eq!(diff(None, None, &[]), PolicyDiff::default());
    }

    #[test]
    fn a_sidless_statement_that_changes_is_removed_and_added() {
        let mut edited = hand();
        edited["Action"] = json!("kinesis:ListShards");
        let d = diff(
            Some(&doc(&[st("A", "kinesis:GetRecords"), hand()])),
            Some(&doc(&[edited, st("A", "kinesis:GetRecords")])),
            &owned(&["A"]),
        );
        assert_eq!(d.removed, ["Statement[1]"]);
        assert_eq!(d.added, ["Statement[0]"]);
        assert_eq!(d.unchanged, ["A"]);
    }

    #[test]
    fn the_json_has_stable_field_names() {
        let d = PolicyDiff {
            added: owned(&["C"]),
            ..PolicyDiff::default()
        };
        assert_eq!(
            d.to_value(),
            json!({"Added": ["C"], "Removed": [], "Changed": [], "Unchanged": [], "KeptHandWritten": []})
        );
    }
}
