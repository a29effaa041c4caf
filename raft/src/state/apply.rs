//! What each command does to the state tables, as plain SQL statements.
//!
//! Translating a [`Command`] into [`Stmt`]s is a pure function: no database, no clock, no
//! randomness. That keeps apply deterministic by construction and lets the same translation run
//! on SQLite and PostgreSQL (the statements use only syntax both accept). The executor in
//! [`super`] binds the arguments for the node's backend and runs the statements inside the
//! apply transaction.
//!
//! A command may be a *guard*: a single statement that must change at least one row, or the
//! command is refused with a deterministic reason (and, having changed nothing, leaves the state
//! as it was). Guarded commands have exactly one statement, so a whole apply batch can run as
//! one script (see [`crate::store::script`]). Every member reaches the same verdict because it
//! runs against the same state.

use std::collections::BTreeMap;

use crate::command::Applied;
use crate::command::ChallengeStep;
use crate::command::ChallengeTransition;
use crate::command::Command;
use crate::command::Heartbeat;
use crate::command::MetagraphSync;
use crate::command::WeightOutcomeKind;
use crate::command::WorkerStatus;
pub use crate::store::script::Arg;
pub use crate::store::script::Stmt;

/// Most workers one heartbeat may carry (byteleap-protocol.md §2.10.1: capped at 100 per miner).
pub const MAX_WORKERS_PER_HEARTBEAT: usize = 100;
/// Most neurons one metagraph sync may carry (subtensor's maximum subnet size is 256 UIDs,
/// chain.md §2; headroom for larger subnets without unbounded input).
pub const MAX_NEURONS: usize = 4096;
/// Recorded scoring passes kept (1,000 passes of 420 s: about 4.9 days).
pub const SCORE_PASSES_KEPT: i64 = 1000;
/// Most bytes a free-form text value may take in the state (settings, JSON details).
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// The statements of one command, or a refusal decided from the command alone.
pub enum Plan {
    Run(Vec<Stmt>),
    Refuse(String),
}

fn int(value: u64, what: &str) -> Result<i64, String> {
    i64::try_from(value).map_err(|_| format!("{what} {value} is out of range"))
}

fn text(value: &str, what: &str) -> Result<(), String> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(format!("{what} of {} bytes exceeds {MAX_TEXT_BYTES}", value.len()));
    }
    Ok(())
}

/// Translates one command. `PutSetting` runs are batched by [`settings_batch`] instead.
pub fn plan(command: &Command) -> Plan {
    match translate(command) {
        Ok(stmts) => Plan::Run(stmts),
        Err(reason) => Plan::Refuse(reason),
    }
}

