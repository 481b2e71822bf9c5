//! Deciding what a member is: by its path in the v1 bundle layout (docs/bundle-format.md), else
//! by its content.
//!
//! Customers rename files and paste outputs into tickets (`kern.log`, `s1`, `out.txt`), so a file
//! is never rejected for its name: without a known path, the first lines are tested against each
//! parser's own line recogniser and the kind whose lines dominate wins. Names are only a hint for
//! the one case content cannot settle — a file holding a single integer.

use crate::parse::{
    cilium_config, cilium_ct, cilium_drop, cilium_log, cilium_monitor, cilium_status,
    conntrack_list, conntrack_stats, dmesg, ipvs, kubectl, netns, node, prometheus, sysctl,
};
use serde::Serialize;

/// The small node-description inputs, parsed whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeField {
    /// `uname -a`
    Uname,
    /// `/etc/os-release`
    OsRelease,
    /// `/proc/meminfo`
    Meminfo,
    /// `nproc`: one integer.
    Cpus,
    /// `/proc/cpuinfo`
    Cpuinfo,
    /// `/proc/uptime`
    Uptime,
}

/// What a member holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MemberKind {
    Manifest,
    Node(NodeField),
    Dmesg,
    /// `sysctl -a` output.
    Sysctl,
    /// `sysctl -a` as a JSON object of key → value strings (troubleshoot.sh `system/sysctl.json`).
    SysctlJson,
    /// One `/proc/sys` value, named by its sysctl key.
    SysctlValue(String),
    /// `conntrack -L [-o extended]` or `/proc/net/nf_conntrack`.
    ConntrackList,
    /// `conntrack -S`.
    ConntrackStats,
    /// `conntrack -S` and `conntrack -L` appended to one file, each after a `*** Output of … ***`
    /// line (the EKS log collector's `networking/conntrack.txt`).
    ConntrackMixed,
    /// `/proc/net/stat/nf_conntrack`.
    ProcStatConntrack,
    /// `conntrack -C`.
    ConntrackCount,
    /// `cilium bpf ct list global`.
    CiliumCtList,
    /// `cilium bpf metrics list` (table or `-o json`).
    CiliumBpfMetrics,
    /// `cilium monitor --type drop`.
    CiliumMonitor,
    /// Prometheus text (kube-proxy, Cilium agent) or the `cilium metrics list` table.
    Metrics,
    /// `cilium config view`, the `cilium-config` ConfigMap, or `cilium-dbg config -a`.
    CiliumConfig,
    /// `cilium status --verbose`.
    CiliumStatus,
    /// cilium-agent log.
    CiliumAgentLog,
    /// `ipvsadm -Lcn`.
    IpvsConnections,
    /// kube-proxy `/proxyMode`.
    KubeProxyMode,
    /// `kubectl get pods|services|endpointslices|nodes -o json`: who an address is.
    KubeObjects,
    /// The same objects in YAML (a cilium sysdump's `k8s-*.yaml`).
    KubeObjectsYaml,
    /// `netns/namespaces.txt`: the node's network namespaces.
    NetnsList,
    /// `netns/<inode>/proc-stat.N.txt`: one pod namespace's own `/proc/net/stat/nf_conntrack`
    /// (never the host's: the kernel counts each namespace apart).
    NetnsProcStat(u64),
    /// `ip netns exec <name> conntrack -S`: a named namespace's own statistics (a sos report's
    /// per-namespace outputs: namespaces, never samples of the host).
    NetnsConntrackStats(String),
    /// The stderr capture of another member.
    Stderr,
    Unknown,
}

