//! The invocation's own failure: what the Lambda runtime reports when a request could
//! not be handled. Its `errorType` is what an operator routes on (a dead-letter
//! queue, an on-failure destination, a metric filter).

use lambda_runtime::Diagnostic;

use crate::calls::apply::ApplyError;
use crate::change::ChangeError;
use crate::ledger::LedgerError;
use crate::model::request::InvalidRequest;

#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// The event or its request is not valid; retrying the same event cannot help.
    #[error("{0}")]
    InvalidRequest(String),
    /// A service refused or failed the change.
    #[error("{0}")]
    ServiceError(String),
    /// The time budget ran out before the change was done or confirmed.
    #[error("{0}")]
    Timeout(String),
    /// A CloudFormation answer could not be delivered (refused URL, redirect, network).
    #[error("{0}")]
    ResponseNotDelivered(String),
}

impl InvocationError {
    pub fn error_type(&self) -> &'static str {
        match self {
            InvocationError::InvalidRequest(_) => "InvalidRequest",
            InvocationError::ServiceError(_) => "ServiceError",
            InvocationError::Timeout(_) => "Timeout",
            InvocationError::ResponseNotDelivered(_) => "ResponseNotDelivered",
        }
    }
}

impl From<InvalidRequest> for InvocationError {
    fn from(e: InvalidRequest) -> Self {
        InvocationError::InvalidRequest(format!("Invalid request: {e}"))
    }
}

impl From<ApplyError> for InvocationError {
    fn from(e: ApplyError) -> Self {
        if e.timed_out() {
            InvocationError::Timeout(e.to_string())
        } else {
            InvocationError::ServiceError(e.to_string())
        }
    }
}

impl From<LedgerError> for InvocationError {
    fn from(e: LedgerError) -> Self {
        InvocationError::ServiceError(e.to_string())
    }
}

impl From<ChangeError> for InvocationError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Refused(why) => InvocationError::InvalidRequest(format!("Refused: {why}")),
            ChangeError::Apply(e) => e.into(),
            ChangeError::Ledger { error, .. } => error.into(),
        }
    }
}

impl From<InvocationError> for Diagnostic {
    fn from(e: InvocationError) -> Self {
        Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: e.to_string(),
        }
    }
}
