//! The kernel log: `dmesg` in its every form, and the syslog/journal copies of it.
//!
//! The one message that matters most is conntrack refusing a new entry. The kernel
//! (`__nf_conntrack_alloc`) prints it through `net_warn_ratelimited` with `pr_fmt` adding the
//! module name, so it arrives in at least six shapes:
//! `nf_conntrack: table full, dropping packet` (3.x), the doubled `nf_conntrack: nf_conntrack: …`
//! (4.x+), `… table full in netns 4026532177, dropping packet` (6.x, any non-init namespace), the
//! 2.6-era trailing period and `ip_conntrack:` prefix, and syslog pastes hard-wrapped after
//! `full,`. A grep for the literal `table full, dropping packet` misses the netns form.
//!
//! The messages are rate limited: `net_ratelimit: N callbacks suppressed` says N more were not
//! printed, so the line count is a floor, never a count of drops.

use super::ChunkCtx;
use crate::summary::{EvidenceLine, LineSample, Merge};
use nom::branch::alt;
use nom::bytes::complete::{tag, take_till, take_while, take_while_m_n, take_while1};
use nom::character::complete::{char, digit1, space0, space1};
use nom::combinator::{map_res, opt, recognize};
use nom::sequence::{delimited, preceded, terminated};
use nom::{IResult, Parser};
use std::collections::{BTreeMap, BTreeSet};

/// At most this many distinct network namespaces are listed.
const MAX_NETNS: usize = 64;

/// When a log line was written, as far as its prefix says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stamp {
    /// Seconds since boot: `[ 8349.708818]`, `/dev/kmsg` microseconds.
    Uptime(f64),
    /// A wall-clock prefix (`dmesg -T`, syslog, ISO) — kept as text in the quoted line.
    WallClock,
    None,
}

/// What one kernel-log line says, for the lines that matter.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `table full, dropping packet`, with the namespace inode on 6.x for non-init namespaces.
    TableFull {
        netns: Option<u64>,
    },
    /// `net_ratelimit: N callbacks suppressed`.
    Suppressed(u64),
    /// `nf_conntrack version 0.5.0 (16384 buckets, 65536 max)`: the effective sizes at load.
    ModuleLoaded {
        buckets: u64,
        max: u64,
    },
    /// `nf_conntrack: expectation table full`.
    ExpectationTableFull,
    Other,
}

/// One parsed line: its stamp and its message.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub stamp: Stamp,
    pub message: Message,
}

fn float(i: &[u8]) -> IResult<&[u8], f64> {
    map_res(
        recognize((digit1, opt((char('.'), digit1)))),
        |s: &[u8]| {
            std::str::from_utf8(s)
                .map_err(|_| ())
                .and_then(|t| t.parse::<f64>().map_err(|_| ()))
        },
    )
    .parse(i)
}

fn integer(i: &[u8]) -> IResult<&[u8], u64> {
    map_res(digit1, |s: &[u8]| {
        std::str::from_utf8(s)
            .map_err(|_| ())
            .and_then(|t| t.parse::<u64>().map_err(|_| ()))
    })
    .parse(i)
}

/// `[ 8349.708818]` or `[Tue Nov 20 22:30:22 2018]`.
fn bracket_stamp(i: &[u8]) -> IResult<&[u8], Stamp> {
    let (rest, inner) = delimited(char('['), take_till(|b| b == b']'), char(']')).parse(i)?;
    let stamp = match float(inner.trim_ascii()) {
        Ok((b"", secs)) => Stamp::Uptime(secs),
        _ if inner.iter().any(u8::is_ascii_digit) && inner.len() >= 19 => Stamp::WallClock,
        _ => {
            return Err(nom::Err::Error(nom::error::Error::new(
                i,
                nom::error::ErrorKind::Verify,
            )));
        }
    };
    Ok((rest, stamp))
}

fn month(i: &[u8]) -> IResult<&[u8], &[u8]> {
    alt((
        tag("Jan"),
        tag("Feb"),
        tag("Mar"),
        tag("Apr"),
        tag("May"),
        tag("Jun"),
        tag("Jul"),
        tag("Aug"),
        tag("Sep"),
        tag("Oct"),
        tag("Nov"),
        tag("Dec"),
    ))
    .parse(i)
}

