//! `cilium bpf ct list global` (`cilium-dbg` in newer images), summarised while read.
//!
//! Printer: Cilium `cilium-dbg/cmd/bpf_ct_list.go`, which dumps each global CT map through
//! `ctmap.DumpEntriesWithTimeDiff` (`pkg/maps/ctmap/types.go`: key `Dump()` + value `String()`) and
//! prints a blank line after each map. The key is `<PROTO> <DIR> <src>:<port> -> <dst>:<port>`;
//! the value a run of `Key=Value` fields whose names changed with every era (2018
//! `rx_packets= flags=13 src_sec_id=`, 2019 `RxPackets=`, ~1.14 `IfIndex=`, ~1.17
//! `Packets=`/`Bytes=`/`BackendID=` and the `SVC` direction, ~1.19 `NatPort=`), plus the
//! `Flags=0x.. [ names ]` group, the `related`/`service` words of old keys and the
//! `(remaining: …)` group of `-d`. So the key is parsed by shape and the value generically. IPv6
//! addresses are unbracketed since 2019 (`fd85::1:fe5:8000` is port 8000 of `fd85::1:fe5`): the
//! port is after the last colon.
//!
//! Like `conntrack -L`, a full map dumps millions of lines: each is folded into a [`CtSummary`]
//! that merges associatively. `expires` and `Last*Report` are seconds on the node's BPF clock, not
//! wall time, so "now" is approximated by the newest `Last*Report` in the dump — known only after
//! the last chunk. Expiries are therefore kept as an exact histogram ([`ExpiryHistogram`]) whose
//! bucket width depends only on the set of values seen, never on chunking, and the number of
//! already-expired entries is read from it after the merge.

use super::conntrack_list::{Pair, Proto};
use super::{ChunkCtx, LineProblems};
use crate::summary::{Counts, EvidenceLine, LineSample, Merge, TopK};
use nom::branch::alt;
use nom::bytes::complete::{tag, take_till, take_till1, take_while1};
use nom::character::complete::{char, space0, space1};
use nom::combinator::{map, map_opt, verify};
use nom::sequence::{delimited, separated_pair, terminated};
use nom::{IResult, Parser};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The four global CT maps a dump covers, by what sizes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CtMapFamily {
    /// `cilium_ct4_global`, sized by `bpf-ct-global-tcp-max`.
    TcpV4,
    /// `cilium_ct6_global`, sized by `bpf-ct-global-tcp-max`.
    TcpV6,
    /// `cilium_ct_any4_global`, sized by `bpf-ct-global-any-max`.
    AnyV4,
    /// `cilium_ct_any6_global`, sized by `bpf-ct-global-any-max`.
    AnyV6,
}

impl CtMapFamily {
    pub const ALL: [CtMapFamily; 4] = [Self::TcpV4, Self::TcpV6, Self::AnyV4, Self::AnyV6];

    /// The pinned map's name.
    pub fn map_name(self) -> &'static str {
        match self {
            Self::TcpV4 => "cilium_ct4_global",
            Self::TcpV6 => "cilium_ct6_global",
            Self::AnyV4 => "cilium_ct_any4_global",
            Self::AnyV6 => "cilium_ct_any6_global",
        }
    }

    /// Key in summaries and facts.
    pub fn key(self) -> &'static str {
        match self {
            Self::TcpV4 => "tcp_v4",
            Self::TcpV6 => "tcp_v6",
            Self::AnyV4 => "any_v4",
            Self::AnyV6 => "any_v6",
        }
    }

    pub fn is_tcp(self) -> bool {
        matches!(self, Self::TcpV4 | Self::TcpV6)
    }
}

/// The direction word of a CT key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
    /// `SVC` (≥ 1.17) or an old key's `service` word: a load-balancer entry.
    Service,
    /// `RELATED`, or an old key's `related` word.
    Related,
    Other,
}

