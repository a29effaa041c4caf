//! numpy's legacy `RandomState` integer stream, bit for bit.
//!
//! Unchanged Python workers build the CPU matrices with
//! `numpy.random.RandomState(seed32).randint(-500, 501, (n, n), int64)` and the validator
//! picks dynamic matrix sizes with `RandomState(seed32).randint(lo, hi + 1)`
//! (byteleap-protocol.md §3.2, §3.3). A Rust validator must draw exactly the same integers,
//! so this module reproduces the two layers numpy uses:
//!
//! 1. **MT19937** seeded from one `u32` (`init_genrand`), with the standard twist and
//!    tempering.
//! 2. **Masked rejection** for bounded integers (numpy's legacy `_masked=True` path): with
//!    `range = high − 1 − low` and `mask` the smallest `2^k − 1 ≥ range`, draw
//!    `v = next_u32() & mask` until `v ≤ range`. Ranges that fit in 32 bits use **one 32-bit
//!    draw per attempt and no buffering**; wider ranges use a 64-bit draw made of two 32-bit
//!    outputs (first one is the high word). A zero range returns `low` without drawing.
//!
//! # Why not `rand_mt`
//!
//! The `rand_mt` crate matches numpy bit for bit (the tests use it as an oracle over
//! millions of outputs), but it produces one word per call with a refill check and tempering
//! each time: about 5 ns per word here, i.e. 40 ms of the 50 ms budget for the 8.2 million
//! words of an n = 2000 CPU verification. This generator twists and tempers a whole block of
//! 624 words at once (loops the compiler vectorises), and [`LegacyRandomState::fill_cpu_values`]
//! runs the masked rejection branch-free over the block.

use super::ChallengeError;

/// MT19937 state size in words (§3.2 "standard MT19937"; reference constant `N`).
const N: usize = 624;
/// MT19937 middle word offset (§3.2 "standard MT19937"; reference constant `M`).
const M: usize = 397;
/// Twist matrix (§3.2 "standard MT19937"; reference constant `MATRIX_A`).
const MATRIX_A: u32 = 0x9908_B0DF;
/// Seeding multiplier of `init_genrand`, as in numpy's `mt19937_seed` (§3.2).
const SEED_MULTIPLIER: u32 = 1_812_433_253;

/// numpy-legacy-compatible random stream (`numpy.random.RandomState(seed)` for an integer seed).
#[derive(Clone)]
pub struct LegacyRandomState {
    state: [u32; N],
    /// Tempered outputs of the current block.
    block: [u32; N],
    /// Next unread word of `block`; `N` means the block is used up.
    next: usize,
}

impl std::fmt::Debug for LegacyRandomState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The 5 KB state is useless in logs.
        f.debug_struct("LegacyRandomState").finish_non_exhaustive()
    }
}

