//! The axon's HTTP side: routes, `bt_header_*` checks, and the response shape miners accept.
//!
//! Order of checks, as the bittensor 9.10 axon does them (chain.md §6), with our fixes:
//! 1. the route names a synapse we serve, else **404**;
//! 2. the dendrite headers are present and well-formed, else **400**;
//! 3. the dendrite hotkey is registered on the subnet (the replicated metagraph), else **403**
//!    (byteleap-protocol.md §2.2);
//! 4. the sr25519 signature over `nonce.dendrite_hotkey.our_hotkey.uuid.body_hash` is present
//!    and valid, and the nonce is fresh, else **401**. The SDK skips the signature when the
//!    header is missing (§8.1.2): we never do;
//! 5. `computed_body_hash` is the hash of no fields (these synapses hash none), else **500** as
//!    the SDK answers;
//! 6. the body is JSON with a string (or null) `request`, else **400**.
//!
//! Then the [`MinerService`] answers with a string, returned as HTTP 200
//! `{"response": "<string>"}` with `Content-Type: application/json` — the shape the miner's
//! dendrite needs (§2.1, §11.3). Protocol-level refusals (sessions, rate limits) are also
//! HTTP 200 with a JSON error inside `response` (§2.9), because that is what the miner
//! understands.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::Path;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::any;
use parking_lot::RwLock;
use tokio::sync::Semaphore;

use super::identity;
use super::nonce::NonceError;
use super::nonce::NonceGuard;

/// SHA3-256 of nothing: the body hash of every ByteLeap synapse, which declare no hashed
/// fields (byteleap-protocol.md §2.1, §9.4).
pub const EMPTY_BODY_HASH: &str = "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a";
/// Requests handled at once; more wait briefly, then get 503.
const MAX_IN_FLIGHT: usize = 4096;
/// Longest any request may take here, whatever timeout the miner sent.
const MAX_HANDLING: Duration = Duration::from_secs(60);
/// Entries in the nonce table (a full subnet at its request rate needs ~10^5).
const NONCE_CAPACITY: usize = 2_000_000;

/// The synapses the ByteLeap miner sends (byteleap-protocol.md §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Synapse {
    SessionInit,
    Heartbeat,
    Task,
    Challenge,
    ChallengeProof,
}

impl Synapse {
    /// The route segment (the synapse class name).
    pub fn from_route(name: &str) -> Option<Synapse> {
        Some(match name {
            "SessionInitSynapse" => Synapse::SessionInit,
            "HeartbeatSynapse" => Synapse::Heartbeat,
            "TaskSynapse" => Synapse::Task,
            "ChallengeSynapse" => Synapse::Challenge,
            "ChallengeProofSynapse" => Synapse::ChallengeProof,
            _ => return None,
        })
    }

    pub fn route(self) -> &'static str {
        match self {
            Synapse::SessionInit => "SessionInitSynapse",
            Synapse::Heartbeat => "HeartbeatSynapse",
            Synapse::Task => "TaskSynapse",
            Synapse::Challenge => "ChallengeSynapse",
            Synapse::ChallengeProof => "ChallengeProofSynapse",
        }
    }

    /// `PROTOCOL_TYPE`, part of the package AAD (byteleap-protocol.md §2.1, §2.6).
    pub fn protocol_type(self) -> &'static str {
        match self {
            Synapse::SessionInit => "SESSION_INIT_V1",
            Synapse::Heartbeat => "HEARTBEAT_V1",
            Synapse::Task => "TASK_V1",
            Synapse::Challenge => "CHALLENGE_V1",
            Synapse::ChallengeProof => "CHALLENGE_PROOF_V1",
        }
    }

    const ALL: [Synapse; 5] =
        [Synapse::SessionInit, Synapse::Heartbeat, Synapse::Task, Synapse::Challenge, Synapse::ChallengeProof];
}

