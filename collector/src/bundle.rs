//! Writing the bundle: a gzip'd tar with one top folder, members appended as they are collected
//! (streamed from their spool files, hashed on the way), `manifest.json` last. The gzip header
//! carries [`GZIP_MARKER`]: it tells a reader, before the first member, that the manifest lists
//! an XXH3-128 digest of every member beside its SHA-256, so the reader can check the cheap one. In a directory the
//! archive is written under a hidden temporary name and renamed only once complete and synced, so a
//! bundle under its final name is always whole; any failure before that removes the temporary file.

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use tempfile::TempPath;
use xxhash_rust::xxh3::Xxh3;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot create a temporary bundle in {dir}")]
    Create { dir: PathBuf, source: io::Error },
    #[error("writing member {member}")]
    Member { member: String, source: io::Error },
    #[error("finishing the bundle")]
    Finish(#[source] io::Error),
    #[error("{path} already exists; not overwriting it")]
    Exists { path: PathBuf },
    #[error("renaming the finished bundle to {path}")]
    Rename { path: PathBuf, source: io::Error },
    #[error(
        "refusing to write a binary bundle to a terminal: redirect standard output or use -o DIR"
    )]
    Terminal,
}

/// The gzip header's extra field (RFC 1952 §2.3.1.1): one subfield, id `CT`, saying the manifest
/// lists `xxh3_128` for every member. The analyzer reads it before the first member
/// (docs/bundle-format.md, "Digests").
pub const GZIP_MARKER: &[u8] = b"CT\x0f\x00xxh3_128 listed";

/// A member as written: what the manifest needs to know about its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub bytes: u64,
    pub sha256: String,
    pub xxh3_128: String,
}

enum Destination {
    File {
        temp: TempPath,
        handle: File,
        final_path: PathBuf,
    },
    Stdout,
}

/// An open bundle.
pub struct BundleWriter {
    tar: tar::Builder<GzEncoder<BufWriter<Box<dyn Write>>>>,
    top: String,
    mtime: u64,
    destination: Destination,
}

impl BundleWriter {
    /// Starts `<dir>/<top>.tar.gz` under a temporary name.
    pub fn in_dir(dir: &Path, top: &str, mtime: u64) -> Result<BundleWriter, BundleError> {
        let create = |source| BundleError::Create {
            dir: dir.to_path_buf(),
            source,
        };
        let final_path = dir.join(format!("{top}.tar.gz"));
        if final_path.exists() {
            return Err(BundleError::Exists { path: final_path });
        }
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{top}."))
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(create)?;
        let handle = temp.as_file().try_clone().map_err(create)?;
        let sink: Box<dyn Write> = Box::new(temp.as_file().try_clone().map_err(create)?);
        Ok(BundleWriter::new(
            sink,
            top,
            mtime,
            Destination::File {
                temp: temp.into_temp_path(),
                handle,
                final_path,
            },
        ))
    }

    /// Streams the bundle to standard output.
    pub fn to_stdout(top: &str, mtime: u64) -> Result<BundleWriter, BundleError> {
        use std::io::IsTerminal;
        if io::stdout().is_terminal() {
            return Err(BundleError::Terminal);
        }
        Ok(BundleWriter::new(
            Box::new(io::stdout()),
            top,
            mtime,
            Destination::Stdout,
        ))
    }

    fn new(sink: Box<dyn Write>, top: &str, mtime: u64, destination: Destination) -> BundleWriter {
        let gz = GzBuilder::new().extra(GZIP_MARKER).write(
            BufWriter::with_capacity(1 << 20, sink),
            Compression::default(),
        );
        let mut tar = tar::Builder::new(gz);
        tar.follow_symlinks(false);
        BundleWriter {
            tar,
            top: top.to_string(),
            mtime,
            destination,
        }
    }

