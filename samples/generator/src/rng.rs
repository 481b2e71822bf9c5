//! The only source of randomness in the generator: SplitMix64 (Steele, Lea and Flood, "Fast
//! splittable pseudorandom number generators", 2014), written out here so that the byte stream of
//! every sample is fixed by its seed alone. A crate such as `rand` would tie the committed samples
//! to that crate's algorithm choices, which change between major versions; these ten lines do not.
//!
//! Only integer arithmetic reaches the output: floating point is avoided on purpose so that no libm
//! difference between platforms can change a byte.

/// A SplitMix64 stream. Cheap to copy, so a sub-stream can be forked per member or per flow class
/// and the members stay independent of each other's length.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// An independent stream for one purpose, named so that adding a new stream elsewhere does not
    /// shift the numbers every existing member gets.
    pub fn fork(&self, label: &str) -> Rng {
        let mut h = self.state ^ 0x6a09_e667_f3bc_c908;
        for b in label.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut r = Rng::new(h);
        r.next_u64();
        Rng::new(r.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias for the small `n` used here is far
    /// below anything visible in a sample). `n == 0` yields 0.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi, "empty range {lo}..={hi}");
        lo + self.below(hi - lo + 1)
    }

    /// `u32` convenience for [`Rng::range`].
    pub fn range32(&mut self, lo: u32, hi: u32) -> u32 {
        self.range(u64::from(lo), u64::from(hi)) as u32
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Splits `total` into `parts` uneven non-negative shares that add up to `total` exactly, the
    /// way per-CPU counters differ: each share gets a random weight between 4 and 16.
    pub fn split(&mut self, total: u64, parts: usize) -> Vec<u64> {
        if parts == 0 {
            return Vec::new();
        }
        let weights: Vec<u64> = (0..parts).map(|_| self.range(4, 16)).collect();
        let sum: u64 = weights.iter().sum();
        let mut shares: Vec<u64> = weights
            .iter()
            .map(|w| (u128::from(total) * u128::from(*w) / u128::from(sum)) as u64)
            .collect();
        let given: u64 = shares.iter().sum();
        // The rounding remainder goes to random parts, one unit each.
        for _ in 0..(total - given) {
            let i = self.below(parts as u64) as usize;
            shares[i] += 1;
        }
        shares
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // First outputs of the reference C implementation seeded with 1234567.
        let mut r = Rng::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn split_adds_up_to_the_total() {
        let mut r = Rng::new(7);
        for total in [0, 1, 5, 1234, 987_654] {
            let parts = r.split(total, 8);
            assert_eq!(parts.len(), 8);
            assert_eq!(parts.iter().sum::<u64>(), total);
        }
    }

    #[test]
    fn forks_with_different_labels_differ() {
        let r = Rng::new(42);
        assert_ne!(r.fork("a").next_u64(), r.fork("b").next_u64());
        assert_eq!(r.fork("a").next_u64(), r.fork("a").next_u64());
    }
}
