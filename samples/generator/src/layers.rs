//! The six samples of the layers beside netfilter: five Cilium 1.18 nodes with kube-proxy
//! replacement (CT map full, CT pressure, CT GC lagging, NAT map full, healthy) and one node whose
//! kube-proxy (iptables mode) stopped applying rule changes.
//!
//! The Cilium nodes come from a pool of 2 vCPU / 4 GiB edge workers whose Helm values pin the
//! BPF map sizes instead of letting dynamic sizing pick them: `bpf.ctTcpMax: 32768`,
//! `bpf.ctAnyMax: 16384`, `bpf.mapDynamicSizeRatio: 0` (NAT is then auto-sized to two thirds of
//! the CT total, 32768). That keeps a full CT map small enough for a 1 MB bundle — a CT line
//! compresses to about 18 bytes, and dynamic sizing never goes below 131072 TCP entries.
//!
//! With kube-proxy replacement and BPF host routing, pod traffic never reaches netfilter: the
//! node's `nf_conntrack` holds only host-network flows (kubelet, the agent, probes, scrapes),
//! a few percent of the kernel's default limit, and its counters show no drops.

use crate::bundle::{Body, Member, rfc3339};
use crate::cilium::{
    self, AgentConfig, AgentSample, CT_INSERT, CtClass, CtMap, CtState, CtTally, Dir, DropEvent,
    MetricRow, NAT_NO_MAPPING, StatusInput,
};
use crate::cluster::{Cluster, KUBERNETES, pod};
use crate::conntrack::TcpState;
use crate::flows::{FlowClass, Pool};
use crate::gofmt::go_duration;
use crate::kube_proxy::{self, ProxySample};
use crate::node::Node;
use crate::rng::Rng;
use std::net::IpAddr;

/// The pinned map sizes of the Cilium pool.
pub const TCP_MAX: u64 = 32_768;
pub const ANY_MAX: u64 = 16_384;
/// `(tcp + any) × 2 / 3`: the agent's auto-size when NAT is left at its default.
pub const NAT_MAX: u64 = (TCP_MAX + ANY_MAX) * 2 / 3;
pub const LIMITS_ORIGIN: &str = "configured: the pool's Helm values set `bpf.ctTcpMax: 32768`, \
     `bpf.ctAnyMax: 16384` and `bpf.mapDynamicSizeRatio: 0` (the ConfigMap keys \
     `bpf-ct-global-tcp-max`, `bpf-ct-global-any-max`, `bpf-map-dynamic-size-ratio`); NAT is \
     auto-sized to (32768 + 16384) × 2 / 3 = 32768. `cilium-dbg config -a` shows them as \
     `CTMapEntriesGlobalTCP`, `CTMapEntriesGlobalAny`, `NATMapEntriesGlobal`, and `status \
     --verbose` reports `dynamic sizing: off`";

/// What a scenario adds beside netfilter.
#[derive(Debug, Clone)]
pub enum Layer {
    Netfilter,
    Cilium(Box<CiliumPlan>),
    KubeProxy(Box<ProxyPlan>),
}

/// A Cilium node: its CT maps, datapath counters and agent state.
#[derive(Debug, Clone)]
pub struct CiliumPlan {
    pub ct: Vec<CtClass>,
    /// Drop reasons that change between the samples: (reason, direction, first packets,
    /// packets per second, bytes per packet, line, file).
    pub rising: Vec<(&'static str, &'static str, u64, u64, u64, u16, &'static str)>,
    /// Map pressure as the last GC estimated it.
    pub pressure: Vec<(&'static str, f64)>,
    /// (family, protocol, alive, deleted) of the last GC run of each map.
    pub gc_entries: Vec<(&'static str, &'static str, u64, u64)>,
    /// GC interval recalculations: (seconds before collection, previous interval s, next
    /// interval s, delete ratio).
    pub gc_log: Vec<(u64, u64, u64, f64)>,
    /// Drop events the monitor capture catches.
    pub monitor: Vec<DropEvent>,
    pub monitor_seconds: u64,
    pub nodes: Vec<(String, IpAddr, IpAddr)>,
    pub allocations: Vec<(IpAddr, String)>,
    pub agent_pod: String,
    pub agent_started_before: u64,
}

/// A node whose kube-proxy stopped applying changes.
#[derive(Debug, Clone)]
pub struct ProxyPlan {
    /// Seconds before collection: the last successful sync, the last change queued.
    pub applied_before: f64,
    pub queued_before: f64,
    pub sample: ProxySample,
}

/// The extra members of a collection, by where they go in the timeline.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// Sampled members, after the conntrack ones of the same sample.
    pub sampled: [Vec<Member>; 2],
    /// After the conntrack list, before the second sample.
    pub between: Vec<Member>,
    /// After the second sample.
    pub after: Vec<Member>,
    pub cilium: bool,
    pub kube_proxy: bool,
}

/// An IPv4 pod's IPv6 twin in the dual-stack pod CIDR `fd00:10:244:<n>::/64`.
pub fn v6_of(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            format!("fd00:10:244:{:x}::{:x}", o[2], o[3])
                .parse()
                .expect("valid IPv6")
        }
        v6 => v6,
    }
}

fn node_v6(n: u8) -> IpAddr {
    format!("fd00:10:0:1::{:x}", 0x20 + u32::from(n))
        .parse()
        .expect("valid IPv6")
}

