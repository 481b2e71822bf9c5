//! `--redact`: consistent pseudonyms for addresses and host names, so a bundle can be attached to a
//! public ticket and still diagnose the same. The analyzer keys on counts, shares and pair
//! concentration, so a bijection applied identically to every member suffices: the same address
//! always becomes the same pseudonym, two addresses never share one, and the family and syntax stay
//! valid so the parsers still read the lines. Ports, loopback and unspecified addresses are kept.
//!
//! Addresses are found by shape, not by parsing each format: a run of hex digits, `.` and `:` that
//! is not part of a word and parses as an address. Two formats need context: Cilium's CT dump and
//! monitor print IPv6 *without brackets* before `:port` (`fd85::1:fe5:8000 -> …`, the port is
//! after the last colon, FORMATS-DETAIL §6.1), so next to `->` the last group is a port.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Pseudonym pools for IPv4, in order: private and reserved ranges no real node traffic is
/// confused with once the originals are gone. 0/8 and 127/8 are excluded, so a pseudonym never
/// looks like a kept (loopback or unspecified) address.
const V4_POOLS: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    (Ipv4Addr::new(240, 0, 0, 0), 4),
];

/// Lines longer than this are rewritten in pieces, split at a blank so no address is cut.
const MAX_PIECE: usize = 1 << 20;

/// The pseudonym table of one run.
#[derive(Debug)]
pub struct Redactor {
    v4: HashMap<Ipv4Addr, Ipv4Addr>,
    v6: HashMap<Ipv6Addr, Ipv6Addr>,
    hosts: Vec<(String, String)>,
    host_pattern: Option<regex::bytes::Regex>,
    issued_v4: u64,
    issued_v6: u128,
}

/// What `--redact-map` writes: original → pseudonym, sorted.
#[derive(Debug, Serialize)]
pub struct RedactMap {
    pub addresses: BTreeMap<String, String>,
    pub hosts: BTreeMap<String, String>,
}

