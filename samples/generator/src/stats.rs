//! The sampled counter members: `conntrack -S`, `/proc/net/stat/nf_conntrack` and `conntrack -C`.
//!
//! Counters are per CPU and cumulative since boot, so a scenario states totals at the first
//! sample and rates between samples; the totals are split unevenly over the CPUs as real ones
//! are. Both printers show the same counters (they are read milliseconds apart). The `-S` rows
//! follow conntrack-tools 1.4.7 on a ≥ 5.15 kernel (`cpu=%-4u\t`, `key=value ` pairs in netlink
//! enum order, a trailing space); `/proc` rows are `%08x` with the global entry count repeated in
//! the first column and constant zeros where 6.x no longer counts (FORMATS-DETAIL.md §3).

use crate::rng::Rng;
use std::fmt::Write;

/// The per-netns counters `conntrack -S` prints on kernel 6.x, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub found: u64,
    pub invalid: u64,
    pub insert: u64,
    pub insert_failed: u64,
    pub drop: u64,
    pub early_drop: u64,
    pub error: u64,
    pub search_restart: u64,
    pub clash_resolve: u64,
    pub chaintoolong: u64,
}

impl Counters {
    fn fields(&self) -> [u64; 10] {
        [
            self.found,
            self.invalid,
            self.insert,
            self.insert_failed,
            self.drop,
            self.early_drop,
            self.error,
            self.search_restart,
            self.clash_resolve,
            self.chaintoolong,
        ]
    }

    fn from_fields(f: [u64; 10]) -> Counters {
        Counters {
            found: f[0],
            invalid: f[1],
            insert: f[2],
            insert_failed: f[3],
            drop: f[4],
            early_drop: f[5],
            error: f[6],
            search_restart: f[7],
            clash_resolve: f[8],
            chaintoolong: f[9],
        }
    }

    /// `self + rate × seconds`, field by field.
    pub fn advanced(&self, rate: &Counters, seconds: u64) -> Counters {
        let (a, r) = (self.fields(), rate.fields());
        Counters::from_fields(std::array::from_fn(|i| a[i] + r[i] * seconds))
    }
}

const NAMES: [&str; 10] = [
    "found",
    "invalid",
    "insert",
    "insert_failed",
    "drop",
    "early_drop",
    "error",
    "search_restart",
    "clash_resolve",
    "chaintoolong",
];

/// Per-CPU counters for two samples: the first sample's totals split over CPUs, and the second
/// sample's rows grown from the first (every CPU's counters only ever rise).
pub fn per_cpu(
    first: &Counters,
    second: &Counters,
    cpus: usize,
    rng: &mut Rng,
) -> (Vec<Counters>, Vec<Counters>) {
    let (a, b) = (first.fields(), second.fields());
    let mut rows0 = vec![[0u64; 10]; cpus];
    let mut rows1 = vec![[0u64; 10]; cpus];
    for i in 0..10 {
        debug_assert!(b[i] >= a[i], "{} falls between samples", NAMES[i]);
        for (cpu, v) in rng.split(a[i], cpus).into_iter().enumerate() {
            rows0[cpu][i] = v;
        }
        for (cpu, v) in rng.split(b[i] - a[i], cpus).into_iter().enumerate() {
            rows1[cpu][i] = rows0[cpu][i] + v;
        }
    }
    (
        rows0.into_iter().map(Counters::from_fields).collect(),
        rows1.into_iter().map(Counters::from_fields).collect(),
    )
}

/// `conntrack -S`.
pub fn conntrack_s(rows: &[Counters]) -> String {
    let mut out = String::new();
    for (cpu, row) in rows.iter().enumerate() {
        let _ = write!(out, "cpu={cpu:<4}\t");
        for (name, v) in NAMES.iter().zip(row.fields()) {
            let _ = write!(out, "{name}={v} ");
        }
        out.push('\n');
    }
    out
}

/// `/proc/net/stat/nf_conntrack` of a ≥ 5.15 kernel (`ct_cpu_seq_show`).
pub fn proc_stat(entries: u64, rows: &[Counters]) -> String {
    let mut out = String::from(
        "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:08x}  {:08x} {:08x} {:08x} {:08x} {:08x} {:08x} {:08x} {:08x} {:08x} {:08x} {:08x} {:08x}  {:08x} {:08x} {:08x} {:08x}",
            entries,
            r.clash_resolve,
            r.found,
            0,
            r.invalid,
            0,
            0,
            r.chaintoolong,
            r.insert,
            r.insert_failed,
            r.drop,
            r.early_drop,
            r.error,
            0,
            0,
            0,
            r.search_restart,
        );
    }
    out
}

/// `conntrack -C`.
pub fn count(entries: u64) -> String {
    format!("{entries}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conntrack_s_rows_have_the_tab_and_trailing_space() {
        let row = Counters {
            drop: 46,
            ..Counters::default()
        };
        assert_eq!(
            conntrack_s(&[row]),
            "cpu=0   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=46 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n"
        );
    }

    #[test]
    fn proc_stat_repeats_the_global_count_in_hex() {
        let row = Counters {
            drop: 255,
            ..Counters::default()
        };
        let text = proc_stat(65_536, &[row, row]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[1],
            "00010000  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 000000ff 00000000 00000000  00000000 00000000 00000000 00000000"
        );
        assert_eq!(lines[1], lines[2]);
    }

    #[test]
    fn per_cpu_rows_add_up_and_only_rise() {
        let first = Counters {
            drop: 1000,
            found: 77,
            ..Counters::default()
        };
        let second = first.advanced(
            &Counters {
                drop: 200,
                ..Counters::default()
            },
            5,
        );
        let (r0, r1) = per_cpu(&first, &second, 4, &mut Rng::new(3));
        assert_eq!(r0.iter().map(|r| r.drop).sum::<u64>(), 1000);
        assert_eq!(r1.iter().map(|r| r.drop).sum::<u64>(), 2000);
        assert!(
            r0.iter()
                .zip(&r1)
                .all(|(a, b)| b.drop >= a.drop && b.found == a.found)
        );
    }
}