/// Host-network flows of a Cilium node (the only ones netfilter sees): `n` entries.
pub fn host_flows(c: &Cluster, n: u64, rng: &mut Rng) -> Vec<FlowClass> {
    use TcpState::*;
    let node = Pool::one(c.node_ip);
    let api = Pool::one(IpAddr::from([10, 0, 0, 5]));
    let mon: IpAddr = IpAddr::from([10, 0, 0, 10]);
    let others = Pool::uniform(c.other_nodes.iter().copied());
    let local = Pool::uniform(c.local_pods.iter().copied());
    let v6_node = node_v6(c.pod_net);
    let v6_mon: IpAddr = "fd00:10::a".parse().expect("valid IPv6");
    let v6_ntp: IpAddr = "2001:db8:4860::123".parse().expect("valid IPv6");
    let fixed = vec![
        FlowClass::tcp("kubelet to the API load balancer", Established)
            .count(2)
            .timeout(431_000, 432_000)
            .from(node.clone())
            .to(api.clone(), 6443),
        FlowClass::tcp("cilium-agent to the API load balancer", Established)
            .count(2)
            .timeout(431_000, 432_000)
            .from(node.clone())
            .to(api, 6443),
        FlowClass::tcp("Prometheus scrapes the agent", Established)
            .count(1)
            .timeout(431_500, 432_000)
            .from(Pool::one(mon))
            .to(node.clone(), 9962),
        FlowClass::tcp("node-exporter scraped over IPv6", Established)
            .count(2)
            .timeout(431_900, 432_000)
            .from(Pool::one(v6_mon))
            .to(Pool::one(v6_node), 9100),
        FlowClass::udp_answered("chrony over IPv6")
            .count(2)
            .from(Pool::one(v6_node))
            .to(Pool::one(v6_ntp), 123),
        FlowClass::ping("monitoring pings the node")
            .count(3)
            .from(Pool::one(mon))
            .to(node.clone(), 0),
    ];
    let fixed_total: u64 = fixed.iter().map(|f| f.count).sum();
    let weighted = [
        (
            FlowClass::tcp("kubelet probes", TimeWait)
                .from(node.clone())
                .to(local.clone(), 8081),
            55,
        ),
        (
            FlowClass::tcp("kubelet probes in flight", Established)
                .timeout(1, 120)
                .from(node.clone())
                .to(local, 8080),
            3,
        ),
        (
            FlowClass::tcp("cilium-health HTTP probes", TimeWait)
                .from(node.clone())
                .to(others.clone(), 4240),
            25,
        ),
        (
            FlowClass::ping("cilium-health ICMP probes")
                .from(node.clone())
                .to(others, 0),
            7,
        ),
        (
            FlowClass::udp_answered("host DNS to the VPC resolver")
                .from(node.clone())
                .to(Pool::one(IpAddr::from([10, 0, 0, 2])), 53),
            6,
        ),
        (
            FlowClass::tcp("node-exporter scrapes, closed", TimeWait)
                .from(Pool::one(mon))
                .to(node, 9100),
            4,
        ),
    ];
    let counts = crate::cluster::spread(
        n.saturating_sub(fixed_total),
        &weighted.iter().map(|(_, w)| *w).collect::<Vec<_>>(),
        rng,
    );
    let mut out = fixed;
    out.extend(
        weighted
            .into_iter()
            .zip(counts)
            .filter(|(_, c)| *c > 0)
            .map(|((f, _), c)| f.count(c)),
    );
    out
}

/// Shares of the ordinary CT map mix of a busy Cilium node, applied to `tcp4` TCP entries.
pub fn busy_ct(c: &Cluster, tcp4: u64, rng: &mut Rng) -> Vec<CtClass> {
    let local = c.local_pods.clone();
    let remote = c.remote_pods.clone();
    let backends: Vec<IpAddr> = c
        .services
        .iter()
        .flat_map(|s| s.backends.iter().copied())
        .collect();
    let outside: Vec<IpAddr> = (0..20)
        .map(|h| IpAddr::from([198, 51, 100, 10 + h]))
        .collect();
    let clients: Vec<IpAddr> = (1..=200)
        .map(|h| IpAddr::from([203, 0, 113, h as u8]))
        .collect();
    let parts = crate::cluster::spread(tcp4, &[40, 18, 16, 9, 7, 4, 3, 3], rng);
    let mut v = vec![
        CtClass::new(
            "pods to Service backends",
            Dir::Out,
            CtState::Established,
            parts[0],
        )
        .between(local.clone(), backends.clone(), 8080),
        CtClass::new(
            "pods to Service backends, closing",
            Dir::Out,
            CtState::Closing,
            parts[1],
        )
        .between(local.clone(), backends.clone(), 8080),
        CtClass::new(
            "remote pods to pods here",
            Dir::In,
            CtState::Established,
            parts[2],
        )
        .between(remote.clone(), local.clone(), 8080),
        CtClass::new(
            "remote pods to pods here, closing",
            Dir::In,
            CtState::Closing,
            parts[3],
        )
        .between(remote.clone(), local.clone(), 8080),
        CtClass::new(
            "pods to outside APIs (masqueraded)",
            Dir::Out,
            CtState::Established,
            parts[4],
        )
        .between(local.clone(), outside, 443),
        CtClass::new(
            "NodePort 30443 service entries",
            Dir::Svc,
            CtState::Established,
            parts[5],
        )
        .between(clients, vec![c.node_ip], 30443)
        .svc(14),
        CtClass::new("pods connecting", Dir::Out, CtState::Syn, parts[6]).between(
            local.clone(),
            backends,
            8080,
        ),
        CtClass::new(
            "pods to kubernetes.default",
            Dir::Out,
            CtState::Established,
            parts[7],
        )
        .between(local.clone(), c.control_plane.clone(), 6443),
    ];
    let _ = KUBERNETES;
    let v6_local: Vec<IpAddr> = local.iter().map(|a| v6_of(*a)).collect();
    let v6_remote: Vec<IpAddr> = remote.iter().map(|a| v6_of(*a)).collect();
    v.extend([
        CtClass::new(
            "IPv6 pods to pods",
            Dir::Out,
            CtState::Established,
            tcp4 / 80 + 3,
        )
        .between(v6_local.clone(), v6_remote.clone(), 8080),
        CtClass::new(
            "IPv6 pods to pods, closing",
            Dir::Out,
            CtState::Closing,
            tcp4 / 200 + 2,
        )
        .between(v6_local.clone(), v6_remote, 8080),
        CtClass::new(
            "DNS lookups to CoreDNS",
            Dir::Out,
            CtState::Udp,
            tcp4 / 9 + 20,
        )
        .between(local, c.coredns.clone(), 53),
        CtClass::new(
            "IPv6 DNS lookups to CoreDNS",
            Dir::Out,
            CtState::Udp,
            tcp4 / 300 + 2,
        )
        .between(v6_local, c.coredns.iter().map(|a| v6_of(*a)).collect(), 53),
    ]);
    v
}

