//! CPU matrix challenge: matrices from the seed, int64 row products, row hashes (§3.2).
//!
//! The worker computes `C = A·B` (then `C = C·B` for every extra iteration) over numpy int64
//! with wrap-around, hashes every row, and commits to the Merkle root of those hashes. The
//! validator only needs the **requested rows**: row `r` of `A·B` is `A[r]·B`, and row `r` of
//! `(A·B)·B` is `(A[r]·B)·B`, so verification costs `rows · n²` multiply-adds per iteration
//! instead of the `n³` the Python validator spends (§8.2.13).
//!
//! Matrix values lie in [−500, 500], so A and B are stored as `i16` (n = 10000 needs 200 MB
//! for B rather than 800 MB as int64). The first product goes through ndarray's float64
//! matrix product (`matrixmultiply`, AVX2/FMA picked at run time): every product and partial
//! sum is an integer below n · 500² ≤ 2.5·10⁹ < 2⁵³, so the result is exact whatever the
//! summation order. Chained iterations multiply arbitrary int64 rows, so they use wrapping
//! `i64` arithmetic, which equals numpy's int64 `dot` because addition and multiplication
//! modulo 2⁶⁴ do not depend on summation order (they cost ~4× the first product per row).

use std::borrow::Cow;

use ndarray::{Array2, ArrayView2, s};

use super::mt19937::LegacyRandomState;
use super::{ChallengeError, ChallengeSeed, sha256_prefix16};

/// Smallest CPU matrix size (§3.2, Appendix A "CPU size bounds").
pub const CPU_MIN_MATRIX_SIZE: u64 = 100;
/// Largest CPU matrix size (§3.2, Appendix A "CPU size bounds").
pub const CPU_MAX_MATRIX_SIZE: u64 = 10_000;
/// Largest allowed `size_variance` for CPU challenges (§3.2, Appendix A).
pub const CPU_MAX_SIZE_VARIANCE: f64 = 0.5;
/// Smallest matrix value, inclusive (§3.2, Appendix A "CPU value range").
pub const CPU_VALUE_MIN: i64 = -500;
/// numpy `randint` upper bound, exclusive (§3.2: `randint(−500, 501)`).
pub const CPU_VALUE_MAX_EXCLUSIVE: i64 = 501;

/// Columns of B converted to float64 at a time for the first product.
const F64_COLUMN_BLOCK: usize = 512;
/// Output columns per tile of the chained int64 product, so a tile stays in L2.
const J_TILE: usize = 512;
/// Rows per batch when the worker-side code hashes every row.
const ROW_BATCH: usize = 256;

// The float64 first product is exact only while n · 500² stays below 2⁵³.
const _: () = assert!(
    (CPU_MAX_MATRIX_SIZE as i64) * CPU_VALUE_MIN * CPU_VALUE_MIN < (1i64 << 53),
    "float64 first product would not be exact"
);

/// Checks a CPU matrix size against [100, 10000] (§3.2) and returns it as `usize`.
pub fn check_cpu_matrix_size(n: u64) -> Result<usize, ChallengeError> {
    if !(CPU_MIN_MATRIX_SIZE..=CPU_MAX_MATRIX_SIZE).contains(&n) {
        return Err(ChallengeError::MatrixSizeOutOfRange {
            size: n,
            min: CPU_MIN_MATRIX_SIZE,
            max: CPU_MAX_MATRIX_SIZE,
        });
    }
    usize::try_from(n).map_err(|_| ChallengeError::TooLarge { what: "matrix size", size: n })
}

/// The CPU dynamic matrix size (§3.2): with `variance > 0`, `lo = max(100, int(base·(1−var)))`,
/// `hi = min(10000, int(base·(1+var)))`, and `RandomState(seed32).randint(lo, hi + 1)` unless
/// `lo ≥ hi` (then `base`). `variance == 0` means "dynamic size disabled".
pub fn cpu_dynamic_matrix_size(seed: &ChallengeSeed, base: u64, variance: f64) -> Result<u64, ChallengeError> {
    check_cpu_matrix_size(base)?;
    if !(0.0..=CPU_MAX_SIZE_VARIANCE).contains(&variance) {
        return Err(ChallengeError::InvalidSizeVariance { variance, max: CPU_MAX_SIZE_VARIANCE });
    }
    if variance == 0.0 {
        return Ok(base);
    }
    // Python: int(float) truncates toward zero; `as` does the same for these small positives.
    let base_f = base as f64;
    let lo = ((base_f * (1.0 - variance)) as i64).max(CPU_MIN_MATRIX_SIZE as i64);
    let hi = ((base_f * (1.0 + variance)) as i64).min(CPU_MAX_MATRIX_SIZE as i64);
    if lo >= hi {
        return Ok(base);
    }
    let size = LegacyRandomState::new(seed.seed32()).randint(lo, hi + 1)?;
    // lo ≥ 100 and hi ≤ 10000, so the draw is a valid positive size.
    Ok(size.unsigned_abs())
}

