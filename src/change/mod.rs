//! One `Change`, carried out in one place (issue 14). The model check of its protocol
//! lives next to it.

#[cfg(test)]
mod model;
