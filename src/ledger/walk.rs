//! The reconcile walk's progress, kept in the ledger across invocations.

/// A reconcile walk's progress.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    pub walk_id: String,
    pub cursor: Option<String>,
    pub counts: Counts,
}

/// What a walk (or one repair) found. Every target with an owner is counted once as
/// checked; `drift` counts those whose live policy differed, `repaired` those written
/// back, `failed` those whose repair or read failed, `detected` drift reported without a
/// write (Detect mode, or a repair the guard or the loop limit stopped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub checked: u64,
    pub drift: u64,
    pub repaired: u64,
    pub failed: u64,
    pub detected: u64,
    pub loops_stopped: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.checked += other.checked;
        self.drift += other.drift;
        self.repaired += other.repaired;
        self.failed += other.failed;
        self.detected += other.detected;
        self.loops_stopped += other.loops_stopped;
    }
}

/// Why a walk could not start or go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalkRefused {
    /// Another walk holds the lease.
    Busy { walk_id: String },
    /// The continuation names a walk that is no longer the current one.
    NotCurrent,
}