impl LegacyRandomState {
    /// Seeds like `numpy.random.RandomState(seed)` with an integer in `[0, 2^32)`:
    /// `mt[0] = seed`, `mt[i] = 1812433253 · (mt[i−1] ^ (mt[i−1] >> 30)) + i` (mod 2³²).
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; N];
        let mut previous = seed;
        for (i, word) in state.iter_mut().enumerate() {
            *word = previous;
            previous = SEED_MULTIPLIER.wrapping_mul(previous ^ (previous >> 30)).wrapping_add(i as u32 + 1);
        }
        Self { state, block: [0; N], next: N }
    }

    /// Next tempered 32-bit MT19937 output (numpy's `next_uint32`).
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        if self.next >= N {
            self.refill();
        }
        let word = self.block.get(self.next).copied().unwrap_or_default();
        self.next += 1;
        word
    }

    /// numpy's `mt19937_next64`: the first 32-bit output is the high word.
    pub fn next_u64(&mut self) -> u64 {
        let high = u64::from(self.next_u32());
        let low = u64::from(self.next_u32());
        (high << 32) | low
    }

    /// `RandomState.randint(low, high_exclusive)` with int64 output, as numpy's legacy
    /// masked-rejection sampler does it.
    pub fn randint(&mut self, low: i64, high_exclusive: i64) -> Result<i64, ChallengeError> {
        Ok(BoundedDraw::new(low, high_exclusive)?.draw(self))
    }

    /// Appends `count` draws of `randint(−500, 501)` (the CPU matrix values, §3.2) to `out`,
    /// exactly as repeated [`Self::randint`] calls would, but a block at a time.
    pub fn fill_cpu_values(&mut self, out: &mut Vec<i16>, count: usize) {
        self.cpu_values(count, |chunk| out.extend_from_slice(chunk));
    }

    /// Draws `count` CPU matrix values and drops them (to advance the stream past rows of A
    /// that verification does not need).
    pub fn skip_cpu_values(&mut self, count: usize) {
        self.cpu_values(count, |_| {});
    }

    /// Runs the masked rejection for range 1000 / mask 1023 over whole blocks and hands the
    /// accepted values to `sink`, in order, until `count` values were produced.
    fn cpu_values(&mut self, count: usize, mut sink: impl FnMut(&[i16])) {
        // §3.2: randint(−500, 501) has range 1000, mask 1023 and offset −500.
        const RANGE: u32 = 1000;
        const MASK: u32 = 1023;
        const OFFSET: i16 = -500;
        let mut accepted = [0i16; N];
        let mut remaining = count;
        while remaining > 0 {
            if self.next >= N {
                self.refill();
            }
            let words = self.block.get(self.next..).unwrap_or_default();
            // Branch-free compaction; `kept` ≤ words consumed ≤ N.
            let mut kept = 0;
            let mut consumed = 0;
            for &word in words {
                if kept == remaining {
                    break;
                }
                let v = word & MASK;
                if let Some(slot) = accepted.get_mut(kept) {
                    *slot = v as i16 + OFFSET;
                }
                kept += usize::from(v <= RANGE);
                consumed += 1;
            }
            self.next += consumed;
            sink(accepted.get(..kept).unwrap_or_default());
            remaining -= kept;
        }
    }

    /// Twists the state and tempers the next block of outputs.
    fn refill(&mut self) {
        let twist = |upper: u32, lower: u32, far: u32| {
            let y = (upper & 0x8000_0000) | (lower & 0x7FFF_FFFF);
            far ^ (y >> 1) ^ ((y & 1).wrapping_neg() & MATRIX_A)
        };
        // Constant bounds on a fixed-size array: the indexing below cannot fail.
        let s = &mut self.state;
        for i in 0..N - M {
            s[i] = twist(s[i], s[i + 1], s[i + M]);
        }
        for i in N - M..N - 1 {
            s[i] = twist(s[i], s[i + 1], s[i + M - N]);
        }
        s[N - 1] = twist(s[N - 1], s[0], s[M - 1]);
        for (out, &word) in self.block.iter_mut().zip(s.iter()) {
            let mut y = word;
            y ^= y >> 11;
            y ^= (y << 7) & 0x9D2C_5680;
            y ^= (y << 15) & 0xEFC6_0000;
            y ^= y >> 18;
            *out = y;
        }
        self.next = 0;
    }
}

/// A precomputed `randint(low, high_exclusive)` draw, so hot loops (the CPU matrices draw
/// 2·n² values) compute the mask once.
#[derive(Clone, Copy, Debug)]
pub struct BoundedDraw {
    low: i64,
    range: u64,
    mask: u64,
}

impl BoundedDraw {
    /// Prepares draws over `[low, high_exclusive)`; an empty range is an error (numpy raises).
    pub fn new(low: i64, high_exclusive: i64) -> Result<Self, ChallengeError> {
        if high_exclusive <= low {
            return Err(ChallengeError::EmptyRange { low, high: high_exclusive });
        }
        // Two's-complement wrap gives the exact distance even across the i64 sign boundary.
        let range = (high_exclusive as u64).wrapping_sub(low as u64).wrapping_sub(1);
        Ok(Self { low, range, mask: smallest_mask_covering(range) })
    }

    /// Draws one value from `rng`.
    pub fn draw(&self, rng: &mut LegacyRandomState) -> i64 {
        if self.range == 0 {
            // numpy returns `low` without consuming the stream.
            return self.low;
        }
        let offset = if self.range <= u64::from(u32::MAX) {
            let mask = self.mask as u32;
            let range = self.range as u32;
            loop {
                let v = rng.next_u32() & mask;
                if v <= range {
                    break u64::from(v);
                }
            }
        } else {
            loop {
                let v = rng.next_u64() & self.mask;
                if v <= self.range {
                    break v;
                }
            }
        };
        (self.low as u64).wrapping_add(offset) as i64
    }
}

