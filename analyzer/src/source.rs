//! Bundle sources: a `.tar.gz`/`.tgz`, a `.tar`, a directory, a single loose file (a customer pasted
//! `conntrack -S` into a ticket), or a gzip'd loose file. Each is turned into a sequence of members,
//! each a stream: nothing is unpacked to disk and nothing is held whole in memory.
//!
//! The kind is decided by content (gzip magic, the `ustar` magic at offset 257), never by the file
//! name, because bundles are renamed on their way through tickets. Archive members are hostile:
//! links and devices are never followed, `..` and absolute paths are neutralised, and every
//! decompressed byte is counted against a cap.

use crate::problem::{Problem, Severity};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

/// A bundle that could not be opened at all (as opposed to a member that could not be read,
/// which is a [`Problem`]).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: cannot open: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path}: cannot read directory: {source}")]
    ReadDir { path: PathBuf, source: io::Error },
}

impl SourceError {
    /// What went wrong, without the path (for reports that show the path beside it).
    pub fn reason(&self) -> String {
        match self {
            SourceError::Open { source, .. } => format!("cannot open: {source}"),
            SourceError::ReadDir { source, .. } => format!("cannot read directory: {source}"),
        }
    }
}

/// Caps on what one bundle may make us read. Hitting one is a reported problem, never a crash.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Decompressed bytes read from one member; the rest is skipped and the member marked truncated.
    pub member_bytes: u64,
    /// Decompressed bytes read from one bundle; members after it are not read.
    pub bundle_bytes: u64,
    /// Longest line handed to a parser; longer lines are skipped and reported.
    pub line_bytes: usize,
    /// Members read from one bundle.
    pub members: usize,
    /// Largest decompressed:compressed ratio of a gzip'd bundle; past it (after the first
    /// 64 MiB) the stream is a decompression bomb or corrupt, and reading stops.
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            member_bytes: 2 << 30,
            bundle_bytes: 8 << 30,
            line_bytes: 1 << 20,
            members: 20_000,
            // Conntrack and kernel-log text compresses 8–50:1; deflate cannot exceed ~1032:1.
            max_ratio: 250,
        }
    }
}

/// What the first bytes of a bundle say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    TarGz,
    Tar,
    Directory,
    /// A gzip stream that is not a tar archive: one compressed loose file.
    GzFile,
    File,
}

/// An opened bundle: a path and what it holds.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub path: PathBuf,
    pub kind: SourceKind,
}

/// One member as the source yields it.
pub struct Member<'a> {
    /// Path inside the bundle, `/`-separated, relative to the bundle's top folder.
    pub path: String,
    /// Declared size, where the container states it (tar headers, file metadata).
    pub size: Option<u64>,
    pub reader: &'a mut dyn Read,
}

/// Folder names of bundle format v1; an archive's first component that is none of these is the
/// bundle's top folder (`ctdiag-<node>-<time>/`) and is stripped from member paths.
const V1_FOLDERS: &[&str] = &[
    "node",
    "kernel",
    "sysctl",
    "conntrack",
    "cilium",
    "kube-proxy",
    "ipvs",
    "cluster",
    "manifest.json",
];

impl Bundle {
    /// Opens `path` and sniffs what it is.
    pub fn open(path: &Path) -> Result<Bundle, SourceError> {
        let open_err = |source| SourceError::Open {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(open_err)?;
        if meta.is_dir() {
            return Ok(Bundle {
                path: path.to_path_buf(),
                kind: SourceKind::Directory,
            });
        }
        let mut head = [0u8; 512];
        let n =
            read_up_to(&mut File::open(path).map_err(open_err)?, &mut head).map_err(open_err)?;
        let kind = if n >= 2 && head[..2] == [0x1f, 0x8b] {
            let mut gz = MultiGzDecoder::new(File::open(path).map_err(open_err)?);
            let mut inner = [0u8; 512];
            // A gzip stream too damaged to yield 512 bytes is still read as an archive if it claims
            // to be one, so that the damage is reported where it happens.
            let m = read_up_to(&mut gz, &mut inner).unwrap_or(0);
            if is_tar_header(&inner[..m]) || (m < 512 && has_tar_name(path)) {
                SourceKind::TarGz
            } else {
                SourceKind::GzFile
            }
        } else if is_tar_header(&head[..n]) {
            SourceKind::Tar
        } else {
            SourceKind::File
        };
        Ok(Bundle {
            path: path.to_path_buf(),
            kind,
        })
    }

    /// A short name for the bundle: its file name without archive extensions.
    pub fn name(&self) -> String {
        let file = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string());
        for ext in [".tar.gz", ".tgz", ".tar", ".gz"] {
            if let Some(stem) = file.strip_suffix(ext) {
                return stem.to_string();
            }
        }
        file
    }

