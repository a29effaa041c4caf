//! GPU matrix challenge: element generator, exact expected values, fp16 FNV row hash (§3.3, §3.8).
//!
//! The CUDA binary generates A and B from a per-GPU `seed_hash` with a small integer mix, so
//! any single element can be computed in O(1) and any C(r, c) in O(n), without materialising
//! an n×n matrix (n ≈ 32768 would be 8 GiB of f64).
//!
//! # Exactness
//!
//! Every element is `u/32768 − 1` for a 16-bit `u`, i.e. an integer multiple of 2⁻¹⁵ in
//! [−1, 1). Products are multiples of 2⁻³⁰ with magnitude ≤ 1 and every partial sum is a
//! multiple of 2⁻³⁰ below n in magnitude, so for n < 2²³ all of them are exact in float64.
//! numpy/BLAS therefore returns the exact dot product whatever its summation order, and so
//! do we: we sum the integer "units" (`value · 2¹⁵`) in `i64` and scale by 2⁻³⁰ once. The
//! expected values are bit-identical to the Python validator's, including the final
//! `× iterations` (a plain float multiply, not a chained product; §3.3, §8.2.12).
//!
//! # fp16 row hash
//!
//! The leaf of a GPU row is an FNV-1a-64 variant over the row's values packed as IEEE half
//! (whole 16-bit words, not bytes). The Python validator packs with `struct.pack("<e")`,
//! which rounds float64 → half **once** to nearest-even, maps NaN to the quiet NaN 0x7E00
//! (keeping the sign), infinities to 0x7C00, and raises `OverflowError` for finite values
//! that round beyond ±65504. [`fp16_bits`] reproduces exactly that. The `half` crate is not
//! used because on x86 with F16C it converts float64 through float32, which double-rounds
//! (e.g. 1 + 2⁻¹¹ + 2⁻⁴⁰ becomes 1.0 instead of 1 + 2⁻¹⁰).

use sha2::{Digest, Sha256};

use super::mt19937::LegacyRandomState;
use super::{ChallengeError, ChallengeSeed};

/// FNV-1a 64-bit offset basis (§3.3, Appendix A).
pub const FNV_OFFSET_BASIS: u64 = 0xCBF2_9CE4_8422_2325;
/// FNV-1a 64-bit prime (§3.3, Appendix A).
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;
/// First multiplier of the element mix (§3.3, Appendix A "GPU mix constants").
pub const GPU_MIX_MULTIPLIER: u32 = 0x9E37_79B9;
/// Addend of the first mix step and multiplier of the last one (§3.3, Appendix A).
pub const GPU_MIX_CONSTANT: u32 = 0x85EB_CA6B;
/// Matrix tag XORed into the element hash: 0 for A, 1 for B (§3.3).
const MATRIX_A_TAG: u64 = 0;
/// Matrix tag XORed into the element hash: 0 for A, 1 for B (§3.3).
const MATRIX_B_TAG: u64 = 1;
/// `(h & 0xFFFF) / 32768.0 − 1.0`: elements are units of 2⁻¹⁵ offset by 32768 (§3.3).
const UNIT_OFFSET: i32 = 32_768;
/// One product of two elements is in units of 2⁻³⁰.
const PRODUCT_SCALE: f64 = 1.0 / (1u64 << 30) as f64;
/// Absolute term in the relative tolerance denominator (§3.8 tolerance predicate).
const REL_TOLERANCE_EPSILON: f64 = 1e-10;

/// Smallest GPU matrix size: the original only requires a positive integer (§3.3).
pub const GPU_MIN_MATRIX_SIZE: u64 = 1;
/// Largest GPU matrix size this validator accepts. Not in the original (it has no upper
/// bound, §3.3); 2²⁰ keeps every dot product exact in float64 (see module docs) with a wide
/// margin over the 32768 ± 5 % default.
pub const GPU_MAX_MATRIX_SIZE: u64 = 1 << 20;

