//! Bundle sources: a tar archive (plain, gzip, xz or bzip2), a zip, a directory, a single loose file
//! (a customer pasted `conntrack -S` into a ticket), or a compressed loose file. Each is turned into
//! a sequence of members, each a stream: nothing is unpacked to disk (a zip nested inside a stream,
//! which needs random access, is the one exception: it is spooled to a temporary file, capped) and
//! nothing is held whole in memory.
//!
//! The kind is decided by content (compression magic, the `ustar` magic at offset 257, the zip
//! local header), never by the file name, because bundles are renamed on their way through
//! tickets. Archives nest (a zip of bundles, a sos collect tar of per-node `.tar.xz` reports) and
//! are walked in place, each member path prefixed with its archive's. Archive members are hostile:
//! devices are never read, `..` and absolute paths are neutralised, a symbolic link is only ever
//! an alias for a member inside the same archive (never read through, never outside it), and every
//! decompressed byte is counted against a cap.

use crate::problem::{Problem, Severity};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
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
            // A sos report holds ~21k files; a sos collect of a few nodes several times that.
            members: 200_000,
            // Conntrack and kernel-log text compresses 8–50:1; deflate cannot exceed ~1032:1.
            max_ratio: 250,
        }
    }
}

/// What the first bytes of a bundle say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    TarGz,
    /// sos reports (`.tar.xz`, the default of sos 4.x).
    TarXz,
    TarBz2,
    Tar,
    /// cilium sysdump, and archives made on desktops.
    Zip,
    Directory,
    /// A gzip stream that is not a tar archive: one compressed loose file.
    GzFile,
    XzFile,
    Bz2File,
    File,
}

impl SourceKind {
    /// Whether the source is an archive or directory that may carry a manifest to check.
    pub fn has_members(self) -> bool {
        !matches!(
            self,
            SourceKind::File | SourceKind::GzFile | SourceKind::XzFile | SourceKind::Bz2File
        )
    }
}

/// A compression format, recognised by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Gzip,
    Xz,
    Bzip2,
}

impl Codec {
    fn sniff(head: &[u8]) -> Option<Codec> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Codec::Gzip)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Some(Codec::Xz)
        } else if head.len() >= 4 && head.starts_with(b"BZh") && (b'1'..=b'9').contains(&head[3]) {
            Some(Codec::Bzip2)
        } else {
            None
        }
    }

    /// A decoder over `r`, reading every concatenated stream (parallel gzip, `pbzip2`, `xz -T`).
    fn decode<'r, R: Read + 'r>(self, r: R) -> Box<dyn Read + 'r> {
        match self {
            Codec::Gzip => Box::new(MultiGzDecoder::new(r)),
            // The dictionary an xz header asks for is allocated up front: capped so that a hostile
            // header cannot make us allocate gigabytes (`xz -9` needs 64 MiB).
            Codec::Xz => Box::new(lzma_rust2::XzReader::new_mem_limit(r, true, XZ_MEM_KIB)),
            Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(r)),
        }
    }

    /// The file-name extensions this compression is written with.
    fn extensions(self) -> &'static [&'static str] {
        match self {
            Codec::Gzip => &[".gz"],
            Codec::Xz => &[".xz"],
            Codec::Bzip2 => &[".bz2"],
        }
    }
}

/// Memory an xz decoder may take, in KiB.
const XZ_MEM_KIB: u32 = 256 << 10;

/// How deep archives may nest (a zip of a tar of a `.tar.xz` is three).
const MAX_NESTING: usize = 4;

fn is_zip(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06")
}

/// An opened bundle: a path and what it holds.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub path: PathBuf,
    pub kind: SourceKind,
    /// The member digest worth computing while reading (see [`MemberDigest`]).
    pub digest: MemberDigest,
}

/// Which digest of each member a manifest can be checked with.
///
/// A bundle from ctdiag-collect lists SHA-256 and XXH3-128 of every member and says so in its
/// gzip header ([`GZIP_MARKER`]); the manifest itself comes last, so that header is the only thing
/// a streaming reader knows in time. XXH3 runs at memory speed where SHA-256 costs a sixth of the
/// analysis; both catch damage and edits equally (anyone who can rewrite a member can rewrite the
/// manifest beside it, so a cryptographic digest adds no protection here). Any other archive —
/// older collectors, a bundle unpacked and re-packed — is checked with SHA-256 as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberDigest {
    Sha256,
    Xxh3,
}

impl MemberDigest {
    /// The manifest field that holds it.
    pub fn field(self) -> &'static str {
        match self {
            MemberDigest::Sha256 => "sha256",
            MemberDigest::Xxh3 => "xxh3_128",
        }
    }
}

/// The gzip extra field of a ctdiag-collect bundle: one RFC 1952 subfield, id `CT`.
pub const GZIP_MARKER: &[u8] = b"CT\x0f\x00xxh3_128 listed";