    /// Streams every member to `visit`, in archive order (directories: sorted by path).
    /// Returns the problems met on the way; the members before a fault have been visited.
    pub fn for_each_member(
        &self,
        limits: &Limits,
        progress: &Progress,
        visit: &mut dyn FnMut(Member<'_>) -> io::Result<()>,
    ) -> Result<Vec<Problem>, SourceError> {
        let mut walk = Walk::new(self.name(), limits);
        walk.progress = progress.clone();
        if matches!(self.kind, SourceKind::TarGz | SourceKind::GzFile) {
            walk.compressed = Some(Progress::default());
        }
        let compressed = walk.compressed.clone().unwrap_or_default();
        let open = |p: &Path| {
            File::open(p)
                .map(|file| Counting {
                    inner: file,
                    progress: progress.clone(),
                    local: compressed.clone(),
                })
                .map_err(|source| SourceError::Open {
                    path: p.to_path_buf(),
                    source,
                })
        };
        match self.kind {
            SourceKind::TarGz => {
                let gz =
                    MultiGzDecoder::new(BufReader::with_capacity(256 << 10, open(&self.path)?));
                walk.tar(gz, visit);
            }
            SourceKind::Tar => walk.tar(BufReader::new(open(&self.path)?), visit),
            SourceKind::Directory => walk.directory(&self.path, visit)?,
            SourceKind::GzFile => {
                let name = self.name();
                let gz = MultiGzDecoder::new(BufReader::new(open(&self.path)?));
                walk.member(name, None, gz, visit);
            }
            SourceKind::File => {
                let file = open(&self.path)?;
                let size = file.inner.metadata().ok().map(|m| m.len());
                walk.member(self.name(), size, file, visit);
            }
        }
        Ok(walk.problems)
    }

    /// Bytes the bundle takes on disk: what [`Progress`] counts up to.
    pub fn input_bytes(&self) -> u64 {
        fn dir_bytes(dir: &Path) -> u64 {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_bytes(&e.path()),
                    Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
                    _ => 0,
                })
                .sum()
        }
        match self.kind {
            SourceKind::Directory => dir_bytes(&self.path),
            _ => std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0),
        }
    }
}

/// Input bytes read so far, across every bundle of an analysis (for a progress bar).
#[derive(Debug, Clone, Default)]
pub struct Progress(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Progress {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A reader that reports the bytes it reads from disk, to the analysis and to its bundle.
struct Counting<R> {
    inner: R,
    progress: Progress,
    local: Progress,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(n as u64);
        self.local.add(n as u64);
        Ok(n)
    }
}

/// One node to analyze: its bundle, and the cluster files (`cluster/` of a run of
/// `ctdiag-collect cluster`) that name its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInput {
    pub bundle: PathBuf,
    pub cluster: Option<PathBuf>,
}

/// Inputs expanded into nodes, and the files left out on the way (never silently).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    pub nodes: Vec<NodeInput>,
    /// Loose files found beside bundle archives: they belong to no node.
    pub left_out: Vec<PathBuf>,
}

