//! One collection run: resolve what can be collected, run the plan of [`crate::sources`] in an
//! order that keeps counter samples evenly spaced (node facts, sample 0, the slow one-shot dumps,
//! the monitor, then the remaining samples), store each result as it arrives, and write the
//! manifest last. A source's failure is data for the manifest; only a failure to write the bundle
//! itself ends the run.

use crate::bundle::{BundleError, BundleWriter};
use crate::cli::{Config, Output, Part};
use crate::exec::{self, Deadlines, Ended, ExecError};
use crate::http;
use crate::manifest::{self, FailedRecord, Manifest, MemberRecord, Origin};
use crate::netns;
use crate::procfs;
use crate::redact::Redactor;
use crate::sources::{self, Cilium, PlanInput, Producer, Skip, Source, Step};
use crate::spool::Spool;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A failed source's stderr is kept in the manifest up to this size.
const FAILED_STDERR_CAP: usize = 64 * 1024;

/// The run could not produce a bundle.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(
        "cannot create a spool file in {dir} (set TMPDIR or use -o DIR on a writable filesystem)"
    )]
    Spool { dir: PathBuf, source: io::Error },
    #[error("post-processing {member}")]
    Rewrite { member: String, source: io::Error },
    #[error("encoding the manifest")]
    Manifest(#[source] serde_json::Error),
    #[error("interrupted")]
    Cancelled,
}

/// What a run produced, for the closing report on stderr.
#[derive(Debug)]
pub struct Outcome {
    /// The bundle's path; `None` when it went to standard output.
    pub bundle: Option<PathBuf>,
    pub members: usize,
    pub bytes: u64,
    /// Everything the manifest lists as `failed`.
    pub not_collected: Vec<FailedRecord>,
    /// Non-fatal trouble after the bundle was written (the redaction map).
    pub warnings: Vec<String>,
}

/// Collects everything `config` asks for into one bundle.
pub fn collect(config: &Config) -> Result<Outcome, CollectError> {
    let started = SystemTime::now();
    let kernel_host = procfs::read_line(&config.proc_root, "sys/kernel/hostname");
    let node = config
        .node
        .clone()
        .or_else(|| kernel_host.clone())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unknown".to_string());
    let mut redactor = config
        .redact
        .then(|| Redactor::new(host_names(config, &node, kernel_host.as_deref())));
    let shown_node = match redactor.as_mut() {
        Some(r) => r.host(&node),
        None => node.clone(),
    };
    let top = format!(
        "ctdiag-{}-{}",
        sources::file_name_safe(&shown_node),
        compact_utc(started)
    );
    let mtime = started
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (writer, spool_dir) = match &config.output {
        Output::Dir(dir) => (BundleWriter::in_dir(dir, &top, mtime)?, dir.clone()),
        Output::Stdout => (BundleWriter::to_stdout(&top, mtime)?, std::env::temp_dir()),
    };
    let mut run = Run {
        config,
        writer,
        spool_dir,
        redactor,
        members: Vec::new(),
        failed: Vec::new(),
    };
    let cilium = match config.only {
        Some(Part::Host) => Cilium::Absent(
            "not collected by this run (--only host; `ctdiag-collect cluster` reads Cilium through the node's agent pod)".into(),
        ),
        _ => run.resolve_cilium()?,
    };
    let plan = PlanInput {
        proc_root: config.proc_root.clone(),
        cilium,
        kube_proxy_url: config.kube_proxy_url.clone(),
        monitor: config.monitor,
        conntrack_netlink: procfs::module_present(&config.proc_root, "nf_conntrack_netlink"),
        ip_vs: procfs::module_present(&config.proc_root, "ip_vs"),
        // A Cilium-only run happens away from the node: these namespaces are not the node's.
        netns: match config.only {
            Some(Part::Cilium) => Default::default(),
            _ => netns::discover(&config.proc_root),
        },
    };

    for source in plan.node() {
        run.source(&source)?;
    }
    let mut sample_started = Instant::now();
    run.sample(&plan, 0)?;
    let (once, skipped) = plan.once();
    for source in &once {
        run.source(source)?;
    }
    skipped.into_iter().for_each(|s| run.skip(s));
    match plan.monitor() {
        Ok(source) => run.source(&source)?,
        Err(skip) => run.skip(skip),
    }
    for n in 1..config.samples {
        let due = sample_started + config.interval;
        exec::sleep_until(due);
        if exec::cancelled() {
            return Err(CollectError::Cancelled);
        }
        sample_started = Instant::now();
        run.sample(&plan, n)?;
    }
    run.finish(node, started)
}

