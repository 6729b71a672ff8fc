//! Properties of the RESP2 codec: hostile bytes never panic or over-read, every encoding parses
//! back to what was encoded, and a stream cut anywhere parses as "wait" or as its whole leading
//! elements.

use proptest::collection::vec;
use proptest::prelude::*;
use tessera_schema::resp::{
    parse_command, parse_reply, write_command, Reply, RespError, RespLimits,
};

const CASES: u32 = 256;

type Command = Vec<Vec<u8>>;

/// Small limits, so that random input reaches the limit checks too.
fn tight_limits() -> RespLimits {
    RespLimits {
        bulk_bytes_max: 64,
        args_max: 8,
        inline_bytes_max: 64,
        depth_max: 3,
    }
}

/// Bytes that are mostly RESP punctuation and digits, so random input gets past the first byte.
fn resp_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(b"*$+-:\r\n0123456789 \"'\\x".to_vec()),
        1 => any::<u8>(),
    ];
    vec(byte, 0..96)
}

fn line_text() -> impl Strategy<Value = Vec<u8>> {
    vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..24,
    )
}

fn reply_tree() -> impl Strategy<Value = Reply> {
    let leaf = prop_oneof![
        line_text().prop_map(Reply::Simple),
        line_text().prop_map(Reply::Error),
        any::<i64>().prop_map(Reply::Integer),
        prop::option::of(vec(any::<u8>(), 0..32)).prop_map(Reply::Bulk),
        Just(Reply::Array(None)),
    ];
    // Depth 4 stays under the default depth_max of 8.
    leaf.prop_recursive(4, 48, 6, |inner| {
        vec(inner, 0..6).prop_map(|items| Reply::Array(Some(items)))
    })
}

fn command_args() -> impl Strategy<Value = Command> {
    vec(vec(any::<u8>(), 0..40), 0..8)
}

fn encode_commands(commands: &[Command]) -> (Vec<u8>, Vec<usize>) {
    let mut wire = Vec::new();
    let mut ends = Vec::new();
    for args in commands {
        let borrowed: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        write_command(&mut wire, &borrowed);
        ends.push(wire.len());
    }
    (wire, ends)
}

fn encode_replies(replies: &[Reply]) -> (Vec<u8>, Vec<usize>) {
    let mut wire = Vec::new();
    let mut ends = Vec::new();
    for reply in replies {
        reply.encode(&mut wire);
        ends.push(wire.len());
    }
    (wire, ends)
}

/// Parses every whole command in `buf`, checking `consumed` on the way; stops at the first
/// `Ok(None)` or error.
fn drain_commands(buf: &[u8], limits: &RespLimits) -> (Vec<Command>, usize, Option<RespError>) {
    let mut commands = Vec::new();
    let mut pos = 0;
    loop {
        match parse_command(&buf[pos..], limits) {
            Ok(Some((args, consumed))) => {
                assert!(consumed > 0, "a whole command consumes bytes");
                assert!(pos + consumed <= buf.len(), "consumed past the buffer");
                assert!(args.len() <= limits.args_max);
                assert!(args
                    .iter()
                    .all(|a| a.len() <= limits.bulk_bytes_max.max(limits.inline_bytes_max)));
                commands.push(args);
                pos += consumed;
            }
            Ok(None) => return (commands, pos, None),
            Err(error) => return (commands, pos, Some(error)),
        }
    }
}