/// Checks a GPU matrix size against [1, 2²⁰] and returns it as `usize`.
pub fn check_gpu_matrix_size(n: u64) -> Result<usize, ChallengeError> {
    if !(GPU_MIN_MATRIX_SIZE..=GPU_MAX_MATRIX_SIZE).contains(&n) {
        return Err(ChallengeError::MatrixSizeOutOfRange {
            size: n,
            min: GPU_MIN_MATRIX_SIZE,
            max: GPU_MAX_MATRIX_SIZE,
        });
    }
    usize::try_from(n).map_err(|_| ChallengeError::TooLarge { what: "matrix size", size: n })
}

/// The GPU dynamic matrix size (§3.3): with `variance > 0`, `lo = max(1, int(base·(1−var)))`,
/// `hi = int(base·(1+var))` (no upper clamp) and `RandomState(seed32).randint(lo, hi + 1)`
/// unless `lo ≥ hi` (then `base`).
pub fn gpu_dynamic_matrix_size(seed: &ChallengeSeed, base: u64, variance: f64) -> Result<u64, ChallengeError> {
    check_gpu_matrix_size(base)?;
    if !variance.is_finite() || variance < 0.0 {
        return Err(ChallengeError::InvalidSizeVariance { variance, max: f64::INFINITY });
    }
    if variance == 0.0 {
        return Ok(base);
    }
    let base_f = base as f64;
    // Python int() truncates toward zero, as `as` does (it also saturates, which only
    // matters for absurd variances that the size check below refuses anyway).
    let lo = ((base_f * (1.0 - variance)) as i64).max(1);
    let hi = (base_f * (1.0 + variance)) as i64;
    if lo >= hi {
        return Ok(base);
    }
    let high_exclusive =
        hi.checked_add(1).ok_or(ChallengeError::TooLarge { what: "dynamic matrix size", size: hi.unsigned_abs() })?;
    let size = LegacyRandomState::new(seed.seed32()).randint(lo, high_exclusive)?.unsigned_abs();
    check_gpu_matrix_size(size)?;
    Ok(size)
}

/// Per-GPU generator key: the first 8 bytes of SHA-256 of `"<seed hex>|<gpu uuid>"`, read as
/// a little-endian u64 (§3.3).
pub fn gpu_seed_hash(seed_hex: &str, gpu_uuid: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(seed_hex.as_bytes());
    hasher.update(b"|");
    hasher.update(gpu_uuid.as_bytes());
    let digest = hasher.finalize();
    let mut first8 = [0u8; 8];
    for (byte, &d) in first8.iter_mut().zip(digest.iter()) {
        *byte = d;
    }
    u64::from_le_bytes(first8)
}

/// The integer mix of §3.3 applied to one element hash.
#[inline(always)]
fn mix(element_hash: u64) -> u32 {
    let mut h = (element_hash ^ (element_hash >> 32)) as u32;
    h = h.wrapping_mul(GPU_MIX_MULTIPLIER).wrapping_add(GPU_MIX_CONSTANT);
    h ^= h >> 16;
    h.wrapping_mul(GPU_MIX_CONSTANT)
}

/// Element `value · 32768` as an integer in [−32768, 32767].
#[inline(always)]
fn element_units(seed_hash: u64, major: u64, minor: u64, tag: u64) -> i32 {
    let e = seed_hash ^ (major << 32) ^ (minor << 16) ^ tag;
    (mix(e) & 0xFFFF) as i32 - UNIT_OFFSET
}

/// A(row, k) as the validator computes it (§3.3).
pub fn a_value(seed_hash: u64, row: u64, k: u64) -> f64 {
    f64::from(element_units(seed_hash, row, k, MATRIX_A_TAG)) / f64::from(UNIT_OFFSET)
}

