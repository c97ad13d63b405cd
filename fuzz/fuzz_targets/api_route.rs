#![no_main]
// The request line's method and path, matched to a route as the daemon does.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::api_route(data));