/// Security identity of an address: a stable number per workload (pods share their
/// deployment's), `2` (world) outside the cluster, `1` for this host, `6` for remote nodes.
pub fn identity(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            match (o[0], o[1]) {
                (10, 244) => 12_000 + u32::from(o[3] % 37) * 731 % 50_000,
                (10, 0) => 6,
                _ => 2,
            }
        }
        IpAddr::V6(v) => {
            let s = v.segments();
            if s[0] == 0xfd00 && s[2] == 0x244 {
                12_000 + u32::from(s[7] % 37) * 731 % 50_000
            } else {
                2
            }
        }
    }
}

/// The forwarding rows every node has, grown by `secs`.
fn base_rows(up: u64, secs: u64) -> Vec<MetricRow> {
    let t = up + secs;
    vec![
        MetricRow {
            reason: "Interface",
            dir: "INGRESS",
            packets: t * 410,
            bytes: t * 410 * 512,
            line: 1158,
            file: "bpf_host.c",
        },
        MetricRow {
            reason: "Success",
            dir: "EGRESS",
            packets: t * 1_630,
            bytes: t * 1_630 * 436,
            line: 235,
            file: "trace.h",
        },
        MetricRow {
            reason: "Success",
            dir: "INGRESS",
            packets: t * 1_712,
            bytes: t * 1_712 * 611,
            line: 235,
            file: "trace.h",
        },
        MetricRow {
            reason: "Success",
            dir: "EGRESS",
            packets: t * 96,
            bytes: t * 96 * 140,
            line: 1653,
            file: "bpf_lxc.c",
        },
        MetricRow {
            reason: "Stale or unroutable IP",
            dir: "INGRESS",
            packets: 41 + t / 20_000,
            bytes: (41 + t / 20_000) * 66,
            line: 1342,
            file: "bpf_lxc.c",
        },
        MetricRow {
            reason: "Unsupported L3 protocol",
            dir: "EGRESS",
            packets: 7,
            bytes: 546,
            line: 1594,
            file: "bpf_lxc.c",
        },
    ]
}

/// Both `bpf metrics list` samples of a plan.
pub fn metric_rows(p: &CiliumPlan, up: u64) -> [Vec<MetricRow>; 2] {
    let sample = |secs: u64| {
        let mut rows = base_rows(up, secs);
        for (reason, dir, first, rate, per, line, file) in &p.rising {
            let packets = first + rate * secs;
            rows.push(MetricRow {
                reason,
                dir,
                packets,
                bytes: packets * per,
                line: *line,
                file,
            });
        }
        rows
    };
    [sample(0), sample(5)]
}

/// Everything a Cilium plan adds to the collection; `started` is the collection's Unix start.
pub fn cilium_extra(
    p: &CiliumPlan,
    node: &Node,
    cluster_cidr: &str,
    started: u64,
    rng: &mut Rng,
) -> (Extra, CtTally) {
    let up = node.uptime_secs();
    let rows = metric_rows(p, up);
    let mut extra = Extra {
        cilium: true,
        ..Extra::default()
    };
    for (n, r) in rows.iter().enumerate() {
        let mut m = Member::command(
            &format!("cilium/metrics.{n}.txt"),
            &["cilium-dbg", "bpf", "metrics", "list"],
            Body::Text(cilium::bpf_metrics_list(r).into_bytes()),
        );
        m.sample = Some(n as u32);
        m.duration_ms = 38 + rng.range(0, 20);
        extra.sampled[n].push(m);
        let agent = AgentSample {
            rows: r.clone(),
            pressure: p.pressure.clone(),
            gc_entries: p.gc_entries.clone(),
            gc_runs: p
                .gc_entries
                .iter()
                .map(|(f, pr, _, _)| (*f, *pr, p.agent_started_before / 300 + 11))
                .collect(),
            cpu_seconds: p.agent_started_before as f64 * 0.021 + n as f64 * 0.11,
            rss: 187_000_000 + rng.range(0, 4_000_000) / 4096 * 4096,
            open_fds: 71 + rng.range(0, 4),
            start_time: (started - p.agent_started_before) as f64 + 0.61,
        };
        let mut m = Member::http(
            &format!("cilium/prometheus.{n}.txt"),
            "http://127.0.0.1:9962/metrics",
            Body::Text(cilium::agent_metrics(&agent).into_bytes()),
        );
        m.sample = Some(n as u32);
        m.duration_ms = 9 + rng.range(0, 6);
        extra.sampled[n].push(m);
    }
    let (ct_text, tally) = cilium::ct_list(&p.ct, up, &identity, rng);
    let ct_ms = 120 + tally.entries * 9 / 1000;
    let mut ct = Member::command(
        "cilium/ct-list-global.txt",
        &["cilium-dbg", "bpf", "ct", "list", "global"],
        Body::Text(ct_text.into_bytes()),
    );
    ct.duration_ms = ct_ms;
    extra.between.push(ct);
    let cfg = agent_config(node, cluster_cidr);
    let mut m = Member::command(
        "cilium/config.txt",
        &["cilium-dbg", "config", "-a"],
        Body::Text(cilium::config_all(&cfg).into_bytes()),
    );
    m.duration_ms = 31;
    extra.between.push(m);
    let controllers = controllers(p, rng);
    let status = cilium::status_verbose(
        &StatusInput {
            node_name: &node.name,
            node_ip: IpAddr::V4(node.ip),
            node_ip6: node_v6(node.pod_net),
            cpus: node.cpus,
            pod_cidr4: &cfg.pod_cidr4,
            pod_cidr6: &cfg.pod_cidr6,
            allocations: &p.allocations,
            router_ip: pod(node.pod_net, 251),
            config: &cfg,
            nodes: &p.nodes,
            now: started + 1,
            agent_started: started - p.agent_started_before,
            controllers: &controllers,
            hubble_flows_per_s: 30.0 + rng.range(0, 4000) as f64 / 100.0,
        },
        rng,
    );
    let mut m = Member::command(
        "cilium/status.txt",
        &["cilium-dbg", "status", "--verbose"],
        Body::Text(status.into_bytes()),
    );
    m.duration_ms = 210 + rng.range(0, 60);
    extra.between.push(m);
    let mut m = Member::command(
        "cilium/monitor-drop.txt",
        &["cilium-dbg", "monitor", "--type", "drop"],
        Body::Text(cilium::monitor_drops(node.cpus, &p.monitor, rng).into_bytes()),
    );
    m.duration_ms = p.monitor_seconds * 1000 + 40;
    extra.after.push(m);
    let log = agent_log(p, started, rng);
    let mut m = Member::command(
        "cilium/agent-log.txt",
        &[
            "kubectl",
            "-n",
            "kube-system",
            "logs",
            &p.agent_pod,
            "-c",
            "cilium-agent",
        ],
        Body::Text(log.into_bytes()),
    );
    m.duration_ms = 180 + rng.range(0, 90);
    extra.after.push(m);
    (extra, tally)
}

