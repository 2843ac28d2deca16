//! The one error type of every decoder in this crate.

/// Why bytes (or a value) could not be decoded into a protocol message.
///
/// Decoders never panic on bad input and never allocate more than the input size allows; every
/// failure ends up here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is larger than the configured [`Limits::max_size`](crate::Limits).
    #[error("input of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// Values are nested deeper than [`Limits::max_depth`](crate::Limits).
    #[error("values nested deeper than {max} levels")]
    TooDeep {
        /// The configured limit.
        max: usize,
    },
    /// The input ends in the middle of a value.
    #[error("input truncated")]
    Truncated,
    /// Bytes remain after the top-level value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// A msgpack marker that is reserved or not supported (`0xc1`).
    #[error("invalid msgpack marker 0x{0:02x}")]
    InvalidMarker(u8),
    /// A string is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A map key that cannot be a JS object key.
    #[error("map key of type {0} is not a string or a number")]
    InvalidKey(&'static str),
    /// Malformed JSON.
    #[error("invalid JSON")]
    Json(#[from] serde_json::Error),
    /// The value is well formed but a field is missing or has the wrong type.
    #[error("field `{field}`: expected {expected}")]
    Field {
        /// Dotted path of the field.
        field: &'static str,
        /// What was expected there.
        expected: &'static str,
    },
    /// A message type number this protocol does not define.
    #[error("unknown message type {0}")]
    UnknownType(i64),
    /// An empty input where a message was expected.
    #[error("empty input")]
    Empty,
    /// A binary placeholder refers to an attachment that does not exist.
    #[error("binary placeholder {num} refers to one of {count} attachments")]
    Placeholder {
        /// The placeholder's `num`.
        num: i64,
        /// How many attachments there are.
        count: usize,
    },
    /// A BSON value of a type the protocol does not use.
    #[cfg(feature = "bson")]
    #[error("unsupported BSON element type {0:?}")]
    BsonType(bson::spec::ElementType),
    /// Malformed BSON.
    #[cfg(feature = "bson")]
    #[error("invalid BSON")]
    Bson(#[from] bson::error::Error),
}

impl DecodeError {
    /// A [`DecodeError::Field`]: `field` is missing or not `expected`.
    pub fn field(field: &'static str, expected: &'static str) -> Self {
        DecodeError::Field { field, expected }
    }
}

/// Size and depth limits every decoder enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest input accepted, in bytes.
    pub max_size: usize,
    /// Deepest nesting of arrays and maps accepted.
    pub max_depth: usize,
}

impl Limits {
    /// 64 MiB and 64 levels: far above what the Node packages send, far below harm.
    pub const DEFAULT: Limits = Limits {
        max_size: 64 * 1024 * 1024,
        max_depth: 64,
    };

    pub(crate) fn check_size(&self, size: usize) -> Result<(), DecodeError> {
        if size > self.max_size {
            Err(DecodeError::TooLarge {
                size,
                max: self.max_size,
            })
        } else {
            Ok(())
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
