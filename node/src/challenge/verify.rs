//! Phase-2 verification of CPU and GPU challenges (§3.8) as pure functions.
//!
//! Inputs are typed: the challenge parameters, the stored `verification_targets`, the
//! committed Merkle roots and the miner's proof. The verdict says which check failed; it
//! matches the Python validator's success/failure decision and `success_count`, with these
//! deliberate differences (all of them refuse only proofs an honest Python worker never
//! sends):
//!
//! - Merkle proofs are checked strictly (directions and length derived from the row index
//!   and the matrix size, §8.2.10), see [`super::merkle`].
//! - GPU: when rows are requested, `row_hashes` and `merkle_proofs` are required. The
//!   Python verifier silently skips the Merkle step when either is empty; its Phase 2 already
//!   rejects such proofs, so requiring them here only closes the gap between the two.
//! - CPU: cheap structural checks (counts, Merkle proofs over the submitted hashes) run
//!   before the expensive recomputation, so a malformed proof costs nothing. The verdict is
//!   the same; only the reported reason can differ when several checks would fail.
//!
//! Randomness: the GPU row check samples columns. The Python validator draws them from the
//! OS at verification time; here the caller passes a [`TargetSeed`] drawn after the proof
//! arrived (see [`super::targets::select_row_sample_columns`]).
//!
//! Kept for parity although odd: a GPU row value that cannot be packed as fp16 (|v| rounds
//! beyond 65504) makes Python raise inside the loop over GPUs, which fails the **whole
//! challenge** even if another GPU had passed. `GpuVerdict::aborted` reproduces that.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::cpu::{check_cpu_matrix_size, cpu_row_hashes};
use super::gpu::{
    CheckCount, SampledColumns, Tolerances, check_coordinates, check_gpu_matrix_size, check_sampled_row,
    fnv_fp16_row_hash, gpu_seed_hash,
};
use super::merkle::{MerkleProof, RowProofFailure, verify_row_proofs};
use super::targets::{TargetSeed, VerificationTarget, select_row_sample_columns};
use super::{ChallengeError, ChallengeSeed};

/// The uuid a CPU commitment and proof use (§3.2).
pub const CPU_COMMITMENT_UUID: &str = "-1";

/// Parameters of an issued matrix challenge (`challenge_data`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatrixChallenge {
    /// The 16-byte seed.
    pub seed: ChallengeSeed,
    /// `matrix_size` n.
    pub matrix_size: u64,
    /// `iterations` (≥ 1).
    pub iterations: u32,
}

/// The CPU proof (`proofs["-1"]`, §3.7).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuProof {
    /// Submitted hashes of the requested rows, in request order.
    #[serde(default)]
    pub row_hashes: Vec<String>,
    /// One Merkle proof per requested row.
    #[serde(default)]
    pub merkle_proofs: Vec<MerkleProof>,
}

/// One GPU's proof (`proofs[uuid]`, §3.7).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuProof {
    /// GPU uuid the proof is for.
    pub uuid: String,
    /// Submitted leaves of the requested rows.
    #[serde(default)]
    pub row_hashes: Vec<String>,
    /// One Merkle proof per requested row.
    #[serde(default)]
    pub merkle_proofs: Vec<MerkleProof>,
    /// Coordinate values first, then n values per requested row.
    #[serde(default)]
    pub coordinate_values: Vec<f64>,
}

/// Why a CPU challenge failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CpuFailure {
    /// No proof for uuid "-1".
    #[error("no CPU proof found")]
    MissingProof,
    /// The targets hold no row.
    #[error("no rows to verify")]
    NoRowsRequested,
    /// No committed root for uuid "-1".
    #[error("no CPU commitment found")]
    MissingCommitment,
    /// `row_hashes` or `merkle_proofs` is empty.
    #[error("CPU proof missing row hashes or Merkle proofs")]
    ProofMissingData,
    /// Wrong number of submitted row hashes.
    #[error("{got} row hashes submitted for {expected} rows")]
    RowHashCountMismatch { expected: usize, got: usize },
    /// A Merkle proof failed.
    #[error("CPU Merkle proof failed: {0}")]
    Merkle(RowProofFailure),
    /// A submitted row hash differs from the recomputed one.
    #[error("row hash mismatch at position {position} (row {row})")]
    RowHashMismatch { position: usize, row: u64 },
    /// The validator's own challenge data or targets are invalid.
    #[error("invalid challenge: {0}")]
    InvalidChallenge(ChallengeError),
}

/// Outcome of a CPU verification.
#[derive(Clone, Debug, PartialEq)]
pub enum CpuVerdict {
    /// All rows matched and all proofs verified.
    Verified { rows_checked: usize },
    /// The first failing check.
    Failed(CpuFailure),
}

impl CpuVerdict {
    /// `is_success` / `verification_result`.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Verified { .. })
    }

    /// `success_count` as the original stores it (1 or 0).
    pub fn success_count(&self) -> u32 {
        u32::from(self.is_success())
    }

    /// `verification_notes` for operators; the success text matches the original's.
    pub fn notes(&self) -> String {
        match self {
            Self::Verified { rows_checked } => {
                format!("Processed {rows_checked} rows, verified 1/1 proofs")
            }
            Self::Failed(failure) => format!("Verification failed: {failure}"),
        }
    }
}

/// Verifies a CPU challenge (§3.8 CPU algorithm). `committed_root` is
/// `merkle_commitments["-1"]`, `proof` is the proof for uuid "-1".
///
/// Cost: the 2·n² random draws plus `rows · n² · iterations` multiply-adds.
pub fn verify_cpu_challenge(
    challenge: &MatrixChallenge,
    targets: &[VerificationTarget],
    committed_root: Option<&str>,
    proof: Option<&CpuProof>,
) -> CpuVerdict {
    match cpu_verdict(challenge, targets, committed_root, proof) {
        Ok(()) => CpuVerdict::Verified { rows_checked: rows_of(targets).len() },
        Err(failure) => CpuVerdict::Failed(failure),
    }
}

