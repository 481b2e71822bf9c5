//! The samples read back the way the analyzer will read them: unpacked from the `.tar.gz`, the
//! manifest checked against the members, the text parsed by splitting on whitespace (independently
//! of the generator's own printers and tally). If a sample stops showing its failure mode, or
//! starts showing another one, these tests say which number moved.

use ctdiag_samples::big::Big;
use ctdiag_samples::conntrack::ListFormat;
use ctdiag_samples::scenarios::DEFAULT_SEED;
use flate2::read::GzDecoder;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const ONE_MB: u64 = 1_000_000;

/// One generation of every sample, shared by the tests of this binary.
fn generated() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("samples-a");
        let _ = fs::remove_dir_all(&dir);
        ctdiag_samples::generate_all(&dir, DEFAULT_SEED).expect("generate samples");
        dir
    })
}

const CASES: [&str; 9] = [
    "healthy",
    "timewait-churn",
    "dns-udp-flood",
    "connection-leak",
    "retry-storm",
    "stale-after-rollout",
    "undersized-table",
    "full-earlier",
    "pressure",
];

/// The samples of the layers beside netfilter (Cilium, kube-proxy).
const LAYER_CASES: [&str; 6] = [
    "cilium-ct-full",
    "cilium-ct-pressure",
    "cilium-gc-lagging",
    "cilium-nat-full",
    "kube-proxy-stalled",
    "cilium-healthy",
];

fn bundle_path(dir: &Path, case: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = fs::read_dir(dir.join(case))
        .expect("case directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    assert_eq!(found.len(), 1, "{case}: exactly one bundle");
    found.remove(0)
}

struct Entry {
    name: String,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    user: String,
    mtime: u64,
    data: Vec<u8>,
}

struct Bundle {
    gzip_mtime: u32,
    gzip_os: u8,
    entries: Vec<Entry>,
    top: String,
}

impl Bundle {
    fn read(path: &Path) -> Bundle {
        let raw = fs::read(path).expect("read bundle");
        let gzip_mtime = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
        let gzip_os = raw[9];
        let mut archive = tar::Archive::new(GzDecoder::new(&raw[..]));
        let mut entries = Vec::new();
        for e in archive.entries().expect("tar entries") {
            let mut e = e.expect("tar entry");
            let h = e.header().clone();
            let name = String::from_utf8(e.path_bytes().into_owned()).expect("UTF-8 name");
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("member data");
            entries.push(Entry {
                name,
                kind: h.entry_type(),
                mode: h.mode().expect("mode"),
                uid: h.uid().expect("uid"),
                gid: h.gid().expect("gid"),
                user: h.username().expect("user").unwrap_or("").to_string(),
                mtime: h.mtime().expect("mtime"),
                data,
            });
        }
        let top = entries
            .first()
            .map(|e| e.name.trim_end_matches('/').to_string())
            .expect("a non-empty archive");
        Bundle {
            gzip_mtime,
            gzip_os,
            entries,
            top,
        }
    }

    fn member(&self, path: &str) -> &[u8] {
        let full = format!("{}/{path}", self.top);
        &self
            .entries
            .iter()
            .find(|e| e.name == full)
            .unwrap_or_else(|| panic!("no member {path}"))
            .data
    }

    fn text(&self, path: &str) -> &str {
        std::str::from_utf8(self.member(path)).expect("UTF-8 member")
    }

    fn manifest(&self) -> serde_json::Value {
        serde_json::from_slice(self.member("manifest.json")).expect("manifest JSON")
    }

    fn int(&self, path: &str) -> u64 {
        self.text(path).trim().parse().expect("one integer")
    }
}

/// The bundle of `case` under `dir`, checked to be named after its top folder.
fn all_bundles(dir: &Path) -> Vec<(&'static str, Bundle)> {
    CASES
        .iter()
        .map(|c| {
            let path = bundle_path(dir, c);
            let b = Bundle::read(&path);
            let name = path.file_name().and_then(|n| n.to_str()).expect("name");
            assert_eq!(
                name,
                format!("{}.tar.gz", b.top),
                "{c}: file named after its folder"
            );
            (*c, b)
        })
        .collect()
}

fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for case in CASES.iter().chain(&LAYER_CASES) {
        for e in fs::read_dir(dir.join(case)).expect("case dir") {
            let p = e.expect("entry").path();
            let rel = p.strip_prefix(dir).expect("under dir").to_path_buf();
            out.insert(rel, fs::read(&p).expect("read"));
        }
    }
    out.insert(
        PathBuf::from("README.md"),
        fs::read(dir.join("README.md")).expect("index README"),
    );
    out
}

