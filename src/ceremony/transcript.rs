//! The one-line transcription of a share, for paper and for typing back in:
//!
//! `payhsm-share-v1 <set id: 16 hex> <M>-of-<N> <x> <value: hex in groups of 4> <checksum>`
//!
//! The checksum is the first 4 hex digits of SHA-256 over the canonical text before it (single
//! spaces, uppercase hex, the value regrouped in fours), so a typo is caught on entry, not when
//! the recovered key's KCV fails to match.

use super::shamir::{valid_parameters, MAX_SECRET_LEN, SET_ID_LEN};
use super::{hex, ShamirError, Share, TranscriptField};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The first field of every share transcript: the format and its version.
pub const TRANSCRIPT_TAG: &str = "payhsm-share-v1";

/// The longest transcript line accepted, in bytes.
pub const MAX_TRANSCRIPT_LEN: usize = 4096;

/// Hex digits of the checksum.
const CHECKSUM_DIGITS: usize = 4;

fn malformed(field: TranscriptField) -> ShamirError {
    ShamirError::MalformedTranscript { field }
}

/// Strict decimal 0-255: ASCII digits only (no sign, no spaces), at most 3 of them.
fn parse_decimal(text: &str) -> Option<u8> {
    if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn checksum(canonical: &str) -> String {
    let digest = Sha256::digest(canonical.as_bytes());
    let mut text = hex::encode_public(digest.get(..CHECKSUM_DIGITS / 2).unwrap_or_default());
    text.truncate(CHECKSUM_DIGITS);
    text
}

/// The canonical text the checksum covers.
fn canonical(set_id: &str, parameters: &str, x: &str, value_hex: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(
        // Room for the separators and the checksum [`Share::to_transcript`] appends.
        TRANSCRIPT_TAG.len() + set_id.len() + parameters.len() + x.len() + value_hex.len() * 2 + 16,
    ));
    out.push_str(TRANSCRIPT_TAG);
    for field in [set_id, parameters, x] {
        out.push(' ');
        out.push_str(field);
    }
    for (i, c) in value_hex.chars().enumerate() {
        if i % 4 == 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

impl Share {
    /// The share as one line to write down; see the module doc for the format.
    pub fn to_transcript(&self) -> Zeroizing<String> {
        let set_id = hex::encode_public(&self.set_id);
        let parameters = format!("{}-of-{}", self.threshold, self.shares);
        let x = self.x.to_string();
        let value = hex::encode_grouped(&self.y);
        // Sized up front: a growing String would leave copies of the value in freed memory.
        let mut value_digits = Zeroizing::new(String::with_capacity(value.len()));
        value_digits.extend(value.chars().filter(|c| *c != ' '));
        let mut line = canonical(&set_id, &parameters, &x, &value_digits);
        let sum = checksum(&line);
        line.push(' ');
        line.push_str(&sum);
        line
    }

    /// Reads a transcribed share. Hex is case-insensitive and the value's grouping is free;
    /// a checksum mismatch is refused naming the share number, never echoing the value.
    pub fn from_transcript(text: &str) -> Result<Self, ShamirError> {
        if text.len() > MAX_TRANSCRIPT_LEN || !text.is_ascii() {
            return Err(malformed(TranscriptField::Line));
        }
        let fields: Vec<&str> = text.split_ascii_whitespace().collect();
        let (tag, set_id, parameters, x_text, rest) = match fields.as_slice() {
            [tag, set_id, parameters, x, rest @ ..] if rest.len() >= 2 => {
                (*tag, *set_id, *parameters, *x, rest)
            }
            _ => return Err(malformed(TranscriptField::Line)),
        };
        if tag != TRANSCRIPT_TAG {
            return Err(malformed(TranscriptField::Tag));
        }
        let (given_sum, value_groups) = match rest.split_last() {
            Some((sum, groups)) => (*sum, groups),
            None => return Err(malformed(TranscriptField::Line)),
        };
        if given_sum.len() != CHECKSUM_DIGITS || !given_sum.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed(TranscriptField::Checksum));
        }
        let value_digits: Zeroizing<String> = Zeroizing::new(value_groups.concat());
        let set_id_upper = set_id.to_ascii_uppercase();
        let parameters_lower = parameters.to_ascii_lowercase();
        let line = canonical(&set_id_upper, &parameters_lower, x_text, &value_digits);
        let x = parse_decimal(x_text);
        // Checked before the fields, so any typo gets the same "re-enter share x" answer.
        if !checksum(&line).eq_ignore_ascii_case(given_sum) {
            return Err(ShamirError::TranscriptChecksum { x });
        }

        let set_id_bytes = match hex::decode(set_id) {
            Some(b) if b.len() == SET_ID_LEN && !set_id.contains(' ') => b,
            _ => return Err(malformed(TranscriptField::SetId)),
        };
        let mut set_id = [0u8; SET_ID_LEN];
        set_id.copy_from_slice(&set_id_bytes);
        let (threshold, shares) = parameters_lower
            .split_once("-of-")
            .and_then(|(m, n)| Some((parse_decimal(m)?, parse_decimal(n)?)))
            .filter(|(m, n)| valid_parameters(*m, *n))
            .ok_or(malformed(TranscriptField::Parameters))?;
        let x = x
            .filter(|x| (1..=shares).contains(x))
            .ok_or(malformed(TranscriptField::ShareNumber))?;
        let y = match hex::decode(&value_digits) {
            Some(y) if !y.is_empty() && y.len() <= MAX_SECRET_LEN => y,
            _ => return Err(malformed(TranscriptField::Value)),
        };
        Ok(Share {
            set_id,
            threshold,
            shares,
            x,
            y,
        })
    }
}
