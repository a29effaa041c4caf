//! Session key derivation and the encrypted package, byte for byte as `shared/crypto.py` does them.
//!
//! - [`derive_session_keys`]: HKDF-SHA256 over the X25519 secret, byteleap-protocol.md §2.5.
//! - [`seal`]: object → package JSON string (§2.6 steps 1–7).
//! - [`Package::parse`] + [`Package::open`] (or [`open`] for both): package string → object, with the checks of
//!   §2.6 in the original's order. The store splits the two steps because it must read `session_id` to find the
//!   key before it can decrypt.
//!
//! Nothing here keeps state; sequence numbers and replay windows belong to the store.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hkdf::Hkdf;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::pyjson::{self, JsonError};
use super::{AAD_PREFIX, HKDF_ALGORITHM_INFO, LABEL_CLIENT_TO_SERVER, LABEL_SERVER_TO_CLIENT, PROTOCOL_VERSION};

/// AES-256 key length and HKDF output length L (§2.5).
pub const KEY_LEN: usize = 32;

/// The two directional keys of one session (§2.5). Client = miner, server = validator.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionKeys {
    /// Miner → validator traffic.
    pub k_cs: [u8; KEY_LEN],
    /// Validator → miner traffic.
    pub k_sc: [u8; KEY_LEN],
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKeys { .. }")
    }
}

/// The HKDF `info` of §2.5: `D|client_hotkey|server_hotkey|client_pub_b64|server_pub_b64|salt|algorithm`,
/// with literal `|` bytes and the raw 32-byte salt in the middle.
pub fn hkdf_info(
    label: &[u8],
    client_hotkey: &str,
    server_hotkey: &str,
    client_eph_pub_b64: &str,
    server_eph_pub_b64: &str,
    salt: &[u8; 32],
) -> Vec<u8> {
    let parts: [&[u8]; 7] = [
        label,
        client_hotkey.as_bytes(),
        server_hotkey.as_bytes(),
        client_eph_pub_b64.as_bytes(),
        server_eph_pub_b64.as_bytes(),
        salt,
        HKDF_ALGORITHM_INFO,
    ];
    parts.join(&b'|')
}

/// `k_cs`, `k_sc` = HKDF-SHA256(ikm = shared secret, salt = client_nonce || server_nonce, info(D), L = 32) (§2.5).
///
/// The base64 strings must be the exact strings exchanged in the handshake (they are hashed as text).
pub fn derive_session_keys(
    shared_secret: &[u8; 32],
    client_nonce: &[u8; 16],
    server_nonce: &[u8; 16],
    client_hotkey: &str,
    server_hotkey: &str,
    client_eph_pub_b64: &str,
    server_eph_pub_b64: &str,
) -> SessionKeys {
    let mut salt = [0u8; 32];
    salt[..16].copy_from_slice(client_nonce);
    salt[16..].copy_from_slice(server_nonce);
    let hkdf = Hkdf::<Sha256>::new(Some(&salt), shared_secret);
    let mut keys = SessionKeys { k_cs: [0; KEY_LEN], k_sc: [0; KEY_LEN] };
    for (label, okm) in [(LABEL_CLIENT_TO_SERVER, &mut keys.k_cs), (LABEL_SERVER_TO_CLIENT, &mut keys.k_sc)] {
        let info = hkdf_info(label, client_hotkey, server_hotkey, client_eph_pub_b64, server_eph_pub_b64, &salt);
        // 32 bytes is far below HKDF-SHA256's 255 * 32 byte limit, so expand cannot fail.
        if hkdf.expand(&info, okm).is_err() {
            unreachable!("HKDF-SHA256 can always expand to 32 bytes");
        }
    }
    keys
}

/// IV = first 4 bytes of SHA-256(UTF-8 session id) || seq as 8 bytes big-endian (§2.6 step 3).
pub fn iv(session_id: &str, seq: u64) -> [u8; 12] {
    let digest = Sha256::digest(session_id.as_bytes());
    let mut iv = [0u8; 12];
    iv[..4].copy_from_slice(&digest[..4]);
    iv[4..].copy_from_slice(&seq.to_be_bytes());
    iv
}