fn cpu_verdict(
    challenge: &MatrixChallenge,
    targets: &[VerificationTarget],
    committed_root: Option<&str>,
    proof: Option<&CpuProof>,
) -> Result<(), CpuFailure> {
    let proof = proof.ok_or(CpuFailure::MissingProof)?;
    let rows = rows_of(targets);
    if rows.is_empty() {
        return Err(CpuFailure::NoRowsRequested);
    }
    let root = committed_root.filter(|root| !root.is_empty()).ok_or(CpuFailure::MissingCommitment)?;
    if proof.row_hashes.is_empty() || proof.merkle_proofs.is_empty() {
        return Err(CpuFailure::ProofMissingData);
    }
    let n = check_cpu_matrix_size(challenge.matrix_size).map_err(CpuFailure::InvalidChallenge)?;
    if let Some(&row) = rows.iter().find(|&&row| row >= challenge.matrix_size) {
        return Err(CpuFailure::InvalidChallenge(ChallengeError::RowOutOfRange { row, size: n }));
    }
    if proof.row_hashes.len() != rows.len() {
        return Err(CpuFailure::RowHashCountMismatch { expected: rows.len(), got: proof.row_hashes.len() });
    }
    verify_row_proofs(&rows, &proof.row_hashes, &proof.merkle_proofs, root, n).map_err(CpuFailure::Merkle)?;
    let expected = cpu_row_hashes(&challenge.seed, challenge.matrix_size, challenge.iterations, &rows)
        .map_err(CpuFailure::InvalidChallenge)?;
    if let Some(position) = expected.iter().zip(&proof.row_hashes).position(|(want, got)| want != got) {
        return Err(CpuFailure::RowHashMismatch { position, row: rows.get(position).copied().unwrap_or_default() });
    }
    Ok(())
}

/// GPU verification settings (`validation.gpu.verification.*`, §3.8).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GpuSettings {
    /// Tolerances and pass threshold.
    pub tolerances: Tolerances,
    /// `row_sample_rate`: sampled columns per row = max(1, int(n · rate)).
    pub row_sample_rate: f64,
}

impl Default for GpuSettings {
    fn default() -> Self {
        // Defaults of §3.8 / the example config.
        Self {
            tolerances: Tolerances { abs_tolerance: 0.02, rel_tolerance: 0.005, success_rate_threshold: 0.85 },
            row_sample_rate: 0.001,
        }
    }
}

impl GpuSettings {
    /// The original reads every setting through a getter range-checked to [0, 1].
    fn check(&self) -> Result<(), ChallengeError> {
        for (name, value) in [
            ("abs_tolerance", self.tolerances.abs_tolerance),
            ("rel_tolerance", self.tolerances.rel_tolerance),
            ("success_rate_threshold", self.tolerances.success_rate_threshold),
            ("row_sample_rate", self.row_sample_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ChallengeError::InvalidSetting { name, value });
            }
        }
        Ok(())
    }
}

/// Why one GPU failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GpuFailure {
    /// No committed root for this uuid (it failed or skipped Phase 1).
    #[error("no committed root for this GPU")]
    NoCommittedRoot,
    /// Fewer values than coordinates.
    #[error("{got} values for {needed} coordinates")]
    MissingCoordinateValues { needed: usize, got: usize },
    /// Too few coordinates within tolerance.
    #[error("coordinates: {} of {} within tolerance, {} needed", .0.passed, .0.checked, .0.required)]
    CoordinatesFailed(CheckCount),
    /// Fewer values than coordinates + rows · n.
    #[error("{got} values, {needed} needed for the requested rows")]
    MissingRowValues { needed: usize, got: usize },
    /// No requested row passed the sampled check.
    #[error("no row passed the sampled check")]
    NoRowPassedSampling,
    /// Rows were requested but row hashes or Merkle proofs are missing.
    #[error("row hashes or Merkle proofs missing")]
    MissingRowProofs,
    /// Row hashes / proofs do not have one entry per requested row.
    #[error("{hashes} row hashes and {proofs} proofs for {rows} rows")]
    RowProofCountMismatch { rows: usize, hashes: usize, proofs: usize },
    /// A requested row failed the sampled check (every row must pass before its hash counts).
    #[error("row {row} failed the sampled check")]
    RowFailedSampling { row: u64 },
    /// The fp16 FNV hash of the submitted values differs from the submitted row hash.
    #[error("row hash mismatch at position {position} (row {row})")]
    RowHashMismatch { position: usize, row: u64 },
    /// A Merkle proof failed.
    #[error("Merkle proof failed: {0}")]
    Merkle(RowProofFailure),
}

/// The verdict for one GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuUnitVerdict {
    /// GPU uuid.
    pub uuid: String,
    /// `Ok` when every applicable check passed.
    pub result: Result<(), GpuFailure>,
}

/// Why a whole GPU challenge failed before or regardless of per-GPU results.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GpuAbort {
    /// No proof with a GPU uuid.
    #[error("no GPU proofs")]
    NoGpuProofs,
    /// A row value could not be packed as fp16 (Python raises and fails the challenge).
    #[error("GPU {uuid}: {error}")]
    Fp16Overflow { uuid: String, error: ChallengeError },
    /// The validator's own challenge data, targets or settings are invalid.
    #[error("invalid challenge: {0}")]
    InvalidChallenge(ChallengeError),
}

/// Outcome of a GPU verification.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuVerdict {
    /// Per-GPU results, in proof order (empty when aborted early).
    pub gpus: Vec<GpuUnitVerdict>,
    /// Set when the whole challenge fails regardless of `gpus`.
    pub aborted: Option<GpuAbort>,
    /// Coordinate targets.
    pub coordinates: usize,
    /// Row targets.
    pub rows: usize,
}

