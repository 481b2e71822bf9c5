//! What is collected, as data: one [`Source`] per bundle member (docs/bundle-format.md), each a
//! preferred step and, where the tool may be absent, a fallback that reads procfs instead. Keeping
//! the table here, apart from the code that runs it, makes the bundle layout reviewable in one
//! screen and lets tests check it against the format document.

use crate::netns::{self, Discovery};
use std::path::PathBuf;
use std::time::Duration;

/// How a step's bytes are produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Producer {
    /// Run a command (argv), stopping it after `stop_after` when it is a stream.
    Command {
        argv: Vec<String>,
        stop_after: Option<Duration>,
    },
    /// Copy a file.
    File(PathBuf),
    /// Walk `<proc>/sys/net` and print `key = value`.
    SysctlNet(PathBuf),
    /// Print `/proc/net/stat/nf_conntrack` as `conntrack -S` rows.
    ProcStatAsConntrackS(PathBuf),
    /// Count CPUs in `<proc>/cpuinfo`.
    CpuCount(PathBuf),
    /// `GET` a URL.
    Http(String),
    /// The network-namespace listing found before collecting (`netns/namespaces.txt`); `capped`
    /// when more namespaces were found than listed.
    NetnsListing {
        proc_root: PathBuf,
        listing: String,
        capped: bool,
    },
    /// A namespace's own `/proc/net/stat/nf_conntrack`, read through a process in it
    /// (`<proc>/<pid>/net/stat/nf_conntrack`) only while that pid is still in namespace `inode`:
    /// a pid reused by a process elsewhere would give another namespace's counters.
    NetnsStat {
        proc_root: PathBuf,
        pid: u32,
        inode: u64,
    },
}

/// One way of getting a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Human label, as recorded in the manifest's `source`.
    pub label: String,
    pub producer: Producer,
    /// Set when running the step would change the node (load a kernel module): it is then
    /// recorded as skipped with this reason.
    pub blocked: Option<String>,
    /// A missing program is expected (optional tools such as `ipvsadm`): recorded as skipped.
    pub optional: bool,
}

/// One bundle member and how to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Member path relative to the bundle's top folder.
    pub path: String,
    pub primary: Step,
    pub fallback: Option<Step>,
    pub sample: Option<u32>,
    /// Keep only lines starting with `net.` (`sysctl -a` has no portable filter of its own).
    pub net_only: bool,
}

/// A source deliberately not attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub path: String,
    pub label: String,
    pub argv: Option<Vec<String>>,
    pub reason: String,
    pub sample: Option<u32>,
    /// True when not attempting was a choice (tool absent, not asked for); false when the source
    /// was wanted but could not be reached.
    pub skipped: bool,
}

/// How to run the Cilium agent CLI, decided before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cilium {
    /// argv prefix ending with the CLI's name (`cilium-dbg`), possibly behind `kubectl exec …`.
    Cli { prefix: Vec<String>, name: String },
    /// Not present here: not attempted, with the reason.
    Absent(String),
    /// Asked for (`--cilium-exec`) but not answering: every Cilium source failed for this reason.
    Unreachable(String),
}

/// What the plan is built from.
#[derive(Debug, Clone)]
pub struct PlanInput {
    pub proc_root: PathBuf,
    pub cilium: Cilium,
    pub kube_proxy_url: String,
    pub monitor: Duration,
    /// `Err(reason)` when `nf_conntrack_netlink` is not loaded (conntrack would autoload it).
    pub conntrack_netlink: Result<(), String>,
    /// `Err(reason)` when `ip_vs` is not loaded (ipvsadm would autoload it).
    pub ip_vs: Result<(), String>,
    /// The node's network namespaces, found once before collecting.
    pub netns: Discovery,
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn command(words: &[&str]) -> Step {
    Step {
        label: words.join(" "),
        producer: Producer::Command {
            argv: argv(words),
            stop_after: None,
        },
        blocked: None,
        optional: false,
    }
}

fn file(path: PathBuf) -> Step {
    Step {
        label: path.display().to_string(),
        producer: Producer::File(path),
        blocked: None,
        optional: false,
    }
}

fn source(path: &str, primary: Step, fallback: Option<Step>) -> Source {
    Source {
        path: path.to_string(),
        primary,
        fallback,
        sample: None,
        net_only: false,
    }
}

impl PlanInput {
    fn proc(&self, rel: &str) -> PathBuf {
        self.proc_root.join(rel)
    }

    fn conntrack(&self, words: &[&str]) -> Step {
        Step {
            blocked: self.conntrack_netlink.clone().err(),
            ..command(words)
        }
    }