/// AAD = `leap-comm|{sender}|{recipient}|{type}|session_{sid}|seq_{seq}` (§2.6 step 4).
pub fn aad(sender: &str, recipient: &str, protocol_type: &str, session_id: &str, seq: u64) -> String {
    format!("{AAD_PREFIX}|{sender}|{recipient}|{protocol_type}|session_{session_id}|seq_{seq}")
}

/// The package JSON (§2.6 step 6): Python's default `json.dumps` of a dict built in the order
/// `ver, session_id, seq, ciphertext, sender, recipient, synapse_type`.
fn package_json(session_id: &str, seq: u64, ciphertext_b64: &str, sender: &str, recipient: &str, kind: &str) -> String {
    let mut out = String::with_capacity(ciphertext_b64.len() + 256);
    out.push_str("{\"ver\": ");
    pyjson::write_str(&mut out, PROTOCOL_VERSION, true);
    out.push_str(", \"session_id\": ");
    pyjson::write_str(&mut out, session_id, true);
    out.push_str(", \"seq\": ");
    out.push_str(&seq.to_string());
    out.push_str(", \"ciphertext\": ");
    pyjson::write_str(&mut out, ciphertext_b64, true);
    out.push_str(", \"sender\": ");
    pyjson::write_str(&mut out, sender, true);
    out.push_str(", \"recipient\": ");
    pyjson::write_str(&mut out, recipient, true);
    out.push_str(", \"synapse_type\": ");
    pyjson::write_str(&mut out, kind, true);
    out.push('}');
    out
}

/// Encrypts `value` into the package string that goes into a synapse's `request`/`response` field (§2.6).
///
/// `seq` is a `u64`, so the original's `seq <= 2^64 - 1` check holds by type.
pub fn seal(
    key: &[u8; KEY_LEN],
    sender: &str,
    recipient: &str,
    protocol_type: &str,
    session_id: &str,
    seq: u64,
    value: &Value,
) -> Result<String, SealError> {
    let plaintext = pyjson::dumps_plaintext(value);
    let ciphertext = seal_bytes(key, sender, recipient, protocol_type, session_id, seq, plaintext.as_bytes())?;
    Ok(package_json(session_id, seq, &BASE64.encode(ciphertext), sender, recipient, protocol_type))
}

/// AES-256-GCM of the given plaintext bytes; returns ciphertext || 16-byte tag.
pub fn seal_bytes(
    key: &[u8; KEY_LEN],
    sender: &str,
    recipient: &str,
    protocol_type: &str,
    session_id: &str,
    seq: u64,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let cipher = Aes256Gcm::new(key.into());
    let nonce = iv(session_id, seq);
    let aad = aad(sender, recipient, protocol_type, session_id, seq);
    cipher.encrypt(&nonce.into(), Payload { msg: plaintext, aad: aad.as_bytes() }).map_err(|_| SealError::TooLong)
}

/// Encryption failure: only a plaintext beyond AES-GCM's 64 GiB limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Plaintext or AAD exceeds what AES-GCM can encrypt under one IV.
    #[error("plaintext too long for AES-GCM")]
    TooLong,
}

