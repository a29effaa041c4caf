//! The node's configuration: one TOML file, checked completely at start.
//!
//! Section and key names follow the original validator where it had one (`database.url`,
//! `logging.log_level`; byteleap-protocol.md §6); the cluster adds `node`, `cluster`, `admin`,
//! `metrics` and `raft`. Every key is documented in `deploy/validator.example.toml`.
//!
//! Any key can be overridden from the environment as `VALIDATOR__<SECTION>__<KEY>` (for
//! example `VALIDATOR__DATABASE__URL`). An unknown key, a wrong type or a value out of range
//! stops the node at start with the key's name and what it accepts.

use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;

use serde::Deserialize;
use serde::Serialize;

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), reason: reason.into() }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The miner-facing axon's TCP port (original: `port`, 1024..=65535, §6). Default 9091.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The IP miners dial, as served on chain (original: `external_ip`, §6). Unset: the axon's
    /// bind address.
    #[serde(default)]
    pub external_ip: Option<String>,
    /// Subnet id (original: `netuid`, §6). Default 128.
    #[serde(default = "default_netuid")]
    pub netuid: u16,
    #[serde(default)]
    pub wallet: WalletSection,
    #[serde(default)]
    pub axon: AxonSection,
    #[serde(default)]
    pub security: SecuritySection,
    #[serde(default)]
    pub validation: ValidationSection,
    pub node: NodeSection,
    #[serde(default)]
    pub database: DatabaseSection,
    pub cluster: ClusterSection,
    pub admin: AdminSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(default)]
    pub raft: RaftSection,
    #[serde(default)]
    pub logging: LoggingSection,
    /// The folder of the config file: relative paths are taken from here.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Operator's name for this node; also the DNS name in its certificate.
    pub name: String,
    /// Where the ledger (SQLite) and snapshots live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Async worker threads of the node (0: one per CPU core). Set it lower when several nodes
    /// share a host: the devnet gives each node one.
    #[serde(default)]
    pub worker_threads: usize,
}

fn default_port() -> u16 {
    9091
}

fn default_netuid() -> u16 {
    128
}

/// The validator's hotkey, as the bittensor SDK lays wallets out (original: `wallet.*`, §6):
/// `<path>/<name>/hotkeys/<hotkey>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletSection {
    #[serde(default = "default_wallet_name")]
    pub name: String,
    #[serde(default = "default_wallet_hotkey")]
    pub hotkey: String,
    #[serde(default = "default_wallet_path")]
    pub path: PathBuf,
}

fn default_wallet_name() -> String {
    "validator".into()
}
fn default_wallet_hotkey() -> String {
    "default".into()
}
fn default_wallet_path() -> PathBuf {
    PathBuf::from("~/.bittensor/wallets")
}

impl Default for WalletSection {
    fn default() -> Self {
        WalletSection { name: default_wallet_name(), hotkey: default_wallet_hotkey(), path: default_wallet_path() }
    }
}

/// The miner-facing HTTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AxonSection {
    /// Serve miners at all. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// IP the axon binds (with `port`). Default 0.0.0.0.
    #[serde(default = "default_bind_ip")]
    pub bind_ip: std::net::IpAddr,
    /// Largest request body, KiB. A heartbeat of 100 workers with full GPU inventories is
    /// well under 1 MiB; a GPU proof carries up to 3 full rows of 32k values (~2 MiB). Default 8192.
    #[serde(default = "default_max_body_kib")]
    pub max_body_kib: u64,
}

fn default_true() -> bool {
    true
}
fn default_bind_ip() -> std::net::IpAddr {
    std::net::IpAddr::from([0, 0, 0, 0])
}
fn default_max_body_kib() -> u64 {
    8192
}

impl Default for AxonSection {
    fn default() -> Self {
        AxonSection { enabled: true, bind_ip: default_bind_ip(), max_body_kib: default_max_body_kib() }
    }
}

