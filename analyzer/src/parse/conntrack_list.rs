//! `conntrack -L` (default and `-o extended`) and `/proc/net/nf_conntrack`, summarised while read.
//!
//! Printers: libnetfilter_conntrack `__snprintf_conntrack_default` and the kernel's `ct_seq_show`.
//! Column positions are not fixed — the l3 prefix exists only with `-o extended` and in /proc, the
//! timeout is missing for offloaded flows, UDP/ICMP/GRE have no state word, accounting adds
//! `packets= bytes=` after each tuple — so the line is read by token shape: an optional event and
//! l3 pair, the l4 pair, an optional timeout and state, then `key=value` tokens and `[FLAG]`s, the
//! second `src=` starting the reply tuple. Unknown keys are skipped, so new kernels stay readable.
//!
//! A busy node's table has 10⁶ entries: nothing here keeps an entry. Each line is folded into a
//! [`ListSummary`] (counts, bounded top-k, per-backend counters) that merges associatively, so
//! chunks parse in parallel.

use super::{ChunkCtx, LineProblems};
use crate::summary::{ByteCounts, EvidenceLine, FastMap, FirstLines, Merge, PackedKey, TopK};
use nom::branch::alt;
use nom::bytes::complete::{tag, take_till, take_while1};
use nom::character::complete::{char, digit1, space0, space1};
use nom::combinator::{map, map_res, opt, verify};
use nom::sequence::{delimited, preceded, separated_pair, terminated};
use nom::{IResult, Parser};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr};

/// The ports part of a tuple, by protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ports {
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// ICMP type/code/id.
    pub icmp: Option<(u8, u8, u16)>,
}

/// One direction of a connection, borrowed from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tuple<'a> {
    pub src: &'a [u8],
    pub dst: &'a [u8],
    pub ports: Ports,
}

/// `[ASSURED]`, `[OFFLOAD]`, `[HW_OFFLOAD]` — mutually exclusive, offload wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    None,
    Assured,
    Offload,
    HwOffload,
}

/// One conntrack entry, borrowed from its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConntrackEntry<'a> {
    /// `ipv4`/`ipv6` with `-o extended` and in /proc.
    pub l3: Option<&'a [u8]>,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `sctp`, `gre`, `dccp`, `udplite`, `unknown`.
    pub proto: &'a [u8],
    pub proto_num: u8,
    /// Seconds until expiry; absent for offloaded flows in /proc.
    pub timeout: Option<u32>,
    /// TCP/SCTP/DCCP state word.
    pub state: Option<&'a [u8]>,
    pub orig: Tuple<'a>,
    pub reply: Option<Tuple<'a>>,
    pub unreplied: bool,
    pub status: Status,
    pub zone: Option<u16>,
    pub mark: Option<u32>,
}

fn uint<T: std::str::FromStr>(i: &[u8]) -> IResult<&[u8], T> {
    map_res(digit1, |d: &[u8]| {
        std::str::from_utf8(d)
            .map_err(|_| ())
            .and_then(|s| s.parse::<T>().map_err(|_| ()))
    })
    .parse(i)
}

/// A protocol name: lower case, digits after the first letter (`icmpv6`).
fn word(i: &[u8]) -> IResult<&[u8], &[u8]> {
    verify(
        take_while1(|b: u8| b.is_ascii_lowercase() || b.is_ascii_digit()),
        |w: &[u8]| w[0].is_ascii_lowercase(),
    )
    .parse(i)
}

/// `[NEW] ` / `[UPDATE] ` / `[DESTROY] ` from `conntrack -E`, right-aligned to 9 columns.
fn event(i: &[u8]) -> IResult<&[u8], &[u8]> {
    terminated(
        delimited(
            char('['),
            alt((tag("NEW"), tag("UPDATE"), tag("DESTROY"))),
            char(']'),
        ),
        space1,
    )
    .parse(i)
}

/// `ipv4     2 ` — the l3 name and number.
fn l3(i: &[u8]) -> IResult<&[u8], &[u8]> {
    terminated(
        alt((tag("ipv4"), tag("ipv6"), tag("unknown"))),
        (space1, digit1, space1),
    )
    .parse(i)
}

/// `tcp      6 ` — the l4 name and number.
fn l4(i: &[u8]) -> IResult<&[u8], (&[u8], u8)> {
    terminated(separated_pair(word, space1, uint::<u8>), space1).parse(i)
}

/// `431999 ` — seconds left.
fn timeout(i: &[u8]) -> IResult<&[u8], u32> {
    terminated(uint::<u32>, space1).parse(i)
}

/// `ESTABLISHED ` — upper case, possibly with digits (`SYN_SENT2`).
fn state(i: &[u8]) -> IResult<&[u8], &[u8]> {
    terminated(
        verify(
            take_while1(|b: u8| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            |w: &[u8]| w[0].is_ascii_uppercase(),
        ),
        space1,
    )
    .parse(i)
}

/// The columns before the first tuple.
fn head(i: &[u8]) -> IResult<&[u8], Head<'_>> {
    let (i, _) = preceded(space0, opt(event)).parse(i)?;
    // `unknown` is both an l3 and an l4 name: try the l3 pair first, and without it if the rest
    // does not follow.
    let (i, (l3, l4)) =
        alt((map((l3, l4), |(a, b)| (Some(a), b)), map(l4, |b| (None, b)))).parse(i)?;
    let (i, (timeout, state)) = (opt(timeout), opt(state)).parse(i)?;
    Ok((i, (l3, l4, timeout, state)))
}

/// One token of the tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Pair(&'a [u8], &'a [u8]),
    Flag(&'a [u8]),
}

fn pair(i: &[u8]) -> IResult<&[u8], Token<'_>> {
    map(
        separated_pair(
            take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            char('='),
            take_till(|b: u8| b == b' ' || b == b'\t'),
        ),
        |(k, v)| Token::Pair(k, v),
    )
    .parse(i)
}

/// `[ASSURED]`, or a bracket group that may hold spaces (`[start=Tue Nov 21 10:00:00 2026]`).
fn flag(i: &[u8]) -> IResult<&[u8], Token<'_>> {
    map(
        delimited(char('['), take_till(|b| b == b']'), char(']')),
        Token::Flag,
    )
    .parse(i)
}

fn token(i: &[u8]) -> IResult<&[u8], Token<'_>> {
    terminated(alt((pair, flag)), space0).parse(i)
}

/// Why a line is not an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryError {
    /// The columns before the tuple are not `[l3 n] l4 n [timeout] [STATE]`.
    Head,
    /// A token is neither `key=value` nor `[FLAG]`.
    Token,
    /// No `src=`/`dst=` original tuple.
    NoTuple,
}

impl EntryError {
    fn reason(self) -> &'static str {
        match self {
            EntryError::Head => {
                "not a conntrack entry (expected `[l3 n] proto n [timeout] [STATE] src=…`)"
            }
            EntryError::Token => {
                "conntrack entry with a token that is neither key=value nor [FLAG]"
            }
            EntryError::NoTuple => "conntrack entry without a src=/dst= tuple",
        }
    }
}

/// A decimal number from bytes, without a UTF-8 pass (`sport=`, `zone=`, …).
fn port_number<T: TryFrom<u64>>(v: &[u8]) -> Option<T> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    T::try_from(v.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'))).ok()
}

