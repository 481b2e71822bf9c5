//! `ctdiag-collect cluster`: one bundle per node of a cluster, collected through the user's
//! `kubectl`, plus the cluster's objects that name addresses (`DIR/cluster/`).
//!
//! For each node, in parallel: a short-lived privileged pod pinned to the node ([`pod`]) gets the
//! collector streamed in over `kubectl exec -i` (or has it in its `--image`), runs it with
//! `--only host` and sends the bundle back on standard output; meanwhile this process collects the
//! Cilium part with `--only cilium` through `kubectl exec` into the node's Cilium agent pod, and
//! the agent's log; [`join`] makes one bundle of them and reads it back. The pod is deleted
//! whatever happens ([`pod::PodGuard`]), on Ctrl-C too ([`interrupt`]). A node that fails is
//! reported with the reason and never stops the others.

pub mod interrupt;
pub mod join;
pub mod kubectl;
pub mod pod;

use crate::cli::{Config, Output, Part};
use crate::exec;
use kubectl::{Kubectl, KubectlError};
use pod::{PodGuard, PodPlan};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Collect every node of a cluster through kubectl: one bundle per node, plus the cluster's pods,
/// services and endpoint slices.
///
/// Each node gets a short-lived privileged pod (hostNetwork, hostPID, the host's root read-only at
/// /host, pinned with nodeName, labelled app.kubernetes.io/managed-by=ctdiag-collect, killed by
/// its activeDeadlineSeconds if nothing else does); the collector is streamed into it over
/// `kubectl exec -i` (or comes with --image) and runs chrooted in the host's root, reading only.
/// Cilium is read through `kubectl exec` into the node's agent pod. Every pod is deleted when its
/// node is done, on failure, and on Ctrl-C. Needs permission to create pods (privileged ones:
/// pick a --namespace whose Pod Security admits them) and to exec into them.
///
/// Examples:
///   ctdiag-collect cluster --all -o bundles/
///   ctdiag-collect cluster --nodes worker-3,worker-7 -o bundles/ && ctdiag analyze bundles/
///   ctdiag-collect cluster --selector node.kubernetes.io/instance-type=m5.large --parallel 8 -o b/
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["nodes", "selector", "all"])))]
pub struct ClusterOpts {
    /// These nodes (comma-separated names, as `kubectl get nodes` prints them).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub nodes: Vec<String>,

    /// The nodes matching this label selector (`kubectl get nodes -l SELECTOR`).
    #[arg(long, short = 'l', value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Every node of the cluster.
    #[arg(long)]
    pub all: bool,

    /// Directory for the bundles (`ctdiag-<node>-<UTC time>.tar.gz`) and `cluster/`.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,

    /// Nodes collected at the same time.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub parallel: u32,

    /// Namespace of the collector pods. It must admit privileged pods (Pod Security `privileged`).
    #[arg(long, short = 'n', value_name = "NAMESPACE", default_value = "default")]
    pub namespace: String,

    /// An image that has `ctdiag-collect` on its PATH: run that, stream nothing.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,

    /// Image of the collector pods when the binary is streamed in (it needs `sh`, `cat`, `chmod`,
    /// `chroot`, `sleep`).
    #[arg(long, value_name = "IMAGE", default_value = "busybox:1.36")]
    pub helper_image: String,

    /// The Linux collector binary streamed into the pods [default: this executable]. It runs in
    /// the node's root, so a static build (x86_64-unknown-linux-musl) works on any node.
    #[arg(long, value_name = "PATH", conflicts_with = "image")]
    pub binary: Option<PathBuf>,

    /// kubectl context (default: the kubeconfig's current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// The kubectl to run.
    #[arg(long, value_name = "PATH", default_value = "kubectl")]
    pub kubectl: String,

    /// Counter samples per node (see `ctdiag-collect --help`).
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub samples: u32,

    /// Seconds between counter samples.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = crate::cli::parse_seconds)]
    pub interval: Duration,

    /// Seconds each command on a node may run (the collector's --timeout).
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = crate::cli::parse_seconds)]
    pub timeout: Duration,

    /// Capture Cilium drops for this many seconds on each node (0 = off).
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = crate::cli::parse_seconds)]
    pub monitor: Duration,

    /// Seconds a pod may take to start (image pull, scheduling) before its node counts as failed.
    #[arg(long, value_name = "SECONDS", default_value = "120", value_parser = crate::cli::parse_seconds)]
    pub pod_start_timeout: Duration,

    /// Seconds a node's whole collection may take; also the pods' activeDeadlineSeconds, the
    /// bound on a pod that nobody could delete.
    #[arg(long, value_name = "SECONDS", default_value = "900", value_parser = crate::cli::parse_seconds)]
    pub node_timeout: Duration,
}

