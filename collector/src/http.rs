//! A minimal HTTP/1.1 client for kube-proxy's metrics server (`:10249/metrics`, `/proxyMode`).
//! That server speaks plain HTTP on loopback, so a `TcpStream` with connect and read timeouts is
//! all it takes, and the collector stays free of an HTTP stack and its TLS dependencies. Bodies are
//! streamed into a [`Spool`]; `Content-Length`, `chunked` and read-to-close bodies are understood
//! (Go's `net/http` picks between the last two by body size).

use crate::spool::Spool;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Headers larger than this are not a metrics server talking.
const MAX_HEADER_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("unsupported URL {0:?}: expected http://HOST[:PORT][/PATH]")]
    Url(String),
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, io::Error),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, io::Error),
    #[error("timed out after {0}s")]
    Timeout(u64),
    #[error("bad response: {0}")]
    Protocol(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The parts of a URL this client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `host:port` as sent in the `Host` header (brackets kept for IPv6).
    pub authority: String,
    pub host: String,
    pub port: u16,
    /// Path without a trailing slash, possibly empty.
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, HttpError> {
        let bad = || HttpError::Url(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(p) => (host, p.parse().map_err(|_| bad())?),
                None if after.is_empty() => (host, 80),
                None => return Err(bad()),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
                None => (authority, 80),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Url {
            authority: authority.to_string(),
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// This URL with `path` appended (`/metrics` on the base URL).
    pub fn join(&self, path: &str) -> String {
        format!("http://{}{}{}", self.authority, self.path, path)
    }
}

/// Status line of a response whose body went into the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
}

/// `GET url`, body into `body`, everything within `timeout` (connect, headers and body together).
pub fn get(url: &str, timeout: Duration, body: &mut Spool) -> Result<Response, HttpError> {
    let parsed = Url::parse(url)?;
    let deadline = Instant::now() + timeout;
    let timed_out = || HttpError::Timeout(timeout.as_secs());
    let addrs: Vec<SocketAddr> = (parsed.host.as_str(), parsed.port)
        .to_socket_addrs()
        .map_err(|e| HttpError::Resolve(parsed.host.clone(), e))?
        .collect();
    let mut last_err = None;
    let mut stream = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let stream = match (stream, last_err) {
        (Some(s), _) => s,
        (None, Some(e)) if is_timeout(&e) => return Err(timed_out()),
        (None, e) => {
            let e = e.unwrap_or_else(|| io::Error::other("no address"));
            return Err(HttpError::Connect(parsed.authority.clone(), e));
        }
    };
    let path = if parsed.path.is_empty() {
        "/"
    } else {
        &parsed.path
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ctdiag-collect/{}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n",
        parsed.authority,
        env!("CARGO_PKG_VERSION")
    );
    let mut conn = DeadlineStream { stream, deadline };
    conn.write_all(request.as_bytes())
        .map_err(|e| map_timeout(e, timeout))?;
    let mut reader = BufReader::new(conn);
    let head = read_head(&mut reader).map_err(|e| map_timeout(e, timeout))??;
    let result = match head.framing {
        Framing::Length(n) => copy_length(&mut reader, n, body),
        Framing::Chunked => copy_chunked(&mut reader, body),
        Framing::Close => copy_to_end(&mut reader, body),
    };
    result.map_err(|e| map_timeout(e, timeout))??;
    Ok(Response {
        status: head.status,
        reason: head.reason,
    })
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

fn map_timeout(e: io::Error, timeout: Duration) -> HttpError {
    if is_timeout(&e) {
        HttpError::Timeout(timeout.as_secs())
    } else {
        HttpError::Io(e)
    }
}

/// A socket whose every read and write gets only the time left before one overall deadline, so a
/// server that trickles a byte per second cannot stretch the request forever.
struct DeadlineStream {
    stream: TcpStream,
    deadline: Instant,
}

impl DeadlineStream {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::from(io::ErrorKind::TimedOut))
        } else {
            Ok(left)
        }
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.stream.set_write_timeout(Some(left))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

enum Framing {
    Length(u64),
    Chunked,
    Close,
}

struct Head {
    status: u16,
    reason: String,
    framing: Framing,
}

/// Status line and headers. The outer `Result` is transport, the inner one protocol.
fn read_head(r: &mut impl BufRead) -> io::Result<Result<Head, HttpError>> {
    let mut total = 0usize;
    let mut line = Vec::new();
    let mut status_line = None;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        let n = r
            .by_ref()
            .take(MAX_HEADER_BYTES as u64)
            .read_until(b'\n', &mut line)?;
        total += n;
        if n == 0 {
            return Ok(Err(HttpError::Protocol(
                "connection closed before the headers ended".into(),
            )));
        }
        if total > MAX_HEADER_BYTES {
            return Ok(Err(HttpError::Protocol("headers too long".into())));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if status_line.is_none() {
            status_line = Some(text.to_string());
            continue;
        }
        if text.is_empty() {
            break;
        }
        if let Some((name, value)) = text.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                match value.parse::<u64>() {
                    Ok(n) => length = Some(n),
                    Err(_) => {
                        return Ok(Err(HttpError::Protocol(format!(
                            "bad Content-Length {value:?}"
                        ))));
                    }
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
    }
    let status_line = status_line.unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let (true, Some(status)) = (version.starts_with("HTTP/1."), status) else {
        return Ok(Err(HttpError::Protocol(format!(
            "not an HTTP/1.x status line: {status_line:?}"
        ))));
    };
    let framing = if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    Ok(Ok(Head {
        status,
        reason: parts.next().unwrap_or_default().to_string(),
        framing,
    }))
}

fn copy_length(r: &mut impl Read, n: u64, body: &mut Spool) -> io::Result<Result<(), HttpError>> {
    let got = copy_to_end(&mut r.take(n), body)?;
    if got.is_ok() && body.len() < n && !body.truncated() {
        return Ok(Err(HttpError::Protocol(format!(
            "connection closed after {} of {n} body bytes",
            body.len()
        ))));
    }
    Ok(got)
}

fn copy_to_end(r: &mut impl Read, body: &mut Spool) -> io::Result<Result<(), HttpError>> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(Ok(())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if !body.write_capped(&buf[..n])? {
            return Ok(Ok(()));
        }
    }
}

fn copy_chunked(r: &mut impl BufRead, body: &mut Spool) -> io::Result<Result<(), HttpError>> {
    let mut line = Vec::new();
    loop {
        line.clear();
        r.by_ref().take(1024).read_until(b'\n', &mut line)?;
        let text = String::from_utf8_lossy(&line);
        let size_text = text.trim().split(';').next().unwrap_or_default().trim();
        let Ok(size) = u64::from_str_radix(size_text, 16) else {
            return Ok(Err(HttpError::Protocol(format!(
                "bad chunk size {size_text:?}"
            ))));
        };
        if size == 0 {
            // Trailers, if any, end with an empty line; nothing in them matters here.
            loop {
                line.clear();
                if r.by_ref()
                    .take(MAX_HEADER_BYTES as u64)
                    .read_until(b'\n', &mut line)?
                    == 0
                    || line.trim_ascii().is_empty()
                {
                    return Ok(Ok(()));
                }
            }
        }
        let before = body.len();
        if let Err(e) = copy_to_end(&mut r.take(size), body)? {
            return Ok(Err(e));
        }
        if body.truncated() {
            return Ok(Ok(()));
        }
        if body.len() - before < size {
            return Ok(Err(HttpError::Protocol(
                "connection closed inside a chunk".into(),
            )));
        }
        line.clear();
        r.by_ref().take(2).read_until(b'\n', &mut line)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base_urls_with_and_without_port_and_path() {
        let u = Url::parse("http://127.0.0.1:10249").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 10249, "")
        );
        assert_eq!(u.join("/metrics"), "http://127.0.0.1:10249/metrics");
        let u = Url::parse("http://[::1]:10249/kp/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 10249, "/kp")
        );
        assert_eq!(u.join("/proxyMode"), "http://[::1]:10249/kp/proxyMode");
        assert_eq!(Url::parse("http://localhost").unwrap().port, 80);
        assert!(Url::parse("https://127.0.0.1:10249").is_err());
        assert!(Url::parse("http://:80").is_err());
        assert!(Url::parse("http://h:port").is_err());
    }
}
