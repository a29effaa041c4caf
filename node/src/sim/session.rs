//! The miner's side of a session, as the Python miner does it (`session_cache.py`,
//! `session_transport.py`; byteleap-protocol.md §2.4–§2.7, §2.9): a fresh X25519 key and nonce
//! per handshake, `k_cs` out, `k_sc` in, a replay window on what comes back, and one
//! re-handshake on 4011/4012/4013/4020.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use x25519_dalek::PublicKey;
use x25519_dalek::StaticSecret;

use crate::axon::session::crypto;
use crate::axon::session::crypto::SessionKeys;
use crate::axon::session::pyjson;
use crate::axon::session::replay::ReplayWindow;

/// Error codes after which the miner invalidates its session and retries once (§2.9).
pub const RETRY_CODES: [i64; 4] = [4011, 4012, 4013, 4020];

struct Pending {
    secret: StaticSecret,
    pub_b64: String,
    nonce: [u8; 16],
}

struct Session {
    id: String,
    keys: SessionKeys,
    seq_out: u64,
    inbound: ReplayWindow,
}

/// What the miner makes of a `response` string.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Payload(Value),
    /// A plaintext `{"error", "error_code"}`.
    PlainError {
        code: i64,
        text: String,
    },
    /// The response did not decrypt or its sequence was refused.
    Failure(String),
}

/// One miner's session with one validator hotkey.
pub struct MinerSession {
    hotkey: String,
    validator: String,
    pending: Option<Pending>,
    session: Option<Session>,
}

impl MinerSession {
    pub fn new(hotkey: &str, validator: &str) -> MinerSession {
        MinerSession { hotkey: hotkey.into(), validator: validator.into(), pending: None, session: None }
    }

    pub fn is_open(&self) -> bool {
        self.session.is_some()
    }

    pub fn invalidate(&mut self) {
        self.session = None;
    }

    /// The `SessionInitRequest` JSON for a new handshake.
    pub fn handshake_request(&mut self) -> String {
        let secret = StaticSecret::from(rand::random::<[u8; 32]>());
        let pub_b64 = BASE64.encode(PublicKey::from(&secret).as_bytes());
        let nonce: [u8; 16] = rand::random();
        let request = serde_json::json!({
            "miner_eph_pub32": pub_b64,
            "client_nonce16": BASE64.encode(nonce),
            "created_at": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
        });
        self.pending = Some(Pending { secret, pub_b64, nonce });
        request.to_string()
    }

    /// Derives the keys from the validator's `SessionInitResponse`.
    pub fn complete_handshake(&mut self, response: &str) -> Result<(), String> {
        let pending = self.pending.take().ok_or("no handshake in progress")?;
        let data = pyjson::loads(response.trim()).map_err(|e| e.to_string())?;
        if let Some(error) = data.get("error") {
            return Err(format!("handshake refused: {error}"));
        }
        let text = |k: &str| data.get(k).and_then(Value::as_str).ok_or(format!("missing {k}"));
        let validator_pub_b64 = text("validator_eph_pub32")?;
        let validator_pub: [u8; 32] = BASE64
            .decode(validator_pub_b64)
            .map_err(|e| e.to_string())?
            .try_into()
            .map_err(|_| "validator key length".to_string())?;
        let server_nonce: [u8; 16] = BASE64
            .decode(text("server_nonce16")?)
            .map_err(|e| e.to_string())?
            .try_into()
            .map_err(|_| "server nonce length".to_string())?;
        let shared = pending.secret.diffie_hellman(&PublicKey::from(validator_pub));
        let keys = crypto::derive_session_keys(
            shared.as_bytes(),
            &pending.nonce,
            &server_nonce,
            &self.hotkey,
            &self.validator,
            &pending.pub_b64,
            validator_pub_b64,
        );
        self.session =
            Some(Session { id: text("session_id")?.to_string(), keys, seq_out: 0, inbound: ReplayWindow::new() });
        Ok(())
    }

    /// Seals `value` with the next sequence number.
    pub fn seal(&mut self, protocol_type: &str, value: &Value) -> Result<String, String> {
        let session = self.session.as_mut().ok_or("no session")?;
        session.seq_out += 1;
        let seq = session.seq_out;
        self.seal_with_seq(protocol_type, value, seq)
    }

    /// Seals with an explicit sequence number (for replay tests).
    pub fn seal_with_seq(&mut self, protocol_type: &str, value: &Value, seq: u64) -> Result<String, String> {
        let session = self.session.as_ref().ok_or("no session")?;
        crypto::seal(&session.keys.k_cs, &self.hotkey, &self.validator, protocol_type, &session.id, seq, value)
            .map_err(|e| e.to_string())
    }

    /// Reads a response: a plaintext error first, else decrypt and check the sequence (§2.9).
    pub fn open(&mut self, protocol_type: &str, response: &str) -> Outcome {
        if let Ok(Value::Object(map)) = pyjson::loads(response)
            && map.contains_key("error")
            && map.contains_key("error_code")
        {
            return Outcome::PlainError {
                code: map.get("error_code").and_then(Value::as_i64).unwrap_or_default(),
                text: map.get("error").and_then(Value::as_str).unwrap_or_default().to_string(),
            };
        }
        let Some(session) = self.session.as_mut() else { return Outcome::Failure("no session".into()) };
        match crypto::open(&session.keys.k_sc, &self.validator, &self.hotkey, protocol_type, response) {
            Ok(opened) => match session.inbound.check_and_accept(opened.seq) {
                Ok(()) => Outcome::Payload(opened.value),
                Err(reason) => Outcome::Failure(format!("invalid incoming sequence: {reason:?}")),
            },
            Err(e) => Outcome::Failure(e.to_string()),
        }
    }
}
