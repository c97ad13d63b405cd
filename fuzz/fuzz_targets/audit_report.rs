#![no_main]
// An evidence report file is outside input to `payhsm audit verify-report`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::audit_report(data));
