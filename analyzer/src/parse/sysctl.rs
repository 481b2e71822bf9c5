//! `sysctl -a` (`key = value`, multi-valued keys separated by a TAB) and single `/proc/sys` values.
//!
//! Only the keys the diagnosis reads are kept, each with the line that set it so the report can
//! quote `net.netfilter.nf_conntrack_max = 65536` at its place in the member. Lines that are not
//! `key = value` — `sysctl: permission denied on key …` and other stderr noise — are counted.

use super::{ChunkCtx, LineProblems};
use crate::summary::{EvidenceLine, Merge};
use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::space0;
use nom::combinator::rest;
use nom::sequence::{delimited, separated_pair};
use nom::{IResult, Parser};
use std::collections::BTreeMap;

/// Whether a key matters to the diagnosis.
fn wanted(key: &str) -> bool {
    key.starts_with("net.netfilter.")
        || key == "net.nf_conntrack_max"
        || key == "net.ipv4.ip_local_port_range"
        || key == "net.ipv4.tcp_tw_reuse"
        || key == "net.ipv4.tcp_fin_timeout"
        || key.starts_with("net.ipv4.vs.")
}

/// A kept value and where it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct SysctlValue {
    pub value: String,
    pub line: EvidenceLine,
}

/// The wanted keys of one member.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SysctlSummary {
    pub values: BTreeMap<String, SysctlValue>,
    /// `key = value` lines seen, wanted or not.
    pub lines: u64,
}

impl Merge for SysctlSummary {
    fn combine(&mut self, other: Self) {
        self.lines += other.lines;
        for (k, v) in other.values {
            // A key printed twice keeps its first occurrence, whatever order chunks merge in.
            match self.values.get(&k) {
                Some(mine) if mine.line.line <= v.line.line => {}
                _ => {
                    self.values.insert(k, v);
                }
            }
        }
    }
}

fn key(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(|b: u8| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b)).parse(i)
}

/// `net.netfilter.nf_conntrack_max = 262144`
pub fn entry(i: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    separated_pair(key, delimited(space0, tag("="), space0), rest).parse(i)
}

/// Whether a line is a `sysctl -a` row (classification): a dotted key, ` = `, a value.
pub fn looks_like(line: &[u8]) -> bool {
    matches!(entry(line), Ok((_, (k, _))) if k.contains(&b'.') && memchr::memmem::find(line, b" = ").is_some())
}

impl SysctlSummary {
    pub fn add_line(&mut self, ctx: &ChunkCtx, n: u64, line: &[u8], problems: &mut LineProblems) {
        if line.trim_ascii().is_empty() {
            return;
        }
        let Ok((_, (k, v))) = entry(line) else {
            problems.malformed(ctx, n, "not a `key = value` line", line);
            return;
        };
        self.lines += 1;
        // `/proc/sys`-style keys (`net/netfilter/…`) are the same keys spelled with slashes.
        let k = String::from_utf8_lossy(k).replace('/', ".");
        if wanted(&k) && !self.values.contains_key(&k) {
            let value = String::from_utf8_lossy(v).trim().to_string();
            self.values.insert(
                k,
                SysctlValue {
                    value,
                    line: EvidenceLine::new(&ctx.member, n, line),
                },
            );
        }
    }