#[test]
fn regenerating_is_byte_identical() {
    let a = generated();
    let b = Path::new(env!("CARGO_TARGET_TMPDIR")).join("samples-b");
    let _ = fs::remove_dir_all(&b);
    ctdiag_samples::generate_all(&b, DEFAULT_SEED).expect("second generation");
    let (fa, fb) = (files_under(a), files_under(&b));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (path, bytes) in &fa {
        assert!(
            bytes == &fb[path],
            "{} differs between runs",
            path.display()
        );
    }
}

#[test]
fn committed_samples_match_a_fresh_generation() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fresh = files_under(generated());
    let old = files_under(&committed);
    let stale: Vec<_> = fresh
        .iter()
        .filter(|(p, b)| old.get(*p) != Some(*b))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        stale.is_empty() && old.len() == fresh.len(),
        "samples/ is out of date ({stale:?}); run `cargo run -p ctdiag-samples -- all` and commit"
    );
}

#[test]
fn every_bundle_is_under_one_megabyte() {
    for case in CASES.iter().chain(&LAYER_CASES) {
        let size = fs::metadata(bundle_path(generated(), case))
            .expect("bundle")
            .len();
        assert!(size < ONE_MB, "{case}: {size} bytes");
    }
}

const MEMBERS: [&str; 17] = [
    "node/uname.txt",
    "node/os-release.txt",
    "node/meminfo.txt",
    "node/cpus.txt",
    "node/uptime.txt",
    "kernel/dmesg.txt",
    "sysctl/net.txt",
    "sysctl/net.stderr.txt",
    "conntrack/stats.0.txt",
    "conntrack/proc-stat.0.txt",
    "conntrack/count.0.txt",
    "conntrack/list.txt",
    "conntrack/list.stderr.txt",
    "conntrack/stats.1.txt",
    "conntrack/proc-stat.1.txt",
    "conntrack/count.1.txt",
    "manifest.json",
];

