//! The pure heart of the ownership protocol: from the ledger's view of a target and the
//! live policy, the document every writer must leave there (docs/ownership.md).
//!
//! No I/O: the executor, repairs, dry runs and the protocol model all call [`plan`],
//! so none of them can disagree about what a change may remove.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::ledger::{Holding, Record, View};
use crate::model::policy::same_document;

/// Which single policy document is being planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The target's policy (for SSM: the one policy shared by statement owners).
    Main,
    /// SSM, whole policy: this owner's own policy on the parameter.
    Owned(String),
}

/// What the live policy must become.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The document to leave; `None`: no policy at all.
    pub document: Option<Value>,
    /// Whether that differs from the live one (a write is needed).
    pub changed: bool,
}

/// Why no document can be planned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the live policy is not a JSON object with a Statement list: {0}")]
    Unreadable(String),
}

/// Whether the service keeps one policy per owner (SSM): whole-policy owners then have
/// their own [`Slot::Owned`], and never share [`Slot::Main`].
pub fn owned_slots(service_key: &str) -> bool {
    service_key == "ssm"
}

/// Plans `slot` of `view`'s target. `removing` is the owner whose own Delete this is:
/// its whole policy goes whatever it now says; for anyone else (a repair, a late
/// writer) a gone owner's whole policy goes only while the live one is still its own.
pub fn plan(
    view: &View,
    slot: &Slot,
    live: Option<&Value>,
    removing: Option<&str>,
) -> Result<Plan, PlanError> {
    let service = view.service_key.as_deref().unwrap_or_default();
    let document = match slot {
        Slot::Owned(owner) => match view.owners.get(owner) {
            Some(r) if r.present => whole(r),
            Some(r) => gone_whole(r, live, removing == Some(owner.as_str())),
            None => return Ok(unchanged(live)),
        },
        Slot::Main => {
            let present = view.present();
            let first_whole = present
                .iter()
                .find(|(_, r)| r.holding.is_policy() && !owned_slots(service));
            let statements_first = present
                .iter()
                .find(|(_, r)| !r.holding.is_policy())
                .map(|(_, r)| r.version);
            // A resource replaced in its own stack (a new logical id) hands over to its
            // successor: the latest of that stack's whole owners holds the policy.
            let first_version = first_whole.map(|(_, r)| r.version);
            let first_whole = first_whole.map(|(k, first)| {
                present
                    .iter()
                    .filter(|(o, r)| r.holding.is_policy() && same_stack(k, o))
                    .map(|(_, r)| *r)
                    .max_by_key(|r| r.version)
                    .unwrap_or(first)
            });
            match first_whole {
                Some(r) if statements_first.is_none_or(|v| first_version < Some(v)) => whole(r),
                _ if statements_first.is_some() => shared(view, live)?,
                _ => {
                    // No present owner: finish removing what gone owners held. Their
                    // Sids go first; then the last gone whole owner's policy goes (or
                    // its prior comes back) if that is what is left.
                    let left = shared(view, live)?;
                    let last_gone = view
                        .owners
                        .iter()
                        .filter(|(_, r)| !r.present && r.holding.is_policy())
                        .filter(|_| !owned_slots(service))
                        .max_by_key(|(_, r)| r.version);
                    match last_gone {
                        Some((k, r)) => gone_whole(r, left.as_ref(), removing == Some(k.as_str())),
                        None => left,
                    }
                }
            }
        }
    };
    let changed = match (&document, live) {
        (None, None) => false,
        (Some(d), Some(l)) => !same_document(d, l),
        _ => true,
    };
    Ok(Plan { document, changed })
}

fn unchanged(live: Option<&Value>) -> Plan {
    Plan {
        document: live.cloned(),
        changed: false,
    }
}

fn whole(r: &Record) -> Option<Value> {
    match &r.holding {
        Holding::Policy(p) => Some(p.clone()),
        Holding::Statements(_) => None,
    }
}

