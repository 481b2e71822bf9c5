//! The eBPF and proxy layers: Cilium CT/NAT maps and kube-proxy, from loose files with odd names.
//!
//! No Cilium agent or kube-proxy runs where these tests run: every Cilium and kube-proxy input
//! here is recorded text in the shapes those tools print (lines from FORMATS.md and
//! FORMATS-DETAIL.md §6–§8, repeated with varied ports and counters), never a live capture.

use crate::util::*;

/// `n` TCP entries in the 1.19 shape, client pods → a ClusterIP, last seen at `now` and expiring
/// `ttl` seconds later (a negative `ttl`: already expired, not yet collected).
fn ct_tcp(n: usize, now: u64, ttl: i64) -> String {
    (0..n)
        .map(|i| {
            let expires = (now as i64 + ttl) as u64;
            format!(
                "TCP OUT 10.244.1.{}:{} -> 10.96.0.20:8080 expires={expires} Packets=0 Bytes=0 RxFlagsSeen=0x1b LastRxReport={now} TxFlagsSeen=0x1b LastTxReport={now} Flags=0x0093 [ RxClosing TxClosing SeenNonSyn DSRInternal ] RevNAT=0 SourceSecurityID=9 BackendID=360309599644942336 NatPort=30587 \n",
                i % 5,
                20000 + i
            )
        })
        .collect()
}

/// `n` UDP DNS entries, in the non-TCP map.
fn ct_udp(n: usize, now: u64) -> String {
    (0..n)
        .map(|i| {
            format!(
                "UDP OUT 10.244.1.7:{} -> 10.96.0.10:53 expires={} Packets=0 Bytes=0 RxFlagsSeen=0x00 LastRxReport={now} TxFlagsSeen=0x00 LastTxReport={now} Flags=0x0000 [ ] RevNAT=5 SourceSecurityID=9 BackendID=0 \n",
                40000 + i,
                now + 60
            )
        })
        .collect()
}

/// A CT dump: the TCP map, a blank line, the non-TCP map, a blank line (as the CLI prints them).
fn ct_dump(tcp: &str, udp: &str) -> String {
    format!("{tcp}\n{udp}\n")
}

/// `cilium config view` with explicit map sizes.
fn config_view(tcp_max: u64, any_max: u64, kpr: &str) -> String {
    format!(
        "agent-not-ready-taint-key                         node.cilium.io/agent-not-ready\n\
         bpf-ct-global-any-max                             {any_max}\n\
         bpf-ct-global-tcp-max                             {tcp_max}\n\
         bpf-map-dynamic-size-ratio                        0.0025\n\
         kube-proxy-replacement                            {kpr}\n"
    )
}

/// `cilium bpf metrics list` (2019 layout) with the given counters.
fn bpf_metrics(ct_insert: u64, nat: u64) -> String {
    let mut s = String::from("REASON                          DIRECTION   PACKETS   BYTES\n");
    if ct_insert > 0 {
        s.push_str(&format!(
            "CT: Map insertion failed        Egress      {ct_insert}      {}\n",
            ct_insert * 70
        ));
    }
    if nat > 0 {
        s.push_str(&format!(
            "No mapping for NAT masquerade   Egress      {nat}      {}\n",
            nat * 70
        ));
    }
    s.push_str("Not a local target address      Ingress     169955    12580214\n");
    s.push_str("Success                         Egress      9123456   812345678\n");
    s
}

