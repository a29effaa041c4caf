//! Miner sessions: the encrypted channel between unchanged Python ByteLeap miners and this validator.
//!
//! # Why it looks the way it does
//!
//! Miners run the original Python code, which we cannot change. Every message after the handshake is sealed with
//! keys, IVs, AAD strings and JSON encodings that the miner computes itself, so this module reproduces
//! `neurons/shared/crypto.py`, `session_replay_protection.py` and the validator's `session_manager.py` /
//! `communication.py` bit for bit (byteleap-protocol.md §2.4–§2.9; the interop vectors of §9.4 and §9.5 are unit
//! tests here). Where the original is weak (§8) we tighten it only in ways an honest miner cannot notice.
//!
//! # The protocol in five steps
//!
//! 1. **Handshake** (`SessionInitSynapse`, plaintext, §2.4). The miner sends an ephemeral X25519 public key and a
//!    16-byte nonce; the validator answers with its own ephemeral key, a 16-byte nonce, a random UUIDv4 session id
//!    and `expires_at = now + 6 h`. [`store::SessionStore::handshake`].
//! 2. **Keys** (§2.5). Both sides run HKDF-SHA256 over the X25519 secret, salted with both nonces and bound to
//!    both hotkeys and both public keys (as base64 text): `k_cs` for miner → validator, `k_sc` for the way back.
//!    [`crypto::derive_session_keys`].
//! 3. **Packages** (§2.6). A payload is serialised like Python's `json.dumps(P, ensure_ascii=False,
//!    sort_keys=True)` ([`pyjson`]), sealed with AES-256-GCM under IV = SHA-256(session id)[..4] || seq (big
//!    endian) and AAD `leap-comm|sender|recipient|type|session_<id>|seq_<n>`, and shipped as a small JSON object
//!    with a fixed key order inside the synapse's `request`/`response` string. [`crypto::seal`], [`crypto::open`].
//! 4. **Replay window** (§2.7). Each session keeps the highest inbound seq and which of the last 1024 values were
//!    seen; a seq is refused if seen, older than the window, or more than 2048 ahead. It is checked only after
//!    the package authenticated, so forged packages cannot move the window. [`replay::ReplayWindow`].
//! 5. **Errors** (§2.9). Refusals are plaintext `{"error": ..., "error_code": ...}`; on 4011/4012/4013/4020 the
//!    miner re-handshakes and retries once, so the codes are what counts. [`errors`].
//!
//! Sessions live in memory only, per node: after a restart or a failover to another node the miner's next
//! request gets 4012 and it simply re-handshakes (§2.8, §10 item 10).
//!
//! # What we fixed from §8 (and why it stays compatible)
//!
//! - **Sessions are bound to the hotkey that opened them** (§8.1 item 2). The original finds a session by id
//!   only, so with the SDK's missing-signature bypass anybody could use a session under another hotkey. A
//!   request whose hotkey differs from the session's gets the same 4012 answer as an unknown id.
//! - **Handshake flood protection in the right order** (§8.3 item 21). The original evicts one of the peer's
//!   sessions *before* the rate check and records attempts before validating them. We validate the request
//!   first, then apply the 5-per-60 s limit (counting only handshakes that create a session), and evict the
//!   peer's least-recently-used session only once the new one exists.
//! - **Bounded memory** (§8.1 item 4, §8.4). Global caps on sessions and on hotkeys tracked by the handshake
//!   limiter (both LRU), a 1024-bit replay bitmap instead of a 1024-entry deque and set, a size limit on
//!   packages and a depth limit on JSON.
//! - **Thread safety** (§8.3 item 19). One short mutex section to look a session up, crypto outside the lock, one
//!   short section to apply the replay window; responses only touch an atomic counter.
//!
//! Known differences from the original, all invisible to an honest miner, are listed in the docs of
//! [`pyjson`] (value model limits), [`replay`] (stricter on replays) and [`store`] (strict base64, error texts).

pub mod crypto;
pub mod errors;
pub mod pyjson;
pub mod replay;
pub mod store;

pub use crypto::{OpenError, Opened, Package, SealError, SessionKeys, derive_session_keys, open, seal};
pub use errors::{HandshakeError, SessionError, code};
pub use replay::{ReplayWindow, SeqRejection};
pub use store::{SessionHandle, SessionStore, SessionStoreConfig};

/// Package `ver` (§2.6, §2.8 PROTOCOL_VERSION).
pub const PROTOCOL_VERSION: &str = "v1";

