//! Events that arrive, classified once, each turned into a change, a repair or a walk.

pub mod owner_gone;
