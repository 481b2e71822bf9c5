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
use std::collections::BTreeMap;

/// At most this many distinct network namespaces are listed.
pub const MAX_NETNS: usize = 64;

/// When a log line was written, as far as its prefix says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stamp {
    /// Seconds since boot: `[ 8349.708818]`, `/dev/kmsg` microseconds.
    Uptime(f64),
    /// A wall-clock prefix (`dmesg -T`, syslog, ISO), when its date could be read.
    WallClock(Option<Wall>),
    None,
}

/// A wall-clock time as a log prefix gives it. Times without a zone are taken as UTC (the
/// collector runs with the node's zone, which is UTC on every managed Kubernetes image; a paste
/// from elsewhere may be off by its offset, which never turns hours into days).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub enum Wall {
    /// Seconds since the Unix epoch.
    Epoch(f64),
    /// syslog's `Feb 23 16:44:36` has no year: resolved against the collection time later.
    Yearless { month: u8, day: u8, secs: u32 },
}

impl Wall {
    /// Seconds since the epoch; a year-less stamp takes the year of `now` (or the one before, when
    /// that would put it more than a day after `now`).
    pub fn epoch(self, now: Option<f64>) -> Option<f64> {
        match self {
            Wall::Epoch(e) => Some(e),
            Wall::Yearless { month, day, secs } => {
                let now = now?;
                let year = year_of(now);
                let at = |y: i64| {
                    days_from_civil(y, u32::from(month), u32::from(day)) as f64 * 86_400.0
                        + f64::from(secs)
                };
                let this = at(year);
                Some(if this > now + 86_400.0 {
                    at(year - 1)
                } else {
                    this
                })
            }
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The calendar year of an epoch time.
fn year_of(epoch: f64) -> i64 {
    let days = (epoch / 86_400.0).floor() as i64;
    // Inverse of days_from_civil, year only.
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
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
    /// The first line of a boot (`Linux version …`), or journalctl's `-- Boot … --` /
    /// `-- Reboot --` separator: what follows is a later boot.
    Boot,
    Other,
}

/// One parsed line: its stamp and its message.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub stamp: Stamp,
    /// The wall clock of a syslog/journal prefix, also when an uptime stamp follows it
    /// (`Feb 23 16:44:36 jobs kernel: [38775494.393661] …`).
    pub wall: Option<Wall>,
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
        _ if inner.iter().any(u8::is_ascii_digit) && inner.len() >= 19 => {
            Stamp::WallClock(ctime(inner))
        }
        _ => {
            return Err(nom::Err::Error(nom::error::Error::new(
                i,
                nom::error::ErrorKind::Verify,
            )));
        }
    };
    Ok((rest, stamp))
}

/// `Tue Nov 20 22:30:22 2018` (`dmesg -T`, ctime format).
fn ctime(i: &[u8]) -> Option<Wall> {
    let words: Vec<&[u8]> = i
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
        .collect();
    let [_, mon, day, time, year] = words.as_slice() else {
        return None;
    };
    let month = month_number(mon)?;
    let day: u32 = std::str::from_utf8(day).ok()?.parse().ok()?;
    let year: i64 = std::str::from_utf8(year).ok()?.parse().ok()?;
    let secs = seconds_of_day(time)?;
    Some(Wall::Epoch(
        days_from_civil(year, u32::from(month), day) as f64 * 86_400.0 + secs,
    ))
}

fn month_number(m: &[u8]) -> Option<u8> {
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    MONTHS.iter().position(|x| *x == m).map(|p| p as u8 + 1)
}

/// `22:30:22` or `22:30:22.123456` → seconds into the day.
fn seconds_of_day(t: &[u8]) -> Option<f64> {
    let t = std::str::from_utf8(t).ok()?;
    let mut parts = t.splitn(3, ':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.replace(',', ".").parse().ok()?;
    (h < 24.0 && m < 60.0 && s < 61.0).then_some(h * 3600.0 + m * 60.0 + s)
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
    let (i, (mon, _, day, _, time, _)) = (month, space1, digit1, space1, clock, space1).parse(i)?;
    let (i, _) = terminated(take_while1(|b: u8| !b.is_ascii_whitespace()), space1).parse(i)?;
    let wall = (|| {
        let month = month_number(mon)?;
        let day: u8 = std::str::from_utf8(day).ok()?.parse().ok()?;
        let secs = seconds_of_day(time)? as u32;
        Some(Wall::Yearless { month, day, secs })
    })();
    Ok((i, Stamp::WallClock(wall)))
}

/// `2024-01-01T10:00:00,123456+00:00 ` (`dmesg --time-format iso`, `journalctl -o short-iso`),
/// optionally followed by a host name when it comes from the journal.
fn iso_prefix(i: &[u8]) -> IResult<&[u8], Stamp> {
    let (i, (year, _, mon, _, day, _, rest, _)) = (
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
    Ok((i, Stamp::WallClock(iso_time(year, mon, day, rest))))
}

/// The date parts and `10:00:00,123456+00:00` (zone `Z`, `±hh:mm`, `±hhmm` or none: UTC).
fn iso_time(year: &[u8], mon: &[u8], day: &[u8], rest: &[u8]) -> Option<Wall> {
    let num = |b: &[u8]| -> Option<i64> { std::str::from_utf8(b).ok()?.parse().ok() };
    let (year, mon, day) = (num(year)?, num(mon)?, num(day)?);
    if !(1..=12).contains(&mon) || !(1..=31).contains(&day) {
        return None;
    }
    let zone_at = rest
        .iter()
        .position(|b| matches!(b, b'+' | b'-' | b'Z'))
        .unwrap_or(rest.len());
    let (time, zone) = rest.split_at(zone_at);
    let secs = seconds_of_day(time)?;
    let offset = match zone {
        [] | [b'Z'] => 0.0,
        [sign @ (b'+' | b'-'), digits @ ..] => {
            let d: Vec<u8> = digits.iter().copied().filter(u8::is_ascii_digit).collect();
            let (h, m) = d.split_at(d.len().min(2));
            let v = (num(h)? * 3600 + num(m).unwrap_or(0) * 60) as f64;
            if *sign == b'+' { v } else { -v }
        }
        _ => return None,
    };
    Some(Wall::Epoch(
        days_from_civil(year, mon as u32, day as u32) as f64 * 86_400.0 + secs - offset,
    ))
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

/// Strips every known prefix and returns the stamp, the wall clock of an outer syslog/journal
/// prefix, and the bare message.
pub fn split_prefix(line: &[u8]) -> (Stamp, Option<Wall>, &[u8]) {
    let mut stamp = Stamp::None;
    let mut rest = line.trim_ascii_start();
    if let Ok((r, s)) = kmsg_prefix(rest) {
        return (s, None, r);
    }
    if let Ok((r, ())) = decoded_level(rest) {
        rest = r;
    }
    let mut outer_wall = None;
    if let Ok((r, s)) = alt((syslog_prefix, iso_prefix)).parse(rest) {
        if let Stamp::WallClock(w) = s {
            outer_wall = w;
        }
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
    let wall = match stamp {
        Stamp::WallClock(w) => w,
        _ => outer_wall,
    };
    (stamp, wall, rest.trim_ascii_start())
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
    let (stamp, wall, msg) = split_prefix(line);
    let message = if let Ok((_, netns)) = table_full(msg) {
        Message::TableFull { netns }
    } else if let Ok((_, n)) = suppressed(msg) {
        Message::Suppressed(n)
    } else if let Ok((_, (buckets, max))) = module_loaded(msg) {
        Message::ModuleLoaded { buckets, max }
    } else if module_prefixes(msg).is_ok_and(|(r, ())| r.starts_with(b"expectation table full")) {
        Message::ExpectationTableFull
    } else if msg.starts_with(b"Linux version ")
        || line.starts_with(b"-- Boot ")
        || line.starts_with(b"-- Reboot --")
    {
        Message::Boot
    } else {
        Message::Other
    };
    LogLine {
        stamp,
        wall,
        message,
    }
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

/// Table-full lines of one stretch of the log: one boot, or everything before the last boot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Episode {
    /// Lines of the initial namespace (no `in netns`).
    pub host_lines: u64,
    /// Lines naming another namespace.
    pub netns_lines: u64,
    /// Uptime of the first and last host lines, where stamped.
    pub first_host_uptime: Option<f64>,
    pub last_host_uptime: Option<f64>,
    /// Uptime of the last line naming another namespace.
    pub last_netns_uptime: Option<f64>,
    /// Wall clock of the last host line and of the last other-namespace line, where stamped.
    pub last_host_wall: Option<Wall>,
    pub last_netns_wall: Option<Wall>,
}

impl Merge for Episode {
    fn combine(&mut self, other: Self) {
        self.host_lines += other.host_lines;
        self.netns_lines += other.netns_lines;
        self.first_host_uptime = min_opt(self.first_host_uptime, other.first_host_uptime);
        self.last_host_uptime = max_opt(self.last_host_uptime, other.last_host_uptime);
        self.last_netns_uptime = max_opt(self.last_netns_uptime, other.last_netns_uptime);
        self.last_host_wall = later(self.last_host_wall, other.last_host_wall);
        self.last_netns_wall = later(self.last_netns_wall, other.last_netns_wall);
    }
}

/// Whether an uptime stamp after `prev` starts a new boot: uptime restarted from near zero.
fn restarted(prev: f64, next: f64) -> bool {
    next + 60.0 < prev && next < prev / 2.0
}

/// What a kernel log says about conntrack.
///
/// A log can span boots (kern.log, `journalctl -k -b all`, syslog pastes): table-full lines of an
/// earlier boot are history, not the state of the node now. A boot starts at `Linux version …`,
/// at journalctl's `-- Boot … --`, or where uptime stamps restart from near zero. Chunks merge in
/// order: lines before a chunk's first boundary extend the previous chunk's boot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DmesgSummary {
    pub lines: u64,
    pub table_full: LineSample,
    /// `table full in netns N` lines per namespace inode (the [`MAX_NETNS`] smallest inodes).
    pub netns: BTreeMap<u64, u64>,
    /// Table-full lines in the initial namespace (no `in netns`), every boot.
    pub init_netns_lines: u64,
    /// Sum of `net_ratelimit: N callbacks suppressed`.
    pub suppressed: u64,
    pub suppressed_lines: LineSample,
    /// Table-full lines of the latest boot the log shows (all of them when it shows no boundary).
    pub current: Episode,
    /// Table-full lines of every earlier boot.
    pub earlier: Episode,
    /// Boot boundaries seen (a log starting with `Linux version` has one and no earlier lines).
    pub boots: u64,
    /// Whether a boundary was seen (then `current` starts at the last one).
    pub boundary: bool,
    /// Whether a boundary came before the first uptime stamp: then a restart of the clock where
    /// this part meets the one before is that same boundary, not another.
    pub leading_boundary: bool,
    /// The uptime stamps of the first and last stamped lines, in log order: where chunks meet,
    /// a restart of the clock is a boundary.
    pub first_seen_uptime: Option<f64>,
    pub last_seen_uptime: Option<f64>,
    /// The latest uptime stamp on any line of the latest boot: the log's own "now".
    pub last_uptime: Option<f64>,
    /// The latest wall-clock stamp on any line.
    pub last_wall: Option<Wall>,
    pub module_loaded: Option<(u64, u64, EvidenceLine)>,
    pub expectation_full: LineSample,
    /// The first table-full message of the host and of another namespace, as logged (without
    /// the line's time and host prefixes), with its line number.
    pub host_message: Option<(u64, String)>,
    pub netns_message: Option<(u64, String)>,
}

/// Keeps the message of the earlier line, so chunk order never matters.
fn first_message(slot: &mut Option<(u64, String)>, n: u64, msg: &[u8]) {
    if slot.as_ref().is_none_or(|(line, _)| n < *line) {
        // Quoted in prose by every renderer: only the characters a kernel message of this kind
        // has survive, so bundle text cannot smuggle markup into a sentence.
        let text: String = msg[..msg.len().min(200)]
            .iter()
            .filter(|b| b.is_ascii_alphanumeric() || b" _:,.-".contains(b))
            .map(|b| char::from(*b))
            .collect();
        *slot = Some((n, text));
    }
}

fn later(a: Option<Wall>, b: Option<Wall>) -> Option<Wall> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y >= x { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

impl DmesgSummary {
    pub fn add_line(&mut self, ctx: &ChunkCtx, n: u64, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        self.lines += 1;
        let parsed = log_line(line);
        let is_boot = parsed.message == Message::Boot;
        let mut uptime = None;
        if let Stamp::Uptime(u) = parsed.stamp {
            if !is_boot && self.last_seen_uptime.is_some_and(|prev| restarted(prev, u)) {
                self.new_boot();
            }
            uptime = Some(u);
        }
        if is_boot {
            self.new_boot();
        }
        match parsed.stamp {
            Stamp::Uptime(u) => {
                self.first_seen_uptime.get_or_insert(u);
                self.last_seen_uptime = Some(u);
                self.last_uptime = Some(self.last_uptime.map_or(u, |x| x.max(u)));
            }
            Stamp::WallClock(_) | Stamp::None => {}
        }
        let wall = parsed.wall;
        if wall.is_some() {
            self.last_wall = later(self.last_wall, wall);
        }
        match parsed.message {
            Message::TableFull { netns } => {
                self.table_full
                    .push(EvidenceLine::new(&ctx.member, n, line));
                let msg = split_prefix(line).2;
                match netns {
                    Some(_) => first_message(&mut self.netns_message, n, msg),
                    None => first_message(&mut self.host_message, n, msg),
                }
                let e = &mut self.current;
                match netns {
                    Some(ns) => {
                        count_netns(&mut self.netns, ns, 1);
                        e.netns_lines += 1;
                        e.last_netns_uptime = max_opt(e.last_netns_uptime, uptime);
                        e.last_netns_wall = later(e.last_netns_wall, wall);
                    }
                    None => {
                        self.init_netns_lines += 1;
                        e.host_lines += 1;
                        e.first_host_uptime = min_opt(e.first_host_uptime, uptime);
                        e.last_host_uptime = max_opt(e.last_host_uptime, uptime);
                        e.last_host_wall = later(e.last_host_wall, wall);
                    }
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
                    .is_none_or(|(_, _, l)| n > l.line)
                {
                    self.module_loaded =
                        Some((buckets, max, EvidenceLine::new(&ctx.member, n, line)));
                }
            }
            Message::ExpectationTableFull => {
                self.expectation_full
                    .push(EvidenceLine::new(&ctx.member, n, line))
            }
            Message::Boot | Message::Other => {}
        }
    }

    /// Everything so far becomes an earlier boot.
    fn new_boot(&mut self) {
        if self.first_seen_uptime.is_none() {
            self.leading_boundary = true;
        }
        let done = std::mem::take(&mut self.current);
        self.earlier.combine(done);
        self.boots += 1;
        self.boundary = true;
        self.last_uptime = None;
    }

    /// Namespaces named by `table full in netns N`.
    pub fn netns_inodes(&self) -> impl Iterator<Item = u64> + '_ {
        self.netns.keys().copied()
    }
}

/// Adds lines for a namespace, keeping the [`MAX_NETNS`] smallest inodes whatever order they
/// arrive in.
fn count_netns(map: &mut BTreeMap<u64, u64>, ns: u64, lines: u64) {
    *map.entry(ns).or_insert(0) += lines;
    if map.len() > MAX_NETNS {
        map.pop_last();
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
        // `other` follows `self` in the log.
        let jump = self
            .last_seen_uptime
            .zip(other.first_seen_uptime)
            .is_some_and(|(prev, next)| restarted(prev, next))
            && !other.leading_boundary;
        self.leading_boundary =
            self.leading_boundary || (self.first_seen_uptime.is_none() && other.leading_boundary);
        self.lines += other.lines;
        self.table_full.combine(other.table_full);
        for (ns, n) in other.netns {
            count_netns(&mut self.netns, ns, n);
        }
        self.init_netns_lines += other.init_netns_lines;
        self.suppressed = self.suppressed.saturating_add(other.suppressed);
        self.suppressed_lines.combine(other.suppressed_lines);
        if other.boundary || jump {
            let mine = std::mem::take(&mut self.current);
            self.earlier.combine(mine);
            self.earlier.combine(other.earlier);
            self.current = other.current;
            self.boundary = true;
            self.last_uptime = other.last_uptime;
        } else {
            self.current.combine(other.current);
            self.last_uptime = max_opt(self.last_uptime, other.last_uptime);
        }
        self.boots += other.boots + u64::from(jump);
        self.first_seen_uptime = self.first_seen_uptime.or(other.first_seen_uptime);
        self.last_seen_uptime = other.last_seen_uptime.or(self.last_seen_uptime);
        self.last_wall = later(self.last_wall, other.last_wall);
        // The latest load is the one in force.
        if let Some(theirs) = other.module_loaded
            && self
                .module_loaded
                .as_ref()
                .is_none_or(|m| theirs.2.line > m.2.line)
        {
            self.module_loaded = Some(theirs);
        }
        self.expectation_full.combine(other.expectation_full);
        if let Some((n, m)) = other.host_message {
            first_message(&mut self.host_message, n, m.as_bytes());
        }
        if let Some((n, m)) = other.netns_message {
            first_message(&mut self.netns_message, n, m.as_bytes());
        }
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
                Stamp::WallClock(Some(Wall::Epoch(1_542_753_022.0))),
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
                Stamp::WallClock(Some(Wall::Yearless {
                    month: 11,
                    day: 25,
                    secs: 13 * 3600 + 40 * 60,
                })),
                None,
            ),
            (
                "2024-01-01T10:00:00,123456+00:00 nf_conntrack: table full, dropping packet",
                Stamp::WallClock(Some(Wall::Epoch(1_704_103_200.123456))),
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
            let got = full(line);
            assert_eq!(
                (got.stamp, got.message),
                (*stamp, Message::TableFull { netns: *netns }),
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
                wall: None,
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
            full("[ 12.0] usb 1-1: new device, Linux version string").message,
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
        assert_eq!(s.netns.iter().collect::<Vec<_>>(), [(&4026532177, &1)]);
        assert_eq!(s.init_netns_lines, 1);
        assert_eq!(s.suppressed, 12);
        assert_eq!(
            (s.current.first_host_uptime, s.current.last_host_uptime),
            (Some(110.5), Some(110.5))
        );
        assert_eq!(s.current.last_netns_uptime, Some(100.0));
        assert_eq!(s.last_uptime, Some(200.0));
        assert_eq!((s.boots, s.earlier.host_lines), (0, 0));
    }

    fn summarize(text: &str) -> DmesgSummary {
        let ctx = ChunkCtx {
            member: "kernel/kern.log".into(),
            kind: crate::classify::MemberKind::Dmesg,
            first_line: 1,
        };
        let mut s = DmesgSummary::default();
        for (n, l) in text.lines().enumerate() {
            s.add_line(&ctx, n as u64 + 1, l.as_bytes());
        }
        s
    }

    const TWO_BOOTS: &str = "\
Nov  2 10:00:00 w3 kernel: [    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org)
Nov  9 09:00:00 w3 kernel: [604800.100000] nf_conntrack: nf_conntrack: table full, dropping packet
Nov  9 09:00:01 w3 kernel: [604801.200000] nf_conntrack: nf_conntrack: table full, dropping packet
Nov 20 08:00:00 w3 kernel: [    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org)
Nov 20 08:00:05 w3 kernel: [    5.000000] nf_conntrack version 0.5.0 (65536 buckets, 262144 max)
Nov 21 08:00:00 w3 kernel: [86400.000000] eth0: link up
";

    #[test]
    fn lines_of_an_earlier_boot_are_kept_apart() {
        let s = summarize(TWO_BOOTS);
        assert_eq!(s.boots, 2);
        assert_eq!(s.earlier.host_lines, 2);
        assert_eq!(s.current.host_lines, 0);
        assert_eq!(s.earlier.last_host_uptime, Some(604801.2));
        assert_eq!(s.last_uptime, Some(86400.0));
        assert_eq!(
            s.earlier.last_host_wall,
            Some(Wall::Yearless {
                month: 11,
                day: 9,
                secs: 9 * 3600 + 1
            })
        );
    }

    #[test]
    fn a_clock_restart_without_a_banner_is_a_boot() {
        let s = summarize(
            "[900000.0] nf_conntrack: table full, dropping packet\n[   12.0] eth0: link up\n",
        );
        assert_eq!(
            (s.boots, s.earlier.host_lines, s.current.host_lines),
            (1, 1, 0)
        );
    }

    #[test]
    fn boots_split_across_chunks_summarize_as_one_pass() {
        let whole = summarize(TWO_BOOTS);
        let lines: Vec<&str> = TWO_BOOTS.lines().collect();
        for cut in 0..=lines.len() {
            let ctx = ChunkCtx {
                member: "kernel/kern.log".into(),
                kind: crate::classify::MemberKind::Dmesg,
                first_line: 1,
            };
            let mut a = DmesgSummary::default();
            let mut b = DmesgSummary::default();
            for (n, l) in lines.iter().enumerate() {
                let part = if n < cut { &mut a } else { &mut b };
                part.add_line(&ctx, n as u64 + 1, l.as_bytes());
            }
            a.combine(b);
            assert_eq!(a, whole, "cut at {cut}");
        }
    }

    #[test]
    fn year_less_stamps_take_the_collection_year() {
        let collected = 1_795_000_000.0; // 2026-11-18
        let nov9 = Wall::Yearless {
            month: 11,
            day: 9,
            secs: 0,
        };
        let dec31 = Wall::Yearless {
            month: 12,
            day: 31,
            secs: 0,
        };
        let day = 86_400.0;
        let nov9_2026 = days_from_civil(2026, 11, 9) as f64 * day;
        assert_eq!(nov9.epoch(Some(collected)), Some(nov9_2026));
        assert_eq!(
            dec31.epoch(Some(collected)),
            Some(days_from_civil(2025, 12, 31) as f64 * day)
        );
        assert_eq!(nov9.epoch(None), None);
    }
}
