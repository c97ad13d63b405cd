//! SKELETON: transport.
