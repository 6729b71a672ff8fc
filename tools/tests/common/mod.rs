//! Test harness: real `tessera server` processes on loopback, stopped by PID.
//!
//! Each test picks its own loopback address (127.0.0.x) so tests in parallel never contend
//! for a port; every server started is killed when its handle drops.

#![allow(dead_code, clippy::unwrap_used)]

pub mod cluster;
pub mod netns;
pub mod setload;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tessera_client::{Client, ClientConfig};
use tessera_schema::{decode_response, Encoder, FrameBuffer, Request, Response};

/// File in a test server's data directory that receives its log.
pub const SERVER_LOG: &str = "server.log";
/// Log filter of test servers: start-up steps visible.
pub const TEST_LOG_FILTER: &str = "info,tessera_shard=debug,tessera_io=debug";

/// Longest a server may take to start serving in a test.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A `tessera server` child process.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub shards: u16,
    /// Where the server serves RESP (Redis protocol), if it was started with a RESP port.
    pub resp: Option<SocketAddr>,
    /// The file receiving the server's stderr (its log, and any panic message).
    pub log_path: PathBuf,
}

impl Server {
    /// Starts a server and waits until every shard answers.
    pub fn start(data_dir: &Path, addr: SocketAddr, shards: u16) -> Server {
        Server::start_with(data_dir, addr, shards, None)
    }

    /// Starts a server that also serves RESP on `resp` (`--resp-listen`), and waits until every
    /// shard answers (a shard answers only once all its listeners, RESP's too, are bound).
    pub fn start_with_resp(
        data_dir: &Path,
        addr: SocketAddr,
        shards: u16,
        resp: SocketAddr,
    ) -> Server {
        Server::start_with(data_dir, addr, shards, Some(resp))
    }

    /// Starts a server that also reads the TOML config file `config` (`--config`; the flags
    /// the harness passes override it), and waits until every shard answers.
    pub fn start_with_config(
        data_dir: &Path,
        addr: SocketAddr,
        shards: u16,
        config: &Path,
    ) -> Server {
        Server::start_with_config_and_log(
            data_dir,
            addr,
            shards,
            config,
            &data_dir.join(SERVER_LOG),
        )
    }

    /// [`Server::start_with_config`], with the server's log appended to `log` instead of a
    /// file in its data directory: for a data directory on a filesystem the test fills, where
    /// the log (and a panic message) could not be written.
    pub fn start_with_config_and_log(
        data_dir: &Path,
        addr: SocketAddr,
        shards: u16,
        config: &Path,
        log: &Path,
    ) -> Server {
        let mut command = server_command_with(data_dir, addr, shards, None);
        command.arg("--config").arg(config);
        Server::launch(command, data_dir, addr, shards, None, log)
    }

    fn start_with(
        data_dir: &Path,
        addr: SocketAddr,
        shards: u16,
        resp: Option<SocketAddr>,
    ) -> Server {
        let command = server_command_with(data_dir, addr, shards, resp);
        Server::launch(
            command,
            data_dir,
            addr,
            shards,
            resp,
            &data_dir.join(SERVER_LOG),
        )
    }

