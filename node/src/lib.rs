//! The ByteLeap HA validator node.
//!
//! Several nodes serve one validator hotkey of Bittensor subnet 128. This crate is the daemon
//! (`validator`) and its admin CLI (`validatorctl`); the replicated ledger is the `ledger`
//! crate (`raft/`), the member-to-member network the `transport` crate. See
//! `docs/architecture.md` for the map.
//!
//! * [`config`]: the TOML configuration, checked at start;
//! * [`init`]: `validator init` (certificates, config, the cluster CA once);
//! * [`challenge`]: the challenge math, bit-exact with the Python workers (byteleap-protocol.md §3);
//! * [`cluster`]: a running member (ledger + Raft + transport) and proposals;
//! * [`admin`]: the admin gRPC service and its client;
//! * [`proofs`]: verification jobs and their fan-out across members;
//! * [`duties`]: leader-only loops (challenge issuing and deadlines);
//! * [`scoring`]: the original's scoring pass, bit-exact, from challenges, presence bitmaps and
//!   lease scores to u16 weights, with every factor explained (byteleap-protocol.md §4);
//! * [`daemon`]: `validator run`, process lifecycle, logging, metrics endpoint;
//! * [`devnet`]: `validator devnet`, a local cluster of real processes;
//! * [`bench`]: `validator bench ...`;
//! * [`ctl`]: the commands of `validatorctl`.

pub mod admin;
pub mod axon;
pub mod bench;
pub mod challenge;
pub mod cluster;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod devnet;
pub mod duties;
pub mod init;
pub mod proofs;
pub mod scoring;
pub mod sim;

/// Installs ring as the process-wide rustls provider (the only one compiled in; see
/// toolchain.md §3). Idempotent.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
