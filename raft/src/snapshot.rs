//! Snapshots: a backend-neutral file, streamed, checksummed, built without stopping apply.
//!
//! Layout of a snapshot file:
//!
//! ```text
//! "BLVSNAP1" | u32 LE header length | postcard(SnapshotHeader) | canonical records | blake3
//! ```
//!
//! The records are the canonical stream of [`crate::tables`], so the file is the same whatever
//! database produced it, and a node can install a snapshot made by a node on another backend.
//! The trailing 32 bytes are blake3 of everything before them; the receiver verifies them while
//! the bytes arrive and again before installing, so a corrupted or truncated transfer is refused
//! before it can touch the state.
//!
//! Building reads inside one read-only transaction on a reader connection (see
//! [`crate::store`]), so the state machine keeps applying while the file is written.

use std::io;
use std::path::Path;
use std::path::PathBuf;

use serde::Deserialize;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::io::BufReader;
use tokio::io::BufWriter;

use crate::command::LEDGER_FORMAT;
use crate::error::LedgerError;
use crate::store::ReadPool;
use crate::tables;
use crate::tables::MAX_RECORD_BYTES;
use crate::tables::Record;
use crate::tables::RecordSink;
use crate::types::LogId;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;

pub const MAGIC: &[u8; 8] = b"BLVSNAP1";
const MAX_HEADER_BYTES: usize = 4 << 20;
/// File name suffix of snapshot files in a node's snapshot folder.
pub const EXTENSION: &str = "blvs";

/// What a snapshot file says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// The ledger format of the node that built it.
    pub ledger_format: u16,
    pub meta: SnapshotMeta,
}

/// A snapshot on disk: what openraft hands around as snapshot data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    pub path: PathBuf,
    pub size: u64,
    /// blake3 of the file without its trailer (equal to the trailer).
    pub checksum: [u8; 32],
}

/// Writes a snapshot file while hashing it.
pub struct SnapshotWriter {
    out: BufWriter<tokio::fs::File>,
    hasher: blake3::Hasher,
    size: u64,
    path: PathBuf,
}

impl SnapshotWriter {
    pub async fn create(path: &Path) -> io::Result<SnapshotWriter> {
        let file = tokio::fs::File::create(path).await?;
        Ok(SnapshotWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            hasher: blake3::Hasher::new(),
            size: 0,
            path: path.to_path_buf(),
        })
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.out.write_all(bytes).await
    }

    pub async fn header(&mut self, header: &SnapshotHeader) -> io::Result<()> {
        let body = postcard::to_allocvec(header).map_err(|e| io::Error::other(format!("encode header: {e}")))?;
        self.write(MAGIC).await?;
        self.write(&(body.len() as u32).to_le_bytes()).await?;
        self.write(&body).await
    }

    /// Appends the checksum trailer and makes the file durable.
    pub async fn finish(mut self) -> io::Result<SnapshotFile> {
        let checksum: [u8; 32] = *self.hasher.finalize().as_bytes();
        self.out.write_all(&checksum).await?;
        self.out.flush().await?;
        let file = self.out.into_inner();
        file.sync_all().await?;
        Ok(SnapshotFile { path: self.path, size: self.size + 32, checksum })
    }
}

impl RecordSink for SnapshotWriter {
    async fn put(&mut self, framed: &[u8]) -> io::Result<()> {
        self.write(framed).await
    }
}

/// The name a snapshot of `last` gets in the snapshot folder.
pub fn file_name(last: Option<LogId>) -> String {
    match last {
        Some(l) => format!("snapshot-{:020}-{}-{}.{EXTENSION}", l.index, l.leader_id.term, l.leader_id.node_id),
        None => format!("snapshot-empty.{EXTENSION}"),
    }
}

/// Builds a snapshot of the current state into `dir`. The state is read in one read-only
/// transaction, so apply continues meanwhile.
pub async fn build(readers: &ReadPool, dir: &Path) -> Result<(SnapshotHeader, SnapshotFile), LedgerError> {
    tokio::fs::create_dir_all(dir).await?;
    let mut tx = readers.begin_read().await?;
    let applied: Option<LogId> = match tx.sm_meta(crate::state::KEY_APPLIED).await? {
        Some(bytes) => {
            postcard::from_bytes(&bytes).map_err(|e| LedgerError::Corrupt(format!("applied marker: {e}")))?
        }
        None => None,
    };
    let membership: StoredMembership = match tx.sm_meta(crate::state::KEY_MEMBERSHIP).await? {
        Some(bytes) => postcard::from_bytes(&bytes).map_err(|e| LedgerError::Corrupt(format!("membership: {e}")))?,
        None => StoredMembership::default(),
    };
    let header = SnapshotHeader {
        ledger_format: LEDGER_FORMAT,
        meta: SnapshotMeta { last_log_id: applied, last_membership: membership },
    };
    let temp = dir.join(format!("building-{}.tmp", std::process::id()));
    let mut writer = SnapshotWriter::create(&temp).await?;
    writer.header(&header).await?;
    let rows = tables::export(&mut tx, &mut writer).await?;
    drop(tx);
    let mut file = writer.finish().await?;
    let final_path = dir.join(file_name(applied));
    tokio::fs::rename(&temp, &final_path).await?;
    file.path = final_path;
    tracing::info!(
        last_log_id = ?applied.map(|l| l.index),
        rows,
        bytes = file.size,
        path = %file.path.display(),
        "snapshot built"
    );
    Ok((header, file))
}

