//! Heartbeat presence kept as 5-minute bucket bitmaps, plus the IP-change walk, updated as
//! heartbeats arrive.
//!
//! The original recomputes availability from every heartbeat row of the last 169 h at each pass
//! (≈ 10 k rows per worker, byteleap-protocol.md §8.4.25). Everything it derives from those rows
//! fits in a few hundred bytes per worker:
//!
//! * [`BucketBitmap`]: one bit per 5-minute bucket (`floor(epoch_s / 300)`, §4.3 step 2), a ring
//!   that rolls forward with time, so its memory is fixed (2048 bits for the 169 h window);
//! * [`IpTracker`]: the last public IP and the times of the last few IP changes (§4.3 step 7);
//! * [`WorkerHistory`]: both, plus the time of the worker's last heartbeat;
//! * [`GpuPresence`]: per hotkey, one bitmap per GPU UUID seen in its heartbeats, so "buckets whose
//!   UUID union ⊇ required" (§4.3 steps 3 and 5) is an AND of the required UUIDs' bitmaps.
//!
//! ## The bucket window
//!
//! The original counts the buckets of the heartbeat rows with `created_at ≥ now − Wh`. A bitmap
//! knows which buckets had a heartbeat, not when inside the bucket it came, so the scoring pass
//! counts the buckets from the first one that *starts* at or after `now − Wh` up to the bucket of
//! `now` ([`bucket_window`]). When `now − Wh` falls on a bucket boundary (a multiple of 300 s)
//! this is exactly the original's set. Otherwise the bucket that straddles `now − Wh` is left
//! out, where the original counts it if one of its heartbeats falls after `now − Wh`: at most
//! one bucket, 1/2028 of the ratio, and never for a worker already at ratio 1 (the cap hides
//! it). Heartbeats stamped after `now` (a member's clock ahead of the leader's) are not counted
//! until a pass whose `now` reaches their bucket; the original never sees such rows.
//!
//! Whether a worker has any heartbeat in the window at all (§4.3 step 8) and the IP walk use
//! millisecond times and are exact.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

/// Availability bucket width (byteleap-protocol.md §4.3 step 2: `floor(epoch_seconds / 300)`).
pub const BUCKET_MS: u64 = 300_000;

/// Buckets per hour of the availability window (§4.3 step 6: expected buckets = `int(Wh · 12)`).
pub const BUCKETS_PER_HOUR: u64 = 12;

/// IP changes beyond which the penalty is 0 (§4.3 step 7: `0.5^c`, and 0 when below 0.1, so any
/// `c ≥ 4` gives 0). Only this many changes are remembered.
pub const IP_CHANGES_TRACKED: usize = 4;

/// The 5-minute bucket of a time in ms since the epoch (UTC; §4.3 step 2, and §8.3.23 for why the
/// original's host-local conversion is not copied).
pub fn bucket_of(at_ms: u64) -> u64 {
    at_ms / BUCKET_MS
}

/// The inclusive bucket range a pass at `now_ms` counts for a window of `window_hours`
/// (module docs): from the first bucket starting at or after `now − Wh` to the bucket of `now`.
pub fn bucket_window(now_ms: u64, window_hours: u64) -> (u64, u64) {
    let start = now_ms.saturating_sub(window_hours.saturating_mul(3_600_000));
    (start.div_ceil(BUCKET_MS), bucket_of(now_ms))
}

/// Bits a bitmap needs for a window of `window_hours`: `Wh · 12 + 1` buckets (both edge buckets
/// when `now − Wh` is on a boundary), rounded up to whole 64-bit words.
fn words_for(window_hours: u64) -> usize {
    let buckets = window_hours.saturating_mul(BUCKETS_PER_HOUR).saturating_add(1);
    usize::try_from(buckets.div_ceil(64)).unwrap_or(usize::MAX).max(1)
}

/// Presence per 5-minute bucket over a rolling window, in fixed memory.
///
/// A ring of `capacity` bits: bucket `b` lives at bit `b mod capacity` while
/// `newest − capacity < b ≤ newest`. Marking a newer bucket clears the bits it rolls over, so
/// no bit ever stands for two buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketBitmap {
    /// The newest bucket marked so far.
    newest: Option<u64>,
    words: Box<[u64]>,
}

