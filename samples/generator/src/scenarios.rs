//! The nine sample nodes, one failure mode (or its absence) each, and what the collector would have
//! written on them.
//!
//! A scenario is stated as a node, a conntrack limit, traffic ([`FlowClass`]es on top of the
//! cluster's ordinary background) and counters; every member of the bundle is derived from that,
//! so the numbers agree across members the way they do on a real node: `conntrack -C`, the
//! `/proc/net/stat` `entries` column and `net.netfilter.nf_conntrack_count` equal the length of
//! the list taken with them; `drop` rises between samples exactly when dmesg is still printing
//! table-full lines; the unreclaimable slab grows with the table.
//!
//! Table sizes are bounded by the 1 MB budget per bundle. A conntrack line compresses to 12–18
//! bytes (measured), so a full table of 65,536 entries — the kernel default on a 4 GiB ≥ 5.15
//! node — would not fit beside the other members. The small nodes therefore run an image whose
//! `/etc/sysctl.d` sets `nf_conntrack_max = 32768` (an old tuning guide's value); the same image on
//! a 16-CPU node is the `undersized-table` sample. The tests check every bundle stays under 1 MB.

use crate::bundle::{Body, Collection, Failed, ListSpec, Member, epoch};
use crate::cluster::{Cluster, Service, node_ip};
use crate::conntrack::{ListFormat, TcpState};
use crate::flows::{FlowClass, Pool};
use crate::kernel_log::{self, FullEpisode, LogPlan};
use crate::layers::{Extra, Layer};
use crate::node::{self, KERNEL_RELEASE, Node};
use crate::rng::Rng;
use crate::stats::{self, Counters};
use crate::sysctl::{self, ConntrackSysctl, Interfaces};
use std::net::IpAddr;

/// The seed `gen-samples all` uses unless told otherwise; the committed samples come from it.
pub const DEFAULT_SEED: u64 = 0x00c7_d1a6_5eed_2026;

/// Seconds between the two samples of the sampled members.
pub const SAMPLE_INTERVAL_MS: u64 = 5_000;

/// One sample node.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Directory name under `samples/`.
    pub case: &'static str,
    pub title: &'static str,
    pub node: Node,
    /// Unix time the collection started.
    pub started: u64,
    pub max: u64,
    pub buckets: u64,
    /// Why `nf_conntrack_max` has this value on this node.
    pub max_origin: String,
    pub veths: Vec<String>,
    pub replaced_pods: usize,
    pub classes: Vec<FlowClass>,
    /// `conntrack -C` at the second sample minus the list's length.
    pub count_drift: i64,
    /// Counters (summed over CPUs) at the first sample and at the second.
    pub first: Counters,
    pub second: Counters,
    pub episode: Option<FullEpisode>,
    pub expected_cause: Option<&'static str>,
    pub expected_contributors: Vec<&'static str>,
    /// What the node looks like and what a reader should conclude (Markdown).
    pub story: String,
    /// What the node runs beside netfilter (Cilium, kube-proxy) and its members.
    pub layer: crate::layers::Layer,
    pub(crate) rng: Rng,
}

/// Every scenario, in the order of the index.
pub fn all(seed: u64) -> Vec<Scenario> {
    let root = Rng::new(seed);
    vec![
        healthy(root.fork("healthy")),
        timewait_churn(root.fork("timewait-churn")),
        dns_udp_flood(root.fork("dns-udp-flood")),
        connection_leak(root.fork("connection-leak")),
        retry_storm(root.fork("retry-storm")),
        stale_after_rollout(root.fork("stale-after-rollout")),
        undersized_table(root.fork("undersized-table")),
        full_earlier(root.fork("full-earlier")),
        pressure(root.fork("pressure")),
        crate::layers::cilium_ct_full(root.fork("cilium-ct-full")),
        crate::layers::cilium_ct_pressure(root.fork("cilium-ct-pressure")),
        crate::layers::cilium_gc_lagging(root.fork("cilium-gc-lagging")),
        crate::layers::cilium_nat_full(root.fork("cilium-nat-full")),
        crate::layers::kube_proxy_stalled(root.fork("kube-proxy-stalled")),
        crate::layers::cilium_healthy(root.fork("cilium-healthy")),
    ]
}

/// A 2 vCPU / 4 GiB worker of the pool whose image sets `nf_conntrack_max = 32768`.
pub(crate) fn small_node(name: &str, pod_net: u8, rng: &mut Rng) -> Node {
    Node {
        name: name.to_string(),
        cpus: 2,
        mem_kb: 4_017_352 - rng.range(0, 40) * 4,
        ip: node_ip(pod_net),
        pod_net,
        uptime_cs: rng.range(6 * 86_400, 40 * 86_400) * 100 + rng.range(0, 99),
    }
}

pub(crate) fn big_node(name: &str, pod_net: u8, cpus: u32, mem_kb: u64, rng: &mut Rng) -> Node {
    Node {
        name: name.to_string(),
        cpus,
        mem_kb,
        ip: node_ip(pod_net),
        pod_net,
        uptime_cs: rng.range(6 * 86_400, 40 * 86_400) * 100 + rng.range(0, 99),
    }
}

const SMALL_MAX: u64 = 32_768;
const SMALL_BUCKETS: u64 = 65_536;
const SMALL_MAX_ORIGIN: &str = "set by the node image's `/etc/sysctl.d/90-conntrack.conf` (an old \
     tuning guide's value); kube-proxy runs with `conntrack.maxPerCore: 0` and leaves it alone. \
     Half the kernel default for this RAM, a quarter of kube-proxy's default: modest, not the \
     cause here";

