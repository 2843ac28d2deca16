//! BSON documents of @socket.io/mongo-adapter and mongo-emitter (protocol.md §5.1):
//! `{type: int32, data, uid, nsp[, createdAt]}`, typed as the Node driver types them.

use bson::{Binary, Bson, DateTime, Document, spec::BinarySubtype};
use bytes::Bytes;

use crate::{ClusterMessage, DecodeError, Dialect, Limits, Timestamp, Value};

/// The document for `message` (mongo dialect), with `createdAt` in TTL mode.
pub fn to_document(message: &ClusterMessage, created_at: Option<Timestamp>) -> Document {
    let mut doc = Document::new();
    if let Value::Map(entries) = message.to_value() {
        for (k, v) in entries {
            doc.insert(k, to_bson(&v));
        }
    }
    if let Some(ts) = created_at {
        doc.insert("createdAt", DateTime::from_millis(ts.as_millis()));
    }
    doc
}

/// Reads a document (mongo dialect); `_id`, `createdAt` and other keys are ignored.
pub fn from_document(doc: &Document, limits: &Limits) -> Result<ClusterMessage, DecodeError> {
    let mut entries = Vec::with_capacity(4);
    for key in ["type", "data", "uid", "nsp"] {
        if let Some(b) = doc.get(key) {
            entries.push((key.to_owned(), from_bson(b, limits.max_depth)?));
        }
    }
    ClusterMessage::from_value(Value::Map(entries), Dialect::Mongo)
}

/// Decodes raw BSON bytes (as read from the wire) into a message.
pub fn from_bson_bytes(bytes: &[u8], limits: &Limits) -> Result<ClusterMessage, DecodeError> {
    limits.check_size(bytes.len())?;
    let doc = Document::from_reader(bytes)?;
    from_document(&doc, limits)
}

/// A value as the Node driver would type it: integers within int32 as int32, other numbers as
/// double, binary as Binary subtype 0, dates as UTC datetime.
pub fn to_bson(value: &Value) -> Bson {
    match value {
        Value::Nil => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Int(i) => i32::try_from(*i).map_or(Bson::Double(*i as f64), Bson::Int32),
        Value::UInt(u) => Bson::Double(*u as f64),
        Value::Float(f) => {
            if f.fract() == 0.0 && *f >= f64::from(i32::MIN) && *f <= f64::from(i32::MAX) {
                Bson::Int32(*f as i32)
            } else {
                Bson::Double(*f)
            }
        }
        Value::Str(s) => Bson::String(s.clone()),
        Value::Bin(b) => Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: b.to_vec(),
        }),
        Value::Array(a) => Bson::Array(a.iter().map(to_bson).collect()),
        Value::Map(m) => {
            let mut d = Document::new();
            for (k, v) in m {
                d.insert(k.clone(), to_bson(v));
            }
            Bson::Document(d)
        }
        Value::Timestamp(ts) => Bson::DateTime(DateTime::from_millis(ts.as_millis())),
        Value::Ext(..) => Bson::Null,
    }
}

/// The value of a BSON element; types the protocol never uses are an error.
pub fn from_bson(b: &Bson, max_depth: usize) -> Result<Value, DecodeError> {
    fn go(b: &Bson, depth: usize, max: usize) -> Result<Value, DecodeError> {
        let nested = || {
            if depth >= max {
                Err(DecodeError::TooDeep { max })
            } else {
                Ok(depth + 1)
            }
        };
        Ok(match b {
            Bson::Null | Bson::Undefined => Value::Nil,
            Bson::Boolean(v) => Value::Bool(*v),
            Bson::Int32(i) => Value::Int(i64::from(*i)),
            Bson::Int64(i) => Value::Int(*i),
            Bson::Double(f) => {
                if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                    Value::Int(*f as i64)
                } else {
                    Value::Float(*f)
                }
            }
            Bson::String(s) => Value::Str(s.clone()),
            Bson::Binary(bin) => Value::Bin(Bytes::copy_from_slice(&bin.bytes)),
            Bson::DateTime(d) => Value::Timestamp(Timestamp::from_millis(d.timestamp_millis())),
            Bson::ObjectId(id) => Value::Str(id.to_hex()),
            Bson::Array(a) => {
                let d = nested()?;
                Value::Array(a.iter().map(|v| go(v, d, max)).collect::<Result<_, _>>()?)
            }
            Bson::Document(doc) => {
                let d = nested()?;
                Value::Map(
                    doc.iter()
                        .map(|(k, v)| Ok((k.clone(), go(v, d, max)?)))
                        .collect::<Result<_, DecodeError>>()?,
                )
            }
            other => return Err(DecodeError::BsonType(other.element_type())),
        })
    }
    go(b, 0, max_depth)
}
