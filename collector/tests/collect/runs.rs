//! Whole runs of the binary: fallbacks, timeouts, caps, failures, atomic output, stdout, redaction.

use crate::util::{self, Bundle, QUICK, collect_into, refs, run, stderr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn with(extra: &[&str]) -> Vec<String> {
    util::quick(extra)
}

#[test]
fn writes_one_consistent_bundle_with_the_node_and_counter_members() {
    let dir = tempfile::tempdir().unwrap();
    let args = with(&["--node", "worker-7", "--samples", "2", "--interval", "0.2"]);
    let (b, out) = collect_into(dir.path(), &refs(&args));
    assert!(b.top.starts_with("ctdiag-worker-7-"), "{}", b.top);
    assert_eq!(b.manifest["node"], "worker-7");
    for path in [
        "node/uname.txt",
        "node/meminfo.txt",
        "node/cpus.txt",
        "node/uptime.txt",
        "sysctl/net.txt",
    ] {
        assert!(b.members.contains_key(path), "{path} missing");
    }
    let cpus: u32 = b
        .text("node/cpus.txt")
        .trim()
        .parse()
        .expect("cpus.txt is one integer");
    assert!(cpus >= 1);
    assert!(
        b.text("sysctl/net.txt")
            .lines()
            .all(|l| l.starts_with("net."))
    );
    for n in 0..2 {
        let r = b.record(&format!("conntrack/proc-stat.{n}.txt"));
        assert_eq!(r["sample"], n);
        assert!(r["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    assert_eq!(b.manifest["samples"]["count"], 2);
    // Nothing listens on port 1: kube-proxy is recorded as failed, not fatal.
    assert!(
        b.failures("kube-proxy/metrics.0.txt")[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot connect"))
    );
    assert!(stderr(&out).contains("wrote "));
}

#[test]
fn cilium_absent_is_recorded_as_skipped_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _) = collect_into(dir.path(), QUICK);
    // This machine has no Cilium; on one that has it the members exist instead.
    if which("cilium-dbg").is_none() && which("cilium").is_none() {
        for path in [
            "cilium/ct-list-global.txt",
            "cilium/metrics.0.txt",
            "cilium/monitor-drop.txt",
        ] {
            let f = b.failures(path);
            assert_eq!(f.len(), 1, "{path}");
            assert_eq!(f[0]["skipped"], true);
            assert!(
                f[0]["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("skipped: "))
            );
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    ctdiag_collect::exec::find_program(name)
}

#[test]
fn a_hanging_cilium_exec_prefix_is_cut_by_the_timeout_and_its_processes_killed() {
    let tools = tempfile::tempdir().unwrap();
    let pidfile = tools.path().join("pid");
    let hang = script(
        tools.path(),
        "hang",
        &format!("echo $$ > {}\nexec sleep 600", pidfile.display()),
    );
    let dir = tempfile::tempdir().unwrap();
    let prefix = hang.display().to_string();
    let args = with(&["--timeout", "1", "--cilium-exec", &prefix]);
    let (b, _) = collect_into(dir.path(), &refs(&args));
    for path in [
        "cilium/ct-list-global.txt",
        "cilium/status.txt",
        "cilium/prometheus.0.txt",
    ] {
        let f = b.failures(path);
        assert_eq!(f.len(), 1, "{path}");
        assert_eq!(
            f[0]["skipped"], false,
            "{path}: a prefix that hangs is a failure"
        );
        assert!(
            f[0]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("timed out after 1s")),
            "{:?}",
            f[0]
        );
    }
    let pid = std::fs::read_to_string(&pidfile)
        .expect("the prefix ran")
        .trim()
        .to_string();
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        // A zombie is dead already, only not yet reaped by its parent.
        s.split_whitespace().nth(2).is_none_or(|state| state != "Z")
    });
    assert!(!alive, "the hung prefix (pid {pid}) survived its timeout");
}

#[test]
fn a_failing_source_is_recorded_with_its_stderr_and_the_bundle_is_complete() {
    let tools = tempfile::tempdir().unwrap();
    let fail = script(
        tools.path(),
        "fail",
        "echo \"agent unreachable at 10.9.8.7\" >&2\nexit 3",
    );
    let dir = tempfile::tempdir().unwrap();
    let prefix = fail.display().to_string();
    let (b, out) = collect_into(dir.path(), &refs(&with(&["--cilium-exec", &prefix])));
    let f = b.failures("cilium/config.txt");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["exit_status"], 3);
    assert_eq!(f[0]["error"], "exit status 3");
    assert_eq!(f[0]["stderr"], "agent unreachable at 10.9.8.7\n");
    // The failing CLI does not stop the rest.
    assert!(b.members.contains_key("node/meminfo.txt"));
    assert!(stderr(&out).contains("cilium/config.txt"));
}

#[test]
fn a_source_that_crashes_is_recorded_and_the_bundle_is_complete() {
    let tools = tempfile::tempdir().unwrap();
    // The CLI dies of a signal, as a segfaulting agent binary would.
    let crash = script(tools.path(), "crash", "echo partial output\nkill -SEGV $$");
    let dir = tempfile::tempdir().unwrap();
    let prefix = crash.display().to_string();
    let (b, _) = collect_into(dir.path(), &refs(&with(&["--cilium-exec", &prefix])));
    let f = b.failures("cilium/status.txt");
    assert_eq!(f.len(), 1, "{:?}", b.manifest["failed"]);
    let error = f[0]["error"].as_str().unwrap_or("");
    assert!(
        error.contains("signal") || error.contains("SIGSEGV"),
        "{:?}",
        f[0]
    );
    assert!(b.members.contains_key("node/meminfo.txt"));
    b.assert_consistent();
}

#[test]
fn a_source_that_prints_gigabytes_is_cut_at_the_cap_in_bounded_memory() {
    let tools = tempfile::tempdir().unwrap();
    // `yes` writes gigabytes a second; the cap must stop it, not the disk or the memory.
    let flood = script(
        tools.path(),
        "flood",
        "exec yes 'TCP OUT 10.0.0.1:1 -> 10.0.0.2:2 expires=1 Flags=0x0013 [ RxClosing ] RevNAT=0'",
    );
    let dir = tempfile::tempdir().unwrap();
    let prefix = flood.display().to_string();
    let args = with(&[
        "--cilium-exec",
        &prefix,
        "--max-output-bytes",
        "64M",
        "--timeout",
        "60",
    ]);
    let (b, _) = collect_into(dir.path(), &refs(&args));
    let ct = b.record("cilium/ct-list-global.txt");
    assert_eq!(ct["truncated"], true, "{ct}");
    assert_eq!(ct["bytes"], 64u64 << 20);
    assert!(
        children_max_rss() < 128 << 20,
        "peak RSS {} bytes",
        children_max_rss()
    );
    b.assert_consistent();
}

#[test]
fn without_conntrack_on_path_the_proc_fallbacks_are_used() {
    let proc_list = Path::new("/proc/net/nf_conntrack");
    let tools = tempfile::tempdir().unwrap();
    // A PATH with the basic tools only: conntrack, sysctl and the rest are absent.
    for tool in ["sh", "uname", "nproc", "dmesg", "sleep"] {
        if let Some(real) = which(tool) {
            std::os::unix::fs::symlink(real, tools.path().join(tool)).unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut all = with(&[]);
    all.extend(["-o".into(), dir.path().display().to_string()]);
    let out = Command::new(util::bin())
        .args(&all)
        .env("PATH", tools.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let b = Bundle::open(&util::only_bundle_in(dir.path()));
    b.assert_consistent();

    let stats = b.record("conntrack/stats.0.txt");
    assert_eq!(stats["fallback_for"], "conntrack -S");
    assert_eq!(stats["file"], "/proc/net/stat/nf_conntrack");
    assert!(
        b.text("conntrack/stats.0.txt")
            .starts_with("cpu=0   \tentries=")
    );
    assert_eq!(
        b.record("conntrack/count.0.txt")["file"],
        "/proc/sys/net/netfilter/nf_conntrack_count"
    );
    assert_eq!(b.record("sysctl/net.txt")["fallback_for"], "sysctl -a");
    assert!(
        b.text("sysctl/net.txt")
            .contains("net.netfilter.nf_conntrack_max = ")
    );
    let missing = b.failures("conntrack/stats.0.txt");
    assert_eq!(missing[0]["error"], "not found on PATH");
    assert_eq!(missing[0]["replaced_by"], "conntrack/stats.0.txt");
    if proc_list.exists() {
        let list = b.record("conntrack/list.txt");
        assert_eq!(list["fallback_for"], "conntrack -L -o extended");
        assert_eq!(list["file"], "/proc/net/nf_conntrack");
    }
}

#[test]
fn proc_root_moves_every_file_fallback() {
    let fake_root = tempfile::tempdir().unwrap();
    std::fs::write(
        fake_root.path().join("meminfo"),
        "MemTotal:       16384 kB\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root.path().display().to_string();
    let (b, _) = collect_into(dir.path(), &refs(&with(&["--proc-root", &root])));
    assert_eq!(b.text("node/meminfo.txt"), "MemTotal:       16384 kB\n");
    assert_eq!(
        b.record("node/meminfo.txt")["file"],
        format!("{root}/meminfo")
    );
    assert!(
        b.failures("node/uptime.txt")[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("No such file"))
    );
}

#[test]
fn output_over_the_cap_is_cut_and_marked_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _) = collect_into(dir.path(), &refs(&with(&["--max-output-bytes", "1K"])));
    let meminfo = b.record("node/meminfo.txt");
    assert_eq!(meminfo["bytes"], 1024);
    assert_eq!(meminfo["truncated"], true);
    assert_eq!(b.record("node/uptime.txt")["truncated"], false);
}

#[test]
fn a_missing_output_directory_writes_nothing_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("missing");
    let out = run(&[QUICK, &["-o", target.to_str().unwrap()]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no bundle was written"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A tmpfs mounted for the test and unmounted on every path, panics included.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_never_leaves_a_bundle_under_its_final_name() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(dir.path())
        .output();
    if !mounted.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipping: cannot mount a tmpfs here (needs root): {mounted:?}");
        return;
    }
    let _guard = Tmpfs(dir.path().to_path_buf());
    let out = run(&[QUICK, &["-o", dir.path().to_str().unwrap()]].concat());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    if out.status.success() {
        // It fitted after all: then it must be whole.
        Bundle::open(&util::only_bundle_in(dir.path())).assert_consistent();
    } else {
        assert!(left.is_empty(), "partial files left behind: {left:?}");
        assert!(
            stderr(&out).contains("no bundle was written"),
            "{}",
            stderr(&out)
        );
    }
    assert!(
        !out.status.success(),
        "16 KiB should not hold a bundle with sysctl and dmesg"
    );
}

#[test]
fn dash_streams_a_complete_bundle_to_stdout() {
    let out = run(&[QUICK, &["--node", "n1", "-o", "-"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let b = Bundle::read(
        flate2::read::GzDecoder::new(out.stdout.as_slice()),
        Path::new("-"),
    );
    b.assert_consistent();
    assert!(b.top.starts_with("ctdiag-n1-"));
    assert!(stderr(&out).contains("standard output"));
}

#[test]
fn redaction_hides_the_node_and_addresses_and_keeps_hashes_true() {
    let tools = tempfile::tempdir().unwrap();
    // A failing Cilium CLI whose stderr names an address: stderr goes through redaction too.
    let fail = script(
        tools.path(),
        "fail",
        "echo \"dial 192.0.2.44:4240 refused on node-secret-7\" >&2\nexit 1",
    );
    let dir = tempfile::tempdir().unwrap();
    let map_dir = tempfile::tempdir().unwrap();
    let map = map_dir.path().join("map.json");
    let prefix = fail.display().to_string();
    let map_arg = map.display().to_string();
    let args = with(&[
        "--node",
        "node-secret-7",
        "--redact",
        "--redact-map",
        &map_arg,
        "--cilium-exec",
        &prefix,
    ]);
    let (b, _) = collect_into(dir.path(), &refs(&args));
    assert_eq!(b.manifest["redacted"], true);
    assert_eq!(b.manifest["node"], "redacted-host-1");
    assert!(b.top.starts_with("ctdiag-redacted-host-1-"));
    let manifest_text = b.text("manifest.json");
    assert!(!manifest_text.contains("node-secret-7"));
    assert!(!manifest_text.contains("192.0.2.44"));
    assert!(
        manifest_text.contains(":4240 refused on redacted-host-1"),
        "port kept"
    );
    for (path, data) in &b.members {
        let text = String::from_utf8_lossy(data);
        assert!(!text.contains("node-secret-7"), "{path} names the node");
    }
    let table: serde_json::Value = serde_json::from_slice(&std::fs::read(&map).unwrap()).unwrap();
    assert_eq!(table["hosts"]["node-secret-7"], "redacted-host-1");
    let pseudo = table["addresses"]["192.0.2.44"]
        .as_str()
        .expect("address mapped");
    assert!(pseudo.starts_with("10."));
    assert!(manifest_text.contains(&format!("{pseudo}:4240")));
    let mode = std::fs::metadata(&map).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // No address of the map survives in any member (only pseudonyms do).
    let addresses = table["addresses"].as_object().unwrap();
    let pseudonyms: Vec<&str> = addresses.values().filter_map(|v| v.as_str()).collect();
    for (path, data) in &b.members {
        let text = String::from_utf8_lossy(data);
        for original in addresses
            .keys()
            .filter(|a| !pseudonyms.contains(&a.as_str()))
        {
            assert!(
                !text
                    .split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
                    .any(|t| t == original),
                "{path} still holds {original}"
            );
        }
    }
}

#[test]
fn help_documents_every_flag() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--output",
        "--node",
        "--samples",
        "--interval",
        "--timeout",
        "--max-output-bytes",
        "--cilium-exec",
        "--monitor",
        "--kube-proxy-url",
        "--proc-root",
        "--redact",
        "--redact-map",
        "--redact-host",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

/// Stands in for the Cilium agent CLI (no agent can run here), printing lines in the shapes
/// FORMATS.md quotes from real agents. Called as `PREFIX <cli-name> ARGS…`.
const FAKE_CILIUM: &str = r#"
name="$1"; shift
[ "$name" = "$ONLY_NAME" ] || { echo "exec: \"$name\": executable file not found in \$PATH" >&2; exit 127; }
case "$*" in
  --help) echo "CLI for interacting with the local Cilium Agent" ;;
  "bpf ct list global") echo "TCP OUT 172.19.0.2:57716 -> 10.244.1.1:8080 expires=319511 Packets=0 Bytes=0 RxFlagsSeen=0x1b LastRxReport=319501 TxFlagsSeen=0x1b LastTxReport=319501 Flags=0x0093 [ RxClosing TxClosing SeenNonSyn DSRInternal ] RevNAT=0 SourceSecurityID=9 BackendID=0 " ;;
  "bpf metrics list") printf 'REASON                       DIRECTION   PACKETS   BYTES\nCT: Map insertion failed     INGRESS     169955    12580214\n' ;;
  "config -a") echo "CTMapEntriesGlobalTCP             : 554159" ;;
  "status --verbose") echo "KubeProxyReplacement:    True" ;;
  "metrics list") echo 'cilium_drop_count_total   direction="INGRESS" reason="CT: Map insertion failed"   390.000000' ;;
  "monitor --type drop")
    echo "Listening for events on 2 CPUs with 64x4096 of shared memory"
    echo "Press Ctrl-C to quit"
    while :; do echo "xx drop (CT: Map insertion failed) flow 0xdd1bea99 to endpoint 0, identity 5->7479: 10.2.1.205:38631 -> 10.2.2.169:53 udp"; sleep 0.2; done ;;
  *) echo "unknown command $*" >&2; exit 1 ;;
