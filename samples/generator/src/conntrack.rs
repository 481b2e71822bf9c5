//! One conntrack entry and the three ways a node prints it: `conntrack -L -o extended` (what the
//! collector runs), `/proc/net/nf_conntrack` (its fallback) and plain `conntrack -L` (what people
//! paste into tickets).
//!
//! The token order and spacing follow libnetfilter_conntrack's `__snprintf_conntrack_default()`
//! and the kernel's `ct_seq_show()` (see FORMATS-DETAIL.md §1–2): `%-8s %u ` for the protocol
//! columns, no state word for UDP and ICMP, `[UNREPLIED]` between the tuples, `[ASSURED]` after the
//! reply tuple, `mark=0 use=1` from netlink and `mark=0 zone=0 use=2` from /proc, IPv6 compressed
//! from netlink and as eight zero-padded groups from /proc. The analyzer is tested on these bytes,
//! so a difference here is a difference between the samples and real nodes.

use std::io::Write;
use std::net::{IpAddr, Ipv6Addr};

/// TCP states conntrack prints, with the timeout each one starts with on a node where kube-proxy
/// has set its values (established 86400, close_wait 3600; the rest are kernel defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TcpState {
    SynSent,
    SynRecv,
    Established,
    FinWait,
    CloseWait,
    LastAck,
    TimeWait,
    Close,
}

impl TcpState {
    pub const ALL: [TcpState; 8] = [
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::Established,
        TcpState::FinWait,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::TimeWait,
        TcpState::Close,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
        }
    }

    /// The largest remaining timeout an entry in this state can show (`nf_conntrack_tcp_timeout_*`).
    pub fn max_timeout(self) -> u32 {
        match self {
            TcpState::SynSent => 120,
            TcpState::SynRecv => 60,
            TcpState::Established => 86_400,
            TcpState::FinWait => 120,
            TcpState::CloseWait => 3600,
            TcpState::LastAck => 30,
            TcpState::TimeWait => 120,
            TcpState::Close => 10,
        }
    }
}

/// The layer-4 part of an entry. ICMP carries its echo id; its type and code are echo
/// request/reply (the only ICMP flows conntrack keeps for long).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4 {
    Tcp(TcpState),
    Udp,
    Icmp { id: u16 },
}

/// One direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

/// One conntrack entry: the original tuple, the reply tuple the kernel expects (NAT shows as the
/// difference between the two), the remaining timeout and the status flags that are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub l4: L4,
    pub timeout: u32,
    pub orig: Tuple,
    pub reply: Tuple,
    pub unreplied: bool,
    pub assured: bool,
}

/// Which printer produced the conntrack list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// `conntrack -L -o extended`: what ctdiag-collect runs.
    Extended,
    /// `/proc/net/nf_conntrack`: the collector's fallback when conntrack-tools is missing.
    Proc,
    /// `conntrack -L`: no layer-3 columns, as pasted into tickets.
    Plain,
}

impl ListFormat {
    /// The manifest's description of the member this format comes from: (source, argv, file).
    pub fn source(
        self,
    ) -> (
        &'static str,
        Option<Vec<&'static str>>,
        Option<&'static str>,
    ) {
        match self {
            ListFormat::Extended => (
                "conntrack -L -o extended",
                Some(vec!["conntrack", "-L", "-o", "extended"]),
                None,
            ),
            ListFormat::Proc => (
                "/proc/net/nf_conntrack",
                None,
                Some("/proc/net/nf_conntrack"),
            ),
            ListFormat::Plain => ("conntrack -L", Some(vec!["conntrack", "-L"]), None),
        }
    }
}

impl Entry {
    /// Appends the entry as `format` prints it, newline included.
    pub fn write_line(&self, format: ListFormat, out: &mut Vec<u8>) {
        let v4 = self.orig.src.is_ipv4();
        // Writing into a Vec cannot fail.
        let _ = self.write_tokens(format, v4, out);
    }

    fn write_tokens(&self, format: ListFormat, v4: bool, out: &mut Vec<u8>) -> std::io::Result<()> {
        if format != ListFormat::Plain {
            let (name, num) = if v4 { ("ipv4", 2) } else { ("ipv6", 10) };
            write!(out, "{name:<8} {num} ")?;
        }
        let (name, num) = match self.l4 {
            L4::Tcp(_) => ("tcp", 6),
            L4::Udp => ("udp", 17),
            L4::Icmp { .. } if v4 => ("icmp", 1),
            L4::Icmp { .. } => ("icmpv6", 58),
        };
        write!(out, "{name:<8} {num} {} ", self.timeout)?;
        if let L4::Tcp(state) = self.l4 {
            write!(out, "{} ", state.name())?;
        }
        self.write_tuple(&self.orig, true, format, out)?;
        if self.unreplied {
            out.extend_from_slice(b"[UNREPLIED] ");
        }
        self.write_tuple(&self.reply, false, format, out)?;
        if self.assured {
            out.extend_from_slice(b"[ASSURED] ");
        }
        match format {
            ListFormat::Proc => out.extend_from_slice(b"mark=0 zone=0 use=2\n"),
            _ => out.extend_from_slice(b"mark=0 use=1\n"),
        }
        Ok(())
    }

