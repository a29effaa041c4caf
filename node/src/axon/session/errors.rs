//! The plaintext error answers of byteleap-protocol.md §2.9 and the typed errors of the session layer.
//!
//! Every refusal goes back to the miner as HTTP 200 with `response` = `{"error": "<text>", "error_code": <int>}`
//! (Python `json.dumps`, ASCII-escaped). The code is what matters: on 4011, 4012, 4013 or 4020 the miner drops
//! its session, re-handshakes and retries the request exactly once; any other code is a plain failure (and five
//! in a row blacklist this validator on that miner for ten minutes, §2.11). The texts follow the original so that
//! miner logs read the same.
//!
//! The original derives the code from the error *text* ([`derive_error_code`]). We attach the code to the error
//! variant instead and check in tests that the derivation gives the same code for our texts; the two only differ
//! when a miner sends a session id containing `:`, where the original's derivation produces arbitrary codes and
//! we keep 4012.

use serde_json::Value;

use super::crypto::OpenError;
use super::pyjson;
use super::replay::SeqRejection;

/// `ErrorCodes` of `shared/protocols.py` used by the session layer (§2.10.5).
pub mod code {
    /// NETWORK_ERROR: per-hotkey request rate limit hit (§2.3).
    pub const NETWORK_ERROR: i64 = 1003;
    /// SESSION_REQUIRED: no processor registered for the protocol type (§2.9).
    pub const SESSION_REQUIRED: i64 = 4010;
    /// SESSION_UNKNOWN: malformed package, failed decryption, failed response encryption (§2.9). Miner retries.
    pub const SESSION_UNKNOWN: i64 = 4011;
    /// SESSION_EXPIRED: session id unknown or expired (§2.9). Miner retries.
    pub const SESSION_EXPIRED: i64 = 4012;
    /// REHANDSHAKE_REQUIRED: never sent by the original validator; the miner retries on it (§2.9).
    pub const REHANDSHAKE_REQUIRED: i64 = 4013;
    /// BAD_AAD: empty request, or decrypted payload failing the request model (§2.9).
    pub const BAD_AAD: i64 = 4015;
    /// HANDSHAKE_FAILED: any SessionInit failure (§2.4).
    pub const HANDSHAKE_FAILED: i64 = 4018;
    /// SEQUENCE_ERROR: replay or sequence outside the window (§2.7). Miner retries.
    pub const SEQUENCE_ERROR: i64 = 4020;
}

/// The exact replay/window error text of §2.7 (`SEQUENCE_ERROR:{code}:...`).
pub const SEQUENCE_ERROR_TEXT: &str = "SEQUENCE_ERROR:4020:Replay detected or sequence out of window";

/// `json.dumps({"error": text, "error_code": code})` byte for byte (default `ensure_ascii=True`).
pub fn error_json(text: &str, code: i64) -> String {
    let mut out = String::with_capacity(text.len() + 40);
    out.push_str("{\"error\": ");
    pyjson::write_str(&mut out, text, true);
    out.push_str(", \"error_code\": ");
    out.push_str(&code.to_string());
    out.push('}');
    out
}

/// Per-hotkey request rate limit hit (§2.3): `{"error": "rate_limited", "error_code": 1003}`.
pub fn rate_limited() -> String {
    error_json("rate_limited", code::NETWORK_ERROR)
}

/// No processor registered for `protocol_type` (§2.9): code 4010.
pub fn no_processor(protocol_type: &str) -> String {
    error_json(&format!("No processor for {protocol_type}"), code::SESSION_REQUIRED)
}

/// Empty `request` field (§2.9): code 4015 (the original raises inside its decryption block).
pub fn empty_request() -> String {
    SessionError::EmptyRequest.response_json()
}

/// The decrypted payload does not fit the request model of its synapse (§2.9): code 4015.
pub fn request_model_invalid(detail: &str) -> String {
    error_json(&format!("Session decryption failed: {detail}"), code::BAD_AAD)
}