/// Expands the inputs into nodes. A directory holding bundle archives (`.tar.gz`, `.tgz`,
/// `.tar`, recognised by content) and no `manifest.json` of its own is a cluster run: each archive
/// is one node, in name order, and its `cluster/` folder applies to all of them. Anything else is
/// one node as it stands.
pub fn expand(inputs: &[PathBuf]) -> Expanded {
    let mut out = Expanded::default();
    for input in inputs {
        match bundles_in(input) {
            Some((archives, loose)) => {
                let cluster = input.join("cluster");
                let cluster = cluster.is_dir().then_some(cluster);
                out.nodes
                    .extend(archives.into_iter().map(|bundle| NodeInput {
                        bundle,
                        cluster: cluster.clone(),
                    }));
                out.left_out.extend(loose);
            }
            None => out.nodes.push(NodeInput {
                bundle: input.clone(),
                cluster: None,
            }),
        }
    }
    out
}

/// The bundle archives directly in `dir`, when it is a directory of bundles, and the other files
/// beside them.
fn bundles_in(dir: &Path) -> Option<(Vec<PathBuf>, Vec<PathBuf>)> {
    if !dir.is_dir() || dir.join("manifest.json").exists() {
        return None;
    }
    let (mut archives, mut loose): (Vec<PathBuf>, Vec<PathBuf>) = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        // Hidden files are a collector's unfinished temporaries.
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .partition(|p| {
            Bundle::open(p).is_ok_and(|b| matches!(b.kind, SourceKind::TarGz | SourceKind::Tar))
        });
    archives.sort();
    // ctdiag's own reports, written beside the bundles by an earlier run, are not inputs.
    loose.retain(|p| {
        p.file_name()
            .is_none_or(|n| !n.to_string_lossy().starts_with("ctdiag-report."))
    });
    loose.sort();
    (!archives.is_empty()).then_some((archives, loose))
}

/// State of one pass over a bundle: the caps consumed so far and the problems met.
struct Walk<'l> {
    bundle: String,
    limits: &'l Limits,
    bytes: u64,
    members: usize,
    problems: Vec<Problem>,
    top: Option<Option<String>>,
    stopped: bool,
    progress: Progress,
    /// Compressed bytes read from a gzip'd bundle, for the bomb guard.
    compressed: Option<Progress>,
}

impl<'l> Walk<'l> {
    fn new(bundle: String, limits: &'l Limits) -> Self {
        Walk {
            bundle,
            limits,
            bytes: 0,
            members: 0,
            problems: Vec::new(),
            top: None,
            stopped: false,
            progress: Progress::default(),
            compressed: None,
        }
    }

    fn problem(&mut self, member: &str, severity: Severity, reason: String) {
        self.problems.push(Problem::new(member, severity, reason));
    }

