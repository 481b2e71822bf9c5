//! Parsers, one module per input format, and the driver that feeds them.
//!
//! Every parser is line-sized and pure: it sees one line (`&[u8]`, no trailing `\r\n`) and its
//! 1-based number, and folds it into the summary of its member. The driver owns the I/O: it reads
//! a member into line-aligned chunks (so a chunk can be parsed on any thread and the partial
//! summaries merged, see [`crate::summary::Merge`]), counts lines, and cuts lines longer than the
//! configured cap instead of buffering them.

pub mod cilium_config;
pub mod cilium_ct;
pub mod cilium_drop;
pub mod cilium_log;
pub mod cilium_monitor;
pub mod cilium_status;
pub mod conntrack_list;
pub mod conntrack_stats;
pub mod dmesg;
pub mod ipvs;
pub mod kubectl;
pub mod manifest;
pub mod netns;
pub mod node;
pub mod prometheus;
pub mod sysctl;

use crate::classify::MemberKind;
use crate::problem::{Problem, Severity};
use crate::summary::Merge;
use std::io::{self, Read};
use std::sync::Arc;

/// Where a chunk sits: which member, and the number of its first line.
#[derive(Debug, Clone)]
pub struct ChunkCtx {
    pub member: Arc<str>,
    pub kind: MemberKind,
    pub first_line: u64,
}

/// Malformed lines of one member: the first few by line number, the rest counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineProblems {
    pub kept: Vec<Problem>,
    pub more: u64,
}

impl LineProblems {
    const KEEP: usize = 5;

    pub fn push(&mut self, problem: Problem) {
        if self.kept.len() < Self::KEEP {
            self.kept.push(problem);
        } else {
            self.more += 1;
        }
    }

    pub fn malformed(&mut self, ctx: &ChunkCtx, line: u64, reason: &str, raw: &[u8]) {
        if self.kept.len() < Self::KEEP {
            self.kept.push(
                Problem::new(&*ctx.member, Severity::Warning, reason)
                    .at_line(line)
                    .with_excerpt(raw),
            );
        } else {
            self.more += 1;
        }
    }

    /// Flattens into reportable problems: the overflow is folded into the last kept one.
    pub fn into_problems(mut self) -> Vec<Problem> {
        if let Some(last) = self.kept.last_mut() {
            last.more += self.more;
        }
        self.kept
    }
}

impl Merge for LineProblems {
    fn combine(&mut self, other: Self) {
        self.more += other.more;
        self.kept.extend(other.kept);
        self.kept.sort_by_key(|p| p.line);
        if self.kept.len() > Self::KEEP {
            self.more += (self.kept.len() - Self::KEEP) as u64;
            self.kept.truncate(Self::KEEP);
        }
    }
}

/// What parsing one member produced. One variant per input format.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MemberSummary {
    Manifest(Box<manifest::ManifestSummary>),
    Node(node::NodeSummary),
    Dmesg(Box<dmesg::DmesgSummary>),
    Sysctl(sysctl::SysctlSummary),
    ConntrackList(Box<conntrack_list::ListSummary>),
    ConntrackStats(conntrack_stats::StatsSummary),
    ConntrackCount(conntrack_stats::CountSummary),
    CiliumCt(Box<cilium_ct::CtSummary>),
    CiliumBpfMetrics(cilium_drop::BpfMetricsSummary),
    CiliumMonitor(cilium_monitor::MonitorSummary),
    Metrics(prometheus::MetricsSummary),
    CiliumConfig(cilium_config::ConfigSummary),
    CiliumStatus(cilium_status::StatusSummary),
    CiliumAgentLog(cilium_log::AgentLogSummary),
    Ipvs(ipvs::IpvsSummary),
    ProxyMode(ipvs::ProxyModeSummary),
    Kube(Box<kubectl::KubeSummary>),
    /// `netns/namespaces.txt`.
    NetnsList(netns::NetnsSummary),
    /// A pod namespace's own `/proc/net/stat/nf_conntrack`, by its inode: never the host's.
    NetnsStats(u64, conntrack_stats::StatsSummary),
    /// A named namespace's own `conntrack -S` (`ip netns exec <name> conntrack -S`).
    NetnsNamedStats(String, conntrack_stats::StatsSummary),
    /// `conntrack -S` and `-L` in one file: both summaries.
    ConntrackMixed(
        Box<conntrack_list::ListSummary>,
        conntrack_stats::StatsSummary,
    ),
    /// Recognised but not analysed (stderr captures, unknown files).
    Skipped,
}