/// Encrypting the response failed (§2.9): code 4011.
pub fn response_encryption_failed(detail: &str) -> String {
    error_json(&format!("Response encryption failed: {detail}"), code::SESSION_UNKNOWN)
}

/// Handshake failure with the given text (§2.4): code 4018.
pub fn handshake_failed(text: &str) -> String {
    error_json(text, code::HANDSHAKE_FAILED)
}

/// The original's rule for turning a session error text into a code (`communication.py`, §2.9):
/// with two or more `:`, the second `:`-separated field parsed as a Python `int` is the code (4011 if it does not
/// parse); otherwise 4012 if the text contains "not found" or "expired", else 4011.
///
/// Python's `int()` also accepts non-ASCII digits and unbounded values; here only ASCII digits (with `_`
/// separators, a sign and surrounding whitespace) in `i64` range are taken, anything else gives 4011.
pub fn derive_error_code(text: &str) -> i64 {
    if text.matches(':').count() >= 2 {
        let field = text.split(':').nth(1).unwrap_or_default();
        return parse_python_int(field).unwrap_or(code::SESSION_UNKNOWN);
    }
    let lower = text.to_lowercase();
    if lower.contains("not found") || lower.contains("expired") { code::SESSION_EXPIRED } else { code::SESSION_UNKNOWN }
}

/// Python `int(s)` for ASCII input: optional whitespace, sign, digits with single `_` between digits.
fn parse_python_int(s: &str) -> Option<i64> {
    let s = s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c));
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let mut value: i64 = 0;
    for c in digits.chars().filter(|c| *c != '_') {
        let d = c.to_digit(10)? as i64;
        value = value.checked_mul(10)?.checked_add(if negative { -d } else { d })?;
    }
    Some(value)
}

/// Why an encrypted request could not be turned into a payload, or a response into a package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The synapse's `request` is empty.
    #[error("Session decryption failed: Empty synapse request data")]
    EmptyRequest,
    /// The package is larger than [`super::MAX_PACKAGE_BYTES`].
    #[error("Malformed encrypted package: larger than {limit} bytes")]
    PackageTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The package is not JSON (Python: `json.JSONDecodeError`).
    #[error("Malformed encrypted package: {0}")]
    MalformedPackage(pyjson::JsonError),
    /// The package is JSON but not an object, or its `session_id` is a list/object.
    #[error("Decrypt error: encrypted package is not an object with a usable session_id")]
    UnusablePackage,
    /// `session_id` or `seq` is absent.
    #[error("Missing field in encrypted package: '{0}'")]
    MissingField(&'static str),
    /// No session with this id.
    #[error("Session not found or expired: {session_id}")]
    UnknownSession {
        /// The id as Python's `str()` renders it.
        session_id: String,
    },
    /// The session existed but its 6 h lifetime is over (it is dropped).
    #[error("Session not found or expired: {session_id}")]
    ExpiredSession {
        /// The session id.
        session_id: String,
    },
    /// The session belongs to another hotkey than the one making the request (our fix for §8.1 item 2). Looks
    /// exactly like an unknown session to the requester.
    #[error("Session not found or expired: {session_id}")]
    ForeignSession {
        /// The session id.
        session_id: String,
    },
    /// Version, field, sender/recipient, type or authentication check failed.
    #[error("Decryption failed: {0}")]
    Decrypt(#[from] OpenError),
    /// The seq failed the replay window (§2.7); the session stays valid.
    #[error("SEQUENCE_ERROR:4020:Replay detected or sequence out of window")]
    Replay {
        /// The refused seq.
        seq: u64,
        /// Which rule refused it.
        reason: SeqRejection,
    },
    /// The outbound counter reached 2^64 − 1 (the session is dropped; §2.8 MAX_SEQ).
    #[error("Response encryption failed: Session sequence overflow - session invalidated, re-handshake required")]
    SequenceExhausted,
    /// AES-GCM refused to encrypt the response (a payload beyond 64 GiB).
    #[error("Response encryption failed: Encryption failed: plaintext too long")]
    ResponseTooLarge,
}

impl SessionError {
    /// The `error_code` the original sends for this situation (§2.9).
    pub fn code(&self) -> i64 {
        match self {
            SessionError::EmptyRequest => code::BAD_AAD,
            SessionError::UnknownSession { .. }
            | SessionError::ExpiredSession { .. }
            | SessionError::ForeignSession { .. } => code::SESSION_EXPIRED,
            SessionError::Replay { .. } => code::SEQUENCE_ERROR,
            SessionError::PackageTooLarge { .. }
            | SessionError::MalformedPackage(_)
            | SessionError::UnusablePackage
            | SessionError::MissingField(_)
            | SessionError::Decrypt(_)
            | SessionError::SequenceExhausted
            | SessionError::ResponseTooLarge => code::SESSION_UNKNOWN,
        }
    }

    /// The plaintext `response` string for this error.
    pub fn response_json(&self) -> String {
        error_json(&self.to_string(), self.code())
    }

    /// Python's `str()` of a `session_id` field, for the "not found" text.
    pub(crate) fn unknown(session_id: &Value) -> SessionError {
        SessionError::UnknownSession { session_id: pyjson::py_str(session_id) }
    }
}

/// Why a SessionInit was refused. Every variant is answered with code 4018 (§2.4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The synapse's `request` is empty.
    #[error("Empty session init request")]
    EmptyRequest,
    /// The request is not a valid `SessionInitRequest` (JSON, field types, base64, lengths) or the peer hotkey
    /// is unusable.
    #[error("Invalid session init request: {0}")]
    InvalidRequest(String),
    /// More than the allowed handshakes in the window for this hotkey (§2.8: 5 per 60 s).
    #[error("Handshake rate limit exceeded: {attempts}/{limit} in {window_secs}s")]
    RateLimited {
        /// Handshakes counted in the window.
        attempts: usize,
        /// The limit.
        limit: usize,
        /// The window length in seconds.
        window_secs: u64,
    },
    /// The miner's public key is a low-order point (all-zero shared secret); OpenSSL refuses it in the original.
    #[error("Handshake failed: Error computing shared key.")]
    KeyAgreement,
    /// The operating system's random generator failed.
    #[error("Handshake failed: random generator unavailable: {0}")]
    Randomness(String),
}

