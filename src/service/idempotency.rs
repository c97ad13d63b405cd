//! Idempotency keys: a client retrying a POST with the same `Idempotency-Key` and the same
//! request gets the answer stored at commit; the same key with another request is refused.
//! Keys are scoped per principal; the request is compared by a SHA-256 of the operation name
//! and a canonical JSON form of the decoded request (sorted keys, no whitespace).

use sha2::{Digest, Sha256};

/// Longest key, in bytes.
const MAX_KEY_BYTES: usize = 128;

/// A client's idempotency key: 1 to 128 visible ASCII characters. It is never stored, logged
/// or audited as it came (it is the client's text and could hold a card number): the store
/// keeps a keyed tag of it (`DataKeyRing::idempotency_tag`). Its `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl std::fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdempotencyKey(..)")
    }
}

impl IdempotencyKey {
    /// `None` if the key is empty, too long or not visible ASCII.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty()
            && text.len() <= MAX_KEY_BYTES
            && text.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(text.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 over the operation name, a NUL, and the canonical JSON of `request`.
pub(super) fn request_hash(operation: &str, request: &serde_json::Value) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(operation.as_bytes());
    h.update([0u8]);
    h.update(canonical(request).to_string().as_bytes());
    h.finalize().into()
}

/// The value with every object's keys sorted (serde_json may keep insertion order when
/// another crate enables `preserve_order`), printed without whitespace by `to_string`.
fn canonical(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(canonical).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Option<IdempotencyKey> {
        IdempotencyKey::parse(text)
    }

    #[test]
    fn keys_are_one_to_128_visible_ascii() {
        assert!(key("a").is_some());
        assert!(key(&"k".repeat(128)).is_some());
        assert!(key("order-42/retry:1").is_some());
        for bad in ["", " a", "a b", "é"] {
            assert!(key(bad).is_none(), "{bad:?}");
        }
        assert!(key(&"k".repeat(129)).is_none());
    }

    #[test]
    fn the_hash_ignores_key_order_and_binds_the_operation() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":"x"}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{ "a" : "x", "b" : 1 }"#).unwrap();
        assert_eq!(request_hash("op", &a), request_hash("op", &b));
        assert_ne!(request_hash("op", &a), request_hash("other", &a));
    }
}