impl Direction {
    fn of(word: &[u8]) -> Direction {
        match word {
            b"IN" => Direction::In,
            b"OUT" => Direction::Out,
            b"SVC" => Direction::Service,
            b"RELATED" => Direction::Related,
            _ => Direction::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Service => "service",
            Direction::Related => "related",
            Direction::Other => "other",
        }
    }
}

/// `addr:port`, the address borrowed from the line without brackets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint<'a> {
    pub addr: &'a [u8],
    pub port: u16,
}

/// One CT map entry, borrowed from its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtEntry<'a> {
    /// `TCP`, `UDP`, `ICMP`, `ICMPv6`, …
    pub proto: &'a [u8],
    pub direction: Direction,
    pub src: Endpoint<'a>,
    pub dst: Endpoint<'a>,
    /// Expiry on the BPF clock, seconds.
    pub expires: Option<u64>,
    /// The newer of `LastRxReport` and `LastTxReport` (absent before 2019).
    pub last_report: Option<u64>,
    /// `Flags=0x0093` / `flags=13`.
    pub flags: Option<u32>,
    /// The names of the `[ … ]` group after `Flags=`.
    pub flag_names: Option<&'a [u8]>,
}

impl CtEntry<'_> {
    /// The map the entry lives in.
    pub fn family(&self) -> CtMapFamily {
        let v6 = self.src.addr.contains(&b':');
        match (self.proto.eq_ignore_ascii_case(b"TCP"), v6) {
            (true, false) => CtMapFamily::TcpV4,
            (true, true) => CtMapFamily::TcpV6,
            (false, false) => CtMapFamily::AnyV4,
            (false, true) => CtMapFamily::AnyV6,
        }
    }

    /// A TCP entry one side has started closing (`RxClosing`/`TxClosing`, bits 0 and 1).
    pub fn closing(&self) -> bool {
        match self.flag_names {
            Some(names) => names
                .split(u8::is_ascii_whitespace)
                .any(|n| n == b"RxClosing" || n == b"TxClosing"),
            None => self.flags.is_some_and(|f| f & 0x3 != 0),
        }
    }
}

/// Why a line is not an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtError {
    /// Not `<PROTO> <DIR> <addr>:<port> -> <addr>:<port>`.
    Key,
    /// A value token that is neither `Key=Value`, a `[ … ]`/`( … )` group nor a word.
    Token,
}

impl CtError {
    fn reason(self) -> &'static str {
        match self {
            CtError::Key => {
                "not a Cilium CT entry (expected `PROTO DIR addr:port -> addr:port key=value …`)"
            }
            CtError::Token => "Cilium CT entry with a token that is not Key=Value",
        }
    }
}

/// `TCP`, `ICMPv6`: starts upper case.
fn proto(i: &[u8]) -> IResult<&[u8], &[u8]> {
    verify(
        take_while1(|b: u8| b.is_ascii_alphanumeric()),
        |w: &[u8]| w[0].is_ascii_uppercase(),
    )
    .parse(i)
}

fn direction(i: &[u8]) -> IResult<&[u8], Direction> {
    map(take_while1(|b: u8| b.is_ascii_uppercase()), Direction::of).parse(i)
}

/// `10.0.0.1:80`, `fd85::1:fe5:8000`, `[f00d::1]:80`: the port is after the last colon.
fn split_endpoint(raw: &[u8]) -> Option<Endpoint<'_>> {
    let colon = memchr::memrchr(b':', raw)?;
    let port = std::str::from_utf8(raw.get(colon + 1..)?)
        .ok()?
        .parse()
        .ok()?;
    let addr = &raw[..colon];
    let addr = addr
        .strip_prefix(b"[")
        .and_then(|a| a.strip_suffix(b"]"))
        .unwrap_or(addr);
    let shape = |b: &u8| b.is_ascii_hexdigit() || *b == b'.' || *b == b':';
    (!addr.is_empty() && addr.iter().all(shape)).then_some(Endpoint { addr, port })
}

fn endpoint(i: &[u8]) -> IResult<&[u8], Endpoint<'_>> {
    map_opt(take_till1(|b: u8| b == b' ' || b == b'\t'), split_endpoint).parse(i)
}

