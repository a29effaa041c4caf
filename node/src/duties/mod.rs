//! Leader duties: the loops only the Raft leader runs (architecture.md, data flow 4).
//!
//! Running them on one member at a time is what keeps two members from issuing the same
//! challenges twice; correctness does not depend on it, though: every change they make is a
//! guarded ledger command, so a deposed leader that runs one more pass only gets refusals.

pub mod challenges;
pub mod scoring;

/// A random UUIDv4 string (challenge ids, §3.1 step 5).
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!(
        "{}-{}-{}-{}-{}",
        hex::encode(&b[0..4]),
        hex::encode(&b[4..6]),
        hex::encode(&b[6..8]),
        hex::encode(&b[8..10]),
        hex::encode(&b[10..16])
    )
}
