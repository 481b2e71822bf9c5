//! Cilium configuration: `cilium config view` (cilium-cli, the `cilium-config` ConfigMap), the raw
//! ConfigMap as YAML, and `cilium-dbg config [-a]` (the agent's runtime view).
//!
//! Printers: cilium-cli `config.View` — keys sorted, `tabwriter` padding, `key<blanks>value`;
//! the ConfigMap YAML — `  key: "value"` with numbers quoted; `cilium-dbg/cmd/config.go` —
//! `"%-34s: %v"` rows, `-a` adding read-only Go field names (`CTMapEntriesGlobalTCP : 554159`,
//! durations in nanoseconds). Both spellings of a setting are mapped onto the ConfigMap key, so
//! `CTMapEntriesGlobalTCP` and `bpf-ct-global-tcp-max` are one fact. Default Helm installs have no
//! `bpf-ct-global-*` keys in the ConfigMap at all, only `bpf-map-dynamic-size-ratio`: the sizes
//! the agent chose are in its log, `config -a` and `status --verbose`.

use super::{ChunkCtx, LineProblems};
use crate::summary::{EvidenceLine, Merge};
use std::collections::BTreeMap;

/// ConfigMap keys the diagnosis reads, with the agent's Go field name for each.
const KEYS: &[(&str, &str)] = &[
    ("bpf-ct-global-tcp-max", "CTMapEntriesGlobalTCP"),
    ("bpf-ct-global-any-max", "CTMapEntriesGlobalAny"),
    ("bpf-nat-global-max", "NATMapEntriesGlobal"),
    ("bpf-map-dynamic-size-ratio", "BPFMapsDynamicSizeRatio"),
    ("kube-proxy-replacement", "KubeProxyReplacement"),
    ("conntrack-gc-interval", "ConntrackGCInterval"),
    ("conntrack-gc-max-interval", "ConntrackGCMaxInterval"),
    ("enable-bpf-masquerade", "EnableBPFMasquerade"),
];

/// The ConfigMap key of a key as printed, if the diagnosis reads it.
pub fn canonical(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .find(|(cm, go)| key.eq_ignore_ascii_case(cm) || key == *go)
        .map(|(cm, _)| *cm)
}

/// A kept value and the line it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigValue {
    pub value: String,
    pub line: EvidenceLine,
    /// Read from the agent's runtime view (`config -a` Go field names), not the ConfigMap.
    pub runtime: bool,
}

/// The wanted settings of one member.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSummary {
    /// ConfigMap key → value; a key printed twice keeps its first line.
    pub values: BTreeMap<String, ConfigValue>,
    /// `key value` lines read.
    pub lines: u64,
}

impl Merge for ConfigSummary {
    fn combine(&mut self, other: Self) {
        self.lines += other.lines;
        for (k, v) in other.values {
            match self.values.get(&k) {
                Some(mine) if mine.line.line <= v.line.line => {}
                _ => {
                    self.values.insert(k, v);
                }
            }
        }
    }
}

fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// `key  value`, `key: "value"`, `Key   : value` → (key, value).
pub fn row(line: &str) -> Option<(&str, &str)> {
    let t = line.trim();
    if t.starts_with('#') || t.starts_with("---") {
        return None;
    }
    if let Some((k, v)) = t.split_once(':')
        && is_key(k.trim())
        && (k.ends_with(' ') || v.is_empty() || v.starts_with(' '))
    {
        return Some((k.trim(), unquote(v.trim())));
    }
    let (k, v) = t.split_once([' ', '\t'])?;
    (is_key(k) && !v.trim().is_empty()).then(|| (k, unquote(v.trim())))
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        .unwrap_or(v)
}

/// Whether a line names a Cilium setting (classification: generic `key value` shapes are
/// everywhere, a known key is not).
pub fn names_a_setting(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line);
    if text.contains("Read-write configurations") || text.contains("Read-only configurations") {
        return true;
    }
    row(&text).is_some_and(|(k, _)| {
        canonical(k).is_some()
            || k.starts_with("bpf-")
            || k.starts_with("CTMapEntries")
            || k == "identity-allocation-mode"
            || k == "cluster-name"
            || k == "routing-mode"
    })
}

/// Whether a line has the `key value` shape of a config listing (classification).
pub fn looks_like(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line);
    text.trim_start().starts_with('#') || row(&text).is_some()
}

