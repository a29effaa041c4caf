//! Store behaviour end to end, driven by the miner model of `sim::session` (written apart from the store).

use serde_json::{Value, json};

use super::super::code;
use super::super::protocol_type::{HEARTBEAT, TASK};
use super::super::replay::SeqRejection;
use super::*;
use crate::sim::session::MinerSession as MinerSim;
use crate::sim::session::Outcome as MinerOutcome;

const VALIDATOR: &str = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty";
const MINER_A: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
const MINER_B: &str = "5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y";
const T0: f64 = 1_700_000_000.25;

fn store() -> SessionStore {
    SessionStore::new(VALIDATOR, SessionStoreConfig::default())
}

/// A miner with an established session.
fn connected(store: &SessionStore, hotkey: &str, seed: u8, now: f64) -> MinerSim {
    let mut miner = MinerSim::seeded(hotkey, VALIDATOR, seed);
    let response = store.handshake(hotkey, &miner.handshake_request(), now).unwrap();
    miner.complete_handshake(&response).unwrap();
    miner
}

/// One text field of a handshake request the miner model wrote.
fn request_field(request: &str, key: &str) -> String {
    let value: Value = serde_json::from_str(request).unwrap();
    value[key].as_str().unwrap().to_owned()
}

fn task_poll() -> Value {
    json!({"hotkey": MINER_A, "request_type": "challenge", "schema_version": 1, "timestamp": 1700000000.0})
}

fn assert_code(result: Result<(SessionHandle, Value), SessionError>, code: i64) -> SessionError {
    let err = result.expect_err("request should be refused");
    assert_eq!(err.code(), code, "{err}");
    err
}

#[test]
fn round_trip_through_the_miner_model() {
    let store = store();
    let mut miner = connected(&store, MINER_A, 0x11, T0);
    assert_eq!(miner.session().unwrap().expires_at, T0 + 21_600.0);
    for i in 1..=5u64 {
        let request = json!({"n": i, "é": [1.5, null, {"z": 1e16, "a": -0.0}]});
        let package = miner.seal(TASK, &request).unwrap();
        let (handle, value) = store.decrypt_request(MINER_A, TASK, &package, T0 + i as f64).unwrap();
        assert_eq!(value, request);
        assert_eq!(handle.peer_hotkey(), MINER_A);
        assert_eq!(handle.protocol_type(), TASK);
        assert_eq!(store.last_seen(handle.session_id()), Some(T0 + i as f64));
        let response =
            json!({"task_type": "no_task", "task_data": null, "timestamp": 1700000001.0, "schema_version": 1});
        let package = store.encrypt_response(&handle, &response).unwrap();
        // The validator's outbound seq starts at 1 and increments per response.
        assert!(package.contains(&format!("\"seq\": {i}, ")), "{package}");
        assert_eq!(miner.open(TASK, &package), MinerOutcome::Payload(response));
    }
}