fn clock(i: &[u8]) -> IResult<&[u8], &[u8]> {
    recognize((
        digit1,
        char(':'),
        digit1,
        char(':'),
        digit1,
        opt((char('.'), digit1)),
    ))
    .parse(i)
}

/// `Feb 23 16:44:36 jobs ` — the syslog/journal date and host.
fn syslog_prefix(i: &[u8]) -> IResult<&[u8], Stamp> {
    let (i, _) = (month, space1, digit1, space1, clock, space1).parse(i)?;
    let (i, _) = terminated(take_while1(|b: u8| !b.is_ascii_whitespace()), space1).parse(i)?;
    Ok((i, Stamp::WallClock))
}

/// `2024-01-01T10:00:00,123456+00:00 ` (`dmesg --time-format iso`, `journalctl -o short-iso`),
/// optionally followed by a host name when it comes from the journal.
fn iso_prefix(i: &[u8]) -> IResult<&[u8], Stamp> {
    let (i, _) = (
        take_while_m_n(4, 4, |b: u8| b.is_ascii_digit()),
        char('-'),
        digit1,
        char('-'),
        digit1,
        char('T'),
        take_while1(|b: u8| !b.is_ascii_whitespace()),
        space1,
    )
        .parse(i)?;
    Ok((i, Stamp::WallClock))
}

/// `4,1234,8349708818,-;` — a raw `/dev/kmsg` record: level, sequence, microseconds, flags.
fn kmsg_prefix(i: &[u8]) -> IResult<&[u8], Stamp> {
    let (i, (_, _, _, _, usec, _, _)) = (
        digit1,
        char(','),
        digit1,
        char(','),
        integer,
        take_till(|b| b == b';'),
        char(';'),
    )
        .parse(i)?;
    Ok((i, Stamp::Uptime(usec as f64 / 1e6)))
}

/// `kern  :warn  : ` — `dmesg -x` facility and level.
fn decoded_level(i: &[u8]) -> IResult<&[u8], ()> {
    let (i, _) = (
        take_while1(|b: u8| b.is_ascii_lowercase()),
        space0,
        char(':'),
        take_while1(|b: u8| b.is_ascii_lowercase()),
        space0,
        char(':'),
        space0,
    )
        .parse(i)?;
    Ok((i, ()))
}

/// Strips every known prefix and returns the stamp and the bare message.
pub fn split_prefix(line: &[u8]) -> (Stamp, &[u8]) {
    let mut stamp = Stamp::None;
    let mut rest = line.trim_ascii_start();
    if let Ok((r, s)) = kmsg_prefix(rest) {
        return (s, r);
    }
    if let Ok((r, ())) = decoded_level(rest) {
        rest = r;
    }
    if let Ok((r, s)) = alt((syslog_prefix, iso_prefix)).parse(rest) {
        stamp = s;
        rest = r;
    }
    // journald's `kernel: ` tag, or `host kernel: ` after a short-monotonic stamp.
    let strip_kernel_tag = |r: &[u8]| -> Option<usize> {
        let at = memchr::memmem::find(r, b"kernel: ")?;
        let before = &r[..at];
        (before.iter().filter(|b| **b == b' ').count() <= 1).then_some(at + b"kernel: ".len())
    };
    if let Some(skip) = strip_kernel_tag(rest) {
        rest = &rest[skip..];
    }
    if let Ok((r, s)) = preceded(space0, bracket_stamp).parse(rest) {
        stamp = match (stamp, s) {
            (_, Stamp::Uptime(u)) => Stamp::Uptime(u),
            (Stamp::None, s) => s,
            (old, _) => old,
        };
        rest = r.trim_ascii_start();
        if let Some(skip) = strip_kernel_tag(rest) {
            rest = &rest[skip..];
        }
    }
    (stamp, rest.trim_ascii_start())
}

/// `nf_conntrack: `, `ip_conntrack: `, possibly twice (pr_fmt plus the literal in the format).
fn module_prefixes(i: &[u8]) -> IResult<&[u8], ()> {
    let one = terminated(
        alt((tag("nf_conntrack"), tag("ip_conntrack"))),
        (char(':'), space0),
    );
    let (i, _) = (
        one,
        opt(terminated(
            alt((tag("nf_conntrack"), tag("ip_conntrack"))),
            (char(':'), space0),
        )),
    )
        .parse(i)?;
    Ok((i, ()))
}