impl MemberKind {
    /// Short human name, as shown in reports.
    pub fn label(&self) -> String {
        match self {
            MemberKind::Manifest => "manifest".into(),
            MemberKind::Node(f) => match f {
                NodeField::Uname => "uname -a",
                NodeField::OsRelease => "os-release",
                NodeField::Meminfo => "/proc/meminfo",
                NodeField::Cpus => "nproc",
                NodeField::Cpuinfo => "/proc/cpuinfo",
                NodeField::Uptime => "/proc/uptime",
            }
            .into(),
            MemberKind::Dmesg => "dmesg".into(),
            MemberKind::Sysctl => "sysctl -a".into(),
            MemberKind::SysctlJson => "sysctl -a (JSON)".into(),
            MemberKind::SysctlValue(k) => format!("sysctl {k}"),
            MemberKind::ConntrackList => "conntrack -L".into(),
            MemberKind::ConntrackStats => "conntrack -S".into(),
            MemberKind::ConntrackMixed => "conntrack -S and -L".into(),
            MemberKind::ProcStatConntrack => "/proc/net/stat/nf_conntrack".into(),
            MemberKind::ConntrackCount => "conntrack -C".into(),
            MemberKind::CiliumCtList => "cilium bpf ct list global".into(),
            MemberKind::CiliumBpfMetrics => "cilium bpf metrics list".into(),
            MemberKind::CiliumMonitor => "cilium monitor --type drop".into(),
            MemberKind::Metrics => "metrics (Prometheus text or cilium metrics list)".into(),
            MemberKind::CiliumConfig => "cilium config".into(),
            MemberKind::CiliumStatus => "cilium status --verbose".into(),
            MemberKind::CiliumAgentLog => "cilium-agent log".into(),
            MemberKind::IpvsConnections => "ipvsadm -Lcn".into(),
            MemberKind::KubeProxyMode => "kube-proxy /proxyMode".into(),
            MemberKind::KubeObjects => "kubectl get … -o json".into(),
            MemberKind::KubeObjectsYaml => "Kubernetes objects (YAML)".into(),
            MemberKind::NetnsList => "network namespaces".into(),
            MemberKind::NetnsProcStat(inode) => {
                format!("/proc/net/stat/nf_conntrack of netns {inode}")
            }
            MemberKind::NetnsConntrackStats(name) => {
                format!("ip netns exec {name} conntrack -S")
            }
            MemberKind::Stderr => "stderr".into(),
            MemberKind::Unknown => "unrecognised".into(),
        }
    }
}

/// How a member's kind was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassifiedBy {
    Path,
    Content,
}

/// A member's kind, its sample index for sampled sources, and how it was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub kind: MemberKind,
    pub sample: Option<u32>,
    pub by: ClassifiedBy,
}

/// Classifies a member from its bundle-relative path and the first bytes of its content.
pub fn classify(path: &str, head: &[u8]) -> Classified {
    if let Some((kind, sample)) = by_path(path) {
        return Classified {
            kind,
            sample,
            by: ClassifiedBy::Path,
        };
    }
    classify_content(path, head)
}

/// Classifies by content alone (a member another tool's layout leaves to its lines).
pub fn classify_content(path: &str, head: &[u8]) -> Classified {
    Classified {
        kind: if is_sysctl_configuration(path) {
            MemberKind::Unknown
        } else {
            by_content(path, head)
        },
        sample: sample_from_name(path),
        by: ClassifiedBy::Content,
    }
}

/// `sysctl.conf` and `sysctl.d` files say what is applied at boot, in the running values'
/// own `key = value` shape: whatever archive holds them, they are never the running values.
pub fn is_sysctl_configuration(path: &str) -> bool {
    let p = format!("/{path}");
    p.ends_with("/etc/sysctl.conf")
        || ["/etc/sysctl.d/", "/lib/sysctl.d/", "/run/sysctl.d/"]
            .iter()
            .any(|d| p.contains(d))
}

/// Whether `path` is one of ctdiag's own v1 member paths (docs/bundle-format.md).
pub fn is_v1_path(path: &str) -> bool {
    !path.ends_with(".stderr.txt") && by_path(path).is_some()
}

