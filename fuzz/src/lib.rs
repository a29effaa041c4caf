//! Shared fixtures of the axon fuzz targets: fixed identities, the real SessionInit handshake seen from the
//! miner's side, the package layout of `shared/crypto.py`, and the checks every target applies to what the
//! project code returns.
//!
//! Everything here goes through the public API of `validator_node::axon`; nothing of the project is copied.
//! A failed `assert!` in this file is a finding (a broken invariant of the project code), not a harness bug,
//! except in [`establish`], which panics only if the fixture itself cannot be set up.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use validator_node::axon::messages::{self, CommitmentData, HeartbeatData, ProofData};
use validator_node::axon::session::{
    self, HandshakeError, SessionError, SessionKeys, SessionStore, SessionStoreConfig, crypto, pyjson,
};
use x25519_dalek::{PublicKey, StaticSecret};

/// The miner of the §9.4 vectors (Alice's SS58 address).
pub const MINER_HOTKEY: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
/// The validator of the §9.4 vectors (Bob's SS58 address).
pub const VALIDATOR_HOTKEY: &str = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty";
/// A third hotkey that holds no session (Charlie's SS58 address).
pub const OTHER_HOTKEY: &str = "5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y";
/// The miner's ephemeral X25519 secret (the §9.4 vector key).
pub const MINER_EPH_SECRET: [u8; 32] = [0x11; 32];
/// The miner's handshake nonce (the §9.4 vector nonce 00 01 .. 0f).
pub const CLIENT_NONCE: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/// "Now" for every store call: a fixed, realistic Unix time, so sessions never expire during a run.
pub const NOW: f64 = 1_700_000_000.0;
/// Placeholder that the package targets replace with the live session id (random per store).
pub const SESSION_PLACEHOLDER: &str = "@SID@";

/// The five protocol types (AAD `type` and package `synapse_type`).
pub const PROTOCOL_TYPES: [&str; 5] = [
    session::protocol_type::HEARTBEAT,
    session::protocol_type::TASK,
    session::protocol_type::CHALLENGE,
    session::protocol_type::CHALLENGE_PROOF,
    session::protocol_type::SESSION_INIT,
];

/// The miner's half of an established session.
pub struct MinerSession {
    /// The session id the validator chose.
    pub id: String,
    /// `k_cs` / `k_sc` as the miner derives them from the handshake answer.
    pub keys: SessionKeys,
}

/// The SessionInit `request` string the Python miner sends for [`MINER_EPH_SECRET`] and [`CLIENT_NONCE`].
pub fn handshake_request() -> String {
    let public = PublicKey::from(&StaticSecret::from(MINER_EPH_SECRET));
    format!(
        "{{\"miner_eph_pub32\": \"{}\", \"client_nonce16\": \"{}\", \"created_at\": 1700000000.123456}}",
        BASE64.encode(public.as_bytes()),
        BASE64.encode(CLIENT_NONCE)
    )
}

/// A store for [`VALIDATOR_HOTKEY`] with the production limits.
pub fn new_store() -> SessionStore {
    SessionStore::new(VALIDATOR_HOTKEY, SessionStoreConfig::default())
}

/// Runs the real handshake (`SessionStore::handshake`) for [`MINER_HOTKEY`] and completes it the way the
/// Python miner does (`_perform_handshake`), giving the keys that let a target seal packages the store accepts.
///
/// Panics if the handshake fails: the fixture is then unusable and every input would be meaningless.
pub fn establish(store: &SessionStore) -> MinerSession {
    let answer = store.handshake(MINER_HOTKEY, &handshake_request(), NOW).expect("fixture handshake refused");
    let data = pyjson::loads(&answer).expect("handshake answer is not JSON");
    let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_else(|| panic!("handshake answer lacks {k}"));
    let validator_pub_b64 = text("validator_eph_pub32");
    let validator_pub: [u8; 32] = BASE64.decode(validator_pub_b64).expect("base64").try_into().expect("32 bytes");
    let server_nonce: [u8; 16] = BASE64.decode(text("server_nonce16")).expect("base64").try_into().expect("16 bytes");
    let miner_secret = StaticSecret::from(MINER_EPH_SECRET);
    let miner_pub_b64 = BASE64.encode(PublicKey::from(&miner_secret).as_bytes());
    let shared = miner_secret.diffie_hellman(&PublicKey::from(validator_pub));
    let keys = crypto::derive_session_keys(
        shared.as_bytes(),
        &CLIENT_NONCE,
        &server_nonce,
        MINER_HOTKEY,
        VALIDATOR_HOTKEY,
        &miner_pub_b64,
        validator_pub_b64,
    );
    MinerSession { id: text("session_id").to_owned(), keys }
}

