//! Mergeable aggregates: what a parser produces for a member instead of a list of every record.
//!
//! Every type here merges associatively and — for everything that ends up in output —
//! commutatively, so a member split into line-aligned chunks and parsed in parallel gives the same
//! result as one sequential pass, whatever order the chunks finish in. Order-sensitive data
//! (example lines) is kept by line number, never by arrival.

use serde::Serialize;
use std::hash::Hash;

/// Hash maps keyed by bundle data: foldhash is several times faster than SipHash on the small keys
/// here (addresses, ports) and, seeded per map, still keeps crafted keys from colliding on purpose.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Aggregates that combine: `a.combine(b)` must equal parsing `a`'s lines followed by `b`'s.
pub trait Merge {
    fn combine(&mut self, other: Self);
}

/// A line quoted as evidence: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct EvidenceLine {
    /// Bundle-relative member path.
    pub member: String,
    /// 1-based line number in the member.
    pub line: u64,
    /// The line, lossily decoded; hostile text is escaped at render time, not here.
    pub text: String,
}

impl EvidenceLine {
    pub fn new(member: &str, line: u64, raw: &[u8]) -> Self {
        // Lines quoted as evidence are capped so a crafted 20 MB line cannot bloat a report.
        const MAX: usize = 512;
        let raw = &raw[..raw.len().min(MAX)];
        EvidenceLine {
            member: member.to_string(),
            line,
            text: String::from_utf8_lossy(raw).trim_end().to_string(),
        }
    }
}

/// The first and last few lines of a kind, by line number, and how many there were in all.
///
/// Both ends matter: the first `table full` line says when trouble began, the last how recently it
/// was still happening.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LineSample {
    pub total: u64,
    pub first: Vec<EvidenceLine>,
    pub last: Vec<EvidenceLine>,
}

impl LineSample {
    const KEEP: usize = 3;

    pub fn push(&mut self, line: EvidenceLine) {
        self.total += 1;
        if self.first.len() < Self::KEEP {
            self.first.push(line);
            return;
        }
        self.last.push(line);
        if self.last.len() > Self::KEEP {
            self.last.remove(0);
        }
    }

    /// All kept lines in line order, first ones then last ones.
    pub fn lines(&self) -> impl Iterator<Item = &EvidenceLine> {
        self.first.iter().chain(self.last.iter())
    }
}

impl Merge for LineSample {
    fn combine(&mut self, other: Self) {
        let total = self.total + other.total;
        let mut all: Vec<EvidenceLine> = std::mem::take(&mut self.first);
        all.append(&mut self.last);
        all.extend(other.first);
        all.extend(other.last);
        all.sort();
        all.dedup();
        let keep_last = all.len().saturating_sub(Self::KEEP).min(Self::KEEP);
        let last = all.split_off(all.len() - keep_last);
        all.truncate(Self::KEEP);
        *self = LineSample {
            total,
            first: all,
            last,
        };
    }
}

/// The first few lines of a kind, by line number, and how many there were: cheaper than
/// [`LineSample`] when only the start matters, because a line past the first few is never copied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirstLines {
    pub total: u64,
    pub first: Vec<EvidenceLine>,
}

impl FirstLines {
    const KEEP: usize = 3;

    /// Counts a line; `make` runs only for a line that will be kept.
    pub fn push_with(&mut self, make: impl FnOnce() -> EvidenceLine) {
        self.total += 1;
        if self.first.len() < Self::KEEP {
            self.first.push(make());
        }
    }

    pub fn lines(&self) -> impl Iterator<Item = &EvidenceLine> {
        self.first.iter()
    }
}

impl Merge for FirstLines {
    fn combine(&mut self, other: Self) {
        self.total += other.total;
        self.first.extend(other.first);
        self.first.sort();
        self.first.dedup();
        self.first.truncate(Self::KEEP);
    }
}

/// A key that mostly fits in 128 bits (an IPv4 client → service pair, an IPv4 service). Packed
/// keys are counted in a map of two-word keys: hashed and compared as two integers, 24 bytes a
/// slot instead of 48, so a top-k's table stays in cache. Keys that do not fit (IPv6) are
/// counted as themselves. Packing is a bijection, so it changes no count and no result.
pub trait PackedKey: Hash + Eq + Clone + Ord {
    fn pack(&self) -> Option<u128>;
    /// The key [`PackedKey::pack`] made `packed` from.
    fn unpack(packed: u128) -> Self;
}

macro_rules! packed_integer {
    ($($t:ty),*) => {$(
        impl PackedKey for $t {
            fn pack(&self) -> Option<u128> {
                Some(u128::from(*self))
            }
            fn unpack(packed: u128) -> Self {
                packed as $t
            }
        }
    )*};
}
packed_integer!(u8, u16, u32, u64);