/// Why a package was refused. `Display` follows the texts of `CryptoManager.decrypt_with_session` (the store adds
/// the outer `"Decryption failed: "` the original adds again); the wording of Python exception details
/// (base64, integer conversion, InvalidTag) is paraphrased.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The package string is not JSON.
    #[error("Invalid encrypted package: {0}")]
    PackageJson(JsonError),
    /// The package JSON is not an object.
    #[error("Decryption failed: encrypted package is not a JSON object")]
    PackageNotObject,
    /// `ver` is missing or not `"v1"`.
    #[error("Decryption failed: Unsupported protocol version: got {got}, expected v1")]
    UnsupportedVersion {
        /// Python `str()` of what was found (`None` when missing).
        got: String,
    },
    /// A required package field is absent.
    #[error("Invalid encrypted package: '{0}'")]
    MissingField(&'static str),
    /// `ciphertext` is not a string of standard, padded base64.
    #[error("Decryption failed: ciphertext is not valid base64")]
    BadCiphertextEncoding,
    /// `sender`/`recipient` are not the hotkeys this side expects.
    #[error(
        "Decryption failed: Sender/recipient mismatch: got {got_sender}->{got_recipient}, expected {expected_sender}->{expected_recipient}"
    )]
    SenderRecipientMismatch {
        /// Package `sender` (Python `str()`).
        got_sender: String,
        /// Package `recipient` (Python `str()`).
        got_recipient: String,
        /// Expected sender hotkey.
        expected_sender: String,
        /// Expected recipient hotkey.
        expected_recipient: String,
    },
    /// `synapse_type` is not the route's protocol type.
    #[error("Decryption failed: Synapse type mismatch: package={got}, expected={expected}")]
    ProtocolTypeMismatch {
        /// Package `synapse_type` (Python `str()`).
        got: String,
        /// The route's protocol type.
        expected: String,
    },
    /// `seq` is not an integer in 0..=2^64-1 (Python fails in `int.to_bytes`).
    #[error("Decryption failed: invalid sequence number {0}")]
    InvalidSeq(String),
    /// `session_id` is not a string.
    #[error("Decryption failed: session_id must be a string")]
    InvalidSessionId,
    /// GCM tag mismatch: wrong key, tampered ciphertext, or AAD/IV fields that differ from the sealed ones.
    #[error("Decryption failed: authentication tag mismatch")]
    Authentication,
    /// The plaintext is not UTF-8.
    #[error("Decryption failed: plaintext is not valid UTF-8")]
    PlaintextUtf8,
    /// The plaintext is not JSON that Python's `json.loads` would accept (or nests deeper than the limit).
    #[error("Invalid encrypted package: {0}")]
    PlaintextJson(JsonError),
}

/// A parsed (not yet authenticated) package.
#[derive(Debug, Clone)]
pub struct Package {
    fields: Map<String, Value>,
}

impl Package {
    /// Parses the package JSON leniently (Python `json.loads`). Fields are checked by [`Package::open`].
    pub fn parse(package: &str) -> Result<Package, OpenError> {
        match pyjson::loads(package).map_err(OpenError::PackageJson)? {
            Value::Object(fields) => Ok(Package { fields }),
            _ => Err(OpenError::PackageNotObject),
        }
    }

    /// The raw `session_id` field, if present.
    pub fn session_id(&self) -> Option<&Value> {
        self.fields.get("session_id")
    }

    /// The raw `seq` field, if present.
    pub fn seq(&self) -> Option<&Value> {
        self.fields.get("seq")
    }

    fn field(&self, name: &'static str) -> Result<&Value, OpenError> {
        self.fields.get(name).ok_or(OpenError::MissingField(name))
    }

    /// Authenticates and decrypts, checking in the original's order: version, presence of the fields,
    /// ciphertext encoding, sender/recipient, synapse type, then IV/AAD, GCM, UTF-8, JSON.
    pub fn open(
        &self,
        key: &[u8; KEY_LEN],
        expected_sender: &str,
        expected_recipient: &str,
        protocol_type: &str,
    ) -> Result<Opened, OpenError> {
        match self.fields.get("ver") {
            Some(Value::String(v)) if v == PROTOCOL_VERSION => {}
            other => {
                return Err(OpenError::UnsupportedVersion { got: other.map_or("None".to_owned(), pyjson::py_str) });
            }
        }
        let session_id = self.field("session_id")?;
        let seq = self.field("seq")?;
        let ciphertext = match self.field("ciphertext")? {
            Value::String(b64) => BASE64.decode(b64).map_err(|_| OpenError::BadCiphertextEncoding)?,
            _ => return Err(OpenError::BadCiphertextEncoding),
        };
        let sender = self.field("sender")?;
        let recipient = self.field("recipient")?;
        let kind = self.field("synapse_type")?;
        if sender.as_str() != Some(expected_sender) || recipient.as_str() != Some(expected_recipient) {
            return Err(OpenError::SenderRecipientMismatch {
                got_sender: pyjson::py_str(sender),
                got_recipient: pyjson::py_str(recipient),
                expected_sender: expected_sender.to_owned(),
                expected_recipient: expected_recipient.to_owned(),
            });
        }
        if kind.as_str() != Some(protocol_type) {
            return Err(OpenError::ProtocolTypeMismatch {
                got: pyjson::py_str(kind),
                expected: protocol_type.to_owned(),
            });
        }
        let seq = seq.as_u64().ok_or_else(|| OpenError::InvalidSeq(pyjson::py_str(seq)))?;
        let session_id = session_id.as_str().ok_or(OpenError::InvalidSessionId)?;

        let cipher = Aes256Gcm::new(key.into());
        let nonce = iv(session_id, seq);
        let aad = aad(expected_sender, expected_recipient, protocol_type, session_id, seq);
        let plaintext = cipher
            .decrypt(&nonce.into(), Payload { msg: &ciphertext, aad: aad.as_bytes() })
            .map_err(|_| OpenError::Authentication)?;
        let text = std::str::from_utf8(&plaintext).map_err(|_| OpenError::PlaintextUtf8)?;
        let value = pyjson::loads(text).map_err(OpenError::PlaintextJson)?;
        Ok(Opened { value, session_id: session_id.to_owned(), seq })
    }
}

