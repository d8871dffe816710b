//! The admission error type.

/// Why admission refused or could not do something. Every variant maps to an HTTP status
/// and a stable `error` code on the wire ([`AdmissionError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The body is malformed, oversize, or has unknown or duplicate fields (400).
    #[error("parse: {0}")]
    Parse(String),
    /// No credentials, a signature that does not verify, a key that is not registered (for
    /// the name it claims), or a signed request outside its freshness window (401). Nothing
    /// is recorded: the request is not authenticated.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// The signer is known but not allowed to do this (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The statement is too old or from the future (400).
    #[error("stale: {0}")]
    Stale(String),
    /// No such proposal (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The proposal id is taken, or the request conflicts with the proposal's state (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The statement is authentic but does not fit (for example an approval bound to a
    /// different contract or evidence digest) (422).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The proposal's operation cannot apply to what observation found (it needs an object
    /// that is absent, or creates one that exists): denied, with a signed `deny` record (422).
    #[error("inapplicable: {reason}")]
    Inapplicable {
        proposal_id: String,
        /// The ledger id of the signed denial.
        record_id: Option<String>,
        reason: String,
    },
    /// A policy could not be parsed (422).
    #[error("policy: {0}")]
    Policy(String),
    /// The configuration is not acceptable (startup only).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The store failed: nothing was issued (503, fail closed). The store error is the
    /// source (not repeated here), so the cause chain prints each level once.
    #[error("store")]
    Store(#[from] seb_store::StoreError),
    /// The clock cannot be read or stepped backwards: nothing is issued or signed (503,
    /// fail closed).
    #[error("clock unavailable: {0}")]
    Clock(#[from] seb_store::clock::ClockError),
    /// Encoding or signing failed (500).
    #[error("internal: {0}")]
    Internal(String),
}

impl AdmissionError {
    /// The HTTP status.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Parse(_) | Self::Stale(_) => 400,
            Self::Unauthenticated(_) => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::Invalid(_) | Self::Policy(_) | Self::Inapplicable { .. } => 422,
            Self::Store(_) | Self::Clock(_) => 503,
            Self::Config(_) | Self::Internal(_) => 500,
        }
    }

    /// The stable error code carried in problem bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Parse(_) => "parse",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::Stale(_) => "stale",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Invalid(_) => "invalid",
            Self::Inapplicable { .. } => "inapplicable",
            Self::Policy(_) => "policy",
            Self::Config(_) => "config",
            Self::Store(_) => "store_unavailable",
            Self::Clock(_) => "clock_unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<seb_core::json::JsonError> for AdmissionError {
    fn from(e: seb_core::json::JsonError) -> Self {
        Self::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store failure's problem detail is the whole chain, each level once.
    #[test]
    fn a_store_error_detail_is_its_cause_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = AdmissionError::from(seb_store::StoreError::unavailable_from("postgres", io));
        assert_eq!(e.http_status(), 503);
        assert_eq!(
            seb_store::error_chain(&e),
            "store: store unavailable: postgres: connection refused"
        );
    }
}