/// B(k, col) as the validator computes it (§3.3).
pub fn b_value(seed_hash: u64, k: u64, col: u64) -> f64 {
    f64::from(element_units(seed_hash, k, col, MATRIX_B_TAG)) / f64::from(UNIT_OFFSET)
}

/// Row `row` of A in units of 2⁻¹⁵.
fn a_row_units(seed_hash: u64, n: usize, row: u64) -> Vec<i32> {
    (0..n as u64).map(|k| element_units(seed_hash, row, k, MATRIX_A_TAG)).collect()
}

/// Column `col` of B in units of 2⁻¹⁵.
fn b_column_units(seed_hash: u64, n: usize, col: u64) -> Vec<i32> {
    (0..n as u64).map(|k| element_units(seed_hash, k, col, MATRIX_B_TAG)).collect()
}

/// Row `k` of B in units of 2⁻¹⁵, written into `out`.
fn fill_b_row_units(seed_hash: u64, k: u64, out: &mut [f64]) {
    for (col, slot) in out.iter_mut().enumerate() {
        *slot = f64::from(element_units(seed_hash, k, col as u64, MATRIX_B_TAG));
    }
}

/// Exact dot product of two unit vectors, as a float64 element of C (before `× iterations`).
fn exact_dot(a_units: &[i32], b_units: &[i32]) -> f64 {
    let units: i64 = a_units.iter().zip(b_units).map(|(&x, &y)| i64::from(x * y)).sum();
    // |units| ≤ n · 2³⁰ ≤ 2⁵⁰, exact in f64; the scale is a power of two.
    units as f64 * PRODUCT_SCALE
}

/// Python's `expected *= iterations` (only when iterations > 1).
fn scale_by_iterations(value: f64, iterations: u32) -> f64 {
    if iterations > 1 { value * f64::from(iterations) } else { value }
}

fn check_index(index: u64, n: usize, column: bool) -> Result<u64, ChallengeError> {
    if usize::try_from(index).is_ok_and(|i| i < n) {
        Ok(index)
    } else if column {
        Err(ChallengeError::ColumnOutOfRange { col: index, size: n })
    } else {
        Err(ChallengeError::RowOutOfRange { row: index, size: n })
    }
}

/// Expected C(row, col) = Σₖ A(row,k)·B(k,col), times `iterations` when > 1 (§3.3). O(n).
pub fn expected_value(seed_hash: u64, n: u64, row: u64, col: u64, iterations: u32) -> Result<f64, ChallengeError> {
    let n = check_gpu_matrix_size(n)?;
    if iterations == 0 {
        return Err(ChallengeError::InvalidIterations);
    }
    let row = check_index(row, n, false)?;
    let col = check_index(col, n, true)?;
    let value = exact_dot(&a_row_units(seed_hash, n, row), &b_column_units(seed_hash, n, col));
    Ok(scale_by_iterations(value, iterations))
}

/// Expected full rows of C (what an honest GPU returns for a requested row), one `Vec` per
/// entry of `rows`. Streams B one row at a time: O(n) memory per row, O(n²) time in total
/// plus O(n²) per row (n = 32768: ~10⁹ element mixes; tools only, never verification).
pub fn expected_rows(seed_hash: u64, n: u64, rows: &[u64], iterations: u32) -> Result<Vec<Vec<f64>>, ChallengeError> {
    let n = check_gpu_matrix_size(n)?;
    if iterations == 0 {
        return Err(ChallengeError::InvalidIterations);
    }
    let a_rows: Vec<Vec<i32>> = rows
        .iter()
        .map(|&row| check_index(row, n, false).map(|row| a_row_units(seed_hash, n, row)))
        .collect::<Result<_, _>>()?;
    // f64 accumulation is exact here (see module docs) and vectorises; units throughout.
    let mut sums = vec![vec![0.0f64; n]; rows.len()];
    let mut b_row = vec![0.0f64; n];
    for k in 0..n {
        fill_b_row_units(seed_hash, k as u64, &mut b_row);
        for (sum, a_row) in sums.iter_mut().zip(&a_rows) {
            let a = a_row.get(k).copied().map_or(0.0, f64::from);
            if a == 0.0 {
                continue;
            }
            for (s, &b) in sum.iter_mut().zip(&b_row) {
                *s += a * b;
            }
        }
    }
    Ok(sums
        .into_iter()
        .map(|row| row.into_iter().map(|units| scale_by_iterations(units * PRODUCT_SCALE, iterations)).collect())
        .collect())
}

