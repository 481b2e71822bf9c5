//! What the node is: `uname -a`, `/etc/os-release`, `/proc/meminfo`, the CPU count (`nproc` or
//! `/proc/cpuinfo`) and `/proc/uptime`. Small inputs, read whole; they size the table (the kernel
//! default scales with RAM, kube-proxy's with CPUs) and date the kernel log (uptime).

use super::{ChunkCtx, LineProblems};
use crate::classify::NodeField;
use crate::summary::{EvidenceLine, Merge};

/// Node facts from one or more description members.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSummary {
    pub hostname: Option<String>,
    pub kernel: Option<String>,
    pub os: Option<String>,
    pub cpus: Option<(u64, EvidenceLine)>,
    pub mem_total_bytes: Option<(u64, EvidenceLine)>,
    pub mem_available_bytes: Option<u64>,
    pub uptime_seconds: Option<(f64, EvidenceLine)>,
}

impl Merge for NodeSummary {
    fn combine(&mut self, other: Self) {
        self.hostname = self.hostname.take().or(other.hostname);
        self.kernel = self.kernel.take().or(other.kernel);
        self.os = self.os.take().or(other.os);
        // `nproc` beats a count of cpuinfo blocks: it is what the collector asks for.
        self.cpus = self.cpus.take().or(other.cpus);
        self.mem_total_bytes = self.mem_total_bytes.take().or(other.mem_total_bytes);
        self.mem_available_bytes = self.mem_available_bytes.or(other.mem_available_bytes);
        self.uptime_seconds = self.uptime_seconds.take().or(other.uptime_seconds);
    }
}

/// Whether the first lines are `/proc/meminfo`.
pub fn is_meminfo(lines: &[&[u8]]) -> bool {
    lines.iter().take(3).any(|l| l.starts_with(b"MemTotal:"))
}

/// Whether the first lines are `/proc/cpuinfo`.
pub fn is_cpuinfo(lines: &[&[u8]]) -> bool {
    lines
        .first()
        .is_some_and(|l| l.starts_with(b"processor") && l.contains(&b':'))
}

/// Whether the first lines are `/etc/os-release`.
pub fn is_os_release(lines: &[&[u8]]) -> bool {
    let assignments = lines
        .iter()
        .filter(|l| {
            let eq = l.iter().position(|b| *b == b'=');
            eq.is_some_and(|i| i > 0 && l[..i].iter().all(|b| b.is_ascii_uppercase() || *b == b'_'))
        })
        .count();
    assignments == lines.len()
        && lines.iter().any(|l| {
            l.starts_with(b"ID=") || l.starts_with(b"NAME=") || l.starts_with(b"PRETTY_NAME=")
        })
}

/// `Linux worker-3 6.1.0-28-cloud-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22) x86_64 GNU/Linux`
pub fn is_uname(line: &[u8]) -> bool {
    line.starts_with(b"Linux ")
        && line
            .split(u8::is_ascii_whitespace)
            .filter(|w| !w.is_empty())
            .count()
            >= 3
}

/// `350735.47 234388.90`
pub fn is_uptime(line: &[u8]) -> bool {
    let words: Vec<&[u8]> = line
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
        .collect();
    words.len() == 2
        && words
            .iter()
            .all(|w| std::str::from_utf8(w).is_ok_and(|t| t.parse::<f64>().is_ok()))
}

