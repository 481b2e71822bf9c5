//! Real-kernel scenario: conntrack hash chains too long.
//!
//! The kernel refuses to confirm a new entry when the hash chain it lands in is longer than a
//! random limit (`__nf_conntrack_confirm` in net/netfilter/nf_conntrack_core.c: `MIN_CHAINLEN` +
//! a random share of `MAX_CHAINLEN`, 50 to 79 in current kernels, 8 to 31 in the first kernels
//! that had the limit). The packet is dropped and two counters move: `chaintoolong` and `insert_failed`, never `drop`, so the table
//! looks healthy by its fill level while new flows die.
//!
//! To get there the global hash table is shrunk for the duration of the traffic and of the
//! collection (`/sys/module/nf_conntrack/parameters/hashsize`, the same value as
//! `net.netfilter.nf_conntrack_buckets` in the initial namespace). The kernel never makes it
//! smaller than one page of bucket heads (`nf_ct_alloc_hashtable` rounds up to `PAGE_SIZE /
//! sizeof(struct hlist_nulls_head)`: writing 1 gives 512 buckets with 4 KiB pages), so a few
//! hundred flows are not enough: every entry sits in two chains (original and reply direction),
//! and about 40 entries per bucket reach the limit. A client therefore sends one UDP datagram
//! from each of tens of thousands of source ports to a Service address the node namespace DNATs
//! (and masquerades, the hairpin kube-proxy does for a pod reaching itself), and keeps doing so
//! while the collector samples twice, so `chaintoolong` rises between the samples.
//! `nf_conntrack_max` is left alone: the table stays far from full.
//!
//! The table is shared by every namespace on the host and resizing rehashes all their entries,
//! so the scenario runs only when the host itself tracks few connections, and a guard restores
//! the original size on every path, panics included.

use super::util::{Bundle, stat_sum};
use super::{
    Netns, collect_in, diagnose, enter_netns, serial, sh, skip_reason,
    table_full_lines_in_kernel_log, veth,
};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

const HASHSIZE_PATH: &str = "/sys/module/nf_conntrack/parameters/hashsize";
const COUNT_PATH: &str = "/proc/sys/net/netfilter/nf_conntrack_count";

/// Most entries the host's own namespace may hold for the scenario to run: resizing rehashes
/// them, and while the table is tiny the host's own new flows could be refused too.
const HOST_ENTRIES_AT_MOST: u64 = 1_000;

/// Flows per bucket sent: twice what fills every chain to the kernel's highest limit (80 chain
/// nodes, two per entry), so most buckets overflow.
const FLOWS_PER_BUCKET: u64 = 80;

/// Source ports the client may use: one flow each.
const FIRST_PORT: u16 = 10_000;
const LAST_PORT: u16 = 60_999;

/// The global hash table shrunk to its smallest while this lives, restored when it drops (also
/// while unwinding from a panic).
struct TinyHashTable {
    original: String,
}

impl TinyHashTable {
    /// Shrinks the table; returns the guard and the bucket count the kernel really made.
    fn set() -> (TinyHashTable, u64) {
        let original = std::fs::read_to_string(HASHSIZE_PATH).expect("read hashsize");
        let guard = TinyHashTable {
            original: original.trim().to_string(),
        };
        std::fs::write(HASHSIZE_PATH, "1").expect("shrink hashsize");
        let buckets = read_u64(HASHSIZE_PATH).expect("read hashsize back");
        (guard, buckets)
    }
}