/// The v1 layout. Paths are matched exactly; a sampled file is `<stem>.<N>.txt`.
fn by_path(path: &str) -> Option<(MemberKind, Option<u32>)> {
    if path.ends_with(".stderr.txt") {
        return Some((MemberKind::Stderr, None));
    }
    let fixed = match path {
        "manifest.json" => Some(MemberKind::Manifest),
        "node/uname.txt" => Some(MemberKind::Node(NodeField::Uname)),
        "node/os-release.txt" => Some(MemberKind::Node(NodeField::OsRelease)),
        "node/meminfo.txt" => Some(MemberKind::Node(NodeField::Meminfo)),
        "node/cpus.txt" => Some(MemberKind::Node(NodeField::Cpus)),
        "node/cpuinfo.txt" => Some(MemberKind::Node(NodeField::Cpuinfo)),
        "node/uptime.txt" => Some(MemberKind::Node(NodeField::Uptime)),
        "kernel/dmesg.txt" => Some(MemberKind::Dmesg),
        "sysctl/net.txt" => Some(MemberKind::Sysctl),
        "conntrack/list.txt" => Some(MemberKind::ConntrackList),
        "cilium/ct-list-global.txt" => Some(MemberKind::CiliumCtList),
        "cilium/monitor-drop.txt" => Some(MemberKind::CiliumMonitor),
        "cilium/config.txt" => Some(MemberKind::CiliumConfig),
        "cilium/status.txt" => Some(MemberKind::CiliumStatus),
        "cilium/agent-log.txt" => Some(MemberKind::CiliumAgentLog),
        "kube-proxy/proxy-mode.txt" => Some(MemberKind::KubeProxyMode),
        "netns/namespaces.txt" => Some(MemberKind::NetnsList),
        "ipvs/connections.txt" => Some(MemberKind::IpvsConnections),
        "cluster/pods.json"
        | "cluster/services.json"
        | "cluster/endpointslices.json"
        | "cluster/nodes.json" => Some(MemberKind::KubeObjects),
        _ => None,
    };
    if let Some(kind) = fixed {
        return Some((kind, None));
    }
    let (stem, sample) = sampled(path)?;
    let kind = match stem {
        "conntrack/stats" => MemberKind::ConntrackStats,
        "conntrack/count" => MemberKind::ConntrackCount,
        "conntrack/proc-stat" => MemberKind::ProcStatConntrack,
        "cilium/metrics" => MemberKind::CiliumBpfMetrics,
        "cilium/prometheus" | "kube-proxy/metrics" => MemberKind::Metrics,
        _ => MemberKind::NetnsProcStat(netns_of(stem)?),
    };
    Some((kind, Some(sample)))
}

/// `netns/4026532177/proc-stat` → 4026532177.
fn netns_of(stem: &str) -> Option<u64> {
    stem.strip_prefix("netns/")?
        .strip_suffix("/proc-stat")?
        .parse()
        .ok()
}

/// `conntrack/stats.3.txt` → (`conntrack/stats`, 3).
fn sampled(path: &str) -> Option<(&str, u32)> {
    let without_ext = path.strip_suffix(".txt")?;
    let (stem, n) = without_ext.rsplit_once('.')?;
    Some((stem, n.parse().ok()?))
}

/// A trailing number in a loose file's name (`stats-2.txt`, `s1`) orders samples taken by hand.
fn sample_from_name(path: &str) -> Option<u32> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.split('.').next().unwrap_or(name);
    let digits: String = stem
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().ok()
}

/// How many leading lines are looked at to decide.
const SNIFF_LINES: usize = 200;

