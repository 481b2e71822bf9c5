//! The `cilium/` members of a Cilium 1.18 node with kube-proxy replacement, printed the way
//! `cilium-dbg` 1.18 and the agent print them:
//!
//! - `bpf ct list global`: the four global CT maps in the order the CLI opens them
//!   (`cilium_ct4_global`, `cilium_ct_any4_global`, `cilium_ct6_global`, `cilium_ct_any6_global`),
//!   each entry `<PROTO> <DIR> <src>:<port> -> <dst>:<port> ` + `expires=… Packets=… Bytes=…
//!   RxFlagsSeen=0x.. LastRxReport=… TxFlagsSeen=0x.. LastTxReport=… Flags=0x.... [ … ]
//!   RevNAT=… SourceSecurityID=… BackendID=… \n`, and `fmt.Println` after each map (a blank
//!   line). IPv6 addresses unbracketed. `Packets`/`Bytes` are 0: conntrack accounting is off by
//!   default since 1.16.
//! - `bpf metrics list`: the tabwriter table with `LINE` and `FILE`, rows sorted by string compare.
//! - the agent's `:9962/metrics` Prometheus text (families sorted by name, labels by name).
//! - `config -a`, `status --verbose`, `monitor --type drop` and the agent log (slog text).
//!
//! Timeouts are Cilium's defaults: TCP established 21600 s, TCP SYN 60 s, TCP closing 10 s,
//! non-TCP 60 s. `expires` and `Last*Report` are seconds of the BPF clock (ktime: seconds since
//! boot), so "now" in the dump is the node's uptime.

use crate::bundle::rfc3339;
use crate::gofmt::{go_duration, go_float, tabwrite};
use crate::rng::Rng;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::net::IpAddr;

pub const VERSION: &str = "1.18.4";
const GIT: &str = "v1.18.4-3d0a4f1c";

/// Cilium's CT lifetimes (`bpf-ct-timeout-regular-*`), seconds.
pub const TCP_ESTABLISHED: u64 = 21_600;
pub const TCP_SYN: u64 = 60;
pub const TCP_CLOSING: u64 = 10;
pub const ANY: u64 = 60;

/// Which of the four global maps an entry lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CtMap {
    Tcp4,
    Any4,
    Tcp6,
    Any6,
}

impl CtMap {
    pub const ORDER: [CtMap; 4] = [CtMap::Tcp4, CtMap::Any4, CtMap::Tcp6, CtMap::Any6];

    pub fn name(self) -> &'static str {
        match self {
            CtMap::Tcp4 => "cilium_ct4_global",
            CtMap::Any4 => "cilium_ct_any4_global",
            CtMap::Tcp6 => "cilium_ct6_global",
            CtMap::Any6 => "cilium_ct_any6_global",
        }
    }

    /// The label `cilium_bpf_map_pressure` uses (no `cilium_` prefix since 1.16).
    pub fn pressure_label(self) -> &'static str {
        &self.name()["cilium_".len()..]
    }

    pub fn is_tcp(self) -> bool {
        matches!(self, CtMap::Tcp4 | CtMap::Tcp6)
    }
}

/// What a TCP entry has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtState {
    /// Only the SYN went out: `Flags=0x0000 [ ]`, `TxFlagsSeen=0x02`.
    Syn,
    Established,
    /// Both sides sent FIN: `[ RxClosing TxClosing SeenNonSyn ]`, 10 s left at most.
    Closing,
    /// A non-TCP exchange (UDP).
    Udp,
}

impl CtState {
    fn lifetime(self) -> u64 {
        match self {
            CtState::Syn => TCP_SYN,
            CtState::Established => TCP_ESTABLISHED,
            CtState::Closing => TCP_CLOSING,
            CtState::Udp => ANY,
        }
    }
}

/// `IN`, `OUT` or `SVC` (the service entry of a load-balanced connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    In,
    Out,
    Svc,
}

/// One kind of flow in the CT maps.
#[derive(Debug, Clone)]
pub struct CtClass {
    pub label: String,
    pub count: u64,
    pub dir: Dir,
    pub state: CtState,
    pub clients: Vec<IpAddr>,
    pub servers: Vec<IpAddr>,
    pub dport: u16,
    /// Entries whose `expires` is already below the dump's clock, by up to this many seconds
    /// (0: every entry is live).
    pub expired_up_to: u64,
    /// For `SVC` entries: the service's reverse-NAT index.
    pub rev_nat: u16,
}

