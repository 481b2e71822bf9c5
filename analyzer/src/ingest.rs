//! Reading a bundle into per-member summaries: `source → classify → parse`, in parallel.
//!
//! One reader thread per bundle streams its members (decompressing, hashing, cutting each into
//! line-aligned chunks); every chunk is parsed as a task on the rayon pool and the partial
//! summaries are merged back in chunk order, so results never depend on scheduling. Chunk buffers
//! come from a pool shared by all readers: the pool's size is the memory budget, and a reader that
//! finds it empty waits for parsers to return a buffer. Readers are plain threads, never rayon
//! workers, so waiting on the pool can never starve the parsers it waits for.

use crate::classify::{self, ClassifiedBy, MemberKind};
use crate::layout::{self, Assignment, Layout, Plan, Target};
use crate::parse::{self, ChunkCtx, Chunker, LineProblems, MemberSummary};
use crate::problem::{Problem, Severity};
use crate::source::{Bundle, Limits, MemberDigest, SourceError, SourceKind};
use crate::summary::Merge;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, mpsc};

/// Tuning of the read: caps and the chunk memory budget.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub limits: Limits,
    /// Chunk buffers in flight across all bundles (each `limits.line_bytes` large).
    pub buffers: usize,
    /// Largest member of a kind that must be parsed whole (manifest, /proc/net/stat).
    pub whole_member_bytes: u64,
    /// Counts input bytes read, for a progress bar.
    pub progress: crate::source::Progress,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            limits: Limits::default(),
            buffers: 2 * rayon::current_num_threads() + 4,
            whole_member_bytes: 64 << 20,
            progress: crate::source::Progress::default(),
        }
    }
}

const UNRECOGNISED: &str = "not recognised as any supported input; skipped";

/// Unrecognised members named one by one; the rest are counted in one note.
const MAX_UNRECOGNISED_LISTED: usize = 20;

/// What is known of one member after reading it.
#[derive(Debug, Clone)]
pub struct MemberRecord {
    pub path: String,
    pub kind: MemberKind,
    pub classified_by: ClassifiedBy,
    pub sample: Option<u32>,
    /// Bytes read (after decompression, before any cap cut it).
    pub bytes: u64,
    /// The digest computed while reading (`Bundle::digest` says which), hex; empty when the
    /// input can carry no manifest to check it against.
    pub digest: String,
    /// Cut by a size cap while reading.
    pub truncated: bool,
    pub summary: MemberSummary,
}

/// A bundle after parsing: one node's members.
#[derive(Debug, Clone)]
pub struct BundleData {
    pub path: PathBuf,
    pub name: String,
    pub source_kind: SourceKind,
    /// What `MemberRecord::digest` holds.
    pub digest: MemberDigest,
    pub members: Vec<MemberRecord>,
    pub problems: Vec<Problem>,
    /// The other tool that made the archive, and its version (`sos report 4.8.2`), when the
    /// input is one (see [`crate::layout`]).
    pub provenance: Option<String>,
    /// Members of that tool's archive that are no input of any rule: not read, only counted.
    pub unused: u64,
}

/// Fixed-size chunk buffers shared by all readers.
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    available: Condvar,
}

impl BufferPool {
    pub fn new(count: usize) -> Arc<Self> {
        Arc::new(BufferPool {
            free: Mutex::new((0..count.max(1)).map(|_| Vec::new()).collect()),
            available: Condvar::new(),
        })
    }

    fn take(&self) -> Vec<u8> {
        // A poisoned lock only means a parser panicked while returning a buffer; the Vec list
        // itself is still valid.
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(buf) = free.pop() {
                return buf;
            }
            free = self.available.wait(free).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn give(&self, mut buf: Vec<u8>) {
        buf.clear();
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(buf);
        self.available.notify_one();
    }
}

/// A member digest being computed.
enum Hasher {
    /// A loose file or another tool's archive carries no manifest to check a digest against.
    None,
    Sha256(Box<Sha256>),
    Xxh3(Box<xxhash_rust::xxh3::Xxh3>),
}

impl Hasher {
    fn new(digest: Option<MemberDigest>) -> Hasher {
        match digest {
            None => Hasher::None,
            Some(MemberDigest::Sha256) => Hasher::Sha256(Box::default()),
            Some(MemberDigest::Xxh3) => Hasher::Xxh3(Box::default()),
        }
    }

