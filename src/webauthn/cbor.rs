//! Strict, bounded CBOR decoding of the subset WebAuthn uses (RFC 8949, CTAP2 canonical form).
//!
//! Accepted: major types 0-5 and the simple values false, true and null. Refused: floats,
//! undefined, other simple values, tags, indefinite lengths, reserved additional information,
//! integers or lengths not in their shortest form, duplicate map keys, nesting deeper than
//! [`MAX_DEPTH`], and invalid UTF-8 in text. Every length or item count is checked against the
//! remaining input before anything is allocated, so a short input cannot ask for a large buffer.

use std::collections::HashSet;

/// Deepest nesting of arrays and maps accepted (the top-level item is depth 1).
pub const MAX_DEPTH: usize = 16;

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
    /// Bytes follow the single item that was expected.
    TrailingBytes,
    /// An indefinite-length string, array or map.
    IndefiniteLength,
    /// An integer, length or count not encoded in its shortest form.
    NonCanonical,
    /// Additional information 28-30 (reserved by RFC 8949).
    ReservedAdditionalInfo,
    /// A floating-point number.
    Float,
    /// `undefined` or a simple value other than false/true/null.
    SimpleValue,
    /// A tagged item (major type 6).
    Tag,
    /// The same key twice in one map.
    DuplicateMapKey,
    /// Arrays and maps nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A length or item count larger than the remaining input could hold.
    LengthExceedsInput,
    /// A text string that is not UTF-8.
    InvalidUtf8,
}

impl CborError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Truncated => "cbor_truncated",
            Self::TrailingBytes => "cbor_trailing_bytes",
            Self::IndefiniteLength => "cbor_indefinite_length",
            Self::NonCanonical => "cbor_non_canonical",
            Self::ReservedAdditionalInfo => "cbor_reserved_additional_info",
            Self::Float => "cbor_float",
            Self::SimpleValue => "cbor_simple_value",
            Self::Tag => "cbor_tag",
            Self::DuplicateMapKey => "cbor_duplicate_map_key",
            Self::TooDeep => "cbor_too_deep",
            Self::LengthExceedsInput => "cbor_length_exceeds_input",
            Self::InvalidUtf8 => "cbor_invalid_utf8",
        }
    }
}

impl std::fmt::Display for CborError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Self::Truncated => "input ends inside an item",
            Self::TrailingBytes => "bytes follow the item",
            Self::IndefiniteLength => "indefinite length",
            Self::NonCanonical => "integer or length not in shortest form",
            Self::ReservedAdditionalInfo => "reserved additional information (28-30)",
            Self::Float => "floating-point number",
            Self::SimpleValue => "undefined or unassigned simple value",
            Self::Tag => "tagged item",
            Self::DuplicateMapKey => "duplicate map key",
            Self::TooDeep => "nesting too deep",
            Self::LengthExceedsInput => "length larger than the remaining input",
            Self::InvalidUtf8 => "text is not UTF-8",
        };
        f.write_str(text)
    }
}

/// Decodes exactly one item; trailing bytes are an error.
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    let (value, used) = decode_prefix(bytes)?;
    if used != bytes.len() {
        return Err(CborError::TrailingBytes);
    }
    Ok(value)
}

/// Decodes one item from the start of `bytes`; returns it and the number of bytes it used.
pub fn decode_prefix(bytes: &[u8]) -> Result<(Value, usize), CborError> {
    let mut decoder = Decoder {
        input: bytes,
        pos: 0,
    };
    let value = decoder.item(1)?;
    Ok((value, decoder.pos))
}