impl CtClass {
    pub fn new(label: &str, dir: Dir, state: CtState, count: u64) -> CtClass {
        CtClass {
            label: label.into(),
            count,
            dir,
            state,
            clients: Vec::new(),
            servers: Vec::new(),
            dport: 0,
            expired_up_to: 0,
            rev_nat: 0,
        }
    }

    pub fn between(mut self, clients: Vec<IpAddr>, servers: Vec<IpAddr>, dport: u16) -> Self {
        self.clients = clients;
        self.servers = servers;
        self.dport = dport;
        self
    }

    pub fn expired(mut self, up_to: u64) -> Self {
        self.expired_up_to = up_to;
        self
    }

    pub fn svc(mut self, rev_nat: u16) -> Self {
        self.rev_nat = rev_nat;
        self
    }

    fn map(&self) -> CtMap {
        let v6 = self.clients.first().is_some_and(IpAddr::is_ipv6);
        match (self.state == CtState::Udp, v6) {
            (false, false) => CtMap::Tcp4,
            (true, false) => CtMap::Any4,
            (false, true) => CtMap::Tcp6,
            (true, true) => CtMap::Any6,
        }
    }
}

/// Counts measured while printing the dump.
#[derive(Debug, Clone, Default)]
pub struct CtTally {
    pub by_map: BTreeMap<CtMap, u64>,
    /// Entries whose `expires` is below the dump's clock.
    pub expired: u64,
    /// The dump's clock: the newest `Last*Report`.
    pub now: u64,
    pub entries: u64,
}

impl CtTally {
    pub fn get(&self, m: CtMap) -> u64 {
        self.by_map.get(&m).copied().unwrap_or(0)
    }
}

/// `cilium-dbg bpf ct list global`: (stdout, what it holds). `now` is the BPF clock at the dump;
/// `identities` gives each address its security identity.
pub fn ct_list(
    classes: &[CtClass],
    now: u64,
    identity: &dyn Fn(IpAddr) -> u32,
    rng: &mut Rng,
) -> (String, CtTally) {
    let mut maps: BTreeMap<CtMap, Vec<String>> = BTreeMap::new();
    let mut used: HashSet<(IpAddr, u16, IpAddr, u16, u8)> = HashSet::new();
    let mut tally = CtTally::default();
    let mut newest = 0;
    for c in classes {
        let map = c.map();
        let proto = match (c.state, map) {
            (CtState::Udp, _) => "UDP",
            _ => "TCP",
        };
        for i in 0..c.count {
            let (src, dst, sport) = loop {
                let src = c.clients[rng.below(c.clients.len() as u64) as usize];
                let dst = c.servers[rng.below(c.servers.len() as u64) as usize];
                let sport = 32_768 + rng.below(28_232) as u16;
                let dir = c.dir as u8;
                if used.insert((src, sport, dst, c.dport, dir)) {
                    break (src, dst, sport);
                }
            };
            let life = c.state.lifetime();
            let expires = if c.expired_up_to > 0 {
                now - 1 - rng.below(c.expired_up_to)
            } else if i == 0 && c.state != CtState::Closing {
                now + life
            } else {
                now + 1 + rng.below(life)
            };
            let last = expires - life;
            newest = newest.max(last);
            let (rx_seen, rx_last, tx_seen, flags, names) = match c.state {
                CtState::Syn => (0x00, 0, 0x02, 0x0000, "[ ]"),
                CtState::Established => (0x1a, last, 0x1a, 0x0010, "[ SeenNonSyn ]"),
                CtState::Closing => (
                    0x1b,
                    last,
                    0x1b,
                    0x0013,
                    "[ RxClosing TxClosing SeenNonSyn ]",
                ),
                CtState::Udp => (0x00, last, 0x00, 0x0000, "[ ]"),
            };
            let (dir, rx_seen, rx_last, rev, sec, backend) = match c.dir {
                Dir::Out => ("OUT", rx_seen, rx_last, 0, identity(src), 0),
                Dir::In => ("IN", rx_seen, rx_last, 0, identity(src), 0),
                // Service entries only track the client side.
                Dir::Svc => ("SVC", 0x00, 0, c.rev_nat, 0, 1 + rng.below(60)),
            };
            let mut line = String::with_capacity(300);
            let _ = writeln!(
                line,
                "{proto} {dir} {}:{sport} -> {}:{} expires={expires} Packets=0 Bytes=0 RxFlagsSeen={} LastRxReport={rx_last} TxFlagsSeen={} LastTxReport={last} Flags={} {names} RevNAT={rev} SourceSecurityID={sec} BackendID={backend} ",
                src,
                dst,
                c.dport,
                hex2(rx_seen),
                hex2(tx_seen),
                hex4(flags),
            );
            maps.entry(map).or_default().push(line);
            *tally.by_map.entry(map).or_default() += 1;
            tally.entries += 1;
            if expires < now {
                tally.expired += 1;
            }
        }
    }
    tally.now = newest;
    let mut out = String::new();
    for m in CtMap::ORDER {
        if let Some(lines) = maps.get_mut(&m) {
            // A hash map dumps in no particular order.
            shuffle(lines, rng);
            for l in lines.iter() {
                out.push_str(l);
            }
        }
        out.push('\n');
    }
    (out, tally)
}

fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// Go `%#02x`: `0x00`, `0x1b`.
fn hex2(v: u32) -> String {
    format!("0x{v:02x}")
}

/// Go `%#04x`: `0x0013`.
fn hex4(v: u32) -> String {
    format!("0x{v:04x}")
}

/// One row of the datapath metrics map: packets and bytes for a reason, direction and source
/// line.
#[derive(Debug, Clone)]
pub struct MetricRow {
    pub reason: &'static str,
    pub dir: &'static str,
    pub packets: u64,
    pub bytes: u64,
    pub line: u16,
    pub file: &'static str,
}

pub const CT_INSERT: &str = "CT: Map insertion failed";
pub const NAT_NO_MAPPING: &str = "No mapping for NAT masquerade";

/// `cilium-dbg bpf metrics list`: every column compared as a string to sort, tabwriter
/// `(5, 0, 3, ' ', 0)`.
pub fn bpf_metrics_list(rows: &[MetricRow]) -> String {
    let mut cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.reason.to_string(),
                r.dir.to_string(),
                r.packets.to_string(),
                r.bytes.to_string(),
                r.line.to_string(),
                r.file.to_string(),
            ]
        })
        .collect();
    cells.sort();
    let mut t = String::from("REASON\tDIRECTION\tPACKETS\tBYTES\tLINE\tFILE\n");
    for c in cells {
        let _ = writeln!(t, "{}", c.join("\t"));
    }
    tabwrite(&t, 5, 3)
}

/// A Prometheus family as the Go client writes it.
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: &'static str,
    /// (labels as `name="value"` pairs already sorted by name, value).
    pub samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

/// Families sorted by name, samples by label values, `# HELP` / `# TYPE` before each.
pub fn prometheus_text(mut families: Vec<Family>) -> String {
    families.sort_by(|a, b| a.name.cmp(b.name));
    let mut out = String::new();
    for f in &mut families {
        f.samples.sort_by(|a, b| {
            let va: Vec<&String> = a.0.iter().map(|(_, v)| v).collect();
            let vb: Vec<&String> = b.0.iter().map(|(_, v)| v).collect();
            va.cmp(&vb)
        });
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (labels, v) in &f.samples {
            out.push_str(f.name);
            if !labels.is_empty() {
                out.push('{');
                let l: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| {
                        format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                    })
                    .collect();
                out.push_str(&l.join(","));
                out.push('}');
            }
            let _ = writeln!(out, " {}", go_float(*v));
        }
    }
    out
}