impl GpuVerdict {
    /// Successful GPUs (`success_count`); zero when aborted.
    pub fn success_count(&self) -> u32 {
        if self.aborted.is_some() {
            return 0;
        }
        self.gpus.iter().filter(|g| g.result.is_ok()).count() as u32
    }

    /// The challenge succeeds iff at least one GPU passed (§3.8, §8.2.11).
    pub fn is_success(&self) -> bool {
        self.success_count() > 0
    }

    /// `verification_notes`: the original's summary line, then each failure.
    pub fn notes(&self) -> String {
        if let Some(abort) = &self.aborted {
            return format!("Verification failed: {abort}");
        }
        let mut notes = format!(
            "Processed {} coordinates, {} rows, verified {}/{} proofs",
            self.coordinates,
            self.rows,
            self.success_count(),
            self.gpus.len()
        );
        for gpu in &self.gpus {
            if let Err(failure) = &gpu.result {
                notes.push_str(&format!("; {}: {failure}", gpu.uuid));
            }
        }
        notes
    }

    fn aborted(abort: GpuAbort, coordinates: usize, rows: usize) -> Self {
        Self { gpus: Vec::new(), aborted: Some(abort), coordinates, rows }
    }
}

/// Verifies a GPU challenge (§3.8 GPU algorithm), each GPU independently.
///
/// `committed_roots` is `merkle_commitments` (uuid → root); `proofs` the Phase-2 proofs (a
/// repeated uuid behaves like Python's dict: the last proof wins, at the first position).
/// `sample_seed` drives the per-GPU column sampling and must be unknown to the miner until
/// its proof is in.
///
/// Cost per GPU: O(n) per coordinate, O(n · s) per row (s sampled columns, 32 for n = 32768)
/// plus the O(n) fp16 hash; never O(n²).
pub fn verify_gpu_challenge(
    challenge: &MatrixChallenge,
    targets: &[VerificationTarget],
    committed_roots: &HashMap<String, String>,
    proofs: &[GpuProof],
    settings: &GpuSettings,
    sample_seed: &TargetSeed,
) -> GpuVerdict {
    let coords: Vec<(u64, u64)> = targets
        .iter()
        .filter_map(|t| match *t {
            VerificationTarget::Coordinate { row, col } => Some((row, col)),
            VerificationTarget::Row { .. } => None,
        })
        .collect();
    let rows = rows_of(targets);
    let invalid = |e| GpuVerdict::aborted(GpuAbort::InvalidChallenge(e), coords.len(), rows.len());

    if let Err(e) = settings.check() {
        return invalid(e);
    }
    if challenge.iterations == 0 {
        return invalid(ChallengeError::InvalidIterations);
    }
    let n = match check_gpu_matrix_size(challenge.matrix_size) {
        Ok(n) => n,
        Err(e) => return invalid(e),
    };
    let out_of_range = coords
        .iter()
        .find_map(|&(row, col)| {
            if row >= challenge.matrix_size {
                Some(ChallengeError::RowOutOfRange { row, size: n })
            } else if col >= challenge.matrix_size {
                Some(ChallengeError::ColumnOutOfRange { col, size: n })
            } else {
                None
            }
        })
        .or_else(|| {
            rows.iter()
                .find(|&&row| row >= challenge.matrix_size)
                .map(|&row| ChallengeError::RowOutOfRange { row, size: n })
        });
    if let Some(e) = out_of_range {
        return invalid(e);
    }

    // Python iterates a dict keyed by uuid: one entry per uuid, last value wins.
    let mut unique: Vec<&GpuProof> = Vec::new();
    for proof in proofs.iter().filter(|p| p.uuid != CPU_COMMITMENT_UUID) {
        match unique.iter_mut().find(|p| p.uuid == proof.uuid) {
            Some(slot) => *slot = proof,
            None => unique.push(proof),
        }
    }
    if unique.is_empty() {
        return GpuVerdict::aborted(GpuAbort::NoGpuProofs, coords.len(), rows.len());
    }

    let context = GpuContext { challenge, coords: &coords, rows: &rows, n, settings, sample_seed };
    let mut gpus = Vec::with_capacity(unique.len());
    for proof in unique {
        let root = committed_roots.get(&proof.uuid).map(String::as_str).filter(|root| !root.is_empty());
        let result = match root {
            None => Err(GpuFailure::NoCommittedRoot),
            Some(root) => match context.verify_one(proof, root) {
                Ok(result) => result,
                Err(abort) => return GpuVerdict::aborted(abort, coords.len(), rows.len()),
            },
        };
        gpus.push(GpuUnitVerdict { uuid: proof.uuid.clone(), result });
    }
    GpuVerdict { gpus, aborted: None, coordinates: coords.len(), rows: rows.len() }
}

struct GpuContext<'a> {
    challenge: &'a MatrixChallenge,
    coords: &'a [(u64, u64)],
    rows: &'a [u64],
    n: usize,
    settings: &'a GpuSettings,
    sample_seed: &'a TargetSeed,
}

