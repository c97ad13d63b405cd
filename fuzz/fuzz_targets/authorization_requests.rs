#![no_main]
// The bodies of POST /v1/authorizations/challenges (with the checks of amount, currency,
// payee and SPC display data) and POST /v1/authorizations, and the Idempotency-Key header.
use payhsm::api::authorizations::{AuthorizeRequest, PaymentChallengeRequest};
use payhsm::api::types::decode;
use payhsm::service::IdempotencyKey;
libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    if let Ok(input) = decode::<PaymentChallengeRequest>(body).and_then(|r| r.into_input()) {
        let _ = input.check_values();
    }
    let _ = decode::<AuthorizeRequest>(body).and_then(AuthorizeRequest::into_input);
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = IdempotencyKey::parse(text);
    }
});
