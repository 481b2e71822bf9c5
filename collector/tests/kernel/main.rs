//! Real-kernel test: conntrack exhaustion produced on purpose in network namespaces, then collected.
//!
//! Two namespaces joined by a veth pair play a pod (`client`) and a node (`node`). The node DNATs
//! a service address to a server that lives in the client namespace and masquerades the hairpin,
//! as kube-proxy does for a pod reaching itself through its Service, so its conntrack entries carry
//! both NATs. The global `nf_conntrack_max` is lowered for a moment (it is read-only inside a child
//! namespace but enforced per namespace) while traffic runs, so the kernel really drops new
//! connections in the node namespace; it is restored by a guard on every path, panics included,
//! before the collector runs. Only addresses inside the namespaces created here are used
//! (10.200.K.0/24, 10.201.K.0/24).
//!
//! This is its own test binary because it changes a global sysctl for a few seconds: cargo runs
//! test binaries one after another, so no other suite runs while the limit is lowered.
//!
//! Skipped, with the reason printed, unless run as root with `ip`, `conntrack` and `iptables`.
//!
//! Other scenarios of the same binary live in their own modules: `chains` (hash chains too long),
//! `udp_stale` (a UDP flow DNAT'd to a backend a rollout removed).

#[path = "../collect/util.rs"]
mod util;

mod chains;
mod netns;
mod udp_stale;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use util::{Bundle, stat_sum};

const MAX_PATH: &str = "/proc/sys/net/netfilter/nf_conntrack_max";

/// The tests of this binary run one at a time: one of them lowers a limit all namespaces share.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why this machine cannot run the test, if it cannot.
fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    for tool in ["ip", "conntrack", "iptables"] {
        if ctdiag_collect::exec::find_program(tool).is_none() {
            return Some(format!(
                "{tool} is not installed (apt-get install -y iproute2 conntrack iptables)"
            ));
        }
    }
    if !Path::new(MAX_PATH).exists() {
        return Some(format!(
            "{MAX_PATH} is missing: nf_conntrack is not available"
        ));
    }
    None
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace deleted when dropped, so it goes on every path.
struct Netns(String);

impl Netns {
    fn create(name: String) -> Netns {
        // A namespace of the same name left by a killed earlier run is removed first.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name]);
        Netns(name)
    }

    fn exec(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.0];
        all.extend(args);
        sh(&all);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// Joins namespaces `a` and `b` with a veth pair named `dev` on both sides, addresses `a_cidr` and
/// `b_cidr`, both ends and loopback up.
fn veth(dev: &str, a: &Netns, a_cidr: &str, b: &Netns, b_cidr: &str) {
    sh(&[
        "ip", "-n", &a.0, "link", "add", dev, "type", "veth", "peer", "name", dev, "netns", &b.0,
    ]);
    for (ns, cidr) in [(a, a_cidr), (b, b_cidr)] {
        sh(&["ip", "-n", &ns.0, "addr", "add", cidr, "dev", dev]);
        sh(&["ip", "-n", &ns.0, "link", "set", dev, "up"]);
        sh(&["ip", "-n", &ns.0, "link", "set", "lo", "up"]);
    }
}

/// The global conntrack limit, lowered while this lives and restored when it drops (also while
/// unwinding from a panic).
struct LoweredMax {
    original: String,
}

impl LoweredMax {
    fn set(limit: u32) -> LoweredMax {
        let original = std::fs::read_to_string(MAX_PATH).expect("read nf_conntrack_max");
        let guard = LoweredMax {
            original: original.trim().to_string(),
        };
        std::fs::write(MAX_PATH, limit.to_string()).expect("lower nf_conntrack_max");
        guard
    }
}

impl Drop for LoweredMax {
    fn drop(&mut self) {
        if std::fs::write(MAX_PATH, &self.original).is_err() {
            // Nothing else can be done from a destructor; say it loudly.
            eprintln!("WARNING: could not restore {MAX_PATH} to {}", self.original);
        }
    }
}

/// A client namespace and a node namespace with kube-proxy-like NAT between them.
struct Lab {
    client: Netns,
    node: Netns,
    k: u8,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let pid = std::process::id();
        let k = (pid % 200) as u8 + 20;
        let client = Netns::create(format!("ctdiag-{pid}-{tag}-c"));
        let node = Netns::create(format!("ctdiag-{pid}-{tag}-n"));
        sh(&[
            "ip", "-n", &client.0, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0",
            "netns", &node.0,
        ]);
        for (ns, host) in [(&client, 1), (&node, 2)] {
            sh(&[
                "ip",
                "-n",
                &ns.0,
                "addr",
                "add",
                &format!("10.200.{k}.{host}/24"),
                "dev",
                "veth0",
            ]);
            sh(&["ip", "-n", &ns.0, "link", "set", "veth0", "up"]);
            sh(&["ip", "-n", &ns.0, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip",
            "-n",
            &client.0,
            "route",
            "add",
            &format!("10.201.{k}.0/24"),
            "via",
            &format!("10.200.{k}.2"),
        ]);
        client.exec(&["sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0"]);
        node.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        node.exec(&["sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0"]);
        node.exec(&["sysctl", "-qw", "net.ipv4.conf.veth0.send_redirects=0"]);
        let service = format!("10.201.{k}.100");
        let backend = format!("10.200.{k}.1");
        node.exec(&[
            "iptables",
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-d",
            &service,
            "-p",
            "tcp",
            "--dport",
            "80",
            "-j",
            "DNAT",
            "--to-destination",
            &format!("{backend}:8080"),
        ]);
        node.exec(&[
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-d",
            &backend,
            "-p",
            "tcp",
            "--dport",
            "8080",
            "-j",
            "MASQUERADE",
        ]);
        Lab { client, node, k }
    }

