//! Per-request consistency on real nodes, each in its own network namespace: four nodes, n = 3,
//! r = w = 2 by default, every request coordinated by node 1. A request may ask for its own r
//! or w and for a strict quorum (only the key's preference list counts) instead of the default
//! sloppy one (fallbacks stand in for owners that are down and keep hints).
//!
//! With every node up, r = w = 3 succeed, strict or sloppy. With one node stopped (SIGSTOP) and
//! node 1 seeing it down, for keys the stopped node replicates: a strict w = 3 write and a
//! strict r = 3 read fail with `QuorumNotReached` (at the node's quorum deadline, 2 s, not
//! hanging), while a sloppy w = 3 write succeeds and leaves a hint on the one node outside the
//! key's preference list, and a strict w = 2 write succeeds on the two owners that are up (also
//! for a key whose list starts at the stopped node and leaves node 1 out). For keys the stopped
//! node does not replicate, strict w = 3 still succeeds: which keys fail is exactly the set
//! whose preference list names the stopped node. Asking for more replicas than n (w = 5) fails
//! at once with a `BadRequest` that names n; the command line passes the same options through.
//! The node is resumed (SIGCONT) on every path.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::{NetCluster, NodeOptions};
use tessera_client::{
    Client, ClientConfig, ClientError, ClusterStatus, Consistency, ErrorCode, WireError,
};
use tessera_core::{token_of, PartitionCount};

/// Coordinates every request of the test.
const COORDINATOR: u8 = 1;
/// Keys of each kind (replicated by the stopped node or not) the test writes.
const KEYS_EACH: usize = 3;
/// A node's own deadline for a quorum: core's request timeout, in ticks of one millisecond.
const NODE_QUORUM_DEADLINE: Duration =
    Duration::from_millis(tessera_core::node::REQUEST_TIMEOUT_TICKS_DEFAULT);
/// Well past the node's deadline, so a quorum the node cannot reach comes back as the node's
/// typed error and not as a client timeout.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the failure detector may take to see a node stop or come back.
const DETECT_WITHIN: Duration = Duration::from_secs(20);
/// Longest the hints may take to reach the resumed node.
const HINTS_DRAIN_WITHIN: Duration = Duration::from_secs(60);

fn config() -> ClientConfig {
    ClientConfig {
        request_timeout: CLIENT_TIMEOUT,
        connect_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    }
}

/// Resumes a SIGSTOPped node when dropped, so that a failing assertion never leaves it stopped.
/// Best effort and silent: it runs while a panic unwinds.
struct Resume<'a> {
    cluster: &'a NetCluster,
    node: u8,
}

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        let pid = self.cluster.pid(self.node).to_string();
        let _ = Command::new("kill").args(["-CONT", &pid]).status();
    }
}

/// A key of the default keyspace, with its preference list.
struct Placed {
    key: Vec<u8>,
    replicas: Vec<u8>,
}

/// The node to stop, `KEYS_EACH` keys whose preference list names it, and `KEYS_EACH` whose
/// list does not, by the ring in `status` (the key → partition map is core's, as the node
/// computes it). The node stopped is the first owner of a key whose list leaves the coordinator
/// out, and that key comes first: the coordinator does not apply a write of it itself but hands
/// it to the first owner, which must be one believed up, not the stopped node.
fn choose_keys(cluster: &NetCluster, status: &ClusterStatus) -> (u8, Vec<Placed>, Vec<Placed>) {
    const CANDIDATES_MAX: usize = 20_000;
    let lists = cluster.preference_lists(status);
    let partitions = PartitionCount::new(u32::try_from(lists.len()).unwrap()).unwrap();
    let placed = (0..CANDIDATES_MAX).map(|i| {
        let key = format!("consistency-{i}").into_bytes();
        let p = partitions.partition_of(token_of(tessera_core::constants::DEFAULT_KEYSPACE, &key));
        let replicas = lists[p.0 as usize].clone();
        Placed { key, replicas }
    });
    let first = placed
        .clone()
        .find(|k| !k.replicas.contains(&COORDINATOR))
        .unwrap_or_else(|| panic!("node {COORDINATOR} replicates every partition"));
    let stopped = first.replicas[0];
    let with: Vec<Placed> = std::iter::once(first)
        .chain(
            placed
                .clone()
                .filter(|k| k.replicas.contains(&stopped) && k.replicas.contains(&COORDINATOR)),
        )
        .take(KEYS_EACH)
        .collect();
    let without: Vec<Placed> = placed
        .filter(|k| !k.replicas.contains(&stopped))
        .take(KEYS_EACH)
        .collect();
    assert!(
        with.len() == KEYS_EACH && without.len() == KEYS_EACH,
        "too few keys around node {stopped}"
    );
    (stopped, with, without)
}

