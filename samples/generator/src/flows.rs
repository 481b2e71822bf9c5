//! Conntrack tables described as traffic, not as lines: a scenario is a list of [`FlowClass`]es
//! ("240 local pods talk HTTP to the `inventory` Service and leave TIME_WAIT behind"), and
//! [`EntryStream`] turns them into entries one at a time.
//!
//! Streaming is the point: `gen-samples big --entries 1000000` must not hold the table, so the
//! stream keeps only per-class counters and one port counter per (client, destination) pair. The
//! classes are interleaved by drawing the next class with probability proportional to what it has
//! left (sampling without replacement), which gives the hash-order look of a real `conntrack -L`
//! and still yields every class's exact count.
//!
//! Kubernetes shapes come from FORMATS.md: kube-proxy DNAT makes the original destination a
//! ClusterIP and the reply source the backend pod; NodePort and egress traffic is masqueraded, so
//! the reply destination is an address of the node rather than the client.

use crate::conntrack::{Entry, L4, TcpState, Tuple};
use crate::rng::Rng;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// Linux's default `net.ipv4.ip_local_port_range`, which pods inherit.
pub const EPHEMERAL_LOW: u16 = 32768;
pub const EPHEMERAL_COUNT: u32 = 60999 - 32768 + 1;

/// A weighted set of addresses.
#[derive(Debug, Clone)]
pub struct Pool {
    addrs: Vec<IpAddr>,
    cumulative: Vec<u64>,
}

impl Pool {
    pub fn weighted(items: impl IntoIterator<Item = (IpAddr, u64)>) -> Pool {
        let mut addrs = Vec::new();
        let mut cumulative = Vec::new();
        let mut sum = 0;
        for (a, w) in items {
            sum += w.max(1);
            addrs.push(a);
            cumulative.push(sum);
        }
        assert!(!addrs.is_empty(), "a pool needs at least one address");
        Pool { addrs, cumulative }
    }

    pub fn uniform(addrs: impl IntoIterator<Item = IpAddr>) -> Pool {
        Pool::weighted(addrs.into_iter().map(|a| (a, 1)))
    }

    pub fn one(addr: IpAddr) -> Pool {
        Pool::uniform([addr])
    }

    /// Weights falling like 1/rank over a floor, so a few members are clearly busier than the
    /// rest (as real talkers are) while none carries so much that one pair runs out of ports.
    pub fn skewed(addrs: impl IntoIterator<Item = IpAddr>) -> Pool {
        Pool::weighted(
            addrs
                .into_iter()
                .enumerate()
                .map(|(i, a)| (a, 1000 / (i as u64 + 1) + 200)),
        )
    }

    pub fn addrs(&self) -> &[IpAddr] {
        &self.addrs
    }

    pub fn pick(&self, rng: &mut Rng) -> IpAddr {
        let total = *self.cumulative.last().expect("pool is never empty");
        let r = rng.below(total);
        let i = self.cumulative.partition_point(|&c| c <= r);
        self.addrs[i]
    }
}

/// How the node rewrites the source of a flow (the reply's destination).
#[derive(Debug, Clone)]
pub enum Snat {
    None,
    /// MASQUERADE through one interface, e.g. the node IP on eth0 for egress.
    To(IpAddr),
    /// MASQUERADE to the address of the interface toward the backend: the pod bridge (`cni0`)
    /// for a pod on this node, the overlay device (`flannel.1`) for a pod elsewhere.
    ByRoute {
        local_pods: (u8, u8, u8),
        bridge: IpAddr,
        overlay: IpAddr,
    },
}

