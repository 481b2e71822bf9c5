//! The hostile and broken corpus (tests/corpus/README.md): bundles from strangers — truncated
//! uploads, wrong files, archives made by hand, crafted ones. Each case is built here, byte by
//! byte, and has its expected outcome: exit status 0 (analysis done, problems listed) or 2
//! (nothing usable); a message naming the file and, where it applies, the line; the good members
//! beside a bad one still analyzed; nothing written or followed outside the output path; memory
//! bounded (peak RSS measured with wait4, never a timing assertion).

use crate::util::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What one run of the binary did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    max_rss_kib: i64,
}

/// Runs `ctdiag` in `cwd` and measures its peak RSS from the kernel's accounting of that child.
// The child is reaped by wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_in(cwd: &Path, args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ctdiag"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctdiag");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in for this child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child by pid; std never reaps it since we never call wait().
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(
        pid,
        child.id() as i32,
        "wait4: {}",
        std::io::Error::last_os_error()
    );
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Run {
        code,
        stdout: String::from_utf8_lossy(&t_out.join().expect("stdout thread")).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().expect("stderr thread")).into_owned(),
        max_rss_kib: usage.ru_maxrss,
    }
}

fn json_of(dir: &Path, bundle: &Path) -> (serde_json::Value, Run) {
    let run = run_in(
        dir,
        &["analyze", "--format", "json", &bundle.display().to_string()],
    );
    let v = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
    (v, run)
}

/// Problems of the first node as `member[:line]: reason` strings.
fn problems(report: &serde_json::Value) -> Vec<String> {
    report["nodes"][0]["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| match p["line"].as_u64() {
                    Some(l) => format!(
                        "{}:{}: {}",
                        p["path"].as_str().unwrap_or(""),
                        l,
                        p["reason"].as_str().unwrap_or("")
                    ),
                    None => format!(
                        "{}: {}",
                        p["path"].as_str().unwrap_or(""),
                        p["reason"].as_str().unwrap_or("")
                    ),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn has(problems: &[String], needle: &str) -> bool {
    problems.iter().any(|p| p.contains(needle))
}

/// A bundle's good members: a full table with its proof.
fn good_members(entries: usize) -> Vec<(String, Vec<u8>)> {
    let table = Table::new()
        .tcp(
            entries * 7 / 10,
            "TIME_WAIT",
            3,
            "10.96.0.20",
            80,
            "10.244.2.7",
        )
        .tcp(
            entries * 3 / 10,
            "ESTABLISHED",
            20,
            "10.96.0.1",
            443,
            "10.0.0.10",
        );
    let n = table.len() as u64;
    vec![
        (
            "kernel/dmesg.txt".into(),
            b"[ 8349.694398] nf_conntrack: nf_conntrack: table full, dropping packet\n".to_vec(),
        ),
        ("sysctl/net.txt".into(), sysctl(n, Some(n)).into_bytes()),
        (
            "conntrack/stats.0.txt".into(),
            stats(2, 40, 0, 0).into_bytes(),
        ),
        ("conntrack/list.txt".into(), table.text().into_bytes()),
    ]
}

/// An archive entry as a hostile archive can hold it.
enum Entry {
    File(String, Vec<u8>),
    Symlink(String, String),
    Hardlink(String, String),
    CharDevice(String),
    Fifo(String),
    /// A path written raw into the header (`../x`, `/x`), bypassing the builder's checks.
    RawPath(String, Vec<u8>),
}

fn tar_bytes(entries: Vec<Entry>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        match e {
            Entry::File(path, data) => {
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append_data(
                    &mut h,
                    format!("ctdiag-n1-20261125T000000Z/{path}"),
                    &data[..],
                )
                .expect("append");
            }
            Entry::Symlink(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, format!("ctdiag-n1-20261125T000000Z/{path}"), target)
                    .expect("symlink");
            }
            Entry::Hardlink(path, target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, format!("ctdiag-n1-20261125T000000Z/{path}"), target)
                    .expect("hardlink");
            }
            Entry::CharDevice(path) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_size(0);
                h.set_device_major(1).expect("major");
                h.set_device_minor(3).expect("minor");
                h.set_cksum();
                b.append_data(
                    &mut h,
                    format!("ctdiag-n1-20261125T000000Z/{path}"),
                    &[][..],
                )
                .expect("device");
            }
            Entry::Fifo(path) => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_size(0);
                h.set_cksum();
                b.append_data(
                    &mut h,
                    format!("ctdiag-n1-20261125T000000Z/{path}"),
                    &[][..],
                )
                .expect("fifo");
            }
            Entry::RawPath(path, data) => {
                h.set_size(data.len() as u64);
                let name = &mut h.as_old_mut().name;
                name.fill(0);
                name[..path.len()].copy_from_slice(path.as_bytes());
                h.set_cksum();
                b.append(&h, &data[..]).expect("raw append");
            }
        }
    }
    b.into_inner().expect("finish tar")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

