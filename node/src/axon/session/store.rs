//! The in-memory session store of one validator hotkey: handshakes in, payloads out, responses back.
//!
//! A request handler calls [`SessionStore::handshake`] for `/SessionInitSynapse` and, for the encrypted routes,
//! [`SessionStore::decrypt_request`] then [`SessionStore::encrypt_response`] with the [`SessionHandle`] it got.
//! Errors carry their §2.9 code and plaintext answer (`response_json()`).
//!
//! # Concurrency
//!
//! One `parking_lot::Mutex` guards the maps; nothing slow runs under it. A request takes it twice, briefly: to
//! look the session up (cloning an `Arc` of its keys) and, after decrypting outside the lock, to apply the replay
//! window and mark the session as recently used. A response needs no lock: the outbound counter is atomic.
//! A handshake validates its input and does its X25519/HKDF work outside the lock, between a cheap early
//! rate-limit check and the definitive check-and-insert. Sharding would buy little at the traffic a validator
//! sees (hundreds of miners, a few requests per second each) and complicate the per-peer bookkeeping.
//!
//! # Memory bounds
//!
//! Sessions: at most `max_sessions_per_peer` per hotkey (LRU within the peer) and `max_sessions` in total (global
//! LRU). Handshake limiter: at most `handshake_rate_limit` timestamps per hotkey and `max_tracked_peers` hotkeys
//! (LRU). Replay state: 136 bytes per session. Inputs: [`MAX_PACKAGE_BYTES`], [`MAX_HANDSHAKE_REQUEST_BYTES`],
//! [`MAX_HOTKEY_BYTES`], JSON depth `pyjson::MAX_DEPTH`.
//!
//! # Differences from the original (none visible to an honest miner)
//!
//! - A session is only usable by the hotkey that opened it (§8.1 item 2); otherwise 4012 as for an unknown id.
//! - Handshakes are validated before they are rate-limited or counted, refused handshakes do not count, and a
//!   peer's LRU session is evicted only when its new session is created (§8.3 item 21).
//! - Base64 in the handshake must be canonical standard base64 with padding. Python 3.11's
//!   `b64decode(validate=True)` also accepts non-zero trailing bits and surplus `=` after a complete quad, which
//!   the Python miner never produces. The package `ciphertext` is decoded just as strictly (the original is
//!   lenient there); the miner only ever sends canonical base64.
//! - `created_at` of the SessionInit request is ignored entirely (the original type-checks it as a float).
//! - Error texts for malformed input paraphrase Python exception messages; codes are those of the original.
//! - Session lifetimes and the handshake window use the caller's `now` (Unix seconds as `f64`, like Python's
//!   `time.time()`), so the node decides which clock to trust and tests control time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use parking_lot::Mutex;
use serde_json::Value;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::crypto::{self, OpenError, Package, SessionKeys};
use super::errors::{HandshakeError, SessionError};
use super::pyjson;
use super::replay::ReplayWindow;
use super::{
    DEFAULT_MAX_SESSIONS, DEFAULT_MAX_TRACKED_PEERS, HANDSHAKE_RATE_LIMIT, HANDSHAKE_RATE_WINDOW_SECONDS,
    MAX_HANDSHAKE_REQUEST_BYTES, MAX_HOTKEY_BYTES, MAX_PACKAGE_BYTES, MAX_SESSIONS_PER_PEER, SESSION_TTL_SECONDS,
};

/// Limits of a [`SessionStore`]. `Default` gives the original's values plus our memory caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStoreConfig {
    /// Sessions held in total; beyond it the least recently used session is dropped.
    pub max_sessions: usize,
    /// Sessions per hotkey; a new handshake beyond it drops the hotkey's least recently used session.
    pub max_sessions_per_peer: usize,
    /// Handshakes per hotkey within `handshake_rate_window_secs`.
    pub handshake_rate_limit: usize,
    /// Window of the handshake rate limit, in seconds.
    pub handshake_rate_window_secs: u64,
    /// Hotkeys the handshake limiter remembers; beyond it the least recently seen one is forgotten.
    pub max_tracked_peers: usize,
    /// Session lifetime from its handshake, in seconds.
    pub session_ttl_secs: u64,
}