/// Whether `head` (the first bytes of a file) is a gzip header carrying [`GZIP_MARKER`] in its
/// extra field (FLG.FEXTRA: `XLEN` then subfields right after the 10 fixed bytes).
fn has_gzip_marker(head: &[u8]) -> bool {
    const FEXTRA: u8 = 0x04;
    if head.len() < 12 || !head.starts_with(&[0x1f, 0x8b, 8]) || head[3] & FEXTRA == 0 {
        return false;
    }
    let xlen = usize::from(u16::from_le_bytes([head[10], head[11]]));
    let Some(extra) = head.get(12..12 + xlen) else {
        return false;
    };
    // Subfields: SI1 SI2 LEN(2, LE) data; ours may sit among others.
    let mut rest = extra;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        let Some(field) = rest.get(..4 + len) else {
            return false;
        };
        if field == GZIP_MARKER {
            return true;
        }
        rest = &rest[4 + len..];
    }
    false
}

/// One member as the source yields it.
pub struct Member<'a> {
    /// Path inside the bundle, `/`-separated, relative to the bundle's top folder. A member of a
    /// nested archive has the nested archive's path as prefix: `reports/node-1.tar.xz/etc/hosts`.
    pub path: String,
    /// Length of that prefix (with its `/`): `path[root_len..]` is the path inside the innermost
    /// archive, relative to its own top folder.
    pub root_len: usize,
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
    "netns",
    "cluster",
    "manifest.json",
];

/// A symbolic or hard link inside a bundle, resolved to the member path it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub path: String,
    pub target: String,
}

/// What a walk over a bundle met besides its members.
#[derive(Debug, Default)]
pub struct Walked {
    pub problems: Vec<Problem>,
    /// Links whose target lies inside the bundle: aliases, never read through.
    pub links: Vec<Link>,
}

/// A visitor's way to end a walk early without it being a problem (see [`Bundle::index`]).
#[derive(Debug)]
struct StopWalk;

impl std::fmt::Display for StopWalk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("walk stopped by its visitor")
    }
}

impl std::error::Error for StopWalk {}

fn is_stop(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<StopWalk>())
}

/// One member as [`Bundle::index`] lists it.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub path: String,
    pub root_len: usize,
    pub size: Option<u64>,
}

/// Every member path and link of a bundle, and the content of the few small files asked for:
/// what layouts are recognised by before any member is parsed (a sos report's markers sort after
/// the files they describe, so they cannot be waited for in one pass).
#[derive(Debug, Default)]
pub struct Index {
    pub entries: Vec<IndexEntry>,
    pub links: Vec<Link>,
    /// Path → content (at most [`Index::KEPT_BYTES`]) of the members the caller asked for.
    pub kept: std::collections::BTreeMap<String, Vec<u8>>,
    /// The bundle is in ctdiag's own layout (v1): no index was needed and none was taken.
    pub v1: bool,
}

