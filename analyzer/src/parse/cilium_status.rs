//! `cilium status --verbose` (`cilium-dbg` in newer images): kube-proxy replacement and the BPF
//! map sizes the agent runs with.
//!
//! Printer: Cilium `pkg/client/client.go` `FormatStatusResponse` — `key:\tvalue` rows aligned by
//! a tabwriter (`KubeProxyReplacement:   True   [eth0 …]`, `Strict`, `Partial`, `Disabled` in
//! older versions), and since 1.9 the map table `BPF Maps:   dynamic sizing: on (ratio: 0.002500)`
//! then `  Name  Size` and rows such as `  TCP connection tracking       294951` (1.8/1.9 printed
//! `BPF Map sizes:` and `  CT TCP  N`). Each row is recognisable on its own, so the member is
//! parsed line by line like the others.

use super::{ChunkCtx, LineProblems};
use crate::summary::{EvidenceLine, Merge};
use std::collections::BTreeMap;

/// What the status says, each with its line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusSummary {
    /// `KubeProxyReplacement:` value's first word (`True`, `Strict`, `Partial`, `False`, …).
    pub kube_proxy_replacement: Option<(String, EvidenceLine)>,
    /// `dynamic sizing: on (ratio: 0.002500)` → (on, ratio).
    pub dynamic_sizing: Option<(bool, Option<f64>, EvidenceLine)>,
    /// Map display name → size.
    pub maps: BTreeMap<String, (u64, EvidenceLine)>,
    /// Lines that looked like status rows.
    pub rows: u64,
}

/// Map display names → the setting that sizes them.
pub const MAP_SETTINGS: &[(&str, &str)] = &[
    ("TCP connection tracking", "bpf-ct-global-tcp-max"),
    ("CT TCP", "bpf-ct-global-tcp-max"),
    ("Non-TCP connection tracking", "bpf-ct-global-any-max"),
    ("CT Any", "bpf-ct-global-any-max"),
    ("NAT", "bpf-nat-global-max"),
];

fn keep_first<T>(slot: &mut Option<T>, line: u64, new: T, line_of: impl Fn(&T) -> u64) {
    if slot.as_ref().is_none_or(|s| line < line_of(s)) {
        *slot = Some(new);
    }
}

impl Merge for StatusSummary {
    fn combine(&mut self, other: Self) {
        if let Some(k) = other.kube_proxy_replacement {
            let n = k.1.line;
            keep_first(&mut self.kube_proxy_replacement, n, k, |s| s.1.line);
        }
        if let Some(d) = other.dynamic_sizing {
            let n = d.2.line;
            keep_first(&mut self.dynamic_sizing, n, d, |s| s.2.line);
        }
        for (k, v) in other.maps {
            match self.maps.get(&k) {
                Some(mine) if mine.1.line <= v.1.line => {}
                _ => {
                    self.maps.insert(k, v);
                }
            }
        }
        self.rows += other.rows;
    }
}

/// `  TCP connection tracking       294951` → (name, size).
fn map_row(line: &str) -> Option<(&str, u64)> {
    if !line.starts_with("  ") {
        return None;
    }
    let t = line.trim();
    let (name, size) = t.rsplit_once([' ', '\t'])?;
    let name = name.trim();
    let size = size.parse().ok()?;
    MAP_SETTINGS
        .iter()
        .any(|(n, _)| *n == name)
        .then_some((name, size))
}

/// `on (ratio: 0.002500)` → (true, Some(0.0025)).
fn dynamic(value: &str) -> (bool, Option<f64>) {
    let v = value.trim();
    let ratio = v
        .split_once("ratio:")
        .and_then(|(_, r)| r.trim().trim_end_matches(')').trim().parse().ok());
    (v.starts_with("on"), ratio)
}

/// Whether a line is one only a Cilium status prints (classification).
pub fn is_status_line(line: &[u8]) -> bool {
    let t = line.trim_ascii_start();
    [
        &b"KubeProxyReplacement:"[..],
        b"KubeProxyReplacement Details:",
        b"BPF Maps:",
        b"BPF Map sizes:",
        b"Cilium health daemon:",
        b"Controller Status:",
        b"Cilium:",
    ]
    .iter()
    .any(|p| t.starts_with(p))
}

