//! What a write that did not take effect is known to have done to the service: the
//! one type every caller of the services reports a failed change with.

use crate::calls::propagation::WaitError;
use crate::calls::retry::RetryError;
use crate::services::{Landed, ServiceError};

/// A change that did not take effect, by what is known of the service's state.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ApplyError {
    /// Nothing was written: no call left the function, or the service refused it.
    #[error("{reason}")]
    NotApplied {
        reason: String,
        last: Option<ServiceError>,
        timed_out: bool,
    },
    /// A write may have reached the service (timed out, 5xx, connection broken after
    /// sending, in flight when time ran out): it may be in force.
    #[error("{reason}")]
    Unknown {
        reason: String,
        last: Option<ServiceError>,
    },
    /// The service accepted the write, but reads did not show it in time.
    #[error("{reason}")]
    NotVisible {
        reason: String,
        read_error: Option<ServiceError>,
    },
}

impl ApplyError {
    /// Whether the service may now hold what was written, so a rollback must clean up.
    pub fn may_have_written(&self) -> bool {
        !matches!(self, ApplyError::NotApplied { .. })
    }

    /// The budget ran out (rather than an error from the service).
    pub fn timed_out(&self) -> bool {
        match self {
            ApplyError::NotApplied { timed_out, .. } => *timed_out,
            ApplyError::Unknown { last, .. } => last.is_none(),
            ApplyError::NotVisible { read_error, .. } => read_error.is_none(),
        }
    }

    /// A write's retries ended: whether anything may have landed decides the kind.
    pub fn from_write(e: RetryError) -> Self {
        match e.landed {
            Landed::No => ApplyError::NotApplied {
                reason: e.reason,
                last: e.last,
                timed_out: e.timed_out,
            },
            Landed::Maybe => ApplyError::Unknown {
                reason: format!(
                    "the outcome of the write is unknown (it may have taken effect): {}",
                    e.reason
                ),
                last: if e.timed_out { None } else { e.last },
            },
        }
    }

    /// A read-back that ended before the change showed.
    pub fn from_wait(prefix: &str, e: WaitError) -> Self {
        ApplyError::NotVisible {
            reason: format!("{prefix}: {}", e.reason),
            read_error: e.read_error,
        }
    }
}