/// A decrypted package.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    /// The decrypted object (see `pyjson` for how `NaN`/`Infinity` and huge integers are represented).
    pub value: Value,
    /// The package's session id.
    pub session_id: String,
    /// The package's sequence number (not yet checked against any replay window).
    pub seq: u64,
}

/// Parses and opens a package in one step (the peer side; the store uses [`Package`] directly).
pub fn open(
    key: &[u8; KEY_LEN],
    expected_sender: &str,
    expected_recipient: &str,
    protocol_type: &str,
    package: &str,
) -> Result<Opened, OpenError> {
    Package::parse(package)?.open(key, expected_sender, expected_recipient, protocol_type)
}

#[cfg(test)]
pub(crate) mod tests {
    //! The §9.4 interop vectors.

    use serde_json::json;
    use x25519_dalek::{PublicKey, StaticSecret};

    use super::*;

    pub const MINER_HOTKEY: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
    pub const VALIDATOR_HOTKEY: &str = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty";
    const MINER_PUB_B64: &str = "e06Qm75//kTEZaIgA31gjuNYl9Me+XLwf3SJLLD3PxM=";
    const VALIDATOR_PUB_B64: &str = "D6poTtKIZ7l/Smot7l34zpdOdrcBjj8iocTPJnhXDyA=";
    const SHARED: &str = "9e004098efc091d4ec2663b4e9f5cfd4d7064571690b4bea97ab146ab9f35056";
    const K_CS: &str = "28b13af276ffe3928aab41e1fa932d754711a5c672cd42e7e51b99b7419d3d17";
    const K_SC: &str = "f414a6281e60cb6610dd38135453113df650516dcce7ec6e092b207d9345b7f0";
    const SID: &str = "11111111-2222-3333-4444-555555555555";
    const REQUEST_PLAINTEXT: &str = "{\"hotkey\": \"5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY\", \
        \"request_type\": \"challenge\", \"schema_version\": 1, \"timestamp\": 1700000000.0}";
    const REQUEST_CT: &str = "Ip1gNqaPej7eM7zB0j/OF6tbnCwU7DEROz6xiBYNRjbchYWN+L1ZlAY33hJLeoYEJAFs3mjgjQH2stJh0xDKTu\
        jB5cliIOSV4EzNxsDNsCKE1dKmx65QXYGAv7KfFdSy5b5G1/bBZVGuXBzct3dpPrJwutpXcMEwbwt/jc8O/8FJZRVRRzRBjgHIxVK65vWP6a7R\
        ZY8Ys3POH2o=";
    const RESPONSE_CT: &str = "w/gJDciyWmm1JJ8OfAB7tBAJRxmO7HlGGo0kdDPOOkaZaTZEZzq0YWEqvz7o0spJfpiydyRR78CXW/yh0drxt+\
        HQuH5iwTpfBi1/fUVtNCZ9MWcylfTnuZs4X/0GNuOtjSnP/rjNpvgxqS0=";

    fn client_nonce() -> [u8; 16] {
        std::array::from_fn(|i| i as u8)
    }

    fn server_nonce() -> [u8; 16] {
        std::array::from_fn(|i| 0x10 + i as u8)
    }

    fn vector_keys() -> SessionKeys {
        let shared: [u8; 32] = hex::decode(SHARED).unwrap().try_into().unwrap();
        derive_session_keys(
            &shared,
            &client_nonce(),
            &server_nonce(),
            MINER_HOTKEY,
            VALIDATOR_HOTKEY,
            MINER_PUB_B64,
            VALIDATOR_PUB_B64,
        )
    }

