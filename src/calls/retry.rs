//! Application-level retries for errors the SDK does not retry: resources that are
//! not ready yet, IAM principals still propagating, SSM's ambiguous errors.
//!
//! The SDK already retries throttling, 5xx and network errors with its standard
//! backoff (configured in `main`); what reaches this loop after that gets a few more
//! rounds. Everything here stops at the budget's work deadline and says why.

use std::future::Future;
use std::time::Duration;

use tokio::time::{sleep, timeout_at, Instant};
use tracing::info;

use crate::calls::budget::Budget;
use crate::services::{ErrorKind, Landed, ServiceError};
use crate::settings::Settings;

/// Limits per kind of error, from [`Settings`].
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max_delay: Duration,
    pub not_found_grace: Duration,
    pub invalid_principal_grace: Duration,
    pub ambiguous_max_tries: u32,
    /// Rounds on top of the SDK's own attempts for throttling and 5xx.
    pub transient_max_tries: u32,
    /// A revision or hash changed under us: re-read and write again, a few times.
    pub conflict_max_tries: u32,
    /// Whether "not ready" is retried here (a read-modify-write re-reads instead).
    pub retry_not_ready: bool,
}

impl RetryPolicy {
    pub fn from_settings(s: &Settings) -> Self {
        RetryPolicy {
            base: s.retry_base,
            max_delay: s.retry_max_delay,
            not_found_grace: s.not_found_grace,
            invalid_principal_grace: s.invalid_principal_grace,
            ambiguous_max_tries: s.ssm_malformed_max_tries,
            transient_max_tries: 4,
            conflict_max_tries: 3,
            retry_not_ready: true,
        }
    }

    /// For one write of a read-modify-write: conflicts and "not ready" (Managed
    /// Prometheus reports a revision mismatch that way) go back to the caller, which
    /// reads and merges again.
    pub fn single_write(&self) -> RetryPolicy {
        RetryPolicy {
            conflict_max_tries: 1,
            retry_not_ready: false,
            ..self.clone()
        }
    }

    /// No retry of throttling or 5xx either: the caller reads again first.
    pub fn once(self) -> RetryPolicy {
        RetryPolicy {
            transient_max_tries: 1,
            ..self
        }
    }

    /// Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^(n-1))].
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// Whether a missing resource may still appear: only a Create expects a resource made
/// in the same deployment a moment ago.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotFound {
    MayAppear,
    Final,
}

/// A successful call and how many attempts it took.
#[derive(Clone, Debug)]
pub struct Attempted<T> {
    pub value: T,
    pub attempts: u32,
}

/// Why the calls did not succeed: the Reason to report (what was attempted, how
/// often, for how long, the last error), and whether any attempt may have landed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{reason}")]
pub struct RetryError {
    pub reason: String,
    pub last: Option<ServiceError>,
    /// `Maybe` once any attempt timed out, broke after sending, got a 5xx, or was
    /// still in flight when the budget ran out.
    pub landed: Landed,
    /// The budget ran out (rather than an error that retrying cannot fix).
    pub timed_out: bool,
}

