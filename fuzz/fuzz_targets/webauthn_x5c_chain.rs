#![no_main]
// x5c chain building, certificate signatures and the Android/Apple extensions: never panics.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::webauthn_x5c_chain(data));