fn files(members: Vec<(String, Vec<u8>)>) -> Vec<Entry> {
    members
        .into_iter()
        .map(|(p, d)| Entry::File(p, d))
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write case");
    p
}

#[test]
fn a_truncated_upload_keeps_the_members_before_the_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = gzip(&tar_bytes(files(good_members(40_000))));
    let path = write(dir.path(), "upload.tar.gz", &full[..full.len() * 6 / 10]);
    let (r, run) = json_of(dir.path(), &path);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(likely_cause(&r).as_deref(), Some("nf.table_exhausted"));
    assert!(
        has(
            &problems(&r),
            "conntrack/list.txt: read failed: unexpected end of data (truncated upload?)"
        ),
        "{:?}",
        problems(&r)
    );
}

#[test]
fn a_corrupt_tar_header_loses_only_what_follows_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tar = tar_bytes(files(good_members(100)));
    // The second header starts after the first member's header and data (512-byte blocks).
    let first = 512 + good_members(100)[0].1.len().div_ceil(512) * 512;
    tar[first + 148..first + 156].copy_from_slice(b"9999999\0");
    let path = write(dir.path(), "handmade.tar.gz", &gzip(&tar));
    let (r, run) = json_of(dir.path(), &path);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        has(&problems(&r), "archive is damaged after 1 member(s)"),
        "{:?}",
        problems(&r)
    );
    assert_eq!(
        likely_cause(&r).as_deref(),
        Some("nf.table_exhausted"),
        "the dmesg member before the damage still counts"
    );
}

#[test]
fn random_bytes_or_an_empty_file_are_nothing_usable_with_status_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut x = 0x2545f4914f6cdd1du64;
    let random: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut fake_gz = vec![0x1f, 0x8b, 0x08, 0x00];
    fake_gz.extend_from_slice(&random[..4096]);
    for (name, bytes) in [
        ("random.tar.gz", &random[..]),
        ("fake-gzip.tar.gz", &fake_gz[..]),
        ("empty.tar.gz", &[][..]),
    ] {
        let path = write(dir.path(), name, bytes);
        let run = run_in(
            dir.path(),
            &["analyze", "--format", "json", &path.display().to_string()],
        );
        assert_eq!(run.code, Some(2), "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains(name) && run.stderr.contains("nothing usable"),
            "{name}: {}",
            run.stderr
        );
    }
}