/// IEEE half bit pattern of `value`, exactly as CPython's `struct.pack("<e", value)`:
/// one round-to-nearest-even from float64, NaN → 0x7E00 with the sign, ±inf → 0x7C00, and a
/// [`ChallengeError::Fp16Overflow`] for finite values that round beyond ±65504.
pub fn fp16_bits(value: f64) -> Result<u16, ChallengeError> {
    let bits = value.to_bits();
    let sign = ((bits >> 48) & 0x8000) as u16;
    if value.is_nan() {
        return Ok(sign | 0x7E00);
    }
    if value.is_infinite() {
        return Ok(sign | 0x7C00);
    }
    let biased = ((bits >> 52) & 0x7FF) as i32;
    if biased == 0 {
        // Zero or a float64 subnormal (< 2⁻¹⁰²²): both round to a signed zero.
        return Ok(sign);
    }
    let exponent = biased - 1023;
    let significand = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    let overflow = || ChallengeError::Fp16Overflow { value };
    if exponent >= 16 {
        return Err(overflow());
    }
    if exponent < -25 {
        return Ok(sign);
    }
    // Units of the result: 2⁻¹⁰ of the leading power for normals, 2⁻²⁴ for subnormals.
    let (shift, field_exponent) =
        if exponent < -14 { ((28 - exponent) as u32, 0u16) } else { (42u32, (exponent + 15) as u16) };
    let mut units = significand >> shift;
    let remainder = significand & ((1u64 << shift) - 1);
    let half = 1u64 << (shift - 1);
    if remainder > half || (remainder == half && units & 1 == 1) {
        units += 1;
    }
    let encoded = if field_exponent == 0 {
        // Subnormal; rounding up to 1024 lands exactly on the smallest normal (0x0400).
        units as u16
    } else {
        // units is 1.xxx·2¹⁰ in [1024, 2048]; 2048 carries into the exponent.
        let (mantissa, field_exponent) =
            if units == 2048 { (0u16, field_exponent + 1) } else { ((units as u16) & 0x3FF, field_exponent) };
        if field_exponent >= 31 {
            return Err(overflow());
        }
        (field_exponent << 10) | mantissa
    };
    Ok(sign | encoded)
}

/// GPU row hash (leaf): FNV-1a-64 over the fp16 bit patterns of the row's values, XORing
/// whole 16-bit words, as 16 lowercase hex digits (§3.3).
pub fn fnv_fp16_row_hash(values: &[f64]) -> Result<String, ChallengeError> {
    let mut hash = FNV_OFFSET_BASIS;
    for &value in values {
        hash ^= u64::from(fp16_bits(value)?);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    Ok(format!("{hash:016x}"))
}

/// The GPU tolerance predicate (§3.8): `diff ≤ abs_tol` or `diff / (|expected| + 1e−10) ≤
/// rel_tol`. NaN claims never pass.
pub fn within_tolerance(expected: f64, claimed: f64, abs_tolerance: f64, rel_tolerance: f64) -> bool {
    let diff = (expected - claimed).abs();
    let rel = diff / (expected.abs() + REL_TOLERANCE_EPSILON);
    diff <= abs_tolerance || rel <= rel_tolerance
}

/// `math.ceil(threshold · count)`: passes needed for a check over `count` values (§3.8).
pub fn required_passes(success_rate_threshold: f64, count: usize) -> usize {
    let needed = (success_rate_threshold * count as f64).ceil();
    if needed <= 0.0 { 0 } else { needed as usize }
}

/// Tolerances and threshold of §3.8 (defaults 0.02 / 0.005 / 0.85).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerances {
    /// `abs_tolerance`.
    pub abs_tolerance: f64,
    /// `rel_tolerance`.
    pub rel_tolerance: f64,
    /// `success_rate_threshold`.
    pub success_rate_threshold: f64,
}

