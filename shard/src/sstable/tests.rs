//! Whole-table tests: builder and reader against a `BTreeMap` model, and single-bit
//! corruption of every section.

use std::collections::BTreeMap;
use std::ops::Range;

use proptest::prelude::*;

use super::format::{to_archive, BlockHandle, Footer, IndexSection, Section, FOOTER_LEN};
use super::{SstError, Table, TableBuilder, TableOptions};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn build(model: &Model, block_bytes_target: usize) -> Vec<u8> {
    let mut builder = TableBuilder::new(TableOptions {
        block_bytes_target,
        ..TableOptions::default()
    });
    for (k, v) in model {
        builder.add(k, v).unwrap();
    }
    builder.finish().unwrap()
}

/// The model's entries in `[start, end)`, tolerating `start > end`.
fn model_range(model: &Model, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
    model
        .iter()
        .filter(|(k, _)| k.as_slice() >= start && end.is_none_or(|e| k.as_slice() < e))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn table_range(table: &Table<'_>, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
    table.range(start, end).collect::<Result<_, _>>().unwrap()
}

fn entries() -> impl Strategy<Value = Model> {
    let key = prop::collection::vec(0u8..8, 0..6);
    let value = prop::collection::vec(any::<u8>(), 0..48);
    prop::collection::btree_map(key, value, 0..120)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn matches_a_btreemap(
        model in entries(),
        block_bytes_target in 1usize..600,
        probes in prop::collection::vec(prop::collection::vec(0u8..8, 0..6), 8),
    ) {
        let bytes = build(&model, block_bytes_target);
        let table = Table::open(&bytes).unwrap();
        prop_assert_eq!(table.len(), model.len() as u64);
        for (k, v) in &model {
            prop_assert!(table.may_contain(k));
            prop_assert_eq!(table.get(k).unwrap(), Some(v.clone()));
        }
        for probe in &probes {
            prop_assert_eq!(table.get(probe).unwrap(), model.get(probe).cloned());
        }
        prop_assert_eq!(table_range(&table, &[], None), model_range(&model, &[], None));
        for pair in probes.chunks(2) {
            let (start, end) = (&pair[0][..], &pair[1][..]);
            prop_assert_eq!(table_range(&table, start, Some(end)), model_range(&model, start, Some(end)));
            prop_assert_eq!(table_range(&table, start, None), model_range(&model, start, None));
        }
    }
}

#[test]
fn empty_table_opens_and_is_empty() {
    let bytes = build(&Model::new(), 4096);
    let table = Table::open(&bytes).unwrap();
    assert!(table.is_empty());
    assert_eq!(table.key_range(), None);
    assert_eq!(table.get(b"k").unwrap(), None);
    assert_eq!(table.iter().count(), 0);
}

#[test]
fn partition_range_of_memtable_keys() {
    // token ++ keyspace length ++ keyspace ++ key: a token's keys are one contiguous range.
    let mem_key = |token: u64, key: &[u8]| {
        let mut k = token.to_be_bytes().to_vec();
        k.push(1);
        k.push(b'd');
        k.extend_from_slice(key);
        k
    };
    let mut model = Model::new();
    for token in [5u64, 9, 300] {
        for key in [&b"a"[..], b"b", b"c"] {
            model.insert(mem_key(token, key), vec![token as u8]);
        }
    }
    let bytes = build(&model, 40);
    let table = Table::open(&bytes).unwrap();
    let got = table_range(&table, &9u64.to_be_bytes(), Some(&10u64.to_be_bytes()));
    assert_eq!(got.len(), 3);
    assert!(got
        .iter()
        .all(|(k, v)| k.starts_with(&9u64.to_be_bytes()) && v == &[9]));
    assert_eq!(table.key_range().unwrap().0, &mem_key(5, b"a")[..]);
}

#[test]
fn truncated_tables_are_refused() {
    let model: Model = (0u8..10).map(|i| (vec![i], vec![i; 3])).collect();
    let bytes = build(&model, 32);
    assert!(matches!(
        Table::open(&bytes[..10]),
        Err(SstError::TooShort { .. })
    ));
    for cut in 1..bytes.len() {
        assert!(
            Table::open(&bytes[..bytes.len() - cut]).is_err(),
            "cut {cut}"
        );
        assert!(Table::open(&bytes[cut..]).is_err(), "cut front {cut}");
    }
}

/// The byte ranges of each section of a table.
fn sections(bytes: &[u8]) -> Vec<(&'static str, Range<usize>)> {
    let footer = Footer::decode(bytes).unwrap();
    let range = |s: Section| s.offset as usize..(s.offset + s.len) as usize;
    vec![
        ("data", 0..footer.index.offset as usize),
        ("index", range(footer.index)),
        ("meta", range(footer.meta)),
        ("bloom", range(footer.bloom)),
        ("footer", bytes.len() - FOOTER_LEN..bytes.len()),
    ]
}

/// Everything a reader can return from `bytes` agrees with `model` or is an error.
fn check_never_wrong(bytes: &[u8], model: &Model, absent: &[Vec<u8>]) {
    let Ok(table) = Table::open(bytes) else {
        return;
    };
    assert_eq!(table.len(), model.len() as u64);
    for (k, v) in model {
        match table.get(k) {
            Ok(got) => assert_eq!(got.as_ref(), Some(v)),
            Err(SstError::Corrupt { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    for k in absent {
        assert!(matches!(
            table.get(k),
            Ok(None) | Err(SstError::Corrupt { .. })
        ));
    }
    let expected = model_range(model, &[], None);
    let mut n = 0;
    for item in table.iter() {
        match item {
            Ok(entry) => assert_eq!(entry, expected[n]),
            Err(SstError::Corrupt { .. }) => return,
            Err(e) => panic!("unexpected error {e}"),
        }
        n += 1;
    }
    assert_eq!(n, expected.len(), "a scan ended early without an error");
}

#[test]
fn a_flipped_bit_in_any_section_is_an_error_or_harmless() {
    let model: Model = (0u8..24)
        .map(|i| (vec![b'k', i], format!("value {i} value {i}").into_bytes()))
        .collect();
    let absent: Vec<Vec<u8>> = (0u8..4).map(|i| vec![b'j', i]).collect();
    let bytes = build(&model, 96);
    check_never_wrong(&bytes, &model, &absent);
    for (what, range) in sections(&bytes) {
        assert!(!range.is_empty(), "{what} is empty");
        // The table is small enough (about 1 KiB) to flip every bit of every section.
        for bit in range.start * 8..range.end * 8 {
            let mut corrupt = bytes.clone();
            corrupt[bit / 8] ^= 1 << (bit % 8);
            check_never_wrong(&corrupt, &model, &absent);
        }
    }
}

/// `bytes` with its index section replaced by `index` (checksums and footer recomputed), so
/// the reader's structural checks are reached behind a valid CRC.
fn with_index(bytes: &[u8], index: &IndexSection) -> Vec<u8> {
    let footer = Footer::decode(bytes).unwrap();
    let index = to_archive(index, "index").unwrap();
    let section = |s: Section| &bytes[s.offset as usize..(s.offset + s.len) as usize];
    let mut out = bytes[..footer.index.offset as usize].to_vec();
    let mut append = |part: &[u8]| {
        let s = Section {
            offset: out.len() as u64,
            len: part.len() as u64,
            crc: crc32c::crc32c(part),
        };
        out.extend_from_slice(part);
        s
    };
    let footer = Footer {
        index: append(&index),
        meta: append(section(footer.meta)),
        bloom: append(section(footer.bloom)),
    };
    out.extend_from_slice(&footer.encode());
    out
}

#[test]
fn index_lies_behind_a_valid_checksum_are_refused() {
    // One incompressible block: stored raw, so stored_len == raw_len.
    let model: Model = [(b"a".to_vec(), vec![1, 9, 3]), (b"b".to_vec(), vec![8, 2])].into();
    let bytes = build(&model, 4096);
    let data_len = Footer::decode(&bytes).unwrap().index.offset;
    let handle = BlockHandle {
        last_key: b"b".to_vec(),
        offset: 0,
        stored_len: data_len - 5,
        raw_len: data_len - 5,
    };
    let index = |blocks: Vec<BlockHandle>| with_index(&bytes, &IndexSection { blocks });
    let good = index(vec![handle.clone()]);
    assert_eq!(
        Table::open(&good).unwrap().get(b"a").unwrap(),
        Some(vec![1, 9, 3])
    );
    let lies = [
        BlockHandle {
            offset: 1,
            ..handle.clone()
        },
        BlockHandle {
            offset: u64::MAX,
            ..handle.clone()
        },
        BlockHandle {
            stored_len: u64::MAX - 2,
            ..handle.clone()
        },
        BlockHandle {
            raw_len: u64::MAX,
            ..handle.clone()
        },
        BlockHandle {
            last_key: b"c".to_vec(),
            ..handle.clone()
        },
        BlockHandle {
            last_key: b"a".to_vec(),
            ..handle.clone()
        },
    ];
    for lie in lies {
        let bad = index(vec![lie.clone()]);
        assert!(
            matches!(Table::open(&bad), Err(SstError::Corrupt { .. })),
            "{lie:?}"
        );
    }
    let unordered = index(vec![handle.clone(), handle.clone()]);
    assert!(matches!(
        Table::open(&unordered),
        Err(SstError::Corrupt { .. })
    ));
}

#[test]
fn absent_keys_are_mostly_answered_by_the_bloom_filter() {
    let model: Model = (0u32..1000)
        .map(|i| (i.to_be_bytes().to_vec(), vec![0]))
        .collect();
    let bytes = build(&model, 4096);
    let table = Table::open(&bytes).unwrap();
    let false_pos = (1000u32..11_000)
        .filter(|i| table.may_contain(&i.to_be_bytes()))
        .count();
    assert!(false_pos < 300, "{false_pos} false positives in 10000");
}

#[test]
fn opens_in_place_at_any_alignment() {
    let model: Model = (0u16..50)
        .map(|i| (i.to_be_bytes().to_vec(), vec![1; 9]))
        .collect();
    let bytes = build(&model, 128);
    for shift in 0..8 {
        let mut shifted = vec![0u8; shift];
        shifted.extend_from_slice(&bytes);
        let table = Table::open(&shifted[shift..]).unwrap();
        assert_eq!(table.get(&7u16.to_be_bytes()).unwrap(), Some(vec![1; 9]));
        assert_eq!(table.iter().count(), 50);
    }
}

#[test]
fn streaming_blocks_out_gives_the_same_image() {
    let model: Model = (0u16..400)
        .map(|i| (i.to_be_bytes().to_vec(), vec![(i % 7) as u8; 30]))
        .collect();
    let options = TableOptions {
        block_bytes_target: 256,
        ..TableOptions::default()
    };
    let mut whole = TableBuilder::new(options.clone());
    let mut streamed = TableBuilder::new(options);
    let mut image = Vec::new();
    for (k, v) in &model {
        whole.add(k, v).unwrap();
        streamed.add(k, v).unwrap();
        if streamed.ready_bytes() > 0 {
            assert_eq!(streamed.taken_bytes(), image.len() as u64);
            image.extend(streamed.take_ready());
        }
    }
    assert!(streamed.taken_bytes() > 0, "blocks were streamed");
    image.extend(streamed.finish().unwrap());
    assert_eq!(image, whole.finish().unwrap());
}
