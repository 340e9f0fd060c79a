//! The product's rules in plain Rust: no sockets, no actors, no storage
//! calls. Actors hold these values and call their methods; tests call them
//! directly.
pub mod catalog;
pub mod chat;
pub mod ids;
pub mod keys;
pub mod outbox;
pub mod queue;
pub mod rep_state;
pub mod routing;
pub mod rules;
pub mod session;

pub use ids::*;