/// Host names `--redact` replaces: the node name, the kernel's host name, their first labels, and
/// what the user added.
fn host_names(config: &Config, node: &str, kernel_host: Option<&str>) -> Vec<String> {
    let mut names = vec![node.to_string()];
    names.extend(kernel_host.map(str::to_string));
    let short: Vec<String> = names
        .iter()
        .filter_map(|n| n.split_once('.').map(|(s, _)| s.to_string()))
        .collect();
    names.extend(short);
    names.extend(config.redact_hosts.iter().cloned());
    names
}

/// `20261125T134000Z`, the time part of the bundle's name.
fn compact_utc(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The result of one step, before it is stored.
struct Attempt {
    spool: Spool,
    started: SystemTime,
    duration: Duration,
    exit_status: Option<i32>,
    stderr: Vec<u8>,
    /// Why the step did not fully succeed.
    error: Option<String>,
    /// The output is incomplete for a reason other than the cap (a timeout).
    partial: bool,
    skipped: bool,
}

impl Attempt {
    /// Worth a member: it succeeded, or it failed after producing output (partial data beats none).
    fn usable(&self) -> bool {
        !self.skipped && (self.error.is_none() || !self.spool.is_empty())
    }
}

struct Run<'a> {
    config: &'a Config,
    writer: BundleWriter,
    spool_dir: PathBuf,
    redactor: Option<Redactor>,
    members: Vec<MemberRecord>,
    failed: Vec<FailedRecord>,
}

