//! Why a ceremony input was refused. No variant carries a component, key or share byte.

/// Why a key component or combined key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ComponentError {
    /// The transcription holds a character other than a hex digit or a space.
    InvalidHexDigit,
    /// The transcription does not hold exactly 64 hex digits.
    WrongLength {
        /// How many hex digits it holds.
        digits: usize,
    },
    /// Fewer than two components: one custodian would know the whole key.
    TooFewComponents {
        /// How many were given.
        given: usize,
    },
    /// The components XOR to the all-zero key (for example the same component entered twice).
    ZeroKey,
    /// Key material of a length other than 32 bytes.
    WrongKeyLength {
        /// The length given, in bytes.
        len: usize,
    },
    /// The operating system's random source failed.
    RandomUnavailable,
}

impl ComponentError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidHexDigit => "component_invalid_hex_digit",
            Self::WrongLength { .. } => "component_wrong_length",
            Self::TooFewComponents { .. } => "component_too_few",
            Self::ZeroKey => "component_zero_key",
            Self::WrongKeyLength { .. } => "component_wrong_key_length",
            Self::RandomUnavailable => "component_random_unavailable",
        }
    }
}

impl std::fmt::Display for ComponentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidHexDigit => f.write_str("a component holds only hex digits and spaces"),
            Self::WrongLength { digits } => {
                write!(f, "a component has 64 hex digits, this one has {digits}")
            }
            Self::TooFewComponents { given } => {
                write!(f, "a key needs at least 2 components, {given} given")
            }
            Self::ZeroKey => f.write_str("the components combine to the all-zero key"),
            Self::WrongKeyLength { len } => write!(f, "a key has 32 bytes, not {len}"),
            Self::RandomUnavailable => f.write_str("the random source is unavailable"),
        }
    }
}

impl std::error::Error for ComponentError {}

/// Why a Shamir split, recovery or share transcript was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShamirError {
    /// Threshold and share count outside 2 <= M <= N <= 255.
    InvalidParameters {
        /// The threshold M asked for.
        threshold: u8,
        /// The share count N asked for.
        shares: u8,
    },
    /// An empty secret, or one longer than [`super::MAX_SECRET_LEN`].
    InvalidSecretLength {
        /// The length given, in bytes.
        len: usize,
    },
    /// The operating system's random source failed.
    RandomUnavailable,
    /// Fewer shares than the threshold recorded in them.
    TooFewShares {
        /// Shares given.
        given: usize,
        /// The threshold M.
        needed: u8,
    },
    /// The same share number twice.
    DuplicateShare {
        /// The share number.
        x: u8,
    },
    /// Shares from different splits (different set ids).
    MixedSets,
    /// Shares that disagree on M or N.
    MismatchedParameters,
    /// Shares whose values differ in length.
    MismatchedLengths,
    /// A share number of 0 or above N.
    InvalidShareNumber {
        /// The share number.
        x: u8,
    },
    /// More than M shares were given and they do not lie on one polynomial: at least one is
    /// wrong.
    InconsistentShares,
    /// A transcript that is not a `payhsm-share-v1` line of the expected shape.
    MalformedTranscript {
        /// Which field is wrong.
        field: TranscriptField,
    },
    /// A transcript whose checksum does not match: a typo. Re-enter that share.
    TranscriptChecksum {
        /// The share number as read from the line (it may itself be the typo).
        x: Option<u8>,
    },
}

/// A field of a share transcript, named in [`ShamirError::MalformedTranscript`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TranscriptField {
    /// The line as a whole: too long, not ASCII, or too few fields.
    Line,
    /// The leading `payhsm-share-v1` tag.
    Tag,
    /// The 16-hex-digit set id.
    SetId,
    /// The `M-of-N` field.
    Parameters,
    /// The share number.
    ShareNumber,
    /// The share value.
    Value,
    /// The 4-hex-digit checksum.
    Checksum,
}

impl TranscriptField {
    fn name(self) -> &'static str {
        match self {
            Self::Line => "line",
            Self::Tag => "tag",
            Self::SetId => "set id",
            Self::Parameters => "M-of-N",
            Self::ShareNumber => "share number",
            Self::Value => "share value",
            Self::Checksum => "checksum",
        }
    }
}

impl ShamirError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidParameters { .. } => "shamir_invalid_parameters",
            Self::InvalidSecretLength { .. } => "shamir_invalid_secret_length",
            Self::RandomUnavailable => "shamir_random_unavailable",
            Self::TooFewShares { .. } => "shamir_too_few_shares",
            Self::DuplicateShare { .. } => "shamir_duplicate_share",
            Self::MixedSets => "shamir_mixed_sets",
            Self::MismatchedParameters => "shamir_mismatched_parameters",
            Self::MismatchedLengths => "shamir_mismatched_lengths",
            Self::InvalidShareNumber { .. } => "shamir_invalid_share_number",
            Self::InconsistentShares => "shamir_inconsistent_shares",
            Self::MalformedTranscript { .. } => "shamir_malformed_transcript",
            Self::TranscriptChecksum { .. } => "shamir_transcript_checksum",
        }
    }
}

impl std::fmt::Display for ShamirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidParameters { threshold, shares } => write!(
                f,
                "{threshold}-of-{shares} is not allowed: need 2 <= M <= N <= 255"
            ),
            Self::InvalidSecretLength { len } => {
                write!(f, "a secret of {len} bytes cannot be split")
            }
            Self::RandomUnavailable => f.write_str("the random source is unavailable"),
            Self::TooFewShares { given, needed } => {
                write!(f, "{given} shares given, {needed} needed")
            }
            Self::DuplicateShare { x } => write!(f, "share {x} was given twice"),
            Self::MixedSets => f.write_str("the shares come from different splits"),
            Self::MismatchedParameters => f.write_str("the shares disagree on M-of-N"),
            Self::MismatchedLengths => f.write_str("the shares differ in length"),
            Self::InvalidShareNumber { x } => write!(f, "share number {x} is out of range"),
            Self::InconsistentShares => {
                f.write_str("the shares do not agree: at least one of them is wrong")
            }
            Self::MalformedTranscript { field } => {
                write!(f, "the share transcript has a bad {}", field.name())
            }
            Self::TranscriptChecksum { x: Some(x) } => write!(
                f,
                "share {x}: checksum mismatch, the line has a typo; re-enter share {x}"
            ),
            Self::TranscriptChecksum { x: None } => {
                f.write_str("checksum mismatch, the line has a typo; re-enter it")
            }
        }
    }
}

impl std::error::Error for ShamirError {}