impl Default for SessionStoreConfig {
    fn default() -> Self {
        SessionStoreConfig {
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_sessions_per_peer: MAX_SESSIONS_PER_PEER,
            handshake_rate_limit: HANDSHAKE_RATE_LIMIT,
            handshake_rate_window_secs: HANDSHAKE_RATE_WINDOW_SECONDS,
            max_tracked_peers: DEFAULT_MAX_TRACKED_PEERS,
            session_ttl_secs: SESSION_TTL_SECONDS,
        }
    }
}

/// Sessions of one validator hotkey. Share it behind an `Arc`; every method takes `&self`.
pub struct SessionStore {
    own_hotkey: String,
    config: SessionStoreConfig,
    inner: Mutex<Inner>,
}

/// The session a request was decrypted with; pass it to [`SessionStore::encrypt_response`].
#[derive(Clone)]
pub struct SessionHandle {
    session: Arc<Session>,
    protocol_type: String,
}

impl SessionHandle {
    /// The session id (a UUIDv4 string).
    pub fn session_id(&self) -> &str {
        &self.session.id
    }

    /// The hotkey that opened the session (and made this request).
    pub fn peer_hotkey(&self) -> &str {
        &self.session.peer
    }

    /// The protocol type of the request, reused for the response's AAD.
    pub fn protocol_type(&self) -> &str {
        &self.protocol_type
    }

    /// When the session ends (Unix seconds).
    pub fn expires_at(&self) -> f64 {
        self.session.expires_at
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionHandle")
            .field("session_id", &self.session.id)
            .field("peer_hotkey", &self.session.peer)
            .field("protocol_type", &self.protocol_type)
            .finish_non_exhaustive()
    }
}

/// The immutable part of a session plus its outbound counter; shared with handles.
struct Session {
    id: Arc<str>,
    peer: Arc<str>,
    keys: SessionKeys,
    expires_at: f64,
    /// Last seq used towards the miner (`seq_sc_out`, starts at 0 so the first response carries 1).
    seq_out: AtomicU64,
}

/// The mutable part, under the store lock.
struct Entry {
    session: Arc<Session>,
    replay: ReplayWindow,
    /// Position in the global recency order (higher = more recent); also orders the peer's sessions.
    last_used: u64,
    last_seen: f64,
}

struct Inner {
    sessions: HashMap<Arc<str>, Entry>,
    by_peer: HashMap<Arc<str>, Vec<Arc<str>>>,
    recency: BTreeMap<u64, Arc<str>>,
    tick: u64,
    limiter: HandshakeLimiter,
}

/// A validated SessionInit request.
struct InitRequest {
    /// The exact (whitespace-stripped) base64 string: it is hashed into the HKDF info.
    miner_pub_b64: String,
    miner_pub: [u8; 32],
    client_nonce: [u8; 16],
}

impl SessionStore {
    /// An empty store for the validator hotkey `own_hotkey` (SS58), with the given limits (zeros are raised to 1).
    pub fn new(own_hotkey: impl Into<String>, config: SessionStoreConfig) -> SessionStore {
        let config = SessionStoreConfig {
            max_sessions: config.max_sessions.max(1),
            max_sessions_per_peer: config.max_sessions_per_peer.max(1),
            handshake_rate_limit: config.handshake_rate_limit.max(1),
            max_tracked_peers: config.max_tracked_peers.max(1),
            ..config
        };
        SessionStore {
            own_hotkey: own_hotkey.into(),
            config,
            inner: Mutex::new(Inner {
                sessions: HashMap::new(),
                by_peer: HashMap::new(),
                recency: BTreeMap::new(),
                tick: 0,
                limiter: HandshakeLimiter::default(),
            }),
        }
    }