fn translate(command: &Command) -> Result<Vec<Stmt>, String> {
    Ok(match command {
        Command::PutSetting { key, value } => {
            text(key, "setting key")?;
            text(value, "setting value")?;
            let mut one = BTreeMap::new();
            one.insert(key.clone(), value.clone());
            vec![settings_batch(&one)]
        }
        Command::DeleteSetting { key } => {
            vec![Stmt::new("DELETE FROM settings WHERE key = $1", vec![Arg::Text(key.clone())])]
        }
        Command::SyncMetagraph(sync) => metagraph(sync)?,
        Command::RecordHeartbeat(hb) => heartbeat(hb)?,
        Command::IssueChallenge(c) => {
            text(&c.id, "challenge id")?;
            text(&c.hotkey, "hotkey")?;
            text(&c.worker_id, "worker id")?;
            let at = int(c.issued_at_ms, "issued_at_ms")?;
            vec![Stmt::guarded(
                "INSERT INTO challenges (id, hotkey, worker_id, kind, seed, matrix_size, iterations, status, \
                 issued_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, 'created', $8, $8) \
                 ON CONFLICT (id) DO NOTHING",
                vec![
                    Arg::Text(c.id.clone()),
                    Arg::Text(c.hotkey.clone()),
                    Arg::Text(c.worker_id.clone()),
                    Arg::Text(c.kind.as_str().into()),
                    Arg::Blob(c.seed.to_vec()),
                    Arg::Int(c.matrix_size.into()),
                    Arg::Int(c.iterations.into()),
                    Arg::Int(at),
                ],
                format!("challenge {} already exists", c.id),
            )]
        }
        Command::AdvanceChallenge(t) => vec![challenge_step(t)?],
        Command::RecordScorePass(pass) => {
            let weights = postcard::to_allocvec(&pass.weights).map_err(|e| e.to_string())?;
            vec![
                Stmt::new(
                    "INSERT INTO score_passes (seq, at_ms, inputs_digest, weights) \
                     SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3 FROM score_passes",
                    vec![
                        Arg::Int(int(pass.at_ms, "at_ms")?),
                        Arg::Blob(pass.inputs_digest.to_vec()),
                        Arg::Blob(weights),
                    ],
                ),
                // A pass every 420 s would grow the table forever; the newest ones are kept.
                Stmt::new(
                    format!(
                        "DELETE FROM score_passes WHERE seq <= \
                         (SELECT MAX(seq) FROM score_passes) - {SCORE_PASSES_KEPT}"
                    ),
                    vec![],
                ),
            ]
        }
        Command::CommitWeightIntent(w) => vec![Stmt::guarded(
            "INSERT INTO weight_intents (window_id, weights_hash, account_nonce, era_birth_block, era_period, leader, \
             leader_term, at_ms, outcome, outcome_detail, outcome_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, NULL) ON CONFLICT (window_id) DO NOTHING",
            vec![
                Arg::Int(int(w.window, "window")?),
                Arg::Blob(w.weights_hash.to_vec()),
                Arg::Int(int(w.account_nonce, "account nonce")?),
                Arg::Int(int(w.era_birth_block, "era birth block")?),
                Arg::Int(int(w.era_period, "era period")?),
                Arg::Int(int(w.leader, "leader")?),
                Arg::Int(int(w.leader_term, "leader term")?),
                Arg::Int(int(w.at_ms, "at_ms")?),
            ],
            format!("window {} already has a weight intent", w.window),
        )],
        Command::Batch(_) => return Err("a batch inside a batch".into()),
        Command::RecordWeightOutcome(o) => {
            text(&o.detail, "outcome detail")?;
            let kind = match o.kind {
                WeightOutcomeKind::Included => "included",
                WeightOutcomeKind::Expired => "expired",
                WeightOutcomeKind::Rejected => "rejected",
            };
            vec![Stmt::guarded(
                "UPDATE weight_intents SET outcome = $1, outcome_detail = $2, outcome_at_ms = $3 \
                 WHERE window_id = $4 AND outcome IS NULL",
                vec![
                    Arg::Text(kind.into()),
                    Arg::Text(o.detail.clone()),
                    Arg::Int(int(o.at_ms, "at_ms")?),
                    Arg::Int(int(o.window, "window")?),
                ],
                format!("window {} has no open weight intent", o.window),
            )]
        }
    })
}

