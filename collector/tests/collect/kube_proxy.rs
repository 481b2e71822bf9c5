//! The kube-proxy client against a real HTTP server on 127.0.0.1: a std `TcpListener` in a test
//! thread answering with real kube-proxy metric text (kube-proxy itself cannot run here), framed
//! the ways Go's net/http frames it, plus a server that accepts and never answers.

use crate::util::{Bundle, collect_into, quick, refs, run, stderr};
use ctdiag_collect::http::{self, HttpError};
use ctdiag_collect::spool::Spool;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

/// Metric text as kube-proxy v1.30 serves it (HELP with the stability prefix, a histogram,
/// gauges with labels).
const METRICS: &str = "\
# HELP kubeproxy_sync_proxy_rules_duration_seconds [ALPHA] SyncProxyRules latency in seconds
# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram
kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.001\"} 0
kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.002\"} 3
kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"+Inf\"} 12
kubeproxy_sync_proxy_rules_duration_seconds_sum 0.0913
kubeproxy_sync_proxy_rules_duration_seconds_count 12
# HELP kubeproxy_sync_proxy_rules_last_timestamp_seconds [ALPHA] The last time proxy rules were successfully synced
# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge
kubeproxy_sync_proxy_rules_last_timestamp_seconds 1.7643e+09
# HELP kubeproxy_sync_proxy_rules_no_local_endpoints_total [ALPHA] Number of services with a Local traffic policy and no endpoints
# TYPE kubeproxy_sync_proxy_rules_no_local_endpoints_total gauge
kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy=\"external\"} 0
kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy=\"internal\"} 0
";

#[derive(Clone, Copy)]
enum Framing {
    Length,
    Chunked,
    Close,
}

/// Serves `connections` requests: `/metrics` with METRICS, `/proxyMode` with `iptables`, else 404.
fn serve(framing: Framing, connections: usize) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        for _ in 0..connections {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let path = read_request_path(&mut conn);
            let (status, body) = match path.as_str() {
                "/metrics" => ("200 OK", METRICS.to_string()),
                "/proxyMode" => ("200 OK", "iptables".to_string()),
                _ => ("404 Not Found", "404 page not found\n".to_string()),
            };
            let head = format!("HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n");
            let _ = match framing {
                Framing::Length => {
                    write!(conn, "{head}Content-Length: {}\r\n\r\n{body}", body.len())
                }
                Framing::Close => write!(conn, "{head}Connection: close\r\n\r\n{body}"),
                Framing::Chunked => {
                    let mut out = format!("{head}Transfer-Encoding: chunked\r\n\r\n");
                    for piece in body.as_bytes().chunks(100) {
                        out.push_str(&format!(
                            "{:x}\r\n{}\r\n",
                            piece.len(),
                            String::from_utf8_lossy(piece)
                        ));
                    }
                    out.push_str("0\r\n\r\n");
                    conn.write_all(out.as_bytes())
                }
            };
        }
    });
    (base, handle)
}

fn read_request_path(conn: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

fn get(url: &str, timeout: Duration) -> (Result<http::Response, HttpError>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::new(dir.path(), 1 << 20).unwrap();
    let result = http::get(url, timeout, &mut spool);
    let (mut file, _, _) = spool.finish().unwrap();
    let mut body = String::new();
    file.read_to_string(&mut body).unwrap();
    (result, body)
}

#[test]
fn reads_metrics_framed_by_length_by_chunks_and_by_close() {
    for framing in [Framing::Length, Framing::Chunked, Framing::Close] {
        let (base, server) = serve(framing, 1);
        let (result, body) = get(&format!("{base}/metrics"), Duration::from_secs(10));
        assert_eq!(result.unwrap().status, 200);
        assert_eq!(body, METRICS);
        server.join().unwrap();
    }
}

#[test]
fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let holder = std::thread::spawn(move || {
        // Accept and hold the connection open without a byte of response.
        let conn = listener.accept().map(|(c, _)| c);
        std::thread::sleep(Duration::from_secs(3));
        drop(conn);
    });
    let (result, body) = get(&url, Duration::from_secs(1));
    assert!(matches!(result, Err(HttpError::Timeout(1))), "{result:?}");
    assert_eq!(result.unwrap_err().to_string(), "timed out after 1s");
    assert!(body.is_empty());
    holder.join().unwrap();
}

#[test]
fn the_collector_samples_kube_proxy_metrics_and_reads_the_proxy_mode() {
    // Two samples of /metrics plus /proxyMode.
    let (base, server) = serve(Framing::Chunked, 3);
    let dir = tempfile::tempdir().unwrap();
    let args = quick(&[
        "--kube-proxy-url",
        &base,
        "--samples",
        "2",
        "--interval",
        "0.1",
    ]);
    let (b, _) = collect_into(dir.path(), &refs(&args));
    server.join().unwrap();
    assert_eq!(b.text("kube-proxy/proxy-mode.txt"), "iptables");
    for n in 0..2 {
        let path = format!("kube-proxy/metrics.{n}.txt");
        assert_eq!(b.text(&path), METRICS);
        let r = b.record(&path);
        assert_eq!(r["url"], format!("{base}/metrics"));
        assert_eq!(r["sample"], n);
        assert_eq!(r["argv"], serde_json::Value::Null);
    }
    assert!(b.failures("kube-proxy/metrics.0.txt").is_empty());
}

#[test]
fn an_http_error_status_is_a_failed_source_with_the_body_as_stderr() {
    let (base, server) = serve(Framing::Length, 2);
    let dir = tempfile::tempdir().unwrap();
    let prefixed = format!("{base}/nowhere");
    let args = quick(&[
        "--kube-proxy-url",
        &prefixed,
        "-o",
        dir.path().to_str().unwrap(),
    ]);
    let out = run(&refs(&args));
    assert!(out.status.success(), "{}", stderr(&out));
    server.join().unwrap();
    let b = Bundle::open(&crate::util::only_bundle_in(dir.path()));
    let f = b.failures("kube-proxy/metrics.0.txt");
    assert_eq!(f[0]["error"], "HTTP 404 Not Found");
    assert_eq!(f[0]["stderr"], "404 page not found\n");
    assert!(!b.members.contains_key("kube-proxy/metrics.0.txt"));
}
