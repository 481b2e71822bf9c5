//! A directory of node bundles with its `cluster/` files, as `ctdiag-collect cluster` writes it:
//! one node per bundle, compared, and addresses named by the kubectl documents. The cluster files
//! are the recorded `kubectl get … -o json` output the collector's cluster tests replay.

use crate::util::*;
use std::path::{Path, PathBuf};

const KUBECTL_JSON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../collector/tests/cluster/fixtures"
);

/// `DIR/ctdiag-<node>-….tar.gz` for a hot and a quiet node, and `DIR/cluster/*.json`.
fn cluster_run(dir: &Path) {
    // worker-2: full, TIME_WAIT churn from the frontend pod to shop/api, and entries stuck on
    // 10.244.3.99, an api pod the rollout removed (no endpoint of any slice).
    let hot = Table::new()
        .tcp(900, "TIME_WAIT", 1, "10.96.0.20", 80, "10.244.1.7")
        .tcp(124, "SYN_SENT", 1, "10.96.0.20", 80, "10.244.3.99")
        .text()
        .replace("10.244.1.10", "10.244.2.11");
    let node = |name: &str, max: u64, count: u64, list: String| {
        Fixture::new()
            .file(
                "manifest.json",
                format!(r#"{{"format": "ctdiag-bundle", "format_version": 1, "node": "{name}", "members": [], "failed": []}}"#),
            )
            .file(
                "sysctl/net.txt",
                format!("net.netfilter.nf_conntrack_max = {max}\nnet.netfilter.nf_conntrack_count = {count}\n"),
            )
            .file("conntrack/count.0.txt", format!("{count}\n"))
            .file("conntrack/list.txt", list)
    };
    node("worker-2", 1024, 1024, hot).tar_gz(
        &dir.join("ctdiag-worker-2-20261125T134000Z.tar.gz"),
        "ctdiag-worker-2-20261125T134000Z",
    );
    let quiet = Table::new()
        .tcp(60, "ESTABLISHED", 3, "10.96.0.20", 80, "10.244.1.7")
        .text();
    node("worker-1", 262_144, 60, quiet).tar_gz(
        &dir.join("ctdiag-worker-1-20261125T134000Z.tar.gz"),
        "ctdiag-worker-1-20261125T134000Z",
    );
    std::fs::create_dir_all(dir.join("cluster")).expect("mkdir");
    for f in [
        "pods.json",
        "services.json",
        "endpointslices.json",
        "nodes.json",
    ] {
        std::fs::copy(Path::new(KUBECTL_JSON).join(f), dir.join("cluster").join(f)).expect("copy");
    }
}

fn node<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node"] == name))
        .unwrap_or_else(|| panic!("no node {name}"))
}

fn summary(node: &serde_json::Value, id: &str) -> String {
    node["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["id"] == id))
        .and_then(|f| f["summary"].as_str())
        .unwrap_or_else(|| panic!("{id} did not fire"))
        .to_string()
}

#[test]
fn a_directory_of_bundles_is_one_node_each_named_by_the_cluster_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    cluster_run(dir.path());
    let (report, out) = analyze_json(&[dir.path()]);
    assert_eq!(out.status.code(), Some(0));
    let names: Vec<&str> = report["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["node"].as_str())
        .collect();
    assert_eq!(names, ["worker-1", "worker-2"]);
    let hot = node(&report, "worker-2");
    assert_eq!(hot["likely_cause"]["id"], "nf.table_exhausted");
    let churn = summary(hot, "nf.timewait_churn");
    assert!(
        churn.contains(
            "shop/web-frontend-6f7c9d8b4-q7w2x (10.244.2.11) → shop/api (10.96.0.20:80 tcp)"
        ),
        "{churn}"
    );
    let stale = summary(hot, "nf.stale_entries");
    assert!(
        stale.contains("10.244.3.99 is not an endpoint of service shop/api any more (124 entries"),
        "{stale}"
    );
    let top = &hot["facts"]["nf"]["list"]["top_pairs"][0];
    assert_eq!(top["src_name"], "shop/web-frontend-6f7c9d8b4-q7w2x");
    assert_eq!(top["dst_name"], "shop/api");
    assert_eq!(hot["facts"]["k8s"]["endpoint_slices"], 3);
    assert!(node(&report, "worker-1")["likely_cause"].is_null());
    let readings: Vec<&str> = report["cluster"]["readings"]
        .as_array()
        .expect("a comparison")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(readings, ["cluster.node_local"]);
}

#[test]
fn without_endpoint_slices_stale_entries_fall_back_to_replies() {
    let dir = tempfile::tempdir().expect("tempdir");
    cluster_run(dir.path());
    std::fs::remove_file(dir.path().join("cluster/endpointslices.json")).expect("rm");
    let (report, _) = analyze_json(&[dir.path()]);
    let hot = node(&report, "worker-2");
    assert_eq!(hot["facts"]["nf"]["list"]["stale"]["method"], "unreplied");
    let stale = summary(hot, "nf.stale_entries");
    assert!(
        stale.contains("10.244.3.99 via shop/api (10.96.0.20:80) (124)"),
        "{stale}"
    );
}

#[test]
fn the_html_report_shows_the_names_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    cluster_run(dir.path());
    let html: PathBuf = dir.path().join("report.html");
    let out = ctdiag(&[
        "analyze",
        "-o",
        html.to_str().expect("UTF-8"),
        dir.path().to_str().expect("UTF-8"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&html).expect("report");
    // Autoescape writes `/` as `&#x2f;`: the names are text, never markup.
    assert!(
        text.contains(
            "shop&#x2f;web-frontend-6f7c9d8b4-q7w2x (10.244.2.11) → shop&#x2f;api (10.96.0.20:80 tcp)"
        ),
        "names in the top talkers"
    );
}
