#![no_main]
// The client certificate's DER, as the TLS layer hands it over.
libfuzzer_sys::fuzz_target!(|der: &[u8]| {
    let _ = payhsm::transport::principal_from_certificate(der);
});
