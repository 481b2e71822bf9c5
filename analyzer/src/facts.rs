//! Facts: the typed, documented tree rules are written against (`ctdiag facts BUNDLE` prints it).
//!
//! Facts are derived from the member summaries of one node and nothing else. Groups are always
//! present; a leaf is absent (not zero) when no input said it, so a rule can tell "no drops" from
//! "nobody looked" and report the latter as missing data. Alongside the tree, every fact that came
//! from a line keeps that line (`evidence`) and the members it came from (`sources`), so findings
//! can quote their proof and lower their confidence when a member was truncated.

mod cilium;
mod netns;

pub use cilium::{CiliumFacts, KubeProxyFacts};
pub use netns::{NamespaceFact, NetnsFacts};

use crate::ingest::BundleData;
use crate::parse::MemberSummary;
use crate::parse::conntrack_list::{BackendCounts, ListSummary, Pair, Service};
use crate::parse::conntrack_stats::{CountSummary, StatsSource, StatsSummary};
use crate::parse::dmesg::DmesgSummary;
use crate::parse::kubectl::KubeSummary;
use crate::parse::manifest::Manifest;
use crate::parse::node::NodeSummary;
use crate::parse::sysctl::SysctlSummary;
use crate::summary::{EvidenceLine, Merge};
use serde::Serialize;
use std::collections::BTreeMap;

/// Kernel memory one conntrack entry costs (slab object plus hash bucket share); the runbooks'
/// figure, 300–376 bytes depending on kernel and extensions.
pub const BYTES_PER_ENTRY: u64 = 320;
/// kube-proxy `conntrack.min` default.
pub const KUBE_PROXY_MIN: u64 = 131_072;
/// kube-proxy `conntrack.maxPerCore` default.
pub const KUBE_PROXY_PER_CORE: u64 = 32_768;
/// How many pairs each top list holds.
const TOP_N: usize = 10;
/// The kernel's ESTABLISHED timeout, 5 days (`tcp_timeouts`, nf_conntrack_proto_tcp.c).
pub const KERNEL_ESTABLISHED_TIMEOUT: u64 = 432_000;

/// All facts about one node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Facts {
    /// The node as it describes itself.
    pub node: NodeFacts,
    /// The bundle the facts were read from.
    pub bundle: BundleFacts,
    /// netfilter `nf_conntrack`.
    pub nf: NfFacts,
    /// Cilium's eBPF connection tracking and NAT maps.
    pub cilium: CiliumFacts,
    /// kube-proxy: rule syncs and its IPVS table.
    pub kube_proxy: KubeProxyFacts,
    /// What the cluster's objects (`kubectl get … -o json`, `cluster/` files) say.
    pub k8s: K8sFacts,
}

/// The cluster files read with the bundle: they name addresses and list current endpoints.
#[derive(Debug, Clone, Default, Serialize)]
pub struct K8sFacts {
    /// Pods read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<u64>,
    /// Services read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<u64>,
    /// EndpointSlices read (the stale-backend test uses them when there is at least one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_slices: Option<u64>,
    /// Nodes read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u64>,
    /// Addresses with a name (pod, service or node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub named_addresses: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeFacts {
    /// Node name: manifest, else `uname -a`, else the bundle's name.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Online CPUs (`nproc`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u64>,
    /// `MemTotal`, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_total_bytes: Option<u64>,
    /// Seconds since boot at collection (`/proc/uptime`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<f64>,
    /// When collection started (RFC 3339), from the manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BundleFacts {
    /// Members read.
    pub members: u64,
    /// Whether a v1 manifest was read.
    pub manifest: bool,
    /// Whether the collector replaced addresses with pseudonyms.
    pub redacted: bool,
    /// Members cut by a size cap (collector's or ours).
    pub truncated: Vec<String>,
    /// Members whose digest does not match the manifest.
    pub mismatched: Vec<String>,
    /// Sources the collector could not read: label → reason.
    pub failed_sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct NfFacts {
    /// Entries in the table at collection (`conntrack -C`, else sysctl, else /proc/net/stat, else
    /// the listing's length).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Where `count` came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count_source: Option<String>,
    /// `net.netfilter.nf_conntrack_max` (enforced per network namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// `net.netfilter.nf_conntrack_buckets`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<u64>,
    /// count / max, 0..1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilization: Option<f64>,
    /// Kernel timeouts, seconds (`nf_conntrack_*_timeout*`).
    pub timeouts: BTreeMap<String, u64>,
    /// Counters of the last statistics sample, summed over CPUs (cumulative since boot).
    pub stats: StatsFacts,
    /// Change between the first and last statistics samples.
    pub delta: DeltaFacts,
    /// Each statistics sample, in order.
    pub samples: Vec<SampleFact>,
    /// Per-second rates between the first and last timed samples.
    pub rates: RateFacts,
    /// What the kernel log says.
    pub dmesg: DmesgFacts,
    /// What the table holds (`conntrack -L`).
    pub list: ListFacts,
    /// What the node's size justifies.
    pub sizing: SizingFacts,
    /// The pod network namespaces: each has its own count, limited by the global max.
    pub netns: NetnsFacts,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StatsFacts {
    /// Statistics samples read.
    pub samples: u64,
    /// CPU rows in the last sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u64>,
    /// CPU rows with drop/early_drop/insert_failed above zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus_with_loss: Option<u64>,
    /// New connections refused (table full and early drop failed, or an unresolvable clash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop: Option<u64>,
    /// Unassured entries evicted to make room: the table was full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_drop: Option<u64>,
    /// Inserts that failed: clashes (the UDP DNS race), chains too long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insert_failed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clash_resolve: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chaintoolong: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_restart: Option<u64>,
    /// Every counter of the last sample, by name: `conntrack -S`'s, completed with the columns of
    /// `/proc/net/stat/nf_conntrack` that an older conntrack-tools does not print
    /// (`clash_resolve`, `chaintoolong`).
    pub all: BTreeMap<String, u64>,
    /// Counters taken from `/proc/net/stat/nf_conntrack` because `conntrack -S` lacked them.
    pub from_proc_stat: Vec<String>,
    /// Loss counters of the CPUs that have any, in the last sample.
    pub loss_by_cpu: Vec<crate::parse::conntrack_stats::CpuLoss>,
}

/// One statistics sample, for the series between samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleFact {
    /// Sample index (the N of `stats.N.txt`).
    pub index: u32,
    /// Seconds after the first sample, where the manifest timed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_drop: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insert_failed: Option<u64>,
    /// Entry count taken with the same index (`count.N.txt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DeltaFacts {
    /// Samples compared (≥ 2 for any delta).
    pub samples: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_drop: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insert_failed: Option<i64>,
    /// Inserts refused because the hash chain was too long (`chaintoolong`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chaintoolong: Option<i64>,
    /// Clashes the kernel resolved (`clash_resolve`): harmless, shown for contrast.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clash_resolve: Option<i64>,
    /// Every counter present in both the first and the last sample, by name.
    pub all: BTreeMap<String, i64>,
    /// Change of the entry count between the first and last count samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RateFacts {
    /// Seconds between the first and last timed statistics samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<f64>,
    /// Drops per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_drop: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insert_failed: Option<f64>,
    /// Entries per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DmesgFacts {
    /// Kernel log lines read (absent: no kernel log in the bundle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<u64>,
    /// `table full, dropping packet` lines (a floor: the message is rate limited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_full: Option<u64>,
    /// Messages the kernel's rate limit suppressed (`net_ratelimit: N callbacks suppressed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<u64>,
    /// Network namespaces named by `table full in netns N` (kernel 6.x).
    pub netns: Vec<u64>,
    /// `table full in netns N` lines per namespace inode (decimal string keys), every boot.
    pub table_full_by_netns: BTreeMap<String, u64>,
    /// Table-full lines of the node's own table: the initial namespace, which the kernel logs
    /// without `in netns` (`__nf_conntrack_alloc`), every boot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_table_full: Option<u64>,
    /// The same, in the node's current boot only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_table_full_this_boot: Option<u64>,
    /// The host's table-full message as the kernel logged it (first line), to quote as is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_message: Option<String>,
    /// The first `table full in netns N` message as logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_message: Option<String>,
    /// Table-full lines (any namespace) written before the node's current boot: history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_full_earlier_boots: Option<u64>,
    /// Uptime of the first and last host table-full lines of the current boot, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_table_full_uptime: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_table_full_uptime: Option<f64>,
    /// How long before collection the last host table-full line of the current boot was
    /// written, seconds (uptime stamps against `/proc/uptime`, else wall-clock stamps against the
    /// collection time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_since_table_full: Option<f64>,
    /// The same for the last line naming another namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_since_netns_table_full: Option<f64>,
    /// How long before collection the last table-full line of an earlier boot was written,
    /// where its stamp is a wall clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_since_earlier_boot_table_full: Option<f64>,
    /// nf_conntrack_max printed when the module loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module_max: Option<u64>,
}

/// A top pair as rules and reports read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairFact {
    pub proto: String,
    pub src: String,
    /// The pod, service or node `src` belongs to (`namespace/name`), where cluster files say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_name: Option<String>,
    pub dst: String,
    /// The service, pod or node `dst` belongs to (`namespace/name`), where cluster files say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_name: Option<String>,
    pub dport: u16,
    pub entries: u64,
    /// Share of the entries of its kind (TIME_WAIT pairs: of TIME_WAIT entries).
    pub share: f64,
}

