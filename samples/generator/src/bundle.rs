//! Writes a bundle exactly as docs/bundle-format.md lays it out: a gzip'd tar with one top folder
//! `ctdiag-<node>-<time>/`, the members in collection order, a member's stderr beside it as
//! `<name>.stderr.txt`, and `manifest.json` last with the size and SHA-256 of every member.
//!
//! Everything that could vary between runs is pinned, so that regenerating the samples leaves
//! `git diff` empty: tar headers carry the member's collection time as mtime, uid/gid 0
//! (`root`), modes 0644/0755; the gzip header has mtime 0 and OS 3 (Unix), as `tar cz` writes it.
//!
//! The conntrack list is never held in memory: its content is a deterministic function of the
//! scenario's seed, so it is generated twice — once to learn its size and hash (the tar header and
//! the manifest need them first), once to stream it into the archive. As the collector does, the
//! manifest lists SHA-256 and XXH3-128 of every member and the gzip header carries the collector's
//! marker saying so. That is what lets
//! `gen-samples big --entries 1000000` run in a few megabytes.

use crate::conntrack::ListFormat;
use crate::flows::{EntryStream, FlowClass};
use crate::rng::Rng;
use crate::tally::Tally;
use flate2::{Compression, GzBuilder};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

/// The gzip extra field the collector writes (`ctdiag_collect::bundle::GZIP_MARKER`). The e2e
/// sample test fails unless the analyzer recognises it (every sample member `checked_with`
/// xxh3_128).
pub const GZIP_MARKER: &[u8] = b"CT\x0f\x00xxh3_128 listed";

/// XXH3-128 as `xxhsum -H2` prints it.
fn xxh3_hex(bytes: &[u8]) -> String {
    format!("{:032x}", xxh3_128(bytes))
}

/// The collector version the samples imitate (the manifest's `tool.version`).
pub const COLLECTOR_VERSION: &str = "0.1.0";

/// A conntrack table to be generated on demand, as many times as needed.
#[derive(Debug, Clone)]
pub struct ListSpec {
    pub classes: Vec<FlowClass>,
    pub rng: Rng,
    pub format: ListFormat,
}

impl ListSpec {
    pub fn entries(&self) -> u64 {
        self.classes.iter().map(|c| c.count).sum()
    }

    pub fn stream(&self) -> EntryStream {
        EntryStream::new(self.classes.clone(), self.rng.clone())
    }

    pub fn reader(&self) -> ListReader {
        ListReader {
            stream: self.stream(),
            format: self.format,
            buf: Vec::with_capacity(64 << 10),
            pos: 0,
        }
    }

    /// One pass over the table: its size, digests (SHA-256, XXH3-128) and tally, without keeping
    /// it.
    pub fn measure(&self) -> (u64, String, String, Tally) {
        let mut hasher = Sha256::new();
        let mut xxh3 = Xxh3::new();
        let mut bytes = 0;
        let mut tally = Tally::default();
        let mut line = Vec::with_capacity(256);
        for e in self.stream() {
            line.clear();
            e.write_line(self.format, &mut line);
            hasher.update(&line);
            xxh3.update(&line);
            bytes += line.len() as u64;
            tally.add(&e);
        }
        (
            bytes,
            hex(&hasher.finalize()),
            format!("{:032x}", xxh3.digest128()),
            tally,
        )
    }
}

/// The text of a generated table, produced a few hundred lines at a time as it is read.
pub struct ListReader {
    stream: EntryStream,
    format: ListFormat,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ListReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            for e in self.stream.by_ref().take(256) {
                e.write_line(self.format, &mut self.buf);
            }
            if self.buf.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// What a member holds.
#[derive(Debug, Clone)]
pub enum Body {
    Text(Vec<u8>),
    List(ListSpec),
}

/// One member as the collector would have recorded it.
#[derive(Debug, Clone)]
pub struct Member {
    pub path: String,
    pub source: String,
    pub argv: Option<Vec<String>>,
    pub file: Option<String>,
    /// For a member fetched over HTTP: the URL (then `argv` and `file` are `None`).
    pub url: Option<String>,
    pub fallback_for: Option<String>,
    pub sample: Option<u32>,
    /// Milliseconds after the collection started that the command started.
    pub start_ms: u64,
    pub duration_ms: u64,
    pub body: Body,
    /// What the command printed on stderr, stored beside the member when not empty.
    pub stderr: Option<String>,
}

impl Member {
    /// A member produced by running `argv`.
    pub fn command(path: &str, argv: &[&str], body: Body) -> Member {
        Member {
            path: path.to_string(),
            source: argv.join(" "),
            argv: Some(argv.iter().map(|s| s.to_string()).collect()),
            file: None,
            url: None,
            fallback_for: None,
            sample: None,
            start_ms: 0,
            duration_ms: 0,
            body,
            stderr: None,
        }
    }

    /// A member read from a file.
    pub fn file(path: &str, file: &str, body: Body) -> Member {
        Member {
            source: file.to_string(),
            argv: None,
            file: Some(file.to_string()),
            ..Member::command(path, &[], body)
        }
    }

