//! Other tools' archives: sos reports, cilium sysdumps, troubleshoot.sh support bundles, the EKS
//! and Rancher log collectors. Each tool's layout is data (`analyzer/layouts/*.toml`, embedded at
//! build time): the markers that prove an archive is that tool's, where it writes its version and
//! the node's name, and a table of path patterns → member kinds. A member of a recognised archive
//! that no pattern names is not an input: it is counted, never sniffed by content, so that a
//! `/sys` copy holding one integer can never pass for `conntrack -C`.
//!
//! Layouts are applied to *roots*: the top of the input and every archive nested in it (a sos
//! collect tar holds one `.tar.xz` per node; a sysdump one bugtool `.tar.gz` per agent). A
//! pattern may capture `node`, which splits a root into nodes; a `shared` pattern (cluster
//! objects) belongs to every node of its root.

use crate::classify::{MemberKind, NodeField};
use crate::source::Index;
use regex::Regex;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The layout files, embedded.
const FILES: &[(&str, &str)] = &[
    ("sos.toml", include_str!("../layouts/sos.toml")),
    (
        "cilium-sysdump.toml",
        include_str!("../layouts/cilium-sysdump.toml"),
    ),
    (
        "troubleshoot.toml",
        include_str!("../layouts/troubleshoot.toml"),
    ),
    ("eks.toml", include_str!("../layouts/eks.toml")),
    ("rancher.toml", include_str!("../layouts/rancher.toml")),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayoutFile {
    id: String,
    name: String,
    markers: Markers,
    #[serde(default)]
    version: Vec<Extract>,
    #[serde(default)]
    hostname: Vec<Extract>,
    /// Where the node names of a multi-node archive are listed: a `node` capture must be one.
    node_list: Option<Extract>,
    #[serde(default)]
    member: Vec<MemberRule>,
    #[serde(default)]
    never: Vec<NeverRule>,
}

/// A root is the tool's when every `all` pattern and at least one `any` pattern matches a member
/// path (relative to the root; regexes anchored at both ends). `any` may be empty.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Markers {
    all: Vec<String>,
    #[serde(default)]
    any: Vec<String>,
}

/// A value read from a small file: the first capture of `regex` in the file at `path`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Extract {
    path: String,
    regex: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberRule {
    /// A regex over the member's path relative to the root, anchored at both ends.
    path: String,
    kind: String,
    /// For `sysctl-value`: the key, when the path does not capture `key`.
    key: Option<String>,
    /// Cluster-wide: belongs to every node of the root.
    #[serde(default)]
    shared: bool,
    /// The tool cut this output to its tail (sos `.tailed`): findings must say so.
    #[serde(default)]
    truncated: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NeverRule {
    path: String,
    why: String,
}

/// A compiled layout.
#[derive(Debug)]
pub struct Layout {
    pub id: String,
    pub name: String,
    all: Vec<Regex>,
    any: Vec<Regex>,
    version: Vec<(String, Regex)>,
    hostname: Vec<(String, Regex)>,
    node_list: Option<(String, Regex)>,
    members: Vec<(Regex, KindSpec, MemberRule)>,
    never: Vec<(Regex, String)>,
}

/// How a rule's kind becomes a [`MemberKind`] once the path's captures are known.
#[derive(Debug, Clone)]
enum KindSpec {
    Fixed(MemberKind),
    SysctlValue,
    NetnsStats,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("layouts/{file}: {reason}")]
    Invalid { file: String, reason: String },
}

