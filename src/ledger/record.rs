//! What the ledger holds: each owner's record and the target's item, as plain values.

use std::collections::BTreeMap;

use serde_json::Value;

/// What an owner wants (or, once gone, what it held).
#[derive(Clone, Debug, PartialEq)]
pub enum Holding {
    /// The whole policy document.
    Policy(Value),
    /// Statements in a shared policy, each with a unique Sid.
    Statements(Vec<Value>),
}

impl Holding {
    /// The Sids this holding places (none for a whole policy).
    pub fn sids(&self) -> Vec<String> {
        match self {
            Holding::Policy(_) => Vec::new(),
            Holding::Statements(list) => list
                .iter()
                .filter_map(|s| s.get("Sid").and_then(Value::as_str))
                .map(str::to_string)
                .collect(),
        }
    }

    pub fn is_policy(&self) -> bool {
        matches!(self, Holding::Policy(_))
    }

    pub fn to_json(&self) -> Value {
        match self {
            Holding::Policy(p) => serde_json::json!({ "Policy": p }),
            Holding::Statements(s) => serde_json::json!({ "Statements": s }),
        }
    }

    pub fn from_json(v: &Value) -> Option<Holding> {
        if let Some(p) = v.get("Policy") {
            return Some(Holding::Policy(p.clone()));
        }
        v.get("Statements")
            .and_then(Value::as_array)
            .map(|s| Holding::Statements(s.clone()))
    }
}

/// One owner's record.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub holding: Holding,
    /// `false` once the owner is gone: what it held is removed, never restored.
    pub present: bool,
    /// Sids it placed before and no longer wants.
    pub retired: Vec<String>,
    /// When it was last recorded (milliseconds since the epoch).
    pub changed_at: u64,
    /// The `change_version` that recorded it.
    pub version: u64,
    /// The change was carried out and confirmed.
    pub settled: bool,
    /// SSM, whole policy: the PolicyId of this owner's policy.
    pub policy_id: Option<String>,
    /// A document this owner took over: its Delete puts it back.
    pub prior: Option<Value>,
    /// Recorded by a Delete the ledger did not know (an owner from before the ledger):
    /// its whole policy is removed only if the live one is still what it gave.
    pub adopted: bool,
    /// Service options (ConfirmRemoveSelfResourceAccess, BypassPolicyLockoutCheck).
    pub options: Value,
    /// Read from an item written before owners had records of their own.
    pub legacy: bool,
}

impl Record {
    /// When the change that made this record was asked for: a put handed to the
    /// asynchronous queue carries its hand-off time (`AskedAt`); any other change, and
    /// every gone record (which keeps the options of the put before it), was asked when
    /// it was recorded.
    pub fn asked_at(&self) -> u64 {
        self.options
            .get("AskedAt")
            .and_then(Value::as_u64)
            .filter(|_| self.present)
            .unwrap_or(self.changed_at)
    }

    /// The Sids a writer must take out unless a present owner holds them.
    pub fn removable_sids(&self) -> Vec<String> {
        let mut out = self.retired.clone();
        if !self.present {
            out.extend(self.holding.sids());
        }
        out
    }
}

/// A record about to be written.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRecord {
    pub holding: Holding,
    pub present: bool,
    pub policy_id: Option<String>,
    pub prior: Option<Value>,
    pub adopted: bool,
    pub options: Value,
}

impl NewRecord {
    pub fn into_record(self, version: u64, now: u64) -> Record {
        Record {
            holding: self.holding,
            present: self.present,
            retired: Vec::new(),
            changed_at: now,
            version,
            settled: false,
            policy_id: self.policy_id,
            prior: self.prior,
            adopted: self.adopted,
            options: self.options,
            legacy: false,
        }
    }

    /// Roughly the bytes it takes in the item (its JSON text), for the size limit.
    pub fn size(&self) -> usize {
        self.holding.to_json().to_string().len()
            + self.prior.as_ref().map_or(0, |p| p.to_string().len())
            + self.options.to_string().len()
            + 200
    }
}

/// A target's item.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    pub target_id: String,
    pub service_key: Option<String>,
    /// The target's properties (ResourceArn, or PolicyName and Region).
    pub target_request: Option<Value>,
    pub change_version: u64,
    /// SSM, statements: the PolicyId of the one policy holding every owner's statements.
    pub shared_policy_id: Option<String>,
    pub owners: BTreeMap<String, Record>,
    /// When the target was last repaired (milliseconds since the epoch), newest last.
    pub repairs: Vec<u64>,
}

impl View {
    /// Present owners, oldest record first: the first to record a Sid (or the whole
    /// policy) holds it while a later, refused record is being undone.
    pub fn present(&self) -> Vec<(&String, &Record)> {
        let mut v: Vec<_> = self.owners.iter().filter(|(_, r)| r.present).collect();
        v.sort_by_key(|(k, r)| (r.version, k.as_str().to_string()));
        v
    }

    /// The present owner holding `sid`, other than `except`.
    pub fn holder_of(&self, sid: &str, except: &str) -> Option<&String> {
        self.present()
            .into_iter()
            .filter(|(k, _)| k.as_str() != except)
            .find(|(_, r)| r.holding.sids().iter().any(|s| s == sid))
            .map(|(k, _)| k)
    }

    /// Roughly the bytes the item takes.
    pub fn size(&self) -> usize {
        self.owners
            .iter()
            .map(|(k, r)| {
                k.len() * 2
                    + r.holding.to_json().to_string().len()
                    + r.prior.as_ref().map_or(0, |p| p.to_string().len())
                    + r.retired.iter().map(|s| s.len() + 3).sum::<usize>()
                    + r.options.to_string().len()
                    + 200
            })
            .sum::<usize>()
            + self
                .target_request
                .as_ref()
                .map_or(0, |t| t.to_string().len())
            + self.target_id.len()
            + 200
    }

    /// The item right after `owner` records `record` over `before` at the next
    /// `change_version`: what a record returns, computed the same way for every store
    /// and for a dry run. A gone record of a known owner keeps what it held.
    pub fn staged(
        before: Option<&View>,
        target_id: &str,
        target_request: &Value,
        service_key: &str,
        owner: &str,
        record: &NewRecord,
        now: u64,
    ) -> (View, u64) {
        let mut after = before.cloned().unwrap_or_else(|| View {
            target_id: target_id.to_string(),
            ..View::default()
        });
        let version = after.change_version + 1;
        after.change_version = version;
        after.service_key = Some(service_key.to_string());
        after.target_request = Some(target_request.clone());
        let mine = match (record.present, after.owners.get(owner)) {
            (false, Some(old)) => Record {
                present: false,
                settled: false,
                changed_at: now,
                version,
                ..old.clone()
            },
            _ => record.clone().into_record(version, now),
        };
        after.owners.insert(owner.to_string(), mine);
        (after, version)
    }

    /// Whether a gone owner or retired Sids are older than any writer can be in flight.
    pub fn prunable(&self, now: u64) -> bool {
        let old = now.saturating_sub(super::IN_FLIGHT_STALE.as_millis() as u64);
        self.owners
            .values()
            .any(|r| r.changed_at <= old && (!r.present || !r.retired.is_empty()) || r.legacy)
    }

    /// Whether anything is left to manage.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }
}
