#![no_main]
// The bodies of POST /v1/keys/changes and POST /v1/keys/rewrap (custodians' requests).
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::key_change_request(data));