impl Index {
    pub const KEPT_BYTES: u64 = 64 << 10;
}

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
                digest: MemberDigest::Sha256,
            });
        }
        let mut head = [0u8; 512];
        let n =
            read_up_to(&mut File::open(path).map_err(open_err)?, &mut head).map_err(open_err)?;
        let kind = if let Some(codec) = Codec::sniff(&head[..n]) {
            let mut decoded = codec.decode(File::open(path).map_err(open_err)?);
            let mut inner = [0u8; 512];
            // A stream too damaged to yield 512 bytes is still read as an archive if it claims
            // to be one, so that the damage is reported where it happens.
            let m = read_up_to(&mut decoded, &mut inner).unwrap_or(0);
            let tar = is_tar_header(&inner[..m]) || (m < 512 && has_tar_name(path));
            match (codec, tar) {
                (Codec::Gzip, true) => SourceKind::TarGz,
                (Codec::Xz, true) => SourceKind::TarXz,
                (Codec::Bzip2, true) => SourceKind::TarBz2,
                (Codec::Gzip, false) => SourceKind::GzFile,
                (Codec::Xz, false) => SourceKind::XzFile,
                (Codec::Bzip2, false) => SourceKind::Bz2File,
            }
        } else if is_zip(&head[..n]) {
            SourceKind::Zip
        } else if is_tar_header(&head[..n]) {
            SourceKind::Tar
        } else {
            SourceKind::File
        };
        let digest = if kind == SourceKind::TarGz && has_gzip_marker(&head[..n]) {
            MemberDigest::Xxh3
        } else {
            MemberDigest::Sha256
        };
        Ok(Bundle {
            path: path.to_path_buf(),
            kind,
            digest,
        })
    }

    /// A short name for the bundle: its file name without archive extensions.
    pub fn name(&self) -> String {
        let file = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string());
        for ext in [
            ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tar", ".zip", ".gz",
            ".xz", ".bz2",
        ] {
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
        self.walk(limits, progress, visit).map(|w| w.problems)
    }

    /// [`Bundle::for_each_member`], also returning the links met.
    pub fn walk(
        &self,
        limits: &Limits,
        progress: &Progress,
        visit: &mut dyn FnMut(Member<'_>) -> io::Result<()>,
    ) -> Result<Walked, SourceError> {
        let mut walk = Walk::new(self.name(), limits);
        walk.progress = progress.clone();
        let compressed = Progress::default();
        if !matches!(
            self.kind,
            SourceKind::Directory | SourceKind::File | SourceKind::Tar
        ) {
            walk.guard = Some((compressed.clone(), 0));
        }
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
        let buffered = |p: &Path| open(p).map(|f| BufReader::with_capacity(256 << 10, f));
        match self.kind {
            SourceKind::TarGz => walk.tar(Codec::Gzip.decode(buffered(&self.path)?), visit),
            SourceKind::TarXz => walk.tar(Codec::Xz.decode(buffered(&self.path)?), visit),
            SourceKind::TarBz2 => walk.tar(Codec::Bzip2.decode(buffered(&self.path)?), visit),
            SourceKind::Tar => walk.tar(buffered(&self.path)?, visit),
            SourceKind::Zip => walk.zip(open(&self.path)?, visit),
            SourceKind::Directory => walk.directory(&self.path, visit)?,
            SourceKind::GzFile | SourceKind::XzFile | SourceKind::Bz2File => {
                let name = self.name();
                let codec = match self.kind {
                    SourceKind::GzFile => Codec::Gzip,
                    SourceKind::XzFile => Codec::Xz,
                    _ => Codec::Bzip2,
                };
                walk.member(name, None, &mut codec.decode(buffered(&self.path)?), visit);
            }
            SourceKind::File => {
                let mut file = open(&self.path)?;
                let size = file.inner.metadata().ok().map(|m| m.len());
                walk.member(self.name(), size, &mut file, visit);
            }
        }
        Ok(Walked {
            problems: walk.problems,
            links: walk.links,
        })
    }

    /// Lists every member and link without parsing anything, keeping the content of the small
    /// members `keep` asks for. A bundle in ctdiag's own layout is recognised from its first
    /// member and not listed (`v1`): its paths say what every member is.
    pub fn index(
        &self,
        limits: &Limits,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Index, SourceError> {
        let mut index = Index::default();
        let mut first = true;
        let mut visit = |m: Member<'_>| -> io::Result<()> {
            if std::mem::take(&mut first) && m.root_len == 0 && crate::classify::is_v1_path(&m.path)
            {
                index.v1 = true;
                return Err(io::Error::other(StopWalk));
            }
            let rel = &m.path[m.root_len..];
            if keep(rel) {
                let mut content = Vec::new();
                m.reader.take(Index::KEPT_BYTES).read_to_end(&mut content)?;
                index.kept.insert(m.path.clone(), content);
            }
            index.entries.push(IndexEntry {
                path: m.path,
                root_len: m.root_len,
                size: m.size,
            });
            Ok(())
        };
        let walked = self.walk(limits, &Progress::default(), &mut visit)?;
        index.links = walked.links;
        Ok(index)
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

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
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

/// Expands the inputs into nodes. A directory holding bundle archives (tar, compressed tar or
/// zip, recognised by content) and no `manifest.json` of its own, where the archives are ctdiag
/// bundles or alone, is a cluster run: each archive
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
            Bundle::open(p).is_ok_and(|b| {
                matches!(
                    b.kind,
                    SourceKind::TarGz
                        | SourceKind::TarXz
                        | SourceKind::TarBz2
                        | SourceKind::Tar
                        | SourceKind::Zip
                )
            })
        });
    archives.sort();
    // An unpacked archive of another tool holds archives of its own among its files (a sysdump's
    // per-agent bugtool `.tar.gz`): it is one input, walked with its archives in place. Only ctdiag's
    // own bundles, or archives alone, make a directory of nodes.
    let ours = |p: &PathBuf| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("ctdiag-"))
    };
    let reports = |p: &PathBuf| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("ctdiag-report."))
    };
    if !archives.iter().any(ours) && loose.iter().any(|p| !reports(p)) {
        return None;
    }
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
    links: Vec<Link>,
    /// The top folder of the archive being walked, once known (`Some(None)`: it has none).
    top: Option<Option<String>>,
    /// Path of the nested archive being walked, with its `/`; empty at the top.
    prefix: String,
    depth: usize,
    stopped: bool,
    progress: Progress,
    /// Compressed bytes read so far and the decompressed total when counting began: the bomb
    /// guard's ratio is taken over what was inflated since.
    guard: Option<(Progress, u64)>,
}

