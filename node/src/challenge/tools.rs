//! JSON documents for the operator commands: recompute by hand what an honest worker commits
//! to and what it must reveal, to debug a disputed verification or cross-check a worker.
//!
//! These run the *worker's* side, so unlike verification they may be expensive: the Merkle
//! root needs every row hash of the matrix.
//!
//! - CPU: all n rows of the product, `n³ · iterations` multiply-adds (n = 2000, 1 iteration:
//!   a few seconds on one core).
//! - GPU: all n rows cost n³ multiply-adds too (n = 32768: ~3.5·10¹³, days on this machine),
//!   so the root is only computed up to [`GPU_TOOL_MAX_ROOT_SIZE`]; above that `merkle_root`
//!   is `null` and the document says why. Requested rows cost O(n²) each (n = 32768: seconds).
//!   GPU values here are the exact expected products; a real GPU's values only agree within
//!   the §3.8 tolerances, and its row hashes are of its own fp16 values.

use serde_json::{Map, Value, json};

use super::cpu::{CPU_MIN_MATRIX_SIZE, all_row_hashes_unchecked, check_cpu_matrix_size, cpu_dynamic_matrix_size};
use super::gpu::{
    check_gpu_matrix_size, expected_rows, expected_value, fnv_fp16_row_hash, gpu_dynamic_matrix_size, gpu_seed_hash,
};
use super::merkle::MerkleTree;
use super::{ChallengeError, ChallengeSeed};

/// Largest GPU matrix for which [`gpu_challenge`] computes the Merkle root (n³ work; 4096 is
/// about 7·10¹⁰ multiply-adds). Our own limit, not a protocol constant.
pub const GPU_TOOL_MAX_ROOT_SIZE: u64 = 4096;
/// Rows per pass when the GPU tool computes every row (bounds memory to 256 · n floats).
const GPU_ROOT_ROW_BATCH: u64 = 256;

/// The honest CPU worker's commitment and the reveal for `rows`:
/// `{seed, matrix_size, iterations, merkle_root, row_hashes: {row: hash},
///   proofs: {row: {hashes, directions}}}`.
pub fn cpu_challenge(seed_hex: &str, size: u64, iterations: u32, rows: &[u64]) -> Result<Value, ChallengeError> {
    let seed = ChallengeSeed::from_hex(seed_hex)?;
    // The original issues 100..=10000 (§3.2), but the generator is defined for any n and the
    // §9.2 vectors use n = 4, so the tool takes 1..=10000.
    let n = match size {
        1..CPU_MIN_MATRIX_SIZE => size as usize,
        _ => check_cpu_matrix_size(size)?,
    };
    if iterations == 0 {
        return Err(ChallengeError::InvalidIterations);
    }
    for &row in rows {
        if row >= size {
            return Err(ChallengeError::RowOutOfRange { row, size: n });
        }
    }
    let tree = MerkleTree::new(all_row_hashes_unchecked(seed.seed32(), n, iterations))?;
    let mut row_hashes = Map::new();
    let mut proofs = Map::new();
    for &row in rows {
        let proof = tree.proof(row)?;
        row_hashes.insert(row.to_string(), json!(proof.leaf_hash));
        proofs.insert(row.to_string(), json!({"hashes": proof.proof_hashes, "directions": proof.proof_directions}));
    }
    Ok(json!({
        "seed": seed.as_hex(),
        "matrix_size": size,
        "iterations": iterations,
        "merkle_root": tree.root(),
        "row_hashes": row_hashes,
        "proofs": proofs,
    }))
}