/// The agent's own counters at one sample.
#[derive(Debug, Clone)]
pub struct AgentSample {
    pub rows: Vec<MetricRow>,
    /// (map label, pressure 0..1): only maps above the export threshold.
    pub pressure: Vec<(&'static str, f64)>,
    /// (family, protocol) → (alive, deleted) of the last GC run.
    pub gc_entries: Vec<(&'static str, &'static str, u64, u64)>,
    pub gc_runs: Vec<(&'static str, &'static str, u64)>,
    pub cpu_seconds: f64,
    pub rss: u64,
    pub open_fds: u64,
    pub start_time: f64,
}

/// The agent's `:9962/metrics` (the part of it these samples need, plus the process metrics).
pub fn agent_metrics(s: &AgentSample) -> String {
    let mut drop_count = BTreeMap::new();
    let mut drop_bytes = BTreeMap::new();
    let mut fwd_count = BTreeMap::new();
    let mut fwd_bytes = BTreeMap::new();
    for r in &s.rows {
        if r.reason == "Success" || r.reason == "Interface" {
            *fwd_count.entry(r.dir).or_insert(0u64) += r.packets;
            *fwd_bytes.entry(r.dir).or_insert(0u64) += r.bytes;
        } else {
            *drop_count.entry((r.dir, r.reason)).or_insert(0u64) += r.packets;
            *drop_bytes.entry((r.dir, r.reason)).or_insert(0u64) += r.bytes;
        }
    }
    let drops = |m: &BTreeMap<(&'static str, &'static str), u64>| {
        m.iter()
            .map(|((d, r), v)| {
                (
                    vec![("direction", d.to_string()), ("reason", r.to_string())],
                    *v as f64,
                )
            })
            .collect()
    };
    let fwd = |m: &BTreeMap<&'static str, u64>| {
        m.iter()
            .map(|(d, v)| (vec![("direction", d.to_string())], *v as f64))
            .collect()
    };
    let mut families = vec![
        Family {
            name: "cilium_drop_count_total",
            help: "Total dropped packets, tagged by drop reason and ingress/egress direction",
            kind: "counter",
            samples: drops(&drop_count),
        },
        Family {
            name: "cilium_drop_bytes_total",
            help: "Total dropped bytes, tagged by drop reason and ingress/egress direction",
            kind: "counter",
            samples: drops(&drop_bytes),
        },
        Family {
            name: "cilium_forward_count_total",
            help: "Total forwarded packets, tagged by ingress/egress direction",
            kind: "counter",
            samples: fwd(&fwd_count),
        },
        Family {
            name: "cilium_forward_bytes_total",
            help: "Total forwarded bytes, tagged by ingress/egress direction",
            kind: "counter",
            samples: fwd(&fwd_bytes),
        },
        Family {
            name: "cilium_datapath_conntrack_gc_entries",
            help: "The number of alive and deleted conntrack entries at the end of a garbage collector run labeled by datapath family.",
            kind: "gauge",
            samples: s
                .gc_entries
                .iter()
                .flat_map(|(fam, proto, alive, deleted)| {
                    [("alive", *alive), ("deleted", *deleted)].map(|(st, v)| {
                        (
                            vec![
                                ("family", fam.to_string()),
                                ("protocol", proto.to_string()),
                                ("status", st.to_string()),
                            ],
                            v as f64,
                        )
                    })
                })
                .collect(),
        },
        Family {
            name: "cilium_datapath_conntrack_gc_runs_total",
            help: "Number of times that the conntrack garbage collector process was run labeled by completion status",
            kind: "counter",
            samples: s
                .gc_runs
                .iter()
                .map(|(fam, proto, runs)| {
                    (
                        vec![
                            ("family", fam.to_string()),
                            ("protocol", proto.to_string()),
                            ("status", "completed".to_string()),
                        ],
                        *runs as f64,
                    )
                })
                .collect(),
        },
        Family {
            name: "cilium_process_cpu_seconds_total",
            help: "Total user and system CPU time spent in seconds.",
            kind: "counter",
            samples: vec![(vec![], s.cpu_seconds)],
        },
        Family {
            name: "cilium_process_open_fds",
            help: "Number of open file descriptors.",
            kind: "gauge",
            samples: vec![(vec![], s.open_fds as f64)],
        },
        Family {
            name: "cilium_process_resident_memory_bytes",
            help: "Resident memory size in bytes.",
            kind: "gauge",
            samples: vec![(vec![], s.rss as f64)],
        },
        Family {
            name: "cilium_process_start_time_seconds",
            help: "Start time of the process since unix epoch in seconds.",
            kind: "gauge",
            samples: vec![(vec![], s.start_time)],
        },
    ];
    if !s.pressure.is_empty() {
        families.push(Family {
            name: "cilium_bpf_map_pressure",
            help: "Fill percentage of map, tagged by map name",
            kind: "gauge",
            samples: s
                .pressure
                .iter()
                .map(|(m, v)| (vec![("map_name", m.to_string())], *v))
                .collect(),
        });
    }
    prometheus_text(families)
}

/// The agent's configuration as `cilium-dbg config -a` prints it.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub tcp_max: u64,
    pub any_max: u64,
    pub nat_max: u64,
    pub neigh_max: u64,
    pub sock_rev_nat: u64,
    pub node_ip: IpAddr,
    pub pod_cidr4: String,
    pub pod_cidr6: String,
    pub cluster_pool4: String,
}

