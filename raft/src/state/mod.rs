//! The state machine: committed commands applied into the SQL state tables.
//!
//! Each apply batch is one transaction that holds the batch's row changes and the applied
//! marker (`sm_meta.applied`), so a crash leaves either all of a batch or none of it, and
//! restart resumes exactly after the last applied entry (the rest is replayed from the log).
//!
//! The state machine owns one writer connection; reads go through [`StateReader`] on the
//! reader pool. Snapshots are built by [`SnapshotBuilder`] in a read transaction, off the apply
//! path (see [`crate::snapshot`]).

pub mod apply;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

use futures::Stream;
use futures::TryStreamExt;
use openraft::EntryPayload;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use openraft::entry::RaftEntry;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use tokio::sync::watch;

use self::apply::Arg;
use self::apply::Plan;
use self::apply::Stmt;
use crate::command::Applied;
use crate::command::ChallengeStatus;
use crate::command::Command;
use crate::error::LedgerError;
use crate::on_backend;
use crate::on_pool;
use crate::snapshot;
use crate::snapshot::SnapshotFile;
use crate::snapshot::SnapshotHeader;
use crate::store::Database;
use crate::store::ReadPool;
use crate::store::Writer;
use crate::store::read_meta;
use crate::store::script::run_in_transaction;
use crate::store::upsert_meta_sql;
use crate::tables;
use crate::tables::HashSink;
use crate::tables::Record;
use crate::tables::Value;
use crate::types::LogId;
use crate::types::Snapshot;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;
use crate::types::TypeConfig;

pub const KEY_APPLIED: &str = "applied";
pub const KEY_MEMBERSHIP: &str = "membership";

type CurrentSnapshot = Arc<Mutex<Option<(SnapshotMeta, SnapshotFile)>>>;

/// openraft's state machine on the node's ledger database.
pub struct StateMachine {
    writer: Writer,
    readers: ReadPool,
    snapshot_dir: PathBuf,
    applied: Option<LogId>,
    membership: StoredMembership,
    current: CurrentSnapshot,
    progress: watch::Sender<Option<LogId>>,
    /// Bumped whenever the registered neurons may have changed (a metagraph sync or a snapshot).
    metagraph: watch::Sender<u64>,
}

/// Builds snapshots off the apply path.
pub struct SnapshotBuilder {
    readers: ReadPool,
    snapshot_dir: PathBuf,
    current: CurrentSnapshot,
}

/// Read access to the replicated state, for every part of the node.
#[derive(Clone)]
pub struct StateReader {
    readers: ReadPool,
    progress: watch::Receiver<Option<LogId>>,
    metagraph: watch::Receiver<u64>,
}

/// `(hotkey, worker_id, last_heartbeat_ms, last_ip, last_ip_at_ms)` of a worker.
pub type ScoringWorkerRow = (String, String, i64, Option<String>, Option<i64>);

/// `(hotkey, worker_id or gpu_uuid, block, bits)` of a presence row.
pub type PresenceRow = (String, String, i64, i64);

/// A recorded scoring pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScorePassRow {
    pub seq: i64,
    pub at_ms: i64,
    pub inputs_digest: Vec<u8>,
    pub weights: Vec<(u16, u16)>,
}

/// One change of a worker's public IP: `(hotkey, worker_id, at_ms, new_ip, prev_at_ms)`.
pub type IpChange = (String, String, i64, String, i64);

/// A typed argument of a reader query.
enum Bind<'a> {
    Text(&'a str),
    Int(i64),
}

/// A challenge row (see `migrations/*/0001_ledger.sql`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRow {
    pub id: String,
    pub hotkey: String,
    pub worker_id: String,
    pub kind: String,
    pub seed: Vec<u8>,
    pub matrix_size: i64,
    pub iterations: i64,
    pub status: String,
    pub issued_at_ms: i64,
    pub updated_at_ms: i64,
    pub deadline_ms: Option<i64>,
    pub sent_at_ms: Option<i64>,
    pub committed_at_ms: Option<i64>,
    pub commitments_json: Option<String>,
    pub targets_json: Option<String>,
    pub received_by: Option<i64>,
    pub success: Option<bool>,
    pub success_count: Option<i64>,
    pub validator_fault: bool,
    pub notes: Option<String>,
}