/// Counters every node has after days of uptime, drops aside: a few invalid packets, hash
/// restarts, resolved clashes. `rates` are per second.
pub(crate) fn baseline(node: &Node, rng: &mut Rng) -> (Counters, Counters) {
    let up = node.uptime_secs();
    let first = Counters {
        found: up / 200 + rng.range(0, 50),
        invalid: up / 15 + rng.range(0, 500),
        error: up / 3000 + rng.range(0, 5),
        search_restart: up / 120 + rng.range(0, 100),
        clash_resolve: up / 900 + rng.range(0, 20),
        ..Counters::default()
    };
    let rates = Counters {
        invalid: rng.range(0, 2),
        search_restart: rng.range(0, 1),
        ..Counters::default()
    };
    (first, rates)
}

/// Second-sample counters: `rates` per second over the 5 s interval, each rise jittered by up to
/// ±5 % (drops do not arrive on a metronome).
pub(crate) fn grow(first: &Counters, rates: &Counters, rng: &mut Rng) -> Counters {
    let secs = SAMPLE_INTERVAL_MS / 1000;
    let mut j = |r: u64| {
        let d = r * secs;
        d - d / 20 + rng.range(0, d / 10)
    };
    Counters {
        found: first.found + j(rates.found),
        invalid: first.invalid + j(rates.invalid),
        insert: first.insert + j(rates.insert),
        insert_failed: first.insert_failed + j(rates.insert_failed),
        drop: first.drop + j(rates.drop),
        early_drop: first.early_drop + j(rates.early_drop),
        error: first.error + j(rates.error),
        search_restart: first.search_restart + j(rates.search_restart),
        clash_resolve: first.clash_resolve + j(rates.clash_resolve),
        chaintoolong: first.chaintoolong + j(rates.chaintoolong),
    }
}

/// `x` give or take 5 %: cumulative counters are never round products of a rate and a duration.
fn about(x: u64, rng: &mut Rng) -> u64 {
    x - x / 20 + rng.range(0, x / 10)
}

pub(crate) fn veths(n: usize, rng: &mut Rng) -> Vec<String> {
    (0..n).map(|_| kernel_log::veth_name(rng)).collect()
}

/// `count` entries of pod→Service TCP in `state`, from `clients`, DNAT'd to `backends`.
fn to_service(
    label: &str,
    state: TcpState,
    count: u64,
    clients: Pool,
    s: &Service,
    backends: Pool,
) -> FlowClass {
    FlowClass::tcp(label, state)
        .count(count)
        .from(clients)
        .to(Pool::one(s.vip), s.port)
        .dnat(backends, s.target_port)
}

fn pods(c: &Cluster, idx: &[usize]) -> Pool {
    Pool::uniform(idx.iter().map(|&i| c.local_pods[i]))
}

fn list_note(s: &Service) -> String {
    format!("`{}` ({}:{})", s.name, s.vip, s.port)
}

fn healthy(mut rng: Rng) -> Scenario {
    let node = big_node("wrk-large-07", 7, 8, 32_873_772, &mut rng);
    let cluster = Cluster::new(&node, 34, &mut rng);
    let classes = cluster.background(4_000, &mut rng);
    let (first, rates) = baseline(&node, &mut rng);
    let second = grow(&first, &rates, &mut rng);
    Scenario {
        case: "healthy",
        title: "Healthy node: a busy mix, far from the limit",
        started: epoch(2026, 11, 16, 10, 4, 51),
        max: 262_144,
        buckets: 262_144,
        max_origin:
            "kube-proxy's `max(131072, 32768 × 8 CPUs)` = 262144 (this pool's image has no \
                     conntrack sysctl), which is also the kernel default for 32 GiB"
                .into(),
        veths: veths(34, &mut rng),
        replaced_pods: 6,
        classes,
        count_drift: rng.range(0, 30) as i64 - 15,
        first,
        second,
        episode: None,
        expected_cause: None,
        expected_contributors: vec![],
        story: "An 8 vCPU / 32 GiB worker running 34 pods: pods calling Services through \
                kube-proxy (DNAT from ClusterIPs to pod IPs), DNS lookups through kube-dns, \
                pods on other nodes calling pods here, kubelet probes, an ingress NodePort \
                (masqueraded) and egress to outside APIs, plus flannel's VXLAN stream between \
                nodes and a few IPv6 and ICMP flows.\n\n\
                The table holds about 1.5 % of its limit, no counter shows a drop, early drop or \
                failed insert and the kernel log has no conntrack message. A reader — and the \
                analyzer — should conclude that connection tracking is not this node's problem \
                and look elsewhere."
            .into(),
        layer: Layer::Netfilter,
        node,
        rng,
    }
}

