//! `validatorctl`: the operator's client for a validator cluster (admin gRPC over mutual TLS).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use clap::Subcommand;
use validator_node::admin::client::CtlTls;
use validator_node::admin::client::connect;
use validator_node::admin::client::on_leader;
use validator_node::admin::pb;
use validator_node::config::Config;

#[derive(Parser)]
#[command(name = "validatorctl", version, about = "Operate a ByteLeap HA validator cluster")]
struct Cli {
    /// Admin address of any node (HOST:PORT). Default: from --config, else $VALIDATORCTL_ADDR.
    #[arg(long, global = true, env = "VALIDATORCTL_ADDR")]
    addr: Option<String>,
    /// Folder with ca.crt and admin.crt/admin.key (or node.crt/node.key).
    #[arg(long, global = true, env = "VALIDATORCTL_TLS_DIR")]
    tls_dir: Option<PathBuf>,
    /// A node's validator.toml: supplies --addr and --tls-dir.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Print JSON for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every member's role, term and log indexes, and the leader's view of replication lag.
    Status,
    /// Form a new cluster from pristine nodes, given their admin addresses.
    InitCluster { admin_addrs: Vec<String> },
    /// Add the node at ADMIN_ADDR as a learner (it replicates but does not vote).
    AddLearner { admin_addr: String },
    /// Make learners voters.
    Promote { ids: Vec<u64> },
    /// Remove members (voters or learners).
    Remove { ids: Vec<u64> },
    /// Move leadership to a voter.
    TransferLeader { id: u64 },
    /// Hand leadership to the most up-to-date other voter.
    StepDown,
    /// Take a snapshot on the node now.
    Snapshot,
    /// Read or write a cluster-wide setting.
    #[command(subcommand)]
    Setting(SettingCmd),
    /// Content hash of the replicated state at the node's applied index.
    StateHash,
    /// The replicated metagraph (registered neurons; the axon's allow-list).
    #[command(subcommand)]
    Metagraph(MetagraphCmd),
    /// The weights of the last recorded scoring pass (uid, hotkey, u16 weight).
    Weights,
    /// Recompute the scoring pass on the node's ledger and show every factor behind the weights
    /// (all miners, or one with every worker's factors).
    ExplainWeights {
        /// The miner's hotkey: show its workers too.
        #[arg(long)]
        miner: Option<String>,
    },
}

#[derive(Subcommand)]
enum MetagraphCmd {
    /// List the registered neurons.
    List,
    /// Replace the metagraph from a JSON file `{"netuid", "block", "neurons": [{"uid", "hotkey",
    /// "coldkey", "stake_rao", "validator_permit", "axon"}]}` (devnet and tests; in production
    /// the leader syncs it from the chain).
    Load { file: PathBuf },
}

#[derive(Subcommand)]
enum SettingCmd {
    Get {
        key: String,
        /// Read through the leader with a quorum check.
        #[arg(long)]
        linearizable: bool,
    },
    Put {
        key: String,
        value: String,
    },
}

fn resolve(cli: &Cli) -> anyhow::Result<(String, CtlTls)> {
    let config = match &cli.config {
        Some(path) => Some(Config::load(path)?),
        None => None,
    };
    let addr = cli
        .addr
        .clone()
        .or_else(|| config.as_ref().map(|c| c.admin_advertise()))
        .context("no node address: pass --addr HOST:PORT or --config FILE (or set VALIDATORCTL_ADDR)")?;
    let tls_dir = cli
        .tls_dir
        .clone()
        .or_else(|| config.as_ref().map(|c| c.tls_dir()))
        .context("no TLS folder: pass --tls-dir DIR or --config FILE (or set VALIDATORCTL_TLS_DIR)")?;
    Ok((addr, CtlTls::from_dir(&tls_dir)?))
}