impl ChallengeRow {
    fn from_row<R: sqlx::Row>(row: &R) -> Result<ChallengeRow, sqlx::Error>
    where
        for<'r> &'r str: sqlx::ColumnIndex<R>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(ChallengeRow {
            id: row.try_get("id")?,
            hotkey: row.try_get("hotkey")?,
            worker_id: row.try_get("worker_id")?,
            kind: row.try_get("kind")?,
            seed: row.try_get("seed")?,
            matrix_size: row.try_get("matrix_size")?,
            iterations: row.try_get("iterations")?,
            status: row.try_get("status")?,
            issued_at_ms: row.try_get("issued_at_ms")?,
            updated_at_ms: row.try_get("updated_at_ms")?,
            deadline_ms: row.try_get("deadline_ms")?,
            sent_at_ms: row.try_get("sent_at_ms")?,
            committed_at_ms: row.try_get("committed_at_ms")?,
            commitments_json: row.try_get("commitments_json")?,
            targets_json: row.try_get("targets_json")?,
            received_by: row.try_get("received_by")?,
            success: row.try_get("success")?,
            success_count: row.try_get("success_count")?,
            validator_fault: row.try_get("validator_fault")?,
            notes: row.try_get("notes")?,
        })
    }
}

/// A worker as the issuing pass needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRow {
    pub worker_id: String,
    pub last_heartbeat_ms: i64,
    pub capabilities: Vec<String>,
    pub status: String,
}

/// A miner row (see `migrations/*/0002_miners.sql`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinerRow {
    pub hotkey: String,
    pub public_ip: Option<String>,
    pub miner_version: Option<String>,
    pub last_heartbeat_ms: i64,
    pub received_by: i64,
    pub ip_changes: i64,
    pub ip_changed_at_ms: Option<i64>,
}

/// A GPU inventory row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuRow {
    pub uuid: String,
    pub hotkey: String,
    pub worker_id: String,
    pub model: String,
    pub memory_mb: i64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub contested_by: Option<String>,
    pub conflicts: i64,
}

/// The content hash of the state at one applied log index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateHash {
    pub applied: Option<LogId>,
    pub hash: [u8; 32],
    pub rows: u64,
}

