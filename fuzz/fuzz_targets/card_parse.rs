#![no_main]
// PAN, token and domain parsing: never panics, and a parsed PAN is always Luhn-valid.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::card_parse(data));