    fn request_object() -> Value {
        json!({"hotkey": MINER_HOTKEY, "request_type": "challenge", "schema_version": 1, "timestamp": 1700000000.0})
    }

    fn response_object() -> Value {
        json!({"task_type": "no_task", "task_data": null, "timestamp": 1700000001.0, "schema_version": 1})
    }

    fn request_package() -> String {
        format!(
            "{{\"ver\": \"v1\", \"session_id\": \"{SID}\", \"seq\": 1, \"ciphertext\": \"{REQUEST_CT}\", \
             \"sender\": \"{MINER_HOTKEY}\", \"recipient\": \"{VALIDATOR_HOTKEY}\", \"synapse_type\": \"TASK_V1\"}}"
        )
    }

    #[test]
    fn vector_public_keys() {
        let miner = StaticSecret::from([0x11; 32]);
        let validator = StaticSecret::from([0x22; 32]);
        assert_eq!(BASE64.encode(PublicKey::from(&miner).as_bytes()), MINER_PUB_B64);
        assert_eq!(BASE64.encode(PublicKey::from(&validator).as_bytes()), VALIDATOR_PUB_B64);
    }

    #[test]
    fn vector_shared_secret_both_sides() {
        let miner = StaticSecret::from([0x11; 32]);
        let validator = StaticSecret::from([0x22; 32]);
        let a = miner.diffie_hellman(&PublicKey::from(&validator));
        let b = validator.diffie_hellman(&PublicKey::from(&miner));
        assert_eq!(hex::encode(a.as_bytes()), SHARED);
        assert_eq!(hex::encode(b.as_bytes()), SHARED);
    }

    #[test]
    fn vector_session_keys() {
        let keys = vector_keys();
        assert_eq!(hex::encode(keys.k_cs), K_CS);
        assert_eq!(hex::encode(keys.k_sc), K_SC);
    }

    #[test]
    fn vector_hkdf_info_layout() {
        let mut salt = [0u8; 32];
        salt[..16].copy_from_slice(&client_nonce());
        salt[16..].copy_from_slice(&server_nonce());
        let info =
            hkdf_info(LABEL_CLIENT_TO_SERVER, MINER_HOTKEY, VALIDATOR_HOTKEY, MINER_PUB_B64, VALIDATOR_PUB_B64, &salt);
        let mut expected = Vec::new();
        expected.extend_from_slice(b"session_key_client_to_server|");
        expected.extend_from_slice(MINER_HOTKEY.as_bytes());
        expected.push(b'|');
        expected.extend_from_slice(VALIDATOR_HOTKEY.as_bytes());
        expected.push(b'|');
        expected.extend_from_slice(MINER_PUB_B64.as_bytes());
        expected.push(b'|');
        expected.extend_from_slice(VALIDATOR_PUB_B64.as_bytes());
        expected.push(b'|');
        expected.extend((0u8..32).collect::<Vec<_>>());
        expected.extend_from_slice(b"|HKDF-SHA256_AES-256-GCM_X25519");
        assert_eq!(info, expected);
    }

    #[test]
    fn vector_iv_aad_plaintext() {
        assert_eq!(hex::encode(iv(SID, 1)), "666ff6cc0000000000000001");
        assert_eq!(
            aad(MINER_HOTKEY, VALIDATOR_HOTKEY, "TASK_V1", SID, 1),
            "leap-comm|5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY|5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty\
             |TASK_V1|session_11111111-2222-3333-4444-555555555555|seq_1"
        );
        assert_eq!(pyjson::dumps_plaintext(&request_object()).as_bytes(), REQUEST_PLAINTEXT.as_bytes());
    }

    #[test]
    fn vector_request_ciphertext_and_package() {
        let keys = vector_keys();
        let ct =
            seal_bytes(&keys.k_cs, MINER_HOTKEY, VALIDATOR_HOTKEY, "TASK_V1", SID, 1, REQUEST_PLAINTEXT.as_bytes())
                .unwrap();
        assert_eq!(BASE64.encode(ct), REQUEST_CT);
        let package = seal(&keys.k_cs, MINER_HOTKEY, VALIDATOR_HOTKEY, "TASK_V1", SID, 1, &request_object()).unwrap();
        assert_eq!(package, request_package());
    }

