#![no_main]
// What hyper writes on a connection: its bare error answers rewritten with the JSON body.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::http_bare_errors(data));
