#![no_main]
// A FIDO Metadata Service BLOB (JWS, header, payload entries): never panics.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::webauthn_mds_blob(data));