    fn cilium(&self, args: &[&str]) -> Result<Step, Skip> {
        match &self.cilium {
            Cilium::Cli { prefix, name } => {
                let mut full = prefix.clone();
                full.extend(args.iter().map(|a| a.to_string()));
                Ok(Step {
                    label: format!("{name} {}", args.join(" ")),
                    producer: Producer::Command {
                        argv: full,
                        stop_after: None,
                    },
                    blocked: None,
                    optional: false,
                })
            }
            Cilium::Absent(reason) | Cilium::Unreachable(reason) => Err(Skip {
                path: String::new(),
                label: format!("cilium-dbg {}", args.join(" ")),
                argv: None,
                reason: reason.clone(),
                sample: None,
                skipped: matches!(self.cilium, Cilium::Absent(_)),
            }),
        }
    }

    /// Node facts, read first: they are small and say what the rest is about.
    pub fn node(&self) -> Vec<Source> {
        vec![
            source(
                "node/uname.txt",
                command(&["uname", "-a"]),
                Some(file(self.proc("version"))),
            ),
            source(
                "node/os-release.txt",
                file(PathBuf::from("/etc/os-release")),
                Some(file(PathBuf::from("/usr/lib/os-release"))),
            ),
            source("node/meminfo.txt", file(self.proc("meminfo")), None),
            source(
                "node/cpus.txt",
                // --all: the node's CPUs, not the ones this pod's cpuset allows; kube-proxy sizes
                // nf_conntrack_max from the former.
                command(&["nproc", "--all"]),
                Some(Step {
                    label: self.proc("cpuinfo").display().to_string(),
                    producer: Producer::CpuCount(self.proc_root.clone()),
                    blocked: None,
                    optional: false,
                }),
            ),
            source("node/uptime.txt", file(self.proc("uptime")), None),
        ]
    }

    /// Sources read once; the slow ones (full table dumps) are here, between the first two samples.
    pub fn once(&self) -> (Vec<Source>, Vec<Skip>) {
        let mut sources = vec![
            source(
                "kernel/dmesg.txt",
                command(&["dmesg"]),
                Some(command(&[
                    "journalctl",
                    "-k",
                    "-o",
                    "short-monotonic",
                    "--no-pager",
                ])),
            ),
            Source {
                net_only: true,
                ..source(
                    "sysctl/net.txt",
                    command(&["sysctl", "-a"]),
                    Some(Step {
                        label: self.proc("sys/net").display().to_string(),
                        producer: Producer::SysctlNet(self.proc_root.clone()),
                        blocked: None,
                        optional: false,
                    }),
                )
            },
            source(
                "conntrack/list.txt",
                self.conntrack(&["conntrack", "-L", "-o", "extended"]),
                Some(file(self.proc("net/nf_conntrack"))),
            ),
        ];
        let mut skipped = Vec::new();
        let cilium_once = [
            (
                "cilium/ct-list-global.txt",
                &["bpf", "ct", "list", "global"][..],
            ),
            ("cilium/config.txt", &["config", "-a"][..]),
            ("cilium/status.txt", &["status", "--verbose"][..]),
        ];
        for (path, args) in cilium_once {
            match self.cilium(args) {
                Ok(step) => sources.push(source(path, step, None)),
                Err(skip) => skipped.push(Skip {
                    path: path.to_string(),
                    ..skip
                }),
            }
        }
        sources.push(Source {
            path: "ipvs/connections.txt".to_string(),
            primary: Step {
                blocked: self.ip_vs.clone().err(),
                optional: true,
                ..command(&["ipvsadm", "-Lcn"])
            },
            fallback: None,
            sample: None,
            net_only: false,
        });
        sources.push(source(
            "netns/namespaces.txt",
            Step {
                label: format!(
                    "network namespaces ({}, /run/netns)",
                    self.proc("*/ns/net").display()
                ),
                producer: Producer::NetnsListing {
                    proc_root: self.proc_root.clone(),
                    listing: self.netns.listing(),
                    capped: self.netns.capped,
                },
                blocked: None,
                optional: false,
            },
            None,
        ));
        let url = self.kube_proxy_url("/proxyMode");
        sources.push(source(
            "kube-proxy/proxy-mode.txt",
            Step {
                label: format!("GET {url}"),
                producer: Producer::Http(url.clone()),
                blocked: None,
                optional: false,
            },
            None,
        ));
        (sources, skipped)
    }