impl Run<'_> {
    fn spool(&self, cap: u64) -> Result<Spool, CollectError> {
        Spool::new(&self.spool_dir, cap).map_err(|source| CollectError::Spool {
            dir: self.spool_dir.clone(),
            source,
        })
    }

    /// Decides how to run the Cilium CLI. Behind `--cilium-exec` one cheap probe
    /// (`… cilium-dbg --help`) picks the CLI's name (`cilium` in images older than the rename)
    /// and, when the prefix hangs, costs one timeout instead of one per Cilium source.
    fn resolve_cilium(&mut self) -> Result<Cilium, CollectError> {
        let Some(prefix) = &self.config.cilium_exec else {
            for name in ["cilium-dbg", "cilium"] {
                if exec::find_program(name).is_some() {
                    return Ok(Cilium::Cli {
                        prefix: vec![name.to_string()],
                        name: name.to_string(),
                    });
                }
            }
            return Ok(Cilium::Absent(
                "no cilium-dbg or cilium on PATH and no --cilium-exec (not a Cilium node?)".into(),
            ));
        };
        let mut probe = prefix.clone();
        probe.extend(["cilium-dbg".to_string(), "--help".to_string()]);
        let mut out = self.spool(1 << 20)?;
        let deadlines = Deadlines {
            timeout: self.config.timeout,
            stop_after: None,
        };
        let with = |name: &str| {
            let mut p = prefix.clone();
            p.push(name.to_string());
            Cilium::Cli {
                prefix: p,
                name: name.to_string(),
            }
        };
        Ok(match exec::run(&probe, deadlines, &mut out) {
            Err(e) => Cilium::Unreachable(format!("--cilium-exec: {}: {e}", prefix.join(" "))),
            Ok(f) if f.ended == Ended::TimedOut => Cilium::Unreachable(format!(
                "timed out after {}s (probe `{}`; not retried for each Cilium source)",
                self.config.timeout.as_secs(),
                probe.join(" ")
            )),
            Ok(f) if f.exit_status == Some(0) => with("cilium-dbg"),
            Ok(_) => with("cilium"),
        })
    }

    fn sample(&mut self, plan: &PlanInput, n: u32) -> Result<(), CollectError> {
        let (sources, skipped) = plan.sampled(n);
        for source in &sources {
            self.source(source)?;
        }
        skipped.into_iter().for_each(|s| self.skip(s));
        Ok(())
    }

    /// Whether a member belongs to the part this run collects (`--only`).
    fn wanted(&self, path: &str) -> bool {
        match self.config.only {
            None => true,
            Some(Part::Host) => true,
            Some(Part::Cilium) => path.starts_with("cilium/"),
        }
    }

    /// Runs a source's primary step and, if that gave nothing, its fallback; stores what it got.
    fn source(&mut self, source: &Source) -> Result<(), CollectError> {
        if !self.wanted(&source.path) {
            return Ok(());
        }
        let primary = self.attempt(&source.primary)?;
        if primary.usable() {
            let failure = primary
                .error
                .is_some()
                .then(|| self.failed_record(source, &source.primary, &primary));
            self.store(source, &source.primary, primary, None)?;
            if let Some(mut f) = failure {
                f.replaced_by = Some(source.path.clone());
                self.failed.push(f);
            }
            return Ok(());
        }
        let mut failed = self.failed_record(source, &source.primary, &primary);
        let Some(fallback) = &source.fallback else {
            self.failed.push(failed);
            return Ok(());
        };
        let second = self.attempt(fallback)?;
        if second.usable() {
            failed.replaced_by = Some(source.path.clone());
            self.failed.push(failed);
            let partial = second
                .error
                .is_some()
                .then(|| self.failed_record(source, fallback, &second));
            self.store(source, fallback, second, Some(&source.primary.label))?;
            if let Some(mut f) = partial {
                f.replaced_by = Some(source.path.clone());
                self.failed.push(f);
            }
        } else {
            self.failed.push(failed);
            let f = self.failed_record(source, fallback, &second);
            self.failed.push(f);
        }
        Ok(())
    }

    fn attempt(&mut self, step: &Step) -> Result<Attempt, CollectError> {
        let clock = Instant::now();
        let mut attempt = Attempt {
            spool: self.spool(self.config.max_output_bytes)?,
            started: SystemTime::now(),
            duration: Duration::ZERO,
            exit_status: None,
            stderr: Vec::new(),
            error: None,
            partial: false,
            skipped: false,
        };
        if let Some(reason) = &step.blocked {
            attempt.error = Some(format!("skipped: {reason}"));
            attempt.skipped = true;
            return Ok(attempt);
        }
        match &step.producer {
            Producer::Command { argv, stop_after } => {
                let deadlines = Deadlines {
                    timeout: stop_after.map_or(self.config.timeout, |s| s + self.config.timeout),
                    stop_after: *stop_after,
                };
                match exec::run(argv, deadlines, &mut attempt.spool) {
                    Err(ExecError::NotFound) if step.optional => {
                        attempt.error = Some(format!(
                            "skipped: {} is not installed",
                            step.label.split(' ').next().unwrap_or_default()
                        ));
                        attempt.skipped = true;
                    }
                    Err(e) => attempt.error = Some(e.to_string()),
                    Ok(f) => {
                        attempt.exit_status = f.exit_status;
                        attempt.stderr = f.stderr;
                        attempt.error = match (f.ended, f.exit_status, f.signal) {
                            (Ended::TimedOut, ..) => {
                                attempt.partial = true;
                                Some(format!(
                                    "timed out after {}s",
                                    self.config.timeout.as_secs()
                                ))
                            }
                            (Ended::Cancelled, ..) => {
                                attempt.partial = true;
                                Some("interrupted".into())
                            }
                            (Ended::Stopped | Ended::OutputCap, ..)
                            | (Ended::Exited, Some(0), _) => None,
                            (Ended::Exited, Some(code), _) => Some(format!("exit status {code}")),
                            (Ended::Exited, None, Some(sig)) => {
                                Some(format!("killed by signal {sig}"))
                            }
                            (Ended::Exited, None, None) => {
                                Some("ended without an exit status".into())
                            }
                        };
                    }
                }
            }
            Producer::File(path) => {
                if let Err(e) = procfs::copy_file(path, &mut attempt.spool) {
                    attempt.error = Some(format!("{}: {e}", path.display()));
                }
            }
            Producer::SysctlNet(root) => {
                if let Err(e) = procfs::sysctl_net(root, &mut attempt.spool) {
                    attempt.error = Some(e.to_string());
                }
            }
            Producer::ProcStatAsConntrackS(path) => {
                if let Err(e) = procfs::proc_stat_as_conntrack_s(path, &mut attempt.spool) {
                    attempt.error = Some(format!("{}: {e}", path.display()));
                }
            }
            Producer::CpuCount(root) => {
                if let Err(e) = procfs::cpu_count(root, &mut attempt.spool) {
                    attempt.error = Some(format!("{}/cpuinfo: {e}", root.display()));
                }
            }
            Producer::NetnsListing {
                proc_root,
                listing,
                capped,
            } => {
                if listing.is_empty() {
                    attempt.error = Some(format!(
                        "no network namespace readable under {}",
                        proc_root.join("*/ns/net").display()
                    ));
                } else if let Err(e) = attempt.spool.write_capped(listing.as_bytes()) {
                    attempt.error = Some(e.to_string());
                }
                attempt.partial = *capped;
            }
            Producer::NetnsStat {
                proc_root,
                pid,
                inode,
            } => {
                let path = netns::stat_path(proc_root, *pid);
                match netns::inode_of(proc_root, &pid.to_string()) {
                    Some(now) if now == *inode => {
                        if let Err(e) = procfs::copy_file(&path, &mut attempt.spool) {
                            attempt.error = Some(format!("{}: {e}", path.display()));
                        }
                    }
                    Some(now) => {
                        attempt.error = Some(format!(
                            "pid {pid} is now in network namespace {now}, not {inode}: not read"
                        ))
                    }
                    None => {
                        attempt.error = Some(format!(
                            "pid {pid} of network namespace {inode} is gone: not read"
                        ))
                    }
                }
            }
            Producer::Http(url) => match http::get(url, self.config.timeout, &mut attempt.spool) {
                Ok(resp) if resp.status == 200 => {}
                Ok(resp) => {
                    attempt.error = Some(
                        format!("HTTP {} {}", resp.status, resp.reason)
                            .trim_end()
                            .to_string(),
                    );
                    // The error page is not the member: it becomes the failure's stderr.
                    let body = std::mem::replace(&mut attempt.spool, self.spool(1)?);
                    attempt.stderr = head_of(body, FAILED_STDERR_CAP);
                }
                Err(e) => attempt.error = Some(e.to_string()),
            },
        }
        attempt.duration = clock.elapsed();
        Ok(attempt)
    }

    fn origin(&mut self, step: &Step) -> Origin {
        let mut origin = Origin::default();
        match &step.producer {
            Producer::Command { argv, .. } => {
                origin.argv = Some(argv.iter().map(|a| self.redact_text(a)).collect());
            }
            Producer::File(p) | Producer::ProcStatAsConntrackS(p) => {
                origin.file = Some(p.display().to_string())
            }
            Producer::SysctlNet(root) => {
                origin.file = Some(root.join("sys/net").display().to_string())
            }
            Producer::CpuCount(root) => {
                origin.file = Some(root.join("cpuinfo").display().to_string())
            }
            Producer::Http(url) => origin.url = Some(self.redact_text(url)),
            Producer::NetnsListing { proc_root, .. } => {
                origin.file = Some(proc_root.join("*/ns/net").display().to_string())
            }
            Producer::NetnsStat { proc_root, pid, .. } => {
                origin.file = Some(netns::stat_path(proc_root, *pid).display().to_string())
            }
        }
        origin
    }

    fn redact_text(&mut self, text: &str) -> String {
        match self.redactor.as_mut() {
            Some(r) => r.text(text),
            None => text.to_string(),
        }
    }

    fn redact_bytes(&mut self, bytes: &[u8]) -> Vec<u8> {
        match self.redactor.as_mut() {
            Some(r) => {
                let mut out = Vec::with_capacity(bytes.len());
                for line in bytes.split_inclusive(|&b| b == b'\n') {
                    r.line(line, &mut out);
                }
                out
            }
            None => bytes.to_vec(),
        }
    }

    fn failed_record(&mut self, source: &Source, step: &Step, attempt: &Attempt) -> FailedRecord {
        let stderr =
            String::from_utf8_lossy(&attempt.stderr[..attempt.stderr.len().min(FAILED_STDERR_CAP)])
                .into_owned();
        FailedRecord {
            source: self.redact_text(&step.label),
            origin: self.origin(step),
            path: source.path.clone(),
            sample: source.sample,
            exit_status: attempt.exit_status,
            error: self.redact_text(attempt.error.as_deref().unwrap_or("failed")),
            stderr: self.redact_text(&stderr),
            duration_ms: millis(attempt.duration),
            skipped: attempt.skipped,
            replaced_by: None,
        }
    }

    fn skip(&mut self, skip: Skip) {
        if !self.wanted(&skip.path) {
            return;
        }
        let record = FailedRecord {
            source: skip.label,
            origin: Origin {
                argv: skip
                    .argv
                    .map(|a| a.iter().map(|w| self.redact_text(w)).collect()),
                ..Origin::default()
            },
            path: skip.path,
            sample: skip.sample,
            exit_status: None,
            error: if skip.skipped {
                format!("skipped: {}", skip.reason)
            } else {
                skip.reason
            },
            stderr: String::new(),
            duration_ms: 0,
            skipped: skip.skipped,
            replaced_by: None,
        };
        let record = FailedRecord {
            error: self.redact_text(&record.error),
            ..record
        };
        self.failed.push(record);
    }

    /// Writes an attempt's output (filtered and redacted as needed) and its stderr as members.
    fn store(
        &mut self,
        source: &Source,
        step: &Step,
        attempt: Attempt,
        fallback_for: Option<&str>,
    ) -> Result<(), CollectError> {
        let rewrite_err = |source_err| CollectError::Rewrite {
            member: source.path.clone(),
            source: source_err,
        };
        let (mut file, mut len, truncated) = attempt.spool.finish().map_err(rewrite_err)?;
        if source.net_only {
            let mut kept = self.spool(u64::MAX)?;
            keep_net_lines(&mut file, &mut kept).map_err(rewrite_err)?;
            (file, len, _) = kept.finish().map_err(rewrite_err)?;
        }
        if self.redactor.is_some() {
            let mut redacted = self.spool(u64::MAX)?;
            if let Some(r) = self.redactor.as_mut() {
                r.stream(
                    &mut BufReader::with_capacity(1 << 16, &mut file),
                    &mut redacted,
                )
                .map_err(rewrite_err)?;
            }
            (file, len, _) = redacted.finish().map_err(rewrite_err)?;
        }
        let stored = self.writer.append(&source.path, &mut file, len)?;
        let time = source
            .sample
            .map(|_| humantime::format_rfc3339_millis(attempt.started).to_string());
        let stderr_path = (!attempt.stderr.is_empty()).then(|| sources::stderr_path(&source.path));
        let label = self.redact_text(&step.label);
        let origin = self.origin(step);
        let fallback_for = fallback_for.map(|f| self.redact_text(f));
        self.members.push(MemberRecord {
            path: source.path.clone(),
            source: label.clone(),
            origin: origin.clone(),
            fallback_for,
            exit_status: attempt.exit_status,
            duration_ms: millis(attempt.duration),
            bytes: stored.bytes,
            sha256: stored.sha256,
            xxh3_128: stored.xxh3_128,
            truncated: truncated || attempt.partial,
            sample: source.sample,
            time: time.clone(),
            stderr_path: stderr_path.clone(),
            stderr_of: None,
        });
        if let Some(path) = stderr_path {
            let text = self.redact_bytes(&attempt.stderr);
            let stored = self.writer.append_bytes(&path, &text)?;
            self.members.push(MemberRecord {
                path,
                source: format!("stderr of {label}"),
                origin,
                fallback_for: None,
                exit_status: attempt.exit_status,
                duration_ms: millis(attempt.duration),
                bytes: stored.bytes,
                sha256: stored.sha256,
                xxh3_128: stored.xxh3_128,
                truncated: attempt.stderr.len() >= exec::STDERR_CAP,
                sample: source.sample,
                time,
                stderr_path: None,
                stderr_of: Some(source.path.clone()),
            });
        }
        Ok(())
    }

    fn finish(mut self, node: String, started: SystemTime) -> Result<Outcome, CollectError> {
        let node = match self.redactor.as_mut() {
            Some(r) => r.host(&node),
            None => node,
        };
        let manifest = Manifest {
            format: manifest::FORMAT,
            format_version: manifest::FORMAT_VERSION,
            tool: manifest::Tool {
                name: "ctdiag-collect",
                version: env!("CARGO_PKG_VERSION"),
            },
            node,
            // A Cilium-only run happens away from the node: this kernel is not the node's.
            kernel: (self.config.only != Some(Part::Cilium))
                .then(|| procfs::read_line(&self.config.proc_root, "sys/kernel/osrelease"))
                .flatten(),
            started_at: humantime::format_rfc3339_seconds(started).to_string(),
            finished_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            redacted: self.redactor.is_some(),
            samples: manifest::Samples {
                count: self.config.samples,
                interval_seconds: self.config.interval.as_secs_f64(),
            },
            members: self.members,
            failed: self.failed,
        };
        let mut json = serde_json::to_vec_pretty(&manifest).map_err(CollectError::Manifest)?;
        json.push(b'\n');
        self.writer.append_bytes("manifest.json", &json)?;
        let bundle = self.writer.finish()?;
        let mut warnings = Vec::new();
        if let (Some(path), Some(r)) = (&self.config.redact_map, &self.redactor)
            && let Err(e) = write_redact_map(path, r)
        {
            warnings.push(format!(
                "cannot write the redaction map {}: {e}",
                path.display()
            ));
        }
        Ok(Outcome {
            bundle,
            members: manifest.members.len() + 1,
            bytes: manifest.members.iter().map(|m| m.bytes).sum::<u64>() + json.len() as u64,
            not_collected: manifest.failed,
            warnings,
        })
    }
}

