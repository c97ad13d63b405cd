#![no_main]
// An exported audit log is outside input to the auditor's verifier.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::audit_verify(data));
