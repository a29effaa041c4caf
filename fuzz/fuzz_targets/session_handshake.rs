//! The SessionInit handshake (`SessionStore::handshake`), fed with what a miner controls.
//!
//! Input: the first line is the peer hotkey (the dendrite hotkey header), the rest is the synapse `request`
//! string (both lossy UTF-8). Each input gets a fresh store, so runs are independent of each other.
//!
//! Checks: no panic; a refusal is a JSON error answer with code 4018 and leaves the store empty; an accepted
//! handshake answers the four fields the miner reads (a 32-byte key, a UUIDv4 session id, a 16-byte nonce,
//! `expires_at` = now + 6 h), holds exactly one session for that hotkey, and that session expires on time.

#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use validator_node::axon::session::{self, pyjson};
use validator_node_fuzz::{NOW, check_handshake_error, new_store, split_line};

fuzz_target!(|data: &[u8]| {
    let (peer, request) = split_line(data);
    let peer = String::from_utf8_lossy(peer);
    let request = String::from_utf8_lossy(request);
    let store = new_store();
    match store.handshake(&peer, &request, NOW) {
        Ok(answer) => {
            let value = match pyjson::loads(&answer) {
                Ok(v) => v,
                Err(e) => panic!("handshake answer is not JSON ({e}): {answer:?}"),
            };
            let text = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_else(|| panic!("no {k}: {answer}"));
            assert_eq!(BASE64.decode(text("validator_eph_pub32")).map(|b| b.len()), Ok(32), "{answer}");
            assert_eq!(BASE64.decode(text("server_nonce16")).map(|b| b.len()), Ok(16), "{answer}");
            let id = text("session_id");
            assert!(id.len() == 36 && id.as_bytes()[14] == b'4', "not a UUIDv4: {answer}");
            let ttl = session::SESSION_TTL_SECONDS as f64;
            assert_eq!(value.get("expires_at").and_then(Value::as_f64), Some(NOW + ttl), "{answer}");
            assert_eq!(store.len(), 1);
            assert_eq!(store.sessions_of(&peer), 1);
            assert_eq!(store.expire(NOW + ttl), 0, "expired early");
            assert_eq!(store.expire(NOW + ttl + 1.0), 1, "did not expire");
            assert!(store.is_empty());
        }
        Err(e) => {
            check_handshake_error(&e);
            assert!(store.is_empty(), "a refused handshake left a session");
            assert_eq!(store.tracked_handshake_peers(), 0, "a refused handshake was counted");
        }
    }
});