fn metagraph_request(doc: &serde_json::Value) -> anyhow::Result<pb::MetagraphRequest> {
    let field = |v: &serde_json::Value, k: &str| v.get(k).cloned().unwrap_or(serde_json::Value::Null);
    let neurons = doc.get("neurons").and_then(|n| n.as_array()).context("needs a \"neurons\" list")?;
    let mut out = Vec::with_capacity(neurons.len());
    for (i, n) in neurons.iter().enumerate() {
        let uid = field(n, "uid").as_u64().with_context(|| format!("neurons[{i}].uid must be an integer"))?;
        let hotkey =
            field(n, "hotkey").as_str().with_context(|| format!("neurons[{i}].hotkey must be a string"))?.to_string();
        out.push(pb::Neuron {
            uid: u32::try_from(uid).with_context(|| format!("neurons[{i}].uid out of range"))?,
            hotkey,
            coldkey: field(n, "coldkey").as_str().unwrap_or_default().to_string(),
            stake_rao: field(n, "stake_rao").as_u64().unwrap_or(0),
            validator_permit: field(n, "validator_permit").as_bool().unwrap_or(false),
            axon: field(n, "axon").as_str().map(str::to_string),
        });
    }
    Ok(pb::MetagraphRequest {
        netuid: u32::try_from(field(doc, "netuid").as_u64().unwrap_or(128)).context("netuid out of range")?,
        block: field(doc, "block").as_u64().unwrap_or(0),
        neurons: out,
    })
}

fn print_json(value: serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
}

fn membership(reply: &pb::MembershipReply, json: bool) {
    if json {
        print_json(
            serde_json::json!({"log_index": reply.log_index, "voters": reply.voters, "learners": reply.learners}),
        );
    } else {
        println!("voters: {:?}, learners: {:?} (log index {})", reply.voters, reply.learners, reply.log_index);
    }
}

