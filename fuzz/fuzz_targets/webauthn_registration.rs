#![no_main]
// The whole registration ceremony (§7.1) over outside bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::webauthn_registration(data));
