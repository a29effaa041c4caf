//! Challenge math: how the validator checks that a worker really multiplied the matrices.
//!
//! # Why this module exists
//!
//! ByteLeap miners run **unchanged Python workers** (and a closed CUDA binary for GPUs). They
//! rebuild the challenge matrices from the seed we send, multiply them, commit to the result
//! with a Merkle root (Phase 1), then reveal a few rows/values we pick (Phase 2). Every byte we
//! recompute therefore has to match what numpy, `hashlib` and `struct` produce on the worker
//! side (byteleap-protocol.md §3.2–§3.4, test vectors in §9). The code here is pure: no I/O,
//! no clock, no OS randomness; any randomness comes in as explicit seed bytes so that every
//! replica of an HA validator computes the same answer from the same replicated command.
//!
//! # Map
//!
//! - [`mt19937`]: numpy's legacy `RandomState` (MT19937 + masked-rejection `randint`),
//!   block-generated for speed and checked against the `rand_mt` reference in tests.
//! - [`cpu`]: dynamic matrix size, int64 matrices A and B, row products and row hashes.
//!   Verification computes **only the requested rows** (`A[rows]·B`, then `·B` per extra
//!   iteration), never the full n×n product the Python validator computes (§8.2.13): for
//!   n = 2000 and 50 rows that is tens of milliseconds instead of seconds.
//! - [`gpu`]: the hash-based element generator, exact expected values, the fp16 FNV-1a row
//!   hash and the tolerance predicate (§3.3, §3.8). Nothing materialises an n×n matrix.
//! - [`merkle`]: the hex-string Merkle tree (§3.4) with **strict** proofs: directions and path
//!   length are derived from the leaf index and the leaf count (§8.2.10).
//! - [`targets`]: Phase-2 row/coordinate selection (§3.6) as a deterministic function of
//!   caller-supplied seed bytes.
//! - [`verify`]: full CPU and GPU verification (§3.8) returning a typed verdict.
//! - [`signature`]: the GPU commitment P-256 signature check (§3.3, Phase 1).
//! - [`tools`]: JSON documents for the operator commands (recompute a challenge by hand).
//!
//! # Cost (2-core AMD EPYC VM, one core, release build)
//!
//! CPU n = 2000, 50 rows, 1 iteration: ~22 ms to verify (the Python validator: ~8.5 s).
//! GPU n = 32768, 25 coordinates + 2 rows: ~3 ms. Re-measure with `validator bench verify`
//! (docs/benchmarks.md).
//!
//! # Interop note for callers
//!
//! GPU row values arrive as JSON decimals and are re-packed to fp16 for the row hash, so the
//! JSON parser must round correctly: enable serde_json's `float_roundtrip` feature (the
//! default parser is off by one ulp on some inputs; byteleap-protocol.md §10 item 9).
//!
//! # Error policy
//!
//! Anything a miner controls (hashes, proofs, values, list lengths) never panics: it yields
//! a failed verdict ([`verify::CpuFailure`], [`verify::GpuFailure`]). A [`ChallengeError`]
//! (returned by the helpers, wrapped in `CpuFailure::InvalidChallenge` /
//! `GpuAbort::InvalidChallenge` by the verifiers) means the *validator's own* inputs (size,
//! targets, settings) or an operator's tool arguments were invalid; callers should fail the
//! challenge and log it as a validator-side problem.

pub mod cpu;
pub mod gpu;
pub mod merkle;
pub mod mt19937;
pub mod signature;
pub mod targets;
pub mod tools;
pub mod verify;

pub use cpu::{
    CpuMatrices, check_cpu_matrix_size, cpu_all_row_hashes, cpu_dynamic_matrix_size, cpu_row_hash, cpu_row_hashes,
    cpu_row_products,
};
pub use gpu::{Tolerances, fnv_fp16_row_hash, fp16_bits, gpu_dynamic_matrix_size, gpu_seed_hash, within_tolerance};
pub use merkle::{MerkleProof, MerkleTree, ProofFailure, RowProofFailure, verify_proof_strict, verify_row_proofs};
pub use mt19937::LegacyRandomState;
pub use signature::{
    GPU_COMMITMENT_PUBLIC_KEY_HEX, SignatureFailure, gpu_commitment_message, verify_gpu_commitment_signature,
};
pub use targets::{
    CpuTargetSettings, GpuTargetSettings, GpuTargets, TargetSeed, VerificationTarget, select_cpu_targets,
    select_gpu_targets, select_row_sample_columns,
};
pub use verify::{
    CPU_COMMITMENT_UUID, CpuFailure, CpuProof, CpuVerdict, GpuAbort, GpuFailure, GpuProof, GpuSettings, GpuUnitVerdict,
    GpuVerdict, MatrixChallenge, verify_cpu_challenge, verify_gpu_challenge,
};

/// Seed length in bytes: 16 CSPRNG bytes, stored as 32 lowercase hex chars (§3.2).
pub const SEED_LEN: usize = 16;