    /// Lower-case hex as `sha256sum` / `xxhsum -H2` print it; empty for [`Hasher::None`].
    fn finish(self) -> String {
        match self {
            Hasher::None => String::new(),
            Hasher::Sha256(h) => hex(&h.finalize()),
            Hasher::Xxh3(h) => format!("{:032x}", h.digest128()),
        }
    }
}

/// Hashes and counts what passes through.
struct Hashing<R> {
    inner: R,
    hasher: Hasher,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match &mut self.hasher {
            Hasher::None => {}
            Hasher::Sha256(h) => h.update(&buf[..n]),
            Hasher::Xxh3(h) => h.update(&buf[..n]),
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The chunks of a member as one byte stream, for parsers that need the whole document.
struct ChunkStream<'c, R> {
    chunker: &'c mut Chunker<R>,
    buf: Vec<u8>,
    pos: usize,
}

impl<R: Read> Read for ChunkStream<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            if self.chunker.next_into(&mut self.buf)?.is_none() {
                return Ok(0);
            }
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Partial summaries of one member, merged strictly in chunk order by whichever worker holds the
/// next one: the reader only cuts chunks, so merging (hash-map work as heavy as parsing on a
/// table with many distinct pairs) runs on all cores and never stalls the inflate.
#[derive(Default)]
struct Accumulator {
    /// The member's path, for a problem found while merging.
    member: Arc<str>,
    next: u64,
    merged: Option<MemberSummary>,
    problems: LineProblems,
    pending: BTreeMap<u64, (MemberSummary, LineProblems)>,
    /// A worker is merging (with `merged` taken out of the lock); others only leave their chunk.
    busy: bool,
}

type Shared = Arc<Mutex<Accumulator>>;

const MERGE_PANICKED: &str = "internal error while merging the parts of this member: figures from it cover only the parts read after the error (please report)";

fn lock(acc: &Shared) -> std::sync::MutexGuard<'_, Accumulator> {
    // Merges run outside the lock, so a poisoned lock can only come from a panic between two
    // plain field updates; what it guards stays usable and later chunks still merge.
    acc.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands chunk `seq`'s summary to the member's accumulator and, unless another worker is already
/// at it, merges every chunk that is next in order. Returns once nothing it can merge is left, so
/// when every chunk's `accept` has returned, everything is merged.
fn accept(acc: &Shared, seq: u64, summary: MemberSummary, problems: LineProblems) {
    let (mut merged, mut all_problems, path) = {
        let mut a = lock(acc);
        a.pending.insert(seq, (summary, problems));
        if a.busy {
            return;
        }
        a.busy = true;
        (
            a.merged.take(),
            std::mem::take(&mut a.problems),
            Arc::clone(&a.member),
        )
    };
    loop {
        let next = {
            let mut a = lock(acc);
            let next = a.next;
            match a.pending.remove(&next) {
                Some(chunk) => {
                    a.next += 1;
                    chunk
                }
                None => {
                    a.merged = merged;
                    a.problems = all_problems;
                    a.busy = false;
                    return;
                }
            }
        };
        let (s, p) = next;
        all_problems.combine(p);
        let member = merged.take();
        // A bug in a merge loses the member's summary, never the process (a panic on a rayon
        // worker aborts) or the other members.
        merged =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || match member {
                Some(mut m) => {
                    m.combine(s);
                    m
                }
                None => s,
            })) {
                Ok(m) => Some(m),
                Err(_) => {
                    all_problems.push(Problem::new(&*path, Severity::Error, MERGE_PANICKED));
                    Some(MemberSummary::Skipped)
                }
            };
    }
}

/// Reads and parses one bundle as one node, whatever it holds. Must not be called from a rayon
/// worker (see the module docs).
pub fn ingest(
    bundle: &Bundle,
    options: &IngestOptions,
    pool: &Arc<BufferPool>,
) -> Result<BundleData, SourceError> {
    let read = read(bundle, options, pool, None)?;
    let problems = read.problems.into_iter().map(|(_, p)| p).collect();
    Ok(BundleData {
        path: bundle.path.clone(),
        name: bundle.name(),
        source_kind: bundle.kind,
        digest: bundle.digest,
        members: read.members.into_iter().map(|(m, _)| m).collect(),
        problems,
        provenance: None,
        unused: 0,
    })
}