    fn tar<R: Read>(&mut self, reader: R, visit: &mut dyn FnMut(Member<'_>) -> io::Result<()>) {
        let mut archive = tar::Archive::new(reader);
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(e) => {
                let bundle = self.bundle.clone();
                self.problem(
                    &bundle,
                    Severity::Error,
                    format!("not a readable tar archive: {e}"),
                );
                return;
            }
        };
        for entry in entries {
            if self.stopped {
                break;
            }
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let bundle = self.bundle.clone();
                    self.problem(
                        &bundle,
                        Severity::Error,
                        format!(
                            "archive is damaged after {} member(s), the rest is lost: {e}",
                            self.members
                        ),
                    );
                    break;
                }
            };
            let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = entry.header().entry_type();
            if kind.is_dir() || kind.is_pax_global_extensions() {
                continue;
            }
            if !kind.is_file() && !kind.is_contiguous() {
                let what = if kind.is_symlink() {
                    "symbolic link"
                } else if kind.is_hard_link() {
                    "hard link"
                } else if kind.is_character_special() || kind.is_block_special() {
                    "device file"
                } else if kind.is_fifo() {
                    "FIFO"
                } else {
                    "special entry"
                };
                self.problem(
                    &raw_path,
                    Severity::Note,
                    format!("{what} in archive not followed"),
                );
                continue;
            }
            let Some(path) = self.member_path(&raw_path) else {
                continue;
            };
            let size = entry.header().size().ok();
            // A read error inside a member means the stream under the archive is broken (truncated
            // gzip, corrupt data): nothing after it can be trusted.
            if !self.member(path, size, &mut entry, visit) {
                break;
            }
        }
    }

    fn directory(
        &mut self,
        root: &Path,
        visit: &mut dyn FnMut(Member<'_>) -> io::Result<()>,
    ) -> Result<(), SourceError> {
        self.top = Some(None);
        let mut stack = vec![root.to_path_buf()];
        let mut files = Vec::new();
        while let Some(dir) = stack.pop() {
            let rd = std::fs::read_dir(&dir).map_err(|source| SourceError::ReadDir {
                path: dir.clone(),
                source,
            })?;
            for entry in rd.flatten() {
                let path = entry.path();
                let rel = relative(root, &path);
                match entry.file_type() {
                    Ok(t) if t.is_symlink() => {
                        self.problem(&rel, Severity::Note, "symbolic link not followed".into())
                    }
                    Ok(t) if t.is_dir() => stack.push(path),
                    Ok(t) if t.is_file() => files.push((rel, path)),
                    _ => self.problem(&rel, Severity::Note, "special file skipped".into()),
                }
            }
        }
        files.sort();
        for (rel, path) in files {
            if self.stopped {
                break;
            }
            match File::open(&path) {
                Ok(f) => {
                    let size = f.metadata().ok().map(|m| m.len());
                    let counted = Counting {
                        inner: f,
                        progress: self.progress.clone(),
                        local: Progress::default(),
                    };
                    self.member(rel, size, counted, visit);
                }
                Err(e) => self.problem(&rel, Severity::Error, format!("cannot open: {e}")),
            }
        }
        Ok(())
    }

    /// Visits one member through the caps. Returns false when the stream under it broke.
    fn member<R: Read>(
        &mut self,
        path: String,
        size: Option<u64>,
        reader: R,
        visit: &mut dyn FnMut(Member<'_>) -> io::Result<()>,
    ) -> bool {
        self.members += 1;
        if self.members > self.limits.members {
            let bundle = self.bundle.clone();
            self.problem(
                &bundle,
                Severity::Error,
                format!(
                    "more than {} members; the rest were not read (raise --max-members)",
                    self.limits.members
                ),
            );
            self.stopped = true;
            return true;
        }
        let left = self.limits.bundle_bytes.saturating_sub(self.bytes);
        let cap = self.limits.member_bytes.min(left);
        let mut capped = Capped {
            inner: reader,
            left: cap,
            read: 0,
            hit: false,
            guard: self.compressed.clone().map(|compressed| BombGuard {
                compressed,
                before: self.bytes,
                max_ratio: self.limits.max_ratio,
                tripped: false,
            }),
        };
        let result = visit(Member {
            path: path.clone(),
            size,
            reader: &mut capped,
        });
        self.bytes += capped.read;
        if let Some(g) = capped.guard.as_ref().filter(|g| g.tripped) {
            let bundle = self.bundle.clone();
            let packed = g.compressed.get().max(1);
            self.problem(
                &bundle,
                Severity::Error,
                format!(
                    "{} bytes inflated from {} compressed ({}:1, above --max-ratio {}): a decompression bomb or a corrupt stream; reading stopped in {}",
                    self.bytes,
                    packed,
                    self.bytes / packed,
                    self.limits.max_ratio,
                    path
                ),
            );
            self.stopped = true;
            return false;
        }
        if capped.hit {
            let (what, flag) = if cap < self.limits.member_bytes {
                ("the bundle's", "--max-bundle-bytes")
            } else {
                ("the member", "--max-member-bytes")
            };
            self.problem(
                &path,
                Severity::Warning,
                format!("truncated at {cap} bytes, {what} size cap (raise {flag})"),
            );
            if cap < self.limits.member_bytes {
                self.stopped = true;
            }
        }
        match result {
            Ok(()) => true,
            Err(e) => {
                self.problem(
                    &path,
                    Severity::Error,
                    format!("read failed: {}", io_reason(&e)),
                );
                false
            }
        }
    }

    /// Neutralises a hostile archive path and strips the bundle's top folder.
    fn member_path(&mut self, raw: &str) -> Option<String> {
        let mut parts = Vec::new();
        let mut unsafe_path = false;
        for c in Path::new(raw).components() {
            match c {
                Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    unsafe_path = true
                }
            }
        }
        if parts.is_empty() {
            return None;
        }
        if unsafe_path {
            let shown = parts.join("/");
            self.problem(
                raw,
                Severity::Note,
                format!("member path leaves the bundle; read as {shown:?}, nothing is written"),
            );
            return Some(shown);
        }
        let top = self.top.get_or_insert_with(|| {
            (parts.len() >= 2 && !V1_FOLDERS.contains(&parts[0].as_str())).then(|| parts[0].clone())
        });
        if let Some(top) = top
            && parts.len() >= 2
            && parts[0] == *top
        {
            parts.remove(0);
        }
        Some(parts.join("/"))
    }
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "unexpected end of data (truncated upload?)".into(),
        _ => e.to_string(),
    }
}

