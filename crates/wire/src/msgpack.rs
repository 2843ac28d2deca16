//! msgpack encoding of [`Value`], byte-compatible with notepack.io 3 and @msgpack/msgpack
//! (protocol.md §1.4), on `rmp`'s primitives.
//!
//! `rmp` writes and reads each msgpack item in its smallest form; this module adds the rules of
//! the JS encoders on top: integral numbers as integers, floats as float64, binary as `bin`,
//! dates as timestamp extension −1, map keys as strings. The decoder accepts every msgpack type
//! (map16/array16 for small sizes, float32, the legacy `d4 00 00` undefined), keeps the last value
//! of a duplicated map key as JS objects do, enforces [`Limits`], and never allocates more than
//! the input could hold (a declared length is checked against the bytes left before anything is
//! reserved).
//!
//! Cost, measured against the hand-written codec it replaced (callgrind, 10,000 encodes and
//! decodes of a 64-byte cluster BROADCAST): decode 15.1k instructions per message instead of
//! 13.7k, encode 12.7k instead of 11.5k (+10 %, mostly `rmp`'s writers going through `io::Write`
//! per item); both are dominated by allocation, and a message costs a server about 12 µs of CPU
//! end to end (docs/benchmarks.md), so the codec's share moves by about 1 %. Kept: one msgpack
//! implementation (`rmp`, also under `rmp-serde`) instead of a second one of our own.

use bytes::Bytes;
use rmp::{
    Marker,
    decode::{self, ValueReadError},
    encode,
};

use crate::{DecodeError, Limits, Timestamp, Value};

/// Encodes a value as msgpack.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_value(&mut out, value);
    out
}

/// Encodes the array `items` as msgpack, without building the array: the argument list of a
/// socket.io packet.
pub fn array_to_vec(items: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_array_len(&mut out, items.len());
    for item in items {
        write_value(&mut out, item);
    }
    out
}

/// `rmp`'s writers return `io::Result`; writing into a `Vec` cannot fail.
fn written<T, E>(_: Result<T, E>) {}

/// Appends the msgpack encoding of `value` to `out`.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Nil => written(encode::write_nil(out)),
        Value::Bool(b) => written(encode::write_bool(out, *b)),
        Value::Int(i) => written(encode::write_sint(out, *i)),
        Value::UInt(u) => written(encode::write_uint(out, *u)),
        Value::Float(f) => write_float(out, *f),
        Value::Str(s) => write_str(out, s),
        Value::Bin(b) => written(encode::write_bin(out, b)),
        Value::Array(items) => {
            write_array_len(out, items.len());
            for item in items {
                write_value(out, item);
            }
        }
        Value::Map(entries) => {
            write_map_len(out, entries.len());
            for (k, v) in entries {
                write_str(out, k);
                write_value(out, v);
            }
        }
        Value::Timestamp(ts) => write_timestamp(out, *ts),
        Value::Ext(ty, data) => {
            written(encode::write_ext_meta(out, data.len() as u32, *ty));
            out.extend_from_slice(data);
        }
    }
}

fn write_float(out: &mut Vec<u8>, f: f64) {
    // JS encoders write integral numbers as integers (notepack: `Math.floor(x) === x`).
    if f.fract() == 0.0 && f.is_finite() {
        if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
            return written(encode::write_uint(out, f as u64));
        }
        if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
            return written(encode::write_sint(out, f as i64));
        }
    }
    written(encode::write_f64(out, f));
}

pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    written(encode::write_str(out, s));
}

pub(crate) fn write_array_len(out: &mut Vec<u8>, len: usize) {
    written(encode::write_array_len(out, len as u32));
}

pub(crate) fn write_map_len(out: &mut Vec<u8>, len: usize) {
    written(encode::write_map_len(out, len as u32));
}

fn write_timestamp(out: &mut Vec<u8>, ts: Timestamp) {
    if ts.secs >= 0 && ts.secs >> 34 == 0 {
        if ts.nanos == 0 && ts.secs <= i64::from(u32::MAX) {
            written(encode::write_ext_meta(out, 4, -1));
            out.extend_from_slice(&(ts.secs as u32).to_be_bytes());
        } else {
            written(encode::write_ext_meta(out, 8, -1));
            let v = (u64::from(ts.nanos) << 34) | ts.secs as u64;
            out.extend_from_slice(&v.to_be_bytes());
        }
    } else {
        written(encode::write_ext_meta(out, 12, -1));
        out.extend_from_slice(&ts.nanos.to_be_bytes());
        out.extend_from_slice(&ts.secs.to_be_bytes());
    }
}