/// Reads and parses one input into its nodes: one for a ctdiag bundle or loose files, one per
/// node for another tool's archive that holds several (see [`crate::layout`]).
pub fn ingest_nodes(
    bundle: &Bundle,
    options: &IngestOptions,
    pool: &Arc<BufferPool>,
    layouts: &[Layout],
) -> Result<Vec<BundleData>, SourceError> {
    let plan = if bundle.kind.has_members() {
        let index = bundle.index(&options.limits, &|rel| layout::wanted(layouts, rel))?;
        (!index.v1).then(|| Plan::make(layouts, &index)).flatten()
    } else {
        None
    };
    let Some(plan) = plan else {
        return ingest(bundle, options, pool).map(|d| vec![d]);
    };
    let read = read(bundle, options, pool, Some(&plan))?;
    // Nodes of the plan, then one for members outside every recognised root, if any of them is
    // an input.
    let rest_used = read
        .members
        .iter()
        .any(|(m, t)| t.is_none() && !matches!(m.summary, MemberSummary::Skipped));
    let mut nodes: Vec<BundleData> = plan
        .nodes
        .iter()
        .map(|n| BundleData {
            path: bundle.path.clone(),
            name: if n.name.is_empty() {
                bundle.name()
            } else {
                n.name.clone()
            },
            source_kind: bundle.kind,
            digest: bundle.digest,
            members: Vec::new(),
            problems: Vec::new(),
            provenance: Some(n.provenance.clone()),
            unused: 0,
        })
        .collect();
    let rest = rest_used.then(|| {
        nodes.push(BundleData {
            path: bundle.path.clone(),
            name: bundle.name(),
            source_kind: bundle.kind,
            digest: bundle.digest,
            members: Vec::new(),
            problems: Vec::new(),
            provenance: None,
            unused: 0,
        });
        nodes.len() - 1
    });
    let all: Vec<usize> = (0..nodes.len()).collect();
    for (record, targets) in read.members {
        let targets = targets.unwrap_or_else(|| rest.into_iter().collect());
        for &t in &targets {
            nodes[t].members.push(record.clone());
        }
    }
    for (targets, problem) in read.problems {
        // A problem of the input itself, or of a member no node took, concerns every node.
        let targets = targets
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| all.clone());
        for &t in &targets {
            nodes[t].problems.push(problem.clone());
        }
    }
    for (target, n) in read.unused {
        for t in plan.nodes_of(target) {
            nodes[t].unused += n;
        }
    }
    for node in &mut nodes {
        if node.unused > 0 {
            let tool = node.provenance.clone().unwrap_or_default();
            node.problems.push(Problem::new(
                node.name.clone(),
                Severity::Note,
                format!(
                    "{} member(s) of the {tool} archive are no input of any rule and were not read",
                    node.unused
                ),
            ));
        }
    }
    Ok(nodes)
}

/// What one pass over an input produced: each member with the plan's nodes it goes to (`None`:
/// outside every recognised root), problems likewise, and the unused members' count per target.
struct Pass {
    members: Vec<(MemberRecord, Option<Vec<usize>>)>,
    problems: Vec<(Option<Vec<usize>>, Problem)>,
    unused: Vec<(Target, u64)>,
}

