//! JSON encoding of [`Value`] as Node's `JSON.stringify` / `JSON.parse` do it.
//!
//! Binary becomes `{"type":"Buffer","data":[..]}` and dates ISO-8601 strings (lossy, exactly as in
//! Node). The decoder enforces [`Limits`] and can substitute socket.io binary placeholders
//! (`{"_placeholder":true,"num":n}`) with attachments while parsing.

use std::{cell::RefCell, collections::VecDeque, fmt, io::Write as _};

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::{DecodeError, Limits, Timestamp, Value};

/// Encodes a value as JSON text (as bytes).
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_value(&mut out, value, &mut None);
    out
}

/// Encodes a value as socket.io's JSON text with binary placeholders: every binary value becomes
/// `{"_placeholder":true,"num":n}` (depth-first order) and is returned as attachment `n`.
pub fn to_string_with_placeholders(value: &Value) -> (String, VecDeque<Bytes>) {
    with_placeholders(|out, attachments| write_value(out, value, attachments))
}

/// [`to_string_with_placeholders`] of the array `items`, without building the array: the
/// argument list of a socket.io packet (`[event, ...args]`).
pub fn array_to_string_with_placeholders(items: &[Value]) -> (String, VecDeque<Bytes>) {
    with_placeholders(|out, attachments| {
        out.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_value(out, item, attachments);
        }
        out.push(b']');
    })
}

/// The text `write` produces with placeholders, and the attachments it took out.
fn with_placeholders(
    write: impl FnOnce(&mut Vec<u8>, &mut Option<VecDeque<Bytes>>),
) -> (String, VecDeque<Bytes>) {
    let mut out = Vec::with_capacity(64);
    let mut attachments = Some(VecDeque::new());
    write(&mut out, &mut attachments);
    // Only valid UTF-8 is ever written: strings come from `&str`, the rest is ASCII.
    let text = String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    (text, attachments.unwrap_or_default())
}

/// Appends the JSON encoding of `value` to `out`.
pub(crate) fn write_value(
    out: &mut Vec<u8>,
    value: &Value,
    attachments: &mut Option<VecDeque<Bytes>>,
) {
    match value {
        Value::Nil | Value::Ext(..) => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => write_display(out, i),
        Value::UInt(u) => write_display(out, u),
        Value::Float(f) => write_float(out, *f),
        Value::Str(s) => write_str(out, s),
        Value::Bin(b) => match attachments {
            Some(list) => {
                out.extend_from_slice(b"{\"_placeholder\":true,\"num\":");
                write_display(out, &list.len());
                out.push(b'}');
                list.push_back(b.clone());
            }
            None => {
                out.extend_from_slice(b"{\"type\":\"Buffer\",\"data\":[");
                for (i, byte) in b.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_display(out, byte);
                }
                out.extend_from_slice(b"]}");
            }
        },
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item, attachments);
            }
            out.push(b']');
        }
        Value::Map(entries) => {
            out.push(b'{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_value(out, v, attachments);
            }
            out.push(b'}');
        }
        Value::Timestamp(ts) => {
            out.push(b'"');
            write_iso8601(out, *ts);
            out.push(b'"');
        }
    }
}

fn write_display(out: &mut Vec<u8>, v: &dyn fmt::Display) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{v}");
}

fn write_float(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        out.extend_from_slice(b"null");
    } else if f.fract() == 0.0 && f.abs() < 1e21 {
        // JS prints integral numbers below 1e21 without exponent or fraction.
        write_display(out, &(f as i128));
    } else {
        let s = format!("{f:?}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => {
                let _ = write!(out, "{m}e+{e}");
            }
            _ => out.extend_from_slice(s.as_bytes()),
        }
    }
}

pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `Date.prototype.toISOString`: `1970-01-01T00:00:00.000Z`.
fn write_iso8601(out: &mut Vec<u8>, ts: Timestamp) {
    let ms = ts.as_millis();
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = crate::value::civil_from_days(days);
    let (h, min, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    if (0..=9999).contains(&y) {
        let _ = write!(out, "{y:04}");
    } else {
        let _ = write!(out, "{}{:06}", if y < 0 { '-' } else { '+' }, y.abs());
    }
    let _ = write!(out, "-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z");
}

/// Decodes JSON text into a value.
pub fn from_slice(bytes: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
    decode(bytes, limits, None)
}

/// Decodes socket.io JSON text, replacing each `{"_placeholder":true,"num":n}` by attachment `n`.
pub fn from_str_with_attachments(
    text: &str,
    attachments: &[Bytes],
    limits: &Limits,
) -> Result<Value, DecodeError> {
    decode(text.as_bytes(), limits, Some(attachments))
}

fn decode(
    bytes: &[u8],
    limits: &Limits,
    attachments: Option<&[Bytes]>,
) -> Result<Value, DecodeError> {
    limits.check_size(bytes.len())?;
    let failure = RefCell::new(None);
    let ctx = Ctx {
        max_depth: limits.max_depth,
        attachments,
        failure: &failure,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = Seed {
        ctx: &ctx,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    result.map_err(|e| failure.into_inner().unwrap_or(DecodeError::Json(e)))
}

struct Ctx<'a> {
    max_depth: usize,
    attachments: Option<&'a [Bytes]>,
    failure: &'a RefCell<Option<DecodeError>>,
}

impl Ctx<'_> {
    fn fail<E: de::Error>(&self, e: DecodeError) -> E {
        let msg = e.to_string();
        *self.failure.borrow_mut() = Some(e);
        E::custom(msg)
    }
}

#[derive(Clone, Copy)]
struct Seed<'c, 'a> {
    ctx: &'c Ctx<'a>,
    depth: usize,
}

impl Seed<'_, '_> {
    fn nested<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= self.ctx.max_depth {
            Err(self.ctx.fail(DecodeError::TooDeep {
                max: self.ctx.max_depth,
            }))
        } else {
            Ok(Seed {
                ctx: self.ctx,
                depth: self.depth + 1,
            })
        }
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn number_from_f64(f: f64) -> Value {
    // JSON.parse("1.0") is the integer 1.
    if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_775e18 {
        Value::Int(f as i64)
    } else {
        Value::Float(f)
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::UInt(v), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(number_from_f64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut entries: Vec<(String, Value)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(inner)?;
            entries.push((key, value));
        }
        // a key given twice keeps its first place and its last value, as `JSON.parse` does
        let value = Value::object(entries);
        if let Some(attachments) = self.ctx.attachments
            && value.get("_placeholder") == Some(&Value::Bool(true))
        {
            let num = value.get("num").and_then(Value::as_i64).unwrap_or(-1);
            return usize::try_from(num)
                .ok()
                .and_then(|n| attachments.get(n))
                .map(|b| Value::Bin(b.clone()))
                .ok_or_else(|| {
                    self.ctx.fail(DecodeError::Placeholder {
                        num,
                        count: attachments.len(),
                    })
                });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map;

    #[test]
    fn a_duplicated_key_keeps_its_place_and_the_last_value() {
        // JSON.parse('{"a":1,"b":2,"a":3}') is {a: 3, b: 2}
        let v = from_slice(br#"{"a":1,"b":2,"a":3}"#, &Limits::DEFAULT);
        assert_eq!(v.ok(), Some(map![("a", 3i64), ("b", 2i64)]));
    }

    fn text(v: &Value) -> String {
        String::from_utf8_lossy(&to_vec(v)).into_owned()
    }

    #[test]
    fn stringifies_like_node() {
        let v = map![
            ("s", "a\"b\\c\n\u{1}é"),
            ("n", Value::Nil),
            ("f", Value::Float(1.5)),
            ("i", Value::Float(3.0)),
            ("big", Value::Float(1e300)),
            ("nan", Value::Float(f64::NAN)),
            ("b", Value::Bin(Bytes::from_static(&[1, 2]))),
            ("d", Value::Timestamp(Timestamp::from_millis(0))),
            (
                "d2",
                Value::Timestamp(Timestamp::from_millis(1_700_000_000_123))
            ),
        ];
        assert_eq!(
            text(&v),
            r#"{"s":"a\"b\\c\n\u0001é","n":null,"f":1.5,"i":3,"big":1e+300,"nan":null,"b":{"type":"Buffer","data":[1,2]},"d":"1970-01-01T00:00:00.000Z","d2":"2023-11-14T22:13:20.123Z"}"#
        );
    }

    #[test]
    fn parses_keeping_key_order() {
        let v = from_slice(
            br#"{"z":1,"a":[true,null,1.0,-2,"x"],"m":{}}"#,
            &Limits::DEFAULT,
        )
        .ok();
        assert_eq!(
            v,
            Some(map![
                ("z", 1i64),
                (
                    "a",
                    Value::Array(vec![
                        true.into(),
                        Value::Nil,
                        1i64.into(),
                        (-2i64).into(),
                        "x".into()
                    ])
                ),
                ("m", Value::map()),
            ])
        );
    }

    #[test]
    fn placeholders_round_trip() {
        let v = Value::Array(vec![
            "up".into(),
            Value::Bin(Bytes::from_static(&[1, 2, 3])),
            map![("x", Value::Bin(Bytes::from_static(&[4])))],
        ]);
        let (s, att) = to_string_with_placeholders(&v);
        assert_eq!(
            s,
            r#"["up",{"_placeholder":true,"num":0},{"x":{"_placeholder":true,"num":1}}]"#
        );
        assert_eq!(att.len(), 2);
        let att: Vec<Bytes> = att.into();
        assert_eq!(
            from_str_with_attachments(&s, &att, &Limits::DEFAULT).ok(),
            Some(v)
        );
    }

    #[test]
    fn rejects_bad_input() {
        let l = Limits::DEFAULT;
        assert!(matches!(from_slice(b"{", &l), Err(DecodeError::Json(_))));
        assert!(matches!(from_slice(b"1 2", &l), Err(DecodeError::Json(_))));
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(matches!(
            from_slice(deep.as_bytes(), &l),
            Err(DecodeError::TooDeep { max: 64 })
        ));
        let r = from_str_with_attachments(r#"[{"_placeholder":true,"num":3}]"#, &[], &l);
        assert!(matches!(
            r,
            Err(DecodeError::Placeholder { num: 3, count: 0 })
        ));
        let small = Limits { max_size: 2, ..l };
        assert!(matches!(
            from_slice(b"[1]", &small),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
