#![no_main]
// A typed-in share transcript: refused or parsed, never a panic; a parsed share round-trips.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::ceremony_share(data));
