//! Cilium drop reasons and `cilium bpf metrics list` (`cilium-dbg` in newer images).
//!
//! Reasons: Cilium `pkg/monitor/api/drop.go` (codes shared with `bpf/lib/common.h` and Hubble).
//! Old builds print the code instead of the text (`reason="14"`, cilium#8077) and newer monitor
//! output appends the kernel error (`CT: Map insertion failed, -16`), so every reason is reduced
//! to its text without the extended error before it is counted. Renamed reasons keep the name the
//! bundle printed.
//!
//! `bpf metrics list`: `cilium-dbg/cmd/bpf_metrics_list.go`, a tabwriter table (padding 3) with
//! the header `REASON DIRECTION PACKETS BYTES`, newer builds adding `LINE` and `FILE`. Reasons
//! contain single spaces, colons and parentheses, so columns are split on runs of two or more
//! blanks and named by the header when there is one. `-o json` prints
//! `[{"reason":155,"description":"CT: Map insertion failed","values":{"egress":{"packets":N,…}}}]`.
//! An empty map prints `No entries found.` (on stderr; a `2>&1` capture has it). The member is
//! small and its JSON form is one document, so it is parsed whole.

use super::{ChunkCtx, LineProblems};
use crate::summary::EvidenceLine;
use std::collections::BTreeMap;

/// `DROP_CT_CREATE_FAILED` (155): an insert into a CT map failed — the map is full, or (with an
/// extended error like `-16`) the update raced.
pub const CT_MAP_INSERT: &str = "CT: Map insertion failed";
/// `DROP_NAT_NO_MAPPING` (167): no NAT mapping could be made — the NAT map or the port range
/// ran out.
pub const NAT_NO_MAPPING: &str = "No mapping for NAT masquerade";

/// Code → text, `pkg/monitor/api/drop.go` (Cilium 1.20-pre).
const REASONS: &[(u8, &str)] = &[
    (0, "Success"),
    (2, "Invalid packet"),
    (3, "Interface"),
    (4, "Interface Decrypted"),
    (5, "LB, sock cgroup: No backend slot entry found"),
    (6, "LB, sock cgroup: No backend entry found"),
    (7, "LB, sock cgroup: Reverse entry update failed"),
    (8, "LB, sock cgroup: Reverse entry stale"),
    (9, "Fragmented packet"),
    (10, "Fragmented packet entry update failed"),
    (11, "Missed tail call to custom program"),
    (12, "Interface Decrypting"),
    (13, "Interface Encrypting"),
    (14, "LB: sock cgroup: Reverse entry delete succeeded"),
    (15, "MTU error message"),
    (130, "Invalid source mac"),
    (131, "Invalid destination mac"),
    (132, "Invalid source ip"),
    (133, "Policy denied"),
    (134, "Invalid packet"),
    (135, "CT: Truncated or invalid header"),
    (136, "Fragmentation needed"),
    (137, "CT: Unknown L4 protocol"),
    (138, "CT: Can't create entry from packet"),
    (139, "Unsupported L3 protocol"),
    (140, "Missed tail call"),
    (141, "Error writing to packet"),
    (142, "Unknown L4 protocol"),
    (143, "Unknown ICMPv4 code"),
    (144, "Unknown ICMPv4 type"),
    (145, "Unknown ICMPv6 code"),
    (146, "Unknown ICMPv6 type"),
    (147, "Error retrieving tunnel key"),
    (148, "Error retrieving tunnel options"),
    (149, "Invalid Geneve option"),
    (150, "Unknown L3 target address"),
    (151, "Stale or unroutable IP"),
    (152, "No matching local container found"),
    (153, "Error while correcting L3 checksum"),
    (154, "Error while correcting L4 checksum"),
    (155, CT_MAP_INSERT),
    (156, "Invalid IPv6 extension header"),
    (157, "IP fragmentation not supported"),
    (158, "Service backend not found"),
    (160, "No tunnel/encapsulation endpoint (datapath BUG!)"),
    (161, "NAT 46/64 not enabled"),
    (162, "Reached EDT rate-limiting drop horizon"),
    (163, "Unknown connection tracking state"),
    (164, "Local host is unreachable"),
    (165, "No configuration available to perform policy decision"),
    (166, "Unsupported L2 protocol"),
    (167, NAT_NO_MAPPING),
    (168, "Unsupported protocol for NAT masquerade"),
    (169, "FIB lookup failed"),
    (170, "Encapsulation traffic is prohibited"),
    (171, "Invalid identity"),
    (172, "Unknown sender"),
    (173, "NAT not needed"),
    (174, "Is a ClusterIP"),
    (175, "First logical datagram fragment not found"),
    (176, "Forbidden ICMPv6 message"),
    (177, "Denied by LB src range check"),
    (178, "Socket lookup failed"),
    (179, "Socket assign failed"),
    (180, "Proxy redirection not supported for protocol"),
    (181, "Policy denied by denylist"),
    (182, "VLAN traffic disallowed by VLAN filter"),
    (183, "Incorrect VNI from VTEP"),
    (184, "Failed to update or lookup TC buffer"),
    (185, "No SID was found for the IP address"),
    (186, "SRv6 state was removed during tail call"),
    (187, "L3 translation from IPv4 to IPv6 failed (NAT46)"),
    (188, "L3 translation from IPv6 to IPv4 failed (NAT64)"),
    (189, "Authentication required"),
    (190, "No conntrack map found"),
    (191, "No nat map found"),
    (192, "Invalid ClusterID"),
    (193, "Unsupported packet protocol for DSR encapsulation"),
    (194, "No egress gateway found"),
    (195, "Traffic is unencrypted"),
    (196, "TTL exceeded"),
    (197, "No node ID found"),
    (198, "Rate limited"),
    (199, "IGMP handled"),
    (200, "IGMP subscribed"),
    (201, "Multicast handled"),
    (202, "Host datapath not ready"),
    (203, "Endpoint policy program not available"),
    (204, "No Egress IP configured"),
    (205, "Punt to proxy"),
    (206, "No device"),
    (207, "First logical datagram fragment not found from world"),
];

