//! `netns/namespaces.txt`: the node's network namespaces as `ctdiag-collect` lists them
//! (docs/bundle-format.md, "Network namespaces"), one per line:
//! `inode=N host=0|1 pid=N comm=C pod_uid=U|- cgroup=P|- [path=P]`.
//!
//! The fields come in that order, separated by single spaces, values never contain a space (the
//! collector replaces whitespace with `_`); `-` means unknown. Fields a later collector appends
//! after these are skipped. The per-namespace statistics (`netns/<inode>/proc-stat.N.txt`) are
//! `/proc/net/stat/nf_conntrack` and parsed by [`super::conntrack_stats`], but never merged with
//! the host's: the kernel counts and limits every namespace on its own (`__nf_conntrack_alloc`).

use super::{ChunkCtx, LineProblems};
use crate::summary::{EvidenceLine, Merge};
use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::{char, digit1};
use nom::combinator::{map_res, opt};
use nom::multi::many0;
use nom::sequence::preceded;
use nom::{IResult, Parser};
use std::collections::BTreeMap;

/// Namespaces kept per listing (the collector lists at most 512).
pub const MAX_NAMESPACES: usize = 1024;

/// One line of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceLine<'a> {
    pub inode: u64,
    pub host: bool,
    /// 0 when only a bind mount holds the namespace.
    pub pid: u64,
    pub comm: Option<&'a str>,
    pub pod_uid: Option<&'a str>,
    pub cgroup: Option<&'a str>,
    pub path: Option<&'a str>,
}

/// A namespace as the summary keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub host: bool,
    pub pid: u64,
    pub comm: Option<String>,
    pub pod_uid: Option<String>,
    pub cgroup: Option<String>,
    pub path: Option<String>,
    pub line: EvidenceLine,
}

/// What one listing says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetnsSummary {
    /// Lines read as namespaces.
    pub lines: u64,
    /// Inode → namespace: the [`MAX_NAMESPACES`] smallest inodes, the host's always kept.
    pub namespaces: BTreeMap<u64, Namespace>,
    /// The host's inode.
    pub host: Option<u64>,
}

fn number(i: &[u8]) -> IResult<&[u8], u64> {
    map_res(digit1, |d: &[u8]| {
        std::str::from_utf8(d)
            .map_err(|_| ())
            .and_then(|s| s.parse::<u64>().map_err(|_| ()))
    })
    .parse(i)
}

/// A value: everything up to the next space; `-` is "unknown".
fn value(i: &[u8]) -> IResult<&[u8], Option<&str>> {
    map_res(take_while1(|b: u8| b != b' '), |v: &[u8]| {
        std::str::from_utf8(v).map(|s| (s != "-").then_some(s))
    })
    .parse(i)
}

fn host_flag(i: &[u8]) -> IResult<&[u8], bool> {
    nom::branch::alt((char('1').map(|_| true), char('0').map(|_| false))).parse(i)
}

/// ` key=value` for a field appended by a later collector: skipped.
fn extra_field(i: &[u8]) -> IResult<&[u8], ()> {
    let (i, _) = (
        char(' '),
        take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'_'),
        char('='),
        take_while1(|b: u8| b != b' '),
    )
        .parse(i)?;
    Ok((i, ()))
}

/// `inode=4026532177 host=0 pid=4200 comm=pause pod_uid=8d3f… cgroup=/kubepods.slice/… path=/run/netns/cni-1b2c`
pub fn namespace_line(i: &[u8]) -> IResult<&[u8], NamespaceLine<'_>> {
    let (i, inode) = preceded(tag("inode="), number).parse(i)?;
    let (i, host) = preceded(tag(" host="), host_flag).parse(i)?;
    let (i, pid) = preceded(tag(" pid="), number).parse(i)?;
    let (i, comm) = preceded(tag(" comm="), value).parse(i)?;
    let (i, pod_uid) = preceded(tag(" pod_uid="), value).parse(i)?;
    let (i, cgroup) = preceded(tag(" cgroup="), value).parse(i)?;
    let (i, path) = opt(preceded(tag(" path="), value)).parse(i)?;
    let (i, _) = many0(extra_field).parse(i)?;
    Ok((
        i,
        NamespaceLine {
            inode,
            host,
            pid,
            comm,
            pod_uid,
            cgroup,
            path: path.flatten(),
        },
    ))
}

/// Whether a line is a listing line (classification of a loose file).
pub fn looks_like(line: &[u8]) -> bool {
    line.starts_with(b"inode=") && memchr::memmem::find(line, b" host=").is_some()
}

impl NetnsSummary {
    /// Folds one listing line; a malformed one is a problem and the rest is read.
    pub fn add_line(&mut self, ctx: &ChunkCtx, n: u64, line: &[u8], problems: &mut LineProblems) {
        if line.trim_ascii().is_empty() {
            return;
        }
        match namespace_line(line.trim_ascii_end()) {
            Ok((b"", ns)) => {
                self.lines += 1;
                let owned = |v: Option<&str>| v.map(str::to_string);
                self.insert(
                    ns.inode,
                    Namespace {
                        host: ns.host,
                        pid: ns.pid,
                        comm: owned(ns.comm),
                        pod_uid: owned(ns.pod_uid),
                        cgroup: owned(ns.cgroup),
                        path: owned(ns.path),
                        line: EvidenceLine::new(&ctx.member, n, line),
                    },
                );
            }
            _ => problems.malformed(
                ctx,
                n,
                "not a namespace line (inode=N host=0|1 pid=N comm=… pod_uid=… cgroup=… [path=…])",
                line,
            ),
        }
    }

