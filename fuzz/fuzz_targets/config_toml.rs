#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = payhsm::config::Config::from_toml(text, std::path::Path::new("/etc/payhsm"));
});
