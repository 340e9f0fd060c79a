//! The loadtests integration tests in one binary, as in the server's
//! tests/main.rs: each binary links the server, the generator and their
//! dependencies, which costs a link and tens of MB of a small CI disk.
//! tests/smoke.rs stays a binary of its own (it says why).

mod common;

mod all;
mod bad_input;
mod idle;
mod one_core;