/// The columns before the first tuple, as [`head`] returns them.
type Head<'a> = (
    Option<&'a [u8]>,
    (&'a [u8], u8),
    Option<u32>,
    Option<&'a [u8]>,
);

/// Parses one entry line with the nom grammar: the reference that [`scan`] must agree with.
pub fn entry(line: &[u8]) -> Result<ConntrackEntry<'_>, EntryError> {
    let (rest, head) = head(line).map_err(|_| EntryError::Head)?;
    assemble(head, rest, |i| token(i).map_err(|_| ()))
}

/// Parses one entry line on the hot path: `fast::head` and `fast::token` read the common
/// shapes byte by byte, and any head they do not accept (`conntrack -E` events, the `unknown`
/// l3/l4 ambiguity, numbers out of range) goes to the nom grammar. Agrees with [`entry`] on every
/// input (property-tested below), and is what the summary uses unless [`set_reference_parser`]
/// asked for the reference.
pub fn scan(line: &[u8]) -> Result<ConntrackEntry<'_>, EntryError> {
    if REFERENCE_PARSER.load(std::sync::atomic::Ordering::Relaxed) {
        return entry(line);
    }
    match fast::head(line) {
        Some((rest, head)) => assemble(head, rest, fast::token),
        None => entry(line),
    }
}

static REFERENCE_PARSER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every later [`scan`] use the nom reference grammar (`ctdiag analyze
/// --reference-parser`), so a run can prove the fast path changes nothing.
pub fn set_reference_parser(on: bool) {
    REFERENCE_PARSER.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Turns the head and the `key=value`/`[FLAG]` tokens after it into an entry. Shared by both
/// parsers, so they can differ only in how they cut tokens.
#[inline(always)]
fn assemble<'a>(
    (l3, (proto, proto_num), timeout, state): Head<'a>,
    mut rest: &'a [u8],
    mut token: impl FnMut(&'a [u8]) -> Result<(&'a [u8], Token<'a>), ()>,
) -> Result<ConntrackEntry<'a>, EntryError> {
    let mut e = ConntrackEntry {
        l3,
        proto,
        proto_num,
        timeout,
        state,
        orig: Tuple::default(),
        reply: None,
        unreplied: false,
        status: Status::None,
        zone: None,
        mark: None,
    };
    // 0: original tuple, 1: reply tuple; `in_tuple` while port keys still belong to it.
    let mut which = 0usize;
    let mut in_tuple = false;
    let mut reply = Tuple::default();
    let mut icmp = (None::<u8>, None::<u8>, None::<u16>);
    let mut icmp_reply = (None::<u8>, None::<u8>, None::<u16>);
    while !rest.is_empty() {
        let (r, t) = token(rest).map_err(|_| EntryError::Token)?;
        rest = r;
        match t {
            Token::Pair(b"src", v) => {
                if which == 0 && !e.orig.src.is_empty() {
                    which = 1;
                }
                let t = if which == 0 { &mut e.orig } else { &mut reply };
                t.src = v;
                in_tuple = true;
            }
            Token::Pair(k, v) if in_tuple => {
                let (t, ic) = if which == 0 {
                    (&mut e.orig, &mut icmp)
                } else {
                    (&mut reply, &mut icmp_reply)
                };
                match k {
                    b"dst" => t.dst = v,
                    b"sport" => t.ports.sport = port_number(v),
                    b"dport" => t.ports.dport = port_number(v),
                    b"type" => ic.0 = port_number(v),
                    b"code" => ic.1 = port_number(v),
                    b"id" => ic.2 = port_number(v),
                    _ => {
                        in_tuple = false;
                        attribute(&mut e, k, v);
                    }
                }
            }
            Token::Pair(k, v) => attribute(&mut e, k, v),
            Token::Flag(f) => {
                in_tuple = false;
                match f {
                    b"UNREPLIED" => e.unreplied = true,
                    b"ASSURED" if e.status == Status::None => e.status = Status::Assured,
                    b"OFFLOAD" => e.status = Status::Offload,
                    b"HW_OFFLOAD" => e.status = Status::HwOffload,
                    _ => {}
                }
            }
        }
    }
    if e.orig.src.is_empty() || e.orig.dst.is_empty() {
        return Err(EntryError::NoTuple);
    }
    if let (Some(t), Some(c), Some(id)) = icmp {
        e.orig.ports.icmp = Some((t, c, id));
    }
    if let (Some(t), Some(c), Some(id)) = icmp_reply {
        reply.ports.icmp = Some((t, c, id));
    }
    if which == 1 {
        e.reply = Some(reply);
    }
    Ok(e)
}

/// The hand-written cutters of the hot path. Each accepts exactly what its nom counterpart
/// accepts or (for [`head`]) declines, leaving the line to nom.
mod fast {
    use super::{Head, Token};

    fn is_space(b: u8) -> bool {
        b == b' ' || b == b'\t'
    }

    /// `space0`: the index of the first byte at or after `i` that is not a space or tab.
    #[inline(always)]
    fn skip_spaces(line: &[u8], i: usize) -> usize {
        run(line, i, is_space)
    }

    /// `take_while(pred)`: the end of the run of `pred` bytes from `i`.
    #[inline(always)]
    fn run(line: &[u8], mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
        while i < line.len() && pred(line[i]) {
            i += 1;
        }
        i
    }

    /// Digits at `i` followed by at least one space: the value and the index after the spaces.
    /// `None` where nom's `terminated(uint, space1)` would fail (no digits, overflow, no space).
    #[inline(always)]
    fn number_then_space(line: &[u8], i: usize, max: u64) -> Option<(u64, usize)> {
        let end = run(line, i, |b| b.is_ascii_digit());
        if end == i || end - i > 10 || end >= line.len() || !is_space(line[end]) {
            return None;
        }
        let v = line[i..end]
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        (v <= max).then(|| (v, skip_spaces(line, end)))
    }

