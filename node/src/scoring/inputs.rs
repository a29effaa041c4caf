//! What one scoring pass reads, and the digest of it that goes into the ledger.

use std::sync::Arc;

use super::ScoringParams;
use super::presence::BucketBitmap;
use super::presence::GpuPresence;
use super::presence::Window;
use super::presence::WorkerHistory;
use super::presence::bucket_window;

/// Everything one pass reads, as of `now_ms`.
///
/// Order matters where the original's float sums follow its query order: the registered miners
/// of `miners` are summed in the order given for `avg_norm` and the weight normalisation (§4.4,
/// §4.7), which can change the last bit. Give them in hotkey byte order (the ledger's primary
/// key): that is the original's order on its default SQLite database. [`inputs_digest`] covers
/// the order given, so every member holding the same ledger computes the same pass.
#[derive(Debug, Clone, PartialEq)]
pub struct PassInputs {
    /// The pass time (the caller's clock; the pass never reads one).
    pub now_ms: u64,
    /// Registered hotkeys in uid order (the metagraph, §4.4 "active miners").
    pub metagraph: Vec<String>,
    /// Every miner the validator has heard from (`miner_info` rows), registered or not.
    pub miners: Vec<MinerInput>,
    /// `gpu_inventory`: the hotkey each GPU UUID was last reported by (§4.2 ownership filter).
    pub gpu_inventory: Vec<GpuOwner>,
}

/// One miner (hotkey) and all it reported.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerInput {
    pub hotkey: String,
    /// Last heartbeat of the miner: online iff within 30 minutes of `now` (§4.0).
    pub last_heartbeat_ms: Option<u64>,
    /// Every worker ever seen for this hotkey (`worker_info` rows, online or not: §4.5).
    pub workers: Vec<WorkerInput>,
    /// GPU UUIDs listed in this hotkey's heartbeats, per bucket (§4.3 step 3).
    pub gpu_presence: GpuPresence,
}

/// One worker of a miner.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerInput {
    pub worker_id: String,
    /// From MeshHub (§4.1); any value, unchecked, as in the original.
    pub lease_score: f64,
    pub history: WorkerHistory,
    /// This worker's challenges created within the ranking window (older ones may be included;
    /// the pass ignores them). The pass reads them newest first, as the original's query orders
    /// them; ascending `created_at_ms` order (the natural append order) costs nothing, any other
    /// order is sorted. Among equal times the later in this list counts as the newer.
    pub challenges: Vec<ChallengeInput>,
}

/// One challenge, reduced to what scoring reads (§4.2, §4.3 step 4). 48 bytes: a full subnet
/// holds about 1.2 million of them.
#[derive(Debug, Clone, PartialEq)]
pub struct ChallengeInput {
    pub created_at_ms: u64,
    /// Poll → commitment time (`computation_time_ms`); `None` never counts as a success.
    pub computation_time_ms: Option<f64>,
    /// The GPU UUIDs of the commitment (`merkle_commitments` keys). `"-1"` (CPU) and empty
    /// strings are ignored, so a CPU challenge may list `"-1"` or, cheaper, nothing. Shared: a
    /// GPU worker commits the same set challenge after challenge, so one allocation can serve
    /// them all.
    pub gpu_uuids: Arc<[String]>,
    /// GPUs that passed verification (`success_count`); 0 counts as 1 (§4.2).
    pub success_count: u32,
    /// `challenge_status = verified`: only these count for performance.
    pub verified: bool,
    /// `verification_result` (a null one is false).
    pub verification_result: bool,
    /// `is_success` (a null one is false).
    pub is_success: bool,
}

/// One `gpu_inventory` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuOwner {
    pub uuid: String,
    pub hotkey: String,
    pub last_seen_ms: u64,
}

/// Domain separation and version of the digest encoding: change it whenever the encoding does.
const DIGEST_DOMAIN: &[u8] = b"byteleap-scoring-inputs/v1\0";