#[test]
fn handshake_response_has_the_original_shape() {
    let store = store();
    let mut miner = MinerSim::seeded(MINER_A, VALIDATOR, 0x11);
    let response = store.handshake(MINER_A, &miner.handshake_request(), T0).unwrap();
    // {"validator_eph_pub32": "<44>", "session_id": "<uuid4>", "server_nonce16": "<24>", "expires_at": <repr>}
    let rest = response.strip_prefix("{\"validator_eph_pub32\": \"").unwrap();
    let (pub_b64, rest) = rest.split_at(44);
    assert!(pub_b64.ends_with('=') && !pub_b64.ends_with("=="));
    let rest = rest.strip_prefix("\", \"session_id\": \"").unwrap();
    let (sid, rest) = rest.split_at(36);
    let rest = rest.strip_prefix("\", \"server_nonce16\": \"").unwrap();
    let (nonce_b64, rest) = rest.split_at(24);
    assert!(nonce_b64.ends_with("=="));
    assert_eq!(rest, "\", \"expires_at\": 1700021600.25}");
    // UUIDv4: 8-4-4-4-12 lower-case hex, version 4, variant 10xx.
    let groups: Vec<&str> = sid.split('-').collect();
    assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
    assert!(sid.chars().all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
    assert!(groups[2].starts_with('4'));
    assert!(matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
    // Integral times keep Python's ".0".
    let response = store
        .handshake(MINER_A, &MinerSim::seeded(MINER_A, VALIDATOR, 0x12).handshake_request(), 1_700_000_000.0)
        .unwrap();
    assert!(response.ends_with("\"expires_at\": 1700021600.0}"), "{response}");
}

#[test]
fn handshake_keys_match_between_store_and_miner_for_many_sessions() {
    let store = store();
    for seed in 1..=20u8 {
        let peer = format!("5Peer{seed:02}");
        let mut miner = connected(&store, &peer, seed, T0);
        let package = miner.seal(HEARTBEAT, &json!({"seed": seed})).unwrap();
        let (handle, value) = store.decrypt_request(&peer, HEARTBEAT, &package, T0).unwrap();
        assert_eq!(value, json!({"seed": seed}));
        let reply = store.encrypt_response(&handle, &json!({"ok": true})).unwrap();
        assert_eq!(miner.open(HEARTBEAT, &reply), MinerOutcome::Payload(json!({"ok": true})));
    }
    assert_eq!(store.len(), 20);
}

#[test]
fn invalid_handshakes_are_refused_and_not_counted() {
    let store = store();
    let mut good = MinerSim::seeded(MINER_A, VALIDATOR, 0x11);
    let nonce = "AAECAwQFBgcICQoLDA0ODw==";
    let with = |key: &str, nonce: &str| format!("{{\"miner_eph_pub32\": \"{key}\", \"client_nonce16\": \"{nonce}\"}}");
    let key = request_field(&good.handshake_request(), "miner_eph_pub32");
    let zero_key = format!("{}=", "A".repeat(43)); // 32 zero bytes: a low-order point
    let bad_requests = [
        String::new(),
        "not json".to_owned(),
        "[1, 2]".to_owned(),
        "{}".to_owned(),
        format!("{{\"miner_eph_pub32\": 5, \"client_nonce16\": \"{nonce}\"}}"),
        format!("{{\"miner_eph_pub32\": null, \"client_nonce16\": \"{nonce}\"}}"),
        format!("{{\"miner_eph_pub32\": \"{key}\"}}"),
        with(&key[..43], nonce),                                  // missing padding
        with(&key.replace('=', "A"), nonce),                      // 33 bytes
        with(&format!("{}==", &key[..42]), nonce),                // 31 bytes
        with(&format!("{key}AAAA"), nonce),                       // 35 bytes
        with(&format!("{}\\n{}", &key[..20], &key[20..]), nonce), // whitespace inside
        with(&key.replace('+', "-").replace('/', "_"), nonce),    // url-safe alphabet
        with(&key, "AAECAwQFBgcICQoLDA0O"),                       // 15 bytes, no padding
        with(&key, "AAECAwQFBgcICQoLDA0ODxA="),                   // 17 bytes
        with(&key, "AAECAwQFBgcICQoLDA0ODx=="),                   // non-zero trailing bits
        with(&zero_key, nonce),
        "x".repeat(MAX_HANDSHAKE_REQUEST_BYTES + 1),
        format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
    ];
    for request in &bad_requests {
        let err = store.handshake(MINER_A, request, T0).unwrap_err();
        assert_eq!(err.code(), code::HANDSHAKE_FAILED);
        assert!(err.response_json().ends_with(", \"error_code\": 4018}"));
        assert!(!matches!(err, HandshakeError::RateLimited { .. }), "{request:?}: {err}");
    }
    assert_eq!(store.handshake(MINER_A, "", T0).unwrap_err(), HandshakeError::EmptyRequest);
    assert_eq!(store.handshake(MINER_A, &with(&zero_key, nonce), T0).unwrap_err(), HandshakeError::KeyAgreement);
    assert_eq!(
        store.handshake(MINER_A, &with(&zero_key, nonce), T0).unwrap_err().response_json(),
        r#"{"error": "Handshake failed: Error computing shared key.", "error_code": 4018}"#
    );
    assert!(store.handshake("", &good.handshake_request(), T0).is_err());
    assert!(store.handshake(&"5".repeat(MAX_HOTKEY_BYTES + 1), &good.handshake_request(), T0).is_err());
    // None of the refusals counted: five real handshakes still go through.
    assert_eq!(store.tracked_handshake_peers(), 0);
    assert!(store.is_empty());
    for seed in 0..5 {
        store.handshake(MINER_A, &MinerSim::seeded(MINER_A, VALIDATOR, seed).handshake_request(), T0).unwrap();
    }
    assert_eq!(store.sessions_of(MINER_A), 3);
}

#[test]
fn handshake_accepts_python_variations() {
    let store = store();
    let mut miner = MinerSim::seeded(MINER_A, VALIDATOR, 0x11);
    let standard = miner.handshake_request();
    // Surrounding whitespace is stripped (pydantic str_strip_whitespace) before decoding and before the key is
    // hashed into the HKDF info; extra keys, key order and created_at do not matter.
    let request = format!(
        "{{\"created_at\": \"soon\", \"extra\": [NaN], \"client_nonce16\": \" {} \", \"miner_eph_pub32\": \"\\t{}\\n\"}}",
        request_field(&standard, "client_nonce16"),
        request_field(&standard, "miner_eph_pub32")
    );
    let response = store.handshake(MINER_A, &request, T0).unwrap();
    miner.complete_handshake(&response).unwrap();
    let package = miner.seal(TASK, &task_poll()).unwrap();
    let (_, value) = store.decrypt_request(MINER_A, TASK, &package, T0).unwrap();
    assert_eq!(value, task_poll());
}

#[test]
fn sixth_handshake_in_a_minute_is_refused_without_evicting() {
    let store = store();
    let mut miners: Vec<MinerSim> = (0..3).map(|s| connected(&store, MINER_A, s, T0)).collect();
    connected(&store, MINER_A, 3, T0 + 1.0);
    connected(&store, MINER_A, 4, T0 + 2.0);
    // Handshakes 4 and 5 evicted the two oldest sessions; a refused sixth changes nothing.
    assert_eq!(store.sessions_of(MINER_A), 3);
    let err =
        store.handshake(MINER_A, &MinerSim::seeded(MINER_A, VALIDATOR, 5).handshake_request(), T0 + 59.0).unwrap_err();
    assert_eq!(err, HandshakeError::RateLimited { attempts: 5, limit: 5, window_secs: 60 });
    assert_eq!(err.response_json(), r#"{"error": "Handshake rate limit exceeded: 5/5 in 60s", "error_code": 4018}"#);
    assert_eq!(store.sessions_of(MINER_A), 3);
    let package = miners[2].seal(TASK, &task_poll()).unwrap();
    store.decrypt_request(MINER_A, TASK, &package, T0 + 59.0).unwrap();
    // Other hotkeys are not affected.
    connected(&store, MINER_B, 9, T0 + 59.0);
    // Exactly 60 s after the first three attempts they still count (the original prunes `t < now - 60`).
    assert!(store.handshake(MINER_A, &MinerSim::seeded(MINER_A, VALIDATOR, 6).handshake_request(), T0 + 60.0).is_err());
    // Just after, those three slots free up, and only those.
    for seed in 7..10 {
        connected(&store, MINER_A, seed, T0 + 60.5);
    }
    let err =
        store.handshake(MINER_A, &MinerSim::seeded(MINER_A, VALIDATOR, 10).handshake_request(), T0 + 60.6).unwrap_err();
    assert!(matches!(err, HandshakeError::RateLimited { attempts: 5, .. }));
}

#[test]
fn fourth_session_evicts_the_least_recently_used() {
    let store = store();
    let mut s1 = connected(&store, MINER_A, 1, T0);
    let mut s2 = connected(&store, MINER_A, 2, T0 + 1.0);
    let mut s3 = connected(&store, MINER_A, 3, T0 + 2.0);
    // Use s1 so that s2 becomes the least recently used.
    let p = s1.seal(TASK, &task_poll()).unwrap();
    store.decrypt_request(MINER_A, TASK, &p, T0 + 3.0).unwrap();
    let mut s4 = connected(&store, MINER_A, 4, T0 + 4.0);
    assert_eq!(store.sessions_of(MINER_A), 3);
    let sid2 = s2.session().unwrap().id.clone();
    let p = s2.seal(TASK, &task_poll()).unwrap();
    let err = assert_code(store.decrypt_request(MINER_A, TASK, &p, T0 + 5.0), code::SESSION_EXPIRED);
    assert_eq!(err.to_string(), format!("Session not found or expired: {sid2}"));
    for miner in [&mut s1, &mut s3, &mut s4] {
        let p = miner.seal(TASK, &task_poll()).unwrap();
        store.decrypt_request(MINER_A, TASK, &p, T0 + 5.0).unwrap();
    }
}

#[test]
fn sessions_are_bound_to_their_hotkey() {
    let store = store();
    let mut a = connected(&store, MINER_A, 1, T0);
    connected(&store, MINER_B, 2, T0);
    // B presents A's session with correct crypto for B's claim: it has A's keys (e.g. A colluding, or a
    // stolen session) and seals as sender B.
    let a_session = a.session().unwrap();
    let forged = crypto::seal(&a_session.keys.k_cs, MINER_B, VALIDATOR, TASK, &a_session.id, 1, &task_poll()).unwrap();
    let err = assert_code(store.decrypt_request(MINER_B, TASK, &forged, T0), code::SESSION_EXPIRED);
    assert!(matches!(err, SessionError::ForeignSession { .. }));
    assert_eq!(err.to_string(), format!("Session not found or expired: {}", a_session.id));
    // A's session is untouched and its window did not move.
    let p = a.seal(TASK, &task_poll()).unwrap();
    store.decrypt_request(MINER_A, TASK, &p, T0).unwrap();
    assert_eq!(store.sessions_of(MINER_A), 1);
}

#[test]
fn unknown_and_expired_sessions_get_4012() {
    let store = store();
    let mut miner = connected(&store, MINER_A, 1, T0);
    let package = miner.seal(TASK, &task_poll()).unwrap();
    let other = SessionStore::new(VALIDATOR, SessionStoreConfig::default());
    let err = assert_code(other.decrypt_request(MINER_A, TASK, &package, T0), code::SESSION_EXPIRED);
    let sid = miner.session().unwrap().id.clone();
    assert_eq!(
        err.response_json(),
        format!("{{\"error\": \"Session not found or expired: {sid}\", \"error_code\": 4012}}")
    );
    assert_eq!(
        miner.open(TASK, &err.response_json()),
        MinerOutcome::PlainError { code: 4012, text: format!("Session not found or expired: {sid}"), retries: true }
    );
    // Valid until exactly expires_at (the original: expired when now > expires_at).
    let expires = T0 + 21_600.0;
    store.decrypt_request(MINER_A, TASK, &package, expires).unwrap();
    let package = miner.seal(TASK, &task_poll()).unwrap();
    let err = assert_code(store.decrypt_request(MINER_A, TASK, &package, expires + 0.001), code::SESSION_EXPIRED);
    assert!(matches!(err, SessionError::ExpiredSession { .. }));
    assert!(store.is_empty(), "an expired session is dropped on lookup");
}

#[test]
fn replays_and_jumps_get_4020_and_keep_the_session() {
    let store = store();
    let mut miner = connected(&store, MINER_A, 1, T0);
    let package = miner.seal(TASK, &task_poll()).unwrap();
    store.decrypt_request(MINER_A, TASK, &package, T0).unwrap();
    let err = assert_code(store.decrypt_request(MINER_A, TASK, &package, T0), code::SEQUENCE_ERROR);
    assert_eq!(err, SessionError::Replay { seq: 1, reason: SeqRejection::Replay });
    assert_eq!(
        err.response_json(),
        r#"{"error": "SEQUENCE_ERROR:4020:Replay detected or sequence out of window", "error_code": 4020}"#
    );
    assert!(matches!(
        miner.open(TASK, &err.response_json()),
        MinerOutcome::PlainError { code: 4020, retries: true, .. }
    ));
    // Jump: highest is 1, so 2050 is more than 2048 ahead.
    let jump = miner.seal_with_seq(TASK, &task_poll(), 2050).unwrap();
    let err = assert_code(store.decrypt_request(MINER_A, TASK, &jump, T0), code::SEQUENCE_ERROR);
    assert_eq!(err, SessionError::Replay { seq: 2050, reason: SeqRejection::TooFarAhead });
    // 2049 is exactly 2048 ahead: fine; then 1025 is too old.
    let p = miner.seal_with_seq(TASK, &task_poll(), 2049).unwrap();
    store.decrypt_request(MINER_A, TASK, &p, T0).unwrap();
    let p = miner.seal_with_seq(TASK, &task_poll(), 1025).unwrap();
    assert_eq!(
        store.decrypt_request(MINER_A, TASK, &p, T0).unwrap_err(),
        SessionError::Replay { seq: 1025, reason: SeqRejection::TooOld }
    );
    assert_eq!(store.len(), 1);
}

#[test]
fn package_problems_get_4011_and_do_not_move_the_window() {
    let store = store();
    let mut miner = connected(&store, MINER_A, 1, T0);
    let good = miner.seal(TASK, &task_poll()).unwrap(); // seq 1
    let session = miner.session().unwrap();
    let (sid, k_cs, k_sc) = (session.id.clone(), session.keys.k_cs, session.keys.k_sc);
    let ct_start = good.find("\"ciphertext\": \"").unwrap() + 15;
    let ct_end = good[ct_start..].find('"').unwrap() + ct_start;
    let ct = &good[ct_start..ct_end];

    let cases: Vec<(&str, String, &str)> = vec![
        ("wrong version", good.replace("\"ver\": \"v1\"", "\"ver\": \"v2\""), TASK),
        ("no version", good.replace("\"ver\": \"v1\", ", ""), TASK),
        ("wrong route", good.clone(), HEARTBEAT),
        ("wrong sender", crypto::seal(&k_cs, MINER_B, VALIDATOR, TASK, &sid, 1, &task_poll()).unwrap(), TASK),
        ("wrong recipient", crypto::seal(&k_cs, MINER_A, MINER_B, TASK, &sid, 1, &task_poll()).unwrap(), TASK),
        ("wrong key", crypto::seal(&k_sc, MINER_A, VALIDATOR, TASK, &sid, 1, &task_poll()).unwrap(), TASK),
        ("tampered", good.replace(ct, &format!("{}{}", if ct.starts_with('A') { "B" } else { "A" }, &ct[1..])), TASK),
        ("bad base64", good.replace(ct, &ct[1..]), TASK),
        ("not base64", good.replace(ct, "%%%%"), TASK),
        ("seq changed", good.replace("\"seq\": 1,", "\"seq\": 2,"), TASK),
        ("seq float", good.replace("\"seq\": 1,", "\"seq\": 1.0,"), TASK),
        ("seq negative", good.replace("\"seq\": 1,", "\"seq\": -1,"), TASK),
        ("no ciphertext", good.replace(&format!("\"ciphertext\": \"{ct}\", "), ""), TASK),
        ("no seq", good.replace("\"seq\": 1, ", ""), TASK),
        ("no session id", good.replace(&format!("\"session_id\": \"{sid}\", "), ""), TASK),
        ("list session id", good.replace(&format!("\"{sid}\""), "[1]"), TASK),
        ("not json", "{\"ver\": ".to_owned(), TASK),
        ("not an object", "[1, 2, 3]".to_owned(), TASK),
        ("string", "\"abc\"".to_owned(), TASK),
        ("whitespace", " ".to_owned(), TASK),
        ("deep", format!("{}{}", "{\"a\": ".repeat(10_000), "}".repeat(10_000)), TASK),
        ("huge", format!("{{\"x\": \"{}\"}}", "a".repeat(MAX_PACKAGE_BYTES)), TASK),
    ];
    for (what, package, route) in cases {
        let err = assert_code(store.decrypt_request(MINER_A, route, &package, T0), code::SESSION_UNKNOWN);
        let retries = miner.open(route, &err.response_json());
        assert!(matches!(retries, MinerOutcome::PlainError { code: 4011, retries: true, .. }), "{what}: {err}");
    }
    // Numeric or null session ids are just unknown sessions, printed as Python would.
    let err = store.decrypt_request(MINER_A, TASK, &good.replace(&format!("\"{sid}\""), "5"), T0).unwrap_err();
    assert_eq!(err.to_string(), "Session not found or expired: 5");
    let err = store.decrypt_request(MINER_A, TASK, &good.replace(&format!("\"{sid}\""), "null"), T0).unwrap_err();
    assert_eq!(err.to_string(), "Session not found or expired: None");
    // Empty request: 4015.
    assert_code(store.decrypt_request(MINER_A, TASK, "", T0), code::BAD_AAD);
    // After all that, seq 1 is still fresh.
    store.decrypt_request(MINER_A, TASK, &good, T0).unwrap();
}

#[test]
fn hostile_plaintexts_are_refused_without_panics() {
    let store = store();
    let miner = connected(&store, MINER_A, 1, T0);
    let session = miner.session().unwrap();
    let seal_text = |seq: u64, text: &str| {
        let ct = crypto::seal_bytes(&session.keys.k_cs, MINER_A, VALIDATOR, TASK, &session.id, seq, text.as_bytes())
            .unwrap();
        format!(
            "{{\"ver\": \"v1\", \"session_id\": \"{}\", \"seq\": {seq}, \"ciphertext\": \"{}\", \"sender\": \"{MINER_A}\", \
             \"recipient\": \"{VALIDATOR}\", \"synapse_type\": \"{TASK}\"}}",
            session.id,
            BASE64.encode(ct)
        )
    };
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for (seq, text) in [(1, deep.as_str()), (2, "{\"a\": "), (3, "\u{feff}{}"), (4, "\"\\ud800\"")] {
        let err = assert_code(store.decrypt_request(MINER_A, TASK, &seal_text(seq, text), T0), code::SESSION_UNKNOWN);
        assert!(matches!(err, SessionError::Decrypt(OpenError::PlaintextJson(_))), "{err}");
    }
    // Python-only tokens are accepted.
    let (_, value) =
        store.decrypt_request(MINER_A, TASK, &seal_text(5, "{\"x\": NaN, \"y\": [Infinity]}"), T0).unwrap();
    assert_eq!(value, json!({"x": null, "y": [null]}));
    // Any JSON value is returned as is; the request models decide what they accept.
    let (_, value) = store.decrypt_request(MINER_A, TASK, &seal_text(6, "[1, 2]"), T0).unwrap();
    assert_eq!(value, json!([1, 2]));
}

#[test]
fn outbound_sequence_is_per_session_and_exhaustion_drops_the_session() {
    let store = store();
    let mut a = connected(&store, MINER_A, 1, T0);
    let mut b = connected(&store, MINER_B, 2, T0);
    let pa = a.seal(TASK, &task_poll()).unwrap();
    let (ha, _) = store.decrypt_request(MINER_A, TASK, &pa, T0).unwrap();
    let pb = b.seal(TASK, &task_poll()).unwrap();
    let (hb, _) = store.decrypt_request(MINER_B, TASK, &pb, T0).unwrap();
    for expected in 1..=3 {
        let r = store.encrypt_response(&ha, &json!({})).unwrap();
        assert!(r.contains(&format!("\"seq\": {expected}, ")));
    }
    assert!(store.encrypt_response(&hb, &json!({})).unwrap().contains("\"seq\": 1, "));
    ha.session.seq_out.store(u64::MAX - 1, std::sync::atomic::Ordering::SeqCst);
    let last = store.encrypt_response(&ha, &json!({"last": true})).unwrap();
    assert!(last.contains(&format!("\"seq\": {}, ", u64::MAX)));
    let err = store.encrypt_response(&ha, &json!({})).unwrap_err();
    assert_eq!(err, SessionError::SequenceExhausted);
    assert_eq!(err.code(), code::SESSION_UNKNOWN);
    assert_eq!(store.sessions_of(MINER_A), 0);
    assert_eq!(store.sessions_of(MINER_B), 1);
}

#[test]
fn response_survives_session_eviction_like_the_original() {
    let store = SessionStore::new(VALIDATOR, SessionStoreConfig { max_sessions: 1, ..SessionStoreConfig::default() });
    let mut a = connected(&store, MINER_A, 1, T0);
    let p = a.seal(TASK, &task_poll()).unwrap();
    let (handle, _) = store.decrypt_request(MINER_A, TASK, &p, T0).unwrap();
    connected(&store, MINER_B, 2, T0); // evicts A's session (global cap 1)
    assert_eq!(store.sessions_of(MINER_A), 0);
    let reply = store.encrypt_response(&handle, &json!({"ok": 1})).unwrap();
    assert_eq!(a.open(TASK, &reply), MinerOutcome::Payload(json!({"ok": 1})));
}

#[test]
fn global_caps_bound_memory() {
    let config = SessionStoreConfig { max_sessions: 4, max_tracked_peers: 3, ..SessionStoreConfig::default() };
    let store = SessionStore::new(VALIDATOR, config);
    let mut miners: Vec<MinerSim> =
        (0..6u8).map(|i| connected(&store, &format!("5Peer{i}"), i + 1, T0 + f64::from(i))).collect();
    assert_eq!(store.len(), 4);
    assert_eq!(store.tracked_handshake_peers(), 3);
    // The two oldest sessions went first.
    for (i, miner) in miners.iter_mut().enumerate() {
        let peer = format!("5Peer{i}");
        let p = miner.seal(TASK, &task_poll()).unwrap();
        let result = store.decrypt_request(&peer, TASK, &p, T0 + 10.0);
        assert_eq!(result.is_ok(), i >= 2, "peer {i}");
    }
    // Recently used sessions survive a new handshake; the least recently used one goes.
    connected(&store, "5Peer9", 99, T0 + 11.0);
    let p = miners[2].seal(TASK, &task_poll()).unwrap();
    assert!(store.decrypt_request("5Peer2", TASK, &p, T0 + 12.0).is_err());
    let p = miners[5].seal(TASK, &task_poll()).unwrap();
    assert!(store.decrypt_request("5Peer5", TASK, &p, T0 + 12.0).is_ok());
}

#[test]
fn expire_sweeps_sessions_and_idle_limiter_entries() {
    let store = store();
    connected(&store, MINER_A, 1, T0);
    connected(&store, MINER_B, 2, T0 + 100.0);
    assert_eq!(store.expire(T0 + 21_600.0), 0);
    assert_eq!(store.tracked_handshake_peers(), 0, "attempts older than 60 s are forgotten");
    assert_eq!(store.expire(T0 + 21_600.5), 1);
    assert_eq!(store.sessions_of(MINER_A), 0);
    assert_eq!(store.len(), 1);
    assert_eq!(store.expire(T0 + 30_000.0), 1);
    assert!(store.is_empty());
}

#[test]
fn concurrent_requests_on_many_sessions() {
    let store = store();
    let mut miners: Vec<(String, MinerSim)> = (0..8u8)
        .map(|i| {
            let peer = format!("5Peer{i}");
            let miner = connected(&store, &peer, i + 1, T0);
            (peer, miner)
        })
        .collect();
    std::thread::scope(|scope| {
        for (peer, miner) in miners.iter_mut() {
            let store = &store;
            scope.spawn(move || {
                for n in 0..200u64 {
                    let request = json!({"n": n, "peer": peer.as_str()});
                    let package = miner.seal(HEARTBEAT, &request).unwrap();
                    let (handle, value) = store.decrypt_request(peer, HEARTBEAT, &package, T0 + 1.0).unwrap();
                    assert_eq!(value, request);
                    let reply = store.encrypt_response(&handle, &json!({"echo": n})).unwrap();
                    assert_eq!(miner.open(HEARTBEAT, &reply), MinerOutcome::Payload(json!({"echo": n})));
                }
            });
        }
    });
    assert_eq!(store.len(), 8);
}

#[test]
fn concurrent_handshakes_respect_the_rate_limit() {
    let store = store();
    let successes = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for seed in 0..16u8 {
            let (store, successes) = (&store, &successes);
            scope.spawn(move || {
                if store.handshake(MINER_A, &MinerSim::seeded(MINER_A, VALIDATOR, seed).handshake_request(), T0).is_ok()
                {
                    successes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(successes.into_inner(), 5);
    assert_eq!(store.sessions_of(MINER_A), 3);
}

#[test]
fn store_and_handles_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<SessionStore>();
    shareable::<SessionHandle>();
    shareable::<SessionError>();
    shareable::<HandshakeError>();
}

#[test]
fn uuid_formatting() {
    assert_eq!(format_uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
    assert_eq!(format_uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
}
