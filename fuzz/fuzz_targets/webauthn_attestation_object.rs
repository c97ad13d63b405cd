#![no_main]
// An attestation object through every statement format: never panics.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::webauthn_attestation_object(data));
