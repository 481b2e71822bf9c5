//! Findings: every rule applied to one node's facts, ranked, with the evidence that backs each,
//! what was ruled out, and what could not be evaluated and how to get it.
//!
//! The likely cause is a live cause before any that is not (dropping now outranks an episode an
//! hour or a boot ago, whatever their severities), then the most severe, then the highest-scoring
//! (a critical exhaustion outranks a warning-level pressure whatever their scores), with the
//! highest-scoring contributor of its layer beside it (of any layer when its own has none).
//! A finding's confidence drops when a member it relies on was truncated, when a fact it could
//! have used is missing, or when the bundle failed an integrity check: a postmortem must be able
//! to tell a proof from a hint.

use crate::facts::{self, FactSet};
use crate::problem::Problem;
use crate::rules::{self, Rule, RuleKind, RuleSet, Severity, Step, StepKind};
use crate::summary::EvidenceLine;
use serde::Serialize;

/// The report of one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub bundle: BundleInfo,
    pub likely_cause: Option<LikelyCause>,
    /// Causes and contributors that fired, highest score first.
    pub findings: Vec<Finding>,
    /// Ids of causes evaluated and not firing, and of checks that held.
    pub ruled_out: Vec<String>,
    /// The same, with the numbers that rule each out.
    pub ruled_out_details: Vec<RuledOut>,
    /// Rules that could not be evaluated, or only in part, and what to collect.
    pub missing: Vec<Missing>,
    /// Inputs that could not be (fully) read.
    pub problems: Vec<Problem>,
    /// The facts the rules read.
    pub facts: serde_json::Value,
}

