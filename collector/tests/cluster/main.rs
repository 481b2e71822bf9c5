//! `ctdiag-collect cluster` end to end, against a fake `kubectl`: there is no Kubernetes cluster
//! here, so the kubectl boundary is `fixtures/kubectl`, a small POSIX shell script put first on
//! PATH. It replays recorded `kubectl get … -o json` output (nodes, pods, services, endpoint
//! slices, in the shapes kubectl v1.31 prints) and recorded Cilium agent CLI output, records every
//! pod it is asked to create or delete, and for `exec` into one of our pods does what the pod
//! would: keeps the binary streamed over stdin, then runs that very binary here, for real, writing
//! the bundle to stdout. Everything after the boundary is real: the collector, the join with the
//! Cilium part, the verification, and `ctdiag analyze` on the directory it wrote.
//!
//! Each node's procfs is a tree this test writes (`--proc-root`, added by the fake), with no host
//! tools on the collector's PATH, so every source takes its procfs fallback and reads the tree.
//! That makes the hot node hot through the real collection code path (fallbacks, sampling,
//! manifest), rather than by handing back a prepared bundle, and keeps the result independent of
//! this machine's own conntrack table.

mod deploy;

#[path = "../collect/util.rs"]
mod util;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use util::Bundle;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster/fixtures");

/// A fake cluster: the fake kubectl first on PATH, its state, the nodes' procfs trees.
struct FakeCluster {
    dir: tempfile::TempDir,
}

