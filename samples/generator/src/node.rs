//! The `node/` members: `uname -a`, `/etc/os-release`, `/proc/meminfo`, `nproc`, `/proc/uptime`.
//!
//! All sample nodes run Debian 12 with the 6.1 cloud kernel, the most common shape of a
//! self-managed Kubernetes worker at the time of writing. The analyzer reads the CPU count and
//! memory to judge whether `nf_conntrack_max` fits the node (kube-proxy's `32768 × CPUs`, the
//! kernel's RAM-derived default), so these files are sized to match each scenario's story.

use crate::rng::Rng;
use std::fmt::Write;
use std::net::Ipv4Addr;

pub const KERNEL_RELEASE: &str = "6.1.0-28-cloud-amd64";

/// The machine a scenario describes.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub cpus: u32,
    /// `MemTotal` in kB.
    pub mem_kb: u64,
    pub ip: Ipv4Addr,
    /// Third octet of the node's pod CIDR: pods here are `10.244.<pod_net>.0/24`.
    pub pod_net: u8,
    /// Seconds since boot when the collection started, in hundredths.
    pub uptime_cs: u64,
}

impl Node {
    /// The kernel's default `nf_conntrack_buckets` (= `nf_conntrack_max` on ≥ 5.15) for this
    /// much RAM: `nf_conntrack_init_start()` in 6.1.
    pub fn kernel_default_max(&self) -> u64 {
        let bytes = self.mem_kb * 1024;
        if bytes > 4 << 30 {
            262_144
        } else if bytes > 1 << 30 {
            65_536
        } else {
            (bytes / 16_384 / 8).max(1024)
        }
    }

    /// What kube-proxy sets with its default `conntrack` configuration:
    /// `max(min 131072, maxPerCore 32768 × CPUs)`.
    pub fn kube_proxy_max(&self) -> u64 {
        (32_768 * u64::from(self.cpus)).max(131_072)
    }

    pub fn uptime_secs(&self) -> u64 {
        self.uptime_cs / 100
    }
}

pub fn uname(node: &Node) -> String {
    format!(
        "Linux {} {KERNEL_RELEASE} #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22) x86_64 GNU/Linux\n",
        node.name
    )
}

pub fn os_release() -> &'static str {
    concat!(
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        "NAME=\"Debian GNU/Linux\"\n",
        "VERSION_ID=\"12\"\n",
        "VERSION=\"12 (bookworm)\"\n",
        "VERSION_CODENAME=bookworm\n",
        "ID=debian\n",
        "HOME_URL=\"https://www.debian.org/\"\n",
        "SUPPORT_URL=\"https://www.debian.org/support\"\n",
        "BUG_REPORT_URL=\"https://bugs.debian.org/\"\n",
    )
}

pub fn cpus(node: &Node) -> String {
    format!("{}\n", node.cpus)
}

/// `/proc/uptime`: seconds since boot and the idle time summed over CPUs, both `%lu.%02lu`.
pub fn uptime(node: &Node, rng: &mut Rng) -> String {
    let idle_permille = rng.range(550, 800);
    let idle = node.uptime_cs * u64::from(node.cpus) * idle_permille / 1000;
    format!(
        "{}.{:02} {}.{:02}\n",
        node.uptime_cs / 100,
        node.uptime_cs % 100,
        idle / 100,
        idle % 100
    )
}

