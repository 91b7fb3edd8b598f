//! The ledger in memory, with the same semantics as the DynamoDB one: for tests whose
//! services are mocked, and for the protocol's unit tests. Never used in production.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::record::{NewRecord, Record, View};
use super::walk::{Walk, WalkRefused};
use super::{now_ms, LedgerError, Recorded, Settled, IN_FLIGHT_STALE};

#[derive(Default)]
pub struct MemoryLedger {
    items: Mutex<BTreeMap<String, View>>,
    walk: Mutex<Option<(Walk, u64)>>,
    /// Fails every call with this message (an unreachable ledger), when set.
    pub fail_with: Mutex<Option<String>>,
}

impl MemoryLedger {
    pub fn table(&self) -> &str {
        "memory"
    }

    fn check(&self, operation: &'static str) -> Result<(), LedgerError> {
        match self.fail_with.lock().unwrap().clone() {
            Some(message) => Err(LedgerError {
                table: "memory".into(),
                operation,
                message,
                too_large: false,
            }),
            None => Ok(()),
        }
    }

    /// Every item, for tests.
    pub fn snapshot(&self) -> BTreeMap<String, View> {
        self.items.lock().unwrap().clone()
    }

    pub async fn get(&self, target_id: &str) -> Result<Option<View>, LedgerError> {
        self.check("read the target's owners")?;
        Ok(self.items.lock().unwrap().get(target_id).cloned())
    }

    pub async fn record(
        &self,
        target_id: &str,
        target_request: &Value,
        service_key: &str,
        owner: &str,
        record: &NewRecord,
    ) -> Result<Option<Recorded>, LedgerError> {
        self.check("record the change")?;
        let mut items = self.items.lock().unwrap();
        let before = items.get(target_id).cloned();
        let known = before
            .as_ref()
            .is_some_and(|b| b.owners.contains_key(owner));
        if !record.present && !record.adopted && !known {
            return Ok(None);
        }
        let (after, version) = View::staged(
            before.as_ref(),
            target_id,
            target_request,
            service_key,
            owner,
            record,
            now_ms(),
        );
        items.insert(target_id.to_string(), after.clone());
        Ok(Some(Recorded {
            before,
            after,
            version,
        }))
    }

    /// Puts a taken-over document on the owner's record, if it is still the one at
    /// `version`.
    pub async fn set_prior(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        prior: &Value,
    ) -> Result<(), LedgerError> {
        self.check("record the taken-over policy")?;
        self.with_owner(target_id, owner, version, |item| {
            if let Some(r) = item.owners.get_mut(owner) {
                r.prior = Some(prior.clone());
            }
        });
        Ok(())
    }

    fn with_owner<T>(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        f: impl FnOnce(&mut View) -> T,
    ) -> Option<T> {
        let mut items = self.items.lock().unwrap();
        let item = items.get_mut(target_id)?;
        if item.owners.get(owner).map(|r| r.version) != Some(version) {
            return None;
        }
        Some(f(item))
    }

    pub async fn retire(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        retired: &[String],
    ) -> Result<(), LedgerError> {
        self.check("record the retired statements")?;
        self.with_owner(target_id, owner, version, |item| {
            item.change_version += 1;
            if let Some(r) = item.owners.get_mut(owner) {
                r.retired = retired.to_vec();
                r.changed_at = now_ms();
            }
        });
        Ok(())
    }

    pub async fn undo(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        previous: Option<&Record>,
    ) -> Result<(), LedgerError> {
        self.check("undo the refused change")?;
        self.with_owner(target_id, owner, version, |item| {
            item.change_version += 1;
            match previous {
                Some(p) => item.owners.insert(owner.to_string(), p.clone()),
                None => item.owners.remove(owner),
            };
        });
        Ok(())
    }

    pub async fn settle(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        policy_id: Option<&str>,
    ) -> Result<Settled, LedgerError> {
        self.check("settle the change")?;
        let applied = self
            .with_owner(target_id, owner, version, |item| {
                if let Some(r) = item.owners.get_mut(owner) {
                    r.settled = true;
                    if let Some(id) = policy_id {
                        r.policy_id = Some(id.to_string());
                    }
                }
            })
            .is_some();
        Ok(Settled {
            applied,
            latest: self.items.lock().unwrap().get(target_id).cloned(),
        })
    }

