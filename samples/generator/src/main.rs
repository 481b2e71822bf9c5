//! `gen-samples`: writes the committed sample bundles (`all`) or a large benchmark bundle (`big`).
//! All the work is in the library; this file only turns arguments into calls.

use anyhow::Context;
use clap::{Parser, Subcommand};
use ctdiag_samples::big::Big;
use ctdiag_samples::conntrack::ListFormat;
use ctdiag_samples::scenarios::DEFAULT_SEED;
use std::path::PathBuf;

/// Reproducible generator of realistic ctdiag sample bundles.
#[derive(Parser)]
#[command(name = "gen-samples", version)]
struct Opts {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write every scenario's bundle and README, and the index, under --out.
    All {
        /// Directory holding one folder per scenario.
        #[arg(long, default_value = "samples")]
        out: PathBuf,
        /// Seed of every random choice; the committed samples use the default.
        #[arg(long, default_value_t = DEFAULT_SEED)]
        seed: u64,
    },
    /// Write one large healthy bundle (or only its conntrack list) for benchmarks, streaming.
    Big {
        /// Number of conntrack entries.
        #[arg(long)]
        entries: u64,
        /// Which printer the list imitates.
        #[arg(long, value_enum, default_value_t = ListFormat::Extended)]
        format: ListFormat,
        /// Bundle to write (.tar.gz).
        #[arg(
            long,
            conflicts_with = "list_only",
            required_unless_present = "list_only"
        )]
        out: Option<PathBuf>,
        /// Write only the conntrack list text to this file.
        #[arg(long)]
        list_only: Option<PathBuf>,
        #[arg(long, default_value_t = DEFAULT_SEED)]
        seed: u64,
    },
}

fn main() {
    if let Err(e) = run(Opts::parse()) {
        eprintln!("gen-samples: error: {e:#}");
        std::process::exit(2);
    }
}

fn run(opts: Opts) -> anyhow::Result<()> {
    match opts.command {
        Command::All { out, seed } => {
            let done = ctdiag_samples::generate_all(&out, seed)
                .with_context(|| format!("writing samples under {}", out.display()))?;
            for g in &done {
                println!(
                    "{:<22} {:>9} bytes  {:>6} entries  {}",
                    g.scenario.case,
                    g.measured.bytes,
                    g.measured.tally.entries,
                    g.path.display()
                );
            }
        }
        Command::Big {
            entries,
            format,
            out,
            list_only,
            seed,
        } => {
            let big = Big::new(entries, format, seed)?;
            if let Some(path) = list_only {
                let bytes = big
                    .write_list(&path)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("{}: {entries} entries, {bytes} bytes", path.display());
            } else if let Some(path) = out {
                let w = big
                    .write_bundle(&path)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!(
                    "{}: {entries} entries ({} bytes of list), nf_conntrack_max {}, {} bytes",
                    path.display(),
                    w.list_bytes,
                    big.max,
                    w.bytes
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        super::Opts::command().debug_assert();
    }
}