fn summary(report: &serde_json::Value) -> String {
    report["nodes"][0]["likely_cause"]["summary"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn missing_ids(report: &serde_json::Value) -> Vec<String> {
    report["nodes"][0]["missing"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_full_ct_map_with_insert_failures_is_the_cause_while_netfilter_is_fine() {
    let fx = Fixture::new()
        .file(
            "ct-dump.txt",
            ct_dump(&ct_tcp(1_900, 319_501, 10), &ct_udp(40, 319_501)),
        )
        .file("cm", config_view(2000, 1024, "true"))
        .file("drops-1", bpf_metrics(4_000, 0))
        .file("drops-2", bpf_metrics(4_600, 0))
        .file("s1", stats(4, 0, 0, 0))
        .file("sysctl.txt", sysctl(262_144, Some(10_486)));
    let (report, out) = analyze_json(&[fx.path()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        likely_cause(&report).as_deref(),
        Some("cilium.ct_map_exhausted")
    );
    assert!(
        ruled_out(&report).contains(&"nf.healthy".to_string()),
        "{:?}",
        ruled_out(&report)
    );
    let s = summary(&report);
    assert!(
        s.contains("cilium_ct4_global holds 1,900 of 2,000 entries (95% full, limit: configured)"),
        "{s}"
    );
    assert!(s.contains("+600 between samples: it is failing now"), "{s}");
    assert!(
        s.contains("netfilter conntrack 4% used, no drops — the eBPF layer is full, not netfilter"),
        "{s}"
    );
    let facts = &report["nodes"][0]["facts"]["cilium"];
    assert_eq!(facts["limits"]["source"], "configured");
    assert_eq!(facts["limits"]["tcp_max"], 2000);
    assert_eq!(facts["kube_proxy_replacement"], true);
    assert_eq!(facts["drops"]["delta"]["ct_map_insert"], 600);
    // The proof is quoted where it is.
    let finding = &report["nodes"][0]["findings"][0];
    let quoted: Vec<String> = finding["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .flat_map(|e| e["lines"].as_array().cloned().unwrap_or_default())
        .map(|l| format!("{}:{}", l["member"].as_str().unwrap_or(""), l["line"]))
        .collect();
    assert!(quoted.contains(&"drops-2:2".to_string()), "{quoted:?}");
    assert!(quoted.contains(&"cm:3".to_string()), "{quoted:?}");
    let risky: Vec<&str> = finding["mitigations"]
        .as_array()
        .expect("mitigations")
        .iter()
        .filter(|m| m["kind"] == "risky")
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(
        risky
            .iter()
            .any(|t| t.contains("drops every live connection")),
        "{risky:?}"
    );
}

#[test]
fn a_healthy_cilium_node_has_no_cause() {
    let status = "KubeProxyReplacement:    True   [eth0 192.168.49.2 (Direct Routing)]
BPF Maps:   dynamic sizing: on (ratio: 0.002500)
  Name                          Size
  Non-TCP connection tracking   147475
  TCP connection tracking       294951
  NAT                           294951
";
    let fx = Fixture::new()
        .file(
            "dump",
            ct_dump(&ct_tcp(3_000, 5_000, 3_600), &ct_udp(500, 5_000)),
        )
        .file("status-verbose", status)
        .file("m0", bpf_metrics(0, 0))
        .file("m1", bpf_metrics(0, 0))
        .file("stats", stats(2, 0, 0, 0))
        .file("sysctl", sysctl(262_144, Some(3_600)));
    let (report, out) = analyze_json(&[fx.path()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(report["nodes"][0]["likely_cause"], serde_json::Value::Null);
    assert!(
        finding_ids(&report).is_empty(),
        "{:?}",
        finding_ids(&report)
    );
    let out = ruled_out(&report);
    for id in [
        "cilium.ct_map_exhausted",
        "cilium.nat_map_exhausted",
        "nf.healthy",
    ] {
        assert!(out.contains(&id.to_string()), "{id}: {out:?}");
    }
    let facts = &report["nodes"][0]["facts"]["cilium"];
    assert_eq!(facts["limits"]["source"], "dynamic sizing");
    assert_eq!(facts["limits"]["tcp_max"], 294_951);
    assert_eq!(facts["ct"]["utilization"], 0.0102);
}

#[test]
fn nat_masquerade_failures_name_the_nat_map() {
    let monitor = "Listening for events on 2 CPUs with 64x4096 of shared memory\n\
Press Ctrl-C to quit\n\
level=info msg=\"Initializing dissection cache...\" subsys=monitor\n\
xx drop (No mapping for NAT masquerade) flow 0x0 to endpoint 0, ifindex 4, file nodeport.h:412, , identity 9->world: 10.244.1.5:40003 -> 1.1.1.1:443 tcp SYN\n\
xx drop (Policy denied) flow 0xfddd76f6 to endpoint 0, ifindex 29, file bpf_lxc.c:1274, , identity 48447->world: 192.168.0.149:45830 -> 93.184.215.14:80 tcp SYN\n";
    let fx = Fixture::new()
        .file("cilium-config.yaml", "apiVersion: v1\ndata:\n  bpf-map-dynamic-size-ratio: \"0.0025\"\n  kube-proxy-replacement: \"true\"\nkind: ConfigMap\n")
        .file("bpf-0.txt", bpf_metrics(0, 120))
        .file("bpf-1.txt", bpf_metrics(0, 900))
        .file("capture.log", monitor);
    let (report, out) = analyze_json(&[fx.path()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        likely_cause(&report).as_deref(),
        Some("cilium.nat_map_exhausted")
    );
    let s = summary(&report);
    assert!(
        s.contains("900 packets were dropped with \"No mapping for NAT masquerade\" (bpf metrics list), +780 between samples"),
        "{s}"
    );
    assert!(s.contains("The drop capture caught 1 such event."), "{s}");
    let facts = &report["nodes"][0]["facts"]["cilium"];
    assert_eq!(
        facts["limits"]["sources"]["nat_max"],
        "default (dynamic sizing is on, its result was not collected and the node's memory is unknown: the real size may differ)"
    );
    assert_eq!(facts["monitor"]["by_reason"]["Policy denied"], 1);
}

fn kube_proxy_metrics(last_applied: f64, last_queued: f64, at_ms: i64) -> String {
    format!(
        "# HELP kubeproxy_sync_proxy_rules_duration_seconds [ALPHA] SyncProxyRules latency in seconds\n\
# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram\n\
kubeproxy_sync_proxy_rules_duration_seconds_bucket{{le=\"0.001\"}} 0 {at_ms}\n\
kubeproxy_sync_proxy_rules_duration_seconds_bucket{{le=\"0.128\"}} 38 {at_ms}\n\
kubeproxy_sync_proxy_rules_duration_seconds_bucket{{le=\"1.024\"}} 40 {at_ms}\n\
kubeproxy_sync_proxy_rules_duration_seconds_bucket{{le=\"+Inf\"}} 40 {at_ms}\n\
kubeproxy_sync_proxy_rules_duration_seconds_sum 2.5 {at_ms}\n\
kubeproxy_sync_proxy_rules_duration_seconds_count 40 {at_ms}\n\
# HELP kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds [ALPHA] The last time a sync of proxy rules was queued\n\
# TYPE kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds gauge\n\
kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds {last_queued:e} {at_ms}\n\
# HELP kubeproxy_sync_proxy_rules_last_timestamp_seconds [ALPHA] The last time proxy rules were successfully synced\n\
# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge\n\
kubeproxy_sync_proxy_rules_last_timestamp_seconds {last_applied:e} {at_ms}\n\
# HELP kubeproxy_sync_proxy_rules_iptables_restore_failures_total [ALPHA] Cumulative proxy iptables restore failures\n\
# TYPE kubeproxy_sync_proxy_rules_iptables_restore_failures_total counter\n\
kubeproxy_sync_proxy_rules_iptables_restore_failures_total 0 {at_ms}\n"
    )
}

#[test]
fn a_queued_change_left_unapplied_is_a_stall_but_an_old_sync_on_a_quiet_node_is_not() {
    // Collected at 1764071000 s; the change queued 500 s earlier never landed.
    let stalled = Fixture::new()
        .file(
            "kp-metrics.txt",
            kube_proxy_metrics(1_764_070_000.0, 1_764_070_500.0, 1_764_071_000_000),
        )
        .file("mode", "iptables");
    let (report, _) = analyze_json(&[stalled.path()]);
    assert_eq!(
        likely_cause(&report).as_deref(),
        Some("kube_proxy.sync_stalled")
    );
    let s = summary(&report);
    assert!(
        s.starts_with("kube-proxy (iptables mode) queued a rule change 8 min before collection and has not applied it; its last successful apply was 17 min ago (collection time from the metrics timestamp)."),
        "{s}"
    );

    // A quiet node: the last apply is 20 hours old and nothing was queued since.
    let quiet = Fixture::new().file(
        "kp-metrics.txt",
        kube_proxy_metrics(1_764_000_000.0, 1_763_999_000.0, 1_764_071_000_000),
    );
    let (report, _) = analyze_json(&[quiet.path()]);
    assert_eq!(likely_cause(&report), None);
    assert!(
        finding_ids(&report).is_empty(),
        "{:?}",
        finding_ids(&report)
    );
    assert!(ruled_out(&report).contains(&"kube_proxy.sync_stalled".to_string()));
}

#[test]
fn the_manifest_sample_time_is_the_clock_of_a_stall() {
    // No timestamps in the exposition: the manifest says when the sample was read.
    let body = kube_proxy_metrics(1_764_070_000.0, 1_764_070_500.0, 0).replace(" 0\n", "\n");
    let manifest = r#"{"format":"ctdiag-bundle","format_version":1,"node":"worker-3",
      "started_at":"2025-11-25T11:43:00Z",
      "members":[{"path":"kube-proxy/metrics.0.txt","source":"GET http://127.0.0.1:10249/metrics","sample":0,"time":"2025-11-25T11:43:20Z"}]}"#;
    let fx = Fixture::new()
        .file("manifest.json", manifest)
        .file("kube-proxy/metrics.0.txt", body);
    let (report, _) = analyze_json(&[fx.path()]);
    let sync = &report["nodes"][0]["facts"]["kube_proxy"]["sync"];
    assert_eq!(sync["collected_at_source"], "manifest");
    assert_eq!(sync["pending"], true);
    assert_eq!(sync["pending_seconds"], 500.0);
    assert_eq!(
        likely_cause(&report).as_deref(),
        Some("kube_proxy.sync_stalled")
    );
}

#[test]
fn expired_entries_still_in_the_map_point_at_gc() {
    // 1,500 live entries and 600 that expired an hour before the dump's newest report.
    let mut tcp = ct_tcp(1_500, 400_000, 600);
    tcp.push_str(&ct_tcp(600, 396_000, 400).replace("LastRxReport=396000", "LastRxReport=395500"));
    let log = "level=info msg=\"option bpf-ct-global-tcp-max set by dynamic sizing to 2600\" subsys=config\n\
level=info msg=\"option bpf-ct-global-any-max set by dynamic sizing to 1300\" subsys=config\n\
level=info msg=\"Conntrack garbage collector interval recalculated\" actualPrevInterval=12h0m0.002279235s adjustedDeleteRatio=0.31 deleteRatio=0.31 expectedPrevInterval=12h0m0s newInterval=8h0m0s subsys=map-ct\n";
    let fx = Fixture::new()
        .file("ct", ct_dump(&tcp, &ct_udp(10, 400_000)))
        .file("cilium-agent.log", log);
    let (report, out) = analyze_json(&[fx.path()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        likely_cause(&report).as_deref(),
        Some("cilium.ct_map_pressure")
    );
    assert_eq!(
        report["nodes"][0]["likely_cause"]["contributor"]["id"],
        "cilium.ct_gc_lagging"
    );
    let gc = report["nodes"][0]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["id"] == "cilium.ct_gc_lagging")
        .expect("gc finding");
    let s = gc["summary"].as_str().expect("summary");
    assert!(
        s.starts_with("600 entries (28.4% of the dump) had already expired by the dump's own clock (newest report at 400,000 s)"),
        "{s}"
    );
    assert!(s.contains("deleted 31% of the entries"), "{s}");
    let facts = &report["nodes"][0]["facts"]["cilium"];
    assert_eq!(facts["limits"]["source"], "dynamic sizing");
    assert_eq!(facts["ct"]["utilization"], 0.8077);
}

#[test]
fn a_netfilter_only_node_gets_no_cilium_or_kube_proxy_noise() {
    let table = Table::new()
        .tcp(1200, "ESTABLISHED", 50, "10.96.0.1", 443, "10.0.0.10")
        .dns(600, 50);
    let fx = Fixture::new()
        .file("sysctl", sysctl(262_144, Some(table.len() as u64)))
        .file("s1", stats(8, 0, 0, 0))
        .file("ct", table.text());
    let (report, _) = analyze_json(&[fx.path()]);
    let noisy: Vec<String> = missing_ids(&report)
        .into_iter()
        .filter(|id| id.starts_with("cilium.") || id.starts_with("kube_proxy."))
        .collect();
    assert!(noisy.is_empty(), "{noisy:?}");
    assert_eq!(report["nodes"][0]["facts"]["cilium"]["present"], false);
    assert_eq!(report["nodes"][0]["facts"]["kube_proxy"]["present"], false);
}

#[test]
fn with_kube_proxy_replacement_netfilter_does_not_blame_kube_proxy_dnat() {
    // The same stale-backend table blamed on kube-proxy DNAT without Cilium…
    let table = Table::new()
        .tcp(2000, "ESTABLISHED", 40, "10.96.0.20", 80, "10.244.2.7")
        .tcp(1500, "SYN_SENT", 20, "10.96.0.20", 80, "10.244.2.99");
    let n = table.len() as u64;
    let plain = Fixture::new()
        .file("sysctl", sysctl(n + 100, Some(n)))
        .file("ct", table.text());
    let (report, _) = analyze_json(&[plain.path()]);
    assert!(
        finding_ids(&report).contains(&"nf.stale_entries".to_string()),
        "{:?}",
        finding_ids(&report)
    );
    // …is not, on a node where Cilium replaces kube-proxy.
    let kpr = Fixture::new()
        .file("sysctl", sysctl(n + 100, Some(n)))
        .file("ct", table.text())
        .file("cm", config_view(524_288, 262_144, "true"));
    let (report, _) = analyze_json(&[kpr.path()]);
    assert!(
        !finding_ids(&report).contains(&"nf.stale_entries".to_string()),
        "{:?}",
        finding_ids(&report)
    );
    assert!(!missing_ids(&report).contains(&"nf.stale_entries".to_string()));
}

#[test]
fn an_ipvs_table_as_large_as_conntrack_is_a_contributor() {
    let mut ipvs = String::from(
        "IPVS connection entries\npro expire state       source             virtual            destination\n",
    );
    for i in 0..3000 {
        ipvs.push_str(&format!(
            "TCP 01:{:02}  TIME_WAIT   10.244.1.{}:{}   10.96.0.20:80      10.244.2.7:8080\n",
            i % 60,
            i % 9,
            30000 + i
        ));
    }
    let fx = Fixture::new()
        .file("lvs.txt", ipvs)
        .file("mode", "ipvs")
        .file("sysctl", sysctl(4_000, Some(3_900)))
        .file("s", stats(2, 0, 0, 0));
    let (report, _) = analyze_json(&[fx.path()]);
    assert!(
        finding_ids(&report).contains(&"kube_proxy.ipvs_table_large".to_string()),
        "{:?}",
        finding_ids(&report)
    );
    assert_eq!(
        report["nodes"][0]["facts"]["kube_proxy"]["ipvs"]["ratio_to_nf_max"],
        0.75
    );
}

#[test]
fn drop_rates_come_from_the_manifest_sample_times() {
    let manifest = r#"{"format":"ctdiag-bundle","format_version":1,"node":"worker-7",
      "started_at":"2026-11-25T13:40:00Z",
      "members":[
        {"path":"cilium/metrics.0.txt","source":"cilium-dbg bpf metrics list","sample":0,"time":"2026-11-25T13:40:01Z"},
        {"path":"cilium/metrics.1.txt","source":"cilium-dbg bpf metrics list","sample":1,"time":"2026-11-25T13:40:06Z"}]}"#;
    let fx = Fixture::new()
        .file("manifest.json", manifest)
        .file("cilium/metrics.0.txt", bpf_metrics(4_000, 0))
        .file("cilium/metrics.1.txt", bpf_metrics(4_600, 0))
        .file("cilium/config.txt", config_view(524_288, 262_144, "true"));
    let (report, _) = analyze_json(&[fx.path()]);
    let drops = &report["nodes"][0]["facts"]["cilium"]["drops"];
    assert_eq!(drops["rates"]["interval_seconds"], 5.0);
    assert_eq!(drops["rates"]["ct_map_insert"], 120.0);
    assert_eq!(
        likely_cause(&report).as_deref(),
        Some("cilium.ct_map_exhausted")
    );
    assert!(
        summary(&report).contains("+600 between samples (120/s over 5 s): it is failing now"),
        "{}",
        summary(&report)
    );
}
