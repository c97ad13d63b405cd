#![no_main]
// The request headers the API reads itself (content-type, Idempotency-Key, x-request-id).
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::request_headers(data));
