//! `validator bench ...`: measurements on real processes, reported for docs/benchmarks.md.

pub mod raft;