/// Why a cluster run could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot create the output directory {dir}: {source}")]
    Output {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("listing nodes: {0}")]
    Nodes(KubectlError),
    #[error("no node matches {0}")]
    NoNodes(String),
    #[error(
        "{path} is not a Linux executable, so it cannot run on a node: build one \
         (cargo build --release --target x86_64-unknown-linux-musl -p ctdiag-collect) and give it with --binary, or use --image"
    )]
    NotLinux { path: PathBuf },
    #[error("reading the collector binary {path}: {source}")]
    Binary {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("installing the interrupt handler: {0}")]
    Signals(std::io::Error),
}

/// The result of one node.
#[derive(Debug, Clone)]
pub struct NodeOutcome {
    pub node: String,
    /// The verified bundle, or why there is none.
    pub result: Result<Written, String>,
}

#[derive(Debug, Clone)]
pub struct Written {
    pub path: PathBuf,
    pub members: usize,
    pub bytes: u64,
}

/// What a cluster run produced.
#[derive(Debug, Clone, Default)]
pub struct ClusterOutcome {
    pub nodes: Vec<NodeOutcome>,
    /// Cluster files written, and those that could not be (with the reason).
    pub cluster_files: Vec<PathBuf>,
    pub cluster_failures: Vec<String>,
    pub interrupted: bool,
    pub run_id: String,
}

impl ClusterOutcome {
    pub fn failed(&self) -> usize {
        self.nodes.iter().filter(|n| n.result.is_err()).count()
    }
}

/// What every node worker shares.
struct Ctx<'a> {
    opts: &'a ClusterOpts,
    kubectl: Kubectl,
    run_id: String,
    /// The binary to stream, when not using --image.
    binary: Option<PathBuf>,
    progress: Mutex<()>,
    total: usize,
    done: AtomicUsize,
}

impl Ctx<'_> {
    fn say(&self, node: &str, what: &str) {
        let _lock = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        eprintln!("ctdiag-collect: [{node}] {}", terminal_safe(what));
    }
}

/// The cluster files: (file name, kubectl arguments).
pub const CLUSTER_FILES: &[(&str, &[&str])] = &[
    (
        "pods.json",
        &["get", "pods", "--all-namespaces", "-o", "json"],
    ),
    (
        "services.json",
        &["get", "services", "--all-namespaces", "-o", "json"],
    ),
    (
        "endpointslices.json",
        &["get", "endpointslices", "--all-namespaces", "-o", "json"],
    ),
    ("nodes.json", &["get", "nodes", "-o", "json"]),
];

/// Runs a whole cluster collection.
pub fn run(opts: &ClusterOpts) -> Result<ClusterOutcome, ClusterError> {
    std::fs::create_dir_all(&opts.output).map_err(|source| ClusterError::Output {
        dir: opts.output.clone(),
        source,
    })?;
    let mut global = Vec::new();
    if let Some(c) = &opts.context {
        global.extend(["--context".to_string(), c.clone()]);
    }
    let kubectl = Kubectl {
        program: opts.kubectl.clone(),
        global,
        timeout: Duration::from_secs(60),
    };
    let binary = match &opts.image {
        Some(_) => None,
        None => Some(linux_binary(opts.binary.as_deref())?),
    };
    let nodes = select_nodes(&kubectl, opts)?;
    interrupt::install(kubectl.clone()).map_err(ClusterError::Signals)?;
    let run_id = run_id();
    eprintln!(
        "ctdiag-collect: cluster run {run_id}: {} node{} into {}, {} at a time (pods in namespace {}, labelled {}={})",
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" },
        opts.output.display(),
        opts.parallel,
        opts.namespace,
        pod::MANAGED_BY,
        pod::MANAGER,
    );
    let mut outcome = ClusterOutcome {
        run_id: run_id.clone(),
        ..Default::default()
    };
    cluster_files(&kubectl, &opts.output, &mut outcome);

    let ctx = Ctx {
        opts,
        kubectl,
        run_id,
        binary,
        progress: Mutex::new(()),
        total: nodes.len(),
        done: AtomicUsize::new(0),
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, NodeOutcome)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..(opts.parallel as usize).min(nodes.len()).max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(node) = nodes.get(i) else { break };
                    let result = if exec::cancelled() {
                        Err("not started: interrupted".to_string())
                    } else {
                        collect_node(&ctx, node)
                    };
                    let n = ctx.done.fetch_add(1, Ordering::SeqCst) + 1;
                    match &result {
                        Ok(w) => ctx.say(
                            node,
                            &format!(
                                "wrote {} ({} members) [{n}/{}]",
                                w.path.display(),
                                w.members,
                                ctx.total
                            ),
                        ),
                        Err(e) => ctx.say(node, &format!("failed: {e} [{n}/{}]", ctx.total)),
                    }
                    results.lock().unwrap_or_else(|p| p.into_inner()).push((
                        i,
                        NodeOutcome {
                            node: node.clone(),
                            result,
                        },
                    ));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|r| r.0);
    outcome.nodes = results.into_iter().map(|r| r.1).collect();
    outcome.interrupted = interrupt::interrupted();
    Ok(outcome)
}

