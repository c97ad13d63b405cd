#![no_main]
// A stored or attested COSE_Key.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = payhsm::webauthn::cose::CoseKey::from_cbor_bytes(data);
});