impl Redactor {
    /// A redactor that also replaces each of `hosts` (case-insensitively, as whole DNS labels).
    pub fn new<I: IntoIterator<Item = String>>(hosts: I) -> Redactor {
        let mut names: Vec<String> = Vec::new();
        for h in hosts {
            let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
            // A name that is itself an address is redacted as one; "localhost" identifies nobody.
            if h.is_empty() || h == "localhost" || h.parse::<std::net::IpAddr>().is_ok() {
                continue;
            }
            if !names.contains(&h) {
                names.push(h);
            }
        }
        let hosts: Vec<(String, String)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), format!("redacted-host-{}", i + 1)))
            .collect();
        // Longest first, so an FQDN wins over its own first label.
        let mut by_len: Vec<&str> = names.iter().map(String::as_str).collect();
        by_len.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let host_pattern = (!by_len.is_empty()).then(|| {
            let alternation: Vec<String> = by_len.iter().map(|n| regex::escape(n)).collect();
            regex::bytes::Regex::new(&format!("(?i-u){}", alternation.join("|")))
                .expect("escaped literals always form a valid pattern")
        });
        Redactor {
            v4: HashMap::new(),
            v6: HashMap::new(),
            hosts,
            host_pattern,
            issued_v4: 0,
            issued_v6: 0,
        }
    }

    /// The pseudonym of a host name given at construction, or the name with addresses redacted.
    pub fn host(&mut self, name: &str) -> String {
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        match self.hosts.iter().find(|(n, _)| *n == lower) {
            Some((_, p)) => p.clone(),
            None => self.text(name),
        }
    }

    /// `text` with every address and known host name replaced (for manifest fields, which the
    /// same table must cover so a failed command's argv or stderr leaks nothing either).
    pub fn text(&mut self, text: &str) -> String {
        let mut out = Vec::new();
        self.line(text.as_bytes(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Appends the redacted form of `line` to `out`.
    pub fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        self.addresses(line, out);
        if let Some(pattern) = &self.host_pattern {
            let with_addresses = out.split_off(start);
            replace_hosts(pattern, &self.hosts, &with_addresses, out);
        }
    }

    /// Copies `input` to `output` line by line, redacted. Memory stays bounded by `MAX_PIECE`
    /// whatever the input's size or line lengths.
    pub fn stream(&mut self, input: &mut impl BufRead, output: &mut impl Write) -> io::Result<()> {
        let mut pending = Vec::new();
        let mut out = Vec::new();
        loop {
            let room = (MAX_PIECE - pending.len().min(MAX_PIECE)) as u64;
            let n = Read::take(&mut *input, room.max(1)).read_until(b'\n', &mut pending)?;
            let at_end = n == 0;
            if pending.is_empty() {
                return Ok(());
            }
            let cut = if at_end || pending.ends_with(b"\n") {
                pending.len()
            } else if pending.len() < MAX_PIECE {
                continue;
            } else {
                // A giant line: rewrite up to its last blank, keep the rest for the next piece.
                pending
                    .iter()
                    .rposition(|&b| b == b' ' || b == b'\t')
                    .map_or(pending.len(), |i| i + 1)
            };
            out.clear();
            self.line(&pending[..cut], &mut out);
            output.write_all(&out)?;
            pending.drain(..cut);
        }
    }

    /// The table, for `--redact-map`.
    pub fn map(&self) -> RedactMap {
        let mut addresses = BTreeMap::new();
        for (k, v) in &self.v4 {
            addresses.insert(k.to_string(), v.to_string());
        }
        for (k, v) in &self.v6 {
            addresses.insert(k.to_string(), v.to_string());
        }
        let hosts = self.hosts.iter().cloned().collect();
        RedactMap { addresses, hosts }
    }

    fn addresses(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let mut i = 0;
        while i < line.len() {
            let b = line[i];
            let starts_run = is_addr_byte(b) && (i == 0 || !is_word_byte(line[i - 1]));
            if !starts_run {
                out.push(b);
                i += 1;
                continue;
            }
            let end = i + line[i..].iter().take_while(|&&c| is_addr_byte(c)).count();
            let run = &line[i..end];
            let glued = end < line.len() && is_word_byte(line[end]);
            if glued || !self.rewrite_run(run, arrow_context(line, i, end), out) {
                out.extend_from_slice(run);
            }
            i = end;
        }
    }

    /// Writes the redacted form of one run and returns true, or returns false (writing nothing)
    /// when the run holds no address.
    fn rewrite_run(&mut self, run: &[u8], arrow: bool, out: &mut Vec<u8>) -> bool {
        let Ok(text) = std::str::from_utf8(run) else {
            return false;
        };
        // A sentence or label can end right after an address: "… via 10.0.0.1." / "fe80::1:".
        let core = text.trim_end_matches(['.', ':']);
        let tail = &text[core.len()..];
        if core.is_empty() {
            return false;
        }
        let colons = core.bytes().filter(|&b| b == b':').count();
        if colons >= 2 {
            let split_port = core
                .rsplit_once(':')
                .filter(|(_, p)| {
                    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
                })
                .and_then(|(a, p)| a.parse::<Ipv6Addr>().ok().map(|a| (a, p)));
            let whole = core.parse::<Ipv6Addr>().ok();
            let chosen = match (arrow, split_port, whole) {
                (true, Some((a, p)), _) => Some((a, Some(p))),
                (_, _, Some(a)) => Some((a, None)),
                (_, Some((a, p)), None) => Some((a, Some(p))),
                _ => None,
            };
            if let Some((addr, port)) = chosen {
                let full_form = !core.contains("::") && core.len() == 39 && port.is_none();
                let pseudo = self.v6(addr);
                if full_form {
                    let s = pseudo.segments();
                    let groups: Vec<String> = s.iter().map(|g| format!("{g:04x}")).collect();
                    out.extend_from_slice(groups.join(":").as_bytes());
                } else {
                    out.extend_from_slice(pseudo.to_string().as_bytes());
                }
                if let Some(p) = port {
                    out.push(b':');
                    out.extend_from_slice(p.as_bytes());
                }
                out.extend_from_slice(tail.as_bytes());
                return true;
            }
        }
        // IPv4, alone or as `addr:port` (and `a:b` lists): rewrite each dotted quad between colons.
        let mut any = false;
        let mut rewritten = String::with_capacity(text.len());
        for (n, piece) in core.split(':').enumerate() {
            if n > 0 {
                rewritten.push(':');
            }
            match piece.parse::<Ipv4Addr>() {
                Ok(a) => {
                    any = true;
                    rewritten.push_str(&self.v4(a).to_string());
                }
                Err(_) => rewritten.push_str(piece),
            }
        }
        if any {
            out.extend_from_slice(rewritten.as_bytes());
            out.extend_from_slice(tail.as_bytes());
        }
        any
    }

    fn v4(&mut self, a: Ipv4Addr) -> Ipv4Addr {
        if a.is_loopback() || a.is_unspecified() || a.is_broadcast() {
            return a;
        }
        if let Some(p) = self.v4.get(&a) {
            return *p;
        }
        self.issued_v4 += 1;
        let p = nth_v4(self.issued_v4);
        self.v4.insert(a, p);
        p
    }

    fn v6(&mut self, a: Ipv6Addr) -> Ipv6Addr {
        if a.is_loopback() || a.is_unspecified() {
            return a;
        }
        // An IPv4-mapped address is the IPv4 host seen through a dual-stack socket: same name.
        if let Some(v4) = a.to_ipv4_mapped() {
            return self.v4(v4).to_ipv6_mapped();
        }
        if let Some(p) = self.v6.get(&a) {
            return *p;
        }
        self.issued_v6 += 1;
        let p = Ipv6Addr::from(0xfd00_u128 << 112 | self.issued_v6);
        self.v6.insert(a, p);
        p
    }
}

/// The `n`th pseudonym (from 1), walking the pools in order.
fn nth_v4(n: u64) -> Ipv4Addr {
    let mut n = n;
    for (base, prefix) in V4_POOLS {
        let size = 1u64 << (32 - u32::from(*prefix));
        // The first address of a pool (its network address) is skipped.
        if n < size {
            return Ipv4Addr::from(u32::from(*base) + n as u32);
        }
        n -= size - 1;
    }
    // Beyond ~290 million distinct addresses; no conntrack table holds that many.
    Ipv4Addr::new(255, 255, 255, 254)
}

fn is_addr_byte(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':' || b == b'.'
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// True when the run sits next to Cilium's `->` (`src:port -> dst:port`).
fn arrow_context(line: &[u8], start: usize, end: usize) -> bool {
    line[end..].starts_with(b" ->") || line[..start].ends_with(b"-> ")
}

fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn replace_hosts(
    pattern: &regex::bytes::Regex,
    hosts: &[(String, String)],
    text: &[u8],
    out: &mut Vec<u8>,
) {
    let mut last = 0;
    for m in pattern.find_iter(text) {
        let before_ok = m.start() == 0 || !is_host_byte(text[m.start() - 1]);
        let after_ok = m.end() == text.len() || !is_host_byte(text[m.end()]);
        if !(before_ok && after_ok) {
            continue;
        }
        let found = m.as_bytes().to_ascii_lowercase();
        if let Some((_, pseudo)) = hosts.iter().find(|(n, _)| n.as_bytes() == found.as_slice()) {
            out.extend_from_slice(&text[last..m.start()]);
            out.extend_from_slice(pseudo.as_bytes());
            last = m.end();
        }
    }
    out.extend_from_slice(&text[last..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(r: &mut Redactor, line: &str) -> String {
        let mut out = Vec::new();
        r.line(line.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn conntrack_entry_keeps_ports_and_maps_each_address_once() {
        let mut r = Redactor::new([]);
        let line = "tcp      6 119 TIME_WAIT src=10.200.0.1 dst=10.96.0.10 sport=38424 dport=8080 src=10.244.1.5 dst=10.200.0.1 sport=8080 dport=38424 [ASSURED] mark=0 use=1";
        assert_eq!(
            redact(&mut r, line),
            "tcp      6 119 TIME_WAIT src=10.0.0.1 dst=10.0.0.2 sport=38424 dport=8080 src=10.0.0.3 dst=10.0.0.1 sport=8080 dport=38424 [ASSURED] mark=0 use=1"
        );
    }

    #[test]
    fn ipv6_in_proc_full_form_and_compressed_form_get_the_same_pseudonym() {
        let mut r = Redactor::new([]);
        assert_eq!(
            redact(
                &mut r,
                "src=2001:0db8:ffff:0021:0000:0000:0000:0002 dst=::1"
            ),
            "src=fd00:0000:0000:0000:0000:0000:0000:0001 dst=::1"
        );
        assert_eq!(redact(&mut r, "src=2001:db8:ffff:21::2"), "src=fd00::1");
    }

    #[test]
    fn cilium_unbracketed_ipv6_keeps_the_port_after_the_last_colon() {
        let mut r = Redactor::new([]);
        let line = "TCP IN 2a00:23c8:bcb:5101:cce4:dbf7:957:33a4:47224 -> fd85:ee78:d8a6:8607::1:fe5:8000 expires=26562518 Flags=0x0013 [ RxClosing ] RevNAT=0";
        assert_eq!(
            redact(&mut r, line),
            "TCP IN fd00::1:47224 -> fd00::2:8000 expires=26562518 Flags=0x0013 [ RxClosing ] RevNAT=0"
        );
        // The same address seen bracketed elsewhere maps to the same pseudonym.
        assert_eq!(
            redact(&mut r, "[fd85:ee78:d8a6:8607::1:fe5]:80"),
            "[fd00::2]:80"
        );
    }

    #[test]
    fn ipv4_with_ports_in_cilium_and_ipvs_lines() {
        let mut r = Redactor::new([]);
        assert_eq!(
            redact(
                &mut r,
                "TCP OUT 172.19.0.2:57716 -> 10.244.1.1:8080 expires=319511"
            ),
            "TCP OUT 10.0.0.1:57716 -> 10.0.0.2:8080 expires=319511"
        );
        assert_eq!(
            redact(
                &mut r,
                "TCP 14:59  ESTABLISHED 172.19.0.2:36519 192.168.0.120:8080 10.244.1.1:23536"
            ),
            "TCP 14:59  ESTABLISHED 10.0.0.1:36519 10.0.0.3:8080 10.0.0.2:23536"
        );
    }

    #[test]
    fn keeps_loopback_unspecified_times_versions_and_counters() {
        let mut r = Redactor::new([]);
        for line in [
            "[ 8349.694398] nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet",
            "Feb 23 16:44:36 jobs kernel: [38775494.393661] x",
            "listen 127.0.0.1:10249 and 0.0.0.0:80 and [::]:80 and ::1",
            "Linux 6.18.44-fc-v595 #1 SMP x86_64; cilium 1.16.3; le=\"0.001\" 1e+06",
            "cpu=0   \tfound=0 invalid=3856 drop=46",
            "Flags=0x0093 BackendID=360309599644942336 mac aa:bb:cc:dd:ee:ff",
        ] {
            assert_eq!(redact(&mut r, line), line);
        }
    }

    #[test]
    fn a_trailing_period_stays_outside_the_address() {
        let mut r = Redactor::new([]);
        assert_eq!(redact(&mut r, "via 192.0.2.7."), "via 10.0.0.1.");
    }

    #[test]
    fn ipv4_mapped_ipv6_uses_the_ipv4_pseudonym() {
        let mut r = Redactor::new([]);
        assert_eq!(
            redact(&mut r, "a=192.0.2.7 b=::ffff:192.0.2.7"),
            "a=10.0.0.1 b=::ffff:10.0.0.1"
        );
    }

    #[test]
    fn host_names_are_replaced_as_whole_labels_case_insensitively() {
        let mut r = Redactor::new(["worker-3".to_string(), "worker-3.example.com".to_string()]);
        assert_eq!(
            redact(
                &mut r,
                "Linux Worker-3 6.1; worker-3.example.com; my-worker-3; worker-30"
            ),
            "Linux redacted-host-1 6.1; redacted-host-2; my-worker-3; worker-30"
        );
        assert_eq!(r.host("worker-3"), "redacted-host-1");
    }

    #[test]
    fn distinct_addresses_never_share_a_pseudonym() {
        let mut r = Redactor::new([]);
        let mut seen = std::collections::HashSet::new();
        for n in 0..3000u32 {
            let a = Ipv4Addr::from(0x0a00_0000 + n * 7);
            assert!(seen.insert(r.v4(a)));
        }
        assert_eq!(nth_v4(1), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(nth_v4((1 << 24) - 1), Ipv4Addr::new(10, 255, 255, 255));
        assert_eq!(nth_v4(1 << 24), Ipv4Addr::new(100, 64, 0, 1));
    }

    #[test]
    fn streaming_splits_giant_lines_only_at_blanks() {
        let mut r = Redactor::new([]);
        let mut input = Vec::new();
        for _ in 0..(MAX_PIECE / 10) {
            input.extend_from_slice(b"x 1.2.3.4 ");
        }
        input.extend_from_slice(b"\nlast 1.2.3.4\n");
        let mut out = Vec::new();
        r.stream(&mut input.as_slice(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("1.2.3.4"));
        assert_eq!(text.matches("10.0.0.1").count(), MAX_PIECE / 10 + 1);
    }
}