/// Result of a group of value checks: how many passed and how many were needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckCount {
    /// Values within tolerance.
    pub passed: usize,
    /// Values checked.
    pub checked: usize,
    /// `ceil(threshold · checked)`.
    pub required: usize,
}

impl CheckCount {
    /// Whether enough values passed.
    pub fn ok(&self) -> bool {
        self.passed >= self.required
    }
}

/// Coordinate spot check (§3.8 GPU step 2): compares `claimed[i]` with `C(coords[i])` for every
/// coordinate. The caller passes exactly one claimed value per coordinate.
pub fn check_coordinates(
    seed_hash: u64,
    n: u64,
    iterations: u32,
    coords: &[(u64, u64)],
    claimed: &[f64],
    tolerances: &Tolerances,
) -> Result<CheckCount, ChallengeError> {
    let size = check_gpu_matrix_size(n)?;
    if iterations == 0 {
        return Err(ChallengeError::InvalidIterations);
    }
    let mut passed = 0;
    for (&(row, col), &value) in coords.iter().zip(claimed) {
        let row = check_index(row, size, false)?;
        let col = check_index(col, size, true)?;
        let expected = scale_by_iterations(
            exact_dot(&a_row_units(seed_hash, size, row), &b_column_units(seed_hash, size, col)),
            iterations,
        );
        if within_tolerance(expected, value, tolerances.abs_tolerance, tolerances.rel_tolerance) {
            passed += 1;
        }
    }
    let checked = coords.len().min(claimed.len());
    Ok(CheckCount { passed, checked, required: required_passes(tolerances.success_rate_threshold, checked) })
}

/// Columns of B sampled for the row checks of one GPU (§3.8 GPU step 3), with their values
/// precomputed once and shared by every row of that GPU.
#[derive(Clone, Debug)]
pub struct SampledColumns {
    columns: Vec<u64>,
    units: Vec<Vec<i32>>,
    n: usize,
}

impl SampledColumns {
    /// Precomputes B(·, col) for every sampled column (O(n) each).
    pub fn new(seed_hash: u64, n: u64, columns: Vec<u64>) -> Result<Self, ChallengeError> {
        let size = check_gpu_matrix_size(n)?;
        for &col in &columns {
            check_index(col, size, true)?;
        }
        let units = columns.iter().map(|&col| b_column_units(seed_hash, size, col)).collect();
        Ok(Self { columns, units, n: size })
    }

    /// The sampled column indices.
    pub fn columns(&self) -> &[u64] {
        &self.columns
    }
}

