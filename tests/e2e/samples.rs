//! Every sample bundle in `samples/` gets the diagnosis its `expected.json` states, with every
//! member verified against its manifest; Markdown and terminal output are pinned as snapshots.

use crate::util::*;
use std::path::{Path, PathBuf};

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples")
}

/// (case, bundle path, expected.json) for every sample.
pub fn samples() -> Vec<(String, PathBuf, serde_json::Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(samples_dir()).expect("samples/") {
        let dir = entry.expect("entry").path();
        let expected = dir.join("expected.json");
        if !expected.exists() {
            continue;
        }
        let e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&expected).expect("read"))
                .expect("expected.json");
        let bundle = dir.join(e["bundle"].as_str().expect("bundle name"));
        let case = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        out.push((case, bundle, e));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 9, "samples missing: {out:?}");
    out
}

#[test]
fn every_sample_gets_its_expected_diagnosis() {
    for (case, bundle, expected) in samples() {
        let (report, out) = analyze_json(&[&bundle]);
        assert!(out.status.success(), "{case}: {out:?}");
        let node = &report["nodes"][0];
        assert_eq!(
            node["likely_cause"]["id"], expected["likely_cause"],
            "{case}: likely cause"
        );
        let findings = finding_ids(&report);
        let contributors: Vec<&str> = expected["contributors"]
            .as_array()
            .expect("contributors")
            .iter()
            .filter_map(|c| c.as_str())
            .collect();
        for c in &contributors {
            assert!(
                findings.iter().any(|f| f == c),
                "{case}: {c} not among {findings:?}"
            );
        }
        if let Some(primary) = contributors.first() {
            assert_eq!(
                node["likely_cause"]["contributor"]["id"], *primary,
                "{case}: contributor named beside the cause"
            );
        }
        if expected["likely_cause"].is_null() {
            assert!(findings.is_empty(), "{case}: {findings:?}");
            assert!(
                ruled_out(&report).contains(&"nf.healthy".to_string()),
                "{case}"
            );
        }
        assert_eq!(
            node["problems"].as_array().map(Vec::len),
            Some(0),
            "{case}: {}",
            node["problems"]
        );
        assert_eq!(node["bundle"]["mismatched"], 0, "{case}");
        let members = node["bundle"]["members"].as_array().expect("members");
        let unverified: Vec<&serde_json::Value> = members
            .iter()
            .filter(|m| m["integrity"] != "verified" && m["integrity"] != "manifest")
            .collect();
        assert!(unverified.is_empty(), "{case}: {unverified:?}");
        // As sent, a collector bundle is checked by XXH3 (its gzip header says the manifest
        // lists it) and still shows every member's SHA-256, the manifest's.
        for m in members.iter().filter(|m| m["integrity"] == "verified") {
            assert_eq!(m["checked_with"], "xxh3_128", "{case}: {m}");
            assert_eq!(m["sha256"].as_str().map(str::len), Some(64), "{case}: {m}");
        }
    }
}

/// Re-packs the `healthy` sample member by member, with `edit` applied to each member's bytes and
/// the collector's gzip marker kept or not.
fn repack(out: &Path, marker: bool, edit: impl Fn(&str, &mut Vec<u8>)) -> PathBuf {
    use std::io::{Read, Write};
    let (_, bundle, _) = samples()
        .into_iter()
        .find(|s| s.0 == "healthy")
        .expect("healthy sample");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(&bundle).expect("open sample"),
    ));
    let mut gz = flate2::GzBuilder::new();
    if marker {
        gz = gz.extra(ctdiag::source::GZIP_MARKER);
    }
    let mut builder = tar::Builder::new(gz.write(Vec::new(), flate2::Compression::fast()));
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let mut header = entry.header().clone();
        let name = entry.path().expect("path").display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read");
        edit(&name, &mut data);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, &data[..]).expect("append");
    }
    let bytes = builder.into_inner().expect("tar").finish().expect("gzip");
    let path = out.join(if marker {
        "marked.tar.gz"
    } else {
        "plain.tar.gz"
    });
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(&bytes))
        .expect("write");
    path
}