fn agent_config(node: &Node, cluster_cidr: &str) -> AgentConfig {
    AgentConfig {
        tcp_max: TCP_MAX,
        any_max: ANY_MAX,
        nat_max: NAT_MAX,
        neigh_max: 524_288,
        sock_rev_nat: 262_144,
        node_ip: IpAddr::V4(node.ip),
        pod_cidr4: format!("10.244.{}.0/24", node.pod_net),
        pod_cidr6: format!("fd00:10:244:{:x}::/64", node.pod_net),
        cluster_pool4: cluster_cidr.to_string(),
    }
}

fn controllers(p: &CiliumPlan, rng: &mut Rng) -> Vec<String> {
    let mut v: Vec<String> = [
        "bpf-map-sync-cilium_lxc",
        "cilium-health-ep",
        "ct-map-pressure",
        "dns-garbage-collector-job",
        "endpoint-gc",
        "ipcache-inject-labels",
        "k8s-heartbeat",
        "link-local-cleanup",
        "neighbor-table-refresh",
        "resolve-labels-/",
        "sync-host-ips",
        "sync-lb-maps-with-k8s-services",
        "sync-utime",
        "template-dir-watcher",
        "write-cni-file",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let eps = p.allocations.len() / 2;
    for _ in 0..eps.min(12) {
        let id = 100 + rng.below(3900);
        v.push(format!("endpoint-{id}-regeneration-recovery"));
        v.push(format!("resolve-identity-{id}"));
        v.push(format!("sync-policymap-{id}"));
        v.push(format!("sync-to-k8s-ciliumendpoint ({id})"));
    }
    v
}

fn agent_log(p: &CiliumPlan, started: u64, rng: &mut Rng) -> String {
    let mut out = String::new();
    let mut line = |at: u64, msg: &str, module: &str, attrs: &str, rng: &mut Rng| {
        out.push_str(&cilium::log_line(
            at * 1000 + rng.range(0, 999),
            rng.range(0, 999_999) as u32,
            "info",
            msg,
            module,
            attrs,
        ));
    };
    for (before, prev, next, ratio) in &p.gc_log {
        let at = started - before;
        let actual = prev * 1_000_000_000 + rng.range(1_000_000, 9_000_000);
        line(
            at,
            "Conntrack garbage collector interval recalculated",
            "agent.datapath.maps.ct-nat-map-gc",
            &format!(
                "expectedPrevInterval={} actualPrevInterval={} newInterval={} deleteRatio={}",
                go_duration(prev * 1_000_000_000),
                go_duration(actual),
                go_duration(next * 1_000_000_000),
                ratio
            ),
            rng,
        );
    }
    out
}

/// The kube-proxy members.
pub fn proxy_extra(p: &ProxyPlan, started: u64, rng: &mut Rng) -> Extra {
    let mut extra = Extra {
        kube_proxy: true,
        ..Extra::default()
    };
    for n in 0..2u32 {
        let mut s = p.sample.clone();
        s.last_applied = started as f64 - p.applied_before;
        s.last_queued = started as f64 - p.queued_before;
        // The stuck sync changes nothing between samples; a load balancer's health check hits
        // /healthz every 8 s and keeps getting 503.
        s.healthz_503 += u64::from(n);
        s.livez_200 += u64::from(n);
        s.cpu_seconds += f64::from(n) * 0.02;
        let mut m = Member::http(
            &format!("kube-proxy/metrics.{n}.txt"),
            "http://127.0.0.1:10249/metrics",
            Body::Text(kube_proxy::metrics(&s).into_bytes()),
        );
        m.sample = Some(n);
        m.duration_ms = 6 + rng.range(0, 5);
        extra.sampled[n as usize].push(m);
    }
    let mut m = Member::http(
        "kube-proxy/proxy-mode.txt",
        "http://127.0.0.1:10249/proxyMode",
        Body::Text(kube_proxy::proxy_mode().as_bytes().to_vec()),
    );
    m.duration_ms = 2;
    extra.after.push(m);
    extra
}

/// Pods of a Cilium node with names, both address families, plus the router and health
/// endpoint addresses `status --verbose` lists.
pub fn allocations(c: &Cluster, names: &[&str], rng: &mut Rng) -> Vec<(IpAddr, String)> {
    let mut v = Vec::new();
    for (i, ip) in c.local_pods.iter().enumerate() {
        let app = names[i % names.len()];
        let owner = format!(
            "{}/{app}-{:08x}-{}",
            if app == "coredns" {
                "kube-system"
            } else {
                "default"
            },
            rng.next_u64() as u32 & 0x7fff_ffff,
            pod_suffix(rng)
        );
        v.push((*ip, owner.clone()));
        v.push((v6_of(*ip), owner));
    }
    let router = pod(c.pod_net, 251);
    let health = pod(c.pod_net, 252);
    v.push((router, "router".into()));
    v.push((v6_of(router), "router".into()));
    v.push((health, "health".into()));
    v.push((v6_of(health), "health".into()));
    v
}

fn pod_suffix(rng: &mut Rng) -> String {
    const A: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| A[rng.below(A.len() as u64) as usize] as char)
        .collect()
}

