#![no_main]
// The bodies of POST /v1/keys/changes and POST /v1/keys/rewrap (custodians' requests).
use payhsm::api::keys::{KeyChangeRequest, RewrapRequest};
use payhsm::api::types::decode;
libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    if let Ok(change) = decode::<KeyChangeRequest>(body).and_then(|r| r.into_change()) {
        // Every accepted change has one canonical text, stable across calls.
        assert_eq!(change.canonical(), change.canonical());
    }
    let _ = decode::<RewrapRequest>(body).and_then(|r| r.batch());
});
