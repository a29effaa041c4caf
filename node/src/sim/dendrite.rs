//! A dendrite: the miner's side of the axon protocol, in Rust.
//!
//! The simulated miners of the devnet and the axon's tests talk to our axon exactly as the
//! bittensor 9.10 SDK dendrite does (byteleap-protocol.md §2.1; chain.md §6): an HTTP POST to
//! `/<SynapseClassName>` with the `bt_header_*` headers, signed with the miner's hotkey over
//! `"{nonce}.{hotkey}.{axon_hotkey}.{uuid}.{body_hash}"`, and a JSON body carrying `request`.
//! [`CallOptions`] can break each of those rules on purpose, for the negative tests.

use std::net::SocketAddr;
use std::time::Duration;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::axon::http::EMPTY_BODY_HASH;
use crate::axon::http::Synapse;
use crate::axon::identity::Hotkey;

/// The SDK version this dendrite claims (bittensor 9.10.0; byteleap-protocol.md §0).
pub const DENDRITE_VERSION: u64 = 9_010_000;

/// Where an axon listens and whose hotkey it serves.
#[derive(Debug, Clone)]
pub struct AxonTarget {
    pub addr: SocketAddr,
    pub hotkey: String,
}

/// Ways to deviate from an honest dendrite.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Omit the signature header.
    pub unsigned: bool,
    /// Sign with this hotkey instead of our own (a wrong signature).
    pub sign_as: Option<[u8; 32]>,
    /// Use this nonce (ns) instead of now.
    pub nonce: Option<u128>,
    /// Use this uuid instead of a fresh one.
    pub uuid: Option<String>,
    /// Claim this body hash.
    pub body_hash: Option<String>,
    /// Send this raw body instead of the synapse JSON.
    pub raw_body: Option<Vec<u8>>,
    /// Post to this route instead of the synapse's.
    pub route: Option<String>,
    /// Send this `timeout` header text instead of the call's timeout (e.g. "NaN").
    pub timeout_header: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DendriteError {
    #[error("HTTP: {0}")]
    Http(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// What the axon answered.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The `response` string of a 200 answer.
    pub response: Option<String>,
    /// The `message` of a refusal.
    pub message: Option<String>,
}

pub struct Dendrite {
    pub hotkey: Hotkey,
    client: Client<HttpConnector, Full<Bytes>>,
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}

impl Dendrite {
    pub fn new(hotkey: Hotkey) -> Dendrite {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        Dendrite { hotkey, client }
    }

    /// Sends `request` as the synapse's `request` field and waits up to `timeout`.
    pub async fn call(
        &self,
        target: &AxonTarget,
        synapse: Synapse,
        request: Option<&str>,
        timeout: Duration,
        options: &CallOptions,
    ) -> Result<Reply, DendriteError> {
        let nonce = options.nonce.unwrap_or_else(now_ns);
        let uuid = options.uuid.clone().unwrap_or_else(random_uuid);
        let body_hash = options.body_hash.clone().unwrap_or_else(|| EMPTY_BODY_HASH.to_string());
        let message = format!("{nonce}.{}.{}.{uuid}.{body_hash}", self.hotkey.ss58, target.hotkey);
        let signature = match &options.sign_as {
            Some(seed) => Hotkey::from_seed(seed).map(|k| k.sign(message.as_bytes())).unwrap_or([0; 64]),
            None => self.hotkey.sign(message.as_bytes()),
        };
        let body = match &options.raw_body {
            Some(raw) => raw.clone(),
            None => {
                let mut doc = serde_json::json!({
                    "name": synapse.route(),
                    "timeout": timeout.as_secs_f64(),
                    "request": request,
                    "response": null,
                    "computed_body_hash": "",
                });
                if synapse != Synapse::SessionInit {
                    doc["protocol_version"] = serde_json::json!(1);
                }
                doc.to_string().into_bytes()
            }
        };
        let route = options.route.clone().unwrap_or_else(|| synapse.route().to_string());
        let mut builder = hyper::Request::post(format!("http://{}/{route}", target.addr))
            .header("content-type", "application/json")
            .header("name", synapse.route())
            .header(
                "timeout",
                options.timeout_header.clone().unwrap_or_else(|| format!("{:.1}", timeout.as_secs_f64())),
            )
            .header("bt_header_axon_ip", target.addr.ip().to_string())
            .header("bt_header_axon_port", target.addr.port().to_string())
            .header("bt_header_axon_hotkey", &target.hotkey)
            .header("bt_header_dendrite_ip", "127.0.0.1")
            .header("bt_header_dendrite_version", DENDRITE_VERSION.to_string())
            .header("bt_header_dendrite_nonce", nonce.to_string())
            .header("bt_header_dendrite_uuid", &uuid)
            .header("bt_header_dendrite_hotkey", &self.hotkey.ss58)
            .header("computed_body_hash", &body_hash);
        if !options.unsigned {
            builder = builder.header("bt_header_dendrite_signature", format!("0x{}", hex::encode(signature)));
        }
        let request = builder.body(Full::new(Bytes::from(body))).map_err(|e| DendriteError::Http(e.to_string()))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| DendriteError::Http(e.to_string()))?;
            let status = response.status().as_u16();
            let bytes =
                response.into_body().collect().await.map_err(|e| DendriteError::Http(e.to_string()))?.to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            Ok(Reply {
                status,
                response: json.get("response").and_then(|v| v.as_str()).map(str::to_string),
                message: json.get("message").and_then(|v| v.as_str()).map(str::to_string),
            })
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| DendriteError::Timeout(timeout))?
    }
}

/// A random UUID in the usual text form (the SDK uses uuid1; any unique string works).
pub fn random_uuid() -> String {
    let b: [u8; 16] = rand::random();
    format!(
        "{}-{}-{}-{}-{}",
        hex::encode(&b[0..4]),
        hex::encode(&b[4..6]),
        hex::encode(&b[6..8]),
        hex::encode(&b[8..10]),
        hex::encode(&b[10..16])
    )
}