/// Parses a whole node-description member.
pub fn parse(
    field: NodeField,
    ctx: &ChunkCtx,
    data: &[u8],
    problems: &mut LineProblems,
) -> NodeSummary {
    let mut s = NodeSummary::default();
    let lines = || super::lines(data, ctx.first_line).filter(|(_, l)| !l.trim_ascii().is_empty());
    let text = |l: &[u8]| String::from_utf8_lossy(l).trim().to_string();
    match field {
        NodeField::Uname => {
            if let Some((n, l)) = lines().next() {
                let words: Vec<String> = l
                    .split(u8::is_ascii_whitespace)
                    .filter(|w| !w.is_empty())
                    .map(text)
                    .collect();
                match words.as_slice() {
                    [sys, host, release, ..] if sys == "Linux" => {
                        s.hostname = Some(host.clone());
                        s.kernel = Some(release.clone());
                    }
                    // `uname -r` alone.
                    [release] if release.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
                        s.kernel = Some(release.clone())
                    }
                    _ => problems.malformed(ctx, n, "not `uname -a` output", l),
                }
            }
        }
        NodeField::OsRelease => {
            let mut name = None;
            for (_, l) in lines() {
                let t = text(l);
                if let Some(v) = t.strip_prefix("PRETTY_NAME=") {
                    s.os = Some(v.trim_matches('"').to_string());
                } else if let Some(v) = t.strip_prefix("NAME=") {
                    name = Some(v.trim_matches('"').to_string());
                }
            }
            s.os = s.os.or(name);
        }
        NodeField::Meminfo => {
            for (n, l) in lines() {
                let t = text(l);
                let Some((key, rest)) = t.split_once(':') else {
                    problems.malformed(ctx, n, "not a `Key: value kB` line", l);
                    continue;
                };
                let mut words = rest.split_ascii_whitespace();
                let value = words.next().and_then(|v| v.parse::<u64>().ok());
                let scale = match words.next() {
                    Some("kB") => 1024,
                    _ => 1,
                };
                match (key, value) {
                    ("MemTotal", Some(v)) => {
                        s.mem_total_bytes = Some((v * scale, EvidenceLine::new(&ctx.member, n, l)))
                    }
                    ("MemAvailable", Some(v)) => s.mem_available_bytes = Some(v * scale),
                    (_, Some(_)) => {}
                    (_, None) => problems.malformed(ctx, n, "value is not a number", l),
                }
            }
        }
        NodeField::Cpus => {
            if let Some((n, l)) = lines().next() {
                match text(l).parse::<u64>() {
                    Ok(c) if c > 0 => s.cpus = Some((c, EvidenceLine::new(&ctx.member, n, l))),
                    _ => problems.malformed(ctx, n, "not a CPU count", l),
                }
            }
        }
        NodeField::Cpuinfo => {
            let mut count = 0;
            let mut first = None;
            for (n, l) in lines() {
                if l.starts_with(b"processor") {
                    count += 1;
                    first.get_or_insert_with(|| EvidenceLine::new(&ctx.member, n, l));
                }
            }
            if let Some(line) = first {
                s.cpus = Some((count, line));
            }
        }
        NodeField::Uptime => {
            if let Some((n, l)) = lines().next() {
                match text(l)
                    .split_ascii_whitespace()
                    .next()
                    .and_then(|w| w.parse::<f64>().ok())
                {
                    Some(u) if u.is_finite() && u >= 0.0 => {
                        s.uptime_seconds = Some((u, EvidenceLine::new(&ctx.member, n, l)))
                    }
                    _ => problems.malformed(ctx, n, "not `/proc/uptime` (seconds since boot)", l),
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::MemberKind;
    use crate::parse::{MemberSummary, parse_all};

    fn node(field: NodeField, text: &str) -> NodeSummary {
        match parse_all(MemberKind::Node(field), "node/x.txt", text.as_bytes()) {
            (MemberSummary::Node(s), p) => {
                assert!(p.is_empty(), "{p:?}");
                s
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn uname_gives_host_and_kernel() {
        let s = node(
            NodeField::Uname,
            "Linux worker-3 6.1.0-28-cloud-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22) x86_64 GNU/Linux\n",
        );
        assert_eq!(s.hostname.as_deref(), Some("worker-3"));
        assert_eq!(s.kernel.as_deref(), Some("6.1.0-28-cloud-amd64"));
    }

    #[test]
    fn meminfo_is_in_bytes() {
        let s = node(
            NodeField::Meminfo,
            "MemTotal:       32831414 kB\nMemFree:         1046520 kB\nMemAvailable:   20000000 kB\nHugePages_Total:       0\n",
        );
        assert_eq!(s.mem_total_bytes.map(|m| m.0), Some(32_831_414 * 1024));
        assert_eq!(s.mem_available_bytes, Some(20_000_000 * 1024));
    }

    #[test]
    fn cpuinfo_counts_processors_and_uptime_reads_the_first_field() {
        let s = node(
            NodeField::Cpuinfo,
            "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\nmodel name\t: x\n",
        );
        assert_eq!(s.cpus.map(|c| c.0), Some(2));
        let u = node(NodeField::Uptime, "350735.47 234388.90\n");
        assert_eq!(u.uptime_seconds.map(|u| u.0), Some(350735.47));
    }

    #[test]
    fn os_release_prefers_pretty_name() {
        let s = node(
            NodeField::OsRelease,
            "NAME=\"Ubuntu\"\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nID=ubuntu\n",
        );
        assert_eq!(s.os.as_deref(), Some("Ubuntu 22.04.4 LTS"));
    }
}
