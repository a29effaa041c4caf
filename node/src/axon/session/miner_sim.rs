//! Test-only model of the Python miner's side of a session (`session_cache.py`, `session_transport.py`),
//! written independently of the store so round trips check both ends.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use x25519_dalek::{PublicKey, StaticSecret};

use super::crypto::{self, SessionKeys};
use super::pyjson;
use super::replay::ReplayWindow;

/// A miner with a fixed ephemeral key (`[seed; 32]`) and nonce, as in the §9.4 vectors.
pub struct MinerSim {
    pub hotkey: String,
    secret: StaticSecret,
    pub pub_b64: String,
    client_nonce: [u8; 16],
    pub session: Option<MinerSession>,
}

pub struct MinerSession {
    pub id: String,
    pub keys: SessionKeys,
    pub expires_at: f64,
    /// Last seq sent (`seq_out`); the first request carries 1.
    pub seq_out: u64,
    pub inbound: ReplayWindow,
}

/// What the miner makes of a validator's `response` string.
#[derive(Debug, PartialEq)]
pub enum MinerOutcome {
    /// Decrypted payload.
    Payload(Value),
    /// A plaintext `{"error", "error_code"}`: the code and whether the miner would re-handshake and retry.
    PlainError { code: i64, text: String, retries: bool },
    /// Decryption or sequence failure.
    Failure(String),
}

impl MinerSim {
    pub fn new(hotkey: &str, seed: u8) -> MinerSim {
        let secret = StaticSecret::from([seed; 32]);
        let pub_b64 = BASE64.encode(PublicKey::from(&secret).as_bytes());
        MinerSim {
            hotkey: hotkey.to_owned(),
            secret,
            pub_b64,
            client_nonce: std::array::from_fn(|i| seed.wrapping_add(i as u8)),
            session: None,
        }
    }

    /// The client nonce as sent.
    pub fn nonce_b64(&self) -> String {
        BASE64.encode(self.client_nonce)
    }

    /// `json.dumps(SessionInitRequest(...).model_dump())`: field order, float `created_at`.
    pub fn handshake_request(&self) -> String {
        format!(
            "{{\"miner_eph_pub32\": \"{}\", \"client_nonce16\": \"{}\", \"created_at\": 1700000000.123456}}",
            self.pub_b64,
            BASE64.encode(self.client_nonce)
        )
    }

    /// `_perform_handshake` after the HTTP round trip.
    pub fn complete_handshake(&mut self, validator_hotkey: &str, response: &str) -> Result<(), String> {
        let data = pyjson::loads(response.trim()).map_err(|e| e.to_string())?;
        if data.get("error").is_some() {
            return Err(format!("Handshake error: {}", data["error"]));
        }
        let text = |k: &str| data.get(k).and_then(Value::as_str).ok_or(format!("missing {k}"));
        let validator_pub_b64 = text("validator_eph_pub32")?;
        let validator_pub: [u8; 32] = BASE64
            .decode(validator_pub_b64)
            .map_err(|e| e.to_string())?
            .try_into()
            .map_err(|_| "validator key length".to_owned())?;
        let server_nonce: [u8; 16] = BASE64
            .decode(text("server_nonce16")?)
            .map_err(|e| e.to_string())?
            .try_into()
            .map_err(|_| "server nonce length".to_owned())?;
        let expires_at = data.get("expires_at").and_then(Value::as_f64).ok_or("missing expires_at")?;
        let shared = self.secret.diffie_hellman(&PublicKey::from(validator_pub));
        // complete_handshake: client = miner (our hotkey), server = validator.
        let keys = crypto::derive_session_keys(
            shared.as_bytes(),
            &self.client_nonce,
            &server_nonce,
            &self.hotkey,
            validator_hotkey,
            &self.pub_b64,
            validator_pub_b64,
        );
        self.session = Some(MinerSession {
            id: text("session_id")?.to_owned(),
            keys,
            expires_at,
            seq_out: 0,
            inbound: ReplayWindow::new(),
        });
        Ok(())
    }

    fn session(&mut self) -> &mut MinerSession {
        self.session.as_mut().expect("miner has no session")
    }

    /// `encrypt_with_session` with the next seq.
    pub fn seal(&mut self, validator_hotkey: &str, protocol_type: &str, value: &Value) -> String {
        let seq = self.session().seq_out + 1;
        self.session().seq_out = seq;
        self.seal_with_seq(validator_hotkey, protocol_type, value, seq)
    }

    /// `encrypt_with_session` with an explicit seq (replays, jumps).
    pub fn seal_with_seq(&mut self, validator_hotkey: &str, protocol_type: &str, value: &Value, seq: u64) -> String {
        let hotkey = self.hotkey.clone();
        let session = self.session();
        crypto::seal(&session.keys.k_cs, &hotkey, validator_hotkey, protocol_type, &session.id, seq, value).unwrap()
    }

    /// `send_single_request` after the HTTP round trip: plaintext error first, then decrypt and sequence check.
    pub fn read_response(&mut self, validator_hotkey: &str, protocol_type: &str, response: &str) -> MinerOutcome {
        if let Ok(Value::Object(map)) = pyjson::loads(response)
            && map.contains_key("error")
            && map.contains_key("error_code")
        {
            let code = map["error_code"].as_i64().unwrap_or_default();
            return MinerOutcome::PlainError {
                code,
                text: map["error"].as_str().unwrap_or_default().to_owned(),
                retries: [4020, 4012, 4011, 4013].contains(&code),
            };
        }
        let hotkey = self.hotkey.clone();
        let session = self.session();
        match crypto::open(&session.keys.k_sc, validator_hotkey, &hotkey, protocol_type, response) {
            Ok(opened) => match session.inbound.check_and_accept(opened.seq) {
                Ok(()) => MinerOutcome::Payload(opened.value),
                Err(reason) => MinerOutcome::Failure(format!("invalid incoming sequence: {reason:?}")),
            },
            Err(e) => MinerOutcome::Failure(e.to_string()),
        }
    }
}