/// `TCP OUT 172.19.0.2:57716 -> 10.244.1.1:8080`
#[allow(clippy::type_complexity)]
fn key(i: &[u8]) -> IResult<&[u8], (&[u8], Direction, Endpoint<'_>, Endpoint<'_>)> {
    let (i, p) = terminated(proto, space1).parse(i)?;
    let (i, d) = terminated(direction, space1).parse(i)?;
    let (i, (src, dst)) =
        separated_pair(endpoint, (space1, tag("->"), space1), endpoint).parse(i)?;
    Ok((i, (p, d, src, dst)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Pair(&'a [u8], &'a [u8]),
    /// `[ RxClosing TxClosing ]`, `(remaining: 10 sec(s))` content.
    Group(&'a [u8]),
    /// `related`, `service` in old keys.
    Word(&'a [u8]),
}

fn pair(i: &[u8]) -> IResult<&[u8], Token<'_>> {
    map(
        separated_pair(
            take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'_'),
            char('='),
            take_till(|b: u8| b == b' ' || b == b'\t'),
        ),
        |(k, v)| Token::Pair(k, v),
    )
    .parse(i)
}

fn group(i: &[u8]) -> IResult<&[u8], Token<'_>> {
    map(
        alt((
            delimited(char('['), take_till(|b| b == b']'), char(']')),
            // `(remaining: 10 sec(s))` nests once.
            delimited(
                char('('),
                take_till(|b| b == b')'),
                (char(')'), nom::combinator::opt(char(')'))),
            ),
        )),
        Token::Group,
    )
    .parse(i)
}

fn word(i: &[u8]) -> IResult<&[u8], Token<'_>> {
    map(take_while1(|b: u8| b.is_ascii_alphabetic()), Token::Word).parse(i)
}

fn token(i: &[u8]) -> IResult<&[u8], Token<'_>> {
    terminated(alt((pair, group, word)), space0).parse(i)
}

fn number(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// `0x0093` (≥ 2019, `%#04x`) or `13` (2018).
fn flags(v: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(v).ok()?;
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses one entry line (trailing space allowed).
pub fn entry(line: &[u8]) -> Result<CtEntry<'_>, CtError> {
    let line = line.trim_ascii();
    let (rest, (proto, mut direction, src, dst)) = key(line).map_err(|_| CtError::Key)?;
    let mut rest = rest.trim_ascii_start();
    let mut e = CtEntry {
        proto,
        direction,
        src,
        dst,
        expires: None,
        last_report: None,
        flags: None,
        flag_names: None,
    };
    let mut after_flags = false;
    while !rest.is_empty() {
        let (r, t) = token(rest).map_err(|_| CtError::Token)?;
        rest = r;
        match t {
            Token::Pair(k, v) => {
                after_flags = false;
                match k {
                    b"expires" => e.expires = number(v),
                    b"LastRxReport" | b"LastTxReport" => {
                        e.last_report = e.last_report.max(number(v));
                    }
                    b"Flags" | b"flags" => {
                        e.flags = flags(v);
                        after_flags = true;
                    }
                    _ => {}
                }
            }
            Token::Group(g) if after_flags => {
                e.flag_names = Some(g.trim_ascii());
                after_flags = false;
            }
            Token::Group(_) => {}
            Token::Word(w) => match w {
                b"service" => direction = Direction::Service,
                b"related" => direction = Direction::Related,
                _ => return Err(CtError::Token),
            },
        }
    }
    e.direction = direction;
    Ok(e)
}

/// Whether a line is a CT entry (classification).
pub fn looks_like(line: &[u8]) -> bool {
    entry(line).is_ok()
}

/// Exact counts of `expires` values in power-of-two buckets.
///
/// The bucket width is the smallest power of two that keeps at most [`Self::MAX_BUCKETS`] buckets
/// for the values seen. Since a subset never needs a wider bucket than the whole, merging parts
/// at the wider of their two widths and widening until the cap holds reaches that same width
/// whatever the chunking and merge order: the histogram is exact at its resolution and
/// order-independent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryHistogram {
    shift: u32,
    cap: usize,
    buckets: BTreeMap<u64, u64>,
}

