//! Real-kernel scenario: a UDP flow still DNAT'd to a backend a rollout removed.
//!
//! Four namespaces: a client pod, a node that routes and DNATs a Service address
//! (10.96.K.10:53/udp) the way kube-proxy does, and two backends, A and B, each a UDP echo
//! server on :53 that answers with its own name (CoreDNS before and after a rollout). A client
//! sends to the Service from one fixed source port every 200 ms, so its conntrack entry is
//! refreshed and never expires. Then the rollout: the DNAT rule is rewritten to point at B and A
//! is removed (its server stopped, its link deleted), WITHOUT deleting conntrack entries — what
//! kube-proxy should do for UDP and here did not. A second client, from another source port,
//! starts after the rollout and gets answers from B; the first keeps sending into its entry,
//! still DNAT'd to A, and gets nothing back.
//!
//! The bundle is collected inside the node namespace and analyzed twice: with cluster files that
//! name only B as the Service's endpoint (written here, labelled as fakes: no cluster runs on
//! this machine), and without them.
//!
//! Addresses: client 10.220.K.1, A 10.221.K.1, B 10.222.K.1, the node .2 on each link.

use super::util::Bundle;
use super::{Netns, collect_in, diagnose, enter_netns, serial, sh, skip_reason, veth};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The client's source port that keeps its entry alive across the rollout, and the one that
/// starts after it.
const FIXED_PORT: u16 = 40_053;
const LATE_PORT: u16 = 40_054;

/// The names the backends answer with.
const NAME_A: &[u8] = b"backend-a";
const NAME_B: &[u8] = b"backend-b";

/// A thread in a namespace that runs until dropped (stopped and joined on every path).
struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A UDP echo server on :53 in namespace `ns` answering every datagram with `name`; returns once
/// it is bound.
fn echo_server(ns: &Netns, name: &'static [u8]) -> Worker {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = {
        let stop = stop.clone();
        let ns = ns.0.clone();
        std::thread::spawn(move || {
            enter_netns(&ns);
            let socket = UdpSocket::bind("0.0.0.0:53").expect("bind :53");
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .expect("read timeout");
            ready_tx.send(()).expect("signal ready");
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((_, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(name, from);
                }
            }
        })
    };
    ready_rx.recv().expect("echo server ready");
    Worker {
        stop,
        thread: Some(thread),
    }
}

/// A client in namespace `ns` sending to `service` from `port` every 200 ms, keeping every
/// answer it gets.
struct Client {
    answers: Arc<Mutex<Vec<Vec<u8>>>>,
    worker: Worker,
}

impl Client {
    fn start(ns: &Netns, from: SocketAddrV4, service: SocketAddrV4) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let answers: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let thread = {
            let stop = stop.clone();
            let answers = answers.clone();
            let ns = ns.0.clone();
            std::thread::spawn(move || {
                enter_netns(&ns);
                let socket = UdpSocket::bind(from).expect("bind the client port");
                socket
                    .set_read_timeout(Some(Duration::from_millis(50)))
                    .expect("read timeout");
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    let _ = socket.send_to(b"q", service);
                    let next = Instant::now() + Duration::from_millis(200);
                    while Instant::now() < next {
                        if let Ok((n, _)) = socket.recv_from(&mut buf) {
                            answers
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(buf[..n].to_vec());
                        }
                    }
                }
            })
        };
        Client {
            answers,
            worker: Worker {
                stop,
                thread: Some(thread),
            },
        }
    }

    /// Stops sending and returns every answer received.
    fn stop(mut self) -> Vec<Vec<u8>> {
        self.worker.halt();
        self.answers()
    }

    fn answers(&self) -> Vec<Vec<u8>> {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until `n` answers came, at most `limit` (then fails, naming what came).
    fn wait_answers(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.answers().len() < n {
            assert!(
                Instant::now() < deadline,
                "{n} answers expected, got {:?}",
                names(&self.answers())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn names(answers: &[Vec<u8>]) -> Vec<String> {
    answers
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The client, node and backend namespaces, routed, with the Service DNAT'd to A.
struct StaleLab {
    client: Netns,
    node: Netns,
    a: Option<Netns>,
    b: Netns,
    k: u8,
}

impl StaleLab {
    fn new() -> StaleLab {
        let pid = std::process::id();
        let k = (pid % 200) as u8 + 20;
        let ns = |tag: &str| Netns::create(format!("ctdiag-{pid}-us-{tag}"));
        let (client, node, a, b) = (ns("c"), ns("n"), ns("a"), ns("b"));
        veth(
            "vc",
            &client,
            &format!("10.220.{k}.1/24"),
            &node,
            &format!("10.220.{k}.2/24"),
        );
        veth(
            "va",
            &a,
            &format!("10.221.{k}.1/24"),
            &node,
            &format!("10.221.{k}.2/24"),
        );
        veth(
            "vb",
            &b,
            &format!("10.222.{k}.1/24"),
            &node,
            &format!("10.222.{k}.2/24"),
        );
        let via = |ns: &Netns, dst: &str, gw: String| {
            sh(&["ip", "-n", &ns.0, "route", "add", dst, "via", &gw]);
        };
        via(&client, &format!("10.96.{k}.0/24"), format!("10.220.{k}.2"));
        via(&a, "default", format!("10.221.{k}.2"));
        via(&b, "default", format!("10.222.{k}.2"));
        node.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let lab = StaleLab {
            client,
            node,
            a: Some(a),
            b,
            k,
        };
        exec_in(&lab.node, &lab.dnat("-A", &lab.backend_a()));
        lab
    }

    fn service(&self) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 96, self.k, 10), 53)
    }

    fn backend_a(&self) -> String {
        format!("10.221.{}.1", self.k)
    }

    fn backend_b(&self) -> String {
        format!("10.222.{}.1", self.k)
    }

    fn client_addr(&self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 220, self.k, 1), port)
    }

    /// The Service's one DNAT rule: appended (`-A`) or replacing the first (`-R … 1`).
    fn dnat(&self, op: &str, backend: &str) -> Vec<String> {
        let mut args = vec!["iptables", "-t", "nat", op, "PREROUTING"];
        if op == "-R" {
            args.push("1");
        }
        let service = self.service().ip().to_string();
        let to = format!("{backend}:53");
        args.extend([
            "-d",
            &service,
            "-p",
            "udp",
            "--dport",
            "53",
            "-j",
            "DNAT",
            "--to-destination",
            &to,
        ]);
        args.into_iter().map(str::to_string).collect()
    }
}