    /// Opens `n` connections from the client to the Service and back to its own server, one at a
    /// time (each leaves an assured TIME_WAIT entry in the node namespace). Returns how many
    /// connected.
    fn drive(&self, n: usize) -> usize {
        let stop = Arc::new(AtomicBool::new(false));
        let backend = SocketAddrV4::new(Ipv4Addr::new(10, 200, self.k, 1), 8080);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let server = {
            let stop = stop.clone();
            let ns = self.client.0.clone();
            std::thread::spawn(move || {
                enter_netns(&ns);
                let listener = TcpListener::bind(backend).expect("bind the backend");
                listener
                    .set_nonblocking(true)
                    .expect("nonblocking listener");
                ready_tx.send(()).expect("signal ready");
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut conn, _)) => {
                            let _ = conn.set_nonblocking(false);
                            let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
                            let _ = conn.write_all(b"ok\n");
                            let mut rest = Vec::new();
                            let _ = conn.read_to_end(&mut rest);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        ready_rx.recv().expect("server ready");
        let ns = self.client.0.clone();
        let service = SocketAddr::from((Ipv4Addr::new(10, 201, self.k, 100), 80));
        let connected = std::thread::spawn(move || {
            enter_netns(&ns);
            let mut ok = 0;
            for _ in 0..n {
                if let Ok(mut s) = TcpStream::connect_timeout(&service, Duration::from_millis(250))
                {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                    let mut greeting = [0u8; 3];
                    if s.read_exact(&mut greeting).is_ok() {
                        ok += 1;
                    }
                }
            }
            ok
        })
        .join()
        .expect("client thread");
        stop.store(true, Ordering::Relaxed);
        server.join().expect("server thread");
        connected
    }

    /// Runs the collector inside the node namespace and returns the bundle it wrote.
    fn collect(&self, out_dir: &Path, extra: &[&str]) -> PathBuf {
        collect_in(&self.node, out_dir, extra)
    }
}

/// Runs the collector inside network namespace `ns` (two samples 1 s apart, so counters have a
/// delta) and returns the bundle it wrote.
fn collect_in(ns: &Netns, out_dir: &Path, extra: &[&str]) -> PathBuf {
    let bin = util::bin();
    let mut args = vec![
        "netns",
        "exec",
        &ns.0,
        bin.to_str().expect("UTF-8 binary path"),
        "--samples",
        "2",
        "--interval",
        "1",
        "--timeout",
        "20",
        "--node",
        "lab-node",
        "-o",
        out_dir.to_str().expect("UTF-8 temp dir"),
    ];
    args.extend(extra);
    let out = Command::new("ip")
        .args(&args)
        .output()
        .expect("run ctdiag-collect");
    assert!(
        out.status.success(),
        "collector failed: {}",
        util::stderr(&out)
    );
    util::only_bundle_in(out_dir)
}

/// Moves the calling thread (only it) into a named network namespace.
fn enter_netns(name: &str) {
    let f = File::open(format!("/run/netns/{name}")).expect("open netns");
    // SAFETY: setns on a valid namespace fd affects only the calling thread for CLONE_NEWNET.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
}

/// Connections driven per scenario, and the lowered limit: well below it, so most are dropped.
const CONNECTIONS: usize = 60;
const LOWERED_MAX: u32 = 20;

/// Fills the node namespace's table past a lowered limit, restores the limit, and collects.
/// Returns the bundle's path so a caller can hand it to the analyzer as well.
pub fn collect_bundle_under_pressure(out_dir: &Path, extra: &[&str]) -> (PathBuf, usize) {
    let lab = Lab::new("p");
    let connected = {
        let _lowered = LoweredMax::set(LOWERED_MAX);
        lab.drive(CONNECTIONS)
    };
    (lab.collect(out_dir, extra), connected)
}

/// The same traffic without the lowered limit.
pub fn collect_bundle_without_pressure(out_dir: &Path) -> (PathBuf, usize) {
    let lab = Lab::new("b");
    let connected = lab.drive(CONNECTIONS);
    (lab.collect(out_dir, &[]), connected)
}

fn drops(bundle: &Bundle) -> Vec<u64> {
    (0..2)
        .map(|n| stat_sum(&bundle.text(&format!("conntrack/stats.{n}.txt")), "drop"))
        .collect()
}

/// What the analyzer makes of a bundle: the JSON report of its one node.
fn diagnose(bundle: &Path) -> serde_json::Value {
    let report = ctdiag::analyze(&[bundle.to_path_buf()], &ctdiag::AnalyzeOptions::default())
        .expect("analyzer rules load");
    serde_json::to_value(&report.nodes[0]).expect("report serializes")
}

/// Kernel-log `table full` lines already in the ring buffer (this machine's history).
fn table_full_lines_in_kernel_log() -> usize {
    Command::new("dmesg")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .matches("table full")
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn drops_under_a_lowered_limit_show_in_the_bundle_and_not_without_it() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping the real-kernel test: {why}");
        return;
    }
    let _serial = serial();
    let original_max = std::fs::read_to_string(MAX_PATH).expect("read nf_conntrack_max");

    // The baseline first: the kernel log is shared by every namespace, and the pressure run
    // below writes `table full` lines into it that a later baseline would rightly report.
    let history = table_full_lines_in_kernel_log();
    let base_dir = tempfile::tempdir().expect("temp dir");
    let (base_path, base_connected) = collect_bundle_without_pressure(base_dir.path());
    assert_eq!(
        base_connected, CONNECTIONS,
        "every connection succeeds at the normal limit"
    );
    let baseline = Bundle::open(&base_path);
    baseline.assert_consistent();
    assert_eq!(drops(&baseline), [0, 0]);
    let healthy = diagnose(&base_path);
    if history == 0 {
        assert_eq!(
            healthy["likely_cause"],
            serde_json::Value::Null,
            "{healthy:#}"
        );
        assert!(
            healthy["ruled_out"]
                .as_array()
                .expect("ruled_out")
                .contains(&"nf.healthy".into())
        );
    } else {
        // Earlier runs on this machine left `table full` lines: the analyzer must still see
        // that nothing drops now.
        eprintln!(
            "kernel log already had {history} `table full` line(s); baseline checked on counters only"
        );
        assert_eq!(healthy["facts"]["nf"]["stats"]["drop"], 0);
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let (path, connected) = collect_bundle_under_pressure(dir.path(), &[]);
    assert_eq!(
        std::fs::read_to_string(MAX_PATH).expect("read max"),
        original_max,
        "limit restored"
    );
    assert!(
        connected < CONNECTIONS,
        "the lowered limit refused nothing ({connected} connected)"
    );
    let bundle = Bundle::open(&path);
    bundle.assert_consistent();
    let d = drops(&bundle);
    assert!(
        d.iter().all(|&n| n > 0),
        "drop= in conntrack/stats.*.txt: {d:?}"
    );
    assert_eq!(
        bundle.record("conntrack/stats.0.txt")["argv"][0],
        "conntrack"
    );
    // The entries are the NAT'd ones: Service address on the way in, the backend replying.
    let list = bundle.text("conntrack/list.txt");
    let k = (std::process::id() % 200) as u8 + 20;
    let dnat = list
        .lines()
        .filter(|l| {
            l.contains(&format!("dst=10.201.{k}.100"))
                && l.contains(&format!("src=10.200.{k}.1 dst=10.200.{k}.2 sport=8080"))
        })
        .count();
    assert!(dnat > 0, "no DNAT'd and masqueraded entries in:\n{list}");
    assert!(
        list.lines().all(|l| !l.contains("src=10.201.")),
        "reply tuples are un-NAT'd"
    );
    // The analyzer's hand-written hot path reads every line the real tool printed as the nom
    // reference grammar does (the footer and anything else not an entry included).
    use ctdiag::parse::conntrack_list::{entry, scan};
    for line in list.lines() {
        let line = line.trim().as_bytes();
        assert_eq!(scan(line), entry(line), "{}", String::from_utf8_lossy(line));
    }
    assert!(
        list.lines()
            .filter(|l| scan(l.trim().as_bytes()).is_ok())
            .count()
            >= dnat
    );

    // The round trip: the analyzer names the exhaustion the kernel really went through, with
    // every member verified against the manifest.
    let report = diagnose(&path);
    assert_eq!(
        report["likely_cause"]["id"], "nf.table_exhausted",
        "{report:#}"
    );
    assert_eq!(report["bundle"]["mismatched"], 0);
    assert!(
        report["bundle"]["verified"].as_u64().expect("verified") >= 5,
        "{:#}",
        report["bundle"]
    );
}

#[test]
fn a_redacted_bundle_keeps_counts_and_pair_structure() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping the real-kernel test: {why}");
        return;
    }
    let _serial = serial();
    let lab = Lab::new("r");
    assert_eq!(lab.drive(10), 10);
    let plain_dir = tempfile::tempdir().expect("temp dir");
    let plain = Bundle::open(&lab.collect(plain_dir.path(), &[]));
    let redacted_dir = tempfile::tempdir().expect("temp dir");
    let redacted = Bundle::open(&lab.collect(redacted_dir.path(), &["--redact"]));
    redacted.assert_consistent();
    let k = lab.k;
    let shape = |b: &Bundle| {
        let mut lines: Vec<String> = b
            .text("conntrack/list.txt")
            .lines()
            .filter(|l| l.contains("dport=80 "))
            .map(|l| {
                // Keep what the analyzer keys on: protocol, state, ports; addresses by role.
                l.split_ascii_whitespace()
                    .filter(|t| {
                        !t.starts_with("src=")
                            && !t.starts_with("dst=")
                            && !t.chars().all(|c| c.is_ascii_digit())
                    })
                    .filter(|t| !t.starts_with("sport=") || t.starts_with("sport=8080"))
                    .filter(|t| !t.starts_with("dport=") || t.starts_with("dport=80"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(shape(&plain), shape(&redacted));
    let text = redacted.text("conntrack/list.txt");
    assert!(!text.contains(&format!("10.200.{k}.")) && !text.contains(&format!("10.201.{k}.")));
    // One service address, one backend, one masquerade address: three pseudonyms, each stable.
    let mut services: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("dport=80 "))
        .filter_map(|l| l.split_ascii_whitespace().find(|t| t.starts_with("dst=")))
        .collect();
    services.dedup();
    assert_eq!(services.len(), 1, "{services:?}");

    // Redaction must not change the diagnosis.
    let ids = |p: &Path| {
        let r = diagnose(p);
        let findings: Vec<String> = r["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| format!("{} {}", f["id"], f["score"]))
            .collect();
        (
            r["likely_cause"]["id"].clone(),
            findings,
            r["ruled_out"].clone(),
        )
    };
    assert_eq!(ids(&plain.path), ids(&redacted.path));
}