impl Default for ExpiryHistogram {
    fn default() -> Self {
        Self::with_cap(Self::MAX_BUCKETS)
    }
}

impl ExpiryHistogram {
    /// Seconds-wide buckets up to a span of 4.5 hours, 64 s wide over a month of uptime.
    pub const MAX_BUCKETS: usize = 16_384;

    pub fn with_cap(cap: usize) -> Self {
        ExpiryHistogram {
            shift: 0,
            cap: cap.max(1),
            buckets: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, expires: u64) {
        *self.buckets.entry(expires >> self.shift).or_insert(0) += 1;
        self.fit();
    }

    fn widen_to(&mut self, shift: u32) {
        if shift <= self.shift {
            return;
        }
        let by = shift - self.shift;
        let mut wider = BTreeMap::new();
        for (b, c) in std::mem::take(&mut self.buckets) {
            *wider.entry(b.checked_shr(by).unwrap_or(0)).or_insert(0) += c;
        }
        self.buckets = wider;
        self.shift = shift;
    }

    fn fit(&mut self) {
        while self.buckets.len() > self.cap {
            self.widen_to(self.shift + 1);
        }
    }

    /// Entries whose whole bucket lies below `now`: certainly expired, a floor.
    pub fn below(&self, now: u64) -> u64 {
        let shift = self.shift;
        self.buckets
            .iter()
            .take_while(|(b, _)| ((u128::from(**b) + 1) << shift) <= u128::from(now))
            .map(|(_, c)| c)
            .sum()
    }

    /// Width of a bucket, seconds.
    pub fn resolution(&self) -> u64 {
        1u64.checked_shl(self.shift).unwrap_or(u64::MAX)
    }

    pub fn total(&self) -> u64 {
        self.buckets.values().sum()
    }
}

impl Merge for ExpiryHistogram {
    fn combine(&mut self, mut other: Self) {
        let shift = self.shift.max(other.shift);
        self.widen_to(shift);
        other.widen_to(shift);
        for (b, c) in other.buckets {
            *self.buckets.entry(b).or_insert(0) += c;
        }
        self.fit();
    }
}

/// Heavy-hitter capacity of the top pairs (exact up to twice this many distinct pairs).
const TOP_K_CAPACITY: usize = 1024;
/// Entries with the lowest expiry kept as examples of what GC has not collected.
const LOWEST_KEPT: usize = 3;

/// What the CT maps hold, without holding it.
#[derive(Debug, Clone, PartialEq)]
pub struct CtSummary {
    pub entries: u64,
    /// Entries per map ([`CtMapFamily::key`]).
    pub by_map: Counts,
    /// Entries per direction ([`Direction::name`]).
    pub by_direction: Counts,
    /// Entries per protocol, lower case.
    pub by_proto: Counts,
    /// TCP entries one side has started closing (the eBPF counterpart of TIME_WAIT).
    pub tcp_closing: u64,
    /// The dump's clock: the newest `Last*Report` seen.
    pub now: Option<u64>,
    /// Every entry's `expires`.
    pub expires: ExpiryHistogram,
    /// Entries with the lowest `expires`, (expires, line), lowest first.
    pub lowest: Vec<(u64, EvidenceLine)>,
    /// Client → destination pairs.
    pub pairs: TopK<Pair>,
    /// The first and last entries, quoted as proof the dump was read.
    pub sample: LineSample,
}

impl Default for CtSummary {
    fn default() -> Self {
        CtSummary {
            entries: 0,
            by_map: Counts::new(),
            by_direction: Counts::new(),
            by_proto: Counts::new(),
            tcp_closing: 0,
            now: None,
            expires: ExpiryHistogram::default(),
            lowest: Vec::new(),
            pairs: TopK::new(TOP_K_CAPACITY),
            sample: LineSample::default(),
        }
    }
}

fn bump(c: &mut Counts, key: &str) {
    match c.get_mut(key) {
        Some(v) => *v += 1,
        None => {
            c.insert(key.to_string(), 1);
        }
    }
}

fn keep_lowest(lowest: &mut Vec<(u64, EvidenceLine)>) {
    lowest.sort();
    lowest.dedup();
    lowest.truncate(LOWEST_KEPT);
}

impl CtSummary {
    pub fn add_line(&mut self, ctx: &ChunkCtx, n: u64, line: &[u8], problems: &mut LineProblems) {
        let trimmed = line.trim_ascii();
        // Blank lines separate the maps.
        if trimmed.is_empty() {
            return;
        }
        match entry(trimmed) {
            Ok(e) => self.add_entry(ctx, n, line, &e),
            Err(err) => problems.malformed(ctx, n, err.reason(), line),
        }
    }

