//! Net-effect accounting (SEB-SPEC section 5.2): the changes admission certified, per agent
//! and scope, so that a proposal can be scored as the net effect of the window it completes.
//!
//! The store keeps the log opaque: `change` is admission's JSON, never parsed here. What
//! the store guarantees is the order:
//!
//! - [`NetEffectLog::net_effect_window`] reads one consistent snapshot of the changes of
//!   `(agent, scope_key)` certified at or after `since_ms`, oldest first, each with its
//!   `seq` (unique and increasing across the whole log).
//! - [`NetEffectLog::net_effect_append`] appends one change **only if** no change of the
//!   same `(agent, scope_key)` with `at_ms >= since_ms` was appended after `seen_seq` (the
//!   highest `seq` the caller read, `None` for an empty window): the window is unchanged
//!   since the caller scored against it. Otherwise it appends nothing and answers
//!   [`NetEffectAppend::Conflict`]; the caller reads the window again and re-scores.
//!   Appends to one `(agent, scope_key)` are serial across every replica sharing the store
//!   (SQLite: the single writer; PostgreSQL: a transaction-scoped advisory lock on the
//!   scope's hash), so of two concurrent proposals scored against the same window exactly
//!   one is appended and the other is re-scored with it.
//! - Rows are never updated; nothing but [`NetEffectLog::net_effect_prune`] removes them,
//!   and only rows older than a horizon the caller chooses (longer than any window).

use crate::StoreFuture;

/// One certified change as admission logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedChange {
    /// Position in the log (assigned by the store on append; ignored on input).
    pub seq: u64,
    /// The agent that proposed it.
    pub agent: String,
    /// The accounting scope (`<platform>|<scope kind>|<key>`), chosen by admission.
    pub scope_key: String,
    /// The proposal that was certified.
    pub proposal_id: String,
    /// The certificate id.
    pub cid: String,
    /// When it was certified (ms).
    pub at_ms: u64,
    /// The risk level (0..=5) of the path it was certified on.
    pub risk_level: u8,
    /// Admission's description of the change (JSON, opaque to the store).
    pub change: String,
}

/// What [`NetEffectLog::net_effect_append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetEffectAppend {
    /// Appended at this `seq`.
    Appended {
        /// The new change's position.
        seq: u64,
    },
    /// The window changed since the caller read it; nothing was written.
    Conflict,
}

/// The net-effect log. Every [`Store`](crate::Store) backend implements it.
pub trait NetEffectLog: Send + Sync {
    /// The changes of `agent` on `scope_key` certified at or after `since_ms`, oldest first.
    fn net_effect_window<'a>(
        &'a self,
        agent: &'a str,
        scope_key: &'a str,
        since_ms: u64,
    ) -> StoreFuture<'a, Vec<CertifiedChange>>;

    /// Append `change` if the window `(change.agent, change.scope_key, since_ms)` holds no
    /// change after `seen_seq`; see the module documentation.
    fn net_effect_append(
        &self,
        change: CertifiedChange,
        since_ms: u64,
        seen_seq: Option<u64>,
    ) -> StoreFuture<'_, NetEffectAppend>;

    /// Remove changes certified before `before_ms` (housekeeping); returns how many.
    fn net_effect_prune(&self, before_ms: u64) -> StoreFuture<'_, u64>;
}

/// Inside `impl NetEffectLog for Wrapper`, forward every method to the store in field
/// `$field` (any `Deref` to a [`NetEffectLog`]).
#[macro_export]
macro_rules! forward_net_effect_log {
    ($f:ident) => {
        fn net_effect_window<'a>(
            &'a self,
            agent: &'a str,
            scope_key: &'a str,
            since_ms: u64,
        ) -> $crate::StoreFuture<'a, Vec<$crate::net_effect::CertifiedChange>> {
            self.$f.net_effect_window(agent, scope_key, since_ms)
        }
        fn net_effect_append(
            &self,
            change: $crate::net_effect::CertifiedChange,
            since_ms: u64,
            seen_seq: Option<u64>,
        ) -> $crate::StoreFuture<'_, $crate::net_effect::NetEffectAppend> {
            self.$f.net_effect_append(change, since_ms, seen_seq)
        }
        fn net_effect_prune(&self, before_ms: u64) -> $crate::StoreFuture<'_, u64> {
            self.$f.net_effect_prune(before_ms)
        }
    };
}

/// Longest accepted `scope_key`, `agent`, `proposal_id` or `cid` (bytes).
pub const MAX_KEY_LEN: usize = 1024;
/// Longest accepted `change` (bytes).
pub const MAX_CHANGE_LEN: usize = 256 * 1024;

/// Check an input change's sizes (every backend refuses the same inputs).
pub fn check_change(c: &CertifiedChange) -> Result<(), crate::StoreError> {
    for (what, v) in [
        ("agent", &c.agent),
        ("scope_key", &c.scope_key),
        ("proposal_id", &c.proposal_id),
        ("cid", &c.cid),
    ] {
        if v.is_empty() || v.len() > MAX_KEY_LEN {
            return Err(crate::StoreError::invalid(format!(
                "net effect: `{what}` must be 1..={MAX_KEY_LEN} bytes"
            )));
        }
    }
    if c.change.len() > MAX_CHANGE_LEN {
        return Err(crate::StoreError::invalid(format!(
            "net effect: `change` exceeds {MAX_CHANGE_LEN} bytes"
        )));
    }
    if c.risk_level > 5 {
        return Err(crate::StoreError::invalid("net effect: risk_level must be 0..=5"));
    }
    Ok(())
}
