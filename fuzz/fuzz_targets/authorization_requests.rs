#![no_main]
// The bodies of POST /v1/authorizations/challenges (with the checks of amount, currency,
// payee and SPC display data) and POST /v1/authorizations, and the Idempotency-Key header.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::authorization_requests(data));