impl Drop for TinyHashTable {
    fn drop(&mut self) {
        if std::fs::write(HASHSIZE_PATH, &self.original).is_err() {
            // Nothing else can be done from a destructor; say it loudly.
            eprintln!(
                "WARNING: could not restore {HASHSIZE_PATH} to {}",
                self.original
            );
        }
    }
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A client namespace and a node namespace DNATing a Service address to a server in the client
/// namespace, masqueraded (the hairpin), for UDP.
struct ChainsLab {
    client: Netns,
    node: Netns,
    k: u8,
}

impl ChainsLab {
    fn new() -> ChainsLab {
        let pid = std::process::id();
        let k = (pid % 200) as u8 + 20;
        let client = Netns::create(format!("ctdiag-{pid}-ch-c"));
        let node = Netns::create(format!("ctdiag-{pid}-ch-n"));
        veth(
            "veth0",
            &client,
            &format!("10.220.{k}.1/24"),
            &node,
            &format!("10.220.{k}.2/24"),
        );
        sh(&[
            "ip",
            "-n",
            &client.0,
            "route",
            "add",
            &format!("10.221.{k}.0/24"),
            "via",
            &format!("10.220.{k}.2"),
        ]);
        client.exec(&["sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0"]);
        node.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        node.exec(&["sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0"]);
        node.exec(&["sysctl", "-qw", "net.ipv4.conf.veth0.send_redirects=0"]);
        let service = format!("10.221.{k}.100");
        let backend = format!("10.220.{k}.1");
        node.exec(&[
            "iptables",
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-d",
            &service,
            "-p",
            "udp",
            "--dport",
            "53",
            "-j",
            "DNAT",
            "--to-destination",
            &format!("{backend}:5353"),
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
            "udp",
            "--dport",
            "5353",
            "-j",
            "MASQUERADE",
        ]);
        ChainsLab { client, node, k }
    }
}

/// UDP datagrams from the client to the Service, one source port after another, over and over
/// until dropped: a new flow each until the port range wraps, then refreshes of the flows that
/// were confirmed and new attempts for those that were refused.
struct Flood {
    stop: Arc<AtomicBool>,
    passes: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Flood {
    fn start(lab: &ChainsLab, flows: u16) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let passes = Arc::new(AtomicU64::new(0));
        let ns = lab.client.0.clone();
        let k = lab.k;
        let thread = {
            let stop = stop.clone();
            let passes = passes.clone();
            std::thread::spawn(move || {
                enter_netns(&ns);
                let client = Ipv4Addr::new(10, 220, k, 1);
                // The masqueraded datagrams come back here; a bound socket keeps the client from
                // answering each with a port unreachable. Never read: the kernel drops the excess.
                let _backend = UdpSocket::bind(SocketAddrV4::new(client, 5353)).expect("bind");
                let service = SocketAddrV4::new(Ipv4Addr::new(10, 221, k, 100), 53);
                while !stop.load(Ordering::Relaxed) {
                    for port in FIRST_PORT..FIRST_PORT + flows {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Ok(s) = UdpSocket::bind(SocketAddrV4::new(client, port)) {
                            let _ = s.send_to(b"q", service);
                        }
                    }
                    passes.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        Flood {
            stop,
            passes,
            thread: Some(thread),
        }
    }

    /// Waits until every source port was used once.
    fn wait_first_pass(&self) {
        while self.passes.load(Ordering::Relaxed) == 0 {
            assert!(
                self.thread.as_ref().is_some_and(|t| !t.is_finished()),
                "the flood thread ended early"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `key=` summed over the CPU rows of `conntrack/stats.{n}.txt`.
fn counter(bundle: &Bundle, n: usize, key: &str) -> u64 {
    stat_sum(&bundle.text(&format!("conntrack/stats.{n}.txt")), key)
}

#[test]
fn chains_too_long_refuse_new_flows_in_a_table_far_from_full() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping the real-kernel test: {why}");
        return;
    }
    if !Path::new(HASHSIZE_PATH).exists() {
        eprintln!("skipping the real-kernel test: {HASHSIZE_PATH} is missing");
        return;
    }
    let _serial = serial();
    match read_u64(COUNT_PATH) {
        Some(n) if n <= HOST_ENTRIES_AT_MOST => {}
        other => {
            eprintln!(
                "skipping the real-kernel test: the host tracks {other:?} connections (at most \
                 {HOST_ENTRIES_AT_MOST} for this test); resizing the shared hash table would \
                 rehash and endanger them"
            );
            return;
        }
    }
    let original = std::fs::read_to_string(HASHSIZE_PATH).expect("read hashsize");
    // The kernel log is shared by every namespace: `table full` lines written by earlier runs
    // (main.rs's scenario among them) are rightly read as a table that was full.
    let history = table_full_lines_in_kernel_log();

    let lab = ChainsLab::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = {
        let (_tiny, buckets) = TinyHashTable::set();
        let Ok(flows) = u16::try_from(buckets * FLOWS_PER_BUCKET) else {
            eprintln!(
                "skipping the real-kernel test: the smallest hash table has {buckets} buckets, too many for one client's ports"
            );
            return;
        };
        assert!(
            flows <= LAST_PORT - FIRST_PORT + 1,
            "{buckets} buckets need {flows} flows"
        );
        let flood = Flood::start(&lab, flows);
        flood.wait_first_pass();
        // The flood goes on while the collector samples: refused inserts between the samples.
        // kube-proxy's metrics are read over TCP to 127.0.0.1 by default: with every chain full
        // the kernel refuses that connection's entry too and the read hangs until its timeout.
        // An address the node has no route to fails at once, before conntrack sees a packet.
        let unrouted = format!("http://10.223.{}.1:1", lab.k);
        let path = collect_in(&lab.node, dir.path(), &["--kube-proxy-url", &unrouted]);
        drop(flood);
        path
    };
    assert_eq!(
        std::fs::read_to_string(HASHSIZE_PATH).expect("read hashsize"),
        original,
        "hashsize restored"
    );

    let bundle = Bundle::open(&path);
    bundle.assert_consistent();
    let chaintoolong = [0, 1].map(|n| counter(&bundle, n, "chaintoolong"));
    let insert_failed = [0, 1].map(|n| counter(&bundle, n, "insert_failed"));
    assert!(
        chaintoolong[0] > 0,
        "chaintoolong= in conntrack/stats.0.txt:\n{}",
        bundle.text("conntrack/stats.0.txt")
    );
    assert!(
        chaintoolong[1] > chaintoolong[0],
        "chaintoolong rose between the samples: {chaintoolong:?}"
    );
    for n in 0..2 {
        // The kernel counts every refusal of a too-long chain as a failed insert as well.
        assert!(
            insert_failed[n] >= chaintoolong[n],
            "sample {n}: insert_failed {} < chaintoolong {}",
            insert_failed[n],
            chaintoolong[n]
        );
        // Not a full table: nothing refused for want of room.
        assert_eq!(counter(&bundle, n, "drop"), 0, "drop= in sample {n}");
        assert_eq!(
            counter(&bundle, n, "early_drop"),
            0,
            "early_drop= in sample {n}"
        );
    }
    let k = lab.k;
    let list = bundle.text("conntrack/list.txt");
    let flows_listed = list
        .lines()
        .filter(|l| l.contains(" udp ") && l.contains(&format!("dst=10.221.{k}.100 ")))
        .count();
    assert!(
        flows_listed > 0,
        "no DNAT'd UDP flows in conntrack/list.txt"
    );

    let report = diagnose(&path);
    let facts = &report["facts"]["nf"];
    assert_eq!(
        facts["stats"]["chaintoolong"].as_u64(),
        Some(chaintoolong[1]),
        "nf.stats.chaintoolong is the last sample's sum"
    );
    assert_eq!(
        facts["delta"]["insert_failed"].as_i64(),
        Some((insert_failed[1] - insert_failed[0]) as i64),
        "nf.delta.insert_failed is the change between the samples"
    );
    let utilization = facts["utilization"].as_f64().expect("nf.utilization");
    assert!(
        utilization < 0.5,
        "the table is far from full: {utilization}"
    );
    if history == 0 {
        assert_ne!(
            report["likely_cause"]["id"], "nf.table_exhausted",
            "{report:#}"
        );
    } else {
        eprintln!(
            "kernel log already had {history} `table full` line(s); the likely cause is not \
             checked, the table's fill level and drop counters are"
        );
    }

    // What the rule for chains too long must make of it (nf.hash_chain_too_long, written
    // alongside this test: these assertions fail until it is merged).
    let ids: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert!(
        !report["ruled_out"]
            .as_array()
            .expect("ruled_out")
            .contains(&"nf.healthy".into()),
        "a node refusing new flows is not healthy: {:#}",
        report["ruled_out"]
    );
    assert!(ids.contains(&"nf.hash_chain_too_long"), "findings: {ids:?}");
}
