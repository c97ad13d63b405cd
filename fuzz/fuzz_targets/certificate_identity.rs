#![no_main]
// The client certificate's DER, as the TLS layer hands it over.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::certificate_identity(data));
