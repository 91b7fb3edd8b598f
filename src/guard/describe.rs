//! What a policy holds, in one line, for the takeover refusal: a Create that would put
//! over a policy the ledger does not attribute names what is there, so the person
//! reading the Reason can tell a hand-written policy from another tool's.

use serde_json::Value;

use super::{label, statements};

/// How many Sids are named before "and N more".
const NAMED: usize = 10;

/// `a policy of 812 bytes with 3 statements (Sids: A, B, Statement[2])`. The size is
/// of `document` as given; a statement without a Sid is named by its place.
pub fn describe(document: &str) -> String {
    let bytes = document.len();
    let Ok(value) = serde_json::from_str::<Value>(document) else {
        return format!("a document of {bytes} bytes that is not valid JSON");
    };
    let statements = statements(&value);
    let count = match statements.len() {
        0 => return format!("a policy of {bytes} bytes with no statements"),
        1 => "1 statement".to_string(),
        n => format!("{n} statements"),
    };
    let names: Vec<String> = statements
        .iter()
        .take(NAMED)
        .enumerate()
        .map(|(i, s)| label(s, i))
        .collect();
    let mut list = names.join(", ");
    if statements.len() > NAMED {
        list.push_str(&format!(" and {} more", statements.len() - NAMED));
    }
    format!("a policy of {bytes} bytes with {count} (Sids: {list})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_size_count_and_sids_with_places_for_the_sidless() {
        let doc = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "A", "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "kinesis:*", "Resource": "*"},
            {"Sid": "B", "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "kinesis:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": "*", "Action": "kinesis:*", "Resource": "*"}
        ]})
        .to_string();
        assert_eq!(
            describe(&doc),
            format!(
                "a policy of {} bytes with 3 statements (Sids: A, B, Statement[2])",
                doc.len()
            )
        );
    }

    #[test]
    fn one_statement_given_as_an_object() {
        let doc = r#"{"Statement": {"Sid": "Only", "Effect": "Allow"}}"#;
        assert_eq!(
            describe(doc),
            format!(
                "a policy of {} bytes with 1 statement (Sids: Only)",
                doc.len()
            )
        );
    }

    #[test]
    fn more_than_ten_sids_are_counted_not_listed() {
        let statements: Vec<Value> = (0..13).map(|i| json!({"Sid": format!("S{i}")})).collect();
        let doc = json!({ "Statement": statements }).to_string();
        assert_eq!(
            describe(&doc),
            format!(
                "a policy of {} bytes with 13 statements (Sids: S0, S1, S2, S3, S4, S5, S6, S7, S8, S9 and 3 more)",
                doc.len()
            )
        );
    }

    #[test]
    fn empty_and_unreadable_documents() {
        assert_eq!(
            describe(r#"{"Version":"2012-10-17"}"#),
            "a policy of 24 bytes with no statements"
        );
        assert_eq!(
            describe("{oops"),
            "a document of 5 bytes that is not valid JSON"
        );
    }
}