/// A gone whole-policy owner: its prior document comes back if it took one over;
/// otherwise the policy goes, but for anyone but the owner only while it is its own
/// (a policy written there since, by hand, is not this owner's to remove).
fn gone_whole(r: &Record, live: Option<&Value>, own_delete: bool) -> Option<Value> {
    if let Some(prior) = &r.prior {
        return Some(prior.clone());
    }
    let Holding::Policy(p) = &r.holding else {
        return live.cloned();
    };
    let its_own = live.is_some_and(|l| same_document(p, l));
    if (own_delete && !r.adopted) || its_own {
        None
    } else {
        live.cloned()
    }
}

fn statements_of(doc: &Value) -> Result<Vec<Value>, PlanError> {
    match doc.get("Statement") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(one @ Value::Object(_)) => Ok(vec![one.clone()]),
        Some(other) => Err(PlanError::Unreadable(other.to_string())),
    }
}

fn sid_of(s: &Value) -> Option<&str> {
    s.get("Sid").and_then(Value::as_str)
}

/// Statements mode: every present owner's statements (the first to record a Sid holds
/// it), minus what gone or retired owners placed that nobody holds now, with every
/// other statement (written by hand) kept in its place.
fn shared(view: &View, live: Option<&Value>) -> Result<Option<Value>, PlanError> {
    if let Some(l) = live {
        if !l.is_object() {
            return Err(PlanError::Unreadable(
                l.to_string().chars().take(100).collect(),
            ));
        }
    }
    let mut held: HashMap<String, Value> = HashMap::new();
    let mut holder: HashMap<String, &str> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for (k, r) in view.present() {
        if let Holding::Statements(list) = &r.holding {
            for s in list {
                if let Some(sid) = sid_of(s) {
                    match holder.get(sid) {
                        None => {
                            held.insert(sid.to_string(), s.clone());
                            holder.insert(sid.to_string(), k.as_str());
                            order.push(sid.to_string());
                        }
                        // Its stack's successor (a new logical id) takes the Sid over.
                        Some(h) if same_stack(h, k) => {
                            held.insert(sid.to_string(), s.clone());
                            holder.insert(sid.to_string(), k.as_str());
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }
    let removable: HashSet<String> = view
        .owners
        .values()
        .flat_map(Record::removable_sids)
        .filter(|sid| !held.contains_key(sid))
        .collect();
    // A gone whole-policy owner's statements go too (its policy was never shared); one
    // adopted from before the ledger only while the live policy is exactly its own.
    let gone_whole: Vec<Value> = view
        .owners
        .values()
        .filter(|r| !r.present && !r.adopted)
        .filter_map(|r| match &r.holding {
            Holding::Policy(p) => statements_of(p).ok(),
            Holding::Statements(_) => None,
        })
        .flatten()
        .collect();
    let existing = match live {
        Some(l) => statements_of(l)?,
        None => Vec::new(),
    };
    let mut placed = HashSet::new();
    let mut out = Vec::new();
    for s in existing {
        match sid_of(&s) {
            Some(sid) if held.contains_key(sid) => {
                if placed.insert(sid.to_string()) {
                    let mine = &held[sid];
                    out.push(if same_document(mine, &s) {
                        s.clone()
                    } else {
                        mine.clone()
                    });
                }
            }
            Some(sid) if removable.contains(sid) => {}
            _ if gone_whole.iter().any(|g| same_document(g, &s)) => {}
            _ => out.push(s),
        }
    }
    for sid in &order {
        if !placed.contains(sid) {
            out.push(held[sid].clone());
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    let mut doc = live
        .cloned()
        .unwrap_or_else(|| json!({"Version": "2012-10-17", "Statement": []}));
    doc["Statement"] = Value::Array(out);
    Ok(Some(doc))
}

/// Whether two owners are resources of one stack: a resource replaced under a new
/// logical id hands its holdings over to its successor instead of clashing with it.
pub fn same_stack(a: &str, b: &str) -> bool {
    use crate::model::owner::Owner;
    match (Owner::parse(a), Owner::parse(b)) {
        (Some(Owner::Stack { stack_id: x, .. }), Some(Owner::Stack { stack_id: y, .. })) => x == y,
        _ => false,
    }
}

/// Why a recorded change is refused: another owner holds what it wants. `None`: allowed.
pub fn refusal(view: &View, owner: &str) -> Option<String> {
    let mine = view.owners.get(owner).filter(|r| r.present)?;
    let service = view.service_key.as_deref().unwrap_or_default();
    // Only an owner that recorded first holds anything against this one, and never one
    // of its own stack in the same mode (a replacement under a new logical id takes
    // over from it; a switch between Policy and Statements is two updates).
    let others: Vec<(&String, &Record)> = view
        .present()
        .into_iter()
        .filter(|(k, r)| {
            k.as_str() != owner
                && r.version < mine.version
                && !(same_stack(k, owner) && r.holding.is_policy() == mine.holding.is_policy())
        })
        .collect();
    let name = |k: &str| {
        crate::model::owner::Owner::parse(k)
            .map(|o| o.to_string())
            .unwrap_or_else(|| k.to_string())
    };
    let target = &view.target_id;
    match &mine.holding {
        Holding::Policy(_) if owned_slots(service) => None,
        Holding::Policy(_) => others.first().map(|(k, r)| match r.holding {
            Holding::Policy(_) => format!(
                "the policy on {target} is already managed as a whole by {}: one owner per \
                 policy (give each owner Statements with its own Sids to share it)",
                name(k)
            ),
            Holding::Statements(_) => format!(
                "the policy on {target} is shared: statements in it are owned by {}; give \
                 Statements instead of Policy, or remove those first",
                others
                    .iter()
                    .map(|(k, _)| name(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
        Holding::Statements(_) => {
            if !owned_slots(service) {
                if let Some((k, _)) = others.iter().find(|(_, r)| r.holding.is_policy()) {
                    return Some(format!(
                        "the policy on {target} is managed as a whole by {}: Statements cannot \
                         share it; remove that resource's Policy first",
                        name(k)
                    ));
                }
            }
            mine.holding.sids().iter().find_map(|sid| {
                let holder = others
                    .iter()
                    .find(|(_, r)| r.holding.sids().iter().any(|s| s == sid));
                holder.map(|(k, _)| {
                    format!(
                        "Sid {sid:?} in the policy on {target} is held by {}: a Sid belongs to \
                         one owner, whatever its statement says; choose another Sid",
                        name(k)
                    )
                })
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::NewRecord;

    fn st(sid: &str, action: &str) -> Value {
        json!({"Sid": sid, "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": action, "Resource": "*"})
    }

    fn doc(statements: &[Value]) -> Value {
        json!({"Version": "2012-10-17", "Statement": statements})
    }

    fn rec(holding: Holding, present: bool, version: u64) -> Record {
        NewRecord {
            holding,
            present,
            policy_id: None,
            prior: None,
            adopted: false,
            options: Value::Null,
        }
        .into_record(version, 1)
    }

    fn view(owners: Vec<(&str, Record)>) -> View {
        View {
            target_id: "arn:aws:dynamodb:us-east-1:123456789012:table/t".into(),
            service_key: Some("dynamodb".into()),
            owners: owners
                .into_iter()
                .map(|(k, r)| (k.to_string(), r))
                .collect(),
            ..View::default()
        }
    }

    fn sids(p: &Plan) -> Vec<String> {
        p.document.as_ref().unwrap()["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| sid_of(s).unwrap_or("-").to_string())
            .collect()
    }

    #[test]
    fn owners_statements_merge_around_hand_written_ones_in_place() {
        let v = view(vec![
            (
                "a",
                rec(Holding::Statements(vec![st("A", "x:Get")]), true, 1),
            ),
            (
                "b",
                rec(Holding::Statements(vec![st("B", "x:Put")]), true, 2),
            ),
        ]);
        let live = doc(&[st("Hand", "x:List"), st("A", "x:Old")]);
        let p = plan(&v, &Slot::Main, Some(&live), None).unwrap();
        assert!(p.changed);
        assert_eq!(sids(&p), ["Hand", "A", "B"]);
        assert_eq!(p.document.unwrap()["Statement"][1]["Action"], "x:Get");
    }

    #[test]
    fn a_gone_owner_loses_its_sids_and_nobody_elses() {
        let mut gone = rec(Holding::Statements(vec![st("B", "x:Put")]), false, 3);
        gone.settled = true;
        let v = view(vec![
            (
                "a",
                rec(Holding::Statements(vec![st("A", "x:Get")]), true, 1),
            ),
            ("b", gone),
        ]);
        let live = doc(&[st("A", "x:Get"), st("B", "x:Put"), st("Hand", "x:List")]);
        let p = plan(&v, &Slot::Main, Some(&live), None).unwrap();
        assert_eq!(sids(&p), ["A", "Hand"]);
    }

    #[test]
    fn retired_sids_go_unless_a_present_owner_now_holds_them() {
        let mut a = rec(Holding::Statements(vec![st("A", "x:Get")]), true, 1);
        a.retired = vec!["Old".into(), "Moved".into()];
        let b = rec(Holding::Statements(vec![st("Moved", "x:New")]), true, 2);
        let v = view(vec![("a", a), ("b", b)]);
        let live = doc(&[st("Old", "x:1"), st("Moved", "x:2"), st("A", "x:Get")]);
        let p = plan(&v, &Slot::Main, Some(&live), None).unwrap();
        assert_eq!(sids(&p), ["Moved", "A"]);
        assert_eq!(p.document.unwrap()["Statement"][0]["Action"], "x:New");
    }

    #[test]
    fn the_first_to_record_a_sid_holds_it() {
        let v = view(vec![
            (
                "late",
                rec(Holding::Statements(vec![st("S", "x:Late")]), true, 5),
            ),
            (
                "early",
                rec(Holding::Statements(vec![st("S", "x:Early")]), true, 2),
            ),
        ]);
        let p = plan(&v, &Slot::Main, None, None).unwrap();
        assert_eq!(p.document.unwrap()["Statement"][0]["Action"], "x:Early");
        let why = refusal(&v, "late").unwrap();
        assert!(why.contains("\"S\"") && why.contains("early"), "{why}");
        assert_eq!(refusal(&v, "early"), None);
    }

    #[test]
    fn nothing_left_deletes_and_nothing_there_needs_no_write() {
        let v = view(vec![(
            "b",
            rec(Holding::Statements(vec![st("B", "x")]), false, 2),
        )]);
        let p = plan(&v, &Slot::Main, Some(&doc(&[st("B", "x")])), None).unwrap();
        assert_eq!(
            p,
            Plan {
                document: None,
                changed: true
            }
        );
        let p = plan(&v, &Slot::Main, None, None).unwrap();
        assert!(!p.changed);
    }

    #[test]
    fn a_whole_policy_goes_with_its_owner_but_a_hand_written_successor_stays() {
        let mine = doc(&[st("A", "x:Get")]);
        let v = view(vec![("w", rec(Holding::Policy(mine.clone()), false, 4))]);
        let other = doc(&[st("Z", "x:Other")]);
        // The owner's own Delete removes whatever is there.
        assert_eq!(
            plan(&v, &Slot::Main, Some(&other), Some("w"))
                .unwrap()
                .document,
            None
        );
        // A repair removes it only while it is still the owner's document.
        assert_eq!(
            plan(&v, &Slot::Main, Some(&mine), None).unwrap().document,
            None
        );
        let p = plan(&v, &Slot::Main, Some(&other), None).unwrap();
        assert!(!p.changed);
    }

    #[test]
    fn a_whole_owner_and_statement_owners_never_share_a_policy() {
        let v = view(vec![
            ("w", rec(Holding::Policy(doc(&[st("A", "x")])), true, 1)),
            ("s", rec(Holding::Statements(vec![st("B", "y")]), true, 2)),
        ]);
        assert!(refusal(&v, "s").unwrap().contains("managed as a whole"));
        let p = plan(&v, &Slot::Main, None, None).unwrap();
        assert_eq!(sids(&p), ["A"]);
    }

    #[test]
    fn statements_that_went_after_an_adopted_whole_owner_still_go() {
        let mut adopted = rec(Holding::Policy(doc(&[st("Old", "x")])), false, 2);
        adopted.adopted = true;
        let v = view(vec![
            ("w", adopted),
            (
                "n",
                rec(Holding::Statements(vec![st("N", "x:Get")]), false, 3),
            ),
        ]);
        let live = doc(&[st("Hand", "x:List"), st("N", "x:Get")]);
        let p = plan(&v, &Slot::Main, Some(&live), Some("n")).unwrap();
        assert_eq!(sids(&p), ["Hand"]);
    }

    #[test]
    fn a_taken_over_policy_comes_back_when_its_owner_goes() {
        let prior = doc(&[st("Hand", "x:List")]);
        let mut r = rec(Holding::Policy(doc(&[st("A", "x")])), false, 3);
        r.prior = Some(prior.clone());
        let v = view(vec![("w", r)]);
        let p = plan(&v, &Slot::Main, Some(&doc(&[st("A", "x")])), Some("w")).unwrap();
        assert_eq!(p.document, Some(prior));
    }

    #[test]
    fn a_resource_replaced_in_its_stack_hands_over_to_its_successor() {
        let stack = "cfn:arn:aws:cloudformation:us-east-1:123456789012:stack/app/1";
        let (old, new) = (format!("{stack}/Old"), format!("{stack}/New"));
        let v = view(vec![
            (
                old.as_str(),
                rec(Holding::Policy(doc(&[st("A", "x:Old")])), true, 1),
            ),
            (
                new.as_str(),
                rec(Holding::Policy(doc(&[st("A", "x:New")])), true, 2),
            ),
        ]);
        assert_eq!(refusal(&v, &new), None);
        let p = plan(&v, &Slot::Main, None, None).unwrap();
        assert_eq!(p.document.unwrap()["Statement"][0]["Action"], "x:New");
        // Another stack's owner is still refused.
        let other = "cfn:arn:aws:cloudformation:us-east-1:123456789012:stack/other/2/X";
        let v = view(vec![
            (
                old.as_str(),
                rec(Holding::Statements(vec![st("S", "x:Old")]), true, 1),
            ),
            (
                new.as_str(),
                rec(Holding::Statements(vec![st("S", "x:New")]), true, 2),
            ),
            (
                other,
                rec(Holding::Statements(vec![st("S", "x:Other")]), true, 3),
            ),
        ]);
        assert_eq!(refusal(&v, &new), None);
        assert!(refusal(&v, other).is_some());
        let p = plan(&v, &Slot::Main, None, None).unwrap();
        assert_eq!(p.document.unwrap()["Statement"][0]["Action"], "x:New");
    }

    #[test]
    fn ssm_whole_owners_each_have_their_own_policy() {
        let mut v = view(vec![
            ("a", rec(Holding::Policy(doc(&[st("A", "x")])), true, 1)),
            ("b", rec(Holding::Policy(doc(&[st("B", "y")])), true, 2)),
        ]);
        v.service_key = Some("ssm".into());
        assert_eq!(refusal(&v, "b"), None);
        let p = plan(&v, &Slot::Owned("b".into()), None, None).unwrap();
        assert_eq!(sids(&p), ["B"]);
    }
}
