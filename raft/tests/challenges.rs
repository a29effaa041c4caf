//! The challenge lifecycle on both backends: guarded transitions, deadlines, verdicts.

mod common;

use ledger::Storage;
use ledger::command::ChallengeKind;
use ledger::command::ChallengeStatus;
use ledger::command::ChallengeStep;
use ledger::command::ChallengeTransition;
use ledger::command::Command;
use ledger::command::IssuedChallenge;

fn step(id: &str, from: ChallengeStatus, step: ChallengeStep) -> Command {
    Command::AdvanceChallenge(ChallengeTransition { id: id.into(), from, step })
}

async fn scenario(url: &str) {
    let (_guard, dir) = common::temp_dir();
    let (_db, storage) = Storage::open(url, &dir).await.unwrap();
    let reader = storage.reader.clone();
    let mut a = common::Applier::new(storage.state_machine);
    let issue = |id: &str| {
        Command::IssueChallenge(IssuedChallenge {
            id: id.into(),
            hotkey: "alice".into(),
            worker_id: "w1".into(),
            kind: ChallengeKind::CpuMatrix,
            seed: [7; 16],
            matrix_size: 2000,
            iterations: 1,
            issued_at_ms: 1000,
        })
    };
    a.apply(issue("c1")).await;
    a.apply(issue("c1")).await; // duplicate id: refused, nothing changes
    let created = reader.challenges_of("alice", ChallengeStatus::Created).await.unwrap();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].seed, vec![7; 16]);

    a.apply(step("c1", ChallengeStatus::Created, ChallengeStep::Sent { at_ms: 2000, deadline_ms: 62_000 })).await;
    // A second poll racing the first sees `created` too; its transition is refused.
    a.apply(step("c1", ChallengeStatus::Created, ChallengeStep::Sent { at_ms: 2001, deadline_ms: 62_001 })).await;
    let c = reader.challenge("c1").await.unwrap().unwrap();
    assert_eq!((c.status.as_str(), c.sent_at_ms, c.deadline_ms), ("sent", Some(2000), Some(62_000)));

    assert_eq!(reader.overdue_challenges(ChallengeStatus::Sent, 70_000).await.unwrap().len(), 1);
    assert!(reader.overdue_challenges(ChallengeStatus::Sent, 50_000).await.unwrap().is_empty());

    a.apply(step(
        "c1",
        ChallengeStatus::Sent,
        ChallengeStep::Committed {
            at_ms: 3000,
            deadline_ms: 63_000,
            commitments_json: r#"{"-1":"abc"}"#.into(),
            targets_json: "[[1,null],[5,null]]".into(),
        },
    ))
    .await;
    a.apply(step(
        "c1",
        ChallengeStatus::Committed,
        ChallengeStep::Verifying { at_ms: 4000, deadline_ms: 64_000, received_by: 42 },
    ))
    .await;
    let c = reader.challenge("c1").await.unwrap().unwrap();
    assert_eq!(c.status, "verifying");
    assert_eq!(c.received_by, Some(42));
    assert_eq!(c.targets_json.as_deref(), Some("[[1,null],[5,null]]"));

    a.apply(step(
        "c1",
        ChallengeStatus::Verifying,
        ChallengeStep::Verified {
            at_ms: 5000,
            success: true,
            success_count: 1,
            verification_ms: 35,
            verified_by: 43,
            notes: "ok".into(),
        },
    ))
    .await;
    let c = reader.challenge("c1").await.unwrap().unwrap();
    assert_eq!((c.status.as_str(), c.success, c.success_count, c.deadline_ms), ("verified", Some(true), Some(1), None));

    // Failures: a validator-side fault is recorded as such.
    a.apply(issue("c2")).await;
    a.apply(step(
        "c2",
        ChallengeStatus::Created,
        ChallengeStep::Failed { at_ms: 9000, notes: "proof lost with its node".into(), validator_fault: true },
    ))
    .await;
    let c = reader.challenge("c2").await.unwrap().unwrap();
    assert_eq!((c.status.as_str(), c.validator_fault), ("failed", true));
    // Nothing moves a final challenge.
    a.apply(step("c2", ChallengeStatus::Failed, ChallengeStep::Sent { at_ms: 1, deadline_ms: 2 })).await;
    assert_eq!(reader.challenge("c2").await.unwrap().unwrap().status, "failed");
}

