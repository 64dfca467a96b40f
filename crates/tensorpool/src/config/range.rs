//! Inclusive id ranges, written `"a-b"` or `[a, b]` (Driver Model §11, §17).

use std::fmt;
use std::str::FromStr;

/// An inclusive range of ids, `start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct IdRange {
    /// First id.
    pub start: u32,
    /// Last id (inclusive).
    pub end: u32,
}

/// Why a range string is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not a range: {reason} (expected \"start-end\" or [start, end] with start <= end)"
)]
pub struct ParseRangeError {
    input: String,
    reason: &'static str,
}

impl IdRange {
    /// A range; `None` if `start > end`.
    pub fn new(start: u32, end: u32) -> Option<Self> {
        (start <= end).then_some(Self { start, end })
    }

    /// Whether `id` is inside.
    pub fn contains(&self, id: u32) -> bool {
        (self.start..=self.end).contains(&id)
    }

    /// Whether the two ranges share an id.
    pub fn overlaps(&self, other: &IdRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// Number of ids.
    pub fn len(&self) -> u64 {
        u64::from(self.end) - u64::from(self.start) + 1
    }

    /// Always false: a range holds at least one id.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Parses a TOML value: a `"a-b"` string or an `[a, b]` array. An empty string or an empty
    /// array means "unset" (`Ok(None)`).
    pub fn from_toml(v: &toml::Value) -> Result<Option<Self>, ParseRangeError> {
        match v {
            toml::Value::String(s) if s.trim().is_empty() => Ok(None),
            toml::Value::String(s) => s.parse().map(Some),
            toml::Value::Array(a) if a.is_empty() => Ok(None),
            toml::Value::Array(a) => {
                let err = |reason| ParseRangeError {
                    input: v.to_string(),
                    reason,
                };
                let [a, b] = a.as_slice() else {
                    return Err(err("an array range has exactly two elements"));
                };
                let as_u32 = |x: &toml::Value| x.as_integer().and_then(|i| u32::try_from(i).ok());
                let (Some(a), Some(b)) = (as_u32(a), as_u32(b)) else {
                    return Err(err("elements must be integers from 0 to 4294967295"));
                };
                IdRange::new(a, b)
                    .map(Some)
                    .ok_or(err("start is greater than end"))
            }
            _ => Err(ParseRangeError {
                input: v.to_string(),
                reason: "neither a string nor an array",
            }),
        }
    }
}

impl FromStr for IdRange {
    type Err = ParseRangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseRangeError {
            input: s.to_owned(),
            reason,
        };
        let (a, b) = s
            .trim()
            .split_once('-')
            .ok_or(err("no `-` between start and end"))?;
        let a: u32 = a
            .trim()
            .parse()
            .map_err(|_| err("start is not an unsigned 32-bit integer"))?;
        let b: u32 = b
            .trim()
            .parse()
            .map_err(|_| err("end is not an unsigned 32-bit integer"))?;
        IdRange::new(a, b).ok_or(err("start is greater than end"))
    }
}

impl fmt::Display for IdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strings_and_arrays() {
        assert_eq!(
            "20000-29999".parse(),
            Ok(IdRange {
                start: 20000,
                end: 29999
            })
        );
        assert_eq!(" 5 - 5 ".parse(), Ok(IdRange { start: 5, end: 5 }));
        let arr: toml::Value = toml::Value::Array(vec![1.into(), 3.into()]);
        assert_eq!(
            IdRange::from_toml(&arr),
            Ok(Some(IdRange { start: 1, end: 3 }))
        );
        assert_eq!(IdRange::from_toml(&"".into()), Ok(None));
        assert_eq!(IdRange::from_toml(&toml::Value::Array(vec![])), Ok(None));
    }

    #[test]
    fn rejects_bad_ranges() {
        for bad in ["5-1", "a-b", "12", "1-", "-1-2", "1-4294967296"] {
            assert!(bad.parse::<IdRange>().is_err(), "{bad}");
        }
        let three = toml::Value::Array(vec![1.into(), 2.into(), 3.into()]);
        assert!(IdRange::from_toml(&three).is_err());
        assert!(IdRange::from_toml(&toml::Value::Integer(4)).is_err());
    }

    #[test]
    fn overlap_is_inclusive() {
        let a = IdRange { start: 10, end: 20 };
        assert!(a.overlaps(&IdRange { start: 20, end: 30 }));
        assert!(!a.overlaps(&IdRange { start: 21, end: 30 }));
        assert!(a.contains(10) && a.contains(20) && !a.contains(21));
        assert_eq!(a.len(), 11);
    }
}
