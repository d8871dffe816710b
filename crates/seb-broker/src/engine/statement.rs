//! Statement mode: apply admission's signed epoch statements to the local store.

use seb_core::types::EpochStatement;
use seb_store::{Revocation, StoreError, error_chain};
use tracing::info;

use super::{Broker, EpochSource};

impl Broker {
    /// Statement mode: verify a signed epoch statement from admission and apply it to the
    /// local store. Epochs only move forward; a statement older than the newest applied one
    /// is refused (no rollback by replaying an old statement).
    pub async fn apply_statement(
        &self,
        envelope: &seb_core::envelope::Envelope,
    ) -> Result<EpochStatement, String> {
        let EpochSource::Statement { admission_keys } = &self.settings.epoch_source else {
            return Err("this broker reads epochs from its store, not from statements".into());
        };
        let verified = envelope
            .verify(seb_core::envelope::PayloadType::Epoch, admission_keys)
            .map_err(|e| format!("statement: {e}"))?;
        let st: EpochStatement =
            verified.parse(self.settings.body_limit).map_err(|e| format!("statement: {e}"))?;
        if let Ok(g) = self.statement.lock()
            && let Some((newest, _)) = *g
            && st.issued_at_ms < newest
        {
            return Err(format!(
                "statement issued at {} is older than the applied one ({newest})",
                st.issued_at_ms
            ));
        }
        let now_ms = self.clock.now_ms().map_err(|e| format!("statement not applied: {e}"))?;
        let store_err = |e: StoreError| format!("store: {}", error_chain(&e));
        // Bring the local store up to the statement (monotonic, idempotent).
        let mut ep = self.store.epochs().await.map_err(store_err)?;
        if ep.policy_epoch > st.policy_epoch || ep.revocation_epoch > st.revocation_epoch {
            return Err("statement would move an epoch backwards".into());
        }
        while ep.policy_epoch < st.policy_epoch {
            ep = self.store.bump_policy_epoch(now_ms, None).await.map_err(store_err)?;
        }
        while ep.revocation_epoch < st.revocation_epoch {
            ep = self.store.revoke(Revocation::All, now_ms, None).await.map_err(store_err)?;
        }
        let (cids, agents) = self.store.revocations().await.map_err(store_err)?;
        for c in st.revoked_cids.iter().filter(|c| !cids.contains(c)) {
            self.store.revoke(Revocation::Cid(c.clone()), now_ms, None).await.map_err(store_err)?;
        }
        for a in st.revoked_agents.iter().filter(|a| !agents.contains(a)) {
            self.store
                .revoke(Revocation::Agent(a.clone()), now_ms, None)
                .await
                .map_err(store_err)?;
        }
        if let Ok(mut g) = self.statement.lock() {
            *g = Some((st.issued_at_ms, st.ttl_ms));
        }
        info!(
            policy_epoch = st.policy_epoch,
            revocation_epoch = st.revocation_epoch,
            "epoch statement applied"
        );
        Ok(st)
    }
}