/// Every node of the cluster as cilium-health sees it.
pub fn health_nodes(c: &Cluster, this: &Node, prefix: &str) -> Vec<(String, IpAddr, IpAddr)> {
    let mut v = vec![(
        this.name.clone(),
        IpAddr::V4(this.ip),
        pod(this.pod_net, 252),
    )];
    for ip in &c.other_nodes {
        if let IpAddr::V4(v4) = ip {
            let n = v4.octets()[3] - 20;
            v.push((format!("{prefix}-{n:02}"), *ip, pod(n, 252)));
        }
    }
    v
}

/// Monitor drop events for a reason, spread over the pods.
#[allow(clippy::too_many_arguments)]
pub fn drop_events(
    n: usize,
    reason: &str,
    exts: &[&str],
    src: &[IpAddr],
    dst: &[IpAddr],
    dport: u16,
    file: &'static str,
    line: u16,
    rng: &mut Rng,
) -> Vec<DropEvent> {
    (0..n)
        .map(|_| {
            let s = src[rng.below(src.len() as u64) as usize];
            let d = dst[rng.below(dst.len() as u64) as usize];
            let ext = exts[rng.below(exts.len() as u64) as usize];
            let dst_id = identity(d);
            DropEvent {
                reason: if ext.is_empty() {
                    reason.to_string()
                } else {
                    format!("{reason}, {ext}")
                },
                ifindex: 9 + (identity(s) % 23),
                file,
                line,
                src_identity: identity(s).to_string(),
                dst_identity: if dst_id == 2 {
                    "world".into()
                } else {
                    dst_id.to_string()
                },
                src: format!("{s}:{}", 32_768 + rng.below(28_232)),
                dst: format!("{d}:{dport}"),
                summary: "tcp SYN",
            }
        })
        .collect()
}

/// A drop counter's rows for the README: (first, second) of `reason`.
pub fn drop_pair(rows: &[Vec<MetricRow>; 2], reason: &str) -> (u64, u64) {
    let get = |r: &Vec<MetricRow>| {
        r.iter()
            .filter(|x| x.reason == reason)
            .map(|x| x.packets)
            .sum()
    };
    (get(&rows[0]), get(&rows[1]))
}

/// The constants a README quotes.
pub fn maps_of(t: &CtTally) -> [(CtMap, u64, u64); 4] {
    CtMap::ORDER.map(|m| (m, t.get(m), if m.is_tcp() { TCP_MAX } else { ANY_MAX }))
}

/// `rfc3339` re-exported for the README of the kube-proxy sample.
pub fn when(t: u64) -> String {
    rfc3339(t)
}

pub const CT_INSERT_REASON: &str = CT_INSERT;
pub const NAT_REASON: &str = NAT_NO_MAPPING;

use crate::bundle::epoch;
use crate::scenarios::{Scenario, baseline, big_node, grow, small_node};

const APPS: &[&str] = &[
    "orders-api",
    "catalog",
    "cart",
    "search",
    "checkout",
    "coredns",
    "notifications",
    "frontend",
];

/// The kernel's nf_conntrack limit for a 4 GiB node (≥ 5.15: max = buckets).
const NF_MAX_4G: u64 = 65_536;

/// GC recalculations as the interval grows ×1.5 from 5 min (< 5 % deleted each run), the last
/// one `last_before` seconds before collection; `steps` lines, capped at 12 h.
fn gc_growth(last_before: u64, steps: usize, rng: &mut Rng) -> Vec<(u64, u64, u64, f64)> {
    let mut chain = vec![300u64];
    while chain.len() <= steps {
        let next = ((*chain.last().unwrap_or(&300) as f64) * 1.5).round() as u64;
        chain.push(next.min(43_200));
    }
    let mut out = Vec::new();
    let mut at = last_before;
    for i in (0..steps).rev() {
        let ratio = (rng.range(2, 48) as f64) / 1000.0;
        out.push((at, chain[i], chain[i + 1], ratio));
        at += chain[i];
    }
    out.reverse();
    out
}

#[allow(clippy::too_many_arguments)]
fn cilium_scenario(
    case: &'static str,
    title: &'static str,
    name: &str,
    pod_net: u8,
    started: u64,
    nf_entries: u64,
    mut rng: Rng,
    build: impl FnOnce(
        &Cluster,
        &Node,
        &mut Rng,
    ) -> (CiliumPlan, String, Option<&'static str>, Vec<&'static str>),
) -> Scenario {
    let node = small_node(name, pod_net, &mut rng);
    let cluster = Cluster::new(&node, 22, &mut rng);
    let classes = host_flows(&cluster, nf_entries, &mut rng);
    let (first, rates) = baseline(&node, &mut rng);
    let second = grow(&first, &rates, &mut rng);
    let (plan, story, cause, contributors) = build(&cluster, &node, &mut rng);
    let veths = (0..22)
        .map(|_| format!("lxc{:012x}", rng.next_u64() & 0xffff_ffff_ffff))
        .collect();
    Scenario {
        case,
        title,
        started,
        max: NF_MAX_4G,
        buckets: NF_MAX_4G,
        max_origin: "the kernel's default for 4 GiB (= the bucket count on ≥ 5.15); no kube-proxy \
                     runs to raise it"
            .into(),
        veths,
        replaced_pods: 0,
        classes,
        count_drift: rng.range(0, 20) as i64 - 10,
        first,
        second,
        episode: None,
        expected_cause: cause,
        expected_contributors: contributors,
        story,
        layer: Layer::Cilium(Box::new(plan)),
        node,
        rng,
    }
}

