//! Errors of the ledger library.

/// What can go wrong opening, writing or reading a node's ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot open the ledger database: {0}")]
    Connect(String),
    #[error("ledger migrations failed: {0}")]
    Migrate(String),
    #[error("ledger database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("ledger I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("ledger data is corrupt: {0}")]
    Corrupt(String),
    #[error("snapshot: {0}")]
    Snapshot(String),
}

impl From<LedgerError> for std::io::Error {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Io(io) => io,
            other => std::io::Error::other(other.to_string()),
        }
    }
}
