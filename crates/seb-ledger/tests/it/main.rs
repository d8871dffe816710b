//! The integration tests of `seb-ledger` (one test binary for the crate).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod checkpoint;
mod merkle;
mod oracle;
mod vectors;
mod verify;
