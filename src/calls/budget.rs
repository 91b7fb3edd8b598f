//! The invocation's time budget: one deadline for the work, a later one for the answer.
//!
//! The Lambda deadline and, when given, CloudFormation's `ServiceTimeout` bound the
//! invocation. A reserve is kept back from the work so the response always has time
//! to go out; every retry loop and wait stops at [`Budget::work_deadline`].

use std::time::Duration;

use tokio::time::Instant;

/// Margin left before the hard end so the response PUT never races the freeze.
const FINAL_MARGIN: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug)]
pub struct Budget {
    started: Instant,
    work_deadline: Instant,
    respond_by: Instant,
}

impl Budget {
    /// `available` is the time left in the invocation; `service_timeout` (from the
    /// request) shortens it. The reserve is at most a quarter of what is available, so
    /// a short invocation still gets most of its time for work.
    pub fn new(
        available: Duration,
        service_timeout: Option<Duration>,
        reserve: Duration,
    ) -> Budget {
        let started = Instant::now();
        let available = service_timeout.map_or(available, |t| t.min(available));
        let reserve = reserve.min(available / 4);
        let margin = FINAL_MARGIN.min(available / 10);
        Budget {
            started,
            work_deadline: started + available.saturating_sub(reserve),
            respond_by: started + available.saturating_sub(margin),
        }
    }

    /// From Lambda's deadline (milliseconds since the Unix epoch).
    pub fn from_lambda_deadline(
        deadline_epoch_ms: u64,
        service_timeout: Option<Duration>,
        reserve: Duration,
    ) -> Budget {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let available = Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms));
        Budget::new(available, service_timeout, reserve)
    }

    /// When the work must stop, leaving the reserve for the response.
    pub fn work_deadline(&self) -> Instant {
        self.work_deadline
    }

    /// When the response must have been delivered.
    pub fn respond_by(&self) -> Instant {
        self.respond_by
    }

    /// A short extension into the reserve for best-effort cleanup after the work failed
    /// (a write that may have landed on a target CloudFormation will never delete):
    /// a quarter of the reserve, ending well before the answer is due.
    pub fn cleanup(&self) -> Budget {
        let start = self.work_deadline.max(Instant::now()).min(self.respond_by);
        Budget {
            started: self.started,
            work_deadline: start + (self.respond_by - start) / 4,
            respond_by: self.respond_by,
        }
    }

    /// Time left before the work must stop.
    pub fn remaining(&self) -> Duration {
        self.work_deadline.saturating_duration_since(Instant::now())
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reserve_is_kept_for_the_response() {
        let b = Budget::new(Duration::from_secs(60), None, Duration::from_secs(5));
        let work = b.work_deadline() - b.started;
        assert_eq!(work, Duration::from_secs(55));
        assert!(b.respond_by() > b.work_deadline());
        assert!(b.respond_by() - b.started <= Duration::from_secs(60));
    }

    #[tokio::test]
    async fn service_timeout_shortens_the_budget() {
        let b = Budget::new(
            Duration::from_secs(900),
            Some(Duration::from_secs(20)),
            Duration::from_secs(5),
        );
        assert_eq!(b.work_deadline() - b.started, Duration::from_secs(15));
        assert!(b.respond_by() - b.started <= Duration::from_secs(20));
    }

    #[tokio::test]
    async fn a_short_invocation_keeps_most_of_its_time_for_work() {
        let b = Budget::new(Duration::from_secs(4), None, Duration::from_secs(5));
        assert_eq!(b.work_deadline() - b.started, Duration::from_secs(3));
    }
}