fn challenge_step(t: &ChallengeTransition) -> Result<Stmt, String> {
    if t.from.is_final() {
        return Err(format!("challenge {} is already {}", t.id, t.from.as_str()));
    }
    text(&t.id, "challenge id")?;
    let to = Arg::Text(t.step.to().as_str().into());
    let (set, mut args): (&str, Vec<Arg>) = match &t.step {
        ChallengeStep::Sent { at_ms, deadline_ms } => (
            "updated_at_ms = $2, sent_at_ms = $2, deadline_ms = $3",
            vec![Arg::Int(int(*at_ms, "at_ms")?), Arg::Int(int(*deadline_ms, "deadline_ms")?)],
        ),
        ChallengeStep::Committed { at_ms, deadline_ms, commitments_json, targets_json } => {
            text(commitments_json, "commitments")?;
            text(targets_json, "targets")?;
            (
                "updated_at_ms = $2, committed_at_ms = $2, deadline_ms = $3, commitments_json = $4, targets_json = $5",
                vec![
                    Arg::Int(int(*at_ms, "at_ms")?),
                    Arg::Int(int(*deadline_ms, "deadline_ms")?),
                    Arg::Text(commitments_json.clone()),
                    Arg::Text(targets_json.clone()),
                ],
            )
        }
        ChallengeStep::AutoVerified { at_ms } => (
            "updated_at_ms = $2, finished_at_ms = $2, deadline_ms = NULL, notes = 'auto-verified: no proof requested'",
            vec![Arg::Int(int(*at_ms, "at_ms")?)],
        ),
        ChallengeStep::Verifying { at_ms, deadline_ms, received_by } => (
            "updated_at_ms = $2, verifying_at_ms = $2, deadline_ms = $3, received_by = $4",
            vec![
                Arg::Int(int(*at_ms, "at_ms")?),
                Arg::Int(int(*deadline_ms, "deadline_ms")?),
                Arg::Int(int(*received_by, "received_by")?),
            ],
        ),
        ChallengeStep::Verified { at_ms, success, success_count, verification_ms, verified_by, notes } => {
            text(notes, "notes")?;
            (
                "updated_at_ms = $2, finished_at_ms = $2, deadline_ms = NULL, success = $3, success_count = $4, \
                 verification_ms = $5, verified_by = $6, notes = $7",
                vec![
                    Arg::Int(int(*at_ms, "at_ms")?),
                    Arg::Bool(*success),
                    Arg::Int((*success_count).into()),
                    Arg::Int(int(*verification_ms, "verification_ms")?),
                    Arg::Int(int(*verified_by, "verified_by")?),
                    Arg::Text(notes.clone()),
                ],
            )
        }
        ChallengeStep::Failed { at_ms, notes, validator_fault } => {
            text(notes, "notes")?;
            (
                "updated_at_ms = $2, finished_at_ms = $2, deadline_ms = NULL, notes = $3, validator_fault = $4",
                vec![Arg::Int(int(*at_ms, "at_ms")?), Arg::Text(notes.clone()), Arg::Bool(*validator_fault)],
            )
        }
    };
    let n = args.len() + 2;
    let sql = format!("UPDATE challenges SET status = $1, {set} WHERE id = ${} AND status = ${}", n, n + 1);
    let mut all = vec![to];
    all.append(&mut args);
    all.push(Arg::Text(t.id.clone()));
    all.push(Arg::Text(t.from.as_str().into()));
    Ok(Stmt::guarded(sql, all, format!("challenge {} is not {} any more (or does not exist)", t.id, t.from.as_str())))
}

fn metagraph(sync: &MetagraphSync) -> Result<Vec<Stmt>, String> {
    if sync.neurons.len() > MAX_NEURONS {
        return Err(format!("metagraph of {} neurons exceeds {MAX_NEURONS}", sync.neurons.len()));
    }
    let mut by_uid = BTreeMap::new();
    for n in &sync.neurons {
        text(&n.hotkey, "hotkey")?;
        text(&n.coldkey, "coldkey")?;
        if by_uid.insert(n.uid, n).is_some() {
            return Err(format!("metagraph lists uid {} twice", n.uid));
        }
    }
    let block = int(sync.block, "block")?;
    let mut stmts = vec![Stmt::new("DELETE FROM neurons", vec![])];
    let rows: Vec<_> = by_uid.values().collect();
    for chunk in rows.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO neurons (uid, hotkey, coldkey, stake_rao, validator_permit, axon, synced_block) VALUES ",
        );
        let mut args = Vec::with_capacity(chunk.len() * 7);
        for (i, n) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            let b = i * 7;
            sql.push_str(&format!("(${},${},${},${},${},${},${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7));
            args.push(Arg::Int(n.uid.into()));
            args.push(Arg::Text(n.hotkey.clone()));
            args.push(Arg::Text(n.coldkey.clone()));
            args.push(Arg::Int(int(n.stake_rao, "stake")?));
            args.push(Arg::Bool(n.validator_permit));
            args.push(Arg::OptText(n.axon.clone()));
            args.push(Arg::Int(block));
        }
        stmts.push(Stmt::new(sql, args));
    }
    Ok(stmts)
}

/// A GPU whose owner has not reported it for this long may be claimed by another worker
/// (hardware moves); before that, a second claimant is recorded as a conflict, never given the
/// GPU (byteleap-protocol.md §8.2.8; 30 min is the original's GPU inactivity rule, §3.1).
pub const GPU_OWNER_IDLE_MS: i64 = 30 * 60 * 1000;