/// Full A and B (worker side, tools, tests). Verification uses [`cpu_row_hashes`] instead,
/// which keeps only the requested rows of A.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuMatrices {
    /// A, n×n, values in [−500, 500].
    pub a: Array2<i16>,
    /// B, n×n, values in [−500, 500].
    pub b: Array2<i16>,
}

impl CpuMatrices {
    /// Draws A then B, row-major, from `RandomState(seed32)` exactly like numpy (§3.2).
    pub fn generate(seed: &ChallengeSeed, n: u64) -> Result<Self, ChallengeError> {
        let n = check_cpu_matrix_size(n)?;
        Ok(Self::generate_unchecked(seed.seed32(), n, None))
    }

    /// Small matrices for unit tests (the §9.2 vectors use n = 4, below the protocol minimum).
    #[cfg(test)]
    pub(crate) fn generate_any_size(seed32: u32, n: usize) -> Self {
        Self::generate_unchecked(seed32, n, None)
    }

    /// Draws the whole stream but stores only the rows of A listed in `keep_a_rows`
    /// (sorted, unique; `None` = all rows). The stream must still be consumed for every
    /// element of A because rejection sampling makes B's position unknowable otherwise.
    fn generate_unchecked(seed32: u32, n: usize, keep_a_rows: Option<&[usize]>) -> Self {
        let mut rng = LegacyRandomState::new(seed32);
        let kept = keep_a_rows.map_or(n, <[usize]>::len);
        let mut a = Vec::with_capacity(kept * n);
        match keep_a_rows {
            None => rng.fill_cpu_values(&mut a, n * n),
            Some(rows) => {
                // Skip runs of unwanted rows in one go; rows are sorted and unique.
                let mut next_row = 0;
                for &row in rows {
                    rng.skip_cpu_values(row.saturating_sub(next_row) * n);
                    rng.fill_cpu_values(&mut a, n);
                    next_row = row + 1;
                }
                rng.skip_cpu_values(n.saturating_sub(next_row) * n);
            }
        }
        let mut b = Vec::with_capacity(n * n);
        rng.fill_cpu_values(&mut b, n * n);
        // Shapes match the vector lengths by construction.
        let a = Array2::from_shape_vec((kept, n), a).unwrap_or_else(|_| Array2::zeros((0, n)));
        let b = Array2::from_shape_vec((n, n), b).unwrap_or_else(|_| Array2::zeros((0, n)));
        Self { a, b }
    }
}

/// Rows of the worker's result for the given rows of A: `a_rows·B`, then `·B` for every
/// extra iteration, in wrapping int64 like numpy.
///
/// `a_rows` is m×n and `b` is n×n; the result is m×n.
pub fn cpu_row_products(
    a_rows: ArrayView2<'_, i16>,
    b: ArrayView2<'_, i16>,
    iterations: u32,
) -> Result<Array2<i64>, ChallengeError> {
    if iterations == 0 {
        return Err(ChallengeError::InvalidIterations);
    }
    let n = a_rows.ncols();
    if b.dim() != (n, n) {
        return Err(ChallengeError::MatrixShapeMismatch { expected: (n, n), got: b.dim() });
    }
    let mut rows = first_product(a_rows, b);
    for _ in 1..iterations {
        rows = chained_product(&rows, b);
    }
    Ok(rows)
}

/// Row hash: first 16 lowercase hex chars of SHA-256 over the row's little-endian int64 bytes
/// (numpy `tobytes()` on x86/ARM, §3.2).
pub fn cpu_row_hash(row: &[i64]) -> String {
    let bytes: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
    sha256_prefix16(&bytes)
}

