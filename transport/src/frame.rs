//! The wire format inside each QUIC stream.
//!
//! Every stream starts with a [`Header`] frame naming what the stream carries and which member
//! it is meant for; then request and response frames follow as that kind defines. A frame is
//! `u32 little-endian length || postcard bytes`. Lengths are checked against a limit before any
//! allocation, so a peer cannot make a node allocate what it announces; a frame that does not
//! decode ends that stream with a [`Fault`], never the connection or the node.

use quinn::RecvStream;
use quinn::SendStream;
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Raised when the stream layout changes incompatibly.
pub const PROTOCOL_VERSION: u8 = 1;
/// ALPN of the cluster transport: a peer speaking anything else fails the handshake.
pub const ALPN: &[u8] = b"byteleap-ledger/1";
/// Largest header frame.
pub const MAX_HEADER_BYTES: usize = 4096;

/// What a stream carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// One AppendEntries request and its response.
    Append,
    /// Pipelined AppendEntries: requests one way, results the other, until either side ends.
    StreamAppend,
    Vote,
    PreVote,
    /// A snapshot offer, the file in chunks, an empty end frame; one response.
    Snapshot,
    TransferLeader,
    /// A proposal forwarded from a follower to the leader.
    Forward,
    /// An application request/response (verification fan-out and later services).
    Request(String),
}

/// First frame of every stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub version: u8,
    pub kind: Kind,
    /// The member this stream is for; a member refuses streams for another id (a wiped node
    /// that came back under a new id must not take its predecessor's traffic). 0 = any.
    pub target: u64,
}

impl Header {
    pub fn new(kind: Kind, target: u64) -> Header {
        Header { version: PROTOCOL_VERSION, kind, target }
    }
}

/// Why the remote side refused or failed a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Fault {
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: u64, max: u64 },
    #[error("protocol version {0} is not supported")]
    Version(u8),
    #[error("this is member {actual}, not {expected}")]
    WrongMember { expected: u64, actual: u64 },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Failed(String),
}

/// Local errors moving frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("stream read: {0}")]
    Read(String),
    #[error("stream write: {0}")]
    Write(String),
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: u64, max: u64 },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("the stream ended early")]
    Ended,
}

impl From<FrameError> for Fault {
    fn from(e: FrameError) -> Fault {
        match e {
            FrameError::TooLarge { len, max } => Fault::TooLarge { len, max },
            FrameError::Malformed(m) => Fault::Malformed(m),
            other => Fault::Failed(other.to_string()),
        }
    }
}

/// Reads one frame; `Ok(None)` when the peer finished the stream cleanly between frames.
pub async fn read_frame(recv: &mut RecvStream, max: usize) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(FrameError::Ended),
        Err(quinn::ReadExactError::ReadError(e)) => return Err(FrameError::Read(e.to_string())),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len: len as u64, max: max as u64 });
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await.map_err(|e| match e {
        quinn::ReadExactError::FinishedEarly(_) => FrameError::Ended,
        quinn::ReadExactError::ReadError(e) => FrameError::Read(e.to_string()),
    })?;
    Ok(Some(body))
}

/// Reads one frame that must be there.
pub async fn read_required(recv: &mut RecvStream, max: usize) -> Result<Vec<u8>, FrameError> {
    read_frame(recv, max).await?.ok_or(FrameError::Ended)
}

pub async fn write_frame(send: &mut SendStream, body: &[u8]) -> Result<(), FrameError> {
    let len =
        u32::try_from(body.len()).map_err(|_| FrameError::TooLarge { len: body.len() as u64, max: u32::MAX as u64 })?;
    // One write for small frames keeps them in one QUIC packet.
    if body.len() <= 16 * 1024 {
        let mut buf = Vec::with_capacity(4 + body.len());
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(body);
        send.write_all(&buf).await.map_err(|e| FrameError::Write(e.to_string()))
    } else {
        send.write_all(&len.to_le_bytes()).await.map_err(|e| FrameError::Write(e.to_string()))?;
        send.write_all(body).await.map_err(|e| FrameError::Write(e.to_string()))
    }
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    postcard::to_allocvec(value).map_err(|e| FrameError::Malformed(format!("encode: {e}")))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FrameError> {
    postcard::from_bytes(bytes).map_err(|e| FrameError::Malformed(e.to_string()))
}

pub async fn write_value<T: Serialize>(send: &mut SendStream, value: &T) -> Result<(), FrameError> {
    write_frame(send, &encode(value)?).await
}

pub async fn read_value<T: DeserializeOwned>(recv: &mut RecvStream, max: usize) -> Result<T, FrameError> {
    decode(&read_required(recv, max).await?)
}
