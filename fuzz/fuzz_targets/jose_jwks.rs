#![no_main]
// A JWKS fetched from a URL is outside input to `payhsm authz verify`.
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = payhsm::jose::Jwks::parse(bytes);
});