/// `(...),(...)` placeholders for `rows` rows of `width` values.
fn values_sql(rows: usize, width: usize) -> String {
    let mut sql = String::with_capacity(rows * width * 5);
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

fn opt_text(value: &Option<String>, what: &str) -> Result<Arg, String> {
    if let Some(v) = value {
        text(v, what)?;
    }
    Ok(Arg::OptText(value.clone()))
}

fn heartbeat(hb: &Heartbeat) -> Result<Vec<Stmt>, String> {
    if hb.workers.len() > MAX_WORKERS_PER_HEARTBEAT {
        return Err(format!("heartbeat lists {} workers, at most {MAX_WORKERS_PER_HEARTBEAT}", hb.workers.len()));
    }
    text(&hb.hotkey, "hotkey")?;
    let at = int(hb.at_ms, "at_ms")?;
    let by = int(hb.received_by, "received_by")?;
    let mut stmts = vec![Stmt::new(
        "INSERT INTO miners (hotkey, public_ip, miner_version, last_heartbeat_ms, received_by, ip_changes, \
         ip_changed_at_ms) VALUES ($1, $2, $3, $4, $5, 0, NULL) \
         ON CONFLICT (hotkey) DO UPDATE SET \
         ip_changes = miners.ip_changes + CASE WHEN excluded.public_ip IS NOT NULL AND miners.public_ip IS NOT NULL \
           AND miners.public_ip <> excluded.public_ip THEN 1 ELSE 0 END, \
         ip_changed_at_ms = CASE WHEN excluded.public_ip IS NOT NULL AND miners.public_ip IS NOT NULL \
           AND miners.public_ip <> excluded.public_ip THEN excluded.last_heartbeat_ms ELSE miners.ip_changed_at_ms END, \
         public_ip = COALESCE(excluded.public_ip, miners.public_ip), \
         miner_version = COALESCE(excluded.miner_version, miners.miner_version), \
         last_heartbeat_ms = CASE WHEN excluded.last_heartbeat_ms > miners.last_heartbeat_ms \
           THEN excluded.last_heartbeat_ms ELSE miners.last_heartbeat_ms END, \
         received_by = excluded.received_by",
        vec![
            Arg::Text(hb.hotkey.clone()),
            opt_text(&hb.public_ip, "public ip")?,
            opt_text(&hb.miner_version, "miner version")?,
            Arg::Int(at),
            Arg::Int(by),
        ],
    )];

    // One row per worker id (the last report of an id wins, as applied one by one would).
    let mut workers = BTreeMap::new();
    for w in &hb.workers {
        text(&w.worker_id, "worker id")?;
        text(&w.info_json, "worker info")?;
        workers.insert(w.worker_id.as_str(), w);
    }
    // §4.3 step 7: null and empty IPs are ignored by the walk.
    let ip = hb.public_ip.as_deref().filter(|ip| !ip.is_empty());
    if let Some(ip) = ip
        && !workers.is_empty()
    {
        // A change is recorded before the upsert below moves `last_ip` on.
        let mut args = vec![Arg::Text(hb.hotkey.clone()), Arg::Int(at), Arg::Text(ip.to_string())];
        let list: Vec<String> = (0..workers.len()).map(|i| format!("${}", i + 4)).collect();
        args.extend(workers.keys().map(|id| Arg::Text((*id).to_string())));
        stmts.push(Stmt::new(
            format!(
                "INSERT INTO worker_ip_changes (hotkey, worker_id, at_ms, public_ip, prev_at_ms) \
                 SELECT hotkey, worker_id, $2, $3, COALESCE(last_ip_at_ms, 0) FROM workers \
                 WHERE hotkey = $1 AND worker_id IN ({}) AND last_ip IS NOT NULL AND last_ip <> $3 \
                 ON CONFLICT DO NOTHING",
                list.join(",")
            ),
            args,
        ));
    }
    if !workers.is_empty() {
        let mut args = Vec::with_capacity(workers.len() * 11);
        for w in workers.values() {
            args.push(Arg::Text(hb.hotkey.clone()));
            args.push(Arg::Text(w.worker_id.clone()));
            args.push(Arg::Int(at));
            args.push(Arg::Int(by));
            args.push(Arg::Text(w.info_json.clone()));
            args.push(opt_text(&w.worker_name, "worker name")?);
            args.push(opt_text(&w.worker_version, "worker version")?);
            let capabilities = serde_json::to_string(&w.capabilities).map_err(|e| e.to_string())?;
            text(&capabilities, "capabilities")?;
            args.push(Arg::Text(capabilities));
            text(&w.status, "status")?;
            args.push(Arg::Text(w.status.clone()));
            args.push(Arg::OptText(ip.map(str::to_string)));
            args.push(Arg::OptInt(ip.map(|_| at)));
        }
        stmts.push(Stmt::new(
            format!(
                "INSERT INTO workers (hotkey, worker_id, last_heartbeat_ms, received_by, info_json, worker_name, \
                 worker_version, capabilities, status, last_ip, last_ip_at_ms) VALUES {} \
                 ON CONFLICT (hotkey, worker_id) DO UPDATE SET \
                 last_heartbeat_ms = CASE WHEN excluded.last_heartbeat_ms > workers.last_heartbeat_ms \
                   THEN excluded.last_heartbeat_ms ELSE workers.last_heartbeat_ms END, \
                 received_by = excluded.received_by, info_json = excluded.info_json, \
                 worker_name = COALESCE(excluded.worker_name, workers.worker_name), \
                 worker_version = excluded.worker_version, capabilities = excluded.capabilities, \
                 status = excluded.status, last_ip = COALESCE(excluded.last_ip, workers.last_ip), \
                 last_ip_at_ms = COALESCE(excluded.last_ip_at_ms, workers.last_ip_at_ms)",
                values_sql(workers.len(), 11)
            ),
            args,
        ));
        stmts.extend(presence(hb, at, &workers)?);
    }

    // GPUs: the first report of a uuid in this heartbeat counts (PostgreSQL touches a row once
    // per statement).
    let mut gpus = BTreeMap::new();
    for w in workers.values() {
        for g in &w.gpus {
            text(&g.uuid, "gpu uuid")?;
            text(&g.model, "gpu model")?;
            gpus.entry(g.uuid.as_str()).or_insert((w.worker_id.as_str(), g));
        }
    }
    if !gpus.is_empty() {
        let mut args = Vec::with_capacity(gpus.len() * 7);
        for (uuid, (worker_id, g)) in &gpus {
            args.push(Arg::Text((*uuid).to_string()));
            args.push(Arg::Text(hb.hotkey.clone()));
            args.push(Arg::Text((*worker_id).to_string()));
            args.push(Arg::Text(g.model.clone()));
            args.push(Arg::Int(int(g.memory_mb, "gpu memory")?));
            args.push(Arg::Int(at));
            args.push(Arg::Int(at));
        }
        let rows = (0..gpus.len())
            .map(|r| {
                let b = r * 7;
                format!("(${},${},${},${},${},${},${},NULL,0)", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7)
            })
            .collect::<Vec<_>>()
            .join(",");
        let keep = format!(
            "(gpu_inventory.hotkey = excluded.hotkey AND gpu_inventory.worker_id = excluded.worker_id) \
             OR excluded.last_seen_ms - gpu_inventory.last_seen_ms > {GPU_OWNER_IDLE_MS}"
        );
        stmts.push(Stmt::new(
            format!(
                "INSERT INTO gpu_inventory (gpu_uuid, hotkey, worker_id, gpu_model, memory_mb, first_seen_ms, \
                 last_seen_ms, contested_by, conflicts) VALUES {rows} \
                 ON CONFLICT (gpu_uuid) DO UPDATE SET \
                 first_seen_ms = CASE WHEN gpu_inventory.hotkey = excluded.hotkey AND gpu_inventory.worker_id = \
                   excluded.worker_id THEN gpu_inventory.first_seen_ms WHEN {keep} THEN excluded.first_seen_ms \
                   ELSE gpu_inventory.first_seen_ms END, \
                 hotkey = CASE WHEN {keep} THEN excluded.hotkey ELSE gpu_inventory.hotkey END, \
                 worker_id = CASE WHEN {keep} THEN excluded.worker_id ELSE gpu_inventory.worker_id END, \
                 gpu_model = CASE WHEN {keep} THEN excluded.gpu_model ELSE gpu_inventory.gpu_model END, \
                 memory_mb = CASE WHEN {keep} THEN excluded.memory_mb ELSE gpu_inventory.memory_mb END, \
                 last_seen_ms = CASE WHEN {keep} THEN excluded.last_seen_ms ELSE gpu_inventory.last_seen_ms END, \
                 contested_by = CASE WHEN {keep} THEN gpu_inventory.contested_by \
                   ELSE excluded.hotkey || ':' || excluded.worker_id END, \
                 conflicts = gpu_inventory.conflicts + CASE WHEN {keep} THEN 0 ELSE 1 END"
            ),
            args,
        ));
    }
    Ok(stmts)
}

/// Width of an availability bucket (byteleap-protocol.md §4.3: 300 s).
pub const PRESENCE_BUCKET_MS: i64 = 300_000;
/// Buckets per presence row: one `BIGINT` bitmap of 60 bits (5 h).
pub const PRESENCE_BUCKETS_PER_BLOCK: i64 = 60;
/// How long presence and IP changes are kept: the availability window (§4.3, `window_hours`,
/// default 169 h, at most [`MAX_AVAILABILITY_WINDOW_HOURS`]) plus a block of slack. Apply reads
/// no configuration, so the horizon is a constant.
pub const PRESENCE_RETENTION_MS: i64 = (MAX_AVAILABILITY_WINDOW_HOURS * 3_600_000) + 5 * 3_600_000;
/// Largest availability window a configuration may ask for (§4.3 default 169 h).
pub const MAX_AVAILABILITY_WINDOW_HOURS: i64 = 192;

/// A worker's `system_info.gpu_info` UUIDs as §4.3 step 3 reads them: each list item's `uuid`,
/// else `gpu_uuid`, else `id`, when it is a string other than "-1".
pub fn presence_gpu_uuids(info_json: &str) -> Vec<String> {
    let Ok(info) = serde_json::from_str::<serde_json::Value>(info_json) else { return Vec::new() };
    let Some(list) = info.get("gpu_info").and_then(serde_json::Value::as_array) else { return Vec::new() };
    list.iter()
        .filter_map(|item| {
            let item = item.as_object()?;
            let value = ["uuid", "gpu_uuid", "id"].iter().find_map(|k| item.get(*k).filter(|v| !v.is_null()))?;
            value.as_str().filter(|u| *u != "-1" && !u.is_empty()).map(str::to_string)
        })
        .collect()
}

/// The presence bits one heartbeat sets (§4.3, §8.4.25), and the hourly pruning of rows older
/// than [`PRESENCE_RETENTION_MS`].
fn presence(hb: &Heartbeat, at: i64, workers: &BTreeMap<&str, &WorkerStatus>) -> Result<Vec<Stmt>, String> {
    let bucket = at / PRESENCE_BUCKET_MS;
    let block = bucket / PRESENCE_BUCKETS_PER_BLOCK;
    let bit = 1i64 << (bucket % PRESENCE_BUCKETS_PER_BLOCK);
    let mut stmts = Vec::new();
    // One upsert per table: the bit ORed into the row of (hotkey, key, block).
    let upsert = |table: &str, column: &str, keys: Vec<String>| {
        let mut args = Vec::with_capacity(keys.len() * 4);
        let rows = keys.len();
        for key in keys {
            args.extend([Arg::Text(hb.hotkey.clone()), Arg::Text(key), Arg::Int(block), Arg::Int(bit)]);
        }
        Stmt::new(
            format!(
                "INSERT INTO {table} (hotkey, {column}, block, bits) VALUES {} \
                 ON CONFLICT (hotkey, {column}, block) DO UPDATE SET bits = {table}.bits | excluded.bits",
                values_sql(rows, 4)
            ),
            args,
        )
    };
    stmts.push(upsert("worker_presence", "worker_id", workers.keys().map(|id| (*id).to_string()).collect()));
    let uuids: std::collections::BTreeSet<String> =
        workers.values().flat_map(|w| presence_gpu_uuids(&w.info_json)).collect();
    for uuid in &uuids {
        text(uuid, "gpu uuid")?;
    }
    if !uuids.is_empty() {
        stmts.push(upsert("gpu_presence", "gpu_uuid", uuids.into_iter().collect()));
    }
    // Once an hour of the heartbeat's own clock (deterministic on every member); readers filter
    // by the window anyway, so a skipped hour only keeps a few stale rows a little longer.
    if bucket % 12 == 0 {
        let horizon = at - PRESENCE_RETENTION_MS;
        let horizon_block = horizon / PRESENCE_BUCKET_MS / PRESENCE_BUCKETS_PER_BLOCK;
        for (table, column, bound) in [
            ("worker_presence", "block", horizon_block),
            ("gpu_presence", "block", horizon_block),
            ("worker_ip_changes", "at_ms", horizon),
        ] {
            stmts.push(Stmt::new(
                format!("DELETE FROM {table} WHERE hotkey = $1 AND {column} < $2"),
                vec![Arg::Text(hb.hotkey.clone()), Arg::Int(bound)],
            ));
        }
    }
    Ok(stmts)
}

/// One upsert for a run of `PutSetting` commands (the last value per key wins, as it would
/// applied one by one). Keys are deduplicated first: PostgreSQL refuses to touch a row twice
/// in one statement.
pub fn settings_batch(latest: &BTreeMap<String, String>) -> Stmt {
    let mut sql = String::from("INSERT INTO settings (key, value) VALUES ");
    let mut args = Vec::with_capacity(latest.len() * 2);
    for (i, (key, value)) in latest.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!("(${},${})", 2 * i + 1, 2 * i + 2));
        args.push(Arg::Text(key.clone()));
        args.push(Arg::Text(value.clone()));
    }
    sql.push_str(" ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    Stmt::new(sql, args)
}

