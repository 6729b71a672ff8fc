//! The memory budget: TOML forms, validation, and the split among shards.

use super::*;

fn from_toml(text: &str) -> Result<NodeConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.toml");
    std::fs::write(&path, text).unwrap();
    NodeConfig::from_file(&path)
}

#[test]
fn the_default_budget_is_a_gibibyte_or_64_mib_per_shard() {
    let c = NodeConfig::default();
    let expected = (1u64 << 30).max(u64::from(c.shards) * (64 << 20));
    assert_eq!(c.memory_budget_bytes, expected);
    c.validate().unwrap();
}

#[test]
fn the_budget_reads_as_a_size_string_or_bytes() {
    for (text, bytes) in [
        ("memory_budget = \"64MiB\"", 64 << 20),
        ("memory_budget = \"1GiB\"", 1 << 30),
        ("memory_budget = \"512MB\"", 512_000_000),
        ("memory_budget = 100000000", 100_000_000),
    ] {
        let c = from_toml(text).unwrap();
        assert_eq!(c.memory_budget_bytes, bytes, "{text}");
    }
}

#[test]
fn a_bad_budget_in_the_file_names_the_key_and_the_fix() {
    for (text, expected) in [
        ("memory_budget = \"1.5GiB\"", "1536MiB"),
        ("memory_budget = \"64mb\"", "unknown unit `mb`"),
        ("memory_budget = -5", "negative"),
        ("memory_budget = true", "a size such as"),
        ("memory_budget = \"99999999TiB\"", "too large"),
    ] {
        let err = from_toml(text).unwrap_err().to_string();
        assert!(
            err.contains("memory_budget") && err.contains(expected),
            "{text}: {err}"
        );
    }
}

#[test]
fn every_size_survives_a_toml_round_trip() {
    for bytes in [
        16u64 << 20,
        64 << 20,
        1 << 30,
        3 << 40,
        512_000_000,
        123_456_789,
    ] {
        let text = format!("memory_budget = \"{}\"", size::format_size(bytes));
        assert_eq!(
            from_toml(&text).unwrap().memory_budget_bytes,
            bytes,
            "{text}"
        );
    }
}

#[test]
fn a_budget_under_the_per_shard_minimum_is_refused_with_the_minimum() {
    let mut c = NodeConfig {
        shards: 4,
        memory_budget_bytes: 64 << 20,
        ..NodeConfig::default()
    };
    c.validate().unwrap();
    c.memory_budget_bytes -= 1;
    let err = c.validate().unwrap_err();
    assert!(
        matches!(
            &err,
            ConfigError::Invalid {
                field: "memory_budget",
                ..
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("at least 16MiB per shard (64MiB for 4 shards)"),
        "{message}"
    );
}

#[test]
fn the_budget_is_split_evenly_then_a_quarter_to_memtables() {
    let c = NodeConfig {
        shards: 4,
        memory_budget_bytes: 1 << 30,
        ..NodeConfig::default()
    };
    let share = c.shard_budget();
    assert_eq!(share.memtable_bytes, 64 << 20);
    assert_eq!(share.cache_bytes, 192 << 20);
    let total = u64::from(c.shards) * (share.memtable_bytes + share.cache_bytes);
    assert!(total <= c.memory_budget_bytes);
}

#[test]
fn memtable_bytes_max_caps_the_memtable_share_and_the_cache_gets_the_rest() {
    let mut c = NodeConfig {
        shards: 2,
        memory_budget_bytes: 1 << 30,
        memtable_bytes_max: 8 << 20,
        ..NodeConfig::default()
    };
    assert_eq!(
        c.shard_budget(),
        ShardBudget {
            memtable_bytes: 8 << 20,
            cache_bytes: (512 - 8) << 20
        }
    );
    // The default memtable_bytes_max (4 GiB) is above any share here: the share wins.
    c.memtable_bytes_max = MEMTABLE_BYTES_MAX_DEFAULT;
    assert_eq!(c.shard_budget().memtable_bytes, 128 << 20);
}
