//! `conntrack -S`, `/proc/net/stat/nf_conntrack` and `conntrack -C`.
//!
//! `conntrack -S` (conntrack-tools `nfct_stats_cb`) prints `cpu=%-4u\t` then `name=value ` pairs in
//! the kernel's netlink enum order, one row per *possible* CPU. The field set changes with the
//! kernel (`ignore`/`delete` gone, `clash_resolve`/`chaintoolong` added) and newer tools print
//! `unknownN=` for attributes they do not know, so pairs are read generically. When netlink stats
//! fail, the tool prints every /proc column in decimal with the same prefix, `entries=` included.
//!
//! `/proc/net/stat/nf_conntrack` (kernel `ct_cpu_seq_show`) is a header row and one row of `%08x`
//! hex columns per CPU. Its first column, `entries`, is the namespace's global count repeated on
//! every row: it is read once, never summed. Header names changed twice (`searched`→`clashres`,
//! `delete_list`→`chainlength`); they are mapped onto the `-S` names.
//!
//! Counters are cumulative since boot (u32, they wrap): only two samples give a rate.

use super::{ChunkCtx, LineProblems};
use crate::summary::{EvidenceLine, LineSample, Merge};
use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::{digit1, space0, space1};
use nom::combinator::map_res;
use nom::multi::many0;
use nom::sequence::{preceded, separated_pair, terminated};
use nom::{IResult, Parser};
use std::collections::BTreeMap;

/// Where a statistics sample was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatsSource {
    /// `conntrack -S` (netlink).
    #[default]
    ConntrackS,
    /// `/proc/net/stat/nf_conntrack`.
    ProcStat,
}

/// One statistics sample: counters summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSummary {
    pub source: StatsSource,
    /// Counter name → sum over CPU rows.
    pub totals: BTreeMap<String, u64>,
    /// CPU rows read.
    pub cpus: u32,
    /// CPU rows with a loss counter above zero.
    pub cpus_with_loss: u32,
    /// The global entry count, where the input carries one (`entries`).
    pub entries: Option<u64>,
    /// CPU rows with a loss counter above zero, quoted under each counter that is (`drop`,
    /// `early_drop`, `insert_failed`): a row proves only what it counts.
    pub loss_rows: BTreeMap<&'static str, LineSample>,
    /// Loss counters of the CPUs that have any, by CPU (at most [`MAX_LOSS_CPUS`]).
    pub loss_by_cpu: Vec<CpuLoss>,
}

/// Loss counters of one CPU row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct CpuLoss {
    pub cpu: u32,
    pub drop: u64,
    pub early_drop: u64,
    pub insert_failed: u64,
}

/// Distinct counter names kept per sample; the rest are summed under `other`.
pub const MAX_COUNTERS: usize = 64;

/// CPUs whose loss counters are kept individually (enough for any chart; all are summed).
pub const MAX_LOSS_CPUS: usize = 512;

impl Merge for StatsSummary {
    fn combine(&mut self, other: Self) {
        self.totals.combine(other.totals);
        self.cpus = self.cpus.saturating_add(other.cpus);
        self.cpus_with_loss = self.cpus_with_loss.saturating_add(other.cpus_with_loss);
        self.entries = self.entries.max(other.entries);
        for (k, v) in other.loss_rows {
            self.loss_rows.entry(k).or_default().combine(v);
        }
        self.loss_by_cpu.extend(other.loss_by_cpu);
        self.loss_by_cpu.sort();
        self.loss_by_cpu.truncate(MAX_LOSS_CPUS);
    }
}

/// A `conntrack -S` row: `cpu=N` and its counters.
#[derive(Debug, PartialEq, Eq)]
pub struct CpuRow<'a> {
    pub cpu: u32,
    pub counters: Vec<(&'a [u8], u64)>,
}

fn number(i: &[u8]) -> IResult<&[u8], u64> {
    map_res(digit1, |d: &[u8]| {
        // digit1 guarantees ASCII digits.
        std::str::from_utf8(d)
            .map_err(|_| ())
            .and_then(|s| s.parse::<u64>().map_err(|_| ()))
    })
    .parse(i)
}

fn counter_name(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'_').parse(i)
}

fn counter(i: &[u8]) -> IResult<&[u8], (&[u8], u64)> {
    terminated(separated_pair(counter_name, tag("="), number), space0).parse(i)
}

