//! ctdiag: offline diagnosis of connection-tracking exhaustion on Kubernetes nodes.
//!
//! Data flows one way, one module per stage (DESIGN.md):
//! [`source`] → [`classify`] → [`parse`] → [`summary`] → [`facts`] → [`rules`] → [`findings`] →
//! [`render`]. [`ingest`] drives the first four in parallel; [`analyze`] runs the whole pipeline
//! over one or many bundles and returns the [`Report`] every output format is rendered from.

pub mod classify;
pub mod cli;
pub mod facts;
pub mod findings;
pub mod ingest;
pub mod layout;
pub mod parse;
pub mod problem;
pub mod render;
pub mod rules;
pub mod source;
pub mod summary;

use crate::findings::{BundleInfo, MemberInfo, NodeReport};
use crate::ingest::{BufferPool, BundleData, IngestOptions};
use crate::problem::{Problem, Severity};
use crate::rules::RuleSet;
use serde::Serialize;
use std::path::PathBuf;

/// Version of the JSON report layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// What an analysis needs besides its inputs.
#[derive(Debug, Clone, Default)]
pub struct AnalyzeOptions {
    pub ingest: IngestOptions,
    /// Extra rules (`--rules DIR`): added, or overriding built-in rules of the same id.
    pub rules_dir: Option<PathBuf>,
}

/// Errors that stop an analysis before any bundle is read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Rules(#[from] rules::RuleError),
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    #[error(transparent)]
    Source(source::SourceError),
}

/// The tool that wrote a report.
#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    pub name: &'static str,
    pub version: &'static str,
}

/// Everything an analysis found: the one value every renderer takes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: ToolInfo,
    /// One entry per bundle that could be opened, in the order given.
    pub nodes: Vec<NodeReport>,
    /// The node comparison, when two nodes or more were analyzed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<findings::ClusterReport>,
    /// Bundles that could not be opened at all.
    pub unreadable: Vec<Problem>,
}