/// `table full[ in netns N][, dropping packet[.]]` — the tail may be cut by a hard wrap.
fn table_full(i: &[u8]) -> IResult<&[u8], Option<u64>> {
    let (i, _) = module_prefixes(i)?;
    let (i, _) = tag("table full")(i)?;
    let (i, netns) = opt(preceded(tag(" in netns "), integer)).parse(i)?;
    let (i, _) = opt((char(','), take_while(|_| true))).parse(i)?;
    Ok((i, netns))
}

/// `net_ratelimit: 3939 callbacks suppressed`
fn suppressed(i: &[u8]) -> IResult<&[u8], u64> {
    delimited(
        tag("net_ratelimit: "),
        integer,
        tag(" callbacks suppressed"),
    )
    .parse(i)
}

/// `nf_conntrack version 0.5.0 (16384 buckets, 65536 max)`
fn module_loaded(i: &[u8]) -> IResult<&[u8], (u64, u64)> {
    let (i, _) = (
        tag("nf_conntrack version "),
        take_till(|b| b == b'('),
        char('('),
    )
        .parse(i)?;
    let (i, buckets) = terminated(integer, tag(" buckets, ")).parse(i)?;
    let (i, max) = terminated(integer, tag(" max)")).parse(i)?;
    Ok((i, (buckets, max)))
}

/// Parses one kernel-log line.
pub fn log_line(line: &[u8]) -> LogLine {
    let (stamp, msg) = split_prefix(line);
    let message = if let Ok((_, netns)) = table_full(msg) {
        Message::TableFull { netns }
    } else if let Ok((_, n)) = suppressed(msg) {
        Message::Suppressed(n)
    } else if let Ok((_, (buckets, max))) = module_loaded(msg) {
        Message::ModuleLoaded { buckets, max }
    } else if module_prefixes(msg).is_ok_and(|(r, ())| r.starts_with(b"expectation table full")) {
        Message::ExpectationTableFull
    } else {
        Message::Other
    };
    LogLine { stamp, message }
}

/// Whether a line has a kernel-log shape (classification).
pub fn looks_like(line: &[u8]) -> bool {
    let parsed = log_line(line);
    parsed.stamp != Stamp::None || matches!(parsed.message, Message::TableFull { .. })
}

/// Whether a line talks about conntrack at all.
pub fn mentions_conntrack(line: &[u8]) -> bool {
    memchr::memmem::find(line, b"conntrack").is_some()
}

/// What a kernel log says about conntrack.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DmesgSummary {
    pub lines: u64,
    pub table_full: LineSample,
    /// Namespaces named by 6.x `table full in netns N` lines.
    pub netns: BTreeSet<u64>,
    /// `table full in netns N` lines per namespace inode: the [`MAX_NETNS`] smallest inodes.
    pub table_full_by_netns: BTreeMap<u64, u64>,
    /// Table-full lines in the initial namespace (no `in netns`).
    pub init_netns_lines: u64,
    /// Sum of `net_ratelimit: N callbacks suppressed`.
    pub suppressed: u64,
    pub suppressed_lines: LineSample,
    /// Uptime of the first and last table-full lines, where stamped.
    pub first_full_uptime: Option<f64>,
    pub last_full_uptime: Option<f64>,
    /// The latest uptime stamp on any line: the log's own "now".
    pub last_uptime: Option<f64>,
    pub module_loaded: Option<(u64, u64, EvidenceLine)>,
    pub expectation_full: LineSample,
}

impl DmesgSummary {
    pub fn add_line(&mut self, ctx: &ChunkCtx, n: u64, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        self.lines += 1;
        let parsed = log_line(line);
        if let Stamp::Uptime(u) = parsed.stamp {
            self.last_uptime = Some(self.last_uptime.map_or(u, |x| x.max(u)));
        }
        match parsed.message {
            Message::TableFull { netns } => {
                self.table_full
                    .push(EvidenceLine::new(&ctx.member, n, line));
                match netns {
                    Some(ns) => {
                        keep_smallest(&mut self.netns, ns);
                        count_smallest(&mut self.table_full_by_netns, ns, 1);
                    }
                    None => self.init_netns_lines += 1,
                }
                if let Stamp::Uptime(u) = parsed.stamp {
                    self.first_full_uptime = Some(self.first_full_uptime.map_or(u, |x| x.min(u)));
                    self.last_full_uptime = Some(self.last_full_uptime.map_or(u, |x| x.max(u)));
                }
            }
            Message::Suppressed(k) => {
                self.suppressed = self.suppressed.saturating_add(k);
                self.suppressed_lines
                    .push(EvidenceLine::new(&ctx.member, n, line));
            }
            Message::ModuleLoaded { buckets, max } => {
                if self
                    .module_loaded
                    .as_ref()
                    .is_none_or(|(_, _, l)| n < l.line)
                {
                    self.module_loaded =
                        Some((buckets, max, EvidenceLine::new(&ctx.member, n, line)));
                }
            }
            Message::ExpectationTableFull => {
                self.expectation_full
                    .push(EvidenceLine::new(&ctx.member, n, line))
            }
            Message::Other => {}
        }
    }
}