impl GpuContext<'_> {
    /// One GPU's checks. The outer `Err` aborts the whole challenge (Python exceptions).
    fn verify_one(&self, proof: &GpuProof, root: &str) -> Result<Result<(), GpuFailure>, GpuAbort> {
        let invalid = GpuAbort::InvalidChallenge;
        let n = self.n;
        let iterations = self.challenge.iterations;
        let tolerances = &self.settings.tolerances;
        let values = &proof.coordinate_values;
        let seed_hash = gpu_seed_hash(self.challenge.seed.as_hex(), &proof.uuid);

        // Step 2: coordinates.
        if !self.coords.is_empty() {
            let Some(claimed) = values.get(..self.coords.len()) else {
                return Ok(Err(GpuFailure::MissingCoordinateValues { needed: self.coords.len(), got: values.len() }));
            };
            let count =
                check_coordinates(seed_hash, self.challenge.matrix_size, iterations, self.coords, claimed, tolerances)
                    .map_err(invalid)?;
            if !count.ok() {
                return Ok(Err(GpuFailure::CoordinatesFailed(count)));
            }
        }
        if self.rows.is_empty() {
            return Ok(Ok(()));
        }

        // Step 3: sampled row checks.
        let needed = self.rows.len().checked_mul(n).and_then(|v| v.checked_add(self.coords.len())).ok_or(
            GpuAbort::InvalidChallenge(ChallengeError::TooLarge {
                what: "requested row values",
                size: self.rows.len() as u64,
            }),
        )?;
        let Some(all_row_values) = values.get(self.coords.len()..needed) else {
            return Ok(Err(GpuFailure::MissingRowValues { needed, got: values.len() }));
        };
        let columns = select_row_sample_columns(
            self.sample_seed,
            &proof.uuid,
            self.challenge.matrix_size,
            self.settings.row_sample_rate,
        )
        .map_err(invalid)?;
        let sampled = SampledColumns::new(seed_hash, self.challenge.matrix_size, columns).map_err(invalid)?;
        let row_values: Vec<&[f64]> = all_row_values.chunks_exact(n).collect();
        let mut passed = Vec::with_capacity(self.rows.len());
        for (&row, row_values) in self.rows.iter().zip(&row_values) {
            let count =
                check_sampled_row(seed_hash, row, row_values, &sampled, iterations, tolerances).map_err(invalid)?;
            passed.push(count.ok());
        }
        if !passed.contains(&true) {
            return Ok(Err(GpuFailure::NoRowPassedSampling));
        }

        // Step 4: row hashes and Merkle proofs.
        if proof.row_hashes.is_empty() || proof.merkle_proofs.is_empty() {
            return Ok(Err(GpuFailure::MissingRowProofs));
        }
        if proof.row_hashes.len() != self.rows.len() || proof.merkle_proofs.len() != self.rows.len() {
            return Ok(Err(GpuFailure::RowProofCountMismatch {
                rows: self.rows.len(),
                hashes: proof.row_hashes.len(),
                proofs: proof.merkle_proofs.len(),
            }));
        }
        // Same order as Python: rows that failed sampling are skipped (and fail below), a
        // hash mismatch stops the loop, an fp16 overflow in a hashed row aborts everything.
        let mut computed = Vec::with_capacity(self.rows.len());
        let mut first_unsampled = None;
        for (position, ((&row, row_values), &ok)) in self.rows.iter().zip(&row_values).zip(&passed).enumerate() {
            if !ok {
                first_unsampled.get_or_insert(row);
                continue;
            }
            let hash = fnv_fp16_row_hash(row_values)
                .map_err(|error| GpuAbort::Fp16Overflow { uuid: proof.uuid.clone(), error })?;
            if proof.row_hashes.get(position) != Some(&hash) {
                return Ok(Err(GpuFailure::RowHashMismatch { position, row }));
            }
            computed.push(hash);
        }
        if let Some(row) = first_unsampled {
            return Ok(Err(GpuFailure::RowFailedSampling { row }));
        }
        Ok(verify_row_proofs(self.rows, &computed, &proof.merkle_proofs, root, n).map_err(GpuFailure::Merkle))
    }
}

