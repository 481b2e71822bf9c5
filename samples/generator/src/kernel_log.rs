//! `kernel/dmesg.txt`: a Debian 6.1 cloud kernel booting on KVM, pods coming and going on the
//! `cni0` bridge, and — where a scenario says so — `nf_conntrack` table-full warnings.
//!
//! The warnings are shaped by the kernel's rate limit, not by the drop count: `net_warn_ratelimited`
//! lets 10 messages through per 5 s (`net.core.message_burst`, `message_cost`) and then prints
//! `net_ratelimit: N callbacks suppressed` when the next window opens (FORMATS-DETAIL.md §4). So a
//! sample's dmesg has bursts of 10 lines every 5 s, and the suppressed counts add up, with the
//! printed lines, to the rise of the `drop` counter over the same time. Some lines use the
//! `table full in netns N` form: that form comes from newer kernels (a 2025 patch) than the 6.1
//! these samples name, and is mixed in so that every sample exercises both shapes the analyzer
//! must recognise.

use crate::node::Node;
use crate::rng::Rng;
use std::fmt::Write;

/// The network namespace inode the `in netns` lines name (a pod's netns).
pub const POD_NETNS: u64 = 4_026_532_177;

/// A period during which the table was full and packets were dropped.
#[derive(Debug, Clone, Copy)]
pub struct FullEpisode {
    /// Seconds before collection the first drop happened.
    pub started_before_s: u64,
    /// Seconds before collection the last drop happened (a few seconds for "still full").
    pub ended_before_s: u64,
    /// Drops per second during the episode.
    pub drops_per_s: u64,
}

impl FullEpisode {
    pub fn drops(&self) -> u64 {
        (self.started_before_s - self.ended_before_s) * self.drops_per_s
    }
}

/// What goes into the log besides the boot.
#[derive(Debug, Clone)]
pub struct LogPlan {
    /// veth names of the pods running now, in the order they were started.
    pub veths: Vec<String>,
    /// Pods replaced since boot (each leaves an "entered disabled state" block).
    pub replaced: usize,
    pub full: Option<FullEpisode>,
    /// A Cilium node: no `cni0` bridge and no flannel overlay, so no bridge-port lines (Cilium's
    /// `lxc…` devices are not bridge ports).
    pub cilium: bool,
}

/// `[%5lu.%06lu] ` as `dmesg` prints the monotonic timestamp.
fn stamp(out: &mut String, micros: u64) {
    let _ = write!(
        out,
        "[{:>5}.{:06}] ",
        micros / 1_000_000,
        micros % 1_000_000
    );
}

struct Log {
    lines: Vec<(u64, String)>,
}

impl Log {
    fn push(&mut self, micros: u64, text: impl Into<String>) {
        self.lines.push((micros, text.into()));
    }

    fn render(mut self) -> String {
        // Stable sort: lines with the same timestamp keep the order they were pushed in.
        self.lines.sort_by_key(|(t, _)| *t);
        let mut out = String::new();
        for (t, text) in self.lines {
            stamp(&mut out, t);
            out.push_str(&text);
            out.push('\n');
        }
        out
    }
}

/// The whole `dmesg` output for `node`, read at collection time (the node's uptime).
pub fn dmesg(node: &Node, boot_epoch: u64, plan: &LogPlan, rng: &mut Rng) -> String {
    let mut log = Log { lines: Vec::new() };
    boot(&mut log, node, boot_epoch, plan.cilium, rng);
    let now_us = node.uptime_cs * 10_000;
    if plan.cilium {
        if let Some(ep) = plan.full {
            table_full(&mut log, now_us, &ep, rng);
        }
        return log.render();
    }

    // Pods started at boot, one veth block each, then replacements spread over the uptime.
    let mut t = 14_180_000 + rng.range(0, 400_000);
    log.push(
        t - 2_000,
        "IPv6: ADDRCONF(NETDEV_CHANGE): cni0: link becomes ready",
    );
    let boot_pods = plan.veths.len().saturating_sub(plan.replaced);
    for (i, veth) in plan.veths.iter().enumerate() {
        if i >= boot_pods {
            // A replacement: the old pod's veth goes away, the new one comes up in the same port.
            t = rng.range(600, node.uptime_secs().saturating_sub(1_800).max(601)) * 1_000_000
                + rng.range(0, 999_999);
            let port = i - boot_pods + 1;
            let old = veth_name(rng);
            log.push(
                t,
                format!("cni0: port {port}({old}) entered disabled state"),
            );
            log.push(t + 310, format!("device {old} left promiscuous mode"));
            log.push(
                t + 340,
                format!("cni0: port {port}({old}) entered disabled state"),
            );
            t += rng.range(900_000, 3_000_000);
        } else {
            t += rng.range(150_000, 900_000);
        }
        let port = i + 1;
        log.push(
            t,
            format!("cni0: port {port}({veth}) entered blocking state"),
        );
        log.push(
            t + 12,
            format!("cni0: port {port}({veth}) entered disabled state"),
        );
        log.push(t + 160, format!("device {veth} entered promiscuous mode"));
        log.push(
            t + 2_410,
            format!("cni0: port {port}({veth}) entered blocking state"),
        );
        log.push(
            t + 2_418,
            format!("cni0: port {port}({veth}) entered forwarding state"),
        );
        log.push(
            t + rng.range(30_000, 90_000),
            format!("IPv6: ADDRCONF(NETDEV_CHANGE): {veth}: link becomes ready"),
        );
    }

    if let Some(ep) = plan.full {
        table_full(&mut log, now_us, &ep, rng);
    }
    log.render()
}