    /// The l4 pair at `i` (`tcp      6 `): name, number, index after the spaces.
    #[inline(always)]
    fn l4(line: &[u8], i: usize) -> Option<(&[u8], u8, usize)> {
        if !line.get(i)?.is_ascii_lowercase() {
            return None;
        }
        let end = run(line, i, |b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if end >= line.len() || !is_space(line[end]) {
            return None;
        }
        let (num, next) = number_then_space(line, skip_spaces(line, end), u64::from(u8::MAX))?;
        Some((&line[i..end], num as u8, next))
    }

    /// The columns before the first tuple, or `None` to leave the line to the nom grammar: an
    /// event prefix, an `unknown` that may be l3 or l4, anything that is not plainly a head.
    #[inline]
    pub(super) fn head(line: &[u8]) -> Option<(&[u8], Head<'_>)> {
        let mut i = skip_spaces(line, 0);
        if line.get(i) == Some(&b'[') {
            return None;
        }
        let (mut proto, mut num, mut next) = l4(line, i)?;
        let mut l3 = None;
        if proto == b"ipv4" || proto == b"ipv6" {
            l3 = Some(proto);
            (proto, num, next) = l4(line, next)?;
        } else if proto == b"unknown" {
            return None;
        }
        i = next;
        let mut timeout = None;
        if line.get(i).is_some_and(u8::is_ascii_digit) {
            let (t, n) = number_then_space(line, i, u64::from(u32::MAX))?;
            timeout = Some(t as u32);
            i = n;
        }
        let mut state = None;
        if line.get(i).is_some_and(u8::is_ascii_uppercase) {
            let end = run(line, i, |b| {
                b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'
            });
            if end >= line.len() || !is_space(line[end]) {
                return None;
            }
            state = Some(&line[i..end]);
            i = skip_spaces(line, end);
        }
        Some((&line[i..], (l3, (proto, num), timeout, state)))
    }

    /// Bytes of a `key` (nom's `pair`: ASCII alphanumerics, `-`, `_`), one load per byte.
    static KEY_BYTE: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
            b += 1;
        }
        t
    };

    /// The first space or tab at or after `i` (or the end): eight bytes per step, since values
    /// (addresses, ports) are most of a line. The lowest flagged byte of the SWAR zero test is
    /// exact (a false positive can only sit above a true one), so this agrees with a byte loop.
    #[inline(always)]
    fn value_end(line: &[u8], mut i: usize) -> usize {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        while let Some(bytes) = line.get(i..i + 8) {
            let w = u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
            let hits = zero(w ^ (ONES * u64::from(b' '))) | zero(w ^ (ONES * u64::from(b'\t')));
            if hits != 0 {
                return i + (hits.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        run(line, i, |b| !is_space(b))
    }

    /// One `key=value` or `[FLAG]` token and the spaces after it, as nom's `token` cuts it.
    #[inline(always)]
    pub(super) fn token(line: &[u8]) -> Result<(&[u8], Token<'_>), ()> {
        if line.first() == Some(&b'[') {
            let close = memchr::memchr(b']', &line[1..]).ok_or(())? + 1;
            let rest = skip_spaces(line, close + 1);
            return Ok((&line[rest..], Token::Flag(&line[1..close])));
        }
        let eq = run(line, 0, |b| KEY_BYTE[usize::from(b)]);
        if eq == 0 || line.get(eq) != Some(&b'=') {
            return Err(());
        }
        let end = value_end(line, eq + 1);
        let rest = skip_spaces(line, end);
        Ok((&line[rest..], Token::Pair(&line[..eq], &line[eq + 1..end])))
    }
}

fn attribute(e: &mut ConntrackEntry<'_>, k: &[u8], v: &[u8]) {
    match k {
        b"zone" => e.zone = port_number(v),
        b"mark" => e.mark = port_number(v),
        _ => {}
    }
}

/// Whether a line is a conntrack entry (classification).
pub fn looks_like(line: &[u8]) -> bool {
    head(line).is_ok() && memchr::memmem::find(line, b"src=").is_some()
}

/// `conntrack v1.4.7 (conntrack-tools): 132 flow entries have been shown.`
fn footer(i: &[u8]) -> IResult<&[u8], u64> {
    let (i, _) = (tag("conntrack v"), take_till(|b| b == b':'), tag(": ")).parse(i)?;
    terminated(uint::<u64>, tag(" flow entries have been shown.")).parse(i)
}

/// The protocol of a summarised entry, as a small closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Sctp,
    Gre,
    Dccp,
    Udplite,
    Other,
}

impl Proto {
    const ALL: [Proto; 9] = [
        Proto::Tcp,
        Proto::Udp,
        Proto::Icmp,
        Proto::Icmpv6,
        Proto::Sctp,
        Proto::Gre,
        Proto::Dccp,
        Proto::Udplite,
        Proto::Other,
    ];

    fn from_index(i: u128) -> Proto {
        Proto::ALL[(i as usize).min(Proto::ALL.len() - 1)]
    }

    pub(crate) fn of(name: &[u8]) -> Proto {
        match name {
            b"tcp" => Proto::Tcp,
            b"udp" => Proto::Udp,
            b"icmp" => Proto::Icmp,
            b"icmpv6" => Proto::Icmpv6,
            b"sctp" => Proto::Sctp,
            b"gre" => Proto::Gre,
            b"dccp" => Proto::Dccp,
            b"udplite" => Proto::Udplite,
            _ => Proto::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Icmpv6 => "icmpv6",
            Proto::Sctp => "sctp",
            Proto::Gre => "gre",
            Proto::Dccp => "dccp",
            Proto::Udplite => "udplite",
            Proto::Other => "other",
        }
    }
}

/// A client → service pair as the original tuple shows it: who talks to what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Pair {
    pub proto: Proto,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub dport: u16,
}

/// A destination as clients address it (a ClusterIP:port under kube-proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Service {
    pub proto: Proto,
    pub addr: IpAddr,
    pub port: u16,
}

/// IPv4 pairs and services pack as `proto | src | dst | port` in 88 bits (see
/// [`crate::summary::PackedKey`]); IPv6 ones are counted unpacked.
impl PackedKey for Pair {
    #[inline]
    fn pack(&self) -> Option<u128> {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (self.src, self.dst) else {
            return None;
        };
        Some(
            (self.proto as u128) << 80
                | u128::from(src.to_bits()) << 48
                | u128::from(dst.to_bits()) << 16
                | u128::from(self.dport),
        )
    }

    fn unpack(p: u128) -> Self {
        Pair {
            proto: Proto::from_index(p >> 80),
            src: IpAddr::V4(Ipv4Addr::from_bits((p >> 48) as u32)),
            dst: IpAddr::V4(Ipv4Addr::from_bits((p >> 16) as u32)),
            dport: p as u16,
        }
    }
}

impl PackedKey for Service {
    #[inline]
    fn pack(&self) -> Option<u128> {
        let IpAddr::V4(addr) = self.addr else {
            return None;
        };
        Some((self.proto as u128) << 48 | u128::from(addr.to_bits()) << 16 | u128::from(self.port))
    }

    fn unpack(p: u128) -> Self {
        Service {
            proto: Proto::from_index(p >> 48),
            addr: IpAddr::V4(Ipv4Addr::from_bits((p >> 16) as u32)),
            port: p as u16,
        }
    }
}

/// Entries DNAT'd to one backend: how many got a reply and how many never did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct BackendCounts {
    pub replied: u64,
    pub unreplied: u64,
    /// The service it serves (the smallest seen, so merge order never matters).
    pub service: Option<Service>,
    /// Its UDP entries, answered and not: a UDP flow keeps its DNAT as long as packets keep
    /// refreshing it, so a removed backend goes on receiving (kube-proxy must delete them).
    pub udp_replied: u64,
    pub udp_unreplied: u64,
    /// The UDP service it serves (the smallest seen).
    pub udp_service: Option<Service>,
}

/// Distinct destinations one source tried and got no answer from, estimated by linear counting
/// over a 2048-bit map (Whang et al. 1990: within a few percent up to ~10,000 distinct, exact
/// merge by OR, so chunks agree with one pass).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationSketch {
    /// Unanswered entries from this source.
    pub entries: u64,
    bits: [u64; SKETCH_WORDS],
}

const SKETCH_WORDS: usize = 32;
const SKETCH_BITS: f64 = (SKETCH_WORDS * 64) as f64;

impl Default for DestinationSketch {
    fn default() -> Self {
        DestinationSketch {
            entries: 0,
            bits: [0; SKETCH_WORDS],
        }
    }
}

