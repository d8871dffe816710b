//! Admission end to end: proposals through admission, certificates through a real broker
//! (SQLite store shared with admission, the file-backed test double), over the library API
//! and over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod access;
mod browser;
mod common;
mod console;
mod edges;
mod flows;
mod http;
mod net_effect;
mod passkeys;
mod policy;
mod revocation;
