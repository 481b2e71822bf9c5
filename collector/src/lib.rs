//! ctdiag-collect: the node-side collector of ctdiag. It gathers what a conntrack-exhaustion
//! diagnosis needs (netfilter conntrack table and counters, Cilium's eBPF conntrack, kube-proxy
//! metrics, kernel log, sysctls) into one bundle that `ctdiag analyze` reads offline.
//!
//! The flow is one way: [`cli`] turns flags into a [`cli::Config`]; [`collect`](mod@collect) runs the plan of
//! [`sources`] (the network namespaces found by [`netns`] included) through [`exec`], [`http`] and
//! [`procfs`] into [`spool`] files, optionally through [`redact`], and [`bundle`] writes each
//! member and, last, the [`manifest`]. [`cluster`] runs
//! that on every node of a cluster through kubectl.

pub mod bundle;
pub mod cli;
pub mod cluster;
pub mod collect;
pub mod exec;
pub mod http;
pub mod manifest;
pub mod netns;
pub mod procfs;
pub mod redact;
pub mod sources;
pub mod spool;

pub use cli::{Config, Opts};
pub use collect::{CollectError, Outcome, collect};
