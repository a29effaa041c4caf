//! The axon's HTTP request handling (`node/src/axon/http.rs`), fed with what any client controls: the route,
//! the headers and the body.
//!
//! Input, HTTP-like text:
//!
//! ```text
//! <route>                      e.g. SessionInitSynapse (the path segment after "/")
//! <name>: <value>              zero or more header lines, up to an empty line
//!
//! <body>                       the rest, raw bytes
//! ```
//!
//! Header values that are exactly one of these placeholders are replaced, so the fuzzer can get past the
//! allow-list, the nonce freshness and the sr25519 signature and reach the later steps:
//! `@miner` (the SS58 of a registered miner whose key the harness holds), `@validator` (the axon's own hotkey),
//! `@now` (the current time in ns, a fresh nonce) and `@sign` (the miner's signature over
//! `nonce.hotkey.validator.uuid.body_hash` as the axon reads those headers).
//!
//! Each input runs `Synapse::from_route`, `DendriteHeaders::parse`, `identity::parse_signature`,
//! `identity::decode_ss58` and `parse_request_field` directly, then the whole request through the real
//! `http::router` (in-process, fresh state per input) with a service that answers like `MinerDesk` at the
//! session layer: the real handshake for SessionInit, `decrypt_request` + message models for the rest.
//! Must never panic; a 200 answer must be the JSON `{"response": ...}` the miner's dendrite reads.

#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;
use validator_node::axon::http::{self, DendriteHeaders, MinerService, Synapse};
use validator_node::axon::identity::{self, Hotkey};
use validator_node::axon::session::{SessionStore, errors};
use validator_node_fuzz::{
    NOW, VALIDATOR_HOTKEY, check_handshake_error, check_session_error, exercise_models, new_store, split_line,
};

/// Body limit of the router under test (bodies above it must get 413, not a panic).
const MAX_BODY: usize = 4096;
/// Header lines taken from one input.
const MAX_HEADERS: usize = 32;

static MINER: LazyLock<Hotkey> = LazyLock::new(|| Hotkey::from_seed(&[7; 32]).expect("miner key"));

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime"));

/// `MinerDesk` at the session layer, without the ledger.
struct SessionService {
    store: SessionStore,
}

impl MinerService for SessionService {
    async fn answer(&self, synapse: Synapse, hotkey: &str, request: Option<String>) -> Option<String> {
        Some(match synapse {
            Synapse::SessionInit => match request {
                Some(r) => match self.store.handshake(hotkey, &r, NOW) {
                    Ok(answer) => answer,
                    Err(e) => {
                        check_handshake_error(&e);
                        e.response_json()
                    }
                },
                None => errors::handshake_failed("empty handshake request"),
            },
            other => {
                let Some(package) = request.filter(|r| !r.is_empty()) else { return Some(errors::empty_request()) };
                match self.store.decrypt_request(hotkey, other.protocol_type(), &package, NOW) {
                    Ok((handle, value)) => {
                        exercise_models(&value);
                        self.store.encrypt_response(&handle, &value).unwrap_or_else(|e| e.response_json())
                    }
                    Err(e) => {
                        check_session_error(&e);
                        e.response_json()
                    }
                }
            }
        })
    }
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}

/// A raw header line: (name, value).
type Header = (Vec<u8>, Vec<u8>);

/// Splits the header section into (name, value) pairs, with the placeholders (except `@sign`) replaced, and
/// returns them with the body (what follows the blank line).
fn header_pairs(mut section: &[u8]) -> (Vec<Header>, &[u8]) {
    let mut pairs = Vec::new();
    loop {
        if section.is_empty() {
            return (pairs, section);
        }
        let (line, rest) = split_line(section);
        section = rest;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // The blank line: the rest is the body.
            return (pairs, section);
        }
        if pairs.len() >= MAX_HEADERS {
            continue;
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &b""[..]),
        };
        let value = value.trim_ascii_start();
        let value = match value {
            b"@miner" => MINER.ss58.clone().into_bytes(),
            b"@validator" => VALIDATOR_HOTKEY.as_bytes().to_vec(),
            b"@now" => now_ns().to_string().into_bytes(),
            other => other.to_vec(),
        };
        pairs.push((name.to_vec(), value));
    }
}

fn header_map(pairs: &[Header], signature: Option<&str>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let value = match (value.as_slice(), signature) {
            (b"@sign", Some(sig)) => sig.as_bytes(),
            (b"@sign", None) => continue,
            (v, _) => v,
        };
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(name, value);
        }
    }
    map
}

fuzz_target!(|data: &[u8]| {
    let (route, rest) = split_line(data);
    let route = String::from_utf8_lossy(route);
    let (pairs, body) = header_pairs(rest);

    // The parsers on their own.
    if let Some(synapse) = Synapse::from_route(&route) {
        assert_eq!(synapse.route(), route);
        let _ = synapse.protocol_type();
    }
    let unsigned = header_map(&pairs, None);
    let signature = match DendriteHeaders::parse(&unsigned) {
        Ok(d) => {
            assert!(!d.hotkey.is_empty() && d.hotkey.len() <= 64, "{d:?}");
            assert!(!d.uuid.is_empty() && d.uuid.len() <= 64, "{d:?}");
            let _ = identity::decode_ss58(&d.hotkey);
            let message = format!("{}.{}.{}.{}.{}", d.nonce, d.hotkey, VALIDATOR_HOTKEY, d.uuid, d.body_hash);
            Some(format!("0x{}", hex::encode(MINER.sign(message.as_bytes()))))
        }
        Err(e) => {
            assert!(!e.is_empty());
            None
        }
    };
    let headers = header_map(&pairs, signature.as_deref());
    if let Ok(d) = DendriteHeaders::parse(&headers)
        && let Some(sig) = &d.signature
    {
        let _ = identity::parse_signature(sig);
    }
    if let Err(e) = http::parse_request_field(body) {
        assert!(!e.is_empty());
    }

    // The whole request through the router, with fresh state (nonces, sessions) per input.
    let Ok(uri) = format!("/{route}").parse::<axum::http::Uri>() else { return };
    let members = Arc::new(http::Members::default());
    members.replace([MINER.ss58.clone()]);
    let service = Arc::new(SessionService { store: new_store() });
    let axon = Arc::new(http::Axon::new(VALIDATOR_HOTKEY.to_owned(), members, service));
    let router = http::router(axon, MAX_BODY);
    let Ok(mut request) = Request::builder().method("POST").uri(uri).body(Body::from(body.to_vec())) else { return };
    *request.headers_mut() = headers;
    RUNTIME.block_on(async move {
        let response = match router.oneshot(request).await {
            Ok(r) => r,
            Err(e) => match e {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("in-memory body");
        if status == StatusCode::OK {
            let value: serde_json::Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => panic!("200 answer is not JSON ({e}): {bytes:?}"),
            };
            let answer = value.get("response").unwrap_or_else(|| panic!("200 answer without response: {value}"));
            assert!(answer.is_string() || answer.is_null(), "{value}");
        }
    });
});
