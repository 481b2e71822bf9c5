//! Facts of the layers beside netfilter: Cilium's eBPF CT and NAT maps, and kube-proxy.
//!
//! With Cilium's kube-proxy replacement the connection state lives in BPF maps that `conntrack`
//! never sees, so these facts are kept apart (`cilium.*`, `kube_proxy.*`) and every one says
//! where it came from. The map limits matter most and have three possible origins — set in the
//! ConfigMap, chosen by dynamic sizing (agent log, `config -a`, status), or the documented
//! defaults — so `cilium.limits.source` names the one used.

use super::{FactSet, PairFact, pair_facts, ratio, round4};
use crate::parse::cilium_config::ConfigSummary;
use crate::parse::cilium_ct::{CtMapFamily, CtSummary};
use crate::parse::cilium_drop::{BpfMetricsSummary, CT_MAP_INSERT, NAT_NO_MAPPING};
use crate::parse::cilium_log::AgentLogSummary;
use crate::parse::cilium_monitor::MonitorSummary;
use crate::parse::cilium_status::StatusSummary;
use crate::parse::ipvs::{IpvsSummary, ProxyModeSummary};
use crate::parse::prometheus::{Component, MetricsSummary, histogram_quantile};
use crate::summary::EvidenceLine;
use serde::Serialize;
use std::collections::BTreeMap;

/// Cilium's defaults without dynamic sizing (`pkg/option/config.go`: `2<<18`, `2<<17`,
/// `(tcp+any)*2/3`).
pub const DEFAULT_TCP_MAX: u64 = 524_288;
pub const DEFAULT_ANY_MAX: u64 = 262_144;
pub const DEFAULT_NAT_MAX: u64 = 524_288;
/// How many pairs the top list holds.
const TOP_N: usize = 10;
/// `bpf-map-dynamic-size-ratio` when the configuration does not say: the agent's flag default
/// and the Helm chart's `bpf.mapDynamicSizeRatio` (`mapsize` package, `ConfigCell`).
pub const DEFAULT_DYNAMIC_RATIO: f64 = 0.0025;
/// Memory the default map sizes take (`totalMapMemoryDefault` in `getDynamicSizeCalculator`):
/// CT TCP 524288 + CT any 262144 entries of 94 bytes (IPv6 key 38 + `CtEntry` 56), NAT 524288 of
/// 94, neighbour 524288 of 24, SockRevNAT 262144 of 52 = 262144 × 570 bytes.
const DEFAULT_MAPS_BYTES: u64 = 262_144 * 570;
/// Floors and ceiling of dynamic sizing (`limitTableAutoGlobalTCPMin`, `…AnyMin`, `…NatGlobalMin`,
/// `LimitTableMax`).
const DYNAMIC_TCP_MIN: u64 = 1 << 17;
const DYNAMIC_ANY_MIN: u64 = 1 << 16;
const DYNAMIC_NAT_MIN: u64 = 1 << 17;
const LIMIT_TABLE_MAX: u64 = 1 << 24;