/// A DNAT backend judged gone: never answered (heuristic), or no endpoint of any Service now
/// (EndpointSlices).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaleBackend {
    pub backend: String,
    /// The pod the address belonged to, where cluster files still name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_name: Option<String>,
    /// Its entries that never got a reply.
    pub unreplied: u64,
    /// All its entries (answered ones too: under EndpointSlices every one of them is stale).
    pub entries: u64,
    /// The service (ClusterIP:port) it was reached through.
    pub service: String,
    /// That service's address alone (for commands such as `conntrack -D --orig-dst`).
    pub service_addr: String,
    /// That service's `namespace/name`, where cluster files say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ListFacts {
    /// Entries listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    /// The listing was cut by a size cap: shares are of what was read.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    pub by_proto: BTreeMap<String, u64>,
    pub by_family: BTreeMap<String, u64>,
    pub tcp_states: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreplied: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assured: Option<u64>,
    /// Entries kube-proxy DNAT'd (reply source ≠ original destination).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnat: Option<u64>,
    /// Shares, 0..1: TIME_WAIT / ESTABLISHED / SYN_SENT of TCP entries, UDP of all, DNS of UDP,
    /// unanswered TCP (SYN_SENT or UNREPLIED) of TCP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timewait_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub established_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syn_sent_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unanswered_tcp_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_share_of_udp: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreplied_udp_share: Option<f64>,
    /// The protocol holding most entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub largest_proto: Option<String>,
    /// Share of ESTABLISHED entries held by the 5 largest pairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub established_top5_share: Option<f64>,
    /// Share of TIME_WAIT entries held by the 5 largest pairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timewait_top5_share: Option<f64>,
    /// Largest pairs overall and by kind.
    pub top_pairs: Vec<PairFact>,
    pub top_timewait_pairs: Vec<PairFact>,
    pub top_established_pairs: Vec<PairFact>,
    pub top_unanswered_tcp_pairs: Vec<PairFact>,
    pub top_udp_pairs: Vec<PairFact>,
    /// Largest destinations (service IP:port).
    pub top_services: Vec<PairFact>,
    /// Most a top-k count can be below the truth (0: exact).
    pub top_error_bound: u64,
    /// DNAT backends with unanswered entries and not a single answered one (gone after a rollout),
    /// while other backends of the same service answer.
    pub stale: StaleFacts,
    /// UDP entries still DNAT'd to a backend judged gone, at any fill level.
    pub udp_stale: StaleFacts,
    /// The established timeout idle times are measured against (`nf.timeouts.tcp_established`,
    /// else the kernel's default 432000 s), seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub established_timeout: Option<u64>,
    /// ESTABLISHED entries idle at least a day (timeout minus remaining timer ≥ 86400 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub established_idle_day: Option<u64>,
    /// Their share of ESTABLISHED entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub established_idle_day_share: Option<f64>,
    /// The longest idle time among ESTABLISHED entries, seconds (minute resolution).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub established_max_idle_seconds: Option<u64>,
    /// Pairs of those idle entries (exact only under the kernel's default timeout; empty
    /// otherwise).
    pub top_idle_established_pairs: Vec<PairFact>,
    /// Sources of unanswered entries (TCP SYN_SENT/UNREPLIED, UDP UNREPLIED) with how many
    /// distinct destinations (address and port) they tried, most destinations first.
    pub top_unanswered_sources: Vec<SourceFact>,
}