async fn status(addr: &str, tls: &CtlTls, json: bool) -> anyhow::Result<()> {
    let mut client = connect(addr, tls, Duration::from_secs(5)).await?;
    let first = client.status(pb::Empty {}).await?.into_inner();
    // Ask every member for its own view; the table shows who is down.
    let mut rows = Vec::new();
    let mut statuses = Vec::new();
    for (i, m) in first.members.iter().enumerate() {
        let Some(spec) = &m.member else { continue };
        let status = if spec.id == first.id {
            Some(first.clone())
        } else {
            match connect(&spec.admin_addr, tls, Duration::from_secs(2)).await {
                Ok(mut c) => c.status(pb::Empty {}).await.ok().map(|r| r.into_inner()),
                Err(_) => None,
            }
        };
        rows.push((i + 1, status.clone()));
        statuses.push((spec.clone(), status));
    }
    if first.members.is_empty() {
        rows.push((1, Some(first.clone())));
    }
    if json {
        print_json(serde_json::json!({
            "queried": validator_node::ctl::status_json(&first),
            "members": statuses.iter().map(|(spec, s)| serde_json::json!({
                "id": spec.id,
                "name": spec.name,
                "reachable": s.is_some(),
                "status": s.as_ref().map(validator_node::ctl::status_json),
            })).collect::<Vec<_>>(),
        }));
    } else {
        if !first.initialized {
            println!("node {} ({}) is not part of an initialized cluster yet", first.id, first.name);
        }
        println!("{}", validator_node::ctl::status_table(&rows));
        if let Some(leader) = rows.iter().filter_map(|(_, s)| s.as_ref()).find(|s| s.state == "leader") {
            println!("{}", validator_node::ctl::members_table(leader));
        }
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (addr, tls) = resolve(&cli)?;
    let json = cli.json;
    match cli.command {
        Cmd::Status => status(&addr, &tls, json).await?,
        Cmd::InitCluster { admin_addrs } => {
            if admin_addrs.is_empty() {
                anyhow::bail!("give the admin addresses of every initial member");
            }
            let mut members = Vec::new();
            for a in &admin_addrs {
                let mut c = connect(a, &tls, Duration::from_secs(5)).await?;
                members.push(
                    c.node_info(pb::Empty {}).await.with_context(|| format!("asking {a} who it is"))?.into_inner(),
                );
            }
            let mut first = connect(&admin_addrs[0], &tls, Duration::from_secs(5)).await?;
            let reply = first.init_cluster(pb::InitClusterRequest { members }).await?.into_inner();
            membership(&reply, json);
        }
        Cmd::AddLearner { admin_addr } => {
            let mut c = connect(&admin_addr, &tls, Duration::from_secs(5)).await?;
            let spec =
                c.node_info(pb::Empty {}).await.with_context(|| format!("asking {admin_addr} who it is"))?.into_inner();
            if !json {
                println!("adding {} (id {}, raft {}) as a learner", spec.name, spec.id, spec.raft_addr);
            }
            let reply = on_leader(&addr, &tls, |mut c| {
                let spec = spec.clone();
                async move { c.add_learner(spec).await }
            })
            .await?;
            membership(&reply, json);
        }
        Cmd::Promote { ids } => {
            let reply = on_leader(&addr, &tls, |mut c| {
                let ids = ids.clone();
                async move { c.promote(pb::NodeIds { ids }).await }
            })
            .await?;
            membership(&reply, json);
        }
        Cmd::Remove { ids } => {
            let reply = on_leader(&addr, &tls, |mut c| {
                let ids = ids.clone();
                async move { c.remove(pb::NodeIds { ids }).await }
            })
            .await?;
            membership(&reply, json);
        }
        Cmd::TransferLeader { id } => {
            let reply =
                on_leader(
                    &addr,
                    &tls,
                    |mut c| async move { c.transfer_leader(pb::TransferLeaderRequest { to: id }).await },
                )
                .await?;
            if json {
                print_json(serde_json::json!({"new_leader": reply.new_leader, "elapsed_ms": reply.elapsed_ms}));
            } else {
                println!("node {} leads now ({} ms)", reply.new_leader, reply.elapsed_ms);
            }
        }
        Cmd::StepDown => {
            let reply = on_leader(&addr, &tls, |mut c| async move { c.step_down(pb::Empty {}).await }).await?;
            if json {
                print_json(serde_json::json!({"new_leader": reply.new_leader, "elapsed_ms": reply.elapsed_ms}));
            } else {
                println!("node {} leads now ({} ms)", reply.new_leader, reply.elapsed_ms);
            }
        }
        Cmd::Snapshot => {
            let mut c = connect(&addr, &tls, Duration::from_secs(5)).await?;
            let reply = c.snapshot(pb::Empty {}).await?.into_inner();
            if json {
                print_json(serde_json::json!({"index": reply.index}));
            } else {
                println!("snapshot at log index {}", reply.index.map(|i| i.to_string()).unwrap_or_else(|| "-".into()));
            }
        }
        Cmd::Setting(SettingCmd::Get { key, linearizable }) => {
            let reply = if linearizable {
                on_leader(&addr, &tls, |mut c| {
                    let key = key.clone();
                    async move { c.get_setting(pb::GetSettingRequest { key, linearizable: true }).await }
                })
                .await?
            } else {
                let mut c = connect(&addr, &tls, Duration::from_secs(5)).await?;
                c.get_setting(pb::GetSettingRequest { key: key.clone(), linearizable: false }).await?.into_inner()
            };
            if json {
                print_json(serde_json::json!({"key": key, "value": reply.value, "applied": reply.applied}));
            } else {
                match reply.value {
                    Some(v) => println!("{v}"),
                    None => println!("(not set)"),
                }
            }
        }
        Cmd::Setting(SettingCmd::Put { key, value }) => {
            let mut c = connect(&addr, &tls, Duration::from_secs(5)).await?;
            let reply = c.put_setting(pb::PutSettingRequest { key, value, timeout_ms: 0 }).await?.into_inner();
            if json {
                print_json(
                    serde_json::json!({"index": reply.index, "term": reply.term, "leader": reply.leader, "outcome": reply.outcome}),
                );
            } else {
                println!(
                    "{} at log index {} (leader {}, term {})",
                    reply.outcome, reply.index, reply.leader, reply.term
                );
            }
        }
        Cmd::Metagraph(MetagraphCmd::List) => {
            let mut c = connect(&addr, &tls, Duration::from_secs(5)).await?;
            let reply = c.list_neurons(pb::Empty {}).await?.into_inner();
            if json {
                print_json(serde_json::json!(
                    reply
                        .neurons
                        .iter()
                        .map(|n| serde_json::json!({
                            "uid": n.uid, "hotkey": n.hotkey, "coldkey": n.coldkey, "stake_rao": n.stake_rao,
                            "validator_permit": n.validator_permit, "axon": n.axon,
                        }))
                        .collect::<Vec<_>>()
                ));
            } else {
                for n in &reply.neurons {
                    println!(
                        "{:>4} {} stake {} {}",
                        n.uid,
                        n.hotkey,
                        n.stake_rao,
                        if n.validator_permit { "permit" } else { "" }
                    );
                }
                println!("{} neurons", reply.neurons.len());
            }
        }
        Cmd::Metagraph(MetagraphCmd::Load { file }) => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let doc: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
            let request = metagraph_request(&doc).with_context(|| format!("{}", file.display()))?;
            let count = request.neurons.len();
            let mut c = connect(&addr, &tls, Duration::from_secs(5)).await?;
            let reply = c.load_metagraph(request).await?.into_inner();
            if json {
                print_json(serde_json::json!({"index": reply.index, "neurons": count}));
            } else {
                println!("loaded {count} neurons at log index {}", reply.index);
            }
        }
        Cmd::Weights => {
            let mut c = connect(&addr, &tls, Duration::from_secs(5)).await?;
            let reply = c.weights(pb::Empty {}).await?.into_inner();
            if json {
                print_json(serde_json::json!({
                    "seq": reply.seq,
                    "at_ms": reply.at_ms,
                    "inputs_digest": reply.inputs_digest,
                    "weights": reply.weights.iter().map(|w| serde_json::json!({"uid": w.uid, "hotkey": w.hotkey, "weight": w.weight})).collect::<Vec<_>>(),
                }));
            } else if let Some(seq) = reply.seq {
                println!("scoring pass {seq} at {} ms, inputs {}", reply.at_ms, reply.inputs_digest);
                if reply.weights.is_empty() {
                    println!("no weight above 0: nothing would be submitted");
                }
                let total: f64 = reply.weights.iter().map(|w| f64::from(w.weight)).sum();
                println!("{:>5}  {:<50}  {:>6}  {:>7}", "uid", "hotkey", "u16", "share");
                for w in &reply.weights {
                    let share = if total > 0.0 { 100.0 * f64::from(w.weight) / total } else { 0.0 };
                    println!("{:>5}  {:<50}  {:>6}  {:>6.2}%", w.uid, w.hotkey, w.weight, share);
                }
            } else {
                println!(
                    "no scoring pass recorded yet (the leader runs one every scoring.interval_secs, 420 s by default)"
                );
            }
        }
        Cmd::ExplainWeights { miner } => {
            let mut c = connect(&addr, &tls, Duration::from_secs(30)).await?;
            let reply = c.explain_weights(pb::ExplainWeightsRequest { miner }).await?.into_inner();
            let report: serde_json::Value =
                serde_json::from_str(&reply.report_json).context("the node sent an unreadable report")?;
            if json {
                print_json(serde_json::json!({
                    "inputs_digest": reply.inputs_digest,
                    "matches_last_pass": reply.matches_last_pass,
                    "report": report,
                }));
            } else {
                println!(
                    "recomputed on this node's ledger: inputs {} ({})",
                    reply.inputs_digest,
                    if reply.matches_last_pass {
                        "the same inputs as the last recorded pass"
                    } else {
                        "the ledger moved on since the last recorded pass"
                    }
                );
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            }
        }
        Cmd::StateHash => {
            let mut c = connect(&addr, &tls, Duration::from_secs(5)).await?;
            let reply = c.state_hash(pb::Empty {}).await?.into_inner();
            if json {
                print_json(serde_json::json!({"applied": reply.applied, "hash": reply.hash, "rows": reply.rows}));
            } else {
                println!(
                    "{} at applied index {} ({} rows)",
                    reply.hash,
                    reply.applied.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                    reply.rows
                );
            }
        }
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    validator_node::install_crypto();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting tokio: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