/// The package JSON of `shared/crypto.py` (§2.6 step 6), with raw (already base64) ciphertext.
pub fn package_json(session_id: &str, seq: u64, ciphertext: &[u8], sender: &str, kind: &str) -> String {
    let mut out = String::with_capacity(ciphertext.len() * 4 / 3 + 256);
    out.push_str("{\"ver\": \"v1\", \"session_id\": ");
    pyjson::write_str(&mut out, session_id, true);
    out.push_str(", \"seq\": ");
    out.push_str(&seq.to_string());
    out.push_str(", \"ciphertext\": \"");
    out.push_str(&BASE64.encode(ciphertext));
    out.push_str("\", \"sender\": ");
    pyjson::write_str(&mut out, sender, true);
    out.push_str(", \"recipient\": ");
    pyjson::write_str(&mut out, VALIDATOR_HOTKEY, true);
    out.push_str(", \"synapse_type\": ");
    pyjson::write_str(&mut out, kind, true);
    out.push('}');
    out
}

/// A plaintext refusal (`{"error": ..., "error_code": ...}`) must be JSON the miner can read, with the code.
pub fn check_error_json(text: &str, code: i64) {
    let value = match pyjson::loads(text) {
        Ok(v) => v,
        Err(e) => panic!("error answer is not JSON ({e}): {text:?}"),
    };
    assert_eq!(value.get("error_code").and_then(Value::as_i64), Some(code), "error answer {text:?}");
    assert!(value.get("error").is_some_and(Value::is_string), "error answer {text:?}");
    // The miner maps error texts to codes with this rule; it must not panic on any text.
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        let _ = session::errors::derive_error_code(error);
    }
}

/// Checks a session error's code and plaintext answer.
pub fn check_session_error(e: &SessionError) {
    let _ = e.to_string();
    check_error_json(&e.response_json(), e.code());
}

/// Checks a handshake error's code and plaintext answer.
pub fn check_handshake_error(e: &HandshakeError) {
    assert_eq!(e.code(), session::code::HANDSHAKE_FAILED);
    check_error_json(&e.response_json(), e.code());
}

/// What `pyjson` writes it must read back as the same value (the package and error JSON the validator sends,
/// and the plaintexts it seals, are written by `pyjson::dumps`).
pub fn check_pyjson_round_trip(value: &Value) {
    for ensure_ascii in [false, true] {
        let text = pyjson::dumps(value, ensure_ascii);
        match pyjson::loads(&text) {
            Ok(back) => assert!(back == *value, "pyjson round trip changed {value:?} into {back:?} via {text:?}"),
            Err(e) => panic!("pyjson cannot read what it wrote ({e}): {text:?}"),
        }
    }
    let _ = pyjson::py_str(value);
}

/// Runs every decrypted-message model of the axon over `value` (what `MinerDesk` does per synapse) and
/// checks the bounds the models promise before anything reaches the ledger.
pub fn exercise_models(value: &Value) {
    if let Ok(hb) = HeartbeatData::parse(value) {
        assert!(hb.workers.len() <= messages::MAX_WORKERS);
        for w in &hb.workers {
            assert!(!w.worker_id.is_empty() && w.worker_id.len() <= messages::MAX_NAME);
            assert!(w.capabilities.len() <= messages::MAX_CAPABILITIES);
            assert!(w.gpus.len() <= messages::MAX_GPUS);
            assert!(w.system_info_json.len() <= messages::MAX_SYSTEM_INFO, "system_info not bounded");
            assert!(matches!(w.status.as_str(), "online" | "busy" | "offline"));
        }
    }
    let _ = messages::parse_task_request(value);
    let mut committed = BTreeMap::new();
    if let Ok(c) = CommitmentData::parse(value) {
        assert!(!c.commitments.is_empty() && c.commitments.len() <= messages::MAX_COMMITMENTS);
        for commitment in c.commitments {
            committed.insert(commitment.uuid, commitment.merkle_root);
        }
    }
    if committed.is_empty() {
        committed.insert("-1".to_owned(), "00".to_owned());
    }
    for gpu in [false, true] {
        let _ = ProofData::parse(value, gpu, &committed);
    }
}

/// The protocol type quoted anywhere in `text` (as in `"synapse_type": "<TYPE>"`), else `TASK_V1`. Lets the
/// fuzzer choose the type a package claims, so that opening it gets past the type check to AES-GCM.
pub fn claimed_type_in(text: &str) -> &'static str {
    PROTOCOL_TYPES.into_iter().find(|t| text.contains(&format!("\"{t}\""))).unwrap_or(session::protocol_type::TASK)
}

/// Splits `data` at the first `\n`: (first line, rest). Without a newline, the whole input is the first line.
pub fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
