#![no_main]
// A proof file is outside input to `payhsm audit verify-proof`; the key set is fixed: the
// RFC 7515 A.3 key. The same bytes as the audit routes' query strings.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::audit_proof(data));
