//! openraft's own storage conformance suite, run against the SQL log store and state machine
//! on both backends.

mod common;

use ledger::Storage;
use ledger::state::StateMachine;
use ledger::store::log::LogStore;
use ledger::types::TypeConfig;
use openraft::StorageError;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;

struct SqliteBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SqliteBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let (guard, dir) = common::temp_dir();
        let (_db, storage) = Storage::open("sqlite://ledger.db", &dir).await.expect("open sqlite ledger");
        Ok((guard, storage.log, storage.state_machine))
    }
}

struct PostgresBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, (ledger::testing::PgDb, tempfile::TempDir)> for PostgresBuilder {
    async fn build(
        &self,
    ) -> Result<((ledger::testing::PgDb, tempfile::TempDir), LogStore, StateMachine), StorageError<TypeConfig>> {
        let pg = common::fresh_pg().await.expect("PostgreSQL was reachable a moment ago");
        let (guard, dir) = common::temp_dir();
        let (_db, storage) = Storage::open(&pg.url, &dir).await.expect("open postgres ledger");
        Ok(((pg, guard), storage.log, storage.state_machine))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_openraft_storage_suite() {
    Suite::test_all(SqliteBuilder).await.expect("suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_openraft_storage_suite() {
    if common::fresh_pg().await.is_none() {
        return;
    }
    Suite::test_all(PostgresBuilder).await.expect("suite");
}