impl DestinationSketch {
    fn add(&mut self, dst: IpAddr, port: u16) {
        self.entries += 1;
        let raw = match dst {
            IpAddr::V4(a) => u128::from(a.to_bits()),
            IpAddr::V6(a) => a.to_bits(),
        };
        // splitmix64 over the address and port: fixed, so every run and chunking agree.
        let mut z = (raw as u64) ^ ((raw >> 64) as u64).rotate_left(17) ^ (u64::from(port) << 48);
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let bit = (z % SKETCH_BITS as u64) as usize;
        self.bits[bit / 64] |= 1 << (bit % 64);
    }

    fn merge(&mut self, other: &DestinationSketch) {
        self.entries += other.entries;
        for (a, b) in self.bits.iter_mut().zip(other.bits) {
            *a |= b;
        }
    }

    /// Estimated distinct destinations (address and port); saturated maps report their ceiling.
    pub fn destinations(&self) -> u64 {
        let set: u32 = self.bits.iter().map(|w| w.count_ones()).sum();
        let zero = (SKETCH_BITS - f64::from(set)).max(1.0);
        let estimate = -SKETCH_BITS * (zero / SKETCH_BITS).ln();
        (estimate.round() as u64).min(self.entries)
    }
}

/// At most this many sources of unanswered entries are sketched (the smallest addresses kept,
/// so any chunking keeps the same ones).
const MAX_SCAN_SOURCES: usize = 4096;
/// ESTABLISHED remaining timers are counted per minute up to this many minutes (the kernel's
/// default established timeout, 5 days, is 7200 minutes); longer ones share the last slot.
const MAX_TIMER_MINUTES: u32 = 20_160;
/// An ESTABLISHED entry with at most this much of its timer left has been idle at least a day
/// under the kernel's default 432000 s timeout (`tcp_timeouts[TCP_CONNTRACK_ESTABLISHED]`).
pub const IDLE_DAY_REMAINING: u32 = 432_000 - 86_400;

/// At most this many distinct DNAT backends are tracked per member; the rest are counted.
const MAX_BACKENDS: usize = 100_000;
/// Heavy-hitter capacity of each top-k (exact up to twice this many distinct keys).
pub const TOP_K_CAPACITY: usize = 1024;

/// The kinds of line quoted as examples; `Example as usize` indexes [`EXAMPLE_KINDS`].
#[derive(Debug, Clone, Copy)]
enum Example {
    TimeWait,
    Established,
    EstablishedIdle,
    TcpUnanswered,
    UdpUnreplied,
    DnatUnreplied,
    UdpDnat,
}

/// The names of the [`Example`] kinds, as facts ask for them.
const EXAMPLE_KINDS: [&str; 7] = [
    "tcp TIME_WAIT",
    "tcp ESTABLISHED",
    "tcp ESTABLISHED idle",
    "tcp unanswered",
    "udp UNREPLIED",
    "dnat UNREPLIED",
    "udp dnat",
];

/// First example lines per kind: a fixed array, so counting a line is no map lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Examples([FirstLines; EXAMPLE_KINDS.len()]);

impl Examples {
    /// The lines of a kind (`tcp TIME_WAIT`, `udp dnat`, … as the facts name them).
    pub fn get(&self, kind: &str) -> Option<&FirstLines> {
        let i = EXAMPLE_KINDS.iter().position(|k| *k == kind)?;
        Some(&self.0[i])
    }

    #[inline]
    fn slot(&mut self, kind: Example) -> &mut FirstLines {
        &mut self.0[kind as usize]
    }
}

impl Merge for Examples {
    fn combine(&mut self, other: Self) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            mine.combine(theirs);
        }
    }
}

/// What a conntrack table holds, without holding it.
#[derive(Debug, Clone)]
pub struct ListSummary {
    pub entries: u64,
    pub by_family: ByteCounts,
    pub by_proto: ByteCounts,
    pub tcp_states: ByteCounts,
    pub unreplied: u64,
    pub unreplied_by_proto: ByteCounts,
    pub assured: u64,
    pub offloaded: u64,
    /// Entries whose reply source differs from the original destination (kube-proxy DNAT).
    pub dnat: u64,
    /// Entries whose reply destination differs from the original source (SNAT/MASQUERADE).
    pub snat: u64,
    /// Entries to port 53 (DNS), by protocol.
    pub dns_by_proto: ByteCounts,
    pub pairs: TopK<Pair>,
    pub timewait_pairs: TopK<Pair>,
    pub established_pairs: TopK<Pair>,
    /// TCP entries that never got a reply (SYN_SENT, `[UNREPLIED]`).
    pub unanswered_tcp_pairs: TopK<Pair>,
    pub udp_pairs: TopK<Pair>,
    pub services: TopK<Service>,
    pub backends: FastMap<IpAddr, BackendCounts>,
    pub backends_overflow: u64,
    /// ESTABLISHED entries by remaining timer, in minutes: idle time is the established
    /// timeout minus the timer, whatever that timeout is on the node.
    pub established_timers: std::collections::BTreeMap<u32, u64>,
    /// ESTABLISHED pairs idle at least a day under the kernel's default timeout (timer ≤
    /// [`IDLE_DAY_REMAINING`]).
    pub idle_established_pairs: TopK<Pair>,
    /// Sources of unanswered entries (TCP SYN_SENT/`[UNREPLIED]`, UDP `[UNREPLIED]`) with the
    /// distinct destinations they tried.
    pub unanswered_sources: std::collections::BTreeMap<IpAddr, DestinationSketch>,
    /// The count `conntrack -L` printed at the end, with its line.
    pub footer: Option<(u64, EvidenceLine)>,
    /// First and last example lines per notable kind (`TIME_WAIT`, `SYN_SENT`, `UNREPLIED udp`, …).
    pub examples: Examples,
}

impl Default for ListSummary {
    fn default() -> Self {
        ListSummary {
            entries: 0,
            by_family: ByteCounts::default(),
            by_proto: ByteCounts::default(),
            tcp_states: ByteCounts::default(),
            unreplied: 0,
            unreplied_by_proto: ByteCounts::default(),
            assured: 0,
            offloaded: 0,
            dnat: 0,
            snat: 0,
            dns_by_proto: ByteCounts::default(),
            pairs: TopK::new(TOP_K_CAPACITY),
            timewait_pairs: TopK::new(TOP_K_CAPACITY),
            established_pairs: TopK::new(TOP_K_CAPACITY),
            unanswered_tcp_pairs: TopK::new(TOP_K_CAPACITY),
            udp_pairs: TopK::new(TOP_K_CAPACITY),
            services: TopK::new(TOP_K_CAPACITY),
            backends: FastMap::default(),
            backends_overflow: 0,
            established_timers: Default::default(),
            idle_established_pairs: TopK::new(TOP_K_CAPACITY),
            unanswered_sources: Default::default(),
            footer: None,
            examples: Default::default(),
        }
    }
}