/// The blake3 digest of what a pass reads: `now`, the parameters, and the inputs reduced to
/// what can influence the result (challenges inside the ranking window, inventory rows fresh
/// enough to count, bucket bitmaps masked to the availability window, IP changes inside it).
/// Two members holding the same state get the same digest; so do two states that differ only in
/// data the pass ignores.
///
/// Encoding: fixed-width little-endian integers, f64 as their bits, strings and lists prefixed
/// with a u32 length, 25 bytes per challenge, each worker's distinct GPU sets once; streamed
/// into the hasher in 64 KiB blocks (a full subnet encodes to about 30 MB, so no postcard of
/// the whole struct is built).
pub fn inputs_digest(inputs: &PassInputs, params: &ScoringParams) -> [u8; 32] {
    let mut digest = DigestStream::start(inputs, params);
    for miner in &inputs.miners {
        digest.miner(miner);
        for worker in &miner.workers {
            digest.worker(worker);
        }
        digest.miner_end(miner);
    }
    digest.finish()
}

/// [`inputs_digest`] piece by piece, so the pass can digest each worker right after scoring it,
/// while its challenges are still in cache (a full subnet's challenges are ~55 MB: reading
/// them twice from memory would cost more than the hashing). The calls must follow the order
/// of [`inputs_digest`]: `start`, then per miner `miner`, `worker` for each of its workers,
/// `miner_end`; then `finish`.
pub(crate) struct DigestStream<'a> {
    out: DigestWriter,
    ranking_start: u64,
    availability_start: u64,
    window: Window,
    words: Vec<u64>,
    sets: Vec<&'a [String]>,
}