/// A source of unanswered entries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceFact {
    pub src: String,
    /// The pod or node it belongs to, where cluster files say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_name: Option<String>,
    /// Its unanswered entries.
    pub entries: u64,
    /// Distinct destinations among them (estimated above a few hundred, within a few percent).
    pub destinations: u64,
    /// Share of all unanswered entries.
    pub share: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StaleFacts {
    /// How backends were judged: `endpointslices` (not an endpoint of any Service in the cluster
    /// files) or `unreplied` (never answered while a sibling backend of the service does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Entries to such backends (`unreplied`: only the unanswered ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    /// Their share of the table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
    /// How many such backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_count: Option<u64>,
    pub backends: Vec<StaleBackend>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SizingFacts {
    /// The kernel's own default for this node's RAM (kernel ≥ 5.15: max = buckets; 262144 above
    /// 4 GiB, 65536 above 1 GiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_default_max: Option<u64>,
    /// kube-proxy's default: max(131072, 32768 × CPUs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_proxy_max: Option<u64>,
    /// Kernel memory the current max may take at most, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory_bytes: Option<u64>,
    /// Share of RAM that max_memory_bytes is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory_share: Option<f64>,
}

/// The facts of one node, with the lines and members behind them.
#[derive(Debug, Clone, Default)]
pub struct FactSet {
    pub facts: Facts,
    /// Fact path → lines quoted as its evidence.
    pub evidence: BTreeMap<String, Vec<EvidenceLine>>,
    /// Fact path prefix → members it was derived from.
    pub sources: BTreeMap<String, Vec<String>>,
    /// The manifest, when the bundle had one.
    pub manifest: Option<Manifest>,
}

impl FactSet {
    fn quote(&mut self, path: &str, lines: impl IntoIterator<Item = EvidenceLine>) {
        self.evidence
            .entry(path.to_string())
            .or_default()
            .extend(lines);
    }

    fn source(&mut self, path: &str, member: &str) {
        let v = self.sources.entry(path.to_string()).or_default();
        if !v.iter().any(|m| m == member) {
            v.push(member.to_string());
        }
    }
}

/// a − b as a signed change, saturating: counters are u64 and crafted ones can be anything.
fn diff(a: u64, b: u64) -> i64 {
    (i128::from(a) - i128::from(b)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// A share of a listing: 0 when the whole is empty (the listing exists, the share is known).
fn share(a: u64, b: u64) -> Option<f64> {
    Some(ratio(a, b).map(round4).unwrap_or(0.0))
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn pair_facts(top: Vec<(Pair, u64)>, of: u64) -> Vec<PairFact> {
    top.into_iter()
        .map(|(p, n)| PairFact {
            proto: p.proto.name().to_string(),
            src: p.src.to_string(),
            src_name: None,
            dst: p.dst.to_string(),
            dst_name: None,
            dport: p.dport,
            entries: n,
            share: ratio(n, of).map(round4).unwrap_or(0.0),
        })
        .collect()
}

fn service_facts(top: Vec<(Service, u64)>, of: u64) -> Vec<PairFact> {
    top.into_iter()
        .map(|(s, n)| PairFact {
            proto: s.proto.name().to_string(),
            src: String::new(),
            src_name: None,
            dst: s.addr.to_string(),
            dst_name: None,
            dport: s.port,
            entries: n,
            share: ratio(n, of).map(round4).unwrap_or(0.0),
        })
        .collect()
}

/// A stats sample with its index and time.
struct Sample<'a> {
    index: u32,
    time: Option<f64>,
    stats: &'a StatsSummary,
    member: &'a str,
}

/// Seconds since the epoch of an RFC 3339 time.
fn epoch(t: &str) -> Option<f64> {
    let st = humantime::parse_rfc3339_weak(t.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(t))
        .ok()?;
    Some(st.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64())
}

/// The node's kernel log, from however many members hold one. Rotated files of one log
/// (`kern.log.2.gz`, `kern.log.1`, `kern.log`) hold different days and are read in order, oldest
/// first, as one log. Different logs — the ring buffer (`dmesg`, `dmesg -T`), the journal,
/// syslog's `kern.log` or `messages` — hold the same kernel events, so they are never added up:
/// the log with the most conntrack lines (then the most lines) is the node's, counted once.
fn kernel_log(logs: &[(&str, &DmesgSummary)]) -> Option<(DmesgSummary, Vec<String>)> {
    let mut families: BTreeMap<String, Vec<(RotationAge, &str, &DmesgSummary)>> = BTreeMap::new();
    for (path, s) in logs {
        let (family, age) = rotation(path);
        families.entry(family).or_default().push((age, path, s));
    }
    families
        .into_values()
        .map(|mut members| {
            // Oldest first: higher rotation numbers and earlier dates are older.
            members.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
            let mut merged: Option<DmesgSummary> = None;
            for (_, _, s) in &members {
                merged.combine(Some((*s).clone()));
            }
            let paths: Vec<String> = members.iter().map(|m| m.1.to_string()).collect();
            (merged.unwrap_or_default(), paths)
        })
        .max_by(|(a, pa), (b, pb)| {
            let events = |d: &DmesgSummary| d.table_full.total + d.expectation_full.total;
            events(a)
                .cmp(&events(b))
                .then(a.lines.cmp(&b.lines))
                // The same count twice: the first path wins, whatever the order found.
                .then(pb.cmp(pa))
        })
}

/// How old a rotated log file is: a larger value is older.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum RotationAge {
    Current,
    /// `-YYYYMMDD` (logrotate `dateext`): a later date is newer, so it counts down.
    Dated(std::cmp::Reverse<u32>),
    /// `.N`: a larger N is older.
    Numbered(u32),
}

/// `var/log/kern.log.2.gz` → (`var/log/kern.log`, Numbered(2)); `messages-20261120` →
/// (`messages`, Dated). A compressed file was read decompressed under its name without `.gz`.
fn rotation(path: &str) -> (String, RotationAge) {
    let p = path
        .strip_suffix(".gz")
        .or_else(|| path.strip_suffix(".xz"))
        .or_else(|| path.strip_suffix(".bz2"))
        .unwrap_or(path);
    if let Some((base, n)) = p.rsplit_once('.')
        && !n.is_empty()
        && n.len() <= 3
        && let Ok(n) = n.parse::<u32>()
    {
        return (base.to_string(), RotationAge::Numbered(n));
    }
    if let Some((base, d)) = p.rsplit_once('-')
        && d.len() == 8
        && let Ok(d) = d.parse::<u32>()
    {
        return (base.to_string(), RotationAge::Dated(std::cmp::Reverse(d)));
    }
    (p.to_string(), RotationAge::Current)
}

/// Derives the facts of one node from its parsed bundle.
pub fn derive(data: &BundleData) -> FactSet {
    let mut set = FactSet::default();
    let mut node = NodeSummary::default();
    let mut dmesg: Option<DmesgSummary> = None;
    let mut sysctl = SysctlSummary::default();
    let mut list: Option<(ListSummary, &str, bool)> = None;
    let mut stats: Vec<(Option<u32>, StatsSource, &StatsSummary, &str)> = Vec::new();
    let mut counts: Vec<(Option<u32>, &CountSummary, &str)> = Vec::new();
    let mut dmesg_members = Vec::new();
    let mut kernel_logs: Vec<(&str, &DmesgSummary)> = Vec::new();
    let mut single_values: Vec<&SysctlSummary> = Vec::new();
    let mut sysctl_members = Vec::new();
    let mut layers = cilium::Inputs::default();
    let mut kube: Option<KubeSummary> = None;
    let mut kube_members: Vec<&str> = Vec::new();

    for m in &data.members {
        match &m.summary {
            MemberSummary::Manifest(s) => set.manifest = s.manifest.clone(),
            MemberSummary::Node(s) => node.combine(s.clone()),
            MemberSummary::Dmesg(s) => kernel_logs.push((m.path.as_str(), &**s)),
            // A file holding one /proc/sys value is that value's own reading; a dump of every
            // key taken at another moment yields to it.
            MemberSummary::Sysctl(s)
                if matches!(m.kind, crate::classify::MemberKind::SysctlValue(_)) =>
            {
                single_values.push(s);
                sysctl_members.push(m.path.clone());
            }
            MemberSummary::Sysctl(s) => {
                sysctl.combine(s.clone());
                sysctl_members.push(m.path.clone());
            }
            MemberSummary::ConntrackList(s) => match &mut list {
                // Two listings of one node (-L and /proc): keep the larger, they are the same table.
                Some((l, _, _)) if l.entries >= s.entries => {}
                _ => list = Some(((**s).clone(), m.path.as_str(), m.truncated)),
            },
            MemberSummary::ConntrackStats(s) => {
                stats.push((m.sample, s.source, s, m.path.as_str()))
            }
            MemberSummary::ConntrackMixed(l, s) => {
                if s.cpus > 0 {
                    stats.push((m.sample, s.source, s, m.path.as_str()));
                }
                if list
                    .as_ref()
                    .is_none_or(|(mine, _, _)| mine.entries < l.entries)
                {
                    list = Some(((**l).clone(), m.path.as_str(), m.truncated));
                }
            }
            MemberSummary::ConntrackCount(s) => counts.push((m.sample, s, m.path.as_str())),
            MemberSummary::CiliumCt(s) => match &layers.ct {
                // Two dumps of one node are the same maps: keep the larger.
                Some((c, _, _)) if c.entries >= s.entries => {}
                _ => layers.ct = Some(((**s).clone(), m.path.as_str(), m.truncated)),
            },
            MemberSummary::CiliumBpfMetrics(s) => {
                layers.bpf_metrics.push((m.sample, s, m.path.as_str()))
            }
            MemberSummary::CiliumMonitor(s) => match &mut layers.monitor {
                Some((mine, members)) => {
                    mine.combine(s.clone());
                    members.push(m.path.as_str());
                }
                None => layers.monitor = Some((s.clone(), vec![m.path.as_str()])),
            },
            MemberSummary::Metrics(s) => layers.metrics.push((m.sample, s, m.path.as_str())),
            MemberSummary::CiliumConfig(s) => {
                layers.config.combine(s.clone());
                layers.config_members.push(m.path.as_str());
            }
            MemberSummary::CiliumStatus(s) => {
                layers.status.combine(s.clone());
                layers.status_members.push(m.path.as_str());
            }
            MemberSummary::CiliumAgentLog(s) => {
                layers.log.combine(s.clone());
                layers.log_members.push(m.path.as_str());
            }
            MemberSummary::Ipvs(s) => match &layers.ipvs {
                Some((i, _)) if i.entries >= s.entries => {}
                _ => layers.ipvs = Some((s.clone(), m.path.as_str())),
            },
            MemberSummary::ProxyMode(s) => {
                layers.mode.combine(s.clone());
                layers.mode_members.push(m.path.as_str());
            }
            MemberSummary::Kube(s) => {
                kube.combine(Some((**s).clone()));
                kube_members.push(m.path.as_str());
            }
            // Per-namespace inputs: read by `netns::derive`, never merged into the host's.
            MemberSummary::NetnsList(_)
            | MemberSummary::NetnsStats(..)
            | MemberSummary::NetnsNamedStats(..) => {}
            MemberSummary::Skipped => {}
        }
    }

    for s in single_values {
        for (k, v) in &s.values {
            sysctl.values.insert(k.clone(), v.clone());
        }
        sysctl.lines += s.lines;
    }
    if let Some((summary, members)) = kernel_log(&kernel_logs) {
        dmesg = Some(summary);
        dmesg_members = members;
    }

    let manifest_times: BTreeMap<String, f64> = set
        .manifest
        .iter()
        .flat_map(|m| m.members.iter())
        .filter_map(|mm| Some((mm.path.clone(), epoch(mm.time.as_deref()?)?)))
        .collect();

    // Bundle.
    let f = &mut set.facts;
    f.bundle.members = data.members.len() as u64;
    f.bundle.manifest = set.manifest.is_some();
    f.bundle.truncated = data
        .members
        .iter()
        .filter(|m| m.truncated)
        .map(|m| m.path.clone())
        .collect();
    if let Some(man) = &set.manifest {
        f.bundle.redacted = man.redacted;
        for mm in man.members.iter().filter(|mm| mm.truncated) {
            if !f.bundle.truncated.contains(&mm.path) {
                f.bundle.truncated.push(mm.path.clone());
            }
        }
        for failed in &man.failed {
            let why = failed
                .error
                .clone()
                .or_else(|| failed.exit_status.map(|s| format!("exit status {s}")))
                .unwrap_or_else(|| "failed".into());
            f.bundle.failed_sources.insert(failed.source.clone(), why);
        }
    }

    // Node.
    f.node.name = set
        .manifest
        .as_ref()
        .and_then(|m| m.node.clone())
        .or_else(|| node.hostname.clone())
        .unwrap_or_else(|| data.name.clone());
    f.node.kernel = set
        .manifest
        .as_ref()
        .and_then(|m| m.kernel.clone())
        .or(node.kernel.clone());
    f.node.os = node.os.clone();
    f.node.cpus = node.cpus.as_ref().map(|c| c.0);
    f.node.mem_total_bytes = node.mem_total_bytes.as_ref().map(|m| m.0);
    f.node.uptime_seconds = node.uptime_seconds.as_ref().map(|u| u.0);
    f.node.collected_at = set.manifest.as_ref().and_then(|m| m.started_at.clone());
    let node_lines: Vec<(&str, EvidenceLine)> = [
        node.cpus.as_ref().map(|c| ("node.cpus", c.1.clone())),
        node.mem_total_bytes
            .as_ref()
            .map(|c| ("node.mem_total_bytes", c.1.clone())),
        node.uptime_seconds
            .as_ref()
            .map(|c| ("node.uptime_seconds", c.1.clone())),
    ]
    .into_iter()
    .flatten()
    .collect();
    for (path, line) in node_lines {
        let member = line.member.clone();
        set.quote(path, [line]);
        set.source(path, &member);
    }

    // Sysctl: max, buckets, timeouts, and a count when nothing better exists.
    let f = &mut set.facts;
    let mut quotes: Vec<(&str, EvidenceLine)> = Vec::new();
    if let Some((v, l)) = sysctl
        .int("net.netfilter.nf_conntrack_max")
        .or_else(|| sysctl.int("net.nf_conntrack_max"))
    {
        f.nf.max = Some(v);
        quotes.push(("nf.max", l.clone()));
    }
    if let Some((v, l)) = sysctl.int("net.netfilter.nf_conntrack_buckets") {
        f.nf.buckets = Some(v);
        quotes.push(("nf.buckets", l.clone()));
    }
    for (key, v) in &sysctl.values {
        if let Some(name) = key.strip_prefix("net.netfilter.nf_conntrack_")
            && name.contains("timeout")
            && let Ok(secs) = v.value.trim().parse::<u64>()
        {
            f.nf.timeouts.insert(name.replace("_timeout", ""), secs);
        }
    }

    // Count: conntrack -C (latest sample), else sysctl, else /proc/net/stat entries.
    counts.sort_by_key(|c| (c.0, c.2));
    let latest_count = counts
        .iter()
        .rev()
        .find_map(|(_, c, m)| Some((c.value?, c.line.clone()?, *m)));
    let first_count = counts.iter().find_map(|(_, c, m)| Some((c.value?, *m)));
    if let Some((v, line, member)) = latest_count {
        f.nf.count = Some(v);
        f.nf.count_source = Some(format!("conntrack -C ({member})"));
        quotes.push(("nf.count", line));
        if counts.len() >= 2
            && let Some((first, first_member)) = first_count
        {
            let change = diff(v, first);
            f.nf.delta.count = Some(change);
            // The count's own sample times: the statistics samples may span other moments.
            if let (Some(t0), Some(t1)) =
                (manifest_times.get(first_member), manifest_times.get(member))
                && t1 > t0
            {
                f.nf.rates.count = Some(round4(change as f64 / (t1 - t0)));
            }
        }
    } else if let Some((v, l)) = sysctl.int("net.netfilter.nf_conntrack_count") {
        f.nf.count = Some(v);
        f.nf.count_source = Some(format!("sysctl ({})", l.member));
        quotes.push(("nf.count", l.clone()));
    }
    for (path, line) in quotes {
        let member = line.member.clone();
        set.quote(path, [line]);
        set.source(path, &member);
    }

    // Statistics samples: prefer conntrack -S; /proc/net/stat when that is all there is.
    let use_source = if stats.iter().any(|s| s.1 == StatsSource::ConntrackS) {
        StatsSource::ConntrackS
    } else {
        StatsSource::ProcStat
    };
    let mut samples: Vec<Sample<'_>> = stats
        .iter()
        .filter(|s| s.1 == use_source)
        .enumerate()
        .map(|(i, s)| Sample {
            index: s.0.unwrap_or(i as u32),
            time: manifest_times.get(s.3).copied(),
            stats: s.2,
            member: s.3,
        })
        .collect();
    samples.sort_by_key(|s| (s.index, s.member));
    if set.facts.nf.count.is_none()
        && let Some(last) = samples.iter().rev().find(|s| s.stats.entries.is_some())
    {
        set.facts.nf.count = last.stats.entries;
        set.facts.nf.count_source = Some(format!("/proc/net/stat/nf_conntrack ({})", last.member));
        let member = last.member.to_string();
        set.source("nf.count", &member);
    }
    // conntrack-tools before 1.4.7 does not know the newer netlink counters and prints none of
    // them; the same sample's /proc/net/stat row has them.
    let proc_samples: Vec<&StatsSummary> = {
        let mut p: Vec<(u32, &str, &StatsSummary)> = stats
            .iter()
            .filter(|s| s.1 == StatsSource::ProcStat)
            .enumerate()
            .map(|(i, s)| (s.0.unwrap_or(i as u32), s.3, s.2))
            .collect();
        p.sort_by_key(|x| (x.0, x.1));
        p.into_iter().map(|x| x.2).collect()
    };
    let completed = |s: &StatsSummary, proc: Option<&&StatsSummary>| -> BTreeMap<String, u64> {
        let mut all = s.totals.clone();
        if use_source == StatsSource::ConntrackS
            && let Some(p) = proc
        {
            for (k, v) in &p.totals {
                all.entry(k.clone()).or_insert(*v);
            }
        }
        all
    };
    let last_all = samples
        .last()
        .map(|l| completed(l.stats, proc_samples.last()));
    let first_all = samples
        .first()
        .map(|f| completed(f.stats, proc_samples.first()));
    if let (Some(last), Some(all)) = (samples.last(), &last_all) {
        let s = last.stats;
        let get = |k: &str| all.get(k).copied();
        let st = &mut set.facts.nf.stats;
        st.samples = samples.len() as u64;
        st.cpus = Some(s.cpus as u64);
        st.cpus_with_loss = Some(s.cpus_with_loss as u64);
        st.drop = get("drop");
        st.early_drop = get("early_drop");
        st.insert_failed = get("insert_failed");
        st.clash_resolve = get("clash_resolve");
        st.chaintoolong = get("chaintoolong");
        st.invalid = get("invalid");
        st.search_restart = get("search_restart");
        st.from_proc_stat = all
            .keys()
            .filter(|k| !s.totals.contains_key(*k))
            .cloned()
            .collect();
        st.all = all.clone();
        st.loss_by_cpu = s.loss_by_cpu.clone();
        for counter in ["drop", "early_drop", "insert_failed", "chaintoolong"] {
            let rows = s
                .loss_rows
                .get(counter)
                .or_else(|| proc_samples.last().and_then(|p| p.loss_rows.get(counter)));
            if let Some(rows) = rows {
                set.quote(&format!("nf.stats.{counter}"), rows.lines().cloned());
            }
        }
        let members: Vec<String> = samples.iter().map(|s| s.member.to_string()).collect();
        for m in &members {
            set.source("nf.stats", m);
            set.source("nf.delta", m);
            set.source("nf.rates", m);
        }
    }
    let t0 = samples.first().and_then(|s| s.time);
    set.facts.nf.samples = samples
        .iter()
        .map(|s| SampleFact {
            index: s.index,
            seconds: s.time.zip(t0).map(|(t, t0)| round4(t - t0)),
            drop: s.stats.totals.get("drop").copied(),
            early_drop: s.stats.totals.get("early_drop").copied(),
            insert_failed: s.stats.totals.get("insert_failed").copied(),
            count: counts
                .iter()
                .find(|c| c.0 == Some(s.index))
                .and_then(|c| c.1.value),
        })
        .collect();
    if samples.len() >= 2
        && let (Some(first), Some(last)) = (samples.first(), samples.last())
    {
        let (first_all, last_all) = (first_all.unwrap_or_default(), last_all.unwrap_or_default());
        let d = |k: &str| -> Option<i64> { Some(diff(*last_all.get(k)?, *first_all.get(k)?)) };
        let nf = &mut set.facts.nf;
        nf.delta.samples = samples.len() as u64;
        nf.delta.drop = d("drop");
        nf.delta.early_drop = d("early_drop");
        nf.delta.insert_failed = d("insert_failed");
        nf.delta.chaintoolong = d("chaintoolong");
        nf.delta.clash_resolve = d("clash_resolve");
        nf.delta.all = last_all
            .keys()
            .filter_map(|k| Some((k.clone(), d(k)?)))
            .collect();
        if let (Some(t0), Some(t1)) = (first.time, last.time)
            && t1 > t0
        {
            let secs = t1 - t0;
            let rate = |x: Option<i64>| x.map(|v| round4(v as f64 / secs));
            nf.rates.interval_seconds = Some(round4(secs));
            nf.rates.drop = rate(nf.delta.drop);
            nf.rates.early_drop = rate(nf.delta.early_drop);
            nf.rates.insert_failed = rate(nf.delta.insert_failed);
        }
        // The first CPU row with drops in the first and the last sample: the counter moving.
        let drop_row = |s: &StatsSummary| {
            s.loss_rows
                .get("drop")
                .and_then(|r| r.lines().next().cloned())
        };
        let both: Vec<EvidenceLine> = [drop_row(first.stats), drop_row(last.stats)]
            .into_iter()
            .flatten()
            .collect();
        set.quote("nf.rates.drop", both.iter().cloned());
        set.quote("nf.delta.drop", both);
    }

    // Kernel log.
    if let Some(d) = &dmesg {
        let collected = set.facts.node.collected_at.as_deref().and_then(epoch);
        let uptime_now = set.facts.node.uptime_seconds;
        let df = &mut set.facts.nf.dmesg;
        df.lines = Some(d.lines);
        df.table_full = Some(d.table_full.total);
        df.suppressed = Some(d.suppressed);
        df.netns = d.netns_inodes().collect();
        df.table_full_by_netns = d.netns.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        df.host_table_full = Some(d.init_netns_lines);
        df.host_message = d.host_message.as_ref().map(|m| m.1.clone());
        df.netns_message = d.netns_message.as_ref().map(|m| m.1.clone());
        df.module_max = d.module_loaded.as_ref().map(|m| m.1);
        // The log's latest boot is the node's current one unless the node's clock is behind the
        // log's (the log was written before a reboot it does not show).
        let (current, earlier) = match (uptime_now, d.last_uptime) {
            (Some(now), Some(last)) if now + 60.0 < last => {
                let mut all = d.earlier.clone();
                all.combine(d.current.clone());
                (crate::parse::dmesg::Episode::default(), all)
            }
            _ => (d.current.clone(), d.earlier.clone()),
        };
        df.host_table_full_this_boot = Some(current.host_lines);
        df.table_full_earlier_boots = Some(earlier.host_lines + earlier.netns_lines);
        df.first_table_full_uptime = current.first_host_uptime;
        df.last_table_full_uptime = current.last_host_uptime;
        // "Now" on the uptime clock: /proc/uptime at collection, else the log's newest stamp;
        // on the wall clock: the collection time, else the log's newest wall stamp.
        let now = uptime_now.or(d.last_uptime);
        let wall_now = collected.or_else(|| d.last_wall.and_then(|w| w.epoch(None)));
        let since = |uptime: Option<f64>, wall: Option<crate::parse::dmesg::Wall>| {
            let by_uptime = now.zip(uptime).map(|(n, u)| n - u);
            let by_wall = wall_now
                .zip(wall.and_then(|w| w.epoch(wall_now)))
                .map(|(n, w)| n - w);
            by_uptime.or(by_wall).filter(|s| *s >= 0.0).map(round4)
        };
        df.seconds_since_table_full = since(current.last_host_uptime, current.last_host_wall);
        df.seconds_since_netns_table_full =
            since(current.last_netns_uptime, current.last_netns_wall);
        df.seconds_since_earlier_boot_table_full = since(
            None,
            later_wall(earlier.last_host_wall, earlier.last_netns_wall),
        );
        let lines: Vec<EvidenceLine> = d.table_full.lines().cloned().collect();
        set.quote("nf.dmesg.table_full", lines);
        set.quote("nf.dmesg.suppressed", d.suppressed_lines.lines().cloned());
        for m in &dmesg_members {
            set.source("nf.dmesg", m);
        }
        // The max printed at module load is the boot value; kube-proxy and sysctl.d raise it
        // later, so it stays `nf.dmesg.module_max` and never stands in for `nf.max`.
        if let Some((_, _, line)) = &d.module_loaded {
            set.quote("nf.dmesg.module_max", [line.clone()]);
        }
    }

    // The listing.
    if let Some((l, member, truncated)) = &list {
        let member = member.to_string();
        // Cut by our cap, or by the collector's (the manifest says so).
        let truncated = *truncated || set.facts.bundle.truncated.contains(&member);
        derive_list(&mut set, l, truncated, kube.as_ref());
        set.source("nf.list", &member);
        if set.facts.nf.count.is_none() && !truncated {
            set.facts.nf.count = Some(l.entries);
            set.facts.nf.count_source = Some(format!("entries listed ({member})"));
            set.source("nf.count", &member);
        }
    }

    // Utilization and sizing.
    let nf = &mut set.facts.nf;
    if let (Some(c), Some(m)) = (nf.count, nf.max) {
        nf.utilization = ratio(c, m).map(round4);
    }
    let cpus = set.facts.node.cpus;
    let mem = set.facts.node.mem_total_bytes;
    let sz = &mut set.facts.nf.sizing;
    sz.kernel_default_max = mem.map(kernel_default_max);
    sz.kube_proxy_max = cpus.map(|c| KUBE_PROXY_MIN.max(KUBE_PROXY_PER_CORE.saturating_mul(c)));
    if let Some(max) = set.facts.nf.max {
        let sz = &mut set.facts.nf.sizing;
        sz.max_memory_bytes = Some(max.saturating_mul(BYTES_PER_ENTRY));
        sz.max_memory_share = mem
            .and_then(|m| ratio(max.saturating_mul(BYTES_PER_ENTRY), m))
            .map(round4);
    }

    // The eBPF and proxy layers, after netfilter: the IPVS table is compared with its count.
    cilium::derive(&mut set, layers, &manifest_times);

    netns::derive(&mut set, data, kube.as_ref());
    // Collected from inside a namespace the kernel names (no hostPID, or a lab): the lines naming
    // that namespace are the collected table's own.
    if let (Some(h), Some(d)) = (set.facts.nf.netns.host_inode, &dmesg)
        && let Some(lines) = d.netns.get(&h).copied()
    {
        let since_netns = set.facts.nf.dmesg.seconds_since_netns_table_full;
        let df = &mut set.facts.nf.dmesg;
        df.host_table_full = Some(df.host_table_full.unwrap_or(0) + lines);
        let this_boot = lines.min(d.current.netns_lines);
        if this_boot > 0 {
            df.host_table_full_this_boot =
                Some(df.host_table_full_this_boot.unwrap_or(0) + this_boot);
            df.seconds_since_table_full = match (df.seconds_since_table_full, since_netns) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if df.host_message.is_none() {
                df.host_message = df.netns_message.clone();
            }
        }
    }

    // Names last, over every pair of every layer.
    if let Some(k) = &kube {
        derive_k8s(&mut set, k);
        for m in &kube_members {
            set.source("k8s", m);
        }
    }
    set
}

fn derive_k8s(set: &mut FactSet, k: &KubeSummary) {
    let count = |kind: &str| k.objects.get(kind).copied();
    let f = &mut set.facts.k8s;
    f.pods = count("Pod");
    f.services = count("Service");
    f.endpoint_slices = count("EndpointSlice");
    f.nodes = count("Node");
    f.named_addresses = Some(k.addresses.len() as u64);
    let name = |ip: &str| -> Option<String> {
        let addr: std::net::IpAddr = ip.parse().ok()?;
        k.lookup(&addr).map(|n| n.label())
    };
    let lf = &mut set.facts.nf.list;
    let lists = [
        &mut lf.top_pairs,
        &mut lf.top_timewait_pairs,
        &mut lf.top_established_pairs,
        &mut lf.top_unanswered_tcp_pairs,
        &mut lf.top_udp_pairs,
        &mut lf.top_services,
        &mut lf.top_idle_established_pairs,
        &mut set.facts.cilium.ct.top_pairs,
    ];
    for list in lists {
        for p in list.iter_mut() {
            p.src_name = name(&p.src);
            p.dst_name = name(&p.dst);
        }
    }
    let lf = &mut set.facts.nf.list;
    for b in lf
        .stale
        .backends
        .iter_mut()
        .chain(&mut lf.udp_stale.backends)
    {
        b.backend_name = b.backend_name.take().or_else(|| name(&b.backend));
    }
}

fn later_wall(
    a: Option<crate::parse::dmesg::Wall>,
    b: Option<crate::parse::dmesg::Wall>,
) -> Option<crate::parse::dmesg::Wall> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y >= x { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The kernel's own nf_conntrack_max for a node's RAM (`nf_conntrack_init_start`, kernel ≥ 5.15:
/// max = buckets; 262144 on 64-bit hosts above 4 GiB, 65536 above 1 GiB, else RAM/16384/8).
pub fn kernel_default_max(mem_bytes: u64) -> u64 {
    const GIB: u64 = 1 << 30;
    if mem_bytes > 4 * GIB {
        262_144
    } else if mem_bytes > GIB {
        65_536
    } else {
        (mem_bytes / 16_384 / 8).max(1024)
    }
}

/// The Service (`namespace/name`) a DNAT'd destination belongs to: its ClusterIP, external or
/// load-balancer address, or a node address and one of the Service's NodePorts.
fn service_of(k: &KubeSummary, s: &Service) -> Option<String> {
    use crate::parse::kubectl::AddressKind;
    match k.lookup(&s.addr) {
        Some(n) if n.kind == AddressKind::Service => Some(n.label()),
        Some(n) if n.kind == AddressKind::Node => k.node_ports.get(&s.port).cloned(),
        _ => None,
    }
}

fn stale_backend(ip: &std::net::IpAddr, b: &BackendCounts, entries: u64) -> StaleBackend {
    StaleBackend {
        backend: ip.to_string(),
        backend_name: None,
        unreplied: b.unreplied,
        entries,
        service_addr: b.service.map(|s| s.addr.to_string()).unwrap_or_default(),
        service: b
            .service
            .map(|s| match s.addr {
                std::net::IpAddr::V6(a) => format!("[{a}]:{}", s.port),
                a => format!("{a}:{}", s.port),
            })
            .unwrap_or_default(),
        service_name: None,
    }
}

/// Backends reached through a known Service that are no endpoint of any Service now.
fn stale_by_slices(l: &ListSummary, k: &KubeSummary) -> Vec<StaleBackend> {
    l.backends
        .iter()
        .filter(|(ip, _)| !k.endpoints.contains_key(ip))
        .filter_map(|(ip, b)| {
            let service = service_of(k, &b.service?)?;
            let mut s = stale_backend(ip, b, b.replied + b.unreplied);
            s.service_name = Some(service);
            s.backend_name = k.lookup(ip).map(|n| n.label());
            Some(s)
        })
        .collect()
}

/// UDP backends reached through a known Service that are no endpoint of any Service now.
fn udp_stale_by_slices(l: &ListSummary, k: &KubeSummary) -> Vec<StaleBackend> {
    l.backends
        .iter()
        .filter(|(ip, b)| b.udp_replied + b.udp_unreplied > 0 && !k.endpoints.contains_key(ip))
        .filter_map(|(ip, b)| {
            let svc = b.udp_service?;
            let service = service_of(k, &svc)?;
            let mut s = udp_stale_backend(ip, b);
            s.service_name = Some(service);
            s.backend_name = k.lookup(ip).map(|n| n.label());
            Some(s)
        })
        .collect()
}

/// UDP backends none of whose entries was answered while another backend of the same UDP
/// service answers.
fn udp_stale_by_replies(l: &ListSummary, kube: Option<&KubeSummary>) -> Vec<StaleBackend> {
    let live: std::collections::HashSet<Service> = l
        .backends
        .values()
        .filter(|b| b.udp_replied > 0)
        .filter_map(|b| b.udp_service)
        .collect();
    l.backends
        .iter()
        .filter(|(_, b)| b.udp_replied == 0 && b.udp_unreplied > 0)
        .filter(|(_, b)| b.udp_service.is_some_and(|s| live.contains(&s)))
        .map(|(ip, b)| {
            let mut s = udp_stale_backend(ip, b);
            if let Some(k) = kube {
                s.service_name = b.udp_service.and_then(|svc| service_of(k, &svc));
                s.backend_name = k.lookup(ip).map(|n| n.label());
            }
            s
        })
        .collect()
}

fn udp_stale_backend(ip: &std::net::IpAddr, b: &BackendCounts) -> StaleBackend {
    let mut s = stale_backend(ip, b, b.udp_replied + b.udp_unreplied);
    s.unreplied = b.udp_unreplied;
    s.service_addr = b
        .udp_service
        .map(|s| s.addr.to_string())
        .unwrap_or_default();
    s.service = b
        .udp_service
        .map(|s| match s.addr {
            std::net::IpAddr::V6(a) => format!("[{a}]:{}", s.port),
            a => format!("{a}:{}", s.port),
        })
        .unwrap_or_default();
    s
}

/// Backends that never answered while another backend of the same service does.
fn stale_by_replies(l: &ListSummary, kube: Option<&KubeSummary>) -> Vec<StaleBackend> {
    let live_services: std::collections::HashSet<Service> = l
        .backends
        .values()
        .filter(|b| b.replied > 0)
        .filter_map(|b| b.service)
        .collect();
    l.backends
        .iter()
        .filter(|(_, b)| b.replied == 0 && b.unreplied > 0)
        .filter(|(_, b)| b.service.is_some_and(|s| live_services.contains(&s)))
        .map(|(ip, b)| {
            let mut s = stale_backend(ip, b, b.unreplied);
            if let Some(k) = kube {
                s.service_name = b.service.and_then(|svc| service_of(k, &svc));
                s.backend_name = k.lookup(ip).map(|n| n.label());
            }
            s
        })
        .collect()
}

fn derive_list(set: &mut FactSet, l: &ListSummary, truncated: bool, kube: Option<&KubeSummary>) {
    let lf = &mut set.facts.nf.list;
    let tcp = l.by_proto.get("tcp");
    let udp = l.by_proto.get("udp");
    let state = |s: &str| l.tcp_states.get(s);
    let timewait = state("TIME_WAIT");
    let established = state("ESTABLISHED");
    lf.entries = Some(l.entries);
    lf.truncated = truncated;
    lf.by_proto = l.by_proto.to_counts();
    lf.by_family = l.by_family.to_counts();
    lf.tcp_states = l.tcp_states.to_counts();
    lf.tcp = Some(tcp);
    lf.udp = Some(udp);
    lf.unreplied = Some(l.unreplied);
    lf.assured = Some(l.assured);
    lf.dnat = Some(l.dnat);
    lf.timewait_share = share(timewait, tcp);
    lf.established_share = share(established, tcp);
    lf.syn_sent_share = share(state("SYN_SENT"), tcp);
    lf.unanswered_tcp_share = share(l.unanswered_tcp_pairs.total(), tcp);
    lf.udp_share = share(udp, l.entries);
    lf.dns_share_of_udp = share(l.dns_by_proto.get("udp"), udp);
    lf.unreplied_udp_share = share(l.unreplied_by_proto.get("udp"), udp);
    lf.largest_proto = lf
        .by_proto
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(k, _)| k.clone());
    let top5 =
        |t: &crate::summary::TopK<Pair>, of: u64| share(t.top(5).iter().map(|x| x.1).sum(), of);
    lf.established_top5_share = top5(&l.established_pairs, established);
    lf.timewait_top5_share = top5(&l.timewait_pairs, timewait);
    lf.top_pairs = pair_facts(l.pairs.top(TOP_N), l.entries);
    lf.top_timewait_pairs = pair_facts(l.timewait_pairs.top(TOP_N), timewait);
    lf.top_established_pairs = pair_facts(l.established_pairs.top(TOP_N), established);
    lf.top_unanswered_tcp_pairs = pair_facts(
        l.unanswered_tcp_pairs.top(TOP_N),
        l.unanswered_tcp_pairs.total(),
    );
    lf.top_udp_pairs = pair_facts(l.udp_pairs.top(TOP_N), udp);
    lf.top_services = service_facts(l.services.top(TOP_N), l.entries);
    lf.top_error_bound = [
        l.pairs.error_bound(),
        l.timewait_pairs.error_bound(),
        l.established_pairs.error_bound(),
        l.services.error_bound(),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);

    // Stale backends. With EndpointSlices: a backend that is no endpoint of any Service now
    // (every entry to it is dead weight). Without: a backend that never answered while the
    // service it belongs to has a backend that does.
    let (method, mut stale) = match kube.filter(|k| k.endpoint_slices > 0) {
        Some(k) => ("endpointslices", stale_by_slices(l, k)),
        None => ("unreplied", stale_by_replies(l, kube)),
    };
    stale.sort_by(|a, b| {
        b.entries
            .cmp(&a.entries)
            .then_with(|| b.unreplied.cmp(&a.unreplied))
            .then_with(|| a.backend.cmp(&b.backend))
    });
    lf.stale.method = Some(method.to_string());
    let stale_entries: u64 = stale.iter().map(|s| s.entries).sum();
    lf.stale.entries = Some(stale_entries);
    lf.stale.share = share(stale_entries, l.entries);
    lf.stale.backend_count = Some(stale.len() as u64);
    stale.truncate(TOP_N);
    lf.stale.backends = stale;

    // UDP entries DNAT'd to a backend that is gone: judged the same two ways, on UDP alone.
    let (method, mut udp_stale) = match kube.filter(|k| k.endpoint_slices > 0) {
        Some(k) => ("endpointslices", udp_stale_by_slices(l, k)),
        None => ("unreplied", udp_stale_by_replies(l, kube)),
    };
    udp_stale.sort_by(|a, b| {
        b.entries
            .cmp(&a.entries)
            .then_with(|| a.backend.cmp(&b.backend))
    });
    let lf = &mut set.facts.nf.list;
    lf.udp_stale.method = Some(method.to_string());
    let udp_stale_entries: u64 = udp_stale.iter().map(|s| s.entries).sum();
    lf.udp_stale.entries = Some(udp_stale_entries);
    lf.udp_stale.share = share(udp_stale_entries, udp);
    lf.udp_stale.backend_count = Some(udp_stale.len() as u64);
    udp_stale.truncate(TOP_N);
    lf.udp_stale.backends = udp_stale;

    // Idle ESTABLISHED entries: every packet resets the timer to the established timeout, so
    // timeout − timer is how long the connection has been silent.
    let timeout = set.facts.nf.timeouts.get("tcp_established").copied();
    let lf = &mut set.facts.nf.list;
    let e = timeout.unwrap_or(KERNEL_ESTABLISHED_TIMEOUT);
    lf.established_timeout = Some(e);
    if e >= 86_400 {
        let limit_minutes = (e - 86_400) / 60;
        let idle: u64 = l
            .established_timers
            .range(..=limit_minutes as u32)
            .map(|(_, n)| n)
            .sum();
        lf.established_idle_day = Some(idle);
        lf.established_idle_day_share = share(idle, established);
    } else {
        lf.established_idle_day = Some(0);
        lf.established_idle_day_share = Some(0.0);
    }
    lf.established_max_idle_seconds = l
        .established_timers
        .keys()
        .next()
        .map(|m| e.saturating_sub(u64::from(*m) * 60));
    if e == KERNEL_ESTABLISHED_TIMEOUT {
        lf.top_idle_established_pairs = pair_facts(
            l.idle_established_pairs.top(TOP_N),
            lf.established_idle_day.unwrap_or(0),
        );
    }

    // Sources of unanswered entries by distinct destinations.
    let unanswered_total: u64 = l.unanswered_sources.values().map(|s| s.entries).sum();
    let mut sources: Vec<SourceFact> = l
        .unanswered_sources
        .iter()
        .map(|(ip, sk)| SourceFact {
            src: ip.to_string(),
            src_name: kube.and_then(|k| k.lookup(ip)).map(|n| n.label()),
            entries: sk.entries,
            destinations: sk.destinations(),
            share: ratio(sk.entries, unanswered_total)
                .map(round4)
                .unwrap_or(0.0),
        })
        .collect();
    sources.sort_by(|a, b| {
        b.destinations
            .cmp(&a.destinations)
            .then_with(|| b.entries.cmp(&a.entries))
            .then_with(|| a.src.cmp(&b.src))
    });
    sources.truncate(TOP_N);
    lf.top_unanswered_sources = sources;

    let example = |k: &str| -> Vec<EvidenceLine> {
        l.examples
            .get(k)
            .map(|s| s.lines().cloned().collect())
            .unwrap_or_default()
    };
    set.quote("nf.list.udp_stale.entries", example("udp dnat"));
    set.quote(
        "nf.list.established_idle_day",
        example("tcp ESTABLISHED idle"),
    );
    set.quote("nf.list.top_unanswered_sources", example("tcp unanswered"));
    set.quote("nf.list.timewait_share", example("tcp TIME_WAIT"));
    set.quote("nf.list.established_share", example("tcp ESTABLISHED"));
    set.quote("nf.list.unanswered_tcp_share", example("tcp unanswered"));
    set.quote("nf.list.udp_share", example("udp UNREPLIED"));
    set.quote("nf.list.stale.entries", example("dnat UNREPLIED"));
    if let Some((_, line)) = &l.footer {
        set.quote("nf.list.entries", [line.clone()]);
    }
}

/// Facts serialized for rules and for `ctdiag facts`.
pub fn to_json(facts: &Facts) -> serde_json::Value {
    // Serialising plain data structs cannot fail.
    serde_json::to_value(facts).unwrap_or(serde_json::Value::Null)
}

/// Looks a dotted path up in a serialized facts tree.
pub fn lookup<'a>(tree: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.')
        .try_fold(tree, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_default_follows_ram_thresholds() {
        assert_eq!(kernel_default_max(64 << 30), 262_144);
        assert_eq!(kernel_default_max(4 << 30), 65_536);
        assert_eq!(kernel_default_max(512 << 20), 4096);
    }

    #[test]
    fn lookup_walks_dotted_paths_and_treats_null_as_absent() {
        let v = serde_json::json!({"nf": {"count": 3, "max": null}});
        assert_eq!(lookup(&v, "nf.count"), Some(&serde_json::json!(3)));
        assert_eq!(lookup(&v, "nf.max"), None);
        assert_eq!(lookup(&v, "nf.nope.deeper"), None);
    }

    #[test]
    fn rfc3339_times_become_epoch_seconds() {
        assert_eq!(epoch("1970-01-01T00:00:10Z"), Some(10.0));
        assert_eq!(epoch("1970-01-01T00:00:10.5Z"), Some(10.5));
    }
}
