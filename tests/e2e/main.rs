//! End-to-end suites: the `ctdiag` binary run on bundles as customers send them, asserting exit
//! codes, the JSON contract and key lines. One test binary; each file is a suite.

mod browser;
mod cilium;
mod cli;
mod cluster;
mod corpus;
mod facts;
mod foreign;
mod loose;
mod report;
mod samples;
mod semantics;
mod util;
