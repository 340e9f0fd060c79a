//! Switchboard: a support-session server.
//!
//! Reps wait in front of queues; customers arrive through session keys,
//! support buttons, issue forms, the public rep list or a browser help link,
//! and wait in a rep's personal queue or a team queue until a rep accepts.
//!
//! The crate is laid out by concept:
//! - [`domain`]: plain-Rust state (sessions, queues, the catalog of reps and
//!   teams, permissions). No sockets, no actors: unit-tested directly.
//! - [`store`]: the [`store::Store`] trait with versioned records, and its
//!   sled backend. Every acknowledged change is durable before it is acked.
//! - [`actors`]: thin actix shells around the domain: one per rep, team queue
//!   and session, a supervisor, and the directory that maps ids to addresses.
//! - [`protocol`]: the MessagePack-over-WebSocket wire format and error codes.
//! - [`connection`]: one WebSocket client, its run loop and request handlers.
//! - [`flows`]: the product flows, shared by WebSocket commands and REST.
//! - [`admin`]: the catalog's loading, seeding and admin writes.
//! - [`http`]: actix-web routes: REST API, WebSocket upgrade, health.
//! - [`client`]: the one Rust client used by tests, load tests and the CLI.
//! - [`fd_table`]: the table of open files, grown once at start.
pub mod actors;
pub mod admin;
pub mod app;
pub mod auth;
pub mod client;
pub mod config;
pub mod connection;
pub mod domain;
pub mod error;
pub mod fd_table;
pub mod flows;
pub mod http;
pub mod metrics;
pub mod protocol;
pub mod store;

pub use app::Application;
pub use config::Settings;
