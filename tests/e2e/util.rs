//! Fixture builders: bundles as temp directories or archives, and a runner for the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temp directory of loose files, packable as a `.tar.gz` bundle.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn file(self, name: &str, content: impl AsRef<[u8]>) -> Self {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, content).expect("write fixture");
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Packs the files into `<dir>/../name.tar.gz` under a top folder, as the collector does.
    pub fn tar_gz(&self, out: &Path, top: &str) -> PathBuf {
        let file = std::fs::File::create(out).expect("create archive");
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        builder
            .append_dir_all(top, self.dir.path())
            .expect("append");
        builder.into_inner().expect("tar").finish().expect("gzip");
        out.to_path_buf()
    }
}

/// Runs `ctdiag` with `args`, in UTC, without colour.
pub fn ctdiag(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctdiag"))
        .args(args)
        .env("TZ", "UTC")
        .env("NO_COLOR", "1")
        .output()
        .expect("run ctdiag")
}

/// Runs `ctdiag analyze --format json` on `bundles` and parses the report.
pub fn analyze_json(bundles: &[&Path]) -> (serde_json::Value, Output) {
    let mut args = vec!["analyze", "--format", "json"];
    let paths: Vec<String> = bundles.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    let out = ctdiag(&args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}); status {:?}; stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (json, out)
}

/// The likely cause id of the first node, or None.
pub fn likely_cause(report: &serde_json::Value) -> Option<String> {
    report["nodes"][0]["likely_cause"]["id"]
        .as_str()
        .map(String::from)
}

/// Ids of the first node's findings.
pub fn finding_ids(report: &serde_json::Value) -> Vec<String> {
    report["nodes"][0]["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Ids ruled out on the first node.
pub fn ruled_out(report: &serde_json::Value) -> Vec<String> {
    report["nodes"][0]["ruled_out"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A deterministic stream of conntrack -L lines (as `conntrack -L` prints them) with the given
/// mix, for tables too large to write by hand.
pub struct Table {
    lines: Vec<String>,
}

impl Table {
    pub fn new() -> Self {
        Table { lines: Vec::new() }
    }

    /// `n` TCP entries in `state` from `clients` pod IPs to `svc:port`, DNAT'd to `backend`.
    pub fn tcp(
        mut self,
        n: usize,
        state: &str,
        clients: u8,
        svc: &str,
        port: u16,
        backend: &str,
    ) -> Self {
        let timeout = match state {
            "ESTABLISHED" => 86_390,
            "TIME_WAIT" => 110,
            "SYN_SENT" => 100,
            _ => 50,
        };
        let unreplied = state == "SYN_SENT";
        for i in 0..n {
            let client = format!("10.244.1.{}", 10 + (i % clients.max(1) as usize));
            let sport = 32768 + (i % 28000);
            let flag = if unreplied { "[UNREPLIED] " } else { "" };
            let status = if unreplied { "" } else { "[ASSURED] " };
            self.lines.push(format!(
                "tcp      6 {timeout} {state} src={client} dst={svc} sport={sport} dport={port} {flag}src={backend} dst={client} sport=8080 dport={sport} {status}mark=0 use=1"
            ));
        }
        self
    }

    /// `n` UDP DNS queries to kube-dns, `unreplied_every`-th one unanswered.
    pub fn dns(mut self, n: usize, unreplied_every: usize) -> Self {
        for i in 0..n {
            let client = format!("10.244.1.{}", 10 + (i % 20));
            let sport = 40000 + (i % 20000);
            if unreplied_every > 0 && i % unreplied_every == 0 {
                self.lines.push(format!(
                    "udp      17 25 src={client} dst=10.96.0.10 sport={sport} dport=53 [UNREPLIED] src=10.244.0.5 dst={client} sport=53 dport={sport} mark=0 use=1"
                ));
            } else {
                self.lines.push(format!(
                    "udp      17 110 src={client} dst=10.96.0.10 sport={sport} dport=53 src=10.244.0.5 dst={client} sport=53 dport={sport} [ASSURED] mark=0 use=1"
                ));
            }
        }
        self
    }

    /// The text, with the stderr footer `2>&1` leaves at the end.
    pub fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push_str(&format!(
            "\nconntrack v1.4.7 (conntrack-tools): {} flow entries have been shown.\n",
            self.lines.len()
        ));
        s
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }
}

/// `conntrack -S` rows for `cpus` CPUs, the drops on CPU 0.
pub fn stats(cpus: usize, drop: u64, early_drop: u64, insert_failed: u64) -> String {
    (0..cpus)
        .map(|c| {
            let (d, e, f) = if c == 0 { (drop, early_drop, insert_failed) } else { (0, 0, 0) };
            format!(
                "cpu={c:<4}\tfound={} invalid={} insert=0 insert_failed={f} drop={d} early_drop={e} error=0 search_restart={} clash_resolve=0 chaintoolong=0 \n",
                1000 + c,
                17 * c,
                3 * c
            )
        })
        .collect()
}

/// `sysctl -a` lines around the keys that matter.
pub fn sysctl(max: u64, count: Option<u64>) -> String {
    let mut s = String::from(
        "net.core.somaxconn = 4096\nnet.ipv4.ip_local_port_range = 32768\t60999\nnet.netfilter.nf_conntrack_acct = 0\nnet.netfilter.nf_conntrack_buckets = 65536\n",
    );
    if let Some(c) = count {
        s.push_str(&format!("net.netfilter.nf_conntrack_count = {c}\n"));
    }
    s.push_str(&format!(
        "net.netfilter.nf_conntrack_max = {max}\nnet.netfilter.nf_conntrack_tcp_timeout_close_wait = 3600\nnet.netfilter.nf_conntrack_tcp_timeout_established = 86400\nnet.netfilter.nf_conntrack_tcp_timeout_time_wait = 120\nnet.netfilter.nf_conntrack_udp_timeout = 30\nnet.netfilter.nf_conntrack_udp_timeout_stream = 120\nnet.nf_conntrack_max = {max}\n"
    ));
    s
}