/// `cpu=0   \tfound=0 invalid=0 … chaintoolong=0 ` (tab after the padded number, trailing space).
pub fn cpu_row(i: &[u8]) -> IResult<&[u8], CpuRow<'_>> {
    let (i, cpu) = preceded(tag("cpu="), number).parse(i)?;
    let (i, _) = space1(i)?;
    let (i, counters) = many0(counter).parse(i)?;
    Ok((
        i,
        CpuRow {
            cpu: u32::try_from(cpu).unwrap_or(u32::MAX),
            counters,
        },
    ))
}

/// Whether a line is a `conntrack -S` row (classification).
pub fn looks_like(line: &[u8]) -> bool {
    line.starts_with(b"cpu=") && line.get(4).is_some_and(u8::is_ascii_digit)
}

/// Whether a line is the `/proc/net/stat/nf_conntrack` header.
pub fn is_proc_stat_header(line: &[u8]) -> bool {
    let mut words = line
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty());
    words.next() == Some(b"entries") && words.any(|w| w == b"found" || w == b"insert_failed")
}

impl StatsSummary {
    /// Folds one `conntrack -S` line.
    pub fn add_stats_line(
        &mut self,
        ctx: &ChunkCtx,
        n: u64,
        line: &[u8],
        problems: &mut LineProblems,
    ) {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return;
        }
        match cpu_row(trimmed) {
            Ok((b"", row)) => {
                let counters = row
                    .counters
                    .iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), *v));
                self.add_row(ctx, n, line, row.cpu, counters);
            }
            _ if trimmed.starts_with(b"conntrack v") => problems.malformed(
                ctx,
                n,
                "conntrack reported an error instead of statistics",
                line,
            ),
            _ => problems.malformed(
                ctx,
                n,
                "not a `conntrack -S` row (cpu=N name=value …)",
                line,
            ),
        }
    }

    fn add_row(
        &mut self,
        ctx: &ChunkCtx,
        n: u64,
        raw: &[u8],
        cpu: u32,
        counters: impl Iterator<Item = (String, u64)>,
    ) {
        self.cpus += 1;
        let mut loss = CpuLoss {
            cpu,
            drop: 0,
            early_drop: 0,
            insert_failed: 0,
        };
        let mut chaintoolong = 0;
        for (name, value) in counters {
            match name.as_str() {
                "chaintoolong" => chaintoolong = value,
                // The namespace's own count, repeated on every CPU row: never summed.
                "entries" => {
                    self.entries = self.entries.max(Some(value));
                    continue;
                }
                "drop" => loss.drop = value,
                "early_drop" => loss.early_drop = value,
                "insert_failed" => loss.insert_failed = value,
                _ => {}
            }
            // Kernels send at most ~20 counters; a flood of invented names is folded, not kept.
            let name = if self.totals.len() >= MAX_COUNTERS && !self.totals.contains_key(&name) {
                "other".to_string()
            } else {
                name
            };
            let total = self.totals.entry(name).or_insert(0);
            *total = total.saturating_add(value);
        }
        if chaintoolong > 0 {
            self.loss_rows
                .entry("chaintoolong")
                .or_default()
                .push(EvidenceLine::new(&ctx.member, n, raw));
        }
        if loss.drop > 0 || loss.early_drop > 0 || loss.insert_failed > 0 {
            self.cpus_with_loss += 1;
            for (name, value) in [
                ("drop", loss.drop),
                ("early_drop", loss.early_drop),
                ("insert_failed", loss.insert_failed),
            ] {
                if value > 0 {
                    self.loss_rows
                        .entry(name)
                        .or_default()
                        .push(EvidenceLine::new(&ctx.member, n, raw));
                }
            }
            // Kept sorted and capped the way a merge keeps them, so one pass and merged chunks
            // agree (a fuzz finding: rows need not come in CPU order).
            let at = self.loss_by_cpu.partition_point(|l| *l <= loss);
            self.loss_by_cpu.insert(at, loss);
            self.loss_by_cpu.truncate(MAX_LOSS_CPUS);
        }
    }

    /// Parses a whole `/proc/net/stat/nf_conntrack` member: header, then hex rows.
    pub fn from_proc_stat<'a>(
        ctx: &ChunkCtx,
        lines: impl Iterator<Item = (u64, &'a [u8])>,
        problems: &mut LineProblems,
    ) -> Self {
        let mut s = StatsSummary {
            source: StatsSource::ProcStat,
            ..Default::default()
        };
        let mut header: Option<Vec<String>> = None;
        for (n, line) in lines {
            let words: Vec<&[u8]> = line
                .split(u8::is_ascii_whitespace)
                .filter(|w| !w.is_empty())
                .collect();
            if words.is_empty() {
                continue;
            }
            if is_proc_stat_header(line) {
                header = Some(words.iter().map(|w| proc_stat_name(w)).collect());
                continue;
            }
            let Some(names) = &header else {
                problems.malformed(ctx, n, "row before the `entries …` header", line);
                continue;
            };
            let values: Option<Vec<u64>> = words
                .iter()
                .map(|w| {
                    std::str::from_utf8(w)
                        .ok()
                        .and_then(|t| u64::from_str_radix(t, 16).ok())
                })
                .collect();
            match values {
                Some(v) if v.len() == names.len() => {
                    let pairs = names.iter().cloned().zip(v);
                    // Rows carry no CPU number: they come in possible-CPU order.
                    let cpu = s.cpus;
                    s.add_row(ctx, n, line, cpu, pairs);
                }
                Some(v) => problems.malformed(
                    ctx,
                    n,
                    &format!("{} columns where the header names {}", v.len(), names.len()),
                    line,
                ),
                None => problems.malformed(ctx, n, "not a row of hex counters", line),
            }
        }
        s
    }
}