/// The [`MAX_NETNS`] smallest namespace numbers, whatever order they arrive in.
fn keep_smallest(set: &mut BTreeSet<u64>, ns: u64) {
    set.insert(ns);
    if set.len() > MAX_NETNS {
        set.pop_last();
    }
}

/// Adds `n` lines to namespace `ns`, keeping the [`MAX_NETNS`] smallest inodes. An inode kept
/// overall is among the smallest of every chunk, so its count is exact whatever the merge order.
fn count_smallest(counts: &mut BTreeMap<u64, u64>, ns: u64, n: u64) {
    let c = counts.entry(ns).or_insert(0);
    *c = c.saturating_add(n);
    if counts.len() > MAX_NETNS {
        counts.pop_last();
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Merge for DmesgSummary {
    fn combine(&mut self, other: Self) {
        self.lines += other.lines;
        self.table_full.combine(other.table_full);
        for ns in other.netns {
            keep_smallest(&mut self.netns, ns);
        }
        for (ns, n) in other.table_full_by_netns {
            count_smallest(&mut self.table_full_by_netns, ns, n);
        }
        self.init_netns_lines += other.init_netns_lines;
        self.suppressed = self.suppressed.saturating_add(other.suppressed);
        self.suppressed_lines.combine(other.suppressed_lines);
        self.first_full_uptime = min_opt(self.first_full_uptime, other.first_full_uptime);
        self.last_full_uptime = max_opt(self.last_full_uptime, other.last_full_uptime);
        self.last_uptime = max_opt(self.last_uptime, other.last_uptime);
        if let Some(theirs) = other.module_loaded
            && self
                .module_loaded
                .as_ref()
                .is_none_or(|m| theirs.2.line < m.2.line)
        {
            self.module_loaded = Some(theirs);
        }
        self.expectation_full.combine(other.expectation_full);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(line: &str) -> LogLine {
        log_line(line.as_bytes())
    }

    #[test]
    fn every_table_full_shape_is_recognised() {
        let cases: &[(&str, Stamp, Option<u64>)] = &[
            (
                "[1454500.910215] nf_conntrack: table full, dropping packet",
                Stamp::Uptime(1454500.910215),
                None,
            ),
            (
                "[Tue Nov 20 22:30:22 2018] nf_conntrack: table full, dropping packet",
                Stamp::WallClock,
                None,
            ),
            (
                "[2833841.216211] nf_conntrack: nf_conntrack: table full, dropping packet",
                Stamp::Uptime(2833841.216211),
                None,
            ),
            (
                "[ 8349.694398] nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet",
                Stamp::Uptime(8349.694398),
                Some(4026532177),
            ),
            (
                "Feb 23 16:44:36 jobs kernel: [38775494.393661] nf_conntrack: table full,",
                Stamp::Uptime(38775494.393661),
                None,
            ),
            (
                "kernel: [1694413.644132] nf_conntrack: nf_conntrack: table full, dropping packet",
                Stamp::Uptime(1694413.644132),
                None,
            ),
            (
                "nf_conntrack: table full, dropping packet.",
                Stamp::None,
                None,
            ),
            (
                "ip_conntrack: table full, dropping packet.",
                Stamp::None,
                None,
            ),
            (
                "kernel: nf_conntrack: table full, dropping packet",
                Stamp::None,
                None,
            ),
            (
                "Nov 25 13:40:00 worker-3 kernel: nf_conntrack: nf_conntrack: table full, dropping packet",
                Stamp::WallClock,
                None,
            ),
            (
                "2024-01-01T10:00:00,123456+00:00 nf_conntrack: table full, dropping packet",
                Stamp::WallClock,
                None,
            ),
            (
                "kern  :warn  : [  123.400000] nf_conntrack: table full, dropping packet",
                Stamp::Uptime(123.4),
                None,
            ),
            (
                "4,1234,8349708818,-;nf_conntrack: nf_conntrack: table full, dropping packet",
                Stamp::Uptime(8349.708818),
                None,
            ),
            (
                "[ 8349.708818] worker-3 kernel: nf_conntrack: table full, dropping packet",
                Stamp::Uptime(8349.708818),
                None,
            ),
        ];
        for (line, stamp, netns) in cases {
            assert_eq!(
                full(line),
                LogLine {
                    stamp: *stamp,
                    message: Message::TableFull { netns: *netns }
                },
                "{line}"
            );
        }
    }

    #[test]
    fn the_wrapped_continuation_is_not_counted_again() {
        assert_eq!(full("dropping packet").message, Message::Other);
    }

    #[test]
    fn suppressed_callbacks_and_module_load_are_read() {
        assert_eq!(
            full("[104243.800401] net_ratelimit: 3939 callbacks suppressed"),
            LogLine {
                stamp: Stamp::Uptime(104243.800401),
                message: Message::Suppressed(3939)
            }
        );
        assert_eq!(
            full("[    0.912345] nf_conntrack version 0.5.0 (16384 buckets, 65536 max)").message,
            Message::ModuleLoaded {
                buckets: 16384,
                max: 65536
            }
        );
    }

    #[test]
    fn other_lines_are_other() {
        assert_eq!(
            full("[    0.000000] Linux version 6.1.0-28-cloud-amd64").message,
            Message::Other
        );
        assert_eq!(
            full("[ 12.3] eth0: table full of surprises").message,
            Message::Other
        );
    }

    #[test]
    fn summary_tracks_namespaces_first_last_and_suppressed() {
        let ctx = ChunkCtx {
            member: "kernel/dmesg.txt".into(),
            kind: crate::classify::MemberKind::Dmesg,
            first_line: 1,
        };
        let mut s = DmesgSummary::default();
        for (n, l) in [
            "[  100.0] nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet",
            "[  105.0] net_ratelimit: 12 callbacks suppressed",
            "[  110.5] nf_conntrack: nf_conntrack: table full, dropping packet",
            "[  200.0] eth0: link up",
        ]
        .iter()
        .enumerate()
        {
            s.add_line(&ctx, n as u64 + 1, l.as_bytes());
        }
        assert_eq!(s.table_full.total, 2);
        assert_eq!(s.netns.iter().copied().collect::<Vec<_>>(), [4026532177]);
        assert_eq!(s.init_netns_lines, 1);
        assert_eq!(s.suppressed, 12);
        assert_eq!(
            (s.first_full_uptime, s.last_full_uptime),
            (Some(100.0), Some(110.5))
        );
        assert_eq!(s.last_uptime, Some(200.0));
    }

    #[test]
    fn table_full_lines_are_counted_per_namespace_whatever_the_chunking() {
        let ctx = ChunkCtx {
            member: "kernel/dmesg.txt".into(),
            kind: crate::classify::MemberKind::Dmesg,
            first_line: 1,
        };
        let lines: Vec<String> = (0..200u64)
            .map(|i| {
                format!(
                    "[ {i}.5] nf_conntrack: nf_conntrack: table full in netns {}, dropping packet",
                    4026532000 + (i * 7) % 90
                )
            })
            .collect();
        let mut whole = DmesgSummary::default();
        for (n, l) in lines.iter().enumerate() {
            whole.add_line(&ctx, n as u64 + 1, l.as_bytes());
        }
        let (mut a, mut b) = (DmesgSummary::default(), DmesgSummary::default());
        for (n, l) in lines.iter().enumerate() {
            let half = if n < 77 { &mut a } else { &mut b };
            half.add_line(&ctx, n as u64 + 1, l.as_bytes());
        }
        b.combine(a);
        assert_eq!(whole.table_full_by_netns, b.table_full_by_netns);
        assert_eq!(whole.table_full_by_netns.len(), MAX_NETNS);
        assert_eq!(
            whole.table_full_by_netns.first_key_value(),
            Some((&4026532000, &3))
        );
    }
}
