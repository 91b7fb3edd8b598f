//! Environment variables -> typed settings, each with its default.
//!
//! Read once at cold start. A malformed value is a startup error naming the
//! variable, so a typo in the template never silently becomes a default.

use std::time::Duration;

/// Everything an operator can tune. Defaults suit a 900 s Lambda timeout.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Time kept back from the deadline for sending the CloudFormation response.
    pub response_reserve: Duration,
    /// Hosts (or host:port) a ResponseURL may point at besides AWS S3.
    pub response_url_allowed_hosts: Vec<String>,
    /// SDK-level attempts for throttling, 5xx and network errors (standard retry mode).
    pub sdk_max_attempts: u32,
    pub sdk_attempt_timeout: Duration,
    pub sdk_connect_timeout: Duration,
    /// Application-level backoff for "not ready yet" errors: full jitter between 0 and
    /// min(max_delay, base * 2^attempt).
    pub retry_base: Duration,
    pub retry_max_delay: Duration,
    /// How long ResourceNotFoundException on Create counts as "made a moment ago".
    pub not_found_grace: Duration,
    /// How long DynamoDB's "invalid principal" counts as IAM propagation.
    pub invalid_principal_grace: Duration,
    /// Tries for SSM's ambiguous MalformedResourcePolicyDocumentException.
    pub ssm_malformed_max_tries: u32,
    /// After a write whose outcome is unknown (a timeout, a reset), how long it may
    /// still reach the service: a writer that would finish with its revision unmoved
    /// waits this long and reads again (docs/ownership.md).
    pub late_write_window: Duration,
    /// Read-back polling after a write: the first interval and the cap.
    pub poll_initial: Duration,
    pub poll_max: Duration,
    /// The desired-state ledger's DynamoDB table; `None`: no ledger, no drift repair.
    pub ledger_table: Option<String>,
    /// The function's own role: CloudTrail events it caused are not drift.
    pub function_role_arn: Option<String>,
    /// Accounts whose apply requests are accepted; `None`: any that reaches the function
    /// (the event bus's policy is then the only gate).
    pub apply_allowed_accounts: Option<Vec<String>>,
    /// Reads (and repairs) under way at once per service during a reconcile.
    pub reconcile_concurrency: u32,
    /// This function's name, for the reconcile's continuation (Lambda sets it).
    pub function_name: Option<String>,
    /// The version running (`AWS_LAMBDA_FUNCTION_VERSION`): the function's invocations
    /// of itself run the same code, whatever the alias points at by then.
    pub function_version: Option<String>,
    /// What a drift check does: nothing, report, or repair (`DRIFT_MODE`).
    pub drift_mode: DriftMode,
    /// Repairs of one target allowed in `repair_loop_window` before they stop.
    pub repair_loop_limit: u32,
    pub repair_loop_window: Duration,
    /// The grant guard (`GUARD_*`): public grants and principals outside the allowed
    /// accounts or organization are refused on every path.
    pub guard: crate::guard::GuardSettings,
    /// Where Detect mode sends `ResourcePolicyDrift` events (`DRIFT_EVENT_BUS`).
    pub drift_event_bus: String,
}