impl Merge for MemberSummary {
    fn combine(&mut self, other: Self) {
        use MemberSummary as S;
        // A chunk lost to an internal error merges as nothing.
        if matches!(other, S::Skipped) {
            return;
        }
        if matches!(self, S::Skipped) {
            *self = other;
            return;
        }
        match (self, other) {
            (S::Node(a), S::Node(b)) => a.combine(b),
            (S::Dmesg(a), S::Dmesg(b)) => a.combine(*b),
            (S::Sysctl(a), S::Sysctl(b)) => a.combine(b),
            (S::ConntrackList(a), S::ConntrackList(b)) => a.combine(*b),
            (S::ConntrackStats(a), S::ConntrackStats(b)) => a.combine(b),
            (S::ConntrackCount(a), S::ConntrackCount(b)) => a.combine(b),
            (S::CiliumCt(a), S::CiliumCt(b)) => a.combine(*b),
            (S::CiliumMonitor(a), S::CiliumMonitor(b)) => a.combine(b),
            (S::Metrics(a), S::Metrics(b)) => a.combine(b),
            (S::CiliumConfig(a), S::CiliumConfig(b)) => a.combine(b),
            (S::CiliumStatus(a), S::CiliumStatus(b)) => a.combine(b),
            (S::CiliumAgentLog(a), S::CiliumAgentLog(b)) => a.combine(b),
            (S::Ipvs(a), S::Ipvs(b)) => a.combine(b),
            (S::ProxyMode(a), S::ProxyMode(b)) => a.combine(b),
            (S::Kube(a), S::Kube(b)) => a.combine(*b),
            (S::NetnsList(a), S::NetnsList(b)) => a.combine(b),
            (S::NetnsStats(_, a), S::NetnsStats(_, b)) => a.combine(b),
            (S::NetnsNamedStats(_, a), S::NetnsNamedStats(_, b)) => a.combine(b),
            (S::ConntrackMixed(la, sa), S::ConntrackMixed(lb, sb)) => {
                la.combine(*lb);
                sa.combine(sb);
            }
            (S::Skipped, S::Skipped) => {}
            // Chunks of one member always share a kind; whole-member kinds are never split.
            (a, b) => debug_assert!(false, "merging summaries of different kinds: {a:?} / {b:?}"),
        }
    }
}

/// Whether a kind's lines can be parsed independently. Kinds that need context from earlier lines
/// (a header row, a JSON document) are read whole and parsed by one task.
pub fn is_line_independent(kind: &MemberKind) -> bool {
    !matches!(
        kind,
        MemberKind::Manifest
            | MemberKind::ProcStatConntrack
            | MemberKind::NetnsProcStat(_)
            | MemberKind::Node(_)
            | MemberKind::CiliumBpfMetrics
            | MemberKind::KubeObjects
            | MemberKind::KubeObjectsYaml
            | MemberKind::SysctlJson
    )
}

/// Whether a kind is parsed from a stream rather than from a buffer (JSON documents that can be
/// larger than any chunk: `kubectl get pods -A -o json` of a big cluster).
pub fn is_streamed(kind: &MemberKind) -> bool {
    matches!(kind, MemberKind::KubeObjects | MemberKind::KubeObjectsYaml)
}

/// [`parse_chunk`], turning a bug in a parser into a reported problem instead of an abort: a
/// parse task runs on the rayon pool, where a panic would take the whole process down.
pub fn parse_chunk_guarded(ctx: &ChunkCtx, data: &[u8]) -> (MemberSummary, LineProblems) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse_chunk(ctx, data))) {
        Ok(parsed) => parsed,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let mut problems = LineProblems::default();
            problems.push(
                Problem::new(
                    &*ctx.member,
                    Severity::Error,
                    format!("internal error while parsing this part of the member, skipped (please report): {what}"),
                )
                .at_line(ctx.first_line),
            );
            (MemberSummary::Skipped, problems)
        }
    }
}