impl HandshakeError {
    /// Always HANDSHAKE_FAILED (4018).
    pub fn code(&self) -> i64 {
        code::HANDSHAKE_FAILED
    }

    /// The plaintext `response` string for this error.
    pub fn response_json(&self) -> String {
        handshake_failed(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fixed_error_strings() {
        assert_eq!(rate_limited(), r#"{"error": "rate_limited", "error_code": 1003}"#);
        assert_eq!(no_processor("TASK_V1"), r#"{"error": "No processor for TASK_V1", "error_code": 4010}"#);
        assert_eq!(
            empty_request(),
            r#"{"error": "Session decryption failed: Empty synapse request data", "error_code": 4015}"#
        );
        assert_eq!(
            SessionError::Replay { seq: 5, reason: SeqRejection::Replay }.response_json(),
            r#"{"error": "SEQUENCE_ERROR:4020:Replay detected or sequence out of window", "error_code": 4020}"#
        );
        assert_eq!(
            SessionError::unknown(&json!("11111111-2222-3333-4444-555555555555")).response_json(),
            r#"{"error": "Session not found or expired: 11111111-2222-3333-4444-555555555555", "error_code": 4012}"#
        );
        assert_eq!(
            SessionError::unknown(&json!(null)).response_json(),
            r#"{"error": "Session not found or expired: None", "error_code": 4012}"#
        );
        assert_eq!(
            HandshakeError::RateLimited { attempts: 5, limit: 5, window_secs: 60 }.response_json(),
            r#"{"error": "Handshake rate limit exceeded: 5/5 in 60s", "error_code": 4018}"#
        );
        assert_eq!(
            request_model_invalid("bad status"),
            r#"{"error": "Session decryption failed: bad status", "error_code": 4015}"#
        );
        assert_eq!(
            SessionError::SequenceExhausted.response_json(),
            "{\"error\": \"Response encryption failed: Session sequence overflow - session invalidated, \
             re-handshake required\", \"error_code\": 4011}"
        );
        // ASCII escaping as Python's default json.dumps.
        assert_eq!(handshake_failed("é\"\n"), r#"{"error": "\u00e9\"\n", "error_code": 4018}"#);
        assert_eq!(error_json("x", -1), r#"{"error": "x", "error_code": -1}"#);
    }

    #[test]
    fn derive_error_code_follows_original() {
        assert_eq!(derive_error_code(SEQUENCE_ERROR_TEXT), 4020);
        assert_eq!(derive_error_code("Session not found or expired: 1234"), 4012);
        assert_eq!(derive_error_code("Session EXPIRED"), 4012);
        assert_eq!(derive_error_code("Missing field in encrypted package: 'seq'"), 4011);
        assert_eq!(derive_error_code("Decryption failed: Decryption failed: "), 4011);
        assert_eq!(derive_error_code("a: 17 :b"), 17);
        assert_eq!(derive_error_code("a:-1_0:b"), -10);
        assert_eq!(derive_error_code("a:1__0:b"), 4011);
        assert_eq!(derive_error_code("a::b"), 4011);
        assert_eq!(derive_error_code("a:99999999999999999999:b"), 4011);
        // The original's quirk with a miner-chosen session id containing colons.
        assert_eq!(derive_error_code("Session not found or expired: x:5"), 4011);
        assert_eq!(derive_error_code("Session not found or expired: 5:x"), 5);
        assert_eq!(derive_error_code("plain failure"), 4011);
    }

    /// For every error we produce (with realistic ids), the original's text-based rule yields our code.
    #[test]
    fn our_codes_agree_with_the_original_rule() {
        use super::super::pyjson::loads;
        let json_error = loads("{").unwrap_err();
        let errors = [
            SessionError::PackageTooLarge { limit: 8 },
            SessionError::MalformedPackage(json_error.clone()),
            SessionError::UnusablePackage,
            SessionError::MissingField("session_id"),
            SessionError::MissingField("seq"),
            SessionError::UnknownSession { session_id: "0b6f3f7e-4d7c-4c59-9d7e-6a8f1c1b2a3d".into() },
            SessionError::ExpiredSession { session_id: "0b6f3f7e-4d7c-4c59-9d7e-6a8f1c1b2a3d".into() },
            SessionError::ForeignSession { session_id: "0b6f3f7e-4d7c-4c59-9d7e-6a8f1c1b2a3d".into() },
            SessionError::Decrypt(OpenError::PackageJson(json_error.clone())),
            SessionError::Decrypt(OpenError::PackageNotObject),
            SessionError::Decrypt(OpenError::UnsupportedVersion { got: "v2".into() }),
            SessionError::Decrypt(OpenError::MissingField("ciphertext")),
            SessionError::Decrypt(OpenError::BadCiphertextEncoding),
            SessionError::Decrypt(OpenError::SenderRecipientMismatch {
                got_sender: "a".into(),
                got_recipient: "b".into(),
                expected_sender: "c".into(),
                expected_recipient: "d".into(),
            }),
            SessionError::Decrypt(OpenError::ProtocolTypeMismatch { got: "A".into(), expected: "B".into() }),
            SessionError::Decrypt(OpenError::InvalidSeq("-1".into())),
            SessionError::Decrypt(OpenError::InvalidSessionId),
            SessionError::Decrypt(OpenError::Authentication),
            SessionError::Decrypt(OpenError::PlaintextUtf8),
            SessionError::Decrypt(OpenError::PlaintextJson(json_error)),
            SessionError::Replay { seq: 1, reason: SeqRejection::TooOld },
            SessionError::SequenceExhausted,
            SessionError::ResponseTooLarge,
        ];
        for e in errors {
            assert_eq!(derive_error_code(&e.to_string()), e.code(), "{e}");
        }
        // The empty request takes a different path in the original (4015 set directly).
        assert_eq!(SessionError::EmptyRequest.code(), code::BAD_AAD);
    }
}
