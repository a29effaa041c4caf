//! Test helpers: temp folders, and PostgreSQL databases from `ledger::testing`.

#![allow(dead_code)]

use std::path::PathBuf;

pub use ledger::testing::fresh_pg;

pub fn temp_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    (dir, path)
}
