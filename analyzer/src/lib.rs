//! ctdiag: offline diagnosis of connection-tracking exhaustion on Kubernetes nodes.
//!
//! Data flows one way, one module per stage (see DESIGN.md in the repository):
//! `source → classify → parse → summary → facts → rules → findings → render`.

pub mod classify;
pub mod parse;
pub mod problem;
pub mod source;
pub mod summary;
