//! The runner end to end over real sockets: the echo ceiling, a fake Redis that is honest,
//! one that silently drops writes and one that serves stale values (the check must catch
//! both), and a real Tessera node through the native protocol.
//!
//! Servers bind 127.0.0.10 (this file's loopback address).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tessera_bench::engine::shared::Protocol;
use tessera_bench::engine::{PhaseConfig, PhaseStop};
use tessera_bench::proto::native::WriteMode;
use tessera_bench::run::{run, write_outputs, RunConfig};
use tessera_bench::workload::{KeyDistribution, WorkloadName};
use tessera_bench::{EchoServer, EchoServerConfig, OpKind};
use tessera_io::ShardPlacement;
use tessera_schema::resp::{parse_command, write_bulk, write_null_bulk, write_simple, RespLimits};
use tessera_schema::Durability;

const HOST: &str = "127.0.0.10";

fn config(server: SocketAddr, protocol: Protocol, workload: WorkloadName) -> RunConfig {
    RunConfig {
        server: server.to_string(),
        protocol,
        workload,
        distribution: workload.distribution(),
        records: 2_000,
        value_size: 100,
        key_prefix: "user".into(),
        phase: PhaseConfig {
            title: String::new(),
            protocol,
            connections: 4,
            pipeline: 8,
            batch: false,
            threads: 2,
            warmup: Duration::ZERO,
            stop: PhaseStop::Ops(20_000),
            rate: None,
            timeout: Duration::from_secs(10),
            progress: false,
        },
        load: true,
        verify: true,
        via_server: false,
        seed: 1,
        json: None,
        plot: None,
    }
}

/// How the fake Redis misbehaves.
#[derive(Clone, Copy)]
enum Fault {
    None,
    /// Acknowledge every Nth SET without storing it.
    DropEvery(u64),
    /// Keep the first value of each key for ever, acknowledging later SETs.
    Stale,
    /// Store only the first 50 bytes of every value.
    Truncate,
}

type Store = Mutex<HashMap<Vec<u8>, Vec<u8>>>;

/// A minimal RESP server (GET and SET) with a thread per connection.
struct FakeRedis {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
}

impl FakeRedis {
    fn start(fault: Fault) -> Self {
        let listener = TcpListener::bind((HOST, 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let store = Arc::new(Store::default());
        let sets = Arc::new(AtomicU64::new(0));
        let (stop2, dropped2) = (stop.clone(), dropped.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (store, sets, dropped) = (store.clone(), sets.clone(), dropped2.clone());
                std::thread::spawn(move || serve(conn, fault, &store, &sets, &dropped));
            }
        });
        Self {
            addr,
            stop,
            accept: Some(accept),
            dropped,
        }
    }
}

