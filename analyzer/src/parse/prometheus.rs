//! Metrics: the Prometheus text exposition format (kube-proxy `:10249/metrics`, the Cilium
//! agent's `:9962/metrics`) and the agent's `cilium metrics list` table, read into one summary.
//!
//! Text format: prometheus.io "Exposition formats" (0.0.4) — `# HELP`/`# TYPE` lines (HELP text
//! prefixed `[ALPHA] ` by component-base), samples `name{label="value",…} value [timestamp_ms]`
//! with `\"` `\\` `\n` escapes in label values, an optional trailing comma, Go floats (`NaN`,
//! `+Inf`, `1e+06`), histograms as `_bucket{le=…}`/`_sum`/`_count`. Every sample line stands
//! alone, so the member is parsed in chunks like any line format. A body captured with
//! `curl … 2>&1` can carry curl's progress meter (`  % Total    % Received …`, `\r` redraws):
//! those lines are skipped.
//!
//! `cilium metrics list` (`cilium-dbg/cmd/metrics_list.go`): a `Metric  Labels  Value` header,
//! then `name  k="v" k="v"  390.000000` rows padded with spaces (label values contain spaces).
//!
//! Only the families the diagnosis reads are kept (see [`wanted`]); the rest are counted, so an
//! agent's thousands of series cost nothing.

use super::{ChunkCtx, LineProblems};
use crate::summary::{EvidenceLine, Merge};
use nom::branch::alt;
use nom::bytes::complete::{escaped_transform, is_not, tag, take_while, take_while1};
use nom::character::complete::{char, space0, space1};
use nom::combinator::{map, opt, recognize, value};
use nom::multi::separated_list0;
use nom::sequence::{delimited, preceded, separated_pair};
use nom::{IResult, Parser};
use std::collections::BTreeMap;

/// Label pairs of a series, sorted by name.
pub type Labels = Vec<(String, String)>;

/// Label pairs as parsed: names borrowed, values unescaped.
pub type RawLabels<'a> = Vec<(&'a [u8], Vec<u8>)>;

/// One kept sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub value: f64,
    /// Milliseconds since the epoch, when the exposition carries one.
    pub timestamp_ms: Option<i64>,
    pub line: EvidenceLine,
}

/// Which component a metrics member came from, by its series names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    KubeProxy,
    CiliumAgent,
    Unknown,
}

/// The kept series of one metrics member.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSummary {
    /// Metric name → labels → sample; a series printed twice keeps its first line.
    pub series: BTreeMap<String, BTreeMap<Labels, Sample>>,
    /// `# TYPE` of each kept family.
    pub types: BTreeMap<String, String>,
    /// Samples read, kept or not.
    pub samples: u64,
    /// Samples whose name starts `kubeproxy_` / `cilium_`.
    pub kube_proxy_samples: u64,
    pub cilium_samples: u64,
    /// The newest sample timestamp, ms.
    pub max_timestamp_ms: Option<i64>,
}

impl MetricsSummary {
    pub fn component(&self) -> Component {
        match (self.kube_proxy_samples, self.cilium_samples) {
            (0, 0) => Component::Unknown,
            (k, c) if k >= c => Component::KubeProxy,
            _ => Component::CiliumAgent,
        }
    }

    /// Every series of a family.
    pub fn family(&self, name: &str) -> impl Iterator<Item = (&Labels, &Sample)> {
        self.series.get(name).into_iter().flat_map(|m| m.iter())
    }

    /// The sum over every series of a family whose labels include `filter`; `None` when the family
    /// is absent.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> Option<f64> {
        let m = self.series.get(name)?;
        Some(
            m.iter()
                .filter(|(l, _)| has_labels(l, filter))
                .map(|(_, s)| s.value)
                .filter(|v| v.is_finite())
                .sum(),
        )
    }

    fn keep(
        &mut self,
        name: &str,
        labels: Labels,
        value: f64,
        ts: Option<i64>,
        line: EvidenceLine,
    ) {
        self.samples += 1;
        if name.starts_with("kubeproxy_") {
            self.kube_proxy_samples += 1;
        } else if name.starts_with("cilium_") {
            self.cilium_samples += 1;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(ts);
        if !wanted(name) {
            return;
        }
        let family = match self.series.get_mut(name) {
            Some(f) => f,
            None => self.series.entry(name.to_string()).or_default(),
        };
        family.entry(labels).or_insert(Sample {
            value,
            timestamp_ms: ts,
            line,
        });
    }
}