/// Smallest `2^k − 1` that is `≥ range` (numpy's `gen_mask`).
fn smallest_mask_covering(range: u64) -> u64 {
    if range == 0 { 0 } else { u64::MAX >> range.leading_zeros() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rand_mt_reference_over_millions_of_words() {
        for seed in [0u32, 1, 5489, 66051, u32::MAX] {
            let mut ours = LegacyRandomState::new(seed);
            let mut reference = rand_mt::Mt::new(seed);
            for i in 0..2_000_000 {
                assert_eq!(ours.next_u32(), reference.next_u32(), "seed {seed} word {i}");
            }
        }
    }

    #[test]
    fn block_fill_equals_one_draw_at_a_time() {
        let draw = BoundedDraw::new(-500, 501).unwrap();
        let mut one = LegacyRandomState::new(66051);
        let mut bulk = LegacyRandomState::new(66051);
        let mut out = Vec::new();
        bulk.fill_cpu_values(&mut out, 7);
        bulk.skip_cpu_values(1000);
        bulk.fill_cpu_values(&mut out, 5000);
        let mut expected: Vec<i16> = (0..7).map(|_| draw.draw(&mut one) as i16).collect();
        for _ in 0..1000 {
            draw.draw(&mut one);
        }
        expected.extend((0..5000).map(|_| draw.draw(&mut one) as i16));
        assert_eq!(out, expected);
        // Both streams are at the same position afterwards.
        assert_eq!(bulk.next_u32(), one.next_u32());
    }

    #[test]
    fn reference_mt19937_outputs_match_numpy() {
        // numpy: RandomState(s).randint(0, 2**32, dtype=uint64) returns raw 32-bit outputs.
        let mut rng = LegacyRandomState::new(5489);
        assert_eq!([rng.next_u32(), rng.next_u32(), rng.next_u32()], [3_499_211_612, 581_869_302, 3_890_346_734]);
        let mut rng = LegacyRandomState::new(0);
        assert_eq!([rng.next_u32(), rng.next_u32()], [2_357_136_044, 2_546_248_239]);
        let mut rng = LegacyRandomState::new(1);
        let got: Vec<i64> = (0..6).map(|_| rng.randint(0, 1 << 32).unwrap_or(-1)).collect();
        assert_eq!(got, [1_791_095_845, 4_282_876_139, 3_093_770_124, 4_005_303_368, 491_263, 550_290_313]);
    }

    #[test]
    fn dynamic_size_draws_match_numpy() {
        // §9.2: seed32 0x00010203; CPU [1800, 2200] -> 2091, GPU [31129, 34406] -> 32956.
        assert_eq!(LegacyRandomState::new(66051).randint(1800, 2201), Ok(2091));
        assert_eq!(LegacyRandomState::new(66051).randint(31129, 34407), Ok(32956));
    }

    #[test]
    fn small_and_degenerate_ranges_match_numpy() {
        let mut rng = LegacyRandomState::new(7);
        let got: Vec<i64> = (0..10).map(|_| rng.randint(-3, 4).unwrap_or(99)).collect();
        assert_eq!(got, [1, -2, 3, 0, 0, 1, -2, 3, -3, -2]);

        // A one-value range does not consume the stream.
        let mut rng = LegacyRandomState::new(7);
        for _ in 0..3 {
            assert_eq!(rng.randint(5, 6), Ok(5));
        }
        assert_eq!(rng.randint(0, 10), Ok(4));
        assert_eq!(LegacyRandomState::new(7).randint(0, 10), Ok(4));

        let mut rng = LegacyRandomState::new(u32::MAX);
        let got: Vec<i64> = (0..5).map(|_| rng.randint(-500, 501).unwrap_or(0)).collect();
        assert_eq!(got, [-81, -210, -488, -429, 448]);
    }

    #[test]
    fn wide_ranges_use_64_bit_draws_like_numpy() {
        let mut rng = LegacyRandomState::new(1);
        let got: Vec<i64> = (0..3).map(|_| rng.randint(0, 1 << 40).unwrap_or(-1)).collect();
        assert_eq!(got, [163_196_666_091, 605_300_724_808, 1_095_766_950_793]);

        let mut rng = LegacyRandomState::new(123);
        let got: Vec<i64> = (0..3).map(|_| rng.randint(0, (1 << 32) + 6).unwrap_or(-1)).collect();
        assert_eq!(got, [3_062_119_789, 1_840_268_610, 2_967_327_842]);

        let mut rng = LegacyRandomState::new(0);
        let got: Vec<i64> = (0..3).map(|_| rng.randint(-(1 << 62), 1 << 62).unwrap_or(0)).collect();
        assert_eq!(got, [-3_711_235_831_533_098_449, -642_142_871_786_238_784, -2_716_036_421_228_801_285]);

        let mut rng = LegacyRandomState::new(123);
        let got: Vec<i64> = (0..2).map(|_| rng.randint(i64::MIN, i64::MAX).unwrap_or(0)).collect();
        assert_eq!(got, [3_624_216_819_017_203_053, -3_945_032_883_802_979_006]);
    }

    #[test]
    fn empty_range_is_an_error() {
        let mut rng = LegacyRandomState::new(1);
        assert_eq!(rng.randint(5, 5), Err(ChallengeError::EmptyRange { low: 5, high: 5 }));
        assert!(rng.randint(6, 5).is_err());
    }

    #[test]
    fn masks_are_the_smallest_covering_power_of_two() {
        assert_eq!(smallest_mask_covering(0), 0);
        assert_eq!(smallest_mask_covering(1), 1);
        assert_eq!(smallest_mask_covering(1000), 1023);
        assert_eq!(smallest_mask_covering(1024), 2047);
        assert_eq!(smallest_mask_covering(u64::MAX), u64::MAX);
    }
}
