//! The decrypted miner messages (byteleap-protocol.md §2.10), parsed like the original's
//! pydantic "StrictModel": unknown keys allowed, strings trimmed, literals strict. Everything a
//! miner sends is bounded here before it can reach the ledger (§8.4.24): counts, string lengths
//! and the size of free-form JSON.
//!
//! A payload that does not fit its model is answered with the plaintext 4015 error the original
//! sends for pydantic failures (§2.9), via [`ModelError`].

use serde_json::Map;
use serde_json::Value;

use crate::challenge::merkle::MerkleProof;
use crate::challenge::verify::CpuProof;
use crate::challenge::verify::GpuProof;
use crate::proofs::job::ProofMaterial;

/// Workers taken from one heartbeat (byteleap-protocol.md §8.4.24: cap at 100 per miner).
pub const MAX_WORKERS: usize = 100;
/// Longest id or name string accepted.
pub const MAX_NAME: usize = 128;
/// Capabilities per worker.
pub const MAX_CAPABILITIES: usize = 16;
/// GPUs per worker.
pub const MAX_GPUS: usize = 16;
/// Size of a worker's `system_info` kept in the ledger, bytes of compact JSON.
pub const MAX_SYSTEM_INFO: usize = 32 * 1024;

/// Why a decrypted payload does not fit its model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ModelError(pub String);

fn err(msg: impl Into<String>) -> ModelError {
    ModelError(msg.into())
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ModelError> {
    value.as_object().ok_or_else(|| err(format!("{what}: Input should be a valid dictionary")))
}

/// A required string field, trimmed, bounded.
fn req_str(obj: &Map<String, Value>, key: &str, max: usize) -> Result<String, ModelError> {
    match obj.get(key) {
        Some(Value::String(s)) => bounded(s.trim(), key, max),
        Some(_) => Err(err(format!("{key}: Input should be a valid string"))),
        None => Err(err(format!("{key}: Field required"))),
    }
}

/// An optional string field (absent or null is None), trimmed, bounded.
fn opt_str(obj: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, ModelError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => bounded(s.trim(), key, max).map(Some),
        Some(_) => Err(err(format!("{key}: Input should be a valid string"))),
    }
}

fn bounded(s: &str, key: &str, max: usize) -> Result<String, ModelError> {
    if s.len() > max {
        return Err(err(format!("{key}: String should have at most {max} characters")));
    }
    Ok(s.to_string())
}

/// One worker of a heartbeat, as the ledger records it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerReport {
    pub worker_id: String,
    pub worker_name: Option<String>,
    pub worker_version: Option<String>,
    pub capabilities: Vec<String>,
    pub status: String,
    pub gpus: Vec<GpuEntry>,
    pub system_info_json: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GpuEntry {
    pub uuid: String,
    pub name: String,
    pub memory_mb: u64,
}

/// `HeartbeatData` (§2.10.1).
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatData {
    pub workers: Vec<WorkerReport>,
    /// Workers beyond [`MAX_WORKERS`] that were dropped.
    pub dropped: usize,
    pub public_ip: Option<String>,
    pub miner_version: Option<String>,
}

impl HeartbeatData {
    pub fn parse(value: &Value) -> Result<HeartbeatData, ModelError> {
        let obj = object(value, "heartbeat")?;
        let workers = match obj.get("workers") {
            Some(Value::Array(list)) => list,
            Some(_) => return Err(err("workers: Input should be a valid list")),
            None => return Err(err("workers: Field required")),
        };
        let mut parsed = Vec::with_capacity(workers.len().min(MAX_WORKERS));
        for (i, w) in workers.iter().take(MAX_WORKERS).enumerate() {
            parsed.push(WorkerReport::parse(w).map_err(|e| err(format!("workers.{i}.{}", e.0)))?);
        }
        let (public_ip, miner_version) = match obj.get("miner_info") {
            Some(Value::Object(info)) => {
                let ip = opt_str(info, "public_ip", 64)?.filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
                (ip, opt_str(info, "miner_version", MAX_NAME)?)
            }
            None | Some(Value::Null) => (None, None),
            Some(_) => return Err(err("miner_info: Input should be a valid dictionary")),
        };
        Ok(HeartbeatData {
            dropped: workers.len().saturating_sub(MAX_WORKERS),
            workers: parsed,
            public_ip,
            miner_version,
        })
    }
}