#[test]
fn the_digest_checked_follows_the_gzip_marker_and_catches_an_edit_either_way() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flip = |name: &str, data: &mut Vec<u8>| {
        if name.ends_with("/node/uname.txt") {
            data[0] ^= 0x20;
        }
    };
    for (marker, digest) in [(true, "xxh3_128"), (false, "sha256")] {
        let intact = repack(dir.path(), marker, |_, _| {});
        let (report, _) = analyze_json(&[&intact]);
        let bundle = &report["nodes"][0]["bundle"];
        assert_eq!(bundle["mismatched"], 0, "{digest}");
        let uname = bundle["members"]
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["path"] == "node/uname.txt")
            .expect("uname member")
            .clone();
        assert_eq!(uname["integrity"], "verified", "{uname}");
        assert_eq!(uname["checked_with"], digest, "{uname}");

        let edited = repack(dir.path(), marker, flip);
        let (report, _) = analyze_json(&[&edited]);
        let node = &report["nodes"][0];
        assert_eq!(node["bundle"]["mismatched"], 1, "{digest}");
        let message = format!("integrity: {digest} does not match the manifest");
        assert!(
            node["problems"]
                .as_array()
                .expect("problems")
                .iter()
                .any(|p| p["path"] == "node/uname.txt"
                    && p["reason"]
                        .as_str()
                        .is_some_and(|r| r.starts_with(&message))),
            "{message}: {}",
            node["problems"]
        );
    }
}

#[test]
fn samples_analyzed_together_are_compared_node_by_node() {
    let all = samples();
    let paths: Vec<&Path> = all.iter().map(|s| s.1.as_path()).collect();
    let (report, _) = analyze_json(&paths);
    assert_eq!(report["nodes"].as_array().map(Vec::len), Some(all.len()));
    let cluster = &report["cluster"];
    assert_eq!(cluster["facts"]["cluster"]["nodes"], all.len());
    // The netfilter fleet (the nine nodes of the small pool and its neighbours) shares one cause;
    // the eBPF and proxy samples are other clusters' nodes and would dilute it.
    let netfilter: Vec<&Path> = all
        .iter()
        .filter(|s| !s.0.starts_with("cilium-") && !s.0.starts_with("kube-proxy-"))
        .map(|s| s.1.as_path())
        .collect();
    let (report, _) = analyze_json(&netfilter);
    let readings: Vec<&str> = report["cluster"]["readings"]
        .as_array()
        .expect("readings")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(readings.contains(&"cluster.widespread"), "{readings:?}");
    // One hot node among healthy ones reads as node-local.
    let healthy = all
        .iter()
        .find(|s| s.0 == "healthy")
        .expect("healthy sample");
    let hot = all
        .iter()
        .find(|s| s.0 == "timewait-churn")
        .expect("hot sample");
    let (pair, _) = analyze_json(&[&healthy.1, &hot.1]);
    let ids: Vec<&str> = pair["cluster"]["readings"]
        .as_array()
        .expect("readings")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, ["cluster.node_local"]);
}

#[test]
fn markdown_and_text_output_of_every_sample() {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"ctdiag \d+\.\d+\.\d+", "ctdiag [version]");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for (case, bundle, _) in samples() {
            let p = bundle.display().to_string();
            let md = String::from_utf8(ctdiag(&["analyze", "--format", "md", &p]).stdout)
                .expect("utf-8");
            assert!(
                md.lines().count() <= 80,
                "{case}: {} lines",
                md.lines().count()
            );
            insta::assert_snapshot!(format!("md-{case}"), md);
            let text = String::from_utf8(
                ctdiag(&["analyze", "--format", "text", "--color", "never", &p]).stdout,
            )
            .expect("utf-8");
            insta::assert_snapshot!(format!("text-{case}"), text);
        }
    });
}

/// The hand-written conntrack scanner is only an optimisation: on every sample (each printer's
/// format, IPv6, NAT, every scenario) the report is byte for byte the one the nom reference grammar
/// gives.
#[test]
fn the_fast_parser_and_the_reference_parser_give_the_same_report() {
    for (case, bundle, _) in samples() {
        let path = bundle.to_str().expect("utf-8 path");
        let fast = ctdiag(&["analyze", "--format", "json", "-o", "-", path]);
        let reference = ctdiag(&[
            "analyze",
            "--reference-parser",
            "--format",
            "json",
            "-o",
            "-",
            path,
        ]);
        assert!(fast.status.success(), "{case}: {fast:?}");
        assert!(
            fast.stdout == reference.stdout,
            "{case}: the reports differ"
        );
    }
}