/// The text of a numeric reason; unknown codes stay numbers, as Cilium prints them.
pub fn reason_name(code: u64) -> String {
    REASONS
        .iter()
        .find(|(c, _)| u64::from(*c) == code)
        .map(|(_, n)| (*n).to_string())
        .unwrap_or_else(|| code.to_string())
}

/// A reason as printed → its text without the extended error, numbers mapped to text.
///
/// `CT: Map insertion failed, -16` → `CT: Map insertion failed`; `155` → the same; `14, -1` → the
/// text of 14.
pub fn normalize(reason: &str) -> String {
    let reason = reason.trim();
    let base = match reason.rsplit_once(", ") {
        Some((head, ext)) if is_integer(ext) => head.trim(),
        _ => reason,
    };
    match base.parse::<u64>() {
        Ok(code) => reason_name(code),
        Err(_) => base.to_string(),
    }
}

fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Packets and bytes dropped for one reason, summed over directions, and the rows that say so.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReasonCounts {
    pub packets: u64,
    pub bytes: u64,
    pub lines: Vec<EvidenceLine>,
}

/// One `bpf metrics list` sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BpfMetricsSummary {
    /// Drop reason (normalized) → counters. `Success` is forwarded traffic, kept for scale.
    pub by_reason: BTreeMap<String, ReasonCounts>,
    /// Rows read.
    pub rows: u64,
    /// The map was empty (`No entries found.`).
    pub empty: bool,
}

impl BpfMetricsSummary {
    /// Packets dropped for `reason` (absent reason: 0 — the table lists every reason seen).
    pub fn packets(&self, reason: &str) -> u64 {
        self.by_reason.get(reason).map(|c| c.packets).unwrap_or(0)
    }

    fn add(&mut self, reason: &str, packets: u64, bytes: u64, line: Option<EvidenceLine>) {
        self.rows += 1;
        let c = self.by_reason.entry(normalize(reason)).or_default();
        c.packets += packets;
        c.bytes += bytes;
        if let Some(l) = line
            && c.lines.len() < 4
        {
            c.lines.push(l);
        }
    }
}

/// Splits a table row on runs of two or more blanks (reasons hold single spaces).
pub(crate) fn columns(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let (mut start, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        let blank = |b: u8| b == b' ' || b == b'\t';
        if blank(bytes[i]) {
            let run_start = i;
            while i < bytes.len() && blank(bytes[i]) {
                i += 1;
            }
            if i - run_start >= 2 || bytes[run_start] == b'\t' {
                out.push(line[start..run_start].trim());
                start = i;
            }
        } else {
            i += 1;
        }
    }
    out.push(line[start..].trim());
    out.retain(|c| !c.is_empty());
    out
}

