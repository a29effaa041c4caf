//! Proofs between their arrival and their verdict: verification jobs ([`job`]) and where they
//! run ([`fanout`]).

pub mod fanout;
pub mod job;