/// The server's typed error inside a client error, or a failure naming what was expected.
fn server_error(result: Result<impl std::fmt::Debug, ClientError>, what: &str) -> WireError {
    match result {
        Err(ClientError::Server(e)) => e,
        other => panic!("{what}: expected an error from the node, got {other:?}"),
    }
}

/// Checks a `QuorumNotReached` that needed `required` replicas, and that it came in bounded time.
fn assert_quorum_not_reached(e: &WireError, required: u32, took: Duration, what: &str) {
    assert_eq!(e.code, ErrorCode::QuorumNotReached, "{what}: {e}");
    assert_eq!(e.required, required, "{what}: {e}");
    assert!(e.answered < required, "{what}: {e}");
    assert!(
        took < NODE_QUORUM_DEADLINE + Duration::from_secs(5),
        "{what}: took {took:?}"
    );
}

/// Asking for more replicas than keys have fails at once, with an error that says how many
/// there are; asking for more than any key can have never leaves the client.
fn assert_too_many_refused(client: &Client, key: &[u8], n: u32, phase: &str) {
    let start = Instant::now();
    let e = server_error(
        client.put_with(key, b"five", None, Consistency::replicas(5)),
        "w=5",
    );
    assert_eq!(e.code, ErrorCode::BadRequest, "{phase}: w=5: {e}");
    assert!(
        e.message.contains(&format!("at most {n}")),
        "{phase}: w=5: {e}"
    );
    assert!(!e.code.is_retryable());
    let e = server_error(
        client.get_with(key, Consistency::replicas(5).strict()),
        "r=5",
    );
    assert_eq!(e.code, ErrorCode::BadRequest, "{phase}: r=5: {e}");
    assert!(
        e.message.contains(&format!("at most {n}")),
        "{phase}: r=5: {e}"
    );
    // More than any key can have: the client refuses it without sending anything (the node
    // would refuse the frame and close the connection).
    match client.delete_with(key, None, Consistency::replicas(17)) {
        Err(ClientError::InvalidArgument(why)) => assert!(why.contains("16"), "{why}"),
        other => panic!("{phase}: w=17: {other:?}"),
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "{phase}: refusing impossible quorums took {took:?}"
    );
    eprintln!("{phase}: w=5, r=5 and w=17 refused in {took:?}: {e}");
}

