//! `cilium monitor --type drop` (`cilium-dbg` in newer images), counted by reason while read.
//!
//! Printer: Cilium `pkg/monitor/datapath_drop.go` `DumpInfo`/`DumpVerbose`. Shapes by era:
//! `xx drop (Policy denied (L3)) flow 0x… to endpoint 0, identity 5->7479: …` (≥ 1.5), with
//! `, , identity` and `ifindex N, file bpf_lxc.c:1274,` added later; verbose `CPU 01: MARK 0x… FROM
//! … DROP: 98 bytes, reason Policy denied, identity …`; the 2017 `Packet dropped 133 (Policy
//! denied) 98 bytes …`. The reason is the first balanced parentheses after `xx drop ` — it can
//! hold its own parentheses and, in newer builds, the kernel error (`CT: Map insertion failed,
//! -16`). The preamble (`Listening for events on 2 CPUs …`, `Press Ctrl-C to quit`) and agent log
//! lines (`level=info msg=…`) interleave and are skipped.

use super::cilium_drop::normalize;
use super::{ChunkCtx, LineProblems};
use crate::summary::{Counts, EvidenceLine, LineSample, Merge};
use std::collections::BTreeMap;

/// Drop events of one capture.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonitorSummary {
    /// Drop events read.
    pub drops: u64,
    /// Events per normalized reason.
    pub by_reason: Counts,
    /// First and last events per reason.
    pub examples: BTreeMap<String, LineSample>,
    /// The capture's preamble was seen (it is a monitor capture even with no drops).
    pub preamble: bool,
}

impl Merge for MonitorSummary {
    fn combine(&mut self, other: Self) {
        self.drops += other.drops;
        self.by_reason.combine(other.by_reason);
        for (k, v) in other.examples {
            self.examples.entry(k).or_default().combine(v);
        }
        self.preamble |= other.preamble;
    }
}

