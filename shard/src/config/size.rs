//! Byte sizes as people write them: `64MiB`, `1GiB`, `512MB`, `4096`.
//!
//! The grammar is strict, so that a typo is an error rather than a surprise: ASCII digits,
//! optional spaces, then one unit from [`UNITS`] (case as written there; none means bytes).
//! No fractions, signs or separators. Binary units (`KiB`, `MiB`, ...) are powers of 1024,
//! decimal ones (`KB`, `MB`, ...) powers of 1000, as in IEC 80000-13.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// Every unit accepted, with its size in bytes.
pub const UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// A size that could not be read; each message says what would work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SizeError {
    /// Nothing but (perhaps) spaces.
    #[error("empty size; write e.g. 64MiB, 1GiB, 512MB or a number of bytes")]
    Empty,
    /// The text does not start with a whole number.
    #[error("`{input}` is not a size; write digits then a unit, e.g. 64MiB")]
    NoNumber {
        /// The text given.
        input: String,
    },
    /// A decimal point.
    #[error("`{input}`: sizes are whole numbers; use a smaller unit (e.g. 1536MiB for 1.5GiB)")]
    Fraction {
        /// The text given.
        input: String,
    },
    /// A unit not in [`UNITS`].
    #[error("unknown unit `{unit}`; use one of B, KB, MB, GB, TB, KiB, MiB, GiB, TiB")]
    UnknownUnit {
        /// The unit given.
        unit: String,
    },
    /// More than `u64::MAX` bytes.
    #[error("`{input}` is too large (at most {} bytes)", u64::MAX)]
    Overflow {
        /// The text given.
        input: String,
    },
}

/// Reads a size such as `64MiB` or `4096` (see the module docs for the grammar).
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    if input.trim().is_empty() {
        return Err(SizeError::Empty);
    }
    let digits_end = input
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(input.len());
    let (digits, rest) = input.split_at(digits_end);
    if rest.starts_with('.') {
        return Err(SizeError::Fraction {
            input: input.into(),
        });
    }
    if digits.is_empty() {
        return Err(SizeError::NoNumber {
            input: input.into(),
        });
    }
    let unit = rest.trim_start_matches(' ');
    let scale = match unit {
        "" => 1,
        _ => unit_bytes(unit).ok_or_else(|| SizeError::UnknownUnit { unit: unit.into() })?,
    };
    let overflow = || SizeError::Overflow {
        input: input.into(),
    };
    let number: u64 = digits.parse().map_err(|_| overflow())?;
    number.checked_mul(scale).ok_or_else(overflow)
}

fn unit_bytes(unit: &str) -> Option<u64> {
    UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|&(_, n)| n)
}

/// The shortest exact spelling of `bytes` that [`parse_size`] reads back: `1GiB`, `512MB`,
/// `1000B`... (the unit with the smallest whole number; binary units win ties).
pub fn format_size(bytes: u64) -> String {
    let mut best = (bytes, "B");
    for &(name, scale) in UNITS.iter().rev() {
        if bytes.is_multiple_of(scale) && bytes / scale < best.0 {
            best = (bytes / scale, name);
        }
    }
    format!("{}{}", best.0, best.1)
}

/// Serde: a size given as a TOML integer (bytes) or a string such as `"64MiB"`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(SizeVisitor)
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as \"64MiB\", \"1GiB\", \"512MB\", or a number of bytes")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("a size cannot be negative ({v})")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_size(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn valid_forms() {
        let cases = [
            ("0", 0),
            ("4096", 4096),
            ("4096B", 4096),
            ("64MiB", 64 << 20),
            ("64 MiB", 64 << 20),
            ("1GiB", 1 << 30),
            ("2TiB", 2 << 40),
            ("8KiB", 8 << 10),
            ("512MB", 512_000_000),
            ("3KB", 3000),
            ("1GB", 1_000_000_000),
            ("007MiB", 7 << 20),
            ("18446744073709551615", u64::MAX),
            ("16777215TiB", 16_777_215 << 40),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn invalid_forms_say_what_would_work() {
        let cases = [
            ("", "empty size"),
            ("   ", "empty size"),
            ("MiB", "not a size"),
            ("-1GiB", "not a size"),
            (" 64MiB", "not a size"),
            ("+64MiB", "not a size"),
            ("1.5GiB", "1536MiB"),
            ("64mib", "unknown unit `mib`"),
            ("64 M", "unknown unit `M`"),
            ("64MiB ", "unknown unit `MiB `"),
            ("1_000", "unknown unit `_000`"),
            ("64MiBs", "unknown unit"),
            ("18446744073709551616", "too large"),
            ("16777216TiB", "too large"),
            ("99999999999999999999999GiB", "too large"),
        ];
        for (text, expected) in cases {
            let message = match parse_size(text) {
                Ok(bytes) => panic!("`{text}` parsed as {bytes}"),
                Err(e) => e.to_string(),
            };
            assert!(message.contains(expected), "`{text}`: {message}");
        }
    }

    #[test]
    fn format_picks_the_shortest_exact_unit() {
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_size(1000), "1KB");
        assert_eq!(format_size(1024), "1KiB");
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(512_000_000), "512MB");
        assert_eq!(format_size(1 << 30), "1GiB");
        assert_eq!(format_size(1500), "1500B");
    }

    proptest! {
        #[test]
        fn format_then_parse_is_the_identity(bytes in any::<u64>(), shift in 0..40u32) {
            for n in [bytes, bytes >> shift << shift] {
                prop_assert_eq!(parse_size(&format_size(n)), Ok(n));
            }
        }
    }
}
