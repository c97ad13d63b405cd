//! SKELETON: daemon.