fn read(
    bundle: &Bundle,
    options: &IngestOptions,
    pool: &Arc<BufferPool>,
    plan: Option<&Plan>,
) -> Result<Pass, SourceError> {
    // Each chunk task says it is done (parsed and handed to its accumulator) on this channel.
    let (tx, rx) = mpsc::channel::<()>();
    let mut members: Vec<MemberRecord> = Vec::new();
    let mut accumulators: Vec<Shared> = Vec::new();
    let mut member_problems: Vec<Vec<Problem>> = Vec::new();
    let mut spawned = 0u64;
    let mut received = 0u64;
    let chunk_size = options.limits.line_bytes;

    let drain = |block: bool, received: &mut u64| {
        let next = if block {
            rx.recv().ok()
        } else {
            rx.try_recv().ok()
        };
        if next.is_some() {
            *received += 1;
        }
        next.is_some()
    };

    let can_have_manifest = bundle.kind.has_members() && plan.is_none();
    let mut member_targets: Vec<Option<Vec<usize>>> = Vec::new();
    let mut unused: BTreeMap<Target, u64> = BTreeMap::new();
    let mut never: Vec<(Option<Vec<usize>>, Problem)> = Vec::new();
    let mut member_problems_early: Vec<(usize, Problem)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut duplicates = Vec::new();
    let mut visit = |m: crate::source::Member<'_>| -> io::Result<()> {
        if !seen.insert(m.path.clone()) {
            // A second copy would count its sample twice; the first one is what was collected.
            duplicates.push(Problem::new(
                &m.path,
                Severity::Warning,
                "appears twice in the bundle; the first copy is used",
            ));
            return Ok(());
        }
        let assigned = plan.and_then(|p| Some((p, p.assignment(&m.path)?)));
        let (forced, targets) = match assigned {
            Some((p, Assignment::Unused { node })) => {
                *unused.entry(*node).or_insert(0) += 1;
                let _ = p;
                return Ok(());
            }
            Some((p, Assignment::Never { node, why })) => {
                never.push((
                    Some(p.nodes_of(*node)),
                    Problem::new(&m.path, Severity::Note, format!("not an input: {why}")),
                ));
                return Ok(());
            }
            Some((
                p,
                Assignment::Input {
                    node,
                    kind,
                    truncated_by_tool,
                },
            )) => (
                Some((kind.clone(), *truncated_by_tool)),
                Some(p.nodes_of(*node)),
            ),
            None => (None, None),
        };
        let idx = members.len();
        member_targets.push(targets);
        let member: Arc<str> = Arc::from(m.path.as_str());
        let mut hashing = Hashing {
            inner: m.reader,
            hasher: Hasher::new(can_have_manifest.then_some(bundle.digest)),
            bytes: 0,
        };
        let mut chunker = Chunker::new(&mut hashing, chunk_size);
        let mut buf = pool.take();
        let first = chunker.next_into(&mut buf);
        let classified = match &forced {
            // The tool's layout says what it is; "decided by content" leaves it to the lines.
            Some((kind, _)) if *kind != MemberKind::Unknown => classify::Classified {
                kind: kind.clone(),
                sample: None,
                by: ClassifiedBy::Path,
            },
            Some(_) => classify::Classified {
                sample: None,
                ..classify::classify_content(&m.path, &buf)
            },
            None => classify::classify(&m.path, &buf),
        };
        if let Some((_, true)) = &forced {
            member_problems_early.push((
                idx,
                Problem::new(
                    &m.path,
                    Severity::Warning,
                    "the collecting tool kept only the end of this output (its size limit): counts from it are a floor",
                ),
            ));
        }
        accumulators.push(Arc::new(Mutex::new(Accumulator {
            member: member.clone(),
            ..Accumulator::default()
        })));
        member_problems.push(Vec::new());
        members.push(MemberRecord {
            path: m.path.clone(),
            kind: classified.kind.clone(),
            classified_by: classified.by,
            sample: classified.sample,
            bytes: 0,
            digest: String::new(),
            truncated: matches!(forced, Some((_, true))),
            summary: MemberSummary::Skipped,
        });
        let (mut result, mut first_line) = match first {
            Ok(f) => (Ok(()), f),
            Err(e) => (Err(e), None),
        };
        if matches!(classified.kind, MemberKind::Unknown) && first_line.is_some() {
            let head = crate::parse::lines(&buf, 1)
                .map(|(_, l)| l)
                .find(|l| !l.trim_ascii().is_empty())
                .unwrap_or_default();
            let problem = if classify::is_sysctl_configuration(&m.path) {
                Problem::new(
                    &m.path,
                    Severity::Note,
                    "sysctl configuration (what is applied at boot), never taken for the running values; skipped",
                )
            } else {
                Problem::new(&m.path, Severity::Note, UNRECOGNISED).with_excerpt(head)
            };
            member_problems[idx].push(problem);
        }
        let mut seq = 0u64;
        if parse::is_streamed(&classified.kind)
            && let Some(line) = first_line
        {
            // A JSON document of any size: parsed while it streams past, one chunk in memory.
            let ctx = ChunkCtx {
                member: member.clone(),
                kind: classified.kind.clone(),
                first_line: line,
            };
            let mut stream = ChunkStream {
                chunker: &mut chunker,
                buf: std::mem::take(&mut buf),
                pos: 0,
            };
            let mut problems = LineProblems::default();
            let summary = match &ctx.kind {
                MemberKind::KubeObjects => MemberSummary::Kube(Box::new(
                    parse::kubectl::parse_reader(&ctx, &mut stream, &mut problems),
                )),
                MemberKind::KubeObjectsYaml => MemberSummary::Kube(Box::new(
                    parse::kubectl::parse_yaml_reader(&ctx, &mut stream, &mut problems),
                )),
                _ => MemberSummary::Skipped,
            };
            pool.give(std::mem::take(&mut stream.buf));
            accept(&accumulators[idx], 0, summary, problems);
        } else if parse::is_line_independent(&classified.kind) {
            while let Some(line) = first_line {
                let ctx = ChunkCtx {
                    member: member.clone(),
                    kind: classified.kind.clone(),
                    first_line: line,
                };
                let data = std::mem::take(&mut buf);
                let tx = tx.clone();
                let giver = Arc::clone(pool);
                let acc = Arc::clone(&accumulators[idx]);
                let this_seq = seq;
                rayon::spawn(move || {
                    let (summary, problems) = parse::parse_chunk_guarded(&ctx, &data);
                    giver.give(data);
                    accept(&acc, this_seq, summary, problems);
                    // The reader may have stopped listening after an error; nothing to do then.
                    let _ = tx.send(());
                });
                spawned += 1;
                seq += 1;
                while drain(false, &mut received) {}
                buf = pool.take();
                match chunker.next_into(&mut buf) {
                    Ok(next) => first_line = next,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            pool.give(buf);
        } else if let Some(line) = first_line {
            // Whole-member kinds are small; read the rest and parse here.
            let mut data = std::mem::take(&mut buf);
            pool.give(buf);
            let mut rest = Vec::new();
            let mut more = Vec::new();
            let mut whole_cut = false;
            loop {
                match chunker.next_into(&mut more) {
                    Ok(Some(_)) => {
                        if (data.len() + rest.len()) as u64 >= options.whole_member_bytes {
                            member_problems[idx].push(Problem::new(
                                &m.path,
                                Severity::Warning,
                                format!(
                                    "larger than {} bytes; the rest was not parsed",
                                    options.whole_member_bytes
                                ),
                            ));
                            whole_cut = true;
                            break;
                        }
                        rest.extend_from_slice(&more);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            data.extend_from_slice(&rest);
            let ctx = ChunkCtx {
                member: member.clone(),
                kind: classified.kind.clone(),
                first_line: line,
            };
            let (summary, problems) = parse::parse_chunk_guarded(&ctx, &data);
            accept(&accumulators[idx], 0, summary, problems);
            // Findings that use a member parsed only in part must say so.
            members[idx].truncated |= whole_cut;
        } else {
            pool.give(buf);
        }
        for line in &chunker.overlong {
            member_problems[idx].push(
                Problem::new(
                    &m.path,
                    Severity::Warning,
                    format!(
                        "line longer than {} bytes skipped (raise --max-line-bytes)",
                        chunk_size
                    ),
                )
                .at_line(*line),
            );
        }
        // Read what is left so the hash covers the whole member even after a parse stopped early.
        if result.is_ok() {
            result = io::copy(&mut hashing, &mut io::sink()).map(|_| ());
        }
        let rec = &mut members[idx];
        rec.bytes = hashing.bytes;
        rec.digest = std::mem::replace(&mut hashing.hasher, Hasher::None).finish();
        result
    };

    let source_problems = bundle.for_each_member(&options.limits, &options.progress, &mut visit)?;
    drop(tx);
    while received < spawned {
        if !drain(true, &mut received) {
            break;
        }
    }

    for p in &source_problems {
        if p.reason.starts_with("truncated at")
            && let Some(m) = members.iter_mut().find(|m| m.path == p.member)
        {
            m.truncated = true;
        }
    }
    for (idx, p) in member_problems_early {
        member_problems[idx].insert(0, p);
    }
    // An unpacked report of a tool no layout knows can hold thousands of files that are no
    // input: the first are named, the rest counted.
    let mut unrecognised = 0usize;
    for list in &mut member_problems {
        list.retain(|p| {
            if p.reason != UNRECOGNISED {
                return true;
            }
            unrecognised += 1;
            unrecognised <= MAX_UNRECOGNISED_LISTED
        });
    }
    let more_unrecognised = unrecognised.saturating_sub(MAX_UNRECOGNISED_LISTED);
    let mut problems: Vec<(Option<Vec<usize>>, Problem)> = Vec::new();
    for ((i, acc), extra) in accumulators.into_iter().enumerate().zip(member_problems) {
        let acc = std::mem::take(&mut *lock(&acc));
        if let Some(s) = acc.merged {
            members[i].summary = s;
        }
        let t = &member_targets[i];
        problems.extend(extra.into_iter().map(|p| (t.clone(), p)));
        problems.extend(
            acc.problems
                .into_problems()
                .into_iter()
                .map(|p| (t.clone(), p)),
        );
    }
    let targets_of = |path: &str| {
        members
            .iter()
            .position(|m| m.path == path)
            .and_then(|i| member_targets[i].clone())
    };
    problems.extend(
        source_problems
            .into_iter()
            .chain(duplicates)
            .map(|p| (targets_of(&p.member), p)),
    );
    problems.extend(never);
    if more_unrecognised > 0 {
        problems.push((
            None,
            Problem::new(
                bundle.name(),
                Severity::Note,
                format!("{more_unrecognised} more member(s) not recognised as any supported input; skipped"),
            ),
        ));
    }
    Ok(Pass {
        members: members.into_iter().zip(member_targets).collect(),
        problems,
        unused: unused.into_iter().collect(),
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_of_loose_files_is_classified_parsed_and_hashed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("s1"), "cpu=0   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=46 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n").expect("write");
        std::fs::write(dir.path().join("notes.txt"), "call me maybe\n").expect("write");
        let bundle = Bundle::open(dir.path()).expect("open");
        let data = ingest(&bundle, &IngestOptions::default(), &BufferPool::new(4)).expect("ingest");
        let stats = data.members.iter().find(|m| m.path == "s1").expect("s1");
        assert_eq!(stats.kind, MemberKind::ConntrackStats);
        assert!(
            matches!(&stats.summary, MemberSummary::ConntrackStats(s) if s.totals["drop"] == 46)
        );
        assert_eq!(stats.digest.len(), 64);
        assert!(data.problems.iter().any(|p| p.member == "notes.txt"));
    }

    #[test]
    fn many_small_chunks_merge_to_the_one_pass_summary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut text = String::new();
        for i in 0..5000u32 {
            text.push_str(&format!(
                "tcp      6 {} TIME_WAIT src=10.244.{}.{} dst=10.96.0.{} sport={} dport=80 src=10.244.9.{} dst=10.244.{}.{} sport=80 dport={} [ASSURED] mark=0 use=1\n",
                i % 120, i % 7, i % 11, i % 5, 30000 + i, i % 13, i % 7, i % 11, 30000 + i
            ));
        }
        std::fs::write(dir.path().join("list"), &text).expect("write");
        let options = IngestOptions {
            limits: Limits {
                line_bytes: 4096,
                ..Limits::default()
            },
            ..IngestOptions::default()
        };
        let data = ingest(
            &Bundle::open(dir.path()).expect("open"),
            &options,
            &BufferPool::new(3),
        )
        .expect("ingest");
        let (whole, _) = parse::parse_all(MemberKind::ConntrackList, "list", text.as_bytes());
        match (&data.members[0].summary, whole) {
            (MemberSummary::ConntrackList(a), MemberSummary::ConntrackList(b)) => {
                assert!(**a == *b)
            }
            other => panic!("{other:?}"),
        }
    }
}
