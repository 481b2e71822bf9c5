//! The Kubernetes cluster around a sample node: where addresses come from and what ordinary
//! traffic looks like, so that each scenario only has to add the traffic that makes it special.
//!
//! Address plan (a kubeadm + flannel default): pods in 10.244.0.0/16 with a /24 per node
//! (`10.244.<n>.1` is the node's `cni0`, `.0` its `flannel.1`), Services in 10.96.0.0/12
//! (`kubernetes` 10.96.0.1:443, `kube-dns` 10.96.0.10:53), nodes in 10.0.1.0/24 behind an API load
//! balancer 10.0.0.5, control-plane nodes 10.0.0.2–4. Outside clients and destinations use the
//! documentation ranges (RFC 5737) so no real network is named.
//!
//! [`Cluster::background`] is the mix of a healthy busy node, tuned so that none of the
//! analyzer's contributor rules fires on it alone: TIME_WAIT about a third of TCP, UDP under a
//! fifth of the table, ESTABLISHED spread over hundreds of pairs, no unanswered backend.

use crate::conntrack::TcpState;
use crate::flows::{FlowClass, Pool, Snat};
use crate::node::Node;
use crate::rng::Rng;
use std::net::{IpAddr, Ipv4Addr};

pub const KUBE_DNS: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10));
pub const KUBERNETES: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1));
const API_LB: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
const MONITORING: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10));

/// A ClusterIP Service and the pods behind it.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub vip: IpAddr,
    pub port: u16,
    pub target_port: u16,
    pub backends: Vec<IpAddr>,
}

impl Service {
    pub fn backend_pool(&self) -> Pool {
        Pool::uniform(self.backends.iter().copied())
    }
}

/// Addresses of the cluster as seen from one node.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub node_ip: IpAddr,
    pub pod_net: u8,
    pub local_pods: Vec<IpAddr>,
    pub remote_pods: Vec<IpAddr>,
    pub other_nodes: Vec<IpAddr>,
    pub control_plane: Vec<IpAddr>,
    pub coredns: Vec<IpAddr>,
    pub services: Vec<Service>,
    /// Outside clients of the NodePort (documentation or benchmarking ranges).
    pub outside_clients: Vec<IpAddr>,
    used_vips: Vec<IpAddr>,
}

/// How big the cluster around the node is.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Nodes in the cluster, this one included (pod networks 10.244.0–(n-1).0/24).
    pub nodes: u8,
    /// Pods on each remote node, drawn in this range.
    pub pods_per_node: (u64, u64),
    /// Distinct outside clients of the NodePort.
    pub outside_clients: u32,
}

impl Default for Size {
    /// The sample scenarios' cluster: 16 nodes, 14–24 pods each, 200 outside clients.
    fn default() -> Self {
        Size {
            nodes: 16,
            pods_per_node: (14, 24),
            outside_clients: 200,
        }
    }
}

impl Size {
    /// A cluster whose busiest node holds `entries`: the number of distinct client → service
    /// pairs grows with the table (~10⁵ per 10⁶ entries, as on real busy nodes) instead of a
    /// small cluster's few thousand filling a large table with repeats.
    pub fn for_entries(entries: u64) -> Size {
        let default = Size::default();
        Size {
            nodes: (entries / 12_000).clamp(16, 200) as u8,
            pods_per_node: if entries > 100_000 {
                (20, 40)
            } else {
                default.pods_per_node
            },
            outside_clients: (entries / 40).clamp(200, 100_000) as u32,
        }
    }
}

pub fn pod(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 244, net, host))
}

/// Nodes of the sample clusters: node `n` is 10.0.1.(20 + n) with pods in 10.244.n.0/24.
pub fn node_ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 1, 20 + n)
}

const SERVICE_NAMES: [(&str, u16, u16); 14] = [
    ("frontend", 80, 8080),
    ("catalog", 8080, 8080),
    ("cart", 8080, 8080),
    ("orders", 8080, 8080),
    ("users", 8080, 8080),
    ("search", 9200, 9200),
    ("recommendations", 8080, 8080),
    ("shipping", 80, 8080),
    ("notifications", 8080, 8080),
    ("auth", 443, 8443),
    ("session-cache", 6379, 6379),
    ("catalog-db", 5432, 5432),
    ("metrics-api", 443, 10250),
    ("feature-flags", 80, 8080),
];

impl Cluster {
    /// A 16-node cluster around `node`, with `local_pods` pods on it.
    pub fn new(node: &Node, local_pods: usize, rng: &mut Rng) -> Cluster {
        Cluster::sized(node, local_pods, Size::default(), rng)
    }