/// The first `cap` bytes of a spool (an HTTP error body, kept as the failure's stderr).
fn head_of(spool: Spool, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok((file, _, _)) = spool.finish() {
        let _ = file.take(cap as u64).read_to_end(&mut out);
    }
    out
}

/// `sysctl -a` output restricted to `net.` keys.
fn keep_net_lines(input: &mut File, out: &mut Spool) -> io::Result<()> {
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if line.starts_with(b"net.") {
            out.write_all(&line)?;
        }
    }
}

/// The pseudonym table, readable only by its owner: it undoes the redaction.
fn write_redact_map(path: &Path, redactor: &Redactor) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    let mut w = io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut w, &redactor.map())?;
    w.write_all(b"\n")?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_time_is_compact_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_441_200);
        assert_eq!(compact_utc(t), "20261123T134000Z");
    }

    #[test]
    fn redaction_covers_node_kernel_host_and_short_names() {
        let opts = <crate::cli::Opts as clap::Parser>::parse_from([
            "x",
            "--redact",
            "--redact-host",
            "db-1",
        ]);
        let config = opts.into_config().unwrap();
        assert_eq!(
            host_names(&config, "worker-3.corp", Some("worker-3.corp.internal")),
            [
                "worker-3.corp",
                "worker-3.corp.internal",
                "worker-3",
                "worker-3",
                "db-1"
            ]
        );
    }
}