    pub async fn set_shared_policy_id(
        &self,
        target_id: &str,
        expected: Option<&str>,
        policy_id: Option<&str>,
    ) -> Result<bool, LedgerError> {
        self.check("record the shared SSM policy's id")?;
        let mut items = self.items.lock().unwrap();
        let Some(item) = items.get_mut(target_id) else {
            return Ok(false);
        };
        if item.shared_policy_id.as_deref() != expected {
            return Ok(false);
        }
        item.shared_policy_id = policy_id.map(str::to_string);
        Ok(true)
    }

    pub async fn set_owner_policy_id(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        policy_id: &str,
    ) -> Result<(), LedgerError> {
        self.check("record the repaired SSM policy's id")?;
        self.with_owner(target_id, owner, version, |item| {
            if let Some(r) = item.owners.get_mut(owner) {
                r.policy_id = Some(policy_id.to_string());
            }
        });
        Ok(())
    }

    pub async fn note_repairs(&self, target_id: &str, times: &[u64]) -> Result<(), LedgerError> {
        self.check("record the repair")?;
        if let Some(item) = self.items.lock().unwrap().get_mut(target_id) {
            item.repairs = times.to_vec();
        }
        Ok(())
    }

    pub async fn prune(&self, seen: &View, now: u64) -> Result<(), LedgerError> {
        self.check("prune the target's owners")?;
        let old = now.saturating_sub(IN_FLIGHT_STALE.as_millis() as u64);
        let mut items = self.items.lock().unwrap();
        let Some(item) = items.get_mut(&seen.target_id) else {
            return Ok(());
        };
        if item.change_version != seen.change_version {
            return Ok(());
        }
        item.owners.retain(|_, r| r.present || r.changed_at > old);
        for r in item.owners.values_mut() {
            if r.changed_at <= old {
                r.retired.clear();
            }
        }
        if item.owners.is_empty() {
            items.remove(&seen.target_id);
        }
        Ok(())
    }

    pub async fn page(
        &self,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<View>, Option<String>), LedgerError> {
        self.check("list the managed targets")?;
        let items = self.items.lock().unwrap();
        let page: Vec<View> = items
            .iter()
            .filter(|(k, _)| cursor.is_none_or(|c| k.as_str() > c))
            .take(limit.max(1) as usize)
            .map(|(_, v)| v.clone())
            .collect();
        let next = (page.len() == limit.max(1) as usize)
            .then(|| page.last().map(|v| v.target_id.clone()))
            .flatten();
        Ok((page, next))
    }

    pub async fn start_walk(
        &self,
        walk_id: &str,
        lease: Duration,
    ) -> Result<Result<Walk, WalkRefused>, LedgerError> {
        self.check("start the reconcile walk")?;
        let mut w = self.walk.lock().unwrap();
        let now = now_ms();
        if let Some((running, until)) = w.as_ref() {
            if *until >= now {
                return Ok(Err(WalkRefused::Busy {
                    walk_id: running.walk_id.clone(),
                }));
            }
        }
        let walk = Walk {
            walk_id: walk_id.to_string(),
            ..Walk::default()
        };
        *w = Some((walk.clone(), now + lease.as_millis() as u64));
        Ok(Ok(walk))
    }

    pub async fn resume_walk(
        &self,
        walk_id: &str,
        lease: Duration,
    ) -> Result<Result<Walk, WalkRefused>, LedgerError> {
        self.check("resume the reconcile walk")?;
        let mut w = self.walk.lock().unwrap();
        match w.as_mut() {
            Some((walk, until)) if walk.walk_id == walk_id => {
                *until = now_ms() + lease.as_millis() as u64;
                Ok(Ok(walk.clone()))
            }
            _ => Ok(Err(WalkRefused::NotCurrent)),
        }
    }

    pub async fn checkpoint(&self, walk: &Walk, lease: Duration) -> Result<(), LedgerError> {
        self.check("record the walk's progress")?;
        *self.walk.lock().unwrap() = Some((walk.clone(), now_ms() + lease.as_millis() as u64));
        Ok(())
    }

    pub async fn finish_walk(&self, _walk: &Walk) -> Result<(), LedgerError> {
        self.check("finish the reconcile walk")?;
        *self.walk.lock().unwrap() = None;
        Ok(())
    }
}