/// Column positions of the table, from its header or the 2019 default order.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Layout {
    reason: usize,
    packets: usize,
    bytes: usize,
    width: usize,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            reason: 0,
            packets: 2,
            bytes: 3,
            width: 4,
        }
    }
}

fn header(cols: &[&str]) -> Option<Layout> {
    let pos = |n: &str| cols.iter().position(|c| c.eq_ignore_ascii_case(n));
    Some(Layout {
        reason: pos("REASON")?,
        packets: pos("PACKETS")?,
        bytes: pos("BYTES")?,
        width: cols.len(),
    })
}

/// Whether a line is a `bpf metrics list` header or row (classification).
pub fn looks_like(line: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    let cols = columns(text);
    if header(&cols).is_some() {
        return true;
    }
    let numeric = |s: &&str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (cols.len() == 4 || cols.len() == 6)
        && cols.get(1).is_some_and(|d| {
            ["ingress", "egress", "unknown"]
                .iter()
                .any(|w| d.eq_ignore_ascii_case(w))
        })
        && cols.get(2).is_some_and(numeric)
        && cols.get(3).is_some_and(numeric)
}

/// Parses a whole member, table or `-o json`.
pub fn parse(ctx: &ChunkCtx, data: &[u8], problems: &mut LineProblems) -> BpfMetricsSummary {
    let text = String::from_utf8_lossy(data);
    if text.trim_start().starts_with('[') {
        return parse_json(ctx, &text, problems);
    }
    let mut s = BpfMetricsSummary::default();
    let mut layout = Layout::default();
    for (n, raw) in super::lines(data, ctx.first_line) {
        let line = String::from_utf8_lossy(raw);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("level=") {
            continue;
        }
        if trimmed.starts_with("No entries found") {
            s.empty = true;
            continue;
        }
        let cols = columns(&line);
        if let Some(h) = header(&cols) {
            layout = h;
            continue;
        }
        let num = |i: usize| cols.get(i).and_then(|c| c.parse::<u64>().ok());
        match (
            cols.get(layout.reason),
            num(layout.packets),
            num(layout.bytes),
        ) {
            (Some(reason), Some(p), Some(b)) if cols.len() >= layout.width.min(4) => {
                s.add(reason, p, b, Some(EvidenceLine::new(&ctx.member, n, raw)));
            }
            _ => problems.malformed(
                ctx,
                n,
                "not a `bpf metrics list` row (REASON  DIRECTION  PACKETS  BYTES)",
                raw,
            ),
        }
    }
    s
}

