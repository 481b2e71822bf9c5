//! cilium-agent log: the map sizes dynamic sizing chose, and how the CT garbage collector paces
//! itself.
//!
//! Sources: Cilium `pkg/option/config.go` (`option %s set by dynamic sizing to %d`, after
//! `Memory available for map entries (…% of NB): NB`; cilium#25518, cilium#17371) and the CT GC
//! (`pkg/maps/ctmap/gc`): `Conntrack garbage collector interval recalculated` with
//! `deleteRatio=… newInterval=7m30s` in logrus (≤ 1.16, `level=info msg="…" subsys=map-ct`) and
//! slog text (1.17+, `time=… level=info msg="…" module=…`). The messages are searched for in
//! the line, so both log formats and `kubectl logs` prefixes read the same. An agent restarts with
//! new sizes, so the latest line wins.

use super::{ChunkCtx, LineProblems};
use crate::summary::{EvidenceLine, LineSample, Merge};
use std::collections::BTreeMap;

/// The last GC interval recalculation.
#[derive(Debug, Clone, PartialEq)]
pub struct GcRecalc {
    /// Share of entries the last run deleted.
    pub delete_ratio: Option<f64>,
    /// The interval the GC chose next, seconds.
    pub new_interval_seconds: Option<f64>,
    pub line: EvidenceLine,
}

/// What one agent log says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentLogSummary {
    pub lines: u64,
    /// Setting (`bpf-ct-global-tcp-max`, …) → size chosen by dynamic sizing; the latest line wins.
    pub dynamic: BTreeMap<String, (u64, EvidenceLine)>,
    /// `Conntrack garbage collector interval recalculated` lines.
    pub gc_recalculated: LineSample,
    pub last_gc: Option<GcRecalc>,
}

impl Merge for AgentLogSummary {
    fn combine(&mut self, other: Self) {
        self.lines += other.lines;
        for (k, v) in other.dynamic {
            match self.dynamic.get(&k) {
                Some(mine) if mine.1.line >= v.1.line => {}
                _ => {
                    self.dynamic.insert(k, v);
                }
            }
        }
        self.gc_recalculated.combine(other.gc_recalculated);
        if let Some(g) = other.last_gc
            && self
                .last_gc
                .as_ref()
                .is_none_or(|m| m.line.line < g.line.line)
        {
            self.last_gc = Some(g);
        }
    }
}

/// `option bpf-ct-global-tcp-max set by dynamic sizing to 287994` → (key, size).
pub fn dynamic_size(line: &str) -> Option<(&str, u64)> {
    let (_, after) = line.split_once("option ")?;
    let (key, rest) = after.split_once(" set by dynamic sizing to ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((key.trim(), digits.parse().ok()?))
}

/// The value of `key=` in a logfmt line (quoted or bare).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!(" {key}=");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    match rest.strip_prefix('"') {
        Some(q) => q.split_once('"').map(|(v, _)| v),
        None => Some(rest.split_whitespace().next().unwrap_or("")),
    }
}

/// A Go `time.Duration` string (`7m30s`, `5m0.002279235s`, `12h0m0s`, `500ms`) in seconds.
pub fn go_duration(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = s.trim().chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(u) = chars
            .peek()
            .copied()
            .filter(|u| u.is_ascii_alphabetic() || *u == 'µ')
        {
            unit.push(u);
            chars.next();
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        any = true;
    }
    (any && num.is_empty()).then_some(total)
}

/// Whether a line is an agent log line (classification).
pub fn looks_like(line: &[u8]) -> bool {
    let has = |n: &[u8]| memchr::memmem::find(line, n).is_some();
    (has(b"level=") && has(b"msg=")) || has(b"set by dynamic sizing to")
}

