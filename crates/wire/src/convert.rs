//! Any serde value to and from a wire [`Value`], binary kept as binary (`serde_bytes`, `Bytes`
//! and `&[u8]` serialise as msgpack `bin`), structs as maps in field order.

use serde::{Serialize, de::DeserializeOwned};

use crate::{Limits, Value, msgpack};

/// Why a value could not be converted.
#[derive(Debug, thiserror::Error)]
#[error("cannot convert: {0}")]
pub struct ConvertError(String);

/// `value` as a wire value.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, ConvertError> {
    let bytes = rmp_serde::to_vec_named(value).map_err(|e| ConvertError(e.to_string()))?;
    msgpack::from_slice(&bytes, &Limits::DEFAULT).map_err(|e| ConvertError(e.to_string()))
}

/// Arguments: a value serialising to an array (a tuple, a `Vec`) is the list of arguments, unit
/// is none, anything else is one argument.
pub fn to_args<T: Serialize + ?Sized>(value: &T) -> Result<Vec<Value>, ConvertError> {
    Ok(match to_value(value)? {
        Value::Array(items) => items,
        Value::Nil => Vec::new(),
        other => vec![other],
    })
}

/// A wire value as `T`.
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, ConvertError> {
    rmp_serde::from_slice(&msgpack::to_vec(value)).map_err(|e| ConvertError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::map;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Msg {
        text: String,
        n: i64,
        blob: Bytes,
    }

    #[test]
    fn structs_tuples_and_binary() {
        let m = Msg {
            text: "hi".into(),
            n: -3,
            blob: Bytes::from_static(&[1, 2]),
        };
        let v = to_value(&m).unwrap_or(Value::Nil);
        assert_eq!(
            v,
            map![
                ("text", "hi"),
                ("n", -3i64),
                ("blob", Value::Bin(Bytes::from_static(&[1, 2])))
            ]
        );
        assert_eq!(from_value::<Msg>(&v).ok(), Some(m));
        assert_eq!(
            to_args(&("a", 1)).ok(),
            Some(vec![Value::from("a"), Value::Int(1)])
        );
        assert_eq!(to_args(&()).ok(), Some(vec![]));
        assert_eq!(to_args(&"one").ok(), Some(vec![Value::from("one")]));
        assert!(from_value::<Msg>(&Value::Int(1)).is_err());
    }
}
