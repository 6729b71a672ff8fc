//! The echo driver against an in-process echo server: 2 unbound shards on an ephemeral port,
//! 2 connections for about a second (strict request/response), then a pipelined op count.

use std::time::Duration;

use tessera_bench::{
    drive, DriverConfig, EchoConfig, EchoOp, EchoServer, EchoServerConfig, OpKind, Stop,
};
use tessera_io::ShardPlacement;

#[test]
fn echo_driver_runs_against_the_echo_server() {
    let server = EchoServer::start(&EchoServerConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        shards: 2,
        placement: ShardPlacement::Unbound,
    })
    .expect("echo server starts");
    assert_ne!(server.local_addr().port(), 0, "the real port is reported");
    let config = EchoConfig {
        server: server.local_addr().to_string(),
        size: 100,
    };
    let timed = DriverConfig {
        connections: 2,
        pipeline: 1,
        warmup: Duration::from_millis(100),
        stop: Stop::After(Duration::from_secs(1)),
    };
    let timed_report = drive("echo", &timed, |_| EchoOp::open(&config));
    let pipelined = DriverConfig {
        connections: 2,
        pipeline: 8,
        warmup: Duration::ZERO,
        stop: Stop::Ops(5_000),
    };
    let pipelined_report = drive("echo", &pipelined, |_| EchoOp::open(&config));
    // Stop the server before any assertion can fail, so nothing outlives the test.
    server.stop();
    server.wait().expect("echo server stops cleanly");

    let report = timed_report.expect("timed run");
    assert!(report.tally.ops(OpKind::Echo) > 0, "{}", report.to_text());
    assert_eq!(report.tally.errors(), 0, "{}", report.to_text());
    assert_eq!(report.elapsed, Duration::from_secs(1));
    let report = pipelined_report.expect("pipelined run");
    assert_eq!(
        report.tally.ops(OpKind::Echo),
        5_000,
        "{}",
        report.to_text()
    );
    assert_eq!(report.tally.errors(), 0, "{}", report.to_text());
}

#[test]
fn echo_driver_reports_a_server_that_is_not_there() {
    // Bind then drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
        .port();
    let config = EchoConfig {
        server: format!("127.0.0.1:{port}"),
        size: 10,
    };
    let driver = DriverConfig {
        connections: 2,
        pipeline: 1,
        warmup: Duration::ZERO,
        stop: Stop::After(Duration::from_secs(1)),
    };
    let err = drive("echo", &driver, |_| EchoOp::open(&config)).expect_err("nobody listens");
    assert!(err.to_string().contains("could not be set up"), "{err}");
}
