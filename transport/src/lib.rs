//! The cluster transport: QUIC with mutual TLS between the members of one validator cluster.
//!
//! Members exchange three kinds of traffic over it: Raft's own messages (append, vote, leader
//! transfer, snapshots), proposals a follower forwards to the leader, and application requests
//! such as proof verification handed to a peer. All of it runs over one QUIC connection per
//! peer, a bidirectional stream per call, so bulk transfers never delay heartbeats.
//!
//! * [`pki`]: the cluster CA and member certificates (rcgen, ring);
//! * [`frame`]: the framing inside a stream, with bounded sizes;
//! * [`endpoint`]: the QUIC endpoint, connection cache, unary calls and the accept loop;
//! * [`raft_net`]: openraft's network on top, and the server side that feeds the local Raft.

pub mod endpoint;
pub mod frame;
pub mod pki;
pub mod raft_net;

pub use endpoint::Endpoint;
pub use endpoint::Limits;
pub use endpoint::TransportError;