#[test]
fn empty_members_non_utf8_nuls_and_crlf_are_read_line_by_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut members = good_members(1000);
    let list = &mut members[3].1;
    let mut bad =
        b"tcp      6 119 TIME_WAIT src=10.244.1.\xff\xfe dst=10.96.0.20 sport=1 dport=80\n"
            .to_vec();
    bad.extend_from_slice(b"tcp      6 119 TIME_WAIT src=10.244.1.5\0 dst=10.96.0.20 sport=1 dport=80 src=1.2.3.4 dst=10.244.1.5 sport=80 dport=1\n");
    bad.extend_from_slice(list);
    *list = bad;
    members.push(("conntrack/count.0.txt".into(), Vec::new()));
    let lf = write(
        dir.path(),
        "lf.tar.gz",
        &gzip(&tar_bytes(files(members.clone()))),
    );
    let crlf_members: Vec<(String, Vec<u8>)> = members
        .iter()
        .map(|(p, d)| {
            let text = d
                .split(|b| *b == b'\n')
                .collect::<Vec<_>>()
                .join(&b"\r\n"[..]);
            (p.clone(), text)
        })
        .collect();
    let crlf = write(
        dir.path(),
        "crlf.tar.gz",
        &gzip(&tar_bytes(files(crlf_members))),
    );
    let (a, run) = json_of(dir.path(), &lf);
    assert_eq!(run.code, Some(0));
    let (b, _) = json_of(dir.path(), &crlf);
    let p = problems(&a);
    assert!(
        has(&p, "conntrack/list.txt:1:") && has(&p, "conntrack/list.txt:2:"),
        "{p:?}"
    );
    assert_eq!(likely_cause(&a).as_deref(), Some("nf.table_exhausted"));
    assert_eq!(
        finding_ids(&a),
        finding_ids(&b),
        "CRLF endings change nothing"
    );
    assert_eq!(
        a["nodes"][0]["facts"]["nf"]["list"],
        b["nodes"][0]["facts"]["nf"]["list"]
    );
}

#[test]
fn a_20_mb_line_is_skipped_with_its_line_number_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dmesg = b"[    1.000000] Linux version 6.1.0\n".to_vec();
    dmesg.extend(std::iter::repeat_n(b'A', 20 << 20));
    dmesg.extend_from_slice(
        b"\n[ 8349.694398] nf_conntrack: nf_conntrack: table full, dropping packet\n",
    );
    let mut members = good_members(100);
    members[0].1 = dmesg;
    let path = write(
        dir.path(),
        "long-line.tar.gz",
        &gzip(&tar_bytes(files(members))),
    );
    let (r, run) = json_of(dir.path(), &path);
    assert_eq!(run.code, Some(0));
    assert!(
        has(
            &problems(&r),
            "kernel/dmesg.txt:2: line longer than 1048576 bytes skipped"
        ),
        "{:?}",
        problems(&r)
    );
    assert_eq!(
        r["nodes"][0]["facts"]["nf"]["dmesg"]["table_full"], 1,
        "the line after it is read, numbered 3"
    );
    assert!(
        run.max_rss_kib < 256 * 1024,
        "peak RSS {} KiB",
        run.max_rss_kib
    );
}

#[test]
fn a_duplicate_member_is_reported_and_read_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut members = good_members(100);
    members.push((
        "conntrack/stats.0.txt".into(),
        stats(2, 999_999, 0, 0).into_bytes(),
    ));
    let path = write(dir.path(), "dup.tar.gz", &gzip(&tar_bytes(files(members))));
    let (r, _) = json_of(dir.path(), &path);
    assert!(
        has(
            &problems(&r),
            "conntrack/stats.0.txt: appears twice in the bundle; the first copy is used"
        ),
        "{:?}",
        problems(&r)
    );
    assert_eq!(r["nodes"][0]["facts"]["nf"]["stats"]["drop"], 40);
}