/// Sampled row check (§3.8 GPU step 3): `row_values` holds the miner's n values for `row`;
/// the values at the sampled columns are compared with the expected C(row, col).
pub fn check_sampled_row(
    seed_hash: u64,
    row: u64,
    row_values: &[f64],
    sampled: &SampledColumns,
    iterations: u32,
    tolerances: &Tolerances,
) -> Result<CheckCount, ChallengeError> {
    let row = check_index(row, sampled.n, false)?;
    if iterations == 0 {
        return Err(ChallengeError::InvalidIterations);
    }
    let a_row = a_row_units(seed_hash, sampled.n, row);
    let mut passed = 0;
    for (&col, b_col) in sampled.columns.iter().zip(&sampled.units) {
        let expected = scale_by_iterations(exact_dot(&a_row, b_col), iterations);
        // A missing value (short row) counts as a failed comparison.
        let claimed = usize::try_from(col).ok().and_then(|c| row_values.get(c));
        if claimed.is_some_and(|&v| within_tolerance(expected, v, tolerances.abs_tolerance, tolerances.rel_tolerance)) {
            passed += 1;
        }
    }
    let checked = sampled.columns.len();
    Ok(CheckCount { passed, checked, required: required_passes(tolerances.success_rate_threshold, checked) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::merkle::MerkleTree;

    const SEED: &str = "000102030405060708090a0b0c0d0e0f";
    const UUID: &str = "GPU-12345678-1234-1234-1234-123456789abc";

    fn seed_hash() -> u64 {
        gpu_seed_hash(SEED, UUID)
    }

    fn default_tolerances() -> Tolerances {
        Tolerances { abs_tolerance: 0.02, rel_tolerance: 0.005, success_rate_threshold: 0.85 }
    }

    #[test]
    fn vector_9_3_seed_hash() {
        let digest = Sha256::digest(format!("{SEED}|{UUID}").as_bytes());
        assert_eq!(hex::encode(digest), "7c4c38b84b87e6576895c81e4cd1647f50748c1c7da0a466b9df0839f31be0b1");
        assert_eq!(seed_hash(), 0x57e6_874b_b838_4c7c);
        assert_eq!(seed_hash(), 6_333_898_685_226_175_612);
    }

    #[test]
    fn vector_9_3_elements() {
        assert_eq!(mix(seed_hash()), 0xec3c_13a0);
        let a: Vec<f64> = (0..8).map(|k| a_value(seed_hash(), 0, k)).collect();
        assert_eq!(
            a,
            [
                -0.8466796875,
                0.848724365234375,
                0.75506591796875,
                -0.924530029296875,
                0.4239501953125,
                0.723846435546875,
                -0.16180419921875,
                0.241607666015625
            ]
        );
        let b: Vec<f64> = (0..8).map(|k| b_value(seed_hash(), k, 0)).collect();
        assert_eq!(
            b,
            [
                0.06610107421875,
                -0.8466796875,
                -0.441131591796875,
                0.459991455078125,
                0.839111328125,
                0.46136474609375,
                -0.672882080078125,
                0.817474365234375
            ]
        );
    }

    #[test]
    fn vector_9_3_expected_values_and_row0() {
        let sh = seed_hash();
        assert_eq!(expected_value(sh, 8, 0, 0, 1), Ok(-0.5368416029959917));
        assert_eq!(expected_value(sh, 8, 3, 5, 1), Ok(-0.12812921591103077));
        assert_eq!(expected_value(sh, 8, 0, 0, 3), Ok(-0.5368416029959917 * 3.0));
        let rows = expected_rows(sh, 8, &[0], 1).unwrap();
        assert_eq!(
            rows[0],
            [
                -0.5368416029959917,
                2.042129145935178,
                1.6581619288772345,
                -0.25028843991458416,
                1.1124245505779982,
                1.1174128074198961,
                -1.1409736666828394,
                0.4125064332038164
            ]
        );
        let rounded: Vec<u16> = rows[0].iter().map(|&v| fp16_bits(v).unwrap()).collect();
        let as_f64: Vec<f64> = rounded.iter().map(|&b| half_to_f64(b)).collect();
        assert_eq!(
            as_f64,
            [
                -0.53662109375,
                2.04296875,
                1.658203125,
                -0.250244140625,
                1.1123046875,
                1.1171875,
                -1.140625,
                0.41259765625
            ]
        );
        assert_eq!(fnv_fp16_row_hash(&rows[0]).unwrap(), "04a7df89c5dff494");
        assert_eq!(fnv_fp16_row_hash(&as_f64).unwrap(), "04a7df89c5dff494");
    }

    #[test]
    fn vector_9_3_fnv_small_lists() {
        assert_eq!(fnv_fp16_row_hash(&[0.0, 1.0, -1.0, 0.5]).unwrap(), "350175a612a763f5");
        assert_eq!(fnv_fp16_row_hash(&[]).unwrap(), "cbf29ce484222325");
    }

    #[test]
    fn vector_9_3_leaves_root_and_row1() {
        let sh = seed_hash();
        let all: Vec<u64> = (0..8).collect();
        let rows = expected_rows(sh, 8, &all, 1).unwrap();
        let leaves: Vec<String> = rows.iter().map(|r| fnv_fp16_row_hash(r).unwrap()).collect();
        assert_eq!(
            leaves,
            [
                "04a7df89c5dff494",
                "2ec27d7fb811ccb0",
                "97edb17f17c528dc",
                "e455b3d94f1eb50e",
                "54a306605e082d9d",
                "97454f37363ba3be",
                "263fb6530112fef3",
                "0ef93ad8b933a67a"
            ]
        );
        assert_eq!(
            MerkleTree::new(leaves).unwrap().root(),
            "1429a5da116f15834817fa84b74d67bb6097ec71c7a7796e396db2006ca06b85"
        );
        let row1: Vec<f64> = rows[1].iter().map(|&v| half_to_f64(fp16_bits(v).unwrap())).collect();
        assert_eq!(
            row1,
            [
                0.310791015625,
                -0.71533203125,
                -2.31640625,
                0.8798828125,
                -0.22607421875,
                -0.97265625,
                0.08843994140625,
                -1.076171875
            ]
        );
    }

    /// Decodes a half bit pattern (test helper; exact for every finite half).
    fn half_to_f64(bits: u16) -> f64 {
        let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
        let exponent = i32::from((bits >> 10) & 0x1F);
        let mantissa = f64::from(bits & 0x3FF);
        match exponent {
            0 => sign * mantissa * 2f64.powi(-24),
            31 => sign * f64::INFINITY,
            e => sign * (1.0 + mantissa / 1024.0) * 2f64.powi(e - 15),
        }
    }

    #[test]
    fn fp16_matches_python_struct_pack() {
        // Values and bit patterns from CPython 3.11 struct.pack("<e", v).
        let cases: [(f64, u16); 14] = [
            (1.0 + 2f64.powi(-11) + 2f64.powi(-40), 0x3c01), // double rounding trap
            (1.0 + 2f64.powi(-11), 0x3c00),                  // tie to even (down)
            (1.0 + 3.0 * 2f64.powi(-11), 0x3c02),            // tie to even (up)
            (65504.0, 0x7bff),
            (65519.99, 0x7bff),
            (2f64.powi(-25), 0x0000),
            (2.980232536792755e-08, 0x0001),
            (2f64.powi(-24) * 1.5, 0x0002),
            (f64::NAN, 0x7e00),
            (-f64::NAN, 0xfe00),
            (f64::INFINITY, 0x7c00),
            (f64::NEG_INFINITY, 0xfc00),
            (-0.0, 0x8000),
            (0.1, 0x2e66),
        ];
        for (value, bits) in cases {
            assert_eq!(fp16_bits(value), Ok(bits), "{value:e}");
        }
        assert_eq!(fp16_bits(f64::MIN_POSITIVE / 4.0), Ok(0));
        assert_eq!(fp16_bits(2f64.powi(-14) * (1.0 - 2f64.powi(-12))), Ok(0x0400));
    }

    #[test]
    fn fp16_overflow_is_an_error_like_python() {
        for value in [65520.0, -65520.0, 65536.0, 1e300, f64::MAX] {
            assert_eq!(fp16_bits(value), Err(ChallengeError::Fp16Overflow { value }));
        }
        assert!(fnv_fp16_row_hash(&[0.0, 70000.0]).is_err());
    }

    #[test]
    fn fp16_round_trips_every_half_value() {
        for bits in 0u16..=0xFFFF {
            let exponent = (bits >> 10) & 0x1F;
            if exponent == 31 {
                continue;
            }
            assert_eq!(fp16_bits(half_to_f64(bits)), Ok(bits), "{bits:#06x}");
        }
    }

    #[test]
    fn tolerance_predicate_and_threshold() {
        assert!(within_tolerance(1.0, 1.019, 0.02, 0.0));
        assert!(!within_tolerance(1.0, 1.03, 0.02, 0.005));
        assert!(within_tolerance(100.0, 100.4, 0.02, 0.005));
        assert!(!within_tolerance(1.0, f64::NAN, 0.02, 0.005));
        assert_eq!(required_passes(0.85, 20), 17);
        assert_eq!(required_passes(0.85, 1), 1);
        assert_eq!(required_passes(0.85, 32), 28);
        assert_eq!(required_passes(0.0, 32), 0);
    }

    #[test]
    fn coordinate_and_row_checks_accept_fp16_rounded_values() {
        let sh = seed_hash();
        let coords = [(0, 0), (3, 5), (7, 2)];
        let claimed = [-0.53662109375, -0.128173828125, 1.267578125];
        let count = check_coordinates(sh, 8, 1, &coords, &claimed, &default_tolerances()).unwrap();
        assert_eq!(count, CheckCount { passed: 3, checked: 3, required: 3 });
        let wrong = [-0.53662109375, 0.5, 1.267578125];
        let count = check_coordinates(sh, 8, 1, &coords, &wrong, &default_tolerances()).unwrap();
        assert!(!count.ok());

        let sampled = SampledColumns::new(sh, 8, vec![0, 2, 7]).unwrap();
        let row = expected_rows(sh, 8, &[6], 1).unwrap().remove(0);
        let count = check_sampled_row(sh, 6, &row, &sampled, 1, &default_tolerances()).unwrap();
        assert!(count.ok());
        let count = check_sampled_row(sh, 5, &row, &sampled, 1, &default_tolerances()).unwrap();
        assert!(!count.ok());
        let count = check_sampled_row(sh, 6, &row[..3], &sampled, 1, &default_tolerances()).unwrap();
        assert_eq!(count.passed, 2);
    }

    #[test]
    fn out_of_range_indexes_are_typed_errors() {
        let sh = seed_hash();
        assert!(matches!(expected_value(sh, 8, 8, 0, 1), Err(ChallengeError::RowOutOfRange { row: 8, size: 8 })));
        assert!(matches!(expected_value(sh, 8, 0, u64::MAX, 1), Err(ChallengeError::ColumnOutOfRange { .. })));
        assert!(matches!(expected_value(sh, 0, 0, 0, 1), Err(ChallengeError::MatrixSizeOutOfRange { .. })));
        assert!(matches!(
            expected_value(sh, GPU_MAX_MATRIX_SIZE + 1, 0, 0, 1),
            Err(ChallengeError::MatrixSizeOutOfRange { .. })
        ));
        assert!(SampledColumns::new(sh, 8, vec![8]).is_err());
        assert!(expected_rows(sh, 8, &[9], 1).is_err());
    }

    #[test]
    fn vector_9_2_gpu_dynamic_size() {
        let seed = ChallengeSeed::from_hex(SEED).unwrap();
        assert_eq!(gpu_dynamic_matrix_size(&seed, 32768, 0.05), Ok(32956));
        assert_eq!(gpu_dynamic_matrix_size(&seed, 32768, 0.0), Ok(32768));
        assert_eq!(gpu_dynamic_matrix_size(&seed, 1, 0.5), Ok(1));
        assert!(gpu_dynamic_matrix_size(&seed, 32768, -0.1).is_err());
        assert!(gpu_dynamic_matrix_size(&seed, 0, 0.1).is_err());
        assert!(gpu_dynamic_matrix_size(&seed, 32768, 1e30).is_err());
    }
}
