//! Drift repair: one target's check, and the reconcile that walks every target.

pub mod check;
pub mod reconcile;
pub mod stacks;
