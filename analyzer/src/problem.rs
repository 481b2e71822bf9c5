//! Inputs that could not be read, kept as data: a broken line or member never aborts the analysis,
//! it is listed in the report with its location so the reader can judge what was lost.

use serde::Serialize;
use std::fmt;

/// How much a problem costs the analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something odd that did not lose data (an unknown file, a skipped symlink).
    Note,
    /// Part of the input was lost (malformed lines, a truncated member).
    Warning,
    /// A whole member or the rest of the bundle could not be read.
    Error,
}

/// One input that could not be (fully) read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Bundle-relative member path, or the bundle itself for archive-level faults. Serialized
    /// as `path`, the name the JSON contract uses.
    #[serde(rename = "path")]
    pub member: String,
    /// 1-based line number, where the problem is on one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub severity: Severity,
    pub reason: String,
    /// The start of the offending line, escaped for display (never more than 120 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
    /// How many more lines had the same problem (the first few are kept, the rest counted).
    #[serde(skip_serializing_if = "is_zero")]
    pub more: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Problem {
    pub fn new(member: impl Into<String>, severity: Severity, reason: impl Into<String>) -> Self {
        Problem {
            member: member.into(),
            line: None,
            severity,
            reason: reason.into(),
            excerpt: None,
            more: 0,
        }
    }

    pub fn at_line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }

    pub fn with_excerpt(mut self, raw: &[u8]) -> Self {
        self.excerpt = Some(excerpt(raw));
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.member, line, self.reason)?,
            None => write!(f, "{}: {}", self.member, self.reason)?,
        }
        if let Some(ex) = &self.excerpt {
            write!(f, ": {ex:?}")?;
        }
        if self.more > 0 {
            write!(f, " (and {} more like it)", self.more)?;
        }
        Ok(())
    }
}

/// Text of a hostile line made safe to store: lossy UTF-8, control characters escaped, capped.
pub fn excerpt(raw: &[u8]) -> String {
    const MAX: usize = 120;
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len().min(MAX + 3));
    for (n, c) in text.chars().enumerate() {
        if n == MAX {
            out.push('…');
            break;
        }
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_escapes_control_bytes_and_caps_length() {
        assert_eq!(excerpt(b"a\x00b\x1b[31m"), "a\\u{0}b\\u{1b}[31m");
        let long = vec![b'x'; 500];
        assert_eq!(excerpt(&long).chars().count(), 121);
    }

    #[test]
    fn display_names_member_and_line() {
        let p = Problem::new(
            "conntrack/list.txt",
            Severity::Warning,
            "unrecognized entry",
        )
        .at_line(7)
        .with_excerpt(b"garbage");
        assert_eq!(
            p.to_string(),
            "conntrack/list.txt:7: unrecognized entry: \"garbage\""
        );
    }
}
