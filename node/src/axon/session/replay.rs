//! The inbound sequence window of byteleap-protocol.md §2.7 (`SlidingWindowValidator`, window 1024).
//!
//! For an incoming `seq`, with `recv_seq` the highest accepted so far (0 initially):
//! 1. reject a seq already accepted (replay);
//! 2. reject `seq < max(0, recv_seq - 1024 + 1)` (too old);
//! 3. reject `seq > recv_seq + 2048` (forward jump of more than twice the window);
//! 4. otherwise accept: `recv_seq = max(recv_seq, seq)` and remember `seq`.
//!
//! The original remembers the last 1024 *accepted* seqs in arrival order (a deque plus a set, ~40 KB per
//! session). We keep a 1024-bit ring over the *values* `[recv_seq - 1023, recv_seq]` instead (136 bytes,
//! constant time up to one sweep of at most 1024 bits when `recv_seq` advances). For every sequence of
//! distinct seqs — everything an honest miner sends, since each request takes a fresh `seq` — the two accept
//! exactly the same seqs. They differ only on a duplicate that the original has already pushed out of its
//! arrival-ordered deque while it is still inside the value window: the original accepts that replay, we refuse
//! it (see the `stricter_than_python_on_evicted_duplicates` test).

use super::{REPLAY_MAX_FORWARD_JUMP, REPLAY_WINDOW_SIZE};

const WORDS: usize = REPLAY_WINDOW_SIZE as usize / 64;

/// Why a sequence number was refused (all map to the same 4020 error on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqRejection {
    /// The seq was already accepted.
    Replay,
    /// The seq is below the window's left edge.
    TooOld,
    /// The seq is more than [`REPLAY_MAX_FORWARD_JUMP`] ahead of the highest accepted one.
    TooFarAhead,
}

/// Per-session, per-direction replay window. `Default` is the fresh state (`recv_seq = 0`, nothing accepted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    recv_seq: u64,
    /// Bit `v % 1024` is set iff value `v` in `[recv_seq - 1023, recv_seq]` has been accepted.
    seen: [u64; WORDS],
}

impl ReplayWindow {
    /// A fresh window.
    pub fn new() -> Self {
        Self::default()
    }

    /// Highest accepted seq (0 before anything was accepted).
    pub fn highest(&self) -> u64 {
        self.recv_seq
    }

    fn slot(seq: u64) -> (usize, u64) {
        let bit = (seq % REPLAY_WINDOW_SIZE) as usize;
        (bit / 64, 1u64 << (bit % 64))
    }

    fn is_marked(&self, seq: u64) -> bool {
        let (word, mask) = Self::slot(seq);
        self.seen[word] & mask != 0
    }

    /// Checks `seq` and, if it is acceptable, records it. Nothing changes on rejection.
    pub fn check_and_accept(&mut self, seq: u64) -> Result<(), SeqRejection> {
        let left = self.recv_seq.saturating_sub(REPLAY_WINDOW_SIZE - 1);
        if seq <= self.recv_seq && seq >= left && self.is_marked(seq) {
            return Err(SeqRejection::Replay);
        }
        if seq < left {
            return Err(SeqRejection::TooOld);
        }
        if u128::from(seq) > u128::from(self.recv_seq) + u128::from(REPLAY_MAX_FORWARD_JUMP) {
            return Err(SeqRejection::TooFarAhead);
        }
        if seq > self.recv_seq {
            // Values leaving the window share their ring slots with the values entering it: clear those slots.
            let advance = seq - self.recv_seq;
            if advance >= REPLAY_WINDOW_SIZE {
                self.seen = [0; WORDS];
            } else {
                for v in self.recv_seq + 1..=seq {
                    let (word, mask) = Self::slot(v);
                    self.seen[word] &= !mask;
                }
            }
            self.recv_seq = seq;
        }
        let (word, mask) = Self::slot(seq);
        self.seen[word] |= mask;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashSet, VecDeque};

    use super::SeqRejection::*;
    use super::*;