fn drain_replies(buf: &[u8], limits: &RespLimits) -> (Vec<Reply>, usize, Option<RespError>) {
    let mut replies = Vec::new();
    let mut pos = 0;
    loop {
        match parse_reply(&buf[pos..], limits) {
            Ok(Some((reply, consumed))) => {
                assert!(consumed > 0, "a whole reply consumes bytes");
                assert!(pos + consumed <= buf.len(), "consumed past the buffer");
                replies.push(reply);
                pos += consumed;
            }
            Ok(None) => return (replies, pos, None),
            Err(error) => return (replies, pos, Some(error)),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// (1) Arbitrary bytes: no panic, never consumed > len, whatever the limits.
    #[test]
    fn arbitrary_bytes_are_safe(bytes in prop_oneof![vec(any::<u8>(), 0..96), resp_ish_bytes()]) {
        for limits in [RespLimits::default(), tight_limits()] {
            drain_commands(&bytes, &limits);
            drain_replies(&bytes, &limits);
        }
    }

    /// (2a) Replies round-trip, alone and back to back.
    #[test]
    fn replies_round_trip(replies in vec(reply_tree(), 1..4)) {
        let (wire, _) = encode_replies(&replies);
        let (parsed, consumed, error) = drain_replies(&wire, &RespLimits::default());
        prop_assert_eq!(error, None);
        prop_assert_eq!(consumed, wire.len());
        prop_assert_eq!(parsed, replies);
    }

    /// (2b) Commands written with write_command parse back to their arguments.
    #[test]
    fn commands_round_trip(commands in vec(command_args(), 1..4)) {
        let (wire, _) = encode_commands(&commands);
        let (parsed, consumed, error) = drain_commands(&wire, &RespLimits::default());
        prop_assert_eq!(error, None);
        prop_assert_eq!(consumed, wire.len());
        prop_assert_eq!(parsed, commands);
    }

    /// (3) Every strict prefix of a valid command stream yields exactly the commands wholly
    /// inside it, then Ok(None).
    #[test]
    fn command_prefixes_wait(commands in vec(command_args(), 1..4)) {
        let (wire, ends) = encode_commands(&commands);
        for cut in 0..wire.len() {
            let (parsed, consumed, error) = drain_commands(&wire[..cut], &RespLimits::default());
            let whole = ends.iter().filter(|&&end| end <= cut).count();
            prop_assert_eq!(error, None, "cut at {}", cut);
            prop_assert_eq!(&parsed[..], &commands[..whole], "cut at {}", cut);
            prop_assert_eq!(consumed, if whole == 0 { 0 } else { ends[whole - 1] });
        }
    }

    /// (3) The same for replies.
    #[test]
    fn reply_prefixes_wait(replies in vec(reply_tree(), 1..4)) {
        let (wire, ends) = encode_replies(&replies);
        for cut in 0..wire.len() {
            let (parsed, consumed, error) = drain_replies(&wire[..cut], &RespLimits::default());
            let whole = ends.iter().filter(|&&end| end <= cut).count();
            prop_assert_eq!(error, None, "cut at {}", cut);
            prop_assert_eq!(&parsed[..], &replies[..whole], "cut at {}", cut);
            prop_assert_eq!(consumed, if whole == 0 { 0 } else { ends[whole - 1] });
        }
    }

    /// (4) One mutated byte in a valid stream: Ok or Err, never a panic or an over-read.
    #[test]
    fn mutated_streams_are_safe(
        commands in vec(command_args(), 1..3),
        replies in vec(reply_tree(), 1..3),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let (mut command_wire, _) = encode_commands(&commands);
        let i = at.index(command_wire.len());
        command_wire[i] = byte;
        let (mut reply_wire, _) = encode_replies(&replies);
        let j = at.index(reply_wire.len());
        reply_wire[j] = byte;
        for limits in [RespLimits::default(), tight_limits()] {
            drain_commands(&command_wire, &limits);
            drain_replies(&reply_wire, &limits);
        }
    }

    /// Inline commands: a word quoted the way redis-cli quotes it comes back unchanged.
    #[test]
    fn quoted_inline_words_round_trip(words in vec(vec(any::<u8>(), 0..16), 1..6)) {
        let mut line = Vec::new();
        for word in &words {
            line.push(b'"');
            for &b in word {
                match b {
                    b'"' | b'\\' => line.extend_from_slice(&[b'\\', b]),
                    b' '..=b'~' => line.push(b),
                    _ => line.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
                }
            }
            line.extend_from_slice(b"\" ");
        }
        line.extend_from_slice(b"\r\n");
        let parsed = parse_command(&line, &RespLimits::default());
        prop_assert_eq!(parsed, Ok(Some((words, line.len()))));
    }
}
