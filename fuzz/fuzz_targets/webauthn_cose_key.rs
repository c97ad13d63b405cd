#![no_main]
// A stored or attested COSE_Key.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::webauthn_cose_key(data));