impl AgentLogSummary {
    pub fn add_line(&mut self, ctx: &ChunkCtx, n: u64, raw: &[u8], _problems: &mut LineProblems) {
        if raw.trim_ascii().is_empty() {
            return;
        }
        self.lines += 1;
        let text = String::from_utf8_lossy(raw);
        let quote = || EvidenceLine::new(&ctx.member, n, raw);
        if let Some((key, size)) = dynamic_size(&text) {
            match self.dynamic.get(key) {
                Some(mine) if mine.1.line >= n => {}
                _ => {
                    self.dynamic.insert(key.to_string(), (size, quote()));
                }
            }
            return;
        }
        if text.contains("Conntrack garbage collector interval recalculated") {
            self.gc_recalculated.push(quote());
            let g = GcRecalc {
                delete_ratio: field(&text, "deleteRatio").and_then(|v| v.parse().ok()),
                new_interval_seconds: field(&text, "newInterval").and_then(go_duration),
                line: quote(),
            };
            if self.last_gc.as_ref().is_none_or(|m| m.line.line < n) {
                self.last_gc = Some(g);
            }
        }
        // Everything else an agent logs is not read; log lines are never malformed.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::MemberKind;
    use crate::parse::{MemberSummary, parse_all};

    #[test]
    fn dynamic_sizing_lines_in_both_log_formats() {
        assert_eq!(
            dynamic_size(
                "level=info msg=\"option bpf-ct-global-tcp-max set by dynamic sizing to 287994\" subsys=config"
            ),
            Some(("bpf-ct-global-tcp-max", 287_994))
        );
        assert_eq!(
            dynamic_size(
                "time=2026-01-04T08:58:20Z level=info msg=\"option bpf-nat-global-max set by dynamic sizing to 131072\" module=agent"
            ),
            Some(("bpf-nat-global-max", 131_072))
        );
        assert_eq!(
            dynamic_size(
                "level=info msg=\"Memory available for map entries (0.003% of 32831414272B): 82078535B\" subsys=config"
            ),
            None
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("7m30s"), Some(450.0));
        assert_eq!(go_duration("12h0m0s"), Some(43_200.0));
        assert_eq!(go_duration("500ms"), Some(0.5));
        assert!((go_duration("5m0.002279235s").unwrap_or(0.0) - 300.002_279_235).abs() < 1e-9);
        assert_eq!(go_duration("soon"), None);
        assert_eq!(go_duration("10"), None);
    }

    #[test]
    fn a_log_keeps_the_latest_sizes_and_gc_pace() {
        let text = "level=info msg=\"Memory available for map entries (0.003% of 32831414272B): 82078535B\" subsys=config\n\
level=info msg=\"option bpf-ct-global-tcp-max set by dynamic sizing to 287994\" subsys=config\n\
level=info msg=\"option bpf-ct-global-any-max set by dynamic sizing to 143997\" subsys=config\n\
level=info msg=\"Conntrack garbage collector interval recalculated\" actualPrevInterval=5m0.002279235s adjustedDeleteRatio=0.25 deleteRatio=0.25 expectedPrevInterval=5m0s newInterval=3m20s subsys=map-ct\n\
level=info msg=\"option bpf-ct-global-tcp-max set by dynamic sizing to 300000\" subsys=config\n\
time=2026-01-04T08:58:26.906111111Z level=info msg=\"Conntrack garbage collector interval recalculated\" module=agent.datapath.maps.ct-nat-map-gc expectedPrevInterval=5m0s actualPrevInterval=5m0.002279235s newInterval=7m30s deleteRatio=0.0123\n";
        let (s, p) = parse_all(
            MemberKind::CiliumAgentLog,
            "cilium/agent-log.txt",
            text.as_bytes(),
        );
        assert!(p.is_empty(), "{p:?}");
        let MemberSummary::CiliumAgentLog(s) = s else {
            panic!("{s:?}")
        };
        assert_eq!(s.lines, 6);
        assert_eq!(
            s.dynamic
                .iter()
                .map(|(k, v)| (k.as_str(), v.0, v.1.line))
                .collect::<Vec<_>>(),
            [
                ("bpf-ct-global-any-max", 143_997, 3),
                ("bpf-ct-global-tcp-max", 300_000, 5)
            ]
        );
        assert_eq!(s.gc_recalculated.total, 2);
        let g = s.last_gc.expect("gc");
        assert_eq!(
            (g.delete_ratio, g.new_interval_seconds, g.line.line),
            (Some(0.0123), Some(450.0), 6)
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = go_duration(&text);
            let _ = dynamic_size(&text);
            let _ = parse_all(MemberKind::CiliumAgentLog, "l", &bytes);
        }
    }
}
