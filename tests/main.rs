//! Every integration test in one binary.
//!
//! Each file under tests/ is a module here rather than its own test
//! binary: every binary links the whole server and its dependencies, and
//! twenty of them took minutes to link and gigabytes of disk on a small
//! CI machine. Each test still starts its own server on 127.0.0.1:0 with
//! its own data directory, so they run in parallel as before.

mod common;

mod allocator;
mod bad_input;
mod cli;
mod config_cli;
mod docs_match_code;
mod fd_table;
mod flows_basic;
mod flows_entry;
mod flows_queues;
mod flows_sessions;
mod logging;
mod metrics;
mod openapi;
mod ops_files;
mod recovery;
mod rest_api;
mod restart;
mod resume;
mod scheduling;
mod shutdown;
mod slow_client;
mod sockets;
mod supervisor_fallback;
mod supervisor_routing;
mod supervisor_rules;
mod upgrade;
mod workers;
