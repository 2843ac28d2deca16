//! msgpack encoding of [`Value`], byte-compatible with notepack.io 3 and @msgpack/msgpack.
//!
//! Encoder: smallest integer and string headers, floats as float64 (integral numbers as integers,
//! like JS encoders), binary as `bin`, dates as timestamp extension -1.
//! Decoder: accepts every msgpack type (map16/array16 for small sizes, float32, legacy `d4 00 00`
//! undefined), enforces [`Limits`] and never allocates more than the input could hold.

use bytes::Bytes;

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

/// Appends the msgpack encoding of `value` to `out`.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Nil => out.push(0xc0),
        Value::Bool(false) => out.push(0xc2),
        Value::Bool(true) => out.push(0xc3),
        Value::Int(i) => write_int(out, *i),
        Value::UInt(u) => write_uint(out, *u),
        Value::Float(f) => write_float(out, *f),
        Value::Str(s) => write_str(out, s),
        Value::Bin(b) => write_bin(out, b),
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
            write_ext_header(out, data.len(), *ty);
            out.extend_from_slice(data);
        }
    }
}

pub(crate) fn write_int(out: &mut Vec<u8>, i: i64) {
    if i >= 0 {
        write_uint(out, i as u64);
    } else if i >= -32 {
        out.push(i as u8);
    } else if i >= i64::from(i8::MIN) {
        out.push(0xd0);
        out.push(i as u8);
    } else if i >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

pub(crate) fn write_uint(out: &mut Vec<u8>, u: u64) {
    if u < 128 {
        out.push(u as u8);
    } else if u < 256 {
        out.extend_from_slice(&[0xcc, u as u8]);
    } else if u < 65_536 {
        out.push(0xcd);
        out.extend_from_slice(&(u as u16).to_be_bytes());
    } else if u < 4_294_967_296 {
        out.push(0xce);
        out.extend_from_slice(&(u as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&u.to_be_bytes());
    }
}

fn write_float(out: &mut Vec<u8>, f: f64) {
    // JS encoders write integral numbers as integers (notepack: `Math.floor(x) === x`).
    if f.fract() == 0.0 && f.is_finite() {
        if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
            return write_uint(out, f as u64);
        }
        if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
            return write_int(out, f as i64);
        }
    }
    out.push(0xcb);
    out.extend_from_slice(&f.to_be_bytes());
}

pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    let len = s.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len < 256 {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len < 65_536 {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn write_bin(out: &mut Vec<u8>, b: &[u8]) {
    let len = b.len();
    if len < 256 {
        out.extend_from_slice(&[0xc4, len as u8]);
    } else if len < 65_536 {
        out.push(0xc5);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

pub(crate) fn write_array_len(out: &mut Vec<u8>, len: usize) {
    if len < 16 {
        out.push(0x90 | len as u8);
    } else if len < 65_536 {
        out.push(0xdc);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

pub(crate) fn write_map_len(out: &mut Vec<u8>, len: usize) {
    if len < 16 {
        out.push(0x80 | len as u8);
    } else if len < 65_536 {
        out.push(0xde);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn write_ext_header(out: &mut Vec<u8>, len: usize, ty: i8) {
    match len {
        1 => out.push(0xd4),
        2 => out.push(0xd5),
        4 => out.push(0xd6),
        8 => out.push(0xd7),
        16 => out.push(0xd8),
        l if l < 256 => out.extend_from_slice(&[0xc7, l as u8]),
        l if l < 65_536 => {
            out.push(0xc8);
            out.extend_from_slice(&(l as u16).to_be_bytes());
        }
        l => {
            out.push(0xc9);
            out.extend_from_slice(&(l as u32).to_be_bytes());
        }
    }
    out.push(ty as u8);
}

fn write_timestamp(out: &mut Vec<u8>, ts: Timestamp) {
    if ts.secs >= 0 && ts.secs >> 34 == 0 {
        if ts.nanos == 0 && ts.secs <= i64::from(u32::MAX) {
            write_ext_header(out, 4, -1);
            out.extend_from_slice(&(ts.secs as u32).to_be_bytes());
        } else {
            write_ext_header(out, 8, -1);
            let v = (u64::from(ts.nanos) << 34) | ts.secs as u64;
            out.extend_from_slice(&v.to_be_bytes());
        }
    } else {
        write_ext_header(out, 12, -1);
        out.extend_from_slice(&ts.nanos.to_be_bytes());
        out.extend_from_slice(&ts.secs.to_be_bytes());
    }
}

/// Decodes exactly one msgpack value from `bytes`.
pub fn from_slice(bytes: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
    limits.check_size(bytes.len())?;
    let mut reader = Reader {
        buf: bytes,
        pos: 0,
        max_depth: limits.max_depth,
    };
    let value = reader.value(0)?;
    match bytes.len() - reader.pos {
        0 => Ok(value),
        n => Err(DecodeError::TrailingBytes(n)),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn len8(&mut self) -> Result<usize, DecodeError> {
        Ok(usize::from(self.u8()?))
    }
    fn len16(&mut self) -> Result<usize, DecodeError> {
        Ok(usize::from(u16::from_be_bytes(self.be()?)))
    }
    fn len32(&mut self) -> Result<usize, DecodeError> {
        Ok(u32::from_be_bytes(self.be()?) as usize)
    }

    /// Every item takes at least one byte: a length above what is left is a lie.
    fn check_items(&self, n: usize) -> Result<(), DecodeError> {
        if n > self.buf.len() - self.pos {
            Err(DecodeError::Truncated)
        } else {
            Ok(())
        }
    }

    fn str(&mut self, len: usize) -> Result<String, DecodeError> {
        let b = self.take(len)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let m = self.u8()?;
        Ok(match m {
            0x00..=0x7f => Value::Int(i64::from(m)),
            0x80..=0x8f => self.map(usize::from(m & 0x0f), depth)?,
            0x90..=0x9f => self.array(usize::from(m & 0x0f), depth)?,
            0xa0..=0xbf => Value::Str(self.str(usize::from(m & 0x1f))?),
            0xc0 => Value::Nil,
            0xc1 => return Err(DecodeError::InvalidMarker(m)),
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 => {
                let n = self.len8()?;
                self.bin(n)?
            }
            0xc5 => {
                let n = self.len16()?;
                self.bin(n)?
            }
            0xc6 => {
                let n = self.len32()?;
                self.bin(n)?
            }
            0xc7 => {
                let n = self.len8()?;
                self.ext(n)?
            }
            0xc8 => {
                let n = self.len16()?;
                self.ext(n)?
            }
            0xc9 => {
                let n = self.len32()?;
                self.ext(n)?
            }
            0xca => Value::Float(f64::from(f32::from_be_bytes(self.be()?))),
            0xcb => Value::Float(f64::from_be_bytes(self.be()?)),
            0xcc => Value::Int(i64::from(self.u8()?)),
            0xcd => Value::Int(i64::from(u16::from_be_bytes(self.be()?))),
            0xce => Value::Int(i64::from(u32::from_be_bytes(self.be()?))),
            0xcf => {
                let u = u64::from_be_bytes(self.be()?);
                i64::try_from(u).map_or(Value::UInt(u), Value::Int)
            }
            0xd0 => Value::Int(i64::from(i8::from_be_bytes(self.be()?))),
            0xd1 => Value::Int(i64::from(i16::from_be_bytes(self.be()?))),
            0xd2 => Value::Int(i64::from(i32::from_be_bytes(self.be()?))),
            0xd3 => Value::Int(i64::from_be_bytes(self.be()?)),
            0xd4 => self.ext(1)?,
            0xd5 => self.ext(2)?,
            0xd6 => self.ext(4)?,
            0xd7 => self.ext(8)?,
            0xd8 => self.ext(16)?,
            0xd9 => {
                let n = self.len8()?;
                Value::Str(self.str(n)?)
            }
            0xda => {
                let n = self.len16()?;
                Value::Str(self.str(n)?)
            }
            0xdb => {
                let n = self.len32()?;
                Value::Str(self.str(n)?)
            }
            0xdc => {
                let n = self.len16()?;
                self.array(n, depth)?
            }
            0xdd => {
                let n = self.len32()?;
                self.array(n, depth)?
            }
            0xde => {
                let n = self.len16()?;
                self.map(n, depth)?
            }
            0xdf => {
                let n = self.len32()?;
                self.map(n, depth)?
            }
            0xe0..=0xff => Value::Int(i64::from(m as i8)),
        })
    }

    fn bin(&mut self, len: usize) -> Result<Value, DecodeError> {
        Ok(Value::Bin(Bytes::copy_from_slice(self.take(len)?)))
    }

    fn ext(&mut self, len: usize) -> Result<Value, DecodeError> {
        let ty = self.u8()? as i8;
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
            let value = self.value(depth)?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
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
}
