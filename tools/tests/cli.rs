//! The command line as scripts use it: `tessera server` with a relative data directory (as in
//! the README), `put`/`get`/`del` output and exit statuses, siblings one per line, and the
//! config file.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Cli {
    server: String,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .args(["--server", &self.server])
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tessera {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Starts `tessera server` in `cwd` with extra arguments and waits until it serves.
fn start(cwd: &Path, addr: SocketAddr, extra: &[&str]) -> KillOnDrop {
    let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(cwd)
        .args(["server", "--placement", "unbound", "--shards", "2"])
        .args(extra)
        .env("TESSERA_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(child);
    let deadline = Instant::now() + common::START_TIMEOUT;
    while tessera_client::Client::connect(addr, common::quick_config()).is_err() {
        assert!(
            guard.0.try_wait().unwrap().is_none(),
            "server exited during start-up"
        );
        assert!(Instant::now() < deadline, "server not ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    guard
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn put_get_del_with_a_relative_data_dir() {
    let cwd = common::data_dir();
    let addr: SocketAddr = "127.0.0.5:17500".parse().unwrap();
    let _server = start(
        cwd.path(),
        addr,
        &["--data-dir", "./data", "--listen", &addr.to_string()],
    );
    let cli = Cli {
        server: addr.to_string(),
    };

    cli.ok(&["put", "greeting", "hello"]);
    assert_eq!(cli.ok(&["get", "greeting"]), "hello\n");
    // put replaces by default (it reads the context first)...
    cli.ok(&["put", "greeting", "hi"]);
    assert_eq!(cli.ok(&["get", "greeting"]), "hi\n");
    // ...while a blind write becomes a sibling: each on its own line.
    cli.ok(&["put", "greeting", "bonjour", "--blind"]);
    let mut lines: Vec<String> = cli
        .ok(&["get", "greeting"])
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    assert_eq!(lines, ["bonjour", "hi"]);
    // A put with the context of a get supersedes exactly what that get saw.
    let out = cli.run(&["get", "greeting", "--show-context"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    let ctx = stderr
        .lines()
        .find_map(|l| l.strip_prefix("context: "))
        .unwrap()
        .to_string();
    cli.ok(&["put", "greeting", "hola", "--context", &ctx]);
    assert_eq!(cli.ok(&["get", "greeting"]), "hola\n");

    // Consistency options are accepted; a single node has one copy and ignores them.
    cli.ok(&["put", "greeting", "hey", "--w", "3", "--strict"]);
    assert_eq!(
        cli.ok(&["get", "greeting", "--r", "3", "--strict"]),
        "hey\n"
    );
    for bad in [
        &["get", "greeting", "--r", "0"][..],
        &["put", "greeting", "x", "--w", "17"],
        &["del", "greeting", "--w", "many"],
    ] {
        let out = cli.run(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("from 1 to 16"), "{bad:?}: {stderr}");
    }
    assert_eq!(cli.ok(&["get", "greeting"]), "hey\n");

    cli.ok(&["del", "greeting", "--w", "1", "--strict"]);
    let out = cli.run(&["get", "greeting"]);
    assert_eq!(out.status.code(), Some(1), "not found must exit 1");
    assert!(out.stdout.is_empty());
    assert!(
        cwd.path().join("data/tessera.meta").exists(),
        "data must live under the relative dir"
    );

    let status = cli.ok(&["status"]);
    assert!(status.contains("shards      2"), "{status}");
}

#[test]
fn errors_exit_2_with_advice() {
    let cli = Cli {
        server: "127.0.0.5:17599".into(),
    };
    let out = cli.run(&["get", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("Is a tessera server running there?"),
        "{stderr}"
    );
    let out = cli.run(&["put", "k", "v", "--context", "zz"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_file_sets_address_and_flags_override_it() {
    let cwd = common::data_dir();
    let addr: SocketAddr = "127.0.0.5:17600".parse().unwrap();
    std::fs::write(
        cwd.path().join("tessera.toml"),
        format!("data_dir = \"from-config\"\nlisten = \"{addr}\"\ndurable_writes = true\n"),
    )
    .unwrap();
    let _server = start(cwd.path(), addr, &["--config", "tessera.toml"]);
    let cli = Cli {
        server: addr.to_string(),
    };
    cli.ok(&["put", "k", "v"]);
    assert_eq!(cli.ok(&["get", "k"]), "v\n");
    assert!(
        cwd.path().join("from-config/tessera.meta").exists(),
        "config data_dir not used"
    );
}

#[test]
fn consistency_flags_are_documented() {
    let help = |command: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{command} --help");
        String::from_utf8(out.stdout).unwrap()
    };
    for (command, flag) in [("get", "--r <N>"), ("put", "--w <N>"), ("del", "--w <N>")] {
        let text = help(command);
        assert!(text.contains(flag), "{command} --help lacks {flag}: {text}");
        assert!(
            text.contains("--strict") && text.contains("preference list"),
            "{command} --help does not explain --strict: {text}"
        );
    }
}
