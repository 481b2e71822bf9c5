//! kube-proxy's `:10249/metrics` (v1.29, iptables mode) and `:10249/proxyMode`.
//!
//! The metric set is `pkg/proxy/metrics/metrics.go` of that release (no `ip_family` label yet),
//! each HELP prefixed with the stability level by component-base (`[ALPHA] `), plus the Go
//! runtime, process, build-info and REST-client families every Kubernetes component exports.
//! Values are written as Prometheus' Go client writes them (`1.7639052123456788e+09`).

use crate::cilium::{Family, prometheus_text};

/// kube-proxy's counters and gauges at one sample.
#[derive(Debug, Clone)]
pub struct ProxySample {
    /// Unix seconds of the last successful sync and of the last queued one.
    pub last_applied: f64,
    pub last_queued: f64,
    /// Observations per bucket of the sync-duration histogram (0.001·2^n s, n = 0..14), not
    /// cumulative; and their sum in seconds.
    pub sync_buckets: [u64; 15],
    pub sync_sum: f64,
    /// The same for full and partial syncs.
    pub full_buckets: [u64; 15],
    pub full_sum: f64,
    pub endpoint_changes_pending: u64,
    pub endpoint_changes_total: u64,
    pub service_changes_pending: u64,
    pub service_changes_total: u64,
    pub restore_failures: u64,
    pub healthz_200: u64,
    pub healthz_503: u64,
    pub livez_200: u64,
    pub rules_filter: u64,
    pub rules_nat: u64,
    /// Network-programming latency observations (seconds each).
    pub programming: Vec<f64>,
    pub cpu_seconds: f64,
    pub rss: u64,
    pub open_fds: u64,
    pub start_time: f64,
    pub goroutines: u64,
    pub rest_get_200: u64,
    pub rest_put_200: u64,
    pub rest_watch_200: u64,
}

/// `prometheus.ExponentialBuckets(0.001, 2, 15)`.
fn sync_bounds() -> Vec<f64> {
    (0..15).map(|n| 0.001 * f64::from(1u32 << n)).collect()
}

/// The network-programming buckets: 0, then 0.25 and 0.5, 1..59, 60..115 by 5, 120..300 by 30.
fn programming_bounds() -> Vec<f64> {
    let mut b = vec![0.0, 0.25, 0.5];
    b.extend((1..=59).map(f64::from));
    b.extend((0..12).map(|i| 60.0 + 5.0 * f64::from(i)));
    b.extend((0..7).map(|i| 120.0 + 30.0 * f64::from(i)));
    b
}