    fn add_entry(&mut self, ctx: &ChunkCtx, n: u64, line: &[u8], e: &CtEntry<'_>) {
        self.entries += 1;
        let family = e.family();
        bump(&mut self.by_map, family.key());
        bump(&mut self.by_direction, e.direction.name());
        let proto_lower = e.proto.to_ascii_lowercase();
        bump(&mut self.by_proto, &String::from_utf8_lossy(&proto_lower));
        if family.is_tcp() && e.closing() {
            self.tcp_closing += 1;
        }
        self.now = self.now.max(e.last_report);
        let quote = || EvidenceLine::new(&ctx.member, n, line);
        if let Some(x) = e.expires {
            self.expires.add(x);
            if self.lowest.len() < LOWEST_KEPT || self.lowest.last().is_some_and(|l| x < l.0) {
                self.lowest.push((x, quote()));
                keep_lowest(&mut self.lowest);
            }
        }
        self.sample.push(quote());
        let ip = |raw: &[u8]| std::str::from_utf8(raw).ok()?.parse::<IpAddr>().ok();
        if let (Some(src), Some(dst)) = (ip(e.src.addr), ip(e.dst.addr)) {
            self.pairs.add(Pair {
                proto: Proto::of(&proto_lower),
                src,
                dst,
                dport: e.dst.port,
            });
        }
    }

    /// Entries already expired by the dump's own clock, and the histogram's resolution: a floor
    /// (entries within one bucket of "now" are not counted).
    pub fn expired(&self) -> Option<u64> {
        Some(self.expires.below(self.now?))
    }
}

impl Merge for CtSummary {
    fn combine(&mut self, other: Self) {
        self.entries += other.entries;
        self.by_map.combine(other.by_map);
        self.by_direction.combine(other.by_direction);
        self.by_proto.combine(other.by_proto);
        self.tcp_closing += other.tcp_closing;
        self.now = self.now.max(other.now);
        self.expires.combine(other.expires);
        self.lowest.extend(other.lowest);
        keep_lowest(&mut self.lowest);
        self.pairs.combine(other.pairs);
        self.sample.combine(other.sample);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::MemberKind;
    use crate::parse::{MemberSummary, parse_all};
    use proptest::prelude::*;

    fn ep(addr: &str, port: u16) -> Endpoint<'_> {
        Endpoint {
            addr: addr.as_bytes(),
            port,
        }
    }

    #[test]
    fn a_1_19_line_with_nat_port_and_flag_names() {
        let line = b"TCP OUT 172.19.0.2:57716 -> 10.244.1.1:8080 expires=319511 Packets=0 Bytes=0 RxFlagsSeen=0x1b LastRxReport=319501 TxFlagsSeen=0x1b LastTxReport=319501 Flags=0x0093 [ RxClosing TxClosing SeenNonSyn DSRInternal ] RevNAT=0 SourceSecurityID=9 BackendID=360309599644942336 NatPort=30587 ";
        let e = entry(line).expect("entry");
        assert_eq!(
            e,
            CtEntry {
                proto: b"TCP",
                direction: Direction::Out,
                src: ep("172.19.0.2", 57716),
                dst: ep("10.244.1.1", 8080),
                expires: Some(319_511),
                last_report: Some(319_501),
                flags: Some(0x93),
                flag_names: Some(b"RxClosing TxClosing SeenNonSyn DSRInternal"),
            }
        );
        assert_eq!(e.family(), CtMapFamily::TcpV4);
        assert!(e.closing());
    }