/// Runs a command built at run time inside `ns`.
fn exec_in(ns: &Netns, args: &[String]) {
    ns.exec(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// The `key=` values of a conntrack line, in order (original tuple first, then reply).
fn fields<'l>(line: &'l str, key: &str) -> Vec<&'l str> {
    let prefix = format!("{key}=");
    line.split_ascii_whitespace()
        .filter_map(|t| t.strip_prefix(prefix.as_str()))
        .collect()
}

/// The listed UDP entry of the client's `port`, and its reply source (the backend).
fn entry_of(list: &str, service: &SocketAddrV4, port: u16) -> (String, String) {
    let line = list
        .lines()
        .find(|l| {
            // `-o extended` lines start with the family: `ipv4     2 udp      17 …`.
            l.split_ascii_whitespace().take(3).any(|t| t == "udp")
                && fields(l, "sport").first() == Some(&port.to_string().as_str())
                && fields(l, "dst").first() == Some(&service.ip().to_string().as_str())
        })
        .unwrap_or_else(|| panic!("no udp entry from port {port} to {service} in:\n{list}"));
    let reply_src = fields(line, "src").get(1).map(|s| s.to_string());
    (
        line.to_string(),
        reply_src.unwrap_or_else(|| panic!("no reply tuple in {line}")),
    )
}

/// The cluster files kubectl would print after the rollout: the kube-dns Service and its one
/// EndpointSlice naming only B. A FAKE: no cluster runs on this machine; the shapes are those of
/// `kubectl get services,endpointslices -A -o json` (see collector/tests/cluster/fixtures/).
fn write_cluster_files(dir: &Path, service: &SocketAddrV4, backend_b: &str) {
    let cluster = dir.join("cluster");
    std::fs::create_dir(&cluster).expect("create cluster/");
    let services = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [{
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system"},
            "spec": {
                "clusterIP": service.ip().to_string(),
                "clusterIPs": [service.ip().to_string()],
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}],
                "selector": {"k8s-app": "kube-dns"},
                "type": "ClusterIP"
            }
        }]
    });
    let slices = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [{
            "addressType": "IPv4",
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "endpoints": [{
                "addresses": [backend_b],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": "lab-node",
                "targetRef": {
                    "kind": "Pod",
                    "name": "coredns-6f9c8d7b5-new01",
                    "namespace": "kube-system",
                    "uid": "x"
                }
            }],
            "metadata": {
                "generateName": "kube-dns-",
                "labels": {
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                    "kubernetes.io/service-name": "kube-dns"
                },
                "name": "kube-dns-q7x2v",
                "namespace": "kube-system"
            },
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]
        }]
    });
    for (name, doc) in [("services.json", services), ("endpointslices.json", slices)] {
        let text = serde_json::to_string_pretty(&doc).expect("JSON");
        std::fs::write(cluster.join(name), text).expect("write a cluster file");
    }
}