esac
"#;

#[test]
fn a_cilium_exec_prefix_collects_every_cilium_source_and_the_monitor_for_its_duration() {
    let tools = tempfile::tempdir().unwrap();
    let fake = script(tools.path(), "kubectl-exec", FAKE_CILIUM);
    let prefix = fake.display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let args = with(&[
        "--cilium-exec",
        &prefix,
        "--monitor",
        "1",
        "--samples",
        "2",
        "--interval",
        "0.1",
    ]);
    let out = Command::new(util::bin())
        .args(refs(&args))
        .args(["-o", dir.path().to_str().unwrap()])
        .env("ONLY_NAME", "cilium-dbg")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let b = Bundle::open(&util::only_bundle_in(dir.path()));
    b.assert_consistent();
    let ct = b.record("cilium/ct-list-global.txt");
    assert_eq!(ct["source"], "cilium-dbg bpf ct list global");
    assert_eq!(
        ct["argv"],
        serde_json::json!([prefix, "cilium-dbg", "bpf", "ct", "list", "global"])
    );
    assert!(
        b.text("cilium/ct-list-global.txt")
            .starts_with("TCP OUT 172.19.0.2:57716 -> ")
    );
    for path in [
        "cilium/config.txt",
        "cilium/status.txt",
        "cilium/metrics.1.txt",
        "cilium/prometheus.1.txt",
    ] {
        assert_eq!(b.record(path)["exit_status"], 0, "{path}");
    }
    assert!(
        b.text("cilium/metrics.0.txt")
            .contains("CT: Map insertion failed")
    );
    // Stopped after --monitor on purpose: a member, not a failure.
    let monitor = b.text("cilium/monitor-drop.txt");
    assert!(monitor.starts_with("Listening for events on 2 CPUs"));
    assert!(monitor.contains("xx drop (CT: Map insertion failed)"));
    assert!(b.failures("cilium/monitor-drop.txt").is_empty());
}