/// `cilium-dbg config -a`: the read-only view (the daemon's Go fields, sorted), then the
/// read-write options.
pub fn config_all(c: &AgentConfig) -> String {
    let rows: Vec<(&str, String)> = vec![
        ("AgentHealthPort", "9879".into()),
        ("AgentLabels", "[]".into()),
        ("AllowICMPFragNeeded", "true".into()),
        ("AllowLocalhost", "always".into()),
        ("AnnotateK8sNode", "false".into()),
        ("AuthMapEntries", "524288".into()),
        ("AutoCreateCiliumNodeResource", "true".into()),
        ("BPFConntrackAccounting", "false".into()),
        ("BPFDistributedLRU", "false".into()),
        ("BPFEventsDropEnabled", "true".into()),
        ("BPFEventsPolicyVerdictEnabled", "true".into()),
        ("BPFEventsTraceEnabled", "true".into()),
        ("BPFMapsDynamicSizeRatio", "0".into()),
        ("BPFRoot", "/sys/fs/bpf".into()),
        ("BPFSocketLBHostnsOnly", "false".into()),
        ("CGroupRoot", "/run/cilium/cgroupv2".into()),
        ("CTMapEntriesGlobalAny", c.any_max.to_string()),
        ("CTMapEntriesGlobalTCP", c.tcp_max.to_string()),
        ("CTMapEntriesTimeoutAny", "60000000000".into()),
        ("CTMapEntriesTimeoutFIN", "10000000000".into()),
        ("CTMapEntriesTimeoutSVCAny", "60000000000".into()),
        ("CTMapEntriesTimeoutSVCTCP", "21600000000000".into()),
        ("CTMapEntriesTimeoutSVCTCPGrace", "60000000000".into()),
        ("CTMapEntriesTimeoutSYN", "60000000000".into()),
        ("CTMapEntriesTimeoutTCP", "21600000000000".into()),
        ("ClusterID", "0".into()),
        ("ClusterName", "default".into()),
        ("ConntrackGCInterval", "0".into()),
        ("ConntrackGCMaxInterval", "0".into()),
        ("DatapathMode", "veth".into()),
        ("DirectRoutingSkipUnreachable", "false".into()),
        ("EnableAutoDirectRouting", "true".into()),
        ("EnableBPFMasquerade", "true".into()),
        ("EnableHealthChecking", "true".into()),
        ("EnableHostLegacyRouting", "false".into()),
        ("EnableIPv4", "true".into()),
        ("EnableIPv4Masquerade", "true".into()),
        ("EnableIPv6", "true".into()),
        ("EnableIPv6Masquerade", "false".into()),
        ("EnableNodePort", "true".into()),
        ("EnableSocketLB", "true".into()),
        ("FragmentsMapEntries", "8192".into()),
        ("IPAM", "kubernetes".into()),
        ("IPv4NativeRoutingCIDR", c.cluster_pool4.clone()),
        ("IPv4Range", c.pod_cidr4.clone()),
        ("IPv6Range", c.pod_cidr6.clone()),
        ("KubeProxyReplacement", "true".into()),
        ("LBMapEntries", "65536".into()),
        ("MonitorAggregation", "medium".into()),
        ("MonitorAggregationInterval", "5000000000".into()),
        ("NATMapEntriesGlobal", c.nat_max.to_string()),
        ("NeighMapEntriesGlobal", c.neigh_max.to_string()),
        ("NodePortMax", "32767".into()),
        ("NodePortMin", "30000".into()),
        ("PolicyMapEntries", "16384".into()),
        ("RoutingMode", "native".into()),
        ("SockRevNatEntries", c.sock_rev_nat.to_string()),
        ("TunnelPort", "0".into()),
    ];
    let mut out = String::from("#### Read-only configurations ####\n");
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<34}: {v}");
    }
    let _ = writeln!(out, "{:<34}: ", "k8s-configuration");
    let _ = writeln!(out, "{:<34}: ", "k8s-endpoint");
    out.push_str("##### Read-write configurations #####\n");
    for (k, v) in [
        ("ConntrackAccounting", "Disabled"),
        ("ConntrackLocal", "Disabled"),
        ("Debug", "Disabled"),
        ("DebugLB", "Disabled"),
        ("DropNotification", "Enabled"),
        ("MonitorAggregationLevel", "Medium"),
        ("PolicyAccounting", "Enabled"),
        ("PolicyAuditMode", "Disabled"),
        ("PolicyTracing", "Disabled"),
        ("PolicyVerdictNotification", "Enabled"),
        ("SourceIPVerification", "Enabled"),
        ("TraceNotification", "Enabled"),
    ] {
        let _ = writeln!(out, "{k:<34}: {v}");
    }
    let _ = writeln!(out, "{:<34}: 64", "MonitorNumPages");
    let _ = writeln!(out, "{:<34}: default", "PolicyEnforcement");
    out
}

