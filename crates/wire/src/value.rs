//! The dynamic value carried inside adapter messages: JSON-like, ordered, with real binary.

use bytes::Bytes;

/// A JavaScript-like value as the Node packages put on the wire.
///
/// Maps keep their key order (JS insertion order), so a decoded message re-encodes to the same
/// bytes. Binary stays binary (`Buffer` in Node, msgpack `bin`, BSON Binary).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null` (and `undefined` where the encoding keeps it).
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// An integer above `i64::MAX` (msgpack uint64).
    UInt(u64),
    /// A non-integral number, or one outside the 64-bit integer range.
    Float(f64),
    /// A string.
    Str(String),
    /// Binary data.
    Bin(Bytes),
    /// An array.
    Array(Vec<Value>),
    /// An object, keys in insertion order.
    Map(Vec<(String, Value)>),
    /// A JS `Date` (msgpack timestamp extension -1, BSON datetime), as milliseconds since the epoch
    /// plus the sub-millisecond nanoseconds msgpack can carry.
    Timestamp(Timestamp),
    /// Any other msgpack extension, kept so it re-encodes identically.
    Ext(i8, Bytes),
}

/// A point in time as msgpack's timestamp extension represents it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds within the second (`0..1_000_000_000`).
    pub nanos: u32,
}

impl Timestamp {
    /// A timestamp from milliseconds since the epoch, like a JS `Date`.
    pub fn from_millis(ms: i64) -> Self {
        Self {
            secs: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) as u32) * 1_000_000,
        }
    }

    /// Milliseconds since the epoch (sub-millisecond precision is dropped, as in JS).
    pub fn as_millis(&self) -> i64 {
        self.secs
            .saturating_mul(1000)
            .saturating_add(i64::from(self.nanos / 1_000_000))
    }

    /// JavaScript's `Date.prototype.toString()` in UTC, as a Node server in UTC writes
    /// `handshake.time`: `Wed Dec 02 2026 18:40:05 GMT+0000 (Coordinated Universal Time)`.
    pub fn to_date_string(&self) -> String {
        const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let days = self.secs.div_euclid(86_400);
        let secs = self.secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        format!(
            "{} {} {day:02} {year:04} {:02}:{:02}:{:02} GMT+0000 (Coordinated Universal Time)",
            DAYS[days.rem_euclid(7) as usize],
            MONTHS[(month - 1) as usize],
            secs / 3_600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

/// `(year, month 1-12, day 1-31)` of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl Value {
    /// An empty map.
    pub fn map() -> Self {
        Value::Map(Vec::new())
    }

    /// A map built as a JS object is from these entries: a key given twice keeps its first place
    /// and takes the last value (what `JSON.parse`, notepack and @msgpack/msgpack do).
    pub fn object(entries: Vec<(String, Value)>) -> Self {
        /// Up to this size duplicates are looked for by scanning; larger maps through a set.
        const SCAN: usize = 16;
        let duplicated = if entries.len() <= SCAN {
            (1..entries.len()).any(|i| entries[..i].iter().any(|(k, _)| *k == entries[i].0))
        } else {
            let mut seen = std::collections::HashSet::with_capacity(entries.len());
            !entries.iter().all(|(k, _)| seen.insert(k.as_str()))
        };
        if !duplicated {
            // what every encoder writes: taken as it is, no copy
            return Value::Map(entries);
        }
        let mut out: Vec<(String, Value)> = Vec::with_capacity(entries.len());
        let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (key, value) in entries {
            match index.get(&key) {
                Some(&i) => out[i].1 = value,
                None => {
                    index.insert(key.clone(), out.len());
                    out.push((key, value));
                }
            }
        }
        Value::Map(out)
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one that fits `i64` (integral floats count, as in JS).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::UInt(u) => i64::try_from(u).ok(),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => {
                Some(f as i64)
            }
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The array items, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The entries, if this is a map.
    pub fn as_map(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key`, if this is a map that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map()?
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    /// Whether any nested value is binary (Node's `hasBinary`).
    pub fn has_binary(&self) -> bool {
        match self {
            Value::Bin(_) => true,
            Value::Array(a) => a.iter().any(Value::has_binary),
            Value::Map(m) => m.iter().any(|(_, v)| v.has_binary()),
            _ => false,
        }
    }

    /// A short name of the variant, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) | Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Bin(_) => "binary",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Timestamp(_) => "timestamp",
            Value::Ext(..) => "extension",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<Bytes> for Value {
    fn from(b: Bytes) -> Self {
        Value::Bin(b)
    }
}
impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Self {
        Value::Array(a)
    }
}

/// Builds an ordered map: `map![("a", 1i64), ("b", "x")]`.
#[macro_export]
macro_rules! map {
    ($(($k:expr, $v:expr)),* $(,)?) => {
        $crate::Value::Map(vec![$((::std::string::String::from($k), $crate::Value::from($v))),*])
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_millis_round_trip() {
        for ms in [0, 1, -1, 1_700_000_000_123, -62_135_596_800_000] {
            assert_eq!(Timestamp::from_millis(ms).as_millis(), ms);
        }
    }

    #[test]
    fn dates_read_as_node_writes_them() {
        let date = |ms| Timestamp::from_millis(ms).to_date_string();
        assert_eq!(
            date(0),
            "Thu Jan 01 1970 00:00:00 GMT+0000 (Coordinated Universal Time)"
        );
        // new Date("2026-12-02T18:40:05.999Z").toString() with TZ=UTC
        assert_eq!(
            date(1_796_236_805_999),
            "Wed Dec 02 2026 18:40:05 GMT+0000 (Coordinated Universal Time)"
        );
        assert_eq!(
            date(951_782_400_000),
            "Tue Feb 29 2000 00:00:00 GMT+0000 (Coordinated Universal Time)"
        );
        // before the epoch
        assert_eq!(
            date(-1),
            "Wed Dec 31 1969 23:59:59 GMT+0000 (Coordinated Universal Time)"
        );
    }

    #[test]
    fn has_binary_looks_deep() {
        let v = Value::Array(vec![map![(
            "a",
            Value::Array(vec![Value::Bin(Bytes::from_static(b"x"))])
        )]]);
        assert!(v.has_binary());
        assert!(!map![("a", 1i64)].has_binary());
    }
}
