//! `ipvsadm -Lcn` (IPVS connection entries, kube-proxy's IPVS mode) and kube-proxy's
//! `/proxyMode` answer.
//!
//! `ipvsadm -Lcn`: ipvsadm `list_conn`/`print_conn` over `/proc/net/ip_vs_conn` — a title
//! `IPVS connection entries`, a header `pro expire state source virtual destination`, then
//! `%-3s %-6s %-11s %-18s %-18s %s` rows: protocol, `MM:SS` until expiry (minutes uncapped), the
//! state (patched FULLNAT kernels print hex there), client, virtual service, real server.
//!
//! `/proxyMode` (kube-proxy `:10249/proxyMode`): one word, `iptables`, `ipvs`, `nftables`
//! (`kernelspace` on Windows).

use super::{ChunkCtx, LineProblems};
use crate::summary::{Counts, EvidenceLine, Merge};

/// IPVS connection entries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IpvsSummary {
    pub entries: u64,
    pub by_state: Counts,
    pub by_proto: Counts,
    /// The `IPVS connection entries` title or the column header was seen.
    pub header: bool,
}

impl Merge for IpvsSummary {
    fn combine(&mut self, other: Self) {
        self.entries += other.entries;
        self.by_state.combine(other.by_state);
        self.by_proto.combine(other.by_proto);
        self.header |= other.header;
    }
}

/// `MM:SS` → seconds.
fn expiry(s: &str) -> Option<u64> {
    let (m, sec) = s.split_once(':')?;
    // Minutes are not capped by ipvsadm, and a crafted row can hold any number: never overflow.
    m.parse::<u64>()
        .ok()?
        .checked_mul(60)?
        .checked_add(sec.parse::<u64>().ok()?)
}

/// A connection row → (proto, seconds to expiry, state).
pub fn row(line: &str) -> Option<(&str, u64, &str)> {
    let w: Vec<&str> = line.split_whitespace().collect();
    if w.len() < 6 {
        return None;
    }
    let proto = w[0];
    if !proto
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return None;
    }
    let secs = expiry(w[1])?;
    // Endpoints are `addr:port` or `[v6]:port`.
    w[3..6]
        .iter()
        .all(|e| e.contains(':'))
        .then_some((proto, secs, w[2]))
}

fn is_header(t: &str) -> bool {
    t.starts_with("IPVS connection entries") || (t.starts_with("pro ") && t.contains("expire"))
}

/// Whether a line is `ipvsadm -Lcn` output (classification).
pub fn looks_like(line: &[u8]) -> bool {
    let t = String::from_utf8_lossy(line);
    is_header(t.trim()) || row(&t).is_some()
}

impl IpvsSummary {
    pub fn add_line(&mut self, ctx: &ChunkCtx, n: u64, raw: &[u8], problems: &mut LineProblems) {
        let text = String::from_utf8_lossy(raw);
        let t = text.trim();
        if t.is_empty() {
            return;
        }
        if is_header(t) {
            self.header = true;
            return;
        }
        match row(t) {
            Some((proto, _, state)) => {
                self.entries += 1;
                *self.by_proto.entry(proto.to_string()).or_insert(0) += 1;
                *self.by_state.entry(state.to_string()).or_insert(0) += 1;
            }
            None => problems.malformed(ctx, n, "not an `ipvsadm -Lcn` connection row", raw),
        }
    }
}

/// kube-proxy's mode.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyModeSummary {
    pub mode: Option<(String, EvidenceLine)>,
}

/// The modes `/proxyMode` answers.
pub const MODES: &[&str] = &["iptables", "ipvs", "nftables", "kernelspace"];

/// Whether a one-line file is a `/proxyMode` answer (classification).
pub fn is_proxy_mode(line: &[u8]) -> bool {
    let t = String::from_utf8_lossy(line);
    MODES.contains(&t.trim())
}