/// Parses one chunk of a member into a partial summary.
pub fn parse_chunk(ctx: &ChunkCtx, data: &[u8]) -> (MemberSummary, LineProblems) {
    let mut problems = LineProblems::default();
    let summary =
        match &ctx.kind {
            MemberKind::Manifest => {
                MemberSummary::Manifest(Box::new(manifest::parse(ctx, data, &mut problems)))
            }
            MemberKind::Node(field) => {
                MemberSummary::Node(node::parse(*field, ctx, data, &mut problems))
            }
            MemberKind::Dmesg => {
                let mut s = dmesg::DmesgSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    s.add_line(ctx, n, line);
                }
                MemberSummary::Dmesg(Box::new(s))
            }
            MemberKind::Sysctl => {
                let mut s = sysctl::SysctlSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    s.add_line(ctx, n, line, &mut problems);
                }
                MemberSummary::Sysctl(s)
            }
            MemberKind::SysctlJson => {
                MemberSummary::Sysctl(sysctl::SysctlSummary::from_json(ctx, data, &mut problems))
            }
            MemberKind::SysctlValue(key) => MemberSummary::Sysctl(
                sysctl::SysctlSummary::single_value(ctx, key, data, &mut problems),
            ),
            MemberKind::ConntrackList => {
                let mut s = conntrack_list::ListSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    s.add_line(ctx, n, line, &mut problems);
                }
                MemberSummary::ConntrackList(Box::new(s))
            }
            MemberKind::ConntrackStats => {
                let mut s = conntrack_stats::StatsSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    s.add_stats_line(ctx, n, line, &mut problems);
                }
                MemberSummary::ConntrackStats(s)
            }
            MemberKind::ConntrackMixed => {
                let mut list = conntrack_list::ListSummary::default();
                let mut stats = conntrack_stats::StatsSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    let trimmed = line.trim_ascii();
                    if trimmed.starts_with(b"*** ") || trimmed.is_empty() {
                        continue;
                    }
                    if conntrack_stats::looks_like(trimmed) {
                        stats.add_stats_line(ctx, n, line, &mut problems);
                    } else {
                        list.add_line(ctx, n, line, &mut problems);
                    }
                }
                MemberSummary::ConntrackMixed(Box::new(list), stats)
            }
            MemberKind::NetnsConntrackStats(name) => {
                let mut s = conntrack_stats::StatsSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    s.add_stats_line(ctx, n, line, &mut problems);
                }
                MemberSummary::NetnsNamedStats(name.clone(), s)
            }
            MemberKind::ProcStatConntrack => {
                MemberSummary::ConntrackStats(conntrack_stats::StatsSummary::from_proc_stat(
                    ctx,
                    lines(data, ctx.first_line),
                    &mut problems,
                ))
            }
            MemberKind::NetnsProcStat(inode) => MemberSummary::NetnsStats(
                *inode,
                conntrack_stats::StatsSummary::from_proc_stat(
                    ctx,
                    lines(data, ctx.first_line),
                    &mut problems,
                ),
            ),
            MemberKind::NetnsList => {
                let mut s = netns::NetnsSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    s.add_line(ctx, n, line, &mut problems);
                }
                MemberSummary::NetnsList(s)
            }
            MemberKind::ConntrackCount => {
                let mut s = conntrack_stats::CountSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    s.add_line(ctx, n, line, &mut problems);
                }
                MemberSummary::ConntrackCount(s)
            }
            MemberKind::CiliumCtList => {
                let mut s = cilium_ct::CtSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    s.add_line(ctx, n, line, &mut problems);
                }
                MemberSummary::CiliumCt(Box::new(s))
            }
            MemberKind::CiliumBpfMetrics => {
                MemberSummary::CiliumBpfMetrics(cilium_drop::parse(ctx, data, &mut problems))
            }
            MemberKind::CiliumMonitor => {
                let mut s = cilium_monitor::MonitorSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    s.add_line(ctx, n, line, &mut problems);
                }
                MemberSummary::CiliumMonitor(s)
            }
            MemberKind::Metrics => {
                let mut s = prometheus::MetricsSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    s.add_line(ctx, n, line, &mut problems);
                }
                MemberSummary::Metrics(s)
            }
            MemberKind::CiliumConfig => {
                let mut s = cilium_config::ConfigSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    s.add_line(ctx, n, line, &mut problems);
                }
                MemberSummary::CiliumConfig(s)
            }
            MemberKind::CiliumStatus => {
                let mut s = cilium_status::StatusSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    s.add_line(ctx, n, line, &mut problems);
                }
                MemberSummary::CiliumStatus(s)
            }
            MemberKind::CiliumAgentLog => {
                let mut s = cilium_log::AgentLogSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    s.add_line(ctx, n, line, &mut problems);
                }
                MemberSummary::CiliumAgentLog(s)
            }
            MemberKind::IpvsConnections => {
                let mut s = ipvs::IpvsSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    s.add_line(ctx, n, line, &mut problems);
                }
                MemberSummary::Ipvs(s)
            }
            MemberKind::KubeProxyMode => {
                let mut s = ipvs::ProxyModeSummary::default();
                for (n, line) in lines(data, ctx.first_line) {
                    s.add_line(ctx, n, line, &mut problems);
                }
                MemberSummary::ProxyMode(s)
            }
            MemberKind::KubeObjects => {
                MemberSummary::Kube(Box::new(kubectl::parse_reader(ctx, data, &mut problems)))
            }
            MemberKind::KubeObjectsYaml => MemberSummary::Kube(Box::new(
                kubectl::parse_yaml_reader(ctx, data, &mut problems),
            )),
            MemberKind::Stderr | MemberKind::Unknown => MemberSummary::Skipped,
        };
    (summary, problems)
}

