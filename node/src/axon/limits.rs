//! Per-hotkey request rate limit (byteleap-protocol.md §2.3), with a limit a real miner fits.
//!
//! The original counts requests per hotkey in a sliding window of one-second buckets and
//! refuses with `{"error": "rate_limited", "error_code": 1003}` past the limit. Its default,
//! 150 requests per 30 s, is below what a 100-worker miner sends in one challenge burst (100
//! commitments + 100 proofs + polls + heartbeats), and the miner counts each refusal as a
//! failure and blacklists the validator after five (§8.4.28). The default here is sized for the
//! largest legitimate burst: [`DEFAULT_MAX_REQUESTS`] per [`DEFAULT_WINDOW_S`]. Memory is bounded
//! by the number of tracked hotkeys (least recently seen evicted).

use std::collections::HashMap;
use std::collections::VecDeque;

use parking_lot::Mutex;

/// Original window: `security.rate_limit.window_seconds` = 30 (byteleap-protocol.md §6).
pub const DEFAULT_WINDOW_S: u64 = 30;
/// 100 workers × (commitment + proof) + polls and heartbeats, with headroom (§8.4.28). The
/// original's 150 refuses honest miners.
pub const DEFAULT_MAX_REQUESTS: u32 = 600;
/// Original: at most 5000 tracked hotkeys (§2.3); the metagraph has at most 256 UIDs, so this
/// only matters under attack.
pub const MAX_TRACKED_HOTKEYS: usize = 5000;

struct Window {
    /// (second, count), oldest first, at most `window_s` entries.
    buckets: VecDeque<(u64, u32)>,
    total: u32,
    last_seen: u64,
}

pub struct RateLimiter {
    window_s: u64,
    max_requests: u32,
    windows: Mutex<HashMap<String, Window>>,
}

impl RateLimiter {
    pub fn new(window_s: u64, max_requests: u32) -> RateLimiter {
        RateLimiter { window_s: window_s.max(1), max_requests, windows: Mutex::new(HashMap::new()) }
    }

    /// Counts a request of `hotkey` at `now_s` (monotonic seconds); false if over the limit
    /// (not counted then, as in the original).
    pub fn allow(&self, hotkey: &str, now_s: u64) -> bool {
        let mut windows = self.windows.lock();
        if !windows.contains_key(hotkey) && windows.len() >= MAX_TRACKED_HOTKEYS {
            // Evict the least recently seen hotkey. O(n) but only when 5000 are tracked.
            if let Some(oldest) = windows.iter().min_by_key(|(_, w)| w.last_seen).map(|(k, _)| k.clone()) {
                windows.remove(&oldest);
            }
        }
        let window = windows.entry(hotkey.to_string()).or_insert_with(|| Window {
            buckets: VecDeque::new(),
            total: 0,
            last_seen: now_s,
        });
        window.last_seen = now_s;
        while window.buckets.front().is_some_and(|(second, _)| second + self.window_s <= now_s) {
            if let Some((_, count)) = window.buckets.pop_front() {
                window.total -= count;
            }
        }
        if window.total >= self.max_requests {
            return false;
        }
        match window.buckets.back_mut() {
            Some((second, count)) if *second == now_s => *count += 1,
            _ => window.buckets.push_back((now_s, 1)),
        }
        window.total += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides() {
        let limiter = RateLimiter::new(30, 3);
        assert!(limiter.allow("a", 100));
        assert!(limiter.allow("a", 101));
        assert!(limiter.allow("a", 102));
        assert!(!limiter.allow("a", 103), "fourth in 30 s");
        assert!(limiter.allow("b", 103), "per hotkey");
        assert!(limiter.allow("a", 130), "the first has left the window");
        assert!(!limiter.allow("a", 130));
    }

    #[test]
    fn a_hundred_worker_burst_fits_the_default() {
        let limiter = RateLimiter::new(DEFAULT_WINDOW_S, DEFAULT_MAX_REQUESTS);
        let mut refused = 0;
        for i in 0..(100 * 2 + 10) {
            if !limiter.allow("miner", 1000 + i / 50) {
                refused += 1;
            }
        }
        assert_eq!(refused, 0);
    }

    #[test]
    fn tracked_hotkeys_are_bounded() {
        let limiter = RateLimiter::new(30, 10);
        for i in 0..(MAX_TRACKED_HOTKEYS + 100) {
            limiter.allow(&format!("hk{i}"), i as u64);
        }
        assert!(limiter.windows.lock().len() <= MAX_TRACKED_HOTKEYS);
    }
}