#[test]
fn strict_and_sloppy_quorums_per_request_on_real_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = NetCluster::up(dir.path(), 205, 4, NodeOptions::default());
    let client = Client::connect(cluster.addr(COORDINATOR), config()).unwrap();
    let status = cluster.status(COORDINATOR).unwrap();
    assert_eq!(
        (status.replicas, status.read_quorum, status.write_quorum),
        (3, 2, 2)
    );
    let (stopped, replicated, elsewhere) = choose_keys(&cluster, &status);
    eprintln!(
        "stopping node {stopped}; keys it replicates have owners {:?}",
        replicated.iter().map(|k| &k.replicas).collect::<Vec<_>>()
    );
    let all_three = Consistency::replicas(3);

    // Every node up: r = w = 3 succeed, strict and sloppy, and so does the default.
    let start = Instant::now();
    for placed in replicated.iter().chain(&elsewhere) {
        let key = &placed.key;
        client.put(key, b"default", None).unwrap();
        let read = client.get(key).unwrap();
        client
            .put_with(key, b"strict", Some(&read.context), all_three.strict())
            .unwrap();
        let read = client.get_with(key, all_three.strict()).unwrap();
        assert_eq!(read.values, vec![b"strict".to_vec()]);
        client
            .put_with(key, b"sloppy", Some(&read.context), all_three.sloppy())
            .unwrap();
        let read = client.get_with(key, all_three.sloppy()).unwrap();
        assert_eq!(read.values, vec![b"sloppy".to_vec()]);
        client
            .delete_with(key, Some(&read.context), all_three.strict())
            .unwrap();
        assert!(client
            .get_with(key, all_three.strict())
            .unwrap()
            .is_not_found());
    }
    eprintln!(
        "all up: r=w=3 strict and sloppy on {} keys in {:.2}s",
        replicated.len() + elsewhere.len(),
        start.elapsed().as_secs_f64()
    );
    assert_too_many_refused(&client, &replicated[0].key, status.replicas, "all up");

    // The chosen node stopped; node 1, which coordinates, sees it down.
    cluster.signal(stopped, "-STOP");
    let resume = Resume {
        cluster: &cluster,
        node: stopped,
    };
    let took = cluster
        .wait_seen(COORDINATOR, stopped, false, DETECT_WITHIN)
        .unwrap_or_else(|| panic!("node {COORDINATOR} did not see node {stopped} stop"));
    eprintln!("node {COORDINATOR} saw node {stopped} down after {took:?}");

    // Sloppy w = 3 on keys the stopped node replicates: a fallback (the one node outside the
    // preference list, never the stopped one) stands in and keeps a hint. Strict w = 2 on them:
    // the two owners up are enough.
    let start = Instant::now();
    let mut hints_expected = [0u64; 4];
    for placed in &replicated {
        let read = client.get(&placed.key).unwrap();
        client
            .put_with(
                &placed.key,
                b"sloppy w=3",
                Some(&read.context),
                all_three.sloppy(),
            )
            .unwrap_or_else(|e| panic!("sloppy w=3 with node {stopped} down: {e}"));
        let outside = (1..=4u8).find(|i| !placed.replicas.contains(i)).unwrap();
        hints_expected[usize::from(outside) - 1] += 1;
        let read = client.get(&placed.key).unwrap();
        assert_eq!(read.values, vec![b"sloppy w=3".to_vec()]);
        client
            .put_with(
                &placed.key,
                b"strict w=2",
                Some(&read.context),
                Consistency::replicas(2).strict(),
            )
            .unwrap_or_else(|e| panic!("strict w=2 with two owners up: {e}"));
        // A sloppy read of all three counts the stand-in too.
        let read = client.get_with(&placed.key, all_three.sloppy()).unwrap();
        assert_eq!(read.values, vec![b"strict w=2".to_vec()]);
    }
    eprintln!(
        "node {stopped} down: sloppy w=3, strict w=2 and sloppy r=3 on {} keys it replicates in \
         {:.2}s",
        replicated.len(),
        start.elapsed().as_secs_f64()
    );
    // Hints for the stopped node cannot be delivered while it is stopped, so each stand-in still
    // holds at least the ones these writes left (other hints may come and go).
    for i in (1..=4u8).filter(|&i| i != stopped) {
        let held = cluster.status(i).unwrap().hints_held;
        let expected = hints_expected[usize::from(i) - 1];
        assert!(
            held >= expected,
            "node {i} holds {held} hints, expected at least {expected}"
        );
    }

    // Keys the stopped node does not replicate: strict r = w = 3 are unaffected.
    for placed in &elsewhere {
        client
            .put_with(&placed.key, b"strict w=3", None, all_three.strict())
            .unwrap_or_else(|e| panic!("strict w=3 on owners {:?}: {e}", placed.replicas));
        let read = client.get_with(&placed.key, all_three.strict()).unwrap();
        assert_eq!(read.values, vec![b"strict w=3".to_vec()]);
    }

    // Keys the stopped node replicates: strict w = 3 and strict r = 3 cannot be met. They run
    // together, so the whole phase takes about one quorum deadline per request in a thread.
    let start = Instant::now();
    std::thread::scope(|scope| {
        let client = &client;
        for placed in &replicated {
            let key = &placed.key;
            scope.spawn(move || {
                let begun = Instant::now();
                let result = client.put_with(key, b"strict w=3", None, all_three.strict());
                let e = server_error(result, "strict w=3 with an owner down");
                assert_quorum_not_reached(&e, 3, begun.elapsed(), "strict w=3");
                eprintln!("strict w=3, owners {:?}: {e}", placed.replicas);
            });
            scope.spawn(move || {
                let begun = Instant::now();
                let result = client.get_with(key, all_three.strict());
                let e = server_error(result, "strict r=3 with an owner down");
                assert_quorum_not_reached(&e, 3, begun.elapsed(), "strict r=3");
            });
        }
        // The command line passes the same options through.
        let cluster = &cluster;
        let key = std::str::from_utf8(&replicated[0].key).unwrap();
        scope.spawn(move || {
            let (code, stderr) =
                cluster.cli(COORDINATOR, &["put", key, "cli", "--w", "3", "--strict"]);
            assert_eq!(code, Some(2), "tessera put --w 3 --strict: {stderr}");
            assert!(stderr.contains("quorum not reached"), "{stderr}");
            let (code, stderr) = cluster.cli(COORDINATOR, &["get", key, "--r", "3", "--strict"]);
            assert_eq!(code, Some(2), "tessera get --r 3 --strict: {stderr}");
            assert!(stderr.contains("quorum not reached"), "{stderr}");
            let (code, stderr) = cluster.cli(COORDINATOR, &["put", key, "cli", "--w", "3"]);
            assert_eq!(code, Some(0), "tessera put --w 3 (sloppy): {stderr}");
            let (code, stderr) = cluster.cli(COORDINATOR, &["del", key, "--w", "5"]);
            assert_eq!(code, Some(2), "tessera del --w 5: {stderr}");
            assert!(stderr.contains("at most 3"), "{stderr}");
            eprintln!("tessera del --w 5: {}", stderr.trim());
        });
    });
    eprintln!(
        "node {stopped} down: {} strict w=3 and r=3 requests (and the same from the command \
         line) failed with QuorumNotReached in {:.1}s",
        2 * replicated.len(),
        start.elapsed().as_secs_f64()
    );
    assert_too_many_refused(
        &client,
        &replicated[0].key,
        status.replicas,
        &format!("node {stopped} down"),
    );

    // Resume the stopped node: the hints reach it, and strict r = w = 3 work again.
    drop(resume);
    let took = cluster
        .wait_seen(COORDINATOR, stopped, true, DETECT_WITHIN)
        .unwrap_or_else(|| panic!("node {COORDINATOR} did not see node {stopped} resume"));
    eprintln!("node {COORDINATOR} saw node {stopped} up again after {took:?}");
    let (drained, held) = cluster.wait_hints_drained(HINTS_DRAIN_WITHIN);
    assert!(drained, "hints not handed off: {held:?}");
    let start = Instant::now();
    let deadline = start + NODE_QUORUM_DEADLINE * 3;
    for placed in &replicated {
        // Its links may take a moment to come back; retry a bounded number of times.
        loop {
            match client.put_with(&placed.key, b"strict again", None, all_three.strict()) {
                Ok(_) => break,
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("strict w=3 after node {stopped} resumed: {e}"),
            }
        }
        let read = client.get_with(&placed.key, all_three.strict()).unwrap();
        assert!(read.values.contains(&b"strict again".to_vec()));
    }
    eprintln!(
        "node {stopped} resumed: strict w=3 and r=3 succeed again ({:.2}s)",
        start.elapsed().as_secs_f64()
    );
    drop(client);
    cluster.stop_cleanly();
}