impl StatusSummary {
    pub fn add_line(&mut self, ctx: &ChunkCtx, n: u64, raw: &[u8], _problems: &mut LineProblems) {
        let text = String::from_utf8_lossy(raw);
        let quote = || EvidenceLine::new(&ctx.member, n, raw);
        if let Some(v) = text.trim_start().strip_prefix("KubeProxyReplacement:") {
            self.rows += 1;
            if let Some(word) = v.split_whitespace().next() {
                keep_first(
                    &mut self.kube_proxy_replacement,
                    n,
                    (word.to_string(), quote()),
                    |s| s.1.line,
                );
            }
            return;
        }
        let t = text.trim_start();
        if let Some(v) = t
            .strip_prefix("BPF Maps:")
            .or_else(|| t.strip_prefix("BPF Map sizes:"))
        {
            self.rows += 1;
            if let Some(d) = v.trim().strip_prefix("dynamic sizing:") {
                let (on, ratio) = dynamic(d);
                keep_first(&mut self.dynamic_sizing, n, (on, ratio, quote()), |s| {
                    s.2.line
                });
            }
            return;
        }
        if let Some((name, size)) = map_row(&text) {
            self.rows += 1;
            if !self.maps.contains_key(name) {
                self.maps.insert(name.to_string(), (size, quote()));
            }
        }
        // Every other row of the status (controllers, endpoints, health) is not read.
    }

    /// The size of the map a setting governs, as the status shows it.
    pub fn size_for(&self, setting: &str) -> Option<(u64, &EvidenceLine)> {
        MAP_SETTINGS
            .iter()
            .filter(|(_, s)| *s == setting)
            .find_map(|(name, _)| self.maps.get(*name))
            .map(|(v, l)| (*v, l))
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::MemberKind;
    use crate::parse::{MemberSummary, parse_all};

    const STATUS: &str = "KVStore:                 Ok   Disabled
Kubernetes:              Ok   1.24 (v1.24.3) [linux/amd64]
KubeProxyReplacement:    Strict   [eth0 192.168.49.2 (Direct Routing)]
Host firewall:           Disabled
KubeProxyReplacement Details:
  Status:              Strict
BPF Maps:   dynamic sizing: on (ratio: 0.002500)
  Name                          Size
  Non-TCP connection tracking   147475
  TCP connection tracking       294951
  Endpoint policy               65535
  NAT                           294951
  Neighbor table                294951
Cluster health:              1/2 reachable   (2022-09-01T05:56:12Z)
";

    #[test]
    fn reads_replacement_and_map_sizes() {
        let (s, p) = parse_all(
            MemberKind::CiliumStatus,
            "cilium/status.txt",
            STATUS.as_bytes(),
        );
        assert!(p.is_empty(), "{p:?}");
        let MemberSummary::CiliumStatus(s) = s else {
            panic!("{s:?}")
        };
        assert_eq!(
            s.kube_proxy_replacement
                .as_ref()
                .map(|k| (k.0.as_str(), k.1.line)),
            Some(("Strict", 3))
        );
        assert_eq!(
            s.dynamic_sizing.as_ref().map(|d| (d.0, d.1)),
            Some((true, Some(0.0025)))
        );
        assert_eq!(
            s.size_for("bpf-ct-global-tcp-max").map(|x| x.0),
            Some(294_951)
        );
        assert_eq!(
            s.size_for("bpf-ct-global-any-max").map(|x| x.1.line),
            Some(9)
        );
        assert_eq!(s.size_for("bpf-nat-global-max").map(|x| x.0), Some(294_951));
        assert!(!s.maps.contains_key("Endpoint policy"));
    }

    #[test]
    fn the_1_9_map_sizes_block_and_a_disabled_replacement() {
        let text = "KubeProxyReplacement:   Disabled\nBPF Map sizes:\tdynamic sizing: off\n  CT TCP\t524288\n  CT Any\t262144\n";
        let (s, _) = parse_all(MemberKind::CiliumStatus, "s", text.as_bytes());
        let MemberSummary::CiliumStatus(s) = s else {
            panic!("{s:?}")
        };
        assert_eq!(
            s.kube_proxy_replacement.as_ref().map(|k| k.0.as_str()),
            Some("Disabled")
        );
        assert_eq!(
            s.dynamic_sizing.as_ref().map(|d| (d.0, d.1)),
            Some((false, None))
        );
        assert_eq!(
            s.size_for("bpf-ct-global-any-max").map(|x| x.0),
            Some(262_144)
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse_all(MemberKind::CiliumStatus, "s", &bytes);
        }
    }
}