/// A veth name as the bridge CNI plugin makes them: `veth` and 8 hex digits.
pub fn veth_name(rng: &mut Rng) -> String {
    format!("veth{:08x}", rng.next_u64() as u32)
}

fn table_full(log: &mut Log, now_us: u64, ep: &FullEpisode, rng: &mut Rng) {
    const WINDOW_US: u64 = 5_000_000;
    const BURST: u64 = 10;
    let start = now_us - ep.started_before_s * 1_000_000;
    let end = now_us - ep.ended_before_s * 1_000_000;
    let gap_us = (1_000_000 / ep.drops_per_s.max(1)).max(1);
    let mut window = start + rng.range(0, 400_000);
    let mut suppressed = 0;
    while window < end {
        let mut t = window;
        if suppressed > 0 {
            log.push(
                t,
                format!("net_ratelimit: {suppressed} callbacks suppressed"),
            );
            t += rng.range(2, 9);
        }
        let per_window = ep.drops_per_s * 5;
        for _ in 0..BURST.min(per_window) {
            let text = if rng.chance(1, 4) {
                format!(
                    "nf_conntrack: nf_conntrack: table full in netns {POD_NETNS}, dropping packet"
                )
            } else {
                "nf_conntrack: nf_conntrack: table full, dropping packet".to_string()
            };
            log.push(t, text);
            t += gap_us / 2 + rng.range(0, gap_us);
        }
        suppressed = per_window.saturating_sub(BURST);
        window += WINDOW_US + rng.range(0, 60_000);
    }
}