fn kind_spec(name: &str) -> Option<KindSpec> {
    use MemberKind as K;
    Some(KindSpec::Fixed(match name {
        "dmesg" => K::Dmesg,
        "sysctl" => K::Sysctl,
        "sysctl-json" => K::SysctlJson,
        "sysctl-value" => return Some(KindSpec::SysctlValue),
        "conntrack-list" => K::ConntrackList,
        "conntrack-stats" => K::ConntrackStats,
        "conntrack-mixed" => K::ConntrackMixed,
        "conntrack-count" => K::ConntrackCount,
        "proc-stat" => K::ProcStatConntrack,
        "netns-conntrack-stats" => return Some(KindSpec::NetnsStats),
        "cilium-ct-list" => K::CiliumCtList,
        "cilium-bpf-metrics" => K::CiliumBpfMetrics,
        "cilium-monitor" => K::CiliumMonitor,
        "cilium-config" => K::CiliumConfig,
        "cilium-status" => K::CiliumStatus,
        "cilium-agent-log" => K::CiliumAgentLog,
        "metrics" => K::Metrics,
        "kube-objects" => K::KubeObjects,
        "kube-objects-yaml" => K::KubeObjectsYaml,
        "uname" => K::Node(NodeField::Uname),
        "os-release" => K::Node(NodeField::OsRelease),
        "meminfo" => K::Node(NodeField::Meminfo),
        "cpus" => K::Node(NodeField::Cpus),
        "cpuinfo" => K::Node(NodeField::Cpuinfo),
        "uptime" => K::Node(NodeField::Uptime),
        "ipvs" => K::IpvsConnections,
        "proxy-mode" => K::KubeProxyMode,
        // Decided by content among the kinds of its lines (a log file of any name).
        "content" => K::Unknown,
        _ => return None,
    }))
}

fn anchored(file: &str, re: &str) -> Result<Regex, LayoutError> {
    Regex::new(&format!("^(?:{re})$")).map_err(|e| LayoutError::Invalid {
        file: file.into(),
        reason: format!("bad pattern {re:?}: {e}"),
    })
}

fn extracts(file: &str, list: Vec<Extract>) -> Result<Vec<(String, Regex)>, LayoutError> {
    list.into_iter()
        .map(|e| {
            let re = Regex::new(&e.regex).map_err(|err| LayoutError::Invalid {
                file: file.into(),
                reason: format!("bad regex {:?}: {err}", e.regex),
            })?;
            Ok((e.path, re))
        })
        .collect()
}

impl Layout {
    fn compile(file: &str, text: &str) -> Result<Layout, LayoutError> {
        let f: LayoutFile = toml::from_str(text).map_err(|e| LayoutError::Invalid {
            file: file.into(),
            reason: e.to_string(),
        })?;
        let mut members = Vec::new();
        for rule in f.member {
            let spec = kind_spec(&rule.kind).ok_or_else(|| LayoutError::Invalid {
                file: file.into(),
                reason: format!("unknown kind {:?}", rule.kind),
            })?;
            let re = anchored(file, &rule.path)?;
            if matches!(spec, KindSpec::SysctlValue)
                && rule.key.is_none()
                && !re.capture_names().flatten().any(|n| n == "key")
            {
                return Err(LayoutError::Invalid {
                    file: file.into(),
                    reason: format!(
                        "{:?}: a sysctl-value needs `key` or a (?P<key>…)",
                        rule.path
                    ),
                });
            }
            members.push((re, spec, rule));
        }
        let never = f
            .never
            .into_iter()
            .map(|n| Ok((anchored(file, &n.path)?, n.why)))
            .collect::<Result<_, LayoutError>>()?;
        Ok(Layout {
            id: f.id,
            name: f.name,
            all: f
                .markers
                .all
                .iter()
                .map(|m| anchored(file, m))
                .collect::<Result<_, _>>()?,
            any: f
                .markers
                .any
                .iter()
                .map(|m| anchored(file, m))
                .collect::<Result<_, _>>()?,
            version: extracts(file, f.version)?,
            hostname: extracts(file, f.hostname)?,
            node_list: extracts(file, f.node_list.into_iter().collect())?.pop(),
            members,
            never,
        })
    }

    /// Paths (relative to a root) whose content the layout reads before anything is parsed.
    fn wants(&self, rel: &str) -> bool {
        self.version
            .iter()
            .chain(&self.hostname)
            .chain(&self.node_list)
            .any(|(p, _)| p == rel)
    }

    /// Whether the root whose member paths (relative to it) are `paths` is this tool's.
    fn matches(&self, paths: &BTreeSet<&str>) -> bool {
        let present = |m: &Regex| paths.iter().any(|p| m.is_match(p));
        self.all.iter().all(present) && (self.any.is_empty() || self.any.iter().any(present))
    }
}