fn parse_json(ctx: &ChunkCtx, text: &str, problems: &mut LineProblems) -> BpfMetricsSummary {
    let mut s = BpfMetricsSummary::default();
    let rows: Vec<serde_json::Value> = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(crate::problem::Problem::new(
                &*ctx.member,
                crate::problem::Severity::Warning,
                format!("`bpf metrics list -o json` is not a JSON array of rows: {e}"),
            ));
            return s;
        }
    };
    for row in &rows {
        let reason = match (
            row.get("description").and_then(|d| d.as_str()),
            row.get("reason"),
        ) {
            (Some(d), _) if !d.is_empty() => d.to_string(),
            (_, Some(r)) => r
                .as_u64()
                .map(|c| c.to_string())
                .unwrap_or_else(|| r.to_string()),
            _ => continue,
        };
        let (mut packets, mut bytes) = (0u64, 0u64);
        if let Some(values) = row.get("values").and_then(|v| v.as_object()) {
            for dir in values.values() {
                packets += dir.get("packets").and_then(|p| p.as_u64()).unwrap_or(0);
                bytes += dir.get("bytes").and_then(|p| p.as_u64()).unwrap_or(0);
            }
        }
        // The line that names the reason, for the report to quote.
        let needle = format!("\"{reason}\"");
        let line = super::lines(text.as_bytes(), ctx.first_line)
            .find(|(_, l)| memchr::memmem::find(l, needle.as_bytes()).is_some())
            .map(|(n, l)| EvidenceLine::new(&ctx.member, n, l));
        s.add(&reason, packets, bytes, line);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::MemberKind;
    use crate::parse::{MemberSummary, parse_all};

    fn bpf(text: &str) -> (BpfMetricsSummary, Vec<crate::problem::Problem>) {
        match parse_all(
            MemberKind::CiliumBpfMetrics,
            "cilium/metrics.0.txt",
            text.as_bytes(),
        ) {
            (MemberSummary::CiliumBpfMetrics(s), p) => (s, p),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reasons_lose_their_extended_error_and_codes_become_text() {
        assert_eq!(normalize("CT: Map insertion failed, -16"), CT_MAP_INSERT);
        assert_eq!(normalize("155"), CT_MAP_INSERT);
        assert_eq!(normalize("167, -7"), NAT_NO_MAPPING);
        assert_eq!(normalize("Policy denied (L3)"), "Policy denied (L3)");
        assert_eq!(
            normalize("LB, sock cgroup: No backend entry found"),
            "LB, sock cgroup: No backend entry found"
        );
        assert_eq!(normalize("250"), "250");
    }

    #[test]
    fn columns_split_on_runs_of_blanks_only() {
        assert_eq!(
            columns("Not a local target address   Ingress     169955    12580214"),
            [
                "Not a local target address",
                "Ingress",
                "169955",
                "12580214"
            ]
        );
        assert_eq!(
            columns("CT: Map insertion failed\tEGRESS\t12\t840"),
            ["CT: Map insertion failed", "EGRESS", "12", "840"]
        );
    }

    #[test]
    fn the_2019_table_sums_directions_per_reason() {
        let (s, p) = bpf("REASON                       DIRECTION   PACKETS   BYTES\n\
             Not a local target address   Ingress     169955    12580214\n\
             CT: Map insertion failed     Egress      4000      280000\n\
             CT: Map insertion failed     Ingress     200       14000\n\
             Success                      Egress      9123456   812345678\n");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.rows, 4);
        assert_eq!(s.packets(CT_MAP_INSERT), 4200);
        assert_eq!(s.by_reason[CT_MAP_INSERT].bytes, 294_000);
        assert_eq!(
            s.by_reason[CT_MAP_INSERT]
                .lines
                .iter()
                .map(|l| l.line)
                .collect::<Vec<_>>(),
            [3, 4]
        );
        assert_eq!(s.packets("Not a local target address"), 169_955);
    }

    #[test]
    fn the_newer_table_with_line_and_file_columns_and_numeric_reasons() {
        let (s, p) = bpf(
            "REASON                          DIRECTION   PACKETS   BYTES      LINE   FILE\n\
             155                             EGRESS      31        2170       1062   bpf_lxc.c\n\
             No mapping for NAT masquerade   EGRESS      77        5390       412    nodeport.h\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.packets(CT_MAP_INSERT), 31);
        assert_eq!(s.packets(NAT_NO_MAPPING), 77);
    }

    #[test]
    fn an_empty_map_and_log_noise_are_not_problems() {
        let (s, p) = bpf(
            "level=warning msg=\"Removing map to allow for property upgrade (expect map data loss)\" file-path=/sys/fs/bpf/tc/globals/cilium_metrics subsys=map\nNo entries found.\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert!(s.empty);
        assert_eq!(s.rows, 0);
    }

    #[test]
    fn the_json_form_is_read_with_its_lines() {
        let (s, p) = bpf(
            "[\n  {\n    \"reason\": 155,\n    \"description\": \"CT: Map insertion failed\",\n    \"values\": {\"egress\": {\"packets\": 12, \"bytes\": 840}, \"ingress\": {\"packets\": 3, \"bytes\": 210}}\n  }\n]\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.packets(CT_MAP_INSERT), 15);
        assert_eq!(s.by_reason[CT_MAP_INSERT].lines[0].line, 4);
    }

    #[test]
    fn malformed_rows_are_problems() {
        let (s, p) = bpf("REASON   DIRECTION   PACKETS   BYTES\nsomething odd\n");
        assert_eq!(s.rows, 0);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, Some(2));
    }

    #[test]
    fn looks_like_recognises_rows_and_headers() {
        assert!(looks_like(
            b"REASON                       DIRECTION   PACKETS   BYTES"
        ));
        assert!(looks_like(
            b"Not a local target address   Ingress     169955    12580214"
        ));
        assert!(!looks_like(b"net.netfilter.nf_conntrack_max = 262144"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = bpf(&String::from_utf8_lossy(&bytes));
            let _ = looks_like(&bytes);
            let _ = normalize(&String::from_utf8_lossy(&bytes));
        }
    }
}
