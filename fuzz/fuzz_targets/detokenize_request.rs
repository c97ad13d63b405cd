#![no_main]
// The body of POST /v1/tokens/detokenize and the `?domain=` query string.
use payhsm::api::types::{decode, domain_from_query, DetokenizeRequest};
libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    let _ = decode::<DetokenizeRequest>(body).and_then(|r| r.parse());
    let _ = std::str::from_utf8(body).map(|q| domain_from_query(Some(q)));
});