/// Every built-in layout.
pub fn builtin() -> Result<Vec<Layout>, LayoutError> {
    FILES.iter().map(|(f, t)| Layout::compile(f, t)).collect()
}

/// Whether any layout wants to read the file at `rel` (relative to its root) during indexing.
pub fn wanted(layouts: &[Layout], rel: &str) -> bool {
    layouts.iter().any(|l| l.wants(rel))
}

/// What the plan says of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// An input of node `node` (an index into [`Plan::nodes`]), or of every node of its root.
    Input {
        node: Target,
        kind: MemberKind,
        truncated_by_tool: bool,
    },
    /// Part of a recognised archive, but no input: not read.
    Unused { node: Target },
    /// Never an input, for a reason worth telling (configuration files).
    Never { node: Target, why: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Node(usize),
    /// Every node of root `.0`.
    Shared(usize),
}

/// One node found in an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedNode {
    /// The node's name as the archive gives it (hostname file, node folder, root name).
    pub name: String,
    /// The tool and version that made it: `sos report 4.8.2`.
    pub provenance: String,
    /// The root it belongs to.
    pub root: usize,
}

/// How one input splits into nodes, and what each member is.
#[derive(Debug, Default)]
pub struct Plan {
    pub nodes: Vec<PlannedNode>,
    /// Root prefixes (`""` for the top, `a.tar.xz/` for a nested archive) recognised as a tool's.
    pub roots: Vec<String>,
    assignments: HashMap<String, Assignment>,
    /// Members of the input outside any recognised root: classified as before, one node of
    /// their own when there are any (`None` when every member is in a recognised root).
    pub rest: bool,
}

