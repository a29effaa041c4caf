//! The canonical, backend-neutral form of the state tables.
//!
//! Snapshots and state hashes are both built from one stream of [`Record`]s: for each table in
//! [`TABLES`] order, a header naming its columns, then every row ordered by primary key in byte
//! order (PostgreSQL is told `COLLATE "C"`, SQLite compares bytes already). Each record is
//! framed as `u32 little-endian length || postcard bytes`. Because the stream depends only on
//! the rows, a SQLite node and a PostgreSQL node holding the same state produce the same bytes:
//! that is what lets them install each other's snapshots and prove equality by hash.
//!
//! Adding a table: add it to the migrations of both backends and to [`TABLES`].

use std::future::Future;
use std::io;

use futures::TryStreamExt;
use serde::Deserialize;
use serde::Serialize;
use sqlx::Row;

use crate::store::Backend;

/// Column types the ledger uses. Floats are deliberately absent: state that must hash equal on
/// every node stores integers (scaled) or text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Int,
    Text,
    Blob,
    Bool,
}

#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColType,
    pub nullable: bool,
}

#[derive(Debug)]
pub struct TableSpec {
    pub name: &'static str,
    pub columns: &'static [Column],
    /// Primary key columns, in order: the row order of the canonical stream.
    pub key: &'static [&'static str],
}

const fn col(name: &'static str, ty: ColType) -> Column {
    Column { name, ty, nullable: false }
}

const fn opt(name: &'static str, ty: ColType) -> Column {
    Column { name, ty, nullable: true }
}

use ColType::*;

/// Every replicated table, in canonical order.
pub const TABLES: &[TableSpec] = &[
    TableSpec { name: "settings", columns: &[col("key", Text), col("value", Text)], key: &["key"] },
    TableSpec {
        name: "neurons",
        columns: &[
            col("uid", Int),
            col("hotkey", Text),
            col("coldkey", Text),
            col("stake_rao", Int),
            col("validator_permit", Bool),
            opt("axon", Text),
            col("synced_block", Int),
        ],
        key: &["uid"],
    },
    TableSpec {
        name: "miners",
        columns: &[
            col("hotkey", Text),
            opt("public_ip", Text),
            opt("miner_version", Text),
            col("last_heartbeat_ms", Int),
            col("received_by", Int),
            col("ip_changes", Int),
            opt("ip_changed_at_ms", Int),
        ],
        key: &["hotkey"],
    },
    TableSpec {
        name: "workers",
        columns: &[
            col("hotkey", Text),
            col("worker_id", Text),
            col("last_heartbeat_ms", Int),
            col("received_by", Int),
            col("info_json", Text),
            opt("worker_name", Text),
            opt("worker_version", Text),
            col("capabilities", Text),
            col("status", Text),
            opt("last_ip", Text),
            opt("last_ip_at_ms", Int),
        ],
        key: &["hotkey", "worker_id"],
    },
    TableSpec {
        name: "gpu_inventory",
        columns: &[
            col("gpu_uuid", Text),
            col("hotkey", Text),
            col("worker_id", Text),
            col("gpu_model", Text),
            col("memory_mb", Int),
            col("first_seen_ms", Int),
            col("last_seen_ms", Int),
            opt("contested_by", Text),
            col("conflicts", Int),
        ],
        key: &["gpu_uuid"],
    },
    TableSpec {
        name: "challenges",
        columns: &[
            col("id", Text),
            col("hotkey", Text),
            col("worker_id", Text),
            col("kind", Text),
            col("seed", Blob),
            col("matrix_size", Int),
            col("iterations", Int),
            col("status", Text),
            col("issued_at_ms", Int),
            col("updated_at_ms", Int),
            opt("deadline_ms", Int),
            opt("sent_at_ms", Int),
            opt("committed_at_ms", Int),
            opt("commitments_json", Text),
            opt("targets_json", Text),
            opt("verifying_at_ms", Int),
            opt("received_by", Int),
            opt("finished_at_ms", Int),
            opt("success", Bool),
            opt("success_count", Int),
            opt("verification_ms", Int),
            opt("verified_by", Int),
            col("validator_fault", Bool),
            opt("notes", Text),
        ],
        key: &["id"],
    },
    TableSpec {
        name: "worker_presence",
        columns: &[col("hotkey", Text), col("worker_id", Text), col("block", Int), col("bits", Int)],
        key: &["hotkey", "worker_id", "block"],
    },
    TableSpec {
        name: "gpu_presence",
        columns: &[col("hotkey", Text), col("gpu_uuid", Text), col("block", Int), col("bits", Int)],
        key: &["hotkey", "gpu_uuid", "block"],
    },
    TableSpec {
        name: "worker_ip_changes",
        columns: &[
            col("hotkey", Text),
            col("worker_id", Text),
            col("at_ms", Int),
            col("public_ip", Text),
            col("prev_at_ms", Int),
        ],
        key: &["hotkey", "worker_id", "at_ms"],
    },
    TableSpec {
        name: "score_passes",
        columns: &[col("seq", Int), col("at_ms", Int), col("inputs_digest", Blob), col("weights", Blob)],
        key: &["seq"],
    },
    TableSpec {
        name: "weight_intents",
        columns: &[
            col("window_id", Int),
            col("weights_hash", Blob),
            col("account_nonce", Int),
            col("era_birth_block", Int),
            col("era_period", Int),
            col("leader", Int),
            col("leader_term", Int),
            col("at_ms", Int),
            opt("outcome", Text),
            opt("outcome_detail", Text),
            opt("outcome_at_ms", Int),
        ],
        key: &["window_id"],
    },
];