/// A batch applies its items in order in one entry; a refused item changes nothing and does
/// not stop the others.
async fn batch_scenario(url: &str) {
    let (_guard, dir) = common::temp_dir();
    let (_db, storage) = Storage::open(url, &dir).await.unwrap();
    let reader = storage.reader.clone();
    let mut a = common::Applier::new(storage.state_machine);
    let issue = |id: &str, worker: &str| {
        Command::IssueChallenge(IssuedChallenge {
            id: id.into(),
            hotkey: "bob".into(),
            worker_id: worker.into(),
            kind: ChallengeKind::CpuMatrix,
            seed: [9; 16],
            matrix_size: 2000,
            iterations: 1,
            issued_at_ms: 1000,
        })
    };
    a.apply(Command::batch(&[
        issue("b1", "w1"),
        issue("b2", "w2"),
        issue("b1", "w3"), // same id: refused by its guard
        step("b2", ChallengeStatus::Created, ChallengeStep::Sent { at_ms: 2000, deadline_ms: 5000 }),
        step("nope", ChallengeStatus::Created, ChallengeStep::Sent { at_ms: 2000, deadline_ms: 5000 }),
        issue("b3", "w3"),
    ]))
    .await;
    let created = reader.challenges_of("bob", ChallengeStatus::Created).await.unwrap();
    let ids: Vec<&str> = created.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["b1", "b3"]);
    assert_eq!(created[0].worker_id, "w1", "the refused duplicate did not overwrite b1");
    let sent = reader.challenges_of("bob", ChallengeStatus::Sent).await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, "b2");

    // The sweep's SQL filters: only what is overdue, most overdue first, limited.
    a.apply(step("b3", ChallengeStatus::Created, ChallengeStep::Sent { at_ms: 2100, deadline_ms: 4000 })).await;
    let overdue = reader.overdue_challenges_limited(ChallengeStatus::Sent, 6000, 10).await.unwrap();
    assert_eq!(overdue.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["b3", "b2"]);
    assert_eq!(reader.overdue_challenges_limited(ChallengeStatus::Sent, 6000, 1).await.unwrap().len(), 1);
    assert_eq!(reader.overdue_challenges_limited(ChallengeStatus::Sent, 4500, 10).await.unwrap().len(), 1);
    assert!(reader.overdue_challenges_limited(ChallengeStatus::Sent, 4000, 10).await.unwrap().is_empty());
    assert_eq!(reader.stale_created_limited(1001, 10).await.unwrap().len(), 1);
    assert!(reader.stale_created_limited(1000, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn batch_on_sqlite() {
    batch_scenario("sqlite://ledger.db").await;
}

#[tokio::test]
async fn batch_on_postgres() {
    let Some(pg) = common::fresh_pg().await else { return };
    batch_scenario(&pg.url).await;
}

#[tokio::test]
async fn lifecycle_on_sqlite() {
    scenario("sqlite://ledger.db").await;
}

#[tokio::test]
async fn lifecycle_on_postgres() {
    let Some(pg) = common::fresh_pg().await else { return };
    scenario(&pg.url).await;
}

/// Scoring passes are numbered in order and only the newest `SCORE_PASSES_KEPT` stay.
async fn score_pass_scenario(url: &str) {
    let (_guard, dir) = common::temp_dir();
    let (_db, storage) = Storage::open(url, &dir).await.unwrap();
    let reader = storage.reader.clone();
    let mut a = common::Applier::new(storage.state_machine);
    let kept = ledger::state::apply::SCORE_PASSES_KEPT as u64;
    assert!(reader.last_score_pass().await.unwrap().is_none());
    for i in 1..=kept + 3 {
        a.apply(Command::RecordScorePass(ledger::command::ScorePass {
            at_ms: i * 420_000,
            inputs_digest: [i as u8; 32],
            weights: vec![(0, 65535), (3, i as u16)],
        }))
        .await;
    }
    let last = reader.last_score_pass().await.unwrap().unwrap();
    assert_eq!((last.seq, last.at_ms), ((kept + 3) as i64, ((kept + 3) * 420_000) as i64));
    assert_eq!(last.weights, vec![(0, 65535), (3, (kept + 3) as u16)]);
    let sizes = reader.table_sizes().await.unwrap();
    assert_eq!(sizes.iter().find(|(t, _)| *t == "score_passes").map(|(_, n)| *n), Some(kept as i64));
}

#[tokio::test]
async fn score_passes_on_sqlite() {
    score_pass_scenario("sqlite://ledger.db").await;
}

#[tokio::test]
async fn score_passes_on_postgres() {
    let Some(pg) = common::fresh_pg().await else { return };
    score_pass_scenario(&pg.url).await;
}
