//! Apple App Attest (not a WebAuthn format): the server validation steps of Apple's
//! "Validating apps that connect to your server", for attestations and assertions.
use ring::digest;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};

use super::{apple, chain, keys, stmt};
use super::{AttestationError, TrustAnchors};
use crate::webauthn::authdata::AuthenticatorData;
use crate::webauthn::cbor::Value;

const FORMAT: &str = "apple-appattest";
const AAGUID_DEVELOPMENT: &[u8; 16] = b"appattestdevelop";
const AAGUID_PRODUCTION: &[u8; 16] = b"appattest\0\0\0\0\0\0\0";

fn err(what: &'static str) -> AttestationError {
    AttestationError::AppAttest(what)
}

fn sha256(parts: &[&[u8]]) -> digest::Digest {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish()
}

/// Which App Attest environment the app was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppAttestEnvironment {
    /// AAGUID `appattest` followed by seven zero bytes.
    Production,
    /// AAGUID `appattestdevelop`.
    Development,
}

/// An App Attest attestation object, decoded by the caller, and what it must match.
#[derive(Debug)]
pub struct AppAttestAttestationInput<'a> {
    /// `fmt` (must be `apple-appattest`).
    pub format: &'a str,
    /// `attStmt` (`x5c`, `receipt`).
    pub att_stmt: &'a Value,
    /// Parsed authData.
    pub auth_data: &'a AuthenticatorData,
    /// Raw authData bytes.
    pub auth_data_raw: &'a [u8],
    /// The one-time challenge data the server sent (hashed here to clientDataHash).
    pub client_data: &'a [u8],
    /// The key identifier the app reported (SHA-256 of the public key point).
    pub key_id: &'a [u8],
    /// Team ID "." bundle ID.
    pub app_id: &'a str,
    /// The expected environment.
    pub environment: AppAttestEnvironment,
}

/// A verified App Attest key, to store for later assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppAttestKey {
    /// The uncompressed P-256 point (65 bytes).
    pub public_key: Vec<u8>,
    /// The receipt, for fraud-risk queries to Apple.
    pub receipt: Vec<u8>,
    /// The counter (0 at attestation).
    pub sign_count: u32,
    /// The anchor the chain reached.
    pub anchor: String,
}

/// Verifies an App Attest attestation; the chain must reach a configured anchor.
pub fn verify_app_attest_attestation(
    input: &AppAttestAttestationInput<'_>,
    anchors: &TrustAnchors,
    now: time::OffsetDateTime,
) -> Result<AppAttestKey, AttestationError> {
    if input.format != FORMAT {
        return Err(AttestationError::UnsupportedFormat);
    }
    let s = input.att_stmt;
    stmt::only_keys(
        s,
        &["x5c", "receipt"],
        "apple-appattest: unknown attStmt member",
    )?;
    let receipt = stmt::bytes(s, "receipt")?;
    let x5c = stmt::x5c(s)?.ok_or(AttestationError::MalformedStatement("x5c"))?;
    let certs = chain::parse_x5c(&x5c)?;
    let leaf = certs
        .first()
        .ok_or(AttestationError::MalformedStatement("x5c"))?;
    // Step 1: credCert and the intermediate chain to the App Attest root.
    let anchor =
        chain::verify(&certs, anchors, None, now)?.ok_or(AttestationError::UntrustedChain)?;
    // Steps 2-4: nonce = SHA-256(authData || SHA-256(clientData)) is the credCert extension.
    let client_data_hash = sha256(&[input.client_data]);
    let nonce = sha256(&[input.auth_data_raw, client_data_hash.as_ref()]);
    if apple::nonce_extension(leaf)? != nonce.as_ref() {
        return Err(AttestationError::NonceMismatch);
    }
    // Step 5: the key identifier is SHA-256 of credCert's public key point.
    if keys::kind(leaf.public_key())? != keys::KeyKind::P256 {
        return Err(AttestationError::UnsupportedKey);
    }
    let point = leaf.public_key().subject_public_key.data.to_vec();
    if sha256(&[&point]).as_ref() != input.key_id {
        return Err(err("key id is not SHA-256 of the public key"));
    }
    // Step 6: rpIdHash is SHA-256 of the App ID.
    if sha256(&[input.app_id.as_bytes()]).as_ref() != input.auth_data.rp_id_hash.as_slice() {
        return Err(err("rpIdHash is not SHA-256 of the App ID"));
    }
    // Step 7: the counter is 0.
    if input.auth_data.sign_count != 0 {
        return Err(err("counter not 0"));
    }
    let credential = input
        .auth_data
        .attested
        .as_ref()
        .ok_or(AttestationError::NoAttestedCredential)?;
    // Step 8: the AAGUID names the environment.
    let expected = match input.environment {
        AppAttestEnvironment::Production => AAGUID_PRODUCTION,
        AppAttestEnvironment::Development => AAGUID_DEVELOPMENT,
    };
    if &credential.aaguid != expected {
        return Err(err("aaguid does not match the environment"));
    }
    // Step 9: the credential id is the key identifier.
    if credential.credential_id != input.key_id {
        return Err(err("credentialId is not the key id"));
    }
    Ok(AppAttestKey {
        public_key: point,
        receipt: receipt.to_vec(),
        sign_count: 0,
        anchor: anchor.name.clone(),
    })
}