#[test]
fn escaping_paths_links_and_devices_are_neither_written_nor_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("work dir");
    let mut entries = files(good_members(100));
    entries.push(Entry::RawPath(
        "../escape.txt".into(),
        b"net.netfilter.nf_conntrack_max = 1\n".to_vec(),
    ));
    entries.push(Entry::RawPath(
        "/tmp/absolute.txt".into(),
        b"hello\n".to_vec(),
    ));
    entries.push(Entry::Symlink("kernel/passwd".into(), "/etc/passwd".into()));
    entries.push(Entry::Hardlink(
        "kernel/shadow".into(),
        "/etc/shadow".into(),
    ));
    entries.push(Entry::CharDevice("kernel/null".into()));
    entries.push(Entry::Fifo("kernel/pipe".into()));
    let path = write(dir.path(), "hostile.tar.gz", &gzip(&tar_bytes(entries)));
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let run = run_in(
        &work,
        &[
            "analyze",
            "--format",
            "json",
            "-o",
            "out.json",
            &path.display().to_string(),
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("out.json")).expect("report"))
            .expect("json");
    let p = problems(&r);
    for needle in [
        "../escape.txt: member path leaves the bundle",
        "/tmp/absolute.txt: member path leaves the bundle",
        "kernel/passwd: symbolic link to \"/etc/passwd\" leaves the archive; not followed",
        "kernel/shadow: hard link to \"/etc/shadow\" leaves the archive; not followed",
        "device file in archive not read",
        "FIFO in archive not read",
    ] {
        assert!(has(&p, needle), "{needle} not in {p:?}");
    }
    assert_eq!(likely_cause(&r).as_deref(), Some("nf.table_exhausted"));
    let written: Vec<_> = std::fs::read_dir(&work)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(written, ["out.json"], "only the report is written");
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        before.len(),
        after.len(),
        "nothing written beside the bundle"
    );
    assert!(!Path::new("/tmp/absolute.txt").exists());
}

/// One GiB of zeros, gzip'd at the best ratio deflate allows (≈ 1 MiB).
fn gzip_gib_of_zeros() -> &'static [u8] {
    static GIB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    GIB.get_or_init(|| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            gz.write_all(&zeros).expect("zeros");
        }
        gz.finish().expect("gzip")
    })
}

/// A few MB of gzip that inflate past 10 GiB: `prefix` members, then a tar header announcing an
/// 11 GiB `conntrack/list.txt`, then 11 concatenated gzip members of 1 GiB of zeros each.
fn bomb(prefix: Vec<Entry>) -> Vec<u8> {
    let mut tar = tar_bytes(prefix);
    // Drop the two end-of-archive blocks so the huge member follows.
    tar.truncate(tar.len() - 1024);
    let mut h = tar::Header::new_gnu();
    h.set_path("ctdiag-n1-20261125T000000Z/conntrack/list.txt")
        .expect("path");
    h.set_size(11 << 30);
    h.set_mode(0o644);
    h.set_cksum();
    tar.extend_from_slice(h.as_bytes());
    let mut out = gzip(&tar);
    for _ in 0..11 {
        out.extend_from_slice(gzip_gib_of_zeros());
    }
    out
}

#[test]
fn a_gzip_bomb_is_stopped_by_the_ratio_guard_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = vec![Entry::File(
        "kernel/dmesg.txt".into(),
        b"[ 8349.694398] nf_conntrack: nf_conntrack: table full, dropping packet\n".to_vec(),
    )];
    let bytes = bomb(good);
    assert!(bytes.len() < 16 << 20, "a few MB: {}", bytes.len());
    let path = write(dir.path(), "bomb.tar.gz", &bytes);
    let (r, run) = json_of(dir.path(), &path);
    assert_eq!(
        run.code,
        Some(0),
        "the good member before the bomb is analyzed: {}",
        run.stderr
    );
    assert_eq!(likely_cause(&r).as_deref(), Some("nf.table_exhausted"));
    assert!(
        has(
            &problems(&r),
            "a decompression bomb or a corrupt stream; reading stopped in conntrack/list.txt"
        ),
        "{:?}",
        problems(&r)
    );
    assert!(
        run.max_rss_kib < 256 * 1024,
        "peak RSS {} KiB",
        run.max_rss_kib
    );
    let only = write(dir.path(), "only-bomb.tar.gz", &bomb(Vec::new()));
    let run = run_in(
        dir.path(),
        &["analyze", "--format", "json", &only.display().to_string()],
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("decompression bomb"), "{}", run.stderr);
}

