//! The authentication ceremony (WebAuthn L3 §7.2) and the Secure Payment Confirmation checks
//! on `payment.get` (SPC §"Verifying an authentication assertion"), one step per clause.
//!
//! Stricter than the common libraries on purpose: a counter that does not increase is a
//! rejection (never a warning), BE must equal the value recorded at registration, and every
//! payment member the relying party asked the browser to display must come back unchanged.

use super::authdata::AuthenticatorData;
use super::client_data::{ClientData, ClientDataError, PaymentData};
use super::cose::CoseKey;
use super::registration::{sha256, RelyingParty};
use super::WebauthnError;

/// A registered credential as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    /// Credential id.
    pub credential_id: Vec<u8>,
    /// COSE public key bytes.
    pub public_key_cbor: Vec<u8>,
    /// Last accepted signature counter.
    pub sign_count: u32,
    /// BE recorded at registration.
    pub backup_eligible: bool,
}

/// Which clientData type is acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionType {
    /// `webauthn.get`
    Get,
    /// `payment.get` (Secure Payment Confirmation)
    PaymentGet,
}

/// What the browser was asked to display (SPC): the same members as the `payment` member of
/// clientDataJSON; every member given must equal the one received.
pub type ExpectedPayment = super::client_data::PaymentData;

/// What the relying party expects of one assertion.
#[derive(Debug, Clone)]
pub struct AssertionExpectations<'a> {
    /// The relying party.
    pub rp: &'a RelyingParty,
    /// The challenge exactly as it must appear in clientDataJSON.
    pub challenge: &'a str,
    /// Acceptable types.
    pub types: &'a [AssertionType],
    /// UV required (the default for payments).
    pub require_user_verification: bool,
    /// SPC: what must be in clientData.payment (required when the type is payment.get).
    pub payment: Option<&'a ExpectedPayment>,
}

/// The bytes of an assertion.
#[derive(Debug, Clone, Copy)]
pub struct AssertionInput<'a> {
    /// The credential id the client used.
    pub credential_id: &'a [u8],
    /// clientDataJSON, exact bytes.
    pub client_data_json: &'a [u8],
    /// authenticatorData.
    pub authenticator_data: &'a [u8],
    /// signature.
    pub signature: &'a [u8],
}

/// A verified assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionVerdict {
    /// The counter to store (compare-and-set against the stored one).
    pub sign_count: u32,
    /// UV flag.
    pub user_verified: bool,
    /// BE flag.
    pub backup_eligible: bool,
    /// BS flag.
    pub backup_state: bool,
    /// The clientData type seen.
    pub kind: AssertionType,
    /// SPC: `clientData.payment.browserBoundPublicKey` as sent (verified by
    /// [`browser_bound::verify`](super::browser_bound::verify) with its signature).
    pub browser_bound_public_key: Option<String>,
}

/// Assertion ceremony problems.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AssertionError {
    /// Placeholder.
    Unspecified,
    /// The credential id used is not the stored credential's.
    CredentialIdMismatch,
    /// authData carries attested credential data (AT set), which an assertion never does.
    AttestedDataInAssertion,
    /// BE differs from the value recorded at registration.
    BackupEligibilityChanged,
    /// The signature counter did not increase (and is not 0 on both sides).
    CounterRegression,
    /// `payment.get` accepted but the caller gave no expected payment to compare.
    PaymentExpectationMissing,
    /// `payment.get` without a `payment` member in clientDataJSON.
    PaymentDataMissing,
    /// A payment member differs from what was asked (the member's path).
    PaymentMismatch(&'static str),
}

impl AssertionError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unspecified => "assertion_failed",
            Self::CredentialIdMismatch => "credential_id_mismatch",
            Self::AttestedDataInAssertion => "attested_data_in_assertion",
            Self::BackupEligibilityChanged => "backup_eligibility_changed",
            Self::CounterRegression => "counter_regression",
            Self::PaymentExpectationMissing => "payment_expectation_missing",
            Self::PaymentDataMissing => "payment_data_missing",
            Self::PaymentMismatch(_) => "payment_mismatch",
        }
    }
}

impl std::fmt::Display for AssertionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unspecified => f.write_str("failed"),
            Self::CredentialIdMismatch => f.write_str("credential id is not the stored one"),
            Self::AttestedDataInAssertion => f.write_str("attested credential data present"),
            Self::BackupEligibilityChanged => f.write_str("BE differs from registration"),
            Self::CounterRegression => f.write_str("signature counter did not increase"),
            Self::PaymentExpectationMissing => f.write_str("no expected payment given"),
            Self::PaymentDataMissing => f.write_str("payment member missing"),
            Self::PaymentMismatch(path) => write!(f, "{path} differs"),
        }
    }
}