/// What answers a verified miner request.
pub trait MinerService: Send + Sync + 'static {
    /// The `response` string for `request` (the synapse's `request` field) from `hotkey`.
    fn answer(
        &self,
        synapse: Synapse,
        hotkey: &str,
        request: Option<String>,
    ) -> impl Future<Output = Option<String>> + Send;
}

/// The registered hotkeys, refreshed from the replicated metagraph.
#[derive(Default)]
pub struct Members {
    hotkeys: RwLock<HashSet<String>>,
}

impl Members {
    pub fn replace(&self, hotkeys: impl IntoIterator<Item = String>) {
        *self.hotkeys.write() = hotkeys.into_iter().collect();
    }

    pub fn contains(&self, hotkey: &str) -> bool {
        self.hotkeys.read().contains(hotkey)
    }

    pub fn len(&self) -> usize {
        self.hotkeys.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything a request handler needs.
pub struct Axon<S> {
    pub own_hotkey: String,
    pub members: Arc<Members>,
    pub nonces: NonceGuard,
    pub service: Arc<S>,
    in_flight: Semaphore,
}

impl<S: MinerService> Axon<S> {
    pub fn new(own_hotkey: String, members: Arc<Members>, service: Arc<S>) -> Axon<S> {
        Axon {
            own_hotkey,
            members,
            nonces: NonceGuard::new(NONCE_CAPACITY),
            service,
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
        }
    }
}

/// The routes, with a body limit of `max_body` bytes.
pub fn router<S: MinerService>(axon: Arc<Axon<S>>, max_body: usize) -> Router {
    Router::new()
        .route("/{synapse}", any(handle::<S>))
        .fallback(|| async { refusal(StatusCode::NOT_FOUND, "Not Found") })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(axon)
}

fn refusal(status: StatusCode, message: &str) -> Response {
    metrics::counter!("axon_requests_refused_total", "status" => status.as_u16().to_string()).increment(1);
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("bt_header_axon_status_code", HeaderValue::from(status.as_u16()));
    if let Ok(v) = HeaderValue::from_str(message) {
        headers.insert("bt_header_axon_status_message", v);
    }
    response
}

fn answer(response: Option<String>) -> Response {
    let body = serde_json::json!({ "response": response }).to_string();
    let mut out = (StatusCode::OK, body).into_response();
    let headers = out.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("bt_header_axon_status_code", HeaderValue::from(200u16));
    headers.insert("bt_header_axon_status_message", HeaderValue::from_static("Success"));
    out
}

/// The dendrite headers the axon checks.
#[derive(Debug)]
pub struct DendriteHeaders {
    pub hotkey: String,
    pub nonce: u128,
    pub uuid: String,
    pub signature: Option<String>,
    pub timeout_s: f64,
    pub body_hash: String,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty())
}

impl DendriteHeaders {
    pub fn parse(headers: &HeaderMap) -> Result<DendriteHeaders, String> {
        let hotkey = header(headers, "bt_header_dendrite_hotkey").ok_or("missing bt_header_dendrite_hotkey")?;
        let nonce = header(headers, "bt_header_dendrite_nonce")
            .ok_or("missing bt_header_dendrite_nonce")?
            .parse::<u128>()
            .map_err(|_| "bt_header_dendrite_nonce is not an integer")?;
        let uuid = header(headers, "bt_header_dendrite_uuid").ok_or("missing bt_header_dendrite_uuid")?;
        if hotkey.len() > 64 || uuid.len() > 64 {
            return Err("dendrite hotkey or uuid too long".into());
        }
        let timeout_s = header(headers, "timeout").and_then(|t| t.parse::<f64>().ok()).unwrap_or(12.0);
        let body_hash = header(headers, "computed_body_hash").unwrap_or("").to_string();
        Ok(DendriteHeaders {
            hotkey: hotkey.to_string(),
            nonce,
            uuid: uuid.to_string(),
            signature: header(headers, "bt_header_dendrite_signature").map(str::to_string),
            timeout_s,
            body_hash,
        })
    }
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}

async fn handle<S: MinerService>(
    State(axon): State<Arc<Axon<S>>>,
    Path(route): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let Some(synapse) = Synapse::from_route(&route) else {
        let names: Vec<&str> = Synapse::ALL.iter().map(|s| s.route()).collect();
        return refusal(
            StatusCode::NOT_FOUND,
            &format!("Synapse name '{route}' not found. Available synapses {names:?}"),
        );
    };
    let Ok(_permit) = tokio::time::timeout(Duration::from_secs(2), axon.in_flight.acquire()).await else {
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable: too many requests in flight");
    };
    // The SDK blacklists a missing hotkey (§2.2: `missing_hotkey`), then unregistered ones, and
    // only then verifies: a request without a valid nonce or uuid is "not verified" (401).
    let Some(hotkey) = header(&headers, "bt_header_dendrite_hotkey") else {
        return refusal(StatusCode::FORBIDDEN, "Forbidden. Key is blacklisted: missing_hotkey");
    };
    if !axon.members.contains(hotkey) {
        return refusal(StatusCode::FORBIDDEN, &format!("Forbidden. Key is blacklisted: {hotkey}"));
    }
    let dendrite = match DendriteHeaders::parse(&headers) {
        Ok(d) => d,
        Err(e) => return refusal(StatusCode::UNAUTHORIZED, &format!("Not Verified with error: {e}")),
    };
    let Some(signature) = &dendrite.signature else {
        return refusal(StatusCode::UNAUTHORIZED, "Not Verified with error: missing signature");
    };
    let signature = match identity::parse_signature(signature) {
        Ok(s) => s,
        Err(e) => return refusal(StatusCode::UNAUTHORIZED, &format!("Not Verified with error: {e}")),
    };
    let message =
        format!("{}.{}.{}.{}.{}", dendrite.nonce, dendrite.hotkey, axon.own_hotkey, dendrite.uuid, dendrite.body_hash);
    if let Err(e) = identity::verify(&dendrite.hotkey, message.as_bytes(), &signature) {
        return refusal(StatusCode::UNAUTHORIZED, &format!("Not Verified with error: Signature mismatch ({e})"));
    }
    match axon.nonces.check(&dendrite.hotkey, &dendrite.uuid, dendrite.nonce, dendrite.timeout_s, now_ns()) {
        Ok(()) => {}
        Err(NonceError::Busy) => return refusal(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable: busy"),
        Err(e) => return refusal(StatusCode::UNAUTHORIZED, &format!("Not Verified with error: {e}")),
    }
    if dendrite.body_hash != EMPTY_BODY_HASH {
        return refusal(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    }
    let request = match parse_request_field(&body) {
        Ok(r) => r,
        Err(e) => return refusal(StatusCode::BAD_REQUEST, &format!("Bad request: {e}")),
    };
    // A `timeout: NaN` header survives the clamp; like `inf`, it gets the longest budget.
    let budget =
        Duration::try_from_secs_f64(dendrite.timeout_s.clamp(1.0, MAX_HANDLING.as_secs_f64())).unwrap_or(MAX_HANDLING);
    let response = match tokio::time::timeout(budget, axon.service.answer(synapse, &dendrite.hotkey, request)).await {
        Ok(r) => r,
        Err(_) => return refusal(StatusCode::REQUEST_TIMEOUT, "Request timed out"),
    };
    metrics::histogram!("axon_request_seconds", "synapse" => synapse.route()).record(started.elapsed().as_secs_f64());
    answer(response)
}

/// The `request` field of a synapse body: a string, or absent/null.
pub fn parse_request_field(body: &[u8]) -> Result<Option<String>, String> {
    if body.is_empty() {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let object = value.as_object().ok_or("body is not a JSON object")?;
    match object.get("request") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err("`request` is not a string".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::axon::identity::Hotkey;
    use crate::sim::dendrite::AxonTarget;
    use crate::sim::dendrite::CallOptions;
    use crate::sim::dendrite::Dendrite;

    /// Answers with the synapse and the request it saw.
    struct Echo;

    impl MinerService for Echo {
        async fn answer(&self, synapse: Synapse, hotkey: &str, request: Option<String>) -> Option<String> {
            Some(format!("{}|{hotkey}|{}", synapse.route(), request.unwrap_or_default()))
        }
    }

    async fn start(members: &[&str]) -> AxonTarget {
        let (own, _) = Hotkey::generate();
        let set = Arc::new(Members::default());
        set.replace(members.iter().map(|s| s.to_string()));
        let axon = Arc::new(Axon::new(own.ss58.clone(), set, Arc::new(Echo)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(axon, 1 << 20);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        AxonTarget { addr, hotkey: own.ss58 }
    }

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn the_sdk_statuses_hold_and_signatures_are_always_required() {
        let (miner, miner_seed) = Hotkey::generate();
        let ss58 = miner.ss58.clone();
        let target = start(&[&ss58]).await;
        let d = Dendrite::new(miner);
        let ok = CallOptions::default();

        let r = d.call(&target, Synapse::Task, Some("hello"), T, &ok).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.response.as_deref(), Some(format!("TaskSynapse|{ss58}|hello").as_str()));

        let r = d.call(&target, Synapse::Task, None, T, &CallOptions { unsigned: true, ..ok.clone() }).await.unwrap();
        assert_eq!(r.status, 401, "missing signature: {:?}", r.message);

        let (_, other) = Hotkey::generate();
        let r =
            d.call(&target, Synapse::Task, None, T, &CallOptions { sign_as: Some(other), ..ok.clone() }).await.unwrap();
        assert_eq!(r.status, 401, "wrong signature");

        // The same nonce and uuid twice: a replay.
        let fixed = CallOptions { nonce: Some(now_ns()), uuid: Some("fixed-uuid".into()), ..ok.clone() };
        assert_eq!(d.call(&target, Synapse::Task, None, T, &fixed).await.unwrap().status, 200);
        assert_eq!(d.call(&target, Synapse::Task, None, T, &fixed).await.unwrap().status, 401, "replay");

        let stale = CallOptions { nonce: Some(now_ns() - 60_000_000_000), ..ok.clone() };
        assert_eq!(d.call(&target, Synapse::Task, None, T, &stale).await.unwrap().status, 401, "stale nonce");

        let route = CallOptions { route: Some("NopeSynapse".into()), ..ok.clone() };
        assert_eq!(d.call(&target, Synapse::Task, None, T, &route).await.unwrap().status, 404);

        let hash = CallOptions { body_hash: Some("00".repeat(32)), ..ok.clone() };
        assert_eq!(d.call(&target, Synapse::Task, None, T, &hash).await.unwrap().status, 500);

        for raw in [b"{".to_vec(), b"[1,2]".to_vec(), br#"{"request": 5}"#.to_vec(), vec![0xff, 0xfe]] {
            let bad = CallOptions { raw_body: Some(raw), ..ok.clone() };
            assert_eq!(d.call(&target, Synapse::Task, None, T, &bad).await.unwrap().status, 400);
        }

        // A hotkey outside the metagraph is refused before anything else.
        let intruder = Dendrite::new(Hotkey::generate().0);
        assert_eq!(intruder.call(&target, Synapse::Task, None, T, &ok).await.unwrap().status, 403);
        let _ = miner_seed;
    }

    #[tokio::test]
    async fn oversized_bodies_are_refused() {
        let (miner, _) = Hotkey::generate();
        let target = start(&[&miner.ss58]).await;
        let d = Dendrite::new(miner);
        let big = CallOptions { raw_body: Some(vec![b' '; 2 << 20]), ..Default::default() };
        assert_eq!(d.call(&target, Synapse::Heartbeat, None, T, &big).await.unwrap().status, 413);
    }
}
