//! SKELETON: api.
