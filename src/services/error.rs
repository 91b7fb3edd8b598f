//! Service errors, classified once where they arise: what a failed call means for the
//! caller (retry, wait, give up) and whether a failed write may still have landed.

use std::fmt;

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What a service error means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Rate limited, and the SDK's own retries were not enough.
    Throttled,
    /// 5xx, timeout or network failure that outlasted the SDK's retries.
    Transient,
    /// The resource or policy is in transition (CREATING, UPDATING, locked).
    NotReady,
    /// The resource is being deleted: a delete is done, a put cannot succeed.
    ResourceDeleting,
    /// The resource itself does not exist (yet, or any more).
    ResourceNotFound,
    /// The resource exists but has no such policy.
    PolicyNotFound,
    /// DynamoDB's "invalid principal": often an IAM role created moments ago.
    InvalidPrincipal,
    /// SSM's MalformedResourcePolicyDocumentException, also raised for call bursts.
    Ambiguous,
    /// A revision or hash precondition failed: someone else changed the policy.
    Conflict,
    /// No endpoint could be found for the region (DNS): retrying cannot help.
    NoEndpoint,
    /// Retrying cannot help: report it.
    Terminal,
}

/// Whether a failed call may have taken effect anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Landed {
    /// The request never left, or the service answered that it did nothing.
    No,
    /// Timed out, 5xx, or the connection broke after sending: the outcome is unknown.
    Maybe,
}

/// A failed call, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
    pub landed: Landed,
}

impl ServiceError {
    /// An error the service answered with (it did nothing).
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError {
            kind,
            code: code.into(),
            message: message.into(),
            landed: Landed::No,
        }
    }

    fn maybe_landed(mut self) -> Self {
        self.landed = Landed::Maybe;
        self
    }

    /// True for AccessDenied in any service's spelling.
    pub fn is_access_denied(&self) -> bool {
        self.code.starts_with("AccessDenied")
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

impl std::error::Error for ServiceError {}

/// True when `message` says the resource is being deleted (DynamoDB and Kinesis
/// ResourceInUseException, AMP ConflictException name the DELETING state).
pub(crate) fn says_deleting(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("deleting") || m.contains("being deleted")
}

/// Turns an SDK error into a [`ServiceError`]. `service_kind` maps the service's own
/// error codes; what it leaves alone falls back to the SDK's own throttling and
/// transient code lists and to the HTTP status. Modeled and unmodeled errors alike
/// carry their code in the error metadata, so emulators and AWS classify the same way.
pub(crate) fn classify<E>(
    err: &SdkError<E, HttpResponse>,
    service_kind: fn(&str, &str) -> Option<ErrorKind>,
) -> ServiceError
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let status = ctx.raw().status().as_u16();
            let code = e.code().unwrap_or("").to_string();
            let message = e.message().unwrap_or("").to_string();
            let kind = service_kind(&code, &message).unwrap_or({
                if THROTTLING_ERRORS.contains(&code.as_str()) || status == 429 {
                    ErrorKind::Throttled
                } else if status >= 500 || TRANSIENT_ERRORS.contains(&code.as_str()) {
                    ErrorKind::Transient
                } else {
                    ErrorKind::Terminal
                }
            });
            let code = if code.is_empty() {
                format!("HTTP {status}")
            } else {
                code
            };
            let error = ServiceError::new(kind, code, message);
            // A 5xx may come after the service applied the change.
            if status >= 500 {
                error.maybe_landed()
            } else {
                error
            }
        }
        SdkError::TimeoutError(_) => {
            ServiceError::new(ErrorKind::Transient, "Timeout", "the call timed out").maybe_landed()
        }
        SdkError::DispatchFailure(f) => {
            let source = f
                .as_connector_error()
                .map(|c| c as &(dyn std::error::Error + 'static));
            if source.is_some_and(is_dns_failure) {
                return ServiceError::new(
                    ErrorKind::NoEndpoint,
                    "NoEndpoint",
                    "no endpoint could be resolved for this service in the region (DNS lookup \
                        failed); check the region",
                );
            }
            let message = f
                .as_connector_error()
                .map(|c| chain(c))
                .unwrap_or_else(|| "the request could not be sent".into());
            // A certificate the trust store refuses stays refused: no retry.
            if source.is_some_and(crate::http::is_tls_failure) {
                return ServiceError::new(ErrorKind::Terminal, "TlsFailure", message);
            }
            let error = ServiceError::new(ErrorKind::Transient, "DispatchFailure", message);
            if source.is_some_and(is_connect_failure) {
                error
            } else {
                error.maybe_landed()
            }
        }
        SdkError::ResponseError(_) => ServiceError::new(
            ErrorKind::Transient,
            "ResponseError",
            "the response could not be read",
        )
        .maybe_landed(),
        other => ServiceError::new(
            ErrorKind::Terminal,
            "ConstructionFailure",
            format!("{other}"),
        ),
    }
}

/// An error and its causes, as one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// The connection was never made, so the request never left.
fn is_connect_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        let connect = err
            .downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(|h| h.is_connect())
            || err
                .downcast_ref::<reqwest::Error>()
                .is_some_and(|r| r.is_connect());
        if connect {
            return true;
        }
        next = err.source();
    }
    false
}

/// A connect failure whose cause is name resolution: the region has no endpoint.
/// hyper-util's connector reports it as "dns error", its only public trace.
fn is_dns_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    is_connect_failure(e) && chain(e).contains("dns error")
}

/// Tells the SDK not to retry what retrying cannot fix: a name that does not resolve
/// (a region without an endpoint would otherwise cost minutes of backoff).
#[derive(Debug, Default)]
pub(crate) struct NoRetryOnDns;

impl ClassifyRetry for NoRetryOnDns {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let dns = ctx
            .output_or_error()
            .and_then(|r| r.err())
            .and_then(|e| e.as_connector_error())
            .is_some_and(|c| is_dns_failure(c));
        if dns {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "NoRetryOnDns"
    }

    fn priority(&self) -> RetryClassifierPriority {
        // Run first: a RetryForbidden stops the later classifiers.
        RetryClassifierPriority::run_before(RetryClassifierPriority::http_status_code_classifier())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::result::ConnectorError;

    #[derive(Debug)]
    struct Never;
    impl std::fmt::Display for Never {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("never")
        }
    }
    impl std::error::Error for Never {}
    impl ProvideErrorMetadata for Never {
        fn meta(&self) -> &aws_smithy_types::error::ErrorMetadata {
            unreachable!()
        }
    }

    fn dispatch(source: Box<dyn std::error::Error + Send + Sync>) -> ServiceError {
        let err: SdkError<Never, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::other(source, None));
        classify(&err, |_, _| None)
    }

    #[test]
    fn a_refused_certificate_is_final_and_nothing_was_sent() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let e = dispatch(Box::new(std::io::Error::other(tls)));
        assert_eq!(
            (e.kind, e.code.as_str(), e.landed),
            (ErrorKind::Terminal, "TlsFailure", Landed::No)
        );
    }

    #[test]
    fn a_connection_broken_after_sending_may_have_landed() {
        let e = dispatch(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!((e.kind, e.landed), (ErrorKind::Transient, Landed::Maybe));
    }
}