    #[test]
    fn vector_request_opens_on_validator_side() {
        let keys = vector_keys();
        let opened = open(&keys.k_cs, MINER_HOTKEY, VALIDATOR_HOTKEY, "TASK_V1", &request_package()).unwrap();
        assert_eq!(opened, Opened { value: request_object(), session_id: SID.to_owned(), seq: 1 });
    }

    #[test]
    fn vector_response_ciphertext() {
        let keys = vector_keys();
        let package = seal(&keys.k_sc, VALIDATOR_HOTKEY, MINER_HOTKEY, "TASK_V1", SID, 1, &response_object()).unwrap();
        let expected = format!(
            "{{\"ver\": \"v1\", \"session_id\": \"{SID}\", \"seq\": 1, \"ciphertext\": \"{RESPONSE_CT}\", \
             \"sender\": \"{VALIDATOR_HOTKEY}\", \"recipient\": \"{MINER_HOTKEY}\", \"synapse_type\": \"TASK_V1\"}}"
        );
        assert_eq!(package, expected);
        let opened = open(&keys.k_sc, VALIDATOR_HOTKEY, MINER_HOTKEY, "TASK_V1", &package).unwrap();
        assert_eq!(opened.value, response_object());
    }

    #[test]
    fn open_checks_fields_in_order() {
        let keys = vector_keys();
        let good = request_package();
        let check = |package: &str, sender: &str, recipient: &str, kind: &str| {
            open(&keys.k_cs, sender, recipient, kind, package).unwrap_err()
        };
        let v = |package: &str| check(package, MINER_HOTKEY, VALIDATOR_HOTKEY, "TASK_V1");

        assert!(matches!(v("not json"), OpenError::PackageJson(_)));
        assert_eq!(v("[1]"), OpenError::PackageNotObject);
        assert_eq!(v(&good.replace("\"v1\"", "\"v2\"")), OpenError::UnsupportedVersion { got: "v2".into() });
        assert_eq!(v(&good.replace("\"ver\": \"v1\", ", "")), OpenError::UnsupportedVersion { got: "None".into() });
        assert_eq!(v(&good.replace("\"v1\"", "1")), OpenError::UnsupportedVersion { got: "1".into() });
        // Version is checked before anything else, even with fields missing.
        assert_eq!(v("{\"ver\": null}"), OpenError::UnsupportedVersion { got: "None".into() });
        assert_eq!(v("{\"ver\": \"v1\"}"), OpenError::MissingField("session_id"));
        assert_eq!(v(&good.replace("\"seq\": 1, ", "")), OpenError::MissingField("seq"));
        assert_eq!(
            v(&good.replace(&format!("\"ciphertext\": \"{REQUEST_CT}\", "), "")),
            OpenError::MissingField("ciphertext")
        );
        assert_eq!(v(&good.replace(REQUEST_CT, "!!!!")), OpenError::BadCiphertextEncoding);
        assert_eq!(v(&good.replace(REQUEST_CT, &REQUEST_CT[..REQUEST_CT.len() - 1])), OpenError::BadCiphertextEncoding);
        assert_eq!(v(&good.replace(&format!("\"{REQUEST_CT}\""), "5")), OpenError::BadCiphertextEncoding);
        assert_eq!(v(&good.replace(", \"synapse_type\": \"TASK_V1\"", "")), OpenError::MissingField("synapse_type"));
        // Wrong sender, recipient, type.
        assert!(matches!(
            check(&good, VALIDATOR_HOTKEY, VALIDATOR_HOTKEY, "TASK_V1"),
            OpenError::SenderRecipientMismatch { .. }
        ));
        assert!(matches!(
            check(&good, MINER_HOTKEY, MINER_HOTKEY, "TASK_V1"),
            OpenError::SenderRecipientMismatch { .. }
        ));
        assert_eq!(
            check(&good, MINER_HOTKEY, VALIDATOR_HOTKEY, "HEARTBEAT_V1"),
            OpenError::ProtocolTypeMismatch { got: "TASK_V1".into(), expected: "HEARTBEAT_V1".into() }
        );
        // Bad seq values.
        for bad in ["-1", "1.0", "18446744073709551616", "\"1\"", "true", "null"] {
            assert!(
                matches!(v(&good.replace("\"seq\": 1", &format!("\"seq\": {bad}"))), OpenError::InvalidSeq(_)),
                "{bad}"
            );
        }
        assert_eq!(v(&good.replace(&format!("\"{SID}\""), "7")), OpenError::InvalidSessionId);
        // Fields covered by IV/AAD: a different seq or session id breaks the tag.
        assert_eq!(v(&good.replace("\"seq\": 1", "\"seq\": 2")), OpenError::Authentication);
        assert_eq!(v(&good.replace(SID, "11111111-2222-3333-4444-555555555556")), OpenError::Authentication);
        // Tampered ciphertext and tag.
        let mut raw = BASE64.decode(REQUEST_CT).unwrap();
        raw[0] ^= 1;
        assert_eq!(v(&good.replace(REQUEST_CT, &BASE64.encode(&raw))), OpenError::Authentication);
        raw[0] ^= 1;
        let last = raw.len() - 1;
        raw[last] ^= 0x80;
        assert_eq!(v(&good.replace(REQUEST_CT, &BASE64.encode(&raw))), OpenError::Authentication);
        // Wrong key.
        assert_eq!(
            open(&keys.k_sc, MINER_HOTKEY, VALIDATOR_HOTKEY, "TASK_V1", &good).unwrap_err(),
            OpenError::Authentication
        );
    }

