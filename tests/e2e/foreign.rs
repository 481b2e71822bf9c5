//! Other tools' archives, as support tickets carry them: sos reports (and `sos collect`), cilium
//! sysdumps, troubleshoot.sh support bundles, the EKS and Rancher log collectors.
//!
//! No sos, cilium-cli, troubleshoot or collector script can run here (no cluster, no Cilium
//! agent), so each archive is built in its tool's own layout, file names and compression, as the
//! tools' sources write them (docs/bundle-format.md cites them), from the member texts of the
//! samples: real command outputs. Each node's facts and verdict are then checked against the
//! same texts read as a ctdiag bundle of one sample.

use crate::util::analyze_json;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The member texts of a sample bundle, by v1 path (top folder stripped).
fn sample(name: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples")
        .join(name);
    let archive = std::fs::read_dir(&dir)
        .expect("sample dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .expect("sample bundle");
    let mut out = BTreeMap::new();
    let file = std::fs::File::open(archive).expect("open sample");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let rel = path
            .split_once('/')
            .map(|(_, r)| r.to_string())
            .unwrap_or(path);
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read");
        out.insert(rel, data);
    }
    out
}

/// The last sample of a sampled source (`conntrack/stats.1.txt`).
fn last<'a>(m: &'a BTreeMap<String, Vec<u8>>, stem: &str) -> Option<&'a [u8]> {
    m.iter()
        .filter_map(|(p, d)| {
            let n: u32 = p
                .strip_prefix(stem)?
                .strip_prefix('.')?
                .strip_suffix(".txt")?
                .parse()
                .ok()?;
            Some((n, d.as_slice()))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, d)| d)
}

/// The baseline: the sample read as a ctdiag directory holding one sample of each source, so
/// that it carries what another tool's single snapshot carries.
fn baseline(m: &BTreeMap<String, Vec<u8>>) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    for (stem, to) in [
        ("conntrack/stats", "conntrack/stats.0.txt"),
        ("conntrack/count", "conntrack/count.0.txt"),
        ("conntrack/proc-stat", "conntrack/proc-stat.0.txt"),
        ("cilium/metrics", "cilium/metrics.0.txt"),
    ] {
        if let Some(d) = last(m, stem) {
            write(dir.path(), to, d);
        }
    }
    for p in [
        "conntrack/list.txt",
        "sysctl/net.txt",
        "kernel/dmesg.txt",
        "node/uname.txt",
        "node/meminfo.txt",
        "cilium/ct-list-global.txt",
        "cilium/config.txt",
        "cilium/status.txt",
        "cilium/agent-log.txt",
    ] {
        if let Some(d) = m.get(p) {
            write(dir.path(), p, d);
        }
    }
    analyze_json(&[dir.path()]).0
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

/// One entry of an archive under construction.
enum E {
    File(String, Vec<u8>),
    Link(String, String),
}

fn file(p: &str, d: impl AsRef<[u8]>) -> E {
    E::File(p.to_string(), d.as_ref().to_vec())
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::File(p, d) if p.starts_with("./") => {
                // GNU tar keeps the `./` that `tar -C DIR .` gives; the tar crate's path setter
                // would drop it, so the name is written as is.
                let mut h = tar::Header::new_gnu();
                h.as_old_mut().name[..p.len()].copy_from_slice(p.as_bytes());
                h.set_size(d.len() as u64);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_cksum();
                b.append(&h, d.as_slice()).expect("append");
            }
            E::File(p, d) => {
                let mut h = tar::Header::new_gnu();
                h.set_size(d.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, p, d.as_slice()).expect("append");
            }
            E::Link(p, t) => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                b.append_link(&mut h, p, t).expect("link");
            }
        }
    }
    b.into_inner().expect("tar")
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut w =
        lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(6)).expect("xz");
    w.write_all(data).expect("xz");
    w.finish().expect("xz")
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    w.write_all(data).expect("gz");
    w.finish().expect("gz")
}

fn zip_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (p, d) in entries {
        w.start_file(p.as_str(), opts).expect("zip entry");
        w.write_all(d).expect("zip data");
    }
    w.finish().expect("zip").into_inner()
}

