//! Running a list of statements as one transaction, in as few round trips as the backend
//! allows.
//!
//! sqlx talks to SQLite through a worker thread; each statement is a hand-off and a wake-up
//! (tens of microseconds here, more than executing it). On SQLite the statements of a
//! transaction are therefore joined into one script, `BEGIN; ...; COMMIT`, executed in one call
//! with one shared argument list: each statement's `$N` placeholders are shifted to index it.
//! PostgreSQL prepares one statement at a time, so there each runs on its own inside a
//! transaction. Either way the caller gets the rows each statement affected.

use std::borrow::Cow;

use futures::TryStreamExt;
use sqlx::Connection;

use crate::store::WriteConn;

/// A bound argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
    Blob(Vec<u8>),
    Bool(bool),
}

/// One SQL statement with `$1..$n` placeholders and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub sql: Cow<'static, str>,
    pub args: Vec<Arg>,
    /// If set, the statement must affect a row or its command is refused with this reason.
    pub guard: Option<String>,
}

impl Stmt {
    pub fn new(sql: impl Into<Cow<'static, str>>, args: Vec<Arg>) -> Stmt {
        Stmt { sql: sql.into(), args, guard: None }
    }

    pub fn guarded(sql: impl Into<Cow<'static, str>>, args: Vec<Arg>, refusal: String) -> Stmt {
        Stmt { sql: sql.into(), args, guard: Some(refusal) }
    }
}

macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                Arg::Int(v) => q.bind(*v),
                Arg::OptInt(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_str()),
                Arg::OptText(v) => q.bind(v.as_deref()),
                Arg::Blob(v) => q.bind(v.as_slice()),
                Arg::Bool(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// Copies `sql` into `out` with every `$N` placeholder raised by `offset`.
fn shift_placeholders(sql: &str, offset: usize, out: &mut String) {
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            if end > start
                && let Ok(n) = sql[start..end].parse::<usize>()
            {
                out.push('$');
                out.push_str(&(n + offset).to_string());
                i = end;
                continue;
            }
        }
        // Copy one whole UTF-8 character.
        let ch_len = sql[i..].chars().next().map(char::len_utf8).unwrap_or(1);
        out.push_str(&sql[i..i + ch_len]);
        i += ch_len;
    }
}

/// Joins statements into one script with a shared argument list.
pub fn script(stmts: &[Stmt]) -> (String, Vec<&Arg>) {
    let mut sql = String::from("BEGIN;\n");
    let mut args = Vec::new();
    for stmt in stmts {
        shift_placeholders(&stmt.sql, args.len(), &mut sql);
        sql.push_str(";\n");
        args.extend(stmt.args.iter());
    }
    sql.push_str("COMMIT;");
    (sql, args)
}

/// Runs `stmts` in one transaction; returns the rows each affected.
pub async fn run_in_transaction(conn: &mut WriteConn, stmts: &[Stmt]) -> Result<Vec<u64>, sqlx::Error> {
    match conn {
        WriteConn::Sqlite(c) => {
            let (sql, args) = script(stmts);
            let query = bind_args!(sqlx::query(crate::store::dynamic(&sql)).persistent(false), args.into_iter());
            // One prepared script, one hand-off to SQLite's thread. sqlx 0.9 marks running
            // several bound statements at once as deprecated (launchbadge/sqlx#3108) but still
            // supports it for SQLite, the only driver that can; the tests of this module and
            // openraft's storage suite pin the behaviour we rely on.
            #[allow(deprecated)]
            let stream = query.execute_many(&mut *c).await;
            let result: Result<Vec<u64>, sqlx::Error> = stream.map_ok(|r| r.rows_affected()).try_collect().await;
            match result {
                // One result each for BEGIN, every statement and COMMIT.
                Ok(affected) if affected.len() == stmts.len() + 2 => Ok(affected[1..=stmts.len()].to_vec()),
                Ok(affected) => {
                    let _ = sqlx::query("ROLLBACK").execute(&mut *c).await;
                    Err(sqlx::Error::Protocol(format!(
                        "script of {} statements returned {} results",
                        stmts.len() + 2,
                        affected.len()
                    )))
                }
                Err(e) => {
                    // The script stopped inside its transaction: end it before anything else runs.
                    let _ = sqlx::query("ROLLBACK").execute(&mut *c).await;
                    Err(e)
                }
            }
        }
        WriteConn::Postgres(c) => {
            let mut tx = c.begin().await?;
            let mut affected = Vec::with_capacity(stmts.len());
            for stmt in stmts {
                let done = bind_args!(sqlx::query(crate::store::dynamic(&stmt.sql)), stmt.args.iter())
                    .execute(&mut *tx)
                    .await?;
                affected.push(done.rows_affected());
            }
            tx.commit().await?;
            Ok(affected)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_shifted_per_statement() {
        let stmts = vec![
            Stmt::new("INSERT INTO t (a, b) VALUES ($1, $2)", vec![Arg::Int(1), Arg::Int(2)]),
            Stmt::new("UPDATE t SET b = $1 WHERE a = $2", vec![Arg::Int(3), Arg::Int(4)]),
        ];
        let (sql, args) = script(&stmts);
        assert!(sql.contains("VALUES ($1, $2)"), "{sql}");
        assert!(sql.contains("SET b = $3 WHERE a = $4"), "{sql}");
        assert_eq!(args.len(), 4);
        assert!(sql.starts_with("BEGIN;") && sql.ends_with("COMMIT;"));
    }

    #[test]
    fn multi_digit_placeholders_and_unicode_survive() {
        let mut out = String::new();
        shift_placeholders("é $10, $9 $", 5, &mut out);
        assert_eq!(out, "é $15, $14 $");
    }
}
