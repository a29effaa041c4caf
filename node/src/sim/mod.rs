//! Simulated miners for the devnet and the tests: they speak the ByteLeap miner protocol to
//! our axon over real HTTP.

pub mod dendrite;
pub mod miner;
pub mod session;