/// Unpacks entries into a directory, links as links: the same archive "as unpacked".
fn unpack(entries: &[E], root: &Path) {
    for e in entries {
        match e {
            E::File(p, d) => write(root, p, d),
            E::Link(p, t) => {
                let at = root.join(p);
                std::fs::create_dir_all(at.parent().expect("parent")).expect("mkdir");
                std::os::unix::fs::symlink(t, at).expect("symlink");
            }
        }
    }
}

fn save(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write archive");
    p
}

/// A sos 4.x report of one node from a sample's texts, in sos's own member order (version.txt,
/// sos_reports/, sos_logs/ first, then sorted) and links (proc/net → self/net, proc/self → pid).
fn sos_report(m: &BTreeMap<String, Vec<u8>>, host: &str) -> Vec<E> {
    let r = format!("sosreport-{host}-2026-11-25-qpkxdid");
    let at = |p: &str| format!("{r}/{p}");
    let mut e = vec![
        file(&at("version.txt"), "sos report: 4.12.0"),
        file(
            &at("sos_reports/manifest.json"),
            r#"{"version": "4.12.0", "cmdline": "report --batch", "start_time": "Wed Nov 25 09:41:00 2026"}"#,
        ),
        file(
            &at("sos_logs/sos.log"),
            "2026-11-25 09:41:00,001 INFO: sos report 4.12.0\n",
        ),
        // A configuration file asking for another max: never the running value.
        file(
            &at("etc/sysctl.d/99-kubernetes.conf"),
            "net.netfilter.nf_conntrack_max = 9999999\n",
        ),
        E::Link(at("etc/sysctl.d/99-sysctl.conf"), "../sysctl.conf".into()),
        file(&at("etc/sysctl.conf"), "net.core.somaxconn = 4096\n"),
        E::Link(at("hostname"), "sos_commands/host/hostname".into()),
    ];
    if let Some(d) = last(m, "conntrack/proc-stat") {
        e.push(file(&at("proc/4242/net/stat/nf_conntrack"), d));
    }
    e.push(file(&at("proc/meminfo"), &m["node/meminfo.txt"]));
    e.push(E::Link(at("proc/net"), "self/net".into()));
    e.push(E::Link(at("proc/self"), "4242".into()));
    if let Some(count) = last(m, "conntrack/count") {
        e.push(file(
            &at("proc/sys/net/netfilter/nf_conntrack_count"),
            count,
        ));
    }
    if let Some(l) = m.get("conntrack/list.txt") {
        e.push(file(
            &at("sos_commands/conntrack/conntrack_-L_-o_extended"),
            l,
        ));
    }
    if let Some(s) = last(m, "conntrack/stats") {
        e.push(file(&at("sos_commands/conntrack/conntrack_-S"), s));
    }
    // A pod namespace's own statistics: a namespace, never a second sample of the host.
    e.push(file(
        &at("sos_commands/conntrack/ip_netns_exec_cni-5f2c1a3e-1b2c-4d5e-8f90-123456789abc_conntrack_-S"),
        "cpu=0   \tfound=0 invalid=0 insert=0 insert_failed=3 drop=3 early_drop=0 error=0 search_restart=0\n",
    ));
    e.push(file(&at("sos_commands/host/hostname"), format!("{host}\n")));
    if let Some(d) = m.get("kernel/dmesg.txt") {
        e.push(file(&at("sos_commands/kernel/dmesg"), d));
    }
    e.push(file(
        &at("sos_commands/kernel/sysctl_-a"),
        &m["sysctl/net.txt"],
    ));
    e.push(file(
        &at("sos_commands/kernel/uname_-a"),
        &m["node/uname.txt"],
    ));
    e.push(file(
        &at("sos_commands/process/ps_auxwwwm"),
        "USER PID %CPU %MEM VSZ RSS TTY STAT START TIME COMMAND\n",
    ));
    // One integer files that are no count.
    e.push(file(&at("sys/class/net/eth0/mtu"), "9001\n"));
    e.push(file(
        &at("sys/module/nf_conntrack/parameters/hashsize"),
        "262144\n",
    ));
    e.push(E::Link(at("uname"), "sos_commands/kernel/uname_-a".into()));
    e
}

fn node<'a>(r: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    r["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["node"] == name || n["facts"]["node"]["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {}", nodes(r).join(", ")))
}