#[test]
fn an_agent_image_older_than_the_cilium_dbg_rename_is_driven_as_cilium() {
    let tools = tempfile::tempdir().unwrap();
    let fake = script(tools.path(), "kubectl-exec", FAKE_CILIUM);
    let dir = tempfile::tempdir().unwrap();
    let prefix = fake.display().to_string();
    let out = Command::new(util::bin())
        .args(refs(&with(&["--cilium-exec", &prefix])))
        .args(["-o", dir.path().to_str().unwrap()])
        .env("ONLY_NAME", "cilium")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let b = Bundle::open(&util::only_bundle_in(dir.path()));
    assert_eq!(
        b.record("cilium/status.txt")["source"],
        "cilium status --verbose"
    );
    assert_eq!(
        b.failures("cilium/monitor-drop.txt")[0]["skipped"],
        true,
        "--monitor is off by default"
    );
}

/// The manifest written has exactly the fields docs/bundle-format.md shows, at every level.
#[test]
fn manifest_fields_match_the_documented_example() {
    let doc = include_str!("../../../docs/bundle-format.md");
    let json = doc
        .split("```json")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a json example in docs/bundle-format.md");
    let example: serde_json::Value = serde_json::from_str(json).expect("the example is JSON");
    let dir = tempfile::tempdir().unwrap();
    let (b, _) = collect_into(dir.path(), QUICK);
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&b.manifest), keys(&example));
    assert_eq!(
        keys(b.record("node/meminfo.txt")),
        keys(&example["members"][0])
    );
    // `url` appears only on HTTP sources, `sample` only on sampled ones.
    let mut failed = keys(b.failures("kube-proxy/proxy-mode.txt")[0]);
    failed.retain(|k| k != "url");
    assert_eq!(failed, keys(&example["failed"][0]));
    let mut http = keys(&example["members"][1]);
    http.retain(|k| k != "url");
    assert_eq!(keys(b.record("node/meminfo.txt")), http);
}