impl WorkerReport {
    fn parse(value: &Value) -> Result<WorkerReport, ModelError> {
        let obj = object(value, "worker")?;
        let worker_id = req_str(obj, "worker_id", MAX_NAME)?;
        if worker_id.is_empty() {
            return Err(err("worker_id: String should have at least 1 character"));
        }
        let status = match obj.get("status") {
            None | Some(Value::Null) => "online".to_string(),
            Some(Value::String(s)) if matches!(s.as_str(), "online" | "busy" | "offline") => s.clone(),
            Some(_) => return Err(err("status: Input should be 'online', 'busy' or 'offline'")),
        };
        let capabilities = match obj.get("capabilities") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => {
                if list.len() > MAX_CAPABILITIES {
                    return Err(err(format!("capabilities: List should have at most {MAX_CAPABILITIES} items")));
                }
                list.iter()
                    .map(|c| match c {
                        Value::String(s) => bounded(s.trim(), "capabilities", 64),
                        _ => Err(err("capabilities: Input should be a valid string")),
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            Some(_) => return Err(err("capabilities: Input should be a valid list")),
        };
        let (system_info_json, gpus) = match obj.get("system_info") {
            None | Some(Value::Null) => ("{}".to_string(), Vec::new()),
            Some(Value::Object(info)) => {
                let gpus = gpu_entries(info)?;
                let mut json = serde_json::to_string(info).map_err(|e| err(e.to_string()))?;
                if json.len() > MAX_SYSTEM_INFO {
                    // Keep the ledger bounded: the scoring needs the GPU inventory (kept above),
                    // not an oversized free-form blob.
                    json = serde_json::json!({ "truncated": true, "bytes": json.len() }).to_string();
                }
                (json, gpus)
            }
            Some(_) => return Err(err("system_info: Input should be a valid dictionary")),
        };
        Ok(WorkerReport {
            worker_id,
            worker_name: opt_str(obj, "worker_name", MAX_NAME)?,
            worker_version: opt_str(obj, "worker_version", MAX_NAME)?,
            capabilities,
            status,
            gpus,
            system_info_json,
        })
    }
}

/// The GPUs of a worker's `gpu_plugin` list (entries with a `uuid`), §2.10.1.
fn gpu_entries(info: &Map<String, Value>) -> Result<Vec<GpuEntry>, ModelError> {
    let Some(Value::Array(list)) = info.get("gpu_plugin") else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for entry in list.iter().take(MAX_GPUS) {
        let Some(gpu) = entry.as_object() else { continue };
        let Some(uuid) = opt_str(gpu, "uuid", MAX_NAME)?.filter(|u| !u.is_empty()) else { continue };
        let name = opt_str(gpu, "name", MAX_NAME)?.unwrap_or_default();
        // total_memory is in bytes (§2.10.1); recorded in MB as the original does.
        let memory_mb = gpu.get("total_memory").and_then(Value::as_f64).filter(|m| m.is_finite() && *m >= 0.0);
        out.push(GpuEntry { uuid, name, memory_mb: memory_mb.map(|b| (b / 1_048_576.0) as u64).unwrap_or(0) });
    }
    Ok(out)
}

/// `TaskRequest` (§2.10.2): only `request_type == "challenge"` is valid.
pub fn parse_task_request(value: &Value) -> Result<(), ModelError> {
    let obj = object(value, "task request")?;
    match obj.get("request_type") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s.trim() == "challenge" => Ok(()),
        Some(_) => Err(err("request_type: Input should be 'challenge'")),
    }
}

/// Commitments one message may carry (one per GPU, or the CPU sentinel).
pub const MAX_COMMITMENTS: usize = MAX_GPUS + 1;
/// Rows one proof may reveal (the original requests at most 75 CPU rows, 3 GPU rows: §3.6).
pub const MAX_PROOF_ROWS: usize = 10_000;
/// Siblings in one Merkle path (⌈log2 10000⌉ = 14 for CPU; 2^20 GPU rows → 20).
pub const MAX_PATH: usize = 64;
/// Values one GPU proof may carry: coordinates plus 3 full rows of up to 2^20 (§3.7).
pub const MAX_VALUES: usize = 4 << 20;

/// One Phase 1 commitment (§2.10.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Commitment {
    pub uuid: String,
    /// As submitted (the GPU signature covers this exact text, §3.3).
    pub merkle_root: String,
    pub sig_ver: i64,
    pub sig_val: String,
}

/// `CommitmentData` (§2.10.3).
#[derive(Debug, Clone, PartialEq)]
pub struct CommitmentData {
    pub worker_id: String,
    pub commitments: Vec<Commitment>,
}