impl<'l> Walk<'l> {
    fn new(bundle: String, limits: &'l Limits) -> Self {
        Walk {
            bundle,
            limits,
            bytes: 0,
            members: 0,
            problems: Vec::new(),
            links: Vec::new(),
            top: None,
            prefix: String::new(),
            depth: 0,
            stopped: false,
            progress: Progress::default(),
            guard: None,
        }
    }

    fn problem(&mut self, member: &str, severity: Severity, reason: String) {
        self.problems.push(Problem::new(member, severity, reason));
    }

    /// The name problems of the archive itself are filed under.
    fn archive_name(&self) -> String {
        match self.prefix.strip_suffix('/') {
            Some(nested) => nested.to_string(),
            None => self.bundle.clone(),
        }
    }

    fn tar<R: Read>(&mut self, reader: R, visit: &mut dyn FnMut(Member<'_>) -> io::Result<()>) {
        let mut archive = tar::Archive::new(reader);
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(e) => {
                let name = self.archive_name();
                self.problem(
                    &name,
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
                    let name = self.archive_name();
                    self.problem(
                        &name,
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
            if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                // A hard link names its target from the archive's root, a symbolic one from
                // the link's own folder.
                self.link(&raw_path, &target, kind.is_hard_link());
                continue;
            }
            if !kind.is_file() && !kind.is_contiguous() {
                let what = if kind.is_character_special() || kind.is_block_special() {
                    "device file"
                } else if kind.is_fifo() {
                    "FIFO"
                } else {
                    "special entry"
                };
                let shown = format!("{}{raw_path}", self.prefix);
                self.problem(
                    &shown,
                    Severity::Note,
                    format!("{what} in archive not read"),
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

    /// A zip: its central directory gives every member, each read on its own, so a damaged
    /// member costs only itself.
    fn zip<R: Read + Seek>(
        &mut self,
        reader: R,
        visit: &mut dyn FnMut(Member<'_>) -> io::Result<()>,
    ) {
        let mut archive = match zip::ZipArchive::new(reader) {
            Ok(a) => a,
            Err(e) => {
                let name = self.archive_name();
                self.problem(
                    &name,
                    Severity::Error,
                    format!("not a readable zip archive: {e}"),
                );
                return;
            }
        };
        for i in 0..archive.len() {
            if self.stopped {
                break;
            }
            let listed = archive
                .name_for_index(i)
                .and_then(|n| n.ok().map(|n| format!("{}{n}", self.prefix)));
            let mut file = match archive.by_index(i) {
                Ok(f) => f,
                Err(e) => {
                    let name = listed.unwrap_or_else(|| self.archive_name());
                    self.problem(
                        &name,
                        Severity::Error,
                        format!("cannot read zip member: {e}"),
                    );
                    continue;
                }
            };
            let raw_path = String::from_utf8_lossy(file.name_raw()).into_owned();
            if file.is_dir() {
                continue;
            }
            if file.is_symlink() {
                let mut target = Vec::new();
                let read = (&mut file).take(4096).read_to_end(&mut target);
                if read.is_ok() {
                    self.link(&raw_path, &String::from_utf8_lossy(&target), false);
                }
                continue;
            }
            let Some(path) = self.member_path(&raw_path) else {
                continue;
            };
            let size = Some(file.size());
            self.member(path, size, &mut file, visit);
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
                    Ok(t) if t.is_symlink() => match std::fs::read_link(&path) {
                        Ok(target) => self.link(&rel, &target.to_string_lossy(), false),
                        Err(e) => self.problem(
                            &rel,
                            Severity::Note,
                            format!("symbolic link unreadable: {e}"),
                        ),
                    },
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
                    let mut counted = Counting {
                        inner: f,
                        progress: self.progress.clone(),
                        local: Progress::default(),
                    };
                    self.member(rel, size, &mut counted, visit);
                }
                Err(e) => self.problem(&rel, Severity::Error, format!("cannot open: {e}")),
            }
        }
        Ok(())
    }

    /// Records a link found at `raw` (as the archive spells it) pointing at `target`. Only a
    /// target inside the archive being walked is kept, as an alias; nothing is read through it.
    fn link(&mut self, raw: &str, target: &str, from_root: bool) {
        let shown = format!("{}{}", self.prefix, raw.trim_start_matches("./"));
        let mut parts: Vec<&str> = if from_root || target.starts_with('/') {
            Vec::new()
        } else {
            let mut p: Vec<&str> = raw
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .collect();
            p.pop();
            p
        };
        // An absolute target names the node's filesystem, never the archive (tar's own hard
        // links are relative to the archive's root).
        let mut escapes = target.starts_with('/');
        for c in target.split('/') {
            match c {
                "" | "." => {}
                ".." => escapes |= parts.pop().is_none(),
                c => parts.push(c),
            }
        }
        if escapes || parts.is_empty() {
            let what = if from_root { "hard" } else { "symbolic" };
            self.problem(
                &shown,
                Severity::Note,
                format!("{what} link to {target:?} leaves the archive; not followed"),
            );
            return;
        }
        let raw_parts: Vec<&str> = raw
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        self.top.get_or_insert_with(|| {
            (!raw.starts_with("./") && raw_parts.len() >= 2 && !V1_FOLDERS.contains(&raw_parts[0]))
                .then(|| raw_parts[0].to_string())
        });
        let (Some(path), Some(target)) = (self.strip_top(raw), self.strip_top(&parts.join("/")))
        else {
            return;
        };
        self.links.push(Link {
            path: format!("{}{path}", self.prefix),
            target: format!("{}{target}", self.prefix),
        });
    }

    /// A path with `.` and empty components dropped and the archive's top folder stripped.
    fn strip_top(&mut self, raw: &str) -> Option<String> {
        let mut parts: Vec<&str> = raw
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if parts.is_empty() || parts.contains(&"..") {
            return None;
        }
        if let Some(Some(top)) = &self.top
            && parts.len() >= 2
            && parts[0] == top
        {
            parts.remove(0);
        }
        Some(parts.join("/"))
    }

    /// Visits one member through the caps, or walks it when it is an archive itself. Returns
    /// false when the stream under it broke.
    fn member(
        &mut self,
        path: String,
        size: Option<u64>,
        reader: &mut dyn Read,
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
        let mut reader = Peeked::new(reader);
        if self.depth < MAX_NESTING {
            match reader.peek(512) {
                Ok(head) => {
                    if let Some(shape) = Nested::sniff(head) {
                        return self.nested(path, shape, reader, visit);
                    }
                }
                Err(e) => {
                    self.problem(
                        &path,
                        Severity::Error,
                        format!("read failed: {}", io_reason(&e)),
                    );
                    return false;
                }
            }
        }
        let left = self.limits.bundle_bytes.saturating_sub(self.bytes);
        let cap = self.limits.member_bytes.min(left);
        let mut capped = Capped {
            inner: reader,
            left: cap,
            read: 0,
            hit: false,
            guard: self.guard.clone().map(|(compressed, base)| BombGuard {
                compressed,
                before: self.bytes - base.min(self.bytes),
                max_ratio: self.limits.max_ratio,
                tripped: false,
            }),
        };
        let result = visit(Member {
            path: path.clone(),
            root_len: self.prefix.len(),
            size,
            reader: &mut capped,
        });
        self.bytes += capped.read;
        if let Some(g) = capped.guard.as_ref().filter(|g| g.tripped) {
            let bundle = self.bundle.clone();
            let packed = g.compressed.get().max(1);
            let inflated = g.before + capped.read;
            self.problem(
                &bundle,
                Severity::Error,
                format!(
                    "{} bytes inflated from {} compressed ({}:1, above --max-ratio {}): a decompression bomb or a corrupt stream; reading stopped in {}",
                    inflated,
                    packed,
                    inflated / packed,
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
            Err(e) if is_stop(&e) => {
                self.stopped = true;
                false
            }
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

    /// Walks a member that is an archive or a compressed file, in place.
    fn nested(
        &mut self,
        path: String,
        shape: Nested,
        reader: Peeked<&mut dyn Read>,
        visit: &mut dyn FnMut(Member<'_>) -> io::Result<()>,
    ) -> bool {
        // Inside an uncompressed source, a nested compressed stream gets its own bomb guard.
        let compressed = Progress::default();
        let own_guard = self.guard.is_none() && !matches!(shape, Nested::Tar);
        if own_guard {
            self.guard = Some((compressed.clone(), self.bytes));
        }
        let reader = Counting {
            inner: reader,
            progress: Progress::default(),
            local: compressed,
        };
        self.depth += 1;
        let ok = match shape {
            Nested::Compressed(codec) => {
                let mut decoded = codec.decode(reader);
                let mut decoded = Peeked::new(&mut decoded as &mut dyn Read);
                match decoded.peek(512).map(Nested::sniff) {
                    // A compressed archive keeps its own name as its members' prefix.
                    Ok(Some(inner @ (Nested::Tar | Nested::Zip))) => {
                        self.nested(path, inner, decoded, visit)
                    }
                    // A compressed file is its content under its name without the extension.
                    _ => {
                        let inner = codec
                            .extensions()
                            .iter()
                            .find_map(|ext| path.strip_suffix(ext))
                            .unwrap_or(&path)
                            .to_string();
                        self.members -= 1;
                        self.member(inner, None, &mut decoded, visit)
                    }
                }
            }
            Nested::Tar => {
                let saved = self.enter(&path);
                self.tar(reader, visit);
                self.leave(saved);
                true
            }
            Nested::Zip => self.nested_zip(&path, reader, visit),
        };
        self.depth -= 1;
        if own_guard {
            self.guard = None;
        }
        ok
    }

    /// A zip inside a stream needs random access: it is spooled to an anonymous temporary file,
    /// no larger than one member may be.
    fn nested_zip<R: Read>(
        &mut self,
        path: &str,
        reader: R,
        visit: &mut dyn FnMut(Member<'_>) -> io::Result<()>,
    ) -> bool {
        let spooled = tempfile::tempfile().and_then(|mut f| {
            let n = io::copy(&mut reader.take(self.limits.member_bytes + 1), &mut f)?;
            f.rewind()?;
            Ok((f, n))
        });
        match spooled {
            Ok((_, n)) if n > self.limits.member_bytes => {
                self.problem(
                    path,
                    Severity::Warning,
                    format!(
                        "nested zip larger than {} bytes; not read (raise --max-member-bytes)",
                        self.limits.member_bytes
                    ),
                );
                true
            }
            Ok((file, _)) => {
                let saved = self.enter(path);
                self.zip(file, visit);
                self.leave(saved);
                true
            }
            Err(e) => {
                self.problem(
                    path,
                    Severity::Error,
                    format!("read failed: {}", io_reason(&e)),
                );
                false
            }
        }
    }

    fn enter(&mut self, path: &str) -> (String, Option<Option<String>>) {
        let prefix = std::mem::replace(&mut self.prefix, format!("{path}/"));
        (prefix, self.top.take())
    }

    fn leave(&mut self, (prefix, top): (String, Option<Option<String>>)) {
        self.prefix = prefix;
        self.top = top;
    }

    /// Neutralises a hostile archive path, strips the archive's top folder and prefixes the
    /// path of the archive it is nested in.
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
            let shown = format!("{}{}", self.prefix, parts.join("/"));
            self.problem(
                &format!("{}{raw}", self.prefix),
                Severity::Note,
                format!("member path leaves the bundle; read as {shown:?}, nothing is written"),
            );
            return Some(shown);
        }
        // `tar -C DIR .` (the EKS and Rancher collectors) spells every member `./…`: whatever
        // the first member's folder is, it is not a top folder shared by all (a folder under `./`
        // that is, such a layout's own rules strip; see `layout::Plan::make`).
        let dotted = raw.starts_with("./");
        let top = self.top.get_or_insert_with(|| {
            (!dotted && parts.len() >= 2 && !V1_FOLDERS.contains(&parts[0].as_str()))
                .then(|| parts[0].clone())
        });
        if let Some(top) = top
            && parts.len() >= 2
            && parts[0] == *top
        {
            parts.remove(0);
        }
        Some(format!("{}{}", self.prefix, parts.join("/")))
    }
}

/// What a member turned out to be when it is not plain content.
#[derive(Debug, Clone, Copy)]
enum Nested {
    Tar,
    Zip,
    Compressed(Codec),
}

impl Nested {
    fn sniff(head: &[u8]) -> Option<Nested> {
        if let Some(codec) = Codec::sniff(head) {
            Some(Nested::Compressed(codec))
        } else if is_zip(head) {
            Some(Nested::Zip)
        } else if is_tar_header(head) {
            Some(Nested::Tar)
        } else {
            None
        }
    }
}

/// A reader whose first bytes can be looked at before it is handed on.
struct Peeked<R> {
    inner: R,
    head: Vec<u8>,
    pos: usize,
}

impl<R: Read> Peeked<R> {
    fn new(inner: R) -> Self {
        Peeked {
            inner,
            head: Vec::new(),
            pos: 0,
        }
    }

    /// Up to `n` first bytes (fewer only at the end of the stream).
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        let have = self.head.len();
        if have < n {
            self.head.resize(n, 0);
            let got = read_up_to(&mut self.inner, &mut self.head[have..]);
            let got = match got {
                Ok(g) => g,
                Err(e) => {
                    self.head.truncate(have);
                    return Err(e);
                }
            };
            self.head.truncate(have + got);
        }
        Ok(&self.head[..n.min(self.head.len())])
    }
}

impl<R: Read> Read for Peeked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.head.len() {
            let n = buf.len().min(self.head.len() - self.pos);
            buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
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

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            builder.append_data(&mut h, path, *data).expect("append");
        }
        builder.into_inner().expect("finish tar")
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut w = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(6))
            .expect("xz writer");
        w.write_all(data).expect("xz");
        w.finish().expect("xz finish")
    }

    fn bz2(data: &[u8]) -> Vec<u8> {
        let mut w = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        w.write_all(data).expect("bz2");
        w.finish().expect("bz2 finish")
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (path, data) in entries {
            w.start_file(*path, opts).expect("zip entry");
            w.write_all(data).expect("zip data");
        }
        w.finish().expect("zip finish").into_inner()
    }

    fn open_bytes(dir: &Path, name: &str, bytes: &[u8]) -> Bundle {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        Bundle::open(&path).expect("open")
    }

    #[test]
    fn the_collector_marker_is_found_among_other_gzip_extra_subfields() {
        let gz = |extra: Option<Vec<u8>>| {
            let mut b = flate2::GzBuilder::new();
            if let Some(e) = extra {
                b = b.extra(e);
            }
            let mut w = b.write(Vec::new(), flate2::Compression::fast());
            w.write_all(b"x").expect("write");
            w.finish().expect("finish")
        };
        assert!(has_gzip_marker(&gz(Some(GZIP_MARKER.to_vec()))));
        let mut two = b"AP\x02\x00hi".to_vec();
        two.extend_from_slice(GZIP_MARKER);
        assert!(has_gzip_marker(&gz(Some(two))));
        assert!(!has_gzip_marker(&gz(None)));
        assert!(!has_gzip_marker(&gz(Some(b"CT\x03\x00abc".to_vec()))));
        // A length running past the field, or a header cut short, is no marker and no panic.
        assert!(!has_gzip_marker(&gz(Some(b"CT\xff\x00xx".to_vec()))));
        let whole = gz(Some(GZIP_MARKER.to_vec()));
        for cut in 0..whole.len() {
            let _ = has_gzip_marker(&whole[..cut]);
        }
        assert!(!has_gzip_marker(&whole[..20]));
    }

    #[test]
    fn xz_bzip2_and_zip_archives_are_sniffed_by_content_and_walked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tar = tar_of(&[("sosreport-n1-2026/sos_commands/kernel/dmesg", b"[1.0] x\n")]);
        let txz = open_bytes(dir.path(), "a.bin", &xz(&tar));
        assert_eq!(txz.kind, SourceKind::TarXz);
        let tbz = open_bytes(dir.path(), "b.bin", &bz2(&tar));
        assert_eq!(tbz.kind, SourceKind::TarBz2);
        let zip = open_bytes(
            dir.path(),
            "c.bin",
            &zip_of(&[(
                "cilium-sysdump-20261125-134000/k8s-pods.yaml",
                b"items: []\n",
            )]),
        );
        assert_eq!(zip.kind, SourceKind::Zip);
        let lone = open_bytes(dir.path(), "stats.xz", &xz(b"cpu=0 drop=1\n"));
        assert_eq!(lone.kind, SourceKind::XzFile);
        for b in [&txz, &tbz] {
            let (members, problems) = collect(b, &Limits::default());
            assert!(problems.is_empty(), "{problems:?}");
            assert_eq!(members[0].0, "sos_commands/kernel/dmesg");
            assert_eq!(members[0].1, b"[1.0] x\n");
        }
        let (members, _) = collect(&zip, &Limits::default());
        assert_eq!(members[0].0, "k8s-pods.yaml");
        let (members, _) = collect(&lone, &Limits::default());
        assert_eq!(
            members[0],
            ("stats".to_string(), b"cpu=0 drop=1\n".to_vec())
        );
    }

    #[test]
    fn nested_archives_are_walked_in_place_under_their_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = xz(&tar_of(&[(
            "sosreport-node-1-2026/sos_commands/conntrack/conntrack_-S",
            b"cpu=0 drop=7\n",
        )]));
        let bugtool = tar_gz(&[("cilium-bugtool-20261125/cmd/cilium-dbg-status.md", b"ok\n")]);
        let inner_zip = zip_of(&[("sysdump/cilium-bugtool-a.tar.gz", &bugtool)]);
        let outer = tar_of(&[
            ("collect/sosreport-node-1.tar.xz", &node),
            ("collect/dumps.zip", &inner_zip),
            ("collect/kern.log.1.gz", &{
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(b"kernel line\n").expect("gz");
                gz.finish().expect("gz")
            }),
        ]);
        let bundle = open_bytes(dir.path(), "outer.tar", &outer);
        let mut seen = Vec::new();
        let walked = bundle
            .walk(&Limits::default(), &Progress::default(), &mut |m| {
                let mut buf = Vec::new();
                m.reader.read_to_end(&mut buf)?;
                seen.push((m.path.clone(), m.path[m.root_len..].to_string(), buf));
                Ok(())
            })
            .expect("walk");
        assert!(walked.problems.is_empty(), "{:?}", walked.problems);
        let paths: Vec<(&str, &str)> = seen
            .iter()
            .map(|(p, r, _)| (p.as_str(), r.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                (
                    "sosreport-node-1.tar.xz/sos_commands/conntrack/conntrack_-S",
                    "sos_commands/conntrack/conntrack_-S"
                ),
                (
                    "dumps.zip/cilium-bugtool-a.tar.gz/cmd/cilium-dbg-status.md",
                    "cmd/cilium-dbg-status.md"
                ),
                ("kern.log.1", "kern.log.1"),
            ]
        );
        assert_eq!(seen[0].2, b"cpu=0 drop=7\n");
    }

    #[test]
    fn links_inside_the_archive_are_aliases_and_links_out_of_it_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut builder = tar::Builder::new(Vec::new());
        let mut add_link = |path: &str, target: &str| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            builder.append_link(&mut h, path, target).expect("link");
        };
        add_link("sosreport-x/proc/net", "self/net");
        add_link("sosreport-x/proc/self", "4242");
        add_link("sosreport-x/dmesg", "sos_commands/kernel/dmesg");
        add_link("sosreport-x/evil", "../../../etc/shadow");
        add_link("sosreport-x/abs", "/etc/passwd");
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        builder
            .append_data(
                &mut h,
                "sosreport-x/proc/4242/net/stat/nf_conntrack",
                &b"x\n\n"[..],
            )
            .expect("file");
        let bundle = open_bytes(dir.path(), "s.tar", &builder.into_inner().expect("tar"));
        let walked = bundle
            .walk(&Limits::default(), &Progress::default(), &mut |_| Ok(()))
            .expect("walk");
        let links: Vec<(&str, &str)> = walked
            .links
            .iter()
            .map(|l| (l.path.as_str(), l.target.as_str()))
            .collect();
        assert_eq!(
            links,
            [
                ("proc/net", "proc/self/net"),
                ("proc/self", "proc/4242"),
                ("dmesg", "sos_commands/kernel/dmesg"),
            ]
        );
        assert_eq!(walked.problems.len(), 2, "{:?}", walked.problems);
        assert!(
            walked
                .problems
                .iter()
                .all(|p| p.reason.contains("leaves the archive"))
        );
    }

    #[test]
    fn a_zip_slip_path_is_read_as_a_relative_name_and_nothing_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bundle = open_bytes(
            dir.path(),
            "slip.zip",
            &zip_of(&[("../../../../tmp/evil.txt", b"cpu=0 drop=1\n")]),
        );
        let (members, problems) = collect(&bundle, &Limits::default());
        assert_eq!(members[0].0, "tmp/evil.txt");
        assert!(
            problems[0].reason.contains("leaves the bundle"),
            "{problems:?}"
        );
        assert!(!Path::new("/tmp/evil.txt").exists());
    }

