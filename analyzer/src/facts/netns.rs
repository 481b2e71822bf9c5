//! `nf.netns`: the pod network namespaces, each with its own conntrack count and counters.
//!
//! The kernel keeps `nf_conntrack_count` and the statistics per network namespace and compares
//! each namespace's own count with the global `nf_conntrack_max` (`__nf_conntrack_alloc`,
//! net/netfilter/nf_conntrack_core.c); 6.x logs a full non-initial namespace as `table full in
//! netns <inode>`. So a pod can be full while the host's table (`nf.count`, `nf.stats`) is clean,
//! and its numbers must never be added to the host's. This module joins the collector's listing
//! (`netns/namespaces.txt`), each namespace's own `/proc/net/stat/nf_conntrack` samples
//! (`netns/<inode>/proc-stat.N.txt`), the kernel log's per-namespace line counts
//! (`nf.dmesg.table_full_by_netns`) and the cluster's pods (by UID) into one list.

use super::{FactSet, diff, ratio, round4};
use crate::ingest::BundleData;
use crate::parse::MemberSummary;
use crate::parse::conntrack_stats::StatsSummary;
use crate::parse::kubectl::KubeSummary;
use crate::parse::netns::NetnsSummary;
use crate::summary::{EvidenceLine, Merge};
use serde::Serialize;
use std::collections::BTreeMap;

/// At most this many namespaces are listed in `nf.netns.namespaces`.
const MAX_LISTED: usize = 20;

/// The node's network namespaces other than its own.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NetnsFacts {
    /// The node's own namespace (`host=1` in `netns/namespaces.txt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_inode: Option<u64>,
    /// Namespaces the collector listed, the host's included (absent: no listing in the bundle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listed: Option<u64>,
    /// Pod namespaces (never the host's), fullest first: by `count` descending, then inode. At
    /// most 20; when there are more, those with a loss signal (kernel `table full` lines, drops)
    /// are kept first. Namespaces only the kernel log names have just `inode` and
    /// `table_full_lines`. Absent when the bundle has neither a listing nor a kernel log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<NamespaceFact>>,
}

/// One pod network namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NamespaceFact {
    /// The namespace's inode, as `table full in netns N` and `readlink /proc/<pid>/ns/net` name it.
    pub inode: u64,
    /// The lowest pid in it (absent: held only by a bind mount, or known only from the log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u64>,
    /// That process's command name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// The Kubernetes pod UID, from the process's cgroup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The pod (`namespace/name`) with that UID, where cluster files (`cluster/pods.json`) say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// A bind mount of the namespace (`/run/netns/cni-…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Its own entry count at the last sample (the `entries` column of its
    /// `/proc/net/stat/nf_conntrack`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// count / `nf.max` (the global limit each namespace is held to), 4 decimals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilization: Option<f64>,
    /// New connections it refused, summed over CPUs, last sample (cumulative since the namespace
    /// was created).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop: Option<u64>,
    /// Unassured entries it evicted to make room, last sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_drop: Option<u64>,
    /// Failed inserts (clashes), last sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insert_failed: Option<u64>,
    /// `drop` of the last sample minus the first (two samples or more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_drop: Option<i64>,
    /// `early_drop` of the last sample minus the first (two samples or more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_early_drop: Option<i64>,
    /// Kernel-log `table full in netns <inode>` lines naming it (a floor: rate limited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_full_lines: Option<u64>,
}

impl NamespaceFact {
    /// Whether anything says it lost connections: kept first when the list is cut.
    fn shows_loss(&self) -> bool {
        let pos = |v: Option<u64>| v.is_some_and(|v| v > 0);
        pos(self.table_full_lines)
            || pos(self.drop)
            || pos(self.early_drop)
            || self.delta_drop.is_some_and(|d| d > 0)
    }
}

/// One namespace's statistics sample.
struct Sample<'a> {
    index: u32,
    stats: &'a StatsSummary,
    member: &'a str,
}

