//! SKELETON: isolation.
