//! SKELETON: telemetry.
