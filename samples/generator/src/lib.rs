//! ctdiag-samples: a reproducible generator of realistic ctdiag bundles.
//!
//! Why generated rather than captured: a real node cannot be made to show each failure mode on
//! demand, captured bundles carry addresses of real networks, and a hand-edited bundle drifts
//! from its manifest. Here every member of every sample derives from one seed and one scenario
//! description, so the samples are byte-for-byte reproducible (`git diff` after regenerating is
//! empty), internally consistent (counts, counters, hashes and logs agree) and printed exactly as
//! the real tools print (FORMATS.md).
//!
//! Data flows one way: [`scenarios`] describe nodes with [`cluster`] traffic ([`flows`]), the
//! member printers ([`conntrack`], [`node`], [`kernel_log`], [`sysctl`], [`stats`]) turn them into
//! text, [`bundle`] packs it, [`tally`] and [`readme`] describe what was written; [`big`] is the
//! benchmark variant. [`rng`] is the only source of randomness.

pub mod big;
pub mod bundle;
pub mod cilium;
pub mod cluster;
pub mod conntrack;
pub mod flows;
pub mod gofmt;
pub mod kernel_log;
pub mod kube_proxy;
pub mod layers;
pub mod node;
pub mod readme;
pub mod rng;
pub mod scenarios;
pub mod stats;
pub mod sysctl;
pub mod tally;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What `gen-samples all` wrote for one scenario.
pub struct Generated {
    pub scenario: scenarios::Scenario,
    pub path: PathBuf,
    pub measured: readme::Measured,
}

/// Writes every scenario's bundle and README under `out`, and the index `out/README.md`.
/// Bundles of earlier runs in a scenario's directory are removed first (a changed collection time
/// would otherwise leave the old file beside the new one).
pub fn generate_all(out: &Path, seed: u64) -> io::Result<Vec<Generated>> {
    let mut done = Vec::new();
    for s in scenarios::all(seed) {
        let dir = out.join(s.case);
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let p = entry?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("ctdiag-") && name.ends_with(".tar.gz") {
                fs::remove_file(&p)?;
            }
        }
        let c = s.collection();
        let file_name = format!("{}.tar.gz", c.top_folder());
        let path = dir.join(&file_name);
        let written = bundle::write_bundle(&path, &c)?;
        let tally = written.tally.clone().unwrap_or_default();
        let measured =
            readme::Measured::new(&c, file_name, written.bytes, written.list_bytes, tally);
        let mut text = readme::scenario(&s, &measured);
        let layer = readme::layer_section(&s, &c);
        if !layer.is_empty() {
            // Beside netfilter's numbers, before them: the layer the sample is about.
            let at = text.find("## Key numbers").unwrap_or(text.len());
            text.insert_str(at, &layer);
        }
        fs::write(dir.join("README.md"), text)?;
        fs::write(
            dir.join("expected.json"),
            expected_json(&s, &file_name_of(&path)),
        )?;
        done.push(Generated {
            scenario: s,
            path,
            measured,
        });
    }
    let rows: Vec<_> = done.iter().map(|g| (&g.scenario, &g.measured)).collect();
    fs::write(out.join("README.md"), readme::index(&rows))?;
    Ok(done)
}

/// What the analyzer must conclude on a scenario, for the end-to-end tests: the likely cause, the
/// contributors that must fire, the first of them being the one named beside the cause.
fn expected_json(s: &scenarios::Scenario, bundle: &str) -> String {
    let v = serde_json::json!({
        "bundle": bundle,
        "likely_cause": s.expected_cause,
        "contributors": s.expected_contributors,
    });
    let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
    text.push('\n');
    text
}

fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