/// Expected row hashes for `rows` (in the given order, duplicates allowed): what the
/// validator compares with the miner's submitted `row_hashes` (§3.8 CPU step 2).
///
/// Costs one pass over the 2·n² random stream plus `unique rows · n² · iterations`
/// multiply-adds; memory is B (2·n² bytes) plus the requested rows.
pub fn cpu_row_hashes(
    seed: &ChallengeSeed,
    n: u64,
    iterations: u32,
    rows: &[u64],
) -> Result<Vec<String>, ChallengeError> {
    let size = check_cpu_matrix_size(n)?;
    if iterations == 0 {
        return Err(ChallengeError::InvalidIterations);
    }
    if rows.is_empty() {
        return Err(ChallengeError::NoRowsRequested);
    }
    let mut unique = Vec::with_capacity(rows.len());
    for &row in rows {
        match usize::try_from(row) {
            Ok(r) if r < size => unique.push(r),
            _ => return Err(ChallengeError::RowOutOfRange { row, size }),
        }
    }
    unique.sort_unstable();
    unique.dedup();

    let matrices = CpuMatrices::generate_unchecked(seed.seed32(), size, Some(&unique));
    let products = cpu_row_products(matrices.a.view(), matrices.b.view(), iterations)?;
    let unique_hashes: Vec<String> =
        products.rows().into_iter().map(|row| cpu_row_hash(&contiguous_row(row))).collect();
    rows.iter()
        .map(|&row| {
            let at = unique.binary_search(&(row as usize)).map_err(|_| ChallengeError::RowOutOfRange { row, size })?;
            unique_hashes.get(at).cloned().ok_or(ChallengeError::RowOutOfRange { row, size })
        })
        .collect()
}

/// Every row hash of the worker's result, in row order: what an honest worker commits to.
/// Costs `n³ · iterations` multiply-adds (n = 2000: a few seconds); tools and tests only.
pub fn cpu_all_row_hashes(seed: &ChallengeSeed, n: u64, iterations: u32) -> Result<Vec<String>, ChallengeError> {
    let size = check_cpu_matrix_size(n)?;
    if iterations == 0 {
        return Err(ChallengeError::InvalidIterations);
    }
    Ok(all_row_hashes_unchecked(seed.seed32(), size, iterations))
}

pub(crate) fn all_row_hashes_unchecked(seed32: u32, n: usize, iterations: u32) -> Vec<String> {
    let matrices = CpuMatrices::generate_unchecked(seed32, n, None);
    let mut hashes = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let end = (start + ROW_BATCH).min(n);
        let batch = matrices.a.slice(ndarray::s![start..end, ..]);
        if let Ok(products) = cpu_row_products(batch, matrices.b.view(), iterations.max(1)) {
            hashes.extend(products.rows().into_iter().map(|row| cpu_row_hash(&contiguous_row(row))));
        }
        start = end;
    }
    hashes
}