    #[test]
    fn unbracketed_ipv6_takes_the_port_after_the_last_colon() {
        let e = entry(b"TCP IN 2a00:23c8:bcb:5101:cce4:dbf7:957:33a4:47224 -> fd85:ee78:d8a6:8607::1:fe5:8000 expires=26562518 Packets=0 Bytes=0 RxFlagsSeen=0x1b LastRxReport=26540918 TxFlagsSeen=0x1b LastTxReport=26540918 Flags=0x0013 [ RxClosing TxClosing SeenNonSyn ] RevNAT=0 SourceSecurityID=10 BackendID=0 ").expect("entry");
        assert_eq!(e.src, ep("2a00:23c8:bcb:5101:cce4:dbf7:957:33a4", 47224));
        assert_eq!(e.dst, ep("fd85:ee78:d8a6:8607::1:fe5", 8000));
        assert_eq!(e.family(), CtMapFamily::TcpV6);
        assert_eq!(e.direction, Direction::In);
    }

    #[test]
    fn the_2018_bracketed_form_with_snake_case_fields() {
        let e = entry(b"TCP IN [f00d::a0f:0:0:4264]:12865 -> [f00d::a0f:0:0:1150]:41471  expires=2156 rx_packets=2 rx_bytes=160 tx_packets=1 tx_bytes=86 flags=13 revnat=0 proxyport=0 src_sec_id=55058").expect("entry");
        assert_eq!(e.src, ep("f00d::a0f:0:0:4264", 12865));
        assert_eq!(e.dst, ep("f00d::a0f:0:0:1150", 41471));
        assert_eq!(e.expires, Some(2156));
        assert_eq!(e.last_report, None);
        assert_eq!(e.flags, Some(13));
        assert!(e.closing(), "13 = 0b1101: RxClosing set");
    }

    #[test]
    fn the_2019_form_with_service_and_related_words_and_remaining_time() {
        let e = entry(b"UDP OUT 10.0.0.5:5353 -> 10.96.0.10:53 service expires=4711 RxPackets=0 RxBytes=0 RxFlagsSeen=0x00 LastRxReport=0 TxPackets=1 TxBytes=70 TxFlagsSeen=0x00 LastTxReport=4681 Flags=0x0000 [ ] RevNAT=5 SourceSecurityID=0 ").expect("service");
        assert_eq!(e.direction, Direction::Service);
        assert_eq!(e.family(), CtMapFamily::AnyV4);
        assert_eq!(e.last_report, Some(4681));
        assert_eq!(e.flag_names, Some(&b""[..]));
        let r = entry(b"ICMP IN 10.0.0.9:0 -> 10.0.0.5:0 related expires=4700 (remaining: 19 sec(s)) RxPackets=1 RxBytes=98 RxFlagsSeen=0x00 LastRxReport=4640 TxPackets=0 TxBytes=0 TxFlagsSeen=0x00 LastTxReport=0 Flags=0x0000 [ ] RevNAT=0 SourceSecurityID=2 IfIndex=0 ").expect("related");
        assert_eq!(r.direction, Direction::Related);
        assert_eq!(r.expires, Some(4700));
        let svc = entry(b"TCP SVC 10.96.0.1:443 -> 10.244.1.3:0 expires=319600 Packets=0 Bytes=0 RxFlagsSeen=0x00 LastRxReport=0 TxFlagsSeen=0x02 LastTxReport=319500 Flags=0x0000 [ ] RevNAT=1 SourceSecurityID=0 BackendID=7 ").expect("svc");
        assert_eq!(svc.direction, Direction::Service);
    }