/// Checks a `PutSetting` before it joins a batch; a refusal is reported for that entry alone.
pub fn check_setting(key: &str, value: &str) -> Result<(), Applied> {
    text(key, "setting key").and_then(|_| text(value, "setting value")).map_err(Applied::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Neuron;
    use crate::command::WorkerStatus;

    #[test]
    fn guarded_commands_are_single_statements() {
        use crate::command::*;
        let commands = vec![
            Command::IssueChallenge(IssuedChallenge {
                id: "c".into(),
                hotkey: "h".into(),
                worker_id: "w".into(),
                kind: ChallengeKind::CpuMatrix,
                seed: [0; 16],
                matrix_size: 100,
                iterations: 1,
                issued_at_ms: 1,
            }),
            Command::AdvanceChallenge(ChallengeTransition {
                id: "c".into(),
                from: ChallengeStatus::Created,
                step: ChallengeStep::Sent { at_ms: 2, deadline_ms: 3 },
            }),
            Command::CommitWeightIntent(WeightIntent {
                window: 1,
                weights_hash: [0; 32],
                account_nonce: 1,
                era_birth_block: 1,
                era_period: 64,
                leader: 1,
                leader_term: 1,
                at_ms: 1,
            }),
            Command::RecordWeightOutcome(WeightOutcome {
                window: 1,
                kind: WeightOutcomeKind::Included,
                detail: "0xabc".into(),
                at_ms: 1,
            }),
        ];
        for command in commands {
            let Plan::Run(stmts) = plan(&command) else { panic!("{command:?} refused") };
            if stmts.iter().any(|s| s.guard.is_some()) {
                assert_eq!(stmts.len(), 1, "{command:?}: a guard must be the command's only statement");
            }
        }
    }

    #[test]
    fn duplicate_uids_are_refused_whole() {
        let n = |uid| Neuron {
            uid,
            hotkey: format!("hk{uid}"),
            coldkey: "ck".into(),
            stake_rao: 1,
            validator_permit: false,
            axon: None,
        };
        let sync = MetagraphSync { netuid: 128, block: 1, neurons: vec![n(1), n(2), n(1)] };
        assert!(matches!(plan(&Command::SyncMetagraph(sync)), Plan::Refuse(r) if r.contains("uid 1 twice")));
    }

    #[test]
    fn oversized_heartbeats_are_refused() {
        let workers = (0..=MAX_WORKERS_PER_HEARTBEAT)
            .map(|i| WorkerStatus {
                worker_id: format!("w{i}"),
                worker_name: None,
                worker_version: None,
                capabilities: vec![],
                status: "online".into(),
                gpus: vec![],
                info_json: "{}".into(),
            })
            .collect();
        let hb =
            Heartbeat { hotkey: "hk".into(), at_ms: 1, received_by: 1, public_ip: None, miner_version: None, workers };
        assert!(matches!(plan(&Command::RecordHeartbeat(hb)), Plan::Refuse(_)));
    }

    #[test]
    fn a_settings_batch_keeps_the_last_value_per_key() {
        let mut latest = BTreeMap::new();
        latest.insert("a".to_string(), "1".to_string());
        latest.insert("a".to_string(), "2".to_string());
        let stmt = settings_batch(&latest);
        assert_eq!(stmt.args, vec![Arg::Text("a".into()), Arg::Text("2".into())]);
    }
}
