//! One SQL database per node holds the Raft log, the vote and the state machine.
//!
//! Why one database and why SQL: the state machine's tables are what operators and the later
//! duties query (challenges, workers, weights), and keeping the log next to them means a node's
//! whole durable state is one thing to back up, inspect or wipe. SQLite (a file in the node's
//! data directory) is the default; PostgreSQL is used when `database.url` is a `postgres://`
//! URL. Both run the same SQL (`$N` placeholders work in both); DDL differs only in type names,
//! so each backend has its own migration folder under `migrations/`.
//!
//! Connections have fixed roles, so each can be tuned for its job:
//! * the **log writer** ([`log::LogStore`]) owns one connection and commits every log and vote
//!   write durably (SQLite `synchronous=FULL` in WAL mode; PostgreSQL `synchronous_commit=on`);
//! * the **state machine** ([`crate::state::StateMachine`]) owns one connection and commits each
//!   apply batch together with its applied marker. It may skip the fsync (SQLite
//!   `synchronous=NORMAL`, PostgreSQL `synchronous_commit=off`): a lost apply is re-applied
//!   from the durable log after a crash, and the batch is still atomic;
//! * **readers** share a small pool (status, state hash, snapshot builds, queries). In WAL mode
//!   readers never block the writers, which is what lets snapshots build while apply goes on.

pub mod log;
pub mod script;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnectOptions;
use sqlx::postgres::PgConnection;
use sqlx::postgres::PgPool;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::sqlite::SqliteConnection;
use sqlx::sqlite::SqliteJournalMode;
use sqlx::sqlite::SqlitePool;
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::sqlite::SqliteSynchronous;

use crate::error::LedgerError;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Which SQL engine a node's ledger lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A dedicated connection with one role (log writer or state machine writer).
pub enum WriteConn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

struct WriterInner {
    conn: WriteConn,
    /// SQLite only: whether the shared connection currently runs `synchronous=FULL`.
    durable: Option<bool>,
}

/// A writer role on the database: the log's (durable commits) or the state machine's.
///
/// On SQLite both roles share one connection (see [`Database::durable_writer`]); each
/// transaction first switches `synchronous` to what its role needs.
pub struct Writer {
    inner: Arc<tokio::sync::Mutex<WriterInner>>,
    durable: bool,
}

/// Exclusive use of a writer for one transaction.
pub struct WriterGuard<'a> {
    guard: tokio::sync::MutexGuard<'a, WriterInner>,
}

impl Writer {
    /// Waits for the connection and prepares it for this role.
    pub async fn lock(&self) -> Result<WriterGuard<'_>, sqlx::Error> {
        let mut guard = self.inner.lock().await;
        if let Some(current) = guard.durable
            && current != self.durable
        {
            let pragma = if self.durable { "PRAGMA synchronous = FULL" } else { "PRAGMA synchronous = NORMAL" };
            if let WriteConn::Sqlite(conn) = &mut guard.conn {
                sqlx::query(pragma).execute(conn).await?;
            }
            guard.durable = Some(self.durable);
        }
        Ok(WriterGuard { guard })
    }
}

impl WriterGuard<'_> {
    pub fn conn(&mut self) -> &mut WriteConn {
        &mut self.guard.conn
    }
}

/// The shared pool for reads.
#[derive(Clone)]
pub enum ReadPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body against whichever backend a [`WriteConn`] or [`ReadPool`] holds. The body
/// is compiled once per backend with concrete types, which keeps sqlx's generics out of sight.
#[macro_export]
#[doc(hidden)]
macro_rules! on_backend {
    ($value:expr, $conn:ident => $body:expr) => {
        match $value {
            $crate::store::WriteConn::Sqlite($conn) => $body,
            $crate::store::WriteConn::Postgres($conn) => $body,
        }
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! on_pool {
    ($value:expr, $pool:ident => $body:expr) => {
        match $value {
            $crate::store::ReadPool::Sqlite($pool) => $body,
            $crate::store::ReadPool::Postgres($pool) => $body,
        }
    };
}

/// Where a node's ledger lives: parsed from `database.url`.
#[derive(Clone)]
pub struct Database {
    backend: Backend,
    sqlite: Option<SqliteConnectOptions>,
    postgres: Option<PgConnectOptions>,
    url_for_display: String,
    readers: ReadPool,
    sqlite_writer: Arc<tokio::sync::OnceCell<Arc<tokio::sync::Mutex<WriterInner>>>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.url_for_display)
    }
}

