//! Kubernetes resource quantities: CPU and memory typed so that profiles can compute with them
//! (overcommit ratios, "requests never above limits") and the values schema can reject malformed
//! strings, and [`amount`] for any quantity a rendered object may hold (`1G`, `1.5`, `2e3`).

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a quantity string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The CPU string is not `<n>m` or a decimal number of cores.
    #[error("invalid CPU quantity {0:?}: expected millicores like \"500m\" or cores like \"2\"")]
    Cpu(String),
    /// The memory string is not `<n>` followed by Ki, Mi, Gi or Ti.
    #[error("invalid memory quantity {0:?}: expected a size like \"512Mi\" or \"4Gi\"")]
    Memory(String),
}

/// A CPU amount in millicores, written as Kubernetes writes it (`500m`, `2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cpu(u64);

impl Cpu {
    /// A CPU amount of `m` millicores.
    pub const fn millis(m: u64) -> Self {
        Self(m)
    }

    /// The amount in millicores.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// This amount divided by `ratio` (at least 1m), for overcommitted requests.
    pub fn divided_by(self, ratio: f64) -> Self {
        Self(((self.0 as f64 / ratio).round() as u64).max(1))
    }

    /// Parses `500m`, `2`, `0.5`.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let err = || QuantityError::Cpu(s.to_string());
        if let Some(m) = s.strip_suffix('m') {
            return m.parse::<u64>().map(Self).map_err(|_| err());
        }
        let cores: f64 = s.parse().map_err(|_| err())?;
        if !(cores.is_finite() && cores >= 0.0) || s.starts_with('+') {
            return Err(err());
        }
        Ok(Self((cores * 1000.0).round() as u64))
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

/// Kubernetes' binary suffixes and their factors, largest first.
const BINARY: [(&str, u64); 6] = [
    ("Ei", 1 << 60),
    ("Pi", 1 << 50),
    ("Ti", 1 << 40),
    ("Gi", 1 << 30),
    ("Mi", 1 << 20),
    ("Ki", 1 << 10),
];

/// The suffixes the values accept for sizes (the schema's pattern): Ki to Ti.
const UNITS: &[(&str, u64)] = BINARY.split_at(2).1;

/// Kubernetes' decimal suffixes and their powers of ten.
const DECIMAL: [(&str, i32); 9] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

/// Any quantity's value in base units (`512Mi`, `1G`, `250m`, `2e3`), or `None` when it is not a
/// valid quantity. For comparing amounts written differently, where the typed [`Cpu`] and
/// [`Memory`] are too strict (rendered objects may carry any form Kubernetes accepts).
pub fn amount(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let binary = BINARY
        .iter()
        .find(|(s, _)| *s == suffix)
        .map(|(_, f)| *f as f64);
    let decimal = || {
        let power = match DECIMAL.iter().find(|(s, _)| *s == suffix) {
            Some((_, power)) => *power,
            None if suffix.is_empty() => 0,
            None => suffix.strip_prefix(['e', 'E'])?.parse().ok()?,
        };
        Some(10f64.powi(power))
    };
    Some(number * binary.or_else(decimal)?)
}

/// Whether two quantities are the same amount (string equality when either does not parse).
pub fn same_amount(a: &str, b: &str) -> bool {
    match (amount(a), amount(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()),
        _ => a == b,
    }
}

/// A memory (or storage) size in bytes, written with binary suffixes (`512Mi`, `4Gi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Memory(u64);

impl Memory {
    /// `n` mebibytes.
    pub const fn mi(n: u64) -> Self {
        Self(n << 20)
    }

    /// `n` gibibytes.
    pub const fn gi(n: u64) -> Self {
        Self(n << 30)
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// This size divided by `ratio`, rounded down to whole mebibytes (at least 1Mi).
    pub fn divided_by(self, ratio: f64) -> Self {
        let mib = ((self.0 >> 20) as f64 / ratio).floor() as u64;
        Self::mi(mib.max(1))
    }

    /// Parses `512Mi`, `4Gi`, `1073741824`.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let err = || QuantityError::Memory(s.to_string());
        let (digits, factor) = UNITS
            .iter()
            .find_map(|(suffix, factor)| s.strip_suffix(suffix).map(|d| (d, *factor)))
            .unwrap_or((s, 1));
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let n: u64 = digits.parse().map_err(|_| err())?;
        n.checked_mul(factor).map(Self).ok_or_else(err)
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &(suffix, factor) in UNITS {
            if self.0 >= factor && self.0.is_multiple_of(factor) {
                return write!(f, "{}{suffix}", self.0 / factor);
            }
        }
        write!(f, "{}", self.0)
    }
}

macro_rules! string_quantity {
    ($ty:ident, $pattern:expr, $desc:expr, $example:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $ty::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                stringify!($ty).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "pattern": $pattern,
                    "description": $desc,
                    "examples": [$example]
                })
            }
        }
    };
}

string_quantity!(
    Cpu,
    "^([0-9]+m|[0-9]+(\\.[0-9]+)?)$",
    "CPU: millicores (\"500m\") or cores (\"2\").",
    "500m"
);
string_quantity!(
    Memory,
    "^[0-9]+(Ki|Mi|Gi|Ti)?$",
    "Size with a binary suffix: \"512Mi\", \"4Gi\", \"100Gi\".",
    "512Mi"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_round_trips_and_divides() {
        assert_eq!(Cpu::parse("500m").unwrap(), Cpu::millis(500));
        assert_eq!(Cpu::parse("2").unwrap().to_string(), "2");
        assert_eq!(Cpu::parse("0.25").unwrap().to_string(), "250m");
        assert_eq!(Cpu::millis(2000).divided_by(4.0).to_string(), "500m");
        assert!(Cpu::parse("two").is_err());
        assert!(Cpu::parse("-1").is_err());
    }

    #[test]
    fn memory_round_trips_and_divides() {
        assert_eq!(Memory::parse("4Gi").unwrap(), Memory::gi(4));
        assert_eq!(Memory::gi(4).to_string(), "4Gi");
        assert_eq!(Memory::mi(1536).to_string(), "1536Mi");
        assert_eq!(Memory::gi(4).divided_by(2.0).to_string(), "2Gi");
        assert_eq!(Memory::gi(1).divided_by(3.0).to_string(), "341Mi");
        assert!(Memory::parse("4GB").is_err());
        assert!(Memory::parse("Gi").is_err());
    }

    #[test]
    fn any_quantity_has_an_amount() {
        assert_eq!(amount("512Mi"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(amount("1G"), Some(1e9));
        assert_eq!(amount("250m"), Some(0.25));
        assert_eq!(amount("2e3"), Some(2000.0));
        assert_eq!(amount("3"), Some(3.0));
        assert_eq!(amount("1Ei"), Some(2f64.powi(60)));
        assert_eq!(amount("lots"), None);
        assert_eq!(amount("1Gb"), None);
        assert!(same_amount("1Gi", "1024Mi"));
        assert!(!same_amount("1G", "1Gi"));
    }

    #[test]
    fn bad_quantity_in_yaml_names_the_expectation() {
        let err = serde_json::from_str::<Memory>("\"lots\"").unwrap_err();
        assert!(err.to_string().contains("expected a size like"), "{err}");
    }
}
