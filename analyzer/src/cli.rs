//! The command line: clap derive, parsed once into [`Opts`], which the rest of the program reads.

use crate::render::Format;
use crate::rules::Severity;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Why connections die on a Kubernetes node: diagnoses connection-tracking exhaustion (netfilter
/// nf_conntrack) offline, from a bundle collected on the node.
#[derive(Debug, Parser)]
#[command(name = "ctdiag", version, about, long_about = None)]
pub struct Opts {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyze one or more bundles and write a report.
    Analyze(AnalyzeArgs),
    /// Print the facts derived from a bundle, as JSON (what rules are written against).
    Facts {
        /// A bundle: .tar.gz/.tgz, .tar, a directory, or one loose file.
        bundle: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// List the diagnosis rules.
    Rules {
        /// Also load rules from this directory (same id overrides a built-in rule).
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Bundles: .tar.gz/.tgz, .tar, directories, or loose files (several = several nodes); a
    /// directory of bundles from `ctdiag-collect cluster` is one node per bundle, named with its
    /// `cluster/` files.
    #[arg(required = true, value_name = "BUNDLE")]
    pub bundles: Vec<PathBuf>,
    /// Output format. Default: an HTML report file plus a short summary on the terminal.
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<Format>,
    /// Where to write the report; `-` for standard output. Default for html:
    /// ctdiag-report.html; for other formats: standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also load rules from this directory (same id overrides a built-in rule).
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Exit with status 1 when a finding at or above this severity is found.
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub fail_on: Option<Severity>,
    /// Colour on the terminal: auto (a TTY without NO_COLOR), always, never.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorChoice,
    /// Parse conntrack tables with the nom reference grammar instead of the hand-written hot
    /// path: slower, and meant to show that both give the same report (see BENCHMARKS.md).
    #[arg(long)]
    pub reference_parser: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args, Clone)]
pub struct LimitArgs {
    /// Stop reading a member after this many decompressed bytes (it is marked truncated).
    #[arg(long, value_name = "BYTES", default_value_t = crate::source::Limits::default().member_bytes)]
    pub max_member_bytes: u64,
    /// Stop reading a bundle after this many decompressed bytes.
    #[arg(long, value_name = "BYTES", default_value_t = crate::source::Limits::default().bundle_bytes)]
    pub max_bundle_bytes: u64,
    /// Skip (and report) lines longer than this.
    #[arg(long, value_name = "BYTES", default_value_t = crate::source::Limits::default().line_bytes)]
    pub max_line_bytes: usize,
    /// Read at most this many members of a bundle.
    #[arg(long, value_name = "N", default_value_t = crate::source::Limits::default().members)]
    pub max_members: usize,
    /// Stop a gzip'd bundle that inflates more than this many times its compressed size
    /// (a decompression bomb); real bundles stay far below.
    #[arg(long, value_name = "N", default_value_t = crate::source::Limits::default().max_ratio)]
    pub max_ratio: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> crate::source::Limits {
        crate::source::Limits {
            member_bytes: self.max_member_bytes,
            bundle_bytes: self.max_bundle_bytes,
            line_bytes: self.max_line_bytes.max(4096),
            members: self.max_members,
            max_ratio: self.max_ratio.max(2),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Opts::command().debug_assert();
    }
}