impl BucketBitmap {
    /// An empty bitmap long enough for an availability window of `window_hours` (2048 bits,
    /// 256 bytes, for the default 169 h).
    pub fn for_window_hours(window_hours: u64) -> BucketBitmap {
        BucketBitmap { newest: None, words: vec![0u64; words_for(window_hours)].into_boxed_slice() }
    }

    /// Buckets this bitmap remembers.
    pub fn capacity(&self) -> u64 {
        self.words.len() as u64 * 64
    }

    /// The newest bucket marked, if any.
    pub fn newest(&self) -> Option<u64> {
        self.newest
    }

    /// Marks the bucket of a heartbeat at `at_ms`.
    pub fn mark(&mut self, at_ms: u64) {
        self.mark_bucket(bucket_of(at_ms));
    }

    /// Marks one bucket. A bucket older than the ring holds is ignored.
    pub fn mark_bucket(&mut self, bucket: u64) {
        let capacity = self.capacity();
        match self.newest {
            None => self.newest = Some(bucket),
            Some(newest) if bucket > newest => {
                if bucket - newest >= capacity {
                    self.words.fill(0);
                } else {
                    clear_positions(&mut self.words, newest + 1, bucket);
                }
                self.newest = Some(bucket);
            }
            Some(newest) if newest - bucket >= capacity => return,
            Some(_) => {}
        }
        let position = bucket % capacity;
        self.words[(position / 64) as usize] |= 1 << (position % 64);
    }

    /// Whether `bucket` was marked (false once it has rolled out of the ring).
    pub fn contains(&self, bucket: u64) -> bool {
        let Some(newest) = self.newest else { return false };
        if bucket > newest || newest - bucket >= self.capacity() {
            return false;
        }
        let position = bucket % self.capacity();
        self.words[(position / 64) as usize] & (1 << (position % 64)) != 0
    }

    /// Number of marked buckets in `first..=last`.
    pub fn count(&self, first: u64, last: u64) -> u32 {
        let mut words = vec![0u64; self.words.len()];
        self.window_words(&Window::new(first, last, self.capacity()), &mut words);
        words.iter().map(|w| w.count_ones()).sum()
    }

    /// Writes into `out` (same length as the ring) the bits of the marked buckets of the window,
    /// at their ring positions; every other bit is 0. Bitmaps of the same capacity can then be
    /// ANDed word by word.
    pub(crate) fn window_words(&self, window: &Window, out: &mut [u64]) {
        out.fill(0);
        let Some(newest) = self.newest else { return };
        if out.len() != self.words.len() || window.mask.len() != self.words.len() || window.first > window.last {
            return;
        }
        if newest < window.first {
            return;
        }
        if newest <= window.last {
            // The usual case. The window is no longer than the ring, so every bucket of
            // `first..=newest` is still held; positions after `newest` hold buckets older than
            // the window and are cleared.
            for ((o, w), m) in out.iter_mut().zip(self.words.iter()).zip(window.mask.iter()) {
                *o = w & m;
            }
            if newest < window.last {
                clear_positions(out, newest + 1, window.last);
            }
            return;
        }
        // Marks after the window's end (a clock ahead of the pass): only what the ring still
        // holds of the window counts.
        let lo = window.first.max(newest.saturating_add(1).saturating_sub(self.capacity()));
        if lo <= window.last {
            set_positions(out, lo, window.last);
            for (o, w) in out.iter_mut().zip(self.words.iter()) {
                *o &= *w;
            }
        }
    }
}

/// The bucket window of one pass and its ring-position mask, computed once per pass.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub first: u64,
    pub last: u64,
    mask: Vec<u64>,
}

impl Window {
    /// The window `first..=last` for bitmaps of `capacity` buckets. A window longer than the
    /// ring is cut to its newest `capacity` buckets.
    pub fn new(first: u64, last: u64, capacity: u64) -> Window {
        let words = capacity.div_ceil(64) as usize;
        let first = first.max(last.saturating_add(1).saturating_sub(capacity));
        let mut mask = vec![0u64; words];
        if first <= last && words > 0 {
            set_positions(&mut mask, first, last);
        }
        Window { first, last, mask }
    }
}

