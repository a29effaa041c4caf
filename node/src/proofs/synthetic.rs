//! Honest proofs built cheaply, for benchmarks: a verifier cannot tell them from a real
//! worker's.
//!
//! Verification (§3.8) looks only at the requested rows and coordinates: it recomputes those,
//! compares them with the submitted values and hashes, and checks each row's Merkle path up to
//! the committed root. So a proof whose requested leaves are the true row hashes and whose
//! other leaves are arbitrary passes exactly as an honest worker's does, and building it costs
//! the requested rows instead of the whole product (n³ multiply-adds: seconds for a CPU
//! n = 2000 challenge, days for a GPU n = 32768 one).

use std::collections::BTreeMap;

use super::job::ProofMaterial;
use super::job::VerifyJob;
use crate::challenge::ChallengeError;
use crate::challenge::ChallengeSeed;
use crate::challenge::cpu::cpu_row_hashes;
use crate::challenge::gpu::expected_rows;
use crate::challenge::gpu::expected_value;
use crate::challenge::gpu::fnv_fp16_row_hash;
use crate::challenge::gpu::gpu_seed_hash;
use crate::challenge::merkle::MerkleTree;
use crate::challenge::targets::VerificationTarget;
use crate::challenge::verify::CPU_COMMITMENT_UUID;
use crate::challenge::verify::CpuProof;
use crate::challenge::verify::GpuProof;
use crate::config::GpuVerification;

/// Leaves of an `n`-row tree: the given `(row, hash)` pairs where requested, filler elsewhere.
fn tree_with(n: u64, known: &BTreeMap<u64, String>) -> Result<MerkleTree, ChallengeError> {
    MerkleTree::new((0..n).map(|row| known.get(&row).cloned().unwrap_or_else(|| format!("{row:016x}"))))
}

fn proofs_for(tree: &MerkleTree, rows: &[u64]) -> Result<Vec<crate::challenge::merkle::MerkleProof>, ChallengeError> {
    rows.iter().map(|&row| tree.proof(row)).collect()
}

/// A CPU challenge (`seed`, `n`, `iterations`) with the given requested `rows` and the honest
/// proof for them.
pub fn cpu_job(id: &str, seed: [u8; 16], n: u64, iterations: u32, rows: &[u64]) -> Result<VerifyJob, ChallengeError> {
    let challenge_seed = ChallengeSeed::from_bytes(seed);
    let hashes = cpu_row_hashes(&challenge_seed, n, iterations, rows)?;
    let known: BTreeMap<u64, String> = rows.iter().copied().zip(hashes.iter().cloned()).collect();
    let tree = tree_with(n, &known)?;
    let mut commitments = BTreeMap::new();
    commitments.insert(CPU_COMMITMENT_UUID.to_string(), tree.root().to_string());
    let targets = rows.iter().map(|&row| VerificationTarget::Row { row }).collect();
    let proof = ProofMaterial::Cpu(CpuProof { row_hashes: hashes, merkle_proofs: proofs_for(&tree, rows)? });
    Ok(job(id, seed, n, iterations, targets, commitments, proof))
}

/// A GPU challenge for one GPU `uuid` with the given coordinates and full rows, the honest
/// proof for them, and the default GPU verification settings (§6).
pub fn gpu_job(
    id: &str,
    seed: [u8; 16],
    uuid: &str,
    n: u64,
    iterations: u32,
    coordinates: &[(u64, u64)],
    rows: &[u64],
) -> Result<VerifyJob, ChallengeError> {
    let seed_hex = ChallengeSeed::from_bytes(seed).as_hex().to_string();
    let seed_hash = gpu_seed_hash(&seed_hex, uuid);
    let mut values = Vec::with_capacity(coordinates.len() + rows.len() * n as usize);
    for &(row, col) in coordinates {
        values.push(expected_value(seed_hash, n, row, col, iterations)?);
    }
    let row_values = expected_rows(seed_hash, n, rows, iterations)?;
    let hashes = row_values.iter().map(|v| fnv_fp16_row_hash(v)).collect::<Result<Vec<_>, _>>()?;
    for row in row_values {
        values.extend(row);
    }
    let known: BTreeMap<u64, String> = rows.iter().copied().zip(hashes.iter().cloned()).collect();
    let tree = tree_with(n, &known)?;
    let mut commitments = BTreeMap::new();
    commitments.insert(uuid.to_string(), tree.root().to_string());
    let targets = coordinates
        .iter()
        .map(|&(row, col)| VerificationTarget::Coordinate { row, col })
        .chain(rows.iter().map(|&row| VerificationTarget::Row { row }))
        .collect();
    let proof = ProofMaterial::Gpu(vec![GpuProof {
        uuid: uuid.to_string(),
        row_hashes: hashes,
        merkle_proofs: proofs_for(&tree, rows)?,
        coordinate_values: values,
    }]);
    Ok(job(id, seed, n, iterations, targets, commitments, proof))
}

/// A job with the default GPU verification settings (§6).
fn job(
    id: &str,
    seed: [u8; 16],
    matrix_size: u64,
    iterations: u32,
    targets: Vec<VerificationTarget>,
    commitments: BTreeMap<String, String>,
    proof: ProofMaterial,
) -> VerifyJob {
    let defaults = GpuVerification::default();
    VerifyJob {
        challenge_id: id.to_string(),
        seed,
        matrix_size,
        iterations,
        targets,
        commitments,
        proof,
        abs_tolerance: defaults.abs_tolerance,
        rel_tolerance: defaults.rel_tolerance,
        success_rate_threshold: defaults.success_rate_threshold,
        row_sample_rate: defaults.row_sample_rate,
        sample_seed: [7; 32],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_cpu_proof_verifies_and_a_wrong_leaf_fails() {
        let job = cpu_job("c", [3; 16], 128, 1, &[0, 5, 127]).expect("job");
        let verdict = job.run();
        assert!(verdict.success, "{}", verdict.notes);
        assert_eq!(verdict.success_count, 1, "the original stores 1 for a verified CPU proof");

        let mut bad = job.clone();
        if let ProofMaterial::Cpu(proof) = &mut bad.proof {
            proof.row_hashes[1] = "0000000000000000".into();
        }
        assert!(!bad.run().success);
    }

    #[test]
    fn synthetic_gpu_proof_verifies_and_a_wrong_value_fails() {
        let job = gpu_job("g", [9; 16], "GPU-bench-0", 64, 1, &[(1, 2), (40, 7)], &[3, 60]).expect("job");
        let verdict = job.run();
        assert!(verdict.success, "{}", verdict.notes);

        let mut bad = job.clone();
        if let ProofMaterial::Gpu(proofs) = &mut bad.proof {
            proofs[0].coordinate_values[0] += 1000.0;
            proofs[0].coordinate_values[1] += 1000.0;
        }
        assert!(!bad.run().success);
    }
}