    /// §9.5: window 1024, fresh state.
    #[test]
    fn vector_sequence() {
        let mut w = ReplayWindow::new();
        let steps: [(u64, Result<(), SeqRejection>, u64); 10] = [
            (1, Ok(()), 1),
            (5, Ok(()), 5),
            (5, Err(Replay), 5),
            (3, Ok(()), 5),
            (2054, Err(TooFarAhead), 5),
            (2053, Ok(()), 2053),
            (1029, Err(TooOld), 2053),
            (1030, Ok(()), 2053),
            (0, Err(TooOld), 2053),
            (2053, Err(Replay), 2053),
        ];
        for (seq, result, recv_after) in steps {
            assert_eq!(w.check_and_accept(seq), result, "seq {seq}");
            assert_eq!(w.highest(), recv_after, "recv_seq after {seq}");
        }
    }

    /// §9.5: on a fresh window, 2048 is accepted, 2049 rejected, 0 accepted (each on its own fresh window).
    #[test]
    fn vector_fresh_state() {
        assert_eq!(ReplayWindow::new().check_and_accept(2048), Ok(()));
        assert_eq!(ReplayWindow::new().check_and_accept(2049), Err(TooFarAhead));
        let mut w = ReplayWindow::new();
        assert_eq!(w.check_and_accept(0), Ok(()));
        assert_eq!(w.check_and_accept(0), Err(Replay));
        assert_eq!(w.check_and_accept(1), Ok(()));
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check_and_accept(u64::MAX), Err(TooFarAhead));
        w.recv_seq = u64::MAX - 2048; // test-only shortcut to the top of the range
        assert_eq!(w.check_and_accept(u64::MAX), Ok(()));
        assert_eq!(w.check_and_accept(u64::MAX), Err(Replay));
        assert_eq!(w.check_and_accept(u64::MAX - 1023), Ok(()));
        assert_eq!(w.check_and_accept(u64::MAX - 1024), Err(TooOld));
    }

    /// The original algorithm, transcribed for comparison.
    struct PythonWindow {
        recv_seq: u64,
        deque: VecDeque<u64>,
        set: HashSet<u64>,
    }

    impl PythonWindow {
        fn validate(&mut self, seq: u64) -> bool {
            if self.set.contains(&seq) {
                return false;
            }
            if seq < self.recv_seq.saturating_sub(1023) {
                return false;
            }
            if seq > self.recv_seq + 2048 {
                return false;
            }
            self.recv_seq = self.recv_seq.max(seq);
            if self.deque.len() == 1024 {
                let oldest = self.deque.pop_front().unwrap();
                self.set.remove(&oldest);
            }
            self.deque.push_back(seq);
            self.set.insert(seq);
            true
        }
    }

    /// With no duplicates (every honest miner), both algorithms accept exactly the same seqs; with duplicates we
    /// are never more lenient than the original.
    #[test]
    fn agrees_with_python_algorithm() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..200 {
            let mut ours = ReplayWindow::new();
            let mut python = PythonWindow { recv_seq: 0, deque: VecDeque::new(), set: HashSet::new() };
            let mut sent = HashSet::new();
            let mut cursor: u64 = 0;
            for _ in 0..3000 {
                let r = next();
                // Mostly increasing with reordering, some big jumps, some old values.
                let seq = match r % 10 {
                    0 => cursor.saturating_sub(r % 1500),
                    1 => cursor + 1500 + r % 1200,
                    _ => cursor + r % 8,
                };
                let duplicate = !sent.insert(seq);
                if duplicate && round % 2 == 0 {
                    continue; // even rounds: distinct seqs only
                }
                let a = ours.check_and_accept(seq).is_ok();
                let b = python.validate(seq);
                if duplicate {
                    assert!(!a || b, "more lenient than Python on duplicate {seq}");
                } else {
                    assert_eq!(a, b, "round {round}: seq {seq}");
                }
                if a {
                    cursor = cursor.max(seq);
                }
            }
        }
    }

    #[test]
    fn stricter_than_python_on_evicted_duplicates() {
        let mut ours = ReplayWindow::new();
        let mut python = PythonWindow { recv_seq: 0, deque: VecDeque::new(), set: HashSet::new() };
        // Accept 2048, then 1025..=2047 (1023 seqs), then 2049: 2048 has left Python's arrival-ordered deque
        // but is still inside the value window [1026, 2049].
        for seq in std::iter::once(2048).chain(1025..=2047).chain(std::iter::once(2049)) {
            assert!(ours.check_and_accept(seq).is_ok());
            assert!(python.validate(seq));
        }
        assert!(python.validate(2048), "the original accepts this replay");
        assert_eq!(ours.check_and_accept(2048), Err(Replay));
    }
}