/// A row as a slice, borrowed when already contiguous.
fn contiguous_row(row: ndarray::ArrayView1<'_, i64>) -> Cow<'_, [i64]> {
    match row.to_slice() {
        Some(slice) => Cow::Borrowed(slice),
        None => Cow::Owned(row.iter().copied().collect()),
    }
}

/// `a (m×n) · b (n×n)` exactly, through ndarray's float64 matrix product.
///
/// Every product and partial sum is an integer of magnitude ≤ n · 500² ≤ 2.5·10⁹ < 2⁵³,
/// so float64 arithmetic is exact whatever order or fused multiply-add the kernel uses, and
/// `matrixmultiply` picks AVX2/FMA at run time. B is converted in column blocks to bound the
/// float64 copy (n = 10000: 80 MB per block instead of 800 MB).
fn first_product(a: ArrayView2<'_, i16>, b: ArrayView2<'_, i16>) -> Array2<i64> {
    let (m, n) = a.dim();
    let a = a.mapv(f64::from);
    let mut out = Array2::<i64>::zeros((m, n));
    for j0 in (0..n).step_by(F64_COLUMN_BLOCK) {
        let j1 = (j0 + F64_COLUMN_BLOCK).min(n);
        let b_block = b.slice(s![.., j0..j1]).mapv(f64::from);
        let c_block = a.dot(&b_block);
        out.slice_mut(s![.., j0..j1]).zip_mut_with(&c_block, |o, &v| *o = v as i64);
    }
    out
}

/// `c (m×n, i64) · b (n×n)` in wrapping int64, as numpy's int64 `dot` does.
fn chained_product(c: &Array2<i64>, b: ArrayView2<'_, i16>) -> Array2<i64> {
    let (m, n) = c.dim();
    let mut out = Array2::<i64>::zeros((m, n));
    for j0 in (0..n).step_by(J_TILE) {
        let j1 = (j0 + J_TILE).min(n);
        let b_tile = b.slice(s![.., j0..j1]);
        let mut out_tile = out.slice_mut(s![.., j0..j1]);
        for (b_row, c_column) in b_tile.rows().into_iter().zip(c.columns()) {
            for (mut out_row, &c_rk) in out_tile.rows_mut().into_iter().zip(c_column) {
                if c_rk == 0 {
                    continue;
                }
                out_row.zip_mut_with(&b_row, |o, &bv| {
                    *o = o.wrapping_add(c_rk.wrapping_mul(i64::from(bv)));
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::merkle::MerkleTree;
    use ndarray::array;

    fn vector_seed() -> ChallengeSeed {
        ChallengeSeed::from_hex("000102030405060708090a0b0c0d0e0f").unwrap()
    }

    /// Plain triple loop over i64 with wrapping, the reference for the tiled kernels.
    fn naive_product(a: &Array2<i64>, b: &Array2<i64>) -> Array2<i64> {
        let (m, n) = a.dim();
        let p = b.dim().1;
        let mut c = Array2::<i64>::zeros((m, p));
        for i in 0..m {
            for j in 0..p {
                let mut s = 0i64;
                for k in 0..n {
                    s = s.wrapping_add(a[[i, k]].wrapping_mul(b[[k, j]]));
                }
                c[[i, j]] = s;
            }
        }
        c
    }

    #[test]
    fn vector_9_2_dynamic_size() {
        assert_eq!(cpu_dynamic_matrix_size(&vector_seed(), 2000, 0.1), Ok(2091));
        assert_eq!(cpu_dynamic_matrix_size(&vector_seed(), 2000, 0.0), Ok(2000));
        // Clamped at the top: [9000, 10000].
        let size = cpu_dynamic_matrix_size(&vector_seed(), 10_000, 0.1).unwrap();
        assert!((9000..=10_000).contains(&size));
        // lo ≥ hi after clamping -> base.
        assert_eq!(cpu_dynamic_matrix_size(&vector_seed(), 100, 0.001), Ok(100));
    }

    #[test]
    fn dynamic_size_rejects_bad_parameters() {
        let seed = vector_seed();
        assert!(matches!(cpu_dynamic_matrix_size(&seed, 99, 0.1), Err(ChallengeError::MatrixSizeOutOfRange { .. })));
        assert!(matches!(
            cpu_dynamic_matrix_size(&seed, 10_001, 0.1),
            Err(ChallengeError::MatrixSizeOutOfRange { .. })
        ));
        for variance in [-0.1, 0.51, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                cpu_dynamic_matrix_size(&seed, 2000, variance),
                Err(ChallengeError::InvalidSizeVariance { .. })
            ));
        }
    }

    #[test]
    fn vector_9_2_small_matrices_product_hashes_and_root() {
        let m = CpuMatrices::generate_any_size(66051, 4);
        assert_eq!(
            m.a,
            array![[303, 118, -200, -243], [3, 106, -465, 147], [205, 95, 312, -130], [255, -447, 386, 273]]
        );
        assert_eq!(
            m.b,
            array![[-335, 348, 493, 94], [147, 455, 464, -330], [314, -27, 173, -42], [-177, 137, 22, 120]]
        );
        let c = cpu_row_products(m.a.view(), m.b.view(), 1).unwrap();
        assert_eq!(
            c,
            array![
                [-103_948, 131_243, 164_185, -31_218],
                [-157_452, 81_968, -26_548, 2_472],
                [66_268, 88_331, 196_261, -40_784],
                [-78_251, -87_666, -8_909, 188_028]
            ]
        );
        let hashes: Vec<String> = c.rows().into_iter().map(|r| cpu_row_hash(&r.to_vec())).collect();
        assert_eq!(hashes, ["20a3a0e2dc8b9f50", "2119eb74346b2e36", "ab6832ec726f6401", "e142bdf734c84766"]);
        assert_eq!(
            MerkleTree::new(hashes).unwrap().root(),
            "c86551dd74fa438b2940983525bdba01edc7be277e00960c3a5c92f0465f84ff"
        );

        let c2 = cpu_row_products(m.a.view(), m.b.view(), 2).unwrap();
        let hashes2: Vec<String> = c2.rows().into_iter().map(|r| cpu_row_hash(&r.to_vec())).collect();
        assert_eq!(
            MerkleTree::new(hashes2).unwrap().root(),
            "090fc29d63cf9f5bfb58b6d1cf60151661cc121dfc316126ab8fa4231d96b343"
        );
    }

    #[test]
    fn vector_9_2_n2000_prefixes_and_row0() {
        let seed = vector_seed();
        let m = CpuMatrices::generate(&seed, 2000).unwrap();
        assert_eq!(m.a.slice(ndarray::s![0, 0..8]).to_vec(), [303, 118, -200, -243, 3, 106, -465, 147]);
        assert_eq!(m.a.slice(ndarray::s![1999, 1996..2000]).to_vec(), [242, 8, 6, -184]);
        assert_eq!(m.b.slice(ndarray::s![0, 0..8]).to_vec(), [-281, -296, 474, 158, 475, -127, -52, 225]);
        let row0 = cpu_row_products(m.a.slice(ndarray::s![0..1, ..]), m.b.view(), 1).unwrap();
        assert_eq!(row0.slice(ndarray::s![0, 0..4]).to_vec(), [-330_184, 1_550_179, -4_444_618, -955_835]);
        assert_eq!(cpu_row_hashes(&seed, 2000, 1, &[0]).unwrap(), ["e8cf4ee39fa456b3"]);
    }

    #[test]
    fn tiled_kernels_match_a_naive_product_including_wraparound() {
        // n not a multiple of the tile, several iterations so values wrap past 2^63.
        let n = 600;
        let m = CpuMatrices::generate_any_size(12345, n);
        let a64 = m.a.mapv(i64::from);
        let b64 = m.b.mapv(i64::from);
        let mut expected = naive_product(&a64, &b64);
        let got1 = cpu_row_products(m.a.view(), m.b.view(), 1).unwrap();
        assert_eq!(got1, expected);
        // Chained rows only (row·B repeatedly), far enough that int64 wraps around.
        expected = expected.slice(ndarray::s![100..105, ..]).to_owned();
        for _ in 0..5 {
            expected = naive_product(&expected, &b64);
        }
        let rows = m.a.slice(ndarray::s![100..105, ..]);
        let got6 = cpu_row_products(rows, m.b.view(), 6).unwrap();
        assert_eq!(got6, expected);
        assert!(expected.iter().any(|v| v.unsigned_abs() > 1u64 << 62));
    }

    #[test]
    fn requested_rows_match_the_full_computation() {
        let seed = ChallengeSeed::from_bytes([9; 16]);
        let all = cpu_all_row_hashes(&seed, 150, 2).unwrap();
        assert_eq!(all.len(), 150);
        let rows = [149, 0, 77, 77, 3];
        let got = cpu_row_hashes(&seed, 150, 2, &rows).unwrap();
        let expected: Vec<String> = rows.iter().map(|&r| all[r as usize].clone()).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let seed = vector_seed();
        assert!(matches!(
            cpu_row_hashes(&seed, 200, 1, &[200]),
            Err(ChallengeError::RowOutOfRange { row: 200, size: 200 })
        ));
        assert!(matches!(cpu_row_hashes(&seed, 200, 1, &[u64::MAX]), Err(ChallengeError::RowOutOfRange { .. })));
        assert_eq!(cpu_row_hashes(&seed, 200, 1, &[]), Err(ChallengeError::NoRowsRequested));
        assert_eq!(cpu_row_hashes(&seed, 200, 0, &[1]), Err(ChallengeError::InvalidIterations));
        assert!(matches!(cpu_row_hashes(&seed, u64::MAX, 1, &[1]), Err(ChallengeError::MatrixSizeOutOfRange { .. })));
        assert!(matches!(CpuMatrices::generate(&seed, 20_000), Err(ChallengeError::MatrixSizeOutOfRange { .. })));
        let a = Array2::<i16>::zeros((2, 3));
        let b = Array2::<i16>::zeros((2, 2));
        assert!(cpu_row_products(a.view(), b.view(), 1).is_err());
    }
}