/// Fills `nf.netns` (after `nf.max` and `nf.dmesg`, before names are applied).
pub(super) fn derive(set: &mut FactSet, data: &BundleData, kube: Option<&KubeSummary>) {
    let mut listing: Option<NetnsSummary> = None;
    let mut samples: BTreeMap<u64, Vec<Sample<'_>>> = BTreeMap::new();
    let mut named: BTreeMap<&str, Vec<Sample<'_>>> = BTreeMap::new();
    for m in &data.members {
        match &m.summary {
            MemberSummary::NetnsList(s) => {
                listing.combine(Some(s.clone()));
                set.source("nf.netns", &m.path);
            }
            MemberSummary::NetnsNamedStats(name, s) => {
                named.entry(name.as_str()).or_default().push(Sample {
                    index: m.sample.unwrap_or(0),
                    stats: s,
                    member: &m.path,
                });
                set.source("nf.netns", &m.path);
            }
            MemberSummary::NetnsStats(inode, s) => {
                samples.entry(*inode).or_default().push(Sample {
                    index: m.sample.unwrap_or(0),
                    stats: s,
                    member: &m.path,
                });
                set.source("nf.netns", &m.path);
            }
            _ => {}
        }
    }
    let log_lines = &set.facts.nf.dmesg.table_full_by_netns;
    let have_log = set.facts.nf.dmesg.lines.is_some();
    if listing.is_none() && samples.is_empty() && named.is_empty() && !have_log {
        return;
    }
    let max = set.facts.nf.max;
    let host = listing.as_ref().and_then(|l| l.host);
    let lines_of = |inode: u64| log_lines.get(&inode.to_string()).copied();

    let mut quotes: Vec<EvidenceLine> = Vec::new();
    let mut all: BTreeMap<u64, NamespaceFact> = BTreeMap::new();
    if let Some(l) = &listing {
        for (inode, ns) in l.namespaces.iter().filter(|(_, ns)| !ns.host) {
            let fact = NamespaceFact {
                inode: *inode,
                pid: (ns.pid > 0).then_some(ns.pid),
                comm: ns.comm.clone(),
                pod_uid: ns.pod_uid.clone(),
                pod: ns
                    .pod_uid
                    .as_deref()
                    .and_then(|uid| kube?.pod_by_uid(uid))
                    .map(str::to_string),
                path: ns.path.clone(),
                table_full_lines: lines_of(*inode),
                ..NamespaceFact::default()
            };
            all.insert(*inode, fact);
        }
    }
    for (inode, list) in &mut samples {
        if Some(*inode) == host {
            continue;
        }
        list.sort_by_key(|s| (s.index, s.member));
        let fact = all.entry(*inode).or_insert_with(|| NamespaceFact {
            inode: *inode,
            table_full_lines: lines_of(*inode),
            ..NamespaceFact::default()
        });
        apply_samples(fact, list, max, &mut quotes);
    }
    // Namespaces known by name only (`ip netns exec <name> conntrack -S`): `ip netns` keeps
    // them bound at /run/netns/<name>; their inode is not in the archive.
    let mut by_name: Vec<NamespaceFact> = Vec::new();
    for (name, list) in &mut named {
        list.sort_by_key(|s| (s.index, s.member));
        let mut fact = NamespaceFact {
            path: Some(format!("/run/netns/{name}")),
            ..NamespaceFact::default()
        };
        apply_samples(&mut fact, list, max, &mut quotes);
        by_name.push(fact);
    }
    // Namespaces only the kernel log names: gone since, or never listed.
    for (inode, n) in log_lines {
        let Ok(inode) = inode.parse::<u64>() else {
            continue;
        };
        if Some(inode) != host {
            all.entry(inode).or_insert_with(|| NamespaceFact {
                inode,
                table_full_lines: Some(*n),
                ..NamespaceFact::default()
            });
        }
    }

    let by_count = |a: &NamespaceFact, b: &NamespaceFact| {
        b.count
            .unwrap_or(0)
            .cmp(&a.count.unwrap_or(0))
            .then(a.inode.cmp(&b.inode))
    };
    let mut list: Vec<NamespaceFact> = all.into_values().chain(by_name).collect();
    list.sort_by(|a, b| b.shows_loss().cmp(&a.shows_loss()).then(by_count(a, b)));
    list.truncate(MAX_LISTED);
    list.sort_by(by_count);
    if let Some(l) = &listing {
        quotes.extend(
            list.iter()
                .filter(|n| n.shows_loss())
                .filter_map(|n| l.namespaces.get(&n.inode).map(|ns| ns.line.clone())),
        );
    }
    quotes.sort();
    quotes.dedup();

    let nf = &mut set.facts.nf.netns;
    nf.host_inode = host;
    nf.listed = listing.as_ref().map(|l| l.lines);
    nf.namespaces = Some(list);
    set.quote("nf.netns.namespaces", quotes);
}