/// Reads a snapshot file front to back: verifies the trailer checksum, then returns the header
/// and a reader positioned at the first record.
pub async fn open(path: &Path) -> Result<(SnapshotHeader, SnapshotFile, RecordReader), LedgerError> {
    let size = tokio::fs::metadata(path).await?.len();
    if size < (MAGIC.len() + 4 + 32) as u64 {
        return Err(LedgerError::Snapshot(format!("{}: {size} bytes is too short for a snapshot", path.display())));
    }
    let checksum = verify_checksum(path, size).await?;
    let mut input = BufReader::with_capacity(1 << 20, tokio::fs::File::open(path).await?);
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic).await?;
    if &magic != MAGIC {
        return Err(LedgerError::Snapshot(format!("{}: not a ledger snapshot (bad magic)", path.display())));
    }
    let header_len = input.read_u32_le().await? as usize;
    if header_len > MAX_HEADER_BYTES {
        return Err(LedgerError::Snapshot(format!("header of {header_len} bytes is too large")));
    }
    let mut body = vec![0u8; header_len];
    input.read_exact(&mut body).await?;
    let header: SnapshotHeader =
        postcard::from_bytes(&body).map_err(|e| LedgerError::Snapshot(format!("header: {e}")))?;
    let remaining = size - 32 - (8 + 4 + header_len as u64);
    Ok((
        header,
        SnapshotFile { path: path.to_path_buf(), size, checksum },
        RecordReader { input, remaining, done: false },
    ))
}

async fn verify_checksum(path: &Path, size: u64) -> Result<[u8; 32], LedgerError> {
    let mut input = BufReader::with_capacity(1 << 20, tokio::fs::File::open(path).await?);
    let mut hasher = blake3::Hasher::new();
    let mut left = size - 32;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = input.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(LedgerError::Snapshot(format!("{}: ends early", path.display())));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    let mut trailer = [0u8; 32];
    input.read_exact(&mut trailer).await?;
    let computed = *hasher.finalize().as_bytes();
    if computed != trailer {
        return Err(LedgerError::Snapshot(format!(
            "{}: checksum mismatch (file says {}, content hashes to {})",
            path.display(),
            hex(&trailer),
            hex(&computed)
        )));
    }
    Ok(computed)
}

/// Lowercase hex of bytes (checksums and hashes in messages).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Iterates the records of an opened snapshot.
pub struct RecordReader {
    input: BufReader<tokio::fs::File>,
    remaining: u64,
    done: bool,
}

impl RecordReader {
    /// The next record, `None` after [`Record::End`]. A stream that ends without `End`, or has
    /// bytes after it, is an error.
    pub async fn next(&mut self) -> Result<Option<Record>, LedgerError> {
        if self.done {
            return Ok(None);
        }
        if self.remaining < 4 {
            return Err(LedgerError::Snapshot("records end without an End record".into()));
        }
        let len = self.input.read_u32_le().await? as usize;
        self.remaining -= 4;
        if len > MAX_RECORD_BYTES || len as u64 > self.remaining {
            return Err(LedgerError::Snapshot(format!("record of {len} bytes is too large")));
        }
        let mut body = vec![0u8; len];
        self.input.read_exact(&mut body).await?;
        self.remaining -= len as u64;
        let record: Record = postcard::from_bytes(&body).map_err(|e| LedgerError::Snapshot(format!("record: {e}")))?;
        if matches!(record, Record::End { .. }) {
            self.done = true;
            if self.remaining != 0 {
                return Err(LedgerError::Snapshot(format!("{} bytes after the End record", self.remaining)));
            }
        }
        Ok(Some(record))
    }
}

/// Finds the newest valid snapshot in `dir` (by last log index), removing leftovers of
/// interrupted builds and transfers.
pub async fn newest_in(dir: &Path) -> Result<Option<(SnapshotHeader, SnapshotFile)>, LedgerError> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut best: Option<(SnapshotHeader, SnapshotFile)> = None;
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".tmp") {
            let _ = tokio::fs::remove_file(&path).await;
            continue;
        }
        if !name.ends_with(EXTENSION) {
            continue;
        }
        match open(&path).await {
            Ok((header, file, _)) => {
                let newer = match &best {
                    None => true,
                    Some((b, _)) => header.meta.last_log_id > b.meta.last_log_id,
                };
                if newer {
                    best = Some((header, file));
                }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable snapshot file")
            }
        }
    }
    Ok(best)
}

/// Removes every snapshot file in `dir` except `keep`.
pub async fn remove_others(dir: &Path, keep: &Path) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        if path != keep && path.extension().is_some_and(|e| e == EXTENSION) {
            let _ = tokio::fs::remove_file(&path).await;
        }
    }
}