    /// The validator hotkey this store answers for.
    pub fn own_hotkey(&self) -> &str {
        &self.own_hotkey
    }

    /// Handles a SessionInit `request` string from `peer_hotkey` (the dendrite hotkey header) at time `now`
    /// (Unix seconds) and returns the `response` string (§2.4).
    ///
    /// Order: validate the request; refuse if the peer already made `handshake_rate_limit` handshakes in the
    /// window; do the key agreement; then count the handshake, store the session and, if the peer now holds too
    /// many sessions, drop its least recently used one.
    pub fn handshake(&self, peer_hotkey: &str, request: &str, now: f64) -> Result<String, HandshakeError> {
        check_hotkey(peer_hotkey)?;
        let req = parse_init_request(request)?;
        let window = self.config.handshake_rate_window_secs;
        let limit = self.config.handshake_rate_limit;
        self.inner.lock().limiter.check(peer_hotkey, now, window, limit)?;

        let mut server_nonce = [0u8; 16];
        let mut secret_bytes = Zeroizing::new([0u8; 32]);
        let mut id_bytes = [0u8; 16];
        for buf in [&mut server_nonce[..], &mut secret_bytes[..], &mut id_bytes[..]] {
            getrandom::fill(buf).map_err(|e| HandshakeError::Randomness(e.to_string()))?;
        }
        let session_id = format_uuid_v4(id_bytes);

        let secret = StaticSecret::from(*secret_bytes);
        let server_pub_b64 = BASE64.encode(PublicKey::from(&secret).as_bytes());
        let shared = secret.diffie_hellman(&PublicKey::from(req.miner_pub));
        if !shared.was_contributory() {
            return Err(HandshakeError::KeyAgreement);
        }
        let keys = crypto::derive_session_keys(
            shared.as_bytes(),
            &req.client_nonce,
            &server_nonce,
            peer_hotkey,
            &self.own_hotkey,
            &req.miner_pub_b64,
            &server_pub_b64,
        );
        let expires_at = now + self.config.session_ttl_secs as f64;
        let session = Arc::new(Session {
            id: Arc::from(session_id.as_str()),
            peer: Arc::from(peer_hotkey),
            keys,
            expires_at,
            seq_out: AtomicU64::new(0),
        });

        {
            let mut inner = self.inner.lock();
            // Concurrent handshakes of the same peer may have used up the budget since the first check.
            inner.limiter.check(peer_hotkey, now, window, limit)?;
            if inner.sessions.contains_key(session_id.as_str()) {
                return Err(HandshakeError::Randomness("session id collision".to_owned()));
            }
            inner.limiter.record(&session.peer, now, limit, self.config.max_tracked_peers);
            inner.insert(session, now, &self.config);
        }

        let mut out = String::with_capacity(200);
        out.push_str("{\"validator_eph_pub32\": ");
        pyjson::write_str(&mut out, &server_pub_b64, true);
        out.push_str(", \"session_id\": ");
        pyjson::write_str(&mut out, &session_id, true);
        out.push_str(", \"server_nonce16\": ");
        pyjson::write_str(&mut out, &BASE64.encode(server_nonce), true);
        out.push_str(", \"expires_at\": ");
        out.push_str(&pyjson::float_repr(expires_at));
        out.push('}');
        Ok(out)
    }

