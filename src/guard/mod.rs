//! Guardrails (SPEC §9): the pure decisions the single change executor asks before it
//! writes, so every path (CloudFormation, apply requests, repairs, reconcile) gets the
//! same answer. Nothing here does I/O or calls AWS.
//!
//! - `settings.rs`: what the operator configured (the `GUARD_*` variables).

mod settings;

pub use settings::{GuardSettings, PublicAccess};