    /// `cilium monitor --type drop` for `--monitor` seconds, or why not.
    pub fn monitor(&self) -> Result<Source, Skip> {
        let path = "cilium/monitor-drop.txt";
        let mut step = self
            .cilium(&["monitor", "--type", "drop"])
            .map_err(|skip| Skip {
                path: path.to_string(),
                ..skip
            })?;
        if self.monitor.is_zero() {
            return Err(Skip {
                path: path.to_string(),
                label: step.label,
                argv: match step.producer {
                    Producer::Command { argv, .. } => Some(argv),
                    _ => None,
                },
                reason: "not requested (use --monitor SECONDS; runbooks capture 30-60)".into(),
                sample: None,
                skipped: true,
            });
        }
        if let Producer::Command { stop_after, .. } = &mut step.producer {
            *stop_after = Some(self.monitor);
        }
        Ok(source(path, step, None))
    }

    /// Counters, read once per sample so the analyzer gets rates.
    pub fn sampled(&self, n: u32) -> (Vec<Source>, Vec<Skip>) {
        let at = |path: &str| path.replace("{N}", &n.to_string());
        let mut sources = vec![
            source(
                &at("conntrack/stats.{N}.txt"),
                self.conntrack(&["conntrack", "-S"]),
                Some(Step {
                    label: self.proc("net/stat/nf_conntrack").display().to_string(),
                    producer: Producer::ProcStatAsConntrackS(self.proc("net/stat/nf_conntrack")),
                    blocked: None,
                    optional: false,
                }),
            ),
            source(
                &at("conntrack/count.{N}.txt"),
                self.conntrack(&["conntrack", "-C"]),
                Some(file(self.proc("sys/net/netfilter/nf_conntrack_count"))),
            ),
            source(
                &at("conntrack/proc-stat.{N}.txt"),
                file(self.proc("net/stat/nf_conntrack")),
                None,
            ),
        ];
        // Each pod namespace's own counters: its count and drops are not the host's.
        for ns in self.netns.readable() {
            sources.push(source(
                &at(&format!("netns/{}/proc-stat.{{N}}.txt", ns.inode)),
                Step {
                    label: netns::stat_path(&self.proc_root, ns.pid)
                        .display()
                        .to_string(),
                    producer: Producer::NetnsStat {
                        proc_root: self.proc_root.clone(),
                        pid: ns.pid,
                        inode: ns.inode,
                    },
                    blocked: None,
                    optional: false,
                },
                None,
            ));
        }
        let mut skipped = Vec::new();
        let cilium_sampled = [
            ("cilium/metrics.{N}.txt", &["bpf", "metrics", "list"][..]),
            ("cilium/prometheus.{N}.txt", &["metrics", "list"][..]),
        ];
        for (path, args) in cilium_sampled {
            match self.cilium(args) {
                Ok(step) => sources.push(source(&at(path), step, None)),
                Err(skip) => skipped.push(Skip {
                    path: at(path),
                    sample: Some(n),
                    ..skip
                }),
            }
        }
        let url = self.kube_proxy_url("/metrics");
        sources.push(source(
            &at("kube-proxy/metrics.{N}.txt"),
            Step {
                label: format!("GET {url}"),
                producer: Producer::Http(url.clone()),
                blocked: None,
                optional: false,
            },
            None,
        ));
        for s in &mut sources {
            s.sample = Some(n);
        }
        (sources, skipped)
    }

