#![no_main]
// Caller text screened for display and logs: accepted text holds no refused character and no
// card number, display text is NFC, and the card-number scan agrees with a reference scan.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::text_screen(data));