impl Drop for FakeRedis {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(mut conn: TcpStream, fault: Fault, store: &Store, sets: &AtomicU64, dropped: &AtomicU64) {
    let limits = RespLimits::default();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut out = Vec::new();
        let mut at = 0;
        while let Ok(Some((args, used))) = parse_command(&buf[at..], &limits) {
            at += used;
            let mut store = store.lock().expect("store");
            match args.first().map(Vec::as_slice) {
                Some(b"SET") => {
                    let n = sets.fetch_add(1, Ordering::Relaxed) + 1;
                    let drop_it = matches!(fault, Fault::DropEvery(k) if n.is_multiple_of(k))
                        || (matches!(fault, Fault::Stale) && store.contains_key(&args[1]));
                    let mut value = args[2].clone();
                    if matches!(fault, Fault::Truncate) {
                        value.truncate(50);
                    }
                    if drop_it {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    } else {
                        store.insert(args[1].clone(), value);
                    }
                    write_simple(&mut out, b"OK");
                }
                Some(b"GET") => match store.get(&args[1]) {
                    Some(v) => write_bulk(&mut out, v),
                    None => write_null_bulk(&mut out),
                },
                _ => write_simple(&mut out, b"PONG"),
            }
        }
        buf.drain(..at);
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}

fn not_interrupted() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

#[test]
fn an_honest_server_checks_out() {
    let redis = FakeRedis::start(Fault::None);
    for w in [WorkloadName::A, WorkloadName::D, WorkloadName::F] {
        let out = run(&config(redis.addr, Protocol::Resp, w), &not_interrupted()).expect("run");
        let v = out.verify.as_ref().expect("checked");
        assert!(out.passed(), "{w:?}\n{}", out.to_text());
        assert!(v.checked >= 2_000 && v.ok == v.checked, "{}", out.to_text());
        assert_eq!(out.run.tally.errors(), 0);
    }
}

#[test]
fn dropped_writes_are_reported_lost() {
    let redis = FakeRedis::start(Fault::DropEvery(40));
    // Read only after the load: exactly the dropped load writes are lost.
    let out = run(
        &config(redis.addr, Protocol::Resp, WorkloadName::C),
        &not_interrupted(),
    )
    .expect("run");
    let v = out.verify.as_ref().expect("checked");
    assert_eq!(redis.dropped.load(Ordering::Relaxed), 2_000 / 40);
    assert_eq!(v.lost, 2_000 / 40, "{}", out.to_text());
    assert_eq!(v.wrong, 0, "{}", out.to_text());
    assert!(!out.passed());
    assert!(
        out.run.tally.misses(OpKind::Read) > 0,
        "reads of lost records miss"
    );
    assert!(out.to_text().contains("acknowledged write lost"));
}

#[test]
fn stale_values_are_reported_wrong() {
    let redis = FakeRedis::start(Fault::Stale);
    let out = run(
        &config(redis.addr, Protocol::Resp, WorkloadName::A),
        &not_interrupted(),
    )
    .expect("run");
    let v = out.verify.as_ref().expect("checked");
    assert!(v.wrong > 100, "{}", out.to_text());
    assert_eq!(v.lost, 0);
    assert!(
        out.to_text().contains("older than acknowledged write"),
        "{}",
        out.to_text()
    );
}

#[test]
fn truncated_values_are_reported_wrong() {
    let redis = FakeRedis::start(Fault::Truncate);
    let out = run(
        &config(redis.addr, Protocol::Resp, WorkloadName::C),
        &not_interrupted(),
    )
    .expect("run");
    let v = out.verify.as_ref().expect("checked");
    assert_eq!(v.wrong, 2_000, "{}", out.to_text());
    assert!(
        out.to_text().contains("holds 50 bytes"),
        "{}",
        out.to_text()
    );
}

#[test]
fn echo_runs_timed_and_counted_with_json_and_plot() {
    let server = EchoServer::start(&EchoServerConfig {
        listen: format!("{HOST}:0").parse().expect("address"),
        shards: 2,
        placement: ShardPlacement::Unbound,
    })
    .expect("echo server starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut timed = config(server.local_addr(), Protocol::Echo, WorkloadName::A);
    timed.phase.stop = PhaseStop::After(Duration::from_millis(500));
    timed.phase.warmup = Duration::from_millis(100);
    timed.json = Some(dir.path().join("echo.json"));
    let timed_out = run(&timed, &not_interrupted());
    if let Ok(out) = &timed_out {
        write_outputs(&timed, out).expect("JSON written");
    }
    let mut counted = config(server.local_addr(), Protocol::Echo, WorkloadName::A);
    counted.phase.stop = PhaseStop::Ops(5_000);
    counted.phase.rate = Some(20_000.0);
    counted.plot = Some(dir.path().join("echo.png"));
    let counted_out = run(&counted, &not_interrupted());
    if let Ok(out) = &counted_out {
        write_outputs(&counted, out).expect("plot written");
    }
    // Stop the server before any assertion can fail, so nothing outlives the test.
    server.stop();
    server.wait().expect("echo server stops cleanly");

    let out = timed_out.expect("timed run");
    assert!(out.run.tally.ops(OpKind::Echo) > 0, "{}", out.to_text());
    assert_eq!(out.run.tally.errors(), 0);
    assert_eq!(out.run.elapsed, Duration::from_millis(500));
    assert!(out.verify.is_none() && out.load.is_none());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("echo.json")).expect("json"))
            .expect("valid JSON");
    assert_eq!(json["passed"], true);
    assert_eq!(json["run"]["results"][0]["op"], "echo");
    let out = counted_out.expect("open-loop run");
    assert_eq!(out.run.tally.ops(OpKind::Echo), 5_000, "{}", out.to_text());
    let png = std::fs::read(dir.path().join("echo.png")).expect("plot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
}

#[test]
fn a_server_that_is_not_there_is_a_setup_error() {
    let port = TcpListener::bind((HOST, 0))
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
        .port();
    let addr: SocketAddr = format!("{HOST}:{port}").parse().expect("addr");
    let err = run(
        &config(addr, Protocol::Resp, WorkloadName::A),
        &not_interrupted(),
    )
    .expect_err("nobody listens");
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

#[test]
fn native_protocol_against_a_real_node_checks_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node_config = tessera_shard::NodeConfig {
        data_dir: dir.path().to_path_buf(),
        listen: format!("{HOST}:7990").parse().expect("addr"),
        shards: 2,
        placement: tessera_shard::config::PlacementSetting::Unbound,
        ..Default::default()
    };
    let node = tessera_shard::start(node_config.clone()).expect("node starts");
    let mut results = Vec::new();
    for (w, mode) in [
        (WorkloadName::A, WriteMode::Context),
        (WorkloadName::F, WriteMode::Overwrite),
    ] {
        let protocol = Protocol::Native {
            durability: Durability::Relaxed,
            mode,
        };
        let mut c = config(node_config.listen, protocol, w);
        c.distribution = KeyDistribution::Uniform;
        c.phase.stop = PhaseStop::Ops(5_000);
        results.push((w, run(&c, &not_interrupted())));
    }
    node.stop();
    node.wait().expect("node stops cleanly");
    for (w, out) in results {
        let out = out.expect("run");
        assert!(out.passed(), "{w:?}\n{}", out.to_text());
        assert_eq!(out.verify.as_ref().map(|v| v.checked), Some(2_000));
    }
}
