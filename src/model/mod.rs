//! Nouns with no I/O: who owns a grant, which target, what policy, the validated
//! request. Everything else depends on these; they depend on nothing but the services'
//! facts.

pub mod owner;
pub mod policy;
pub mod request;
pub mod statements;
pub mod target;