fn plan_base(c: &Cluster, node: &Node, prefix: &str, rng: &mut Rng) -> CiliumPlan {
    CiliumPlan {
        ct: Vec::new(),
        rising: Vec::new(),
        pressure: Vec::new(),
        gc_entries: Vec::new(),
        gc_log: gc_growth(rng.range(20_000, 40_000), 3, rng),
        monitor: Vec::new(),
        monitor_seconds: 3,
        nodes: health_nodes(c, node, prefix),
        allocations: allocations(c, APPS, rng),
        agent_pod: format!("cilium-{}", pod_suffix(rng)),
        agent_started_before: rng.range(4, 9) * 86_400 + rng.range(0, 86_399),
    }
}

fn gc_from(t: &[(CtMap, u64)], deleted_share: u64) -> Vec<(&'static str, &'static str, u64, u64)> {
    t.iter()
        .map(|(m, alive)| {
            let (fam, proto) = match m {
                CtMap::Tcp4 => ("ipv4", "TCP"),
                CtMap::Any4 => ("ipv4", "non-TCP"),
                CtMap::Tcp6 => ("ipv6", "TCP"),
                CtMap::Any6 => ("ipv6", "non-TCP"),
            };
            (fam, proto, *alive, alive * deleted_share / 100)
        })
        .collect()
}

/// Entries of each map that `classes` will print.
fn counts(classes: &[CtClass]) -> Vec<(CtMap, u64)> {
    CtMap::ORDER
        .iter()
        .map(|m| {
            (
                *m,
                classes
                    .iter()
                    .filter(|c| {
                        let v6 = c.clients.first().is_some_and(IpAddr::is_ipv6);
                        let udp = c.state == CtState::Udp;
                        let cm = match (udp, v6) {
                            (false, false) => CtMap::Tcp4,
                            (true, false) => CtMap::Any4,
                            (false, true) => CtMap::Tcp6,
                            (true, true) => CtMap::Any6,
                        };
                        cm == *m
                    })
                    .map(|c| c.count)
                    .sum(),
            )
        })
        .collect()
}

pub fn cilium_ct_full(rng: Rng) -> Scenario {
    cilium_scenario(
        "cilium-ct-full",
        "Cilium CT map full while netfilter is idle",
        "edge-cil-04",
        4,
        epoch(2026, 11, 25, 9, 41, 17),
        1_900,
        rng,
        |c, node, rng| {
            let mut p = plan_base(c, node, "edge-cil", rng);
            let clients = vec![c.local_pods[1], c.local_pods[4]];
            let db = vec![c.remote_pods[7]];
            let leak = 19_500;
            p.ct.push(
                CtClass::new(
                    "orders-api connections to orders-db never closed",
                    Dir::Out,
                    CtState::Established,
                    leak,
                )
                .between(clients.clone(), db.clone(), 5432),
            );
            p.ct.extend(busy_ct(c, 32_310 - leak - 16, rng));
            p.ct.push(
                CtClass::new("orders-api connecting", Dir::Out, CtState::Syn, 16).between(
                    clients.clone(),
                    db.clone(),
                    5432,
                ),
            );
            let n = counts(&p.ct);
            p.pressure = vec![("ct4_global", 0.9981), ("ct_any4_global", 0.0914)];
            p.gc_entries = gc_from(&n, 3);
            p.rising = vec![(CT_INSERT, "EGRESS", 61_240, 58, 74, 1421, "bpf_lxc.c")];
            p.monitor = drop_events(
                171,
                CT_INSERT,
                &["-12"],
                &c.local_pods,
                &c.remote_pods,
                8080,
                "bpf_lxc.c",
                1421,
                rng,
            );
            let story = format!(
                "A 2 vCPU / 4 GiB edge worker running Cilium {} with kube-proxy replacement \
                 (socket LB, BPF host routing, BPF masquerading), so Service traffic never \
                 touches netfilter. Two `orders-api` pods ({}, {}) keep a connection pool to \
                 the `orders-db` backend {} that grows on every burst and never shrinks; each \
                 pooled connection is one `TCP OUT` entry that lives for Cilium's 6 h TCP \
                 timeout.\n\n\
                 `cilium_ct4_global` holds about 98.6 % of its configured 32768 entries, \
                 `CT: Map insertion failed` rises by about 58 packets/s between the two `bpf \
                 metrics list` samples (and in the agent's `cilium_drop_count_total`), and the \
                 3 s drop capture shows the failed inserts (`CT: Map insertion failed, -12`: \
                 the LRU map could not hand out a free element). Meanwhile netfilter's table is \
                 at a few percent of its limit with `drop`, `early_drop` and `insert_failed` at \
                 0. A reader should conclude: the eBPF CT map is exhausted, not netfilter — \
                 raise `bpf-ct-global-tcp-max` (the pinned 32768 is far below what dynamic \
                 sizing would pick) and fix the leaking pool.",
                cilium::VERSION,
                clients[0],
                clients[1],
                db[0]
            );
            (p, story, Some("cilium.ct_map_exhausted"), vec![])
        },
    )
}

