//! `validator tools`: recompute challenges by hand, as JSON, to check a worker or a dispute
//! against the original's numbers (byteleap-protocol.md §3, §9).

use crate::challenge::tools;

#[derive(Debug, clap::Subcommand)]
pub enum ToolsCommand {
    /// The honest CPU worker's Merkle root, and the row hashes and proofs of the given rows.
    CpuChallenge {
        /// 32 hex characters (the 16-byte challenge seed).
        #[arg(long)]
        seed: String,
        /// Matrix size n (100..=10000).
        #[arg(long)]
        size: u64,
        #[arg(long, default_value_t = 1)]
        iterations: u32,
        /// Rows to reveal, e.g. 0,1,5.
        #[arg(long, value_delimiter = ',')]
        rows: Vec<u64>,
    },
    /// The expected GPU row hashes, Merkle root (small n only) and coordinate values.
    GpuChallenge {
        #[arg(long)]
        seed: String,
        /// The GPU UUID the worker reported.
        #[arg(long)]
        uuid: String,
        #[arg(long)]
        size: u64,
        #[arg(long, value_delimiter = ',')]
        rows: Vec<u64>,
        /// Coordinates as row:col, comma separated, e.g. 0:0,3:5.
        #[arg(long, value_delimiter = ',')]
        coords: Vec<String>,
    },
    /// The matrix size a seed draws (§3.2 dynamic size).
    DynamicSize {
        #[arg(long)]
        seed: String,
        #[arg(long)]
        base: u64,
        #[arg(long)]
        variance: f64,
        /// Use the GPU clamps (lo ≥ 1, no upper bound) instead of the CPU ones (100..=10000).
        #[arg(long)]
        gpu: bool,
    },
}

fn parse_coord(text: &str) -> anyhow::Result<(u64, u64)> {
    let (r, c) = text.split_once(':').ok_or_else(|| anyhow::anyhow!("coordinate {text:?} is not ROW:COL"))?;
    Ok((r.trim().parse()?, c.trim().parse()?))
}

pub fn run(command: ToolsCommand) -> anyhow::Result<()> {
    let doc = match command {
        ToolsCommand::CpuChallenge { seed, size, iterations, rows } => {
            tools::cpu_challenge(&seed, size, iterations, &rows)?
        }
        ToolsCommand::GpuChallenge { seed, uuid, size, rows, coords } => {
            let coords = coords.iter().map(|c| parse_coord(c)).collect::<anyhow::Result<Vec<_>>>()?;
            tools::gpu_challenge(&seed, &uuid, size, &rows, &coords)?
        }
        ToolsCommand::DynamicSize { seed, base, variance, gpu } => {
            serde_json::json!({ "size": tools::dynamic_size(&seed, base, variance, gpu)? })
        }
    };
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
