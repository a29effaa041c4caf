//! The transport's edges: who may connect, and what a malformed frame does.

use std::sync::Arc;
use std::time::Duration;

use quinn::RecvStream;
use quinn::SendStream;
use transport::Endpoint;
use transport::Limits;
use transport::TransportError;
use transport::endpoint::Handler;
use transport::endpoint::Peer;
use transport::frame;
use transport::frame::Fault;
use transport::frame::Header;
use transport::frame::Kind;
use transport::pki::ClusterCa;
use transport::pki::TlsIdentity;

/// Echoes one request frame back, prefixed with the peer's certificate name.
struct Echo;

impl Handler for Echo {
    async fn handle(&self, _header: Header, mut send: SendStream, mut recv: RecvStream, peer: Peer) {
        match frame::read_value::<String>(&mut recv, 1024).await {
            Ok(text) => {
                let reply: Result<String, Fault> = Ok(format!("{}:{text}", peer.name.unwrap_or_default()));
                let _ = frame::write_value(&mut send, &reply).await;
                let _ = send.finish();
            }
            Err(e) => transport::endpoint::refuse(&mut send, &mut recv, e.into(), &peer).await,
        }
    }
}

fn identity(ca: &ClusterCa, name: &str) -> TlsIdentity {
    TlsIdentity::from_issued(ca, &ca.issue(name, &[]).unwrap()).unwrap()
}

fn limits() -> Limits {
    Limits { connect_timeout: Duration::from_secs(2), max_frame: 1024, ..Limits::default() }
}

async fn server(ca: &ClusterCa) -> (Arc<Endpoint>, String) {
    let endpoint = Endpoint::bind("127.0.0.1:0".parse().unwrap(), &identity(ca, "node-a"), limits()).unwrap();
    let addr = endpoint.local_addr().unwrap().to_string();
    tokio::spawn(endpoint.clone().serve(Arc::new(Echo)));
    (endpoint, addr)
}

#[tokio::test]
async fn members_of_the_same_ca_talk() {
    let ca = ClusterCa::generate("test").unwrap();
    let (_server, addr) = server(&ca).await;
    let client = Endpoint::client(&identity(&ca, "node-b"), limits()).unwrap();
    let reply: String = client
        .unary(&addr, "node-a", Header::new(Kind::Request("echo".into()), 0), &"hi".to_string(), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(reply, "node-b:hi");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_at_the_handshake() {
    let ca = ClusterCa::generate("test").unwrap();
    let (_server, addr) = server(&ca).await;
    let other = ClusterCa::generate("intruder").unwrap();
    let client = Endpoint::client(&identity(&other, "node-a"), limits()).unwrap();
    let err = client
        .unary::<String, String>(
            &addr,
            "node-a",
            Header::new(Kind::Request("echo".into()), 0),
            &"hi".into(),
            Duration::from_secs(3),
        )
        .await
        .unwrap_err();
    // The client does not trust the server (other CA) and the server would not trust the client.
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
}

#[tokio::test]
async fn a_server_refuses_a_client_certificate_from_another_ca() {
    // The client trusts the real CA (so it would accept the server) but presents a certificate
    // signed by another CA: the server must refuse during the handshake.
    let ca = ClusterCa::generate("test").unwrap();
    let (_server, addr) = server(&ca).await;
    let other = ClusterCa::generate("intruder").unwrap();
    let forged = other.issue("node-b", &[]).unwrap();
    let client_identity = TlsIdentity::from_pem(&ca.cert_pem, &forged.cert_pem, &forged.key_pem).unwrap();
    let client = Endpoint::client(&client_identity, limits()).unwrap();
    let result = client
        .unary::<String, String>(
            &addr,
            "node-a",
            Header::new(Kind::Request("echo".into()), 0),
            &"hi".into(),
            Duration::from_secs(3),
        )
        .await;
    assert!(result.is_err(), "a forged client certificate was served: {result:?}");
}

#[tokio::test]
async fn a_malformed_frame_ends_the_stream_not_the_connection() {
    let ca = ClusterCa::generate("test").unwrap();
    let (_server, addr) = server(&ca).await;
    let client = Endpoint::client(&identity(&ca, "node-b"), limits()).unwrap();

    // A header that is not a header.
    let conn = client.connection(&addr, "node-a").await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    frame::write_frame(&mut send, &[0xff, 0xff, 0xff, 0xff, 0x07]).await.unwrap();
    let reply: Result<(), Fault> = frame::read_value(&mut recv, 1024).await.unwrap();
    assert!(matches!(reply, Err(Fault::Malformed(_))), "{reply:?}");

    // A frame larger than the limit is refused before it is read.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    frame::write_value(&mut send, &Header::new(Kind::Request("echo".into()), 0)).await.unwrap();
    send.write_all(&(1u32 << 30).to_le_bytes()).await.unwrap();
    let reply: Result<(), Fault> = frame::read_value(&mut recv, 1024).await.unwrap();
    assert!(matches!(reply, Err(Fault::TooLarge { .. })), "{reply:?}");

    // The same connection still serves well-formed calls.
    let reply: String = client
        .unary(
            &addr,
            "node-a",
            Header::new(Kind::Request("echo".into()), 0),
            &"still here".to_string(),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert_eq!(reply, "node-b:still here");
}