/// The nodes to collect, by name.
fn select_nodes(kubectl: &Kubectl, opts: &ClusterOpts) -> Result<Vec<String>, ClusterError> {
    if !opts.nodes.is_empty() {
        let mut seen = std::collections::BTreeSet::new();
        return Ok(opts
            .nodes
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty() && seen.insert(n.clone()))
            .collect());
    }
    let mut args = vec!["get", "nodes", "-o", "json"];
    if let Some(sel) = &opts.selector {
        args.extend(["-l", sel]);
    }
    let list = kubectl.json(&args).map_err(ClusterError::Nodes)?;
    let names = kubectl::item_names(&list);
    if names.is_empty() {
        return Err(ClusterError::NoNodes(match &opts.selector {
            Some(s) => format!("the selector {s:?}"),
            None => "(the cluster lists none)".into(),
        }));
    }
    Ok(names)
}

/// The collector to stream: given, or this executable; it must be a Linux ELF file.
fn linux_binary(given: Option<&Path>) -> Result<PathBuf, ClusterError> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe().map_err(|source| ClusterError::Binary {
            path: PathBuf::from("ctdiag-collect"),
            source,
        })?,
    };
    let mut head = [0u8; 4];
    let read =
        std::fs::File::open(&path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
    match read {
        Ok(()) if head == *b"\x7fELF" => Ok(path),
        Ok(()) => Err(ClusterError::NotLinux { path }),
        Err(source) => Err(ClusterError::Binary { path, source }),
    }
}

/// Six hex digits that tell this run's pods from any other's.
fn run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    format!("{:06x}", h.finish() & 0xff_ffff)
}

/// Writes `DIR/cluster/*.json`, each under a temporary name renamed once complete.
fn cluster_files(kubectl: &Kubectl, out: &Path, outcome: &mut ClusterOutcome) {
    let dir = out.join("cluster");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        outcome
            .cluster_failures
            .push(format!("{}: {e}", dir.display()));
        return;
    }
    for (name, args) in CLUSTER_FILES {
        let path = dir.join(name);
        let written = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .tempfile_in(&dir)
            .map_err(|e| e.to_string())
            .and_then(|mut tmp| {
                kubectl
                    .run(args, None, tmp.as_file_mut(), Duration::from_secs(300))
                    .map_err(|e| e.to_string())?;
                tmp.persist(&path).map_err(|e| e.error.to_string())?;
                Ok(())
            });
        match written {
            Ok(()) => outcome.cluster_files.push(path),
            Err(e) => outcome.cluster_failures.push(format!("{name}: {e}")),
        }
    }
}

