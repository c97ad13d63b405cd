//! SKELETON: SQLite store (store helper).
