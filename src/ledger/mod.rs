//! The ledger: who owns what on every target this function manages. It is the single
//! source of truth for ownership (docs/ownership.md); every change and every repair
//! reads it, and only [`crate::change`] writes owners' records.
//!
//! One item per target. Each owner has its own attributes (`o:<key>`, its record, and
//! `v:<key>`, the `change_version` that recorded it), so owners recording at once never
//! overwrite each other, and one `UpdateItem` both records a change and returns what
//! every other owner holds.
//!
//! Two stores behind one face: DynamoDB ([`dynamo`]) in production, and an in-memory
//! one ([`memory`]) for tests that mock the services.

mod dynamo;
mod memory;
mod record;
mod walk;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub use dynamo::DynamoLedger;
pub use memory::MemoryLedger;
pub use record::{Holding, NewRecord, Record, View};
pub use walk::{Counts, Walk, WalkRefused};

/// A writer older than this cannot still be in flight: Lambda's longest timeout is 15
/// minutes. Retired Sids and gone owners are kept at least this long.
pub const IN_FLIGHT_STALE: Duration = Duration::from_secs(16 * 60);

/// DynamoDB's item limit is 400 KB; a record that would take the item past this is
/// refused before any write.
pub const ITEM_LIMIT: usize = 380 * 1024;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The ledger could not be read or written: the request fails, naming the table.
#[derive(Clone, Debug, thiserror::Error)]
#[error("the ledger (DynamoDB table {table}) could not {operation}: {message}")]
pub struct LedgerError {
    pub table: String,
    pub operation: &'static str,
    pub message: String,
    /// The item would pass DynamoDB's size limit: refused, not retryable.
    pub too_large: bool,
}

/// What recording a change returned.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The item as it was just before this record (`None`: the target was new).
    pub before: Option<View>,
    /// The item right after it: `before` plus this owner's record.
    pub after: View,
    /// The `change_version` this record holds; settle and undo are conditional on it.
    pub version: u64,
}

/// The outcome of a settle: whether it applied, and the item as it now is.
#[derive(Clone, Debug)]
pub struct Settled {
    /// `false`: a newer change of this owner was recorded meanwhile; it owns the outcome.
    pub applied: bool,
    pub latest: Option<View>,
}

/// The two stores.
pub enum Ledger {
    Dynamo(DynamoLedger),
    Memory(MemoryLedger),
}

macro_rules! each {
    ($self:ident, $l:ident => $e:expr) => {
        match $self {
            Ledger::Dynamo($l) => $e,
            Ledger::Memory($l) => $e,
        }
    };
}

impl Ledger {
    pub fn table(&self) -> &str {
        each!(self, l => l.table())
    }

    /// The target's item (a consistent read).
    pub async fn get(&self, target_id: &str) -> Result<Option<View>, LedgerError> {
        each!(self, l => l.get(target_id).await)
    }

    /// Records `owner`'s new record (present or gone) and returns the item around it.
    /// A gone record for an owner the ledger does not hold returns `Ok(None)` unless
    /// `record.adopted` (a Delete of an owner recorded before the ledger knew it).
    pub async fn record(
        &self,
        target_id: &str,
        target_request: &Value,
        service_key: &str,
        owner: &str,
        record: &NewRecord,
    ) -> Result<Option<Recorded>, LedgerError> {
        each!(self, l => l.record(target_id, target_request, service_key, owner, record).await)
    }

    /// Marks Sids this owner placed before and no longer wants, so every writer removes
    /// them; bumps `change_version` so a writer that planned without them plans again.
    pub async fn retire(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        retired: &[String],
    ) -> Result<(), LedgerError> {
        each!(self, l => l.retire(target_id, owner, version, retired).await)
    }

    /// Puts a taken-over document on the owner's record (its Delete restores it).
    pub async fn set_prior(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        prior: &Value,
    ) -> Result<(), LedgerError> {
        each!(self, l => l.set_prior(target_id, owner, version, prior).await)
    }

    /// Undoes a refused or failed record: puts `previous` back (or removes the owner),
    /// only if no newer change of this owner was recorded since.
    pub async fn undo(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        previous: Option<&Record>,
    ) -> Result<(), LedgerError> {
        each!(self, l => l.undo(target_id, owner, version, previous).await)
    }

    /// Marks the owner's record settled (and records the SSM PolicyId it now has), if
    /// it is still the one at `version`; returns the latest item either way, which the
    /// executor compares with what it planned from (the fence).
    pub async fn settle(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        policy_id: Option<&str>,
    ) -> Result<Settled, LedgerError> {
        each!(self, l => l.settle(target_id, owner, version, policy_id).await)
    }

    /// Records the PolicyId of the one SSM policy holding every owner's statements, if
    /// the ledger still names `expected` (`None`: none yet). `false`: another writer
    /// recorded a different one first.
    pub async fn set_shared_policy_id(
        &self,
        target_id: &str,
        expected: Option<&str>,
        policy_id: Option<&str>,
    ) -> Result<bool, LedgerError> {
        each!(self, l => l.set_shared_policy_id(target_id, expected, policy_id).await)
    }

    /// A repair of an SSM whole policy made a new one: record its PolicyId for the owner.
    pub async fn set_owner_policy_id(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        policy_id: &str,
    ) -> Result<(), LedgerError> {
        each!(self, l => l.set_owner_policy_id(target_id, owner, version, policy_id).await)
    }

    /// Keeps the times of the target's recent repairs (loop detection).
    pub async fn note_repairs(&self, target_id: &str, times: &[u64]) -> Result<(), LedgerError> {
        each!(self, l => l.note_repairs(target_id, times).await)
    }

    /// Drops gone owners and retired Sids no writer can still act on, if nothing was
    /// recorded since `seen` (the item goes when no owner is left).
    pub async fn prune(&self, seen: &View, now: u64) -> Result<(), LedgerError> {
        each!(self, l => l.prune(seen, now).await)
    }

    /// One page of managed targets after `cursor`, and the cursor after it.
    pub async fn page(
        &self,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<View>, Option<String>), LedgerError> {
        each!(self, l => l.page(cursor, limit).await)
    }

    /// Starts a walk, unless another one holds an unexpired lease.
    pub async fn start_walk(
        &self,
        walk_id: &str,
        lease: Duration,
    ) -> Result<Result<Walk, WalkRefused>, LedgerError> {
        each!(self, l => l.start_walk(walk_id, lease).await)
    }

    /// Renews the lease of walk `walk_id` and returns its progress.
    pub async fn resume_walk(
        &self,
        walk_id: &str,
        lease: Duration,
    ) -> Result<Result<Walk, WalkRefused>, LedgerError> {
        each!(self, l => l.resume_walk(walk_id, lease).await)
    }

    /// Records the walk's progress.
    pub async fn checkpoint(&self, walk: &Walk, lease: Duration) -> Result<(), LedgerError> {
        each!(self, l => l.checkpoint(walk, lease).await)
    }

    /// Ends the walk and frees the lease.
    pub async fn finish_walk(&self, walk: &Walk) -> Result<(), LedgerError> {
        each!(self, l => l.finish_walk(walk).await)
    }
}
