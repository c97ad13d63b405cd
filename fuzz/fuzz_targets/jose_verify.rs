#![no_main]
// A JWS is outside input to a gateway's verifier; the JWKS is fixed: the RFC 7515 A.3 key.
const JWKS: &[u8] = br#"{"keys":[{"kty":"EC","crv":"P-256","kid":"a3","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(jwks) = payhsm::jose::Jwks::parse(JWKS) {
        let _ = payhsm::jose::verify_compact(text, &jwks, 1_300_819_000);
    }
});
