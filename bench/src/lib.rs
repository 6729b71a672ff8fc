//! `tessera-bench`: Tessera's load generator.
//!
//! Three commands share one closed-loop [`driver`]: `load` drives gets and puts through the
//! Tessera client, `echo` drives length-prefixed frames against `echo-server` (a glommio echo
//! server built like the Tessera server), which is the ceiling no request/response server can
//! beat on the machine. Every workload is an [`Op`]; the driver owns threads, timing,
//! histograms and the [`Report`].
//!
//! A connection is one driver thread. For `load` it is one [`tessera_client::Client`], which
//! holds one TCP connection to every server shard; for `echo` it is one TCP connection.
//!
//! The binary `tessera-bench` and `tessera bench` both run [`main_with_args`] (or [`run`] with
//! [`BenchArgs`] parsed as a clap subcommand). Every bound lives in [`constants`].

pub mod cli;
pub mod constants;
pub mod driver;
pub mod echo;
pub mod echo_server;
pub mod error;
pub mod load;
pub mod report;

pub use cli::{main_with_args, run, BenchArgs, Cli, Command};
pub use driver::{drive, DriverConfig, Op, Stop};
pub use echo::{EchoConfig, EchoOp};
pub use echo_server::{EchoServer, EchoServerConfig};
pub use error::{BenchError, OpError};
pub use load::{LoadConfig, LoadOp};
pub use report::{OpKind, Report, Summary, Tally};
