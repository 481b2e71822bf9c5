//! Spool files: where a source's output lands before it goes into the bundle. A tar header needs
//! the member's size before its bytes, and a 10⁶-entry conntrack table is hundreds of megabytes,
//! so output is written to an anonymous temporary file (gone when dropped, even on a crash) and
//! streamed into the archive from there. The cap lives here so every producer obeys it the same way.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

/// An anonymous temporary file that keeps at most `cap` bytes of what is written to it.
#[derive(Debug)]
pub struct Spool {
    file: File,
    bytes: u64,
    cap: u64,
    truncated: bool,
}

impl Spool {
    /// A new empty spool in `dir` (same filesystem as the bundle, so space is checked once).
    pub fn new(dir: &Path, cap: u64) -> io::Result<Spool> {
        Ok(Spool {
            file: tempfile::tempfile_in(dir)?,
            bytes: 0,
            cap,
            truncated: false,
        })
    }

    /// Appends what fits under the cap; returns `false` once bytes had to be dropped, so the
    /// producer can stop instead of reading a stream it will throw away. Filling the spool exactly
    /// is not truncation: only a byte offered past the cap proves something was lost.
    pub fn write_capped(&mut self, buf: &[u8]) -> io::Result<bool> {
        let room = self.cap.saturating_sub(self.bytes);
        let take = usize::try_from(room).map_or(buf.len(), |r| r.min(buf.len()));
        self.file.write_all(&buf[..take])?;
        self.bytes += take as u64;
        if take < buf.len() {
            self.truncated = true;
        }
        Ok(!self.truncated)
    }

    /// Bytes kept so far.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// True once something was thrown away because of the cap.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The file, positioned at its start, with its length and truncation flag.
    pub fn finish(mut self) -> io::Result<(File, u64, bool)> {
        self.file.flush()?;
        self.file.seek(SeekFrom::Start(0))?;
        Ok((self.file, self.bytes, self.truncated))
    }
}

/// Writes through the cap; bytes past it are dropped and counted as truncation, so producers
/// built on `write!` need no special case.
impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_capped(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn keeps_bytes_up_to_the_cap_and_marks_the_rest_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path(), 10).unwrap();
        assert!(s.write_capped(b"12345").unwrap());
        assert!(!s.write_capped(b"6789abcdef").unwrap());
        let (mut f, len, truncated) = s.finish().unwrap();
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        assert_eq!((text.as_str(), len, truncated), ("123456789a", 10, true));
    }

    #[test]
    fn filling_exactly_to_the_cap_is_not_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path(), 4).unwrap();
        assert!(s.write_capped(b"1234").unwrap());
        assert!(!s.truncated());
        assert!(!s.write_capped(b"5").unwrap());
        assert!(s.truncated());
    }
}
