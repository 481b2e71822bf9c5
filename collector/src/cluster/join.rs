//! One bundle per node from the parts collected apart: the host part (run on the node, in its
//! pod) and the Cilium part (run here, through `kubectl exec` into the node's agent pod). Members
//! are copied byte for byte, so the hashes each part's manifest records stay true; the manifests
//! are joined: the host's, with its "Cilium not collected here" entries replaced by what the Cilium
//! part collected or by why it could not be. Then the result is read back before it counts as
//! written.

use crate::bundle::{BundleError, BundleWriter, hex};
use flate2::read::GzDecoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("the {part} part is not a readable bundle: {reason}")]
    Unreadable { part: &'static str, reason: String },
    #[error(transparent)]
    Write(#[from] BundleError),
    #[error("the written bundle does not read back: {0}")]
    Verify(String),
}

/// What the Cilium part of a node gave.
pub enum CiliumPart {
    /// A bundle made by `--only cilium`.
    Bundle(PathBuf),
    /// Not collected, and why (no agent pod on the node, lookup failed, …): every Cilium source
    /// of the host part's manifest says so.
    Missing { reason: String, skipped: bool },
}

/// A member made here rather than by a collector (the agent log from `kubectl logs`).
pub struct Extra {
    pub path: String,
    pub argv: Vec<String>,
    pub data: Vec<u8>,
    pub duration_ms: u64,
    pub time: String,
}

/// A member of a part, read for copying.
fn for_each_member(
    path: &Path,
    part: &'static str,
    mut f: impl FnMut(&str, &str, u64, &mut dyn Read) -> Result<(), JoinError>,
) -> Result<(), JoinError> {
    let bad = |reason: String| JoinError::Unreadable { part, reason };
    let file = File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let Some((top, rest)) = name.split_once('/') else {
            return Err(bad(format!("{name}: not under a top folder")));
        };
        let (top, rest) = (top.to_string(), rest.to_string());
        let len = entry.header().size().map_err(|e| bad(e.to_string()))?;
        f(&top, &rest, len, &mut entry)?;
    }
    Ok(())
}

fn read_manifest(data: &mut dyn Read, part: &'static str) -> Result<Value, JoinError> {
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes)
        .map_err(|e| JoinError::Unreadable {
            part,
            reason: e.to_string(),
        })?;
    serde_json::from_slice(&bytes).map_err(|e| JoinError::Unreadable {
        part,
        reason: format!("manifest.json: {e}"),
    })
}

