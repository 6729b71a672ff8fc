//! `tessera-bench`: Tessera's YCSB-style benchmark runner.
//!
//! `run` loads records, drives a YCSB core workload (A, B, C, D, F) against a server through
//! one of four protocols (Tessera native, RESP for Redis or Tessera's RESP port, memcached
//! text, or a TCP echo ceiling), then reads every record back and judges it against the
//! writes that were acknowledged. `echo-server` is the ceiling no request/response server
//! can beat on the machine.
//!
//! | module | owns |
//! |---|---|
//! | [`workload`] | the YCSB mixes and key distributions |
//! | [`check`] | self-describing values, the write ledger and the final judge |
//! | [`proto`] | sans-IO codecs of the four protocols |
//! | [`engine`] | the epoll event loop: sessions, pipelining, open/closed loop, phases |
//! | [`run`] | load → run → check, and the outputs |
//! | [`report`] | histograms, the text and JSON report |
//! | [`plot`] | latency-by-percentile PNG plots |
//! | [`striped`] | the lock-striped record map behind the ledger and the contexts |
//! | [`echo_server`] | the glommio echo server |
//! | [`constants`] | every bound |
//!
//! The binary `tessera-bench` and `tessera bench` both run [`main_with_args`] (or [`run()`]
//! with [`BenchArgs`] parsed as a clap subcommand).

pub mod check;
pub mod cli;
pub mod constants;
pub mod echo_server;
pub mod engine;
pub mod error;
pub mod plot;
pub mod proto;
pub mod report;
pub mod run;
pub mod storage;
pub mod striped;
pub mod workload;

pub use cli::{main_with_args, run, BenchArgs, Cli, Command};
pub use echo_server::{EchoServer, EchoServerConfig};
pub use error::BenchError;
pub use report::{OpKind, Report, Summary, Tally};