/// Whether a label set includes every `(name, value)` of `filter`.
pub fn has_labels(labels: &Labels, filter: &[(&str, &str)]) -> bool {
    filter
        .iter()
        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
}

/// The families the diagnosis reads.
pub fn wanted(name: &str) -> bool {
    name.starts_with("kubeproxy_")
        || name.starts_with("cilium_drop_")
        || name.starts_with("cilium_bpf_map_pressure")
        || name.starts_with("cilium_datapath_")
        || name.starts_with("cilium_forward_count_total")
}

impl Merge for MetricsSummary {
    fn combine(&mut self, other: Self) {
        for (name, series) in other.series {
            let mine = self.series.entry(name).or_default();
            for (labels, s) in series {
                match mine.get(&labels) {
                    Some(m) if m.line.line <= s.line.line => {}
                    _ => {
                        mine.insert(labels, s);
                    }
                }
            }
        }
        for (k, v) in other.types {
            self.types.entry(k).or_insert(v);
        }
        self.samples += other.samples;
        self.kube_proxy_samples += other.kube_proxy_samples;
        self.cilium_samples += other.cilium_samples;
        self.max_timestamp_ms = self.max_timestamp_ms.max(other.max_timestamp_ms);
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn metric_name(i: &[u8]) -> IResult<&[u8], &[u8]> {
    recognize((
        take_while1(|b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b':'),
        take_while(|b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
    ))
    .parse(i)
}

fn label_name(i: &[u8]) -> IResult<&[u8], &[u8]> {
    recognize((
        take_while1(|b: u8| b.is_ascii_alphabetic() || b == b'_'),
        take_while(|b: u8| b.is_ascii_alphanumeric() || b == b'_'),
    ))
    .parse(i)
}

/// `"a \"quoted\" \\ value\n"` → the unescaped bytes.
fn label_value(i: &[u8]) -> IResult<&[u8], Vec<u8>> {
    delimited(
        char('"'),
        map(
            opt(escaped_transform(
                is_not("\\\""),
                '\\',
                alt((
                    value(&b"\\"[..], tag("\\")),
                    value(&b"\""[..], tag("\"")),
                    value(&b"\n"[..], tag("n")),
                )),
            )),
            Option::unwrap_or_default,
        ),
        char('"'),
    )
    .parse(i)
}

fn label(i: &[u8]) -> IResult<&[u8], (&[u8], Vec<u8>)> {
    separated_pair(label_name, (space0, char('='), space0), label_value).parse(i)
}

/// `{a="1",b="2",}` in the text format.
fn label_set(i: &[u8]) -> IResult<&[u8], RawLabels<'_>> {
    delimited(
        (char('{'), space0),
        separated_list0((space0, char(','), space0), label),
        (space0, opt(char(',')), space0, char('}')),
    )
    .parse(i)
}

/// `k="v" k2="v 2"` in the `cilium metrics list` table (blank-separated, commas tolerated).
fn table_labels(i: &[u8]) -> IResult<&[u8], RawLabels<'_>> {
    separated_list0(
        take_while1(|b: u8| b == b' ' || b == b'\t' || b == b','),
        label,
    )
    .parse(i)
}

/// A Go float as Prometheus prints it.
fn float(raw: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(raw).ok()?;
    // Rust accepts `inf`, `+Inf`, `NaN` case-insensitively, as Go does.
    s.parse::<f64>().ok()
}

fn token(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(|b: u8| b != b' ' && b != b'\t').parse(i)
}

/// A parsed sample line, borrowed where it can be.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleLine<'a> {
    pub name: &'a [u8],
    pub labels: RawLabels<'a>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// `name{labels} value [timestamp]` (text exposition).
pub fn exposition_sample(i: &[u8]) -> Option<SampleLine<'_>> {
    let (i, name) = metric_name(i).ok()?;
    let (i, labels) = opt(preceded(space0, label_set)).parse(i).ok()?;
    let (i, raw_value) = preceded(space1, token).parse(i).ok()?;
    let value = float(raw_value)?;
    let (i, ts) = opt(preceded(space1, token)).parse(i).ok()?;
    let timestamp_ms = match ts {
        Some(t) => Some(std::str::from_utf8(t).ok()?.parse::<i64>().ok()?),
        None => None,
    };
    i.trim_ascii().is_empty().then_some(SampleLine {
        name,
        labels: labels.unwrap_or_default(),
        value,
        timestamp_ms,
    })
}