/// Runs `op` until it succeeds, fails for good, or the budget runs out.
pub async fn with_retries<T, F, Fut>(
    what: &str,
    budget: &Budget,
    policy: &RetryPolicy,
    not_found: NotFound,
    mut op: F,
) -> Result<Attempted<T>, RetryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ServiceError>>,
{
    let started = Instant::now();
    let mut attempts = 0u32;
    let mut same_kind_tries = 0u32;
    let mut last_kind: Option<ErrorKind> = None;
    let mut landed = Landed::No;
    let mut last: Option<ServiceError> = None;
    loop {
        attempts += 1;
        let err = match timeout_at(budget.work_deadline(), op()).await {
            Ok(Ok(value)) => return Ok(Attempted { value, attempts }),
            Ok(Err(err)) => err,
            Err(_) => {
                return Err(RetryError {
                    reason: format!(
                        "{what}: the time budget ran out after {:.1}s and {attempts} attempts \
                            while a call was in flight{}",
                        started.elapsed().as_secs_f64(),
                        last.as_ref()
                            .map(|e| format!("; last error: {e}"))
                            .unwrap_or_default()
                    ),
                    last,
                    landed: Landed::Maybe,
                    timed_out: true,
                })
            }
        };
        if err.landed == Landed::Maybe {
            landed = Landed::Maybe;
        }
        same_kind_tries = if last_kind == Some(err.kind) {
            same_kind_tries + 1
        } else {
            1
        };
        last_kind = Some(err.kind);
        let elapsed = started.elapsed();
        let retryable = match err.kind {
            ErrorKind::NotReady => policy.retry_not_ready,
            ErrorKind::Throttled | ErrorKind::Transient => {
                same_kind_tries < policy.transient_max_tries
            }
            ErrorKind::ResourceNotFound => {
                not_found == NotFound::MayAppear && elapsed < policy.not_found_grace
            }
            ErrorKind::InvalidPrincipal => elapsed < policy.invalid_principal_grace,
            ErrorKind::Ambiguous => same_kind_tries < policy.ambiguous_max_tries,
            ErrorKind::Conflict => same_kind_tries < policy.conflict_max_tries,
            ErrorKind::PolicyNotFound
            | ErrorKind::ResourceDeleting
            | ErrorKind::NoEndpoint
            | ErrorKind::Terminal => false,
        };
        if !retryable {
            let reason = if attempts == 1 {
                format!("{what} failed: {err}")
            } else {
                format!(
                    "{what} failed after {attempts} attempts over {:.1}s: {err}",
                    elapsed.as_secs_f64()
                )
            };
            return Err(RetryError {
                reason,
                last: Some(err),
                landed,
                timed_out: false,
            });
        }
        let delay = policy.backoff(attempts);
        if Instant::now() + delay >= budget.work_deadline() {
            return Err(RetryError {
                reason: format!(
                    "{what}: gave up after {:.1}s and {attempts} attempts because the time \
                        budget ran out; last error: {err}",
                    elapsed.as_secs_f64()
                ),
                last: Some(err),
                landed,
                timed_out: true,
            });
        }
        info!(
            attempt = attempts,
            delay_ms = delay.as_millis() as u64,
            error_code = %err.code,
            error_kind = ?err.kind,
            "retrying {what}"
        );
        last = Some(err);
        sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            not_found_grace: Duration::from_millis(300),
            invalid_principal_grace: Duration::from_millis(300),
            ambiguous_max_tries: 3,
            transient_max_tries: 4,
            conflict_max_tries: 3,
            retry_not_ready: true,
        }
    }

    fn budget(secs: u64) -> Budget {
        Budget::new(Duration::from_secs(secs), None, Duration::ZERO)
    }

    fn err(kind: ErrorKind) -> ServiceError {
        ServiceError::new(kind, format!("{kind:?}Code"), "msg")
    }

    /// Fails with `kind` `n` times, then succeeds; counts the calls.
    async fn fail_then_succeed(
        kind: ErrorKind,
        n: u32,
        nf: NotFound,
        b: &Budget,
    ) -> (Result<Attempted<u32>, RetryError>, u32) {
        let calls = Cell::new(0u32);
        let r = with_retries("put", b, &policy(), nf, || {
            calls.set(calls.get() + 1);
            let c = calls.get();
            async move {
                if c <= n {
                    Err(err(kind))
                } else {
                    Ok(c)
                }
            }
        })
        .await;
        (r, calls.get())
    }

    #[tokio::test(start_paused = true)]
    async fn not_ready_is_retried_until_it_is() {
        let (r, calls) =
            fail_then_succeed(ErrorKind::NotReady, 6, NotFound::Final, &budget(60)).await;
        assert_eq!(r.unwrap().attempts, 7);
        assert_eq!(calls, 7);
    }

    #[tokio::test(start_paused = true)]
    async fn terminal_errors_stop_after_one_call() {
        let (r, calls) =
            fail_then_succeed(ErrorKind::Terminal, 5, NotFound::MayAppear, &budget(60)).await;
        assert_eq!(calls, 1);
        assert_eq!(r.unwrap_err().reason, "put failed: TerminalCode: msg");
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_after_the_sdk_gave_up_gets_a_few_rounds() {
        let (r, calls) =
            fail_then_succeed(ErrorKind::Throttled, 3, NotFound::Final, &budget(60)).await;
        assert!(r.is_ok());
        assert_eq!(calls, 4);
        let (r, calls) =
            fail_then_succeed(ErrorKind::Throttled, 10, NotFound::Final, &budget(60)).await;
        assert!(r.unwrap_err().reason.contains("after 4 attempts"));
        assert_eq!(calls, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn not_found_is_retried_only_on_create_and_within_grace() {
        let (r, calls) = fail_then_succeed(
            ErrorKind::ResourceNotFound,
            2,
            NotFound::MayAppear,
            &budget(60),
        )
        .await;
        assert!(r.is_ok());
        assert_eq!(calls, 3);
        let (_, calls) =
            fail_then_succeed(ErrorKind::ResourceNotFound, 2, NotFound::Final, &budget(60)).await;
        assert_eq!(calls, 1);
        let (r, _) = fail_then_succeed(
            ErrorKind::ResourceNotFound,
            1000,
            NotFound::MayAppear,
            &budget(60),
        )
        .await;
        assert!(r.unwrap_err().reason.contains("ResourceNotFoundCode"));
    }

    #[tokio::test(start_paused = true)]
    async fn ambiguous_errors_get_a_few_tries_only() {
        let (r, calls) =
            fail_then_succeed(ErrorKind::Ambiguous, 10, NotFound::Final, &budget(60)).await;
        assert!(r.is_err());
        assert_eq!(calls, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_ends_the_wait_with_the_last_error() {
        let b = budget(1);
        let (r, calls) =
            fail_then_succeed(ErrorKind::NotReady, u32::MAX, NotFound::Final, &b).await;
        let reason = r.unwrap_err().reason;
        assert!(
            reason.contains("time budget ran out") && reason.contains("NotReadyCode"),
            "{reason}"
        );
        assert!(calls > 5);
        assert!(Instant::now() <= b.work_deadline());
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_may_have_landed_is_remembered_past_later_errors() {
        let calls = Cell::new(0u32);
        let r: Result<Attempted<()>, _> =
            with_retries("put", &budget(60), &policy(), NotFound::Final, || {
                calls.set(calls.get() + 1);
                let c = calls.get();
                async move {
                    Err(if c == 1 {
                        ServiceError {
                            landed: Landed::Maybe,
                            ..err(ErrorKind::Transient)
                        }
                    } else {
                        err(ErrorKind::Terminal)
                    })
                }
            })
            .await;
        let e = r.unwrap_err();
        assert_eq!(e.landed, Landed::Maybe);
        assert_eq!(e.last.unwrap().kind, ErrorKind::Terminal);
        let (r, _) = fail_then_succeed(ErrorKind::Terminal, 1, NotFound::Final, &budget(60)).await;
        assert_eq!(r.unwrap_err().landed, Landed::No);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_in_flight_when_the_budget_ends_may_have_landed() {
        let r: Result<Attempted<()>, _> =
            with_retries("put", &budget(1), &policy(), NotFound::Final, || {
                std::future::pending()
            })
            .await;
        let e = r.unwrap_err();
        assert_eq!(e.landed, Landed::Maybe);
        assert!(
            e.timed_out && e.reason.contains("in flight"),
            "{}",
            e.reason
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_endpoint_and_deleting_are_not_retried() {
        for kind in [ErrorKind::NoEndpoint, ErrorKind::ResourceDeleting] {
            let (_, calls) = fail_then_succeed(kind, 5, NotFound::MayAppear, &budget(60)).await;
            assert_eq!(calls, 1, "{kind:?}");
        }
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = policy();
        for attempt in 1..30 {
            assert!(p.backoff(attempt) <= p.max_delay);
        }
        let samples: Vec<_> = (0..20).map(|_| p.backoff(5)).collect();
        assert!(
            samples.iter().any(|d| *d != samples[0]),
            "full jitter varies"
        );
    }
}
