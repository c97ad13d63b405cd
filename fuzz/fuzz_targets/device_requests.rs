#![no_main]
// The bodies of POST /v1/devices/challenges and POST /v1/devices, decoded as the API does.
libfuzzer_sys::fuzz_target!(|data: &[u8]| payhsm::fuzzing::device_requests(data));