    fn kube_proxy_url(&self, path: &str) -> String {
        format!("{}{path}", self.kube_proxy_url.trim_end_matches('/'))
    }
}

/// `conntrack/list.txt` → `conntrack/list.stderr.txt`.
pub fn stderr_path(path: &str) -> String {
    match path.strip_suffix(".txt") {
        Some(stem) => format!("{stem}.stderr.txt"),
        None => format!("{path}.stderr.txt"),
    }
}

/// Characters allowed in the node part of a file name; anything else becomes `_`, so a node name
/// can never add a path component.
pub fn file_name_safe(node: &str) -> String {
    let safe: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.');
    if safe.is_empty() {
        "node".to_string()
    } else {
        safe.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(cilium: Cilium) -> PlanInput {
        PlanInput {
            proc_root: PathBuf::from("/proc"),
            cilium,
            kube_proxy_url: "http://127.0.0.1:10249/".into(),
            monitor: Duration::ZERO,
            conntrack_netlink: Ok(()),
            ip_vs: Err("ip_vs not loaded".into()),
            netns: Discovery {
                host: Some(4026531840),
                namespaces: vec![
                    namespace(4026531840, true, 1),
                    namespace(4026532177, false, 4200),
                    namespace(4026532555, false, 0),
                ],
                capped: false,
            },
        }
    }

    fn namespace(inode: u64, host: bool, pid: u32) -> netns::Namespace {
        netns::Namespace {
            inode,
            host,
            pid,
            comm: None,
            pod_uid: None,
            cgroup: None,
            path: None,
        }
    }

    fn all_paths(p: &PlanInput) -> Vec<String> {
        let mut paths: Vec<String> = p.node().into_iter().map(|s| s.path).collect();
        let (once, skipped) = p.once();
        paths.extend(once.into_iter().map(|s| s.path));
        paths.extend(skipped.into_iter().map(|s| s.path));
        paths.push(match p.monitor() {
            Ok(s) => s.path,
            Err(s) => s.path,
        });
        let (sampled, skipped) = p.sampled(1);
        paths.extend(sampled.into_iter().map(|s| s.path));
        paths.extend(skipped.into_iter().map(|s| s.path));
        paths
    }

    #[test]
    fn every_planned_path_is_a_path_of_the_bundle_format() {
        let doc = include_str!("../../docs/bundle-format.md");
        let p = input(Cilium::Cli {
            prefix: vec!["cilium-dbg".into()],
            name: "cilium-dbg".into(),
        });
        for path in all_paths(&p) {
            let documented = path
                .replace(".1.", ".N.")
                .replace("/4026532177/", "/<inode>/");
            assert!(
                doc.contains(&format!("`{documented}`")),
                "{path} is not in docs/bundle-format.md"
            );
        }
    }

    #[test]
    fn each_pod_namespace_with_a_process_gets_its_own_statistics_per_sample() {
        let p = input(Cilium::Absent(String::new()));
        let (sampled, _) = p.sampled(1);
        let netns: Vec<(&str, &Producer)> = sampled
            .iter()
            .filter(|s| s.path.starts_with("netns/"))
            .map(|s| (s.path.as_str(), &s.primary.producer))
            .collect();
        assert_eq!(
            netns,
            [(
                "netns/4026532177/proc-stat.1.txt",
                &Producer::NetnsStat {
                    proc_root: PathBuf::from("/proc"),
                    pid: 4200,
                    inode: 4026532177
                }
            )]
        );
        assert_eq!(
            sampled
                .iter()
                .find(|s| s.path.starts_with("netns/"))
                .and_then(|s| s.sample),
            Some(1)
        );
        let (once, _) = p.once();
        assert!(once.iter().any(|s| s.path == "netns/namespaces.txt"));
    }

    #[test]
    fn without_cilium_its_sources_are_skipped_with_the_reason() {
        let p = input(Cilium::Absent("no cilium-dbg or cilium on PATH".into()));
        let (_, skipped) = p.once();
        assert_eq!(skipped.len(), 3);
        assert_eq!(skipped[0].path, "cilium/ct-list-global.txt");
        assert_eq!(skipped[0].label, "cilium-dbg bpf ct list global");
        let (_, skipped) = p.sampled(0);
        assert_eq!(
            skipped.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
            ["cilium/metrics.0.txt", "cilium/prometheus.0.txt"]
        );
    }

    #[test]
    fn cilium_exec_prefix_comes_before_the_cli_and_monitor_stops_after_its_time() {
        let mut p = input(Cilium::Cli {
            prefix: vec![
                "kubectl".into(),
                "exec".into(),
                "cilium-x".into(),
                "--".into(),
                "cilium-dbg".into(),
            ],
            name: "cilium-dbg".into(),
        });
        p.monitor = Duration::from_secs(30);
        let m = p.monitor().unwrap();
        assert_eq!(m.primary.label, "cilium-dbg monitor --type drop");
        assert_eq!(
            m.primary.producer,
            Producer::Command {
                argv: argv(&[
                    "kubectl",
                    "exec",
                    "cilium-x",
                    "--",
                    "cilium-dbg",
                    "monitor",
                    "--type",
                    "drop"
                ]),
                stop_after: Some(Duration::from_secs(30)),
            }
        );
    }

    #[test]
    fn conntrack_tools_are_blocked_when_they_would_load_a_module() {
        let mut p = input(Cilium::Absent(String::new()));
        p.conntrack_netlink = Err("not loaded".into());
        let (sampled, _) = p.sampled(0);
        assert_eq!(sampled[0].primary.blocked.as_deref(), Some("not loaded"));
        assert!(sampled[0].fallback.is_some());
        let (once, _) = p.once();
        let ipvs = once
            .iter()
            .find(|s| s.path == "ipvs/connections.txt")
            .unwrap();
        assert!(ipvs.primary.optional && ipvs.primary.blocked.is_some());
    }

    #[test]
    fn node_names_cannot_escape_the_file_name() {
        assert_eq!(file_name_safe("worker-3.example"), "worker-3.example");
        assert_eq!(file_name_safe("../../etc/x y"), "_.._etc_x_y");
        assert_eq!(file_name_safe(""), "node");
    }
}