/// Calls `f(word, mask)` for the ring positions of buckets `first..=last` (fewer than
/// `64 · words` of them).
fn for_each_position_mask(words: usize, first: u64, last: u64, mut f: impl FnMut(usize, u64)) {
    let capacity = words as u64 * 64;
    let len = last - first + 1;
    let start = first % capacity;
    let mut span = |from: u64, to: u64| {
        // Positions from..=to, no wrap.
        let (fw, tw) = ((from / 64) as usize, (to / 64) as usize);
        for word in fw..=tw {
            let lo = if word == fw { from % 64 } else { 0 };
            let hi = if word == tw { to % 64 } else { 63 };
            let mask = (u64::MAX >> (63 - hi)) & (u64::MAX << lo);
            f(word, mask);
        }
    };
    if start + len <= capacity {
        span(start, start + len - 1);
    } else {
        span(start, capacity - 1);
        span(0, start + len - 1 - capacity);
    }
}

fn clear_positions(words: &mut [u64], first: u64, last: u64) {
    let n = words.len();
    for_each_position_mask(n, first, last, |i, mask| words[i] &= !mask);
}

fn set_positions(words: &mut [u64], first: u64, last: u64) {
    let n = words.len();
    for_each_position_mask(n, first, last, |i, mask| words[i] |= mask);
}

/// A worker's public-IP changes, counted the way the original walks its heartbeat rows (§4.3
/// step 7): rows without an IP are skipped, and a row whose IP differs from the previous row
/// *with* an IP is a change. A change counts for a pass only if that previous row is inside the
/// pass's window (the original's walk starts at the first row of the window), so each change is
/// remembered with the time of the row before it.
///
/// Heartbeats are taken in the order they are observed (the ledger's order); the original sorts
/// its rows by `(created_at, id)`, which is the same order unless members' clocks disagree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpTracker {
    last_ip: Option<String>,
    /// Time of the last heartbeat that carried an IP.
    last_ip_at_ms: u64,
    /// For the latest changes (oldest first): the time of the heartbeat before the change.
    changes: Vec<u64>,
}

impl IpTracker {
    /// Takes one heartbeat of this worker. `None` and `""` are skipped, as in the original.
    pub fn observe(&mut self, at_ms: u64, public_ip: Option<&str>) {
        let Some(ip) = public_ip.filter(|ip| !ip.is_empty()) else { return };
        match &self.last_ip {
            Some(last) if last == ip => {}
            Some(_) => {
                if self.changes.len() == IP_CHANGES_TRACKED {
                    self.changes.remove(0);
                }
                self.changes.push(self.last_ip_at_ms);
                self.last_ip = Some(ip.to_string());
            }
            None => self.last_ip = Some(ip.to_string()),
        }
        self.last_ip_at_ms = at_ms;
    }

    /// The tracker as the ledger keeps it: the last IP and when it was reported, and for each
    /// change the time of the IP heartbeat before it, oldest first (only the newest
    /// [`IP_CHANGES_TRACKED`] are kept).
    pub fn from_ledger(last_ip: Option<String>, last_ip_at_ms: u64, change_prev_ms: &[u64]) -> IpTracker {
        let skip = change_prev_ms.len().saturating_sub(IP_CHANGES_TRACKED);
        IpTracker { last_ip, last_ip_at_ms, changes: change_prev_ms[skip..].to_vec() }
    }

    /// IP changes whose previous heartbeat is at or after `window_start_ms`, at most
    /// [`IP_CHANGES_TRACKED`] (the count beyond which the penalty is 0 anyway).
    pub fn changes_since(&self, window_start_ms: u64) -> u32 {
        self.changes.iter().filter(|&&from| from >= window_start_ms).count() as u32
    }

    /// The last IP seen.
    pub fn last_ip(&self) -> Option<&str> {
        self.last_ip.as_deref()
    }
}

