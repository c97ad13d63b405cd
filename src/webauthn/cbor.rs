//! SKELETON (helper A implements): strict, bounded CBOR decoding.

/// A decoded CBOR data item.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Major type 0.
    Unsigned(u64),
    /// Major type 1: the value is `-1 - n`, held exactly.
    Negative(i128),
    /// Major type 2.
    Bytes(Vec<u8>),
    /// Major type 3 (valid UTF-8).
    Text(String),
    /// Major type 4.
    Array(Vec<Value>),
    /// Major type 5, in encoded order; duplicate keys are rejected at decode.
    Map(Vec<(Value, Value)>),
    /// Major type 7: true/false.
    Bool(bool),
    /// Major type 7: null.
    Null,
}

/// Why CBOR was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CborError {
    /// Input ended inside an item.
    Truncated,
}

impl CborError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        "cbor_malformed"
    }
}

impl std::fmt::Display for CborError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// Decodes exactly one item; trailing bytes are an error.
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    let _ = bytes;
    unimplemented!()
}

/// Decodes one item from the start of `bytes`; returns it and the number of bytes it used.
pub fn decode_prefix(bytes: &[u8]) -> Result<(Value, usize), CborError> {
    let _ = bytes;
    unimplemented!()
}