fn by_content(path: &str, head: &[u8]) -> MemberKind {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let lines: Vec<&[u8]> = crate::parse::lines(head, 1)
        .map(|(_, l)| l)
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .take(SNIFF_LINES)
        .collect();
    let Some(first) = lines.first() else {
        return MemberKind::Unknown;
    };
    let trimmed = first.trim_ascii_start();
    if trimmed.starts_with(b"{") && contains(head, b"\"members\"") {
        return MemberKind::Manifest;
    }
    if kubectl::looks_like(head) {
        return MemberKind::KubeObjects;
    }
    if trimmed.starts_with(b"[")
        && contains(head, b"\"description\"")
        && contains(head, b"\"reason\"")
    {
        return MemberKind::CiliumBpfMetrics;
    }
    if lines.iter().all(|l| netns::looks_like(l)) {
        return MemberKind::NetnsList;
    }
    if conntrack_stats::is_proc_stat_header(first) {
        return MemberKind::ProcStatConntrack;
    }
    if lines.len() == 1 && ipvs::is_proxy_mode(first) {
        return MemberKind::KubeProxyMode;
    }
    if lines.len() == 1
        && let Some(kind) = single_value(&name, path, trimmed)
    {
        return kind;
    }
    // Shapes that a few lines prove whatever surrounds them: a status names its sections, a
    // monitor capture its drop events (agent log lines interleave), a config listing its keys.
    if lines.iter().any(|l| cilium_status::is_status_line(l))
        && lines
            .iter()
            .filter(|l| cilium_status::is_status_line(l))
            .count()
            >= 2
    {
        return MemberKind::CiliumStatus;
    }
    let count = |f: fn(&[u8]) -> bool| lines.iter().filter(|l| f(l)).count();
    if count(cilium_monitor::looks_like) * 5 >= lines.len() {
        return MemberKind::CiliumMonitor;
    }
    if count(cilium_config::names_a_setting) >= 1
        && count(cilium_config::looks_like) * 10 >= lines.len() * 8
    {
        return MemberKind::CiliumConfig;
    }
    if node::is_meminfo(&lines) {
        return MemberKind::Node(NodeField::Meminfo);
    }
    if node::is_cpuinfo(&lines) {
        return MemberKind::Node(NodeField::Cpuinfo);
    }
    if node::is_os_release(&lines) {
        return MemberKind::Node(NodeField::OsRelease);
    }
    if lines.len() == 1 && node::is_uname(first) {
        return MemberKind::Node(NodeField::Uname);
    }
    if lines.len() == 1 && node::is_uptime(first) {
        return MemberKind::Node(NodeField::Uptime);
    }
    // Multi-line text: the recogniser that claims most lines wins, if it claims enough of them;
    // on a tie the more specific shape (listed later) wins.
    let share =
        |f: fn(&[u8]) -> bool| lines.iter().filter(|l| f(l)).count() as f64 / lines.len() as f64;
    let candidates = [
        (MemberKind::Dmesg, share(dmesg::looks_like), 0.3),
        (MemberKind::Sysctl, share(sysctl::looks_like), 0.5),
        (
            MemberKind::ConntrackStats,
            share(conntrack_stats::looks_like),
            0.5,
        ),
        (
            MemberKind::ConntrackList,
            share(conntrack_list::looks_like),
            0.5,
        ),
        (MemberKind::CiliumCtList, share(cilium_ct::looks_like), 0.5),
        (
            MemberKind::CiliumBpfMetrics,
            share(cilium_drop::looks_like),
            0.5,
        ),
        (MemberKind::Metrics, share(prometheus::looks_like), 0.5),
        (
            MemberKind::CiliumAgentLog,
            share(cilium_log::looks_like),
            0.5,
        ),
        (MemberKind::IpvsConnections, share(ipvs::looks_like), 0.5),
    ];
    let best = candidates
        .into_iter()
        .filter(|(_, s, min)| s >= min)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((kind, _, _)) = best {
        return kind;
    }
    // A kernel log excerpt without timestamps still names conntrack.
    if lines.iter().any(|l| dmesg::mentions_conntrack(l)) {
        return MemberKind::Dmesg;
    }
    MemberKind::Unknown
}

/// A file holding one value: its path or name says what it is; a bare integer without a hint is
/// a pasted `conntrack -C` only when it is not one file among others in a folder.
fn single_value(name: &str, path: &str, line: &[u8]) -> Option<MemberKind> {
    let text = std::str::from_utf8(line).ok()?.trim();
    if let Some(key) = proc_sys_key(path) {
        return Some(MemberKind::SysctlValue(key));
    }
    let numeric = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !numeric {
        return None;
    }
    if name.contains("cpu") || name.contains("nproc") {
        return Some(MemberKind::Node(NodeField::Cpus));
    }
    if name.contains("bucket") || name.contains("hashsize") {
        return Some(MemberKind::SysctlValue(
            "net.netfilter.nf_conntrack_buckets".into(),
        ));
    }
    if name.contains("max") {
        return Some(MemberKind::SysctlValue(
            "net.netfilter.nf_conntrack_max".into(),
        ));
    }
    // Archives carry many one-integer files (`/sys` copies, `/proc` values, exit codes): only a
    // name that says so makes one a count. A lone file handed over on its own is the pasted
    // `conntrack -C` it most often is.
    let says_count = name.contains("count") || name.contains("conntrack_-c") || name == "c";
    (says_count || !path.contains('/')).then_some(MemberKind::ConntrackCount)
}