/// Reader pool size: status, hashes, snapshot builds and queries rarely overlap more.
const READERS: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Database {
    /// Opens (creating if needed) the ledger database and runs the migrations.
    ///
    /// `url` is `sqlite://PATH` (relative paths are taken from `base_dir`) or
    /// `postgres://...`/`postgresql://...`.
    pub async fn open(url: &str, base_dir: &Path) -> Result<Database, LedgerError> {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| LedgerError::Config(format!("database.url is not a valid PostgreSQL URL: {e}")))?;
            let readers = PgPoolOptions::new()
                .max_connections(READERS)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone())
                .await
                .map_err(|e| LedgerError::Connect(format!("{}: {e}", redact(url))))?;
            POSTGRES_MIGRATIONS.run(&readers).await.map_err(|e| LedgerError::Migrate(e.to_string()))?;
            Ok(Database {
                backend: Backend::Postgres,
                sqlite: None,
                postgres: Some(options),
                url_for_display: redact(url),
                readers: ReadPool::Postgres(readers),
                sqlite_writer: Default::default(),
            })
        } else if let Some(path) = lower.strip_prefix("sqlite://").map(|_| &url["sqlite://".len()..]) {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() || path == ":memory:" {
                return Err(LedgerError::Config(
                    "database.url must name a file (sqlite://PATH): an in-memory ledger would lose the log".into(),
                ));
            }
            let file = if Path::new(path).is_absolute() { Path::new(path).to_path_buf() } else { base_dir.join(path) };
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| LedgerError::Connect(format!("cannot create {}: {e}", parent.display())))?;
            }
            let options = SqliteConnectOptions::new()
                .filename(&file)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(BUSY_TIMEOUT)
                .pragma("cache_size", "-16000")
                // Checkpoint the WAL every ~40 MiB instead of every 4 MiB: each checkpoint is
                // an extra fsync of the main file under the log writer's lock.
                .pragma("wal_autocheckpoint", "10000")
                .pragma("journal_size_limit", "67108864");
            let readers = SqlitePoolOptions::new()
                .max_connections(READERS)
                .connect_with(options.clone())
                .await
                .map_err(|e| LedgerError::Connect(format!("{}: {e}", file.display())))?;
            SQLITE_MIGRATIONS.run(&readers).await.map_err(|e| LedgerError::Migrate(e.to_string()))?;
            Ok(Database {
                backend: Backend::Sqlite,
                sqlite: Some(options),
                postgres: None,
                url_for_display: format!("sqlite://{}", file.display()),
                readers: ReadPool::Sqlite(readers),
                sqlite_writer: Default::default(),
            })
        } else {
            Err(LedgerError::Config(format!(
                "database.url must start with sqlite:// or postgres://, got {:?}",
                redact(url)
            )))
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with any password removed, for logs and status.
    pub fn display_url(&self) -> &str {
        &self.url_for_display
    }

    pub fn readers(&self) -> &ReadPool {
        &self.readers
    }

    /// The writer whose commits are durable before they return: the log's.
    pub async fn durable_writer(&self) -> Result<Writer, LedgerError> {
        self.writer(true).await
    }

    /// The writer whose commits are atomic but may skip the fsync: the state machine's.
    pub async fn apply_writer(&self) -> Result<Writer, LedgerError> {
        self.writer(false).await
    }

    async fn writer(&self, durable: bool) -> Result<Writer, LedgerError> {
        match (&self.sqlite, &self.postgres) {
            (Some(_), _) => {
                // SQLite has one write lock per database. Two writer connections would meet on
                // it and SQLite's busy handler would put the loser to sleep for milliseconds;
                // sharing one connection behind an async mutex queues them without sleeping.
                let shared = self
                    .sqlite_writer
                    .get_or_try_init(|| async {
                        let options = self.sqlite.clone().unwrap_or_default();
                        let conn = SqliteConnection::connect_with(&options)
                            .await
                            .map_err(|e| LedgerError::Connect(e.to_string()))?;
                        Ok::<_, LedgerError>(Arc::new(tokio::sync::Mutex::new(WriterInner {
                            conn: WriteConn::Sqlite(conn),
                            durable: Some(true),
                        })))
                    })
                    .await?;
                Ok(Writer { inner: shared.clone(), durable })
            }
            (None, Some(options)) => {
                let mut conn =
                    PgConnection::connect_with(options).await.map_err(|e| LedgerError::Connect(e.to_string()))?;
                let setting = if durable { "on" } else { "off" };
                sqlx::query(crate::store::dynamic(&format!("SET synchronous_commit = {setting}")))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| LedgerError::Connect(e.to_string()))?;
                // Each PostgreSQL writer has its own connection; the server locks rows, not files.
                Ok(Writer {
                    inner: Arc::new(tokio::sync::Mutex::new(WriterInner {
                        conn: WriteConn::Postgres(conn),
                        durable: None,
                    })),
                    durable,
                })
            }
            (None, None) => Err(LedgerError::Config("database has no backend".into())),
        }
    }

    /// Closes the reader pool; writers close when their owners drop them.
    pub async fn close(&self) {
        on_pool!(&self.readers, pool => pool.close().await);
    }
}

