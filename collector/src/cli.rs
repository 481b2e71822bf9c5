//! The command line: `Opts` is what clap parses, turned once into a checked [`Config`] that the
//! rest of the collector reads. Every flag documents its default and why it has it, because the
//! people running this are on a node during an incident, reading `--help` and nothing else.

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Collect a node's connection-tracking state into one bundle for `ctdiag analyze`.
///
/// Reads only: never flushes conntrack, writes sysctls or loads kernel modules. Each source has a
/// timeout and a size cap; a source that is missing, fails or hangs is recorded in the bundle's
/// manifest and collection goes on. The bundle is written under a temporary name and renamed when
/// complete.
///
/// Examples:
///   ctdiag-collect -o /tmp
///   kubectl exec -n NAMESPACE POD -- ctdiag-collect -o - > bundle.tgz   (privileged hostNetwork pod)
///   kubectl debug node/NODE -it --image=IMAGE -- chroot /host ctdiag-collect -o /tmp
///   ctdiag-collect --cilium-exec 'kubectl -n kube-system exec cilium-x7k2p --' --monitor 30
///   ctdiag-collect cluster --all -o bundles/            (every node, through kubectl)
#[derive(Debug, Parser)]
#[command(
    name = "ctdiag-collect",
    version,
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true
)]
pub struct Opts {
    /// Directory to write `ctdiag-<node>-<UTC time>.tar.gz` into, or `-` for standard output
    /// (for `kubectl exec … > bundle.tgz`). Large outputs are spooled to temporary files in this
    /// directory (in $TMPDIR with `-`), so it needs room for about one conntrack table.
    #[arg(short = 'o', long = "output", value_name = "DIR", default_value = ".")]
    pub output: String,

    /// Node name used in the bundle name and manifest [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,

    /// How many times counters (conntrack -S/-C, /proc/net/stat/nf_conntrack, Cilium and
    /// kube-proxy metrics) are read; two or more give the analyzer rates.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub samples: u32,

    /// Seconds between counter samples.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub interval: Duration,

    /// Seconds each command may run before its process group is killed and the source is
    /// recorded as timed out.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    pub timeout: Duration,

    /// Largest output kept from one source (suffixes K, M, G, T in powers of 1024). Past it the
    /// command is stopped and the member is marked `truncated`. The default holds a table of
    /// several million entries; output is streamed, so the cap costs disk, not memory.
    #[arg(long, value_name = "BYTES", default_value = "4G", value_parser = parse_bytes)]
    pub max_output_bytes: u64,

    /// Run a Cilium agent CLI through this command prefix, e.g.
    /// 'kubectl -n kube-system exec cilium-x7k2p --'. Split on spaces (quotes group words).
    /// Without it, `cilium-dbg` or `cilium` on PATH is used; with neither, Cilium is skipped.
    #[arg(long, value_name = "PREFIX")]
    pub cilium_exec: Option<String>,

    /// Capture `cilium monitor --type drop` for this many seconds (0 = off; runbooks use 30–60).
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = parse_seconds)]
    pub monitor: Duration,

    /// Base URL of kube-proxy's metrics server (plain HTTP; `/metrics` and `/proxyMode` are read).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:10249")]
    pub kube_proxy_url: String,

    /// Where procfs is mounted, for the file fallbacks (e.g. /host/proc). Files under `net/`
    /// describe the network namespace of the process that reads them: run in the host network
    /// namespace (hostNetwork pod, or `kubectl debug node/…` then `chroot /host`).
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,

    /// Replace every IPv4/IPv6 address and the node's host names with consistent pseudonyms
    /// (10.0.0.0/8, fd00::/8, redacted-host-N), so the bundle can go on a public ticket.
    /// Loopback and unspecified addresses and all ports are kept; the diagnosis is unchanged.
    #[arg(long)]
    pub redact: bool,

    /// With --redact, write the pseudonym table (original → pseudonym, JSON, mode 0600) to FILE.
    /// Without this flag the table is never written anywhere.
    #[arg(long, value_name = "FILE", requires = "redact")]
    pub redact_map: Option<PathBuf>,

    /// With --redact, also replace this host name (repeatable); the node name and the kernel's
    /// host name are always replaced.
    #[arg(long = "redact-host", value_name = "NAME", requires = "redact")]
    pub redact_hosts: Vec<String>,

    /// Collect only one part: `host` (netfilter, kernel, sysctls, kube-proxy, IPVS: what is read
    /// on the node itself, Cilium left out) or `cilium` (only the agent CLI, through
    /// --cilium-exec). `ctdiag-collect cluster` runs the two apart, host on the node and Cilium
    /// through `kubectl exec` into the node's agent pod, and joins them into one bundle.
    #[arg(long, value_enum, value_name = "PART")]
    pub only: Option<Part>,

    #[command(subcommand)]
    pub command: Option<Subcommand>,
}

/// The parts of a collection that can be run apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Everything read on the node itself.
    Host,
    /// The Cilium agent's CLI.
    Cilium,
}

