//! A verification job: everything needed to verify one challenge's proof, self-contained so any
//! member can run it (byteleap-protocol.md §3.8).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use crate::challenge::ChallengeSeed;
use crate::challenge::gpu::Tolerances;
use crate::challenge::targets::TargetSeed;
use crate::challenge::targets::VerificationTarget;
use crate::challenge::verify::CpuProof;
use crate::challenge::verify::GpuProof;
use crate::challenge::verify::GpuSettings;
use crate::challenge::verify::MatrixChallenge;
use crate::challenge::verify::verify_cpu_challenge;
use crate::challenge::verify::verify_gpu_challenge;

/// The proof material of one challenge, as received (§3.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProofMaterial {
    Cpu(CpuProof),
    Gpu(Vec<GpuProof>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyJob {
    pub challenge_id: String,
    pub seed: [u8; 16],
    pub matrix_size: u64,
    pub iterations: u32,
    pub targets: Vec<VerificationTarget>,
    /// uuid → committed Merkle root.
    pub commitments: BTreeMap<String, String>,
    pub proof: ProofMaterial,
    /// GPU settings of the node that received the proof (§3.8).
    pub abs_tolerance: f64,
    pub rel_tolerance: f64,
    pub success_rate_threshold: f64,
    pub row_sample_rate: f64,
    /// Drawn when the proof arrived: which columns of each GPU row are sampled (§3.8 step 3).
    pub sample_seed: [u8; 32],
}

/// What a verifier concluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub success: bool,
    pub success_count: u32,
    pub notes: String,
    pub verification_ms: u64,
}

impl VerifyJob {
    /// Runs the verification (CPU-heavy: call it off the async threads).
    pub fn run(&self) -> Verdict {
        let started = std::time::Instant::now();
        let challenge = MatrixChallenge {
            seed: ChallengeSeed::from_bytes(self.seed),
            matrix_size: self.matrix_size,
            iterations: self.iterations,
        };
        let (success, success_count, notes) = match &self.proof {
            ProofMaterial::Cpu(proof) => {
                let verdict = verify_cpu_challenge(
                    &challenge,
                    &self.targets,
                    self.commitments.get("-1").map(String::as_str),
                    Some(proof),
                );
                (verdict.is_success(), verdict.success_count(), verdict.notes())
            }
            ProofMaterial::Gpu(proofs) => {
                let settings = GpuSettings {
                    tolerances: Tolerances {
                        abs_tolerance: self.abs_tolerance,
                        rel_tolerance: self.rel_tolerance,
                        success_rate_threshold: self.success_rate_threshold,
                    },
                    row_sample_rate: self.row_sample_rate,
                };
                let commitments: std::collections::HashMap<String, String> =
                    self.commitments.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                let verdict = verify_gpu_challenge(
                    &challenge,
                    &self.targets,
                    &commitments,
                    proofs,
                    &settings,
                    &TargetSeed(self.sample_seed),
                );
                (verdict.is_success(), verdict.success_count(), verdict.notes())
            }
        };
        Verdict { success, success_count, notes, verification_ms: started.elapsed().as_millis() as u64 }
    }
}