/// Numbered lines of a chunk, without their `\n` or `\r\n`.
pub fn lines(data: &[u8], first_line: u64) -> impl Iterator<Item = (u64, &[u8])> {
    let mut rest = data;
    let mut n = first_line;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, tail) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = tail;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let item = (n, line);
        n += 1;
        Some(item)
    })
}

/// A line-aligned piece of a member, ready to parse on any thread.
#[derive(Debug)]
pub struct Chunk {
    pub first_line: u64,
    pub data: Vec<u8>,
}

/// Splits a stream into line-aligned chunks of at most `size` bytes. A line longer than `size`
/// cannot fit a chunk: it is reported (see [`Chunker::overlong`]) and skipped up to the next newline
/// without being buffered, so a crafted 20 MB line costs no memory.
pub struct Chunker<R> {
    reader: R,
    size: usize,
    carry: Vec<u8>,
    next_line: u64,
    eof: bool,
    /// Numbers of the lines that were too long and skipped.
    pub overlong: Vec<u64>,
}

impl<R: Read> Chunker<R> {
    pub fn new(reader: R, size: usize) -> Self {
        Chunker {
            reader,
            // Room for the newline: a line of exactly `size` bytes fits.
            size: size.max(2) + 1,
            carry: Vec::new(),
            next_line: 1,
            eof: false,
            overlong: Vec::new(),
        }
    }

    /// The longest line a chunk can hold.
    pub fn max_line(&self) -> usize {
        self.size - 1
    }

    /// Fills `buf` (cleared first) with whole lines. Returns the number of the first line, or
    /// `None` at the end of the stream.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<u64>> {
        buf.clear();
        buf.append(&mut self.carry);
        loop {
            if !self.eof && buf.len() < self.size {
                // `read_to_end` through `take` fills the spare capacity without zeroing a whole
                // chunk first: a 2 KB member costs 2 KB of copying, not a 1 MiB memset.
                let want = (self.size - buf.len()) as u64;
                buf.reserve(self.size - buf.len());
                let n = (&mut self.reader).take(want).read_to_end(buf)?;
                self.eof = (n as u64) < want;
            }
            if buf.is_empty() {
                return Ok(None);
            }
            if !self.eof {
                match memchr::memrchr(b'\n', buf) {
                    Some(last) => {
                        self.carry.extend_from_slice(&buf[last + 1..]);
                        buf.truncate(last + 1);
                    }
                    None => {
                        // A full buffer without a newline is the start of an overlong line.
                        self.overlong.push(self.next_line);
                        self.next_line += 1;
                        buf.clear();
                        self.skip_to_newline()?;
                        buf.append(&mut self.carry);
                        continue;
                    }
                }
            }
            let first = self.next_line;
            self.next_line += memchr::memchr_iter(b'\n', buf).count() as u64;
            if self.eof && !buf.ends_with(b"\n") {
                self.next_line += 1;
            }
            return Ok(Some(first));
        }
    }

    fn skip_to_newline(&mut self) -> io::Result<()> {
        let mut scratch = [0u8; 64 << 10];
        loop {
            let n = match self.reader.read(&mut scratch) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                self.eof = true;
                return Ok(());
            }
            if let Some(i) = memchr::memchr(b'\n', &scratch[..n]) {
                self.carry.extend_from_slice(&scratch[i + 1..n]);
                return Ok(());
            }
        }
    }
}

