//! The command line contract: exit statuses, output files, subcommands.

use crate::util::*;

#[test]
fn a_missing_bundle_is_a_usage_error_with_status_2() {
    let out = ctdiag(&["analyze", "--format", "json", "/nonexistent/bundle.tar.gz"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/bundle.tar.gz"), "{err}");
}

#[test]
fn one_unreadable_bundle_does_not_lose_the_others() {
    let fx = Fixture::new().file("s", stats(1, 3, 0, 0));
    let (report, out) = analyze_json(&[fx.path(), std::path::Path::new("/nonexistent")]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(report["nodes"].as_array().map(Vec::len), Some(1));
    assert_eq!(report["unreadable"][0]["path"], "/nonexistent");
}

#[test]
fn fail_on_critical_exits_1_when_a_critical_cause_is_found() {
    let fx = Fixture::new().file("s", stats(1, 3, 0, 0));
    let p = fx.path().display().to_string();
    let out = ctdiag(&["analyze", "--format", "json", "--fail-on", "critical", &p]);
    assert_eq!(out.status.code(), Some(1));
    let healthy = Fixture::new().file("s", stats(1, 0, 0, 0));
    let h = healthy.path().display().to_string();
    assert_eq!(
        ctdiag(&["analyze", "--format", "json", "--fail-on", "warning", &h])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn default_html_goes_to_a_file_and_a_summary_to_the_terminal() {
    let fx = Fixture::new().file("s", stats(1, 3, 0, 0));
    let out_file = fx.path().join("r.html");
    let out = ctdiag(&[
        "analyze",
        "-o",
        &out_file.display().to_string(),
        &fx.path().join("s").display().to_string(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("likely cause: nf.table_exhausted"),
        "{stdout}"
    );
    assert!(stdout.contains("r.html"), "{stdout}");
    let html = std::fs::read_to_string(&out_file).expect("report written");
    assert!(html.contains("Content-Security-Policy"));
    assert!(html.contains("nf.table_exhausted"));
}

#[test]
fn facts_prints_the_tree_rules_read() {
    let fx = Fixture::new()
        .file("s", stats(2, 7, 1, 0))
        .file("sysctl", sysctl(1000, Some(990)));
    let out = ctdiag(&["facts", &fx.path().display().to_string()]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["facts"]["nf"]["stats"]["drop"], 7);
    assert_eq!(v["facts"]["nf"]["utilization"], 0.99);
    assert_eq!(v["evidence"]["nf.max"][0]["line"], 6);
}

#[test]
fn rules_lists_every_netfilter_rule_id() {
    let out = ctdiag(&["rules"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for id in [
        "nf.table_exhausted",
        "nf.table_pressure",
        "nf.timewait_churn",
        "nf.udp_accumulation",
        "nf.connection_leak",
        "nf.retry_storm",
        "nf.stale_entries",
        "nf.max_undersized",
        "nf.healthy",
    ] {
        assert!(text.contains(id), "{id} missing from:\n{text}");
    }
}

#[test]
fn user_rules_override_a_builtin_rule_by_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let builtin = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../rules/nf.table_pressure.toml"
    ))
    .expect("builtin rule");
    std::fs::write(
        dir.path().join("pressure.toml"),
        builtin.replace("nf.utilization >= 0.70 and", "nf.utilization >= 0.10 and"),
    )
    .expect("write");
    let fx = Fixture::new()
        .file("sysctl", sysctl(1000, Some(300)))
        .file("s", stats(1, 0, 0, 0));
    let out = ctdiag(&[
        "analyze",
        "--format",
        "json",
        "--rules",
        &dir.path().display().to_string(),
        &fx.path().display().to_string(),
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(likely_cause(&report).as_deref(), Some("nf.table_pressure"));
}

#[test]
fn a_broken_rules_directory_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.toml"), "id = \"x\"\nwhen = ").expect("write");
    let fx = Fixture::new().file("s", stats(1, 0, 0, 0));
    let out = ctdiag(&[
        "analyze",
        "--rules",
        &dir.path().display().to_string(),
        &fx.path().display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml"));
}

#[test]
fn output_to_a_fifo_or_device_is_written_in_place_not_replaced() {
    // Regression: the atomic rename once turned `-o /dev/null` into a regular file.
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("report.pipe");
    let c = std::ffi::CString::new(fifo.display().to_string()).expect("path");
    // SAFETY: mkfifo reads a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).expect("read fifo"))
    };
    let fx = Fixture::new().file("s", stats(1, 3, 0, 0));
    let out = ctdiag(&[
        "analyze",
        "--format",
        "json",
        "-o",
        &fifo.display().to_string(),
        &fx.path().display().to_string(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let report = reader.join().expect("reader");
    assert!(report.contains("nf.table_exhausted"));
    let kind = std::fs::symlink_metadata(&fifo)
        .expect("still there")
        .file_type();
    assert!(kind.is_fifo(), "the FIFO was replaced");
}
