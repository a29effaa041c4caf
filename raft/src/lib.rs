//! The replicated ledger of the ByteLeap HA validator.
//!
//! Several validator nodes serve one hotkey. Everything they must agree on (registered miners,
//! workers, challenges, scores, weight submission intents) is a [`command::Command`] in one
//! Raft log, replicated by [openraft] and applied by every node into its own SQL database. This
//! crate is everything about that log except the network:
//!
//! * [`types`]: the openraft type configuration ([`types::TypeConfig`]) and aliases;
//! * [`command`]: the versioned command set and how a command is encoded in an entry;
//! * [`store`]: the node's database (SQLite or PostgreSQL) and the durable log and vote
//!   ([`store::log::LogStore`], group-committed);
//! * [`state`]: the state machine, applying commands into SQL tables, one transaction per batch
//!   together with the applied marker ([`state::StateMachine`]), and reads ([`state::StateReader`]);
//! * [`tables`]: the canonical, backend-neutral form of the state tables, from which both
//!   snapshots and state hashes are made;
//! * [`snapshot`]: snapshot files (checksummed, streamed, built off the apply path).
//!
//! The network (QUIC between members) lives in the `transport` crate; the node wires both.
//!
//! [openraft]: https://docs.rs/openraft

pub mod command;
pub mod error;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod tables;
#[cfg(feature = "testing")]
pub mod testing;
pub mod types;

pub use error::LedgerError;

/// Everything a node needs to start Raft on its database.
pub struct Storage {
    pub node_id: types::NodeId,
    pub log: store::log::LogStore,
    pub state_machine: state::StateMachine,
    pub reader: state::StateReader,
}

impl Storage {
    /// Opens the ledger at `database_url` (relative SQLite paths from `data_dir`), keeping
    /// snapshot files in `data_dir/snapshots`.
    pub async fn open(
        database_url: &str,
        data_dir: &std::path::Path,
    ) -> Result<(store::Database, Storage), LedgerError> {
        let db = store::Database::open(database_url, data_dir).await?;
        let log = store::log::LogStore::open(&db).await?;
        let state_machine = state::StateMachine::open(&db, data_dir.join("snapshots")).await?;
        let reader = state_machine.reader();
        Ok((db, Storage { node_id: log.node_id(), log, state_machine, reader }))
    }
}