fn rows_of(targets: &[VerificationTarget]) -> Vec<u64> {
    targets
        .iter()
        .filter_map(|t| match *t {
            VerificationTarget::Row { row } => Some(row),
            VerificationTarget::Coordinate { .. } => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::cpu::all_row_hashes_unchecked;
    use crate::challenge::gpu::{expected_rows, fp16_bits};
    use crate::challenge::merkle::{MerkleTree, ProofFailure};

    // ---------- CPU ----------

    struct CpuWorker {
        challenge: MatrixChallenge,
        tree: MerkleTree,
    }

    impl CpuWorker {
        /// The honest worker: full product, every row hash, the tree.
        fn run(seed_byte: u8, n: u64, iterations: u32) -> Self {
            let seed = ChallengeSeed::from_bytes([seed_byte; 16]);
            let hashes = all_row_hashes_unchecked(seed.seed32(), n as usize, iterations);
            Self {
                challenge: MatrixChallenge { seed, matrix_size: n, iterations },
                tree: MerkleTree::new(hashes).unwrap(),
            }
        }

        fn prove(&self, rows: &[u64]) -> CpuProof {
            CpuProof {
                row_hashes: rows.iter().map(|&r| self.tree.leaves()[r as usize].clone()).collect(),
                merkle_proofs: rows.iter().map(|&r| self.tree.proof(r).unwrap()).collect(),
            }
        }
    }

    fn row_targets(rows: &[u64]) -> Vec<VerificationTarget> {
        rows.iter().map(|&row| VerificationTarget::Row { row }).collect()
    }

    fn cpu_failure(verdict: CpuVerdict) -> CpuFailure {
        match verdict {
            CpuVerdict::Failed(f) => f,
            CpuVerdict::Verified { .. } => panic!("expected a failure"),
        }
    }

    #[test]
    fn cpu_round_trip_succeeds() {
        for iterations in [1, 3] {
            let worker = CpuWorker::run(5, 131, iterations);
            let rows = [0, 17, 64, 130];
            let proof = worker.prove(&rows);
            let verdict =
                verify_cpu_challenge(&worker.challenge, &row_targets(&rows), Some(worker.tree.root()), Some(&proof));
            assert_eq!(verdict, CpuVerdict::Verified { rows_checked: 4 });
            assert_eq!(verdict.success_count(), 1);
            assert_eq!(verdict.notes(), "Processed 4 rows, verified 1/1 proofs");
        }
    }

    #[test]
    fn cpu_tampering_fails_with_the_exact_reason() {
        let worker = CpuWorker::run(6, 100, 1);
        let rows = [3, 50, 99];
        let targets = row_targets(&rows);
        let root = worker.tree.root();
        let honest = worker.prove(&rows);
        let verify =
            |proof: &CpuProof| cpu_failure(verify_cpu_challenge(&worker.challenge, &targets, Some(root), Some(proof)));

        // A consistent lie: wrong row hash with a matching proof of a different tree.
        let mut fake_leaves = worker.tree.leaves().to_vec();
        fake_leaves[50] = "0123456789abcdef".into();
        let fake_tree = MerkleTree::new(fake_leaves).unwrap();
        let mut p = honest.clone();
        p.row_hashes[1] = "0123456789abcdef".into();
        p.merkle_proofs[1] = fake_tree.proof(50).unwrap();
        assert_eq!(
            cpu_failure(verify_cpu_challenge(
                &worker.challenge,
                &targets,
                Some(fake_tree.root()),
                Some(&CpuProof {
                    row_hashes: p.row_hashes.clone(),
                    merkle_proofs: rows.iter().map(|&r| fake_tree.proof(r).unwrap()).collect(),
                }),
            )),
            CpuFailure::RowHashMismatch { position: 1, row: 50 }
        );
        // Same lie against the real root: the Merkle proof catches it first.
        assert!(matches!(verify(&p), CpuFailure::Merkle(RowProofFailure::Proof { position: 1, .. })));

        // Row hash changed only in row_hashes: leaf hash no longer matches.
        let mut p = honest.clone();
        p.row_hashes[0] = "ffffffffffffffff".into();
        assert_eq!(verify(&p), CpuFailure::Merkle(RowProofFailure::LeafHashMismatch { position: 0, row: 3 }));

        let mut p = honest.clone();
        p.merkle_proofs[2].proof_hashes[0] = "0000000000000000".into();
        assert_eq!(
            verify(&p),
            CpuFailure::Merkle(RowProofFailure::Proof { position: 2, row: 99, failure: ProofFailure::RootMismatch })
        );

        let mut p = honest.clone();
        p.merkle_proofs[0].proof_directions[2] = !p.merkle_proofs[0].proof_directions[2];
        assert_eq!(
            verify(&p),
            CpuFailure::Merkle(RowProofFailure::Proof {
                position: 0,
                row: 3,
                failure: ProofFailure::WrongDirection { level: 2 }
            })
        );

        let mut p = honest.clone();
        p.merkle_proofs[1].proof_hashes.push(root.to_string());
        p.merkle_proofs[1].proof_directions.push(true);
        assert_eq!(
            verify(&p),
            CpuFailure::Merkle(RowProofFailure::Proof {
                position: 1,
                row: 50,
                failure: ProofFailure::WrongLength { expected: 7, got: 8 }
            })
        );

        let mut p = honest.clone();
        p.merkle_proofs[1].leaf_index = 51;
        assert_eq!(
            verify(&p),
            CpuFailure::Merkle(RowProofFailure::LeafIndexMismatch { position: 1, expected: 50, got: 51 })
        );

        let mut p = honest.clone();
        p.row_hashes.pop();
        assert_eq!(verify(&p), CpuFailure::RowHashCountMismatch { expected: 3, got: 2 });

        let mut p = honest.clone();
        p.merkle_proofs.pop();
        assert!(matches!(verify(&p), CpuFailure::Merkle(RowProofFailure::LengthMismatch { .. })));
    }

    #[test]
    fn cpu_structural_failures() {
        let worker = CpuWorker::run(7, 100, 1);
        let targets = row_targets(&[1]);
        let proof = worker.prove(&[1]);
        let root = Some(worker.tree.root());
        let check = |targets: &[VerificationTarget], root, proof| {
            cpu_failure(verify_cpu_challenge(&worker.challenge, targets, root, proof))
        };
        assert_eq!(check(&targets, root, None), CpuFailure::MissingProof);
        assert_eq!(
            check(&[VerificationTarget::Coordinate { row: 1, col: 1 }], root, Some(&proof)),
            CpuFailure::NoRowsRequested
        );
        assert_eq!(check(&targets, None, Some(&proof)), CpuFailure::MissingCommitment);
        assert_eq!(check(&targets, Some(""), Some(&proof)), CpuFailure::MissingCommitment);
        let empty = CpuProof::default();
        assert_eq!(check(&targets, root, Some(&empty)), CpuFailure::ProofMissingData);
        assert!(matches!(
            check(&row_targets(&[100]), root, Some(&proof)),
            CpuFailure::InvalidChallenge(ChallengeError::RowOutOfRange { .. })
        ));
        let mut big = worker.challenge.clone();
        big.matrix_size = 1 << 40;
        assert!(matches!(
            cpu_failure(verify_cpu_challenge(&big, &targets, root, Some(&proof))),
            CpuFailure::InvalidChallenge(ChallengeError::MatrixSizeOutOfRange { .. })
        ));
    }

    #[test]
    fn cpu_proof_parses_from_python_json() {
        let worker = CpuWorker::run(8, 100, 1);
        let proof = worker.prove(&[2, 9]);
        let json = serde_json::json!({
            "uuid": "-1",
            "row_hashes": proof.row_hashes,
            "merkle_proofs": proof.merkle_proofs,
        });
        let parsed: CpuProof = serde_json::from_value(json).unwrap();
        assert_eq!(parsed, proof);
    }

    // ---------- GPU ----------

    const SEED_HEX: &str = "000102030405060708090a0b0c0d0e0f";
    const UUID: &str = "GPU-12345678-1234-1234-1234-123456789abc";

    fn fp16_round(v: f64) -> f64 {
        // Exact decode of the half bit pattern.
        let bits = fp16_bits(v).unwrap();
        let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
        let e = i32::from((bits >> 10) & 0x1F);
        let m = f64::from(bits & 0x3FF);
        if e == 0 { sign * m * 2f64.powi(-24) } else { sign * (1.0 + m / 1024.0) * 2f64.powi(e - 15) }
    }

    /// The honest GPU worker for small n: exact products rounded to fp16 (what §9.3 uses).
    struct GpuWorker {
        uuid: String,
        rows: Vec<Vec<f64>>,
        tree: MerkleTree,
    }

    impl GpuWorker {
        fn run(seed: &ChallengeSeed, uuid: &str, n: u64, iterations: u32) -> Self {
            let sh = gpu_seed_hash(seed.as_hex(), uuid);
            let all: Vec<u64> = (0..n).collect();
            let rows: Vec<Vec<f64>> = expected_rows(sh, n, &all, iterations)
                .unwrap()
                .into_iter()
                .map(|r| r.into_iter().map(fp16_round).collect())
                .collect();
            let leaves = rows.iter().map(|r| fnv_fp16_row_hash(r).unwrap());
            Self { uuid: uuid.to_string(), tree: MerkleTree::new(leaves).unwrap(), rows }
        }

        fn prove(&self, coords: &[(u64, u64)], rows: &[u64]) -> GpuProof {
            let mut values: Vec<f64> = coords.iter().map(|&(r, c)| self.rows[r as usize][c as usize]).collect();
            for &r in rows {
                values.extend(&self.rows[r as usize]);
            }
            GpuProof {
                uuid: self.uuid.clone(),
                row_hashes: rows.iter().map(|&r| self.tree.leaves()[r as usize].clone()).collect(),
                merkle_proofs: rows.iter().map(|&r| self.tree.proof(r).unwrap()).collect(),
                coordinate_values: values,
            }
        }
    }

    fn gpu_targets(coords: &[(u64, u64)], rows: &[u64]) -> Vec<VerificationTarget> {
        coords
            .iter()
            .map(|&(row, col)| VerificationTarget::Coordinate { row, col })
            .chain(rows.iter().map(|&row| VerificationTarget::Row { row }))
            .collect()
    }

    fn roots(workers: &[&GpuWorker]) -> HashMap<String, String> {
        workers.iter().map(|w| (w.uuid.clone(), w.tree.root().to_string())).collect()
    }

    fn only_failure(verdict: &GpuVerdict) -> GpuFailure {
        assert!(verdict.aborted.is_none(), "{verdict:?}");
        match &verdict.gpus[..] {
            [gpu] => gpu.result.clone().unwrap_err(),
            other => panic!("expected one GPU, got {other:?}"),
        }
    }

    #[test]
    fn vector_9_3_end_to_end() {
        let seed = ChallengeSeed::from_hex(SEED_HEX).unwrap();
        let challenge = MatrixChallenge { seed: seed.clone(), matrix_size: 8, iterations: 1 };
        let targets = gpu_targets(&[(0, 0), (3, 5), (7, 2)], &[1, 6]);
        let row1 = [
            0.310791015625,
            -0.71533203125,
            -2.31640625,
            0.8798828125,
            -0.22607421875,
            -0.97265625,
            0.08843994140625,
            -1.076171875,
        ];
        let worker = GpuWorker::run(&seed, UUID, 8, 1);
        assert_eq!(worker.rows[1], row1);
        let mut values = vec![-0.53662109375, -0.128173828125, 1.267578125];
        values.extend(row1);
        values.extend(&worker.rows[6]);
        let proof_for = |leaf_index: i64, hashes: [&str; 3], directions: [bool; 3], leaf: &str| MerkleProof {
            leaf_index,
            leaf_hash: leaf.to_string(),
            proof_hashes: hashes.iter().map(|s| s.to_string()).collect(),
            proof_directions: directions.to_vec(),
        };
        let proof = GpuProof {
            uuid: UUID.into(),
            row_hashes: vec!["2ec27d7fb811ccb0".into(), "263fb6530112fef3".into()],
            merkle_proofs: vec![
                proof_for(
                    1,
                    [
                        "04a7df89c5dff494",
                        "e9d6ea051532bf06f0d3763b89955c4401e8a52ed8e0318209c88cd6eea9f6c8",
                        "af0926e6c45cf450b9bfcaa81b446d2a6f146ac97b789ad0656a387dc2da435c",
                    ],
                    [false, true, true],
                    "2ec27d7fb811ccb0",
                ),
                proof_for(
                    6,
                    [
                        "0ef93ad8b933a67a",
                        "e259cbd1b68034d9797d9c1e2c2a827f910eeab5e5ae43958ee369e450d27454",
                        "7c05d476dc362e34b6e662555d6397c62d78782414c0535493a3db91d2f35023",
                    ],
                    [true, false, false],
                    "263fb6530112fef3",
                ),
            ],
            coordinate_values: values,
        };
        assert_eq!(proof.merkle_proofs[0], worker.tree.proof(1).unwrap());
        assert_eq!(proof.merkle_proofs[1], worker.tree.proof(6).unwrap());
        let committed = HashMap::from([(
            UUID.to_string(),
            "1429a5da116f15834817fa84b74d67bb6097ec71c7a7796e396db2006ca06b85".to_string(),
        )]);
        // Whatever column gets sampled, the result is the same (1 column for n = 8).
        for byte in 0..16 {
            let verdict = verify_gpu_challenge(
                &challenge,
                &targets,
                &committed,
                std::slice::from_ref(&proof),
                &GpuSettings::default(),
                &TargetSeed([byte; 32]),
            );
            assert!(verdict.is_success(), "{verdict:?}");
            assert_eq!(verdict.success_count(), 1);
            assert_eq!(verdict.notes(), "Processed 3 coordinates, 2 rows, verified 1/1 proofs");
        }
    }

    #[test]
    fn gpu_round_trip_with_two_gpus_and_iterations() {
        let seed = ChallengeSeed::from_bytes([3; 16]);
        let n = 37;
        for iterations in [1, 2] {
            let a = GpuWorker::run(&seed, "GPU-a", n, iterations);
            let b = GpuWorker::run(&seed, "GPU-b", n, iterations);
            let coords = [(0, 36), (5, 5), (36, 0), (20, 11)];
            let rows = [2, 30, 36];
            let challenge = MatrixChallenge { seed: seed.clone(), matrix_size: n, iterations };
            let settings = GpuSettings { row_sample_rate: 0.5, ..GpuSettings::default() };
            let verdict = verify_gpu_challenge(
                &challenge,
                &gpu_targets(&coords, &rows),
                &roots(&[&a, &b]),
                &[a.prove(&coords, &rows), b.prove(&coords, &rows)],
                &settings,
                &TargetSeed([1; 32]),
            );
            assert_eq!(verdict.success_count(), 2, "{verdict:?}");
        }
    }

    #[test]
    fn gpu_tampering_fails_with_the_exact_reason() {
        let seed = ChallengeSeed::from_bytes([4; 16]);
        let n = 40;
        let worker = GpuWorker::run(&seed, "GPU-x", n, 1);
        let challenge = MatrixChallenge { seed, matrix_size: n, iterations: 1 };
        let coords = [(1, 2), (3, 4), (39, 39)];
        let rows = [7, 21];
        let targets = gpu_targets(&coords, &rows);
        let committed = roots(&[&worker]);
        let honest = worker.prove(&coords, &rows);
        // Every column sampled, so value tampering anywhere in a row is seen.
        let settings = GpuSettings { row_sample_rate: 1.0, ..GpuSettings::default() };
        let verify = |proof: &GpuProof| {
            verify_gpu_challenge(
                &challenge,
                &targets,
                &committed,
                std::slice::from_ref(proof),
                &settings,
                &TargetSeed([2; 32]),
            )
        };
        assert!(verify(&honest).is_success());

        let mut p = honest.clone();
        p.coordinate_values[1] += 0.5;
        assert!(matches!(
            only_failure(&verify(&p)),
            GpuFailure::CoordinatesFailed(CheckCount { passed: 2, checked: 3, required: 3 })
        ));

        let mut p = honest.clone();
        p.coordinate_values.truncate(2);
        assert_eq!(only_failure(&verify(&p)), GpuFailure::MissingCoordinateValues { needed: 3, got: 2 });

        let mut p = honest.clone();
        p.coordinate_values.pop();
        assert_eq!(only_failure(&verify(&p)), GpuFailure::MissingRowValues { needed: 83, got: 82 });

        // One row off everywhere: it fails sampling, so the challenge fails at the hash step.
        let mut p = honest.clone();
        for v in &mut p.coordinate_values[3..43] {
            *v += 1.0;
        }
        assert_eq!(only_failure(&verify(&p)), GpuFailure::RowFailedSampling { row: 7 });

        // Both rows off: nothing passes sampling.
        let mut p = honest.clone();
        for v in &mut p.coordinate_values[3..] {
            *v += 1.0;
        }
        assert_eq!(only_failure(&verify(&p)), GpuFailure::NoRowPassedSampling);

        // A value changed within tolerance but to another fp16 value: hash mismatch.
        let mut p = honest.clone();
        p.coordinate_values[3 + 40 + 5] += 0.01;
        assert_eq!(only_failure(&verify(&p)), GpuFailure::RowHashMismatch { position: 1, row: 21 });

        let mut p = honest.clone();
        p.row_hashes[0] = "0000000000000000".into();
        assert_eq!(only_failure(&verify(&p)), GpuFailure::RowHashMismatch { position: 0, row: 7 });

        let mut p = honest.clone();
        p.merkle_proofs[1].proof_hashes[3] = "00".repeat(32);
        assert_eq!(
            only_failure(&verify(&p)),
            GpuFailure::Merkle(RowProofFailure::Proof { position: 1, row: 21, failure: ProofFailure::RootMismatch })
        );

        let mut p = honest.clone();
        p.merkle_proofs[0].proof_directions[0] = !p.merkle_proofs[0].proof_directions[0];
        assert_eq!(
            only_failure(&verify(&p)),
            GpuFailure::Merkle(RowProofFailure::Proof {
                position: 0,
                row: 7,
                failure: ProofFailure::WrongDirection { level: 0 }
            })
        );

        let mut p = honest.clone();
        p.merkle_proofs[0].proof_hashes.pop();
        p.merkle_proofs[0].proof_directions.pop();
        assert_eq!(
            only_failure(&verify(&p)),
            GpuFailure::Merkle(RowProofFailure::Proof {
                position: 0,
                row: 7,
                failure: ProofFailure::WrongLength { expected: 6, got: 5 }
            })
        );

        let mut p = honest.clone();
        p.merkle_proofs[1].leaf_index = 22;
        assert_eq!(
            only_failure(&verify(&p)),
            GpuFailure::Merkle(RowProofFailure::LeafIndexMismatch { position: 1, expected: 21, got: 22 })
        );

        let mut p = honest.clone();
        p.row_hashes.clear();
        assert_eq!(only_failure(&verify(&p)), GpuFailure::MissingRowProofs);

        let mut p = honest.clone();
        p.merkle_proofs.pop();
        assert_eq!(only_failure(&verify(&p)), GpuFailure::RowProofCountMismatch { rows: 2, hashes: 2, proofs: 1 });

        let mut other_roots = committed.clone();
        other_roots.clear();
        let verdict = verify_gpu_challenge(
            &challenge,
            &targets,
            &other_roots,
            std::slice::from_ref(&honest),
            &settings,
            &TargetSeed([2; 32]),
        );
        assert_eq!(only_failure(&verdict), GpuFailure::NoCommittedRoot);
    }

    #[test]
    fn gpu_one_good_gpu_is_enough_but_an_fp16_overflow_aborts_everything() {
        let seed = ChallengeSeed::from_bytes([5; 16]);
        let n = 16;
        let good = GpuWorker::run(&seed, "GPU-good", n, 1);
        let bad = GpuWorker::run(&seed, "GPU-bad", n, 1);
        let challenge = MatrixChallenge { seed, matrix_size: n, iterations: 1 };
        let coords = [(1, 1)];
        let rows = [3];
        let targets = gpu_targets(&coords, &rows);
        let committed = roots(&[&good, &bad]);
        let settings = GpuSettings::default();
        let sample = TargetSeed([6; 32]);
        let mut bad_proof = bad.prove(&coords, &rows);
        bad_proof.coordinate_values[0] += 3.0;
        let verdict = verify_gpu_challenge(
            &challenge,
            &targets,
            &committed,
            &[good.prove(&coords, &rows), bad_proof],
            &settings,
            &sample,
        );
        assert!(verdict.is_success());
        assert_eq!(verdict.success_count(), 1);
        assert!(verdict.notes().contains("verified 1/2 proofs"), "{}", verdict.notes());

        // An unpackable value in a row that passed sampling (column not sampled: n = 16 and
        // rate 0.001 samples one column) aborts the challenge like the Python exception.
        let sampled = select_row_sample_columns(&sample, "GPU-bad", n, 0.001).unwrap();
        let unsampled_col = (0..n).find(|c| !sampled.contains(c)).unwrap();
        let mut overflow = bad.prove(&coords, &rows);
        overflow.coordinate_values[1 + unsampled_col as usize] = 1e6;
        let verdict = verify_gpu_challenge(
            &challenge,
            &targets,
            &committed,
            &[good.prove(&coords, &rows), overflow],
            &settings,
            &sample,
        );
        assert!(matches!(verdict.aborted, Some(GpuAbort::Fp16Overflow { .. })), "{verdict:?}");
        assert!(!verdict.is_success());
    }

    #[test]
    fn gpu_structural_and_settings_failures() {
        let seed = ChallengeSeed::from_bytes([6; 16]);
        let worker = GpuWorker::run(&seed, "GPU-y", 8, 1);
        let mut challenge = MatrixChallenge { seed, matrix_size: 8, iterations: 1 };
        let committed = roots(&[&worker]);
        let targets = gpu_targets(&[(1, 1)], &[2]);
        let proof = worker.prove(&[(1, 1)], &[2]);
        let run = |challenge: &MatrixChallenge,
                   targets: &[VerificationTarget],
                   proofs: &[GpuProof],
                   settings: &GpuSettings| {
            verify_gpu_challenge(challenge, targets, &committed, proofs, settings, &TargetSeed([0; 32]))
        };
        let defaults = GpuSettings::default();
        assert_eq!(run(&challenge, &targets, &[], &defaults).aborted, Some(GpuAbort::NoGpuProofs));
        let cpu_only = GpuProof { uuid: "-1".into(), ..proof.clone() };
        assert_eq!(run(&challenge, &targets, &[cpu_only], &defaults).aborted, Some(GpuAbort::NoGpuProofs));
        let bad_settings = GpuSettings { row_sample_rate: 2.0, ..defaults };
        assert!(matches!(
            run(&challenge, &targets, std::slice::from_ref(&proof), &bad_settings).aborted,
            Some(GpuAbort::InvalidChallenge(ChallengeError::InvalidSetting { .. }))
        ));
        assert!(matches!(
            run(&challenge, &gpu_targets(&[(8, 0)], &[]), std::slice::from_ref(&proof), &defaults).aborted,
            Some(GpuAbort::InvalidChallenge(ChallengeError::RowOutOfRange { .. }))
        ));
        assert!(matches!(
            run(&challenge, &gpu_targets(&[], &[9]), std::slice::from_ref(&proof), &defaults).aborted,
            Some(GpuAbort::InvalidChallenge(ChallengeError::RowOutOfRange { .. }))
        ));
        challenge.matrix_size = u64::MAX;
        assert!(matches!(
            run(&challenge, &targets, std::slice::from_ref(&proof), &defaults).aborted,
            Some(GpuAbort::InvalidChallenge(ChallengeError::MatrixSizeOutOfRange { .. }))
        ));
        challenge.matrix_size = 8;
        // Coordinates only (no rows requested): the row and Merkle steps are skipped.
        let coords_only = worker.prove(&[(1, 1)], &[]);
        assert!(run(&challenge, &gpu_targets(&[(1, 1)], &[]), &[coords_only], &defaults).is_success());
        // A duplicated uuid counts once and the last proof wins.
        let mut broken = proof.clone();
        broken.coordinate_values[0] += 9.0;
        let verdict = run(&challenge, &targets, &[broken.clone(), proof.clone()], &defaults);
        assert_eq!((verdict.gpus.len(), verdict.success_count()), (1, 1));
        let verdict = run(&challenge, &targets, &[proof.clone(), broken], &defaults);
        assert_eq!((verdict.gpus.len(), verdict.success_count()), (1, 0));
    }

    #[test]
    fn gpu_proof_parses_from_python_json() {
        let json = r#"{"uuid": "GPU-1", "row_hashes": ["00"], "merkle_proofs": [],
            "coordinate_values": [0.5, -1, 2.25]}"#;
        let proof: GpuProof = serde_json::from_str(json).unwrap();
        assert_eq!(proof.coordinate_values, [0.5, -1.0, 2.25]);
        let minimal: GpuProof = serde_json::from_str(r#"{"uuid": "GPU-1"}"#).unwrap();
        assert!(minimal.coordinate_values.is_empty());
    }

    #[test]
    fn gpu_values_parse_with_correct_rounding() {
        // Needs serde_json's `float_roundtrip`: the default parser lands 1 ulp high here, which
        // can flip an fp16 rounding and so a row hash (§10 item 9).
        let proof: GpuProof =
            serde_json::from_str(r#"{"uuid": "g", "coordinate_values": [10.264821835793555]}"#).unwrap();
        assert_eq!(proof.coordinate_values[0].to_bits(), 4_621_968_199_029_096_448);
    }
}