    #[test]
    fn rejects_what_is_not_an_entry() {
        assert_eq!(entry(b"hello world"), Err(CtError::Key));
        assert_eq!(
            entry(
                b"Unable to open /sys/fs/bpf/tc/globals/cilium_ct6_global: no such file. Skipping."
            ),
            Err(CtError::Key)
        );
        assert_eq!(
            entry(b"TCP OUT 1.2.3.4:1 -> 1.2.3.5:2 expires=3 !!"),
            Err(CtError::Token)
        );
        assert_eq!(entry(b"TCP OUT 1.2.3.4 -> 1.2.3.5:2"), Err(CtError::Key));
    }

    #[test]
    fn histogram_counts_below_exactly_at_width_one() {
        let mut h = ExpiryHistogram::default();
        for v in [1, 5, 9, 10, 11] {
            h.add(v);
        }
        assert_eq!(h.resolution(), 1);
        assert_eq!(h.below(10), 3);
        assert_eq!(h.below(0), 0);
        assert_eq!(h.total(), 5);
    }

    const DUMP: &str = "\
TCP OUT 10.244.1.5:40001 -> 10.96.0.20:80 expires=1000 Packets=0 Bytes=0 RxFlagsSeen=0x1b LastRxReport=900 TxFlagsSeen=0x1b LastTxReport=900 Flags=0x0013 [ RxClosing TxClosing SeenNonSyn ] RevNAT=2 SourceSecurityID=9 BackendID=0 
TCP OUT 10.244.1.5:40002 -> 10.96.0.20:80 expires=30000 Packets=0 Bytes=0 RxFlagsSeen=0x1b LastRxReport=9000 TxFlagsSeen=0x1b LastTxReport=9000 Flags=0x0010 [ SeenNonSyn ] RevNAT=2 SourceSecurityID=9 BackendID=0 
TCP IN fd00::1:40003 -> fd00::2:80 expires=30001 Packets=0 Bytes=0 RxFlagsSeen=0x1b LastRxReport=9001 TxFlagsSeen=0x1b LastTxReport=9001 Flags=0x0010 [ SeenNonSyn ] RevNAT=0 SourceSecurityID=9 BackendID=0 

UDP OUT 10.244.1.5:5353 -> 10.96.0.10:53 expires=100 Packets=0 Bytes=0 RxFlagsSeen=0x00 LastRxReport=40 TxFlagsSeen=0x00 LastTxReport=40 Flags=0x0000 [ ] RevNAT=5 SourceSecurityID=9 BackendID=0 
ICMPv6 OUT fd00::1:0 -> fd00::2:0 expires=9100 Packets=0 Bytes=0 RxFlagsSeen=0x00 LastRxReport=9050 TxFlagsSeen=0x00 LastTxReport=9050 Flags=0x0000 [ ] RevNAT=0 SourceSecurityID=9 BackendID=0 
not an entry

";

