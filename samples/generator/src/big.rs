//! `gen-samples big`: one large, healthy-looking bundle (or just its conntrack list) for
//! benchmarks, generated as a stream so that 10⁶ entries and more cost no more memory than 10³.
//!
//! The node is sized the way kube-proxy would size its table for the entry count —
//! `max(131072, 32768 × CPUs)` with the fewest CPUs that keep the table at most 60 % full — so the
//! bundle is a busy node, not a failing one, and the analyzer's full code path (every parser, every
//! rule) runs on it.

use crate::bundle::{self, ListSpec, Written, epoch};
use crate::cluster::{Cluster, Size, node_ip};
use crate::conntrack::ListFormat;
use crate::kernel_log::{self, LogPlan};
use crate::node::{self, Node};
use crate::rng::Rng;
use crate::scenarios::{AssembleInput, assemble};
use crate::stats::{self, Counters};
use crate::sysctl::{self, ConntrackSysctl, Interfaces};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Above this the busiest client → destination pairs would need more source ports than Linux's
/// ephemeral range has, and entries would repeat.
pub const MAX_ENTRIES: u64 = 8_000_000;

/// A large node and its table.
pub struct Big {
    pub node: Node,
    pub max: u64,
    pub list: ListSpec,
    veths: Vec<String>,
    rng: Rng,
}

impl Big {
    pub fn new(entries: u64, format: ListFormat, seed: u64) -> io::Result<Big> {
        if entries > MAX_ENTRIES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "--entries {entries} is above {MAX_ENTRIES}: the busiest flows would run out of source ports"
                ),
            ));
        }
        let mut rng = Rng::new(seed).fork("big");
        let cpus = [4u32, 8, 16, 32, 64, 96, 128]
            .into_iter()
            .find(|&c| (32_768 * u64::from(c)).max(131_072) * 6 / 10 >= entries)
            .unwrap_or(128);
        let node = Node {
            name: "wrk-bench-01".into(),
            cpus,
            mem_kb: u64::from(cpus) * 4_108_000,
            ip: node_ip(4),
            pod_net: 4,
            uptime_cs: 19 * 86_400 * 100 + 4_217,
        };
        let max = node.kube_proxy_max().max(entries);
        let local_pods = (entries / 9_000).clamp(30, 250) as usize;
        let cluster = Cluster::sized(&node, local_pods, Size::for_entries(entries), &mut rng);
        let classes = cluster.background(entries, &mut rng);
        let veths = (0..local_pods)
            .map(|_| kernel_log::veth_name(&mut rng))
            .collect();
        let list = ListSpec {
            classes,
            rng: rng.fork("list"),
            format,
        };
        Ok(Big {
            node,
            max,
            list,
            veths,
            rng,
        })
    }

    /// Writes only the conntrack list text; returns its size in bytes.
    pub fn write_list(&self, path: &Path) -> io::Result<u64> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        let n = io::copy(&mut self.list.reader(), &mut out)?;
        out.flush()?;
        Ok(n)
    }

    /// Writes the whole bundle.
    pub fn write_bundle(&self, path: &Path) -> io::Result<Written> {
        let started = epoch(2026, 11, 25, 13, 40, 0);
        let mut rng = self.rng.fork("collection");
        let node = &self.node;
        let count = self.list.entries();
        let buckets = self.max;
        let (first, rates) = (
            Counters {
                found: 6_120,
                invalid: 118_422,
                error: 531,
                search_restart: 13_377,
                clash_resolve: 1_804,
                ..Counters::default()
            },
            Counters {
                invalid: 3,
                search_restart: 1,
                ..Counters::default()
            },
        );
        let second = first.advanced(&rates, 5);
        let (rows0, rows1) = stats::per_cpu(&first, &second, node.cpus as usize, &mut rng);
        let dmesg = kernel_log::dmesg(
            node,
            started - node.uptime_secs(),
            &LogPlan {
                veths: self.veths.clone(),
                replaced: 0,
                full: None,
                cilium: false,
            },
            &mut rng,
        );
        let sysctl = sysctl::net_sysctl(
            node,
            ConntrackSysctl {
                max: self.max,
                buckets,
                count,
                kube_proxy: true,
            },
            &Interfaces {
                veths: &self.veths,
                cilium: false,
            },
        );
        let collection = assemble(
            node,
            started,
            AssembleInput {
                meminfo: node::meminfo(node, count, &mut rng),
                uptime: node::uptime(node, &mut rng),
                dmesg,
                sysctl,
                list: self.list.clone(),
                extra: crate::layers::Extra::default(),
                samples: [(count, rows0), (count, rows1)],
            },
            &mut rng,
        );
        bundle::write_bundle(path, &collection)
    }
}
