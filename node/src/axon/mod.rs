//! The miner-facing axon: the Bittensor axon protocol as ByteLeap miners speak it.
//!
//! Pieces so far: hotkeys and signatures ([`identity`]), request freshness ([`nonce`]) and the
//! per-hotkey rate limit ([`limits`]).

pub mod http;
pub mod identity;
pub mod limits;
pub mod messages;
pub mod nonce;
pub mod session;