/// An App Attest assertion, decoded by the caller, and the stored key state.
#[derive(Debug)]
pub struct AppAttestAssertionInput<'a> {
    /// The assertion object: a CBOR map {signature, authenticatorData}.
    pub assertion: &'a Value,
    /// The client data the app signed over (hashed here).
    pub client_data: &'a [u8],
    /// The stored uncompressed P-256 point.
    pub public_key: &'a [u8],
    /// The stored counter.
    pub stored_counter: u32,
    /// Team ID "." bundle ID.
    pub app_id: &'a str,
}

/// A verified assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppAttestAssertion {
    /// The new counter, to store.
    pub sign_count: u32,
}

/// Verifies an App Attest assertion.
pub fn verify_app_attest_assertion(
    input: &AppAttestAssertionInput<'_>,
) -> Result<AppAttestAssertion, AttestationError> {
    let a = input.assertion;
    stmt::only_keys(
        a,
        &["signature", "authenticatorData"],
        "assertion: unknown member",
    )?;
    let signature = stmt::bytes(a, "signature")?;
    let auth_data = stmt::bytes(a, "authenticatorData")?;
    // rpIdHash (32) || flags (1) || counter (4); an assertion carries nothing else we use.
    let (rp_id_hash, rest) = auth_data
        .split_at_checked(32)
        .ok_or(err("authenticatorData too short"))?;
    let counter = rest
        .get(1..5)
        .and_then(|c| <[u8; 4]>::try_from(c).ok())
        .map(u32::from_be_bytes)
        .ok_or(err("authenticatorData too short"))?;
    // Steps 1-2: nonce = SHA-256(authenticatorData || SHA-256(clientData)).
    let client_data_hash = sha256(&[input.client_data]);
    let nonce = sha256(&[auth_data, client_data_hash.as_ref()]);
    // Step 3: the signature verifies over nonce with the stored public key.
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, input.public_key)
        .verify(nonce.as_ref(), signature)
        .map_err(|_| AttestationError::BadSignature)?;
    // Step 4: rpIdHash is SHA-256 of the App ID.
    if sha256(&[input.app_id.as_bytes()]).as_ref() != rp_id_hash {
        return Err(err("rpIdHash is not SHA-256 of the App ID"));
    }
    // Step 5: the counter is greater than the stored counter.
    if counter <= input.stored_counter {
        return Err(err("counter not greater than stored"));
    }
    Ok(AppAttestAssertion {
        sign_count: counter,
    })
}
