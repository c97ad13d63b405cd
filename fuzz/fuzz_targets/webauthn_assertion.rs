#![no_main]
// A whole assertion from fuzzed bytes against a fixed stored credential (a P-256 COSE key).
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::webauthn_assertion(data));