    /// Decrypts the `request` string of an encrypted synapse from `peer_hotkey` on the route of `protocol_type`
    /// at time `now` (§2.6, §2.7).
    ///
    /// Order (the original's, plus the hotkey binding): size and JSON; `session_id` and `seq` present; session
    /// known, owned by `peer_hotkey`, not expired; version, sender = `peer_hotkey`, recipient = own hotkey, type,
    /// GCM with `k_cs`, plaintext JSON; then the replay window. Only a request that passes all of it moves the
    /// window and marks the session as recently used.
    pub fn decrypt_request(
        &self,
        peer_hotkey: &str,
        protocol_type: &str,
        package: &str,
        now: f64,
    ) -> Result<(SessionHandle, Value), SessionError> {
        if package.is_empty() {
            return Err(SessionError::EmptyRequest);
        }
        if package.len() > MAX_PACKAGE_BYTES {
            return Err(SessionError::PackageTooLarge { limit: MAX_PACKAGE_BYTES });
        }
        let parsed = Package::parse(package).map_err(|e| match e {
            OpenError::PackageJson(json) => SessionError::MalformedPackage(json),
            _ => SessionError::UnusablePackage,
        })?;
        let Some(id_value) = parsed.session_id() else { return Err(SessionError::MissingField("session_id")) };
        if parsed.seq().is_none() {
            return Err(SessionError::MissingField("seq"));
        }
        let session_id = match id_value {
            Value::String(id) => id.as_str(),
            Value::Array(_) | Value::Object(_) => return Err(SessionError::UnusablePackage),
            // A number, bool or null can never name a session; reported the way Python's str() prints it.
            other => return Err(SessionError::unknown(other)),
        };

        let session = self.inner.lock().lookup(session_id, peer_hotkey, now)?;
        let opened = parsed.open(&session.keys.k_cs, peer_hotkey, &self.own_hotkey, protocol_type)?;

        let mut inner = self.inner.lock();
        let entry = match inner.sessions.get_mut(session_id) {
            Some(entry) if Arc::ptr_eq(&entry.session, &session) => entry,
            // Evicted while we were decrypting.
            _ => return Err(SessionError::UnknownSession { session_id: session_id.to_owned() }),
        };
        entry.replay.check_and_accept(opened.seq).map_err(|reason| SessionError::Replay { seq: opened.seq, reason })?;
        entry.last_seen = now;
        inner.touch(session_id);
        drop(inner);

        Ok((SessionHandle { session, protocol_type: protocol_type.to_owned() }, opened.value))
    }

    /// Seals `value` as the response to the request that produced `handle`, with `k_sc` and the session's next
    /// outbound seq (1, 2, …), sender = own hotkey, recipient = the peer (§2.6).
    ///
    /// Works even if the session was dropped meanwhile, as in the original: the miner can still read it.
    pub fn encrypt_response(&self, handle: &SessionHandle, value: &Value) -> Result<String, SessionError> {
        let session = &handle.session;
        let seq = match session.seq_out.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_add(1)) {
            Ok(previous) => previous + 1,
            Err(_) => {
                let mut inner = self.inner.lock();
                if inner.sessions.get(&*session.id).is_some_and(|e| Arc::ptr_eq(&e.session, session)) {
                    inner.remove(&session.id);
                }
                return Err(SessionError::SequenceExhausted);
            }
        };
        crypto::seal(
            &session.keys.k_sc,
            &self.own_hotkey,
            &session.peer,
            &handle.protocol_type,
            &session.id,
            seq,
            value,
        )
        .map_err(|_| SessionError::ResponseTooLarge)
    }

    /// Drops sessions whose lifetime ended before `now` and forgets handshake history older than the rate window.
    /// Returns how many sessions were dropped. Call it every [`super::SESSION_CLEANUP_INTERVAL_SECONDS`].
    pub fn expire(&self, now: f64) -> usize {
        let mut inner = self.inner.lock();
        let expired: Vec<Arc<str>> =
            inner.sessions.iter().filter(|(_, e)| now > e.session.expires_at).map(|(id, _)| id.clone()).collect();
        for id in &expired {
            inner.remove(id);
        }
        inner.limiter.forget_idle(now, self.config.handshake_rate_window_secs);
        expired.len()
    }

    /// Number of live (not yet swept) sessions.
    pub fn len(&self) -> usize {
        self.inner.lock().sessions.len()
    }

    /// Whether the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of sessions held by `peer_hotkey`.
    pub fn sessions_of(&self, peer_hotkey: &str) -> usize {
        self.inner.lock().by_peer.get(peer_hotkey).map_or(0, Vec::len)
    }

    /// Number of hotkeys the handshake limiter currently remembers.
    pub fn tracked_handshake_peers(&self) -> usize {
        self.inner.lock().limiter.peers.len()
    }

    /// When the session was last used by a successful request (or created), if it exists.
    pub fn last_seen(&self, session_id: &str) -> Option<f64> {
        self.inner.lock().sessions.get(session_id).map(|e| e.last_seen)
    }
}

