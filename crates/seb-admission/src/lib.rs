//! # seb-admission
//!
//! The assurance boundary of SEB-SPEC section 5: the only component that turns an agent's
//! proposal into a certificate the broker accepts.
//!
//! ```text
//! signed proposal ─► authenticate (agent registry) ─► compile (PlatformProfile)
//!   ─► observe read-only (Target::observe) ─► evidence ─► consequence score (L0..L5)
//!   ─► Cedar policy (may propose? escalate?) ─► certification path (policy | quorum | human)
//!   ─► approvals bound to contract and evidence digests ─► issue (issuer-signed certificate)
//! ```
//!
//! - [`config`]: the `[admission]` TOML table, the agent, approver, admin and break-glass
//!   registries.
//! - [`scoring`]: the documented consequence score and its mapping to a risk level.
//! - [`policy`]: Cedar policies (who may propose what, and path escalation).
//! - [`paths`]: what each level requires, escalation only.
//! - [`net_effect`]: net-effect scoring of split proposals (spec 5.2).
//! - [`records`]: the signed admission records and epoch statements written to the ledger.
//! - [`service`]: [`service::Admission`], the state machine of proposals.
//! - [`http`]: the `/v1/admission/...` API as an axum router.
//! - [`access`]: who may read what (the callers of signed requests and their roles).
//! - [`client`]: what agents, approvers and operators sign (used by the CLI and tests).
//! - [`console`]: the approvers' web console under `/console` (spec 12.2): passkey sign-in,
//!   pending list, proposal pages, passkey-signed approve/deny, past decisions, enrolment page.
//! - [`notify`]: `[admission.notify]`, a JSON message when a proposal starts waiting and when
//!   it is decided.
//!
//! Architecture invariants:
//! - Nothing but [`service::Admission`]'s issuance signs a certificate with the issuer key,
//!   and it does so only after the issuance record is durable in the ledger.
//! - The path actually required is never weaker than the level's rule: policy and
//!   configuration can only add requirements ([`paths::Requirement::max`]).
//! - L0 (advisory) and L5 (never autonomous) are never issued by the autonomous paths.
//! - An approval counts only when its signature verifies under the registered approver key,
//!   it names that approver, and it is bound to the proposal's exact contract and evidence
//!   digests.
//! - The rationale is stored and shown, never read by a decision.

pub mod access;
pub mod client;
pub mod clock;
pub mod config;
pub mod console;
pub mod error;
pub mod http;
pub mod net_effect;
pub mod notify;
pub mod paths;
pub mod policy;
pub mod records;
pub mod scoring;
pub mod service;

pub use config::AdmissionConfig;
pub use error::AdmissionError;
pub use service::{Admission, Platforms};
