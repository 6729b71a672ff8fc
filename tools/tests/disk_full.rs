//! A full disk (issue 4): on a small loop-mounted ext4 filesystem, durable puts fill the disk
//! (through the commit log, memtable flushes and compactions) until they are refused with the
//! "no space" error; every acknowledged put still reads back,
//! gets keep working and the server stays up; once a filler file is deleted, puts succeed
//! again; after a kill -9 and a restart every acknowledged put is still there.
//!
//! Needs root, `losetup`, `mkfs.ext4` (e2fsprogs) and `mount`/`umount`. Without them the test
//! fails with a message saying what is missing; it never skips. Every loop is bounded in
//! count and time.
//!
//! A log that cannot be written (stderr on the full disk, here /dev/full) must not stop the
//! server either: a second test, which needs no root.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;
use tessera_client::{Client, ClientError};
use tessera_schema::ErrorCode;

const ADDR: &str = "127.0.0.11:7300";
/// The unwritable-log test's server (its shard port is the next one).
const LOG_FULL_ADDR: &str = "127.0.0.11:7310";
/// Size of the filesystem image. Large enough for ext4's journal and more than one log
/// segment, small enough to fill in seconds.
const IMAGE_BYTES: u64 = 64 << 20;
/// Space held by a file created before the node starts and deleted to free space.
const FILLER_BYTES: usize = 8 << 20;
/// The smallest segment the config accepts with the smallest pending bound
/// (`log_segment_bytes >= 2 * log_pending_bytes_max`, which must exceed the largest object),
/// so segments roll while the disk fills.
const LOG_PENDING_BYTES: u64 = 9 << 20;
const LOG_SEGMENT_BYTES: u64 = 2 * LOG_PENDING_BYTES;
/// A small budget (2 MiB memtables), so memtables flush to SSTables and compact while the
/// disk fills: flushes and compactions meet the full disk too, not only the commit log.
const MEMORY_BUDGET: &str = "16MiB";
/// Bytes of each value written.
const VALUE_BYTES: usize = 64 << 10;
/// More puts than the filesystem can hold, so the loop ends by refusal, not by count.
const FILL_PUTS_MAX: usize = (IMAGE_BYTES as usize / VALUE_BYTES) * 2;
const FILL_TIME_MAX: Duration = Duration::from_secs(120);
const RESUME_TIME_MAX: Duration = Duration::from_secs(20);

/// The loop-mounted filesystem: unmounted and its loop device detached on drop, even when the
/// test fails.
struct LoopFs {
    mount_point: PathBuf,
    device: String,
    mounted: bool,
}