    /// A member fetched with `GET url`.
    pub fn http(path: &str, url: &str, body: Body) -> Member {
        Member {
            source: format!("GET {url}"),
            argv: None,
            url: Some(url.to_string()),
            ..Member::command(path, &[], body)
        }
    }

    pub fn stderr_path(&self) -> Option<String> {
        self.stderr.as_ref().filter(|s| !s.is_empty()).map(|_| {
            let stem = self.path.strip_suffix(".txt").unwrap_or(&self.path);
            format!("{stem}.stderr.txt")
        })
    }
}

/// A source the collector tried and could not get.
#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    pub source: String,
    pub argv: Option<Vec<String>>,
    pub exit_status: Option<i32>,
    pub error: String,
    pub stderr: String,
    pub duration_ms: u64,
}

/// Everything one run of the collector produced.
#[derive(Debug, Clone)]
pub struct Collection {
    pub node: String,
    pub kernel: String,
    /// Unix time the collection started (whole seconds: the bundle's name has no fraction).
    pub started: u64,
    pub finished_ms: u64,
    pub sample_count: u32,
    pub interval_seconds: f64,
    pub members: Vec<Member>,
    pub failed: Vec<Failed>,
}

impl Collection {
    /// `ctdiag-<node>-<YYYYMMDDTHHMMSSZ>`: the file stem and the top folder.
    pub fn top_folder(&self) -> String {
        format!("ctdiag-{}-{}", self.node, compact_time(self.started))
    }
}

#[derive(Serialize)]
struct Manifest<'a> {
    format: &'static str,
    format_version: u32,
    tool: Tool,
    node: &'a str,
    kernel: &'a str,
    started_at: String,
    finished_at: String,
    redacted: bool,
    samples: Samples,
    members: Vec<ManifestMember<'a>>,
    failed: &'a [Failed],
}

#[derive(Serialize)]
struct Tool {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Samples {
    count: u32,
    interval_seconds: f64,
}

#[derive(Serialize)]
struct ManifestMember<'a> {
    path: String,
    source: &'a str,
    argv: &'a Option<Vec<String>>,
    file: &'a Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    url: &'a Option<String>,
    fallback_for: &'a Option<String>,
    exit_status: i32,
    duration_ms: u64,
    bytes: u64,
    sha256: String,
    xxh3_128: String,
    truncated: bool,
    sample: Option<u32>,
    time: String,
    stderr_path: Option<String>,
    /// For a stderr capture: the member it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr_of: Option<&'a str>,
}

fn is_none(v: &&Option<String>) -> bool {
    v.is_none()
}

/// What writing a bundle measured.
#[derive(Debug, Clone)]
pub struct Written {
    /// Size of the `.tar.gz`.
    pub bytes: u64,
    /// Tally of the conntrack list, when the bundle has one.
    pub tally: Option<Tally>,
    pub list_bytes: u64,
}