pub fn cilium_ct_pressure(rng: Rng) -> Scenario {
    cilium_scenario(
        "cilium-ct-pressure",
        "Cilium CT map at 81 % under ordinary load",
        "edge-cil-08",
        8,
        epoch(2026, 11, 26, 15, 2, 48),
        2_300,
        rng,
        |c, node, rng| {
            let mut p = plan_base(c, node, "edge-cil", rng);
            p.ct = busy_ct(c, 26_540, rng);
            let n = counts(&p.ct);
            p.pressure = vec![("ct4_global", 0.7962)];
            p.gc_entries = gc_from(&n, 9);
            let story = format!(
                "A 2 vCPU / 4 GiB edge worker (Cilium {}, kube-proxy replacement) with an \
                 ordinary, busy traffic mix: pods calling Service backends (load-balanced at the \
                 socket, so the CT entries name the backend pods), pods on other nodes calling \
                 pods here, NodePort clients, masqueraded egress, DNS, a little IPv6.\n\n\
                 `cilium_ct4_global` is at about 81 % of its configured 32768 entries, no drop \
                 counter rises and the drop capture is empty. A reader should conclude: \
                 pressure on the eBPF CT map — raise `bpf-ct-global-tcp-max` (or return to \
                 dynamic sizing) before a peak fills it; netfilter is not involved.",
                cilium::VERSION
            );
            (p, story, Some("cilium.ct_map_pressure"), vec![])
        },
    )
}

pub fn cilium_gc_lagging(rng: Rng) -> Scenario {
    cilium_scenario(
        "cilium-gc-lagging",
        "Cilium CT garbage collection hours behind",
        "edge-cil-10",
        10,
        epoch(2026, 11, 27, 10, 12, 33),
        2_100,
        rng,
        |c, node, rng| {
            let mut p = plan_base(c, node, "edge-cil", rng);
            // The interval grew overnight to its 12 h ceiling; the last run was 3 h 10 min ago.
            p.gc_log = gc_growth(11_400, 13, rng);
            let chain: u64 = p.gc_log.iter().map(|g| g.1).sum();
            p.agent_started_before = 11_400 + chain + 300 + rng.range(600, 3_000);
            let batch: Vec<IpAddr> = c.local_pods[2..8].to_vec();
            let expired = 11_400;
            p.ct.push(
                CtClass::new(
                    "report jobs' closed connections, expired but not collected",
                    Dir::Out,
                    CtState::Closing,
                    expired,
                )
                .between(batch.clone(), c.remote_pods.clone(), 8080)
                .expired(9_000),
            );
            p.ct.push(
                CtClass::new(
                    "report jobs' DNS lookups, expired but not collected",
                    Dir::Out,
                    CtState::Udp,
                    1_300,
                )
                .between(batch, c.coredns.clone(), 53)
                .expired(9_000),
            );
            p.ct.extend(busy_ct(c, 27_200 - expired, rng));
            let mut n = counts(&p.ct);
            // The last GC run saw the map before the morning's batch jobs.
            for (_, v) in &mut n {
                *v = *v * 36 / 100;
            }
            p.pressure = vec![("ct4_global", 0.2871)];
            p.gc_entries = gc_from(&n, 2);
            let story = format!(
                "A 2 vCPU / 4 GiB edge worker (Cilium {}, kube-proxy replacement). Overnight the \
                 node was quiet: every CT garbage-collector run deleted under 5 % of the map, so \
                 Cilium stretched the interval by 1.5× each time until it reached its 12 h \
                 ceiling (the `Conntrack garbage collector interval recalculated` lines of the \
                 agent log, the last one 3 h 10 min before collection). Then the morning's \
                 report jobs opened and closed thousands of short connections; each closed \
                 entry expires 10 s later, but nothing removes it until the next run, hours \
                 away.\n\n\
                 The CT dump holds about 83 % of `cilium_ct4_global`'s 32768 entries, and some \
                 12,700 of them already expired by the dump's own clock (the newest \
                 `Last*Report`). The agent's GC gauges and `cilium_bpf_map_pressure` (29 %) are \
                 from that last run and lag far behind the map. No insert has failed yet. A \
                 reader should conclude: pressure on the CT map, driven by garbage collection \
                 falling behind — cap `conntrack-gc-max-interval` so dead entries leave before \
                 they crowd out live ones.",
                cilium::VERSION
            );
            (
                p,
                story,
                Some("cilium.ct_map_pressure"),
                vec!["cilium.ct_gc_lagging"],
            )
        },
    )
}

pub fn cilium_nat_full(rng: Rng) -> Scenario {
    cilium_scenario(
        "cilium-nat-full",
        "Cilium NAT map full: masqueraded egress fails",
        "edge-cil-13",
        13,
        epoch(2026, 11, 28, 18, 27, 5),
        1_700,
        rng,
        |c, node, rng| {
            let mut p = plan_base(c, node, "edge-cil", rng);
            let senders: Vec<IpAddr> = c.local_pods[3..9].to_vec();
            let partner: Vec<IpAddr> = (20..24).map(|h| IpAddr::from([198, 51, 100, h])).collect();
            p.ct.push(
                CtClass::new(
                    "webhook deliveries to the partner API in flight",
                    Dir::Out,
                    CtState::Established,
                    9_300,
                )
                .between(senders.clone(), partner.clone(), 443),
            );
            p.ct.push(
                CtClass::new(
                    "webhook deliveries to the partner API, closing",
                    Dir::Out,
                    CtState::Closing,
                    2_900,
                )
                .between(senders.clone(), partner.clone(), 443),
            );
            p.ct.extend(busy_ct(c, 7_400, rng));
            let n = counts(&p.ct);
            p.pressure = vec![("ct4_global", 0.5921), ("snat_v4_external", 0.9987)];
            p.gc_entries = gc_from(&n, 12);
            p.rising = vec![(NAT_NO_MAPPING, "EGRESS", 18_406, 37, 74, 1392, "bpf_host.c")];
            p.monitor = drop_events(
                109,
                NAT_NO_MAPPING,
                &[""],
                &senders,
                &partner,
                443,
                "bpf_host.c",
                1392,
                rng,
            );
            let story = format!(
                "A 2 vCPU / 4 GiB edge worker (Cilium {}, kube-proxy replacement, BPF \
                 masquerading). Six `notifications` pods deliver webhooks to a partner API \
                 (198.51.100.20–23:443) with a new connection per delivery; every connection \
                 leaving the cluster is masqueraded to the node's address and takes entries in \
                 the NAT map, which this pool sizes at 32768 (two thirds of the pinned CT \
                 sizes).\n\n\
                 `No mapping for NAT masquerade` rises by about 37 packets/s between the \
                 samples, the drop capture shows the failing SYNs toward the partner, and the \
                 agent's pressure gauge for `snat_v4_external` reads 99.9 %. The CT maps are \
                 at about 60 %, netfilter at a few percent. A reader should conclude: the NAT \
                 map is exhausted — raise `bpf-nat-global-max` (with the CT sizes) and make the \
                 senders reuse connections.",
                cilium::VERSION
            );
            (p, story, Some("cilium.nat_map_exhausted"), vec![])
        },
    )
}