/// `name   k="v" k="v"   1.000000` (`cilium metrics list`).
pub fn table_row(line: &[u8]) -> Option<SampleLine<'_>> {
    let line = line.trim_ascii();
    let (rest, name) = metric_name(line).ok()?;
    let last_blank = memchr::memrchr2(b' ', b'\t', rest)?;
    let value = float(&rest[last_blank + 1..])?;
    let middle = rest[..last_blank].trim_ascii();
    let (left, labels) = table_labels(middle).ok()?;
    (rest.first().is_some_and(|b| *b == b' ' || *b == b'\t') && left.is_empty()).then_some(
        SampleLine {
            name,
            labels,
            value,
            timestamp_ms: None,
        },
    )
}

/// curl's progress meter, when stderr was captured with the body.
fn is_curl_meter(line: &[u8]) -> bool {
    let t = line.trim_ascii();
    let has = |n: &[u8]| memchr::memmem::find(t, n).is_some();
    (has(b"% Total") && has(b"% Received"))
        || (t.starts_with(b"Dload") && has(b"Upload"))
        // Progress rows (`100  5120 … 0:00:01 …`); no metric name starts with a digit.
        || (t.first().is_some_and(u8::is_ascii_digit) && has(b":"))
}

/// Whether a line is a metrics line (classification): a sample, `# HELP`/`# TYPE`, or a table row.
pub fn looks_like(line: &[u8]) -> bool {
    let t = line.trim_ascii();
    t.starts_with(b"# HELP ")
        || t.starts_with(b"# TYPE ")
        || exposition_sample(t).is_some_and(|s| !s.labels.is_empty() || s.name.contains(&b'_'))
        || table_row(t).is_some_and(|s| s.name.contains(&b'_'))
}

impl MetricsSummary {
    pub fn add_line(&mut self, ctx: &ChunkCtx, n: u64, raw: &[u8], problems: &mut LineProblems) {
        // A progress meter redraws with `\r`: only what follows the last one was left on screen.
        let visible = match memchr::memrchr(b'\r', raw) {
            Some(i) => &raw[i + 1..],
            None => raw,
        };
        let line = visible.trim_ascii();
        if line.is_empty() || is_curl_meter(line) {
            return;
        }
        if let Some(comment) = line.strip_prefix(b"#") {
            let mut words = comment
                .split(u8::is_ascii_whitespace)
                .filter(|w| !w.is_empty());
            if words.next() == Some(b"TYPE")
                && let (Some(name), Some(kind)) = (words.next(), words.next())
            {
                let name = String::from_utf8_lossy(name).into_owned();
                if wanted(&name) {
                    self.types
                        .entry(name)
                        .or_insert_with(|| String::from_utf8_lossy(kind).into_owned());
                }
            }
            return;
        }
        // OpenMetrics 2 quoted UTF-8 names (`{"metric.name",l="v"} 1`): tolerated, not read.
        if line.starts_with(b"{\"") || header_row(line) {
            return;
        }
        let Some(s) = exposition_sample(line).or_else(|| table_row(line)) else {
            problems.malformed(
                ctx,
                n,
                "not a metrics sample (`name{labels} value` or `name  labels  value`)",
                raw,
            );
            return;
        };
        let name = String::from_utf8_lossy(s.name).into_owned();
        let mut labels: Labels = s
            .labels
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect();
        labels.sort();
        self.keep(
            &name,
            labels,
            s.value,
            s.timestamp_ms,
            EvidenceLine::new(&ctx.member, n, visible),
        );
    }
}

