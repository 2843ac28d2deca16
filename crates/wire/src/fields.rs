//! Taking typed fields out of decoded maps, with errors that name the field.

use crate::{DecodeError, Value};

/// An owned map being taken apart field by field.
pub(crate) struct Obj(Vec<(String, Value)>);

impl Obj {
    pub(crate) fn new(value: Value, field: &'static str) -> Result<Self, DecodeError> {
        match value {
            Value::Map(entries) => Ok(Obj(entries)),
            _ => Err(DecodeError::field(field, "a map")),
        }
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Position of `key`, for callers that care about key order.
    pub(crate) fn position(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|(k, _)| k == key)
    }

    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        let i = self.position(key)?;
        Some(self.0.remove(i).1)
    }

    pub(crate) fn req(&mut self, key: &str, field: &'static str) -> Result<Value, DecodeError> {
        self.take(key).ok_or(DecodeError::field(field, "a value"))
    }

    pub(crate) fn string(&mut self, key: &str, field: &'static str) -> Result<String, DecodeError> {
        match self.take(key) {
            Some(Value::Str(s)) => Ok(s),
            _ => Err(DecodeError::field(field, "a string")),
        }
    }

    /// An optional string: absent and `null` both read as `None`.
    pub(crate) fn opt_string(
        &mut self,
        key: &str,
        field: &'static str,
    ) -> Result<Option<String>, DecodeError> {
        match self.take(key) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(_) => Err(DecodeError::field(field, "a string")),
        }
    }

    pub(crate) fn int(&mut self, key: &str, field: &'static str) -> Result<i64, DecodeError> {
        self.take(key)
            .and_then(|v| v.as_i64())
            .ok_or(DecodeError::field(field, "an integer"))
    }

    pub(crate) fn opt_bool(
        &mut self,
        key: &str,
        field: &'static str,
    ) -> Result<Option<bool>, DecodeError> {
        match self.take(key) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(DecodeError::field(field, "a boolean")),
        }
    }

    pub(crate) fn array(
        &mut self,
        key: &str,
        field: &'static str,
    ) -> Result<Vec<Value>, DecodeError> {
        match self.take(key) {
            Some(Value::Array(a)) => Ok(a),
            _ => Err(DecodeError::field(field, "an array")),
        }
    }

    pub(crate) fn into_entries(self) -> Vec<(String, Value)> {
        self.0
    }
}

/// Rooms: strings, or numbers (`io.to(123)`), which become their decimal string.
pub(crate) fn rooms(value: Option<Value>, field: &'static str) -> Result<Vec<String>, DecodeError> {
    match value {
        None | Some(Value::Nil) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.into_iter().map(|v| room(v, field)).collect(),
        Some(_) => Err(DecodeError::field(field, "an array of rooms")),
    }
}

pub(crate) fn room(value: Value, field: &'static str) -> Result<String, DecodeError> {
    match value {
        Value::Str(s) => Ok(s),
        Value::Int(i) => Ok(i.to_string()),
        Value::UInt(u) => Ok(u.to_string()),
        Value::Float(f) if f.is_finite() => Ok(if f.fract() == 0.0 {
            format!("{}", f as i128)
        } else {
            f.to_string()
        }),
        _ => Err(DecodeError::field(field, "a room (string or number)")),
    }
}

pub(crate) fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::Str(s.clone())).collect())
}
