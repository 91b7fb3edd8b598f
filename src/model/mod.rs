//! Nouns with no I/O: who owns a grant.

pub mod owner;