/// Verifies an assertion against a stored credential.
pub fn verify_assertion(
    input: AssertionInput<'_>,
    expect: &AssertionExpectations<'_>,
    stored: &StoredCredential,
) -> Result<AssertionVerdict, WebauthnError> {
    // §7.2 step 6: "Verify that credential.rawId ... identifies the credentialRecord" (credentialRecord.id == credential.rawId).
    if input.credential_id != stored.credential_id.as_slice() {
        return Err(AssertionError::CredentialIdMismatch.into());
    }
    // §7.2 steps 9-10: "Let C ... be the result of running an implementation-specific JSON parser on JSONtext."
    let c = ClientData::parse(input.client_data_json)?;
    // §7.2 step 11: "Verify that the value of C.type is the string webauthn.get." (SPC: payment.get)
    let kind = match c.kind.as_str() {
        "webauthn.get" => AssertionType::Get,
        "payment.get" => AssertionType::PaymentGet,
        _ => return Err(ClientDataError::TypeMismatch.into()),
    };
    if !expect.types.contains(&kind) {
        return Err(ClientDataError::TypeMismatch.into());
    }
    // §7.2 step 12: "Verify that the value of C.challenge equals the base64url encoding of pkOptions.challenge."
    c.check_challenge(expect.challenge)?;
    // §7.2 steps 13-14: "Verify that the value of C.origin is an origin expected by the Relying Party." / C.topOrigin
    c.check_origins(expect.rp)?;
    let auth_data = AuthenticatorData::parse(input.authenticator_data)?;
    // §6.1: "AT ... indicates whether the authenticator added attested credential data" (never for get()).
    if auth_data.attested.is_some() {
        return Err(AssertionError::AttestedDataInAssertion.into());
    }
    // §7.2 step 15: "Verify that the rpIdHash in authData is the SHA-256 hash of the RP ID expected by the Relying Party."
    auth_data.check_rp_id(&expect.rp.ids)?;
    // §7.2 steps 16-17: "Verify that the UP bit ... is set." / "If user verification is required ..., verify that the UV bit ... is set."
    auth_data.check_user(expect.require_user_verification)?;
    // §7.2 step 18: "If the BE bit of the flags in authData is not set, verify that the BS bit is not set." (enforced by parse)
    // §7.2 step 19: "If the credential backup state is used ...": BE is fixed at creation, so it must equal credentialRecord.backupEligible.
    if auth_data.flags.be() != stored.backup_eligible {
        return Err(AssertionError::BackupEligibilityChanged.into());
    }
    // §7.2 step 21: "Let hash be the result of computing a hash over the cData using SHA-256."
    let hash = sha256(input.client_data_json);
    // §7.2 step 22: "Using credentialRecord.publicKey, verify that sig is a valid signature over the binary concatenation of authData and hash."
    let key = CoseKey::from_cbor_bytes(&stored.public_key_cbor)?;
    let mut signed = Vec::with_capacity(input.authenticator_data.len() + hash.len());
    signed.extend_from_slice(input.authenticator_data);
    signed.extend_from_slice(&hash);
    key.verify(&signed, input.signature)?;
    // §7.2 step 23: "If authData.signCount is nonzero or credentialRecord.signCount is nonzero": it must be greater (payhsm: else reject, never warn).
    let both_zero = auth_data.sign_count == 0 && stored.sign_count == 0;
    if !both_zero && auth_data.sign_count <= stored.sign_count {
        return Err(AssertionError::CounterRegression.into());
    }
    if kind == AssertionType::PaymentGet {
        // SPC: "Verify that the value of C.payment matches the transaction details the Relying Party expects."
        let expected = expect
            .payment
            .ok_or(AssertionError::PaymentExpectationMissing)?;
        let seen = c
            .payment
            .as_ref()
            .ok_or(AssertionError::PaymentDataMissing)?;
        check_payment(expected, seen)?;
    }
    Ok(AssertionVerdict {
        sign_count: auth_data.sign_count,
        user_verified: auth_data.flags.uv(),
        backup_eligible: auth_data.flags.be(),
        backup_state: auth_data.flags.bs(),
        kind,
        browser_bound_public_key: c.payment.and_then(|p| p.browser_bound_public_key),
    })
}