impl Inner {
    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// Finds the session for a request: it must exist, belong to `peer`, and not be expired (expired ones are
    /// dropped here, as `get_session` does in the original).
    fn lookup(&mut self, id: &str, peer: &str, now: f64) -> Result<Arc<Session>, SessionError> {
        let Some(entry) = self.sessions.get(id) else {
            return Err(SessionError::UnknownSession { session_id: id.to_owned() });
        };
        if *entry.session.peer != *peer {
            return Err(SessionError::ForeignSession { session_id: id.to_owned() });
        }
        if now > entry.session.expires_at {
            self.remove(id);
            return Err(SessionError::ExpiredSession { session_id: id.to_owned() });
        }
        Ok(entry.session.clone())
    }

    fn insert(&mut self, session: Arc<Session>, now: f64, config: &SessionStoreConfig) {
        let id = session.id.clone();
        let peer = session.peer.clone();
        let tick = self.next_tick();
        self.recency.insert(tick, id.clone());
        self.sessions
            .insert(id.clone(), Entry { session, replay: ReplayWindow::new(), last_used: tick, last_seen: now });
        self.by_peer.entry(peer.clone()).or_default().push(id);

        loop {
            let victim = match self.by_peer.get(&peer) {
                Some(ids) if ids.len() > config.max_sessions_per_peer => {
                    ids.iter().min_by_key(|id| self.sessions.get(&***id).map_or(0, |e| e.last_used)).cloned()
                }
                _ => None,
            };
            match victim {
                Some(victim) => {
                    self.remove(&victim);
                }
                None => break,
            }
        }
        while self.sessions.len() > config.max_sessions {
            let Some((_, oldest)) = self.recency.pop_first() else { break };
            self.remove(&oldest);
        }
    }

    fn remove(&mut self, id: &str) -> Option<Entry> {
        let entry = self.sessions.remove(id)?;
        self.recency.remove(&entry.last_used);
        let peer = &entry.session.peer;
        if let Some(ids) = self.by_peer.get_mut(&**peer) {
            ids.retain(|s| **s != *id);
            if ids.is_empty() {
                self.by_peer.remove(&**peer);
            }
        }
        Some(entry)
    }

    fn touch(&mut self, id: &str) {
        let tick = self.next_tick();
        if let Some(entry) = self.sessions.get_mut(id) {
            if let Some(key) = self.recency.remove(&entry.last_used) {
                self.recency.insert(tick, key);
            }
            entry.last_used = tick;
        }
    }
}

/// Recent handshake times per hotkey (§2.8: 5 per 60 s), with a bounded number of hotkeys.
#[derive(Default)]
struct HandshakeLimiter {
    peers: HashMap<Arc<str>, PeerAttempts>,
    recency: BTreeMap<u64, Arc<str>>,
    tick: u64,
}

struct PeerAttempts {
    times: VecDeque<f64>,
    last_used: u64,
}

impl HandshakeLimiter {
    /// Drops the peer's attempts older than the window (as the original: `t < now - window`) and refuses if
    /// `limit` remain. Does not record anything.
    fn check(&mut self, peer: &str, now: f64, window: u64, limit: usize) -> Result<(), HandshakeError> {
        let Some(attempts) = self.peers.get_mut(peer) else { return Ok(()) };
        let cutoff = now - window as f64;
        while attempts.times.front().is_some_and(|t| *t < cutoff) {
            attempts.times.pop_front();
        }
        if attempts.times.len() >= limit {
            return Err(HandshakeError::RateLimited { attempts: attempts.times.len(), limit, window_secs: window });
        }
        Ok(())
    }

