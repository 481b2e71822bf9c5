//! Findings: every rule applied to one node's facts, ranked, with the evidence that backs each,
//! what was ruled out, and what could not be evaluated and how to get it.
//!
//! The likely cause is the highest-scoring cause, with the highest-scoring contributor beside it.
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
    /// Members whose sha256 matched the manifest / did not.
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
    /// `verified`, `mismatch`, or `unlisted` (no manifest entry).
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

/// Applies every rule to one node.
pub fn evaluate(
    rules: &RuleSet,
    set: &FactSet,
    bundle: BundleInfo,
    problems: Vec<Problem>,
) -> NodeReport {
    let tree = facts::to_json(&set.facts);
    let ctx = rules::context(&tree);
    let mut problems = problems;
    let mut findings = Vec::new();
    let mut ruled_out = Vec::new();
    let mut missing = Vec::new();
    let present = |f: &String| facts::lookup(&tree, f).is_some();

    for rule in &rules.rules {
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
                        summary,
                    }),
                    Err(e) => rule_error(e),
                }
                if reportable(rule.kind) && !absent_decisive.is_empty() {
                    missing.push(missing_entry(rules, set, rule, "partial", absent_decisive));
                }
            }
            (RuleKind::Check, false) | (RuleKind::Contributor, false) => {}
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
            a.severity
                .cmp(&b.severity)
                .then(a.score.cmp(&b.score))
                .then_with(|| b.id.cmp(&a.id))
        })
        .map(|c| LikelyCause {
            id: c.id.clone(),
            title: c.title.clone(),
            score: c.score,
            severity: c.severity,
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
        if value.as_array().is_some_and(|a| a.is_empty()) {
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
                        "{m} does not match the manifest's sha256: it was changed after collection"
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
    let steps = |steps: &[Step]| -> Result<Vec<RenderedStep>, String> {
        steps
            .iter()
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