/// Writes `collection` to `path` (through a temporary name, then renamed, so an interrupted run
/// never leaves a half bundle under the real name).
pub fn write_bundle(path: &Path, c: &Collection) -> io::Result<Written> {
    let top = c.top_folder();
    let mut tally = None;
    let mut list_bytes = 0;
    let mut manifest_members = Vec::new();
    for m in &c.members {
        let (bytes, sha256, xxh3_128) = match &m.body {
            Body::Text(t) => (t.len() as u64, hex(&Sha256::digest(t)), xxh3_hex(t)),
            Body::List(spec) => {
                let (bytes, sha, xxh3, t) = spec.measure();
                tally = Some(t);
                list_bytes = bytes;
                (bytes, sha, xxh3)
            }
        };
        manifest_members.push(ManifestMember {
            path: m.path.clone(),
            source: &m.source,
            argv: &m.argv,
            file: &m.file,
            url: &m.url,
            fallback_for: &m.fallback_for,
            exit_status: 0,
            duration_ms: m.duration_ms,
            bytes,
            sha256,
            xxh3_128,
            truncated: false,
            sample: m.sample,
            time: rfc3339_ms(c.started * 1000 + m.start_ms),
            stderr_path: m.stderr_path(),
            stderr_of: None,
        });
        // The stderr capture is a member like any other: listed, sized and hashed.
        if let (Some(p), Some(err)) = (m.stderr_path(), &m.stderr) {
            manifest_members.push(ManifestMember {
                path: p,
                source: &m.source,
                argv: &m.argv,
                file: &m.file,
                url: &m.url,
                fallback_for: &m.fallback_for,
                exit_status: 0,
                duration_ms: 0,
                bytes: err.len() as u64,
                sha256: hex(&Sha256::digest(err.as_bytes())),
                xxh3_128: xxh3_hex(err.as_bytes()),
                truncated: false,
                sample: m.sample,
                time: rfc3339_ms(c.started * 1000 + m.start_ms),
                stderr_path: None,
                stderr_of: Some(&m.path),
            });
        }
    }
    let manifest = Manifest {
        format: "ctdiag-bundle",
        format_version: 1,
        tool: Tool {
            name: "ctdiag-collect",
            version: COLLECTOR_VERSION,
        },
        node: &c.node,
        kernel: &c.kernel,
        started_at: rfc3339(c.started),
        finished_at: rfc3339(c.started + c.finished_ms / 1000),
        redacted: false,
        samples: Samples {
            count: c.sample_count,
            interval_seconds: c.interval_seconds,
        },
        members: manifest_members,
        failed: &c.failed,
    };
    let mut manifest_json = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
    manifest_json.push(b'\n');

    let tmp = path.with_extension("gz.partial");
    let file = File::create(&tmp)?;
    let gz = GzBuilder::new()
        .extra(GZIP_MARKER)
        .mtime(0)
        .operating_system(3)
        .write(BufWriter::with_capacity(1 << 20, file), Compression::best());
    let mut tar = tar::Builder::new(gz);
    let mut dirs_done: Vec<String> = Vec::new();
    append_dir(&mut tar, &format!("{top}/"), c.started)?;
    for m in &c.members {
        let mtime = c.started + (m.start_ms + m.duration_ms) / 1000;
        if let Some((dir, _)) = m.path.rsplit_once('/')
            && !dirs_done.iter().any(|d| d == dir)
        {
            append_dir(&mut tar, &format!("{top}/{dir}/"), mtime)?;
            dirs_done.push(dir.to_string());
        }
        let name = format!("{top}/{}", m.path);
        match &m.body {
            Body::Text(t) => append_file(&mut tar, &name, mtime, t.len() as u64, &t[..])?,
            Body::List(spec) => append_file(&mut tar, &name, mtime, list_bytes, spec.reader())?,
        }
        if let (Some(p), Some(err)) = (m.stderr_path(), &m.stderr) {
            let name = format!("{top}/{p}");
            append_file(&mut tar, &name, mtime, err.len() as u64, err.as_bytes())?;
        }
    }
    let manifest_name = format!("{top}/manifest.json");
    let end = c.started + c.finished_ms / 1000;
    append_file(
        &mut tar,
        &manifest_name,
        end,
        manifest_json.len() as u64,
        &manifest_json[..],
    )?;
    let gz = tar.into_inner()?;
    let mut out = gz.finish()?;
    out.flush()?;
    drop(out);
    fs::rename(&tmp, path)?;
    Ok(Written {
        bytes: fs::metadata(path)?.len(),
        tally,
        list_bytes,
    })
}

fn header(kind: tar::EntryType, mode: u32, mtime: u64, size: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("root")?;
    h.set_groupname("root")?;
    h.set_mtime(mtime);
    h.set_size(size);
    Ok(h)
}

/// A directory entry named with its trailing slash, as GNU tar writes it (the tar crate's path
/// setter would strip the slash, so the name bytes are set directly; bundle folder names are far
/// below the 100-byte field).
fn append_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str, mtime: u64) -> io::Result<()> {
    let mut h = header(tar::EntryType::Directory, 0o755, mtime, 0)?;
    let field = &mut h.as_old_mut().name;
    if name.len() >= field.len() {
        return Err(io::Error::other(format!("directory name too long: {name}")));
    }
    field.fill(0);
    field[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    tar.append(&h, io::empty())
}

fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    mtime: u64,
    size: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, 0o644, mtime, size)?;
    tar.append_data(&mut h, name, data)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date (Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix time of a UTC civil time.
pub fn epoch(y: i64, mo: u32, d: u32, h: u64, mi: u64, s: u64) -> u64 {
    days_from_civil(y, mo, d) as u64 * 86_400 + h * 3600 + mi * 60 + s
}

fn parts(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let (y, m, d) = civil((secs / 86_400) as i64);
    let rem = secs % 86_400;
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `2026-11-25T13:40:00Z`
pub fn rfc3339(secs: u64) -> String {
    let (y, m, d, h, mi, s) = parts(secs);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2026-11-25T13:40:01.123Z`
pub fn rfc3339_ms(ms: u64) -> String {
    let (y, m, d, h, mi, s) = parts(ms / 1000);
    format!(
        "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        ms % 1000
    )
}

/// `20261125T134000Z`, the bundle name's form.
pub fn compact_time(secs: u64) -> String {
    let (y, m, d, h, mi, s) = parts(secs);
    format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_in_utc() {
        let t = epoch(2026, 11, 25, 13, 40, 0);
        assert_eq!(rfc3339(t), "2026-11-25T13:40:00Z");
        assert_eq!(rfc3339_ms(t * 1000 + 1123), "2026-11-25T13:40:01.123Z");
        assert_eq!(compact_time(t), "20261125T134000Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(epoch(2024, 2, 29, 23, 59, 59)),
            "2024-02-29T23:59:59Z"
        );
    }

    #[test]
    fn stderr_sits_beside_its_member() {
        let mut m = Member::command(
            "conntrack/list.txt",
            &["conntrack", "-L"],
            Body::Text(vec![]),
        );
        assert_eq!(m.stderr_path(), None);
        m.stderr = Some("x\n".into());
        assert_eq!(
            m.stderr_path().as_deref(),
            Some("conntrack/list.stderr.txt")
        );
    }
}
