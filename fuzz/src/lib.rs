//! Properties every fuzz target checks, beyond "no panic":
//! - parsing is deterministic (the same bytes give the same summary and problems);
//! - every problem's line number points at a line of the input;
//! - for line-independent kinds, parsing in two chunks cut at a line boundary and merging gives
//!   the one-pass summary (what the parallel reader relies on);
//! - a whole bundle analyzes without panicking and renders in every format.

use ctdiag::classify::MemberKind;
use ctdiag::parse::{self, ChunkCtx};
use ctdiag::summary::Merge;
use std::sync::Arc;

/// Checks one member kind's parser on arbitrary bytes.
pub fn check_member(kind: MemberKind, data: &[u8]) {
    let (a, pa) = parse::parse_all(kind.clone(), "m", data);
    let (b, pb) = parse::parse_all(kind.clone(), "m", data);
    assert!(same(&a, &b), "parsing is deterministic: {a:?} / {b:?}");
    assert_eq!(pa, pb, "problems are deterministic");
    let lines = parse::lines(data, 1).count() as u64;
    for p in &pa {
        if let Some(l) = p.line {
            assert!(
                l >= 1 && l <= lines.max(1),
                "problem at line {l} of {lines}: {p}"
            );
        }
    }
    if !parse::is_line_independent(&kind) {
        return;
    }
    // Cut at the line boundary nearest the middle, as the reader cuts chunks.
    let Some(cut) = data[..data.len() / 2]
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|i| i + 1)
    else {
        return;
    };
    let first_lines = data[..cut].iter().filter(|b| **b == b'\n').count() as u64;
    let ctx = |first_line| ChunkCtx {
        member: Arc::from("m"),
        kind: kind.clone(),
        first_line,
    };
    let (mut left, _) = parse::parse_chunk(&ctx(1), &data[..cut]);
    let (right, _) = parse::parse_chunk(&ctx(first_lines + 1), &data[cut..]);
    left.combine(right);
    assert!(
        same(&left, &a),
        "two chunks merged equal one pass: {left:?} / {a:?}"
    );
}

/// Equal, where a metric's NaN counts as equal to itself (it never is under `PartialEq`).
fn same(a: &parse::MemberSummary, b: &parse::MemberSummary) -> bool {
    a == b || format!("{a:?}") == format!("{b:?}")
}

/// Checks the whole pipeline on arbitrary bytes given as a bundle file.
pub fn check_bundle(data: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.tar.gz");
    std::fs::write(&path, data).expect("write");
    let mut options = ctdiag::AnalyzeOptions::default();
    options.ingest.limits.member_bytes = 8 << 20;
    options.ingest.limits.bundle_bytes = 32 << 20;
    options.ingest.limits.members = 500;
    // The seeds hold a zip and an xz bomb: the ratio guard must stop them within these caps.
    let report = ctdiag::analyze(&[path], &options).expect("built-in rules load");
    // One input: unreadable, or one node or more (another tool's archive may hold several).
    assert!(
        report.nodes.is_empty() != report.unreadable.is_empty(),
        "one input, one outcome"
    );
    use ctdiag::render::Renderer;
    let json = ctdiag::render::Json.render(&report).expect("json renders");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json parses");
    assert!(v["schema_version"].is_number() && v["nodes"].is_array());
    ctdiag::render::Html.render(&report).expect("html renders");
    ctdiag::render::Markdown
        .render(&report)
        .expect("markdown renders");
    ctdiag::render::Text {
        color: true,
        brief: false,
    }
    .render(&report)
    .expect("text renders");
}
