//! Verdicts that depend on the kernel's semantics rather than on a fill level: an episode of an
//! earlier boot is history, a scan is not a retry storm, ESTABLISHED entries silent for days are
//! measured against the node's own timeout. Lines are shaped as dmesg and conntrack print them.

use crate::util::*;

#[test]
fn an_earlier_boots_table_full_is_history_not_exhaustion() {
    // kern.log over two boots: the episode is before the reboot; this boot is quiet.
    let kern = "\
Nov  2 10:00:00 w3 kernel: [    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org)
Nov  9 09:00:00 w3 kernel: [604800.100000] nf_conntrack: nf_conntrack: table full, dropping packet
Nov  9 09:00:01 w3 kernel: [604801.200000] nf_conntrack: nf_conntrack: table full, dropping packet
Nov 20 08:00:00 w3 kernel: [    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org)
Nov 20 08:00:05 w3 kernel: [    5.000000] nf_conntrack version 0.5.0 (65536 buckets, 262144 max)
";
    let fx = Fixture::new()
        .file("kern.log", kern)
        .file("uptime", "86400.00 170000.00\n")
        .file("s", stats(2, 0, 0, 0))
        .file("sysctl", sysctl(262_144, Some(1_000)));
    let (report, out) = analyze_json(&[fx.path()]);
    assert!(out.status.success(), "{out:?}");
    let node = &report["nodes"][0];
    assert_eq!(likely_cause(&report).as_deref(), Some("nf.table_full_past"));
    assert_eq!(node["likely_cause"]["live"], false);
    assert!(!finding_ids(&report).contains(&"nf.table_exhausted".to_string()));
    let f = &node["facts"]["nf"]["dmesg"];
    assert_eq!(
        (
            f["host_table_full_this_boot"].clone(),
            f["table_full_earlier_boots"].clone()
        ),
        (0.into(), 2.into())
    );
    // No advice to make a table with room bigger.
    let text = serde_json::to_string(&node["findings"]).expect("json");
    assert!(!text.contains("nf_conntrack_max="), "{text}");
}

#[test]
fn one_source_probing_many_destinations_is_a_scan_not_a_retry_storm() {
    let mut lines: Vec<String> = (0..3000)
        .map(|i| {
            let (a, b) = (i / 250, i % 250);
            format!(
                "tcp      6 110 SYN_SENT src=10.244.1.66 dst=10.30.{a}.{b} sport={} dport=22 [UNREPLIED] src=10.30.{a}.{b} dst=10.244.1.66 sport=22 dport={} mark=0 use=1",
                30000 + i,
                30000 + i
            )
        })
        .collect();
    lines.push(
        Table::new()
            .tcp(1000, "ESTABLISHED", 5, "10.96.0.20", 80, "10.244.2.7")
            .text(),
    );
    let fx = Fixture::new()
        .file("list", lines.join("\n") + "\n")
        .file("sysctl", sysctl(6_000, None));
    let (report, _) = analyze_json(&[fx.path()]);
    let ids = finding_ids(&report);
    assert!(ids.contains(&"nf.outbound_scan".to_string()), "{ids:?}");
    assert!(!ids.contains(&"nf.retry_storm".to_string()), "{ids:?}");
    let top = &report["nodes"][0]["facts"]["nf"]["list"]["top_unanswered_sources"][0];
    assert_eq!(top["src"], "10.244.1.66");
    let d = top["destinations"].as_u64().expect("destinations");
    assert!((2700..=3000).contains(&d), "estimated {d} of 3000");
}

#[test]
fn established_entries_idle_for_days_are_measured_against_the_nodes_timeout() {
    // Kernel default timeout 432000 s: a timer of 100000 s left means 3.8 days of silence.
    let idle: Vec<String> = (0..3000)
        .map(|i| format!(
            "tcp      6 100000 ESTABLISHED src=10.244.1.{} dst=10.96.0.30 sport={} dport=5432 src=10.244.3.4 dst=10.244.1.{} sport=5432 dport={} [ASSURED] mark=0 use=1",
            10 + i % 5, 40000 + i, 10 + i % 5, 40000 + i
        ))
        .collect();
    let fx = Fixture::new()
        .file("list", idle.join("\n") + "\n")
        .file(
            "sysctl",
            "net.netfilter.nf_conntrack_max = 4000\nnet.netfilter.nf_conntrack_count = 3000\nnet.netfilter.nf_conntrack_tcp_timeout_established = 432000\n",
        );
    let (report, _) = analyze_json(&[fx.path()]);
    let ids = finding_ids(&report);
    assert!(ids.contains(&"nf.idle_established".to_string()), "{ids:?}");
    let l = &report["nodes"][0]["facts"]["nf"]["list"];
    assert_eq!(l["established_idle_day"], 3000);
    // The timeout advice appears only because 432000 is above kube-proxy's 86400.
    let text = serde_json::to_string(&report["nodes"][0]["findings"]).expect("json");
    assert!(
        text.contains("nf_conntrack_tcp_timeout_established=86400"),
        "{text}"
    );
}