    /// Runs `command` (a `tessera server` command line), its stderr appended to `log_path`,
    /// and waits until every shard answers.
    fn launch(
        mut command: Command,
        data_dir: &Path,
        addr: SocketAddr,
        shards: u16,
        resp: Option<SocketAddr>,
        log_path: &Path,
    ) -> Server {
        // The server's log goes to a file (by default in its data directory; start-up steps at
        // debug), so that a server that fails to start can be diagnosed from the test's
        // failure message.
        std::fs::create_dir_all(data_dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap();
        let child = command
            .env(
                "TESSERA_LOG",
                std::env::var("TESSERA_LOG").unwrap_or_else(|_| TEST_LOG_FILTER.into()),
            )
            .stderr(log)
            .spawn()
            .expect("spawn tessera server");
        let mut server = Server {
            child: Some(child),
            addr,
            data_dir: data_dir.to_path_buf(),
            shards,
            resp,
            log_path: log_path.to_path_buf(),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "server exited during start-up: {status}\n{}",
                    self.log_tail()
                );
            }
            if let Ok(client) = Client::connect(self.addr, quick_config()) {
                if client.ping().is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server on {} not ready in {START_TIMEOUT:?}\n{}",
                self.addr,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        // Only a regular file: a device such as /dev/full reads as endless zeros.
        let is_file = std::fs::metadata(&self.log_path).is_ok_and(|m| m.is_file());
        if !is_file {
            return format!("--- {} is not a log file ---", self.log_path.display());
        }
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("--- last lines of {} ---\n{tail}", self.log_path.display())
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Kills the server with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Stops the server with SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // std can only SIGKILL; `unsafe` (libc::kill) is kept out of this crate, so the
            // `kill` utility sends SIGTERM by PID.
            let status = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status()
                .unwrap();
            assert!(status.success());
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(
                        status.success(),
                        "server exited with {status} after SIGTERM"
                    );
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "server did not stop after SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Resident memory of the server, in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// File descriptors the server holds open (sockets included), from /proc.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// A client with test timeouts.
    pub fn client(&self) -> Client {
        Client::connect(self.addr, quick_config()).unwrap()
    }

    /// Address of shard `shard`'s own port.
    pub fn shard_addr(&self, shard: u16) -> SocketAddr {
        SocketAddr::new(self.addr.ip(), self.addr.port() + 1 + shard)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The `tessera server` command line every test server runs with.
fn server_command(data_dir: &Path, addr: SocketAddr, shards: u16) -> Command {
    server_command_with(data_dir, addr, shards, None)
}

/// [`server_command`], serving RESP on `resp` too if given.
fn server_command_with(
    data_dir: &Path,
    addr: SocketAddr,
    shards: u16,
    resp: Option<SocketAddr>,
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .args([
            "server",
            "--placement",
            "unbound",
            "--shards",
            &shards.to_string(),
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(addr.to_string())
        .env(
            "TESSERA_LOG",
            std::env::var("TESSERA_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null());
    if let Some(resp) = resp {
        command.arg("--resp-listen").arg(resp.to_string());
    }
    command
}

/// How a server that was expected to refuse to start ended.
#[derive(Debug)]
pub struct FailedStart {
    pub status: ExitStatus,
    pub stderr: String,
}

/// Runs `tessera server` expecting it to exit on its own within `timeout` (a start-up
/// refusal); returns its exit status and everything it wrote to stderr. Panics, after killing
/// it, if it is still running at the deadline.
pub fn start_expecting_failure(
    data_dir: &Path,
    addr: SocketAddr,
    shards: u16,
    timeout: Duration,
) -> FailedStart {
    start_expecting_failure_with(data_dir, addr, shards, None, timeout)
}

/// [`start_expecting_failure`] for a server started with a RESP port too.
pub fn start_expecting_failure_with(
    data_dir: &Path,
    addr: SocketAddr,
    shards: u16,
    resp: Option<SocketAddr>,
    timeout: Duration,
) -> FailedStart {
    let mut child = server_command_with(data_dir, addr, shards, resp)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tessera server");
    // Drained on a thread so a chatty child can never block on a full pipe.
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        pipe.read_to_string(&mut text).unwrap();
        text
    });
    let Some(status) = wait_or_kill(&mut child, timeout) else {
        panic!("server on {addr} was expected to refuse to start but still runs after {timeout:?}");
    };
    FailedStart {
        status,
        stderr: reader.join().unwrap(),
    }
}

/// Waits for `child` to exit, checking every 20 ms; at `timeout` kills it (by its handle, so
/// by PID) and returns `None`.
pub fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the member listening for peers on `peer_addr` is alive in `status`'s view (`None`
/// if the view has no such member).
pub fn member_alive(status: &tessera_client::ClusterStatus, peer_addr: &str) -> Option<bool> {
    status
        .members
        .iter()
        .find(|m| m.addr == peer_addr)
        .map(|m| m.alive)
}

/// Client settings for tests: short timeouts so a hang fails fast.
pub fn quick_config() -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    }
}

/// A raw protocol connection to one exact port (no routing), for tests that must control
/// which port a request enters by, or send malformed bytes.
pub struct RawConn {
    pub stream: TcpStream,
    encoder: Encoder,
    frames: FrameBuffer,
    next_id: u64,
}

impl RawConn {
    pub fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RawConn {
            stream,
            encoder: Encoder::new(),
            frames: FrameBuffer::default(),
            next_id: 1,
        }
    }

    /// Appends `request`'s frame, under a fresh id, to `out` (to send later, e.g. many in one
    /// write); returns the id.
    pub fn encode(&mut self, request: &Request, out: &mut Vec<u8>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.encoder.encode_request(id, request, out);
        id
    }

    /// Sends one request without waiting for its answer (pipelining); returns its id.
    pub fn send(&mut self, request: &Request) -> u64 {
        let mut buf = Vec::new();
        let id = self.encode(request, &mut buf);
        self.stream.write_all(&buf).unwrap();
        id
    }

    /// Sends one request and waits for its answer.
    pub fn call(&mut self, request: &Request) -> Response {
        let id = self.next_id;
        self.next_id += 1;
        let mut buf = Vec::new();
        self.encoder.encode_request(id, request, &mut buf);
        self.stream.write_all(&buf).unwrap();
        let (got, response) = self
            .read_response()
            .expect("connection closed before the answer");
        assert_eq!(got, id, "answer for another request");
        response
    }

    /// Reads the next answer; `None` once the server closed the connection.
    pub fn read_response(&mut self) -> Option<(u64, Response)> {
        loop {
            if let Some(body) = self.frames.next_frame().unwrap() {
                return Some(decode_response(&body).unwrap());
            }
            match self.frames.read_from(&mut self.stream) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Whether the server has closed the connection (reads EOF within the read timeout).
    pub fn is_closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

/// A fresh temporary data directory (on disk, not tmpfs: DMA needs O_DIRECT).
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tessera-test-")
        .tempdir_in(std::env::temp_dir())
        .unwrap()
}

/// A get of `key` in the default keyspace.
pub fn get(key: &[u8]) -> Request {
    Request::Get(tessera_schema::GetRequest {
        keyspace: tessera_schema::DEFAULT_KEYSPACE.into(),
        key: key.to_vec(),
        consistency: tessera_schema::Consistency::default(),
    })
}

/// A blind put of `value` at `key` in the default keyspace.
pub fn put(key: &[u8], value: &[u8]) -> Request {
    Request::Put(tessera_schema::PutRequest {
        keyspace: tessera_schema::DEFAULT_KEYSPACE.into(),
        key: key.to_vec(),
        value: value.to_vec(),
        context: Vec::new(),
        durability: tessera_schema::Durability::Default,
        overwrite: false,
        consistency: tessera_schema::Consistency::default(),
    })
}

/// Value `i` of `len` bytes: its number, then pseudo-random bytes derived from it (xorshift),
/// which zstd cannot shrink, so stored data takes its full size on disk and in memory.
pub fn incompressible_value(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("value-{i}-").into_bytes();
    let mut state = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while v.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        v.extend_from_slice(&state.to_le_bytes());
    }
    v.truncate(len);
    v
}
