#![no_main]
// The body of POST /v1/tokens, decoded and validated exactly as the API does.
use payhsm::api::types::{decode, TokenizeRequest};
libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    let _ = decode::<TokenizeRequest>(body).and_then(TokenizeRequest::into_input);
});