    fn insert(&mut self, inode: u64, ns: Namespace) {
        if ns.host {
            self.host = Some(self.host.map_or(inode, |h| h.min(inode)));
        }
        // The first line naming an inode wins, whatever order chunks merge in.
        match self.namespaces.get(&inode) {
            Some(have) if have.line <= ns.line => {}
            _ => {
                self.namespaces.insert(inode, ns);
            }
        }
        while self.namespaces.len() > MAX_NAMESPACES {
            let drop = self
                .namespaces
                .iter()
                .rev()
                .find(|(i, _)| Some(**i) != self.host)
                .map(|(i, _)| *i);
            match drop {
                Some(i) => self.namespaces.remove(&i),
                None => break,
            };
        }
    }
}

impl Merge for NetnsSummary {
    fn combine(&mut self, other: Self) {
        self.lines += other.lines;
        for (inode, ns) in other.namespaces {
            self.insert(inode, ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ctx() -> ChunkCtx {
        ChunkCtx {
            member: Arc::from("netns/namespaces.txt"),
            kind: crate::classify::MemberKind::NetnsList,
            first_line: 1,
        }
    }

    #[test]
    fn a_pod_namespace_line_with_its_bind_mount() {
        let line = b"inode=4026532177 host=0 pid=4200 comm=pause pod_uid=8d3f1e2a-4b6c-4d1e-9f00-0123456789ab cgroup=/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d3f1e2a_4b6c_4d1e_9f00_0123456789ab.slice/cri-containerd-aa01.scope path=/run/netns/cni-1b2c";
        assert_eq!(
            namespace_line(line),
            Ok((
                &b""[..],
                NamespaceLine {
                    inode: 4026532177,
                    host: false,
                    pid: 4200,
                    comm: Some("pause"),
                    pod_uid: Some("8d3f1e2a-4b6c-4d1e-9f00-0123456789ab"),
                    cgroup: Some(
                        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d3f1e2a_4b6c_4d1e_9f00_0123456789ab.slice/cri-containerd-aa01.scope"
                    ),
                    path: Some("/run/netns/cni-1b2c"),
                }
            ))
        );
    }

    #[test]
    fn the_host_line_and_unknowns_as_dashes() {
        assert_eq!(
            namespace_line(
                b"inode=4026531840 host=1 pid=1 comm=systemd pod_uid=- cgroup=/init.scope"
            ),
            Ok((
                &b""[..],
                NamespaceLine {
                    inode: 4026531840,
                    host: true,
                    pid: 1,
                    comm: Some("systemd"),
                    pod_uid: None,
                    cgroup: Some("/init.scope"),
                    path: None,
                }
            ))
        );
        assert_eq!(
            namespace_line(
                b"inode=4026532555 host=0 pid=0 comm=- pod_uid=- cgroup=- path=/run/netns/cni-9f8e"
            )
            .map(|(r, l)| (r, l.pid, l.comm, l.path)),
            Ok((&b""[..], 0, None, Some("/run/netns/cni-9f8e")))
        );
    }

    #[test]
    fn fields_a_later_collector_appends_are_skipped() {
        let (rest, l) = namespace_line(
            b"inode=7 host=0 pid=9 comm=envoy pod_uid=- cgroup=- path=/run/netns/x zone=3",
        )
        .expect("parses");
        assert_eq!((rest, l.inode, l.path), (&b""[..], 7, Some("/run/netns/x")));
    }

    #[test]
    fn a_malformed_line_is_a_problem_with_its_line_and_the_rest_is_read() {
        let mut s = NetnsSummary::default();
        let mut problems = LineProblems::default();
        let text = "inode=4026531840 host=1 pid=1 comm=systemd pod_uid=- cgroup=/\n\
                    inode=4026532177 host=maybe pid=4200 comm=pause pod_uid=- cgroup=-\n\
                    inode=4026532300 host=0 pid=5000 comm=envoy pod_uid=- cgroup=-\n";
        for (n, line) in crate::parse::lines(text.as_bytes(), 1) {
            s.add_line(&ctx(), n, line, &mut problems);
        }
        assert_eq!(s.lines, 2);
        assert_eq!(s.host, Some(4026531840));
        assert_eq!(
            s.namespaces.keys().copied().collect::<Vec<_>>(),
            [4026531840, 4026532300]
        );
        let problems = problems.into_problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(
            (problems[0].member.as_str(), problems[0].line),
            ("netns/namespaces.txt", Some(2))
        );
    }

    #[test]
    fn listing_lines_are_recognised_by_content() {
        assert!(looks_like(
            b"inode=4026532177 host=0 pid=4200 comm=pause pod_uid=- cgroup=-"
        ));
        assert!(!looks_like(b"inode 4026532177"));
    }
}