impl CommitmentData {
    pub fn parse(value: &Value) -> Result<CommitmentData, ModelError> {
        let obj = object(value, "commitment")?;
        let missing = || err("Missing required fields: challenge_id, worker_id, commitments");
        let worker_id = opt_str(obj, "worker_id", MAX_NAME)?.filter(|w| !w.is_empty()).ok_or_else(missing)?;
        let list = match obj.get("commitments") {
            Some(Value::Array(list)) if !list.is_empty() => list,
            _ => return Err(missing()),
        };
        if list.len() > MAX_COMMITMENTS {
            return Err(err(format!("commitments: at most {MAX_COMMITMENTS}")));
        }
        let mut commitments = Vec::with_capacity(list.len());
        for (i, c) in list.iter().enumerate() {
            let c = object(c, &format!("commitments.{i}"))?;
            let uuid = req_str(c, "uuid", MAX_NAME)?;
            if uuid.is_empty() {
                return Err(err(format!("commitments.{i}.uuid: String should have at least 1 character")));
            }
            let merkle_root = req_str(c, "merkle_root", MAX_NAME)?;
            let digits = merkle_root.strip_prefix("0x").unwrap_or(&merkle_root);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err(format!("commitments.{i}.merkle_root: must be hexadecimal")));
            }
            let sig_ver = match c.get("sig_ver") {
                None | Some(Value::Null) => 0,
                Some(v) => v.as_i64().ok_or_else(|| err(format!("commitments.{i}.sig_ver: must be an integer")))?,
            };
            let sig_val = opt_str(c, "sig_val", 1024)?.unwrap_or_default();
            commitments.push(Commitment { uuid, merkle_root, sig_ver, sig_val });
        }
        Ok(CommitmentData { worker_id, commitments })
    }
}

fn string_list(obj: &Map<String, Value>, key: &str, max_items: usize) -> Result<Vec<String>, ModelError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => {
            if list.len() > max_items {
                return Err(err(format!("{key}: at most {max_items} items")));
            }
            list.iter()
                .map(|v| match v {
                    Value::String(s) => bounded(s, key, MAX_NAME),
                    _ => Err(err(format!("{key}: Input should be a valid string"))),
                })
                .collect()
        }
        Some(_) => Err(err(format!("{key}: Input should be a valid list"))),
    }
}

fn merkle_proofs(obj: &Map<String, Value>) -> Result<Vec<MerkleProof>, ModelError> {
    let list = match obj.get("merkle_proofs") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(err("merkle_proofs: Input should be a valid list")),
    };
    if list.len() > MAX_PROOF_ROWS {
        return Err(err(format!("merkle_proofs: at most {MAX_PROOF_ROWS} items")));
    }
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            let p = object(p, &format!("merkle_proofs.{i}"))?;
            let leaf_index = p
                .get("leaf_index")
                .and_then(Value::as_i64)
                .ok_or_else(|| err(format!("merkle_proofs.{i}.leaf_index: must be an integer")))?;
            let leaf_hash = req_str(p, "leaf_hash", MAX_NAME)?;
            let proof_hashes = string_list(p, "proof_hashes", MAX_PATH)?;
            let proof_directions = match p.get("proof_directions") {
                Some(Value::Array(d)) if d.len() <= MAX_PATH => d
                    .iter()
                    .map(|b| b.as_bool().ok_or_else(|| err(format!("merkle_proofs.{i}.proof_directions: booleans"))))
                    .collect::<Result<Vec<_>, _>>()?,
                None | Some(Value::Null) => Vec::new(),
                Some(_) => {
                    return Err(err(format!("merkle_proofs.{i}.proof_directions: a list of at most {MAX_PATH}")));
                }
            };
            Ok(MerkleProof { leaf_index, leaf_hash, proof_hashes, proof_directions })
        })
        .collect()
}

/// Values as floats; `null` (Python's NaN/Infinity after lenient parsing) becomes NaN, which
/// fails every tolerance check.
fn values(obj: &Map<String, Value>) -> Result<Vec<f64>, ModelError> {
    match obj.get("coordinate_values") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => {
            if list.len() > MAX_VALUES {
                return Err(err(format!("coordinate_values: at most {MAX_VALUES} values")));
            }
            list.iter()
                .map(|v| match v {
                    Value::Null => Ok(f64::NAN),
                    other => other.as_f64().ok_or_else(|| err("coordinate_values: Input should be a valid number")),
                })
                .collect()
        }
        Some(_) => Err(err("coordinate_values: Input should be a valid list")),
    }
}

/// `ProofData` (§2.10.4) checked against the committed uuids (§3.7 steps 2–3).
pub struct ProofData;

