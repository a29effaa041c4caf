//! Test helpers: a throwaway ledger on SQLite (temp dir) or PostgreSQL (a fresh database on the
//! server named by `LEDGER_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`).

#![allow(dead_code)]

use std::path::PathBuf;

use sqlx::Connection;

pub fn pg_admin_url() -> String {
    std::env::var("LEDGER_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A PostgreSQL database that exists for one test and is dropped afterwards.
pub struct PgDb {
    pub url: String,
    name: String,
}

/// Creates a fresh database, or `None` (printed loudly) when no server answers.
pub async fn fresh_pg() -> Option<PgDb> {
    let admin = pg_admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIPPED (PostgreSQL): no server at {admin}: {e}");
            return None;
        }
    };
    let name = format!("ledger_test_{}_{}", std::process::id(), rand_suffix());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.ok()?;
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin.clone());
    Some(PgDb { url: format!("{base}/{name}"), name })
}

fn rand_suffix() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now())
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = pg_admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

pub fn temp_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    (dir, path)
}