/// What `cilium-dbg status --verbose` reports about the node.
pub struct StatusInput<'a> {
    pub node_name: &'a str,
    pub node_ip: IpAddr,
    pub node_ip6: IpAddr,
    pub cpus: u32,
    pub pod_cidr4: &'a str,
    pub pod_cidr6: &'a str,
    /// (address, owner) of every allocated address.
    pub allocations: &'a [(IpAddr, String)],
    pub router_ip: IpAddr,
    pub config: &'a AgentConfig,
    /// (node name, host IP, health endpoint IP) of every node, this one included.
    pub nodes: &'a [(String, IpAddr, IpAddr)],
    /// Unix time the command ran, and the agent's start.
    pub now: u64,
    pub agent_started: u64,
    pub controllers: &'a [String],
    pub hubble_flows_per_s: f64,
}

fn ago(secs: u64) -> String {
    go_duration(secs * 1_000_000_000) + " ago"
}

/// `cilium-dbg status --verbose`.
pub fn status_verbose(s: &StatusInput<'_>, rng: &mut Rng) -> String {
    let mut w = String::new();
    let c = s.config;
    w.push_str("KVStore:\tDisabled\t\n");
    w.push_str("Kubernetes:\tOk\t1.31 (v1.31.4) [linux/amd64]\n");
    w.push_str("Kubernetes APIs:\t[\"EndpointSliceOrEndpoint\", \"cilium/v2::CiliumClusterwideNetworkPolicy\", \"cilium/v2::CiliumEndpoint\", \"cilium/v2::CiliumNetworkPolicy\", \"cilium/v2::CiliumNode\", \"cilium/v2alpha1::CiliumCIDRGroup\", \"core/v1::Namespace\", \"core/v1::Pods\", \"core/v1::Service\", \"networking.k8s.io/v1::NetworkPolicy\"]\n");
    let devices = format!("ens4   {} {} (Direct Routing)", s.node_ip, s.node_ip6);
    let _ = writeln!(w, "KubeProxyReplacement:\tTrue\t[{devices}]");
    w.push_str("Host firewall:\tDisabled\n");
    w.push_str("SRv6:\tDisabled\n");
    w.push_str("CNI Chaining:\tnone\n");
    w.push_str("CNI Config file:\tsuccessfully wrote CNI configuration file to /host/etc/cni/net.d/05-cilium.conflist\n");
    let _ = writeln!(w, "Cilium:\tOk   {VERSION} ({GIT})");
    let _ = writeln!(
        w,
        "NodeMonitor:\tListening for events on {} CPUs with 64x4096 of shared memory",
        s.cpus
    );
    w.push_str("Cilium health daemon:\tOk\t\n");
    let v4 = s.allocations.iter().filter(|(a, _)| a.is_ipv4()).count();
    let v6 = s.allocations.len() - v4;
    let _ = writeln!(
        w,
        "IPAM:\tIPv4: {v4}/254 allocated from {}, IPv6: {v6}/18446744073709551614 allocated from {}",
        s.pod_cidr4, s.pod_cidr6
    );
    w.push_str("Allocated addresses:\n");
    let mut alloc: Vec<String> = s
        .allocations
        .iter()
        .map(|(ip, owner)| format!("  {ip} ({owner})"))
        .collect();
    alloc.sort();
    for a in alloc {
        let _ = writeln!(w, "{a}");
    }
    w.push_str("IPv4 BIG TCP:\tDisabled\n");
    w.push_str("IPv6 BIG TCP:\tDisabled\n");
    w.push_str("BandwidthManager:\tDisabled\n");
    w.push_str("Routing:\tNetwork: Native\tHost: BPF\n");
    w.push_str("Attach Mode:\tTCX\n");
    w.push_str("Device Mode:\tveth\n");
    let _ = writeln!(
        w,
        "Masquerading:\tBPF\t[ens4]\t{} [IPv4: Enabled, IPv6: Disabled]",
        c.cluster_pool4
    );
    w.push_str("Clock Source for BPF:\tktime\n");
    let up = s.now - s.agent_started;
    let mut ctrl = vec!["  Name\tLast success\tLast error\tCount\tMessage\n".to_string()];
    for name in s.controllers {
        let last = if name.contains("regeneration-recovery") || name == "template-dir-watcher" {
            "never".to_string()
        } else if name.starts_with("sync-lb-maps") || name.starts_with("write-cni") {
            ago(up - rng.range(5, 30))
        } else {
            ago(rng.range(1, 60))
        };
        ctrl.push(format!("  {name}\t{last}\tnever\t0\tno error\t\n"));
    }
    let _ = writeln!(
        w,
        "Controller Status:\t{}/{} healthy",
        s.controllers.len(),
        s.controllers.len()
    );
    ctrl.sort();
    w.push_str(&tabwrite(&ctrl.concat(), 0, 3));
    let _ = writeln!(
        w,
        "Proxy Status:\tOK, ip {}, 0 redirects active on ports 10000-20000, Envoy: external",
        s.router_ip
    );
    w.push_str("Global Identity Range:\tmin 256, max 65535\n");
    let _ = writeln!(
        w,
        "Hubble:\tOk   Current/Max Flows: 4095/4095 (100.00%), Flows/s: {:.2}\tMetrics: Disabled",
        s.hubble_flows_per_s
    );
    w.push_str("KubeProxyReplacement Details:\n");
    let mut kpr = String::new();
    kpr.push_str("  Status:\tTrue\n");
    kpr.push_str("  Socket LB:\tEnabled\n");
    kpr.push_str("  Socket LB Tracing:\tEnabled\n");
    kpr.push_str("  Socket LB Coverage:\tFull\n");
    let _ = writeln!(kpr, "  Devices:\t{devices}");
    kpr.push_str("  Mode:\tSNAT\n");
    kpr.push_str("  Backend Selection:\tRandom\n");
    kpr.push_str("  Session Affinity:\tEnabled\n");
    kpr.push_str("  Graceful Termination:\tEnabled\n");
    kpr.push_str("  NAT46/64 Support:\tDisabled\n");
    kpr.push_str("  XDP Acceleration:\tDisabled\n");
    kpr.push_str("  Services:\n");
    kpr.push_str("  - ClusterIP:\tEnabled\n");
    kpr.push_str("  - NodePort:\tEnabled (Range: 30000-32767) \n");
    kpr.push_str("  - LoadBalancer:\tEnabled \n");
    kpr.push_str("  - externalIPs:\tEnabled \n");
    kpr.push_str("  - HostPort:\tEnabled\n");
    w.push_str(&tabwrite(&kpr, 0, 3));
    w.push_str("BPF Maps:\tdynamic sizing: off\n");
    let mut maps = String::from("  Name\tSize\n");
    for (name, size) in [
        ("Auth", 524_288),
        ("Non-TCP connection tracking", c.any_max),
        ("TCP connection tracking", c.tcp_max),
        ("Endpoints", 65_535),
        ("IP cache", 512_000),
        ("IPv4 masquerading agent", 16_384),
        ("IPv6 masquerading agent", 16_384),
        ("IPv4 fragmentation", 8_192),
        ("IPv4 service", 65_536),
        ("IPv6 service", 65_536),
        ("IPv4 service backend", 65_536),
        ("IPv6 service backend", 65_536),
        ("IPv4 service reverse NAT", 65_536),
        ("IPv6 service reverse NAT", 65_536),
        ("Metrics", 1_024),
        ("Ratelimit metrics", 64),
        ("NAT", c.nat_max),
        ("Neighbor table", c.neigh_max),
        ("Endpoint policy", 16_384),
        ("Policy stats", 65_536),
        ("Session affinity", 65_536),
        ("Sock reverse NAT", c.sock_rev_nat),
    ] {
        let _ = writeln!(maps, "  {name}\t{size}");
    }
    w.push_str(&tabwrite(&maps, 0, 3));
    w.push_str("Encryption:\tDisabled\t\n");
    // cilium-health, every node probed over ICMP and HTTP.
    let probed = s.now - rng.range(5, 50);
    let _ = writeln!(
        w,
        "Cluster health:\t{n}/{n} reachable\t({})\t(Probe interval: 1m48s)",
        rfc3339(probed),
        n = s.nodes.len()
    );
    w.push_str("Name\tIP\tNode\tEndpoints\n");
    let mut order: Vec<&(String, IpAddr, IpAddr)> = s.nodes.iter().collect();
    order.sort_by(|a, b| {
        (a.0 != s.node_name)
            .cmp(&(b.0 != s.node_name))
            .then(a.0.cmp(&b.0))
    });
    for (name, host, ep) in order {
        let local = if name == s.node_name {
            " (localhost)"
        } else {
            ""
        };
        let _ = writeln!(w, "  {name}{local}:");
        for (what, ip) in [("Host", host), ("Endpoint", ep)] {
            let _ = writeln!(w, "    {what} connectivity to {ip}:");
            for path in ["ICMP to stack", "HTTP to agent"] {
                let rtt = if local.is_empty() {
                    rng.range(180_000, 900_000)
                } else {
                    rng.range(40_000, 120_000)
                };
                let t = rfc3339(probed - rng.range(0, 3));
                let _ = writeln!(
                    w,
                    "      {path}:\tOK, RTT={}\t(Last probed: {t})",
                    go_duration(rtt)
                );
            }
        }
    }
    tabwrite(&w, 2, 3)
}