/// Peak resident memory of the largest child this test process has waited for, in bytes.
fn children_max_rss() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0);
    u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024
}

#[test]
fn a_large_output_is_streamed_and_redacted_without_being_held_in_memory() {
    const LINES: u64 = 150_000;
    const LINE: &str = "TCP OUT 172.19.0.2:57716 -> 10.244.1.1:8080 expires=319511 Packets=0 Bytes=0 RxFlagsSeen=0x1b LastRxReport=319501 TxFlagsSeen=0x1b LastTxReport=319501 Flags=0x0093 [ RxClosing TxClosing SeenNonSyn DSRInternal ] RevNAT=0 SourceSecurityID=9 BackendID=0 ";
    let tools = tempfile::tempdir().unwrap();
    let body = format!(
        "shift\ncase \"$*\" in\n  --help) exit 0 ;;\n  \"bpf ct list global\") yes '{LINE}' | head -n {LINES} ;;\n  *) exit 1 ;;\nesac"
    );
    let big = script(tools.path(), "big", &body);
    let prefix = big.display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (b, _) = collect_into(
        dir.path(),
        &refs(&with(&["--cilium-exec", &prefix, "--redact"])),
    );
    let record = b.record("cilium/ct-list-global.txt");
    let bytes = record["bytes"].as_u64().unwrap();
    assert_eq!(record["truncated"], false);
    let text = b.text("cilium/ct-list-global.txt");
    assert_eq!(text.lines().count() as u64, LINES);
    assert!(
        text.lines()
            .all(|l| l.starts_with("TCP OUT 10.0.0.1:57716 -> 10.0.0.2:8080 "))
    );
    let peak = children_max_rss();
    assert!(
        peak < bytes / 2,
        "a child peaked at {peak} bytes while collecting a {bytes}-byte member"
    );
}
