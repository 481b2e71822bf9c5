//! Real-kernel test: a pod's own conntrack table fills while the host's stays clean.
//!
//! A "pod" namespace with a sidecar-like NAT rule of its own (`OUTPUT` DNAT of a service address
//! to a peer namespace serving TCP over a veth) is the only namespace tracking these connections.
//! A process kept in it (`ip netns exec <pod> sleep 600`) is what the collector reads the
//! namespace's statistics through, and it is put in a cgroup named like a kubelet pod's when the
//! machine lets us, so the pod UID path is exercised too. The global `nf_conntrack_max` is
//! lowered while connections are driven (restored by `LoweredMax` on every path), so the pod's
//! namespace drops; then the collector runs in the HOST namespace, as it does on a node, and the
//! analyzer must name the pod's table, not the host's. Only 10.210.K.0/24 and 10.211.K.0/24,
//! inside namespaces created here, are used.

use super::{LoweredMax, MAX_PATH, Netns, enter_netns, serial, sh, skip_reason, util};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const LOWERED_MAX: u32 = 20;
const CONNECTIONS: usize = 60;

/// A process kept in the pod namespace, killed when dropped; and the kubelet-like cgroup it was
/// moved into, removed after it.
struct PodProcess {
    child: Child,
    cgroup: Vec<PathBuf>,
}

impl PodProcess {
    fn start(netns: &str) -> PodProcess {
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "sleep", "600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the pod's process");
        PodProcess {
            child,
            cgroup: Vec::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Moves the process into `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice`
    /// of the cgroup v2 hierarchy. Returns false, changing nothing that stays, where that is not
    /// possible (no writable cgroup v2 mount here).
    fn join_pod_cgroup(&mut self, uid: &str) -> bool {
        let Some(root) = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("cgroup.procs").exists() && !p.join("tasks").exists())
        else {
            return false;
        };
        let levels = [
            "kubepods.slice".to_string(),
            "kubepods-besteffort.slice".to_string(),
            format!("kubepods-besteffort-pod{}.slice", uid.replace('-', "_")),
        ];
        let mut dir = root;
        for level in levels {
            dir = dir.join(level);
            if !dir.exists() {
                if std::fs::create_dir(&dir).is_err() {
                    return false;
                }
                self.cgroup.push(dir.clone());
            }
        }
        std::fs::write(dir.join("cgroup.procs"), self.pid().to_string()).is_ok()
    }
}

impl Drop for PodProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Deepest first; a directory that existed before is not in the list.
        for dir in self.cgroup.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The pod namespace, its peer serving TCP, and the pod's own NAT rule.
struct PodLab {
    pod: Netns,
    peer: Netns,
    k: u8,
}