impl Report {
    /// Whether anything usable was read.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// Runs the pipeline over `inputs`, each a bundle (`.tar.gz`, `.tar`, directory, loose file) or a
/// directory of bundles written by `ctdiag-collect cluster` (see [`source::expand`]), whose
/// `cluster/` files are read once and applied to every node. A bundle that cannot be opened is
/// reported in [`Report::unreadable`]; the others are analyzed.
pub fn analyze(inputs: &[PathBuf], options: &AnalyzeOptions) -> Result<Report, Error> {
    let rules = RuleSet::load(options.rules_dir.as_deref())?;
    let layouts = layout::builtin()?;
    let pool = BufferPool::new(options.ingest.buffers);
    let expanded = source::expand(inputs);
    let nodes = expanded.nodes;
    let mut unreadable: Vec<Problem> = expanded
        .left_out
        .iter()
        .map(|p| {
            Problem::new(
                p.display().to_string(),
                Severity::Warning,
                "a loose file beside bundle archives belongs to no node and was not analyzed; analyze it on its own",
            )
        })
        .collect();
    // Cluster folders, read once each: their members join every node they apply to.
    let mut shared: std::collections::BTreeMap<PathBuf, (Vec<ingest::MemberRecord>, Vec<Problem>)> =
        Default::default();
    for dir in nodes.iter().filter_map(|n| n.cluster.as_ref()) {
        if shared.contains_key(dir) {
            continue;
        }
        match source::Bundle::open(dir).and_then(|b| ingest::ingest(&b, &options.ingest, &pool)) {
            Ok(data) => {
                let prefix = |p: &str| format!("cluster/{p}");
                let members = data
                    .members
                    .into_iter()
                    .map(|mut m| {
                        m.path = prefix(&m.path);
                        m
                    })
                    .collect();
                let problems = data
                    .problems
                    .into_iter()
                    .map(|mut p| {
                        p.member = prefix(&p.member);
                        p
                    })
                    .collect();
                shared.insert(dir.clone(), (members, problems));
            }
            Err(e) => unreadable.push(Problem::new(
                dir.display().to_string(),
                Severity::Error,
                e.reason(),
            )),
        }
    }
    let readers = nodes.len().clamp(1, 4);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<(usize, InputResult)>> = Default::default();
    // Readers are plain threads (see `ingest`): each takes the next bundle until none are left,
    // and turns it into its node report at once, so a parsed bundle's summaries never outlive it:
    // memory stays flat however many bundles are given.
    std::thread::scope(|scope| {
        for _ in 0..readers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(node) = nodes.get(i) else { break };
                    let path = &node.bundle;
                    // A bug met on one bundle is that bundle's problem, not the run's end.
                    let analyzed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let nodes = source::Bundle::open(path)
                            .and_then(|b| {
                                ingest::ingest_nodes(&b, &options.ingest, &pool, &layouts)
                            })
                            .map_err(|e| {
                                Problem::new(path.display().to_string(), Severity::Error, e.reason())
                            })?;
                        // Usable on its own merits: cluster files cannot make random bytes a node.
                        // One archive of several nodes is usable when any node is.
                        let many = nodes.len() > 1;
                        let mut usable_nodes = Vec::new();
                        let mut last_err = None;
                        for data in nodes {
                            match usable(path, data) {
                                Ok(d) => usable_nodes.push(d),
                                Err(e) if many => last_err = Some(e),
                                Err(e) => return Err(e),
                            }
                        }
                        if usable_nodes.is_empty() {
                            return Err(last_err.unwrap_or_else(|| {
                                Problem::new(path.display().to_string(), Severity::Error, "no node")
                            }));
                        }
                        Ok(usable_nodes
                            .into_iter()
                            .map(|mut data| {
                                if let Some((members, problems)) =
                                    node.cluster.as_ref().and_then(|c| shared.get(c))
                                {
                                    data.members.extend(members.iter().cloned());
                                    data.problems.extend(problems.iter().cloned());
                                }
                                node_report(&rules, data)
                            })
                            .collect())
                    }));
                    let result = analyzed.unwrap_or_else(|_| {
                        Err(Problem::new(
                            path.display().to_string(),
                            Severity::Error,
                            "internal error while analyzing this bundle (please report it with the bundle)",
                        ))
                    });
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((i, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|r| r.0);
    let mut reports = Vec::new();
    for (_, r) in results {
        match r {
            Ok(nodes) => reports.extend(nodes),
            Err(p) => unreadable.push(p),
        }
    }
    Ok(Report {
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo {
            name: "ctdiag",
            version: env!("CARGO_PKG_VERSION"),
        },
        cluster: findings::cluster(&rules, &reports),
        nodes: reports,
        unreadable,
    })
}

/// The nodes one input gave, or why it gave none.
type InputResult = Result<Vec<NodeReport>, Problem>;

/// A bundle with nothing any rule can read (random bytes, an empty file, only unknown files) is
/// unreadable, not a node: it is reported with why, and cannot make the run look successful.
fn usable(path: &std::path::Path, data: BundleData) -> Result<BundleData, Problem> {
    let recognised = data.members.iter().any(|m| {
        !matches!(
            m.summary,
            parse::MemberSummary::Skipped | parse::MemberSummary::Manifest(_)
        )
    });
    if recognised {
        return Ok(data);
    }
    let why = data
        .problems
        .iter()
        .rev()
        .max_by_key(|p| p.severity)
        .map(|p| p.to_string())
        .unwrap_or_else(|| "no members".into());
    Err(Problem::new(
        path.display().to_string(),
        Severity::Error,
        format!("nothing usable: no member is a supported input ({why})"),
    ))
}

/// Facts and findings of one parsed bundle.
pub fn node_report(rules: &RuleSet, data: BundleData) -> NodeReport {
    let mut set = facts::derive(&data);
    let mut problems = data.problems.clone();
    let listed: std::collections::HashMap<&str, &parse::manifest::ManifestMember> = set
        .manifest
        .iter()
        .flat_map(|m| m.members.iter())
        .map(|m| (m.path.as_str(), m))
        .collect();
    let mut members = Vec::new();
    let (mut verified, mut mismatched) = (0, 0);
    let digest_name = data.digest.field();
    for m in &data.members {
        let listed = listed.get(m.path.as_str());
        let expected = listed.and_then(|l| l.digest(data.digest));
        let integrity = match expected {
            _ if m.kind == classify::MemberKind::Manifest => "manifest".to_string(),
            Some(h) if h.eq_ignore_ascii_case(&m.digest) && !m.truncated => {
                verified += 1;
                "verified".to_string()
            }
            Some(_) if m.truncated => "unchecked (truncated on read)".to_string(),
            Some(_) => {
                mismatched += 1;
                set.facts.bundle.mismatched.push(m.path.clone());
                problems.push(Problem::new(
                    &m.path,
                    Severity::Error,
                    format!("integrity: {digest_name} does not match the manifest; the member was changed after collection"),
                ));
                "mismatch".to_string()
            }
            None if listed.is_some() => format!("unchecked (the manifest lists no {digest_name})"),
            None if m.path.starts_with("cluster/") => "cluster file".to_string(),
            None if set.manifest.is_some() => "unlisted".to_string(),
            None => "no manifest".to_string(),
        };
        // The report shows each member's SHA-256: the one read when it was computed, else the
        // manifest's once the member matched the manifest by XXH3.
        let sha256 = if data.digest == source::MemberDigest::Xxh3 {
            match (
                integrity == "verified",
                listed.and_then(|l| l.sha256.as_ref()),
            ) {
                (true, Some(h)) => h.to_ascii_lowercase(),
                _ => String::new(),
            }
        } else {
            m.digest.clone()
        };
        members.push(MemberInfo {
            path: m.path.clone(),
            kind: m.kind.label(),
            classified_by: format!("{:?}", m.classified_by).to_lowercase(),
            bytes: m.bytes,
            sha256,
            checked_with: (!m.digest.is_empty()).then(|| digest_name.to_string()),
            integrity,
            truncated: m.truncated || set.facts.bundle.truncated.contains(&m.path),
        });
    }
    if let Some(man) = &set.manifest {
        let present: std::collections::HashSet<&str> =
            data.members.iter().map(|m| m.path.as_str()).collect();
        for listed in man
            .members
            .iter()
            .filter(|l| !present.contains(l.path.as_str()))
        {
            problems.push(Problem::new(
                &listed.path,
                Severity::Error,
                "integrity: listed in the manifest but missing from the bundle",
            ));
        }
    }
    let bundle = BundleInfo {
        path: data.path.display().to_string(),
        name: data.name.clone(),
        source_kind: format!("{:?}", data.source_kind),
        collected_at: set.facts.node.collected_at.clone(),
        collector: data.provenance.clone().or_else(|| {
            set.manifest.as_ref().and_then(|m| {
                let t = m.tool.as_ref()?;
                Some(
                    format!(
                        "{} {}",
                        t.name.as_deref()?,
                        t.version.as_deref().unwrap_or("")
                    )
                    .trim()
                    .to_string(),
                )
            })
        }),
        members,
        verified,
        mismatched,
    };
    findings::evaluate(rules, &set, bundle, problems)
}

/// `ctdiag facts`: the facts of one bundle with the lines behind them, as JSON. Another tool's
/// archive of several nodes gives `{"nodes": [...]}`, one such object per node.
pub fn facts_json(
    path: &std::path::Path,
    options: &IngestOptions,
) -> Result<serde_json::Value, Error> {
    let bundle = source::Bundle::open(path).map_err(Error::Source)?;
    let pool = BufferPool::new(options.buffers);
    let layouts = layout::builtin()?;
    let nodes = ingest::ingest_nodes(&bundle, options, &pool, &layouts).map_err(Error::Source)?;
    let mut out: Vec<serde_json::Value> = nodes
        .iter()
        .map(|data| {
            let set = facts::derive(data);
            serde_json::json!({
                "node": set.facts.node.name,
                "facts": facts::to_json(&set.facts),
                "evidence": set.evidence,
                "problems": data.problems,
            })
        })
        .collect();
    Ok(if out.len() == 1 {
        out.remove(0)
    } else {
        serde_json::json!({ "nodes": out })
    })
}