    fn write_tuple(
        &self,
        t: &Tuple,
        original: bool,
        format: ListFormat,
        out: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        out.extend_from_slice(b"src=");
        write_addr(t.src, format, out)?;
        out.extend_from_slice(b" dst=");
        write_addr(t.dst, format, out)?;
        match self.l4 {
            L4::Icmp { id } => {
                // Echo request out, echo reply back: 8/0 for ICMP, 128/129 for ICMPv6.
                let ty = match (t.src.is_ipv4(), original) {
                    (true, true) => 8,
                    (true, false) => 0,
                    (false, true) => 128,
                    (false, false) => 129,
                };
                write!(out, " type={ty} code=0 id={id} ")
            }
            _ => write!(out, " sport={} dport={} ", t.sport, t.dport),
        }
    }
}

/// `inet_ntop` for netlink output, `%pI6` (eight `%04x` groups) for /proc.
fn write_addr(addr: IpAddr, format: ListFormat, out: &mut Vec<u8>) -> std::io::Result<()> {
    match addr {
        IpAddr::V6(a) if format == ListFormat::Proc => write_full_v6(a, out),
        a => write!(out, "{a}"),
    }
}

fn write_full_v6(a: Ipv6Addr, out: &mut Vec<u8>) -> std::io::Result<()> {
    for (i, g) in a.segments().iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        write!(out, "{g:04x}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    fn line(e: &Entry, f: ListFormat) -> String {
        let mut out = Vec::new();
        e.write_line(f, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn prints_a_dnat_time_wait_entry_like_conntrack_extended() {
        let e = Entry {
            l4: L4::Tcp(TcpState::TimeWait),
            timeout: 117,
            orig: Tuple {
                src: v4([10, 244, 3, 17]),
                dst: v4([10, 96, 12, 40]),
                sport: 38424,
                dport: 80,
            },
            reply: Tuple {
                src: v4([10, 244, 5, 9]),
                dst: v4([10, 244, 3, 17]),
                sport: 8080,
                dport: 38424,
            },
            unreplied: false,
            assured: true,
        };
        assert_eq!(
            line(&e, ListFormat::Extended),
            "ipv4     2 tcp      6 117 TIME_WAIT src=10.244.3.17 dst=10.96.12.40 sport=38424 dport=80 \
             src=10.244.5.9 dst=10.244.3.17 sport=8080 dport=38424 [ASSURED] mark=0 use=1\n"
        );
        assert_eq!(
            line(&e, ListFormat::Plain),
            "tcp      6 117 TIME_WAIT src=10.244.3.17 dst=10.96.12.40 sport=38424 dport=80 \
             src=10.244.5.9 dst=10.244.3.17 sport=8080 dport=38424 [ASSURED] mark=0 use=1\n"
        );
    }

    #[test]
    fn prints_unreplied_udp_without_a_state_word() {
        let e = Entry {
            l4: L4::Udp,
            timeout: 23,
            orig: Tuple {
                src: v4([10, 244, 3, 17]),
                dst: v4([10, 96, 0, 10]),
                sport: 45524,
                dport: 53,
            },
            reply: Tuple {
                src: v4([10, 244, 0, 2]),
                dst: v4([10, 244, 3, 17]),
                sport: 53,
                dport: 45524,
            },
            unreplied: true,
            assured: false,
        };
        assert_eq!(
            line(&e, ListFormat::Proc),
            "ipv4     2 udp      17 23 src=10.244.3.17 dst=10.96.0.10 sport=45524 dport=53 [UNREPLIED] \
             src=10.244.0.2 dst=10.244.3.17 sport=53 dport=45524 mark=0 zone=0 use=2\n"
        );
    }

    #[test]
    fn prints_icmpv6_compressed_from_netlink_and_full_from_proc() {
        let a: IpAddr = "fd00:10::a".parse().unwrap();
        let b: IpAddr = "fd00:10:0:1::17".parse().unwrap();
        let e = Entry {
            l4: L4::Icmp { id: 4242 },
            timeout: 29,
            orig: Tuple {
                src: a,
                dst: b,
                sport: 0,
                dport: 0,
            },
            reply: Tuple {
                src: b,
                dst: a,
                sport: 0,
                dport: 0,
            },
            unreplied: false,
            assured: false,
        };
        assert_eq!(
            line(&e, ListFormat::Extended),
            "ipv6     10 icmpv6   58 29 src=fd00:10::a dst=fd00:10:0:1::17 type=128 code=0 id=4242 \
             src=fd00:10:0:1::17 dst=fd00:10::a type=129 code=0 id=4242 mark=0 use=1\n"
        );
        assert_eq!(
            line(&e, ListFormat::Proc),
            "ipv6     10 icmpv6   58 29 src=fd00:0010:0000:0000:0000:0000:0000:000a \
             dst=fd00:0010:0000:0001:0000:0000:0000:0017 type=128 code=0 id=4242 \
             src=fd00:0010:0000:0001:0000:0000:0000:0017 dst=fd00:0010:0000:0000:0000:0000:0000:000a \
             type=129 code=0 id=4242 mark=0 zone=0 use=2\n"
        );
    }
}