#[test]
fn archives_have_one_top_folder_pinned_headers_and_the_manifest_last() {
    for (case, b) in all_bundles(generated()) {
        assert_eq!(b.gzip_mtime, 0, "{case}: gzip mtime");
        assert_eq!(b.gzip_os, 3, "{case}: gzip OS");
        let files: Vec<&str> = b
            .entries
            .iter()
            .filter(|e| e.kind == tar::EntryType::Regular)
            .map(|e| {
                e.name
                    .strip_prefix(&format!("{}/", b.top))
                    .unwrap_or_else(|| panic!("{case}: {} outside the top folder", e.name))
            })
            .collect();
        assert_eq!(files, MEMBERS, "{case}: member order");
        assert_eq!(b.entries[0].name, format!("{}/", b.top));
        let m = b.manifest();
        let start = secs(m["started_at"].as_str().expect("started_at"));
        let end = secs(m["finished_at"].as_str().expect("finished_at"));
        for e in &b.entries {
            assert_eq!(
                (e.uid, e.gid, e.user.as_str()),
                (0, 0, "root"),
                "{}",
                e.name
            );
            let want = if e.kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            };
            assert_eq!(e.mode, want, "{}", e.name);
            assert!(e.mtime >= start && e.mtime <= end, "{}: mtime", e.name);
        }
        assert!(
            b.top
                .starts_with(&format!("ctdiag-{}-", m["node"].as_str().unwrap()))
        );
    }
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS(.mmm)Z`, for ordering only.
fn secs(t: &str) -> u64 {
    let d: Vec<u64> = t[..19]
        .split(|c: char| !c.is_ascii_digit())
        .map(|x| x.parse().expect("digits"))
        .collect();
    let days = ctdiag_samples::bundle::days_from_civil(d[0] as i64, d[1] as u32, d[2] as u32);
    days as u64 * 86_400 + d[3] * 3600 + d[4] * 60 + d[5]
}

fn millis(t: &str) -> u64 {
    secs(t) * 1000 + t[20..23].parse::<u64>().expect("milliseconds")
}

#[test]
fn manifest_describes_every_member_exactly() {
    use sha2::{Digest, Sha256};
    for (case, b) in all_bundles(generated()) {
        let m = b.manifest();
        assert_eq!(m["format"], "ctdiag-bundle");
        assert_eq!(m["format_version"], 1);
        assert_eq!(m["kernel"], "6.1.0-28-cloud-amd64");
        let members = m["members"].as_array().expect("members");
        let mut seen = HashSet::new();
        let mut sample_times: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for mm in members {
            let path = mm["path"].as_str().expect("path");
            let data = b.member(path);
            assert_eq!(
                mm["bytes"].as_u64(),
                Some(data.len() as u64),
                "{case} {path}"
            );
            let sha: String = Sha256::digest(data)
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect();
            assert_eq!(mm["sha256"].as_str(), Some(sha.as_str()), "{case} {path}");
            assert_eq!(mm["exit_status"], 0);
            assert_eq!(mm["truncated"], false);
            assert!(mm["duration_ms"].is_u64());
            assert!(
                mm["argv"].is_array() != mm["file"].is_string(),
                "{path}: argv xor file"
            );
            if let Some(stderr) = mm["stderr_path"].as_str() {
                assert!(!b.member(stderr).is_empty(), "{path}: stderr beside it");
            }
            if let Some(n) = mm["sample"].as_u64() {
                let t = millis(mm["time"].as_str().expect("time on sampled members"));
                sample_times.entry(n).or_default().push(t);
            }
            seen.insert(path.to_string());
        }
        let listed: HashSet<String> = MEMBERS
            .iter()
            .filter(|p| **p != "manifest.json")
            .map(|p| p.to_string())
            .collect();
        assert_eq!(seen, listed, "{case}: members listed");
        let first = |n: u64| *sample_times[&n].iter().min().expect("sample");
        assert_eq!(sample_times.len(), 2);
        assert_eq!(first(1) - first(0), 5_000, "{case}: samples 5 s apart");
        assert!(m["failed"].as_array().is_some_and(|f| !f.is_empty()));
    }
}

/// A conntrack line split on whitespace, the way a lenient parser reads it.
#[derive(Debug, Clone)]
struct Line {
    l3: String,
    proto: String,
    timeout: u32,
    state: Option<String>,
    orig: [String; 4],
    reply: [String; 4],
    unreplied: bool,
    assured: bool,
}

fn parse_line(l: &str) -> Line {
    let t: Vec<&str> = l.split_whitespace().collect();
    assert!(
        matches!((t[0], t[1]), ("ipv4", "2") | ("ipv6", "10")),
        "l3: {l}"
    );
    let proto = t[2].to_string();
    let num = match t[2] {
        "tcp" => "6",
        "udp" => "17",
        "icmp" => "1",
        "icmpv6" => "58",
        other => panic!("protocol {other}"),
    };
    assert_eq!(t[3], num, "{l}");
    let timeout = t[4].parse().expect("timeout");
    let mut i = 5;
    let state = if proto == "tcp" {
        i += 1;
        Some(t[5].to_string())
    } else {
        None
    };
    let mut kv: Vec<(&str, &str)> = Vec::new();
    let mut unreplied = false;
    let mut assured = false;
    let mut reply_started = 0;
    for tok in &t[i..] {
        match *tok {
            "[UNREPLIED]" => {
                assert!(
                    kv.len() == 4 || kv.len() == 5,
                    "UNREPLIED between tuples: {l}"
                );
                unreplied = true;
            }
            "[ASSURED]" => {
                assert!(kv.len() >= 8, "ASSURED after the reply tuple: {l}");
                assured = true;
            }
            _ => {
                let (k, v) = tok
                    .split_once('=')
                    .unwrap_or_else(|| panic!("token {tok}: {l}"));
                if k == "src" && !kv.is_empty() {
                    reply_started = kv.len();
                }
                kv.push((k, v));
            }
        }
    }
    let tuple = |from: usize| -> [String; 4] {
        let get = |k: &str| {
            kv[from..]
                .iter()
                .find(|(kk, _)| *kk == k)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        if proto.starts_with("icmp") {
            [get("src"), get("dst"), get("type"), get("id")]
        } else {
            [get("src"), get("dst"), get("sport"), get("dport")]
        }
    };
    assert_eq!(&kv[kv.len() - 2..], &[("mark", "0"), ("use", "1")], "{l}");
    let (orig, reply) = (tuple(0), tuple(reply_started));
    Line {
        l3: t[0].to_string(),
        proto,
        timeout,
        state,
        orig,
        reply,
        unreplied,
        assured,
    }
}

fn max_timeout(l: &Line) -> u32 {
    match (l.proto.as_str(), l.state.as_deref(), l.assured) {
        ("tcp", Some("SYN_SENT"), _) => 120,
        ("tcp", Some("SYN_RECV"), _) => 60,
        ("tcp", Some("ESTABLISHED"), _) => 86_400,
        ("tcp", Some("FIN_WAIT" | "TIME_WAIT"), _) => 120,
        ("tcp", Some("CLOSE_WAIT"), _) => 3600,
        ("tcp", Some("LAST_ACK"), _) => 30,
        ("tcp", Some("CLOSE"), _) => 10,
        ("udp", None, true) => 120,
        ("udp", None, false) => 30,
        ("icmp" | "icmpv6", None, _) => 30,
        other => panic!("unexpected {other:?}"),
    }
}

fn is_cluster_ip(a: &str) -> bool {
    let o: Vec<u8> = a.split('.').filter_map(|x| x.parse().ok()).collect();
    o.len() == 4 && o[0] == 10 && (96..=111).contains(&o[1])
}

/// What the analyzer's netfilter rules will look at, measured from the bundle text.
#[derive(Debug, Default)]
struct Observed {
    cpus: u64,
    mem_kb: u64,
    max: u64,
    count0: u64,
    count1: u64,
    drop: [u64; 2],
    early_drop: [u64; 2],
    insert_failed: [u64; 2],
    table_full_lines: u64,
    last_full_before_uptime_s: Option<u64>,
    tcp: u64,
    udp: u64,
    icmp: u64,
    ipv6: u64,
    time_wait: u64,
    established: u64,
    established_top5: u64,
    syn_sent_top_destination: u64,
    unreplied_udp: u64,
    dns: u64,
    stale: u64,
}

fn counter_sums(text: &str) -> HashMap<String, u64> {
    let mut sums = HashMap::new();
    for row in text.lines() {
        for tok in row.split_whitespace().skip(1) {
            let (k, v) = tok.split_once('=').expect("key=value");
            *sums.entry(k.to_string()).or_default() += v.parse::<u64>().expect("counter");
        }
    }
    sums
}

fn observe(b: &Bundle) -> Observed {
    let mut o = Observed {
        cpus: b.int("node/cpus.txt"),
        count0: b.int("conntrack/count.0.txt"),
        count1: b.int("conntrack/count.1.txt"),
        ..Observed::default()
    };
    o.mem_kb = b
        .text("node/meminfo.txt")
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("MemTotal");
    let sysctl: HashMap<&str, &str> = b
        .text("sysctl/net.txt")
        .lines()
        .map(|l| l.split_once(" = ").expect("key = value"))
        .collect();
    o.max = sysctl["net.netfilter.nf_conntrack_max"]
        .parse()
        .expect("max");
    for (i, path) in ["conntrack/stats.0.txt", "conntrack/stats.1.txt"]
        .iter()
        .enumerate()
    {
        let s = counter_sums(b.text(path));
        o.drop[i] = s["drop"];
        o.early_drop[i] = s["early_drop"];
        o.insert_failed[i] = s["insert_failed"];
    }
    let uptime_us: u64 = {
        let up = b.text("node/uptime.txt");
        let first = up.split_whitespace().next().expect("uptime");
        let (s, cs) = first.split_once('.').expect("seconds.hundredths");
        s.parse::<u64>().expect("s") * 1_000_000 + cs.parse::<u64>().expect("cs") * 10_000
    };
    for l in b.text("kernel/dmesg.txt").lines() {
        assert!(l.starts_with('['), "dmesg timestamp: {l}");
        if l.contains("nf_conntrack: table full") {
            o.table_full_lines += 1;
            let stamp = &l[1..l.find(']').expect("]")];
            let (s, us) = stamp.trim().split_once('.').expect("stamp");
            let t = s.parse::<u64>().expect("s") * 1_000_000 + us.parse::<u64>().expect("us");
            assert!(t < uptime_us, "dmesg line after collection: {l}");
            o.last_full_before_uptime_s = Some((uptime_us - t) / 1_000_000);
        }
    }

    let mut pairs: HashMap<(String, String), u64> = HashMap::new();
    let mut syn_dest: HashMap<[String; 2], u64> = HashMap::new();
    let mut replied: HashSet<String> = HashSet::new();
    let mut unanswered_dnat: HashMap<String, u64> = HashMap::new();
    let mut seen = HashSet::new();
    for line in b.text("conntrack/list.txt").lines() {
        let l = parse_line(line);
        assert!(
            l.timeout >= 1 && l.timeout <= max_timeout(&l),
            "timeout: {line}"
        );
        assert!(
            seen.insert((l.proto.clone(), l.orig.clone())),
            "duplicate tuple: {line}"
        );
        if l.l3 == "ipv6" {
            o.ipv6 += 1;
        }
        match l.proto.as_str() {
            "tcp" => {
                o.tcp += 1;
                let st = l.state.clone().expect("TCP state");
                assert_eq!(
                    st == "SYN_SENT",
                    l.unreplied,
                    "only SYN_SENT is unreplied: {line}"
                );
                if st == "TIME_WAIT" {
                    o.time_wait += 1;
                }
                if st == "ESTABLISHED" {
                    o.established += 1;
                }
                if st == "SYN_SENT" {
                    *syn_dest
                        .entry([l.orig[1].clone(), l.orig[3].clone()])
                        .or_default() += 1;
                }
                let key = format!("{} {} {}", l.orig[0], l.orig[1], l.orig[3]);
                *pairs.entry((st, key)).or_default() += 1;
            }
            "udp" => {
                o.udp += 1;
                if l.unreplied {
                    o.unreplied_udp += 1;
                }
                if l.orig[3] == "53" {
                    o.dns += 1;
                }
            }
            _ => o.icmp += 1,
        }
        if l.unreplied {
            if is_cluster_ip(&l.orig[1]) && l.reply[0] != l.orig[1] {
                *unanswered_dnat.entry(l.reply[0].clone()).or_default() += 1;
            }
        } else {
            replied.insert(l.reply[0].clone());
        }
    }
    let mut est: Vec<u64> = pairs
        .iter()
        .filter(|((st, _), _)| st == "ESTABLISHED")
        .map(|(_, c)| *c)
        .collect();
    est.sort_unstable_by(|a, b| b.cmp(a));
    o.established_top5 = est.iter().take(5).sum();
    o.syn_sent_top_destination = syn_dest.values().copied().max().unwrap_or(0);
    o.stale = unanswered_dnat
        .iter()
        .filter(|(ip, _)| !replied.contains(*ip))
        .map(|(_, c)| c)
        .sum();

    // Cross-member consistency the analyzer relies on.
    let entries = o.tcp + o.udp + o.icmp;
    assert_eq!(o.count0, entries, "conntrack -C at sample 0 = list length");
    assert_eq!(
        sysctl["net.netfilter.nf_conntrack_count"],
        entries.to_string(),
        "sysctl count"
    );
    assert_eq!(
        b.text("conntrack/list.stderr.txt"),
        format!("conntrack v1.4.7 (conntrack-tools): {entries} flow entries have been shown.\n")
    );
    for (n, count) in [(0, o.count0), (1, o.count1)] {
        let text = b.text(&format!("conntrack/proc-stat.{n}.txt"));
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(rows.len() as u64, o.cpus, "one /proc row per CPU");
        let stats_rows: Vec<&str> = b
            .text(&format!("conntrack/stats.{n}.txt"))
            .lines()
            .collect();
        assert_eq!(stats_rows.len() as u64, o.cpus, "one -S row per CPU");
        for (row, srow) in rows.iter().zip(&stats_rows) {
            let cols: Vec<u64> = row
                .split_whitespace()
                .map(|h| u64::from_str_radix(h, 16).expect("hex"))
                .collect();
            assert_eq!(cols[0], count, "proc-stat entries column = conntrack -C");
            let s = counter_sums(srow);
            assert_eq!(
                (cols[2], cols[4], cols[9], cols[10], cols[11], cols[1]),
                (
                    s["found"],
                    s["invalid"],
                    s["insert_failed"],
                    s["drop"],
                    s["early_drop"],
                    s["clash_resolve"]
                ),
                "/proc and -S agree"
            );
        }
    }
    assert!(o.count1 <= o.max && o.count0.abs_diff(o.count1) * 100 <= o.count0 + 100);
    assert!(o.drop[1] >= o.drop[0] && o.early_drop[1] >= o.early_drop[0]);
    o
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

// Whether each scenario leads to its expected diagnosis is checked against the analyzer itself
// (tests/e2e/samples.rs), not against a second copy of the rules here.
#[test]
fn every_scenario_carries_a_few_ipv6_and_icmp_lines() {
    for (case, b) in all_bundles(generated()) {
        let o = observe(&b);
        assert!(
            o.ipv6 > 0 && o.icmp > 0,
            "{case}: a few IPv6 and ICMP lines"
        );
    }
}

#[test]
fn scenario_specifics_hold() {
    let dir = generated();
    let get = |case: &str| observe(&Bundle::read(&bundle_path(dir, case)));

    let h = get("healthy");
    assert_eq!((h.cpus, h.max), (8, 262_144));
    assert!((1.0..2.0).contains(&pct(h.count0, h.max)));
    assert_eq!(
        (h.drop, h.early_drop, h.insert_failed),
        ([0; 2], [0; 2], [0; 2])
    );
    assert_eq!(h.table_full_lines, 0);

    for case in [
        "timewait-churn",
        "dns-udp-flood",
        "retry-storm",
        "undersized-table",
    ] {
        let o = get(case);
        assert_eq!(o.count0, o.max, "{case}: full now");
        assert!(
            o.drop[1] > o.drop[0] && o.table_full_lines > 0,
            "{case}: dropping"
        );
        assert!(
            o.last_full_before_uptime_s.is_some_and(|s| s < 10),
            "{case}: still logging"
        );
    }
    let d = get("dns-udp-flood");
    assert!(pct(d.dns, d.udp) > 90.0 && pct(d.unreplied_udp, d.udp) > 25.0);
    assert!(d.insert_failed[1] > d.insert_failed[0]);
    let r = get("retry-storm");
    assert!(r.drop[1] - r.drop[0] > 5_000, "retry storm drops fast");

    for (case, lo, hi) in [
        ("connection-leak", 80.0, 90.0),
        ("stale-after-rollout", 85.0, 95.0),
        ("pressure", 75.0, 80.0),
        ("full-earlier", 0.5, 1.5),
    ] {
        let o = get(case);
        let u = pct(o.count0, o.max);
        assert!(u >= lo && u < hi, "{case}: utilization {u}");
    }
    for case in ["connection-leak", "stale-after-rollout", "pressure"] {
        let o = get(case);
        assert_eq!(
            (o.drop, o.table_full_lines),
            ([0; 2], 0),
            "{case}: no drops"
        );
    }

    let u = get("undersized-table");
    assert_eq!((u.cpus, u.max), (16, 32_768));

    let f = get("full-earlier");
    assert!(f.drop[0] > 0 && f.early_drop[0] > 0);
    assert_eq!(
        (f.drop[0], f.early_drop[0]),
        (f.drop[1], f.early_drop[1]),
        "not rising"
    );
    let ago = f
        .last_full_before_uptime_s
        .expect("historic table-full lines");
    assert!(
        (1_150..1_300).contains(&ago),
        "last table-full line {ago} s before collection"
    );
}

#[test]
fn big_bundle_is_consistent_and_the_list_only_mode_prints_proc_lines() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("big");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("dir");
    let big = Big::new(30_000, ListFormat::Extended, 7).expect("big");
    let path = dir.join("big.tar.gz");
    let w = big.write_bundle(&path).expect("write");
    assert_eq!(w.tally.expect("tally").entries, 30_000);
    let b = Bundle::read(&path);
    let o = observe(&b);
    assert_eq!(o.count0, 30_000);
    assert!(pct(o.count0, o.max) <= 60.0);
    assert_eq!(
        (o.drop, o.table_full_lines),
        ([0, 0], 0),
        "a benchmark table is not a failure"
    );

    let proc = Big::new(5_000, ListFormat::Proc, 7).expect("big");
    let list = dir.join("list.txt");
    proc.write_list(&list).expect("list");
    let text = fs::read_to_string(&list).expect("read");
    assert_eq!(text.lines().count(), 5_000);
    assert!(text.lines().all(|l| l.ends_with(" mark=0 zone=0 use=2")));
    let v6 = text
        .lines()
        .find(|l| l.starts_with("ipv6 "))
        .expect("an IPv6 line");
    assert!(v6.contains("src=fd00:0010:0000:"), "{v6}");
}

/// Benchmarks measure what real busy nodes cost: a 10⁶-entry table holds ~10⁵ distinct
/// client → destination:port pairs, so the analyzer's top-k tables overflow and reduce as they do
/// in the field. A generator with a few thousand pairs would flatter every counting structure.
#[test]
fn big_tables_have_realistic_pair_cardinality() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("big-cardinality");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("dir");
    let list = dir.join("list.txt");
    Big::new(1_000_000, ListFormat::Extended, 7)
        .expect("big")
        .write_list(&list)
        .expect("list");
    let text = fs::read_to_string(&list).expect("read");
    let mut pairs = HashSet::new();
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let mut field = |k: &str| words.find_map(|w| w.strip_prefix(k)).unwrap_or("");
        let (src, dst) = (field("src="), field("dst="));
        pairs.insert((src, dst, field("dport=")));
    }
    let _ = fs::remove_dir_all(&dir);
    assert!(
        (80_000..=200_000).contains(&pairs.len()),
        "{} distinct pairs in 10^6 entries",
        pairs.len()
    );
}

const CILIUM_MEMBERS: [&str; 9] = [
    "cilium/ct-list-global.txt",
    "cilium/metrics.0.txt",
    "cilium/metrics.1.txt",
    "cilium/prometheus.0.txt",
    "cilium/prometheus.1.txt",
    "cilium/config.txt",
    "cilium/status.txt",
    "cilium/monitor-drop.txt",
    "cilium/agent-log.txt",
];

const PROXY_MEMBERS: [&str; 3] = [
    "kube-proxy/metrics.0.txt",
    "kube-proxy/metrics.1.txt",
    "kube-proxy/proxy-mode.txt",
];

#[test]
fn layer_bundles_list_every_member_with_its_hash_and_sample_time() {
    use sha2::{Digest, Sha256};
    for case in LAYER_CASES {
        let b = Bundle::read(&bundle_path(generated(), case));
        let m = b.manifest();
        let members = m["members"].as_array().expect("members");
        let listed: HashSet<&str> = members.iter().filter_map(|x| x["path"].as_str()).collect();
        let files: HashSet<String> = b
            .entries
            .iter()
            .filter(|e| e.kind == tar::EntryType::Regular)
            .map(|e| e.name[b.top.len() + 1..].to_string())
            .filter(|p| p != "manifest.json")
            .collect();
        assert_eq!(
            files,
            listed.iter().map(|s| s.to_string()).collect::<HashSet<_>>(),
            "{case}: every file listed"
        );
        let extra: &[&str] = if case == "kube-proxy-stalled" {
            &PROXY_MEMBERS
        } else {
            &CILIUM_MEMBERS
        };
        for p in MEMBERS
            .iter()
            .filter(|p| **p != "manifest.json")
            .chain(extra)
        {
            assert!(listed.contains(p), "{case}: {p} missing");
        }
        let mut firsts: BTreeMap<u64, u64> = BTreeMap::new();
        for mm in members {
            let path = mm["path"].as_str().expect("path");
            let data = b.member(path);
            let sha: String = Sha256::digest(data)
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect();
            assert_eq!(mm["sha256"].as_str(), Some(sha.as_str()), "{case} {path}");
            assert_eq!(
                mm["bytes"].as_u64(),
                Some(data.len() as u64),
                "{case} {path}"
            );
            let kinds = [
                mm["argv"].is_array(),
                mm["file"].is_string(),
                mm["url"].is_string(),
            ];
            assert_eq!(
                kinds.iter().filter(|k| **k).count(),
                1,
                "{case} {path}: one source"
            );
            if let Some(n) = mm["sample"].as_u64() {
                let t = millis(mm["time"].as_str().expect("time"));
                let e = firsts.entry(n).or_insert(t);
                *e = (*e).min(t);
            }
        }
        assert_eq!(firsts[&1] - firsts[&0], 5_000, "{case}: samples 5 s apart");
    }
}

#[test]
fn cilium_dumps_are_in_the_1_18_shape_and_within_their_limits() {
    for case in LAYER_CASES.iter().filter(|c| c.starts_with("cilium")) {
        let b = Bundle::read(&bundle_path(generated(), case));
        let text = b.text("cilium/ct-list-global.txt");
        let maps: Vec<&str> = text.split("\n\n").collect();
        assert_eq!(
            maps.len(),
            5,
            "{case}: four maps, each followed by a blank line"
        );
        for (i, m) in maps[..4].iter().enumerate() {
            let limit = if i % 2 == 0 { 32_768 } else { 16_384 };
            let lines: Vec<&str> = m.lines().collect();
            assert!(lines.len() <= limit, "{case}: map {i} over its limit");
            for l in lines {
                let t: Vec<&str> = l.split(' ').collect();
                assert!(matches!(t[1], "IN" | "OUT" | "SVC"), "{l}");
                assert!(l.ends_with(" "), "trailing space: {l}");
                assert!(
                    l.contains(" Packets=0 Bytes=0 RxFlagsSeen=0x") && l.contains(" BackendID="),
                    "{l}"
                );
                assert!(
                    !l.contains('['.to_string().as_str()) || l.contains(" Flags=0x"),
                    "{l}"
                );
                if i >= 2 {
                    assert!(
                        t[2].contains(':') && !t[2].starts_with('['),
                        "unbracketed IPv6: {l}"
                    );
                }
            }
        }
        let cfg = b.text("cilium/config.txt");
        assert!(
            cfg.contains("\nCTMapEntriesGlobalTCP             : 32768\n"),
            "{case}"
        );
        let status = b.text("cilium/status.txt");
        assert!(status.contains("\nBPF Maps:"), "{case}");
        assert!(
            status
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == ["TCP", "connection", "tracking", "32768"]),
            "{case}"
        );
    }
}
