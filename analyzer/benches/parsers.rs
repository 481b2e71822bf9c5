//! Parser throughput in MB/s, one group per input format, on generated lines shaped exactly like
//! the real tools print them. The whole-tool comparison (against `gzip -dc` and the runbooks'
//! shell pipelines) is `analyzer/benches/end-to-end.sh`, which writes BENCHMARKS.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ctdiag::classify::MemberKind;
use ctdiag::parse::parse_all;
use std::hint::black_box;

/// A deterministic xorshift, so every run measures the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn conntrack_extended(lines: usize) -> Vec<u8> {
    let mut r = Rng(0x9e3779b97f4a7c15);
    let states = [
        "TIME_WAIT",
        "ESTABLISHED",
        "SYN_SENT",
        "CLOSE_WAIT",
        "TIME_WAIT",
    ];
    let mut out = String::new();
    for _ in 0..lines {
        let c = format!("10.244.{}.{}", r.next(8), 2 + r.next(240));
        let sport = 32768 + r.next(28000);
        if r.next(4) == 0 {
            out.push_str(&format!(
                "ipv4     2 udp      17 {} src={c} dst=10.96.0.10 sport={sport} dport=53 [UNREPLIED] src=10.244.0.{} dst={c} sport=53 dport={sport} mark=0 use=1\n",
                r.next(30), 2 + r.next(3)
            ));
        } else {
            let st = states[r.next(5) as usize];
            out.push_str(&format!(
                "ipv4     2 tcp      6 {} {st} src={c} dst=10.96.{}.{} sport={sport} dport=80 src=10.244.{}.{} dst={c} sport=8080 dport={sport} [ASSURED] mark=0 use=1\n",
                r.next(86400), r.next(4), 1 + r.next(60), r.next(8), 2 + r.next(240)
            ));
        }
    }
    out.into_bytes()
}

fn cilium_ct(lines: usize) -> Vec<u8> {
    let mut r = Rng(0x2545f4914f6cdd1d);
    let mut out = String::new();
    for _ in 0..lines {
        out.push_str(&format!(
            "TCP OUT 10.244.{}.{}:{} -> 10.96.{}.{}:8080 expires={} Packets=0 Bytes=0 RxFlagsSeen=0x1b LastRxReport=319501 TxFlagsSeen=0x1b LastTxReport=319501 Flags=0x0013 [ RxClosing TxClosing SeenNonSyn ] RevNAT=3 SourceSecurityID=9 BackendID=12 \n",
            r.next(8), 2 + r.next(240), 32768 + r.next(28000), r.next(4), 1 + r.next(60), 319000 + r.next(2000)
        ));
    }
    out.into_bytes()
}

fn dmesg(lines: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..lines {
        if i % 3 == 0 {
            out.push_str(&format!(
                "[{}.{:06}] nf_conntrack: nf_conntrack: table full, dropping packet\n",
                8000 + i / 100,
                i % 1_000_000
            ));
        } else {
            out.push_str(&format!(
                "[{}.{:06}] IPv6: ADDRCONF(NETDEV_CHANGE): veth{:08x}: link becomes ready\n",
                8000 + i / 100,
                i % 1_000_000,
                i
            ));
        }
    }
    out.into_bytes()
}

fn stats(cpus: usize) -> Vec<u8> {
    (0..cpus)
        .map(|c| format!("cpu={c:<4}\tfound={} invalid=3856 insert=0 insert_failed=12 drop=46 early_drop=3 error=0 search_restart=746 clash_resolve=9 chaintoolong=0 \n", 1000 + c))
        .collect::<String>()
        .into_bytes()
}

fn sysctl(keys: usize) -> Vec<u8> {
    (0..keys)
        .map(|i| format!("net.ipv4.conf.veth{i:08x}.rp_filter = 2\n"))
        .chain(["net.netfilter.nf_conntrack_max = 262144\n".to_string()])
        .collect::<String>()
        .into_bytes()
}

fn prometheus(series: usize) -> Vec<u8> {
    let mut out = String::from(
        "# HELP kubeproxy_sync_proxy_rules_duration_seconds [ALPHA] SyncProxyRules latency in seconds\n# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram\n",
    );
    for i in 0..series {
        out.push_str(&format!("kubeproxy_sync_proxy_rules_duration_seconds_bucket{{ip_family=\"IPv4\",le=\"{}\"}} {}\n", 0.001 * (1 << (i % 15)) as f64, i));
    }
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let cases: Vec<(&str, MemberKind, Vec<u8>)> = vec![
        (
            "conntrack_list",
            MemberKind::ConntrackList,
            conntrack_extended(40_000),
        ),
        ("cilium_ct", MemberKind::CiliumCtList, cilium_ct(40_000)),
        ("dmesg", MemberKind::Dmesg, dmesg(40_000)),
        ("conntrack_stats", MemberKind::ConntrackStats, stats(4096)),
        ("sysctl", MemberKind::Sysctl, sysctl(40_000)),
        ("prometheus", MemberKind::Metrics, prometheus(40_000)),
    ];
    for (name, kind, data) in cases {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.sample_size(20);
        g.bench_function("parse", |b| {
            b.iter(|| black_box(parse_all(kind.clone(), "bench", black_box(&data))))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