/// Fills a namespace's count and counters from its statistics samples (sorted, oldest first).
fn apply_samples(
    fact: &mut NamespaceFact,
    list: &[Sample<'_>],
    max: Option<u64>,
    quotes: &mut Vec<EvidenceLine>,
) {
    let (Some(first), Some(last)) = (list.first(), list.last()) else {
        return;
    };
    let get = |s: &StatsSummary, k: &str| s.totals.get(k).copied();
    fact.count = last.stats.entries;
    fact.utilization = fact
        .count
        .zip(max)
        .and_then(|(c, m)| ratio(c, m))
        .map(round4);
    fact.drop = get(last.stats, "drop");
    fact.early_drop = get(last.stats, "early_drop");
    fact.insert_failed = get(last.stats, "insert_failed");
    if list.len() >= 2 {
        let d = |k: &str| Some(diff(get(last.stats, k)?, get(first.stats, k)?));
        fact.delta_drop = d("drop");
        fact.delta_early_drop = d("early_drop");
    }
    if fact.shows_loss() {
        for s in [first, last] {
            if let Some(row) = s.stats.loss_rows.get("drop").and_then(|r| r.lines().next()) {
                quotes.push(row.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ingest::{BufferPool, IngestOptions, ingest};
    use crate::source::Bundle;

    fn data_of(files: &[(&str, &str)]) -> crate::ingest::BundleData {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        ingest(
            &Bundle::open(dir.path()).expect("open"),
            &IngestOptions::default(),
            &BufferPool::new(4),
        )
        .expect("ingest")
    }

    fn facts_of(files: &[(&str, &str)]) -> super::super::FactSet {
        super::super::derive(&data_of(files))
    }

    const HEADER: &str = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n";

    fn proc_stat(entries: u32, drop: u32) -> String {
        let row = |d: u32| {
            format!(
                "{entries:08x}  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 {d:08x} 00000000 00000000  00000000 00000000 00000000 00000000\n"
            )
        };
        format!("{HEADER}{}{}", row(drop), row(0))
    }

    fn full_pod_bundle() -> Vec<(&'static str, String)> {
        [
            (
                "netns/namespaces.txt",
                "inode=4026531840 host=1 pid=1 comm=systemd pod_uid=- cgroup=/init.scope\n\
                 inode=4026532177 host=0 pid=4200 comm=pause pod_uid=8d3f1e2a-4b6c-4d1e-9f00-0123456789ab cgroup=/kubepods.slice/x path=/run/netns/cni-1b2c\n\
                 inode=4026532300 host=0 pid=5000 comm=app pod_uid=- cgroup=-\n",
            ),
            ("netns/4026532177/proc-stat.0.txt", &proc_stat(20, 10)),
            ("netns/4026532177/proc-stat.1.txt", &proc_stat(20, 31)),
            ("netns/4026532300/proc-stat.0.txt", &proc_stat(3, 0)),
            ("netns/4026532300/proc-stat.1.txt", &proc_stat(4, 0)),
            ("conntrack/proc-stat.0.txt", &proc_stat(7, 0)),
            ("sysctl/net.txt", "net.netfilter.nf_conntrack_max = 20\n"),
            (
                "kernel/dmesg.txt",
                "[ 10.0] nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet\n\
                 [ 11.0] nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet\n\
                 [ 12.0] nf_conntrack: nf_conntrack: table full in netns 4026599999, dropping packet\n",
            ),
            (
                "cluster/pods.json",
                r#"{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "checkout-1", "namespace": "shop", "uid": "8d3f1e2a-4b6c-4d1e-9f00-0123456789ab"}, "spec": {}, "status": {"phase": "Running"}}]}"#,
            ),
        ]
        .into_iter()
        .map(|(p, t)| (p, t.to_string()))
        .collect()
    }

    fn refs<'a>(files: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        files.iter().map(|(p, t)| (*p, t.as_str())).collect()
    }

    #[test]
    fn a_full_pod_namespace_is_its_own_and_the_host_stays_clean() {
        let set = facts_of(&refs(&full_pod_bundle()));
        let nf = &set.facts.nf;
        // The host's numbers are the host's alone.
        assert_eq!(nf.count, Some(7));
        assert_eq!(nf.stats.drop, Some(0));
        assert_eq!(nf.dmesg.host_table_full, Some(0));
        assert_eq!(
            nf.dmesg.table_full_by_netns,
            [("4026532177".to_string(), 2), ("4026599999".to_string(), 1)].into()
        );
        let n = &nf.netns;
        assert_eq!((n.host_inode, n.listed), (Some(4026531840), Some(3)));
        let list = n.namespaces.as_ref().expect("namespaces");
        assert_eq!(
            list[0],
            super::NamespaceFact {
                inode: 4026532177,
                pid: Some(4200),
                comm: Some("pause".into()),
                pod_uid: Some("8d3f1e2a-4b6c-4d1e-9f00-0123456789ab".into()),
                pod: Some("shop/checkout-1".into()),
                path: Some("/run/netns/cni-1b2c".into()),
                count: Some(20),
                utilization: Some(1.0),
                drop: Some(31),
                early_drop: Some(0),
                insert_failed: Some(0),
                delta_drop: Some(21),
                delta_early_drop: Some(0),
                table_full_lines: Some(2),
            }
        );
        assert_eq!((list[1].inode, list[1].count), (4026532300, Some(4)));
        assert_eq!(
            list[2],
            super::NamespaceFact {
                inode: 4026599999,
                table_full_lines: Some(1),
                ..Default::default()
            }
        );
        let quoted: Vec<&str> = set.evidence["nf.netns.namespaces"]
            .iter()
            .map(|l| l.member.as_str())
            .collect();
        assert!(quoted.contains(&"netns/namespaces.txt"), "{quoted:?}");
        assert!(
            quoted.contains(&"netns/4026532177/proc-stat.1.txt"),
            "{quoted:?}"
        );
    }

    #[test]
    fn the_rule_names_the_pod_and_the_host_rule_does_not_fire_on_its_lines() {
        let rules = crate::rules::RuleSet::load(None).expect("rules load");
        let report = crate::node_report(&rules, data_of(&refs(&full_pod_bundle())));
        let ids: Vec<&str> = report.findings.iter().map(|f| f.id.as_str()).collect();
        assert!(!ids.contains(&"nf.table_exhausted"), "{ids:?}");
        let finding = report
            .findings
            .iter()
            .find(|f| f.id == "nf.pod_netns_full")
            .expect("the pod's full table is found");
        assert_eq!(
            finding.summary,
            "Pod shop/checkout-1 has its own conntrack table full (netns 4026532177): it holds 20 of 20 entries (100%), its own count against the global limit. The kernel logged 2 \"table full in netns 4026532177\" lines. It dropped 21 new connections between samples: it is dropping now. 1 other pod namespace is full too. The host's own table is 35% full (7 of 20), with no \"table full\" line of its own: raising the global nf_conntrack_max is not the fix."
        );
        assert_eq!(
            report.likely_cause.as_ref().map(|c| c.id.as_str()),
            Some("nf.pod_netns_full")
        );
        let commands: Vec<&str> = finding
            .mitigations
            .iter()
            .filter_map(|m| m.command.as_deref())
            .collect();
        assert!(
            commands
                .iter()
                .any(|c| c.contains("nsenter -t 4200 -n conntrack -S")),
            "{commands:?}"
        );
        assert!(
            commands
                .iter()
                .any(|c| c.contains("kubectl -n shop delete pod checkout-1")),
            "{commands:?}"
        );
        assert!(
            commands.iter().all(|c| !c.contains("sysctl -w")),
            "{commands:?}"
        );
        let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn without_listing_or_kernel_log_the_group_is_empty() {
        let set = facts_of(&[("sysctl/net.txt", "net.netfilter.nf_conntrack_max = 20\n")]);
        assert!(set.facts.nf.netns.namespaces.is_none());
        assert!(set.facts.nf.netns.listed.is_none());
    }
}
