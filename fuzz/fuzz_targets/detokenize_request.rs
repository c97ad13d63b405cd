#![no_main]
// The body of POST /v1/tokens/detokenize, the `?domain=` query string, and the `{"domain"}`
// body of suspend, resume and delete.
use payhsm::api::types::{decode, domain_from_query, DetokenizeRequest, DomainBody};
use payhsm::card::Domain;
libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    let _ = decode::<DetokenizeRequest>(body).and_then(|r| r.parse());
    let _ = std::str::from_utf8(body).map(|q| domain_from_query(Some(q)));
    let _ = decode::<DomainBody>(body).map(|b| Domain::parse(&b.domain));
});