/// Modes other than collecting on this node.
#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    /// Collect every node of a cluster through kubectl: one bundle per node, plus the cluster's
    /// pods, services and endpoint slices.
    Cluster(crate::cluster::ClusterOpts),
}

/// Where the bundle goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A directory: the bundle is written under a temporary name there and renamed when complete.
    Dir(PathBuf),
    /// Standard output: nothing to rename, the reader sees the stream end when it is complete.
    Stdout,
}

/// Everything a collection run needs, checked once.
#[derive(Debug, Clone)]
pub struct Config {
    pub output: Output,
    /// Node name as given or found; sanitized only where it becomes a file name.
    pub node: Option<String>,
    pub samples: u32,
    pub interval: Duration,
    pub timeout: Duration,
    pub max_output_bytes: u64,
    /// Words that come before the Cilium CLI's name, when it runs elsewhere.
    pub cilium_exec: Option<Vec<String>>,
    pub monitor: Duration,
    pub kube_proxy_url: String,
    pub proc_root: PathBuf,
    pub redact: bool,
    pub redact_map: Option<PathBuf>,
    pub redact_hosts: Vec<String>,
    /// Only this part, when set.
    pub only: Option<Part>,
}

/// A flag value that parsed but cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--cilium-exec {0:?}: {1}")]
    CiliumExec(String, String),
    #[error(
        "--cilium-exec is empty: give a command prefix such as 'kubectl -n kube-system exec POD --'"
    )]
    EmptyCiliumExec,
}

impl Opts {
    /// Checks what clap cannot and builds the run's configuration.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let output = if self.output == "-" {
            Output::Stdout
        } else {
            Output::Dir(PathBuf::from(self.output))
        };
        let cilium_exec = match self.cilium_exec {
            None => None,
            Some(prefix) => {
                let words = split_words(&prefix)
                    .map_err(|e| ConfigError::CiliumExec(prefix.clone(), e.to_string()))?;
                if words.is_empty() {
                    return Err(ConfigError::EmptyCiliumExec);
                }
                Some(words)
            }
        };
        Ok(Config {
            output,
            node: self.node.filter(|n| !n.trim().is_empty()),
            samples: self.samples,
            interval: self.interval,
            timeout: self.timeout,
            max_output_bytes: self.max_output_bytes,
            cilium_exec,
            monitor: self.monitor,
            kube_proxy_url: self.kube_proxy_url,
            proc_root: self.proc_root,
            redact: self.redact,
            redact_map: self.redact_map,
            redact_hosts: self.redact_hosts,
            only: self.only,
        })
    }
}

/// Seconds as a non-negative decimal (`5`, `0.5`), the unit runbooks use.
pub(crate) fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{s:?} is not a usable number of seconds"))
}

/// A byte count with an optional binary suffix: `1073741824`, `512M`, `4G`.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, shift) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 10),
        Some('M') => (&t[..t.len() - 1], 20),
        Some('G') => (&t[..t.len() - 1], 30),
        Some('T') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a byte count (e.g. 1073741824, 512M, 4G)"))?;
    n.checked_mul(1u64 << shift)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SplitError {
    #[error("unterminated quote")]
    Unterminated,
}

/// Splits a prefix the way a shell would for the simple cases runbooks contain: words separated by
/// blanks, `'…'` and `"…"` grouping, backslash escaping one character. No expansion happens, so
/// nothing in the prefix is ever interpreted by a shell.
pub fn split_words(s: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(SplitError::Unterminated),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => return Err(SplitError::Unterminated),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(SplitError::Unterminated),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_definition_is_consistent() {
        Opts::command().debug_assert();
    }

    #[test]
    fn every_flag_has_help() {
        for arg in Opts::command().get_arguments() {
            assert!(arg.get_help().is_some(), "--{} has no help", arg.get_id());
        }
    }

    #[test]
    fn splits_a_kubectl_prefix_with_quotes() {
        assert_eq!(
            split_words("kubectl -n kube-system exec 'cilium x' \"a b\" --").unwrap(),
            [
                "kubectl",
                "-n",
                "kube-system",
                "exec",
                "cilium x",
                "a b",
                "--"
            ]
        );
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_words("a 'b"), Err(SplitError::Unterminated));
    }

    #[test]
    fn parses_byte_counts_with_binary_suffixes() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("4g"), Ok(4 << 30));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("99999999999T").is_err());
    }

    #[test]
    fn parses_fractional_seconds_and_rejects_negative() {
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }

    #[test]
    fn dash_means_standard_output() {
        let opts = Opts::try_parse_from(["ctdiag-collect", "-o", "-"]).unwrap();
        assert_eq!(opts.into_config().unwrap().output, Output::Stdout);
    }

    #[test]
    fn redact_map_requires_redact() {
        assert!(Opts::try_parse_from(["ctdiag-collect", "--redact-map", "m.json"]).is_err());
    }
}
