//! Test helpers: temp folders, applying commands to a state machine, and PostgreSQL databases
//! from `ledger::testing`.

#![allow(dead_code)]

use std::path::PathBuf;

use futures::stream;
use ledger::command::Command;
use ledger::command::Proposal;
use ledger::state::StateMachine;
pub use ledger::testing::fresh_pg;
use ledger::types::Entry;
use ledger::types::EntryPayload;
use ledger::types::LogId;
use openraft::storage::RaftStateMachine;

pub fn temp_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// Applies commands one entry at a time, as a follower would.
pub struct Applier {
    pub sm: StateMachine,
    pub next: u64,
}

impl Applier {
    pub fn new(sm: StateMachine) -> Applier {
        Applier { sm, next: 0 }
    }

    pub async fn apply(&mut self, command: Command) {
        self.next += 1;
        let log_id = LogId::new(openraft::impls::leader_id_adv::LeaderId { term: 1, node_id: 1 }, self.next);
        let entry = Entry { log_id, payload: EntryPayload::Normal(Proposal::encode(&command)) };
        self.sm.apply(stream::iter(vec![Ok((entry, None))])).await.expect("apply");
    }
}
