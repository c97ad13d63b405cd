#![no_main]
// authenticatorData as the client sends it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::webauthn_authdata(data));