fn nodes(r: &serde_json::Value) -> Vec<String> {
    r["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| {
                    n["facts"]["node"]["name"]
                        .as_str()
                        .unwrap_or("?")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn cause(n: &serde_json::Value) -> Option<&str> {
    n["likely_cause"]["id"].as_str()
}

/// The facts another tool's snapshot must reproduce: the table's size and fill, its losses,
/// the kernel log's count, the Cilium CT maps.
fn assert_same_facts(got: &serde_json::Value, want: &serde_json::Value) {
    let g = &got["facts"];
    let w = &want["nodes"][0]["facts"];
    for path in [
        "/nf/max",
        "/nf/count",
        "/nf/stats/drop",
        "/nf/stats/insert_failed",
        "/nf/stats/early_drop",
        "/nf/dmesg/table_full",
        "/nf/list/entries",
        "/cilium/ct/entries",
    ] {
        assert_eq!(g.pointer(path), w.pointer(path), "{path}");
    }
    assert_eq!(cause(got), cause(&want["nodes"][0]), "likely cause");
}

#[test]
fn a_sos_report_as_sent_and_unpacked_gives_the_facts_its_own_files_say() {
    let m = sample("undersized-table");
    let want = baseline(&m);
    let entries = sos_report(&m, "wrk-xlarge-12");
    let dir = tempfile::tempdir().expect("tempdir");
    let sent = save(
        dir.path(),
        "sosreport-wrk-xlarge-12-2026-11-25-qpkxdid.tar.xz",
        &xz(&tar_of(&entries)),
    );
    let unpacked = dir.path().join("unpacked");
    unpack(&entries, &unpacked);
    for input in [
        sent,
        unpacked.join("sosreport-wrk-xlarge-12-2026-11-25-qpkxdid"),
    ] {
        let (r, out) = analyze_json(&[&input]);
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            r["nodes"].as_array().map(Vec::len),
            Some(1),
            "{}",
            input.display()
        );
        let n = &r["nodes"][0];
        assert_same_facts(n, &want);
        assert_eq!(n["bundle"]["collector"], "sos report 4.12.0");
        // /etc/sysctl.d asked for 9999999: configuration, not the running max.
        assert_ne!(n["facts"]["nf"]["max"], 9_999_999);
        // The pod namespace's drops are its own.
        let ns = n["facts"]["nf"]["netns"]["namespaces"]
            .as_array()
            .expect("namespaces");
        assert!(
            ns.iter().any(
                |f| f["path"] == "/run/netns/cni-5f2c1a3e-1b2c-4d5e-8f90-123456789abc"
                    && f["drop"] == 3
            ),
            "{ns:?}"
        );
        // /proc/net/stat/nf_conntrack reached through proc/net → self/net → 4242/net.
        let members = n["bundle"]["members"].as_array().expect("members");
        assert!(
            members.iter().any(|mm| mm["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("proc/4242/net/stat/nf_conntrack"))
                && mm["kind"] == "/proc/net/stat/nf_conntrack"),
            "{members:?}"
        );
        // The /sys integers are no conntrack -C.
        assert!(
            !members.iter().any(|mm| mm["kind"] == "conntrack -C"),
            "{members:?}"
        );
    }
}

#[test]
fn sos_collect_gives_one_report_per_node_and_the_cause_on_the_hot_one() {
    let hot = sample("undersized-table");
    let calm = sample("healthy");
    let want_hot = baseline(&hot);
    let want_calm = baseline(&calm);
    // sos collect ≥ 4.10: an uncompressed tar of each node's .tar.xz, with its own logs.
    let outer = tar_of(&[
        file(
            "sos-collector-2026-11-25-abcde/sos_logs/sos.log",
            "collect\n",
        ),
        file(
            "sos-collector-2026-11-25-abcde/sos_reports/manifest.json",
            r#"{"version": "4.12.0", "components": {"collect": {"node_list": ["wrk-xlarge-12", "wrk-large-07"]}}}"#,
        ),
        file(
            "sos-collector-2026-11-25-abcde/sosreport-wrk-xlarge-12-2026-11-25-qpkxdid.tar.xz",
            xz(&tar_of(&sos_report(&hot, "wrk-xlarge-12"))),
        ),
        file(
            "sos-collector-2026-11-25-abcde/sosreport-wrk-large-07-2026-11-25-zzqwert.tar.xz",
            xz(&tar_of(&sos_report(&calm, "wrk-large-07"))),
        ),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = save(dir.path(), "sos-collector-2026-11-25-abcde.tar", &outer);
    let (r, _) = analyze_json(&[&path]);
    assert_eq!(nodes(&r).len(), 2, "{:?}", nodes(&r));
    assert_same_facts(node(&r, "wrk-xlarge-12"), &want_hot);
    assert_same_facts(node(&r, "wrk-large-07"), &want_calm);
    assert_ne!(
        cause(node(&r, "wrk-xlarge-12")),
        cause(node(&r, "wrk-large-07"))
    );
}

/// A cilium sysdump of two agents: one bugtool extracted (cilium-cli's normal layout), the
/// other kept as its .tar.gz (extraction failed), both read.
fn sysdump(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    let top = "cilium-sysdump-20261125-094117";
    let cmd = |m: &BTreeMap<String, Vec<u8>>| {
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        let mut put = |name: &str, d: Option<&[u8]>| {
            if let Some(d) = d {
                out.push((format!("cmd/{name}"), d.to_vec()));
            }
        };
        put(
            "cilium-dbg-bpf-ct-list-global.md",
            m.get("cilium/ct-list-global.txt").map(Vec::as_slice),
        );
        put("cilium-dbg-bpf-metrics-list.md", last(m, "cilium/metrics"));
        put(
            "cilium-dbg-status---verbose.md",
            m.get("cilium/status.txt").map(Vec::as_slice),
        );
        put(
            "cilium-dbg-config--a.md",
            m.get("cilium/config.txt").map(Vec::as_slice),
        );
        put("sysctl--a.md", m.get("sysctl/net.txt").map(Vec::as_slice));
        put("uname--a.md", m.get("node/uname.txt").map(Vec::as_slice));
        put("hostname.md", Some(b"ignored\n"));
        out
    };
    let mut z = vec![
        (
            format!("{top}/cilium-sysdump.log"),
            "🔍 Collecting sysdump with cilium-cli version: v0.18.4, args: [sysdump]\n".as_bytes().to_vec(),
        ),
        (
            format!("{top}/k8s-pods-20261125-094117.yaml"),
            b"apiVersion: v1\nitems:\n- metadata:\n    name: cilium-5xk2p\n    namespace: kube-system\n    uid: 0b6c1d2e-0000-4000-8000-000000000001\n  spec:\n    nodeName: edge-cil-04\n  status:\n    podIP: 10.0.0.4\nkind: PodList\nmetadata:\n  resourceVersion: \"1\"\n".to_vec(),
        ),
    ];
    for (p, d) in cmd(a) {
        z.push((
            format!("{top}/cilium-bugtool-cilium-5xk2p-20261125-094117/{p}"),
            d,
        ));
    }
    if let Some(log) = a.get("cilium/agent-log.txt") {
        z.push((
            format!("{top}/logs-cilium-5xk2p-cilium-agent-20261125-094117.log"),
            log.clone(),
        ));
    }
    let inner: Vec<E> = cmd(b)
        .into_iter()
        .map(|(p, d)| {
            E::File(
                format!("cilium-bugtool-20261125-094032.417+0000-UTC-2771934589/{p}"),
                d,
            )
        })
        .collect();
    z.push((
        format!("{top}/cilium-bugtool-cilium-q8wzd-20261125-094117.tar.gz"),
        gz(&tar_of(&inner)),
    ));
    z
}

#[test]
fn a_cilium_sysdump_gives_one_report_per_agent_in_both_bugtool_layouts() {
    let full = sample("cilium-ct-full");
    let calm = sample("cilium-healthy");
    let (want_full, want_calm) = (baseline(&full), baseline(&calm));
    let entries = sysdump(&full, &calm);
    let dir = tempfile::tempdir().expect("tempdir");
    let sent = save(
        dir.path(),
        "cilium-sysdump-20261125-094117.zip",
        &zip_of(&entries),
    );
    let unpacked = dir.path().join("unpacked");
    for (p, d) in &entries {
        write(&unpacked, p, d);
    }
    for input in [sent, unpacked.join("cilium-sysdump-20261125-094117")] {
        let (r, _) = analyze_json(&[&input]);
        assert_eq!(
            r["nodes"].as_array().map(Vec::len),
            Some(2),
            "{}: {:?}",
            input.display(),
            nodes(&r)
        );
        let names = nodes(&r);
        let full_name = want_full["nodes"][0]["facts"]["node"]["name"]
            .as_str()
            .expect("name");
        let calm_name = want_calm["nodes"][0]["facts"]["node"]["name"]
            .as_str()
            .expect("name");
        assert!(
            names.iter().any(|n| n == full_name) && names.iter().any(|n| n == calm_name),
            "{names:?}"
        );
        for (name, want) in [(full_name, &want_full), (calm_name, &want_calm)] {
            let n = node(&r, name);
            assert_eq!(n["bundle"]["collector"], "cilium sysdump 0.18.4");
            let g = &n["facts"]["cilium"];
            let w = &want["nodes"][0]["facts"]["cilium"];
            assert_eq!(g.pointer("/ct/entries"), w.pointer("/ct/entries"), "{name}");
            assert_eq!(
                n["facts"]["nf"]["max"], want["nodes"][0]["facts"]["nf"]["max"],
                "{name}"
            );
            assert_eq!(cause(n), cause(&want["nodes"][0]), "{name}");
        }
    }
}

/// sysctl -a as troubleshoot's sysctl collector stores it: a compact JSON map.
fn sysctl_json(text: &[u8]) -> Vec<u8> {
    let map: BTreeMap<String, String> = String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    serde_json::to_vec(&map).expect("json")
}

#[test]
fn a_troubleshoot_bundle_with_remote_host_collectors_gives_one_report_per_listed_node() {
    let hot = sample("undersized-table");
    let calm = sample("healthy");
    let (want_hot, want_calm) = (baseline(&hot), baseline(&calm));
    let top = "support-bundle-2026-11-25T09_41_17";
    let mut e = vec![
        file(
            &format!("{top}/version.yaml"),
            "apiVersion: troubleshoot.sh/v1beta2\nkind: SupportBundle\nspec:\n  versionNumber: 0.133.0\n",
        ),
        file(&format!("{top}/analysis.json"), "[]"),
        file(
            &format!("{top}/host-collectors/system/node_list.json"),
            "{\n  \"nodes\": [\n    \"node-a\",\n    \"node-b\"\n  ]\n}",
        ),
        // A local copy collector's folder beside the node folders: no node.
        file(
            &format!("{top}/host-collectors/kernel-logs/nf_conntrack_count"),
            "1\n",
        ),
    ];
    for (n, m) in [("node-a", &hot), ("node-b", &calm)] {
        let at = |p: &str| format!("{top}/host-collectors/{n}/{p}");
        e.push(file(
            &at("system/sysctl.json"),
            sysctl_json(&m["sysctl/net.txt"]),
        ));
        e.push(file(
            &at("run-host/conntrack-stats.txt"),
            last(m, "conntrack/stats").expect("stats"),
        ));
        e.push(file(&at("run-host/conntrack-stats-info.json"), r#"{"command":"/usr/sbin/conntrack -S","exitCode":"0","error":"","outputDir":"","input":"","env":[]}"#));
        e.push(file(
            &at("run-host/conntrack-list.txt"),
            &m["conntrack/list.txt"],
        ));
        e.push(file(&at("run-host/dmesg.txt"), &m["kernel/dmesg.txt"]));
        e.push(file(&at("run-host/uname.txt"), &m["node/uname.txt"]));
        e.push(file(
            &at("conntrack-count/nf_conntrack_count"),
            last(m, "conntrack/count").expect("count"),
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sent = save(
        dir.path(),
        "support-bundle-2026-11-25T09_41_17.tar.gz",
        &gz(&tar_of(&e)),
    );
    let unpacked = dir.path().join("unpacked");
    unpack(&e, &unpacked);
    for input in [sent, unpacked.join(top)] {
        let (r, _) = analyze_json(&[&input]);
        assert_eq!(nodes(&r).len(), 2, "{}: {:?}", input.display(), nodes(&r));
        for (i, want) in [&want_hot, &want_calm].into_iter().enumerate() {
            let n = &r["nodes"][i];
            assert_eq!(
                n["bundle"]["collector"],
                "troubleshoot.sh support bundle 0.133.0"
            );
            assert_same_facts(n, want);
        }
    }
}

fn eks_archive(m: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    gz(&tar_of(&eks_entries(m)))
}

fn eks_entries(m: &BTreeMap<String, Vec<u8>>) -> Vec<E> {
    let mut conntrack = b"*** Output of conntrack -S *** \n".to_vec();
    conntrack.extend_from_slice(last(m, "conntrack/stats").expect("stats"));
    conntrack.extend_from_slice(b"*** Output of conntrack -L ***\n");
    conntrack.extend_from_slice(&m["conntrack/list.txt"]);
    // `tar --directory=DIR .`: every member spelled ./…, no top folder, readdir order.
    vec![
        file(
            "./system/top.txt",
            "top - 14:03:40 up 12 days,  3:01,  0 users,  load average: 2.10, 1.80, 1.75\n",
        ),
        file(
            "./system/script-params.txt",
            "ignore_introspection: false\nignore_metrics: false\n",
        ),
        file("./networking/conntrack.txt", conntrack),
        file(
            "./networking/conntrack6.txt",
            "*** Output of conntrack -L -f ipv6 ***\n",
        ),
        file("./sysctls/sysctl_all.txt", &m["sysctl/net.txt"]),
        file("./kernel/dmesg.current", &m["kernel/dmesg.txt"]),
        // The same ring buffer again, with wall-clock stamps: the same events, counted once.
        file("./kernel/dmesg.human.current", &m["kernel/dmesg.txt"]),
        file("./kernel/uname.txt", &m["node/uname.txt"]),
        file("./ipamd/metrics.json", "{}"),
    ]
}

#[test]
fn eks_and_rancher_archives_give_the_facts_of_their_files_and_a_zip_of_them_one_node_each() {
    let hot = sample("undersized-table");
    let calm = sample("healthy");
    let (want_hot, want_calm) = (baseline(&hot), baseline(&calm));
    let dir = tempfile::tempdir().expect("tempdir");
    let eks = eks_archive(&hot);
    let path = save(
        dir.path(),
        "eks_i-0abc123def4567890_2026-11-25_0941-UTC_0.7.9.tar.gz",
        &eks,
    );
    // Unpacked by the customer into a folder named after the archive, and handed over as the
    // folder holding it.
    let unpacked = dir.path().join("unpacked");
    unpack(
        &eks_entries(&hot),
        &unpacked.join("eks_i-0abc123def4567890_2026-11-25_0941-UTC_0.7.9"),
    );
    for input in [path, unpacked] {
        let (r, _) = analyze_json(&[&input]);
        assert_eq!(nodes(&r).len(), 1, "{}: {:?}", input.display(), nodes(&r));
        assert_same_facts(&r["nodes"][0], &want_hot);
        assert_eq!(r["nodes"][0]["bundle"]["collector"], "EKS log collector");
    }

    // Rancher: `./<host>-<date>/…` (since 2023-09).
    let host = "ip-10-0-1-5-2026-11-25_09_41_17";
    let rancher = gz(&tar_of(&[
        file(
            &format!("./{host}/collector-output.log"),
            "2026-11-25 09:41:17: Collecting system info\n",
        ),
        file(
            &format!("./{host}/systeminfo/conntrack"),
            last(&calm, "conntrack/stats").expect("stats"),
        ),
        file(
            &format!("./{host}/systeminfo/sysctla"),
            &calm["sysctl/net.txt"],
        ),
        file(
            &format!("./{host}/systeminfo/dmesg"),
            &calm["kernel/dmesg.txt"],
        ),
        file(
            &format!("./{host}/systeminfo/uname"),
            &calm["node/uname.txt"],
        ),
        file(
            &format!("./{host}/systeminfo/file-nr"),
            "2048\t0\t9223372036854775807\n",
        ),
        file(&format!("./{host}/networking/iptablessave"), "*nat\n"),
    ]));
    // Rancher's collector records no count: nf.count comes from its sysctl -a, as the file says.
    let path = save(dir.path(), &format!("{host}.tar.gz"), &rancher);
    let (r, _) = analyze_json(&[&path]);
    let n = &r["nodes"][0];
    assert_eq!(n["bundle"]["collector"], "Rancher logs collector");
    let w = &want_calm["nodes"][0]["facts"];
    assert_eq!(n["facts"]["nf"]["max"], w["nf"]["max"]);
    assert_eq!(n["facts"]["nf"]["stats"]["drop"], w["nf"]["stats"]["drop"]);

    // A zip of both, as attached to one ticket: one node each.
    let both = zip_of(&[
        (
            "ticket-4711/eks_i-0abc_2026-11-25_0941-UTC_0.7.9.tar.gz".into(),
            eks,
        ),
        (format!("ticket-4711/{host}.tar.gz"), rancher),
    ]);
    let path = save(dir.path(), "ticket-4711.zip", &both);
    let (r, _) = analyze_json(&[&path]);
    assert_eq!(nodes(&r).len(), 2, "{:?}", nodes(&r));
    let collectors: Vec<&str> = r["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["bundle"]["collector"].as_str())
        .collect();
    assert!(
        collectors.contains(&"EKS log collector") && collectors.contains(&"Rancher logs collector"),
        "{collectors:?}"
    );
}

#[test]
fn the_same_kernel_events_in_dmesg_journal_and_syslog_are_counted_once() {
    // Three copies of one episode as the three logs print it; the rotated kern.log.1 holds an
    // older day of its own, which does add up with kern.log.
    let dmesg = "[ 5.000000] Linux version 6.1.0-28-cloud-amd64\n[86400.100000] nf_conntrack: nf_conntrack: table full, dropping packet\n[86401.200000] nf_conntrack: nf_conntrack: table full, dropping packet\n[86402.300000] nf_conntrack: nf_conntrack: table full, dropping packet\n";
    let journal = "Nov 25 09:40:00 node-1 kernel: nf_conntrack: nf_conntrack: table full, dropping packet\nNov 25 09:40:01 node-1 kernel: nf_conntrack: nf_conntrack: table full, dropping packet\nNov 25 09:40:02 node-1 kernel: nf_conntrack: nf_conntrack: table full, dropping packet\n";
    let older =
        "Nov 24 08:00:00 node-1 kernel: nf_conntrack: nf_conntrack: table full, dropping packet\n";
    let m = sample("healthy");
    let mut e = sos_report(&m, "node-1");
    e.retain(|x| !matches!(x, E::File(p, _) if p.ends_with("sos_commands/kernel/dmesg")));
    let r = "sosreport-node-1-2026-11-25-qpkxdid";
    e.push(file(&format!("{r}/sos_commands/kernel/dmesg"), dmesg));
    e.push(file(
        &format!("{r}/sos_commands/logs/journalctl_--no-pager"),
        journal,
    ));
    e.push(file(&format!("{r}/var/log/kern.log"), journal));
    e.push(file(&format!("{r}/var/log/kern.log.1"), older));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = save(dir.path(), "s.tar.xz", &xz(&tar_of(&e)));
    let (rep, _) = analyze_json(&[&path]);
    let d = &rep["nodes"][0]["facts"]["nf"]["dmesg"];
    // kern.log.1 + kern.log: 4 lines, the most of any one log; never 3 + 3 + 3 + 1.
    assert_eq!(d["table_full"], 4, "{d}");
}

#[test]
fn a_sos_report_of_21k_files_is_read_whole_and_its_unused_files_summarised() {
    // A real sos report holds ~21k files, /sys and /proc copies of one integer among them, and
    // links between them; only the inputs are read and the rest is one note, not 21k lines.
    let m = sample("healthy");
    let mut e = sos_report(&m, "wrk-large-07");
    let r = "sosreport-wrk-large-07-2026-11-25-qpkxdid";
    for i in 0..21_000 {
        e.push(file(
            &format!("{r}/sys/devices/system/x{}/attr{i}", i / 100),
            format!("{i}\n"),
        ));
    }
    for i in 0..300 {
        e.push(E::Link(
            format!("{r}/etc/alternatives/l{i}"),
            format!("../../sys/devices/system/x{i}/attr{i}"),
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = save(dir.path(), "big.tar", &tar_of(&e));
    let (rep, _) = analyze_json(&[&path]);
    let n = &rep["nodes"][0];
    assert_same_facts(n, &baseline(&m));
    let problems = n["problems"].as_array().expect("problems");
    assert!(problems.len() < 20, "{}", problems.len());
    assert!(
        problems.iter().any(|p| p["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("210") && r.contains("were not read"))),
        "{problems:?}"
    );
    assert!(!problems.iter().any(|p| {
        p["reason"]
            .as_str()
            .is_some_and(|r| r.contains("--max-members"))
    }));
}
