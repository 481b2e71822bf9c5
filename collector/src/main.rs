//! `ctdiag-collect`: flags → config → one collection run → a report on stderr and an exit code.
//! Standard output is reserved for the bundle itself (`-o -`), so everything else goes to stderr.
//! `ctdiag-collect cluster` exits 0 when every node's bundle was written, 1 when some node failed
//! (the others' bundles are written), 130 when interrupted.

use anyhow::Context as _;
use clap::Parser as _;
use ctdiag_collect::cli::Subcommand;
use ctdiag_collect::{Opts, Outcome, collect};
use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = Opts::parse();
    match run(opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ctdiag-collect: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut opts: Opts) -> anyhow::Result<ExitCode> {
    if let Some(Subcommand::Cluster(cluster)) = opts.command.take() {
        let outcome = ctdiag_collect::cluster::run(&cluster).context("cluster run")?;
        ctdiag_collect::cluster::report(&outcome, &cluster.output);
        return Ok(if outcome.interrupted {
            ExitCode::from(130)
        } else if outcome.failed() > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let config = opts.into_config()?;
    let expected = config.interval * config.samples.saturating_sub(1) + config.monitor;
    eprintln!(
        "ctdiag-collect: collecting ({} sample{} {}s apart{}); this takes at least {}s",
        config.samples,
        if config.samples == 1 { "" } else { "s" },
        config.interval.as_secs_f64(),
        if config.monitor.is_zero() {
            String::new()
        } else {
            format!(", cilium monitor for {}s", config.monitor.as_secs())
        },
        expected.as_secs()
    );
    let outcome = collect(&config).context("no bundle was written")?;
    report(&outcome);
    Ok(ExitCode::SUCCESS)
}

fn report(outcome: &Outcome) {
    let size = outcome.bytes as f64 / (1024.0 * 1024.0);
    match &outcome.bundle {
        Some(path) => {
            let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            eprintln!(
                "ctdiag-collect: wrote {} ({} members, {size:.1} MiB uncompressed)",
                shown.display(),
                outcome.members
            );
        }
        None => eprintln!(
            "ctdiag-collect: wrote the bundle to standard output ({} members, {size:.1} MiB uncompressed)",
            outcome.members
        ),
    }
    let (skipped, failed): (Vec<_>, Vec<_>) = outcome.not_collected.iter().partition(|f| f.skipped);
    if !failed.is_empty() {
        eprintln!("ctdiag-collect: not collected (see failed[] in manifest.json):");
        for f in failed {
            let instead = match &f.replaced_by {
                Some(_) if f.error.starts_with("timed out") => " [partial output kept]".to_string(),
                Some(p) => format!(" [{p} taken from a fallback]"),
                None => String::new(),
            };
            eprintln!(
                "  {}: {}: {}{instead}",
                f.path,
                terminal_safe(&f.source),
                terminal_safe(&f.error)
            );
        }
    }
    // One line per reason: a node without Cilium would otherwise list every Cilium member.
    let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
    for f in skipped {
        match reasons.iter_mut().find(|(r, _)| *r == f.error) {
            Some((_, paths)) => paths.push(&f.path),
            None => reasons.push((&f.error, vec![&f.path])),
        }
    }
    for (reason, paths) in reasons {
        eprintln!(
            "ctdiag-collect: {}: {}",
            terminal_safe(reason),
            paths.join(", ")
        );
    }
    for w in &outcome.warnings {
        eprintln!("ctdiag-collect: warning: {}", terminal_safe(w));
    }
}

/// Error text can quote a tool's output; control characters must not reach the terminal.
fn terminal_safe(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}