    fn summarize(text: &str) -> (CtSummary, Vec<crate::problem::Problem>) {
        match parse_all(
            MemberKind::CiliumCtList,
            "cilium/ct-list-global.txt",
            text.as_bytes(),
        ) {
            (MemberSummary::CiliumCt(s), p) => (*s, p),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn summary_counts_maps_directions_and_expired_entries() {
        let (s, problems) = summarize(DUMP);
        assert_eq!(s.entries, 5);
        assert_eq!(s.by_map["tcp_v4"], 2);
        assert_eq!(s.by_map["tcp_v6"], 1);
        assert_eq!(s.by_map["any_v4"], 1);
        assert_eq!(s.by_map["any_v6"], 1);
        assert_eq!(s.by_direction["out"], 4);
        assert_eq!(s.by_proto["icmpv6"], 1);
        assert_eq!(s.tcp_closing, 1);
        assert_eq!(s.now, Some(9050));
        assert_eq!(s.expired(), Some(2), "expires 100 and 1000 are below 9050");
        assert_eq!(
            s.lowest.iter().map(|l| (l.0, l.1.line)).collect::<Vec<_>>(),
            [(100, 5), (1000, 1), (9100, 6)]
        );
        assert_eq!(s.pairs.top(1)[0].1, 2);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(7));
    }

    fn chunked(text: &str, cut_every: usize) -> CtSummary {
        match crate::parse::parse_in_pieces(
            MemberKind::CiliumCtList,
            "cilium/ct-list-global.txt",
            text,
            cut_every,
        ) {
            MemberSummary::CiliumCt(s) => *s,
            MemberSummary::Skipped => CtSummary::default(),
            other => panic!("{other:?}"),
        }
    }

    fn arb_line() -> impl Strategy<Value = String> {
        let proto = prop_oneof![Just("TCP"), Just("UDP"), Just("ICMP")];
        let dir = prop_oneof![Just("IN"), Just("OUT"), Just("SVC")];
        let v6 = any::<bool>();
        (proto, dir, v6, 0u8..6, 0u32..3_000_000, 0u32..3_000_000, any::<u16>()).prop_map(
            |(p, d, v6, host, expires, last, port)| {
                let (s, t) = if v6 {
                    (format!("fd00::{host}"), "fd00::ff".to_string())
                } else {
                    (format!("10.244.0.{host}"), "10.96.0.1".to_string())
                };
                format!(
                    "{p} {d} {s}:{port} -> {t}:443 expires={expires} Packets=0 Bytes=0 RxFlagsSeen=0x1b LastRxReport={last} TxFlagsSeen=0x1b LastTxReport=0 Flags=0x0013 [ RxClosing TxClosing SeenNonSyn ] RevNAT=0 SourceSecurityID=9 BackendID=0 "
                )
            },
        )
    }

    proptest! {
        #[test]
        fn chunked_parsing_equals_one_pass(
            lines in proptest::collection::vec(arb_line(), 0..150),
            cut in 1usize..40,
        ) {
            let text = lines.join("\n");
            let (whole, _) = summarize(&text);
            let parts = chunked(&text, cut);
            prop_assert_eq!(parts.expired(), whole.expired());
            prop_assert_eq!(parts, whole);
        }

        #[test]
        fn histogram_merge_is_order_independent_even_when_widened(
            values in proptest::collection::vec(any::<u32>(), 0..2_000),
            cut in 0usize..2_000,
        ) {
            let cut = cut.min(values.len());
            let mut whole = ExpiryHistogram::with_cap(64);
            values.iter().for_each(|v| whole.add(u64::from(*v)));
            let (mut a, mut b) = (ExpiryHistogram::with_cap(64), ExpiryHistogram::with_cap(64));
            values[..cut].iter().for_each(|v| a.add(u64::from(*v)));
            values[cut..].iter().for_each(|v| b.add(u64::from(*v)));
            let mut ba = b.clone();
            ba.combine(a.clone());
            a.combine(b);
            prop_assert_eq!(&a, &whole);
            prop_assert_eq!(&ba, &whole);
        }

        #[test]
        fn entry_agrees_with_a_whitespace_split_reference(line in arb_line()) {
            let e = entry(line.as_bytes()).expect("generated lines are entries");
            let words: Vec<&str> = line.split_ascii_whitespace().collect();
            let value = |k: &str| words.iter().find_map(|w| w.strip_prefix(k));
            let expires = e.expires.map(|x| x.to_string());
            prop_assert_eq!(expires.as_deref(), value("expires="));
            prop_assert_eq!(Some(std::str::from_utf8(e.proto).expect("utf8")), words.first().copied());
            let src = words.get(2).and_then(|w| w.rsplit_once(':')).map(|(a, _)| a);
            prop_assert_eq!(Some(std::str::from_utf8(e.src.addr).expect("utf8")), src);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = entry(&bytes);
            let _ = summarize(&String::from_utf8_lossy(&bytes));
        }
    }
}
