//! SKELETON: pki.