impl ProxyModeSummary {
    pub fn add_line(&mut self, ctx: &ChunkCtx, n: u64, raw: &[u8], problems: &mut LineProblems) {
        let text = String::from_utf8_lossy(raw);
        let t = text.trim();
        if t.is_empty() {
            return;
        }
        if MODES.contains(&t) && self.mode.is_none() {
            self.mode = Some((t.to_string(), EvidenceLine::new(&ctx.member, n, raw)));
        } else {
            problems.malformed(
                ctx,
                n,
                "not a kube-proxy mode (iptables, ipvs, nftables)",
                raw,
            );
        }
    }
}

impl Merge for ProxyModeSummary {
    fn combine(&mut self, other: Self) {
        if let Some(m) = other.mode
            && self.mode.as_ref().is_none_or(|s| m.1.line < s.1.line)
        {
            self.mode = Some(m);
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_absurd_expiry_is_not_a_row_and_does_not_overflow() {
        // Regression (fuzzing): minutes * 60 overflowed u64.
        assert_eq!(
            row(
                "TCP 99999999999999999999999999999999999:59 ESTABLISHED 10.0.0.1:1 10.96.0.1:443 10.0.0.10:6443"
            ),
            None
        );
        assert_eq!(expiry("307445734561825860:59"), None);
        assert_eq!(expiry("14:59"), Some(899));
    }

    use super::*;
    use crate::classify::MemberKind;
    use crate::parse::{MemberSummary, parse_all};

    #[test]
    fn rows_with_mm_ss_expiry() {
        assert_eq!(
            row(
                "TCP 00:01  C0A8C86D    192.168.0.109:36519 192.168.0.120:8080 192.168.200.108:23536"
            ),
            Some(("TCP", 1, "C0A8C86D"))
        );
        assert_eq!(
            row("TCP 14:59  ESTABLISHED 10.244.1.5:40000    10.96.0.1:443      10.0.0.10:6443"),
            Some(("TCP", 899, "ESTABLISHED"))
        );
        assert_eq!(
            row("pro expire state       source             virtual            destination"),
            None
        );
    }

    #[test]
    fn a_listing_counts_states() {
        let text = "IPVS connection entries\n\
pro expire state       source             virtual            destination\n\
TCP 14:59  ESTABLISHED 10.244.1.5:40000   10.96.0.1:443      10.0.0.10:6443\n\
TCP 01:40  TIME_WAIT   10.244.1.5:40001   10.96.0.20:80      10.244.2.7:8080\n\
UDP 04:58  UDP         10.244.1.5:53000   10.96.0.10:53      10.244.0.5:53\n";
        let (s, p) = parse_all(
            MemberKind::IpvsConnections,
            "ipvs/connections.txt",
            text.as_bytes(),
        );
        assert!(p.is_empty(), "{p:?}");
        let MemberSummary::Ipvs(s) = s else {
            panic!("{s:?}")
        };
        assert!(s.header);
        assert_eq!(s.entries, 3);
        assert_eq!(s.by_state["TIME_WAIT"], 1);
        assert_eq!(s.by_proto["UDP"], 1);
    }

    #[test]
    fn proxy_mode_is_one_word() {
        let (s, p) = parse_all(
            MemberKind::KubeProxyMode,
            "kube-proxy/proxy-mode.txt",
            b"ipvs",
        );
        assert!(p.is_empty());
        let MemberSummary::ProxyMode(s) = s else {
            panic!("{s:?}")
        };
        assert_eq!(
            s.mode.map(|m| (m.0, m.1.line)),
            Some(("ipvs".to_string(), 1))
        );
        assert!(is_proxy_mode(b"nftables\n"));
        assert!(!is_proxy_mode(b"userspace mode"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse_all(MemberKind::IpvsConnections, "i", &bytes);
            let _ = parse_all(MemberKind::KubeProxyMode, "k", &bytes);
        }
    }
}
