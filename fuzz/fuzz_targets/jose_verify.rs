#![no_main]
// A JWS is outside input to a gateway's verifier; the JWKS is fixed: the RFC 7515 A.3 key.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::jose_verify(data));