/// `…/proc/sys/net/netfilter/nf_conntrack_max` or a bare `nf_conntrack_max` file → its sysctl key.
fn proc_sys_key(path: &str) -> Option<String> {
    if let Some(i) = path.find("proc/sys/") {
        return Some(path[i + "proc/sys/".len()..].replace('/', "."));
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.strip_suffix(".txt").unwrap_or(name);
    if let Some(rest) = stem.strip_prefix("net.") {
        return Some(format!("net.{rest}"));
    }
    match stem {
        "nf_conntrack_max" | "nf_conntrack_count" | "nf_conntrack_buckets" => {
            Some(format!("net.netfilter.{stem}"))
        }
        _ => None,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(path: &str, content: &str) -> MemberKind {
        classify(path, content.as_bytes()).kind
    }

    #[test]
    fn v1_paths_are_trusted_with_their_sample_index() {
        let c = classify("conntrack/stats.1.txt", b"");
        assert_eq!(c.kind, MemberKind::ConntrackStats);
        assert_eq!(c.sample, Some(1));
        assert_eq!(c.by, ClassifiedBy::Path);
        assert_eq!(kind("conntrack/list.txt", ""), MemberKind::ConntrackList);
        assert_eq!(kind("conntrack/stats.0.stderr.txt", ""), MemberKind::Stderr);
    }

    #[test]
    fn a_pod_namespace_statistics_member_is_never_the_hosts() {
        let c = classify(
            "netns/4026532177/proc-stat.1.txt",
            b"entries found
",
        );
        assert_eq!(c.kind, MemberKind::NetnsProcStat(4026532177));
        assert_eq!(c.sample, Some(1));
        assert_eq!(kind("netns/namespaces.txt", ""), MemberKind::NetnsList);
        assert_eq!(
            kind(
                "lsns.txt",
                "inode=4026531840 host=1 pid=1 comm=systemd pod_uid=- cgroup=/init.scope\ninode=4026532177 host=0 pid=4200 comm=pause pod_uid=- cgroup=-\n"
            ),
            MemberKind::NetnsList
        );
        assert_eq!(
            kind("netns/x/proc-stat.0.txt", "cpu=0 drop=1\n"),
            MemberKind::ConntrackStats
        );
    }

    #[test]
    fn sysctl_configuration_files_are_never_running_values() {
        let conf = "net.netfilter.nf_conntrack_max = 9999999\nnet.core.somaxconn = 4096\n";
        for path in [
            "etc/sysctl.d/99-kubernetes.conf",
            "host/etc/sysctl.conf",
            "usr/lib/sysctl.d/50-default.conf",
            "run/sysctl.d/k8s.conf",
        ] {
            assert_eq!(kind(path, conf), MemberKind::Unknown, "{path}");
        }
        assert_eq!(kind("sysctl-a.txt", conf), MemberKind::Sysctl);
    }

    #[test]
    fn oddly_named_files_are_recognised_by_content() {
        assert_eq!(
            kind(
                "kern.log",
                "Feb 23 16:44:36 jobs kernel: [38775494.393661] nf_conntrack: table full, dropping packet\n"
            ),
            MemberKind::Dmesg
        );
        assert_eq!(
            kind(
                "s1",
                "cpu=0   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=46 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n"
            ),
            MemberKind::ConntrackStats
        );
        assert_eq!(
            kind(
                "out.txt",
                "tcp      6 119 TIME_WAIT src=10.200.0.1 dst=10.200.0.2 sport=38424 dport=8080 src=10.200.0.2 dst=10.200.0.1 sport=8080 dport=38424 [ASSURED] mark=0 use=1\n"
            ),
            MemberKind::ConntrackList
        );
        assert_eq!(
            kind(
                "a",
                "net.netfilter.nf_conntrack_max = 262144\nnet.netfilter.nf_conntrack_count = 12\n"
            ),
            MemberKind::Sysctl
        );
        assert_eq!(
            kind(
                "x",
                "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n"
            ),
            MemberKind::ProcStatConntrack
        );
        assert_eq!(
            kind(
                "MemInfo",
                "MemTotal:       32831414 kB\nMemFree:         1234 kB\n"
            ),
            MemberKind::Node(NodeField::Meminfo)
        );
    }

    #[test]
    fn cilium_and_kube_proxy_outputs_are_recognised_by_content() {
        assert_eq!(
            kind(
                "paste1",
                "TCP OUT 172.19.0.2:57716 -> 10.244.1.1:8080 expires=319511 Packets=0 Bytes=0 RxFlagsSeen=0x1b LastRxReport=319501 TxFlagsSeen=0x1b LastTxReport=319501 Flags=0x0093 [ RxClosing TxClosing SeenNonSyn DSRInternal ] RevNAT=0 SourceSecurityID=9 BackendID=360309599644942336 NatPort=30587 \n\n"
            ),
            MemberKind::CiliumCtList
        );
        assert_eq!(
            kind(
                "drops",
                "REASON                       DIRECTION   PACKETS   BYTES\nNot a local target address   Ingress     169955    12580214\n"
            ),
            MemberKind::CiliumBpfMetrics
        );
        assert_eq!(
            kind(
                "drops.json",
                "[{\"reason\":155,\"description\":\"CT: Map insertion failed\",\"values\":{\"egress\":{\"packets\":1,\"bytes\":70}}}]\n"
            ),
            MemberKind::CiliumBpfMetrics
        );
        assert_eq!(
            kind(
                "mon",
                "Listening for events on 2 CPUs with 64x4096 of shared memory\nPress Ctrl-C to quit\nlevel=info msg=\"Initializing dissection cache...\" subsys=monitor\nxx drop (Policy denied (L3)) flow 0xdd1bea99 to endpoint 0, identity 5->7479: 10.2.1.205:38631 -> 10.2.2.169:53 udp\n"
            ),
            MemberKind::CiliumMonitor
        );
        assert_eq!(
            kind(
                "m.txt",
                "# HELP kubeproxy_sync_proxy_rules_last_timestamp_seconds [ALPHA] The last time proxy rules were successfully synced\n# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge\nkubeproxy_sync_proxy_rules_last_timestamp_seconds 1.7641e+09\n"
            ),
            MemberKind::Metrics
        );
        assert_eq!(
            kind(
                "agent-metrics",
                "Metric                                              Labels                                                Value\ncilium_drop_count_total                             direction=\"EGRESS\" reason=\"Invalid destination mac\"   26.000000\ncilium_endpoint_count                                                                                     2.000000\n"
            ),
            MemberKind::Metrics
        );
        assert_eq!(
            kind(
                "cfg",
                "agent-not-ready-taint-key                         node.cilium.io/agent-not-ready\nbpf-map-dynamic-size-ratio                        0.0025\nkube-proxy-replacement                            true\n"
            ),
            MemberKind::CiliumConfig
        );
        assert_eq!(
            kind(
                "cfg-a",
                "#### Read-only configurations ####\nCTMapEntriesGlobalAny             : 277079\nCTMapEntriesGlobalTCP             : 554159\n"
            ),
            MemberKind::CiliumConfig
        );
        assert_eq!(
            kind(
                "st",
                "KubeProxyReplacement:    Strict   [eth0 192.168.49.2 (Direct Routing)]\nBPF Maps:   dynamic sizing: on (ratio: 0.002500)\n  Name                          Size\n  TCP connection tracking       294951\n"
            ),
            MemberKind::CiliumStatus
        );
        assert_eq!(
            kind(
                "agent.log",
                "level=info msg=\"Memory available for map entries (0.003% of 32831414272B): 82078535B\" subsys=config\nlevel=info msg=\"option bpf-ct-global-tcp-max set by dynamic sizing to 287994\" subsys=config\n"
            ),
            MemberKind::CiliumAgentLog
        );
        assert_eq!(
            kind(
                "lvs",
                "IPVS connection entries\npro expire state       source             virtual            destination\nTCP 00:01  C0A8C86D    192.168.0.109:36519 192.168.0.120:8080 192.168.200.108:23536\n"
            ),
            MemberKind::IpvsConnections
        );
        assert_eq!(kind("mode", "ipvs"), MemberKind::KubeProxyMode);
        let c = classify("cilium/prometheus.1.txt", b"");
        assert_eq!((c.kind, c.sample), (MemberKind::Metrics, Some(1)));
        let c = classify("cilium/metrics.0.txt", b"");
        assert_eq!((c.kind, c.sample), (MemberKind::CiliumBpfMetrics, Some(0)));
    }

    #[test]
    fn a_single_integer_is_named_by_its_file() {
        assert_eq!(kind("count", "132\n"), MemberKind::ConntrackCount);
        assert_eq!(kind("nproc.txt", "8\n"), MemberKind::Node(NodeField::Cpus));
        assert_eq!(
            kind("proc/sys/net/netfilter/nf_conntrack_max", "262144\n"),
            MemberKind::SysctlValue("net.netfilter.nf_conntrack_max".into())
        );
        assert_eq!(
            kind("conntrack_max.txt", "65536\n"),
            MemberKind::SysctlValue("net.netfilter.nf_conntrack_max".into())
        );
    }

    #[test]
    fn loose_samples_are_ordered_by_the_number_in_their_name() {
        assert_eq!(classify("s2", b"cpu=0 drop=1\n").sample, Some(2));
        assert_eq!(classify("stats-10.txt", b"cpu=0 drop=1\n").sample, Some(10));
        assert_eq!(classify("stats.txt", b"cpu=0 drop=1\n").sample, None);
    }

    #[test]
    fn unrecognised_text_is_unknown() {
        assert_eq!(kind("notes.txt", "hello\nworld\n"), MemberKind::Unknown);
        assert_eq!(kind("empty", ""), MemberKind::Unknown);
    }
}