    /// Records a handshake that created a session.
    fn record(&mut self, peer: &Arc<str>, now: f64, limit: usize, max_peers: usize) {
        self.tick += 1;
        let tick = self.tick;
        match self.peers.get_mut(&**peer) {
            Some(attempts) => {
                self.recency.remove(&attempts.last_used);
                attempts.last_used = tick;
                attempts.times.push_back(now);
                while attempts.times.len() > limit {
                    attempts.times.pop_front();
                }
            }
            None => {
                while self.peers.len() >= max_peers {
                    // Forget the hotkey that handshook least recently; usually its attempts are long outside the
                    // window anyway.
                    let Some((_, oldest)) = self.recency.pop_first() else { break };
                    self.peers.remove(&oldest);
                }
                self.peers.insert(peer.clone(), PeerAttempts { times: VecDeque::from([now]), last_used: tick });
            }
        }
        self.recency.insert(tick, peer.clone());
    }

    /// Forgets hotkeys whose every attempt is outside the window.
    fn forget_idle(&mut self, now: f64, window: u64) {
        let cutoff = now - window as f64;
        let idle: Vec<Arc<str>> = self
            .peers
            .iter()
            .filter(|(_, a)| a.times.back().is_none_or(|t| *t < cutoff))
            .map(|(peer, _)| peer.clone())
            .collect();
        for peer in idle {
            if let Some(attempts) = self.peers.remove(&peer) {
                self.recency.remove(&attempts.last_used);
            }
        }
    }
}

fn check_hotkey(peer_hotkey: &str) -> Result<(), HandshakeError> {
    if peer_hotkey.is_empty() || peer_hotkey.len() > MAX_HOTKEY_BYTES {
        return Err(HandshakeError::InvalidRequest("missing or oversized peer hotkey".to_owned()));
    }
    Ok(())
}

/// Python's `str.strip()` whitespace (pydantic `str_strip_whitespace`): Unicode White_Space plus the ASCII
/// information separators U+001C..U+001F that Python also treats as whitespace.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// `SessionInitRequest` validation (§2.4): a JSON object with string fields `miner_eph_pub32` (standard padded
/// base64 of 32 bytes) and `client_nonce16` (of 16 bytes). Extra keys are allowed, `created_at` is ignored.
fn parse_init_request(request: &str) -> Result<InitRequest, HandshakeError> {
    let invalid = |why: &str| HandshakeError::InvalidRequest(why.to_owned());
    if request.is_empty() {
        return Err(HandshakeError::EmptyRequest);
    }
    if request.len() > MAX_HANDSHAKE_REQUEST_BYTES {
        return Err(invalid("request too large"));
    }
    let value = pyjson::loads(request).map_err(|e| HandshakeError::InvalidRequest(e.to_string()))?;
    let Value::Object(fields) = value else { return Err(invalid("request is not a JSON object")) };
    let field = |name: &str| match fields.get(name) {
        Some(Value::String(s)) => Ok(py_strip(s).to_owned()),
        Some(_) => Err(HandshakeError::InvalidRequest(format!("{name} must be a string"))),
        None => Err(HandshakeError::InvalidRequest(format!("{name} is required"))),
    };
    let miner_pub_b64 = field("miner_eph_pub32")?;
    let client_nonce_b64 = field("client_nonce16")?;
    let miner_pub: [u8; 32] = BASE64
        .decode(&miner_pub_b64)
        .map_err(|_| invalid("miner_eph_pub32 must be valid base64"))?
        .try_into()
        .map_err(|_| invalid("miner_eph_pub32 must decode to 32 bytes"))?;
    let client_nonce: [u8; 16] = BASE64
        .decode(&client_nonce_b64)
        .map_err(|_| invalid("client_nonce16 must be valid base64"))?
        .try_into()
        .map_err(|_| invalid("client_nonce16 must decode to 16 bytes"))?;
    Ok(InitRequest { miner_pub_b64, miner_pub, client_nonce })
}

/// `str(uuid.uuid4())`: lower-case hex, version 4, RFC 4122 variant.
fn format_uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