    /// A cluster of `size` around `node`, with `local_pods` pods on it.
    pub fn sized(node: &Node, local_pods: usize, size: Size, rng: &mut Rng) -> Cluster {
        let n = node.pod_net;
        let local: Vec<IpAddr> = (0..local_pods).map(|i| pod(n, 2 + i as u8)).collect();
        let mut remote = Vec::new();
        let (lo, hi) = size.pods_per_node;
        for net in (0..size.nodes).filter(|&x| x != n) {
            for host in 2..2 + rng.range(lo, hi) as u8 {
                remote.push(pod(net, host));
            }
        }
        // 203.0.113.0/24 (RFC 5737) while it suffices, 198.18.0.0/15 (RFC 2544) beyond.
        let outside_clients = if size.outside_clients <= 200 {
            (1..=size.outside_clients)
                .map(|h| IpAddr::from([203, 0, 113, h as u8]))
                .collect()
        } else {
            (0..size.outside_clients)
                .map(|i| IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 1)) + i)))
                .collect()
        };
        let coredns = vec![pod(0, 2), pod(1, 3)];
        let mut c = Cluster {
            node_ip: IpAddr::V4(node.ip),
            pod_net: n,
            local_pods: local,
            remote_pods: remote,
            other_nodes: (0..size.nodes)
                .filter(|&x| x != n)
                .map(|x| IpAddr::V4(node_ip(x)))
                .collect(),
            control_plane: (2..5).map(|h| IpAddr::from([10, 0, 0, h])).collect(),
            coredns,
            services: Vec::new(),
            outside_clients,
            used_vips: vec![KUBERNETES, KUBE_DNS],
        };
        for (name, port, target) in SERVICE_NAMES {
            let count = rng.range(2, 5) as usize;
            let s = c.new_service(name, port, target, count, rng);
            c.services.push(s);
        }
        c
    }

    /// A fresh ClusterIP in 10.96.0.0/12, never one already handed out.
    pub fn new_vip(&mut self, rng: &mut Rng) -> IpAddr {
        loop {
            let ip = IpAddr::from([
                10,
                96 + rng.below(16) as u8,
                rng.below(256) as u8,
                1 + rng.below(254) as u8,
            ]);
            if !self.used_vips.contains(&ip) {
                self.used_vips.push(ip);
                return ip;
            }
        }
    }

    /// A Service with `backends` pods picked anywhere in the cluster (this node included).
    pub fn new_service(
        &mut self,
        name: &str,
        port: u16,
        target_port: u16,
        backends: usize,
        rng: &mut Rng,
    ) -> Service {
        let vip = self.new_vip(rng);
        let mut picked: Vec<IpAddr> = Vec::new();
        while picked.len() < backends {
            let p = if rng.chance(1, 8) {
                *rng.pick(&self.local_pods)
            } else {
                *rng.pick(&self.remote_pods)
            };
            if !picked.contains(&p) {
                picked.push(p);
            }
        }
        Service {
            name: name.to_string(),
            vip,
            port,
            target_port,
            backends: picked,
        }
    }

    /// A pod address on a remote node that no Service or pod list uses yet (a pod created or
    /// deleted by a scenario).
    pub fn unused_remote_pod(&self, rng: &mut Rng) -> IpAddr {
        loop {
            let net = rng.below(16) as u8;
            if net == self.pod_net {
                continue;
            }
            let ip = pod(net, 40 + rng.below(200) as u8);
            let taken = self.remote_pods.contains(&ip)
                || self.services.iter().any(|s| s.backends.contains(&ip));
            if !taken {
                return ip;
            }
        }
    }

    pub fn bridge(&self) -> IpAddr {
        pod(self.pod_net, 1)
    }

    pub fn overlay(&self) -> IpAddr {
        pod(self.pod_net, 0)
    }

    /// Masquerade for NodePort traffic: the address of the interface toward the backend.
    pub fn nodeport_snat(&self) -> Snat {
        Snat::ByRoute {
            local_pods: (10, 244, self.pod_net),
            bridge: self.bridge(),
            overlay: self.overlay(),
        }
    }

    /// Local pods, a few busier than the rest.
    pub fn local_clients(&self) -> Pool {
        Pool::skewed(self.local_pods.iter().copied())
    }

    /// The ordinary traffic of a busy healthy node, `n` entries in all.
    pub fn background(&self, n: u64, rng: &mut Rng) -> Vec<FlowClass> {
        use TcpState::*;
        let local = self.local_clients();
        let mut fixed: Vec<FlowClass> = Vec::new();
        let v6_node: IpAddr = format!("fd00:10:0:1::{:x}", 0x20 + u32::from(self.pod_net))
            .parse()
            .expect("valid IPv6 literal");
        let v6_mon: IpAddr = "fd00:10::a".parse().expect("valid IPv6 literal");
        let v6_ntp: IpAddr = "2001:db8:4860::123".parse().expect("valid IPv6 literal");
        if n >= 40 {
            let node = Pool::one(self.node_ip);
            let cp = Pool::uniform(self.control_plane.iter().copied());
            fixed.extend([
                FlowClass::tcp(
                    "kubelet and kube-proxy to the API load balancer",
                    Established,
                )
                .count(2)
                .timeout(86_300, 86_400)
                .from(node.clone())
                .to(Pool::one(API_LB), 6443),
                FlowClass::tcp("host-network agents to kubernetes.default", Established)
                    .count(1)
                    .timeout(86_300, 86_400)
                    .from(node)
                    .to(Pool::one(KUBERNETES), 443)
                    .dnat(cp.clone(), 6443),
                FlowClass::tcp("controllers to kubernetes.default", Established)
                    .count(3)
                    .timeout(86_200, 86_400)
                    .from(local.clone())
                    .to(Pool::one(KUBERNETES), 443)
                    .dnat(cp, 6443),
                FlowClass::ping("monitoring pings the node")
                    .count(3)
                    .from(Pool::one(MONITORING))
                    .to(Pool::one(self.node_ip), 0),
                FlowClass::tcp("node-exporter scraped over IPv6", Established)
                    .count(2)
                    .timeout(86_390, 86_400)
                    .from(Pool::one(v6_mon))
                    .to(Pool::one(v6_node), 9100),
                FlowClass::tcp("node-exporter scrapes, closed", TimeWait)
                    .count(2)
                    .from(Pool::one(v6_mon))
                    .to(Pool::one(v6_node), 9100),
                FlowClass::udp_answered("chrony over IPv6")
                    .count(2)
                    .from(Pool::one(v6_node))
                    .to(Pool::one(v6_ntp), 123),
                FlowClass::ping("monitoring pings the node over IPv6")
                    .count(2)
                    .from(Pool::one(v6_mon))
                    .to(Pool::one(v6_node), 0),
            ]);
        }
        let fixed_total: u64 = fixed.iter().map(|c| c.count).sum();

        let services = &self.services;
        let svc_weights: Vec<u64> = (0..services.len())
            .map(|i| 60 / (i as u64 + 1) + 4)
            .collect();
        let svc_sum: u64 = svc_weights.iter().sum();
        let mut weighted: Vec<(FlowClass, u64)> = Vec::new();
        for (state, per_mille, lo, hi, label) in [
            (
                Established,
                240,
                86_100,
                86_400,
                "pooled connections in use",
            ),
            (
                Established,
                100,
                1_800,
                86_400,
                "idle keep-alive connections",
            ),
            (TimeWait, 120, 1, 120, "closed requests"),
            (FinWait, 10, 1, 120, "closing"),
            (CloseWait, 6, 1, 3600, "half-closed"),
            (LastAck, 3, 1, 30, "closing"),
            (Close, 2, 1, 10, "reset"),
            (SynSent, 4, 1, 120, "connecting"),
        ] {
            for (s, w) in services.iter().zip(&svc_weights) {
                let class = FlowClass::tcp(&format!("pods to {} ({label})", s.name), state)
                    .timeout(lo, hi)
                    .from(local.clone())
                    .to(Pool::one(s.vip), s.port)
                    .dnat(s.backend_pool(), s.target_port);
                weighted.push((class, per_mille * w * 1000 / svc_sum));
            }
        }
        let remote = Pool::skewed(self.remote_pods.iter().copied());
        let local_dst = Pool::uniform(self.local_pods.iter().copied());
        let coredns = Pool::uniform(self.coredns.iter().copied());
        let outside_clients = Pool::skewed(self.outside_clients.iter().copied());
        let outside_apis =
            Pool::skewed((0..20).map(|h| IpAddr::from([198, 51, 100, 10 + h as u8])));
        let ingress: Vec<IpAddr> = self.services[0].backends.clone();
        let node = Pool::one(self.node_ip);
        weighted.extend([
            (
                FlowClass::tcp("remote pods to pods here (half-open)", SynRecv)
                    .from(remote.clone())
                    .to(local_dst.clone(), 8080),
                2_000,
            ),
            (
                FlowClass::udp_answered("DNS lookups via kube-dns")
                    .from(local.clone())
                    .to(Pool::one(KUBE_DNS), 53)
                    .dnat(coredns.clone(), 53),
                152_000,
            ),
            (
                FlowClass::udp_unreplied("DNS lookups in flight")
                    .from(local.clone())
                    .to(Pool::one(KUBE_DNS), 53)
                    .dnat(coredns, 53),
                6_000,
            ),
            (
                FlowClass::tcp("remote pods to pods here", Established)
                    .timeout(80_000, 86_400)
                    .from(remote.clone())
                    .to(local_dst.clone(), 8080),
                100_000,
            ),
            (
                FlowClass::tcp("remote pods to pods here, closed", TimeWait)
                    .from(remote)
                    .to(local_dst.clone(), 8080),
                50_000,
            ),
            (
                FlowClass::tcp("kubelet probes", TimeWait)
                    .from(Pool::one(self.bridge()))
                    .to(local_dst, 8081),
                50_000,
            ),
            (
                FlowClass::tcp("NodePort 30443 to ingress", Established)
                    .timeout(86_000, 86_400)
                    .from(outside_clients.clone())
                    .to(node.clone(), 30443)
                    .dnat(Pool::uniform(ingress.iter().copied()), 8443)
                    .snat(self.nodeport_snat()),
                30_000,
            ),
            (
                FlowClass::tcp("NodePort 30443 to ingress, closed", TimeWait)
                    .from(outside_clients)
                    .to(node.clone(), 30443)
                    .dnat(Pool::uniform(ingress.iter().copied()), 8443)
                    .snat(self.nodeport_snat()),
                30_000,
            ),
            (
                FlowClass::tcp("pods to outside APIs (masqueraded)", Established)
                    .timeout(85_000, 86_400)
                    .from(local.clone())
                    .to(outside_apis.clone(), 443)
                    .snat(Snat::To(self.node_ip)),
                40_000,
            ),
            (
                FlowClass::tcp("pods to outside APIs, closed", TimeWait)
                    .from(local)
                    .to(outside_apis, 443)
                    .snat(Snat::To(self.node_ip)),
                30_000,
            ),
            (
                FlowClass::udp_stream("flannel VXLAN to other nodes")
                    .from(node)
                    .to(Pool::uniform(self.other_nodes.iter().copied()), 8472),
                25_000,
            ),
        ]);
        let counts = spread(
            n - fixed_total.min(n),
            &weighted.iter().map(|(_, w)| *w).collect::<Vec<_>>(),
            rng,
        );
        let mut classes: Vec<FlowClass> = fixed;
        classes.extend(
            weighted
                .into_iter()
                .zip(counts)
                .filter(|(_, c)| *c > 0)
                .map(|((class, _), c)| class.count(c)),
        );
        classes
    }
}

