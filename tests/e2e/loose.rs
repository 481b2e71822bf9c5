//! Loose files with arbitrary names — what a support engineer gets pasted into a ticket — are
//! classified by content and diagnosed.

use crate::util::*;

const DMESG_SYSLOG: &str = "\
Nov 25 12:59:58 worker-3 kernel: [ 8290.112233] IPv6: ADDRCONF(NETDEV_CHANGE): veth1a2b3c: link becomes ready
Nov 25 13:01:49 worker-3 kernel: [ 8349.694398] nf_conntrack: nf_conntrack: table full, dropping packet
Nov 25 13:01:49 worker-3 kernel: [ 8349.708818] nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet
Nov 25 13:01:54 worker-3 kernel: [ 8354.800401] net_ratelimit: 3939 callbacks suppressed
Nov 25 13:01:54 worker-3 kernel: [ 8354.800512] nf_conntrack: nf_conntrack: table full, dropping packet
";

#[test]
fn full_table_with_time_wait_names_exhaustion_and_churn() {
    let table = Table::new()
        .tcp(9000, "TIME_WAIT", 3, "10.96.0.20", 80, "10.244.2.7")
        .tcp(2000, "ESTABLISHED", 40, "10.96.0.1", 443, "10.0.0.10")
        .dns(1000, 10);
    let n = table.len() as u64;
    let fx = Fixture::new()
        .file("kern.log", DMESG_SYSLOG)
        .file("out.txt", sysctl(n, Some(n)))
        .file("s1", stats(4, 46, 3, 0))
        .file("ct-list", table.text());
    let (report, out) = analyze_json(&[fx.path()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(likely_cause(&report).as_deref(), Some("nf.table_exhausted"));
    assert!(finding_ids(&report).contains(&"nf.timewait_churn".to_string()));
    assert_eq!(
        report["nodes"][0]["likely_cause"]["contributor"]["id"],
        "nf.timewait_churn"
    );
    // Evidence quotes the dmesg line where it is.
    let exhausted = &report["nodes"][0]["findings"][0];
    let quoted: Vec<String> = exhausted["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .flat_map(|e| e["lines"].as_array().cloned().unwrap_or_default())
        .map(|l| format!("{}:{}", l["member"].as_str().unwrap_or(""), l["line"]))
        .collect();
    assert!(quoted.contains(&"kern.log:2".to_string()), "{quoted:?}");
    assert!(quoted.contains(&"s1:1".to_string()), "{quoted:?}");
}

#[test]
fn udp_heavy_table_names_udp_accumulation_with_dns_share() {
    let table =
        Table::new()
            .dns(7000, 3)
            .tcp(1500, "ESTABLISHED", 30, "10.96.0.1", 443, "10.0.0.10");
    let n = table.len() as u64;
    let fx = Fixture::new()
        .file("sysctl.txt", sysctl(n + 50, None))
        .file("count", format!("{n}\n"))
        .file("stats", stats(2, 120, 0, 4))
        .file("conntrack.txt", table.text());
    let (report, _) = analyze_json(&[fx.path()]);
    assert_eq!(likely_cause(&report).as_deref(), Some("nf.table_exhausted"));
    assert!(finding_ids(&report).contains(&"nf.udp_accumulation".to_string()));
    let udp = report["nodes"][0]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["id"] == "nf.udp_accumulation")
        .expect("udp finding");
    assert!(
        udp["summary"]
            .as_str()
            .expect("summary")
            .contains("100% of it is DNS"),
        "{udp}"
    );
}

#[test]
fn a_table_full_minutes_ago_is_still_the_cause() {
    let fx = Fixture::new()
        .file("dmesg.txt", "[ 7000.000000] eth0: link up\n[ 8349.694398] nf_conntrack: nf_conntrack: table full, dropping packet\n[ 8351.100000] nf_conntrack: nf_conntrack: table full, dropping packet\n")
        .file("uptime", "9551.20 17000.00\n")
        .file("sysctl", sysctl(262_144, Some(2900)))
        .file("s1", stats(2, 0, 0, 0));
    let (report, _) = analyze_json(&[fx.path()]);
    assert_eq!(likely_cause(&report).as_deref(), Some("nf.table_exhausted"));
    let summary = report["nodes"][0]["likely_cause"]["summary"]
        .as_str()
        .expect("summary");
    assert!(
        summary.contains("1.1% full) now, but it was full earlier"),
        "{summary}"
    );
    assert!(summary.contains("20 min before collection"), "{summary}");
}

#[test]
fn a_healthy_node_has_no_cause_and_rules_out_netfilter() {
    let table = Table::new()
        .tcp(1200, "ESTABLISHED", 50, "10.96.0.1", 443, "10.0.0.10")
        .tcp(400, "TIME_WAIT", 20, "10.96.0.20", 80, "10.244.2.7")
        .dns(600, 50);
    let fx = Fixture::new()
        .file("dmesg", "[    0.000000] Linux version 6.1.0-28-cloud-amd64\n[    2.100000] nf_conntrack version 0.5.0 (65536 buckets, 262144 max)\n")
        .file("sysctl", sysctl(262_144, Some(table.len() as u64)))
        .file("s1", stats(8, 0, 0, 0))
        .file("ct", table.text());
    let (report, out) = analyze_json(&[fx.path()]);
    assert!(out.status.success());
    assert_eq!(report["nodes"][0]["likely_cause"], serde_json::Value::Null);
    assert!(
        ruled_out(&report).contains(&"nf.healthy".to_string()),
        "{:?}",
        ruled_out(&report)
    );
    assert!(
        finding_ids(&report).is_empty(),
        "{:?}",
        finding_ids(&report)
    );
}

#[test]
fn a_pasted_conntrack_s_alone_is_enough_to_say_it_dropped() {
    let fx = Fixture::new().file("pasted.txt", stats(4, 812, 0, 0));
    let (report, _) = analyze_json(&[&fx.path().join("pasted.txt")]);
    assert_eq!(likely_cause(&report).as_deref(), Some("nf.table_exhausted"));
    let missing: Vec<&str> = report["nodes"][0]["missing"]
        .as_array()
        .expect("missing")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(missing.contains(&"nf.timewait_churn"), "{missing:?}");
    let command = report["nodes"][0]["missing"]
        .as_array()
        .expect("missing")
        .iter()
        .find(|m| m["id"] == "nf.timewait_churn")
        .map(|m| m["inputs"][0]["command"].as_str().unwrap_or("").to_string())
        .expect("command");
    assert!(command.starts_with("conntrack -L"), "{command}");
}

#[test]
fn insert_failures_alone_are_clashes_not_exhaustion() {
    // The kernel counts an unresolvable insert clash in both drop and insert_failed.
    let fx = Fixture::new()
        .file("s", stats(2, 5, 0, 40))
        .file("sysctl", sysctl(262_144, Some(3000)));
    let (report, _) = analyze_json(&[fx.path()]);
    // A cause of its own (the UDP/DNS insert race), never the full table.
    assert_eq!(likely_cause(&report).as_deref(), Some("nf.clash_drops"));
    let ids: Vec<&str> = report["nodes"][0]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert!(!ids.contains(&"nf.table_exhausted"), "{ids:?}");
}

#[test]
fn malformed_lines_are_counted_with_file_and_line_and_the_rest_is_analyzed() {
    let mut list = Table::new()
        .tcp(900, "TIME_WAIT", 2, "10.96.0.20", 80, "10.244.2.7")
        .text();
    list.insert_str(0, "tcp 6 garbage\n\u{0}\u{1b}[31mbinary junk\n");
    let fx = Fixture::new()
        .file("list", list)
        .file("sysctl", sysctl(900, Some(900)))
        .file(
            "stats",
            format!("{}cpu=1 this is not a row\n", stats(1, 10, 0, 0)),
        );
    let (report, out) = analyze_json(&[fx.path()]);
    assert!(out.status.success());
    assert_eq!(likely_cause(&report).as_deref(), Some("nf.table_exhausted"));
    let problems: Vec<String> = report["nodes"][0]["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| format!("{}:{}", p["path"].as_str().unwrap_or(""), p["line"]))
        .collect();
    assert!(problems.contains(&"list:1".to_string()), "{problems:?}");
    assert!(problems.contains(&"list:2".to_string()), "{problems:?}");
    assert!(problems.contains(&"stats:2".to_string()), "{problems:?}");
}

#[test]
fn the_same_files_in_a_renamed_archive_give_the_same_answer() {
    let table = Table::new().tcp(5000, "TIME_WAIT", 3, "10.96.0.20", 80, "10.244.2.7");
    let fx = Fixture::new()
        .file("a/kern.log", DMESG_SYSLOG)
        .file("b/sysctl", sysctl(5000, Some(5000)))
        .file("c/list", table.text());
    let out_dir = tempfile::tempdir().expect("tempdir");
    let archive = fx.tar_gz(&out_dir.path().join("ticket-attachment.bin"), "bundle");
    let (from_dir, _) = analyze_json(&[fx.path()]);
    let (from_tar, _) = analyze_json(&[&archive]);
    assert_eq!(
        likely_cause(&from_tar).as_deref(),
        Some("nf.table_exhausted")
    );
    assert_eq!(finding_ids(&from_dir), finding_ids(&from_tar));
}
