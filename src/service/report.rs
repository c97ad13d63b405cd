//! The evidence report's I/O shell: gather the inputs (the whole log, the key inventory, the
//! system's facts), derive the report in the pure [`crate::audit::report::derive`], and sign
//! its digest in the HSM with the audit key. Used by the daemon (`GET /v1/audit/report`) and by
//! `payhsm audit report --data-dir`.

use super::keys::KeyListing;
use super::Error;
use crate::audit::report::TlsFacts;
use crate::audit::report::{
    claims, derive, InventoryKey, Period, ReportInputs, SignedReport, SystemFacts, TokenFacts,
};
use crate::card::TokenFormat;
use crate::jose::Jwk;
use crate::keys::Hsm;
use crate::store::Store;

/// The facts a report states of a configuration: how PANs are stored (what the code does),
/// the token format and the TLS policy. `source` says where they come from.
pub fn system_facts(source: &str, tokens: TokenFormat, tls: TlsFacts) -> SystemFacts {
    SystemFacts {
        source: source.to_owned(),
        pan_encryption: "AES-256-GCM under versioned data keys (32 random bytes each, stored \
                         only wrapped by the KEK in the HSM; an HKDF-SHA256 subkey per purpose)"
            .to_owned(),
        pan_aad: "the token, the domain and the data key version".to_owned(),
        pan_fingerprint: "HMAC-SHA256 under a data key subkey (never a bare hash)".to_owned(),
        tokens: TokenFacts {
            keep_first: tokens.keep_first(),
            keep_last: tokens.keep_last(),
            format_preserving: true,
            luhn_invalid: true,
        },
        tls,
    }
}

/// The inventory as the report carries it.
pub(crate) fn inventory_keys(listing: KeyListing) -> Vec<InventoryKey> {
    listing
        .keys
        .into_iter()
        .map(|k| InventoryKey {
            purpose: k.purpose.to_owned(),
            version: k.version,
            label: k.label,
            algorithm: k.algorithm.to_owned(),
            kcv: k.kcv,
            thumbprint: k.thumbprint,
            state: k.state,
            created_at: k.created_at,
            activated_at: k.activated_at,
            ended_at: k.ended_at,
            cryptoperiod_end: k.cryptoperiod_end,
            records: k.records,
        })
        .collect()
}

/// Where a report is signed: the HSM audit key and its public half.
pub(crate) struct AuditSigner<'a> {
    /// The HSM.
    pub(crate) hsm: &'a Hsm,
    /// The audit key's label.
    pub(crate) label: &'a str,
    /// The audit key as a JWK.
    pub(crate) jwk: &'a Jwk,
}

/// Reads the whole log from `store` (up to its head now), derives the report of `period` with
/// `inventory` and `facts`, and signs it.
pub(crate) async fn signed_report(
    store: &dyn Store,
    signer: AuditSigner<'_>,
    period: Period,
    inventory: Vec<InventoryKey>,
    facts: SystemFacts,
) -> Result<SignedReport, Error> {
    let inputs = ReportInputs {
        period,
        generated_at: crate::clock::now_rfc3339(),
        inventory,
        facts,
    };
    let log = crate::store::read_whole_audit_log(store).await?;
    let report = derive(&inputs, &log);
    let jws =
        super::audit::sign_jws_with(signer.hsm, signer.label, signer.jwk, &claims(&report)).await?;
    Ok(SignedReport { report, jws })
}
