//! The Switchboard load generator and its baselines.
//!
//! * [`scenarios`]: idle density, join to alert, routing throughput and
//!   chat relay, played over the real protocol with
//!   [`switchboard::client::Client`];
//! * [`relay`]: the bare WebSocket relay baseline, and the same relay on
//!   Switchboard's stack (actix-http and its own WebSocket layer);
//! * [`sled_bench`]: sled's raw write rate with the same durability;
//! * [`report`]: result.json, summary.md and latency.png;
//! * [`orchestrate`]: the `all` subcommand that runs everything.
pub mod catalog;
pub mod cli;
pub mod orchestrate;
pub mod procstat;
pub mod relay;
pub mod report;
pub mod scenarios;
pub mod sled_bench;
pub mod stats;
