#![no_main]
// The daemon's TOML configuration, outside input to `payhsmd` and `payhsm`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::config_toml(data));