/// What drift checks do (`DRIFT_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriftMode {
    /// CloudTrail events and the reconcile are acknowledged and ignored.
    Disabled,
    /// Drift is reported (metrics, log, event); nothing is written.
    Detect,
    /// Drift is repaired: the owners' plan is written back.
    Repair,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            response_reserve: Duration::from_millis(5_000),
            response_url_allowed_hosts: Vec::new(),
            sdk_max_attempts: 10,
            sdk_attempt_timeout: Duration::from_millis(10_000),
            sdk_connect_timeout: Duration::from_millis(3_000),
            retry_base: Duration::from_millis(250),
            retry_max_delay: Duration::from_millis(5_000),
            not_found_grace: Duration::from_millis(30_000),
            invalid_principal_grace: Duration::from_millis(120_000),
            ssm_malformed_max_tries: 3,
            late_write_window: Duration::from_millis(5_000),
            poll_initial: Duration::from_millis(100),
            poll_max: Duration::from_millis(3_000),
            ledger_table: None,
            function_role_arn: None,
            apply_allowed_accounts: None,
            reconcile_concurrency: 4,
            function_name: None,
            function_version: None,
            drift_mode: DriftMode::Repair,
            repair_loop_limit: 5,
            repair_loop_window: Duration::from_secs(3600),
            guard: crate::guard::GuardSettings::default(),
            drift_event_bus: "default".into(),
        }
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let d = Settings::default();
        let ms = |name: &str, default: Duration| -> Result<Duration, String> {
            match lookup(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| {
                        format!("{name} must be a whole number of milliseconds, got {v:?}")
                    }),
            }
        };
        let count = |name: &str, default: u32| -> Result<u32, String> {
            match lookup(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n >= 1 => Ok(n),
                    _ => Err(format!(
                        "{name} must be a whole number of at least 1, got {v:?}"
                    )),
                },
            }
        };
        let text = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let accounts = match text("APPLY_ALLOWED_ACCOUNTS") {
            None => None,
            Some(list) => {
                let accounts: Vec<String> = list
                    .split(',')
                    .map(|a| a.trim().to_string())
                    .filter(|a| !a.is_empty())
                    .collect();
                if let Some(bad) = accounts
                    .iter()
                    .find(|a| a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Err(format!(
                        "APPLY_ALLOWED_ACCOUNTS must be 12-digit account ids separated by commas, got {bad:?}"
                    ));
                }
                Some(accounts)
            }
        };
        let hosts = lookup("RESPONSE_URL_ALLOWED_HOSTS")
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        Ok(Settings {
            response_reserve: ms("RESPONSE_RESERVE_MS", d.response_reserve)?,
            response_url_allowed_hosts: hosts,
            sdk_max_attempts: count("SDK_MAX_ATTEMPTS", d.sdk_max_attempts)?,
            sdk_attempt_timeout: ms("SDK_ATTEMPT_TIMEOUT_MS", d.sdk_attempt_timeout)?,
            sdk_connect_timeout: ms("SDK_CONNECT_TIMEOUT_MS", d.sdk_connect_timeout)?,
            retry_base: ms("RETRY_BASE_MS", d.retry_base)?,
            retry_max_delay: ms("RETRY_MAX_DELAY_MS", d.retry_max_delay)?,
            not_found_grace: ms("NOT_FOUND_GRACE_MS", d.not_found_grace)?,
            invalid_principal_grace: ms("INVALID_PRINCIPAL_GRACE_MS", d.invalid_principal_grace)?,
            ssm_malformed_max_tries: count("SSM_MALFORMED_MAX_TRIES", d.ssm_malformed_max_tries)?,
            late_write_window: ms("LATE_WRITE_WINDOW_MS", d.late_write_window)?,
            poll_initial: ms("POLL_INITIAL_MS", d.poll_initial)?,
            poll_max: ms("POLL_MAX_MS", d.poll_max)?,
            ledger_table: text("LEDGER_TABLE"),
            function_role_arn: text("FUNCTION_ROLE_ARN"),
            apply_allowed_accounts: accounts,
            reconcile_concurrency: count("RECONCILE_CONCURRENCY", d.reconcile_concurrency)?,
            function_name: text("AWS_LAMBDA_FUNCTION_NAME"),
            function_version: text("AWS_LAMBDA_FUNCTION_VERSION").filter(|v| v != "$LATEST"),
            drift_mode: match text("DRIFT_MODE").as_deref() {
                None => d.drift_mode,
                Some(m) if m.eq_ignore_ascii_case("disabled") => DriftMode::Disabled,
                Some(m) if m.eq_ignore_ascii_case("detect") => DriftMode::Detect,
                Some(m)
                    if m.eq_ignore_ascii_case("repair") || m.eq_ignore_ascii_case("enabled") =>
                {
                    DriftMode::Repair
                }
                Some(other) => {
                    return Err(format!(
                        "DRIFT_MODE must be Disabled, Detect or Repair, got {other:?}"
                    ))
                }
            },
            repair_loop_limit: count("REPAIR_LOOP_LIMIT", d.repair_loop_limit)?,
            guard: crate::guard::GuardSettings::from_lookup(&lookup)?,
            drift_event_bus: text("DRIFT_EVENT_BUS").unwrap_or(d.drift_event_bus),
            repair_loop_window: match lookup("REPAIR_LOOP_WINDOW_SECONDS") {
                None => d.repair_loop_window,
                Some(v) => Duration::from_secs(v.trim().parse::<u64>().map_err(|_| {
                    format!("REPAIR_LOOP_WINDOW_SECONDS must be whole seconds, got {v:?}")
                })?),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = with(&[]).unwrap();
        assert_eq!(s.sdk_max_attempts, 10);
        assert_eq!(s.response_reserve, Duration::from_secs(5));
        assert!(s.response_url_allowed_hosts.is_empty());
    }

    #[test]
    fn values_are_read_and_hosts_split() {
        let s = with(&[
            ("POLL_INITIAL_MS", "50"),
            (
                "RESPONSE_URL_ALLOWED_HOSTS",
                " 127.0.0.1:4566 , Example.test ",
            ),
        ])
        .unwrap();
        assert_eq!(s.poll_initial, Duration::from_millis(50));
        assert_eq!(
            s.response_url_allowed_hosts,
            vec!["127.0.0.1:4566", "example.test"]
        );
    }

    #[test]
    fn drift_repair_settings_are_read() {
        let s = with(&[
            ("LEDGER_TABLE", "ledger"),
            ("APPLY_ALLOWED_ACCOUNTS", "111122223333, 444455556666"),
            (
                "FUNCTION_ROLE_ARN",
                "arn:aws:iam::111122223333:role/provider",
            ),
        ])
        .unwrap();
        assert_eq!(s.ledger_table.as_deref(), Some("ledger"));
        assert_eq!(
            s.apply_allowed_accounts,
            Some(vec!["111122223333".to_string(), "444455556666".to_string()])
        );
        let err = with(&[("APPLY_ALLOWED_ACCOUNTS", "everyone")]).unwrap_err();
        assert!(err.contains("APPLY_ALLOWED_ACCOUNTS"), "{err}");
        assert_eq!(with(&[]).unwrap().ledger_table, None);
    }

    #[test]
    fn a_malformed_value_names_the_variable() {
        let err = with(&[("RETRY_BASE_MS", "fast")]).unwrap_err();
        assert!(err.contains("RETRY_BASE_MS"), "{err}");
        let err = with(&[("SDK_MAX_ATTEMPTS", "0")]).unwrap_err();
        assert!(err.contains("SDK_MAX_ATTEMPTS"), "{err}");
    }
}
