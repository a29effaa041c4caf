//! Helpers for tests of this and other crates (feature `testing`): a throwaway PostgreSQL
//! database on the server named by `LEDGER_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).
//!
//! Without a server, tests that need one print `SKIPPED (PostgreSQL)` and return; with
//! `LEDGER_REQUIRE_PG=1` (CI sets it) they fail instead, so a missing server cannot pass as
//! green.

use sqlx::Connection;

/// The admin URL of the test server.
pub fn pg_admin_url() -> String {
    std::env::var("LEDGER_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A PostgreSQL database that exists for one test and is dropped afterwards.
pub struct PgDb {
    pub url: String,
    name: String,
    admin: String,
}

/// Creates a fresh database, or `None` (printed loudly) when no server answers.
///
/// # Panics
/// When no server answers and `LEDGER_REQUIRE_PG` is set.
pub async fn fresh_pg() -> Option<PgDb> {
    let admin = pg_admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => {
            if std::env::var_os("LEDGER_REQUIRE_PG").is_some() {
                panic!("LEDGER_REQUIRE_PG is set but PostgreSQL at {admin} is unreachable: {e}");
            }
            eprintln!("SKIPPED (PostgreSQL): no server at {admin}: {e}");
            return None;
        }
    };
    let name = format!("ledger_test_{}_{}", std::process::id(), unique());
    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await {
        panic!("cannot create test database {name}: {e}");
    }
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or_else(|| admin.clone());
    Some(PgDb { url: format!("{base}/{name}"), name, admin })
}

fn unique() -> u64 {
    use std::hash::BuildHasher;
    use std::sync::atomic::AtomicU64;
    use std::sync::atomic::Ordering;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::collections::hash_map::RandomState::new().hash_one(n) & 0xffff_ffff
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (name, admin) = (self.name.clone(), self.admin.clone());
        // Drop runs outside any runtime guarantee: use a small one on a helper thread.
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
