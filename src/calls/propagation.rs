//! Read-after-write: poll the service until a change is visible, or the budget ends.
//!
//! Polls start fast and back off in proportion to the time already waited (about
//! 15 %), so the answer follows visibility closely: the overshoot after a change
//! becomes visible is at most one interval.

use std::future::Future;
use std::time::Duration;

use tokio::time::{sleep, timeout_at, Instant};
use tracing::info;

use crate::calls::budget::Budget;
use crate::services::{ErrorKind, LivePolicy, ServiceError, Version};
use crate::settings::Settings;

#[derive(Clone, Debug)]
pub struct PollPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl PollPolicy {
    pub fn from_settings(s: &Settings) -> Self {
        PollPolicy {
            initial: s.poll_initial,
            max: s.poll_max,
        }
    }

    /// The pause before the next read, given how long we have waited so far.
    pub fn interval(&self, waited: Duration) -> Duration {
        waited
            .mul_f64(0.15)
            .clamp(self.initial, self.max.max(self.initial))
    }
}

/// How a wait went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waited {
    pub reads: u32,
    pub waited: Duration,
    /// What the last read returned: the state that satisfied the wait.
    pub seen: Option<LivePolicy>,
}

fn describe(live: Option<&LivePolicy>) -> String {
    match live {
        None => "no policy".into(),
        Some(p) if p.version == Version::Unversioned => "a different document".into(),
        Some(p) => p.version.to_string(),
    }
}

/// A wait that ended before the change was visible.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{reason}")]
pub struct WaitError {
    pub reason: String,
    /// The read error that ended the wait, if one did (otherwise the budget ran out).
    pub read_error: Option<ServiceError>,
}

/// Reads until `visible` holds. Throttling, 5xx and not-ready answers only delay the
/// wait; any other read error ends it.
pub async fn wait_until<F, Fut>(
    what: &str,
    budget: &Budget,
    poll: &PollPolicy,
    mut read: F,
    visible: impl Fn(Option<&LivePolicy>) -> bool,
) -> Result<Waited, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<LivePolicy>, ServiceError>>,
{
    let started = Instant::now();
    let mut reads = 0u32;
    let mut last_seen = String::from("nothing yet");
    loop {
        reads += 1;
        match timeout_at(budget.work_deadline(), read()).await {
            Ok(Ok(live)) if visible(live.as_ref()) => {
                let waited = started.elapsed();
                info!(
                    reads,
                    waited_ms = waited.as_millis() as u64,
                    "{what} is visible"
                );
                return Ok(Waited {
                    reads,
                    waited,
                    seen: live,
                });
            }
            Ok(Ok(live)) => last_seen = describe(live.as_ref()),
            Ok(Err(e))
                if matches!(
                    e.kind,
                    ErrorKind::Throttled | ErrorKind::Transient | ErrorKind::NotReady
                ) =>
            {
                last_seen = format!("error {e}")
            }
            Ok(Err(e)) => {
                return Err(WaitError {
                    reason: format!("reading back {what} failed: {e}"),
                    read_error: Some(e),
                })
            }
            Err(_) => break,
        }
        let delay = poll.interval(started.elapsed());
        if Instant::now() + delay >= budget.work_deadline() {
            break;
        }
        info!(reads, delay_ms = delay.as_millis() as u64, last_seen = %last_seen, "waiting for {what}");
        sleep(delay).await;
    }
    Err(WaitError {
        reason: format!(
            "{what} was not visible after {:.1}s and {reads} reads: the time budget ran out; \
                last seen: {last_seen}",
            started.elapsed().as_secs_f64()
        ),
        read_error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn rev(id: &str) -> Option<LivePolicy> {
        Some(LivePolicy {
            document: "{}".into(),
            version: Version::Revision(id.into()),
        })
    }

    #[test]
    fn intervals_grow_with_the_wait_between_floor_and_cap() {
        let p = PollPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(3),
        };
        assert_eq!(p.interval(Duration::ZERO), Duration::from_millis(100));
        assert_eq!(
            p.interval(Duration::from_secs(10)),
            Duration::from_millis(1500)
        );
        assert_eq!(p.interval(Duration::from_secs(100)), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_through_old_revisions_and_not_found() {
        let calls = Cell::new(0);
        let b = Budget::new(Duration::from_secs(30), None, Duration::ZERO);
        let p = PollPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let w = wait_until(
            "policy",
            &b,
            &p,
            || {
                calls.set(calls.get() + 1);
                let c = calls.get();
                async move {
                    Ok(match c {
                        1 => rev("old"),
                        2 => None,
                        _ => rev("new"),
                    })
                }
            },
            |l| l.is_some_and(|l| l.version == Version::Revision("new".into())),
        )
        .await
        .unwrap();
        assert_eq!(w.reads, 3);
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_that_runs_out_says_what_was_last_seen() {
        let b = Budget::new(Duration::from_secs(2), None, Duration::ZERO);
        let p = PollPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let e = wait_until(
            "DynamoDB policy revision 2",
            &b,
            &p,
            || async { Ok(rev("1")) },
            |_| false,
        )
        .await
        .unwrap_err()
        .reason;
        assert!(
            e.contains("revision 1") && e.contains("time budget ran out"),
            "{e}"
        );
        assert!(Instant::now() <= b.work_deadline());
    }

    #[tokio::test(start_paused = true)]
    async fn a_terminal_read_error_ends_the_wait() {
        let b = Budget::new(Duration::from_secs(30), None, Duration::ZERO);
        let p = PollPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let e = wait_until(
            "policy",
            &b,
            &p,
            || async {
                Err(ServiceError::new(
                    ErrorKind::Terminal,
                    "AccessDeniedException",
                    "no",
                ))
            },
            |_| true,
        )
        .await
        .unwrap_err();
        assert!(e.reason.contains("AccessDeniedException"));
        assert!(e.read_error.unwrap().is_access_denied());
    }
}
