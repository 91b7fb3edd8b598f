//! Calls to the services under the invocation's time budget: retries, the read-back
//! that proves a change took effect, and what a failed change is known to have done.

pub mod apply;
pub mod budget;
pub mod propagation;
pub mod retry;