/// `Metric   Labels   Value`, the `cilium metrics list` header.
fn header_row(line: &[u8]) -> bool {
    let words: Vec<&[u8]> = line
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
        .collect();
    words.len() == 3
        && words[0].eq_ignore_ascii_case(b"Metric")
        && words[1].eq_ignore_ascii_case(b"Labels")
        && words[2].eq_ignore_ascii_case(b"Value")
}

/// A quantile estimated from cumulative histogram buckets (`le` → count), as PromQL's
/// `histogram_quantile` does: linear inside the bucket that holds the rank. `None` without
/// observations; the highest finite bound when the rank falls in `+Inf`.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut b: Vec<(f64, f64)> = buckets.iter().copied().filter(|x| !x.0.is_nan()).collect();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let total = b.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lo_bound, mut lo_count) = (0.0, 0.0);
    for (bound, count) in &b {
        if *count >= rank {
            if bound.is_infinite() {
                return Some(lo_bound);
            }
            if count - lo_count <= 0.0 {
                return Some(*bound);
            }
            return Some(lo_bound + (bound - lo_bound) * (rank - lo_count) / (count - lo_count));
        }
        (lo_bound, lo_count) = (*bound, *count);
    }
    Some(lo_bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::MemberKind;
    use crate::parse::{MemberSummary, parse_all};

    fn metrics(text: &str) -> (MetricsSummary, Vec<crate::problem::Problem>) {
        match parse_all(
            MemberKind::Metrics,
            "kube-proxy/metrics.0.txt",
            text.as_bytes(),
        ) {
            (MemberSummary::Metrics(s), p) => (s, p),
            other => panic!("{other:?}"),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(&'static [u8], Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    &*Box::leak(k.as_bytes().to_vec().into_boxed_slice()),
                    v.as_bytes().to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn samples_with_escapes_timestamps_and_special_values() {
        assert_eq!(
            exposition_sample(br#"kubeproxy_sync_proxy_rules_last_timestamp_seconds 1.7641e+09"#),
            Some(SampleLine {
                name: b"kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                labels: vec![],
                value: 1.7641e9,
                timestamp_ms: None,
            })
        );
        assert_eq!(
            exposition_sample(
                br#"msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9 1395066363000"#
            ),
            Some(SampleLine {
                name: b"msdos_file_access_time_seconds",
                labels: labels(&[
                    ("path", r"C:\DIR\FILE.TXT"),
                    ("error", "Cannot find file:\n\"FILE.TXT\"")
                ]),
                value: 1.458255915e9,
                timestamp_ms: Some(1_395_066_363_000),
            })
        );
        let inf = exposition_sample(
            br#"kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="+Inf",} 4"#,
        )
        .expect("trailing comma");
        assert_eq!(inf.labels, labels(&[("le", "+Inf")]));
        let nan = exposition_sample(b"go_gc_duration_seconds{quantile=\"0\"} NaN").expect("NaN");
        assert!(nan.value.is_nan());
        assert_eq!(
            exposition_sample(b"x_y -Inf").map(|s| s.value),
            Some(f64::NEG_INFINITY)
        );
        assert_eq!(exposition_sample(b"x_y{a=\"1\" 3"), None);
        assert_eq!(exposition_sample(b"x_y 3 notatime"), None);
    }

    #[test]
    fn cilium_metrics_list_rows() {
        let row = table_row(b"cilium_drop_count_total                             direction=\"EGRESS\" reason=\"Invalid destination mac\"   26.000000").expect("row");
        assert_eq!(row.name, b"cilium_drop_count_total");
        assert_eq!(
            row.labels,
            labels(&[
                ("direction", "EGRESS"),
                ("reason", "Invalid destination mac")
            ])
        );
        assert_eq!(row.value, 26.0);
        let bare = table_row(b"cilium_endpoint_count                                                                                     2.000000").expect("no labels");
        assert!(bare.labels.is_empty());
        let numeric = table_row(b"cilium_drop_count_total                               direction=\"EGRESS\" reason=\"14\"                                                            183.000000").expect("numeric reason");
        assert_eq!(numeric.labels[1].1, b"14");
    }

    #[test]
    fn a_kube_proxy_body_with_help_type_histogram_and_curl_meter() {
        let text = "  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current\n\
\x20                                Dload  Upload   Total   Spent    Left  Speed\n\
\r  0     0    0     0    0     0      0      0 --:--:-- --:--:-- --:--:--     0\r100  5120  100  5120    0     0  1250k      0 --:--:-- --:--:-- --:--:-- 1250k\n\
# HELP kubeproxy_sync_proxy_rules_duration_seconds [ALPHA] SyncProxyRules latency in seconds\n\
# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram\n\
kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.001\"} 0\n\
kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"1.024\"} 10\n\
kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"2.048\"} 30\n\
kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"+Inf\"} 40\n\
kubeproxy_sync_proxy_rules_duration_seconds_sum 80.5\n\
kubeproxy_sync_proxy_rules_duration_seconds_count 40\n\
# HELP kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds [ALPHA] The last time a sync of proxy rules was queued\n\
# TYPE kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds gauge\n\
kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds 1.7641e+09\n\
process_cpu_seconds_total 12.5\n\
{\"kube.proxy.up\",instance=\"a\"} 1\n\
# EOF\n";
        let (s, p) = metrics(text);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.component(), Component::KubeProxy);
        assert_eq!(s.samples, 8);
        assert_eq!(
            s.types["kubeproxy_sync_proxy_rules_duration_seconds"],
            "histogram"
        );
        assert_eq!(
            s.sum(
                "kubeproxy_sync_proxy_rules_duration_seconds_bucket",
                &[("le", "+Inf")]
            ),
            Some(40.0)
        );
        assert!(!s.series.contains_key("process_cpu_seconds_total"));
        let q = s
            .series
            .get("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds")
            .and_then(|m| m.values().next())
            .expect("kept");
        assert_eq!(q.line.line, 14);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let b = [
            (0.001, 0.0),
            (1.024, 10.0),
            (2.048, 30.0),
            (f64::INFINITY, 40.0),
        ];
        assert_eq!(histogram_quantile(0.5, &b), Some(1.536));
        assert_eq!(histogram_quantile(0.9, &b), Some(2.048));
        assert_eq!(
            histogram_quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]),
            None
        );
    }

    #[test]
    fn the_agent_table_is_recognised_by_its_rows() {
        let text = "Metric                                              Labels                                                Value\n\
cilium_drop_count_total                             direction=\"EGRESS\" reason=\"CT: Map insertion failed\"   4200.000000\n\
cilium_bpf_map_pressure                             map_name=\"ct4_global\"                                  0.970000\n";
        let (s, p) = metrics(text);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.component(), Component::CiliumAgent);
        assert_eq!(
            s.sum(
                "cilium_drop_count_total",
                &[("reason", "CT: Map insertion failed")]
            ),
            Some(4200.0)
        );
        assert!(looks_like(b"cilium_bpf_map_pressure                             map_name=\"ct4_global\"                                  0.970000"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = exposition_sample(&bytes);
            let _ = table_row(&bytes);
            let _ = metrics(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn label_values_round_trip_through_escaping(v in "[ -~\n]{0,30}") {
            let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let line = format!("m_x{{a=\"{escaped}\"}} 1");
            let s = exposition_sample(line.as_bytes()).expect("sample");
            proptest::prop_assert_eq!(&s.labels[0].1, v.as_bytes());
        }
    }
}
