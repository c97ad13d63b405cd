//! SKELETON: cli.
