//! SKELETON: client.
