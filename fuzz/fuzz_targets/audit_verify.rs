#![no_main]
// An exported audit log is outside input to the auditor's verifier.
libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = payhsm::audit::verify_export(text, None);
});
