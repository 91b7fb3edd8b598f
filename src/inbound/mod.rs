//! Events that arrive, classified once ([`event`]), each turned into a change, a
//! repair or a walk; each entry point keeps only its own protocol.

pub mod cloudformation;
pub mod cloudtrail;
pub mod event;
pub mod eventbridge;
pub mod owner_gone;
pub mod rollback;
