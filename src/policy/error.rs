//! Why a policy folder was refused at load.

use std::fmt;
use std::path::PathBuf;

/// Loading the policy folder failed; the daemon must not serve with it.
///
/// Every variant names the file it is about. Variants are `#[non_exhaustive]` so that only
/// this crate constructs them.
#[derive(Debug)]
#[non_exhaustive]
pub enum PolicyError {
    /// A file could not be read.
    #[non_exhaustive]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The Cedar schema does not parse or is not well formed.
    #[non_exhaustive]
    Schema {
        /// The schema file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The Cedar policies do not parse.
    #[non_exhaustive]
    Parse {
        /// The policy file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A policy (or template) has no `@id("...")` annotation, or an empty one.
    #[non_exhaustive]
    MissingId {
        /// The policy file.
        path: PathBuf,
        /// The start of the offending policy's text.
        policy: String,
    },
    /// Two policies carry the same `@id`.
    #[non_exhaustive]
    DuplicateId {
        /// The policy file.
        path: PathBuf,
        /// The repeated id.
        id: String,
    },
    /// The policy file holds a template; only static policies are allowed.
    #[non_exhaustive]
    Template {
        /// The policy file.
        path: PathBuf,
        /// The template's `@id`, if any.
        id: String,
    },
    /// The policies do not validate against the schema in strict mode.
    #[non_exhaustive]
    Validation {
        /// The policy file.
        path: PathBuf,
        /// One line per validation error.
        errors: Vec<String>,
    },
    /// The identity-to-group map is malformed or inconsistent.
    #[non_exhaustive]
    Identities {
        /// The identities file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => write!(f, "{}: cannot read: {source}", path.display()),
            Self::Schema { path, message } => {
                write!(f, "{}: invalid Cedar schema: {message}", path.display())
            }
            Self::Parse { path, message } => {
                write!(
                    f,
                    "{}: Cedar policies do not parse: {message}",
                    path.display()
                )
            }
            Self::MissingId { path, policy } => write!(
                f,
                "{}: policy without an @id(\"...\") annotation: {policy}",
                path.display()
            ),
            Self::DuplicateId { path, id } => {
                write!(f, "{}: duplicate policy @id(\"{id}\")", path.display())
            }
            Self::Template { path, id } => write!(
                f,
                "{}: template @id(\"{id}\") is not allowed, only static policies",
                path.display()
            ),
            Self::Validation { path, errors } => write!(
                f,
                "{}: policies fail strict schema validation: {}",
                path.display(),
                errors.join("; ")
            ),
            Self::Identities { path, message } => {
                write!(f, "{}: invalid identities: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for PolicyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}