impl Plan {
    /// Decides the layout of an indexed input. `None` when no layout recognises any root: the
    /// input is read as a ctdiag bundle or loose files.
    pub fn make(layouts: &[Layout], index: &Index) -> Option<Plan> {
        // Root prefix → member paths relative to it (links count as members: sos's top-level
        // `dmesg` link is a marker of its own).
        let mut roots: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        for e in &index.entries {
            roots
                .entry(e.path[..e.root_len].to_string())
                .or_default()
                .insert(&e.path[e.root_len..]);
        }
        for l in &index.links {
            if let Some((root, set)) = roots
                .iter_mut()
                .rev()
                .find(|(r, _)| l.path.starts_with(r.as_str()))
            {
                set.insert(&l.path[root.len()..]);
            }
        }
        // Outer roots first: an archive inside a recognised root is part of it unless it is a
        // tool's archive itself (a sos collect's per-node reports).
        let mut recognised: Vec<(String, &Layout)> = Vec::new();
        for (root, paths) in &roots {
            if let Some(layout) = layouts.iter().find(|l| l.matches(paths)) {
                recognised.push((root.clone(), layout));
                continue;
            }
            // `tar -C /tmp host-date` spells members `./host-date/…`: a folder all members share
            // is the report's own top folder, part of the root.
            fn first<'a>(p: &&'a str) -> Option<&'a str> {
                p.split_once('/').map(|(c, _)| c)
            }
            let Some(Some(top)) = paths.iter().next().map(first) else {
                continue;
            };
            if !paths.iter().all(|p| first(p) == Some(top)) {
                continue;
            }
            let inner: BTreeSet<&str> = paths.iter().map(|p| &p[top.len() + 1..]).collect();
            if let Some(layout) = layouts.iter().find(|l| l.matches(&inner)) {
                recognised.push((format!("{root}{top}/"), layout));
            }
        }
        if recognised.is_empty() {
            return None;
        }
        let mut plan = Plan {
            roots: recognised.iter().map(|(r, _)| r.clone()).collect(),
            ..Plan::default()
        };
        let kept = |root: &str, rel: &str| index.kept.get(&format!("{root}{rel}"));
        let extract = |root: &str, list: &[(String, Regex)]| {
            list.iter().find_map(|(path, re)| {
                let text = String::from_utf8_lossy(kept(root, path)?);
                let c = re.captures(&text)?;
                Some(c.get(1)?.as_str().trim().to_string())
            })
        };
        // The recognised root a path belongs to: the deepest one that prefixes it.
        let owner = |path: &str| -> Option<usize> {
            recognised
                .iter()
                .enumerate()
                .filter(|(_, (r, _))| path.starts_with(r.as_str()))
                .max_by_key(|(_, (r, _))| r.len())
                .map(|(i, _)| i)
        };
        let links = Aliases::new(index);
        let mut node_ids: HashMap<(usize, String), usize> = HashMap::new();
        let mut default_node: HashMap<usize, usize> = HashMap::new();
        for (ri, (root, layout)) in recognised.iter().enumerate() {
            let version = extract(root, &layout.version);
            let provenance = match &version {
                Some(v) => format!("{} {v}", layout.name),
                None => layout.name.clone(),
            };
            let listed: Option<BTreeSet<String>> = layout.node_list.as_ref().and_then(|(p, re)| {
                let text = String::from_utf8_lossy(kept(root, p)?).into_owned();
                Some(
                    re.captures_iter(&text)
                        .filter_map(|c| Some(c.get(1)?.as_str().to_string()))
                        .collect(),
                )
            });
            let root_name = || {
                extract(root, &layout.hostname).unwrap_or_else(|| {
                    let r = root.trim_end_matches('/');
                    let base = r.rsplit('/').next().unwrap_or(r);
                    let base = [".tar.xz", ".tar.gz", ".tar.bz2", ".tar", ".zip"]
                        .iter()
                        .find_map(|e| base.strip_suffix(e))
                        .unwrap_or(base);
                    if base.is_empty() {
                        String::new()
                    } else {
                        base.to_string()
                    }
                })
            };
            let mut node_of = |plan: &mut Plan, name: Option<String>| -> usize {
                match name {
                    Some(n) => *node_ids.entry((ri, n.clone())).or_insert_with(|| {
                        plan.nodes.push(PlannedNode {
                            name: n,
                            provenance: provenance.clone(),
                            root: ri,
                        });
                        plan.nodes.len() - 1
                    }),
                    None => *default_node.entry(ri).or_insert_with(|| {
                        plan.nodes.push(PlannedNode {
                            name: root_name(),
                            provenance: provenance.clone(),
                            root: ri,
                        });
                        plan.nodes.len() - 1
                    }),
                }
            };
            for e in index.entries.iter().filter(|e| owner(&e.path) == Some(ri)) {
                let rel = &e.path[root.len()..];
                let aliases = links.of(&e.path);
                let candidates = std::iter::once(rel.to_string()).chain(
                    aliases
                        .iter()
                        .filter_map(|a| a.strip_prefix(root.as_str()).map(str::to_string)),
                );
                let mut assignment = None;
                for candidate in candidates {
                    if let Some((_, why)) =
                        layout.never.iter().find(|(re, _)| re.is_match(&candidate))
                    {
                        assignment = Some(Assignment::Never {
                            node: Target::Shared(ri),
                            why: why.clone(),
                        });
                        break;
                    }
                    let Some((caps, spec, rule)) = layout
                        .members
                        .iter()
                        .find_map(|(re, spec, rule)| Some((re.captures(&candidate)?, spec, rule)))
                    else {
                        continue;
                    };
                    let captured = |n: &str| caps.name(n).map(|m| m.as_str().to_string());
                    let kind = match spec {
                        KindSpec::Fixed(k) => k.clone(),
                        KindSpec::SysctlValue => MemberKind::SysctlValue(
                            rule.key
                                .clone()
                                .or_else(|| {
                                    // A copied `/proc/sys/net/netfilter/<name>` file is named
                                    // by its last component only.
                                    captured("key").map(|k| match k.replace('/', ".") {
                                        k if k.starts_with("net.") => k,
                                        k => format!("net.netfilter.{k}"),
                                    })
                                })
                                .unwrap_or_default(),
                        ),
                        KindSpec::NetnsStats => {
                            MemberKind::NetnsConntrackStats(captured("netns").unwrap_or_default())
                        }
                    };
                    let node_name = captured("node");
                    // A folder that is no listed node is a collector's own folder.
                    if let (Some(n), Some(list)) = (&node_name, &listed)
                        && !list.contains(n)
                    {
                        continue;
                    }
                    // With a node list, what lies outside the node folders is the machine
                    // that ran the collection (an admin's laptop), no node of the cluster.
                    if listed.is_some() && node_name.is_none() && !rule.shared {
                        continue;
                    }
                    let node = if rule.shared {
                        Target::Shared(ri)
                    } else {
                        Target::Node(node_of(&mut plan, node_name))
                    };
                    assignment = Some(Assignment::Input {
                        node,
                        kind,
                        truncated_by_tool: rule.truncated,
                    });
                    break;
                }
                let assignment = assignment.unwrap_or(Assignment::Unused {
                    node: Target::Shared(ri),
                });
                plan.assignments.insert(e.path.clone(), assignment);
            }
            // A recognised root with no input of a node still is one (an empty sos report says
            // so in its own report rather than vanishing).
            if !plan.nodes.iter().any(|n| n.root == ri) {
                node_of(&mut plan, None);
            }
        }
        plan.rest = index.entries.iter().any(|e| owner(&e.path).is_none());
        Some(plan)
    }

    /// What the plan says of the member at `path`; `None` for members outside recognised roots.
    pub fn assignment(&self, path: &str) -> Option<&Assignment> {
        self.assignments.get(path)
    }

    /// The nodes a member of `target` goes to.
    pub fn nodes_of(&self, target: Target) -> Vec<usize> {
        match target {
            Target::Node(n) => vec![n],
            Target::Shared(root) => (0..self.nodes.len())
                .filter(|&n| self.nodes[n].root == root)
                .collect(),
        }
    }
}