/// One drop event in a monitor capture.
#[derive(Debug, Clone)]
pub struct DropEvent {
    pub reason: String,
    pub ifindex: u32,
    pub file: &'static str,
    pub line: u16,
    pub src_identity: String,
    pub dst_identity: String,
    pub src: String,
    pub dst: String,
    pub summary: &'static str,
}

/// `cilium-dbg monitor --type drop`: the preamble, then one line per event.
pub fn monitor_drops(cpus: u32, events: &[DropEvent], rng: &mut Rng) -> String {
    let mut out = format!(
        "Listening for events on {cpus} CPUs with 64x4096 of shared memory\nPress Ctrl-C to quit\n"
    );
    for e in events {
        let _ = writeln!(
            out,
            "xx drop ({}) flow {:#x} to endpoint 0, ifindex {}, file {}:{}, , identity {}->{}: {} -> {} {}",
            e.reason,
            rng.next_u64() as u32,
            e.ifindex,
            e.file,
            e.line,
            e.src_identity,
            e.dst_identity,
            e.src,
            e.dst,
            e.summary
        );
    }
    out
}

/// One line of the agent's slog text log.
pub fn log_line(
    unix_ms: u64,
    nanos: u32,
    level: &str,
    msg: &str,
    module: &str,
    attrs: &str,
) -> String {
    let secs = unix_ms / 1000;
    let base = rfc3339(secs);
    let stamp = format!(
        "{}.{:03}{:06}Z",
        &base[..19],
        unix_ms % 1000,
        nanos % 1_000_000
    );
    let mut l = format!(
        "time={stamp} level={level} msg={} module={module}",
        quote(msg)
    );
    if !attrs.is_empty() {
        l.push(' ');
        l.push_str(attrs);
    }
    l.push('\n');
    l
}