/// Everything availability needs from one worker's heartbeats (§4.3), updated per heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHistory {
    /// Buckets with at least one heartbeat of this worker (§4.3 step 5, CPU workers).
    pub buckets: BucketBitmap,
    pub ip: IpTracker,
    /// Newest heartbeat time: the worker has rows in the window iff this is ≥ `now − Wh` (§4.3
    /// step 8).
    pub last_heartbeat_ms: Option<u64>,
}

impl WorkerHistory {
    pub fn new(window_hours: u64) -> WorkerHistory {
        WorkerHistory {
            buckets: BucketBitmap::for_window_hours(window_hours),
            ip: IpTracker::default(),
            last_heartbeat_ms: None,
        }
    }

    /// Takes one heartbeat record of this worker: its time and the `public_ip` the original
    /// stores in the `heartbeat_records` row.
    pub fn record(&mut self, at_ms: u64, public_ip: Option<&str>) {
        self.buckets.mark(at_ms);
        self.ip.observe(at_ms, public_ip);
        self.last_heartbeat_ms = Some(self.last_heartbeat_ms.map_or(at_ms, |t| t.max(at_ms)));
    }
}

/// Per hotkey: for each GPU UUID its heartbeats listed, the buckets it was listed in (§4.3
/// step 3).
///
/// A hotkey can make up UUIDs, so the caller bounds what it records (the UUIDs per heartbeat
/// are capped at ingestion) and calls [`GpuPresence::prune`] now and then to forget UUIDs not
/// seen within the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuPresence {
    window_hours: u64,
    by_uuid: BTreeMap<String, BucketBitmap>,
}

impl GpuPresence {
    pub fn new(window_hours: u64) -> GpuPresence {
        GpuPresence { window_hours, by_uuid: BTreeMap::new() }
    }

    /// Takes the GPU UUIDs of one heartbeat record of this hotkey (any of its workers). Empty
    /// strings and the CPU sentinel `"-1"` are ignored.
    pub fn record<'a>(&mut self, at_ms: u64, uuids: impl IntoIterator<Item = &'a str>) {
        for uuid in uuids {
            if uuid.is_empty() || uuid == "-1" {
                continue;
            }
            match self.by_uuid.get_mut(uuid) {
                Some(bitmap) => bitmap.mark(at_ms),
                None => {
                    let mut bitmap = BucketBitmap::for_window_hours(self.window_hours);
                    bitmap.mark(at_ms);
                    self.by_uuid.insert(uuid.to_string(), bitmap);
                }
            }
        }
    }

    /// The buckets of one UUID.
    pub fn get(&self, uuid: &str) -> Option<&BucketBitmap> {
        self.by_uuid.get(uuid)
    }

    /// UUIDs and their bitmaps, in UUID order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &BucketBitmap)> {
        self.by_uuid.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.by_uuid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uuid.is_empty()
    }

    /// Forgets the UUIDs with no bucket inside the window of a pass at `now_ms`.
    pub fn prune(&mut self, now_ms: u64) {
        let (first, _) = bucket_window(now_ms, self.window_hours);
        self.by_uuid.retain(|_, bitmap| bitmap.newest().is_some_and(|b| b >= first));
    }
}

/// The GPU UUIDs of one heartbeat's `gpu_info` list as the original reads them (§4.3 step 3):
/// per item, `uuid`, else `gpu_uuid`, else `id`, taking the first of these that is truthy in
/// Python's sense; it counts only if it is a non-empty string other than `"-1"`. Items that are
/// not objects, and a value that is not a list, give nothing.
pub fn gpu_uuids_from_gpu_info(gpu_info: &serde_json::Value) -> Vec<String> {
    let Some(items) = gpu_info.as_array() else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let Some(object) = item.as_object() else { continue };
        let chosen = ["uuid", "gpu_uuid", "id"].iter().find_map(|key| object.get(*key).filter(|v| python_truthy(v)));
        if let Some(serde_json::Value::String(uuid)) = chosen
            && !uuid.is_empty()
            && uuid != "-1"
            && !out.contains(uuid)
        {
            out.push(uuid.clone());
        }
    }
    out
}

/// Python truthiness of a decoded JSON value.
fn python_truthy(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Array(a) => !a.is_empty(),
        serde_json::Value::Object(o) => !o.is_empty(),
    }
}