impl FakeCluster {
    fn new() -> FakeCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir bin");
        std::fs::copy(Path::new(FIXTURES).join("kubectl"), bin.join("kubectl")).expect("copy");
        std::fs::set_permissions(bin.join("kubectl"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::fs::create_dir_all(dir.path().join("nodebin")).expect("mkdir nodebin");
        std::fs::create_dir_all(dir.path().join("state")).expect("mkdir state");
        let proc = dir.path().join("proc");
        write_proc(&proc.join("worker-1"), "worker-1", Load::Quiet);
        write_proc(&proc.join("worker-2"), "worker-2", Load::Hot);
        write_proc(&proc.join("worker-3"), "worker-3", Load::Quiet);
        FakeCluster { dir }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn command(&self, args: &[&str]) -> Command {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new(util::bin());
        c.arg("cluster")
            .args(args)
            .args(["-o", self.out().to_str().expect("UTF-8 path")])
            .env("PATH", path)
            .env("FAKE_KUBECTL_FIXTURES", FIXTURES)
            .env("FAKE_KUBECTL_STATE", self.dir.path().join("state"))
            .env("FAKE_KUBECTL_PROC", self.dir.path().join("proc"))
            .env("FAKE_KUBECTL_NODEBIN", self.dir.path().join("nodebin"))
            .env_remove("FAKE_KUBECTL_FAIL_NODE")
            .env_remove("FAKE_KUBECTL_HANG");
        c
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run ctdiag-collect cluster")
    }

    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("state/log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Pod names after `create` / `delete` in the fake's log.
    fn pods(&self, verb: &str) -> BTreeSet<String> {
        self.log()
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("{verb} ")))
            .filter_map(|rest| rest.split_whitespace().next().map(str::to_string))
            .collect()
    }

    /// The Pod objects the fake was asked to create.
    fn specs(&self) -> Vec<serde_json::Value> {
        let mut specs = Vec::new();
        for name in self.pods("create") {
            let path = self.dir.path().join(format!("state/specs/{name}.json"));
            if let Ok(text) = std::fs::read_to_string(path) {
                specs.push(serde_json::from_str(&text).expect("spec is JSON"));
            }
        }
        specs
    }

    /// Bundles and other files left in the output directory (not `cluster/`).
    fn outputs(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.out())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "cluster")
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[derive(Clone, Copy, PartialEq)]
enum Load {
    Quiet,
    /// Table full: a client pod churning connections to a Service, and entries stuck on a
    /// backend that a rollout removed.
    Hot,
}

fn put(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// A node's procfs as the collector's fallbacks read it (files a 6.1 kernel prints).
fn write_proc(root: &Path, node: &str, load: Load) {
    put(
        root,
        "version",
        "Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)\n",
    );
    put(
        root,
        "meminfo",
        "MemTotal:       16318508 kB\nMemFree:         8123456 kB\nMemAvailable:   12345678 kB\n",
    );
    let cpus: String = (0..4)
        .map(|i| format!("processor\t: {i}\nvendor_id\t: GenuineIntel\n\n"))
        .collect();
    put(root, "cpuinfo", &cpus);
    put(root, "uptime", "86400.12 300000.00\n");
    put(root, "sys/kernel/hostname", &format!("{node}\n"));
    put(root, "sys/kernel/osrelease", "6.1.0-28-cloud-amd64\n");
    put(
        root,
        "modules",
        "nf_nat 57344 3 xt_nat,xt_MASQUERADE,iptable_nat, Live 0x0000000000000000\nnf_conntrack 188416 4 xt_conntrack,nf_nat,xt_nat,xt_MASQUERADE, Live 0x0000000000000000\n",
    );
    let (max, list) = match load {
        Load::Hot => {
            let mut list = String::new();
            for i in 0..900 {
                list.push_str(&format!(
                    "ipv4     2 tcp      6 {} TIME_WAIT src=10.244.2.11 dst=10.96.0.20 sport={p} dport=80 src=10.244.1.7 dst=10.244.2.11 sport=8080 dport={p} [ASSURED] mark=0 zone=0 use=2\n",
                    1 + i % 119,
                    p = 32768 + i
                ));
            }
            for i in 0..124 {
                list.push_str(&format!(
                    "ipv4     2 tcp      6 {} SYN_SENT src=10.244.2.11 dst=10.96.0.20 sport={p} dport=80 [UNREPLIED] src=10.244.3.99 dst=10.244.2.11 sport=8080 dport={p} mark=0 zone=0 use=2\n",
                    1 + i % 119,
                    p = 50000 + i
                ));
            }
            (1024, list)
        }
        Load::Quiet => {
            let list: String = (0..60)
                .map(|i| format!(
                    "ipv4     2 tcp      6 86300 ESTABLISHED src=10.244.1.7 dst=10.244.2.11 sport={p} dport=443 src=10.244.2.11 dst=10.244.1.7 sport=443 dport={p} [ASSURED] mark=0 zone=0 use=2\n",
                    p = 40000 + i
                ))
                .collect();
            (262_144, list)
        }
    };
    let count = list.lines().count();
    put(root, "net/nf_conntrack", &list);
    let (drop, early) = if load == Load::Hot { (42, 16) } else { (0, 0) };
    let mut stat = String::from(
        "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n",
    );
    for cpu in 0..4 {
        let (d, e) = if cpu == 0 { (drop, early) } else { (0, 0) };
        stat.push_str(&format!(
            "{count:08x}  00000000 00000000 00000000 00000003 00000000 00000000 00000000 00000000 00000000 {d:08x} {e:08x} 00000000  00000000 00000000 00000000 00000000\n"
        ));
    }
    put(root, "net/stat/nf_conntrack", &stat);
    for (key, value) in [
        ("nf_conntrack_max", max.to_string()),
        ("nf_conntrack_count", count.to_string()),
        ("nf_conntrack_buckets", max.to_string()),
        ("nf_conntrack_tcp_timeout_time_wait", "120".into()),
        ("nf_conntrack_tcp_timeout_established", "86400".into()),
        ("nf_conntrack_udp_timeout", "30".into()),
    ] {
        put(
            root,
            &format!("sys/net/netfilter/{key}"),
            &format!("{value}\n"),
        );
    }
    put(root, "sys/net/ipv4/ip_local_port_range", "32768\t60999\n");
}

const QUICK: &[&str] = &[
    "--samples",
    "2",
    "--interval",
    "0.2",
    "--timeout",
    "10",
    "--pod-start-timeout",
    "5",
];

fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = QUICK.to_vec();
    v.extend(extra);
    v
}

#[test]
fn writes_a_bundle_per_node_and_the_cluster_files_names_the_failed_node_and_deletes_every_pod() {
    let fake = FakeCluster::new();
    let out = fake.run(&with(&["--all"]), &[("FAKE_KUBECTL_FAIL_NODE", "worker-3")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "one node failed: {err}");

    // Summary: two written, the third named with its reason.
    assert!(err.contains("2 of 3 node bundles written"), "{err}");
    let failed = err
        .lines()
        .find(|l| l.trim_start().starts_with("failed") && l.contains("worker-3"))
        .unwrap_or_else(|| panic!("no failed line for worker-3: {err}"));
    assert!(
        failed.contains("did not become ready within 5s: ImagePullBackOff: Back-off pulling image \"busybox:1.36\""),
        "{failed}"
    );
    assert!(
        err.contains("[worker-2] collecting"),
        "progress on stderr: {err}"
    );

    // One verified bundle per written node, nothing half-written left behind.
    let outputs = fake.outputs();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert!(outputs[0].starts_with("ctdiag-worker-1-") && outputs[0].ends_with(".tar.gz"));
    assert!(outputs[1].starts_with("ctdiag-worker-2-") && outputs[1].ends_with(".tar.gz"));
    let b1 = Bundle::open(&fake.out().join(&outputs[0]));
    let b2 = Bundle::open(&fake.out().join(&outputs[1]));
    for b in [&b1, &b2] {
        b.assert_consistent();
    }
    assert_eq!(b2.manifest["node"], "worker-2");
    assert_eq!(
        b2.text("sysctl/net.txt")
            .lines()
            .find(|l| l.starts_with("net.netfilter.nf_conntrack_max"))
            .unwrap_or_default(),
        "net.netfilter.nf_conntrack_max = 1024",
        "read from the node's procfs tree"
    );
    // worker-1 runs Cilium: its part came through the agent pod and joined the bundle.
    for member in [
        "cilium/ct-list-global.txt",
        "cilium/status.txt",
        "cilium/config.txt",
        "cilium/metrics.0.txt",
        "cilium/metrics.1.txt",
        "cilium/agent-log.txt",
    ] {
        assert!(b1.members.contains_key(member), "{member} missing");
    }
    assert!(
        b1.text("cilium/status.txt")
            .contains("KubeProxyReplacement:")
    );
    let argv = b1.record("cilium/status.txt")["argv"].clone();
    assert!(
        argv.to_string()
            .contains("\"exec\",\"cilium-x7k2p\",\"-c\",\"cilium-agent\""),
        "{argv}"
    );
    // worker-2 has no agent pod: its Cilium sources say so.
    let why = b2.failures("cilium/status.txt");
    assert!(
        why[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("no running Cilium agent pod on this node")),
        "{why:?}"
    );

    // Cluster files, once per run.
    for name in [
        "pods.json",
        "services.json",
        "endpointslices.json",
        "nodes.json",
    ] {
        let text = std::fs::read_to_string(fake.out().join("cluster").join(name))
            .unwrap_or_else(|e| panic!("cluster/{name}: {e}"));
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["kind"], "List", "{name}");
    }

    // Every pod created was deleted; each was streamed the collector.
    let created = fake.pods("create");
    assert_eq!(created.len(), 3, "{:?}", fake.log());
    assert_eq!(created, fake.pods("delete"), "{:?}", fake.log());
    assert_eq!(fake.pods("upload").len(), 2);

    // The pods' specs: what makes them work on the node and go away.
    let specs = fake.specs();
    assert_eq!(specs.len(), 3);
    for pod in &specs {
        let spec = &pod["spec"];
        let node = spec["nodeName"].as_str().expect("pinned by nodeName");
        assert!(node.starts_with("worker-"));
        assert_eq!(spec["hostNetwork"], true);
        assert_eq!(spec["hostPID"], true);
        assert_eq!(spec["containers"][0]["securityContext"]["privileged"], true);
        assert!(
            spec["activeDeadlineSeconds"]
                .as_u64()
                .is_some_and(|s| s > 0)
        );
        assert_eq!(
            pod["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "ctdiag-collect"
        );
        assert_eq!(spec["tolerations"][0]["operator"], "Exists");
    }
}

#[test]
fn analyze_names_the_hot_nodes_cause_with_pod_names() {
    let fake = FakeCluster::new();
    let out = fake.run(&with(&["--nodes", "worker-1,worker-2"]), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = ctdiag::analyze(&[fake.out()], &ctdiag::AnalyzeOptions::default())
        .expect("analyze the directory");
    let json = serde_json::to_value(&report).expect("report JSON");
    let nodes: Vec<&str> = report.nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(nodes, ["worker-1", "worker-2"]);
    assert!(report.nodes[0].likely_cause.is_none(), "worker-1 is quiet");
    let hot = &report.nodes[1];
    let cause = hot.likely_cause.as_ref().expect("worker-2 has a cause");
    assert_eq!(cause.id, "nf.table_exhausted");
    let summary = |id: &str| {
        hot.findings
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.summary.clone())
            .unwrap_or_else(|| panic!("{id} did not fire: {:?}", hot.findings))
    };
    let churn = summary("nf.timewait_churn");
    assert!(
        churn.contains(
            "shop/web-frontend-6f7c9d8b4-q7w2x (10.244.2.11) → shop/api (10.96.0.20:80 tcp) 900"
        ),
        "{churn}"
    );
    let stale = summary("nf.stale_entries");
    assert!(
        stale.contains("10.244.3.99 is not an endpoint of service shop/api any more"),
        "{stale}"
    );
    assert_eq!(
        json["nodes"][1]["facts"]["nf"]["list"]["stale"]["method"],
        "endpointslices"
    );
    let readings: Vec<&str> = report
        .cluster
        .as_ref()
        .map(|c| c.readings.iter().map(|r| r.id.as_str()).collect())
        .unwrap_or_default();
    assert!(readings.contains(&"cluster.node_local"), "{readings:?}");
}

#[test]
fn an_interrupted_run_deletes_every_pod_it_created() {
    let fake = FakeCluster::new();
    let mut child = fake
        .command(&with(&["--all"]))
        .env("FAKE_KUBECTL_HANG", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait until every node's collector is running (and hanging) in its pod.
    let until = Instant::now() + Duration::from_secs(60);
    while fake
        .log()
        .iter()
        .filter(|l| l.starts_with("collect "))
        .count()
        < 3
    {
        assert!(
            Instant::now() < until,
            "collectors never started: {:?}",
            fake.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: signalling a child we spawned and have not reaped.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < until, "still running after SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut err)
        .expect("read stderr");
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let created = fake.pods("create");
    assert_eq!(created.len(), 3, "{:?}", fake.log());
    assert_eq!(created, fake.pods("delete"), "{:?}", fake.log());
    assert!(
        fake.outputs().is_empty(),
        "no bundle or temporary file left: {:?}",
        fake.outputs()
    );
}

#[test]
fn a_selector_picks_the_nodes_kubectl_selects() {
    let fake = FakeCluster::new();
    let out = fake.run(&with(&["--selector", "pool=spot"]), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let outputs = fake.outputs();
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert!(outputs[0].starts_with("ctdiag-worker-3-"));
    assert_eq!(fake.pods("create"), fake.pods("delete"));
}

#[test]
fn a_binary_that_cannot_run_on_a_node_is_refused_before_any_pod_exists() {
    let fake = FakeCluster::new();
    let script = fake.dir.path().join("not-elf");
    std::fs::write(&script, "#!/bin/sh\n").expect("write");
    let out = fake.run(
        &with(&["--all", "--binary", script.to_str().expect("UTF-8")]),
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not a Linux executable"),
        "{}",
        stderr(&out)
    );
    assert!(fake.pods("create").is_empty());
}
