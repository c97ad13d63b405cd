//! SKELETON: service.
