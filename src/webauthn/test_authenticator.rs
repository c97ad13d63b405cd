//! Test only: a software P-256 authenticator and a canonical CBOR encoder, so unit tests build
//! real signed responses and can break exactly one rule at a time.

use super::cbor::Value;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

/// Canonical CBOR encoding of `value` (shortest heads, definite lengths, keys as given).
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// A head: major type and argument in shortest form.
pub fn head(major: u8, arg: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if arg <= 0xff {
        out.extend_from_slice(&[m | 24, arg as u8]);
    } else if arg <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Unsigned(u) => head(0, *u, out),
        Value::Negative(n) => head(1, (-1 - *n) as u64, out),
        Value::Bytes(b) => {
            head(2, b.len() as u64, out);
            out.extend_from_slice(b);
        }
        Value::Text(t) => {
            head(3, t.len() as u64, out);
            out.extend_from_slice(t.as_bytes());
        }
        Value::Array(items) => {
            head(4, items.len() as u64, out);
            items.iter().for_each(|i| encode_into(i, out));
        }
        Value::Map(entries) => {
            head(5, entries.len() as u64, out);
            for (k, v) in entries {
                encode_into(k, out);
                encode_into(v, out);
            }
        }
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Null => out.push(0xf6),
    }
}

/// An integer CBOR value.
pub fn int(v: i64) -> Value {
    if v >= 0 {
        Value::Unsigned(v as u64)
    } else {
        Value::Negative(i128::from(v))
    }
}

/// A text CBOR value.
pub fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// Flags.
pub const UP: u8 = 0x01;
/// Flags.
pub const UV: u8 = 0x04;
/// Flags.
pub const BE: u8 = 0x08;
/// Flags.
pub const BS: u8 = 0x10;
/// Flags.
pub const AT: u8 = 0x40;
/// Flags.
pub const ED: u8 = 0x80;

/// A software authenticator with one P-256 credential.
pub struct SoftAuthenticator {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// The credential id.
    pub credential_id: Vec<u8>,
}

impl SoftAuthenticator {
    /// A fresh key.
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self {
            key,
            rng,
            credential_id: vec![0xC1; 16],
        }
    }

    /// The COSE_Key map of the credential.
    pub fn cose_key(&self) -> Value {
        let point = self.key.public_key().as_ref();
        Value::Map(vec![
            (int(1), int(2)),
            (int(3), int(-7)),
            (int(-1), int(1)),
            (int(-2), Value::Bytes(point[1..33].to_vec())),
            (int(-3), Value::Bytes(point[33..65].to_vec())),
        ])
    }

    /// Its CBOR bytes (what a relying party stores).
    pub fn cose_key_bytes(&self) -> Vec<u8> {
        encode(&self.cose_key())
    }

    /// authData for `rp_id`: flags, counter, and attested credential data when AT is set.
    pub fn auth_data(&self, rp_id: &str, flags: u8, count: u32) -> Vec<u8> {
        let mut out = ring::digest::digest(&ring::digest::SHA256, rp_id.as_bytes())
            .as_ref()
            .to_vec();
        out.push(flags);
        out.extend_from_slice(&count.to_be_bytes());
        if flags & AT != 0 {
            out.extend_from_slice(&[0xAA; 16]);
            out.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
            out.extend_from_slice(&self.credential_id);
            out.extend_from_slice(&self.cose_key_bytes());
        }
        out
    }

    /// An ECDSA (DER) signature over authData || SHA-256(clientDataJSON).
    pub fn sign_assertion(&self, auth_data: &[u8], client_data_json: &[u8]) -> Vec<u8> {
        let mut msg = auth_data.to_vec();
        msg.extend_from_slice(
            ring::digest::digest(&ring::digest::SHA256, client_data_json).as_ref(),
        );
        self.key.sign(&self.rng, &msg).unwrap().as_ref().to_vec()
    }
}

/// A registration or assertion clientDataJSON.
pub fn client_data(kind: &str, challenge: &str, origin: &str) -> serde_json::Value {
    serde_json::json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})
}