/// The map sizes Cilium's dynamic sizing computes for a node (`getDynamicSizeCalculator`):
/// each default scaled by `MemTotal × ratio / totalMapMemoryDefault`, floored and capped, NAT
/// capped to 2/3 of the CT maps together. `None` when the ratio turns dynamic sizing off.
/// (With `bpf-distributed-lru` each size is also rounded up to a multiple of the possible CPUs.)
pub fn dynamic_sizes(mem_total: u64, ratio: f64) -> Option<(u64, u64, u64)> {
    if !(ratio > 0.0 && ratio <= 1.0) {
        return None;
    }
    let available = (mem_total as f64 * ratio) as u128;
    let scale = |default: u64, min: u64| -> u64 {
        let e = (u128::from(default) * available / u128::from(DEFAULT_MAPS_BYTES)) as u64;
        if e < min { min } else { e.min(LIMIT_TABLE_MAX) }
    };
    let tcp = scale(DEFAULT_TCP_MAX, DYNAMIC_TCP_MIN);
    let any = scale(DEFAULT_ANY_MAX, DYNAMIC_ANY_MIN);
    let mut nat = scale(DEFAULT_NAT_MAX, DYNAMIC_NAT_MIN);
    if nat > tcp + any {
        nat = (tcp + any) * 2 / 3;
    }
    Some((tcp, any, nat))
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CiliumFacts {
    /// Whether any Cilium input was read; the Cilium rules apply only then.
    pub present: bool,
    /// Cilium replaces kube-proxy (`kube-proxy-replacement` true/strict, status `True`/`Strict`):
    /// service NAT happens in eBPF and kube-proxy's netfilter entries do not exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_proxy_replacement: Option<bool>,
    /// The map sizes the agent runs with.
    pub limits: LimitFacts,
    /// What the CT maps hold (`bpf ct list global`).
    pub ct: CtFacts,
    /// Datapath drop counters (`bpf metrics list`, else the agent's `cilium_drop_count_total`).
    pub drops: DropFacts,
    /// Drop events captured live (`cilium monitor --type drop`).
    pub monitor: MonitorFacts,
    /// `cilium_bpf_map_pressure` (an estimate taken during GC, exported only above a threshold:
    /// supporting evidence only).
    pub map_pressure: PressureFacts,
    /// The CT garbage collector.
    pub gc: GcFacts,
    /// `cilium_datapath_signals_handled_total`: the datapath asking the agent for an early GC.
    pub signals: SignalFacts,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LimitFacts {
    /// Entries each TCP CT map (IPv4, IPv6) holds at most (`bpf-ct-global-tcp-max`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_max: Option<u64>,
    /// Entries each non-TCP CT map holds at most (`bpf-ct-global-any-max`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub any_max: Option<u64>,
    /// Entries each NAT map holds at most (`bpf-nat-global-max`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat_max: Option<u64>,
    /// Where `tcp_max` came from: `configured`, `dynamic sizing`, or `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Each limit's origin with the member it was read from.
    pub sources: BTreeMap<String, String>,
    /// `bpf-map-dynamic-size-ratio` (0 or absent: off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic_size_ratio: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CtFacts {
    /// Entries listed over all four maps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    /// The listing was cut by a size cap: counts are floors.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Entries per map: `tcp_v4` (cilium_ct4_global), `tcp_v6`, `any_v4` (cilium_ct_any4_global),
    /// `any_v6`.
    pub by_map: BTreeMap<String, u64>,
    /// TCP entries of the fuller TCP map / `tcp_max`, 0..1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_utilization: Option<f64>,
    /// Non-TCP entries of the fuller non-TCP map / `any_max`, 0..1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub any_utilization: Option<f64>,
    /// The fullest map's fill level, 0..1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilization: Option<f64>,
    /// The fullest map's name, entries and limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fullest_map: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fullest_entries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fullest_max: Option<u64>,
    /// Entries per direction (`in`, `out`, `service`, `related`).
    pub by_direction: BTreeMap<String, u64>,
    pub by_proto: BTreeMap<String, u64>,
    /// Share of TCP entries one side has started closing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_closing_share: Option<f64>,
    /// The dump's clock (newest `Last*Report`, BPF-clock seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub now: Option<u64>,
    /// Entries whose `expires` is already below the dump's clock: expired, not yet collected
    /// (a floor: entries within `expiry_resolution_seconds` of now are not counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_resolution_seconds: Option<u64>,
    /// Largest client → destination pairs.
    pub top_pairs: Vec<PairFact>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DropFacts {
    /// `bpf metrics list` or `agent metrics`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Samples read.
    pub samples: u64,
    /// `CT: Map insertion failed` packets, cumulative (last sample).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ct_map_insert: Option<u64>,
    /// `No mapping for NAT masquerade` packets, cumulative (last sample).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat: Option<u64>,
    /// Every drop reason of the last sample (forwarded `Success` excluded).
    pub by_reason: BTreeMap<String, u64>,
    /// Change between the first and last samples.
    pub delta: DropDelta,
    /// Per-second rates between the first and last timed samples.
    pub rates: DropRates,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DropDelta {
    /// Samples compared (≥ 2 for any delta).
    pub samples: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ct_map_insert: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DropRates {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ct_map_insert: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MonitorFacts {
    /// Drop events captured (absent: no capture).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drops: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ct_map_insert: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat: Option<u64>,
    pub by_reason: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PressureFacts {
    /// Map name (without `cilium_`) → pressure, 0..1 (last sample).
    pub maps: BTreeMap<String, f64>,
    /// Highest pressure of a CT map.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ct: Option<f64>,
    /// Highest pressure of a NAT map.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GcFacts {
    /// Entries the last GC runs found alive (`cilium_datapath_conntrack_gc_entries{status="alive"}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alive: Option<u64>,
    /// Entries the last GC runs deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<u64>,
    /// Change of `alive` between the first and last agent metrics samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alive_delta: Option<i64>,
    /// GC runs, cumulative.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<u64>,
    /// The interval the GC chose last, seconds (log `newInterval`, else the interval gauge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<f64>,
    /// Share of entries the last run deleted (agent log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_ratio: Option<f64>,
    /// `interval recalculated` lines in the agent log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recalculations: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SignalFacts {
    /// `ct_fill_up` signals handled, cumulative.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ct_fill_up: Option<u64>,
    /// `nat_fill_up` signals handled, cumulative.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat_fill_up: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct KubeProxyFacts {
    /// Whether any kube-proxy input was read (metrics, mode, IPVS table).
    pub present: bool,
    /// `/proxyMode`: `iptables`, `ipvs` or `nftables`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Rule syncs.
    pub sync: SyncFacts,
    /// `kubeproxy_sync_proxy_rules_duration_seconds` (µs histogram before 1.14, converted).
    pub sync_duration: DurationFacts,
    /// `kubeproxy_sync_proxy_rules_iptables_restore_failures_total`, cumulative.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_failures: Option<u64>,
    /// Its change between the first and last samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_failures_delta: Option<i64>,
    /// `kubeproxy_iptables_ct_state_invalid_dropped_packets_total`, cumulative.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ct_invalid_dropped: Option<u64>,
    /// The IPVS connection table (`ipvsadm -Lcn`).
    pub ipvs: IpvsFacts,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncFacts {
    /// When the metrics were read (epoch seconds): the manifest's sample time, else the
    /// newest sample timestamp of the exposition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<f64>,
    /// `manifest` or `metrics timestamp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected_at_source: Option<String>,
    /// Last successful apply (`…_last_timestamp_seconds`, epoch seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_applied: Option<f64>,
    /// Last change queued (`…_last_queued_timestamp_seconds`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_queued: Option<f64>,
    /// A queued change has not been applied yet (queued newer than applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<bool>,
    /// How long the pending change has waited at collection, seconds (0 when none is pending).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_seconds: Option<f64>,
    /// Seconds since the last apply at collection (old is normal on a quiet node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_applied_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DurationFacts {
    /// Syncs observed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// sum / count, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_seconds: Option<f64>,
    /// 90th percentile from the buckets, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_seconds: Option<f64>,
    /// Share of syncs slower than 1 s (from the bucket at or just above 1 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub over_1s_share: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IpvsFacts {
    /// IPVS connection entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    pub by_state: BTreeMap<String, u64>,
    /// connections / nf_conntrack count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_nf_count: Option<f64>,
    /// connections / nf_conntrack_max.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_nf_max: Option<f64>,
}

/// The members this module reads, gathered by `facts::derive`.
#[derive(Default)]
pub(super) struct Inputs<'a> {
    pub ct: Option<(CtSummary, &'a str, bool)>,
    pub bpf_metrics: Vec<(Option<u32>, &'a BpfMetricsSummary, &'a str)>,
    pub monitor: Option<(MonitorSummary, Vec<&'a str>)>,
    pub metrics: Vec<(Option<u32>, &'a MetricsSummary, &'a str)>,
    pub config: ConfigSummary,
    pub config_members: Vec<&'a str>,
    pub status: StatusSummary,
    pub status_members: Vec<&'a str>,
    pub log: AgentLogSummary,
    pub log_members: Vec<&'a str>,
    pub ipvs: Option<(IpvsSummary, &'a str)>,
    pub mode: ProxyModeSummary,
    pub mode_members: Vec<&'a str>,
}

/// One timed sample of a sampled member.
struct Timed<'a, T> {
    index: u32,
    time: Option<f64>,
    value: &'a T,
    member: &'a str,
}

fn timed<'a, T>(
    items: impl Iterator<Item = (Option<u32>, &'a T, &'a str)>,
    times: &BTreeMap<String, f64>,
) -> Vec<Timed<'a, T>> {
    let mut v: Vec<Timed<'a, T>> = items
        .enumerate()
        .map(|(i, (s, value, member))| Timed {
            index: s.unwrap_or(i as u32),
            time: times.get(member).copied(),
            value,
            member,
        })
        .collect();
    v.sort_by(|a, b| (a.index, a.member).cmp(&(b.index, b.member)));
    v
}

fn sample_lines(m: &MetricsSummary, name: &str, filter: &[(&str, &str)]) -> Vec<EvidenceLine> {
    m.family(name)
        .filter(|(l, _)| crate::parse::prometheus::has_labels(l, filter))
        .map(|(_, s)| s.line.clone())
        .take(4)
        .collect()
}

fn as_count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

/// Derives `cilium.*` and `kube_proxy.*`.
pub(super) fn derive(set: &mut FactSet, inp: Inputs<'_>, times: &BTreeMap<String, f64>) {
    let agent: Vec<(Option<u32>, &MetricsSummary, &str)> = inp
        .metrics
        .iter()
        .filter(|m| m.1.component() == Component::CiliumAgent)
        .copied()
        .collect();
    let proxy: Vec<(Option<u32>, &MetricsSummary, &str)> = inp
        .metrics
        .iter()
        .filter(|m| m.1.component() == Component::KubeProxy)
        .copied()
        .collect();
    let present = inp.ct.is_some()
        || !inp.bpf_metrics.is_empty()
        || inp.monitor.is_some()
        || !agent.is_empty()
        || !inp.config_members.is_empty()
        || !inp.status_members.is_empty()
        || !inp.log_members.is_empty();
    set.facts.cilium.present = present;
    if present {
        derive_replacement(set, &inp);
        derive_limits(set, &inp);
        derive_ct(set, &inp);
        derive_drops(set, &inp, &agent, times);
        derive_monitor(set, &inp);
        derive_agent_metrics(set, &inp, &agent, times);
    }
    derive_kube_proxy(set, &inp, &proxy, times);
}

fn derive_replacement(set: &mut FactSet, inp: &Inputs<'_>) {
    let from_config = inp
        .config
        .values
        .get("kube-proxy-replacement")
        .and_then(|v| match v.value.to_ascii_lowercase().as_str() {
            "true" | "strict" => Some((true, v.line.clone())),
            "false" | "disabled" | "partial" => Some((false, v.line.clone())),
            _ => None,
        });
    let from_status = inp
        .status
        .kube_proxy_replacement
        .as_ref()
        .and_then(|(w, l)| match w.to_ascii_lowercase().as_str() {
            "true" | "strict" => Some((true, l.clone())),
            "false" | "disabled" | "partial" => Some((false, l.clone())),
            _ => None,
        });
    // The running agent's word beats the ConfigMap's.
    if let Some((on, line)) = from_status.or(from_config) {
        set.facts.cilium.kube_proxy_replacement = Some(on);
        let member = line.member.clone();
        set.quote("cilium.kube_proxy_replacement", [line]);
        set.source("cilium.kube_proxy_replacement", &member);
    }
}

fn derive_limits(set: &mut FactSet, inp: &Inputs<'_>) {
    let ratio_value = inp
        .config
        .values
        .get("bpf-map-dynamic-size-ratio")
        .and_then(|v| v.value.trim().parse::<f64>().ok())
        .or_else(|| inp.status.dynamic_sizing.as_ref().and_then(|d| d.1));
    let dynamic_on = ratio_value.is_some_and(|r| r > 0.0 && r <= 1.0)
        || inp.status.dynamic_sizing.as_ref().is_some_and(|d| d.0)
        || !inp.log.dynamic.is_empty();
    set.facts.cilium.limits.dynamic_size_ratio = ratio_value;
    // Without the agent's own word (runtime config, status, log), the sizes dynamic sizing gives
    // this node's memory; Cilium sizes with it unless the ratio is set to 0.
    let computed = set
        .facts
        .node
        .mem_total_bytes
        .and_then(|m| dynamic_sizes(m, ratio_value.unwrap_or(DEFAULT_DYNAMIC_RATIO)));
    let specs = [
        (
            "tcp_max",
            "bpf-ct-global-tcp-max",
            DEFAULT_TCP_MAX,
            computed.map(|c| c.0),
        ),
        (
            "any_max",
            "bpf-ct-global-any-max",
            DEFAULT_ANY_MAX,
            computed.map(|c| c.1),
        ),
        (
            "nat_max",
            "bpf-nat-global-max",
            DEFAULT_NAT_MAX,
            computed.map(|c| c.2),
        ),
    ];
    for (fact, key, default, computed) in specs {
        let configured = inp.config.values.get(key).filter(|v| !v.runtime);
        let runtime = inp.config.values.get(key).filter(|v| v.runtime);
        // 0 is the agent's "not set: size dynamically".
        let explicit = configured.and_then(|v| {
            Some((
                v.value.trim().parse::<u64>().ok().filter(|n| *n > 0)?,
                &v.line,
            ))
        });
        // What the agent runs with, most direct first: its runtime config, its status table, the
        // size its log says dynamic sizing chose.
        let running = runtime
            .and_then(|v| {
                Some((
                    v.value.trim().parse::<u64>().ok().filter(|n| *n > 0)?,
                    &v.line,
                ))
            })
            .or_else(|| inp.status.size_for(key))
            .or_else(|| inp.log.dynamic.get(key).map(|(v, l)| (*v, l)));
        let explicitly_off = ratio_value.is_some_and(|r| r <= 0.0);
        let (value, origin, line) = match (running, explicit) {
            (Some((v, l)), Some(_)) => (v, "configured", Some(l)),
            (Some((v, l)), None) if dynamic_on => (v, "dynamic sizing", Some(l)),
            (Some((v, l)), None) => (v, "configured", Some(l)),
            (None, Some((v, l))) => (v, "configured", Some(l)),
            (None, None) => match computed {
                Some(v) if !explicitly_off => (v, "dynamic sizing (computed)", None),
                _ => (default, "default", None),
            },
        };
        let described = match (&line, origin) {
            (Some(l), _) => format!("{origin} ({})", l.member),
            (None, "dynamic sizing (computed)") => format!(
                "dynamic sizing computed from MemTotal × {} (the agent's log line `option {key} set by dynamic sizing to …` was not collected)",
                ratio_value.unwrap_or(DEFAULT_DYNAMIC_RATIO)
            ),
            (None, _) if dynamic_on => {
                "default (dynamic sizing is on, its result was not collected and the node's memory is unknown: the real size may differ)"
                    .to_string()
            }
            (None, _) => "default (Cilium pkg/option/config.go)".to_string(),
        };
        let lim = &mut set.facts.cilium.limits;
        match fact {
            "tcp_max" => {
                lim.tcp_max = Some(value);
                lim.source = Some(origin.to_string());
            }
            "any_max" => lim.any_max = Some(value),
            _ => lim.nat_max = Some(value),
        }
        lim.sources.insert(fact.to_string(), described);
        if let Some(l) = line {
            let path = format!("cilium.limits.{fact}");
            let member = l.member.clone();
            set.quote(&path, [l.clone()]);
            set.source("cilium.limits", &member);
        }
    }
}

fn derive_ct(set: &mut FactSet, inp: &Inputs<'_>) {
    let Some((ct, member, truncated)) = &inp.ct else {
        return;
    };
    let lim = set.facts.cilium.limits.clone();
    let f = &mut set.facts.cilium.ct;
    f.entries = Some(ct.entries);
    f.truncated = *truncated;
    f.by_map = ct.by_map.clone();
    f.by_direction = ct.by_direction.clone();
    f.by_proto = ct.by_proto.clone();
    let get = |fam: CtMapFamily| ct.by_map.get(fam.key()).copied().unwrap_or(0);
    // Each family has its own map of the configured size: the fuller one decides.
    let fullest = CtMapFamily::ALL
        .iter()
        .filter_map(|fam| {
            let max = if fam.is_tcp() {
                lim.tcp_max
            } else {
                lim.any_max
            }?;
            Some((*fam, get(*fam), max, ratio(get(*fam), max)?))
        })
        .max_by(|a, b| a.3.total_cmp(&b.3).then_with(|| b.0.cmp(&a.0)));
    let util = |tcp: bool| {
        CtMapFamily::ALL
            .iter()
            .filter(|fam| fam.is_tcp() == tcp)
            .filter_map(|fam| ratio(get(*fam), if tcp { lim.tcp_max } else { lim.any_max }?))
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
            .map(round4)
    };
    f.tcp_utilization = util(true);
    f.any_utilization = util(false);
    if let Some((fam, entries, max, u)) = fullest {
        f.utilization = Some(round4(u));
        f.fullest_map = Some(fam.map_name().to_string());
        f.fullest_entries = Some(entries);
        f.fullest_max = Some(max);
    }
    let tcp = get(CtMapFamily::TcpV4) + get(CtMapFamily::TcpV6);
    f.tcp_closing_share = Some(ratio(ct.tcp_closing, tcp).map(round4).unwrap_or(0.0));
    f.now = ct.now;
    f.expired = ct.expired();
    f.expired_share = f
        .expired
        .map(|e| ratio(e, ct.entries).map(round4).unwrap_or(0.0));
    f.expiry_resolution_seconds = ct.now.map(|_| ct.expires.resolution());
    f.top_pairs = pair_facts(ct.pairs.top(TOP_N), ct.entries);
    let sample: Vec<EvidenceLine> = ct.sample.lines().cloned().collect();
    let lowest: Vec<EvidenceLine> = ct.lowest.iter().map(|l| l.1.clone()).collect();
    set.quote("cilium.ct.entries", sample);
    set.quote("cilium.ct.expired", lowest);
    set.source("cilium.ct", member);
}

/// A drop counter sample, whichever input it came from.
struct DropSample<'a> {
    time: Option<f64>,
    member: &'a str,
    by_reason: BTreeMap<String, u64>,
    lines: BTreeMap<String, Vec<EvidenceLine>>,
}

fn derive_drops(
    set: &mut FactSet,
    inp: &Inputs<'_>,
    agent: &[(Option<u32>, &MetricsSummary, &str)],
    times: &BTreeMap<String, f64>,
) {
    let from_bpf: Vec<DropSample<'_>> = timed(inp.bpf_metrics.iter().copied(), times)
        .into_iter()
        .map(|t| DropSample {
            time: t.time,
            member: t.member,
            by_reason: t
                .value
                .by_reason
                .iter()
                .map(|(k, c)| (k.clone(), c.packets))
                .collect(),
            lines: t
                .value
                .by_reason
                .iter()
                .map(|(k, c)| (k.clone(), c.lines.clone()))
                .collect(),
        })
        .collect();
    let from_agent: Vec<DropSample<'_>> = timed(agent.iter().copied(), times)
        .into_iter()
        .filter(|t| t.value.series.contains_key("cilium_drop_count_total"))
        .map(|t| {
            let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
            let mut lines: BTreeMap<String, Vec<EvidenceLine>> = BTreeMap::new();
            for (labels, s) in t.value.family("cilium_drop_count_total") {
                let reason = labels
                    .iter()
                    .find(|(k, _)| k == "reason")
                    .map(|(_, v)| crate::parse::cilium_drop::normalize(v))
                    .unwrap_or_default();
                *by_reason.entry(reason.clone()).or_insert(0) += as_count(s.value);
                lines.entry(reason).or_default().push(s.line.clone());
            }
            DropSample {
                time: t.time,
                member: t.member,
                by_reason,
                lines,
            }
        })
        .collect();
    // The datapath's own counters are the most direct; the agent exports the same numbers.
    let (samples, source) = if !from_bpf.is_empty() {
        (from_bpf, "bpf metrics list")
    } else {
        (from_agent, "agent metrics")
    };
    let Some(last) = samples.last() else {
        return;
    };
    let get = |s: &DropSample<'_>, r: &str| s.by_reason.get(r).copied().unwrap_or(0);
    let d = &mut set.facts.cilium.drops;
    d.source = Some(source.to_string());
    d.samples = samples.len() as u64;
    d.ct_map_insert = Some(get(last, CT_MAP_INSERT));
    d.nat = Some(get(last, NAT_NO_MAPPING));
    d.by_reason = last
        .by_reason
        .iter()
        .filter(|(k, v)| k.as_str() != "Success" && **v > 0)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let quote_of = |s: &DropSample<'_>, r: &str| s.lines.get(r).cloned().unwrap_or_default();
    let mut quotes = vec![
        ("cilium.drops.ct_map_insert", quote_of(last, CT_MAP_INSERT)),
        ("cilium.drops.nat", quote_of(last, NAT_NO_MAPPING)),
    ];
    if samples.len() >= 2
        && let Some(first) = samples.first()
    {
        let delta = |r: &str| get(last, r) as i64 - get(first, r) as i64;
        let d = &mut set.facts.cilium.drops;
        d.delta.samples = samples.len() as u64;
        d.delta.ct_map_insert = Some(delta(CT_MAP_INSERT));
        d.delta.nat = Some(delta(NAT_NO_MAPPING));
        if let (Some(t0), Some(t1)) = (first.time, last.time)
            && t1 > t0
        {
            let secs = t1 - t0;
            d.rates.interval_seconds = Some(round4(secs));
            d.rates.ct_map_insert = Some(round4(delta(CT_MAP_INSERT) as f64 / secs));
            d.rates.nat = Some(round4(delta(NAT_NO_MAPPING) as f64 / secs));
        }
        let both = |r: &str| {
            let mut v = quote_of(first, r);
            v.extend(quote_of(last, r));
            v
        };
        quotes.push(("cilium.drops.delta.ct_map_insert", both(CT_MAP_INSERT)));
        quotes.push(("cilium.drops.delta.nat", both(NAT_NO_MAPPING)));
    }
    for (path, lines) in quotes {
        set.quote(path, lines);
    }
    let members: Vec<String> = samples.iter().map(|s| s.member.to_string()).collect();
    for m in &members {
        set.source("cilium.drops", m);
    }
}

fn derive_monitor(set: &mut FactSet, inp: &Inputs<'_>) {
    let Some((m, members)) = &inp.monitor else {
        return;
    };
    let f = &mut set.facts.cilium.monitor;
    f.drops = Some(m.drops);
    f.ct_map_insert = Some(m.by_reason.get(CT_MAP_INSERT).copied().unwrap_or(0));
    f.nat = Some(m.by_reason.get(NAT_NO_MAPPING).copied().unwrap_or(0));
    f.by_reason = m.by_reason.clone();
    for (path, reason) in [
        ("cilium.monitor.ct_map_insert", CT_MAP_INSERT),
        ("cilium.monitor.nat", NAT_NO_MAPPING),
    ] {
        if let Some(ex) = m.examples.get(reason) {
            let lines: Vec<EvidenceLine> = ex.lines().cloned().collect();
            set.quote(path, lines);
        }
    }
    for member in members {
        set.source("cilium.monitor", member);
    }
}

fn derive_agent_metrics(
    set: &mut FactSet,
    inp: &Inputs<'_>,
    agent: &[(Option<u32>, &MetricsSummary, &str)],
    times: &BTreeMap<String, f64>,
) {
    let samples = timed(agent.iter().copied(), times);
    if let Some(last) = samples.last() {
        let m = last.value;
        // Pressure: the map label lost its `cilium_` prefix in 1.16; both spellings are one map.
        let mut maps = BTreeMap::new();
        let mut lines = Vec::new();
        for (labels, s) in m.family("cilium_bpf_map_pressure") {
            if let Some((_, name)) = labels.iter().find(|(k, _)| k == "map_name") {
                let name = name.strip_prefix("cilium_").unwrap_or(name).to_string();
                if s.value.is_finite() {
                    maps.insert(name, round4(s.value));
                    lines.push(s.line.clone());
                }
            }
        }
        let max_of = |pred: &dyn Fn(&str) -> bool| {
            maps.iter()
                .filter(|(k, _)| pred(k))
                .map(|(_, v)| *v)
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
        };
        let p = &mut set.facts.cilium.map_pressure;
        p.ct = max_of(&|k| k.starts_with("ct"));
        p.nat = max_of(&|k| k.contains("nat"));
        p.maps = maps;
        set.quote("cilium.map_pressure", lines);
        let gc = &mut set.facts.cilium.gc;
        gc.alive = m
            .sum(
                "cilium_datapath_conntrack_gc_entries",
                &[("status", "alive")],
            )
            .map(as_count);
        gc.deleted = m
            .sum(
                "cilium_datapath_conntrack_gc_entries",
                &[("status", "deleted")],
            )
            .map(as_count);
        gc.runs = m
            .sum("cilium_datapath_conntrack_gc_runs_total", &[])
            .map(as_count);
        gc.interval_seconds = m
            .family("cilium_datapath_conntrack_gc_interval_seconds")
            .map(|(_, s)| s.value)
            .find(|v| v.is_finite());
        let gc_lines = sample_lines(
            m,
            "cilium_datapath_conntrack_gc_entries",
            &[("status", "alive")],
        );
        set.quote("cilium.gc.alive", gc_lines);
        let sig = |signal: &str| {
            m.sum(
                "cilium_datapath_signals_handled_total",
                &[("signal", signal)],
            )
            .filter(|_| {
                m.family("cilium_datapath_signals_handled_total")
                    .any(|(l, _)| crate::parse::prometheus::has_labels(l, &[("signal", signal)]))
            })
            .map(as_count)
        };
        set.facts.cilium.signals.ct_fill_up = sig("ct_fill_up");
        set.facts.cilium.signals.nat_fill_up = sig("nat_fill_up");
        for s in &samples {
            set.source("cilium.map_pressure", s.member);
            set.source("cilium.gc", s.member);
            set.source("cilium.signals", s.member);
        }
    }
    if samples.len() >= 2
        && let (Some(first), Some(last)) = (samples.first(), samples.last())
    {
        let alive = |m: &MetricsSummary| {
            m.sum(
                "cilium_datapath_conntrack_gc_entries",
                &[("status", "alive")],
            )
            .map(as_count)
        };
        if let (Some(a), Some(b)) = (alive(first.value), alive(last.value)) {
            set.facts.cilium.gc.alive_delta = Some(b as i64 - a as i64);
            let mut lines = sample_lines(
                first.value,
                "cilium_datapath_conntrack_gc_entries",
                &[("status", "alive")],
            );
            lines.extend(sample_lines(
                last.value,
                "cilium_datapath_conntrack_gc_entries",
                &[("status", "alive")],
            ));
            set.quote("cilium.gc.alive_delta", lines);
        }
    }
    // The agent log: how the GC paces itself.
    if !inp.log_members.is_empty() {
        let gc = &mut set.facts.cilium.gc;
        gc.recalculations = Some(inp.log.gc_recalculated.total);
        if let Some(last) = &inp.log.last_gc {
            gc.delete_ratio = last.delete_ratio;
            if last.new_interval_seconds.is_some() {
                gc.interval_seconds = last.new_interval_seconds;
            }
            set.quote("cilium.gc.interval_seconds", [last.line.clone()]);
            set.quote("cilium.gc.delete_ratio", [last.line.clone()]);
        }
        for m in &inp.log_members {
            set.source("cilium.gc", m);
        }
    }
}

fn derive_kube_proxy(
    set: &mut FactSet,
    inp: &Inputs<'_>,
    proxy: &[(Option<u32>, &MetricsSummary, &str)],
    times: &BTreeMap<String, f64>,
) {
    let present = !proxy.is_empty() || inp.ipvs.is_some() || inp.mode.mode.is_some();
    let kp = &mut set.facts.kube_proxy;
    kp.present = present;
    if let Some((mode, line)) = &inp.mode.mode {
        kp.mode = Some(mode.clone());
        let member = line.member.clone();
        set.quote("kube_proxy.mode", [line.clone()]);
        set.source("kube_proxy.mode", &member);
    }
    if let Some((ipvs, member)) = &inp.ipvs {
        let count = set.facts.nf.count;
        let max = set.facts.nf.max;
        let f = &mut set.facts.kube_proxy.ipvs;
        f.connections = Some(ipvs.entries);
        f.by_state = ipvs.by_state.clone();
        f.ratio_to_nf_count = count.and_then(|c| ratio(ipvs.entries, c)).map(round4);
        f.ratio_to_nf_max = max.and_then(|m| ratio(ipvs.entries, m)).map(round4);
        set.source("kube_proxy.ipvs", member);
    }
    let samples = timed(proxy.iter().copied(), times);
    let Some(last) = samples.last() else {
        return;
    };
    let m = last.value;
    let gauge = |name: &str| {
        m.family(name)
            .map(|(_, s)| s.value)
            .filter(|v| v.is_finite())
            .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))))
    };
    let applied = gauge("kubeproxy_sync_proxy_rules_last_timestamp_seconds");
    let queued = gauge("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds");
    let (now, now_source) = match last.time {
        Some(t) => (Some(t), Some("manifest")),
        None => (
            m.max_timestamp_ms.map(|ms| ms as f64 / 1000.0),
            m.max_timestamp_ms.map(|_| "metrics timestamp"),
        ),
    };
    let sync = &mut set.facts.kube_proxy.sync;
    sync.collected_at = now;
    sync.collected_at_source = now_source.map(String::from);
    sync.last_applied = applied;
    sync.last_queued = queued;
    if let (Some(q), Some(a)) = (queued, applied) {
        let pending = q > a;
        sync.pending = Some(pending);
        if let Some(now) = now {
            sync.pending_seconds = Some(if pending {
                round4((now - q).max(0.0))
            } else {
                0.0
            });
        }
    }
    if let (Some(a), Some(now)) = (applied, now) {
        sync.since_applied_seconds = Some(round4((now - a).max(0.0)));
    }
    let mut sync_lines = sample_lines(m, "kubeproxy_sync_proxy_rules_last_timestamp_seconds", &[]);
    sync_lines.extend(sample_lines(
        m,
        "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
        &[],
    ));
    set.quote("kube_proxy.sync.pending_seconds", sync_lines.clone());
    set.quote("kube_proxy.sync.last_applied", sync_lines);

    // Sync durations: seconds histogram (≥ 1.14), else the µs one.
    let (base, scale) = if m
        .series
        .contains_key("kubeproxy_sync_proxy_rules_duration_seconds_bucket")
    {
        ("kubeproxy_sync_proxy_rules_duration_seconds", 1.0)
    } else {
        ("kubeproxy_sync_proxy_rules_latency_microseconds", 1e-6)
    };
    let mut buckets: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (labels, s) in m.family(&format!("{base}_bucket")) {
        if let Some((_, le)) = labels.iter().find(|(k, _)| k == "le")
            && let Ok(bound) = le.parse::<f64>()
        {
            let e = buckets.entry(le.clone()).or_insert((bound * scale, 0.0));
            e.1 += s.value;
        }
    }
    let buckets: Vec<(f64, f64)> = buckets.into_values().collect();
    let count = m.sum(&format!("{base}_count"), &[]);
    let sum = m.sum(&format!("{base}_sum"), &[]);
    let dur = &mut set.facts.kube_proxy.sync_duration;
    dur.count = count.map(as_count);
    dur.mean_seconds = match (sum, count) {
        (Some(s), Some(c)) if c > 0.0 => Some(round4(s * scale / c)),
        _ => None,
    };
    dur.p90_seconds = histogram_quantile(0.9, &buckets).map(round4);
    let total = buckets
        .iter()
        .map(|b| b.1)
        .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))));
    let at_1s = buckets
        .iter()
        .filter(|b| b.0 >= 1.0)
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|b| b.1);
    if let (Some(t), Some(c)) = (total, at_1s)
        && t > 0.0
    {
        dur.over_1s_share = Some(round4(((t - c) / t).max(0.0)));
    }
    let dur_lines = sample_lines(m, &format!("{base}_count"), &[]);
    set.quote("kube_proxy.sync_duration", dur_lines);

    let counter = |m: &MetricsSummary, n: &str| m.sum(n, &[]).map(as_count);
    let restore = "kubeproxy_sync_proxy_rules_iptables_restore_failures_total";
    set.facts.kube_proxy.restore_failures = counter(m, restore);
    set.facts.kube_proxy.ct_invalid_dropped = counter(
        m,
        "kubeproxy_iptables_ct_state_invalid_dropped_packets_total",
    );
    if samples.len() >= 2
        && let Some(first) = samples.first()
        && let (Some(a), Some(b)) = (counter(first.value, restore), counter(m, restore))
    {
        set.facts.kube_proxy.restore_failures_delta = Some(b as i64 - a as i64);
    }
    let restore_lines = sample_lines(m, restore, &[]);
    set.quote("kube_proxy.restore_failures", restore_lines);
    for s in &samples {
        set.source("kube_proxy.sync", s.member);
        set.source("kube_proxy.sync_duration", s.member);
        set.source("kube_proxy.restore_failures", s.member);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_sizing_reproduces_the_agents_logged_sizes() {
        // `Memory available for map entries (0.250% of 32831414272B): 82078535B` then
        // `option bpf-ct-global-tcp-max set by dynamic sizing to 287994` (cilium#25518).
        assert_eq!(
            dynamic_sizes(32_831_414_272, 0.0025),
            Some((287_994, 143_997, 287_994))
        );
        // A 376 GiB node: the agent logged 3546590 / 1773295.
        assert_eq!(
            dynamic_sizes(404_311_371_776, 0.0025).map(|s| (s.0, s.1)),
            Some((3_546_590, 1_773_295))
        );
        // An 8 GB node falls to the floors (cilium#17371).
        assert_eq!(
            dynamic_sizes(8_322_646_016, 0.0025),
            Some((131_072, 65_536, 131_072))
        );
    }

    #[test]
    fn a_zero_or_invalid_ratio_turns_dynamic_sizing_off() {
        assert_eq!(dynamic_sizes(32_831_414_272, 0.0), None);
        assert_eq!(dynamic_sizes(32_831_414_272, 1.5), None);
    }
}
