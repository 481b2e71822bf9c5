//! `manifest.json`, the bundle's table of contents (docs/bundle-format.md): what each member is,
//! how it was obtained and its hash, plus every source that could not be collected. The analyzer
//! reads it to skip content sniffing, to compute rates from sample times, and to turn `failed`
//! entries into "missing data" with the reason. Field names are the format; change both together.

use serde::Serialize;

/// Format name and version the analyzer checks before anything else.
pub const FORMAT: &str = "ctdiag-bundle";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Manifest {
    pub format: &'static str,
    pub format_version: u32,
    pub tool: Tool,
    pub node: String,
    /// `uname -r` of the node, when it could be read.
    pub kernel: Option<String>,
    /// RFC 3339, UTC, seconds.
    pub started_at: String,
    pub finished_at: String,
    pub redacted: bool,
    pub samples: Samples,
    pub members: Vec<MemberRecord>,
    pub failed: Vec<FailedRecord>,
}

#[derive(Debug, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Samples {
    pub count: u32,
    pub interval_seconds: f64,
}

/// How a member's bytes were obtained: exactly one of these is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The command run.
    pub argv: Option<Vec<String>>,
    /// The file read (or walked, for the sysctl tree).
    pub file: Option<String>,
    /// The URL fetched (kube-proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One file of the bundle.
#[derive(Debug, Serialize)]
pub struct MemberRecord {
    /// Relative to the bundle's top folder.
    pub path: String,
    /// Human label of the source (`conntrack -S`).
    pub source: String,
    #[serde(flatten)]
    pub origin: Origin,
    /// The source this one stands in for, when the preferred one was missing or failed.
    pub fallback_for: Option<String>,
    /// Exit code of the command; `null` for files, URLs and commands ended by a signal.
    pub exit_status: Option<i32>,
    pub duration_ms: u64,
    /// Size as stored (after truncation and redaction).
    pub bytes: u64,
    /// Of the bytes as stored.
    pub sha256: String,
    /// XXH3-128 of the same bytes, 32 hex digits: what the analyzer checks (the gzip header's
    /// marker says it is listed).
    pub xxh3_128: String,
    /// The output cap or a timeout cut this member.
    pub truncated: bool,
    /// Sample index, for sampled sources.
    pub sample: Option<u32>,
    /// When the source was started (RFC 3339, UTC, milliseconds), for sampled sources.
    pub time: Option<String>,
    /// The member holding this source's stderr, when it printed any.
    pub stderr_path: Option<String>,
    /// On a stderr member: the member whose stderr this is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_of: Option<String>,
}

/// A source that gave no member, or whose member is incomplete.
#[derive(Debug, Serialize)]
pub struct FailedRecord {
    pub source: String,
    #[serde(flatten)]
    pub origin: Origin,
    /// The member path this source would have written.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<u32>,
    pub exit_status: Option<i32>,
    /// Why: `not found on PATH`, `timed out after 30s`, `exit status 1`, `skipped: …`.
    pub error: String,
    /// The source's stderr (capped), lossily decoded.
    pub stderr: String,
    pub duration_ms: u64,
    /// Not attempted on purpose (tool absent, not asked for, or unsafe to run): not a fault.
    pub skipped: bool,
    /// The member that holds a fallback's output in its place, or a partial output of its own.
    pub replaced_by: Option<String>,
}
