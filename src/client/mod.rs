//! The Rust client (written next).
