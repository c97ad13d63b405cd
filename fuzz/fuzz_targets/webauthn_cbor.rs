#![no_main]
// Any CBOR a client sends (attestationObject, COSE keys, extensions): refused or decoded, never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::webauthn_cbor(data));
