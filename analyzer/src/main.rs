//! `ctdiag`: wiring only. Options → library → exit code.

use anyhow::Context;
use clap::Parser;
use ctdiag::cli::{AnalyzeArgs, ColorChoice, Command, Opts};
use ctdiag::render::{self, Format, Renderer};
use ctdiag::{AnalyzeOptions, ingest::IngestOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit statuses: 0 analysis done, 1 `--fail-on` threshold met, 2 usage error or nothing readable.
const FAILED_ON: u8 = 1;
const UNUSABLE: u8 = 2;

fn main() -> ExitCode {
    let opts = Opts::parse();
    match run(opts) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("ctdiag: error: {e:#}");
            ExitCode::from(UNUSABLE)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(opts: Opts) -> anyhow::Result<u8> {
    match opts.command {
        Command::Analyze(args) => analyze(args),
        Command::Facts { bundle, limits } => {
            let options = IngestOptions {
                limits: limits.limits(),
                ..IngestOptions::default()
            };
            let json = ctdiag::facts_json(&bundle, &options)?;
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &json)?;
            writeln!(out)?;
            Ok(0)
        }
        Command::Rules { rules } => {
            let set = ctdiag::rules::RuleSet::load(rules.as_deref())?;
            let mut out = std::io::stdout().lock();
            for (layer, rules) in ctdiag::rules::by_layer(&set) {
                writeln!(out, "{layer}")?;
                for r in rules {
                    let kind = format!("{:?}", r.kind).to_lowercase();
                    writeln!(out, "  {:<28} {:<12} {}", r.id, kind, r.title)?;
                    writeln!(
                        out,
                        "  {:<28} {:<12} threshold: {}",
                        "",
                        "",
                        r.threshold.split_whitespace().collect::<Vec<_>>().join(" ")
                    )?;
                }
            }
            Ok(0)
        }
    }
}

fn analyze(args: AnalyzeArgs) -> anyhow::Result<u8> {
    ctdiag::parse::conntrack_list::set_reference_parser(args.reference_parser);
    let options = AnalyzeOptions {
        ingest: IngestOptions {
            limits: args.limits.limits(),
            ..IngestOptions::default()
        },
        rules_dir: args.rules.clone(),
    };
    let progress = ProgressBar::start(&args.bundles, &options.ingest.progress);
    let report = ctdiag::analyze(&args.bundles, &options);
    progress.finish();
    let report = report?;
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    let format = args.format.unwrap_or(Format::Html);
    let text = match format {
        Format::Html => render::Html.render(&report)?,
        Format::Json => render::Json.render(&report)?,
        Format::Md => render::Markdown.render(&report)?,
        Format::Text => render::Text {
            color,
            brief: false,
        }
        .render(&report)?,
    };
    let default_file = (format == Format::Html && args.output.is_none())
        .then(|| PathBuf::from("ctdiag-report.html"));
    match args.output.clone().or(default_file) {
        Some(path) if path != Path::new("-") => {
            write_atomically(&path, text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            if format == Format::Html {
                let summary = render::Text { color, brief: true }.render(&report)?;
                let mut out = std::io::stdout().lock();
                write!(out, "{summary}")?;
                writeln!(out, "report: {}", path.display())?;
            }
        }
        _ => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    for p in &report.unreadable {
        eprintln!("ctdiag: {}", render::terminal_safe(&p.to_string()));
    }
    if report.is_empty() {
        return Ok(UNUSABLE);
    }
    let failed = args.fail_on.is_some_and(|level| {
        report
            .nodes
            .iter()
            .flat_map(|n| &n.findings)
            .any(|f| f.severity >= level)
    });
    Ok(if failed { FAILED_ON } else { 0 })
}

/// Writes next to the target and renames, so a reader never sees half a report. Only a new path
/// or a regular file is replaced that way: `-o /dev/null`, a FIFO or a terminal is written in
/// place (renaming over `/dev/null` would turn the device into a file).
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
            return f.write_all(bytes);
        }
        _ => {}
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A progress bar on stderr for analyses that take longer than a second, only on a terminal:
/// piped output and short runs stay clean.
struct ProgressBar {
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressBar {
    fn start(bundles: &[PathBuf], read: &ctdiag::source::Progress) -> ProgressBar {
        if !std::io::stderr().is_terminal() {
            return ProgressBar {
                done: None,
                thread: None,
            };
        }
        let total: u64 = bundles
            .iter()
            .filter_map(|p| ctdiag::source::Bundle::open(p).ok())
            .map(|b| b.input_bytes())
            .sum();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let read = read.clone();
        let thread = std::thread::spawn(move || {
            if rx.recv_timeout(std::time::Duration::from_secs(1)).is_ok() {
                return;
            }
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} reading bundles {bar:30} {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta})",
            ) {
                bar.set_style(style);
            }
            loop {
                bar.set_position(read.get().min(total));
                match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                    _ => break,
                }
            }
            bar.finish_and_clear();
        });
        ProgressBar {
            done: Some(tx),
            thread: Some(thread),
        }
    }

    fn finish(mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