/// Where a node's report came from: what postmortems cite.
#[derive(Debug, Clone, Serialize)]
pub struct BundleInfo {
    pub path: String,
    pub name: String,
    pub source_kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collector: Option<String>,
    pub members: Vec<MemberInfo>,
    /// Members whose digest matched the manifest / did not.
    pub verified: u64,
    pub mismatched: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberInfo {
    pub path: String,
    pub kind: String,
    pub classified_by: String,
    pub bytes: u64,
    pub sha256: String,
    /// The digest compared with the manifest (`sha256` or `xxh3_128`, see
    /// [`crate::source::MemberDigest`]); absent when nothing was computed (no manifest possible).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_with: Option<String>,
    /// `verified`, `mismatch`, `unlisted` (no manifest entry), or `unchecked (…)`.
    pub integrity: String,
    pub truncated: bool,
}

/// The top cause and what drives it.
#[derive(Debug, Clone, Serialize)]
pub struct LikelyCause {
    pub id: String,
    pub title: String,
    pub score: u8,
    pub severity: Severity,
    /// Happening at collection; false for an episode in the past (history).
    pub live: bool,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contributor: Option<ContributorRef>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContributorRef {
    pub id: String,
    pub title: String,
    pub score: u8,
    pub summary: String,
}

/// One rule that fired.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: String,
    pub title: String,
    pub kind: RuleKind,
    pub layer: String,
    pub severity: Severity,
    pub score: u8,
    /// Happening at collection (the rule's `live`); false for an episode in the past.
    pub live: bool,
    pub summary: String,
    pub threshold: String,
    pub evidence: Vec<Evidence>,
    pub confidence: Confidence,
    pub mitigations: Vec<RenderedStep>,
    pub verify: Vec<RenderedStep>,
    pub alerts: Vec<RenderedStep>,
}

/// A fact and the lines that prove it.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub fact: String,
    pub value: serde_json::Value,
    pub lines: Vec<EvidenceLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Confidence {
    /// `high` or `reduced`.
    pub level: String,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RenderedStep {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<StepKind>,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuledOut {
    pub id: String,
    pub title: String,
    /// `check` (a health check that held) or `cause` (a cause evaluated and not firing).
    pub kind: RuleKind,
    pub summary: String,
}

/// A rule that could not be evaluated (`not-evaluated`), or was ruled out on part of its inputs
/// (`partial`).
#[derive(Debug, Clone, Serialize)]
pub struct Missing {
    pub id: String,
    pub title: String,
    pub status: String,
    pub facts: Vec<String>,
    pub inputs: Vec<MissingInput>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingInput {
    pub name: String,
    pub command: String,
    /// Why the collector could not get it, from the manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What all nodes analyzed together say: a node comparison's facts and the readings that hold.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    pub facts: serde_json::Value,
    pub readings: Vec<Finding>,
    pub problems: Vec<Problem>,
}

/// Facts across nodes, for cluster-scope rules.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterFacts {
    /// Nodes analyzed.
    pub nodes: u64,
    /// Nodes with a likely cause.
    pub nodes_with_cause: u64,
    /// nodes_with_cause / nodes.
    pub hot_share: f64,
    /// Likely cause id → nodes.
    pub causes: std::collections::BTreeMap<String, u64>,
    /// The most common likely cause and on how many nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_cause: Option<String>,
    pub top_cause_nodes: u64,
    /// Names of nodes with a likely cause, and of those without.
    pub hot_nodes: Vec<String>,
    pub healthy_nodes: Vec<String>,
    /// Highest and lowest netfilter fill level among nodes that report one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_utilization: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_utilization: Option<f64>,
}

/// Compares the nodes and applies the cluster-scope rules (two nodes or more).
pub fn cluster(rules: &RuleSet, nodes: &[NodeReport]) -> Option<ClusterReport> {
    if nodes.len() < 2 {
        return None;
    }
    let mut f = ClusterFacts {
        nodes: nodes.len() as u64,
        ..Default::default()
    };
    for n in nodes {
        match &n.likely_cause {
            Some(c) => {
                f.nodes_with_cause += 1;
                *f.causes.entry(c.id.clone()).or_insert(0) += 1;
                f.hot_nodes.push(n.node.clone());
            }
            None => f.healthy_nodes.push(n.node.clone()),
        }
        if let Some(u) = facts::lookup(&n.facts, "nf.utilization").and_then(|v| v.as_f64()) {
            f.max_utilization = Some(f.max_utilization.map_or(u, |m| m.max(u)));
            f.min_utilization = Some(f.min_utilization.map_or(u, |m| m.min(u)));
        }
    }
    f.hot_share = (f.nodes_with_cause as f64 / f.nodes as f64 * 10_000.0).round() / 10_000.0;
    if let Some((id, n)) = f
        .causes
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
    {
        f.top_cause = Some(id.clone());
        f.top_cause_nodes = *n;
    }
    let tree = serde_json::json!({ "cluster": f });
    let ctx = rules::context(&tree);
    let mut readings = Vec::new();
    let mut problems = Vec::new();
    let empty = FactSet::default();
    for rule in rules
        .rules
        .iter()
        .filter(|r| r.scope == rules::Scope::Cluster)
    {
        let fired = rules.eval(rule, &rule.when, &ctx).map(|v| v.is_true());
        match fired.and_then(|fired| {
            fired
                .then(|| finding(rules, &empty, &tree, &ctx, rule))
                .transpose()
        }) {
            Ok(Some(r)) => readings.push(r),
            Ok(None) => {}
            Err(e) => problems.push(Problem::new(
                &rule.file,
                crate::problem::Severity::Error,
                format!("rule could not be evaluated: {e}"),
            )),
        }
    }
    readings.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    Some(ClusterReport {
        facts: tree,
        readings,
        problems,
    })
}

/// Applies every rule to one node.
pub fn evaluate(
    rules: &RuleSet,
    set: &FactSet,
    bundle: BundleInfo,
    problems: Vec<Problem>,
) -> NodeReport {
    let tree = facts::to_json(&set.facts);
    evaluate_tree(rules, set, tree, bundle, problems)
}

/// [`evaluate`] over a given facts tree (the typed facts serialized, or a variation of it).
fn evaluate_tree(
    rules: &RuleSet,
    set: &FactSet,
    tree: serde_json::Value,
    bundle: BundleInfo,
    problems: Vec<Problem>,
) -> NodeReport {
    let ctx = rules::context(&tree);
    let mut problems = problems;
    let mut findings = Vec::new();
    let mut ruled_out = Vec::new();
    let mut missing = Vec::new();
    let present = |f: &String| facts::lookup(&tree, f).is_some();

    for rule in rules.rules.iter().filter(|r| r.scope == rules::Scope::Node) {
        let mut rule_error = |e: String| {
            problems.push(Problem::new(
                &rule.file,
                crate::problem::Severity::Error,
                format!("rule could not be evaluated: {e}"),
            ))
        };
        let absent_needs: Vec<String> =
            rule.needs.iter().filter(|f| !present(f)).cloned().collect();
        let any_ok = rule.needs_any.is_empty() || rule.needs_any.iter().any(present);
        if let Some(applies) = &rule.applies {
            match rules.eval(rule, applies, &ctx) {
                Ok(v) if !v.is_true() => continue,
                Ok(_) => {}
                Err(e) => {
                    rule_error(e);
                    continue;
                }
            }
        }
        if !absent_needs.is_empty() || !any_ok {
            let mut facts = absent_needs;
            if !any_ok {
                facts.extend(rule.needs_any.iter().cloned());
            }
            missing.push(missing_entry(rules, set, rule, "not-evaluated", facts));
            continue;
        }
        let fired = match rules.eval(rule, &rule.when, &ctx) {
            Ok(v) => v.is_true(),
            Err(e) => {
                rule_error(e);
                continue;
            }
        };
        // Facts the verdict itself reads: their absence makes a "ruled out" partial. Facts used
        // only in the wording do not.
        let absent_decisive: Vec<String> = rules
            .decisive_facts(rule)
            .into_iter()
            .filter(|f| !present(f))
            .collect();
        let reportable = |k: RuleKind| k == RuleKind::Cause || k == RuleKind::Check;
        match (rule.kind, fired) {
            (RuleKind::Check, true) | (RuleKind::Cause, false) => {
                let summary = match (rule.kind, &rule.ruled_out) {
                    (RuleKind::Check, _) => rules.render(rule, &rule.summary, &ctx),
                    (_, Some(t)) => rules.render(rule, t, &ctx),
                    (_, None) => Ok(String::new()),
                };
                match summary {
                    Ok(summary) => ruled_out.push(RuledOut {
                        id: rule.id.clone(),
                        title: rule.title.clone(),
                        kind: rule.kind,
                        summary,
                    }),
                    Err(e) => rule_error(e),
                }
                if reportable(rule.kind) && !absent_decisive.is_empty() {
                    missing.push(missing_entry(rules, set, rule, "partial", absent_decisive));
                }
            }
            (RuleKind::Check, false)
            | (RuleKind::Contributor, false)
            | (RuleKind::Reading, false) => {}
            (_, true) => match finding(rules, set, &tree, &ctx, rule) {
                Ok(f) => findings.push(f),
                Err(e) => rule_error(e),
            },
        }
    }

    findings.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| b.severity.cmp(&a.severity))
            .then_with(|| a.id.cmp(&b.id))
    });
    let likely_cause = findings
        .iter()
        .filter(|f| f.kind == RuleKind::Cause)
        .max_by(|a, b| {
            a.live
                .cmp(&b.live)
                .then(a.severity.cmp(&b.severity))
                .then(a.score.cmp(&b.score))
                .then_with(|| b.id.cmp(&a.id))
        })
        .map(|c| LikelyCause {
            id: c.id.clone(),
            title: c.title.clone(),
            score: c.score,
            severity: c.severity,
            live: c.live,
            summary: c.summary.clone(),
            contributor: findings
                .iter()
                .find(|f| f.kind == RuleKind::Contributor && f.layer == c.layer)
                .or_else(|| findings.iter().find(|f| f.kind == RuleKind::Contributor))
                .map(|f| ContributorRef {
                    id: f.id.clone(),
                    title: f.title.clone(),
                    score: f.score,
                    summary: f.summary.clone(),
                }),
        });
    // The likely cause leads the list (renderers quote the first finding's evidence); history
    // (causes not live) follows everything happening now.
    findings.sort_by_key(|f| {
        (
            likely_cause.as_ref().is_none_or(|c| c.id != f.id),
            f.kind == RuleKind::Cause && !f.live,
        )
    });
    NodeReport {
        node: set.facts.node.name.clone(),
        bundle,
        likely_cause,
        findings,
        ruled_out: ruled_out.iter().map(|r| r.id.clone()).collect(),
        ruled_out_details: ruled_out,
        missing,
        problems,
        facts: tree,
    }
}