/// Maps `/proc/net/stat/nf_conntrack` header names onto `conntrack -S` names.
fn proc_stat_name(word: &[u8]) -> String {
    match word {
        b"clashres" => "clash_resolve".into(),
        b"icmp_error" => "error".into(),
        b"chainlength" => "chaintoolong".into(),
        w => String::from_utf8_lossy(w).into_owned(),
    }
}

/// `conntrack -C`: one integer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CountSummary {
    pub value: Option<u64>,
    pub line: Option<EvidenceLine>,
}

impl CountSummary {
    pub fn add_line(&mut self, ctx: &ChunkCtx, n: u64, line: &[u8], problems: &mut LineProblems) {
        let t = line.trim_ascii();
        if t.is_empty() {
            return;
        }
        match (number(t), self.value) {
            (Ok((b"", v)), None) => {
                self.value = Some(v);
                self.line = Some(EvidenceLine::new(&ctx.member, n, line));
            }
            (Ok((b"", _)), Some(_)) => {
                problems.malformed(ctx, n, "a second count; the first is used", line)
            }
            _ => problems.malformed(ctx, n, "not a `conntrack -C` count", line),
        }
    }
}

impl Merge for CountSummary {
    fn combine(&mut self, other: Self) {
        let theirs_first = match (&self.line, &other.line) {
            (Some(a), Some(b)) => b.line < a.line,
            (None, Some(_)) => true,
            _ => false,
        };
        if theirs_first {
            *self = other;
        }
    }
}

