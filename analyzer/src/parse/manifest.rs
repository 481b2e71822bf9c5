//! `manifest.json`, bundle format v1 (docs/bundle-format.md): what the collector ran, when, with
//! what result, and the sha256 of every member. Unknown fields are ignored so newer collectors
//! stay readable; only an unknown `format_version` is refused.

use super::{ChunkCtx, LineProblems};
use crate::problem::{Problem, Severity};
use serde::{Deserialize, Serialize};

/// The format versions this analyzer reads.
pub const SUPPORTED_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Manifest {
    #[serde(default)]
    pub format: Option<String>,
    pub format_version: u32,
    #[serde(default)]
    pub tool: Option<Tool>,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub kernel: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub redacted: bool,
    #[serde(default)]
    pub members: Vec<ManifestMember>,
    #[serde(default)]
    pub failed: Vec<FailedSource>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Tool {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ManifestMember {
    pub path: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub fallback_for: Option<String>,
    #[serde(default)]
    pub exit_status: Option<i64>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub bytes: Option<u64>,
    #[serde(default)]
    pub sha256: Option<String>,
    /// XXH3-128 of the same bytes, from collectors that write the gzip marker (see
    /// [`crate::source::MemberDigest`]).
    #[serde(default)]
    pub xxh3_128: Option<String>,
    #[serde(default)]
    pub truncated: bool,
    #[serde(default)]
    pub sample: Option<u32>,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub stderr_path: Option<String>,
}

impl ManifestMember {
    /// The listed digest of this kind, if any.
    pub fn digest(&self, kind: crate::source::MemberDigest) -> Option<&str> {
        match kind {
            crate::source::MemberDigest::Sha256 => self.sha256.as_deref(),
            crate::source::MemberDigest::Xxh3 => self.xxh3_128.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct FailedSource {
    pub source: String,
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    #[serde(default)]
    pub exit_status: Option<i64>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub stderr: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// A parsed manifest, or nothing when it was unreadable (the problem says why).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestSummary {
    pub manifest: Option<Manifest>,
}

/// Parses a whole manifest member.
pub fn parse(ctx: &ChunkCtx, data: &[u8], problems: &mut LineProblems) -> ManifestSummary {
    match serde_json::from_slice::<Manifest>(data) {
        Ok(m) if m.format_version == SUPPORTED_VERSION => ManifestSummary { manifest: Some(m) },
        Ok(m) => {
            problems.push(Problem::new(
                &*ctx.member,
                Severity::Warning,
                format!(
                    "manifest format_version {} is not supported (this ctdiag reads {SUPPORTED_VERSION}); members are classified by content",
                    m.format_version
                ),
            ));
            ManifestSummary::default()
        }
        Err(e) => {
            problems.push(
                Problem::new(
                    &*ctx.member,
                    Severity::Warning,
                    format!("malformed manifest, ignored ({e}); members are classified by content"),
                )
                // serde_json puts "EOF" on the line after a trailing newline; name a real line.
                .at_line((e.line() as u64).clamp(1, super::lines(data, 1).count().max(1) as u64)),
            );
            ManifestSummary::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::MemberKind;
    use crate::parse::{MemberSummary, parse_all};

    #[test]
    fn reads_members_and_failed_sources_ignoring_unknown_fields() {
        let json = br#"{"format":"ctdiag-bundle","format_version":1,"node":"n1","future":true,
          "members":[{"path":"conntrack/stats.0.txt","sha256":"ab","bytes":3,"sample":0,"time":"2026-11-25T13:40:01Z"}],
          "failed":[{"source":"cilium-dbg bpf ct list global","error":"not found on PATH"}]}"#;
        match parse_all(MemberKind::Manifest, "manifest.json", json) {
            (MemberSummary::Manifest(m), p) => {
                assert!(p.is_empty(), "{p:?}");
                let m = m.manifest.expect("manifest");
                assert_eq!(m.node.as_deref(), Some("n1"));
                assert_eq!(m.members[0].sample, Some(0));
                assert_eq!(m.failed[0].error.as_deref(), Some("not found on PATH"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unfinished_manifest_names_its_last_line_not_the_one_after() {
        // Regression (fuzzing): serde_json reports EOF on line 2 of a one-line file.
        let (_, p) = parse_all(
            MemberKind::Manifest,
            "manifest.json",
            b"{\"format_version\": 1,\n",
        );
        assert_eq!(p[0].line, Some(1));
    }

    #[test]
    fn a_malformed_manifest_is_a_problem_with_its_line() {
        let (s, p) = parse_all(
            MemberKind::Manifest,
            "manifest.json",
            b"{\n\"format_version\": 1,\n\"members\": [}\n",
        );
        assert!(matches!(s, MemberSummary::Manifest(m) if m.manifest.is_none()));
        assert_eq!(p[0].line, Some(3));
        assert!(p[0].reason.contains("malformed manifest"));
    }
}