/// Parses `text` as the reader does — pieces of `lines_per_piece` lines through [`parse_chunk`],
/// merged in order — for the tests that hold it to [`parse_all`].
#[cfg(test)]
pub(crate) fn parse_in_pieces(
    kind: MemberKind,
    member: &str,
    text: &str,
    lines_per_piece: usize,
) -> MemberSummary {
    let all: Vec<(u64, &[u8])> = lines(text.as_bytes(), 1).collect();
    let mut total = MemberSummary::Skipped;
    for piece in all.chunks(lines_per_piece.max(1)) {
        let mut data = Vec::new();
        for (_, l) in piece {
            data.extend_from_slice(l);
            data.push(b'\n');
        }
        let ctx = ChunkCtx {
            member: Arc::from(member),
            kind: kind.clone(),
            first_line: piece[0].0,
        };
        total.combine(parse_chunk(&ctx, &data).0);
    }
    total
}

/// Parses a whole member sequentially (tests, small inputs): the reference the parallel path
/// must equal.
pub fn parse_all(kind: MemberKind, member: &str, data: &[u8]) -> (MemberSummary, Vec<Problem>) {
    let ctx = ChunkCtx {
        member: Arc::from(member),
        kind,
        first_line: 1,
    };
    let (s, p) = parse_chunk(&ctx, data);
    (s, p.into_problems())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(data: &[u8], size: usize) -> (Vec<(u64, Vec<u8>)>, Vec<u64>) {
        let mut c = Chunker::new(data, size);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(first) = c.next_into(&mut buf).expect("read") {
            out.push((first, buf.clone()));
        }
        (out, c.overlong)
    }

    #[test]
    fn chunks_are_line_aligned_and_numbered() {
        let data = b"a\nbb\nccc\ndddd\ne";
        let (out, overlong) = chunks(data, 6);
        let joined: Vec<u8> = out.iter().flat_map(|c| c.1.clone()).collect();
        assert_eq!(joined, data);
        for (first, chunk) in &out {
            let expected = data[..]
                .split(|b| *b == b'\n')
                .position(|l| chunk.starts_with(l) && !l.is_empty())
                .map(|i| i as u64 + 1);
            assert_eq!(Some(*first), expected, "{out:?}");
        }
        assert!(overlong.is_empty());
    }

    #[test]
    fn overlong_lines_are_cut_and_counted() {
        let mut data = b"ok 1\n".to_vec();
        data.extend(vec![b'x'; 100]);
        data.extend(b"\nok 3\n");
        let (out, overlong) = chunks(&data, 16);
        let joined: Vec<u8> = out.iter().flat_map(|c| c.1.clone()).collect();
        assert_eq!(joined, b"ok 1\nok 3\n");
        assert_eq!(overlong, vec![2]);
        let numbers: Vec<u64> = out
            .iter()
            .flat_map(|(first, d)| lines(d, *first).map(|(n, _)| n).collect::<Vec<_>>())
            .collect();
        assert_eq!(numbers, [1, 3]);
    }

    #[test]
    fn a_line_of_exactly_the_cap_fits() {
        // Regression (review): the newline counted against the cap.
        let (out, overlong) = chunks(b"12345\nabc\n", 5);
        assert!(overlong.is_empty(), "{overlong:?}");
        let joined: Vec<u8> = out.iter().flat_map(|c| c.1.clone()).collect();
        assert_eq!(joined, b"12345\nabc\n");
    }

    #[test]
    fn lines_strip_crlf() {
        let got: Vec<_> = lines(b"a\r\nb\n\nc", 10).collect();
        assert_eq!(
            got,
            vec![(10, &b"a"[..]), (11, b"b"), (12, b""), (13, b"c")]
        );
    }
}