fn timewait_churn(mut rng: Rng) -> Scenario {
    let node = small_node("wrk-small-03", 3, &mut rng);
    let mut cluster = Cluster::new(&node, 26, &mut rng);
    let inventory = cluster.new_service("inventory", 80, 8080, 4, &mut rng);
    let pricing = cluster.new_service("pricing", 8080, 8080, 3, &mut rng);
    let clients = pods(&cluster, &[2, 5, 9]);
    let mut classes = vec![
        to_service(
            "report-builder to inventory, one connection per request",
            TcpState::TimeWait,
            13_050,
            clients.clone(),
            &inventory,
            inventory.backend_pool(),
        ),
        to_service(
            "report-builder to pricing, one connection per request",
            TcpState::TimeWait,
            6_650,
            clients.clone(),
            &pricing,
            pricing.backend_pool(),
        ),
        to_service(
            "report-builder requests in flight",
            TcpState::Established,
            120,
            clients,
            &inventory,
            inventory.backend_pool(),
        )
        .timeout(86_390, 86_400),
    ];
    let max = SMALL_MAX;
    let own: u64 = classes.iter().map(|c| c.count).sum();
    classes.extend(cluster.background(max - own, &mut rng));
    let episode = FullEpisode {
        started_before_s: 420 + rng.range(0, 60),
        ended_before_s: 0,
        drops_per_s: 180,
    };
    let (mut first, mut rates) = baseline(&node, &mut rng);
    first.drop = about(episode.started_before_s * episode.drops_per_s, &mut rng);
    first.early_drop = about(episode.started_before_s * 6, &mut rng);
    rates.drop = episode.drops_per_s;
    rates.early_drop = 6;
    let second = grow(&first, &rates, &mut rng);
    let story = format!(
        "A 2 vCPU / 4 GiB worker. Three `report-builder` pods ({}, {}, {}) open a new TCP \
         connection for every request to {} and {} and close it right away: HTTP without \
         keep-alive. Each closed connection stays in conntrack in TIME_WAIT for up to 120 s, so \
         some 160 requests per second keep about 20,000 entries of a handful of client → \
         ClusterIP:port pairs in a table of 32,768.\n\n\
         The table is full (`conntrack -C` = `nf_conntrack_max`), `drop` rises between the two \
         samples and dmesg is still printing `nf_conntrack: table full, dropping packet` (and \
         its `in netns` form) with `net_ratelimit` suppressions. A reader should conclude: the \
         table is exhausted *because of* TIME_WAIT churn — fix the client (keep-alive / \
         connection pooling) rather than only raising the limit.",
        cluster.local_pods[2],
        cluster.local_pods[5],
        cluster.local_pods[9],
        list_note(&inventory),
        list_note(&pricing),
    );
    Scenario {
        case: "timewait-churn",
        title: "Table full of TIME_WAIT from clients that never reuse connections",
        started: epoch(2026, 11, 17, 14, 22, 9),
        max,
        buckets: SMALL_BUCKETS,
        max_origin: SMALL_MAX_ORIGIN.into(),
        veths: veths(26, &mut rng),
        replaced_pods: 4,
        classes,
        count_drift: 0,
        first,
        second,
        episode: Some(episode),
        expected_cause: Some("nf.table_exhausted"),
        expected_contributors: vec!["nf.timewait_churn", "nf.max_undersized"],
        story,
        layer: Layer::Netfilter,
        node,
        rng,
    }
}

fn dns_udp_flood(mut rng: Rng) -> Scenario {
    let node = small_node("wrk-small-11", 11, &mut rng);
    let cluster = Cluster::new(&node, 24, &mut rng);
    let crawlers = pods(&cluster, &[1, 3, 4, 8, 12, 17]);
    let coredns = Pool::uniform(cluster.coredns.iter().copied());
    let kube_dns = Pool::one(crate::cluster::KUBE_DNS);
    let mut classes = vec![
        FlowClass::udp_answered("crawler lookups answered by CoreDNS")
            .count(13_800)
            .from(crawlers.clone())
            .to(kube_dns.clone(), 53)
            .dnat(coredns.clone(), 53),
        FlowClass::udp_unreplied("crawler lookups CoreDNS never answered")
            .count(8_700)
            .from(crawlers)
            .to(kube_dns, 53)
            .dnat(coredns, 53),
    ];
    let max = SMALL_MAX;
    let own: u64 = classes.iter().map(|c| c.count).sum();
    classes.extend(cluster.background(max - own, &mut rng));
    let episode = FullEpisode {
        started_before_s: 300 + rng.range(0, 60),
        ended_before_s: 0,
        drops_per_s: 260,
    };
    let (mut first, mut rates) = baseline(&node, &mut rng);
    let up = episode.started_before_s;
    first.drop = about(up * episode.drops_per_s, &mut rng);
    first.early_drop = about(up * 900, &mut rng);
    first.insert_failed = about(up * 45, &mut rng) + rng.range(100, 900);
    first.clash_resolve += up * 30;
    rates.drop = episode.drops_per_s;
    rates.early_drop = 900;
    rates.insert_failed = 45;
    rates.clash_resolve = 30;
    let second = grow(&first, &rates, &mut rng);
    let story = "A 2 vCPU / 4 GiB worker. Six `crawler` pods resolve external names with the \
         default `ndots:5`, so every lookup becomes several queries (search domains × A/AAAA) to \
         kube-dns (10.96.0.10:53, DNAT'd to the CoreDNS pods 10.244.0.2 and 10.244.1.3). \
         CoreDNS cannot keep up: a large share of the queries is never answered and stays \
         `[UNREPLIED]` for 30 s; answered ones stay 30 s too (a UDP exchange is not assured).\n\n\
         The table is full, UDP is the largest protocol and almost all of it is DNS to \
         kube-dns. `early_drop` rises fastest (the kernel evicts unassured UDP entries to make \
         room), `drop` rises too, and `insert_failed` climbs with the classic A/AAAA insert \
         race. A reader should conclude: exhaustion driven by UDP/DNS accumulation — cut the \
         query volume (ndots, NodeLocal DNSCache, caching in the client) rather than only \
         raising the limit."
        .to_string();
    Scenario {
        case: "dns-udp-flood",
        title: "Table full of DNS queries to kube-dns",
        started: epoch(2026, 11, 18, 3, 51, 37),
        max,
        buckets: SMALL_BUCKETS,
        max_origin: SMALL_MAX_ORIGIN.into(),
        veths: veths(24, &mut rng),
        replaced_pods: 2,
        classes,
        count_drift: 0,
        first,
        second,
        episode: Some(episode),
        expected_cause: Some("nf.table_exhausted"),
        expected_contributors: vec!["nf.udp_accumulation", "nf.max_undersized"],
        story,
        layer: Layer::Netfilter,
        node,
        rng,
    }
}