/// `/proc/meminfo` of a 6.1 kernel, every field in kernel order. `conntrack_entries` feeds the
/// unreclaimable slab: each entry costs about 320 bytes of `nf_conntrack` slab.
pub fn meminfo(node: &Node, conntrack_entries: u64, rng: &mut Rng) -> String {
    let total = node.mem_kb;
    let part = |rng: &mut Rng, lo: u64, hi: u64| total * rng.range(lo, hi) / 1000;
    let free = part(rng, 60, 180);
    let buffers = part(rng, 8, 25);
    let cached = part(rng, 250, 420);
    let anon = part(rng, 220, 380);
    let shmem = part(rng, 4, 12);
    let active_file = cached * rng.range(300, 550) / 1000;
    let inactive_file = cached - active_file + buffers;
    let anon_active_part = anon * rng.range(20, 80) / 1000;
    let active_anon = anon_active_part + shmem;
    let inactive_anon = anon - anon_active_part;
    let sreclaimable = part(rng, 25, 60);
    let sunreclaim = part(rng, 12, 30) + conntrack_entries * 320 / 1024;
    let available = free + cached * 85 / 100 + sreclaimable * 80 / 100;
    let kernel_stack = 2_800 * u64::from(node.cpus) + rng.range(6_000, 14_000);
    let page_tables = anon / 95;
    let commit_limit = total / 2;
    let committed = anon * 21 / 10 + rng.range(100_000, 400_000);
    let percpu = 1_536 * u64::from(node.cpus) + rng.range(500, 2_000);
    let anon_huge = anon * rng.range(80, 260) / 1000 / 2048 * 2048;
    let direct_4k = rng.range(140_000, 260_000) / 4 * 4;
    let direct_2m = (total + 2_000_000 - direct_4k) / 2048 * 2048;
    let rows: &[(&str, u64)] = &[
        ("MemTotal", total),
        ("MemFree", free),
        ("MemAvailable", available),
        ("Buffers", buffers),
        ("Cached", cached),
        ("SwapCached", 0),
        ("Active", active_anon + active_file),
        ("Inactive", inactive_anon + inactive_file),
        ("Active(anon)", active_anon),
        ("Inactive(anon)", inactive_anon),
        ("Active(file)", active_file),
        ("Inactive(file)", inactive_file),
        ("Unevictable", 0),
        ("Mlocked", 0),
        ("SwapTotal", 0),
        ("SwapFree", 0),
        ("Zswap", 0),
        ("Zswapped", 0),
        ("Dirty", rng.range(40, 900)),
        ("Writeback", 0),
        ("AnonPages", anon),
        ("Mapped", cached * rng.range(90, 200) / 1000),
        ("Shmem", shmem),
        ("KReclaimable", sreclaimable),
        ("Slab", sreclaimable + sunreclaim),
        ("SReclaimable", sreclaimable),
        ("SUnreclaim", sunreclaim),
        ("KernelStack", kernel_stack),
        ("PageTables", page_tables),
        ("SecPageTables", 0),
        ("NFS_Unstable", 0),
        ("Bounce", 0),
        ("WritebackTmp", 0),
        ("CommitLimit", commit_limit),
        ("Committed_AS", committed),
        ("VmallocTotal", 34_359_738_367),
        ("VmallocUsed", 18_000 + 1_200 * u64::from(node.cpus)),
        ("VmallocChunk", 0),
        ("Percpu", percpu),
        ("HardwareCorrupted", 0),
        ("AnonHugePages", anon_huge),
        ("ShmemHugePages", 0),
        ("ShmemPmdMapped", 0),
        ("FileHugePages", 0),
        ("FilePmdMapped", 0),
        ("HugePages_Total", 0),
        ("HugePages_Free", 0),
        ("HugePages_Rsvd", 0),
        ("HugePages_Surp", 0),
        ("Hugepagesize", 2048),
        ("Hugetlb", 0),
        ("DirectMap4k", direct_4k),
        ("DirectMap2M", direct_2m),
        ("DirectMap1G", 0),
    ];
    let mut out = String::new();
    for (name, value) in rows {
        // fs/proc/meminfo.c: the name padded to 16 columns, the value to 8, then " kB";
        // the HugePages_ counts have no unit.
        let label = format!("{name}:");
        let unit = if name.starts_with("HugePages_") {
            ""
        } else {
            " kB"
        };
        let _ = writeln!(out, "{label:<16}{value:>8}{unit}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        Node {
            name: "w1".into(),
            cpus: 2,
            mem_kb: 4_017_352,
            ip: Ipv4Addr::new(10, 0, 1, 23),
            pod_net: 3,
            uptime_cs: 12_345_678,
        }
    }

    #[test]
    fn meminfo_pads_like_the_kernel() {
        let m = meminfo(&node(), 1000, &mut Rng::new(1));
        assert!(m.starts_with("MemTotal:        4017352 kB\n"), "{m}");
        assert!(m.contains("\nHugePages_Total:       0\n"));
        assert!(m.contains("\nHugepagesize:       2048 kB\n"));
        assert!(m.contains("\nVmallocTotal:   34359738367 kB\n"));
    }

    #[test]
    fn kernel_default_follows_ram() {
        assert_eq!(node().kernel_default_max(), 65_536);
        let big = Node {
            mem_kb: 32_873_772,
            ..node()
        };
        assert_eq!(big.kernel_default_max(), 262_144);
        assert_eq!(big.kube_proxy_max(), 131_072);
    }
}