/// Boot messages of `6.1.0-28-cloud-amd64` on a KVM guest, trimmed to the lines a support
/// engineer scrolls past; values that depend on the machine are filled in.
fn boot(log: &mut Log, node: &Node, boot_epoch: u64, cilium: bool, rng: &mut Rng) {
    let cpus = node.cpus;
    let mem_kb = node.mem_kb;
    let phys_kb = (mem_kb + 200_000).div_ceil(4096) * 4096;
    let reserved_kb = phys_kb - mem_kb;
    let last_pfn = (phys_kb + 1_048_576) / 4;
    let high_end = 0x1_0000_0000u64 + (phys_kb * 1024 - 0xbffd_b000);
    let partuuid = format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        rng.next_u64() as u32,
        rng.next_u64() as u16,
        (rng.next_u64() as u16 & 0x0fff) | 0x4000,
        (rng.next_u64() as u16 & 0x3fff) | 0x8000,
        rng.next_u64() & 0xffff_ffff_ffff
    );
    let cmdline = format!(
        "BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-cloud-amd64 root=PARTUUID={partuuid} ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0"
    );
    let ehash = crate::sysctl::tcp_ehash_entries(node);
    let tsc_khz = 2_199_990 + rng.range(0, 20);
    let audit = |us: u64, serial: u32| {
        let secs = boot_epoch + us / 1_000_000;
        format!("{secs}.{:03}:{serial}", (us / 1000) % 1000)
    };
    let lines: Vec<(u64, String)> = vec![
        (0, "Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)".into()),
        (0, format!("Command line: {cmdline}")),
        (0, "BIOS-provided physical RAM map:".into()),
        (0, "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable".into()),
        (0, "BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved".into()),
        (0, "BIOS-e820: [mem 0x00000000000f0000-0x00000000000fffff] reserved".into()),
        (0, "BIOS-e820: [mem 0x0000000000100000-0x00000000bffdafff] usable".into()),
        (0, "BIOS-e820: [mem 0x00000000bffdb000-0x00000000bfffffff] reserved".into()),
        (0, "BIOS-e820: [mem 0x00000000feffc000-0x00000000feffffff] reserved".into()),
        (0, "BIOS-e820: [mem 0x00000000fffc0000-0x00000000ffffffff] reserved".into()),
        (0, format!("BIOS-e820: [mem 0x0000000100000000-0x{:016x}] usable", high_end - 1)),
        (0, "NX (Execute Disable) protection: active".into()),
        (0, "SMBIOS 2.8 present.".into()),
        (0, "DMI: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014".into()),
        (0, "Hypervisor detected: KVM".into()),
        (0, "kvm-clock: Using msrs 4b564d01 and 4b564d00".into()),
        (1, format!("kvm-clock: using sched offset of {} cycles", rng.range(3_000_000_000, 9_000_000_000))),
        (4, "clocksource: kvm-clock: mask: 0xffffffffffffffff max_cycles: 0x1cd42e4dffb, max_idle_ns: 881590591483 ns".into()),
        (9, format!("tsc: Detected {}.{:03} MHz processor", tsc_khz / 1000, tsc_khz % 1000)),
        (3_118, format!("last_pfn = 0x{last_pfn:x} max_arch_pfn = 0x400000000")),
        (11_214, "ACPI: Early table checksum verification disabled".into()),
        (14_093, "No NUMA configuration found".into()),
        (14_095, format!("Faking a node at [mem 0x0000000000000000-0x{:016x}]", high_end - 1)),
        (19_542, "Zone ranges:".into()),
        (19_544, "  DMA      [mem 0x0000000000001000-0x0000000000ffffff]".into()),
        (19_546, "  DMA32    [mem 0x0000000001000000-0x00000000ffffffff]".into()),
        (19_548, format!("  Normal   [mem 0x0000000100000000-0x{:016x}]", high_end - 1)),
        (27_133, format!("smpboot: Allowing {cpus} CPUs, 0 hotplug CPUs")),
        (31_845, format!("setup_percpu: NR_CPUS:8192 nr_cpumask_bits:{cpus} nr_cpu_ids:{cpus} nr_node_ids:1")),
        (34_127, format!("Kernel command line: {cmdline}")),
        (52_380, format!("Memory: {mem_kb}K/{phys_kb}K available (14342K kernel code, 2326K rwdata, 9380K rodata, 2780K init, 17420K bss, {reserved_kb}K reserved, 0K cma-reserved)")),
        (52_911, format!("SLUB: HWalign=64, Order=0-3, MinObjects=0, CPUs={cpus}, Nodes=1")),
        (61_020, "rcu: Hierarchical RCU implementation.".into()),
        (61_022, format!("rcu: \tRCU restricting CPUs from NR_CPUS=8192 to nr_cpu_ids={cpus}.")),
        (72_533, "NR_IRQS: 524544, nr_irqs: 440, preallocated irqs: 16".into()),
        (84_120, "Console: colour VGA+ 80x25".into()),
        (84_902, "printk: console [tty0] enabled".into()),
        (102_377, "printk: console [ttyS0] enabled".into()),
        (180_541, "ACPI: Core revision 20220331".into()),
        (204_337, "APIC: Switch to symmetric I/O mode setup".into()),
        (312_074, format!("Calibrating delay loop (skipped) preset value.. {}.{:02} BogoMIPS (lpj={})", tsc_khz * 2 / 1000, (tsc_khz * 2 % 1000) / 10, tsc_khz * 4)),
        (401_225, "x86/cpu: User Mode Instruction Prevention (UMIP) activated".into()),
        (452_871, "smp: Bringing up secondary CPUs ...".into()),
        (531_904, format!("smp: Brought up 1 node, {cpus} CPUs")),
        (552_318, "devtmpfs: initialized".into()),
        (603_442, "NET: Registered PF_NETLINK/PF_ROUTE protocol family".into()),
        (811_733, "PCI: Using configuration type 1 for base access".into()),
        (1_004_512, "SCSI subsystem initialized".into()),
        (1_101_209, "NetLabel: Initializing".into()),
        (1_204_885, "clocksource: Switched to clocksource kvm-clock".into()),
        (1_301_557, "NET: Registered PF_INET protocol family".into()),
        (1_333_901, format!("TCP: Hash tables configured (established {ehash} bind {})", ehash.min(65_536))),
        (1_402_118, "NET: Registered PF_UNIX/PF_LOCAL protocol family".into()),
        (2_108_664, "Freeing unused kernel image (initmem) memory: 2780K".into()),
        (2_204_397, "Run /init as init process".into()),
        (2_611_280, "virtio_net virtio1 ens4: renamed from eth0".into()),
        (3_021_436, "EXT4-fs (sda1): mounted filesystem with ordered data mode. Quota mode: none.".into()),
        (4_512_902, "systemd[1]: systemd 252.31-1~deb12u1 running in system mode (+PAM +AUDIT +SELINUX +APPARMOR +IMA +SMACK +SECCOMP +GCRYPT -GNUTLS +OPENSSL +ACL +BLKID +CURL +ELFUTILS +FIDO2 +IDN2 -IDN +IPTC +KMOD +LIBCRYPTSETUP +LIBFDISK +PCRE2 -PWQUALITY +P11KIT +QRENCODE +TPM2 +BZIP2 +LZ4 +XZ +ZLIB +ZSTD -BPF_FRAMEWORK -XKBCOMMON +UTMP +SYSVINIT default-hierarchy=unified)".into()),
        (4_601_113, "systemd[1]: Detected virtualization kvm.".into()),
        (4_601_120, "systemd[1]: Detected architecture x86-64.".into()),
        (4_712_654, format!("systemd[1]: Hostname set to <{}>.", node.name)),
        (6_004_281, "EXT4-fs (sda1): re-mounted. Quota mode: none.".into()),
        (8_214_776, format!("audit: type=1400 audit({}): apparmor=\"STATUS\" operation=\"profile_load\" profile=\"unconfined\" name=\"lsb_release\" pid=372 comm=\"apparmor_parser\"", audit(8_214_776, 2))),
        (8_215_090, format!("audit: type=1400 audit({}): apparmor=\"STATUS\" operation=\"profile_load\" profile=\"unconfined\" name=\"nvidia_modprobe\" pid=373 comm=\"apparmor_parser\"", audit(8_215_090, 3))),
        (9_877_305, format!("audit: type=1400 audit({}): apparmor=\"STATUS\" operation=\"profile_load\" profile=\"unconfined\" name=\"cri-containerd.apparmor.d\" pid=641 comm=\"apparmor_parser\"", audit(9_877_305, 4))),
        (10_402_318, "bridge: filtering via arp/ip/ip6tables is no longer available by default. Update your scripts to load br_netfilter if you need this.".into()),
        (10_498_227, "Bridge firewalling registered".into()),
        (11_027_641, "Initializing XFRM netlink socket".into()),
        (12_880_152, "IPv6: ADDRCONF(NETDEV_CHANGE): flannel.1: link becomes ready".into()),
    ];
    for (t, text) in lines {
        if cilium && text.contains("flannel.1") {
            continue;
        }
        log.push(t, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn node() -> Node {
        Node {
            name: "w1".into(),
            cpus: 2,
            mem_kb: 4_017_352,
            ip: Ipv4Addr::new(10, 0, 1, 23),
            pod_net: 3,
            uptime_cs: 8_640_000,
        }
    }

    #[test]
    fn table_full_bursts_account_for_every_drop() {
        let mut rng = Rng::new(5);
        let veths = (0..3).map(|_| veth_name(&mut rng)).collect();
        let ep = FullEpisode {
            started_before_s: 60,
            ended_before_s: 1,
            drops_per_s: 100,
        };
        let plan = LogPlan {
            veths,
            replaced: 1,
            full: Some(ep),
            cilium: false,
        };
        let log = dmesg(&node(), 1_700_000_000, &plan, &mut rng);
        let printed = log.matches("table full").count() as u64;
        let suppressed: u64 = log
            .lines()
            .filter_map(|l| l.split("net_ratelimit: ").nth(1))
            .filter_map(|r| r.split(' ').next()?.parse::<u64>().ok())
            .sum();
        assert!(printed >= 100, "{printed}");
        // The last window's suppressed count would only be printed when the next one opens.
        let total = printed + suppressed;
        assert!(
            total.abs_diff(ep.drops()) <= 2 * 500,
            "{total} vs {}",
            ep.drops()
        );
        assert!(log.starts_with("[    0.000000] Linux version 6.1.0-28-cloud-amd64"));
        assert!(log.contains(
            "] nf_conntrack: nf_conntrack: table full in netns 4026532177, dropping packet\n"
        ));
    }
}