/// Heavy hitters by the mergeable Misra–Gries algorithm (Agarwal et al., "Mergeable summaries",
/// PODS 2012).
///
/// Counts are exact while at most `2 × capacity` distinct keys have been seen — every realistic
/// top-talker question on a node. Beyond that each reported count may be too low by at most
/// [`TopK::error_bound`] (≤ total / (capacity + 1)), and any key whose true count exceeds that bound
/// is guaranteed to be present. Memory is O(capacity) whatever the input size.
///
/// Keys live in two maps (packed and not, see [`PackedKey`]) that together are one summary: the
/// capacity and every reduction count both.
#[derive(Debug, Clone)]
pub struct TopK<K> {
    capacity: usize,
    /// Packed keys as two words: `u128` would align slots to 16 bytes and make them 32 long.
    packed: FastMap<[u64; 2], u64>,
    unpacked: FastMap<K, u64>,
    total: u64,
    error: u64,
}

fn split(p: u128) -> [u64; 2] {
    [(p >> 64) as u64, p as u64]
}

fn join([high, low]: [u64; 2]) -> u128 {
    u128::from(high) << 64 | u128::from(low)
}

impl<K: PackedKey> TopK<K> {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        TopK {
            capacity,
            // Both grow on demand: a chunk of a small member never needs the 2 × capacity slots
            // a reduction point would reserve, and unpacked keys (IPv6) are rare on real nodes.
            packed: FastMap::default(),
            unpacked: FastMap::default(),
            total: 0,
            error: 0,
        }
    }

    #[inline]
    pub fn add(&mut self, key: K) {
        self.add_n(key, 1);
    }

    #[inline]
    pub fn add_n(&mut self, key: K, n: u64) {
        self.total += n;
        match key.pack() {
            Some(p) => *self.packed.entry(split(p)).or_insert(0) += n,
            None => *self.unpacked.entry(key).or_insert(0) += n,
        }
        self.reduce_if_full();
    }

    fn len(&self) -> usize {
        self.packed.len() + self.unpacked.len()
    }

    #[inline]
    fn reduce_if_full(&mut self) {
        if self.len() > 2 * self.capacity {
            self.reduce();
        }
    }

    /// Subtracts the (capacity+1)-th largest count from every counter and drops those at zero: the
    /// batched form of Misra–Gries' decrement, amortised O(1) per key.
    #[cold]
    fn reduce(&mut self) {
        let mut values: Vec<u64> = self
            .packed
            .values()
            .chain(self.unpacked.values())
            .copied()
            .collect();
        let (_, nth, _) = values.select_nth_unstable_by(self.capacity, |a, b| b.cmp(a));
        let cut = *nth;
        let keep = |c: &mut u64| {
            *c = c.saturating_sub(cut);
            *c > 0
        };
        self.packed.retain(|_, c| keep(c));
        self.unpacked.retain(|_, c| keep(c));
        self.error += cut;
    }

    /// Events counted, exact.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The most a reported count can be below the true count (0 while counts are exact).
    pub fn error_bound(&self) -> u64 {
        self.error
    }

    /// The `n` largest keys, ties broken by key so output never depends on hashing.
    pub fn top(&self, n: usize) -> Vec<(K, u64)> {
        let mut all: Vec<(K, u64)> = self
            .packed
            .iter()
            .map(|(p, c)| (K::unpack(join(*p)), *c))
            .chain(self.unpacked.iter().map(|(k, c)| (k.clone(), *c)))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl<K: PackedKey> Merge for TopK<K> {
    fn combine(&mut self, other: Self) {
        self.total += other.total;
        self.error += other.error;
        for (k, c) in other.packed {
            *self.packed.entry(k).or_insert(0) += c;
        }
        for (k, c) in other.unpacked {
            *self.unpacked.entry(k).or_insert(0) += c;
        }
        self.reduce_if_full();
    }
}

impl<K> PartialEq for TopK<K>
where
    K: Hash + Eq,
{
    fn eq(&self, other: &Self) -> bool {
        self.total == other.total
            && self.error == other.error
            && self.packed == other.packed
            && self.unpacked == other.unpacked
    }
}

/// Counts by a few byte-string keys on a hot path (protocol names, TCP states): a linear scan of
/// a handful of keys beats a map lookup that must first check the bytes are UTF-8. Hostile input
/// cannot grow it: past [`ByteCounts::MAX_KEYS`] distinct keys, the rest count under `other`.
#[derive(Debug, Clone, Default)]
pub struct ByteCounts(Vec<(Box<[u8]>, u64)>);

impl ByteCounts {
    pub const MAX_KEYS: usize = 64;

    pub fn bump(&mut self, key: &[u8]) {
        self.add(key, 1);
    }

    fn add(&mut self, key: &[u8], n: u64) {
        if let Some(slot) = self.0.iter_mut().find(|(k, _)| **k == *key) {
            slot.1 = slot.1.saturating_add(n);
        } else if self.0.len() < Self::MAX_KEYS - 1 || key == b"other" {
            // One slot stays free for `other`, so the overflow always has somewhere to go.
            self.0.push((key.into(), n));
        } else {
            self.add(b"other", n);
        }
    }

    /// The count of a key (0 when never seen).
    pub fn get(&self, key: &str) -> u64 {
        self.0
            .iter()
            .find(|(k, _)| **k == *key.as_bytes())
            .map_or(0, |(_, v)| *v)
    }

    /// As sorted, printable counts.
    pub fn to_counts(&self) -> Counts {
        let mut c = Counts::new();
        for (k, v) in &self.0 {
            *c.entry(String::from_utf8_lossy(k).into_owned())
                .or_insert(0) += v;
        }
        c
    }
}

impl Merge for ByteCounts {
    fn combine(&mut self, other: Self) {
        for (k, v) in other.0 {
            self.add(&k, v);
        }
    }
}

impl PartialEq for ByteCounts {
    fn eq(&self, other: &Self) -> bool {
        self.to_counts() == other.to_counts()
    }
}

/// Counts by a small closed key set (protocols, states), kept sorted for stable output.
pub type Counts = std::collections::BTreeMap<String, u64>;

impl Merge for Counts {
    fn combine(&mut self, other: Self) {
        for (k, v) in other {
            let slot = self.entry(k).or_insert(0);
            *slot = slot.saturating_add(v);
        }
    }
}

impl Merge for u64 {
    fn combine(&mut self, other: Self) {
        *self = self.saturating_add(other);
    }
}

impl<T: Merge> Merge for Option<T> {
    fn combine(&mut self, other: Self) {
        match (self.as_mut(), other) {
            (Some(a), Some(b)) => a.combine(b),
            (None, Some(b)) => *self = Some(b),
            (_, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Strings never pack: the tests below exercise the unpacked map with them.
    impl PackedKey for &'static str {
        fn pack(&self) -> Option<u128> {
            None
        }
        fn unpack(_: u128) -> Self {
            unreachable!("never packed")
        }
    }

    fn ev(line: u64) -> EvidenceLine {
        EvidenceLine::new("m", line, format!("l{line}").as_bytes())
    }

    #[test]
    fn line_sample_keeps_first_and_last_whatever_the_merge_order() {
        let mut a = LineSample::default();
        let mut b = LineSample::default();
        for l in 1..=5 {
            a.push(ev(l));
        }
        for l in 6..=10 {
            b.push(ev(l));
        }
        let mut ab = a.clone();
        ab.combine(b.clone());
        let mut ba = b;
        ba.combine(a);
        assert_eq!(ab, ba);
        assert_eq!(ab.total, 10);
        let lines: Vec<u64> = ab.lines().map(|l| l.line).collect();
        assert_eq!(lines, [1, 2, 3, 8, 9, 10]);
    }

    #[test]
    fn byte_counts_fold_keys_past_the_cap_into_other() {
        // Regression (review): the 64th distinct key recursed forever looking for `other`.
        let mut c = ByteCounts::default();
        for i in 0..200u32 {
            c.bump(format!("p{i}").as_bytes());
        }
        assert_eq!(c.get("other"), 200 - (ByteCounts::MAX_KEYS as u64 - 1));
        assert_eq!(c.to_counts().len(), ByteCounts::MAX_KEYS);
    }

    #[test]
    fn top_k_is_exact_below_capacity() {
        let mut t = TopK::new(2);
        for k in ["a", "b", "a", "c", "a", "b"] {
            t.add(k);
        }
        assert_eq!(t.top(2), vec![("a", 3), ("b", 2)]);
        assert_eq!(t.error_bound(), 0);
    }

    #[test]
    fn top_k_keeps_heavy_hitters_beyond_capacity() {
        let mut t = TopK::new(4);
        for i in 0..10_000u32 {
            t.add(i);
            t.add(u32::MAX);
        }
        let top = t.top(1);
        assert_eq!(top[0].0, u32::MAX);
        assert!(top[0].1 + t.error_bound() >= 10_000);
        assert!(t.error_bound() <= t.total() / 5);
    }

    proptest! {
        #[test]
        fn top_k_merge_of_chunks_equals_one_pass_while_exact(
            keys in proptest::collection::vec(0u8..20, 0..400),
            cut in 0usize..400,
        ) {
            let cut = cut.min(keys.len());
            let mut whole = TopK::new(16);
            keys.iter().for_each(|k| whole.add(*k));
            let mut left = TopK::new(16);
            let mut right = TopK::new(16);
            keys[..cut].iter().for_each(|k| left.add(*k));
            keys[cut..].iter().for_each(|k| right.add(*k));
            left.combine(right);
            prop_assert_eq!(left.top(20), whole.top(20));
        }

        #[test]
        fn top_k_error_stays_within_the_bound(keys in proptest::collection::vec(0u16..500, 0..3000)) {
            let mut t = TopK::new(8);
            let mut exact = std::collections::HashMap::new();
            for k in &keys {
                t.add(*k);
                *exact.entry(*k).or_insert(0u64) += 1;
            }
            prop_assert!(t.error_bound() <= t.total() / 9);
            for (k, c) in t.top(8) {
                prop_assert!(c <= exact[&k] && exact[&k] <= c + t.error_bound());
            }
        }
    }
}
