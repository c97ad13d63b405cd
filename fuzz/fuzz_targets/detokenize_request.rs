#![no_main]
// The body of POST /v1/tokens/detokenize, the `?domain=` query string, and the `{"domain"}`
// body of suspend, resume and delete.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::detokenize_request(data));
