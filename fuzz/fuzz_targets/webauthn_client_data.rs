#![no_main]
// clientDataJSON as the client sends it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = payhsm::webauthn::client_data::ClientData::parse(data);
});
