//! The numbers a reader of a sample needs, measured from the entries as they are written rather
//! than copied from the scenario's intent: protocol and state shares, the concentration of flows
//! on a few pairs, `[UNREPLIED]` counts and entries whose DNAT backend never answered anything.
//!
//! The READMEs quote these, and the tests check each scenario against the thresholds the
//! analyzer's rules use, so a change to a flow mix that no longer shows its failure mode fails
//! the build instead of silently shipping a misleading sample.

use crate::conntrack::{Entry, L4, TcpState};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

/// A client → destination:port pair, the unit that "concentrated on a few pairs" counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pair {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub dport: u16,
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {}:{}", self.src, self.dst, self.dport)
    }
}

/// True for addresses in the sample clusters' Service range, 10.96.0.0/12.
pub fn is_cluster_ip(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            o[0] == 10 && (96..=111).contains(&o[1])
        }
        IpAddr::V6(_) => false,
    }
}

/// Aggregates over one conntrack list.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub entries: u64,
    pub ipv6: u64,
    pub tcp: u64,
    pub udp: u64,
    pub icmp: u64,
    pub states: BTreeMap<TcpState, u64>,
    pub unreplied_tcp: u64,
    pub unreplied_udp: u64,
    pub assured: u64,
    /// UDP entries to port 53, and the subset sent to kube-dns (10.96.0.10).
    pub dns: u64,
    pub kube_dns: u64,
    pub unreplied_dns: u64,
    /// Largest remaining timeout seen per protocol/state label (`tcp ESTABLISHED`, `udp`, …).
    pub max_timeout: BTreeMap<String, u32>,
    pairs: HashMap<(TcpState, Pair), u64>,
    services: HashMap<(TcpState, IpAddr, u16), u64>,
    replied_sources: HashSet<IpAddr>,
    unreplied_dnat: HashMap<IpAddr, u64>,
}

impl Tally {
    pub fn add(&mut self, e: &Entry) {
        self.entries += 1;
        if e.orig.src.is_ipv6() {
            self.ipv6 += 1;
        }
        if e.assured {
            self.assured += 1;
        }
        let label = match e.l4 {
            L4::Tcp(s) => {
                self.tcp += 1;
                *self.states.entry(s).or_default() += 1;
                if e.unreplied {
                    self.unreplied_tcp += 1;
                }
                let pair = Pair {
                    src: e.orig.src,
                    dst: e.orig.dst,
                    dport: e.orig.dport,
                };
                *self.pairs.entry((s, pair)).or_default() += 1;
                *self
                    .services
                    .entry((s, e.orig.dst, e.orig.dport))
                    .or_default() += 1;
                format!("tcp {}", s.name())
            }
            L4::Udp => {
                self.udp += 1;
                if e.unreplied {
                    self.unreplied_udp += 1;
                }
                if e.orig.dport == 53 {
                    self.dns += 1;
                    if e.unreplied {
                        self.unreplied_dns += 1;
                    }
                    if e.orig.dst == IpAddr::from([10, 96, 0, 10]) {
                        self.kube_dns += 1;
                    }
                }
                "udp".to_string()
            }
            L4::Icmp { .. } => {
                self.icmp += 1;
                "icmp".to_string()
            }
        };
        let max = self.max_timeout.entry(label).or_default();
        *max = (*max).max(e.timeout);
        if e.unreplied {
            if is_cluster_ip(e.orig.dst) && e.reply.src != e.orig.dst {
                *self.unreplied_dnat.entry(e.reply.src).or_default() += 1;
            }
        } else {
            self.replied_sources.insert(e.reply.src);
        }
    }

    pub fn state(&self, s: TcpState) -> u64 {
        self.states.get(&s).copied().unwrap_or(0)
    }

    /// Pairs in state `s`, busiest first (ties broken by the pair, so the order is stable).
    pub fn top_pairs(&self, s: TcpState, n: usize) -> Vec<(Pair, u64)> {
        let mut v: Vec<(Pair, u64)> = self
            .pairs
            .iter()
            .filter(|((st, _), _)| *st == s)
            .map(|((_, p), c)| (*p, *c))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    /// Entries in state `s` held by its `n` busiest pairs.
    pub fn top_pairs_total(&self, s: TcpState, n: usize) -> u64 {
        self.top_pairs(s, n).iter().map(|(_, c)| c).sum()
    }

    /// The destination (address, port) with the most entries in state `s`, and that count.
    pub fn top_destination(&self, s: TcpState) -> Option<((IpAddr, u16), u64)> {
        self.services
            .iter()
            .filter(|((st, _, _), _)| *st == s)
            .map(|((_, ip, port), c)| ((*ip, *port), *c))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
    }

    /// Backends that only appear as the reply source of unanswered DNAT'd entries: pods that are
    /// gone. Sorted by address.
    pub fn stale_backends(&self) -> Vec<(IpAddr, u64)> {
        let mut v: Vec<(IpAddr, u64)> = self
            .unreplied_dnat
            .iter()
            .filter(|(ip, _)| !self.replied_sources.contains(ip))
            .map(|(ip, c)| (*ip, *c))
            .collect();
        v.sort();
        v
    }

    pub fn stale_entries(&self) -> u64 {
        self.stale_backends().iter().map(|(_, c)| c).sum()
    }

    /// True when `ip` is the reply source of at least one answered entry.
    pub fn has_replied(&self, ip: IpAddr) -> bool {
        self.replied_sources.contains(&ip)
    }
}

/// `part / whole` as a percentage with one decimal, `0.0` for an empty whole.
pub fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / whole as f64).round() / 10.0
    }
}