/// slog quotes a value that holds a space, `=` or `"`.
fn quote(v: &str) -> String {
    if v.contains([' ', '=', '"']) || v.is_empty() {
        format!("\"{}\"", v.replace('"', "\\\""))
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_lines_have_the_1_18_shape() {
        let class = CtClass::new("x", Dir::Out, CtState::Closing, 1).between(
            vec!["10.244.5.7".parse().unwrap()],
            vec!["10.244.9.3".parse().unwrap()],
            8080,
        );
        let (text, tally) = ct_list(&[class], 319_511, &|_| 12_034, &mut Rng::new(1));
        let first = text.lines().next().unwrap();
        assert!(first.starts_with("TCP OUT 10.244.5.7:"), "{first}");
        assert!(
            first.contains(" -> 10.244.9.3:8080 expires=")
                && first.contains(" Packets=0 Bytes=0 RxFlagsSeen=0x1b LastRxReport=")
                && first.ends_with(
                    " Flags=0x0013 [ RxClosing TxClosing SeenNonSyn ] RevNAT=0 SourceSecurityID=12034 BackendID=0 "
                ),
            "{first}"
        );
        // One blank line after each of the four maps.
        assert!(text.ends_with(" \n\n\n\n\n"));
        assert_eq!(tally.get(CtMap::Tcp4), 1);
    }

    #[test]
    fn metrics_table_sorts_every_column_as_text() {
        let rows = [
            MetricRow {
                reason: "Success",
                dir: "EGRESS",
                packets: 9,
                bytes: 900,
                line: 235,
                file: "trace.h",
            },
            MetricRow {
                reason: CT_INSERT,
                dir: "EGRESS",
                packets: 12,
                bytes: 840,
                line: 1421,
                file: "bpf_lxc.c",
            },
        ];
        let t = bpf_metrics_list(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("REASON "));
        assert!(lines[1].starts_with("CT: Map insertion failed   EGRESS"));
        assert!(lines[2].starts_with("Success "));
    }

    #[test]
    fn log_lines_are_slog_text() {
        let l = log_line(
            1_764_000_000_123,
            456_789,
            "info",
            "Conntrack garbage collector interval recalculated",
            "agent.datapath.maps.ct-nat-map-gc",
            "newInterval=12h0m0s",
        );
        assert_eq!(
            l,
            "time=2025-11-24T16:00:00.123456789Z level=info msg=\"Conntrack garbage collector interval recalculated\" module=agent.datapath.maps.ct-nat-map-gc newInterval=12h0m0s\n"
        );
    }
}