fn histogram(
    name: &'static str,
    help: &'static str,
    bounds: &[f64],
    counts: &[u64],
    sum: f64,
) -> Vec<Family> {
    let mut cumulative = 0;
    let mut buckets: Vec<(Vec<(&'static str, String)>, f64)> = Vec::new();
    for (b, c) in bounds.iter().zip(counts) {
        cumulative += c;
        buckets.push((vec![("le", crate::gofmt::go_float(*b))], cumulative as f64));
    }
    buckets.push((vec![("le", "+Inf".into())], cumulative as f64));
    // One family in the exposition: buckets in bound order, then _sum and _count.
    vec![Family {
        name,
        help,
        kind: "histogram",
        samples: buckets
            .into_iter()
            .chain([
                (vec![("__sum", String::new())], sum),
                (vec![("__count", String::new())], cumulative as f64),
            ])
            .collect(),
    }]
}

/// `GET /metrics`.
pub fn metrics(s: &ProxySample) -> String {
    let bounds = sync_bounds();
    let mut families: Vec<Family> = Vec::new();
    let counter = |name, help, v: f64| Family {
        name,
        help,
        kind: "counter",
        samples: vec![(vec![], v)],
    };
    let gauge = |name, help, v: f64| Family {
        name,
        help,
        kind: "gauge",
        samples: vec![(vec![], v)],
    };
    families.push(gauge(
        "go_goroutines",
        "Number of goroutines that currently exist.",
        s.goroutines as f64,
    ));
    families.push(gauge("go_threads", "Number of OS threads created.", 9.0));
    families.push(Family {
        name: "kubeproxy_proxy_healthz_total",
        help: "[ALPHA] Cumulative proxy healthz HTTP status",
        kind: "counter",
        samples: [("200", s.healthz_200), ("503", s.healthz_503)]
            .into_iter()
            .filter(|(_, v)| *v > 0)
            .map(|(c, v)| (vec![("code", c.to_string())], v as f64))
            .collect(),
    });
    families.push(Family {
        name: "kubeproxy_proxy_livez_total",
        help: "[ALPHA] Cumulative proxy livez HTTP status",
        kind: "counter",
        samples: vec![(vec![("code", "200".to_string())], s.livez_200 as f64)],
    });
    families.push(gauge(
        "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
        "[ALPHA] Pending proxy rules Endpoint changes",
        s.endpoint_changes_pending as f64,
    ));
    families.push(counter(
        "kubeproxy_sync_proxy_rules_endpoint_changes_total",
        "[ALPHA] Cumulative proxy rules Endpoint changes",
        s.endpoint_changes_total as f64,
    ));
    families.push(Family {
        name: "kubeproxy_sync_proxy_rules_iptables_last",
        help: "[ALPHA] Number of iptables rules written by kube-proxy in last sync",
        kind: "gauge",
        samples: vec![
            (vec![("table", "filter".to_string())], 9.0),
            (vec![("table", "nat".to_string())], 31.0),
        ],
    });
    families.push(counter(
        "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
        "[ALPHA] Cumulative proxy iptables partial restore failures",
        0.0,
    ));
    families.push(counter(
        "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
        "[ALPHA] Cumulative proxy iptables restore failures",
        s.restore_failures as f64,
    ));
    families.push(Family {
        name: "kubeproxy_sync_proxy_rules_iptables_total",
        help: "[ALPHA] Total number of iptables rules owned by kube-proxy",
        kind: "gauge",
        samples: vec![
            (vec![("table", "filter".to_string())], s.rules_filter as f64),
            (vec![("table", "nat".to_string())], s.rules_nat as f64),
        ],
    });
    families.push(gauge(
        "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
        "[ALPHA] The last time a sync of proxy rules was queued",
        s.last_queued,
    ));
    families.push(gauge(
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
        "[ALPHA] The last time proxy rules were successfully synced",
        s.last_applied,
    ));
    families.push(Family {
        name: "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
        help: "[ALPHA] Number of services with a Local traffic policy and no endpoints",
        kind: "gauge",
        samples: vec![
            (vec![("traffic_policy", "external".to_string())], 0.0),
            (vec![("traffic_policy", "internal".to_string())], 0.0),
        ],
    });
    families.push(gauge(
        "kubeproxy_sync_proxy_rules_service_changes_pending",
        "[ALPHA] Pending proxy rules Service changes",
        s.service_changes_pending as f64,
    ));
    families.push(counter(
        "kubeproxy_sync_proxy_rules_service_changes_total",
        "[ALPHA] Cumulative proxy rules Service changes",
        s.service_changes_total as f64,
    ));
    families.push(Family {
        name: "kubernetes_build_info",
        help: "[ALPHA] A metric with a constant '1' value labeled by major, minor, git version, git commit, git tree state, build date, Go version, and compiler from which Kubernetes was built, and platform on which it is running.",
        kind: "gauge",
        samples: vec![(
            vec![
                ("build_date", "2024-10-22T20:26:28Z".to_string()),
                ("compiler", "gc".to_string()),
                ("git_commit", "0bfd1dd2ed3fb4f3e0ee3b8dd7cdc6e4a27d0e9f".to_string()),
                ("git_tree_state", "clean".to_string()),
                ("git_version", "v1.29.10".to_string()),
                ("go_version", "go1.22.8".to_string()),
                ("major", "1".to_string()),
                ("minor", "29".to_string()),
                ("platform", "linux/amd64".to_string()),
            ],
            1.0,
        )],
    });
    families.push(counter(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        s.cpu_seconds,
    ));
    families.push(gauge(
        "process_max_fds",
        "Maximum number of open file descriptors.",
        1_048_576.0,
    ));
    families.push(gauge(
        "process_open_fds",
        "Number of open file descriptors.",
        s.open_fds as f64,
    ));
    families.push(gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        s.rss as f64,
    ));
    families.push(gauge(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        s.start_time,
    ));
    families.push(Family {
        name: "rest_client_requests_total",
        help: "[ALPHA] Number of HTTP requests, partitioned by status code, method, and host.",
        kind: "counter",
        samples: [
            ("GET", s.rest_get_200),
            ("PUT", s.rest_put_200),
            ("WATCH", s.rest_watch_200),
        ]
        .into_iter()
        .map(|(m, v)| {
            (
                vec![
                    ("code", "200".to_string()),
                    ("host", "10.0.0.5:6443".to_string()),
                    ("method", m.to_string()),
                ],
                v as f64,
            )
        })
        .collect(),
    });
    let mut text = prometheus_text(families);
    // Histograms are written apart (bucket order is by bound, not by label text) and spliced
    // in where their names sort.
    let partial: Vec<u64> = s
        .sync_buckets
        .iter()
        .zip(&s.full_buckets)
        .map(|(a, b)| a - b)
        .collect();
    let mut prog_counts = vec![0u64; programming_bounds().len()];
    for v in &s.programming {
        if let Some(i) = programming_bounds().iter().position(|b| v <= b) {
            prog_counts[i] += 1;
        }
    }
    let hists = [
        histogram(
            "kubeproxy_network_programming_duration_seconds",
            "[ALPHA] In Cluster Network Programming Latency in seconds",
            &programming_bounds(),
            &prog_counts,
            s.programming.iter().sum(),
        ),
        histogram(
            "kubeproxy_sync_full_proxy_rules_duration_seconds",
            "[ALPHA] SyncProxyRules latency in seconds for full resyncs",
            &bounds,
            &s.full_buckets,
            s.full_sum,
        ),
        histogram(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "[ALPHA] SyncProxyRules latency in seconds for partial resyncs",
            &bounds,
            &partial,
            s.sync_sum - s.full_sum,
        ),
        histogram(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "[ALPHA] SyncProxyRules latency in seconds",
            &bounds,
            &s.sync_buckets,
            s.sync_sum,
        ),
    ];
    for fams in hists {
        for f in fams {
            let block = histogram_text(&f);
            let at = text
                .match_indices("# HELP ")
                .map(|(i, _)| i)
                .find(|&i| text[i + 7..].split(' ').next().unwrap_or("") > f.name)
                .unwrap_or(text.len());
            text.insert_str(at, &block);
        }
    }
    text
}

fn histogram_text(f: &Family) -> String {
    let mut out = format!(
        "# HELP {} {}\n# TYPE {} histogram\n",
        f.name, f.help, f.name
    );
    for (labels, v) in &f.samples {
        let v = crate::gofmt::go_float(*v);
        match labels[0].0 {
            "__sum" => out.push_str(&format!("{}_sum {v}\n", f.name)),
            "__count" => out.push_str(&format!("{}_count {v}\n", f.name)),
            _ => out.push_str(&format!(
                "{}_bucket{{le=\"{}\"}} {v}\n",
                f.name, labels[0].1
            )),
        }
    }
    out
}

/// `GET /proxyMode`: the mode, no newline (`fmt.Fprintf(w, "%s", proxyMode)`).
pub fn proxy_mode() -> &'static str {
    "iptables"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_sit_in_name_order_with_cumulative_buckets() {
        let mut b = [0u64; 15];
        b[3] = 5;
        b[6] = 2;
        let s = ProxySample {
            last_applied: 1_763_905_212.345_678_8,
            last_queued: 1_763_905_500.25,
            sync_buckets: b,
            sync_sum: 0.4,
            full_buckets: [0; 15],
            full_sum: 0.0,
            endpoint_changes_pending: 3,
            endpoint_changes_total: 40,
            service_changes_pending: 0,
            service_changes_total: 12,
            restore_failures: 0,
            healthz_200: 10,
            healthz_503: 2,
            livez_200: 10,
            rules_filter: 12,
            rules_nat: 90,
            programming: vec![0.8, 1.2],
            cpu_seconds: 12.5,
            rss: 41_000_000,
            open_fds: 14,
            start_time: 1_763_000_000.5,
            goroutines: 60,
            rest_get_200: 5,
            rest_put_200: 1,
            rest_watch_200: 30,
        };
        let t = metrics(&s);
        assert!(t.contains("# HELP kubeproxy_sync_proxy_rules_duration_seconds [ALPHA] SyncProxyRules latency in seconds\n# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram\n"));
        assert!(t.contains("kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.008\"} 5\n"));
        assert!(t.contains("kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"+Inf\"} 7\nkubeproxy_sync_proxy_rules_duration_seconds_sum 0.4\nkubeproxy_sync_proxy_rules_duration_seconds_count 7\n"));
        assert!(t.contains(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds 1.7639052123456788e+09\n"
        ));
        let names: Vec<&str> = t
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap_or(""))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }
}