/// One node, start to end. The pod guard deletes the pod on every way out.
fn collect_node(ctx: &Ctx<'_>, node: &str) -> Result<Written, String> {
    let opts = ctx.opts;
    let started = Instant::now();
    let image = opts.image.as_deref().unwrap_or(&opts.helper_image);
    let plan = PodPlan::new(node, &opts.namespace, image, &ctx.run_id, opts.node_timeout);
    let guard = PodGuard::register(plan, ctx.kubectl.clone());
    let name = guard.plan.name.clone();
    let ns = guard.plan.namespace.clone();

    ctx.say(node, &format!("creating pod {ns}/{name}"));
    let spec_file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    serde_json::to_writer(spec_file.as_file(), &guard.plan.spec()).map_err(|e| e.to_string())?;
    let mut sink = Vec::new();
    ctx.kubectl
        .run(
            &["create", "-f", "-"],
            Some(spec_file.path()),
            &mut sink,
            ctx.kubectl.timeout,
        )
        .map_err(|e| format!("creating pod {name}: {e}"))?;

    let wait = [
        "wait".to_string(),
        "-n".into(),
        ns.clone(),
        "--for=condition=Ready".into(),
        format!("pod/{name}"),
        format!("--timeout={}s", opts.pod_start_timeout.as_secs().max(1)),
    ];
    if let Err(e) = ctx.kubectl.run(
        &wait,
        None,
        &mut Vec::new(),
        opts.pod_start_timeout + Duration::from_secs(15),
    ) {
        if matches!(e, KubectlError::Cancelled) {
            return Err("interrupted".into());
        }
        let why = ctx
            .kubectl
            .json(&["get", "pod", "-n", &ns, &name, "-o", "json"])
            .ok()
            .and_then(|p| kubectl::pod_trouble(&p))
            .unwrap_or_else(|| e.to_string());
        return Err(format!(
            "pod {name} did not become ready within {}s: {why}",
            opts.pod_start_timeout.as_secs()
        ));
    }

    let exec_prefix = |interactive: bool| {
        let mut v = vec!["exec".to_string()];
        if interactive {
            v.push("-i".into());
        }
        v.extend([
            "-n".to_string(),
            ns.clone(),
            name.clone(),
            "-c".into(),
            pod::CONTAINER.into(),
            "--".into(),
        ]);
        v
    };
    if let Some(binary) = &ctx.binary {
        ctx.say(node, "streaming the collector into the pod");
        let mut args = exec_prefix(true);
        args.extend(["sh".to_string(), "-c".into(), pod::upload_script()]);
        ctx.kubectl
            .run(
                &args,
                Some(binary),
                &mut Vec::new(),
                Duration::from_secs(300),
            )
            .map_err(|e| format!("streaming the collector into pod {name}: {e}"))?;
    }

    ctx.say(node, "collecting");
    let remaining = opts.node_timeout.saturating_sub(started.elapsed());
    let host_file = tempfile::Builder::new()
        .prefix(&format!(
            ".ctdiag-{}.host.",
            crate::sources::file_name_safe(node)
        ))
        .tempfile_in(&opts.output)
        .map_err(|e| format!("a temporary file in {}: {e}", opts.output.display()))?;
    let cilium_dir = tempfile::Builder::new()
        .prefix(".ctdiag-cilium.")
        .tempdir_in(&opts.output)
        .map_err(|e| format!("a temporary directory in {}: {e}", opts.output.display()))?;

    let (host, (cilium, extras)) = std::thread::scope(|s| {
        let cilium = s.spawn(|| cilium_part(ctx, node, cilium_dir.path()));
        let mut args = exec_prefix(false);
        args.extend([
            "sh".to_string(),
            "-c".into(),
            pod::collect_script(ctx.binary.is_some()),
            "sh".into(),
        ]);
        args.extend(host_args(opts, node));
        let mut out = host_file.reopen().map_err(|e| e.to_string());
        let host = match &mut out {
            Ok(f) => ctx
                .kubectl
                .run(&args, None, f, remaining)
                .map_err(|e| format!("collecting on the node: {e}")),
            Err(e) => Err(e.clone()),
        };
        let cilium = cilium.join().unwrap_or_else(|_| {
            (
                join::CiliumPart::Missing {
                    reason: "the Cilium collection panicked".into(),
                    skipped: false,
                },
                Vec::new(),
            )
        });
        (host, cilium)
    });
    host?;
    if exec::cancelled() {
        return Err("interrupted".into());
    }
    let path = join::join(host_file.path(), &cilium, &extras, &opts.output)
        .map_err(|e| format!("bundle: {e}"))?;
    let members = join::verify(&path).map_err(|e| format!("bundle: {e}"))?;
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    drop(guard);
    Ok(Written {
        path,
        members,
        bytes,
    })
}

/// The collector's arguments on the node.
fn host_args(opts: &ClusterOpts, node: &str) -> Vec<String> {
    vec![
        "--node".into(),
        node.into(),
        "--only".into(),
        "host".into(),
        "--samples".into(),
        opts.samples.to_string(),
        "--interval".into(),
        opts.interval.as_secs_f64().to_string(),
        "--timeout".into(),
        opts.timeout.as_secs_f64().to_string(),
        "-o".into(),
        "-".into(),
    ]
}