    /// Appends `len` bytes read from `data` as `path` (relative to the top folder).
    pub fn append(&mut self, path: &str, data: impl Read, len: u64) -> Result<Stored, BundleError> {
        let err = |source| BundleError::Member {
            member: path.to_string(),
            source,
        };
        let mut header = tar::Header::new_gnu();
        header.set_size(len);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        let mut hashing = Hashing {
            inner: data.take(len),
            hasher: Sha256::new(),
            xxh3: Xxh3::new(),
            count: 0,
        };
        self.tar
            .append_data(&mut header, format!("{}/{path}", self.top), &mut hashing)
            .map_err(err)?;
        if hashing.count != len {
            return Err(err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("expected {len} bytes, read {}", hashing.count),
            )));
        }
        Ok(Stored {
            bytes: len,
            sha256: hex(&hashing.hasher.finalize()),
            xxh3_128: format!("{:032x}", hashing.xxh3.digest128()),
        })
    }

    pub fn append_bytes(&mut self, path: &str, data: &[u8]) -> Result<Stored, BundleError> {
        self.append(path, data, data.len() as u64)
    }

    /// Ends the archive and, in a directory, syncs it and renames it to its final name, which is
    /// returned. Never replaces an existing file.
    pub fn finish(self) -> Result<Option<PathBuf>, BundleError> {
        let gz = self.tar.into_inner().map_err(BundleError::Finish)?;
        let mut buffered = gz.finish().map_err(BundleError::Finish)?;
        buffered.flush().map_err(BundleError::Finish)?;
        drop(buffered);
        match self.destination {
            Destination::Stdout => Ok(None),
            Destination::File {
                temp,
                handle,
                final_path,
            } => {
                handle.sync_all().map_err(BundleError::Finish)?;
                temp.persist_noclobber(&final_path).map_err(|e| {
                    if e.error.kind() == io::ErrorKind::AlreadyExists {
                        BundleError::Exists {
                            path: final_path.clone(),
                        }
                    } else {
                        BundleError::Rename {
                            path: final_path.clone(),
                            source: e.error,
                        }
                    }
                })?;
                // The rename is durable only once the directory entry is.
                if let Some(dir) = final_path.parent()
                    && let Ok(d) = File::open(if dir.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        dir
                    })
                {
                    let _ = d.sync_all();
                }
                Ok(Some(final_path))
            }
        }
    }
}

struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    xxh3: Xxh3,
    count: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.xxh3.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Lower-case hex, as `sha256sum` prints it.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;

    #[test]
    fn members_land_under_the_top_folder_with_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BundleWriter::in_dir(dir.path(), "ctdiag-n-20260101T000000Z", 0).unwrap();
        let stored = w.append_bytes("node/cpus.txt", b"4\n").unwrap();
        // `printf '4\n' | sha256sum`
        assert_eq!(
            stored.sha256,
            "7de1555df0c2700329e815b93b32c571c3ea54dc967b89e81ab73b9972b72d1d"
        );
        // `printf '4\n' | xxhsum -H2`
        assert_eq!(stored.xxh3_128, "bb72e1599b27aa41565b9450afcfefda");
        assert_eq!(stored.bytes, 2);
        let path = w.finish().unwrap().unwrap();
        let gz = GzDecoder::new(File::open(&path).unwrap());
        assert_eq!(
            gz.header().and_then(|h| h.extra()),
            Some(GZIP_MARKER),
            "the digest marker is in the gzip header"
        );
        assert_eq!(path, dir.path().join("ctdiag-n-20260101T000000Z.tar.gz"));
        let mut archive = tar::Archive::new(GzDecoder::new(File::open(&path).unwrap()));
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["ctdiag-n-20260101T000000Z/node/cpus.txt"]);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "the temporary file was renamed, not copied");
    }

    #[test]
    fn the_marker_is_the_one_the_analyzer_looks_for() {
        assert_eq!(GZIP_MARKER, ctdiag::source::GZIP_MARKER);
        assert_eq!(usize::from(GZIP_MARKER[2]), GZIP_MARKER.len() - 4);
    }

    #[test]
    fn an_abandoned_bundle_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BundleWriter::in_dir(dir.path(), "ctdiag-n-t", 0).unwrap();
        w.append_bytes("a.txt", b"x").unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_short_reader_is_an_error_not_a_corrupt_member() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BundleWriter::in_dir(dir.path(), "ctdiag-n-t", 0).unwrap();
        assert!(w.append("a.txt", &b"abc"[..], 10).is_err());
    }
}