impl Snat {
    fn apply(&self, client: IpAddr, backend: IpAddr) -> IpAddr {
        match self {
            Snat::None => client,
            Snat::To(a) => *a,
            Snat::ByRoute {
                local_pods: (a, b, c),
                bridge,
                overlay,
            } => match backend {
                IpAddr::V4(v) if v.octets()[..3] == [*a, *b, *c] => *bridge,
                _ => *overlay,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp(TcpState),
    Udp,
    Icmp,
}

/// One kind of traffic on the node and how many entries it leaves in the table.
#[derive(Debug, Clone)]
pub struct FlowClass {
    pub label: String,
    pub count: u64,
    kind: Kind,
    unreplied: bool,
    assured: bool,
    timeout: (u32, u32),
    clients: Pool,
    dst: Pool,
    dport: u16,
    dnat: Option<(Pool, u16)>,
    snat: Snat,
}

impl FlowClass {
    fn new(label: &str, kind: Kind, unreplied: bool, assured: bool, max: u32) -> FlowClass {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        FlowClass {
            label: label.to_string(),
            count: 0,
            kind,
            unreplied,
            assured,
            timeout: (1, max),
            clients: Pool::one(any),
            dst: Pool::one(any),
            dport: 0,
            dnat: None,
            snat: Snat::None,
        }
    }

    /// TCP in `state`. SYN_SENT has seen no reply; SYN_RECV has but is not yet assured; every
    /// later state is assured. Timeouts run from 1 to the state's maximum unless narrowed.
    pub fn tcp(label: &str, state: TcpState) -> FlowClass {
        let unreplied = state == TcpState::SynSent;
        let assured = !matches!(state, TcpState::SynSent | TcpState::SynRecv);
        FlowClass::new(
            label,
            Kind::Tcp(state),
            unreplied,
            assured,
            state.max_timeout(),
        )
    }

    /// A UDP query that got no answer: `[UNREPLIED]`, at most `nf_conntrack_udp_timeout` (30 s).
    pub fn udp_unreplied(label: &str) -> FlowClass {
        FlowClass::new(label, Kind::Udp, true, false, 30)
    }

    /// A UDP exchange answered once (a DNS lookup): replied, not assured, at most 30 s.
    pub fn udp_answered(label: &str) -> FlowClass {
        FlowClass::new(label, Kind::Udp, false, false, 30)
    }

    /// A UDP stream (traffic both ways for more than 2 s): assured, up to
    /// `nf_conntrack_udp_timeout_stream` (120 s on 6.x).
    pub fn udp_stream(label: &str) -> FlowClass {
        FlowClass::new(label, Kind::Udp, false, true, 120)
    }

    /// An echo request and its reply: never assured, at most 30 s.
    pub fn ping(label: &str) -> FlowClass {
        FlowClass::new(label, Kind::Icmp, false, false, 30)
    }

    pub fn count(mut self, n: u64) -> Self {
        self.count = n;
        self
    }

    pub fn from(mut self, clients: Pool) -> Self {
        self.clients = clients;
        self
    }

    pub fn to(mut self, dst: Pool, dport: u16) -> Self {
        self.dst = dst;
        self.dport = dport;
        self
    }

    /// kube-proxy DNAT: the destination is a Service address, the reply comes from a backend.
    pub fn dnat(mut self, backends: Pool, target_port: u16) -> Self {
        self.dnat = Some((backends, target_port));
        self
    }

    pub fn snat(mut self, snat: Snat) -> Self {
        self.snat = snat;
        self
    }

    /// Narrows the remaining-timeout range (seconds, inclusive).
    pub fn timeout(mut self, lo: u32, hi: u32) -> Self {
        debug_assert!(lo >= 1 && lo <= hi, "timeout range {lo}..={hi}");
        self.timeout = (lo, hi);
        self
    }

    pub fn unreplied(mut self) -> Self {
        self.unreplied = true;
        self.assured = false;
        self
    }
}

/// Identifies the client side of a flow for port allocation: a source port is never reused
/// toward the same destination while the old entry exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PairKey {
    udp: bool,
    src: IpAddr,
    dst: IpAddr,
    dport: u16,
}

/// Entries of a set of flow classes, interleaved, one at a time.
pub struct EntryStream {
    classes: Vec<FlowClass>,
    remaining: Vec<u64>,
    left: u64,
    rng: Rng,
    next_port: HashMap<PairKey, u32>,
}

impl EntryStream {
    pub fn new(classes: Vec<FlowClass>, rng: Rng) -> EntryStream {
        let remaining: Vec<u64> = classes.iter().map(|c| c.count).collect();
        let left = remaining.iter().sum();
        EntryStream {
            classes,
            remaining,
            left,
            rng,
            next_port: HashMap::new(),
        }
    }

    /// Entries still to come.
    pub fn len(&self) -> u64 {
        self.left
    }

    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// The `n`-th port a client uses toward one destination. TCP walks the ephemeral range in
    /// steps of two from a per-destination offset, as Linux's `__inet_hash_connect` does (so a
    /// churning client shows runs of close ports); UDP sockets get random-looking ports. Both are
    /// permutations of the range, so ports repeat only after 28,232 flows of one pair.
    fn port(&mut self, key: PairKey) -> u16 {
        let n = self.next_port.entry(key).or_insert(0);
        let k = *n;
        *n += 1;
        debug_assert!(
            k < EPHEMERAL_COUNT,
            "more than {EPHEMERAL_COUNT} flows for one pair"
        );
        let offset = pair_hash(&key) % u64::from(EPHEMERAL_COUNT);
        let half = EPHEMERAL_COUNT / 2;
        let step = if key.udp {
            (u64::from(k) * 7919) % u64::from(EPHEMERAL_COUNT)
        } else if k < half {
            u64::from(k) * 2
        } else {
            u64::from(k - half) * 2 + 1
        };
        EPHEMERAL_LOW + ((offset + step) % u64::from(EPHEMERAL_COUNT)) as u16
    }
}

fn pair_hash(key: &PairKey) -> u64 {
    let mut h: u64 = if key.udp { 0x51 } else { 0x7c };
    let mut feed = |b: u8| h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    for a in [key.src, key.dst] {
        match a {
            IpAddr::V4(v) => v.octets().into_iter().for_each(&mut feed),
            IpAddr::V6(v) => v.octets().into_iter().for_each(&mut feed),
        }
    }
    key.dport.to_be_bytes().into_iter().for_each(&mut feed);
    h ^ (h >> 29)
}

impl Iterator for EntryStream {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        if self.left == 0 {
            return None;
        }
        let mut r = self.rng.below(self.left);
        let mut i = 0;
        while r >= self.remaining[i] {
            r -= self.remaining[i];
            i += 1;
        }
        self.remaining[i] -= 1;
        self.left -= 1;

        let rng = &mut self.rng;
        let class = &self.classes[i];
        let client = class.clients.pick(rng);
        let dst = class.dst.pick(rng);
        let (backend, bport) = match &class.dnat {
            Some((pool, port)) => (pool.pick(rng), *port),
            None => (dst, class.dport),
        };
        let timeout = rng.range32(class.timeout.0, class.timeout.1);
        let reply_dst = class.snat.apply(client, backend);
        let (kind, unreplied, assured, dport) =
            (class.kind, class.unreplied, class.assured, class.dport);
        let key = PairKey {
            udp: !matches!(kind, Kind::Tcp(_)),
            src: client,
            dst,
            dport,
        };
        let sport = self.port(key);
        let (l4, sport, dport, bport) = match kind {
            Kind::Tcp(s) => (L4::Tcp(s), sport, dport, bport),
            Kind::Udp => (L4::Udp, sport, dport, bport),
            Kind::Icmp => (L4::Icmp { id: sport - 30000 }, 0, 0, 0),
        };
        Some(Entry {
            l4,
            timeout,
            orig: Tuple {
                src: client,
                dst,
                sport,
                dport,
            },
            reply: Tuple {
                src: backend,
                dst: reply_dst,
                sport: bport,
                dport: sport,
            },
            unreplied,
            assured,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn yields_exact_class_counts_and_unique_original_tuples() {
        let classes = vec![
            FlowClass::tcp("tw", TcpState::TimeWait)
                .count(5000)
                .from(Pool::one(ip("10.244.3.17")))
                .to(Pool::one(ip("10.96.12.40")), 80)
                .dnat(Pool::uniform([ip("10.244.5.9"), ip("10.244.1.4")]), 8080),
            FlowClass::udp_answered("dns")
                .count(3000)
                .from(Pool::one(ip("10.244.3.17")))
                .to(Pool::one(ip("10.96.0.10")), 53)
                .dnat(Pool::one(ip("10.244.0.2")), 53),
        ];
        let entries: Vec<Entry> = EntryStream::new(classes, Rng::new(1)).collect();
        assert_eq!(entries.len(), 8000);
        let tw = entries
            .iter()
            .filter(|e| e.l4 == L4::Tcp(TcpState::TimeWait))
            .count();
        assert_eq!(tw, 5000);
        let tuples: HashSet<_> = entries.iter().map(|e| (e.l4 == L4::Udp, e.orig)).collect();
        assert_eq!(tuples.len(), 8000);
        assert!(entries.iter().all(|e| e.timeout >= 1 && e.timeout <= 120));
    }

    #[test]
    fn masquerade_by_route_picks_bridge_for_local_backends() {
        let s = Snat::ByRoute {
            local_pods: (10, 244, 3),
            bridge: ip("10.244.3.1"),
            overlay: ip("10.244.3.0"),
        };
        assert_eq!(s.apply(ip("1.2.3.4"), ip("10.244.3.9")), ip("10.244.3.1"));
        assert_eq!(s.apply(ip("1.2.3.4"), ip("10.244.7.9")), ip("10.244.3.0"));
    }
}