/// First field of the AAD string (§2.6 step 4, §2.8 AAD_PREFIX).
pub const AAD_PREFIX: &str = "leap-comm";

/// HKDF `info` direction label for `k_cs`, miner → validator (§2.5).
pub const LABEL_CLIENT_TO_SERVER: &[u8] = b"session_key_client_to_server";

/// HKDF `info` direction label for `k_sc`, validator → miner (§2.5).
pub const LABEL_SERVER_TO_CLIENT: &[u8] = b"session_key_server_to_client";

/// Last field of the HKDF `info` (§2.5).
pub const HKDF_ALGORITHM_INFO: &[u8] = b"HKDF-SHA256_AES-256-GCM_X25519";

/// Session lifetime from the handshake, in seconds (§2.4 step 5, §2.8 SESSION_TTL_SECONDS).
pub const SESSION_TTL_SECONDS: u64 = 21_600;

/// How often the original sweeps expired sessions (§2.8 SESSION_CLEANUP_INTERVAL_SECONDS); a good period for
/// calling [`SessionStore::expire`].
pub const SESSION_CLEANUP_INTERVAL_SECONDS: u64 = 300;

/// Replay window size (§2.7, §2.8 REPLAY_WINDOW_SIZE).
pub const REPLAY_WINDOW_SIZE: u64 = 1024;

/// Largest accepted jump above the highest seq seen: twice the window (§2.7 rule 3).
pub const REPLAY_MAX_FORWARD_JUMP: u64 = 2 * REPLAY_WINDOW_SIZE;

/// Sessions one hotkey may hold; a new handshake evicts the peer's least-recently-used one (§2.8
/// MAX_SESSIONS_PER_PEER).
pub const MAX_SESSIONS_PER_PEER: usize = 3;

/// Handshakes per hotkey per [`HANDSHAKE_RATE_WINDOW_SECONDS`] (§2.8 HANDSHAKE_RATE_LIMIT).
pub const HANDSHAKE_RATE_LIMIT: usize = 5;

/// Window of the handshake rate limit, in seconds (§2.8 RATE_LIMIT_WINDOW_SECONDS).
pub const HANDSHAKE_RATE_WINDOW_SECONDS: u64 = 60;

/// Highest sequence number (§2.6 step 2, §2.8 MAX_SEQ): the IV holds it in 8 bytes.
pub const MAX_SEQ: u64 = u64::MAX;

/// Our cap on sessions held by one node (not in the original, §8.4). With the metagraph blacklist in front
/// (256 UIDs × 3 sessions) it is never reached by registered hotkeys; it bounds memory if that check fails open.
pub const DEFAULT_MAX_SESSIONS: usize = 200_000;

/// Our cap on hotkeys tracked by the handshake rate limiter (not in the original, §8.4), evicted LRU.
pub const DEFAULT_MAX_TRACKED_PEERS: usize = 50_000;

/// Our limit on an encrypted package string (not in the original, §8.4 item 24). A heartbeat for 100 workers
/// with full system and GPU info is a few hundred KiB.
pub const MAX_PACKAGE_BYTES: usize = 8 * 1024 * 1024;

/// Our limit on a SessionInit request string (not in the original); a real one is about 150 bytes.
pub const MAX_HANDSHAKE_REQUEST_BYTES: usize = 16 * 1024;

/// Our limit on a peer hotkey string; SS58 hotkeys are 48 characters.
pub const MAX_HOTKEY_BYTES: usize = 128;

/// Protocol types used in the AAD and the package's `synapse_type` (§2.1).
pub mod protocol_type {
    /// `/SessionInitSynapse` (plaintext handshake).
    pub const SESSION_INIT: &str = "SESSION_INIT_V1";
    /// `/HeartbeatSynapse`.
    pub const HEARTBEAT: &str = "HEARTBEAT_V1";
    /// `/TaskSynapse`.
    pub const TASK: &str = "TASK_V1";
    /// `/ChallengeSynapse`.
    pub const CHALLENGE: &str = "CHALLENGE_V1";
    /// `/ChallengeProofSynapse`.
    pub const CHALLENGE_PROOF: &str = "CHALLENGE_PROOF_V1";
    /// `/GetVmgwEnrollTokenSynapse` (miner-only in the reference snapshot, §2.10.6).
    pub const GET_VMGW_ENROLL_TOKEN: &str = "GET_VMGW_ENROLL_TOKEN_V1";
}