    #[test]
    fn open_tolerates_python_package_variations() {
        // Any key order, extra keys, and whitespace are fine for Python's json.loads.
        let keys = vector_keys();
        let package = format!(
            "{{ \"synapse_type\":\"TASK_V1\",\"recipient\":\"{VALIDATOR_HOTKEY}\",\"sender\":\"{MINER_HOTKEY}\",\
             \"ciphertext\":\"{REQUEST_CT}\",\"seq\":1,\"session_id\":\"{SID}\",\"ver\":\"v1\",\"extra\":[NaN] }}\n"
        );
        let opened = open(&keys.k_cs, MINER_HOTKEY, VALIDATOR_HOTKEY, "TASK_V1", &package).unwrap();
        assert_eq!(opened.value, request_object());
    }

    #[test]
    fn open_rejects_bad_plaintexts() {
        let keys = vector_keys();
        let seal_raw = |plaintext: &[u8]| {
            let ct = seal_bytes(&keys.k_cs, MINER_HOTKEY, VALIDATOR_HOTKEY, "TASK_V1", SID, 1, plaintext).unwrap();
            package_json(SID, 1, &BASE64.encode(ct), MINER_HOTKEY, VALIDATOR_HOTKEY, "TASK_V1")
        };
        let v = |package: String| open(&keys.k_cs, MINER_HOTKEY, VALIDATOR_HOTKEY, "TASK_V1", &package);
        assert_eq!(v(seal_raw(b"\xff\xfe")).unwrap_err(), OpenError::PlaintextUtf8);
        assert!(matches!(v(seal_raw(b"{\"a\": ")).unwrap_err(), OpenError::PlaintextJson(_)));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(v(seal_raw(deep.as_bytes())).unwrap_err(), OpenError::PlaintextJson(_)));
        // Python accepts NaN/Infinity tokens; we decode them as null.
        let opened = v(seal_raw(b"{\"cpu\": NaN, \"t\": Infinity, \"u\": -Infinity, \"ok\": 1.5}")).unwrap();
        assert_eq!(opened.value, json!({"cpu": null, "t": null, "u": null, "ok": 1.5}));
    }

    #[test]
    fn seal_open_round_trip_with_non_ascii_and_extremes() {
        let keys = vector_keys();
        let value = json!({"name": "GPU «Ω» 😀", "list": [[1, 2], [3.5, -0.0]], "big": u64::MAX, "neg": i64::MIN,
                           "f": [1e16, 1.5e-07, 0.1], "nested": {"b": {"a": null}}});
        for seq in [0, 1, u64::MAX] {
            let package = seal(&keys.k_sc, VALIDATOR_HOTKEY, MINER_HOTKEY, "HEARTBEAT_V1", SID, seq, &value).unwrap();
            let opened = open(&keys.k_sc, VALIDATOR_HOTKEY, MINER_HOTKEY, "HEARTBEAT_V1", &package).unwrap();
            assert_eq!(opened.value, value);
            assert_eq!(opened.seq, seq);
        }
    }
}