fn connection_leak(mut rng: Rng) -> Scenario {
    let node = small_node("wrk-small-05", 5, &mut rng);
    let mut cluster = Cluster::new(&node, 22, &mut rng);
    let db = cluster.new_service("orders-db", 5432, 5432, 1, &mut rng);
    let cache = cluster.new_service("orders-cache", 6379, 6379, 1, &mut rng);
    let clients = pods(&cluster, &[1, 4]);
    let mut classes = vec![
        to_service(
            "orders-api connections to orders-db never closed",
            TcpState::Established,
            10_600,
            clients.clone(),
            &db,
            db.backend_pool(),
        )
        .timeout(43_200, 86_399),
        to_service(
            "orders-api connections to orders-cache never closed",
            TcpState::Established,
            6_400,
            clients.clone(),
            &cache,
            cache.backend_pool(),
        )
        .timeout(43_200, 86_399),
        to_service(
            "orders-api connections in use",
            TcpState::Established,
            210,
            clients,
            &db,
            db.backend_pool(),
        )
        .timeout(86_380, 86_400),
    ];
    let count = 27_853; // 85 % of 32,768
    let own: u64 = classes.iter().map(|c| c.count).sum();
    classes.extend(cluster.background(count - own, &mut rng));
    let (first, rates) = baseline(&node, &mut rng);
    let second = grow(&first, &rates, &mut rng);
    let story = format!(
        "A 2 vCPU / 4 GiB worker. Two `orders-api` pods ({}, {}) open connections to {} and {} \
         and never close them: a pool that grows on every burst and never shrinks (a missing \
         `close()` on an error path). Each connection is one ESTABLISHED entry that lives for \
         kube-proxy's 24 h established timeout; the remaining timeouts are long and spread over \
         the last twelve hours, the signature of an accumulation rather than a burst.\n\n\
         The table is at about 85 %: no drop yet, no kernel message. ESTABLISHED is most of TCP \
         and most of ESTABLISHED sits on four client → ClusterIP:port pairs. A reader should \
         conclude: pressure caused by a connection leak — fix the client before the table \
         fills; raising the limit only buys time.",
        cluster.local_pods[1],
        cluster.local_pods[4],
        list_note(&db),
        list_note(&cache),
    );
    Scenario {
        case: "connection-leak",
        title: "Leaked pool connections pushing the table to 85 %",
        started: epoch(2026, 11, 19, 8, 15, 2),
        max: SMALL_MAX,
        buckets: SMALL_BUCKETS,
        max_origin: SMALL_MAX_ORIGIN.into(),
        veths: veths(22, &mut rng),
        replaced_pods: 3,
        classes,
        count_drift: rng.range(0, 60) as i64 - 10,
        first,
        second,
        episode: None,
        expected_cause: Some("nf.table_pressure"),
        expected_contributors: vec!["nf.connection_leak", "nf.max_undersized"],
        story,
        layer: Layer::Netfilter,
        node,
        rng,
    }
}

fn retry_storm(mut rng: Rng) -> Scenario {
    let node = small_node("wrk-small-09", 9, &mut rng);
    let mut cluster = Cluster::new(&node, 25, &mut rng);
    let payments = cluster.new_service("payments", 443, 8443, 3, &mut rng);
    let checkout = pods(&cluster, &[0, 2, 6, 7, 11]);
    let mut classes = vec![
        to_service(
            "checkout connection attempts payments never answers",
            TcpState::SynSent,
            13_500,
            checkout.clone(),
            &payments,
            payments.backend_pool(),
        ),
        to_service(
            "checkout connections that got through",
            TcpState::Established,
            300,
            checkout.clone(),
            &payments,
            payments.backend_pool(),
        )
        .timeout(86_300, 86_400),
        to_service(
            "checkout requests completed",
            TcpState::TimeWait,
            900,
            checkout,
            &payments,
            payments.backend_pool(),
        ),
    ];
    let max = SMALL_MAX;
    let own: u64 = classes.iter().map(|c| c.count).sum();
    classes.extend(cluster.background(max - own, &mut rng));
    let episode = FullEpisode {
        started_before_s: 240 + rng.range(0, 40),
        ended_before_s: 0,
        drops_per_s: 1_400,
    };
    let (mut first, mut rates) = baseline(&node, &mut rng);
    first.drop = about(episode.started_before_s * episode.drops_per_s, &mut rng);
    first.early_drop = about(episode.started_before_s * 5_200, &mut rng);
    rates.drop = episode.drops_per_s;
    rates.early_drop = 5_200;
    let second = grow(&first, &rates, &mut rng);
    let story = format!(
        "A 2 vCPU / 4 GiB worker. The `payments` backends behind {} are overloaded and stop \
         accepting connections (their SYN backlog is full). Five `checkout` pods retry \
         immediately and without backoff, each attempt from a new source port, so every retry \
         is a new SYN_SENT `[UNREPLIED]` entry that lives up to 120 s. The same backends still \
         answer some connections (ESTABLISHED and TIME_WAIT entries with replies exist), so \
         they are alive, not deleted.\n\n\
         The table is full and `drop` rises fast between the samples (`early_drop` even faster: \
         the kernel keeps evicting the unassured SYN_SENT entries); dmesg is flooded with \
         table-full lines. A reader should conclude: exhaustion driven by a retry storm against \
         one Service — add backoff / circuit breaking in the client and capacity to the \
         backend.",
        list_note(&payments)
    );
    Scenario {
        case: "retry-storm",
        title: "Retry storm of unanswered SYNs to one Service",
        started: epoch(2026, 11, 20, 19, 47, 26),
        max,
        buckets: SMALL_BUCKETS,
        max_origin: SMALL_MAX_ORIGIN.into(),
        veths: veths(25, &mut rng),
        replaced_pods: 5,
        classes,
        count_drift: 0,
        first,
        second,
        episode: Some(episode),
        expected_cause: Some("nf.table_exhausted"),
        expected_contributors: vec!["nf.retry_storm", "nf.max_undersized"],
        story,
        layer: Layer::Netfilter,
        node,
        rng,
    }
}