/// The JSON report of the one node of a directory of bundles with its `cluster/` folder, as
/// `ctdiag analyze DIR` reads it.
fn diagnose_with_cluster(dir: &Path) -> serde_json::Value {
    let report = ctdiag::analyze(&[dir.to_path_buf()], &ctdiag::AnalyzeOptions::default())
        .expect("analyzer rules load");
    assert_eq!(report.nodes.len(), 1, "{:?}", report.unreadable);
    serde_json::to_value(&report.nodes[0]).expect("report serializes")
}

#[test]
fn a_udp_flow_stays_dnatted_to_a_backend_removed_by_a_rollout() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping the real-kernel test: {why}");
        return;
    }
    let _serial = serial();
    let mut lab = StaleLab::new();
    let service = lab.service();
    let (a, b) = (lab.backend_a(), lab.backend_b());
    let mut server_a = echo_server(lab.a.as_ref().expect("A exists"), NAME_A);
    let _server_b = echo_server(&lab.b, NAME_B);

    // Long enough for the entry to become a stream (two seconds of answers: [ASSURED], the
    // longer UDP timeout), as a resolver's long-lived socket does.
    let fixed = Client::start(&lab.client, lab.client_addr(FIXED_PORT), service);
    fixed.wait_answers(15, Duration::from_secs(20));

    // The rollout: the Service now leads to B only, A is gone, and conntrack is left as it is.
    exec_in(&lab.node, &lab.dnat("-R", &b));
    server_a.halt();
    let ns_a = lab.a.take().expect("A exists");
    ns_a.exec(&["ip", "link", "del", "va"]);
    drop(ns_a);
    let answered_before = fixed.answers();

    let late = Client::start(&lab.client, lab.client_addr(LATE_PORT), service);
    late.wait_answers(3, Duration::from_secs(20));
    // A few more sends of the fixed client into its entry after the rollout.
    std::thread::sleep(Duration::from_secs(1));

    let dir = tempfile::tempdir().expect("temp dir");
    let path = collect_in(&lab.node, dir.path(), &[]);
    let answered = fixed.stop();
    let late_answered = late.stop();

    assert!(
        answered_before.iter().all(|n| n == NAME_A),
        "before the rollout A answered: {:?}",
        names(&answered_before)
    );
    assert_eq!(
        names(&answered[answered_before.len()..]),
        Vec::<String>::new(),
        "after the rollout nobody answers the fixed port: its entry still leads to A"
    );
    assert!(
        late_answered.iter().all(|n| n == NAME_B),
        "a new flow reaches B: {:?}",
        names(&late_answered)
    );

    let bundle = Bundle::open(&path);
    bundle.assert_consistent();
    let list = bundle.text("conntrack/list.txt");
    let (stale_line, stale_backend) = entry_of(&list, &service, FIXED_PORT);
    assert_eq!(stale_backend, a, "{stale_line}");
    // A answered before the rollout, so the entry carries no [UNREPLIED] flag however long A
    // has been gone: the kernel keeps SEEN_REPLY, and after two seconds of answers [ASSURED].
    assert!(!stale_line.contains("[UNREPLIED]"), "{stale_line}");
    assert!(stale_line.contains("[ASSURED]"), "{stale_line}");
    let (late_line, late_backend) = entry_of(&list, &service, LATE_PORT);
    assert_eq!(late_backend, b, "{late_line}");

    // Without cluster files the stale test falls back on replies: a backend is stale when it
    // answered none of its entries while another backend of the service answers. A's one entry
    // was answered before the rollout, so nothing gives it away: A is not judged stale.
    let alone = diagnose(&path);
    let stale = &alone["facts"]["nf"]["list"]["stale"];
    assert_eq!(stale["method"], "unreplied", "{stale:#}");
    assert_eq!(stale["entries"], 0, "{stale:#}");
    assert_eq!(stale["backends"], serde_json::json!([]), "{stale:#}");

    // With the cluster's EndpointSlices, A is no endpoint of any Service: its entry is stale.
    write_cluster_files(dir.path(), &service, &b);
    let report = diagnose_with_cluster(dir.path());
    let stale = &report["facts"]["nf"]["list"]["stale"];
    assert_eq!(stale["method"], "endpointslices", "{stale:#}");
    assert_eq!(
        stale["backends"],
        serde_json::json!([{
            "backend": a,
            "entries": 1,
            "unreplied": 0,
            "service": service.to_string(),
            "service_addr": service.ip().to_string(),
            "service_name": "kube-system/kube-dns",
        }]),
        "{stale:#}"
    );

    // What the rule for stale UDP DNAT must make of it (nf.udp_stale_dnat, written alongside
    // this test: this fails until it is merged).
    let finding = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["id"] == "nf.udp_stale_dnat");
    let Some(finding) = finding else {
        panic!("no nf.udp_stale_dnat finding: {:#}", report["findings"]);
    };
    let summary = finding["summary"].as_str().expect("summary");
    assert!(summary.contains(&a), "{summary}");
}