/// The exact expected GPU results for one GPU uuid (iterations = 1):
/// `{seed, uuid, seed_hash, matrix_size, merkle_root (or null), row_hashes: {row: hash},
///   values: [{row, col, value}]}`.
pub fn gpu_challenge(
    seed_hex: &str,
    uuid: &str,
    size: u64,
    rows: &[u64],
    coords: &[(u64, u64)],
) -> Result<Value, ChallengeError> {
    let seed = ChallengeSeed::from_hex(seed_hex)?;
    check_gpu_matrix_size(size)?;
    let seed_hash = gpu_seed_hash(seed.as_hex(), uuid);

    let values = coords
        .iter()
        .map(|&(row, col)| {
            expected_value(seed_hash, size, row, col, 1).map(|value| json!({"row": row, "col": col, "value": value}))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut row_hashes = Map::new();
    for (&row, values) in rows.iter().zip(expected_rows(seed_hash, size, rows, 1)?) {
        row_hashes.insert(row.to_string(), json!(fnv_fp16_row_hash(&values)?));
    }

    let mut document = Map::new();
    document.insert("seed".into(), json!(seed.as_hex()));
    document.insert("uuid".into(), json!(uuid));
    document.insert("seed_hash".into(), json!(format!("{seed_hash:#018x}")));
    document.insert("matrix_size".into(), json!(size));
    if size <= GPU_TOOL_MAX_ROOT_SIZE {
        document.insert("merkle_root".into(), json!(gpu_merkle_root(seed_hash, size)?));
    } else {
        document.insert("merkle_root".into(), Value::Null);
        document.insert(
            "merkle_root_skipped".into(),
            json!(format!(
                "the root needs all {size} rows ({size}³ multiply-adds); computed only up to n = {GPU_TOOL_MAX_ROOT_SIZE}"
            )),
        );
    }
    document.insert("row_hashes".into(), Value::Object(row_hashes));
    document.insert("values".into(), Value::Array(values));
    Ok(Value::Object(document))
}

/// Root over every expected row (fp16 FNV leaves), in batches of rows.
fn gpu_merkle_root(seed_hash: u64, size: u64) -> Result<String, ChallengeError> {
    let mut leaves = Vec::new();
    let mut start = 0;
    while start < size {
        let end = (start + GPU_ROOT_ROW_BATCH).min(size);
        let batch: Vec<u64> = (start..end).collect();
        for row in expected_rows(seed_hash, size, &batch, 1)? {
            leaves.push(fnv_fp16_row_hash(&row)?);
        }
        start = end;
    }
    Ok(MerkleTree::new(leaves)?.root().to_string())
}

/// The dynamic matrix size for a seed: CPU rules (clamped to [100, 10000], variance ≤ 0.5)
/// or, with `gpu`, the GPU rules (lower bound 1, no upper clamp) (§3.2, §3.3).
pub fn dynamic_size(seed_hex: &str, base: u64, variance: f64, gpu: bool) -> Result<u64, ChallengeError> {
    let seed = ChallengeSeed::from_hex(seed_hex)?;
    if gpu { gpu_dynamic_matrix_size(&seed, base, variance) } else { cpu_dynamic_matrix_size(&seed, base, variance) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::merkle::{MerkleProof, verify_proof_strict};

    const SEED: &str = "000102030405060708090a0b0c0d0e0f";
    const UUID: &str = "GPU-12345678-1234-1234-1234-123456789abc";

    #[test]
    fn cpu_document_has_root_hashes_and_verifiable_proofs() {
        let doc = cpu_challenge(SEED, 150, 1, &[0, 149]).unwrap();
        let root = doc["merkle_root"].as_str().unwrap();
        assert_eq!(root.len(), 64);
        for row in [0u64, 149] {
            let key = row.to_string();
            let proof = MerkleProof {
                leaf_index: row as i64,
                leaf_hash: doc["row_hashes"][&key].as_str().unwrap().to_string(),
                proof_hashes: serde_json::from_value(doc["proofs"][&key]["hashes"].clone()).unwrap(),
                proof_directions: serde_json::from_value(doc["proofs"][&key]["directions"].clone()).unwrap(),
            };
            assert_eq!(verify_proof_strict(&proof, 150, root), Ok(()));
        }
    }

    #[test]
    fn gpu_document_matches_vector_9_3() {
        // The §9.3 vectors use n = 8.
        let doc = gpu_challenge(SEED, UUID, 8, &[1, 6], &[(0, 0), (3, 5)]).unwrap();
        assert_eq!(doc["merkle_root"], "1429a5da116f15834817fa84b74d67bb6097ec71c7a7796e396db2006ca06b85");
        assert_eq!(doc["row_hashes"]["1"], "2ec27d7fb811ccb0");
        assert_eq!(doc["row_hashes"]["6"], "263fb6530112fef3");
        assert_eq!(doc["values"][0]["value"], -0.5368416029959917);
        assert_eq!(doc["values"][1]["value"], -0.12812921591103077);
        assert_eq!(doc["seed_hash"], "0x57e6874bb8384c7c");
    }

    #[test]
    fn gpu_document_skips_the_root_for_large_matrices() {
        let doc = gpu_challenge(SEED, UUID, GPU_TOOL_MAX_ROOT_SIZE + 1, &[], &[(0, 1)]).unwrap();
        assert!(doc["merkle_root"].is_null());
        assert!(doc["merkle_root_skipped"].is_string());
    }

    #[test]
    fn dynamic_sizes_match_vector_9_2() {
        assert_eq!(dynamic_size(SEED, 2000, 0.1, false), Ok(2091));
        assert_eq!(dynamic_size(SEED, 32768, 0.05, true), Ok(32956));
    }

    #[test]
    fn bad_tool_inputs_are_typed_errors() {
        assert!(matches!(cpu_challenge("xyz", 150, 1, &[]), Err(ChallengeError::InvalidSeed { .. })));
        assert!(matches!(cpu_challenge(SEED, 0, 1, &[]), Err(ChallengeError::MatrixSizeOutOfRange { .. })));
        assert!(matches!(cpu_challenge(SEED, 10_001, 1, &[]), Err(ChallengeError::MatrixSizeOutOfRange { .. })));
        assert!(matches!(cpu_challenge(SEED, 150, 1, &[150]), Err(ChallengeError::RowOutOfRange { .. })));
        assert_eq!(cpu_challenge(SEED, 150, 0, &[]), Err(ChallengeError::InvalidIterations));
        assert!(gpu_challenge(SEED, UUID, 8, &[8], &[]).is_err());
        assert!(gpu_challenge(SEED, UUID, 8, &[], &[(0, 8)]).is_err());
        assert!(gpu_challenge(SEED, UUID, u64::MAX, &[], &[]).is_err());
        assert!(dynamic_size("00", 2000, 0.1, false).is_err());
        assert!(dynamic_size(SEED, 2000, 0.6, false).is_err());
    }
}