/// The content of the first balanced `( … )` at the start of `s`.
fn balanced(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('(')?;
    let mut depth = 1usize;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&rest[..i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The drop reason of a monitor line, as printed (extended error included), or `None` when the
/// line is not a drop event.
pub fn drop_reason(line: &str) -> Option<&str> {
    let line = line.trim_start();
    if let Some(rest) = line.strip_prefix("xx drop ") {
        return balanced(rest.trim_start());
    }
    if let Some(rest) = line.strip_prefix("Packet dropped ") {
        let (_, after_code) = rest.split_once(' ')?;
        return balanced(after_code);
    }
    // Verbose: `… DROP: 98 bytes, reason Policy denied, identity 5->7479, to endpoint 0`.
    if line.starts_with("CPU ")
        && let Some((_, after)) = line.split_once(", reason ")
    {
        let end = [", identity ", ", to endpoint "]
            .iter()
            .filter_map(|m| after.find(m))
            .min()
            .unwrap_or(after.len());
        return Some(after[..end].trim());
    }
    None
}

fn is_preamble(line: &str) -> bool {
    line.starts_with("Listening for events on ") || line.starts_with("Press Ctrl-C to quit")
}

/// Whether a line is a monitor drop event or its preamble (classification).
pub fn looks_like(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line);
    drop_reason(&text).is_some() || is_preamble(text.trim_start())
}

impl MonitorSummary {
    pub fn add_line(&mut self, ctx: &ChunkCtx, n: u64, raw: &[u8], problems: &mut LineProblems) {
        let text = String::from_utf8_lossy(raw);
        let line = text.trim();
        if line.is_empty() || line.starts_with("level=") || line.starts_with("time=") {
            return;
        }
        if is_preamble(line) {
            self.preamble = true;
            return;
        }
        match drop_reason(line) {
            Some(reason) => {
                let reason = normalize(reason);
                self.drops += 1;
                self.examples
                    .entry(reason.clone())
                    .or_default()
                    .push(EvidenceLine::new(&ctx.member, n, raw));
                *self.by_reason.entry(reason).or_insert(0) += 1;
            }
            // Other event types (`-> endpoint`, `>> Trace`) when the capture was not filtered.
            None if line.starts_with("->") || line.starts_with(">>") || line.starts_with("<-") => {}
            None => problems.malformed(ctx, n, "not a `cilium monitor` drop event", raw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::MemberKind;
    use crate::parse::cilium_drop::{CT_MAP_INSERT, NAT_NO_MAPPING};
    use crate::parse::{MemberSummary, parse_all};

    #[test]
    fn the_reason_is_the_first_balanced_parentheses() {
        assert_eq!(
            drop_reason(
                "xx drop (Policy denied (L3)) flow 0xdd1bea99 to endpoint 0, identity 5->7479: 10.2.1.205:38631 -> 10.2.2.169:53 udp"
            ),
            Some("Policy denied (L3)")
        );
        assert_eq!(
            drop_reason(
                "xx drop (Stale or unroutable IP) flow 0x29e44ff to endpoint 0, , identity 10977->unknown: 10.242.0.36:46958 -> 10.242.1.170:53 udp"
            ),
            Some("Stale or unroutable IP")
        );
        assert_eq!(
            drop_reason(
                "xx drop (Policy denied) flow 0xfddd76f6 to endpoint 0, ifindex 29, file bpf_lxc.c:1274, , identity 48447->world: 192.168.0.149:45830 -> 93.184.215.14:80 tcp SYN"
            ),
            Some("Policy denied")
        );
        assert_eq!(
            drop_reason(
                "xx drop (CT: Map insertion failed, -16) flow 0x0 to endpoint 0, ifindex 4, file bpf_lxc.c:1062, , identity 9->world: 10.244.1.5:40001 -> 1.1.1.1:443 tcp SYN"
            ),
            Some("CT: Map insertion failed, -16")
        );
        assert_eq!(
            drop_reason(
                "xx drop (L3 translation from IPv4 to IPv6 failed (NAT46)) flow 0x1 to endpoint 0, , identity 2->3: 10.0.0.1:1 -> 10.0.0.2:2 tcp SYN"
            ),
            Some("L3 translation from IPv4 to IPv6 failed (NAT46)")
        );
        assert_eq!(
            drop_reason(
                "Packet dropped 133 (Policy denied) 98 bytes ifindex=0 5->7479 to lxc 1585"
            ),
            Some("Policy denied")
        );
        assert_eq!(
            drop_reason(
                "CPU 01: MARK 0x0 FROM 1585 DROP: 98 bytes, reason Policy denied, identity 5->7479, to endpoint 0"
            ),
            Some("Policy denied")
        );
        assert_eq!(
            drop_reason(
                "xx drop (Policy denied (L3)) to endpoint 25729, identity 261->264: 10.11.13.37 -> 10.11.101.61 EchoRequest"
            ),
            Some("Policy denied (L3)")
        );
        assert_eq!(drop_reason("xx drop (unbalanced"), None);
        assert_eq!(drop_reason("Press Ctrl-C to quit"), None);
    }

    #[test]
    fn a_capture_counts_reasons_and_skips_preamble_and_logs() {
        let text = "Listening for events on 2 CPUs with 64x4096 of shared memory\n\
Press Ctrl-C to quit\n\
level=info msg=\"Initializing dissection cache...\" subsys=monitor\n\
xx drop (CT: Map insertion failed, -16) flow 0x0 to endpoint 0, ifindex 4, file bpf_lxc.c:1062, , identity 9->world: 10.244.1.5:40001 -> 1.1.1.1:443 tcp SYN\n\
xx drop (CT: Map insertion failed) flow 0x0 to endpoint 0, , identity 9->world: 10.244.1.5:40002 -> 1.1.1.1:443 tcp SYN\n\
xx drop (No mapping for NAT masquerade) flow 0x0 to endpoint 0, , identity 9->world: 10.244.1.5:40003 -> 1.1.1.1:443 tcp SYN\n\
garbage\n";
        let (s, p) = parse_all(
            MemberKind::CiliumMonitor,
            "cilium/monitor-drop.txt",
            text.as_bytes(),
        );
        let MemberSummary::CiliumMonitor(s) = s else {
            panic!("{s:?}")
        };
        assert!(s.preamble);
        assert_eq!(s.drops, 3);
        assert_eq!(s.by_reason[CT_MAP_INSERT], 2);
        assert_eq!(s.by_reason[NAT_NO_MAPPING], 1);
        assert_eq!(
            s.examples[CT_MAP_INSERT]
                .lines()
                .map(|l| l.line)
                .collect::<Vec<_>>(),
            [4, 5]
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, Some(7));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = drop_reason(&text);
            let _ = parse_all(MemberKind::CiliumMonitor, "m", &bytes);
        }
    }
}