/// An address as conntrack prints it. Dotted quads, the common case, are read straight from the
/// bytes; anything else (IPv6, compressed or not) goes through the standard parser.
fn addr(raw: &[u8]) -> Option<IpAddr> {
    /// One pass over `a.b.c.d`: each octet 1–3 digits, at most 255, exactly four.
    #[inline(always)]
    fn ipv4(raw: &[u8]) -> Option<Ipv4Addr> {
        let mut bits = 0u32;
        let (mut octet, mut digits, mut dots) = (0u32, 0u32, 0u32);
        for &b in raw {
            if b.is_ascii_digit() {
                octet = octet * 10 + u32::from(b - b'0');
                digits += 1;
                if digits > 3 || octet > 255 {
                    return None;
                }
            } else if b == b'.' && digits > 0 && dots < 3 {
                bits = bits << 8 | octet;
                (octet, digits) = (0, 0);
                dots += 1;
            } else {
                return None;
            }
        }
        (dots == 3 && digits > 0).then(|| Ipv4Addr::from_bits(bits << 8 | octet))
    }
    if !raw.contains(&b':') {
        return ipv4(raw).map(IpAddr::V4);
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

impl ListSummary {
    pub fn add_line(&mut self, ctx: &ChunkCtx, n: u64, line: &[u8], problems: &mut LineProblems) {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return;
        }
        let e = match scan(trimmed) {
            Ok(e) => e,
            Err(err) => {
                if let Ok((_, count)) = footer(trimmed) {
                    self.footer = Some((count, EvidenceLine::new(&ctx.member, n, line)));
                } else if trimmed.starts_with(b"conntrack v") {
                    problems.malformed(
                        ctx,
                        n,
                        "conntrack reported an error instead of entries",
                        line,
                    );
                } else {
                    problems.malformed(ctx, n, err.reason(), line);
                }
                return;
            }
        };
        let (Some(src), Some(dst)) = (addr(e.orig.src), addr(e.orig.dst)) else {
            problems.malformed(
                ctx,
                n,
                "conntrack entry whose src=/dst= is not an IP address",
                line,
            );
            return;
        };
        self.add_entry(ctx, n, line, &e, src, dst);
    }

    fn example(&mut self, kind: Example, ctx: &ChunkCtx, n: u64, line: &[u8]) {
        self.examples
            .slot(kind)
            .push_with(|| EvidenceLine::new(&ctx.member, n, line));
    }

    fn add_entry(
        &mut self,
        ctx: &ChunkCtx,
        n: u64,
        line: &[u8],
        e: &ConntrackEntry<'_>,
        src: IpAddr,
        dst: IpAddr,
    ) {
        self.entries += 1;
        let proto = Proto::of(e.proto);
        let family: &[u8] = match (e.l3, src) {
            (Some(l3), _) => l3,
            (None, IpAddr::V6(_)) => b"ipv6",
            (None, _) => b"ipv4",
        };
        self.by_family.bump(family);
        self.by_proto.bump(e.proto);
        if let Some(s) = e.state
            && proto == Proto::Tcp
        {
            self.tcp_states.bump(s);
        }
        if e.unreplied {
            self.unreplied += 1;
            self.unreplied_by_proto.bump(e.proto);
        }
        match e.status {
            Status::Assured => self.assured += 1,
            Status::Offload | Status::HwOffload => self.offloaded += 1,
            Status::None => {}
        }
        let dport = e.orig.ports.dport;
        if dport == Some(53) {
            self.dns_by_proto.bump(e.proto);
        }
        let pair = Pair {
            proto,
            src,
            dst,
            dport: dport.unwrap_or(0),
        };
        self.pairs.add(pair);
        let service = Service {
            proto,
            addr: dst,
            port: pair.dport,
        };
        self.services.add(service);
        let state = e.state.unwrap_or(b"");
        match (proto, state) {
            (Proto::Tcp, b"TIME_WAIT") => {
                self.timewait_pairs.add(pair);
                self.example(Example::TimeWait, ctx, n, line);
            }
            (Proto::Tcp, b"ESTABLISHED") => {
                self.established_pairs.add(pair);
                self.example(Example::Established, ctx, n, line);
                if let Some(t) = e.timeout {
                    *self
                        .established_timers
                        .entry((t / 60).min(MAX_TIMER_MINUTES))
                        .or_insert(0) += 1;
                    if t <= IDLE_DAY_REMAINING {
                        self.idle_established_pairs.add(pair);
                        self.example(Example::EstablishedIdle, ctx, n, line);
                    }
                }
            }
            _ => {}
        }
        let unanswered_tcp = proto == Proto::Tcp && (e.unreplied || state == b"SYN_SENT");
        if unanswered_tcp {
            self.unanswered_tcp_pairs.add(pair);
            self.example(Example::TcpUnanswered, ctx, n, line);
        }
        if proto == Proto::Udp {
            self.udp_pairs.add(pair);
            if e.unreplied {
                self.example(Example::UdpUnreplied, ctx, n, line);
            }
        }
        if unanswered_tcp || (proto == Proto::Udp && e.unreplied) {
            self.sketch_unanswered(src, dst, pair.dport);
        }
        let Some(reply) = &e.reply else {
            return;
        };
        // Both tuples come from one printer in one format, so different text is a different
        // address: only a NAT'd reply source needs parsing.
        if reply.dst != e.orig.src && addr(reply.dst).is_some() {
            self.snat += 1;
        }
        if reply.src == e.orig.dst {
            return;
        }
        let Some(backend) = addr(reply.src).filter(|b| *b != dst) else {
            return;
        };
        self.dnat += 1;
        if e.unreplied {
            self.example(Example::DnatUnreplied, ctx, n, line);
        }
        let len = self.backends.len();
        let slot = match self.backends.get_mut(&backend) {
            Some(slot) => slot,
            None if len < MAX_BACKENDS => self.backends.entry(backend).or_default(),
            None => {
                self.backends_overflow += 1;
                return;
            }
        };
        if e.unreplied {
            slot.unreplied += 1;
        } else {
            slot.replied += 1;
        }
        if slot.service.is_none_or(|s| service < s) {
            slot.service = Some(service);
        }
        if proto == Proto::Udp {
            if e.unreplied {
                slot.udp_unreplied += 1;
            } else {
                slot.udp_replied += 1;
            }
            if slot.udp_service.is_none_or(|s| service < s) {
                slot.udp_service = Some(service);
            }
            self.example(Example::UdpDnat, ctx, n, line);
        }
    }

    fn sketch_unanswered(&mut self, src: IpAddr, dst: IpAddr, port: u16) {
        if let Some(s) = self.unanswered_sources.get_mut(&src) {
            s.add(dst, port);
            return;
        }
        if self.unanswered_sources.len() >= MAX_SCAN_SOURCES
            && self
                .unanswered_sources
                .last_key_value()
                .is_some_and(|(k, _)| src > *k)
        {
            return;
        }
        let mut s = DestinationSketch::default();
        s.add(dst, port);
        self.unanswered_sources.insert(src, s);
        if self.unanswered_sources.len() > MAX_SCAN_SOURCES {
            self.unanswered_sources.pop_last();
        }
    }
}

impl Merge for ListSummary {
    fn combine(&mut self, other: Self) {
        self.entries += other.entries;
        self.by_family.combine(other.by_family);
        self.by_proto.combine(other.by_proto);
        self.tcp_states.combine(other.tcp_states);
        self.unreplied += other.unreplied;
        self.unreplied_by_proto.combine(other.unreplied_by_proto);
        self.assured += other.assured;
        self.offloaded += other.offloaded;
        self.dnat += other.dnat;
        self.snat += other.snat;
        self.dns_by_proto.combine(other.dns_by_proto);
        self.pairs.combine(other.pairs);
        self.timewait_pairs.combine(other.timewait_pairs);
        self.established_pairs.combine(other.established_pairs);
        self.unanswered_tcp_pairs
            .combine(other.unanswered_tcp_pairs);
        self.udp_pairs.combine(other.udp_pairs);
        self.services.combine(other.services);
        self.backends_overflow += other.backends_overflow;
        for (ip, c) in other.backends {
            let len = self.backends.len();
            match self.backends.get_mut(&ip) {
                Some(mine) => {
                    mine.replied += c.replied;
                    mine.unreplied += c.unreplied;
                    mine.udp_replied += c.udp_replied;
                    mine.udp_unreplied += c.udp_unreplied;
                    mine.service = match (mine.service, c.service) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    mine.udp_service = match (mine.udp_service, c.udp_service) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                None if len < MAX_BACKENDS => {
                    self.backends.insert(ip, c);
                }
                None => self.backends_overflow += c.replied + c.unreplied,
            }
        }
        for (t, n) in other.established_timers {
            *self.established_timers.entry(t).or_insert(0) += n;
        }
        self.idle_established_pairs
            .combine(other.idle_established_pairs);
        for (src, sketch) in other.unanswered_sources {
            match self.unanswered_sources.get_mut(&src) {
                Some(mine) => mine.merge(&sketch),
                None => {
                    self.unanswered_sources.insert(src, sketch);
                    if self.unanswered_sources.len() > MAX_SCAN_SOURCES {
                        self.unanswered_sources.pop_last();
                    }
                }
            }
        }
        if let Some(theirs) = other.footer
            && self
                .footer
                .as_ref()
                .is_none_or(|f| theirs.1.line > f.1.line)
        {
            self.footer = Some(theirs);
        }
        self.examples.combine(other.examples);
    }
}

impl PartialEq for ListSummary {
    fn eq(&self, o: &Self) -> bool {
        self.entries == o.entries
            && self.by_family == o.by_family
            && self.by_proto == o.by_proto
            && self.tcp_states == o.tcp_states
            && self.unreplied == o.unreplied
            && self.unreplied_by_proto == o.unreplied_by_proto
            && self.assured == o.assured
            && self.offloaded == o.offloaded
            && self.dnat == o.dnat
            && self.snat == o.snat
            && self.dns_by_proto == o.dns_by_proto
            && self.pairs == o.pairs
            && self.timewait_pairs == o.timewait_pairs
            && self.established_pairs == o.established_pairs
            && self.unanswered_tcp_pairs == o.unanswered_tcp_pairs
            && self.udp_pairs == o.udp_pairs
            && self.services == o.services
            && self.backends == o.backends
            && self.backends_overflow == o.backends_overflow
            && self.established_timers == o.established_timers
            && self.idle_established_pairs == o.idle_established_pairs
            && self.unanswered_sources == o.unanswered_sources
            && self.footer == o.footer
            && self.examples == o.examples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::MemberKind;
    use crate::parse::{MemberSummary, parse_all};
    use proptest::prelude::*;

    fn tuple<'a>(src: &'a str, dst: &'a str, sport: u16, dport: u16) -> Tuple<'a> {
        Tuple {
            src: src.as_bytes(),
            dst: dst.as_bytes(),
            ports: Ports {
                sport: Some(sport),
                dport: Some(dport),
                icmp: None,
            },
        }
    }

    #[test]
    fn default_tcp_time_wait_line() {
        let line = b"tcp      6 119 TIME_WAIT src=10.200.0.1 dst=10.200.0.2 sport=38424 dport=8080 src=10.200.0.2 dst=10.200.0.1 sport=8080 dport=38424 [ASSURED] mark=0 use=1";
        assert_eq!(
            entry(line),
            Ok(ConntrackEntry {
                l3: None,
                proto: b"tcp",
                proto_num: 6,
                timeout: Some(119),
                state: Some(b"TIME_WAIT"),
                orig: tuple("10.200.0.1", "10.200.0.2", 38424, 8080),
                reply: Some(tuple("10.200.0.2", "10.200.0.1", 8080, 38424)),
                unreplied: false,
                status: Status::Assured,
                zone: None,
                mark: Some(0),
            })
        );
    }

    #[test]
    fn udp_has_no_state_and_unreplied_sits_between_the_tuples() {
        let e = entry(b"udp      17 23 src=10.200.0.1 dst=10.200.0.2 sport=45524 dport=5320 [UNREPLIED] src=10.200.0.2 dst=10.200.0.1 sport=5320 dport=45524 mark=0 use=1").expect("entry");
        assert_eq!(e.state, None);
        assert!(e.unreplied);
        assert_eq!(e.timeout, Some(23));
        assert_eq!(
            e.reply,
            Some(tuple("10.200.0.2", "10.200.0.1", 5320, 45524))
        );
    }

    #[test]
    fn extended_and_proc_forms_carry_l3_and_zone() {
        let e = entry(b"ipv4     2 tcp      6 431995 ESTABLISHED src=10.244.1.5 dst=10.96.0.1 sport=40000 dport=443 src=10.0.0.10 dst=10.244.1.5 sport=6443 dport=40000 [ASSURED] mark=0 use=1").expect("entry");
        assert_eq!(e.l3, Some(&b"ipv4"[..]));
        let p = entry(b"ipv4     2 udp      17 23 src=10.12.0.14 dst=10.15.240.10 sport=43145 dport=53 [UNREPLIED] src=10.12.0.11 dst=10.12.0.14 sport=53 dport=43145 mark=0 zone=0 use=2").expect("entry");
        assert_eq!(p.zone, Some(0));
        assert!(p.unreplied);
    }

    #[test]
    fn ipv6_proc_form_with_leading_zeros() {
        let e = entry(b"ipv6     10 tcp      6 86392 ESTABLISHED src=2001:0db8:ffff:0021:0000:0000:0000:0002 dst=2001:0db8:ffff:0022:0000:0000:0000:0002 sport=49344 dport=8080 src=2001:0db8:ffff:0022:0000:0000:0000:0002 dst=2001:0db8:ffff:0021:0000:0000:0000:0002 sport=8080 dport=49344 [ASSURED] mark=0 zone=0 use=3").expect("entry");
        assert_eq!(addr(e.orig.src), addr(b"2001:db8:ffff:21::2"));
    }

    #[test]
    fn icmp_gre_unknown_and_sctp_lines() {
        let icmp = entry(b"icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1234 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=1234 mark=0 use=1").expect("icmp");
        assert_eq!(icmp.orig.ports.icmp, Some((8, 0, 1234)));
        let icmp6 = entry(b"icmpv6   58 29 src=fd00::1 dst=fd00::2 type=128 code=0 id=7 src=fd00::2 dst=fd00::1 type=129 code=0 id=7 mark=0 use=1").expect("icmpv6");
        assert_eq!(icmp6.proto_num, 58);
        let gre = entry(b"gre      47 178 src=10.0.0.1 dst=10.0.0.2 srckey=0x0 dstkey=0x0 src=10.0.0.2 dst=10.0.0.1 srckey=0x0 dstkey=0x0 [ASSURED] mark=0 use=1").expect("gre");
        assert_eq!(gre.orig.ports, Ports::default());
        let unknown = entry(
            b"unknown  50 599 src=10.0.0.1 dst=10.0.0.2 src=10.0.0.2 dst=10.0.0.1 mark=0 use=1",
        )
        .expect("unknown");
        assert_eq!(unknown.proto, b"unknown");
        let ext_unknown = entry(b"ipv4     2 unknown  50 599 src=10.0.0.1 dst=10.0.0.2 src=10.0.0.2 dst=10.0.0.1 mark=0 use=1").expect("extended unknown");
        assert_eq!(
            (ext_unknown.l3, ext_unknown.proto_num),
            (Some(&b"ipv4"[..]), 50)
        );
        let sctp = entry(b"sctp     132 204 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=6000 src=10.0.0.2 dst=10.0.0.1 sport=6000 dport=5000 [ASSURED] mark=0 use=1").expect("sctp");
        assert_eq!(sctp.state, Some(&b"ESTABLISHED"[..]));
    }

    #[test]
    fn offloaded_flows_have_no_timeout_and_attributes_are_skipped() {
        let e = entry(b"ipv4     2 tcp      6 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 packets=10 bytes=600 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 packets=9 bytes=500 [OFFLOAD] mark=0 secctx=system_u:object_r:unlabeled_t:s0 zone=0 delta-time=12 use=2 labels=a,b").expect("entry");
        assert_eq!(e.timeout, None);
        assert_eq!(e.status, Status::Offload);
        assert_eq!(e.reply.map(|r| r.ports.sport), Some(Some(2)));
        let ts = entry(b"tcp      6 119 TIME_WAIT src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 [ASSURED] mark=0 [start=Tue Nov 21 10:00:00 2026] [stop=Tue Nov 21 10:02:00 2026] use=1 id=3405691582").expect("timestamps");
        assert_eq!(ts.status, Status::Assured);
    }

    #[test]
    fn event_lines_from_dash_e_parse() {
        let e = entry(b"    [NEW] tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=43664 dport=443 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=443 dport=43664").expect("event");
        assert_eq!(e.state, Some(&b"SYN_SENT"[..]));
    }

    #[test]
    fn rejects_lines_that_are_not_entries() {
        assert_eq!(entry(b"hello world"), Err(EntryError::Head));
        assert_eq!(
            entry(b"tcp      6 119 TIME_WAIT sport=1 dport=2"),
            Err(EntryError::NoTuple)
        );
        assert_eq!(
            entry(b"tcp      6 119 TIME_WAIT src=1.2.3.4 dst=1.2.3.5 sport=1 dport=2 garbage"),
            Err(EntryError::Token)
        );
    }

    const TABLE: &str = "\
tcp      6 119 TIME_WAIT src=10.244.1.5 dst=10.96.0.20 sport=40001 dport=80 src=10.244.2.7 dst=10.244.1.5 sport=8080 dport=40001 [ASSURED] mark=0 use=1
tcp      6 118 TIME_WAIT src=10.244.1.5 dst=10.96.0.20 sport=40002 dport=80 src=10.244.2.7 dst=10.244.1.5 sport=8080 dport=40002 [ASSURED] mark=0 use=1
tcp      6 86390 ESTABLISHED src=10.244.1.6 dst=10.96.0.1 sport=50000 dport=443 src=10.0.0.10 dst=10.244.1.6 sport=6443 dport=50000 [ASSURED] mark=0 use=1
udp      17 29 src=10.244.1.5 dst=10.96.0.10 sport=43145 dport=53 [UNREPLIED] src=10.244.9.9 dst=10.244.1.5 sport=53 dport=43145 mark=0 use=1
udp      17 110 src=10.244.1.5 dst=10.96.0.10 sport=43146 dport=53 src=10.244.3.3 dst=10.244.1.5 sport=53 dport=43146 [ASSURED] mark=0 use=1
tcp      6 100 SYN_SENT src=10.244.1.8 dst=10.96.0.30 sport=33000 dport=8443 [UNREPLIED] src=10.244.9.9 dst=10.244.1.8 sport=8443 dport=33000 mark=0 use=1
not an entry
conntrack v1.4.7 (conntrack-tools): 6 flow entries have been shown.
";

    fn summarize(text: &str) -> (ListSummary, Vec<crate::problem::Problem>) {
        match parse_all(
            MemberKind::ConntrackList,
            "conntrack/list.txt",
            text.as_bytes(),
        ) {
            (MemberSummary::ConntrackList(s), p) => (*s, p),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn summary_counts_states_nat_and_backends() {
        let (s, problems) = summarize(TABLE);
        assert_eq!(s.entries, 6);
        assert_eq!(s.by_proto.get("tcp"), 4);
        assert_eq!(s.by_proto.get("udp"), 2);
        assert_eq!(s.tcp_states.get("TIME_WAIT"), 2);
        assert_eq!(s.unreplied, 2);
        assert_eq!(s.dnat, 6);
        assert_eq!(s.dns_by_proto.get("udp"), 2);
        assert_eq!(s.footer.as_ref().map(|f| (f.0, f.1.line)), Some((6, 8)));
        let dead: IpAddr = "10.244.9.9".parse().expect("ip");
        assert_eq!(s.backends[&dead].replied, 0);
        assert_eq!(s.backends[&dead].unreplied, 2);
        let top = s.timewait_pairs.top(1);
        assert_eq!(top[0].1, 2);
        assert_eq!(top[0].0.dport, 80);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(7));
    }

    fn chunked(text: &str, cut_every: usize) -> ListSummary {
        match crate::parse::parse_in_pieces(
            MemberKind::ConntrackList,
            "conntrack/list.txt",
            text,
            cut_every,
        ) {
            MemberSummary::ConntrackList(s) => *s,
            MemberSummary::Skipped => ListSummary::default(),
            other => panic!("{other:?}"),
        }
    }

    fn arb_line() -> impl Strategy<Value = String> {
        let proto = prop_oneof![Just(("tcp", 6)), Just(("udp", 17))];
        let state = prop_oneof![
            Just("TIME_WAIT "),
            Just("ESTABLISHED "),
            Just("SYN_SENT "),
            Just("")
        ];
        (proto, state, 0u8..4, 0u8..4, 0u8..3, any::<u16>(), any::<bool>(), 0u8..3).prop_map(
            |((p, num), st, s, d, b, sport, unreplied, dport)| {
                let st = if p == "tcp" { st } else { "" };
                let flag = if unreplied { "[UNREPLIED] " } else { "" };
                format!(
                    "{p:<8} {num} 100 {st}src=10.244.0.{s} dst=10.96.0.{d} sport={sport} dport={} {flag}src=10.244.5.{b} dst=10.244.0.{s} sport=80 dport={sport} mark=0 use=1",
                    [53, 80, 443][dport as usize]
                )
            },
        )
    }

    /// Lines in every shape the printers produce (FORMATS.md): default and `-o extended` columns,
    /// /proc's zone and padding, `conntrack -E` events, IPv6, ICMP/GRE/unknown/SCTP, offloaded
    /// flows without a timeout, accounting, timestamps, labels and secctx.
    fn arb_printed_line() -> impl Strategy<Value = String> {
        let addr = prop_oneof![
            (any::<u8>(), any::<u8>()).prop_map(|(a, b)| format!("10.244.{a}.{b}")),
            any::<u16>().prop_map(|h| format!("fd00:10:244::{h:x}")),
            any::<u16>().prop_map(|h| format!("2001:0db8:0000:0000:0000:0000:0000:{h:04x}")),
        ];
        let l4 = prop_oneof![
            Just((
                "tcp",
                6,
                true,
                "sport=40000 dport=443",
                "sport=443 dport=40000"
            )),
            Just((
                "udp",
                17,
                false,
                "sport=5353 dport=53",
                "sport=53 dport=5353"
            )),
            Just((
                "icmp",
                1,
                false,
                "type=8 code=0 id=77",
                "type=0 code=0 id=77"
            )),
            Just((
                "icmpv6",
                58,
                false,
                "type=128 code=0 id=9",
                "type=129 code=0 id=9"
            )),
            Just((
                "gre",
                47,
                false,
                "srckey=0x0 dstkey=0x0",
                "srckey=0x0 dstkey=0x0"
            )),
            Just((
                "sctp",
                132,
                true,
                "sport=5000 dport=6000",
                "sport=6000 dport=5000"
            )),
            Just(("unknown", 50, false, "", "")),
        ];
        let state = prop_oneof![
            Just("ESTABLISHED"),
            Just("TIME_WAIT"),
            Just("SYN_SENT"),
            Just("SYN_SENT2"),
            Just("CLOSE_WAIT"),
        ];
        let prefix = prop_oneof![Just(0u8), Just(1), Just(2), Just(3)];
        let extras = proptest::collection::vec(
            prop_oneof![
                Just("packets=10 bytes=600"),
                Just("[ASSURED]"),
                Just("[UNREPLIED]"),
                Just("[OFFLOAD]"),
                Just("[HW_OFFLOAD]"),
                Just("mark=0"),
                Just("zone=3"),
                Just("secctx=system_u:object_r:unlabeled_t:s0"),
                Just("use=1"),
                Just("delta-time=12"),
                Just("labels=a,b"),
                Just("[start=Tue Nov 21 10:00:00 2026]"),
                Just("id=3405691582"),
            ],
            0..5,
        );
        (
            prefix,
            l4,
            state,
            proptest::option::of(0u32..500_000),
            (addr.clone(), addr.clone(), addr.clone(), addr),
            any::<bool>(),
            extras,
        )
            .prop_map(|(prefix, (p, n, stateful, op, rp), st, timeout, (a, b, c, d), nat, extras)| {
                let head = match prefix {
                    0 => String::new(),
                    1 => "ipv4     2 ".to_string(),
                    2 => "ipv6     10 ".to_string(),
                    _ => "    [NEW] ".to_string(),
                };
                let timeout = timeout.map(|t| format!("{t} ")).unwrap_or_default();
                let state = if stateful { format!("{st} ") } else { String::new() };
                let reply_src = if nat { &c } else { &b };
                let (mid, tail) = extras.split_at(extras.len() / 2);
                format!(
                    "{head}{p:<8} {n} {timeout}{state}src={a} dst={b} {op} {} src={reply_src} dst={d} {rp} {}",
                    mid.join(" "),
                    tail.join(" ")
                )
                .split_ascii_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
            })
    }

    /// A line with a few bytes changed, inserted or removed, drawn from the bytes the grammar
    /// turns on (separators, brackets, digits, letters of both cases) and some it never expects.
    fn arb_mutated_line() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            proptest::sample::select(b" \t[]=_-.:0123456789aAzZ\r\x00\xff".to_vec()),
            any::<u8>(),
        ];
        let edit = (0u8..3, any::<proptest::sample::Index>(), byte);
        (arb_printed_line(), proptest::collection::vec(edit, 1..5)).prop_map(|(line, edits)| {
            let mut bytes = line.into_bytes();
            for (op, at, b) in edits {
                let i = at.index(bytes.len() + 1);
                match op {
                    0 => bytes.insert(i, b),
                    1 if i < bytes.len() => bytes[i] = b,
                    _ if i < bytes.len() => {
                        bytes.remove(i);
                    }
                    _ => bytes.push(b),
                }
            }
            bytes
        })
    }

    #[test]
    fn the_fast_head_declines_what_nom_must_decide() {
        // Events and the `unknown` l3/l4 ambiguity stay on the reference path; so does anything
        // out of range.
        for line in [
            &b"    [NEW] tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2"[..],
            b"unknown  50 599 src=10.0.0.1 dst=10.0.0.2",
            b"tcp      600 119 TIME_WAIT src=10.0.0.1 dst=10.0.0.2",
            b"tcp      6 99999999999 TIME_WAIT src=10.0.0.1 dst=10.0.0.2",
            b"ipv4     2 123 ESTABLISHED src=10.0.0.1 dst=10.0.0.2",
        ] {
            assert!(
                fast::head(line).is_none(),
                "{}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(scan(line), entry(line));
        }
    }

    proptest! {
        #[test]
        fn scan_agrees_with_the_nom_reference_on_printed_lines(line in arb_printed_line()) {
            let fast = scan(line.as_bytes());
            prop_assert_eq!(&fast, &entry(line.as_bytes()), "{}", line);
            prop_assert!(fast.is_ok(), "{}", line);
            // The hot path really is the hand-written one for every non-event line.
            let decided_by_nom = line.starts_with('[') || line.starts_with("unknown");
            prop_assert_eq!(fast::head(line.as_bytes()).is_some(), !decided_by_nom, "{}", line);
        }

        #[test]
        fn scan_agrees_with_the_nom_reference_on_mutated_lines(line in arb_mutated_line()) {
            prop_assert_eq!(scan(&line), entry(&line), "{}", String::from_utf8_lossy(&line));
        }

        /// The dotted-quad fast path reads what the standard parser reads, except that it also
        /// takes octets of up to three digits with leading zeros (as the reader before it did).
        #[test]
        fn addresses_read_as_the_standard_parser_reads_them(
            text in prop_oneof![
                "[0-9.]{0,18}",
                "0{0,2}[0-9]{1,3}\\.0{0,2}[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,4}",
                (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
                    .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
                any::<std::net::Ipv6Addr>().prop_map(|a| a.to_string()),
            ],
        ) {
            let unpadded: String = if text.contains(':') {
                text.clone()
            } else if text.split('.').any(|o| o.len() > 3) {
                String::new()
            } else {
                text.split('.')
                    .map(|o| match o.trim_start_matches('0') {
                        "" if !o.is_empty() => "0",
                        t => t,
                    })
                    .collect::<Vec<_>>()
                    .join(".")
            };
            prop_assert_eq!(addr(text.as_bytes()), unpadded.parse::<IpAddr>().ok(), "{}", text);
        }

        #[test]
        fn scan_agrees_with_the_nom_reference_on_arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            prop_assert_eq!(scan(&bytes), entry(&bytes));
        }
    }

    proptest! {
        #[test]
        fn chunked_parsing_equals_one_pass(
            lines in proptest::collection::vec(arb_line(), 0..120),
            cut in 1usize..40,
        ) {
            let text = lines.join("\n");
            let (whole, _) = summarize(&text);
            prop_assert_eq!(chunked(&text, cut), whole);
        }

        #[test]
        fn entry_agrees_with_a_whitespace_split_reference(line in arb_line()) {
            let e = entry(line.as_bytes()).expect("generated lines are entries");
            let words: Vec<&str> = line.split_ascii_whitespace().collect();
            let value = |k: &str| words.iter().find_map(|w| w.strip_prefix(k));
            prop_assert_eq!(Some(std::str::from_utf8(e.orig.src).expect("utf8")), value("src="));
            let sport = e.orig.ports.sport.map(|p| p.to_string());
            prop_assert_eq!(sport.as_deref(), value("sport="));
            prop_assert_eq!(e.unreplied, words.contains(&"[UNREPLIED]"));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = entry(&bytes);
            let _ = summarize(&String::from_utf8_lossy(&bytes));
        }
    }
}