/// Reads until `buf` is full or the stream ends.
fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn is_tar_header(block: &[u8]) -> bool {
    block.len() >= 262 && &block[257..262] == b"ustar"
}

fn has_tar_name(path: &Path) -> bool {
    let name = path.to_string_lossy().to_ascii_lowercase();
    name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

/// Stops a gzip stream that inflates far beyond what text compresses to.
struct BombGuard {
    compressed: Progress,
    /// Decompressed bytes of the bundle before this member.
    before: u64,
    max_ratio: u64,
    tripped: bool,
}

/// The guard only judges after this much output: small inputs can have any ratio.
const BOMB_GRACE: u64 = 64 << 20;

/// A reader that stops after `left` bytes and remembers whether there was more.
struct Capped<R> {
    inner: R,
    left: u64,
    read: u64,
    hit: bool,
    guard: Option<BombGuard>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(g) = &mut self.guard {
            let out = g.before + self.read;
            if g.tripped || (out > BOMB_GRACE && out / g.compressed.get().max(1) > g.max_ratio) {
                g.tripped = true;
                return Ok(0);
            }
        }
        if self.left == 0 {
            if !self.hit {
                let mut probe = [0u8; 1];
                if self.inner.read(&mut probe)? > 0 {
                    self.hit = true;
                }
            }
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(bundle: &Bundle, limits: &Limits) -> (Vec<(String, Vec<u8>)>, Vec<Problem>) {
        let mut seen = Vec::new();
        let problems = bundle
            .for_each_member(limits, &Progress::default(), &mut |m| {
                let mut buf = Vec::new();
                m.reader.read_to_end(&mut buf)?;
                seen.push((m.path, buf));
                Ok(())
            })
            .expect("bundle opens");
        (seen, problems)
    }

    fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            builder.append_data(&mut h, path, *data).expect("append");
        }
        builder
            .into_inner()
            .expect("finish tar")
            .finish()
            .expect("finish gzip")
    }

    #[test]
    fn strips_the_top_folder_of_a_v1_archive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("renamed.bin");
        std::fs::write(
            &path,
            tar_gz(&[
                (
                    "ctdiag-n1-20261125T120000Z/conntrack/stats.0.txt",
                    b"cpu=0 drop=1\n",
                ),
                ("ctdiag-n1-20261125T120000Z/manifest.json", b"{}"),
            ]),
        )
        .expect("write");
        let bundle = Bundle::open(&path).expect("open");
        assert_eq!(bundle.kind, SourceKind::TarGz);
        let (members, problems) = collect(&bundle, &Limits::default());
        assert!(problems.is_empty(), "{problems:?}");
        let paths: Vec<_> = members.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(paths, ["conntrack/stats.0.txt", "manifest.json"]);
    }

    #[test]
    fn a_loose_gzip_file_is_one_member() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dmesg.txt.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"[1.0] nf_conntrack: table full, dropping packet\n")
            .expect("gzip");
        std::fs::write(&path, gz.finish().expect("gzip")).expect("write");
        let bundle = Bundle::open(&path).expect("open");
        assert_eq!(bundle.kind, SourceKind::GzFile);
        let (members, _) = collect(&bundle, &Limits::default());
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].0, "dmesg.txt");
    }

    #[test]
    fn truncated_gzip_keeps_members_read_before_the_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.tar.gz");
        let big: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let full = tar_gz(&[("a.txt", b"first\n"), ("b.txt", &big)]);
        std::fs::write(&path, &full[..full.len() / 2]).expect("write");
        let (members, problems) = collect(&Bundle::open(&path).expect("open"), &Limits::default());
        assert_eq!(members[0], ("a.txt".to_string(), b"first\n".to_vec()));
        assert!(
            problems
                .iter()
                .any(|p| p.member == "b.txt" && p.reason.contains("truncated upload")),
            "{problems:?}"
        );
    }

    #[test]
    fn member_cap_truncates_and_says_which_flag_raises_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("big.txt"), vec![b'x'; 100]).expect("write");
        let limits = Limits {
            member_bytes: 10,
            ..Limits::default()
        };
        let (members, problems) = collect(&Bundle::open(dir.path()).expect("open"), &limits);
        assert_eq!(members[0].1.len(), 10);
        assert!(
            problems[0].reason.contains("--max-member-bytes"),
            "{problems:?}"
        );
    }

    #[test]
    fn hostile_paths_are_neutralised() {
        let limits = Limits::default();
        let mut walk = Walk::new("b".into(), &limits);
        assert_eq!(
            walk.member_path("../../etc/passwd").as_deref(),
            Some("etc/passwd")
        );
        assert_eq!(walk.problems.len(), 1);
    }

    #[test]
    fn a_directory_of_archives_is_one_node_each_sharing_its_cluster_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = tar_gz(&[("ctdiag-n-t/conntrack/count.0.txt", b"1\n")]);
        std::fs::write(dir.path().join("ctdiag-b-t.tar.gz"), &archive).expect("write");
        std::fs::write(dir.path().join("ctdiag-a-t.tar.gz"), &archive).expect("write");
        std::fs::write(dir.path().join(".ctdiag-c-t.tar.gz.partial"), &archive).expect("write");
        std::fs::write(dir.path().join("ctdiag-report.html"), b"<html>").expect("write");
        std::fs::create_dir(dir.path().join("cluster")).expect("mkdir");
        let expanded = expand(&[dir.path().to_path_buf()]);
        // Our own earlier report is not an input left out.
        assert!(expanded.left_out.is_empty(), "{:?}", expanded.left_out);
        let cluster = Some(dir.path().join("cluster"));
        assert_eq!(
            expanded.nodes,
            [
                NodeInput {
                    bundle: dir.path().join("ctdiag-a-t.tar.gz"),
                    cluster: cluster.clone()
                },
                NodeInput {
                    bundle: dir.path().join("ctdiag-b-t.tar.gz"),
                    cluster
                },
            ]
        );
        // A directory of loose files stays one bundle.
        let loose = tempfile::tempdir().expect("tempdir");
        std::fs::write(loose.path().join("s1"), b"cpu=0 drop=1\n").expect("write");
        assert_eq!(
            expand(&[loose.path().to_path_buf()]).nodes,
            [NodeInput {
                bundle: loose.path().to_path_buf(),
                cluster: None
            }]
        );
    }

    #[test]
    fn symlinks_in_a_directory_are_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("real.txt"), b"x\n").expect("write");
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).expect("symlink");
        let (members, problems) =
            collect(&Bundle::open(dir.path()).expect("open"), &Limits::default());
        assert_eq!(members.len(), 1);
        assert_eq!(problems[0].member, "link");
    }
}
