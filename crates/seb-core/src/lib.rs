//! # seb-core
//!
//! The SEB protocol (`SEB-SPEC.md` sections 2–4, 6, 7 and 8) as pure code: no I/O, no async,
//! no clock (time is always an argument), no randomness (seeds and nonces are arguments).
//!
//! - [`json`]: strict parsing (duplicate keys, unsafe integers, oversize bodies) and RFC 8785.
//! - [`digest`], [`keys`], [`envelope`]: `sha256:` digests, Ed25519 with strict verification,
//!   DSSE envelopes.
//! - [`types`]: contracts, certificates, approvals, requests, records, epoch statements.
//! - [`certificate`]: the unverified → verified typestate.
//! - [`constraints`], [`drift`]: the match rule and drift with tolerance.
//! - [`webauthn`]: passkey assertions over statements (spec 5.1).
//! - [`pipeline`]: checks 1–11 of section 7 in order, each with its decision.
//!
//! Architecture invariant: only [`certificate::UnverifiedCertificate::verify`] constructs a
//! [`certificate::VerifiedCertificate`], and only [`pipeline::authenticate`] constructs a
//! [`pipeline::Authenticated`]; nothing downstream accepts anything weaker.

pub mod certificate;
pub mod constraints;
pub mod digest;
pub mod drift;
pub mod envelope;
mod jcs;
pub mod json;
pub mod keys;
pub mod pipeline;
pub mod types;
pub mod webauthn;
