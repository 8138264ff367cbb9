//! Helpers shared by the cross-crate tests (locating tools, starting servers).