/// Challenges and their verification (original: `validation.*`, byteleap-protocol.md §3, §6).
/// Keep these equal on every node: the leader issues with them and any node may verify.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationSection {
    /// Seconds between issuing passes and the least gap between two challenges of one miner.
    pub challenge_interval: u64,
    /// Seconds a polled challenge has for its commitment; also sent to the miner (1..=300).
    pub challenge_timeout: u64,
    /// `cpu_matrix` or `gpu_matrix`.
    pub challenge_type: String,
    /// Seconds a committed challenge has for its proof (ours; the original waits an hour, §3.9).
    pub proof_timeout: u64,
    /// Seconds a proof may wait for its verdict before it fails as a validator-side fault (ours).
    pub verification_timeout: u64,
    /// Seconds a created challenge waits for a poll before it expires (ours; §8.3.16).
    pub created_timeout: u64,
    /// Proofs this member verifies at once (ours); 0 = one per core.
    pub verification_workers: u64,
    pub cpu: CpuValidation,
    pub gpu: GpuValidation,
}

impl Default for ValidationSection {
    fn default() -> Self {
        ValidationSection {
            challenge_interval: 240,
            challenge_timeout: 60,
            challenge_type: "gpu_matrix".into(),
            proof_timeout: 300,
            verification_timeout: 600,
            created_timeout: 960,
            verification_workers: 0,
            cpu: CpuValidation::default(),
            gpu: GpuValidation::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuValidation {
    /// 100..=10000.
    pub matrix_size: u64,
    /// 0..=0.5.
    pub size_variance: f64,
    pub iterations: u32,
    pub verification: CpuVerification,
}

impl Default for CpuValidation {
    fn default() -> Self {
        CpuValidation { matrix_size: 2000, size_variance: 0.1, iterations: 1, verification: CpuVerification::default() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuVerification {
    pub row_verification_count: u64,
    pub row_verification_count_variance: f64,
}

impl Default for CpuVerification {
    fn default() -> Self {
        CpuVerification { row_verification_count: 50, row_verification_count_variance: 0.5 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuValidation {
    pub matrix_size: u64,
    pub size_variance: f64,
    pub iterations: u32,
    /// Case-insensitive substrings of allowed GPU models; empty allows all.
    pub model_allowlist: Vec<String>,
    /// The P-256 key GPU commitments are signed with (hex, uncompressed point). Default: the
    /// key of the distributed CUDA binary (§3.3). A devnet sets its own for simulated GPUs.
    pub commitment_public_key: String,
    pub verification: GpuVerification,
}

impl Default for GpuValidation {
    fn default() -> Self {
        GpuValidation {
            matrix_size: 32768,
            size_variance: 0.05,
            iterations: 1,
            model_allowlist: [
                "RTX 3090",
                "RTX 4090",
                "RTX 5090",
                "A100-SXM4-80GB",
                "A100 80GB",
                "A100-PCIE-80GB",
                "H100 80GB",
                "H100-PCIE-80GB",
                "H100 94GB",
                "H200",
                "B200",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            commitment_public_key: crate::challenge::signature::GPU_COMMITMENT_PUBLIC_KEY_HEX.to_string(),
            verification: GpuVerification::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuVerification {
    pub coordinate_sample_count: u64,
    pub coordinate_sample_count_variance: f64,
    pub row_verification_count: u64,
    pub row_verification_count_variance: f64,
    pub row_sample_rate: f64,
    pub abs_tolerance: f64,
    pub rel_tolerance: f64,
    pub success_rate_threshold: f64,
}

impl Default for GpuVerification {
    fn default() -> Self {
        GpuVerification {
            coordinate_sample_count: 25,
            coordinate_sample_count_variance: 0.2,
            row_verification_count: 2,
            row_verification_count_variance: 0.5,
            row_sample_rate: 0.001,
            abs_tolerance: 0.02,
            rel_tolerance: 0.005,
            success_rate_threshold: 0.85,
        }
    }
}

fn check_fraction(key: &str, value: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
    if !value.is_finite() || value < lo || value > hi {
        return Err(invalid(key, format!("must be between {lo} and {hi}, got {value}")));
    }
    Ok(())
}

impl ValidationSection {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("validation.challenge_interval", self.challenge_interval, 5, 86_400)?;
        check_range("validation.challenge_timeout", self.challenge_timeout, 1, 300)?;
        check_range("validation.proof_timeout", self.proof_timeout, 10, 86_400)?;
        check_range("validation.verification_workers", self.verification_workers, 0, 256)?;
        check_range("validation.verification_timeout", self.verification_timeout, 10, 86_400)?;
        check_range("validation.created_timeout", self.created_timeout, 10, 7 * 86_400)?;
        if !matches!(self.challenge_type.as_str(), "cpu_matrix" | "gpu_matrix") {
            return Err(invalid("validation.challenge_type", "must be cpu_matrix or gpu_matrix"));
        }
        check_range("validation.cpu.matrix_size", self.cpu.matrix_size, 100, 10_000)?;
        check_fraction("validation.cpu.size_variance", self.cpu.size_variance, 0.0, 0.5)?;
        check_range("validation.cpu.iterations", self.cpu.iterations.into(), 1, 100)?;
        let cv = &self.cpu.verification;
        check_range("validation.cpu.verification.row_verification_count", cv.row_verification_count, 1, 10_000)?;
        check_fraction(
            "validation.cpu.verification.row_verification_count_variance",
            cv.row_verification_count_variance,
            0.0,
            1.0,
        )?;
        check_range("validation.gpu.matrix_size", self.gpu.matrix_size, 1, 1 << 20)?;
        check_fraction("validation.gpu.size_variance", self.gpu.size_variance, 0.0, 1.0)?;
        check_range("validation.gpu.iterations", self.gpu.iterations.into(), 1, 100)?;
        if hex::decode(&self.gpu.commitment_public_key).map_or(true, |k| k.len() != 65) {
            return Err(invalid(
                "validation.gpu.commitment_public_key",
                "must be 65 bytes of hex (an uncompressed P-256 point)",
            ));
        }
        let gv = &self.gpu.verification;
        check_range("validation.gpu.verification.coordinate_sample_count", gv.coordinate_sample_count, 0, 100_000)?;
        check_range("validation.gpu.verification.row_verification_count", gv.row_verification_count, 0, 64)?;
        if gv.coordinate_sample_count == 0 && gv.row_verification_count == 0 {
            return Err(invalid(
                "validation.gpu.verification",
                "coordinate_sample_count and row_verification_count cannot both be 0 (§1.3)",
            ));
        }
        for (key, value) in [
            ("coordinate_sample_count_variance", gv.coordinate_sample_count_variance),
            ("row_verification_count_variance", gv.row_verification_count_variance),
            ("row_sample_rate", gv.row_sample_rate),
            ("abs_tolerance", gv.abs_tolerance),
            ("rel_tolerance", gv.rel_tolerance),
            ("success_rate_threshold", gv.success_rate_threshold),
        ] {
            check_fraction(&format!("validation.gpu.verification.{key}"), value, 0.0, 1.0)?;
        }
        Ok(())
    }
}

/// Original: `security.rate_limit.*` (§2.3, §6).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySection {
    #[serde(default)]
    pub rate_limit: RateLimitSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSection {
    /// Sliding window, seconds (1..=3600). Original default 30.
    #[serde(default = "default_rate_window")]
    pub window_seconds: u64,
    /// Requests per hotkey per window (1..=1000000). The original's 150 refuses honest
    /// 100-worker miners (§8.4.28); default 600.
    #[serde(default = "default_rate_max")]
    pub max_requests: u32,
}

fn default_rate_window() -> u64 {
    crate::axon::limits::DEFAULT_WINDOW_S
}
fn default_rate_max() -> u32 {
    crate::axon::limits::DEFAULT_MAX_REQUESTS
}

impl Default for RateLimitSection {
    fn default() -> Self {
        RateLimitSection { window_seconds: default_rate_window(), max_requests: default_rate_max() }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite://FILE` (relative to `node.data_dir`) or `postgres://...` (original: §6 `database.url`).
    #[serde(default = "default_database_url")]
    pub url: String,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection { url: default_database_url() }
    }
}

fn default_database_url() -> String {
    "sqlite://ledger.db".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// A label for logs and the CA name.
    #[serde(default = "default_cluster_name")]
    pub name: String,
    /// UDP address the QUIC transport binds.
    pub listen: SocketAddr,
    /// Address peers use to reach this node (default: `listen`).
    #[serde(default)]
    pub advertise: Option<String>,
    /// Folder with `ca.crt`, `node.crt`, `node.key`.
    #[serde(default = "default_tls_dir")]
    pub tls_dir: PathBuf,
    /// Largest snapshot this node accepts from a leader, in MiB.
    #[serde(default = "default_max_snapshot_mib")]
    pub max_snapshot_mib: u64,
}

fn default_cluster_name() -> String {
    "byteleap-sn128".into()
}

fn default_tls_dir() -> PathBuf {
    PathBuf::from("tls")
}

fn default_max_snapshot_mib() -> u64 {
    16 * 1024
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// TCP address of the admin gRPC service (TLS, client certificates from the cluster CA).
    pub listen: SocketAddr,
    #[serde(default)]
    pub advertise: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// TCP address serving Prometheus `/metrics`; empty disables it.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

#[allow(clippy::derivable_impls)]
impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection { listen: None }
    }
}

/// Timing presets for Raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RaftProfile {
    /// Heartbeat 50 ms, election 150–300 ms: fast failover on a LAN or loopback.
    Fast,
    /// Heartbeat 100 ms, election 500–1000 ms: tolerant of WAN jitter and slow disks.
    Production,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftSection {
    #[serde(default = "default_profile")]
    pub profile: RaftProfile,
    /// Overrides of the profile's timings, in milliseconds.
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
    #[serde(default)]
    pub election_timeout_min_ms: Option<u64>,
    #[serde(default)]
    pub election_timeout_max_ms: Option<u64>,
    /// Take a snapshot after this many entries since the last one.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every_entries: u64,
    /// Entries kept in the log behind a snapshot (for followers a little behind).
    #[serde(default = "default_keep_entries")]
    pub keep_entries_after_snapshot: u64,
    /// Time allowed to send a whole snapshot to a follower, in milliseconds.
    #[serde(default = "default_snapshot_send_ms")]
    pub snapshot_send_timeout_ms: u64,
}

fn default_profile() -> RaftProfile {
    RaftProfile::Production
}
fn default_snapshot_every() -> u64 {
    5000
}
fn default_keep_entries() -> u64 {
    1000
}
fn default_snapshot_send_ms() -> u64 {
    120_000
}

impl Default for RaftSection {
    fn default() -> Self {
        RaftSection {
            profile: default_profile(),
            heartbeat_ms: None,
            election_timeout_min_ms: None,
            election_timeout_max_ms: None,
            snapshot_every_entries: default_snapshot_every(),
            keep_entries_after_snapshot: default_keep_entries(),
            snapshot_send_timeout_ms: default_snapshot_send_ms(),
        }
    }
}

/// The timings Raft runs with, after the profile and overrides.
#[derive(Debug, Clone, Copy)]
pub struct RaftTimings {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
}

impl RaftSection {
    pub fn timings(&self) -> RaftTimings {
        let (h, lo, hi) = match self.profile {
            RaftProfile::Fast => (50, 150, 300),
            RaftProfile::Production => (100, 500, 1000),
        };
        RaftTimings {
            heartbeat_ms: self.heartbeat_ms.unwrap_or(h),
            election_min_ms: self.election_timeout_min_ms.unwrap_or(lo),
            election_max_ms: self.election_timeout_max_ms.unwrap_or(hi),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingSection {
    /// trace, debug, info, warn or error (original: §6 `logging.log_level`), or a tracing
    /// filter such as `info,openraft=warn`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// `text` or `json`.
    #[serde(default = "default_log_format")]
    pub format: String,
}

fn default_log_level() -> String {
    "info,openraft=warn".into()
}
fn default_log_format() -> String {
    "text".into()
}

impl Default for LoggingSection {
    fn default() -> Self {
        LoggingSection { log_level: default_log_level(), format: default_log_format() }
    }
}

fn check_range(key: &str, value: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if value < lo || value > hi {
        return Err(invalid(key, format!("must be between {lo} and {hi}, got {value}")));
    }
    Ok(())
}

impl Config {
    /// Reads, overrides from the environment, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.display().to_string(), reason: e.to_string() })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, &base, std::env::vars(), &path.display().to_string())
    }

    /// Parses a config text with the given environment (testable without touching the process).
    pub fn parse(
        text: &str,
        base_dir: &Path,
        env: impl Iterator<Item = (String, String)>,
        origin: &str,
    ) -> Result<Config, ConfigError> {
        let mut doc: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: origin.to_string(), reason: e.to_string() })?;
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("VALIDATOR__") else {
                continue;
            };
            let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            if parts.len() != 2 || parts.iter().any(String::is_empty) {
                return Err(invalid(&name, "environment overrides look like VALIDATOR__SECTION__KEY"));
            }
            let section = doc
                .entry(parts[0].clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| invalid(&parts[0], "is not a section"))?;
            // Values parse as TOML when they can (numbers, booleans), else as strings.
            let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(value));
            section.insert(parts[1].clone(), parsed);
        }
        let mut config: Config = toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse { path: origin.to_string(), reason: e.to_string() })?;
        config.base_dir = base_dir.to_path_buf();
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let name = &self.node.name;
        if name.is_empty()
            || name.len() > 63
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            || name.starts_with('-')
        {
            return Err(invalid("node.name", format!("must be 1-63 letters, digits or '-', got {name:?}")));
        }
        let url = self.database.url.to_ascii_lowercase();
        if !(url.starts_with("sqlite://") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid("database.url", "must start with sqlite:// or postgres://"));
        }
        check_range("node.worker_threads", self.node.worker_threads as u64, 0, 1024)?;
        check_range("port", self.port.into(), 1024, 65535)?;
        self.validation.validate()?;
        check_range("axon.max_body_kib", self.axon.max_body_kib, 16, 1 << 20)?;
        check_range("security.rate_limit.window_seconds", self.security.rate_limit.window_seconds, 1, 3600)?;
        check_range("security.rate_limit.max_requests", self.security.rate_limit.max_requests.into(), 1, 1_000_000)?;
        for (key, value) in [("wallet.name", &self.wallet.name), ("wallet.hotkey", &self.wallet.hotkey)] {
            if value.is_empty() || value.contains('/') || value.contains("..") {
                return Err(invalid(key, format!("must be a plain file name, got {value:?}")));
            }
        }
        if let Some(ip) = &self.external_ip
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            return Err(invalid("external_ip", format!("must be an IP address, got {ip:?}")));
        }
        let t = self.raft.timings();
        check_range("raft.heartbeat_ms", t.heartbeat_ms, 10, 10_000)?;
        check_range("raft.election_timeout_min_ms", t.election_min_ms, 50, 60_000)?;
        check_range("raft.election_timeout_max_ms", t.election_max_ms, 50, 120_000)?;
        if t.election_max_ms <= t.election_min_ms {
            return Err(invalid(
                "raft.election_timeout_max_ms",
                format!("must be greater than raft.election_timeout_min_ms ({})", t.election_min_ms),
            ));
        }
        if t.heartbeat_ms * 2 >= t.election_min_ms {
            return Err(invalid(
                "raft.heartbeat_ms",
                format!("must be less than half of raft.election_timeout_min_ms ({} ms)", t.election_min_ms),
            ));
        }
        check_range("raft.snapshot_every_entries", self.raft.snapshot_every_entries, 10, 100_000_000)?;
        check_range("raft.keep_entries_after_snapshot", self.raft.keep_entries_after_snapshot, 0, 10_000_000)?;
        check_range("raft.snapshot_send_timeout_ms", self.raft.snapshot_send_timeout_ms, 1000, 86_400_000)?;
        check_range("cluster.max_snapshot_mib", self.cluster.max_snapshot_mib, 1, 1 << 20)?;
        if !matches!(self.logging.format.as_str(), "text" | "json") {
            return Err(invalid("logging.format", format!("must be text or json, got {:?}", self.logging.format)));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.logging.log_level).is_err() {
            return Err(invalid("logging.log_level", "must be trace, debug, info, warn, error or a tracing filter"));
        }
        for (key, value) in [("cluster.advertise", &self.cluster.advertise), ("admin.advertise", &self.admin.advertise)]
        {
            if let Some(v) = value
                && v.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none()
            {
                return Err(invalid(key, format!("must be HOST:PORT, got {v:?}")));
            }
        }
        Ok(())
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_path_buf() } else { self.base_dir.join(path) }
    }

    /// The validator's hotkey file: `wallet.path/wallet.name/hotkeys/wallet.hotkey` (`~` is the
    /// home folder; relative paths are taken from the config file's folder).
    pub fn hotkey_file(&self) -> PathBuf {
        let path = &self.wallet.path;
        let base = match path.to_str().and_then(|p| p.strip_prefix("~/")) {
            Some(rest) => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(rest),
            None => self.resolve(path),
        };
        base.join(&self.wallet.name).join("hotkeys").join(&self.wallet.hotkey)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.resolve(&self.node.data_dir)
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.resolve(&self.cluster.tls_dir)
    }

    pub fn raft_advertise(&self) -> String {
        self.cluster.advertise.clone().unwrap_or_else(|| self.cluster.listen.to_string())
    }

    pub fn admin_advertise(&self) -> String {
        self.admin.advertise.clone().unwrap_or_else(|| self.admin.listen.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [node]
        name = "node-1"
        [cluster]
        listen = "127.0.0.1:7101"
        [admin]
        listen = "127.0.0.1:7201"
    "#;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::parse(
            text,
            Path::new("/etc/validator"),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            "test",
        )
    }

    #[test]
    fn a_minimal_file_gets_sane_defaults() {
        let c = parse(MINIMAL, &[]).unwrap();
        assert_eq!(c.database.url, "sqlite://ledger.db");
        assert_eq!(c.data_dir(), PathBuf::from("/etc/validator/data"));
        assert_eq!(c.raft.profile, RaftProfile::Production);
        assert_eq!(c.raft_advertise(), "127.0.0.1:7101");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = parse(&format!("{MINIMAL}\n[raft]\nheartbeat = 5\n"), &[]).unwrap_err().to_string();
        assert!(err.contains("heartbeat"), "{err}");
    }

    #[test]
    fn an_out_of_range_value_names_the_key_and_range() {
        let err = parse(&format!("{MINIMAL}\n[raft]\nheartbeat_ms = 5\n"), &[]).unwrap_err().to_string();
        assert!(err.contains("raft.heartbeat_ms") && err.contains("between 10 and 10000"), "{err}");
    }

    #[test]
    fn heartbeats_must_fit_the_election_timeout() {
        let err = parse(&format!("{MINIMAL}\n[raft]\nprofile = \"fast\"\nheartbeat_ms = 100\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("less than half"), "{err}");
    }

    #[test]
    fn the_environment_overrides_keys() {
        let c = parse(
            MINIMAL,
            &[("VALIDATOR__DATABASE__URL", "postgres://postgres@db/v"), ("VALIDATOR__RAFT__HEARTBEAT_MS", "60")],
        )
        .unwrap();
        assert_eq!(c.database.url, "postgres://postgres@db/v");
        assert_eq!(c.raft.timings().heartbeat_ms, 60);
    }

    #[test]
    fn validation_keys_use_the_original_names_and_ranges() {
        let c = parse(
            &format!("{MINIMAL}\n[validation]\nchallenge_type = \"cpu_matrix\"\n[validation.cpu]\nmatrix_size = 256\n"),
            &[],
        )
        .unwrap();
        assert_eq!(c.validation.cpu.matrix_size, 256);
        assert_eq!(c.validation.gpu.verification.row_sample_rate, 0.001);
        let err = parse(&format!("{MINIMAL}\n[validation.cpu]\nmatrix_size = 50\n"), &[]).unwrap_err().to_string();
        assert!(err.contains("validation.cpu.matrix_size") && err.contains("between 100 and 10000"), "{err}");
        let err = parse(&format!("{MINIMAL}\n[validation.gpu.verification]\nabs_tolerance = 2.0\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("abs_tolerance"), "{err}");
    }

    #[test]
    fn a_wrong_type_is_reported_with_the_key() {
        let err = parse(&MINIMAL.replace("\"127.0.0.1:7201\"", "7201"), &[]).unwrap_err().to_string();
        assert!(err.contains("listen"), "{err}");
    }

    /// The documented example is a valid config, and it documents every key a config has.
    #[test]
    fn the_example_config_is_valid_and_complete() {
        let text = include_str!("../../deploy/validator.example.toml");
        let c = parse(text, &[]).expect("deploy/validator.example.toml must load");
        let defaults = parse(MINIMAL, &[]).unwrap();
        assert_eq!(c.validation.cpu.matrix_size, defaults.validation.cpu.matrix_size);
        assert_eq!(c.security.rate_limit.max_requests, defaults.security.rate_limit.max_requests);
        // Every key of the full config (serialised with all defaults) appears in the example,
        // set or commented out.
        fn keys(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
            if let toml::Value::Table(t) = value {
                for (k, v) in t {
                    let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    if v.is_table() {
                        keys(&name, v, out);
                    } else {
                        out.push(name);
                    }
                }
            }
        }
        let mut all = Vec::new();
        keys("", &toml::Value::try_from(&defaults).unwrap(), &mut all);
        for key in all {
            let leaf = key.rsplit('.').next().unwrap();
            assert!(
                text.lines().any(|l| l.trim_start_matches(['#', ' ']).starts_with(&format!("{leaf} ="))),
                "deploy/validator.example.toml does not document {key}"
            );
        }
    }
}