/// Removes the password from a database URL.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Reads one value of `raft_meta` or `sm_meta`.
pub(crate) async fn read_meta(pool: &ReadPool, table: &str, key: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let sql = format!("SELECT value FROM {table} WHERE key = $1");
    on_pool!(pool, p => sqlx::query_scalar::<_, Vec<u8>>(crate::store::dynamic(&sql)).bind(key).fetch_optional(p).await)
}

/// The SQL that writes one meta key, the same in both backends.
pub(crate) fn upsert_meta_sql(table: &str) -> String {
    format!("INSERT INTO {table} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
}

/// A read-only transaction that sees one consistent state (SQLite: the WAL snapshot taken at
/// the first read; PostgreSQL: `REPEATABLE READ`).
pub enum ReadTx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

#[macro_export]
#[doc(hidden)]
macro_rules! on_read_tx {
    ($value:expr, $tx:ident => $body:expr) => {
        match $value {
            $crate::store::ReadTx::Sqlite($tx) => $body,
            $crate::store::ReadTx::Postgres($tx) => $body,
        }
    };
}

impl ReadTx {
    pub fn backend(&self) -> Backend {
        match self {
            ReadTx::Sqlite(_) => Backend::Sqlite,
            ReadTx::Postgres(_) => Backend::Postgres,
        }
    }

    /// Reads one value of `sm_meta` inside this transaction.
    pub async fn sm_meta(&mut self, key: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        on_read_tx!(self, tx => {
            sqlx::query_scalar::<_, Vec<u8>>("SELECT value FROM sm_meta WHERE key = $1")
                .bind(key)
                .fetch_optional(&mut **tx)
                .await
        })
    }
}

impl ReadPool {
    /// Starts a consistent read-only transaction.
    pub async fn begin_read(&self) -> Result<ReadTx, sqlx::Error> {
        match self {
            ReadPool::Sqlite(pool) => Ok(ReadTx::Sqlite(pool.begin().await?)),
            ReadPool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
                Ok(ReadTx::Postgres(tx))
            }
        }
    }
}

/// Marks SQL the ledger assembles itself (table names from [`crate::tables`], numbered
/// placeholders) as safe for sqlx. Values always travel as bind arguments, never in the text.
pub(crate) fn dynamic(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.to_string())
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(redact("postgres://postgres:secret@127.0.0.1:5432/db"), "postgres://postgres:***@127.0.0.1:5432/db");
        assert_eq!(redact("postgres://postgres@127.0.0.1/db"), "postgres://postgres@127.0.0.1/db");
        assert_eq!(redact("sqlite://data/ledger.db"), "sqlite://data/ledger.db");
    }
}
