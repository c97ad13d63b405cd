use super::*;

fn err(json: &str) -> ClientDataError {
    ClientData::parse(json.as_bytes()).unwrap_err()
}

fn rp() -> RelyingParty {
    RelyingParty {
        ids: vec!["example.com".into()],
        origins: vec!["https://example.com".into()],
        top_origins: vec!["https://merchant.example".into()],
    }
}

#[test]
fn minimal_client_data_parses() {
    let c = ClientData::parse(
        br#"{"type":"webauthn.get","challenge":"abc","origin":"https://example.com","other":1}"#,
    )
    .unwrap();
    assert_eq!(
        (c.kind.as_str(), c.challenge.as_str()),
        ("webauthn.get", "abc")
    );
    assert!(!c.cross_origin && c.top_origin.is_none() && c.payment.is_none());
}

#[test]
fn spc_payment_member_is_read() {
    let c = ClientData::parse(
        br#"{"type":"payment.get","challenge":"c","origin":"https://example.com",
        "payment":{"rpId":"example.com","topOrigin":"https://merchant.example","payeeName":"Shop",
        "payeeOrigin":"https://shop.example","total":{"currency":"EUR","value":"12.30"},
        "instrument":{"displayName":"Visa 1234","icon":"https://example.com/i.png"}}}"#,
    )
    .unwrap();
    let p = c.payment.unwrap();
    assert_eq!(p.total_value.as_deref(), Some("12.30"));
    assert_eq!(p.total_currency.as_deref(), Some("EUR"));
    assert_eq!(p.instrument_display_name.as_deref(), Some("Visa 1234"));
    assert_eq!(p.payee_origin.as_deref(), Some("https://shop.example"));
}

#[test]
fn missing_members_are_refused() {
    assert_eq!(
        err(r#"{"challenge":"c","origin":"o"}"#),
        ClientDataError::MissingMember("type")
    );
    assert_eq!(
        err(r#"{"type":"t","origin":"o"}"#),
        ClientDataError::MissingMember("challenge")
    );
    assert_eq!(
        err(r#"{"type":"t","challenge":"c"}"#),
        ClientDataError::MissingMember("origin")
    );
}

#[test]
fn wrong_member_types_are_refused() {
    assert_eq!(
        err(r#"{"type":1,"challenge":"c","origin":"o"}"#).code(),
        "client_data_wrong_member_type"
    );
    assert_eq!(
        err(r#"{"type":"t","challenge":"c","origin":"o","crossOrigin":"true"}"#),
        ClientDataError::WrongMemberType("crossOrigin")
    );
    assert_eq!(
        err(r#"{"type":"t","challenge":"c","origin":"o","payment":{"total":{"value":12.3}}}"#),
        ClientDataError::WrongMemberType("payment.total.value")
    );
}

#[test]
fn non_json_non_objects_and_duplicates_are_refused() {
    assert_eq!(err("not json").code(), "client_data_not_json");
    assert_eq!(err(r#"{"type":"t"} x"#).code(), "client_data_not_json");
    assert_eq!(err(r#"["type"]"#).code(), "client_data_not_object");
    assert_eq!(
        err(r#"{"type":"t","challenge":"c","origin":"o","origin":"p"}"#).code(),
        "client_data_duplicate_key"
    );
    assert_eq!(
        err(r#"{"type":"t","challenge":"c","origin":"o","payment":{"a":1,"a":2}}"#).code(),
        "client_data_duplicate_key"
    );
}

#[test]
fn token_binding_present_is_refused() {
    let base = r#""type":"t","challenge":"c","origin":"o""#;
    let tb = |v: &str| format!("{{{base},\"tokenBinding\":{v}}}");
    assert_eq!(
        err(&tb(r#"{"status":"present","id":"x"}"#)).code(),
        "token_binding_unsupported"
    );
    assert_eq!(
        err(&tb(r#"{"status":"not-supported"}"#)).code(),
        "token_binding_malformed"
    );
    assert!(ClientData::parse(tb(r#"{"status":"supported"}"#).as_bytes()).is_ok());
    assert!(ClientData::parse(tb(r#""unused""#).as_bytes()).is_ok());
}

#[test]
fn origin_checks() {
    let parse = |extra: &str| {
        ClientData::parse(
            format!(r#"{{"type":"t","challenge":"c","origin":"https://example.com"{extra}}}"#)
                .as_bytes(),
        )
        .unwrap()
    };
    assert!(parse("").check_origins(&rp()).is_ok());
    let mut other = parse("");
    other.origin = "https://example.com.evil".into();
    assert_eq!(
        other.check_origins(&rp()).unwrap_err().code(),
        "origin_mismatch"
    );
    let cross = parse(r#","crossOrigin":true,"topOrigin":"https://merchant.example""#);
    assert!(cross.check_origins(&rp()).is_ok());
    let no_tops = RelyingParty {
        top_origins: vec![],
        ..rp()
    };
    assert_eq!(
        cross.check_origins(&no_tops).unwrap_err().code(),
        "cross_origin_refused"
    );
    let cross_no_top = parse(r#","crossOrigin":true"#);
    assert_eq!(
        cross_no_top.check_origins(&rp()).unwrap_err().code(),
        "cross_origin_refused"
    );
    let bad_top = parse(r#","crossOrigin":true,"topOrigin":"https://evil.example""#);
    assert_eq!(
        bad_top.check_origins(&rp()).unwrap_err().code(),
        "top_origin_mismatch"
    );
}

#[test]
fn challenge_is_compared_exactly() {
    let c = ClientData::parse(br#"{"type":"t","challenge":"abc","origin":"o"}"#).unwrap();
    assert!(c.check_challenge("abc").is_ok());
    assert_eq!(
        c.check_challenge("abd").unwrap_err().code(),
        "challenge_mismatch"
    );
    assert_eq!(
        c.check_challenge("abc=").unwrap_err().code(),
        "challenge_mismatch"
    );
}