impl LoopFs {
    fn create(dir: &Path) -> LoopFs {
        let uid = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|r| r.split_whitespace().next().map(str::to_owned))
            })
            .flatten()
            .unwrap_or_default();
        assert_eq!(
            uid, "0",
            "disk_full needs root to create and mount a loop filesystem (run the tests as root, \
             as scripts/test.sh does on CI)"
        );
        let image = dir.join("fs.img");
        let file = std::fs::File::create(&image).unwrap();
        file.set_len(IMAGE_BYTES).unwrap();
        drop(file);
        // -m 0: no blocks reserved for root, which the server runs as here.
        run(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-m", "0"])
                .arg(&image),
            "mkfs.ext4 (install e2fsprogs)",
        );
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&image)
            .output()
            .unwrap_or_else(|e| panic!("cannot run losetup (install mount/util-linux): {e}"));
        assert!(
            out.status.success(),
            "losetup could not attach {}: {} (loop devices unavailable? try `modprobe loop`)",
            image.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let device = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let mount_point = dir.join("mnt");
        std::fs::create_dir(&mount_point).unwrap();
        let mut fs = LoopFs {
            mount_point,
            device,
            mounted: false,
        };
        run(
            Command::new("mount").arg(&fs.device).arg(&fs.mount_point),
            "mount of the loop device",
        );
        fs.mounted = true;
        fs
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        // Best effort, and bounded: a failure here must not hide the test's own failure.
        if self.mounted {
            for _ in 0..50 {
                let ok = Command::new("umount")
                    .arg(&self.mount_point)
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

fn run(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Value `i`, incompressible, so tables take as much disk as the log did.
fn value(i: usize) -> Vec<u8> {
    common::incompressible_value(i, VALUE_BYTES)
}

/// The refusal of a write on a full disk: by the commit log, or by a shard whose memtable
/// flush or compaction cannot write its table.
fn is_no_space(err: &ClientError) -> bool {
    matches!(err, ClientError::Server(e)
        if e.code == ErrorCode::Unavailable
            && (e.message.contains("no space left for the commit log")
                || (e.message.contains("writes are refused until")
                    && e.message.contains("no space left on device"))))
}

fn verify(server: &mut Server, client: &Client, acked: &BTreeMap<String, Vec<u8>>, when: &str) {
    for (key, want) in acked {
        let got = client.get(key.as_bytes()).unwrap_or_else(|e| {
            panic!(
                "{when}: get {key} failed: {e} (server running: {})\n{}",
                server.is_running(),
                server.log_tail()
            )
        });
        assert_eq!(got.values, vec![want.clone()], "{when}: acknowledged {key}");
    }
}

/// Files under `dir` with extension `ext` and a 20-digit stem (log segments, SSTables).
fn numbered_files(dir: &Path, ext: &str) -> usize {
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == ext)
                && path.file_stem().is_some_and(|s| s.len() == 20)
            {
                count += 1;
            }
        }
    }
    count
}

#[test]
fn full_disk_refuses_writes_keeps_reads_and_recovers_when_space_is_freed() {
    let tmp = common::data_dir();
    let fs = LoopFs::create(tmp.path());
    let filler = fs.mount_point.join("filler");
    std::fs::write(&filler, vec![0u8; FILLER_BYTES]).unwrap();
    std::fs::File::open(&filler).unwrap().sync_all().unwrap();
    let config = tmp.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            "log_segment_bytes = {LOG_SEGMENT_BYTES}\nlog_pending_bytes_max = {LOG_PENDING_BYTES}\n\
             memory_budget = \"{MEMORY_BUDGET}\"\n"
        ),
    )
    .unwrap();
    let data = fs.mount_point.join("data");
    // The log lives off the filesystem being filled, so that it (and a panic message) is
    // still written while the disk is full.
    let log = tmp.path().join(common::SERVER_LOG);
    let addr: SocketAddr = ADDR.parse().unwrap();
    let mut server = Server::start_with_config_and_log(&data, addr, 1, &config, &log);
    let client = server.client();

    // Fill the disk.
    let mut acked = BTreeMap::new();
    let mut refused = Vec::new();
    let deadline = Instant::now() + FILL_TIME_MAX;
    let mut i = 0;
    // Until three refusals in a row: with tables, space comes and goes (a compaction removes
    // its inputs, a flush releases log segments), so one refusal may be followed by success.
    let mut refused_in_a_row = 0;
    while i < FILL_PUTS_MAX && refused_in_a_row < 3 {
        assert!(
            Instant::now() < deadline,
            "disk not full after {FILL_TIME_MAX:?}"
        );
        let key = format!("key-{i}");
        match client.put(key.as_bytes(), &value(i), None) {
            // An acknowledgement after a refusal is fine: the log retries on its own, and a
            // little space can come back (ext4 releases reservations).
            Ok(_) => {
                acked.insert(key, value(i));
                refused_in_a_row = 0;
            }
            Err(e) => {
                assert!(
                    is_no_space(&e),
                    "put {key}: expected the no-space error, got {e}\n{}",
                    server.log_tail()
                );
                refused.push(key);
                refused_in_a_row += 1;
            }
        }
        i += 1;
    }
    assert!(
        !refused.is_empty(),
        "{FILL_PUTS_MAX} puts never filled the disk"
    );
    assert!(
        acked.len() > 100,
        "only {} puts acknowledged before the disk was full",
        acked.len()
    );
    assert!(
        numbered_files(&data, "sst") >= 1,
        "memtables should have been flushed to SSTables while the disk filled"
    );

    // Full: the server is up, reads work, writes are still refused.
    assert!(
        server.is_running(),
        "server died on a full disk\n{}",
        server.log_tail()
    );
    verify(&mut server, &client, &acked, "disk full");
    // Still full, unless a compaction or a released log segment gave a little space back:
    // either way never a write acknowledged and then lost, and a refusal is the typed one.
    match client.put(b"while-full", &value(0), None) {
        Ok(_) => {
            acked.insert("while-full".into(), value(0));
        }
        Err(err) => assert!(is_no_space(&err), "expected the no-space error, got {err}"),
    }

    // Free space: puts resume (the log retries on its own; bounded wait for it).
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + RESUME_TIME_MAX;
    let mut resumed = 0;
    while resumed < 5 {
        let key = format!("after-{i}");
        match client.put(key.as_bytes(), &value(i), None) {
            Ok(_) => {
                acked.insert(key, value(i));
                resumed += 1;
            }
            Err(e) => {
                assert!(resumed == 0, "put {key} refused after puts resumed: {e}");
                assert!(is_no_space(&e), "put {key}: unexpected error {e}");
                assert!(
                    Instant::now() < deadline,
                    "puts still refused {RESUME_TIME_MAX:?} after space was freed\n{}",
                    server.log_tail()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        i += 1;
    }
    verify(&mut server, &client, &acked, "after space was freed");

    // Crash and restart: every acknowledged put survives.
    drop(client);
    server.kill9();
    let mut server = Server::start_with_config_and_log(&data, addr, 1, &config, &log);
    let client = server.client();
    verify(&mut server, &client, &acked, "after restart");
    drop(client);
    drop(server);
    drop(fs);
}

/// Every write of the server's log fails with ENOSPC (stderr is /dev/full), as when the log
/// is a file on the full data disk: the server still starts, takes writes and serves reads,
/// dropping the log lines it cannot write (the default log filter logs at start-up and on
/// every connection, so this is exercised at once).
#[test]
fn server_keeps_serving_when_its_log_cannot_be_written() {
    let tmp = common::data_dir();
    let config = tmp.path().join("tessera.toml");
    std::fs::write(&config, "").unwrap();
    let data = tmp.path().join("data");
    let addr: SocketAddr = LOG_FULL_ADDR.parse().unwrap();
    let mut server =
        Server::start_with_config_and_log(&data, addr, 1, &config, Path::new("/dev/full"));
    let mut acked = BTreeMap::new();
    for i in 0..20 {
        // A connection per put too: connection set-up and teardown log.
        let client = server.client();
        let key = format!("key-{i}");
        client
            .put(key.as_bytes(), &value(i), None)
            .unwrap_or_else(|e| panic!("put {key} with an unwritable log: {e}"));
        acked.insert(key, value(i));
    }
    let client = server.client();
    verify(&mut server, &client, &acked, "log unwritable");
    assert!(
        server.is_running(),
        "server died when its log could not be written"
    );
}
