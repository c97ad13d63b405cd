//! Why a JWS or a JWKS was refused: one enum, one stable code per reason.

use std::fmt;

/// Why a compact JWS or a JWKS was refused. [`JoseError::code`] is the stable code a caller
/// sees (`payhsm authz verify` prints `invalid: <code>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoseError {
    /// The JWS is not well formed: parts, base64url, JSON, sizes.
    Format(FormatError),
    /// The header's `alg` is not `ES256` (this includes `none` and every HMAC).
    UnsupportedAlgorithm,
    /// The header names no `kid`.
    MissingKid,
    /// The header's `kid` is not in the JWKS.
    UnknownKid,
    /// The signature does not verify under the key the `kid` names.
    BadSignature,
    /// A time claim refuses the token at the given time.
    Time(TimeError),
    /// The JWKS is unusable.
    Jwks(JwksError),
}

/// A JWS that is not well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// Longer than [`MAX_JWS_LEN`](super::jws::MAX_JWS_LEN) bytes.
    TooLong,
    /// Not exactly three `.`-separated parts.
    PartCount,
    /// A part is not base64url without padding.
    Base64,
    /// The protected header is not a JSON object.
    Header,
    /// The header carries `crit`: this verifier understands no extension.
    Critical,
    /// The header's `typ` is present and not `JWT`.
    Type,
    /// The signature is not 64 bytes (r || s); a DER signature lands here.
    SignatureLength,
    /// The payload is not a JSON object.
    ClaimsNotObject,
    /// `exp`, `iat` or `nbf` is not an integer NumericDate.
    ClaimType,
    /// The header or the claims repeat a member name.
    DuplicateMember,
}

/// A time claim that refuses the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeError {
    /// `exp` is not after the verification time.
    Expired,
    /// `iat` is more than the allowed skew after the verification time.
    IssuedInFuture,
    /// `nbf` is more than the allowed skew after the verification time.
    NotYetValid,
}

/// A JWKS that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwksError {
    /// Larger than [`MAX_JWKS_LEN`](super::jwk::MAX_JWKS_LEN) bytes or more than
    /// [`MAX_JWKS_KEYS`](super::jwk::MAX_JWKS_KEYS) keys.
    TooLarge,
    /// Not a JSON object with a `keys` array of objects.
    NotJwks,
    /// The `keys` array is empty.
    Empty,
    /// A key is not an EC P-256 signing key for ES256 (`kty`, `crv`, `alg`, `use`, `key_ops`).
    UnsupportedKey,
    /// A key carries private material (`d`).
    PrivateKey,
    /// `x` or `y` is not the base64url of 32 bytes.
    Coordinate,
    /// A key has no `kid`, or an empty one.
    MissingKid,
    /// Two keys share a `kid`.
    DuplicateKid,
}

impl JoseError {
    /// The stable snake_case code of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Format(e) => match e {
                FormatError::TooLong => "too_long",
                FormatError::PartCount => "wrong_part_count",
                FormatError::Base64 => "bad_base64",
                FormatError::Header => "bad_header",
                FormatError::Critical => "unsupported_crit",
                FormatError::Type => "bad_typ",
                FormatError::SignatureLength => "bad_signature_length",
                FormatError::ClaimsNotObject => "claims_not_object",
                FormatError::ClaimType => "bad_time_claim",
                FormatError::DuplicateMember => "duplicate_member",
            },
            Self::UnsupportedAlgorithm => "unsupported_alg",
            Self::MissingKid => "missing_kid",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::Time(e) => match e {
                TimeError::Expired => "expired",
                TimeError::IssuedInFuture => "iat_in_future",
                TimeError::NotYetValid => "not_yet_valid",
            },
            Self::Jwks(e) => match e {
                JwksError::TooLarge => "jwks_too_large",
                JwksError::NotJwks => "jwks_malformed",
                JwksError::Empty => "jwks_empty",
                JwksError::UnsupportedKey => "jwks_unsupported_key",
                JwksError::PrivateKey => "jwks_private_key",
                JwksError::Coordinate => "jwks_bad_coordinate",
                JwksError::MissingKid => "jwks_missing_kid",
                JwksError::DuplicateKid => "jwks_duplicate_kid",
            },
        }
    }
}

impl fmt::Display for JoseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Self::Format(FormatError::TooLong) => "the JWS is too long",
            Self::Format(FormatError::PartCount) => "a compact JWS has exactly three parts",
            Self::Format(FormatError::Base64) => "a part is not base64url without padding",
            Self::Format(FormatError::Header) => "the protected header is not a JSON object",
            Self::Format(FormatError::Critical) => "the header lists critical extensions",
            Self::Format(FormatError::Type) => "the header's typ is not JWT",
            Self::Format(FormatError::SignatureLength) => {
                "the ES256 signature is not 64 bytes (r || s)"
            }
            Self::Format(FormatError::ClaimsNotObject) => "the payload is not a JSON object",
            Self::Format(FormatError::ClaimType) => "exp, iat or nbf is not an integer",
            Self::Format(FormatError::DuplicateMember) => "a member name is repeated",
            Self::UnsupportedAlgorithm => "the algorithm is not ES256",
            Self::MissingKid => "the header names no kid",
            Self::UnknownKid => "the kid is not in the JWKS",
            Self::BadSignature => "the signature does not verify",
            Self::Time(TimeError::Expired) => "the token has expired",
            Self::Time(TimeError::IssuedInFuture) => "the token is issued in the future",
            Self::Time(TimeError::NotYetValid) => "the token is not yet valid",
            Self::Jwks(JwksError::TooLarge) => "the JWKS is too large",
            Self::Jwks(JwksError::NotJwks) => "not a JWKS: {\"keys\": [objects]}",
            Self::Jwks(JwksError::Empty) => "the JWKS has no keys",
            Self::Jwks(JwksError::UnsupportedKey) => "a JWKS key is not an EC P-256 ES256 key",
            Self::Jwks(JwksError::PrivateKey) => "a JWKS key carries private material",
            Self::Jwks(JwksError::Coordinate) => "a JWKS key's x or y is not 32 bytes",
            Self::Jwks(JwksError::MissingKid) => "a JWKS key has no kid",
            Self::Jwks(JwksError::DuplicateKid) => "two JWKS keys share a kid",
        };
        write!(f, "{what} ({})", self.code())
    }
}

impl std::error::Error for JoseError {}

impl From<FormatError> for JoseError {
    fn from(e: FormatError) -> Self {
        Self::Format(e)
    }
}

impl From<TimeError> for JoseError {
    fn from(e: TimeError) -> Self {
        Self::Time(e)
    }
}

impl From<JwksError> for JoseError {
    fn from(e: JwksError) -> Self {
        Self::Jwks(e)
    }
}
