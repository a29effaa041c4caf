//! The encrypted package decoder of the miner sessions (`node/src/axon/session`), fed with what a miner
//! controls: the synapse `request` string and, behind the AES-GCM layer, the decrypted plaintext.
//!
//! The first byte picks a mode (`byte % 3`; the ASCII digits '0', '1', '2' select modes 0, 1, 2):
//!
//! * **0 — raw package**: the rest is the package string (lossy UTF-8; `@SID@` is replaced by the live session
//!   id). It goes through `Package::parse` + `Package::open`, `crypto::open`, and
//!   `SessionStore::decrypt_request` on a store holding a session made by the real handshake, as the session's
//!   owner and as another hotkey. Nothing here can forge the GCM tag, so every call must fail cleanly, with an
//!   error answer that is JSON carrying its code.
//! * **1 — sealed plaintext**: the first line is `<type digit><seq>[,<seq>...]` (up to 4 seqs), the rest is a
//!   plaintext. The harness makes a fresh store and session through the real handshake, seals the plaintext
//!   with the miner's `k_cs` under each seq and submits each package: this reaches GCM, the replay window, the
//!   plaintext UTF-8/JSON checks, the message models, and the sealed response, which the miner must be able to
//!   open back to the same value. A seq accepted twice, or a package accepted from another hotkey, is a bug.
//! * **2 — plaintext models**: the rest is a decrypted plaintext, parsed by `pyjson::loads` and run through
//!   every message model (`HeartbeatData`, `parse_task_request`, `CommitmentData`, `ProofData`), plus the
//!   `pyjson` write/read round trip and an acceptance check against `serde_json`.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use validator_node::axon::session::{self, Package, SessionStore, crypto, pyjson};
use validator_node_fuzz::{
    MINER_HOTKEY, MinerSession, NOW, OTHER_HOTKEY, PROTOCOL_TYPES, SESSION_PLACEHOLDER, VALIDATOR_HOTKEY,
    check_pyjson_round_trip, check_session_error, claimed_type_in, establish, exercise_models, new_store, package_json,
    split_line,
};

/// A store with one live session of [`MINER_HOTKEY`], made once per process. Mode 0 never authenticates a
/// package, so it never changes this store's state (the replay window moves only after GCM succeeds).
struct Fixture {
    store: SessionStore,
    miner: MinerSession,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let store = new_store();
    let miner = establish(&store);
    // Prove the fixture: a package sealed with the miner's keys opens.
    let ct = crypto::seal_bytes(&miner.keys.k_cs, MINER_HOTKEY, VALIDATOR_HOTKEY, "TASK_V1", &miner.id, 1, b"{}")
        .expect("seal");
    let package = package_json(&miner.id, 1, &ct, MINER_HOTKEY, "TASK_V1");
    store.decrypt_request(MINER_HOTKEY, "TASK_V1", &package, NOW).expect("fixture session does not open packages");
    Fixture { store, miner }
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => raw_package(rest),
        1 => sealed(rest),
        _ => plaintext(rest),
    }
});

fn raw_package(rest: &[u8]) {
    let fx = &*FIXTURE;
    let text = String::from_utf8_lossy(rest).replace(SESSION_PLACEHOLDER, &fx.miner.id);
    let kind = claimed_type_in(&text);
    let keys = &fx.miner.keys;

    match Package::parse(&text) {
        Ok(package) => {
            let _ = (package.session_id(), package.seq());
            for key in [&keys.k_cs, &keys.k_sc] {
                match package.open(key, MINER_HOTKEY, VALIDATOR_HOTKEY, kind) {
                    Ok(opened) => panic!("a package the harness did not seal authenticated: {opened:?}"),
                    Err(e) => drop(e.to_string()),
                }
            }
        }
        Err(e) => drop(e.to_string()),
    }
    if let Ok(opened) = crypto::open(&keys.k_cs, MINER_HOTKEY, VALIDATOR_HOTKEY, kind, &text) {
        panic!("crypto::open authenticated a package the harness did not seal: {opened:?}");
    }
    for peer in [MINER_HOTKEY, OTHER_HOTKEY] {
        match fx.store.decrypt_request(peer, kind, &text, NOW) {
            Ok((handle, _)) => panic!("decrypt_request accepted a package the harness did not seal: {handle:?}"),
            Err(e) => check_session_error(&e),
        }
    }
}

fn sealed(rest: &[u8]) {
    let (header, plaintext) = split_line(rest);
    // '0'..'4' pick HEARTBEAT, TASK, CHALLENGE, CHALLENGE_PROOF, SESSION_INIT; any byte picks one.
    let digit = header.first().map_or(0, |b| b.wrapping_sub(b'0'));
    let kind = PROTOCOL_TYPES[usize::from(digit) % PROTOCOL_TYPES.len()];
    let header = String::from_utf8_lossy(header.get(1..).unwrap_or_default());
    let mut seqs: Vec<u64> = header.split(',').take(4).filter_map(|s| s.trim().parse().ok()).collect();
    if seqs.is_empty() {
        seqs.push(1);
    }

    let store = new_store();
    let miner = establish(&store);
    let keys = &miner.keys;
    let mut accepted = Vec::new();
    for seq in seqs {
        let Ok(ct) = crypto::seal_bytes(&keys.k_cs, MINER_HOTKEY, VALIDATOR_HOTKEY, kind, &miner.id, seq, plaintext)
        else {
            continue;
        };
        let package = package_json(&miner.id, seq, &ct, MINER_HOTKEY, kind);

        // The right package from the wrong hotkey: refused before anything moves.
        match store.decrypt_request(OTHER_HOTKEY, kind, &package, NOW) {
            Ok((handle, _)) => panic!("another hotkey used the miner's session: {handle:?}"),
            Err(e) => check_session_error(&e),
        }

        match store.decrypt_request(MINER_HOTKEY, kind, &package, NOW) {
            Ok((handle, value)) => {
                assert!(!accepted.contains(&seq), "seq {seq} accepted twice (replay)");
                accepted.push(seq);
                assert!(std::str::from_utf8(plaintext).is_ok(), "a non-UTF-8 plaintext was accepted");
                assert_eq!(handle.session_id(), miner.id);
                assert_eq!(handle.peer_hotkey(), MINER_HOTKEY);
                assert_eq!(handle.protocol_type(), kind);
                exercise_models(&value);
                check_pyjson_round_trip(&value);
                // Echo the payload back: the miner must be able to open the response to the same value.
                match store.encrypt_response(&handle, &value) {
                    Ok(response) => match crypto::open(&keys.k_sc, VALIDATOR_HOTKEY, MINER_HOTKEY, kind, &response) {
                        Ok(opened) => {
                            assert!(opened.value == value, "response {:?} != request {value:?}", opened.value);
                            assert_eq!(opened.session_id, miner.id);
                        }
                        Err(e) => panic!("the miner cannot open the response ({e}): {response:?}"),
                    },
                    Err(e) => check_session_error(&e),
                }
            }
            Err(e) => check_session_error(&e),
        }
    }
}

fn plaintext(rest: &[u8]) {
    let text = String::from_utf8_lossy(rest);
    match pyjson::loads(&text) {
        Ok(value) => {
            exercise_models(&value);
            check_pyjson_round_trip(&value);
        }
        Err(e) => {
            let _ = e.to_string();
            // What standard JSON accepts, Python's json.loads accepts too (within our depth limit).
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                assert!(depth(&value) > pyjson::MAX_DEPTH, "pyjson refused standard JSON ({e}): {text:?}");
            }
        }
    }
    let _ = session::errors::derive_error_code(&text);
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}