fn stale_after_rollout(mut rng: Rng) -> Scenario {
    let node = small_node("wrk-small-02", 2, &mut rng);
    let mut cluster = Cluster::new(&node, 27, &mut rng);
    let dead: Vec<IpAddr> = (0..3)
        .map(|_| cluster.unused_remote_pod(&mut rng))
        .collect();
    let mut checkout = cluster.new_service("checkout", 8080, 8080, 2, &mut rng);
    let live = Pool::uniform(checkout.backends.iter().copied());
    checkout.backends.extend(dead.iter().copied());
    let dead_dns: Vec<IpAddr> = (0..2)
        .map(|_| cluster.unused_remote_pod(&mut rng))
        .collect();
    let mut consul = cluster.new_service("consul-dns", 53, 8600, 1, &mut rng);
    let consul_live = Pool::uniform(consul.backends.iter().copied());
    consul.backends.extend(dead_dns.iter().copied());
    let frontend = pods(&cluster, &[0, 1, 3, 5, 8, 10, 13, 19]);
    let mut classes = vec![
        to_service(
            "frontend to checkout, DNAT'd to deleted pods",
            TcpState::SynSent,
            3_300,
            frontend.clone(),
            &checkout,
            Pool::uniform(dead.iter().copied()),
        ),
        to_service(
            "frontend to checkout, live pods",
            TcpState::Established,
            750,
            frontend.clone(),
            &checkout,
            live.clone(),
        )
        .timeout(86_000, 86_400),
        to_service(
            "frontend to checkout, live pods, closed",
            TcpState::TimeWait,
            1_500,
            frontend.clone(),
            &checkout,
            live,
        ),
        FlowClass::udp_unreplied("service discovery lookups DNAT'd to deleted consul pods")
            .count(1_700)
            .from(frontend.clone())
            .to(Pool::one(consul.vip), consul.port)
            .dnat(Pool::uniform(dead_dns.iter().copied()), consul.target_port),
        FlowClass::udp_answered("service discovery lookups, live consul pod")
            .count(600)
            .from(frontend)
            .to(Pool::one(consul.vip), consul.port)
            .dnat(consul_live, consul.target_port),
    ];
    let count = 29_491; // 90 % of 32,768
    let own: u64 = classes.iter().map(|c| c.count).sum();
    classes.extend(cluster.background(count - own, &mut rng));
    let (first, rates) = baseline(&node, &mut rng);
    let second = grow(&first, &rates, &mut rng);
    let list = |v: &[IpAddr]| {
        v.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let story = format!(
        "A 2 vCPU / 4 GiB worker, an hour after a rollout. kube-proxy on this node stopped \
         applying rules during the rollout (its `iptables-restore` kept failing), so its rules \
         still DNAT {} to five pods of which three ({}) were deleted, and {} to a deleted consul \
         pod pair ({}) beside the one that survived. Connections sent to a deleted pod never get \
         an answer: TCP stays SYN_SENT `[UNREPLIED]`, UDP stays `[UNREPLIED]`, and the clients \
         keep retrying.\n\n\
         The table is at about 90 %, no drop yet. A large share of it is unanswered entries \
         whose reply source is a pod IP that has no answered entry anywhere in the table, while \
         the live backends of the same Services do have answered ones. A reader should \
         conclude: pressure from stale entries toward deleted backends — fix kube-proxy (and \
         clear the stale entries with `conntrack -D` for those addresses); raising the limit \
         would only make room for more of them.",
        list_note(&checkout),
        list(&dead),
        list_note(&consul),
        list(&dead_dns),
    );
    Scenario {
        case: "stale-after-rollout",
        title: "Stale entries to pods deleted by a rollout",
        started: epoch(2026, 11, 21, 11, 3, 58),
        max: SMALL_MAX,
        buckets: SMALL_BUCKETS,
        max_origin: SMALL_MAX_ORIGIN.into(),
        veths: veths(27, &mut rng),
        replaced_pods: 9,
        classes,
        count_drift: rng.range(0, 80) as i64 - 40,
        first,
        second,
        episode: None,
        expected_cause: Some("nf.table_pressure"),
        expected_contributors: vec!["nf.stale_entries", "nf.max_undersized"],
        story,
        layer: Layer::Netfilter,
        node,
        rng,
    }
}

fn undersized_table(mut rng: Rng) -> Scenario {
    let node = big_node("wrk-xlarge-12", 12, 16, 65_842_612, &mut rng);
    let cluster = Cluster::new(&node, 58, &mut rng);
    let max = 32_768;
    let classes = cluster.background(max, &mut rng);
    let episode = FullEpisode {
        started_before_s: 540 + rng.range(0, 120),
        ended_before_s: 0,
        drops_per_s: 95,
    };
    let (mut first, mut rates) = baseline(&node, &mut rng);
    // Full at every daily peak for a while: drops from earlier days are in the counters too.
    first.drop = episode.started_before_s * episode.drops_per_s + rng.range(150_000, 260_000);
    first.early_drop = episode.started_before_s * 20 + rng.range(30_000, 60_000);
    rates.drop = episode.drops_per_s;
    rates.early_drop = 20;
    let second = grow(&first, &rates, &mut rng);
    let story = "A 16 vCPU / 64 GiB worker running 58 pods with an ordinary traffic mix — no \
         client misbehaves, no single pair or protocol dominates. Its `nf_conntrack_max` is \
         32768, set by the same node image as the small pool: `/etc/sysctl.d/90-conntrack.conf` \
         from an old tuning guide written for small VMs (kube-proxy runs with \
         `conntrack.maxPerCore: 0`, so it does not override it). kube-proxy's own default would be `max(131072, 32768 × 16)` = 524288 and \
         the kernel's default for this RAM is 262144 (= the bucket count, which is what this \
         node still has).\n\n\
         The table is full, `drop` rises between the samples and dmesg prints table-full \
         lines; the counters also carry drops from earlier peaks. A reader should conclude: the \
         limit is far too small for the node — remove the old sysctl (or raise it to at least \
         the kernel default); no traffic pattern needs fixing."
        .to_string();
    Scenario {
        case: "undersized-table",
        title: "A big node with a tiny nf_conntrack_max",
        started: epoch(2026, 11, 22, 16, 30, 14),
        max,
        buckets: 262_144,
        max_origin: "`/etc/sysctl.d/90-conntrack.conf` from an old tuning guide (the small pool's \
                     image); the kernel default here would be 262144 and kube-proxy's 524288"
            .into(),
        veths: veths(58, &mut rng),
        replaced_pods: 11,
        classes,
        count_drift: 0,
        first,
        second,
        episode: Some(episode),
        expected_cause: Some("nf.table_exhausted"),
        expected_contributors: vec!["nf.max_undersized"],
        story,
        layer: Layer::Netfilter,
        node,
        rng,
    }
}

fn full_earlier(mut rng: Rng) -> Scenario {
    let node = small_node("wrk-small-06", 6, &mut rng);
    let cluster = Cluster::new(&node, 21, &mut rng);
    let classes = cluster.background(328, &mut rng);
    let ended = 1_200 + rng.range(0, 30);
    let episode = FullEpisode {
        started_before_s: ended + 300 + rng.range(0, 60),
        ended_before_s: ended,
        drops_per_s: 120,
    };
    let (mut first, rates) = baseline(&node, &mut rng);
    first.drop = about(episode.drops(), &mut rng);
    first.early_drop = about((episode.started_before_s - ended) * 17, &mut rng);
    let second = grow(&first, &rates, &mut rng);
    let story = "A 2 vCPU / 4 GiB worker, collected twenty minutes after an incident. A load test \
         filled the table for about five minutes and then stopped; by the time someone ran the \
         collector the table was back to about 1 %.\n\n\
         Nothing in the live state shows a problem: the count is tiny, and `drop` and \
         `early_drop` are non-zero but identical in both samples. The evidence is historic: \
         dmesg has table-full lines whose timestamps are about 1200 s below the uptime in \
         `node/uptime.txt`, and the counters (cumulative since boot) recorded the drops. A \
         reader should conclude: the table *was* exhausted (historic, not now); the bundle \
         cannot tell which traffic caused it, so no contributor is expected — collect again \
         during the next load test."
        .to_string();
    Scenario {
        case: "full-earlier",
        title: "Table was full twenty minutes ago, nearly empty now",
        started: epoch(2026, 11, 23, 9, 58, 40),
        max: SMALL_MAX,
        buckets: SMALL_BUCKETS,
        max_origin: SMALL_MAX_ORIGIN.into(),
        veths: veths(21, &mut rng),
        replaced_pods: 2,
        classes,
        count_drift: rng.range(0, 6) as i64 - 3,
        first,
        second,
        episode: Some(episode),
        expected_cause: Some("nf.table_exhausted"),
        expected_contributors: vec!["nf.max_undersized"],
        story,
        layer: Layer::Netfilter,
        node,
        rng,
    }
}

fn pressure(mut rng: Rng) -> Scenario {
    let node = small_node("wrk-small-14", 14, &mut rng);
    let cluster = Cluster::new(&node, 30, &mut rng);
    let count = 25_559; // 78 % of 32,768
    let classes = cluster.background(count, &mut rng);
    let (first, rates) = baseline(&node, &mut rng);
    let second = grow(&first, &rates, &mut rng);
    let story = "A 2 vCPU / 4 GiB worker with the same healthy traffic mix as the `healthy` \
         sample, only much more of it: 30 busy pods on a node of the small pool (limit 32768 \
         from the image's sysctl file).\n\n\
         The table is at about 78 % with no drop, no early drop and no kernel message. No \
         traffic pattern stands out (TIME_WAIT about a third of TCP, UDP under a fifth of the \
         table, ESTABLISHED spread over hundreds of pairs, every backend answering). A reader \
         should conclude: pressure — the node is running close to its limit under normal \
         load; raise `nf_conntrack_max` (the kernel default here is 65536, kube-proxy's 131072) \
         or spread the pods before a peak fills it."
        .to_string();
    Scenario {
        case: "pressure",
        title: "Table at 78 % under ordinary load",
        started: epoch(2026, 11, 24, 13, 12, 5),
        max: SMALL_MAX,
        buckets: SMALL_BUCKETS,
        max_origin: SMALL_MAX_ORIGIN.into(),
        veths: veths(30, &mut rng),
        replaced_pods: 5,
        classes,
        count_drift: rng.range(0, 80) as i64 - 40,
        first,
        second,
        episode: None,
        expected_cause: Some("nf.table_pressure"),
        expected_contributors: vec!["nf.max_undersized"],
        story,
        layer: Layer::Netfilter,
        node,
        rng,
    }
}

impl Scenario {
    /// Entries in the conntrack list (= `conntrack -C` at the first sample).
    pub fn count(&self) -> u64 {
        self.classes.iter().map(|c| c.count).sum()
    }

    /// `conntrack -C` at the second sample.
    pub fn count_second(&self) -> u64 {
        (self.count() as i64 + self.count_drift).clamp(0, self.max as i64) as u64
    }

    /// Everything the collector would have written on this node.
    pub fn collection(&self) -> Collection {
        let mut rng = self.rng.fork("collection");
        let node = &self.node;
        let count = self.count();
        let cilium = matches!(self.layer, Layer::Cilium(_));
        let extra = match &self.layer {
            Layer::Netfilter => Extra::default(),
            Layer::Cilium(p) => {
                crate::layers::cilium_extra(
                    p,
                    node,
                    "10.244.0.0/16",
                    self.started,
                    &mut self.rng.fork("cilium"),
                )
                .0
            }
            Layer::KubeProxy(p) => {
                crate::layers::proxy_extra(p, self.started, &mut self.rng.fork("kube-proxy"))
            }
        };
        let boot_epoch = self.started - node.uptime_secs();
        let dmesg = kernel_log::dmesg(
            node,
            boot_epoch,
            &LogPlan {
                veths: self.veths.clone(),
                replaced: self.replaced_pods,
                full: self.episode,
                cilium,
            },
            &mut rng.fork("dmesg"),
        );
        let (sysctl_out, sysctl_err) = sysctl::net_sysctl(
            node,
            ConntrackSysctl {
                max: self.max,
                buckets: self.buckets,
                count,
                kube_proxy: !cilium,
            },
            &Interfaces {
                veths: &self.veths,
                cilium,
            },
        );
        let (rows0, rows1) = stats::per_cpu(
            &self.first,
            &self.second,
            node.cpus as usize,
            &mut rng.fork("per-cpu"),
        );
        let list = ListSpec {
            classes: self.classes.clone(),
            rng: self.rng.fork("list"),
            format: ListFormat::Extended,
        };
        assemble(
            node,
            self.started,
            AssembleInput {
                meminfo: node::meminfo(node, count, &mut rng.fork("meminfo")),
                uptime: node::uptime(node, &mut rng.fork("uptime")),
                dmesg,
                sysctl: (sysctl_out, sysctl_err),
                list,
                samples: [(count, rows0), (self.count_second(), rows1)],
                extra,
            },
            &mut rng,
        )
    }
}

/// The text of every member, before timing and layout.
pub struct AssembleInput {
    pub meminfo: String,
    pub uptime: String,
    pub dmesg: String,
    pub sysctl: (String, String),
    pub list: ListSpec,
    /// (`conntrack -C`, per-CPU counters) for samples 0 and 1.
    pub samples: [(u64, Vec<Counters>); 2],
    /// Members of the layers beside netfilter.
    pub extra: Extra,
}

fn text(s: impl Into<String>) -> Body {
    Body::Text(s.into().into_bytes())
}

/// Members in the order they were collected, each stamped with its start and duration.
struct Timeline {
    members: Vec<Member>,
}

impl Timeline {
    /// Records `m` as started at `start` and taking `dur` ms; returns when the next command starts.
    fn run(&mut self, mut m: Member, start: u64, dur: u64) -> u64 {
        m.start_ms = start;
        m.duration_ms = dur;
        self.members.push(m);
        start + dur + 1
    }

    /// One sample of the sampled members, from `start`; returns when it ended.
    fn sample(
        &mut self,
        n: u32,
        start: u64,
        count: u64,
        rows: &[Counters],
        extra: Vec<Member>,
        rng: &mut Rng,
    ) -> u64 {
        let mut s = Member::command(
            &format!("conntrack/stats.{n}.txt"),
            &["conntrack", "-S"],
            text(stats::conntrack_s(rows)),
        );
        s.sample = Some(n);
        let t = self.run(s, start, 2 + rng.range(0, 2));
        let mut p = Member::file(
            &format!("conntrack/proc-stat.{n}.txt"),
            "/proc/net/stat/nf_conntrack",
            text(stats::proc_stat(count, rows)),
        );
        p.sample = Some(n);
        let t = self.run(p, t, 0);
        let mut c = Member::command(
            &format!("conntrack/count.{n}.txt"),
            &["conntrack", "-C"],
            text(stats::count(count)),
        );
        c.sample = Some(n);
        let mut t = self.run(c, t, 1 + rng.range(0, 2));
        for m in extra {
            let d = m.duration_ms;
            t = self.run(m, t, d);
        }
        t
    }
}

/// Lays the members out in collection order with plausible start times and durations: node
/// files, kernel log, sysctl, sample 0, the conntrack list, sample 1 five seconds after sample 0
/// (later if the list took longer), then the sources this node does not have.
pub fn assemble(node: &Node, started: u64, input: AssembleInput, rng: &mut Rng) -> Collection {
    let entries = input.list.entries();
    let (list_source, list_argv, list_file) = input.list.format.source();
    let mut tl = Timeline {
        members: Vec::new(),
    };
    let mut t = 8 + rng.range(0, 6);
    t = tl.run(
        Member::command("node/uname.txt", &["uname", "-a"], text(node::uname(node))),
        t,
        1,
    );
    t = tl.run(
        Member::file(
            "node/os-release.txt",
            "/etc/os-release",
            text(node::os_release()),
        ),
        t,
        0,
    );
    t = tl.run(
        Member::file("node/meminfo.txt", "/proc/meminfo", text(input.meminfo)),
        t,
        0,
    );
    t = tl.run(
        Member::command("node/cpus.txt", &["nproc"], text(node::cpus(node))),
        t,
        1,
    );
    t = tl.run(
        Member::file("node/uptime.txt", "/proc/uptime", text(input.uptime)),
        t,
        0,
    );
    let dmesg_ms = 4 + input.dmesg.len() as u64 / 40_000;
    t = tl.run(
        Member::command("kernel/dmesg.txt", &["dmesg"], text(input.dmesg)),
        t,
        dmesg_ms,
    );
    let (sysctl_out, sysctl_err) = input.sysctl;
    let mut sysctl = Member::command("sysctl/net.txt", &["sysctl", "-a"], text(sysctl_out));
    sysctl.stderr = Some(sysctl_err);
    t = tl.run(sysctl, t, 30 + rng.range(0, 15));

    let [(count0, rows0), (count1, rows1)] = input.samples;
    let Extra {
        sampled: [extra0, extra1],
        between,
        after,
        cilium,
        kube_proxy,
    } = input.extra;
    let sample0 = t + 2;
    let after0 = tl.sample(0, sample0, count0, &rows0, extra0, rng);
    let mut list = Member {
        source: list_source.to_string(),
        argv: list_argv
            .as_ref()
            .map(|v| v.iter().map(|s| s.to_string()).collect()),
        file: list_file.map(str::to_string),
        fallback_for: list_file.map(|_| "conntrack -L -o extended".to_string()),
        ..Member::command("conntrack/list.txt", &[], Body::List(input.list))
    };
    if list_argv.is_some() {
        // conntrack-tools reports the count on stderr (FORMATS.md).
        list.stderr = Some(format!(
            "conntrack v1.4.7 (conntrack-tools): {entries} flow entries have been shown.\n"
        ));
    }
    let list_ms = 40 + entries * 6 / 1000 + rng.range(0, 20);
    let mut after_list = tl.run(list, after0 + 3, list_ms);
    for m in between {
        let d = m.duration_ms;
        after_list = tl.run(m, after_list, d);
    }
    let sample1 = (sample0 + SAMPLE_INTERVAL_MS).max(after_list + 5);
    let mut end = tl.sample(1, sample1, count1, &rows1, extra1, rng);
    for m in after {
        let d = m.duration_ms;
        end = tl.run(m, end, d);
    }

    let missing = |argv: &[&str], error: &str| Failed {
        source: argv.join(" "),
        argv: Some(argv.iter().map(|s| s.to_string()).collect()),
        exit_status: None,
        error: error.to_string(),
        stderr: String::new(),
        duration_ms: 0,
    };
    let unreachable = |what: &str, url: &str| Failed {
        source: what.to_string(),
        argv: None,
        exit_status: None,
        error: format!("GET {url}: connection refused"),
        stderr: String::new(),
        duration_ms: 1,
    };
    let mut failed = Vec::new();
    if !cilium {
        failed.extend([
            missing(
                &["cilium-dbg", "bpf", "ct", "list", "global"],
                "not found on PATH",
            ),
            missing(
                &["cilium-dbg", "bpf", "metrics", "list"],
                "not found on PATH",
            ),
            missing(&["cilium-dbg", "config", "-a"], "not found on PATH"),
            missing(&["cilium-dbg", "status", "--verbose"], "not found on PATH"),
            missing(&["cilium-dbg", "metrics", "list"], "not found on PATH"),
        ]);
    }
    if !kube_proxy {
        failed.extend([
            unreachable("kube-proxy metrics", "http://127.0.0.1:10249/metrics"),
            unreachable("kube-proxy proxy mode", "http://127.0.0.1:10249/proxyMode"),
        ]);
    }
    failed.push(missing(&["ipvsadm", "-Lcn"], "not found on PATH"));
    Collection {
        node: node.name.clone(),
        kernel: KERNEL_RELEASE.to_string(),
        started,
        finished_ms: end + 4,
        sample_count: 2,
        interval_seconds: SAMPLE_INTERVAL_MS as f64 / 1000.0,
        members: tl.members,
        failed,
    }
}