/// Writes `<dir>/<top>.tar.gz` from the host part, the Cilium part and the extras.
pub fn join(
    host: &Path,
    cilium: &CiliumPart,
    extras: &[Extra],
    dir: &Path,
) -> Result<PathBuf, JoinError> {
    // The top folder and the manifest come first: the manifest is the archive's last member.
    let mut top = None;
    let mut host_manifest = None;
    for_each_member(host, "host", |t, path, _, data| {
        top.get_or_insert_with(|| t.to_string());
        if path == "manifest.json" {
            host_manifest = Some(read_manifest(data, "host")?);
        }
        Ok(())
    })?;
    let (Some(top), Some(mut manifest)) = (top, host_manifest) else {
        return Err(JoinError::Unreadable {
            part: "host",
            reason: "no manifest.json".into(),
        });
    };
    let mtime = std::fs::metadata(host)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let mut writer = BundleWriter::in_dir(dir, &top, mtime)?;
    for_each_member(host, "host", |_, path, len, data| {
        if path != "manifest.json" {
            writer.append(path, data, len)?;
        }
        Ok(())
    })?;

    let is_cilium = |v: &Value| v["path"].as_str().is_some_and(|p| p.starts_with("cilium/"));
    let mut failed: Vec<Value> = manifest["failed"].as_array().cloned().unwrap_or_default();
    let mut members: Vec<Value> = manifest["members"].as_array().cloned().unwrap_or_default();
    match cilium {
        CiliumPart::Bundle(path) => {
            let mut cil_manifest = None;
            for_each_member(path, "cilium", |_, p, len, data| {
                if p == "manifest.json" {
                    cil_manifest = Some(read_manifest(data, "cilium")?);
                } else if p.starts_with("cilium/") {
                    writer.append(p, data, len)?;
                }
                Ok(())
            })?;
            let cil = cil_manifest.unwrap_or(Value::Null);
            failed.retain(|f| !is_cilium(f));
            let mine = |key: &str| {
                cil[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|v| is_cilium(v))
                    .cloned()
                    .collect::<Vec<_>>()
            };
            members.extend(mine("members"));
            failed.extend(mine("failed"));
        }
        CiliumPart::Missing { reason, skipped } => {
            for f in failed.iter_mut().filter(|f| is_cilium(f)) {
                f["error"] = json!(if *skipped {
                    format!("skipped: {reason}")
                } else {
                    reason.clone()
                });
                f["skipped"] = json!(skipped);
            }
        }
    }
    for x in extras {
        let stored = writer.append_bytes(&x.path, &x.data)?;
        members.push(json!({
            "path": x.path,
            "source": x.argv.join(" "),
            "argv": x.argv,
            "file": null,
            "fallback_for": null,
            "exit_status": 0,
            "duration_ms": x.duration_ms,
            "bytes": stored.bytes,
            "sha256": stored.sha256,
            "truncated": false,
            "sample": null,
            "time": x.time,
            "stderr_path": null,
        }));
    }
    manifest["members"] = Value::Array(members);
    manifest["failed"] = Value::Array(failed);
    let mut json = serde_json::to_vec_pretty(&manifest).map_err(|e| JoinError::Unreadable {
        part: "host",
        reason: e.to_string(),
    })?;
    json.push(b'\n');
    writer.append_bytes("manifest.json", &json)?;
    let path = writer
        .finish()?
        .ok_or_else(|| JoinError::Verify("no file was written".into()))?;
    if let Err(e) = verify(&path) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// Reads a bundle back: gzip and tar readable to the end, one top folder, a v1 manifest, and every
/// member it lists present with its size and sha256. Returns the number of members.
pub fn verify(path: &Path) -> Result<usize, JoinError> {
    let bad = |e: &dyn std::fmt::Display| JoinError::Verify(e.to_string());
    let mut found: Vec<(String, u64, String)> = Vec::new();
    let mut manifest = None;
    let mut tops = std::collections::BTreeSet::new();
    let file = File::open(path).map_err(|e| bad(&e))?;
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    for entry in archive.entries().map_err(|e| bad(&e))? {
        let mut entry = entry.map_err(|e| bad(&e))?;
        let name = entry
            .path()
            .map_err(|e| bad(&e))?
            .to_string_lossy()
            .into_owned();
        let (top, rest) = name.split_once('/').unwrap_or((&name, ""));
        tops.insert(top.to_string());
        let rest = rest.to_string();
        if rest == "manifest.json" {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(|e| bad(&e))?;
            manifest = Some(serde_json::from_slice::<Value>(&bytes).map_err(|e| bad(&e))?);
        } else {
            let mut hasher = Sha256::new();
            let n = io::copy(&mut entry, &mut HashWriter(&mut hasher)).map_err(|e| bad(&e))?;
            found.push((rest, n, hex(&hasher.finalize())));
        }
    }
    if tops.len() != 1 {
        return Err(JoinError::Verify(format!("{} top folders", tops.len())));
    }
    let manifest = manifest.ok_or_else(|| JoinError::Verify("no manifest.json".into()))?;
    if manifest["format"] != "ctdiag-bundle" || manifest["format_version"] != 1 {
        return Err(JoinError::Verify("manifest is not bundle format 1".into()));
    }
    let listed = manifest["members"].as_array().cloned().unwrap_or_default();
    for m in &listed {
        let p = m["path"].as_str().unwrap_or_default();
        match found.iter().find(|f| f.0 == p) {
            None => return Err(JoinError::Verify(format!("{p} listed but absent"))),
            Some((_, n, sha)) if m["bytes"] != *n || m["sha256"] != *sha => {
                return Err(JoinError::Verify(format!("{p}: size or sha256 differs")));
            }
            Some(_) => {}
        }
    }
    Ok(found.len() + 1)
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(dir: &Path, top: &str, members: &[(&str, &[u8])], failed: Value) -> PathBuf {
        let mut w = BundleWriter::in_dir(dir, top, 0).unwrap();
        let mut records = Vec::new();
        for (p, data) in members {
            let s = w.append_bytes(p, data).unwrap();
            records.push(json!({"path": p, "bytes": s.bytes, "sha256": s.sha256}));
        }
        let manifest = json!({"format": "ctdiag-bundle", "format_version": 1, "node": "n1",
                              "members": records, "failed": failed});
        w.append_bytes("manifest.json", &serde_json::to_vec(&manifest).unwrap())
            .unwrap();
        w.finish().unwrap().unwrap()
    }

    #[test]
    fn the_cilium_part_replaces_the_hosts_cilium_entries_and_hashes_stay_true() {
        let parts = tempfile::tempdir().unwrap();
        let host_dir = parts.path().join("h");
        let cil_dir = parts.path().join("c");
        std::fs::create_dir_all(&host_dir).unwrap();
        std::fs::create_dir_all(&cil_dir).unwrap();
        let host = bundle(
            &host_dir,
            "ctdiag-n1-t",
            &[("conntrack/count.0.txt", b"5\n")],
            json!([{"path": "cilium/status.txt", "error": "skipped: --only host", "skipped": true},
                   {"path": "ipvs/connections.txt", "error": "skipped", "skipped": true}]),
        );
        let cil = bundle(
            &cil_dir,
            "ctdiag-n1-u",
            &[("cilium/status.txt", b"KubeProxyReplacement: False\n")],
            json!([{"path": "cilium/monitor-drop.txt", "error": "skipped: not requested", "skipped": true}]),
        );
        let out = tempfile::tempdir().unwrap();
        let extra = Extra {
            path: "cilium/agent-log.txt".into(),
            argv: vec!["kubectl".into(), "logs".into()],
            data: b"level=info msg=x\n".to_vec(),
            duration_ms: 3,
            time: "2026-11-25T13:40:00.000Z".into(),
        };
        let path = join(&host, &CiliumPart::Bundle(cil), &[extra], out.path()).unwrap();
        assert_eq!(path, out.path().join("ctdiag-n1-t.tar.gz"));
        assert_eq!(verify(&path).unwrap(), 4);
        let mut manifest = None;
        for_each_member(&path, "joined", |_, p, _, data| {
            if p == "manifest.json" {
                manifest = Some(read_manifest(data, "joined")?);
            }
            Ok(())
        })
        .unwrap();
        let m = manifest.unwrap();
        let paths = |k: &str| -> Vec<String> {
            m[k].as_array()
                .unwrap()
                .iter()
                .map(|v| v["path"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            paths("members"),
            [
                "conntrack/count.0.txt",
                "cilium/status.txt",
                "cilium/agent-log.txt"
            ]
        );
        assert_eq!(
            paths("failed"),
            ["ipvs/connections.txt", "cilium/monitor-drop.txt"]
        );
    }

    #[test]
    fn without_an_agent_pod_the_cilium_entries_say_why() {
        let parts = tempfile::tempdir().unwrap();
        let host = bundle(
            parts.path(),
            "ctdiag-n1-t",
            &[],
            json!([{"path": "cilium/status.txt", "error": "skipped: --only host", "skipped": true}]),
        );
        let out = tempfile::tempdir().unwrap();
        let missing = CiliumPart::Missing {
            reason: "no Cilium agent pod on this node".into(),
            skipped: true,
        };
        let path = join(&host, &missing, &[], out.path()).unwrap();
        let mut text = String::new();
        let mut archive = tar::Archive::new(GzDecoder::new(File::open(&path).unwrap()));
        for e in archive.entries().unwrap() {
            e.unwrap().read_to_string(&mut text).unwrap();
        }
        assert!(
            text.contains("skipped: no Cilium agent pod on this node"),
            "{text}"
        );
    }

    #[test]
    fn a_damaged_bundle_fails_verification() {
        let dir = tempfile::tempdir().unwrap();
        let p = bundle(dir.path(), "ctdiag-n1-t", &[("a.txt", b"x\n")], json!([]));
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(verify(&p), Err(JoinError::Verify(_))));
    }
}
