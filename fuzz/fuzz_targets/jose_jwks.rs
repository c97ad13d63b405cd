#![no_main]
// A JWKS fetched from a URL is outside input to `payhsm authz verify`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::jose_jwks(data));