/// Errors for inputs the validator itself supplies (or an operator types into a tool).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChallengeError {
    /// The seed is not 32 hex characters (16 bytes).
    #[error("challenge seed must be {} hex characters: {reason}", SEED_LEN * 2)]
    InvalidSeed { reason: String },
    /// A matrix size outside what the challenge type allows.
    #[error("matrix size {size} is outside [{min}, {max}]")]
    MatrixSizeOutOfRange { size: u64, min: u64, max: u64 },
    /// A size variance that is negative, not finite or above the type's limit.
    #[error("size variance {variance} is outside [0, {max}]")]
    InvalidSizeVariance { variance: f64, max: f64 },
    /// `iterations` must be at least 1 (§3.2, §3.3).
    #[error("iterations must be at least 1")]
    InvalidIterations,
    /// `randint` over an empty range (numpy raises `ValueError`).
    #[error("empty integer range [{low}, {high})")]
    EmptyRange { low: i64, high: i64 },
    /// A row index outside the matrix.
    #[error("row {row} is outside a matrix of {size} rows")]
    RowOutOfRange { row: u64, size: usize },
    /// A column index outside the matrix.
    #[error("column {col} is outside a matrix of {size} columns")]
    ColumnOutOfRange { col: u64, size: usize },
    /// A Merkle tree needs at least one leaf (§3.4).
    #[error("a Merkle tree needs at least one leaf")]
    EmptyMerkleTree,
    /// Leaf index outside the tree.
    #[error("leaf index {index} is outside a tree of {leaf_count} leaves")]
    LeafIndexOutOfRange { index: u64, leaf_count: usize },
    /// A finite value that rounds beyond ±65504 cannot be packed as IEEE half (Python's
    /// `struct.pack("<e")` raises `OverflowError`, §3.3).
    #[error("value {value} is too large for IEEE half precision")]
    Fp16Overflow { value: f64 },
    /// The verification targets hold no row where rows are required.
    #[error("no rows to verify")]
    NoRowsRequested,
    /// A tolerance/threshold/rate outside [0, 1] or not finite (§3.8 range-checked getters).
    #[error("invalid verification setting {name} = {value}")]
    InvalidSetting { name: &'static str, value: f64 },
    /// Two matrices whose shapes cannot be multiplied.
    #[error("matrix shape mismatch: expected {expected:?}, got {got:?}")]
    MatrixShapeMismatch { expected: (usize, usize), got: (usize, usize) },
    /// Memory for this computation would exceed what the module is willing to allocate.
    #[error("{what} is too large ({size})")]
    TooLarge { what: &'static str, size: u64 },
}

/// The 16-byte challenge seed, with the exact hex string that workers see.
///
/// The GPU element generator and the GPU signature hash the seed **string**
/// (`"<seed hex>|<uuid>"`), so the lowercase hex form is kept next to the bytes. Input hex is
/// accepted in either case and stored lowercase, which is what the validator sends (§3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeSeed {
    bytes: [u8; SEED_LEN],
    hex: String,
}

impl ChallengeSeed {
    /// Wraps 16 raw seed bytes (e.g. freshly drawn from the OS CSPRNG by the caller).
    pub fn from_bytes(bytes: [u8; SEED_LEN]) -> Self {
        Self { bytes, hex: hex::encode(bytes) }
    }

    /// Parses the stored 32-character hex form.
    pub fn from_hex(text: &str) -> Result<Self, ChallengeError> {
        let mut bytes = [0u8; SEED_LEN];
        hex::decode_to_slice(text, &mut bytes).map_err(|e| ChallengeError::InvalidSeed { reason: e.to_string() })?;
        Ok(Self::from_bytes(bytes))
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8; SEED_LEN] {
        &self.bytes
    }

    /// The lowercase hex string, as stored in `challenge_data.seed`.
    pub fn as_hex(&self) -> &str {
        &self.hex
    }

    /// `seed32`: big-endian u32 of bytes 0..4, the only part numpy sees (§3.2, §8.2.12).
    pub fn seed32(&self) -> u32 {
        u32::from_be_bytes([self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]])
    }
}

impl std::fmt::Display for ChallengeSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex)
    }
}

/// Lowercase hex of the first 8 bytes of a SHA-256 digest: the 16-character row hash shape
/// used by the CPU leaves (§3.2).
pub(crate) fn sha256_prefix16(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(data);
    hex::encode(digest.get(..8).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_parses_and_exposes_seed32() {
        let seed = ChallengeSeed::from_hex("000102030405060708090A0B0C0D0E0F").unwrap();
        assert_eq!(seed.as_hex(), "000102030405060708090a0b0c0d0e0f");
        assert_eq!(seed.seed32(), 66051);
        assert_eq!(seed.bytes()[15], 15);
    }

    #[test]
    fn malformed_seeds_are_typed_errors() {
        for bad in [
            "",
            "00",
            "000102030405060708090a0b0c0d0e0",
            "zz0102030405060708090a0b0c0d0e0f",
            "000102030405060708090a0b0c0d0e0f00",
            " 000102030405060708090a0b0c0d0e0f",
        ] {
            assert!(matches!(ChallengeSeed::from_hex(bad), Err(ChallengeError::InvalidSeed { .. })), "{bad:?}");
        }
    }
}
