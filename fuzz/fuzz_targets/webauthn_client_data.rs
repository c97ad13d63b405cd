#![no_main]
// clientDataJSON as the client sends it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::webauthn_client_data(data));