/// Splits `total` in proportion to `weights` (largest remainder, ties broken at random), so the
/// parts add up to `total` exactly.
pub fn spread(total: u64, weights: &[u64], rng: &mut Rng) -> Vec<u64> {
    let sum: u64 = weights.iter().sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut parts: Vec<u64> = weights
        .iter()
        .map(|w| (u128::from(total) * u128::from(*w) / u128::from(sum)) as u64)
        .collect();
    let mut rem: Vec<(u64, u64, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let r = (u128::from(total) * u128::from(*w) % u128::from(sum)) as u64;
            (r, rng.next_u64(), i)
        })
        .collect();
    rem.sort_by(|a, b| b.cmp(a));
    let missing = total - parts.iter().sum::<u64>();
    for (_, _, i) in rem.into_iter().take(missing as usize) {
        parts[i] += 1;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::EntryStream;
    use crate::tally::Tally;

    fn node() -> Node {
        Node {
            name: "w".into(),
            cpus: 2,
            mem_kb: 4_017_352,
            ip: node_ip(3),
            pod_net: 3,
            uptime_cs: 100,
        }
    }

    #[test]
    fn background_has_exactly_n_entries_and_trips_no_contributor() {
        let mut rng = Rng::new(9);
        let c = Cluster::new(&node(), 28, &mut rng);
        let classes = c.background(20_000, &mut rng);
        let mut t = Tally::default();
        EntryStream::new(classes, rng.fork("s")).for_each(|e| t.add(&e));
        assert_eq!(t.entries, 20_000);
        assert!(t.state(TcpState::TimeWait) * 100 < t.tcp * 40);
        assert!(t.udp * 100 < t.entries * 25);
        assert!(t.state(TcpState::Established) * 100 < t.tcp * 70);
        assert!(
            t.top_pairs_total(TcpState::Established, 5) * 100 < t.state(TcpState::Established) * 20
        );
        assert!(t.stale_entries() * 100 < t.entries);
        assert!(t.ipv6 > 0 && t.icmp > 0);
    }

    #[test]
    fn spread_is_exact() {
        let mut rng = Rng::new(1);
        let parts = spread(1001, &[3, 3, 3, 1], &mut rng);
        assert_eq!(parts.iter().sum::<u64>(), 1001);
    }
}
