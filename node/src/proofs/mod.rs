//! Proofs between their arrival and their verdict: verification jobs ([`job`]) and where they
//! run ([`fanout`]). [`synthetic`] builds honest proofs cheaply and [`batch`] runs a batch of
//! them through the fan-out, for `validator bench verify`.

pub mod batch;
pub mod fanout;
pub mod job;
pub mod synthetic;