/// The Cilium part of a node, collected here through `kubectl exec` into its agent pod, and the
/// agent's log; or why not.
fn cilium_part(ctx: &Ctx<'_>, node: &str, dir: &Path) -> (join::CiliumPart, Vec<join::Extra>) {
    let selector = format!("spec.nodeName={node}");
    let pods = ctx.kubectl.json(&[
        "get",
        "pods",
        "-n",
        "kube-system",
        "-l",
        "k8s-app=cilium",
        "--field-selector",
        &selector,
        "-o",
        "json",
    ]);
    let agent = match pods {
        Err(e) => {
            return (
                join::CiliumPart::Missing {
                    reason: format!("finding the node's Cilium agent pod: {e}"),
                    skipped: false,
                },
                Vec::new(),
            );
        }
        Ok(list) => list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["status"]["phase"] == "Running")
            .find_map(|p| p["metadata"]["name"].as_str().map(str::to_string)),
    };
    let Some(agent) = agent else {
        return (
            join::CiliumPart::Missing {
                reason: "no running Cilium agent pod on this node (kube-system, k8s-app=cilium): not a Cilium node".into(),
                skipped: true,
            },
            Vec::new(),
        );
    };
    ctx.say(node, &format!("reading Cilium through kube-system/{agent}"));
    let prefix = ctx.kubectl.argv(&[
        "-n",
        "kube-system",
        "exec",
        &agent,
        "-c",
        "cilium-agent",
        "--",
    ]);
    let config = Config {
        output: Output::Dir(dir.to_path_buf()),
        node: Some(node.to_string()),
        samples: ctx.opts.samples,
        interval: ctx.opts.interval,
        timeout: ctx.opts.timeout,
        max_output_bytes: 4 << 30,
        cilium_exec: Some(prefix),
        monitor: ctx.opts.monitor,
        kube_proxy_url: String::new(),
        proc_root: PathBuf::from("/proc"),
        redact: false,
        redact_map: None,
        redact_hosts: Vec::new(),
        only: Some(Part::Cilium),
    };
    let part = match crate::collect(&config) {
        Ok(o) => match o.bundle {
            Some(p) => join::CiliumPart::Bundle(p),
            None => join::CiliumPart::Missing {
                reason: "the Cilium collection wrote no bundle".into(),
                skipped: false,
            },
        },
        Err(e) => join::CiliumPart::Missing {
            reason: format!("collecting Cilium through kube-system/{agent}: {e}"),
            skipped: false,
        },
    };
    // The agent log states the map sizes dynamic sizing chose and the CT GC pace.
    let args = [
        "-n",
        "kube-system",
        "logs",
        &agent,
        "-c",
        "cilium-agent",
        "--limit-bytes=67108864",
    ];
    let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let clock = Instant::now();
    let extras = match ctx.kubectl.output(&args) {
        Ok(data) => vec![join::Extra {
            path: "cilium/agent-log.txt".into(),
            argv: ctx.kubectl.argv(&args),
            data,
            duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
            time,
        }],
        Err(e) => {
            ctx.say(node, &format!("no agent log: {e}"));
            Vec::new()
        }
    };
    (part, extras)
}

/// Writes the closing summary to stderr.
pub fn report(outcome: &ClusterOutcome, dir: &Path) {
    let written = outcome.nodes.len() - outcome.failed();
    eprintln!(
        "ctdiag-collect: cluster run {}{}: {written} of {} node bundle{} written to {}",
        outcome.run_id,
        if outcome.interrupted {
            " (interrupted)"
        } else {
            ""
        },
        outcome.nodes.len(),
        if outcome.nodes.len() == 1 { "" } else { "s" },
        dir.display()
    );
    for n in &outcome.nodes {
        match &n.result {
            Ok(w) => eprintln!(
                "  written  {}  {} ({} members, {:.1} MiB)",
                terminal_safe(&n.node),
                w.path.display(),
                w.members,
                w.bytes as f64 / (1024.0 * 1024.0)
            ),
            Err(e) => eprintln!(
                "  failed   {}  {}",
                terminal_safe(&n.node),
                terminal_safe(e)
            ),
        }
    }
    if !outcome.cluster_files.is_empty() {
        let names: Vec<String> = outcome
            .cluster_files
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        eprintln!(
            "  cluster  {}: {}",
            dir.join("cluster").display(),
            names.join(", ")
        );
    }
    for f in &outcome.cluster_failures {
        eprintln!("  cluster  not written: {}", terminal_safe(f));
    }
    if written > 0 {
        eprintln!("next: ctdiag analyze {}", dir.display());
    }
}

/// Text from kubectl or a node must not drive the terminal.
fn terminal_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
