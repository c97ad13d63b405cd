//! Attestation errors: one variant per rule, each with a stable snake_case code.

/// Attestation problems.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttestationError {
    /// Unknown format.
    UnsupportedFormat,
    /// attStmt is not the format's shape; names the member.
    MalformedStatement(&'static str),
    /// authData carries no attested credential data.
    NoAttestedCredential,
    /// The statement's alg is unknown or not in the policy.
    AlgorithmNotAllowed,
    /// Self attestation alg differs from the credential key's alg, or the key cannot do alg.
    AlgorithmMismatch,
    /// The statement signature does not verify.
    BadSignature,
    /// A key type, curve or size payhsm cannot verify with.
    UnsupportedKey,
    /// The attested credential key differs from the key the statement certifies.
    CredentialKeyMismatch,
    /// A certificate is not DER X.509 or a PEM/DER anchor cannot be read.
    CertificateMalformed,
    /// An attestation certificate fails a format's requirement; names the rule.
    CertificateRequirement(&'static str),
    /// id-fido-gen-ce-aaguid differs from authData's AAGUID (or is critical).
    AaguidMismatch,
    /// The challenge/nonce bound into the certificate or response is not ours.
    NonceMismatch,
    /// A chain certificate's signature does not verify.
    ChainBadSignature,
    /// x5c certificates that do not form one path.
    ChainBroken,
    /// An issuing certificate is not a CA.
    ChainNotCa,
    /// A certificate is expired (or not yet valid) at the verification time.
    CertificateNotValidAtTime,
    /// A signature algorithm payhsm does not verify.
    UnsupportedSignatureAlgorithm,
    /// The chain reaches no configured anchor and the policy requires one.
    UntrustedChain,
    /// The only anchor reached has an AAGUID allow-list without this AAGUID.
    AnchorAaguidNotAllowed,
    /// TPM: a pubArea/certInfo rule; names it.
    Tpm(&'static str),
    /// Android: the KeyDescription breaks a §8.4 rule; names it.
    AndroidKey(&'static str),
    /// Android: a certificate of the chain is on Google's attestation revocation list.
    AndroidKeyRevoked,
    /// SafetyNet: the JWS or its payload breaks a rule; names it.
    SafetyNet(&'static str),
    /// Apple App Attest: a server validation step fails; names it.
    AppAttest(&'static str),
}

impl AttestationError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedFormat => "unsupported_format",
            Self::MalformedStatement(_) => "attestation_malformed",
            Self::NoAttestedCredential => "attestation_no_credential",
            Self::AlgorithmNotAllowed => "attestation_alg_not_allowed",
            Self::AlgorithmMismatch => "attestation_alg_mismatch",
            Self::BadSignature => "attestation_bad_signature",
            Self::UnsupportedKey => "attestation_unsupported_key",
            Self::CredentialKeyMismatch => "credential_key_mismatch",
            Self::CertificateMalformed => "certificate_malformed",
            Self::CertificateRequirement(_) => "attestation_certificate_requirements",
            Self::AaguidMismatch => "aaguid_mismatch",
            Self::NonceMismatch => "attestation_nonce_mismatch",
            Self::ChainBadSignature => "chain_bad_signature",
            Self::ChainBroken => "chain_broken",
            Self::ChainNotCa => "chain_not_ca",
            Self::CertificateNotValidAtTime => "certificate_not_valid_at_time",
            Self::UnsupportedSignatureAlgorithm => "unsupported_signature_algorithm",
            Self::UntrustedChain => "untrusted_chain",
            Self::AnchorAaguidNotAllowed => "anchor_aaguid_not_allowed",
            Self::Tpm(_) => "tpm_invalid",
            Self::AndroidKey(_) => "android_key_invalid",
            Self::AndroidKeyRevoked => "android_key_revoked",
            Self::SafetyNet(_) => "safetynet_invalid",
            Self::AppAttest(_) => "appattest_invalid",
        }
    }
}

impl std::fmt::Display for AttestationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MalformedStatement(d)
            | Self::CertificateRequirement(d)
            | Self::Tpm(d)
            | Self::AndroidKey(d)
            | Self::SafetyNet(d)
            | Self::AppAttest(d) => write!(f, "{}: {d}", self.code()),
            _ => f.write_str(self.code()),
        }
    }
}
