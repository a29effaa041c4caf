//! Request freshness: the dendrite nonce rules of the bittensor axon, with bounded memory.
//!
//! The SDK keys nonces by `"{dendrite_hotkey}:{dendrite_uuid}"`: the first request of a key
//! must carry a nonce newer than `now − 4 s − timeout`, later ones a strictly greater nonce
//! (byteleap-protocol.md §2.1). The SDK never forgets a key, and miners make a new uuid per
//! request, so its table grows forever (§8.1.4). Here an entry is kept only until its nonce is
//! too old to pass the freshness rule anyway, and nonces more than [`MAX_FUTURE_SKEW`] ahead of
//! our clock are refused, so a forgotten entry can never be replayed. The table also has a hard
//! cap; when full, new keys are refused as busy rather than letting memory grow.

use std::collections::HashMap;
use std::collections::VecDeque;

use parking_lot::Mutex;

/// SDK `ALLOWED_DELTA`: 4 s in nanoseconds (byteleap-protocol.md §2.1; chain.md §6).
pub const ALLOWED_DELTA_NS: u128 = 4_000_000_000;
/// How far ahead of our clock a nonce may be (clock skew between hosts). Ours, not the SDK's.
pub const MAX_FUTURE_SKEW_NS: u128 = 60_000_000_000;
/// Largest request timeout honoured in the freshness window (the miner's `timeout` is ≤ 300 s:
/// §2.10.2).
pub const MAX_TIMEOUT_S: f64 = 300.0;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NonceError {
    #[error("Nonce is too old, acceptable delta is {0:.2} seconds")]
    TooOld(f64),
    #[error("Nonce is too old, a newer one was last processed")]
    NotIncreasing,
    #[error("Nonce is too far in the future")]
    Future,
    #[error("too many requests in flight; retry shortly")]
    Busy,
}

struct Entry {
    nonce: u128,
    /// When this entry may be dropped (ns since the epoch).
    forget_at: u128,
}

/// The set of recently seen `hotkey:uuid` endpoints and their last nonce.
pub struct NonceGuard {
    inner: Mutex<Inner>,
    capacity: usize,
}

struct Inner {
    entries: HashMap<String, Entry>,
    /// (forget_at, key) in insertion order; forget times are nearly monotonic.
    expiry: VecDeque<(u128, String)>,
}

impl NonceGuard {
    pub fn new(capacity: usize) -> NonceGuard {
        NonceGuard { inner: Mutex::new(Inner { entries: HashMap::new(), expiry: VecDeque::new() }), capacity }
    }

    /// Checks and records a request's nonce. `now_ns` is our clock in ns since the epoch.
    pub fn check(&self, hotkey: &str, uuid: &str, nonce: u128, timeout_s: f64, now_ns: u128) -> Result<(), NonceError> {
        let timeout_s = if timeout_s.is_finite() { timeout_s.clamp(0.0, MAX_TIMEOUT_S) } else { MAX_TIMEOUT_S };
        let window = ALLOWED_DELTA_NS + (timeout_s * 1e9) as u128;
        if nonce > now_ns + MAX_FUTURE_SKEW_NS {
            return Err(NonceError::Future);
        }
        let key = format!("{hotkey}:{uuid}");
        let mut inner = self.inner.lock();
        // Forget what can no longer pass the freshness rule.
        while inner.expiry.front().is_some_and(|(at, _)| *at <= now_ns) {
            if let Some((at, old)) = inner.expiry.pop_front()
                && inner.entries.get(&old).is_some_and(|e| e.forget_at <= at)
            {
                inner.entries.remove(&old);
            }
        }
        // A nonce is remembered until it is older than the widest window any request can claim.
        let forget_at = nonce + ALLOWED_DELTA_NS + (MAX_TIMEOUT_S * 1e9) as u128 + MAX_FUTURE_SKEW_NS;
        match inner.entries.get_mut(&key) {
            Some(entry) => {
                if nonce <= entry.nonce {
                    return Err(NonceError::NotIncreasing);
                }
                entry.nonce = nonce;
                entry.forget_at = forget_at;
            }
            None => {
                if nonce + window <= now_ns {
                    return Err(NonceError::TooOld(window as f64 / 1e9));
                }
                if inner.entries.len() >= self.capacity {
                    return Err(NonceError::Busy);
                }
                inner.entries.insert(key.clone(), Entry { nonce, forget_at });
            }
        }
        inner.expiry.push_back((forget_at, key));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u128 = 1_000_000_000;

    #[test]
    fn the_sdk_rules_hold() {
        let g = NonceGuard::new(100);
        let now = 1_700_000_000 * S;
        g.check("hk", "u1", now - S, 10.0, now).unwrap();
        assert_eq!(g.check("hk", "u1", now - S, 10.0, now), Err(NonceError::NotIncreasing), "replay");
        g.check("hk", "u1", now, 10.0, now).unwrap();
        // A new uuid must be fresh: older than 4 s + timeout is refused.
        assert!(matches!(g.check("hk", "u2", now - 15 * S, 10.0, now), Err(NonceError::TooOld(_))));
        g.check("hk", "u3", now - 13 * S, 10.0, now).unwrap();
        assert_eq!(g.check("hk", "u4", now + 120 * S, 10.0, now), Err(NonceError::Future));
    }

    #[test]
    fn memory_is_bounded_and_forgotten_entries_cannot_be_replayed() {
        let g = NonceGuard::new(1000);
        let start = 1_700_000_000 * S;
        for i in 0..1000u128 {
            g.check("hk", &format!("u{i}"), start, 10.0, start).unwrap();
        }
        assert_eq!(g.check("hk", "one-more", start, 10.0, start), Err(NonceError::Busy));
        // Long after, everything is forgotten, and the old requests are refused as stale.
        let later = start + 3600 * S;
        assert!(matches!(g.check("hk", "u1", start, 10.0, later), Err(NonceError::TooOld(_))));
        assert!(g.len() <= 1);
    }
}