/// The archive's links by the path they point at, to find the other names of a member.
pub struct Aliases<'i> {
    by_target: HashMap<&'i str, Vec<&'i str>>,
}

impl<'i> Aliases<'i> {
    pub fn new(index: &'i Index) -> Self {
        let mut by_target: HashMap<&str, Vec<&str>> = HashMap::new();
        for l in &index.links {
            by_target.entry(&l.target).or_default().push(&l.path);
        }
        Aliases { by_target }
    }

    /// The other names a member is reachable by: `proc/4242/net/x` is also `proc/self/net/x`
    /// (`proc/self → 4242`) and `proc/net/x` (`proc/net → self/net`).
    pub fn of(&self, path: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        if self.by_target.is_empty() {
            return found;
        }
        let mut frontier = vec![path.to_string()];
        // Links chain (sos: proc/net → self/net → 4242/net); a cycle or a long chain stops here.
        for _ in 0..8 {
            let mut next = Vec::new();
            for p in &frontier {
                // The path itself and each folder above it may be a link's target.
                let cuts = std::iter::once(p.len()).chain(
                    p.match_indices('/')
                        .map(|(i, _)| i)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev(),
                );
                for cut in cuts {
                    let Some(links) = self.by_target.get(&p[..cut]) else {
                        continue;
                    };
                    for link in links {
                        let alias = format!("{link}{}", &p[cut..]);
                        if alias != path && !found.contains(&alias) {
                            found.push(alias.clone());
                            next.push(alias);
                        }
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_known_by_every_chain_of_links_to_it() {
        let index = Index {
            links: vec![
                crate::source::Link {
                    path: "proc/net".into(),
                    target: "proc/self/net".into(),
                },
                crate::source::Link {
                    path: "proc/self".into(),
                    target: "proc/4242".into(),
                },
                crate::source::Link {
                    path: "a".into(),
                    target: "b".into(),
                },
                crate::source::Link {
                    path: "b".into(),
                    target: "a".into(),
                },
            ],
            ..Index::default()
        };
        let aliases = Aliases::new(&index);
        assert_eq!(
            aliases.of("proc/4242/net/stat/nf_conntrack"),
            [
                "proc/self/net/stat/nf_conntrack",
                "proc/net/stat/nf_conntrack"
            ]
        );
        // A cycle ends.
        assert_eq!(aliases.of("a/x"), ["b/x"]);
    }

    #[test]
    fn every_builtin_layout_compiles() {
        let layouts = builtin().expect("layouts");
        assert_eq!(layouts.len(), FILES.len());
    }
}