/// Every member set in `expected` must equal the same member of `seen`.
fn check_payment(expected: &ExpectedPayment, seen: &PaymentData) -> Result<(), AssertionError> {
    let pairs: [(&'static str, &Option<String>, &Option<String>); 8] = [
        ("payment.rpId", &expected.rp_id, &seen.rp_id),
        ("payment.topOrigin", &expected.top_origin, &seen.top_origin),
        ("payment.payeeName", &expected.payee_name, &seen.payee_name),
        (
            "payment.payeeOrigin",
            &expected.payee_origin,
            &seen.payee_origin,
        ),
        (
            "payment.total.currency",
            &expected.total_currency,
            &seen.total_currency,
        ),
        (
            "payment.total.value",
            &expected.total_value,
            &seen.total_value,
        ),
        (
            "payment.instrument.displayName",
            &expected.instrument_display_name,
            &seen.instrument_display_name,
        ),
        (
            "payment.instrument.icon",
            &expected.instrument_icon,
            &seen.instrument_icon,
        ),
    ];
    for (path, want, got) in pairs {
        if let Some(want) = want {
            if !got.as_ref().is_some_and(|got| same_text(got, want)) {
                return Err(AssertionError::PaymentMismatch(path));
            }
        }
    }
    // SPC 2025: instrument details shown only when asked, and equal.
    match (&expected.instrument_details, &seen.instrument_details) {
        (None, None) => {}
        (Some(want), Some(got)) if same_text(got, want) => {}
        _ => {
            return Err(AssertionError::PaymentMismatch(
                "payment.instrument.details",
            ))
        }
    }
    // The logos shown: an ordered subset of those asked (a browser may leave some out), never
    // one that was not asked.
    let asked = expected.entity_logos.as_deref().unwrap_or_default();
    let shown = seen.entity_logos.as_deref().unwrap_or_default();
    let mut rest = asked.iter();
    let in_order = shown
        .iter()
        .all(|(url, label)| rest.any(|(u, l)| u == url && same_text(label, l)));
    if !in_order {
        return Err(AssertionError::PaymentMismatch(
            "payment.paymentEntitiesLogos",
        ));
    }
    Ok(())
}

/// UAX #15: canonically equivalent strings are the same text to a reader. payhsm keeps the
/// payee and the display name in NFC; the browser echoes them as the merchant passed them.
fn same_text(a: &str, b: &str) -> bool {
    use unicode_normalization::UnicodeNormalization;
    a == b || a.nfc().eq(b.nfc())
}

/// The W3C §16 ES256 test credential: the fixed stored key the assertion fuzz target uses.
const FUZZ_STORED_KEY: [u8; 77] = [
    0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20, 0x99, 0x16, 0x96, 0x57, 0x03, 0x6d,
    0x08, 0x9a, 0x2a, 0x98, 0x21, 0xa7, 0xd0, 0x06, 0x3d, 0x34, 0x1f, 0x1a, 0x46, 0x13, 0x38, 0x93,
    0x59, 0x63, 0x6e, 0xfa, 0xb5, 0xf3, 0xcb, 0xf1, 0xac, 0xcf, 0x22, 0x58, 0x20, 0xdd, 0x91, 0xc5,
    0x55, 0x43, 0x17, 0x6e, 0xa9, 0x9b, 0x64, 0x44, 0x06, 0xdd, 0x1d, 0xd6, 0x37, 0x74, 0xb6, 0xaf,
    0x65, 0xac, 0x75, 0x9e, 0x06, 0xff, 0x40, 0xb1, 0xc8, 0xab, 0x02, 0xdf, 0x6b,
];

/// Fuzzing entry point: `data` is split into clientDataJSON, authenticatorData and signature
/// (each prefixed by a one-byte length, the signature takes the rest) and verified against a
/// fixed stored credential, as a `payment.get` with expected payment fields. Panics only if an
/// accepted assertion breaks the counter rule.
#[allow(clippy::panic)]
pub(crate) fn fuzz_verify(data: &[u8]) {
    let mut parts = data;
    let mut next = || -> Option<&[u8]> {
        let (len, rest) = parts.split_first()?;
        let (part, rest) = rest.split_at_checked(usize::from(*len))?;
        parts = rest;
        Some(part)
    };
    let (Some(client_data_json), Some(authenticator_data)) = (next(), next()) else {
        return;
    };
    let rp = RelyingParty {
        ids: vec!["example.org".into()],
        origins: vec!["https://example.org".into()],
        top_origins: vec!["https://merchant.example".into()],
    };
    let payment = ExpectedPayment {
        total_value: Some("1.00".into()),
        total_currency: Some("EUR".into()),
        ..ExpectedPayment::default()
    };
    let expect = AssertionExpectations {
        rp: &rp,
        challenge: "Y2hhbGxlbmdl",
        types: &[AssertionType::Get, AssertionType::PaymentGet],
        require_user_verification: true,
        payment: Some(&payment),
    };
    let stored = StoredCredential {
        credential_id: vec![1; 16],
        public_key_cbor: FUZZ_STORED_KEY.to_vec(),
        sign_count: 7,
        backup_eligible: false,
    };
    let input = AssertionInput {
        credential_id: &stored.credential_id,
        client_data_json,
        authenticator_data,
        signature: parts,
    };
    if let Ok(verdict) = verify_assertion(input, &expect, &stored) {
        if verdict.sign_count <= stored.sign_count {
            panic!("an assertion with a non-increasing counter was accepted");
        }
    }
}

#[cfg(test)]
#[path = "assertion_tests.rs"]
mod tests;