/// A `conntrack -S` row's counter, for callers that only need one.
pub fn counter_value(row: &CpuRow<'_>, name: &str) -> Option<u64> {
    row.counters
        .iter()
        .find(|(k, _)| *k == name.as_bytes())
        .map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::MemberKind;
    use crate::parse::{MemberSummary, parse_all};

    fn stats(kind: MemberKind, text: &str) -> (StatsSummary, Vec<crate::problem::Problem>) {
        match parse_all(kind, "conntrack/stats.0.txt", text.as_bytes()) {
            (MemberSummary::ConntrackStats(s), p) => (s, p),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parses_a_kernel_6_row_with_tab_and_trailing_space() {
        let line = b"cpu=0   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=46 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 ";
        let (rest, row) = cpu_row(line).expect("row");
        assert_eq!(rest, b"");
        assert_eq!(row.cpu, 0);
        assert_eq!(counter_value(&row, "drop"), Some(46));
        assert_eq!(row.counters.len(), 10);
    }

    #[test]
    fn parses_an_old_kernel_row_with_ignore_and_search_restart() {
        let line = b"cpu=0 found=770 invalid=3856 ignore=42570125 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=746284";
        let (rest, row) = cpu_row(line).expect("row");
        assert_eq!(rest, b"");
        assert_eq!(counter_value(&row, "ignore"), Some(42_570_125));
        assert_eq!(counter_value(&row, "search_restart"), Some(746_284));
    }

    #[test]
    fn sums_cpus_and_quotes_rows_with_drops() {
        let (s, problems) = stats(
            MemberKind::ConntrackStats,
            "cpu=0   \tfound=1 invalid=2 insert=0 insert_failed=3 drop=46 early_drop=5 error=0 search_restart=0 clash_resolve=1 chaintoolong=0 \n\
             cpu=1   \tfound=4 invalid=0 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n\
             cpu=12  \tfound=0 invalid=0 insert=0 insert_failed=0 drop=4 early_drop=0 error=0 search_restart=0 clash_resolve=0 unknown1=7 \n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.cpus, 3);
        assert_eq!(s.totals["drop"], 50);
        assert_eq!(s.totals["insert_failed"], 3);
        assert_eq!(s.totals["unknown1"], 7);
        assert_eq!(s.cpus_with_loss, 2);
        let quoted: Vec<u64> = s.loss_rows["drop"].lines().map(|l| l.line).collect();
        assert_eq!(quoted, [1, 3]);
    }

    #[test]
    fn the_proc_fallback_of_dash_s_reports_entries_once() {
        let (s, _) = stats(
            MemberKind::ConntrackStats,
            "cpu=0   \tentries=120 searched=0 found=3 drop=0 \ncpu=1   \tentries=120 searched=0 found=1 drop=2 \n",
        );
        assert_eq!(s.entries, Some(120));
        assert!(!s.totals.contains_key("entries"));
        assert_eq!(s.totals["drop"], 2);
    }

    #[test]
    fn reads_proc_stat_hex_rows_without_summing_entries() {
        let text = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
                    0000ff00  00000000 00000010 00000000 00000002 00000000 00000000 00000000 00000000 00000003 0000002e 00000001 00000000  00000000 00000000 00000000 00000000\n\
                    0000ff00  00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000000\n";
        let (s, problems) = stats(MemberKind::ProcStatConntrack, text);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.source, StatsSource::ProcStat);
        assert_eq!(s.entries, Some(0xff00));
        assert_eq!(s.cpus, 2);
        assert_eq!(s.totals["drop"], 46);
        assert_eq!(s.totals["clash_resolve"], 1);
        assert_eq!(s.totals["error"], 0);
        assert_eq!(s.totals["chaintoolong"], 0);
        assert_eq!(s.cpus_with_loss, 1);
    }

    #[test]
    fn a_malformed_row_is_a_problem_with_its_line() {
        let (s, problems) = stats(
            MemberKind::ConntrackStats,
            "cpu=0 drop=1 \ngarbage here\nconntrack v1.4.7 (conntrack-tools): Operation not permitted\n",
        );
        assert_eq!(s.totals["drop"], 1);
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].line, Some(2));
        assert!(problems[1].reason.contains("error"));
    }

    #[test]
    fn rows_out_of_cpu_order_summarize_as_merged_chunks_do() {
        // Regression (fuzzing): loss_by_cpu kept arrival order in one pass, CPU order in a merge.
        let text = "cpu=2 found=0 drop=46 \ncpu=1 found=770 drop=46 \n";
        let (whole, _) = stats(MemberKind::ConntrackStats, text);
        let (mut a, _) = stats(MemberKind::ConntrackStats, "cpu=2 found=0 drop=46 \n");
        let (b, _) = stats(MemberKind::ConntrackStats, "cpu=1 found=770 drop=46 \n");
        a.combine(b);
        assert_eq!(whole.loss_by_cpu, a.loss_by_cpu);
        assert_eq!(
            whole.loss_by_cpu.iter().map(|l| l.cpu).collect::<Vec<_>>(),
            [1, 2]
        );
    }

    #[test]
    fn count_takes_the_first_integer() {
        let (s, p) = parse_all(
            MemberKind::ConntrackCount,
            "conntrack/count.0.txt",
            b"65536\n",
        );
        assert!(p.is_empty());
        match s {
            MemberSummary::ConntrackCount(c) => {
                assert_eq!(c.value, Some(65536));
                assert_eq!(c.line.map(|l| l.line), Some(1));
            }
            other => panic!("{other:?}"),
        }
    }
}
