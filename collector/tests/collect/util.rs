//! Shared by the suites: run the real binary, open the bundle it wrote, and check it against its
//! manifest the way the analyzer will (every member listed, every hash and size right).

#![allow(dead_code)]

use flate2::read::GzDecoder;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ctdiag-collect"))
}

/// Flags that keep a run short and independent of this machine's services: one sample, and a
/// kube-proxy URL on a port where nothing listens.
pub const QUICK: &[&str] = &[
    "--samples",
    "1",
    "--interval",
    "0",
    "--timeout",
    "10",
    "--kube-proxy-url",
    "http://127.0.0.1:1",
];

/// QUICK with `extra` appended; a flag given in `extra` replaces QUICK's value for it.
pub fn quick(extra: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for pair in QUICK.chunks(2) {
        if !extra.contains(&pair[0]) {
            out.extend(pair.iter().map(|s| s.to_string()));
        }
    }
    out.extend(extra.iter().map(|s| s.to_string()));
    out
}

pub fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("spawn ctdiag-collect")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An opened bundle: its manifest and every member's bytes, keyed by path below the top folder.
pub struct Bundle {
    pub path: PathBuf,
    pub top: String,
    pub manifest: Value,
    pub members: BTreeMap<String, Vec<u8>>,
}

impl Bundle {
    pub fn open(path: &Path) -> Bundle {
        let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        Bundle::read(GzDecoder::new(file), path)
    }

    pub fn read(reader: impl Read, path: &Path) -> Bundle {
        let mut archive = tar::Archive::new(reader);
        let mut members = BTreeMap::new();
        let mut tops = std::collections::BTreeSet::new();
        for entry in archive.entries().expect("tar entries") {
            let mut entry = entry.expect("tar entry");
            let name = entry.path().expect("entry path").display().to_string();
            let (top, rest) = name.split_once('/').expect("member below a top folder");
            tops.insert(top.to_string());
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("member data");
            members.insert(rest.to_string(), data);
        }
        assert_eq!(tops.len(), 1, "one top folder: {tops:?}");
        let manifest: Value =
            serde_json::from_slice(members.get("manifest.json").expect("manifest.json present"))
                .expect("manifest is JSON");
        Bundle {
            path: path.to_path_buf(),
            top: tops.into_iter().next().unwrap_or_default(),
            manifest,
            members,
        }
    }

    pub fn text(&self, member: &str) -> String {
        String::from_utf8_lossy(
            self.members
                .get(member)
                .unwrap_or_else(|| panic!("no member {member}")),
        )
        .into_owned()
    }

    /// The manifest record of `path`.
    pub fn record(&self, path: &str) -> &Value {
        self.manifest["members"]
            .as_array()
            .expect("members array")
            .iter()
            .find(|m| m["path"] == path)
            .unwrap_or_else(|| panic!("{path} not in manifest members"))
    }

    /// The `failed` records for `path`.
    pub fn failures(&self, path: &str) -> Vec<&Value> {
        self.manifest["failed"]
            .as_array()
            .expect("failed array")
            .iter()
            .filter(|f| f["path"] == path)
            .collect()
    }

    /// Every archive member is in the manifest with the right size and hash, and vice versa;
    /// the bundle's file name matches its top folder.
    pub fn assert_consistent(&self) {
        let records = self.manifest["members"].as_array().expect("members array");
        let mut listed = std::collections::BTreeSet::new();
        for r in records {
            let path = r["path"].as_str().expect("path");
            let data = self
                .members
                .get(path)
                .unwrap_or_else(|| panic!("{path} listed but absent"));
            assert_eq!(r["bytes"].as_u64(), Some(data.len() as u64), "{path} size");
            let hex: String = Sha256::digest(data)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(r["sha256"].as_str(), Some(hex.as_str()), "{path} sha256");
            if let Some(stderr) = r["stderr_path"].as_str() {
                assert!(
                    self.members.contains_key(stderr),
                    "{stderr} named but absent"
                );
            }
            listed.insert(path.to_string());
        }
        for path in self.members.keys() {
            assert!(
                path == "manifest.json" || listed.contains(path),
                "{path} not in the manifest"
            );
        }
        assert_eq!(self.manifest["format"], "ctdiag-bundle");
        assert_eq!(self.manifest["format_version"], 1);
        let file = self
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned());
        if file.as_deref().is_some_and(|f| f.ends_with(".tar.gz")) {
            assert_eq!(file, Some(format!("{}.tar.gz", self.top)));
        }
    }
}

/// The one file in `dir`, which must be a finished bundle: nothing else (no temporary file) is left.
pub fn only_bundle_in(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read output dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "exactly one file in {}: {files:?}",
        dir.display()
    );
    let path = files.into_iter().next().unwrap_or_default();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        name.starts_with("ctdiag-") && name.ends_with(".tar.gz"),
        "{name}"
    );
    path
}

/// Runs the binary with `args` plus `-o DIR` and opens the one bundle it must have written.
pub fn collect_into(dir: &Path, args: &[&str]) -> (Bundle, Output) {
    let mut all: Vec<&str> = args.to_vec();
    let d = dir.to_str().expect("UTF-8 temp dir");
    all.extend(["-o", d]);
    let out = run(&all);
    assert!(
        out.status.success(),
        "ctdiag-collect failed: {}",
        stderr(&out)
    );
    let bundle = Bundle::open(&only_bundle_in(dir));
    bundle.assert_consistent();
    (bundle, out)
}

/// Sum of `key=` over the rows of a `conntrack -S` member.
pub fn stat_sum(text: &str, key: &str) -> u64 {
    let prefix = format!("{key}=");
    text.split_ascii_whitespace()
        .filter_map(|t| t.strip_prefix(&prefix))
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}
