#![no_main]
// The body of POST /v1/tokens, decoded and validated exactly as the API does.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::tokenize_request(data));
