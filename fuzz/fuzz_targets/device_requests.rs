#![no_main]
// The bodies of POST /v1/devices/challenges and POST /v1/devices, decoded as the API does.
use payhsm::api::devices::{ChallengeRequest, EnrolRequest};
use payhsm::api::types::decode;
libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    let _ = decode::<ChallengeRequest>(body);
    let _ = decode::<EnrolRequest>(body).and_then(EnrolRequest::into_input);
});
