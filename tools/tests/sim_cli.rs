//! `tessera sim` end to end: passing seeds exit 0 with a summary; a canary exits 1 and prints
//! the failing seed with the command that replays it, and the replay fails the same way.

use std::process::Command;

fn sim(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("sim")
        .args(args)
        .output()
        .expect("run tessera sim");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn passing_seeds_exit_zero_and_a_canary_prints_its_replay_command() {
    let (code, text) = sim(&["--seeds", "3", "--workload", "register"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("3 seeds passed"), "{text}");

    let (code, text) = sim(&["--seeds", "5", "--canary", "lww"]);
    assert_eq!(code, 1, "the lww canary must fail: {text}");
    assert!(text.contains("lost acknowledged adds"), "{text}");
    let replay = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("tessera sim "))
        .expect("a replay command")
        .to_string();
    let replay_args: Vec<&str> = replay.split_whitespace().collect();
    let (again, again_text) = sim(&replay_args);
    assert_eq!(again, 1);
    let hash = |t: &str| t.lines().next().map(str::to_string);
    assert_eq!(
        hash(&text),
        hash(&again_text),
        "the replay must fail identically"
    );
}