impl<'a> DigestStream<'a> {
    pub(crate) fn start(inputs: &'a PassInputs, params: &ScoringParams) -> DigestStream<'a> {
        let mut out = DigestWriter::new();
        out.bytes(DIGEST_DOMAIN);
        out.u64(inputs.now_ms);
        out.u64(params.ranking_window_minutes);
        out.u64(params.challenge_interval);
        out.f64(params.participation_rate_threshold);
        out.u64(params.availability_window_hours);
        out.f64(params.lease_weight);
        out.f64(params.challenge_weight);
        out.u64(params.worker_cap as u64);

        out.len(inputs.metagraph.len());
        for hotkey in &inputs.metagraph {
            out.str(hotkey);
            out.flush_if_full();
        }

        let ranking_start = params.ranking_window_start(inputs.now_ms);
        let mut inventory: Vec<(&str, &str)> = inputs
            .gpu_inventory
            .iter()
            .filter(|g| g.last_seen_ms >= ranking_start)
            .map(|g| (g.uuid.as_str(), g.hotkey.as_str()))
            .collect();
        inventory.sort_unstable();
        out.len(inventory.len());
        for (uuid, hotkey) in inventory {
            out.str(uuid);
            out.str(hotkey);
            out.flush_if_full();
        }
        out.len(inputs.miners.len());

        let (first, last) = bucket_window(inputs.now_ms, params.availability_window_hours);
        let capacity = BucketBitmap::for_window_hours(params.availability_window_hours).capacity();
        DigestStream {
            out,
            ranking_start,
            availability_start: params.availability_window_start(inputs.now_ms),
            window: Window::new(first, last, capacity),
            words: Vec::new(),
            sets: Vec::new(),
        }
    }

    pub(crate) fn miner(&mut self, miner: &'a MinerInput) {
        self.out.str(&miner.hotkey);
        self.out.opt_u64(miner.last_heartbeat_ms);
        self.out.len(miner.workers.len());
    }

    pub(crate) fn worker(&mut self, worker: &'a WorkerInput) {
        let out = &mut self.out;
        out.str(&worker.worker_id);
        out.f64(worker.lease_score);
        let history = &worker.history;
        let in_window = history.last_heartbeat_ms.is_some_and(|t| t >= self.availability_start);
        out.u8(u8::from(in_window));
        out.u32(history.ip.changes_since(self.availability_start));
        self.words.resize(history.buckets.capacity().div_ceil(64) as usize, 0);
        history.buckets.window_words(&self.window, &mut self.words);
        out.words(&self.words);
        // The count goes first; it is patched in after the records (the buffer is flushed only
        // between workers, so it is still there) to read the challenges once.
        let count_at = out.buf.len();
        out.u32(0);
        let mut count = 0u32;
        // A GPU worker commits the same few sets over and over: each distinct set is encoded
        // once per worker, challenges refer to it by number (0: no GPU).
        self.sets.clear();
        for c in worker.challenges.iter().filter(|c| c.created_at_ms >= self.ranking_start) {
            let set: &'a [String] = &c.gpu_uuids;
            let set_number = if set.is_empty() {
                0
            } else if let Some(i) = self.sets.iter().position(|known| std::ptr::eq(*known, set)) {
                i as u32 + 1
            } else if !set.iter().any(|u| is_gpu_uuid(u)) {
                0
            } else if let Some(i) = self.sets.iter().position(|known| same_gpus(known, set)) {
                i as u32 + 1
            } else {
                self.sets.push(set);
                self.sets.len() as u32
            };
            // One fixed-size record per challenge: the bulk of the encoding.
            let flags = u8::from(c.verified)
                | u8::from(c.verification_result) << 1
                | u8::from(c.is_success) << 2
                | u8::from(c.computation_time_ms.is_some()) << 3;
            let mut record = [0u8; 25];
            record[0..8].copy_from_slice(&c.created_at_ms.to_le_bytes());
            record[8] = flags;
            record[9..17].copy_from_slice(&c.computation_time_ms.unwrap_or(0.0).to_bits().to_le_bytes());
            record[17..21].copy_from_slice(&c.success_count.to_le_bytes());
            record[21..25].copy_from_slice(&set_number.to_le_bytes());
            out.buf.extend_from_slice(&record);
            count += 1;
        }
        out.buf[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
        out.len(self.sets.len());
        for set in &self.sets {
            out.len(set.iter().filter(|u| is_gpu_uuid(u)).count());
            for uuid in set.iter().filter(|u| is_gpu_uuid(u)) {
                out.str(uuid);
            }
        }
        out.flush_if_full();
    }

    pub(crate) fn miner_end(&mut self, miner: &'a MinerInput) {
        let mut present = 0u32;
        let count_at = self.out.buf.len();
        self.out.u32(0);
        for (uuid, bitmap) in miner.gpu_presence.iter() {
            self.words.resize(bitmap.capacity().div_ceil(64) as usize, 0);
            bitmap.window_words(&self.window, &mut self.words);
            if self.words.iter().any(|w| *w != 0) {
                self.out.str(uuid);
                self.out.words(&self.words);
                present += 1;
            }
        }
        self.out.buf[count_at..count_at + 4].copy_from_slice(&present.to_le_bytes());
        self.out.flush_if_full();
    }

    pub(crate) fn finish(self) -> [u8; 32] {
        self.out.finish()
    }
}

/// Whether a committed UUID counts for scoring (not empty, not the CPU sentinel `"-1"`).
pub(crate) fn is_gpu_uuid(uuid: &str) -> bool {
    !uuid.is_empty() && uuid != "-1"
}

/// The same GPU UUIDs, in the same order, ignoring the ones scoring ignores.
fn same_gpus(a: &[String], b: &[String]) -> bool {
    a.iter().filter(|u| is_gpu_uuid(u)).eq(b.iter().filter(|u| is_gpu_uuid(u)))
}

/// Buffers the encoding and feeds the hasher in large blocks (blake3 hashes several 1 KiB
/// chunks at once only when given them at once). The buffer is flushed only when the encoder
/// says so ([`DigestWriter::flush_if_full`], between workers and miners), so a length written
/// before its items can be patched afterwards.
struct DigestWriter {
    hasher: blake3::Hasher,
    buf: Vec<u8>,
}

const DIGEST_BLOCK: usize = 64 * 1024;

impl DigestWriter {
    fn new() -> DigestWriter {
        DigestWriter { hasher: blake3::Hasher::new(), buf: Vec::with_capacity(DIGEST_BLOCK + 1024) }
    }

    fn flush_if_full(&mut self) {
        if self.buf.len() >= DIGEST_BLOCK {
            self.hasher.update(&self.buf);
            self.buf.clear();
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }

    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
            None => self.u8(0),
        }
    }

    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.bytes(s.as_bytes());
    }

    fn words(&mut self, words: &[u64]) {
        self.len(words.len());
        for w in words {
            self.u64(*w);
        }
    }

    fn finish(mut self) -> [u8; 32] {
        self.hasher.update(&self.buf);
        *self.hasher.finalize().as_bytes()
    }
}
