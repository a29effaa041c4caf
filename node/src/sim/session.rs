//! The miner's side of a session, as the Python miner does it (`session_cache.py`,
//! `session_transport.py`; byteleap-protocol.md §2.4–§2.7, §2.9): a fresh X25519 key and nonce
//! per handshake, `k_cs` out, `k_sc` in, a replay window on what comes back, and one
//! re-handshake on 4011/4012/4013/4020.
//!
//! It is written independently of the validator's session store (`axon::session`), so a round
//! trip checks both ends: the simulated miners use it over HTTP, and the store's unit tests use
//! it in-process with [`MinerSession::seeded`] keys (the §9.4 vectors' shape).

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

/// An established session, as the miner holds it.
pub struct Session {
    pub id: String,
    pub keys: SessionKeys,
    /// The validator's `expires_at` (epoch seconds).
    pub expires_at: f64,
    /// Last seq sent; the first request carries 1.
    pub seq_out: u64,
    pub inbound: ReplayWindow,
}

/// What the miner makes of a `response` string.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Payload(Value),
    /// A plaintext `{"error", "error_code"}`, and whether the miner re-handshakes and retries.
    PlainError {
        code: i64,
        text: String,
        retries: bool,
    },
    /// The response did not decrypt or its sequence was refused.
    Failure(String),
}

/// One miner's session with one validator hotkey.
pub struct MinerSession {
    hotkey: String,
    validator: String,
    /// Fixed handshake material (tests), else fresh randomness per handshake.
    seed: Option<u8>,
    pending: Option<Pending>,
    session: Option<Session>,
}

impl MinerSession {
    pub fn new(hotkey: &str, validator: &str) -> MinerSession {
        MinerSession { hotkey: hotkey.into(), validator: validator.into(), seed: None, pending: None, session: None }
    }

    /// A miner whose every handshake uses the key `[seed; 32]` and the nonce `seed, seed+1, …`
    /// (deterministic tests).
    pub fn seeded(hotkey: &str, validator: &str, seed: u8) -> MinerSession {
        MinerSession { seed: Some(seed), ..MinerSession::new(hotkey, validator) }
    }

    /// The established session, if any.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    pub fn is_open(&self) -> bool {
        self.session.is_some()
    }

    pub fn invalidate(&mut self) {
        self.session = None;
    }

    /// The `SessionInitRequest` JSON for a new handshake, as Python's
    /// `json.dumps(SessionInitRequest(...).model_dump())` writes it (field order, float
    /// `created_at`).
    pub fn handshake_request(&mut self) -> String {
        let (secret, nonce) = match self.seed {
            Some(seed) => (StaticSecret::from([seed; 32]), std::array::from_fn(|i| seed.wrapping_add(i as u8))),
            None => (StaticSecret::from(rand::random::<[u8; 32]>()), rand::random::<[u8; 16]>()),
        };
        let pub_b64 = BASE64.encode(PublicKey::from(&secret).as_bytes());
        let created_at = match self.seed {
            Some(_) => 1_700_000_000.123456,
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
        };
        let request = format!(
            "{{\"miner_eph_pub32\": \"{pub_b64}\", \"client_nonce16\": \"{}\", \"created_at\": {created_at:?}}}",
            BASE64.encode(nonce)
        );
        self.pending = Some(Pending { secret, pub_b64, nonce });
        request
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
        let expires_at = data.get("expires_at").and_then(Value::as_f64).ok_or("missing expires_at")?;
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
        self.session = Some(Session {
            id: text("session_id")?.to_string(),
            keys,
            expires_at,
            seq_out: 0,
            inbound: ReplayWindow::new(),
        });
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
            let code = map.get("error_code").and_then(Value::as_i64).unwrap_or_default();
            return Outcome::PlainError {
                code,
                text: map.get("error").and_then(Value::as_str).unwrap_or_default().to_string(),
                retries: RETRY_CODES.contains(&code),
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