/// Binds a canonical row; NULLs get their column's type (PostgreSQL refuses a text NULL in a
/// BIGINT column).
macro_rules! bind_values {
    ($query:expr, $spec:expr, $rows:expr) => {{
        let mut q = $query;
        for row in $rows {
            for (value, column) in row.iter().zip($spec.columns.iter()) {
                q = match value {
                    Value::Null => match column.ty {
                        tables::ColType::Int => q.bind(Option::<i64>::None),
                        tables::ColType::Text => q.bind(Option::<String>::None),
                        tables::ColType::Blob => q.bind(Option::<Vec<u8>>::None),
                        tables::ColType::Bool => q.bind(Option::<bool>::None),
                    },
                    Value::Int(v) => q.bind(*v),
                    Value::Text(v) => q.bind(v.as_str()),
                    Value::Blob(v) => q.bind(v.as_slice()),
                    Value::Bool(v) => q.bind(*v),
                };
            }
        }
        q
    }};
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, LedgerError> {
    postcard::from_bytes(bytes).map_err(|e| LedgerError::Corrupt(format!("{what}: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| io::Error::other(format!("encode: {e}")))
}

/// One entry of an apply batch, decoded.
enum Step {
    Nothing,
    Membership(StoredMembership),
    Command(Command),
}

impl StateMachine {
    /// Opens the state machine; `snapshot_dir` keeps this node's snapshot files.
    pub async fn open(db: &Database, snapshot_dir: PathBuf) -> Result<StateMachine, LedgerError> {
        let readers = db.readers().clone();
        let applied: Option<LogId> = match read_meta(&readers, "sm_meta", KEY_APPLIED).await? {
            Some(b) => decode(&b, "applied marker")?,
            None => None,
        };
        let membership: StoredMembership = match read_meta(&readers, "sm_meta", KEY_MEMBERSHIP).await? {
            Some(b) => decode(&b, "membership")?,
            None => StoredMembership::default(),
        };
        tokio::fs::create_dir_all(&snapshot_dir).await?;
        let mut current = None;
        if let Some((header, file)) = snapshot::newest_in(&snapshot_dir).await? {
            if header.meta.last_log_id <= applied {
                current = Some((header.meta, file));
            } else {
                // A received snapshot whose install did not commit: the state never had it.
                tracing::warn!(path = %file.path.display(), "removing a snapshot newer than the applied state");
                let _ = tokio::fs::remove_file(&file.path).await;
            }
        }
        let writer = db.apply_writer().await?;
        let (progress, _) = watch::channel(applied);
        let (metagraph, _) = watch::channel(0);
        Ok(StateMachine {
            writer,
            readers,
            snapshot_dir,
            applied,
            membership,
            current: Arc::new(Mutex::new(current)),
            progress,
            metagraph,
        })
    }

    /// A reader that stays valid after the state machine moves into openraft.
    pub fn reader(&self) -> StateReader {
        StateReader {
            readers: self.readers.clone(),
            progress: self.progress.subscribe(),
            metagraph: self.metagraph.subscribe(),
        }
    }

    /// Applies a batch of decoded steps in one transaction and returns one result per step.
    async fn apply_steps(&mut self, steps: &[Step], last: LogId) -> Result<Vec<Applied>, LedgerError> {
        let mut results = vec![Applied::Nothing; steps.len()];
        // Which statement decides each step's result (its guard, or the batch it joined).
        let mut decided_by: Vec<Option<usize>> = vec![None; steps.len()];
        // The same for the items of batches: (step, item, statement).
        let mut batch_decided: Vec<(usize, usize, usize)> = Vec::new();
        let mut metagraph_in_batch = false;
        let mut stmts: Vec<Stmt> = Vec::new();
        let mut membership = None;
        // A run of PutSetting commands becomes one upsert (the last value per key wins).
        let mut settings: BTreeMap<String, String> = BTreeMap::new();
        let mut settings_at: Vec<usize> = Vec::new();
        let flush_settings = |settings: &mut BTreeMap<String, String>,
                              settings_at: &mut Vec<usize>,
                              stmts: &mut Vec<Stmt>,
                              decided_by: &mut Vec<Option<usize>>| {
            if settings.is_empty() {
                return;
            }
            stmts.push(apply::settings_batch(settings));
            for at in settings_at.drain(..) {
                decided_by[at] = Some(stmts.len() - 1);
            }
            settings.clear();
        };
        for (i, step) in steps.iter().enumerate() {
            if let Step::Command(Command::PutSetting { key, value }) = step {
                match apply::check_setting(key, value) {
                    Ok(()) => {
                        settings.insert(key.clone(), value.clone());
                        settings_at.push(i);
                    }
                    Err(refused) => results[i] = refused,
                }
                continue;
            }
            flush_settings(&mut settings, &mut settings_at, &mut stmts, &mut decided_by);
            match step {
                Step::Nothing => {}
                Step::Membership(m) => membership = Some(m.clone()),
                Step::Command(Command::Batch(items)) => {
                    // Decoded once more here; the leader already refused batches that do not.
                    let decoded = match Command::batch_items(items) {
                        Ok(decoded) => decoded,
                        Err(e) => {
                            results[i] = Applied::Refused(e.to_string());
                            continue;
                        }
                    };
                    let mut item_results = Vec::with_capacity(decoded.len());
                    for (j, item) in decoded.into_iter().enumerate() {
                        let planned = match item {
                            Ok(command) => {
                                metagraph_in_batch |= matches!(command, Command::SyncMetagraph(_));
                                apply::plan(&command)
                            }
                            Err(e) => Plan::Refuse(e.to_string()),
                        };
                        match planned {
                            Plan::Refuse(reason) => item_results.push(Applied::Refused(reason)),
                            Plan::Run(planned) => {
                                item_results.push(Applied::Done);
                                for stmt in planned {
                                    if stmt.guard.is_some() {
                                        batch_decided.push((i, j, stmts.len()));
                                    }
                                    stmts.push(stmt);
                                }
                            }
                        }
                    }
                    results[i] = Applied::Batch(item_results);
                }
                Step::Command(command) => match apply::plan(command) {
                    Plan::Refuse(reason) => results[i] = Applied::Refused(reason),
                    Plan::Run(planned) => {
                        results[i] = Applied::Done;
                        for stmt in planned {
                            if stmt.guard.is_some() {
                                decided_by[i] = Some(stmts.len());
                            }
                            stmts.push(stmt);
                        }
                    }
                },
            }
        }
        flush_settings(&mut settings, &mut settings_at, &mut stmts, &mut decided_by);
        stmts.push(Stmt::new(
            upsert_meta_sql("sm_meta"),
            vec![Arg::Text(KEY_APPLIED.into()), Arg::Blob(encode(&Some(last))?)],
        ));
        if let Some(m) = &membership {
            stmts.push(Stmt::new(
                upsert_meta_sql("sm_meta"),
                vec![Arg::Text(KEY_MEMBERSHIP.into()), Arg::Blob(encode(m)?)],
            ));
        }
        let affected = {
            let mut guard = self.writer.lock().await?;
            run_in_transaction(guard.conn(), &stmts).await?
        };
        for (i, by) in decided_by.iter().enumerate() {
            let Some(at) = *by else { continue };
            match &stmts[at].guard {
                Some(reason) if affected.get(at).copied().unwrap_or(0) == 0 => {
                    results[i] = Applied::Refused(reason.clone())
                }
                _ => results[i] = Applied::Done,
            }
        }
        for (i, j, at) in batch_decided {
            if let (Some(reason), Applied::Batch(items)) = (&stmts[at].guard, &mut results[i])
                && affected.get(at).copied().unwrap_or(0) == 0
                && let Some(item) = items.get_mut(j)
            {
                *item = Applied::Refused(reason.clone());
            }
        }
        self.applied = Some(last);
        if let Some(m) = membership {
            self.membership = m;
        }
        self.progress.send_replace(self.applied);
        if metagraph_in_batch || steps.iter().any(|s| matches!(s, Step::Command(Command::SyncMetagraph(_)))) {
            self.metagraph.send_modify(|v| *v += 1);
        }
        Ok(results)
    }

    /// Replaces the whole state with a verified snapshot file.
    async fn install(&mut self, meta: &SnapshotMeta, file: &SnapshotFile) -> Result<(), LedgerError> {
        let (header, opened, mut records) = snapshot::open(&file.path).await?;
        if opened.checksum != file.checksum {
            return Err(LedgerError::Snapshot("snapshot file changed after it was verified".into()));
        }
        if header.meta != *meta {
            return Err(LedgerError::Snapshot(format!(
                "snapshot file describes {:?}, the leader sent {:?}",
                header.meta.last_log_id, meta.last_log_id
            )));
        }
        let mut rows_seen = 0u64;
        let mut guard = self.writer.lock().await?;
        on_backend!(guard.conn(), c => {
            let mut tx = sqlx::Connection::begin(c).await?;
            for spec in tables::TABLES.iter().rev() {
                sqlx::query(crate::store::dynamic(&format!("DELETE FROM {}", spec.name))).execute(&mut *tx).await?;
            }
            let mut table: Option<&'static tables::TableSpec> = None;
            let mut pending: Vec<Vec<Value>> = Vec::new();
            loop {
                let record = records.next().await?;
                let flush = !matches!(record, Some(Record::Row(_)));
                if let Some(Record::Row(values)) = record.clone() {
                    let spec = table.ok_or_else(|| LedgerError::Snapshot("row before any table".into()))?;
                    tables::check_row(spec, &values).map_err(LedgerError::Snapshot)?;
                    pending.push(values);
                    rows_seen += 1;
                }
                if let Some(spec) = table && (flush || pending.len() >= tables::rows_per_insert(spec)) && !pending.is_empty() {
                    let sql = tables::insert_sql(spec, pending.len());
                    bind_values!(sqlx::query(crate::store::dynamic(&sql)), spec, pending.iter()).execute(&mut *tx).await?;
                    pending.clear();
                }
                match record {
                    Some(Record::Table { name, columns }) => {
                        table = Some(tables::spec_for(&name, &columns).map_err(LedgerError::Snapshot)?);
                    }
                    Some(Record::Row(_)) => {}
                    Some(Record::End { rows }) => {
                        if rows != rows_seen {
                            return Err(LedgerError::Snapshot(format!("End says {rows} rows, the file has {rows_seen}")));
                        }
                    }
                    None => break,
                }
            }
            sqlx::query(crate::store::dynamic(&upsert_meta_sql("sm_meta"))).bind(KEY_APPLIED).bind(encode(&meta.last_log_id)?).execute(&mut *tx).await?;
            sqlx::query(crate::store::dynamic(&upsert_meta_sql("sm_meta"))).bind(KEY_MEMBERSHIP).bind(encode(&meta.last_membership)?).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        let final_path = self.snapshot_dir.join(snapshot::file_name(meta.last_log_id));
        if file.path != final_path {
            tokio::fs::rename(&file.path, &final_path).await?;
        }
        snapshot::remove_others(&self.snapshot_dir, &final_path).await;
        let installed = SnapshotFile { path: final_path, ..file.clone() };
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((meta.clone(), installed));
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.progress.send_replace(self.applied);
        self.metagraph.send_modify(|v| *v += 1);
        tracing::info!(last_log_id = ?meta.last_log_id.map(|l| l.index), rows = rows_seen, "snapshot installed");
        metrics::counter!("ledger_snapshots_installed_total").increment(1);
        Ok(())
    }
}

fn decode_step(entry: &crate::types::Entry) -> Result<Step, io::Error> {
    Ok(match &entry.payload {
        EntryPayload::Blank => Step::Nothing,
        EntryPayload::Membership(m) => Step::Membership(StoredMembership::new(Some(entry.log_id()), m.clone())),
        EntryPayload::Normal(proposal) => match proposal.decode() {
            Ok(command) => Step::Command(command),
            Err(e) => {
                // Never skip a committed entry: that would fork this node's state from the
                // others'. Stop applying; an upgraded binary resumes from here.
                tracing::error!(index = entry.log_id().index, error = %e, "cannot apply a committed entry; stopping");
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("entry {} cannot be applied by this node: {e}", entry.log_id().index),
                ));
            }
        },
    })
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut steps = Vec::new();
        let mut responders = Vec::new();
        let mut last = None;
        while let Some((entry, responder)) = entries.try_next().await? {
            steps.push(decode_step(&entry)?);
            responders.push(responder);
            last = Some(entry.log_id());
        }
        let Some(last) = last else { return Ok(()) };
        let started = std::time::Instant::now();
        let results = self.apply_steps(&steps, last).await.map_err(io::Error::from)?;
        metrics::histogram!("ledger_apply_batch_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("ledger_apply_batch_entries").record(steps.len() as f64);
        metrics::counter!("ledger_entries_applied_total").increment(steps.len() as u64);
        for (responder, result) in responders.into_iter().zip(results) {
            if let Some(responder) = responder {
                responder.send(result);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            readers: self.readers.clone(),
            snapshot_dir: self.snapshot_dir.clone(),
            current: self.current.clone(),
        }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotFile) -> Result<(), io::Error> {
        self.install(meta, &snapshot).await.map_err(|e| {
            tracing::error!(error = %e, "snapshot install failed");
            io::Error::from(e)
        })
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(current.map(|(meta, file)| Snapshot { meta, snapshot: file }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let started = std::time::Instant::now();
        let (SnapshotHeader { meta, .. }, file) =
            snapshot::build(&self.readers, &self.snapshot_dir).await.map_err(io::Error::from)?;
        metrics::histogram!("ledger_snapshot_build_seconds").record(started.elapsed().as_secs_f64());
        snapshot::remove_others(&self.snapshot_dir, &file.path).await;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((meta.clone(), file.clone()));
        Ok(Snapshot { meta, snapshot: file })
    }
}

impl StateReader {
    /// Blake3 of the canonical state stream, with the applied log id it belongs to. Two nodes
    /// at the same applied index must report the same hash.
    pub async fn state_hash(&self) -> Result<StateHash, LedgerError> {
        let mut tx = self.readers.begin_read().await?;
        let applied: Option<LogId> = match tx.sm_meta(KEY_APPLIED).await? {
            Some(b) => decode(&b, "applied marker")?,
            None => None,
        };
        let mut sink = HashSink::default();
        let rows = tables::export(&mut tx, &mut sink).await?;
        Ok(StateHash { applied, hash: *sink.0.finalize().as_bytes(), rows })
    }

    /// The applied log id as last reported by the state machine.
    pub fn applied(&self) -> Option<LogId> {
        *self.progress.borrow()
    }

    /// Waits until the state machine has applied at least `index`.
    pub async fn wait_applied(&self, index: u64) -> Result<(), LedgerError> {
        let mut rx = self.progress.clone();
        rx.wait_for(|applied| applied.is_some_and(|a| a.index >= index))
            .await
            .map(|_| ())
            .map_err(|_| LedgerError::Corrupt("state machine stopped".into()))
    }

    /// A receiver that changes whenever the registered neurons may have changed.
    pub fn metagraph_changes(&self) -> watch::Receiver<u64> {
        self.metagraph.clone()
    }

    /// Every registered hotkey (the axon's allow-list, byteleap-protocol.md §2.2).
    pub async fn registered_hotkeys(&self) -> Result<Vec<String>, LedgerError> {
        Ok(on_pool!(&self.readers, p => {
            sqlx::query_scalar::<_, String>("SELECT hotkey FROM neurons").fetch_all(p).await
        })?)
    }

    /// The registered neurons, by uid.
    pub async fn neurons(&self) -> Result<Vec<crate::command::Neuron>, LedgerError> {
        type Row = (i64, String, String, i64, bool, Option<String>);
        let rows: Vec<Row> = on_pool!(&self.readers, p => {
            sqlx::query_as::<_, Row>(
                "SELECT uid, hotkey, coldkey, stake_rao, validator_permit, axon FROM neurons ORDER BY uid",
            )
            .fetch_all(p)
            .await
        })?;
        rows.into_iter()
            .map(|(uid, hotkey, coldkey, stake, permit, axon)| {
                Ok(crate::command::Neuron {
                    uid: u16::try_from(uid).map_err(|_| LedgerError::Corrupt(format!("uid {uid}")))?,
                    hotkey,
                    coldkey,
                    stake_rao: u64::try_from(stake).map_err(|_| LedgerError::Corrupt(format!("stake {stake}")))?,
                    validator_permit: permit,
                    axon,
                })
            })
            .collect()
    }

    /// A miner as heartbeats left it.
    pub async fn miner(&self, hotkey: &str) -> Result<Option<MinerRow>, LedgerError> {
        type Row = (Option<String>, Option<String>, i64, i64, i64, Option<i64>);
        let row: Option<Row> = on_pool!(&self.readers, p => {
            sqlx::query_as::<_, Row>(
                "SELECT public_ip, miner_version, last_heartbeat_ms, received_by, ip_changes, ip_changed_at_ms \
                 FROM miners WHERE hotkey = $1",
            )
            .bind(hotkey)
            .fetch_optional(p)
            .await
        })?;
        Ok(row.map(|(public_ip, miner_version, last, by, changes, changed_at)| MinerRow {
            hotkey: hotkey.to_string(),
            public_ip,
            miner_version,
            last_heartbeat_ms: last,
            received_by: by,
            ip_changes: changes,
            ip_changed_at_ms: changed_at,
        }))
    }

    /// One GPU of the inventory.
    pub async fn gpu(&self, uuid: &str) -> Result<Option<GpuRow>, LedgerError> {
        let rows = self.gpus_where("gpu_uuid = $1", uuid, None).await?;
        Ok(rows.into_iter().next())
    }

    /// The GPUs a worker owns.
    pub async fn gpus_of(&self, hotkey: &str, worker_id: &str) -> Result<Vec<GpuRow>, LedgerError> {
        self.gpus_where("hotkey = $1 AND worker_id = $2", hotkey, Some(worker_id)).await
    }

    async fn gpus_where(&self, condition: &str, a: &str, b: Option<&str>) -> Result<Vec<GpuRow>, LedgerError> {
        type Row = (String, String, String, String, i64, i64, i64, Option<String>, i64);
        let sql = format!(
            "SELECT gpu_uuid, hotkey, worker_id, gpu_model, memory_mb, first_seen_ms, last_seen_ms, contested_by, \
             conflicts FROM gpu_inventory WHERE {condition} ORDER BY gpu_uuid"
        );
        let rows: Vec<Row> = on_pool!(&self.readers, p => {
            let mut q = sqlx::query_as::<_, Row>(crate::store::dynamic(&sql)).bind(a);
            if let Some(b) = b {
                q = q.bind(b);
            }
            q.fetch_all(p).await
        })?;
        Ok(rows
            .into_iter()
            .map(|(uuid, hotkey, worker_id, model, memory_mb, first, last, contested_by, conflicts)| GpuRow {
                uuid,
                hotkey,
                worker_id,
                model,
                memory_mb,
                first_seen_ms: first,
                last_seen_ms: last,
                contested_by,
                conflicts,
            })
            .collect())
    }

    /// One challenge.
    pub async fn challenge(&self, id: &str) -> Result<Option<ChallengeRow>, LedgerError> {
        Ok(self.challenges_where("id = $1", &[Bind::Text(id)]).await?.into_iter().next())
    }

    /// A miner's challenges in one status, oldest first.
    pub async fn challenges_of(&self, hotkey: &str, status: ChallengeStatus) -> Result<Vec<ChallengeRow>, LedgerError> {
        self.challenges_where("hotkey = $1 AND status = $2", &[Bind::Text(hotkey), Bind::Text(status.as_str())]).await
    }

    /// Challenges in a status whose deadline is before `now_ms` (the leader's sweep).
    pub async fn overdue_challenges(
        &self,
        status: ChallengeStatus,
        now_ms: i64,
    ) -> Result<Vec<ChallengeRow>, LedgerError> {
        self.overdue_challenges_limited(status, now_ms, i64::MAX).await
    }

    /// At most `limit` of [`Self::overdue_challenges`], the most overdue first; the filter runs
    /// in SQL on the `(status, deadline_ms)` index, so a sweep over a full subnet reads only
    /// what it ends.
    pub async fn overdue_challenges_limited(
        &self,
        status: ChallengeStatus,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<ChallengeRow>, LedgerError> {
        self.challenges_where(
            "status = $1 AND deadline_ms IS NOT NULL AND deadline_ms < $2 ORDER BY deadline_ms, id LIMIT $3",
            &[Bind::Text(status.as_str()), Bind::Int(now_ms), Bind::Int(limit.max(0))],
        )
        .await
    }

    /// `condition` is the SQL after `WHERE`; it may end with its own `ORDER BY`, else rows
    /// come oldest first.
    async fn challenges_where(&self, condition: &str, binds: &[Bind<'_>]) -> Result<Vec<ChallengeRow>, LedgerError> {
        let sql = format!(
            "SELECT id, hotkey, worker_id, kind, seed, matrix_size, iterations, status, issued_at_ms, updated_at_ms, \
             deadline_ms, sent_at_ms, committed_at_ms, commitments_json, targets_json, received_by, success, \
             success_count, validator_fault, notes FROM challenges WHERE {condition}{order}",
            order = if condition.contains("ORDER BY") { "" } else { " ORDER BY issued_at_ms, id" }
        );
        let rows = on_pool!(&self.readers, p => {
            let mut q = sqlx::query(crate::store::dynamic(&sql));
            for b in binds {
                q = match b {
                    Bind::Text(t) => q.bind(*t),
                    Bind::Int(i) => q.bind(*i),
                };
            }
            let rows = q.fetch_all(p).await?;
            rows.iter().map(ChallengeRow::from_row).collect::<Result<Vec<_>, sqlx::Error>>()
        })?;
        Ok(rows)
    }

    /// Hotkeys whose last heartbeat is at or after `since_ms`, with their newest challenge time.
    pub async fn active_miners(&self, since_ms: i64) -> Result<Vec<(String, Option<i64>)>, LedgerError> {
        Ok(on_pool!(&self.readers, p => {
            sqlx::query_as::<_, (String, Option<i64>)>(
                "SELECT m.hotkey, (SELECT MAX(c.issued_at_ms) FROM challenges c WHERE c.hotkey = m.hotkey) \
                 FROM miners m WHERE m.last_heartbeat_ms >= $1 ORDER BY m.hotkey",
            )
            .bind(since_ms)
            .fetch_all(p)
            .await
        })?)
    }

    /// A miner's workers, most recently heard first.
    pub async fn workers_of(&self, hotkey: &str) -> Result<Vec<WorkerRow>, LedgerError> {
        type Row = (String, i64, String, String);
        let rows: Vec<Row> = on_pool!(&self.readers, p => {
            sqlx::query_as::<_, Row>(
                "SELECT worker_id, last_heartbeat_ms, capabilities, status FROM workers WHERE hotkey = $1 \
                 ORDER BY last_heartbeat_ms DESC, worker_id",
            )
            .bind(hotkey)
            .fetch_all(p)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(worker_id, last_heartbeat_ms, capabilities, status)| WorkerRow {
                worker_id,
                last_heartbeat_ms,
                capabilities: serde_json::from_str(&capabilities).unwrap_or_default(),
                status,
            })
            .collect())
    }

    /// Presence bitmaps from `since_block` on (§4.3; see `migrations/*/0004_presence.sql`):
    /// `(hotkey, worker_id, block, bits)` in key order.
    pub async fn worker_presence(&self, since_block: i64) -> Result<Vec<PresenceRow>, LedgerError> {
        self.presence_rows("worker_presence", "worker_id", since_block).await
    }

    /// GPU presence per hotkey from `since_block` on: `(hotkey, gpu_uuid, block, bits)`.
    pub async fn gpu_presence(&self, since_block: i64) -> Result<Vec<PresenceRow>, LedgerError> {
        self.presence_rows("gpu_presence", "gpu_uuid", since_block).await
    }

    async fn presence_rows(
        &self,
        table: &str,
        column: &str,
        since_block: i64,
    ) -> Result<Vec<PresenceRow>, LedgerError> {
        let sql = format!(
            "SELECT hotkey, {column}, block, bits FROM {table} WHERE block >= $1 ORDER BY hotkey, {column}, block"
        );
        Ok(on_pool!(&self.readers, p => {
            sqlx::query_as::<_, PresenceRow>(crate::store::dynamic(&sql)).bind(since_block).fetch_all(p).await
        })?)
    }

    /// Changes of workers' public IPs whose previous IP heartbeat is at or after `since_ms`
    /// (the walk of §4.3 step 7 starts inside the window).
    pub async fn ip_changes(&self, since_ms: i64) -> Result<Vec<IpChange>, LedgerError> {
        Ok(on_pool!(&self.readers, p => {
            sqlx::query_as::<_, IpChange>(
                "SELECT hotkey, worker_id, at_ms, public_ip, prev_at_ms FROM worker_ip_changes \
                 WHERE prev_at_ms >= $1 ORDER BY hotkey, worker_id, at_ms",
            )
            .bind(since_ms)
            .fetch_all(p)
            .await
        })?)
    }

    /// Every miner ever heard, `(hotkey, last_heartbeat_ms)` in hotkey order (scoring §4.0).
    pub async fn all_miners(&self) -> Result<Vec<(String, i64)>, LedgerError> {
        Ok(on_pool!(&self.readers, p => {
            sqlx::query_as::<_, (String, i64)>("SELECT hotkey, last_heartbeat_ms FROM miners ORDER BY hotkey")
                .fetch_all(p)
                .await
        })?)
    }

    /// Every worker ever seen with what scoring reads of it, in key order.
    pub async fn scoring_workers(&self) -> Result<Vec<ScoringWorkerRow>, LedgerError> {
        Ok(on_pool!(&self.readers, p => {
            sqlx::query_as::<_, ScoringWorkerRow>(
                "SELECT hotkey, worker_id, last_heartbeat_ms, last_ip, last_ip_at_ms FROM workers \
                 ORDER BY hotkey, worker_id",
            )
            .fetch_all(p)
            .await
        })?)
    }

    /// Ended challenges issued at or after `since_ms`, oldest first (scoring §4.2, §4.3 step 4).
    pub async fn scored_challenges(&self, since_ms: i64) -> Result<Vec<ChallengeRow>, LedgerError> {
        self.challenges_where(
            "status IN ('verified', 'failed') AND issued_at_ms >= $1 ORDER BY issued_at_ms, id",
            &[Bind::Int(since_ms)],
        )
        .await
    }

    /// The GPU inventory: `(gpu_uuid, hotkey, last_seen_ms)` in uuid order.
    pub async fn gpu_owners(&self) -> Result<Vec<(String, String, i64)>, LedgerError> {
        Ok(on_pool!(&self.readers, p => {
            sqlx::query_as::<_, (String, String, i64)>(
                "SELECT gpu_uuid, hotkey, last_seen_ms FROM gpu_inventory ORDER BY gpu_uuid",
            )
            .fetch_all(p)
            .await
        })?)
    }

    /// Workers of a miner that have a challenge in progress (created, sent, committed, verifying).
    pub async fn busy_workers(&self, hotkey: &str) -> Result<std::collections::HashSet<String>, LedgerError> {
        let rows: Vec<String> = on_pool!(&self.readers, p => {
            sqlx::query_scalar::<_, String>(
                "SELECT DISTINCT worker_id FROM challenges WHERE hotkey = $1 \
                 AND status IN ('created', 'sent', 'committed', 'verifying')",
            )
            .bind(hotkey)
            .fetch_all(p)
            .await
        })?;
        Ok(rows.into_iter().collect())
    }

    /// Challenges still `created` (never polled) that were issued before `before_ms`, at most
    /// `limit`, oldest first, filtered in SQL (the sweep of §8.3.16).
    pub async fn stale_created_limited(&self, before_ms: i64, limit: i64) -> Result<Vec<ChallengeRow>, LedgerError> {
        self.challenges_where(
            "status = $1 AND issued_at_ms < $2 ORDER BY issued_at_ms, id LIMIT $3",
            &[Bind::Text("created"), Bind::Int(before_ms), Bind::Int(limit.max(0))],
        )
        .await
    }

    /// Challenges in a status (the sweeps; bounded by the number of in-flight challenges).
    pub async fn challenges_in(&self, status: ChallengeStatus) -> Result<Vec<ChallengeRow>, LedgerError> {
        self.challenges_where("status = $1", &[Bind::Text(status.as_str())]).await
    }

    /// Challenges by status: (open, verified, failed).
    pub async fn challenge_counts(&self) -> Result<(u64, u64, u64), LedgerError> {
        let rows: Vec<(String, i64)> = on_pool!(&self.readers, p => {
            sqlx::query_as::<_, (String, i64)>("SELECT status, COUNT(*) FROM challenges GROUP BY status").fetch_all(p).await
        })?;
        let mut counts = (0, 0, 0);
        for (status, n) in rows {
            let n = n.max(0) as u64;
            match status.as_str() {
                "verified" => counts.1 += n,
                "failed" => counts.2 += n,
                _ => counts.0 += n,
            }
        }
        Ok(counts)
    }

    /// A cluster-wide setting.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, LedgerError> {
        Ok(on_pool!(&self.readers, p => {
            sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(p).await
        })?)
    }

    /// The newest recorded scoring pass: `(seq, at_ms, inputs_digest, weights)` with the
    /// weights as `(uid, u16)` pairs.
    pub async fn last_score_pass(&self) -> Result<Option<ScorePassRow>, LedgerError> {
        let row: Option<(i64, i64, Vec<u8>, Vec<u8>)> = on_pool!(&self.readers, p => {
            sqlx::query_as::<_, (i64, i64, Vec<u8>, Vec<u8>)>(
                "SELECT seq, at_ms, inputs_digest, weights FROM score_passes ORDER BY seq DESC LIMIT 1",
            )
            .fetch_optional(p)
            .await
        })?;
        let Some((seq, at_ms, digest, weights)) = row else { return Ok(None) };
        let weights: Vec<(u16, u16)> = postcard::from_bytes(&weights)
            .map_err(|e| LedgerError::Snapshot(format!("score pass {seq} has unreadable weights: {e}")))?;
        Ok(Some(ScorePassRow { seq, at_ms, inputs_digest: digest, weights }))
    }

    /// The number of rows in each replicated table (status output).
    pub async fn table_sizes(&self) -> Result<Vec<(&'static str, i64)>, LedgerError> {
        let mut out = Vec::new();
        for spec in tables::TABLES {
            let sql = format!("SELECT COUNT(*) FROM {}", spec.name);
            let n: i64 = on_pool!(&self.readers, p => sqlx::query_scalar::<_, i64>(crate::store::dynamic(&sql)).fetch_one(p).await)?;
            out.push((spec.name, n));
        }
        Ok(out)
    }
}