impl ProofData {
    pub fn parse(
        value: &Value,
        gpu: bool,
        committed: &std::collections::BTreeMap<String, String>,
    ) -> Result<ProofMaterial, ModelError> {
        let obj = object(value, "proof")?;
        let list = match obj.get("proofs") {
            Some(Value::Array(list)) if !list.is_empty() => list,
            _ => return Err(err("Missing required fields: challenge_id, proofs")),
        };
        if list.len() > MAX_COMMITMENTS {
            return Err(err(format!("proofs: at most {MAX_COMMITMENTS}")));
        }
        let mut cpu = None;
        let mut gpus = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in list.iter().enumerate() {
            let p = object(p, &format!("proofs.{i}"))?;
            let uuid = req_str(p, "uuid", MAX_NAME)?;
            let row_hashes = string_list(p, "row_hashes", MAX_PROOF_ROWS)?;
            let proofs = merkle_proofs(p)?;
            let coordinate_values = values(p)?;
            if gpu {
                if uuid == "-1" || coordinate_values.is_empty() || row_hashes.is_empty() || proofs.is_empty() {
                    return Err(err(format!("GPU proof {uuid} needs coordinate_values, row_hashes and merkle_proofs")));
                }
                gpus.push(GpuProof { uuid: uuid.clone(), row_hashes, merkle_proofs: proofs, coordinate_values });
            } else {
                if uuid != "-1" || row_hashes.is_empty() || proofs.is_empty() || cpu.is_some() {
                    return Err(err("A CPU proof is exactly one entry with uuid -1, row_hashes and merkle_proofs"));
                }
                cpu = Some(CpuProof { row_hashes, merkle_proofs: proofs });
            }
            seen.insert(uuid);
        }
        if seen.iter().ne(committed.keys()) {
            return Err(err("Proof uuids do not match the committed uuids"));
        }
        Ok(match cpu {
            Some(proof) => ProofMaterial::Cpu(proof),
            None => ProofMaterial::Gpu(gpus),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_real_shaped_heartbeat_parses() {
        let hb = json!({
            "hotkey": "5F...", "timestamp": 1.0, "schema_version": 1, "extra": "kept",
            "miner_info": {"public_ip": "203.0.113.7", "miner_version": " 0.0.5 "},
            "workers": [{
                "worker_id": " abc ", "worker_name": "rig", "worker_version": "0.0.5",
                "capabilities": ["cpu_matrix", "gpu_matrix"], "status": "busy",
                "system_info": {"cpu_count": 8, "gpu_plugin": [
                    {"uuid": "GPU-1", "name": "NVIDIA GeForce RTX 4090", "total_memory": 25757220864u64},
                    {"name": "no uuid"}
                ]}
            }]
        });
        let parsed = HeartbeatData::parse(&hb).unwrap();
        assert_eq!(parsed.public_ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(parsed.miner_version.as_deref(), Some("0.0.5"));
        let w = &parsed.workers[0];
        assert_eq!(w.worker_id, "abc");
        assert_eq!(w.status, "busy");
        assert_eq!(
            w.gpus,
            vec![GpuEntry { uuid: "GPU-1".into(), name: "NVIDIA GeForce RTX 4090".into(), memory_mb: 24564 }]
        );
    }

    #[test]
    fn models_refuse_what_pydantic_refuses() {
        assert!(HeartbeatData::parse(&json!({})).is_err());
        assert!(HeartbeatData::parse(&json!({"workers": "no"})).is_err());
        assert!(HeartbeatData::parse(&json!({"workers": [{"worker_id": "a", "status": "sleeping"}]})).is_err());
        assert!(HeartbeatData::parse(&json!({"workers": [{"worker_id": 5}]})).is_err());
        assert!(HeartbeatData::parse(&json!({"workers": [{"worker_id": "x".repeat(500)}]})).is_err());
        assert!(parse_task_request(&json!({"request_type": "steal"})).is_err());
        assert!(parse_task_request(&json!({"request_type": "challenge"})).is_ok());
    }

    #[test]
    fn workers_beyond_the_cap_are_dropped_and_big_blobs_shrunk() {
        let workers: Vec<_> = (0..150)
            .map(|i| json!({"worker_id": format!("w{i}"), "system_info": {"junk": "x".repeat(40_000)}}))
            .collect();
        let parsed = HeartbeatData::parse(&json!({ "workers": workers })).unwrap();
        assert_eq!(parsed.workers.len(), MAX_WORKERS);
        assert_eq!(parsed.dropped, 50);
        assert!(parsed.workers[0].system_info_json.len() < 100);
    }
}