/// One value of a canonical row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    Bool(bool),
}

/// One element of the canonical stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Table {
        name: String,
        columns: Vec<String>,
    },
    Row(Vec<Value>),
    /// Ends the stream; `rows` counts all rows, a cheap truncation check.
    End {
        rows: u64,
    },
}

/// Largest single record accepted when reading a stream (a row of a few KiB is typical).
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// Where [`export`] writes framed records.
pub trait RecordSink {
    fn put(&mut self, framed: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
}

/// Frames one record.
pub fn frame(record: &Record) -> io::Result<Vec<u8>> {
    let body = postcard::to_allocvec(record).map_err(|e| io::Error::other(format!("encode record: {e}")))?;
    let len = u32::try_from(body.len()).map_err(|_| io::Error::other("record over 4 GiB"))?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn order_by(spec: &TableSpec, backend: Backend) -> String {
    spec.key
        .iter()
        .map(|k| {
            let ty = spec.columns.iter().find(|c| c.name == *k).map(|c| c.ty);
            match (backend, ty) {
                (Backend::Postgres, Some(Text)) => format!("{k} COLLATE \"C\""),
                _ => (*k).to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes the canonical stream of every table to `sink`, reading through `exec` (a connection
/// or transaction that sees one consistent state). Returns the number of rows.
pub async fn export<S: RecordSink + Send>(exec: &mut crate::store::ReadTx, sink: &mut S) -> io::Result<u64> {
    let backend = exec.backend();
    let mut total = 0u64;
    for spec in TABLES {
        let header = Record::Table {
            name: spec.name.to_string(),
            columns: spec.columns.iter().map(|c| c.name.to_string()).collect(),
        };
        sink.put(&frame(&header)?).await?;
        let columns = spec.columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT {columns} FROM {} ORDER BY {}", spec.name, order_by(spec, backend));
        crate::on_read_tx!(exec, tx => {
            let mut rows = sqlx::query(crate::store::dynamic(&sql)).fetch(&mut **tx);
            while let Some(row) = rows.try_next().await.map_err(io::Error::other)? {
                let mut values = Vec::with_capacity(spec.columns.len());
                for (i, column) in spec.columns.iter().enumerate() {
                    let value = match column.ty {
                        Int => row.try_get::<Option<i64>, _>(i).map(|v| v.map(Value::Int)),
                        Text => row.try_get::<Option<String>, _>(i).map(|v| v.map(Value::Text)),
                        Blob => row.try_get::<Option<Vec<u8>>, _>(i).map(|v| v.map(Value::Blob)),
                        Bool => row.try_get::<Option<bool>, _>(i).map(|v| v.map(Value::Bool)),
                    }
                    .map_err(io::Error::other)?;
                    values.push(value.unwrap_or(Value::Null));
                }
                sink.put(&frame(&Record::Row(values))?).await?;
                total += 1;
            }
        });
    }
    sink.put(&frame(&Record::End { rows: total })?).await?;
    Ok(total)
}

/// A sink that only hashes: the state hash is blake3 of the canonical stream.
#[derive(Default)]
pub struct HashSink(pub blake3::Hasher);

impl RecordSink for HashSink {
    async fn put(&mut self, framed: &[u8]) -> io::Result<()> {
        self.0.update(framed);
        Ok(())
    }
}

/// Checks a row read from a stream against its table's columns.
pub fn check_row(spec: &TableSpec, values: &[Value]) -> Result<(), String> {
    if values.len() != spec.columns.len() {
        return Err(format!(
            "{}: row has {} values, table has {} columns",
            spec.name,
            values.len(),
            spec.columns.len()
        ));
    }
    for (value, column) in values.iter().zip(spec.columns) {
        let ok = matches!(
            (value, column.ty),
            (Value::Int(_), Int) | (Value::Text(_), Text) | (Value::Blob(_), Blob) | (Value::Bool(_), Bool)
        ) || (matches!(value, Value::Null) && column.nullable);
        if !ok {
            return Err(format!("{}.{}: value {:?} does not fit {:?}", spec.name, column.name, value, column.ty));
        }
    }
    Ok(())
}

/// Finds a table by the name a stream gives, checking its column list.
pub fn spec_for(name: &str, columns: &[String]) -> Result<&'static TableSpec, String> {
    let spec = TABLES.iter().find(|t| t.name == name).ok_or_else(|| format!("unknown table {name:?}"))?;
    let expected: Vec<&str> = spec.columns.iter().map(|c| c.name).collect();
    if columns.iter().map(String::as_str).ne(expected.iter().copied()) {
        return Err(format!("table {name}: columns {columns:?} differ from {expected:?}"));
    }
    Ok(spec)
}

/// The INSERT for `rows` rows of `spec`.
pub fn insert_sql(spec: &TableSpec, rows: usize) -> String {
    let columns = spec.columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", ");
    let width = spec.columns.len();
    let mut sql = format!("INSERT INTO {} ({columns}) VALUES ", spec.name);
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..width {
            if c > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("${}", r * width + c + 1));
        }
        sql.push(')');
    }
    sql
}

/// Rows per INSERT when importing, keeping bind parameters under both backends' limits.
pub fn rows_per_insert(spec: &TableSpec) -> usize {
    (30_000 / spec.columns.len()).clamp(1, 1000)
}
