//! What arrived: a CloudFormation custom resource request, an EventBridge event, or
//! something this function does not handle (answered with an error naming it).
//!
//! The raw text is decoded here rather than by the runtime, so an event the strict
//! JSON decoder rejects (a lone UTF-16 surrogate escape, say) can still be answered
//! FAILED at its ResponseURL instead of leaving CloudFormation waiting.

use serde_json::Value;

#[derive(Debug)]
pub enum Inbound {
    /// `defect`: why the event is invalid although its envelope could be read.
    CloudFormation {
        event: Value,
        defect: Option<String>,
    },
    EventBridge(Value),
    Unrecognised(String),
}

pub fn classify(raw: &str) -> Inbound {
    let (value, defect) = match serde_json::from_str::<Value>(raw) {
        Ok(v) => (v, None),
        Err(strict) => match serde_json::from_str::<Value>(&replace_lone_surrogates(raw)) {
            Ok(v) => (
                v,
                Some(format!(
                    "the event holds a string escape that is not valid Unicode \
                (a lone UTF-16 surrogate such as \\ud800): {strict}"
                )),
            ),
            Err(_) => {
                return Inbound::Unrecognised(format!("the event is not valid JSON: {strict}"))
            }
        },
    };
    let Value::Object(map) = &value else {
        return Inbound::Unrecognised(format!(
            "expected a JSON object, received {}",
            short(&value)
        ));
    };
    if ["ResponseURL", "RequestType", "StackId"]
        .iter()
        .any(|k| map.contains_key(*k))
    {
        return Inbound::CloudFormation {
            event: value,
            defect,
        };
    }
    if map.contains_key("detail-type") && defect.is_none() {
        return Inbound::EventBridge(value);
    }
    if map.is_empty() {
        return Inbound::Unrecognised("received an empty event".into());
    }
    let keys: Vec<&str> = map.keys().map(String::as_str).take(10).collect();
    Inbound::Unrecognised(format!(
        "expected a CloudFormation custom resource request or an EventBridge event; received an \
            object with keys {keys:?}"
    ))
}

fn short(v: &Value) -> String {
    v.to_string().chars().take(100).collect()
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let s = std::str::from_utf8(b.get(at..at + 4)?).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// Replaces `\uD800`-`\uDFFF` escapes that are not a proper surrogate pair with
/// `\uFFFD`, leaving everything else byte for byte.
fn replace_lone_surrogates(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() && b[i + 1].is_ascii() {
            if b[i + 1] == b'u' {
                if let Some(cp) = hex4(b, i + 2) {
                    let low_follows = b.get(i + 6) == Some(&b'\\')
                        && b.get(i + 7) == Some(&b'u')
                        && hex4(b, i + 8).is_some_and(|lo| (0xDC00..0xE000).contains(&lo));
                    if (0xD800..0xDC00).contains(&cp) && low_follows {
                        out.push_str(&s[i..i + 12]);
                        i += 12;
                        continue;
                    }
                    if (0xD800..0xE000).contains(&cp) {
                        out.push_str("\\uFFFD");
                        i += 6;
                        continue;
                    }
                }
            }
            out.push_str(&s[i..i + 2]);
            i += 2;
            continue;
        }
        let ch = s[i..].chars().next().unwrap_or('\u{FFFD}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudformation_and_eventbridge_are_told_apart() {
        assert!(matches!(
            classify(r#"{"RequestType":"Create","ResponseURL":"x"}"#),
            Inbound::CloudFormation { defect: None, .. }
        ));
        assert!(matches!(
            classify(r#"{"detail-type":"PutResourcePolicy","detail":{}}"#),
            Inbound::EventBridge(_)
        ));
    }

    #[test]
    fn a_lone_surrogate_still_yields_the_envelope_and_a_defect() {
        let raw = r#"{"ResponseURL":"https://x.s3.amazonaws.com/r","RequestType":"Create","ResourceProperties":{"Policy":"\ud800 and \\ud800 and \ud83d\ude00"}}"#;
        match classify(raw) {
            Inbound::CloudFormation {
                event,
                defect: Some(d),
            } => {
                assert_eq!(event["ResponseURL"], "https://x.s3.amazonaws.com/r");
                assert!(d.contains("surrogate"), "{d}");
                assert_eq!(
                    event["ResourceProperties"]["Policy"],
                    "\u{FFFD} and \\ud800 and 😀"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn everything_else_is_named() {
        let Inbound::Unrecognised(m) = classify("{}") else {
            panic!()
        };
        assert!(m.contains("empty"));
        let Inbound::Unrecognised(m) = classify(r#"{"hello":1}"#) else {
            panic!()
        };
        assert!(m.contains("hello"));
        let Inbound::Unrecognised(m) = classify("[1,2]") else {
            panic!()
        };
        assert!(m.contains("[1,2]"));
        let Inbound::Unrecognised(m) = classify("{not json") else {
            panic!()
        };
        assert!(m.contains("not valid JSON"));
    }
}