impl Value {
    /// In a map, the value under the integer key `key`.
    pub fn get_int(&self, key: i64) -> Option<&Value> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_int() == Some(i128::from(key)))
            .map(|(_, v)| v)
    }

    /// In a map, the value under the text key `key`.
    pub fn get_text(&self, key: &str) -> Option<&Value> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(_, v)| v)
    }

    /// The bytes of a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The text of a text string.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(t),
            _ => None,
        }
    }

    /// An integer (major type 0 or 1), exactly.
    pub fn as_int(&self) -> Option<i128> {
        match self {
            Self::Unsigned(u) => Some(i128::from(*u)),
            Self::Negative(n) => Some(*n),
            _ => None,
        }
    }

    /// The items of an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The entries of a map, in encoded order.
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Self::Map(m) => Some(m),
            _ => None,
        }
    }
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        let end = self.pos.checked_add(n).ok_or(CborError::Truncated)?;
        let slice = self.input.get(self.pos..end).ok_or(CborError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, CborError> {
        let b = *self.input.get(self.pos).ok_or(CborError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// The argument of a head with additional information `info`, in shortest form.
    fn argument(&mut self, info: u8) -> Result<u64, CborError> {
        let (len, min) = match info {
            0..=23 => return Ok(u64::from(info)),
            24 => (1, 24),
            25 => (2, 0x100),
            26 => (4, 0x1_0000),
            27 => (8, 0x1_0000_0000),
            28..=30 => return Err(CborError::ReservedAdditionalInfo),
            _ => return Err(CborError::IndefiniteLength),
        };
        let value = self
            .take(len)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        if value < min {
            return Err(CborError::NonCanonical);
        }
        Ok(value)
    }

    /// A length or count that `per_item` bytes each must fit in the remaining input.
    fn bounded(&self, count: u64, per_item: usize) -> Result<usize, CborError> {
        let count = usize::try_from(count).map_err(|_| CborError::LengthExceedsInput)?;
        match count.checked_mul(per_item) {
            Some(need) if need <= self.remaining() => Ok(count),
            _ => Err(CborError::LengthExceedsInput),
        }
    }

    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        let initial = self.byte()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        match major {
            0 => Ok(Value::Unsigned(self.argument(info)?)),
            1 => Ok(Value::Negative(-1 - i128::from(self.argument(info)?))),
            2 | 3 => {
                let arg = self.argument(info)?;
                let len = self.bounded(arg, 1)?;
                let raw = self.take(len)?;
                if major == 2 {
                    Ok(Value::Bytes(raw.to_vec()))
                } else {
                    let text = std::str::from_utf8(raw).map_err(|_| CborError::InvalidUtf8)?;
                    Ok(Value::Text(text.to_owned()))
                }
            }
            4 => {
                let arg = self.argument(info)?;
                let count = self.bounded(arg, 1)?;
                let depth = Self::deeper(depth)?;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.item(depth)?);
                }
                Ok(Value::Array(items))
            }
            5 => {
                let arg = self.argument(info)?;
                let count = self.bounded(arg, 2)?;
                let depth = Self::deeper(depth)?;
                let mut entries = Vec::with_capacity(count);
                // Shortest-form encoding makes equal keys byte-identical, so comparing their
                // encodings finds duplicates in linear time.
                let mut seen: HashSet<&[u8]> = HashSet::with_capacity(count);
                for _ in 0..count {
                    let start = self.pos;
                    let key = self.item(depth)?;
                    let encoded = self
                        .input
                        .get(start..self.pos)
                        .ok_or(CborError::Truncated)?;
                    if !seen.insert(encoded) {
                        return Err(CborError::DuplicateMapKey);
                    }
                    let value = self.item(depth)?;
                    entries.push((key, value));
                }
                Ok(Value::Map(entries))
            }
            6 => Err(CborError::Tag),
            _ => match info {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 => Ok(Value::Null),
                25..=27 => Err(CborError::Float),
                28..=30 => Err(CborError::ReservedAdditionalInfo),
                31 => Err(CborError::IndefiniteLength),
                _ => Err(CborError::SimpleValue),
            },
        }
    }

    fn deeper(depth: usize) -> Result<usize, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::TooDeep);
        }
        Ok(depth + 1)
    }
}

/// CBOR (RFC 8949) items written in CTAP2 canonical form (shortest heads, definite lengths),
/// map keys in the caller's order: the COSE keys and thumbprints payhsm builds itself, and the
/// bench's software authenticator.
pub mod write {
    /// A head: major type and argument, in shortest form.
    pub fn head(out: &mut Vec<u8>, major: u8, n: u64) {
        let m = major << 5;
        match n {
            0..=23 => out.push(m | n as u8),
            24..=0xff => out.extend([m | 24, n as u8]),
            0x100..=0xffff => {
                out.push(m | 25);
                out.extend((n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(m | 26);
                out.extend((n as u32).to_be_bytes());
            }
            _ => {
                out.push(m | 27);
                out.extend(n.to_be_bytes());
            }
        }
    }

    /// An integer.
    pub fn int(out: &mut Vec<u8>, v: i64) {
        if v >= 0 {
            head(out, 0, v as u64);
        } else {
            head(out, 1, (-1 - v) as u64);
        }
    }

    /// A byte string.
    pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        head(out, 2, b.len() as u64);
        out.extend_from_slice(b);
    }

    /// A text string.
    pub fn text(out: &mut Vec<u8>, s: &str) {
        head(out, 3, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }

    /// An array header of `n` items (the items follow).
    pub fn array(out: &mut Vec<u8>, n: u64) {
        head(out, 4, n);
    }

    /// A map header for `n` pairs (the pairs follow).
    pub fn map(out: &mut Vec<u8>, n: u64) {
        head(out, 5, n);
    }
}

#[cfg(test)]
#[path = "cbor_tests.rs"]
mod tests;
