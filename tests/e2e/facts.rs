//! Facts the rules read are derived right from tricky inputs: numbers at the edge of u64, the
//! module-load max, a listing the collector cut, counts timed apart from statistics, a kernel log
//! from before a reboot, loose files beside bundle archives.

use crate::util::*;

fn facts_of(dir: &std::path::Path) -> serde_json::Value {
    let out = ctdiag(&["facts", &dir.display().to_string()]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")["facts"].clone()
}

#[test]
fn counters_at_the_edge_of_u64_saturate_instead_of_crashing() {
    let fx = Fixture::new()
        .file("stats-1", "cpu=0 drop=1 \n")
        .file("stats-2", "cpu=0 drop=18446744073709551615 \ncpu=1 drop=1 \n")
        .file("dmesg", "[ 1.0] net_ratelimit: 18446744073709551615 callbacks suppressed\n[ 2.0] net_ratelimit: 18446744073709551615 callbacks suppressed\n")
        .file("nproc.txt", "99999999999999999\n")
        .file("sysctl", "net.netfilter.nf_conntrack_max = 18446744073709551615\n");
    let (report, out) = analyze_json(&[fx.path()]);
    assert!(out.status.success(), "{out:?}");
    let f = &report["nodes"][0]["facts"]["nf"];
    assert_eq!(f["stats"]["drop"], u64::MAX);
    assert_eq!(f["dmesg"]["suppressed"], u64::MAX);
    assert_eq!(f["delta"]["drop"], i64::MAX);
    assert_eq!(likely_cause(&report).as_deref(), Some("nf.table_exhausted"));
}

#[test]
fn the_max_printed_at_module_load_is_not_the_current_max() {
    // kube-proxy and sysctl.d raise the boot value: it cannot be the denominator.
    let fx = Fixture::new()
        .file(
            "dmesg",
            "[    2.1] nf_conntrack version 0.5.0 (16384 buckets, 65536 max)\n",
        )
        .file("count", "70000\n");
    let f = facts_of(fx.path());
    assert_eq!(f["nf"]["dmesg"]["module_max"], 65536);
    assert!(
        f["nf"]["max"].is_null() && f["nf"]["utilization"].is_null(),
        "{}",
        f["nf"]
    );
}

#[test]
fn a_listing_the_collector_cut_is_never_the_count() {
    let table = Table::new().tcp(1000, "ESTABLISHED", 10, "10.96.0.1", 443, "10.0.0.10");
    let manifest = serde_json::json!({
        "format_version": 1,
        "members": [{"path": "conntrack/list.txt", "truncated": true}]
    });
    let fx = Fixture::new()
        .file("conntrack/list.txt", table.text())
        .file(
            "sysctl/net.txt",
            "net.netfilter.nf_conntrack_max = 262144\n",
        )
        .file("manifest.json", manifest.to_string());
    let f = facts_of(fx.path());
    assert!(f["nf"]["count"].is_null(), "{}", f["nf"]["count"]);
    assert_eq!(f["nf"]["list"]["truncated"], true);
}

#[test]
fn the_count_rate_uses_the_count_samples_own_times() {
    let manifest = serde_json::json!({
        "format_version": 1,
        "members": [
            {"path": "conntrack/count.0.txt", "sample": 0, "time": "2026-11-25T10:00:00Z"},
            {"path": "conntrack/count.1.txt", "sample": 1, "time": "2026-11-25T10:00:10Z"},
            {"path": "conntrack/count.2.txt", "sample": 2, "time": "2026-11-25T10:00:20Z"},
            {"path": "conntrack/stats.0.txt", "sample": 0, "time": "2026-11-25T10:00:00Z"},
            {"path": "conntrack/stats.1.txt", "sample": 1, "time": "2026-11-25T10:00:10Z"}
        ]
    });
    let fx = Fixture::new()
        .file("conntrack/count.0.txt", "1000\n")
        .file("conntrack/count.1.txt", "2000\n")
        .file("conntrack/count.2.txt", "3000\n")
        .file("conntrack/stats.0.txt", stats(1, 0, 0, 0))
        .file("conntrack/stats.1.txt", stats(1, 0, 0, 0))
        .file("manifest.json", manifest.to_string());
    let f = facts_of(fx.path());
    assert_eq!(f["nf"]["delta"]["count"], 2000);
    assert_eq!(f["nf"]["rates"]["count"], 100.0);
    assert_eq!(f["nf"]["rates"]["interval_seconds"], 10.0);
}

#[test]
fn a_table_full_line_from_before_a_reboot_has_no_age() {
    let fx = Fixture::new()
        .file(
            "kern.log",
            "[90000.100000] nf_conntrack: nf_conntrack: table full, dropping packet\n",
        )
        .file("uptime", "300.00 500.00\n");
    let f = facts_of(fx.path());
    assert_eq!(f["nf"]["dmesg"]["table_full"], 1);
    assert!(f["nf"]["dmesg"]["seconds_since_table_full"].is_null());
}

#[test]
fn loose_files_beside_bundle_archives_are_reported_not_dropped() {
    let inner = Fixture::new().file("s", stats(1, 0, 0, 0));
    let dir = tempfile::tempdir().expect("tempdir");
    inner.tar_gz(
        &dir.path().join("ctdiag-n1-20261125T000000Z.tar.gz"),
        "ctdiag-n1-20261125T000000Z",
    );
    std::fs::write(
        dir.path().join("dmesg.txt"),
        "[ 1.0] nf_conntrack: table full, dropping packet\n",
    )
    .expect("write");
    let (report, out) = analyze_json(&[dir.path()]);
    assert!(out.status.success());
    assert_eq!(report["nodes"].as_array().map(Vec::len), Some(1));
    let left: Vec<&str> = report["unreadable"]
        .as_array()
        .expect("unreadable")
        .iter()
        .filter_map(|p| p["path"].as_str())
        .collect();
    assert!(left.iter().any(|p| p.ends_with("dmesg.txt")), "{left:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("dmesg.txt"));
}