    /// `sysctl -a` as one JSON object of key → value strings (troubleshoot.sh's
    /// `host-collectors/system/sysctl.json`, pkg/collect/host_sysctl.go). Each value's evidence
    /// is its `"key":"value"` pair, the line being the whole object.
    pub fn from_json(ctx: &ChunkCtx, data: &[u8], problems: &mut LineProblems) -> Self {
        let mut s = SysctlSummary::default();
        let map: BTreeMap<String, serde_json::Value> = match serde_json::from_slice(data) {
            Ok(m) => m,
            Err(e) => {
                problems.push(
                    crate::problem::Problem::new(
                        &*ctx.member,
                        crate::problem::Severity::Warning,
                        format!("not a JSON object of sysctl values: {e}"),
                    )
                    .at_line(ctx.first_line + e.line().saturating_sub(1) as u64),
                );
                return s;
            }
        };
        for (k, v) in map {
            s.lines += 1;
            let value = match v {
                serde_json::Value::String(v) => v,
                other => other.to_string(),
            };
            let k = k.replace('/', ".");
            if wanted(&k) {
                let quoted = format!("\"{k}\":\"{}\"", value.trim());
                s.values.insert(
                    k,
                    SysctlValue {
                        value: value.trim().to_string(),
                        line: EvidenceLine::new(&ctx.member, ctx.first_line, quoted.as_bytes()),
                    },
                );
            }
        }
        s
    }

    /// A file holding one `/proc/sys` value.
    pub fn single_value(
        ctx: &ChunkCtx,
        key: &str,
        data: &[u8],
        problems: &mut LineProblems,
    ) -> Self {
        let mut s = SysctlSummary::default();
        let mut lines =
            super::lines(data, ctx.first_line).filter(|(_, l)| !l.trim_ascii().is_empty());
        match lines.next() {
            Some((n, line)) => {
                s.lines = 1;
                s.values.insert(
                    key.to_string(),
                    SysctlValue {
                        value: String::from_utf8_lossy(line).trim().to_string(),
                        line: EvidenceLine::new(&ctx.member, n, line),
                    },
                );
            }
            None => problems.push(crate::problem::Problem::new(
                &*ctx.member,
                crate::problem::Severity::Warning,
                format!("empty; expected the value of {key}"),
            )),
        }
        for (n, line) in lines {
            problems.malformed(ctx, n, "more than one value", line);
        }
        s
    }

    /// A value as an integer (the first field of multi-valued keys).
    pub fn int(&self, key: &str) -> Option<(u64, &EvidenceLine)> {
        let v = self.values.get(key)?;
        let first = v.value.split_ascii_whitespace().next()?;
        Some((first.parse().ok()?, &v.line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::MemberKind;
    use crate::parse::{MemberSummary, parse_all};

    fn summary(text: &str) -> (SysctlSummary, Vec<crate::problem::Problem>) {
        match parse_all(MemberKind::Sysctl, "sysctl/net.txt", text.as_bytes()) {
            (MemberSummary::Sysctl(s), p) => (s, p),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_key_equals_value_with_tabbed_multi_values() {
        assert_eq!(
            entry(b"net.ipv4.ip_local_port_range = 32768\t60999"),
            Ok((
                &b""[..],
                (&b"net.ipv4.ip_local_port_range"[..], &b"32768\t60999"[..])
            ))
        );
    }

    #[test]
    fn keeps_wanted_keys_with_their_line() {
        let (s, problems) = summary(
            "net.core.somaxconn = 4096\n\
             net.netfilter.nf_conntrack_max = 262144\n\
             sysctl: permission denied on key 'net.ipv6.conf.all.stable_secret'\n\
             net.netfilter.nf_conntrack_tcp_timeout_established = 86400\n",
        );
        assert_eq!(
            s.int("net.netfilter.nf_conntrack_max")
                .map(|(v, l)| (v, l.line)),
            Some((262144, 2))
        );
        assert!(!s.values.contains_key("net.core.somaxconn"));
        assert_eq!(s.lines, 3);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(3));
    }

    #[test]
    fn a_proc_sys_file_is_one_value() {
        match parse_all(
            MemberKind::SysctlValue("net.netfilter.nf_conntrack_max".into()),
            "nf_conntrack_max",
            b"65536\n",
        ) {
            (MemberSummary::Sysctl(s), p) => {
                assert!(p.is_empty());
                assert_eq!(
                    s.int("net.netfilter.nf_conntrack_max").map(|x| x.0),
                    Some(65536)
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