    #[test]
    fn an_xz_bomb_is_stopped_by_the_ratio_guard() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 80 MiB of zeros packs to a few KiB: far beyond what any text compresses to.
        let mut w = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1))
            .expect("xz writer");
        let mut tar = tar::Builder::new(&mut w);
        let mut h = tar::Header::new_gnu();
        h.set_size(80 << 20);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "zeros.txt", io::repeat(0).take(80 << 20))
            .expect("append");
        tar.finish().expect("tar");
        drop(tar);
        let bomb = w.finish().expect("xz");
        assert_stopped_as_a_bomb(&open_bytes(dir.path(), "bomb.tar.xz", &bomb));
    }

    #[test]
    fn a_zip_bomb_is_stopped_by_the_ratio_guard() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        w.start_file("zeros.txt", opts).expect("entry");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..80 {
            w.write_all(&zeros).expect("zeros");
        }
        let bomb = w.finish().expect("zip").into_inner();
        assert_stopped_as_a_bomb(&open_bytes(dir.path(), "bomb.zip", &bomb));
    }

    fn assert_stopped_as_a_bomb(bundle: &Bundle) {
        let (_, problems) = collect(bundle, &Limits::default());
        assert!(
            problems
                .iter()
                .any(|p| p.reason.contains("decompression bomb")),
            "{problems:?}"
        );
    }

    #[test]
    fn the_index_lists_a_foreign_archive_and_stops_at_once_on_a_v1_bundle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sos = open_bytes(
            dir.path(),
            "s.tar.xz",
            &xz(&tar_of(&[
                ("sosreport-n1/proc/4242/net/stat/nf_conntrack", b"entries\n"),
                ("sosreport-n1/version.txt", b"sosreport: 4.8.2\n"),
            ])),
        );
        let index = sos
            .index(&Limits::default(), &|p| p == "version.txt")
            .expect("index");
        assert!(!index.v1);
        assert_eq!(index.entries.len(), 2);
        assert_eq!(index.kept["version.txt"], b"sosreport: 4.8.2\n");
        let ours = open_bytes(
            dir.path(),
            "o.tar.gz",
            &tar_gz(&[
                (
                    "ctdiag-n-t/node/uname.txt",
                    b"Linux n 6.1.0 #1 SMP x86_64 GNU/Linux\n",
                ),
                ("ctdiag-n-t/conntrack/count.0.txt", b"1\n"),
            ]),
        );
        let index = ours.index(&Limits::default(), &|_| true).expect("index");
        assert!(index.v1);
        assert!(index.entries.is_empty());
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