#[test]
fn fifty_thousand_tiny_members_hit_the_member_cap_not_the_machine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut entries = files(good_members(100));
    for i in 0..50_000 {
        entries.push(Entry::File(format!("junk/{i}.txt"), b"x\n".to_vec()));
    }
    let path = write(dir.path(), "many.tar.gz", &gzip(&tar_bytes(entries)));
    // The default cap (200,000) holds a sos collect of several 21k-file reports; a lower one
    // shows the cap at work without building a million members here.
    let run = run_in(
        dir.path(),
        &[
            "analyze",
            "--format",
            "json",
            "--max-members",
            "20000",
            &path.display().to_string(),
        ],
    );
    let r: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let p = problems(&r);
    assert!(
        has(
            &p,
            "more than 20000 members; the rest were not read (raise --max-members)"
        ),
        "{:?}",
        &p[..3]
    );
    // Junk is named 20 times, then counted: the report stays readable.
    assert!(p.len() < 40, "{}", p.len());
    assert!(
        p.iter()
            .any(|l| l.contains("more member(s) not recognised as any supported input")),
        "{p:?}"
    );
    assert_eq!(likely_cause(&r).as_deref(), Some("nf.table_exhausted"));
    assert!(
        run.max_rss_kib < 256 * 1024,
        "peak RSS {} KiB",
        run.max_rss_kib
    );
}

fn manifest_for(members: &[(String, Vec<u8>)], tamper: Option<&str>) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let listed: Vec<serde_json::Value> = members
        .iter()
        .map(|(p, d)| {
            let mut sha: String = Sha256::digest(d)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if Some(p.as_str()) == tamper {
                sha.replace_range(..4, "0000");
            }
            serde_json::json!({"path": p, "sha256": sha, "bytes": d.len(), "exit_status": 0})
        })
        .collect();
    serde_json::to_vec_pretty(&serde_json::json!({"format": "ctdiag-bundle", "format_version": 1, "node": "n1", "members": listed}))
        .expect("json")
}

#[test]
fn a_malformed_manifest_is_reported_with_its_line_and_members_still_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut members = good_members(100);
    members.push((
        "manifest.json".into(),
        b"{\n  \"format_version\": 1,\n  \"members\": [ oops ]\n}\n".to_vec(),
    ));
    let path = write(
        dir.path(),
        "bad-manifest.tar.gz",
        &gzip(&tar_bytes(files(members))),
    );
    let (r, run) = json_of(dir.path(), &path);
    assert_eq!(run.code, Some(0));
    assert!(
        has(
            &problems(&r),
            "manifest.json:3: malformed manifest, ignored"
        ),
        "{:?}",
        problems(&r)
    );
    assert_eq!(likely_cause(&r).as_deref(), Some("nf.table_exhausted"));
}

#[test]
fn a_member_that_does_not_match_its_sha256_is_an_integrity_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut members = good_members(100);
    let manifest = manifest_for(&members, Some("kernel/dmesg.txt"));
    members.push(("manifest.json".into(), manifest));
    let path = write(
        dir.path(),
        "tampered.tar.gz",
        &gzip(&tar_bytes(files(members))),
    );
    let (r, run) = json_of(dir.path(), &path);
    assert_eq!(run.code, Some(0));
    assert!(
        has(
            &problems(&r),
            "kernel/dmesg.txt: integrity: sha256 does not match the manifest"
        ),
        "{:?}",
        problems(&r)
    );
    assert_eq!(r["nodes"][0]["bundle"]["mismatched"], 1);
    let cause = &r["nodes"][0]["findings"][0];
    assert_eq!(cause["confidence"]["level"], "reduced", "{cause}");
    assert!(
        cause["confidence"]["reasons"][0]
            .as_str()
            .unwrap_or("")
            .contains("kernel/dmesg.txt does not match")
    );
}