pub fn cilium_healthy(rng: Rng) -> Scenario {
    cilium_scenario(
        "cilium-healthy",
        "Healthy Cilium node",
        "edge-cil-15",
        15,
        epoch(2026, 11, 29, 11, 55, 40),
        1_500,
        rng,
        |c, node, rng| {
            let mut p = plan_base(c, node, "edge-cil", rng);
            p.ct = busy_ct(c, 6_100, rng);
            let n = counts(&p.ct);
            p.pressure = vec![("ct4_global", 0.1822)];
            p.gc_entries = gc_from(&n, 11);
            let story = format!(
                "A 2 vCPU / 4 GiB edge worker (Cilium {}, kube-proxy replacement) with the same \
                 traffic mix as `cilium-ct-pressure`, at a quarter of the volume.\n\n\
                 The CT maps are under a fifth full, no drop counter rises, the drop capture is \
                 empty, the GC keeps pace and netfilter holds a few percent of its limit with \
                 no drop. A reader — and the analyzer — should conclude that connection \
                 tracking is not this node's problem, in either layer.",
                cilium::VERSION
            );
            (p, story, None, vec![])
        },
    )
}

pub fn kube_proxy_stalled(mut rng: Rng) -> Scenario {
    let node = big_node("wrk-large-01", 1, 8, 32_873_772 - 4 * 12, &mut rng);
    let cluster = Cluster::new(&node, 31, &mut rng);
    let classes = cluster.background(7_800, &mut rng);
    let (first, rates) = baseline(&node, &mut rng);
    let second = grow(&first, &rates, &mut rng);
    let up = node.uptime_secs() as f64;
    let syncs = (up / 31.0) as u64;
    let mut buckets = [0u64; 15];
    // Most partial syncs take 16–64 ms; full resyncs (one an hour) 128–256 ms.
    let full = (up / 3600.0) as u64 + 1;
    for (i, share) in [(3usize, 4u64), (4, 38), (5, 44), (6, 11), (7, 3)] {
        buckets[i] = syncs * share / 100;
    }
    let mut full_buckets = [0u64; 15];
    full_buckets[7] = full * 7 / 10;
    full_buckets[8] = full - full * 7 / 10;
    buckets[7] += full_buckets[7];
    buckets[8] += full_buckets[8];
    let total: u64 = buckets.iter().sum();
    let sample = ProxySample {
        last_applied: 0.0,
        last_queued: 0.0,
        sync_buckets: buckets,
        sync_sum: total as f64 * 0.0291 + full as f64 * 0.151,
        full_buckets,
        full_sum: full as f64 * 0.171,
        endpoint_changes_pending: 23,
        endpoint_changes_total: syncs * 2 + 311,
        service_changes_pending: 2,
        service_changes_total: syncs / 9 + 40,
        restore_failures: 0,
        healthz_200: (up / 8.0) as u64 - 21,
        healthz_503: 21,
        livez_200: (up / 10.0) as u64,
        rules_filter: 12,
        rules_nat: 96 + 16 * 14,
        programming: (0..60)
            .map(|_| 0.4 + rng.range(0, 2600) as f64 / 1000.0)
            .collect(),
        cpu_seconds: up * 0.0042,
        rss: 44_130_304,
        open_fds: 17,
        start_time: 0.0,
        goroutines: 63,
        rest_get_200: 14,
        rest_put_200: 2,
        rest_watch_200: (up / 420.0) as u64,
    };
    let started = epoch(2026, 11, 30, 8, 19, 52);
    let mut sample = sample;
    sample.start_time = (started - node.uptime_secs() + 41) as f64 + 0.37;
    let plan = ProxyPlan {
        applied_before: 612.4 + rng.range(0, 900) as f64 / 1000.0,
        queued_before: 287.9 + rng.range(0, 900) as f64 / 1000.0,
        sample,
    };
    let story = "An 8 vCPU / 32 GiB worker with flannel and kube-proxy v1.29 in iptables mode. \
         About ten minutes before collection kube-proxy started a sync whose `iptables-restore` \
         never returned (it hung in the kernel; no failure was counted). Endpoint changes from a \
         rollout kept arriving until about five minutes before collection and are all still \
         pending: `kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds` is newer than \
         `..._last_timestamp_seconds` and older than 2 minutes at the manifest's sample time, \
         `/healthz` has started answering 503, and the sync-duration histogram — which only \
         records finished syncs — still looks normal.\n\n\
         Netfilter itself is fine (a few percent of its limit, no drop). A reader should \
         conclude: kube-proxy has stalled — new endpoints are not in the rules and traffic to \
         removed pods keeps its stale conntrack entries; look at kube-proxy's log and the \
         stuck `iptables-restore` on the node."
        .to_string();
    Scenario {
        case: "kube-proxy-stalled",
        title: "kube-proxy stopped applying rule changes",
        started,
        max: 262_144,
        buckets: 262_144,
        max_origin: "kube-proxy's `max(131072, 32768 × 8 CPUs)` = 262144, also the kernel \
                     default for 32 GiB"
            .into(),
        veths: crate::scenarios::veths(31, &mut rng),
        replaced_pods: 5,
        classes,
        count_drift: rng.range(0, 30) as i64 - 15,
        first,
        second,
        episode: None,
        expected_cause: Some("kube_proxy.sync_stalled"),
        expected_contributors: vec![],
        story,
        layer: Layer::KubeProxy(Box::new(plan)),
        node,
        rng,
    }
}