/// Decodes exactly one msgpack value from `bytes`.
pub fn from_slice(bytes: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
    limits.check_size(bytes.len())?;
    let mut reader = Reader {
        rest: bytes,
        max_depth: limits.max_depth,
    };
    let value = reader.value(0)?;
    match reader.rest.len() {
        0 => Ok(value),
        n => Err(DecodeError::TrailingBytes(n)),
    }
}

/// Every `rmp` read error on a slice is running out of input (the marker was checked first).
impl From<ValueReadError<std::io::Error>> for DecodeError {
    fn from(_: ValueReadError<std::io::Error>) -> Self {
        DecodeError::Truncated
    }
}

impl From<decode::NumValueReadError<std::io::Error>> for DecodeError {
    fn from(_: decode::NumValueReadError<std::io::Error>) -> Self {
        DecodeError::Truncated
    }
}

struct Reader<'a> {
    rest: &'a [u8],
    max_depth: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.rest.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Every item takes at least one byte: a length above what is left is a lie.
    fn check_items(&self, n: usize) -> Result<(), DecodeError> {
        if n > self.rest.len() {
            Err(DecodeError::Truncated)
        } else {
            Ok(())
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let first = *self.rest.first().ok_or(DecodeError::Truncated)?;
        let rd = &mut self.rest;
        Ok(match Marker::from_u8(first) {
            Marker::Null => {
                decode::read_nil(rd)?;
                Value::Nil
            }
            Marker::True | Marker::False => Value::Bool(decode::read_bool(rd)?),
            Marker::U64 => {
                let u = decode::read_u64(rd)?;
                i64::try_from(u).map_or(Value::UInt(u), Value::Int)
            }
            Marker::FixPos(_)
            | Marker::FixNeg(_)
            | Marker::U8
            | Marker::U16
            | Marker::U32
            | Marker::I8
            | Marker::I16
            | Marker::I32
            | Marker::I64 => Value::Int(decode::read_int(rd)?),
            Marker::F32 => Value::Float(f64::from(decode::read_f32(rd)?)),
            Marker::F64 => Value::Float(decode::read_f64(rd)?),
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                let len = decode::read_str_len(rd)? as usize;
                let text =
                    std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError::InvalidUtf8)?;
                Value::Str(text.to_owned())
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let len = decode::read_bin_len(rd)? as usize;
                Value::Bin(Bytes::copy_from_slice(self.take(len)?))
            }
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                let len = decode::read_array_len(rd)? as usize;
                self.array(len, depth)?
            }
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                let len = decode::read_map_len(rd)? as usize;
                self.map(len, depth)?
            }
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32 => {
                let meta = decode::read_ext_meta(rd)?;
                self.ext(meta.typeid, meta.size as usize)?
            }
            Marker::Reserved => return Err(DecodeError::InvalidMarker(first)),
        })
    }

    fn ext(&mut self, ty: i8, len: usize) -> Result<Value, DecodeError> {
        let data = self.take(len)?;
        Ok(match (ty, len) {
            (-1, 4) => Value::Timestamp(Timestamp {
                secs: i64::from(u32::from_be_bytes([data[0], data[1], data[2], data[3]])),
                nanos: 0,
            }),
            (-1, 8) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(data);
                let v = u64::from_be_bytes(a);
                Value::Timestamp(Timestamp {
                    secs: (v & 0x3_ffff_ffff) as i64,
                    nanos: (v >> 34) as u32,
                })
            }
            (-1, 12) => {
                let mut n = [0u8; 4];
                n.copy_from_slice(&data[..4]);
                let mut s = [0u8; 8];
                s.copy_from_slice(&data[4..]);
                Value::Timestamp(Timestamp {
                    secs: i64::from_be_bytes(s),
                    nanos: u32::from_be_bytes(n),
                })
            }
            // notepack 2.x / msgpackr `undefined`
            (0, 1) => Value::Nil,
            _ => Value::Ext(ty, Bytes::copy_from_slice(data)),
        })
    }

    fn enter(&self, depth: usize) -> Result<usize, DecodeError> {
        if depth >= self.max_depth {
            Err(DecodeError::TooDeep {
                max: self.max_depth,
            })
        } else {
            Ok(depth + 1)
        }
    }

    fn array(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        let depth = self.enter(depth)?;
        self.check_items(len)?;
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(self.value(depth)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        let depth = self.enter(depth)?;
        self.check_items(len.saturating_mul(2))?;
        let mut entries = Vec::with_capacity(len);
        for _ in 0..len {
            let key = match self.value(depth)? {
                Value::Str(s) => s,
                // JS object keys are strings: notepack turns numeric keys into strings too.
                Value::Int(i) => i.to_string(),
                Value::UInt(u) => u.to_string(),
                other => return Err(DecodeError::InvalidKey(other.kind())),
            };
            entries.push((key, self.value(depth)?));
        }
        Ok(Value::object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn check(value: Value, expected_hex: &str) {
        let bytes = to_vec(&value);
        assert_eq!(hex(&bytes), expected_hex, "encoding of {value:?}");
        assert_eq!(from_slice(&bytes, &Limits::DEFAULT).ok(), Some(value));
    }

    #[test]
    fn encodes_like_notepack() {
        check(Value::Int(500), "cd01f4");
        check(Value::Int(3001), "cd0bb9");
        check(Value::Int(-1), "ff");
        check(Value::Int(-33), "d0df");
        check(Value::Int(1 << 40), "cf0000010000000000");
        check(Value::Float(1.5), "cb3ff8000000000000");
        check(Value::Timestamp(Timestamp::from_millis(0)), "d6ff00000000");
        check(
            Value::Timestamp(Timestamp::from_millis(1_700_000_000_123)),
            "d7ff1d5353006553f100",
        );
        check(map![("a", 1i64)], "81a16101");
        check(Value::Bin(Bytes::from_static(&[1, 2])), "c4020102");
    }

    #[test]
    fn integral_floats_encode_as_integers() {
        assert_eq!(hex(&to_vec(&Value::Float(2.0))), "02");
        assert_eq!(hex(&to_vec(&Value::Float(-40.0))), "d0d8");
    }

    #[test]
    fn accepts_other_encoders_forms() {
        // msgpackr: map16 for one entry, undefined as fixext1 type 0
        let v = from_slice(&[0xde, 0, 1, 0xa1, b'a', 0xd4, 0, 0], &Limits::DEFAULT).ok();
        assert_eq!(v, Some(map![("a", Value::Nil)]));
        // array16 with 1 item, float32
        let v = from_slice(&[0xdc, 0, 1, 0xca, 0x3f, 0xc0, 0, 0], &Limits::DEFAULT).ok();
        assert_eq!(v, Some(Value::Array(vec![Value::Float(1.5)])));
    }

    #[test]
    fn rejects_bad_input_without_allocating() {
        let limits = Limits::DEFAULT;
        // array32 claiming 4 billion items
        assert!(matches!(
            from_slice(&[0xdd, 0xff, 0xff, 0xff, 0xff], &limits),
            Err(DecodeError::Truncated)
        ));
        // bin32 claiming 4 GiB
        assert!(matches!(
            from_slice(&[0xc6, 0xff, 0xff, 0xff, 0xff], &limits),
            Err(DecodeError::Truncated)
        ));
        assert!(matches!(
            from_slice(&[0xc1], &limits),
            Err(DecodeError::InvalidMarker(0xc1))
        ));
        assert!(matches!(
            from_slice(&[0xa1, 0xff], &limits),
            Err(DecodeError::InvalidUtf8)
        ));
        assert!(matches!(
            from_slice(&[0x01, 0x02], &limits),
            Err(DecodeError::TrailingBytes(1))
        ));
        assert!(matches!(
            from_slice(&[], &limits),
            Err(DecodeError::Truncated)
        ));
        let deep = vec![0x91; 100_000];
        assert!(matches!(
            from_slice(&deep, &limits),
            Err(DecodeError::TooDeep { .. })
        ));
        let small = Limits {
            max_size: 4,
            ..limits
        };
        assert!(matches!(
            from_slice(&[0x94, 1, 2, 3, 4], &small),
            Err(DecodeError::TooLarge { .. })
        ));
        // map with an array key
        assert!(matches!(
            from_slice(&[0x81, 0x90, 0x01], &limits),
            Err(DecodeError::InvalidKey("array"))
        ));
    }

    #[test]
    fn a_duplicated_key_keeps_its_place_and_the_last_value() {
        // {a: 1, b: 2, a: 3}, as @msgpack/msgpack and notepack decode it: {a: 3, b: 2}
        let v = from_slice(
            &[0x83, 0xa1, b'a', 1, 0xa1, b'b', 2, 0xa1, b'a', 3],
            &Limits::DEFAULT,
        );
        assert_eq!(v.ok(), Some(map![("a", 3i64), ("b", 2i64)]));
        // the same through the index of a large map
        let mut bytes = vec![0xde, 0, 40];
        for i in 0..39u8 {
            bytes.extend_from_slice(&[0xa2, b'k', b'a' + i % 26, i]);
        }
        bytes.extend_from_slice(&[0xa2, b'k', b'a', 0x7f]);
        let Ok(Value::Map(entries)) = from_slice(&bytes, &Limits::DEFAULT) else {
            panic!("decodes")
        };
        // 26 distinct keys; "ka" last took 127
        assert_eq!(entries.len(), 26);
        assert_eq!(entries[0], ("ka".to_owned(), Value::Int(127)));
    }
}