impl PodLab {
    fn new() -> PodLab {
        let pid = std::process::id();
        let k = (pid % 200) as u8 + 20;
        let pod = Netns::create(format!("ctdiag-{pid}-pod"));
        let peer = Netns::create(format!("ctdiag-{pid}-peer"));
        sh(&[
            "ip", "-n", &pod.0, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0",
            "netns", &peer.0,
        ]);
        for (ns, host) in [(&pod, 1), (&peer, 2)] {
            sh(&[
                "ip",
                "-n",
                &ns.0,
                "addr",
                "add",
                &format!("10.210.{k}.{host}/24"),
                "dev",
                "veth0",
            ]);
            sh(&["ip", "-n", &ns.0, "link", "set", "veth0", "up"]);
            sh(&["ip", "-n", &ns.0, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip",
            "-n",
            &pod.0,
            "route",
            "add",
            &format!("10.211.{k}.0/24"),
            "via",
            &format!("10.210.{k}.2"),
        ]);
        // The sidecar's rule: locally generated connections to the "service" are redirected,
        // so conntrack tracks every connection of this namespace (and only of this one).
        pod.exec(&[
            "iptables",
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "-d",
            &format!("10.211.{k}.100"),
            "-p",
            "tcp",
            "--dport",
            "80",
            "-j",
            "DNAT",
            "--to-destination",
            &format!("10.210.{k}.2:8080"),
        ]);
        PodLab { pod, peer, k }
    }

    fn inode(&self) -> u64 {
        std::fs::metadata(format!("/run/netns/{}", self.pod.0))
            .expect("stat the pod namespace")
            .ino()
    }

    /// Opens `n` connections from the pod to the service, one at a time; returns how many
    /// connected.
    fn drive(&self, n: usize) -> usize {
        let stop = Arc::new(AtomicBool::new(false));
        let backend = SocketAddrV4::new(Ipv4Addr::new(10, 210, self.k, 2), 8080);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let server = {
            let stop = stop.clone();
            let ns = self.peer.0.clone();
            std::thread::spawn(move || {
                enter_netns(&ns);
                let listener = TcpListener::bind(backend).expect("bind the backend");
                listener.set_nonblocking(true).expect("nonblocking");
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
        let ns = self.pod.0.clone();
        let service = SocketAddr::from((Ipv4Addr::new(10, 211, self.k, 100), 80));
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
}

/// Sum of the `drop` column of a `/proc/net/stat/nf_conntrack` text (hex rows).
fn proc_stat_drops(text: &str) -> u64 {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let Some(col) = header.iter().position(|h| *h == "drop") else {
        return 0;
    };
    lines
        .filter_map(|l| l.split_whitespace().nth(col))
        .filter_map(|h| u64::from_str_radix(h, 16).ok())
        .sum()
}

fn kernel_log_lines_naming(inode: u64) -> usize {
    let needle = format!("table full in netns {inode},");
    Command::new("dmesg")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).matches(&needle).count())
        .unwrap_or(0)
}

fn host_count() -> u64 {
    std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_full_pod_namespace_is_named_and_the_host_is_not_blamed() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping the real-kernel netns test: {why}");
        return;
    }
    let _serial = serial();
    // The host's own table must stay well below the lowered limit, or the host would drop too
    // and the test would prove nothing about the pod.
    let before = host_count();
    if before >= u64::from(LOWERED_MAX) / 2 {
        eprintln!(
            "skipping the real-kernel netns test: the host's own table holds {before} entries, too close to the lowered limit {LOWERED_MAX}"
        );
        return;
    }
    let original_max = std::fs::read_to_string(MAX_PATH).expect("read nf_conntrack_max");
    let lab = PodLab::new();
    let inode = lab.inode();
    let mut process = PodProcess::start(&lab.pod.0);
    let pid = process.pid();
    let uid = format!(
        "0f6a2b3c-1d2e-4f50-8a9b-{:012x}",
        u64::from(std::process::id())
    );
    let in_pod_cgroup = process.join_pod_cgroup(&uid);
    if !in_pod_cgroup {
        eprintln!("no writable cgroup v2 here: the pod is named by pid and comm, not by UID");
    }
    // `ip netns exec` must have entered the namespace before the collector looks.
    for _ in 0..100 {
        if std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .is_ok_and(|l| l.to_string_lossy() == format!("net:[{inode}]"))
            && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "sleep")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let connected = {
        let _lowered = LoweredMax::set(LOWERED_MAX);
        lab.drive(CONNECTIONS)
    };
    assert_eq!(
        std::fs::read_to_string(MAX_PATH).expect("read max"),
        original_max,
        "limit restored"
    );
    assert!(
        connected > 0 && connected < CONNECTIONS,
        "the lowered limit should refuse some of the pod's connections, not all ({connected} of {CONNECTIONS} connected)"
    );

    // Collected in the host namespace, as on a node; cluster files beside the bundle name the pod.
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(util::bin())
        .args([
            "--samples",
            "2",
            "--interval",
            "1",
            "--timeout",
            "20",
            "--node",
            "lab-node",
            "--kube-proxy-url",
            "http://127.0.0.1:1",
            "-o",
        ])
        .arg(dir.path())
        .output()
        .expect("run ctdiag-collect");
    assert!(
        out.status.success(),
        "collector failed: {}",
        util::stderr(&out)
    );
    let path = util::only_bundle_in(dir.path());
    std::fs::create_dir(dir.path().join("cluster")).expect("cluster dir");
    std::fs::write(
        dir.path().join("cluster/pods.json"),
        format!(
            r#"{{"apiVersion": "v1", "kind": "List", "metadata": {{"resourceVersion": ""}}, "items": [
{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "checkout-7c9d", "namespace": "shop", "uid": "{uid}"}}, "spec": {{"nodeName": "lab-node"}}, "status": {{"phase": "Running"}}}}
]}}"#
        ),
    )
    .expect("write pods.json");

    let bundle = util::Bundle::open(&path);
    bundle.assert_consistent();
    let listing = bundle.text("netns/namespaces.txt");
    let ours = listing
        .lines()
        .find(|l| l.starts_with(&format!("inode={inode} ")))
        .unwrap_or_else(|| panic!("the pod namespace {inode} is not listed:\n{listing}"));
    assert!(
        ours.starts_with(&format!("inode={inode} host=0 pid={pid} comm=sleep ")),
        "{ours}"
    );
    if in_pod_cgroup {
        assert!(ours.contains(&format!(" pod_uid={uid} ")), "{ours}");
    }
    let stats = bundle.text(&format!("netns/{inode}/proc-stat.0.txt"));
    assert!(
        proc_stat_drops(&stats) > 0,
        "no drops in the pod's own statistics:\n{stats}"
    );
    assert_eq!(
        bundle.record(&format!("netns/{inode}/proc-stat.1.txt"))["file"],
        format!("/proc/{pid}/net/stat/nf_conntrack")
    );

    let report = ctdiag::analyze(
        &[dir.path().to_path_buf()],
        &ctdiag::AnalyzeOptions::default(),
    )
    .expect("analyzer rules load");
    let node = serde_json::to_value(&report.nodes[0]).expect("report serializes");
    let facts = &node["facts"]["nf"];
    let namespaces = facts["netns"]["namespaces"]
        .as_array()
        .expect("nf.netns.namespaces");
    let mine = namespaces
        .iter()
        .find(|n| n["inode"] == inode)
        .unwrap_or_else(|| panic!("{inode} not in nf.netns.namespaces: {namespaces:#?}"));
    assert!(mine["drop"].as_u64().unwrap_or(0) > 0, "{mine:#}");
    assert_eq!(mine["pid"], pid);
    if in_pod_cgroup {
        assert_eq!(mine["pod"], "shop/checkout-7c9d", "{mine:#}");
    }
    let lines = kernel_log_lines_naming(inode);
    if lines > 0 {
        assert!(
            mine["table_full_lines"].as_u64().unwrap_or(0) > 0,
            "{mine:#}"
        );
    }

    let findings = node["findings"].as_array().expect("findings");
    let finding = findings
        .iter()
        .find(|f| f["id"] == "nf.pod_netns_full")
        .unwrap_or_else(|| panic!("nf.pod_netns_full did not fire: {node:#}"));
    // The summary names the fullest full namespace: ours unless another one on this machine
    // (an earlier run's) is fuller.
    let full = |n: &serde_json::Value| {
        n["table_full_lines"].as_u64().unwrap_or(0) > 0
            || n["utilization"].as_f64().unwrap_or(0.0) >= 0.95
            || n["delta_drop"].as_i64().unwrap_or(0) > 0
    };
    let summary = finding["summary"].as_str().expect("summary");
    if namespaces.iter().find(|n| full(n)).map(|n| &n["inode"]) == Some(&mine["inode"]) {
        let named = if in_pod_cgroup {
            "Pod shop/checkout-7c9d".to_string()
        } else {
            format!("pid {pid} (sleep)")
        };
        assert!(summary.contains(&named), "{summary}");
        assert!(summary.contains(&format!("netns {inode}")), "{summary}");
    } else {
        eprintln!("another namespace on this machine is fuller than ours; summary: {summary}");
    }
    // The host's own table: its rule fires only on its own signals, never on the pod's lines.
    let host_signals = facts["dmesg"]["host_table_full"].as_u64().unwrap_or(0) > 0
        || facts["stats"]["drop"].as_u64().unwrap_or(0) > 0
        || facts["stats"]["early_drop"].as_u64().unwrap_or(0) > 0
        || facts["utilization"].as_f64().unwrap_or(0.0) >= 0.95;
    if !host_signals {
        assert!(
            findings.iter().all(|f| f["id"] != "nf.table_exhausted"),
            "nf.table_exhausted fired on the pod's lines: {findings:#?}"
        );
        assert_eq!(node["likely_cause"]["id"], "nf.pod_netns_full", "{node:#}");
    } else {
        eprintln!("the host itself shows conntrack loss on this machine; host-rule check skipped");
    }
    let mitigations = finding["mitigations"].to_string();
    if namespaces
        .iter()
        .find(|n| full(n) && n["pid"].is_u64())
        .map(|n| &n["inode"])
        == Some(&mine["inode"])
    {
        assert!(
            mitigations.contains(&format!("nsenter -t {pid} -n conntrack -S")),
            "{mitigations}"
        );
    }
    assert!(!mitigations.contains("sysctl -w net.netfilter.nf_conntrack_max"));
    drop(process);
}