fn missing_entry(
    rules: &RuleSet,
    set: &FactSet,
    rule: &Rule,
    status: &str,
    facts: Vec<String>,
) -> Missing {
    let mut inputs: Vec<MissingInput> = Vec::new();
    for f in &facts {
        let Some(input) = rules.input_for(f) else {
            continue;
        };
        let reason = input.sources.iter().find_map(|s| {
            set.facts
                .bundle
                .failed_sources
                .get(s)
                .map(|why| format!("{s}: {why}"))
        });
        let entry = MissingInput {
            name: input.name.clone(),
            command: input.command.clone(),
            reason,
        };
        if !inputs.contains(&entry) {
            inputs.push(entry);
        }
    }
    Missing {
        id: rule.id.clone(),
        title: rule.title.clone(),
        status: status.to_string(),
        facts,
        inputs,
    }
}

fn finding(
    rules: &RuleSet,
    set: &FactSet,
    tree: &serde_json::Value,
    ctx: &minijinja::Value,
    rule: &Rule,
) -> Result<Finding, String> {
    let score = rules.eval(rule, &rule.score, ctx)?;
    let score = f64::try_from(score)
        .map_err(|e| format!("{}: score is not a number: {e}", rule.id))?
        .clamp(0.0, 100.0)
        .round() as u8;
    let summary = rules.render(rule, &rule.summary, ctx)?;
    let mut evidence = Vec::new();
    // A line quoted for several facts (one CPU row proves drop and early_drop) is shown once.
    let mut shown: Vec<EvidenceLine> = Vec::new();
    for fact in &rule.evidence {
        let Some(value) = facts::lookup(tree, fact) else {
            continue;
        };
        // A zero, false or empty fact proves nothing a finding needs to quote.
        let nothing = value.as_array().is_some_and(|a| a.is_empty())
            || value.as_f64() == Some(0.0)
            || value.as_bool() == Some(false);
        if nothing {
            continue;
        }
        let lines = set
            .evidence
            .iter()
            .filter(|(k, _)| rules::covers(fact, k))
            .flat_map(|(_, v)| v.iter().cloned())
            .collect::<Vec<_>>();
        let mut lines = lines;
        lines.sort();
        lines.dedup();
        lines.retain(|l| !shown.contains(l));
        shown.extend(lines.iter().cloned());
        evidence.push(Evidence {
            fact: fact.clone(),
            value: value.clone(),
            lines,
        });
    }
    let mut reasons = Vec::new();
    let used: Vec<&String> = rule
        .evidence
        .iter()
        .chain(&rule.needs)
        .chain(&rule.needs_any)
        .collect();
    for (prefix, members) in &set.sources {
        if used
            .iter()
            .any(|u| rules::covers(prefix, u) || rules::covers(u, prefix))
        {
            for m in members {
                let why = if set.facts.bundle.truncated.contains(m) {
                    format!("{m} was truncated: figures from it cover only the part read")
                } else if set.facts.bundle.mismatched.contains(m) {
                    format!(
                        "{m} does not match the manifest's digest: it was changed after collection"
                    )
                } else {
                    continue;
                };
                if !reasons.contains(&why) {
                    reasons.push(why);
                }
            }
        }
    }
    let live = match &rule.live {
        Some(expr) => rules.eval(rule, expr, ctx)?.is_true(),
        None => true,
    };
    let steps = |steps: &[Step]| -> Result<Vec<RenderedStep>, String> {
        let mut shown = Vec::new();
        for s in steps {
            if let Some(when) = &s.when
                && !rules.eval(rule, when, ctx)?.is_true()
            {
                continue;
            }
            shown.push(s);
        }
        shown
            .into_iter()
            .map(|s| {
                Ok(RenderedStep {
                    kind: s.kind,
                    text: rules.render(rule, &s.text, ctx)?,
                    command: match &s.command {
                        Some(c) => Some(rules.render(rule, c, ctx)?).filter(|c| !c.is_empty()),
                        None => None,
                    },
                })
            })
            .collect()
    };
    Ok(Finding {
        id: rule.id.clone(),
        title: rule.title.clone(),
        kind: rule.kind,
        layer: rule.layer.clone(),
        severity: rule.severity,
        score,
        live,
        summary,
        threshold: rule
            .threshold
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        evidence,
        confidence: Confidence {
            level: if reasons.is_empty() {
                "high"
            } else {
                "reduced"
            }
            .into(),
            reasons,
        },
        mitigations: steps(&rule.mitigation)?,
        verify: steps(&rule.verify)?,
        alerts: steps(&rule.alert)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{BufferPool, IngestOptions, ingest};
    use crate::source::Bundle;

    fn bundle_info() -> BundleInfo {
        BundleInfo {
            path: String::new(),
            name: String::new(),
            source_kind: String::new(),
            collected_at: None,
            collector: None,
            members: Vec::new(),
            verified: 0,
            mismatched: 0,
        }
    }

    /// A node with every input, so every fact exists.
    fn rich_facts() -> FactSet {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = |n: &str, c: &str| std::fs::write(dir.path().join(n), c).expect("write");
        w(
            "dmesg",
            "[ 8349.694398] nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet\n[ 8350.0] net_ratelimit: 3 callbacks suppressed\n[    2.0] nf_conntrack version 0.5.0 (16384 buckets, 65536 max)\n",
        );
        w(
            "sysctl",
            "net.netfilter.nf_conntrack_max = 1000\nnet.netfilter.nf_conntrack_buckets = 256\nnet.netfilter.nf_conntrack_tcp_timeout_time_wait = 120\nnet.netfilter.nf_conntrack_udp_timeout = 30\nnet.netfilter.nf_conntrack_udp_timeout_stream = 120\nnet.netfilter.nf_conntrack_tcp_timeout_established = 86400\n",
        );
        w(
            "stats.0",
            "cpu=0   \tfound=1 invalid=0 insert=0 insert_failed=1 drop=5 early_drop=1 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n",
        );
        w(
            "stats.1",
            "cpu=0   \tfound=1 invalid=0 insert=0 insert_failed=1 drop=9 early_drop=2 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n",
        );
        w("count.0", "990\n");
        w("count.1", "1000\n");
        w("cpus", "16\n");
        w(
            "meminfo",
            "MemTotal:       65831414 kB\nMemAvailable:   30000000 kB\n",
        );
        w("uptime", "9000.5 100.0\n");
        w(
            "uname",
            "Linux worker-3 6.1.0-28-cloud-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22) x86_64 GNU/Linux\n",
        );
        let mut list = String::new();
        for i in 0..600 {
            list.push_str(&format!("tcp      6 100 TIME_WAIT src=10.244.1.{} dst=10.96.0.20 sport={} dport=80 src=10.244.2.7 dst=10.244.1.{} sport=8080 dport={} [ASSURED] mark=0 use=1\n", i % 4, 30000 + i, i % 4, 30000 + i));
        }
        for i in 0..300 {
            list.push_str(&format!("tcp      6 100 SYN_SENT src=10.244.1.9 dst=10.96.0.20 sport={} dport=80 [UNREPLIED] src=10.244.2.99 dst=10.244.1.9 sport=8080 dport={} mark=0 use=1\n", 40000 + i, 40000 + i));
        }
        for i in 0..100 {
            list.push_str(&format!("udp      17 20 src=10.244.1.3 dst=10.96.0.10 sport={} dport=53 [UNREPLIED] src=10.244.0.5 dst=10.244.1.3 sport=53 dport={} mark=0 use=1\n", 50000 + i, 50000 + i));
        }
        w("list", &list);
        // The eBPF and proxy layers, recorded text (no agent runs here): a Cilium node without
        // kube-proxy replacement, so kube-proxy runs beside it and every layer's rules evaluate.
        let mut ct = String::new();
        for i in 0..800 {
            ct.push_str(&format!("TCP OUT 10.244.1.{}:{} -> 10.96.0.20:8080 expires={} Packets=0 Bytes=0 RxFlagsSeen=0x1b LastRxReport=9000 TxFlagsSeen=0x1b LastTxReport=9000 Flags=0x0093 [ RxClosing TxClosing SeenNonSyn DSRInternal ] RevNAT=0 SourceSecurityID=9 BackendID=0 NatPort=30587 \n", i % 4, 20000 + i, if i < 200 { 8000 } else { 9600 }));
        }
        ct.push('\n');
        for i in 0..100 {
            ct.push_str(&format!("UDP OUT 10.244.1.7:{} -> 10.96.0.10:53 expires=9060 Packets=0 Bytes=0 RxFlagsSeen=0x00 LastRxReport=9000 TxFlagsSeen=0x00 LastTxReport=9000 Flags=0x0000 [ ] RevNAT=5 SourceSecurityID=9 BackendID=0 \n", 40000 + i));
        }
        w("ctmap", &ct);
        w(
            "cilium-cfg",
            "#### Read-only configurations ####\nBPFMapsDynamicSizeRatio           : 0.0025\nCTMapEntriesGlobalAny             : 500\nCTMapEntriesGlobalTCP             : 1000\nNATMapEntriesGlobal               : 1000\nKubeProxyReplacement              : false\n",
        );
        w(
            "agentlog",
            "level=info msg=\"option bpf-ct-global-tcp-max set by dynamic sizing to 1000\" subsys=config\nlevel=info msg=\"Conntrack garbage collector interval recalculated\" actualPrevInterval=5m0.002279235s adjustedDeleteRatio=0.3 deleteRatio=0.3 expectedPrevInterval=5m0s newInterval=3m20s subsys=map-ct\n",
        );
        let bpf = |nat: u64| {
            format!(
                "REASON                          DIRECTION   PACKETS   BYTES\nNo mapping for NAT masquerade   Egress      {nat}      {}\nPolicy denied                   Ingress     12        840\nSuccess                         Egress      9123456   812345678\n",
                nat * 70
            )
        };
        w("bpf0", &bpf(5));
        w("bpf1", &bpf(5));
        w(
            "monitor",
            "Listening for events on 2 CPUs with 64x4096 of shared memory\nPress Ctrl-C to quit\nxx drop (Policy denied) flow 0xfddd76f6 to endpoint 0, ifindex 29, file bpf_lxc.c:1274, , identity 48447->world: 192.168.0.149:45830 -> 93.184.215.14:80 tcp SYN\n",
        );
        let agent = |alive: u64| {
            format!(
                "Metric                                              Labels                                                Value\ncilium_bpf_map_pressure                             map_name=\"ct4_global\"                                  0.800000\ncilium_bpf_map_pressure                             map_name=\"cilium_snat_v4_external\"                     0.500000\ncilium_datapath_conntrack_gc_entries                family=\"ipv4\" protocol=\"TCP\" status=\"alive\"         {alive}.000000\ncilium_datapath_conntrack_gc_entries                family=\"ipv4\" protocol=\"TCP\" status=\"deleted\"       10.000000\ncilium_datapath_conntrack_gc_runs_total             family=\"ipv4\" protocol=\"TCP\" status=\"completed\"     3.000000\ncilium_datapath_signals_handled_total               data=\"ipv4\" signal=\"ct_fill_up\" status=\"received\"   0.000000\ncilium_datapath_signals_handled_total               data=\"ipv4\" signal=\"nat_fill_up\" status=\"received\"  0.000000\ncilium_drop_count_total                             direction=\"EGRESS\" reason=\"No mapping for NAT masquerade\"   5.000000\n"
            )
        };
        w("agent0", &agent(700));
        w("agent1", &agent(800));
        let kp = |queued: u64| {
            format!(
                "# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram\nkubeproxy_sync_proxy_rules_duration_seconds_bucket{{le=\"1.024\"}} 10 1764071000000\nkubeproxy_sync_proxy_rules_duration_seconds_bucket{{le=\"2.048\"}} 30 1764071000000\nkubeproxy_sync_proxy_rules_duration_seconds_bucket{{le=\"+Inf\"}} 40 1764071000000\nkubeproxy_sync_proxy_rules_duration_seconds_sum 80.5 1764071000000\nkubeproxy_sync_proxy_rules_duration_seconds_count 40 1764071000000\nkubeproxy_sync_proxy_rules_last_queued_timestamp_seconds {queued} 1764071000000\nkubeproxy_sync_proxy_rules_last_timestamp_seconds 1764070000 1764071000000\nkubeproxy_sync_proxy_rules_iptables_restore_failures_total 3 1764071000000\nkubeproxy_iptables_ct_state_invalid_dropped_packets_total 7 1764071000000\n"
            )
        };
        w("kp0", &kp(1_764_070_400));
        w("kp1", &kp(1_764_070_500));
        w("proxymode", "ipvs\n");
        let mut lvs = String::from(
            "IPVS connection entries\npro expire state       source             virtual            destination\n",
        );
        for i in 0..600 {
            lvs.push_str(&format!(
                "TCP 14:{:02}  ESTABLISHED 10.244.1.{}:{}   10.96.0.1:443      10.0.0.10:6443\n",
                i % 60,
                i % 4,
                30000 + i
            ));
        }
        w("lvs", &lvs);
        // Cluster files (`kubectl get … -o json`): the pods, services and endpoints behind the
        // addresses above. 10.244.2.99 is no endpoint any more: the stale backend.
        w(
            "pods.json",
            r#"{"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": [
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client-0", "namespace": "shop"}, "spec": {"nodeName": "worker-3"}, "status": {"phase": "Running", "podIP": "10.244.1.0", "podIPs": [{"ip": "10.244.1.0"}]}},
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api-1", "namespace": "shop"}, "spec": {"nodeName": "worker-4"}, "status": {"phase": "Running", "podIP": "10.244.2.7", "podIPs": [{"ip": "10.244.2.7"}]}}
]}"#,
        );
        w(
            "services.json",
            r#"{"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": [
{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}},
{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system"}, "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 53, "protocol": "UDP", "targetPort": 53}]}}
]}"#,
        );
        w(
            "endpointslices.json",
            r#"{"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": [
{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4", "metadata": {"name": "api-x1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "api"}}, "endpoints": [{"addresses": ["10.244.2.7"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "api-1", "namespace": "shop"}}], "ports": [{"port": 8080, "protocol": "TCP"}]},
{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4", "metadata": {"name": "kube-dns-y2", "namespace": "kube-system", "labels": {"kubernetes.io/service-name": "kube-dns"}}, "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "coredns-1", "namespace": "kube-system"}}], "ports": [{"port": 53, "protocol": "UDP"}]}
]}"#,
        );
        let data = ingest(
            &Bundle::open(dir.path()).expect("open"),
            &IngestOptions::default(),
            &BufferPool::new(4),
        )
        .expect("ingest");
        crate::facts::derive(&data)
    }

    fn leaf_paths(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, child) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaf_paths(child, &p, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }

    fn remove(tree: &mut serde_json::Value, path: &str) {
        let mut parts: Vec<&str> = path.split('.').collect();
        let last = parts.pop().expect("non-empty path");
        let mut node = tree;
        for p in parts {
            node = &mut node[p];
        }
        if let Some(m) = node.as_object_mut() {
            m.remove(last);
        }
    }

    fn rule_errors(report: &NodeReport) -> Vec<String> {
        report
            .problems
            .iter()
            .filter(|p| p.reason.starts_with("rule could not be evaluated"))
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn every_rule_evaluates_on_a_complete_node() {
        let rules = RuleSet::load(None).expect("embedded rules load");
        let set = rich_facts();
        let report = evaluate(&rules, &set, bundle_info(), Vec::new());
        assert!(
            rule_errors(&report).is_empty(),
            "{:?}",
            rule_errors(&report)
        );
        assert_eq!(
            report.likely_cause.as_ref().map(|c| c.id.as_str()),
            Some("nf.table_exhausted")
        );
        let not_evaluated: Vec<&str> = report
            .missing
            .iter()
            .filter(|m| m.status == "not-evaluated")
            .map(|m| m.id.as_str())
            .collect();
        assert!(not_evaluated.is_empty(), "{not_evaluated:?}");
        let fired: Vec<&str> = report.findings.iter().map(|f| f.id.as_str()).collect();
        let stale = report
            .findings
            .iter()
            .find(|f| f.id == "nf.stale_entries")
            .expect("the gone backend is found");
        assert!(
            stale
                .summary
                .contains("10.244.2.99 is not an endpoint of service shop/api any more"),
            "{}",
            stale.summary
        );
        let churn = report
            .findings
            .iter()
            .find(|f| f.id == "nf.timewait_churn")
            .expect("churn");
        assert!(
            churn
                .summary
                .contains("shop/client-0 (10.244.1.0) → shop/api (10.96.0.20:80 tcp)"),
            "{}",
            churn.summary
        );
        for id in [
            "cilium.ct_map_pressure",
            "cilium.ct_gc_lagging",
            "kube_proxy.sync_stalled",
            "kube_proxy.sync_slow",
            "kube_proxy.ipvs_table_large",
        ] {
            assert!(
                fired.contains(&id),
                "{id} should fire on the rich node: {fired:?}"
            );
        }
    }

    #[test]
    fn every_rule_survives_the_absence_of_any_single_fact() {
        let rules = RuleSet::load(None).expect("embedded rules load");
        let set = rich_facts();
        let full = crate::facts::to_json(&set.facts);
        let mut leaves = Vec::new();
        leaf_paths(&full, "", &mut leaves);
        assert!(
            leaves.len() > 60,
            "the rich node should set most facts: {leaves:?}"
        );
        for leaf in leaves {
            let mut tree = full.clone();
            remove(&mut tree, &leaf);
            let report = evaluate_tree(&rules, &set, tree, bundle_info(), Vec::new());
            assert!(
                rule_errors(&report).is_empty(),
                "without {leaf}: {:?}",
                rule_errors(&report)
            );
        }
    }

    #[test]
    fn an_empty_node_leaves_every_rule_missing_or_silent_never_failing() {
        let rules = RuleSet::load(None).expect("embedded rules load");
        let report = evaluate(&rules, &FactSet::default(), bundle_info(), Vec::new());
        assert!(
            rule_errors(&report).is_empty(),
            "{:?}",
            rule_errors(&report)
        );
        assert!(report.likely_cause.is_none());
        assert!(report.findings.is_empty());
        let missing: Vec<&str> = report.missing.iter().map(|m| m.id.as_str()).collect();
        assert!(missing.contains(&"nf.table_exhausted"), "{missing:?}");
        assert!(
            report.missing.iter().all(|m| !m.inputs.is_empty()),
            "every missing rule names a command"
        );
    }

    #[test]
    fn every_cause_has_a_safe_mitigation_and_a_way_to_verify() {
        let rules = RuleSet::load(None).expect("embedded rules load");
        for r in rules.rules.iter().filter(|r| r.kind == RuleKind::Cause) {
            assert!(
                r.mitigation.iter().any(|m| m.kind == Some(StepKind::Safe)),
                "{}",
                r.id
            );
            assert!(!r.verify.is_empty(), "{}", r.id);
        }
    }
}
