//! The state machine's statements on a real database of each backend: guards, refusals, and
//! the one-script path on SQLite (per-statement rows affected, rollback on error).

mod common;

use ledger::store::Database;
use ledger::store::script::Arg;
use ledger::store::script::Stmt;
use ledger::store::script::run_in_transaction;

async fn check(db: &Database) {
    let writer = db.apply_writer().await.unwrap();
    let mut guard = writer.lock().await.unwrap();
    let stmts = vec![
        Stmt::new(
            "INSERT INTO settings (key, value) VALUES ($1, $2), ($3, $4)",
            vec![Arg::Text("a".into()), Arg::Text("1".into()), Arg::Text("b".into()), Arg::Text("2".into())],
        ),
        Stmt::guarded(
            "UPDATE settings SET value = $1 WHERE key = $2",
            vec![Arg::Text("9".into()), Arg::Text("zz".into())],
            "no zz".into(),
        ),
        Stmt::new("DELETE FROM settings WHERE key = $1", vec![Arg::Text("b".into())]),
    ];
    let affected = run_in_transaction(guard.conn(), &stmts).await.unwrap();
    assert_eq!(affected, vec![2, 0, 1]);

    // A failing statement rolls the whole transaction back and leaves the connection usable.
    let bad = vec![
        Stmt::new(
            "INSERT INTO settings (key, value) VALUES ($1, $2)",
            vec![Arg::Text("c".into()), Arg::Text("3".into())],
        ),
        Stmt::new("INSERT INTO no_such_table (x) VALUES ($1)", vec![Arg::Int(1)]),
    ];
    assert!(run_in_transaction(guard.conn(), &bad).await.is_err());
    let after = run_in_transaction(
        guard.conn(),
        &[Stmt::new("DELETE FROM settings WHERE key = $1", vec![Arg::Text("c".into())])],
    )
    .await
    .unwrap();
    assert_eq!(after, vec![0], "the failed transaction's insert must not be there");
}

#[tokio::test]
async fn sqlite_scripts_report_each_statement_and_roll_back_on_error() {
    let (_guard, dir) = common::temp_dir();
    let db = Database::open("sqlite://ledger.db", &dir).await.unwrap();
    check(&db).await;
}

#[tokio::test]
async fn postgres_statements_report_each_statement_and_roll_back_on_error() {
    let Some(pg) = common::fresh_pg().await else { return };
    let (_guard, dir) = common::temp_dir();
    let db = Database::open(&pg.url, &dir).await.unwrap();
    check(&db).await;
}