impl ConfigSummary {
    pub fn add_line(&mut self, ctx: &ChunkCtx, n: u64, raw: &[u8], problems: &mut LineProblems) {
        let text = String::from_utf8_lossy(raw);
        let t = text.trim();
        // Section banners, YAML structure (`data:`, `apiVersion: v1`), map-valued keys alone.
        if t.is_empty() || t.starts_with('#') || t.starts_with("---") {
            return;
        }
        let Some((k, v)) = row(&text) else {
            if !is_key(t) {
                problems.malformed(ctx, n, "not a `key value` configuration row", raw);
            }
            return;
        };
        self.lines += 1;
        if let Some(key) = canonical(k)
            && !self.values.contains_key(key)
        {
            self.values.insert(
                key.to_string(),
                ConfigValue {
                    value: v.to_string(),
                    line: EvidenceLine::new(&ctx.member, n, raw),
                    runtime: !k.contains('-'),
                },
            );
        }
    }

    /// An integer setting.
    pub fn int(&self, key: &str) -> Option<(u64, &EvidenceLine)> {
        let v = self.values.get(key)?;
        Some((v.value.trim().parse().ok()?, &v.line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::MemberKind;
    use crate::parse::{MemberSummary, parse_all};

    fn config(text: &str) -> (ConfigSummary, Vec<crate::problem::Problem>) {
        match parse_all(
            MemberKind::CiliumConfig,
            "cilium/config.txt",
            text.as_bytes(),
        ) {
            (MemberSummary::CiliumConfig(s), p) => (s, p),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rows_in_each_spelling() {
        assert_eq!(
            row("bpf-map-dynamic-size-ratio                        0.0025"),
            Some(("bpf-map-dynamic-size-ratio", "0.0025"))
        );
        assert_eq!(
            row("  bpf-map-dynamic-size-ratio: \"0.0025\""),
            Some(("bpf-map-dynamic-size-ratio", "0.0025"))
        );
        assert_eq!(
            row("CTMapEntriesGlobalTCP             : 554159"),
            Some(("CTMapEntriesGlobalTCP", "554159"))
        );
        assert_eq!(row("data:"), Some(("data", "")));
        assert_eq!(row("##### Read-write configurations #####"), None);
    }

    #[test]
    fn config_view_keeps_the_sizing_keys() {
        let (s, p) = config(
            "agent-not-ready-taint-key                         node.cilium.io/agent-not-ready\n\
             bpf-ct-global-any-max                             262144\n\
             bpf-ct-global-tcp-max                             524288\n\
             bpf-map-dynamic-size-ratio                        0.0025\n\
             kube-proxy-replacement                            true\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.int("bpf-ct-global-tcp-max").map(|x| x.0), Some(524_288));
        assert_eq!(s.int("bpf-ct-global-any-max").map(|x| x.1.line), Some(2));
        assert_eq!(s.values["kube-proxy-replacement"].value, "true");
        assert_eq!(s.values["bpf-map-dynamic-size-ratio"].value, "0.0025");
    }

    #[test]
    fn the_configmap_yaml_and_config_dash_a_map_to_the_same_keys() {
        let (yaml, p) = config(
            "apiVersion: v1\ndata:\n  bpf-map-dynamic-size-ratio: \"0.0025\"\n  kube-proxy-replacement: \"true\"\nkind: ConfigMap\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(yaml.values["kube-proxy-replacement"].value, "true");
        let (agent, p) = config(
            "#### Read-only configurations ####\n\
             ARPPingRefreshPeriod              : 30000000000\n\
             BPFMapsDynamicSizeRatio           : 0.0025\n\
             CTMapEntriesGlobalAny             : 277079\n\
             CTMapEntriesGlobalTCP             : 554159\n\
             NATMapEntriesGlobal               : 554159\n\
             ##### Read-write configurations #####\n\
             ConntrackAccounting               : Disabled\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            agent.int("bpf-ct-global-tcp-max").map(|x| x.0),
            Some(554_159)
        );
        assert_eq!(agent.int("bpf-nat-global-max").map(|x| x.0), Some(554_159));
        assert_eq!(
            agent.int("bpf-ct-global-any-max").map(|x| x.1.line),
            Some(4)
        );
    }

    #[test]
    fn a_known_key_identifies_the_listing() {
        assert!(names_a_setting(
            b"bpf-ct-global-tcp-max                             524288"
        ));
        assert!(names_a_setting(
            b"CTMapEntriesGlobalTCP             : 554159"
        ));
        assert!(!names_a_setting(b"MemTotal:       32831414 kB"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = config(&String::from_utf8_lossy(&bytes));
            let _ = names_a_setting(&bytes);
        }
    }
}
