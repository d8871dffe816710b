//! Stage `admin`: signed admin requests (their ids are remembered in the store, so one
//! replayed to any replica is refused), policy loads (the epoch moves only when the digest
//! changes; every replica follows the policy in force in the store), revocation, epochs.

use seb_core::digest::Digest;
use seb_core::envelope::{Envelope, pae};
use seb_core::json;
use seb_core::keys::KeyId;
use seb_core::types::EpochStatement;
use seb_store::Revocation;
use seb_store::admission::PolicyLoad;
use seb_store::admission::ProposalFilter;
use serde_json::Value;
use std::sync::Arc;
use tracing::{info, warn};

use super::{Admission, EpochChange, PolicyVersion, short, statement_after};
use crate::client::{ADMIN_MEDIA_TYPE, AdminRequest};
use crate::error::AdmissionError;
use crate::policy::{PolicyEngine, PolicyInput, PolicyOutcome};
use crate::records::sign_statement;

impl Admission {
    async fn epoch_statement_after(
        &self,
        change: &EpochChange,
        now: u64,
    ) -> Result<EpochStatement, AdmissionError> {
        let epochs = self.store.epochs().await?;
        let revoked = self.store.revocations().await?;
        Ok(statement_after(&epochs, revoked, change, now, self.settings.statement_ttl_ms))
    }

    pub(super) async fn load_policy_text(
        &self,
        text: &str,
        by: &str,
    ) -> Result<u64, AdmissionError> {
        let engine = Arc::new(PolicyEngine::new(text, &self.agents)?);
        let _g = self.epoch_lock.lock().await;
        let now = self.now()?;
        let statement = self.epoch_statement_after(&EpochChange::Policy, now).await?;
        let signed = sign_statement(&statement, &self.issuer)?;
        let (epochs, changed) = self
            .state()?
            .load_policy(PolicyLoad {
                digest: engine.digest().to_string(),
                text: text.to_owned(),
                at_ms: now,
                loaded_by: by.to_owned(),
                record: Some(signed.entry),
            })
            .await?;
        if changed && epochs.policy_epoch != statement.policy_epoch {
            warn!(
                expected = statement.policy_epoch,
                got = epochs.policy_epoch,
                "policy epoch moved concurrently"
            );
        }
        self.set_policy(engine.clone(), epochs.policy_epoch)?;
        info!(policy_epoch = epochs.policy_epoch, digest = %engine.digest(), loaded_by = by, changed, "policy loaded");
        Ok(epochs.policy_epoch)
    }

    /// The policy in force in the store (any replica may have loaded it) and its epoch; this
    /// replica's engine follows it. An epoch bumped without a policy load (an operator's
    /// explicit invalidation) keeps the text and adopts the epoch.
    pub(super) async fn policy_in_force(&self) -> Result<(Arc<PolicyEngine>, u64), AdmissionError> {
        let (engine, epoch) = self.active_policy()?;
        let epochs = self.store.epochs().await?;
        if epochs.policy_epoch == epoch {
            return Ok((engine, epoch));
        }
        let latest = self.state()?.policies().await?.pop();
        let engine = match latest {
            Some(p)
                if p.policy_epoch == epochs.policy_epoch
                    && p.digest != engine.digest().to_string() =>
            {
                info!(policy_epoch = p.policy_epoch, digest = %p.digest, loaded_by = %p.loaded_by, "following the policy loaded at another replica");
                Arc::new(PolicyEngine::new(&p.text, &self.agents)?)
            }
            _ => engine,
        };
        self.set_policy(engine.clone(), epochs.policy_epoch)?;
        Ok((engine, epochs.policy_epoch))
    }

    /// The policy in force and its history.
    pub async fn policy(
        &self,
    ) -> Result<(String, u64, Digest, Vec<PolicyVersion>), AdmissionError> {
        let (engine, epoch) = self.policy_in_force().await?;
        let history = self
            .state()?
            .policies()
            .await?
            .into_iter()
            .filter_map(|p| {
                Some(PolicyVersion {
                    policy_epoch: p.policy_epoch,
                    digest: p.digest.parse().ok()?,
                    loaded_at_ms: p.loaded_at_ms,
                    loaded_by: p.loaded_by,
                })
            })
            .collect();
        Ok((engine.text().to_owned(), epoch, engine.digest(), history))
    }

    /// Evaluate the loaded policy alone (benchmarks, diagnostics).
    pub fn evaluate_policy(
        &self,
        input: &PolicyInput<'_>,
    ) -> Result<PolicyOutcome, AdmissionError> {
        self.active_policy()?.0.evaluate(input)
    }

    /// Authenticate a signed admin request.
    pub(super) async fn admin(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<AdminRequest, AdmissionError> {
        let now = self.now()?;
        let header = signature
            .ok_or_else(|| AdmissionError::Unauthenticated("missing admin signature".into()))?;
        let (kid, sig) = header
            .split_once(':')
            .ok_or_else(|| AdmissionError::Unauthenticated("malformed admin signature".into()))?;
        let kid: KeyId = kid
            .parse()
            .map_err(|_| AdmissionError::Unauthenticated("malformed admin key id".into()))?;
        let name = self
            .admins
            .name(&kid)
            .ok_or_else(|| AdmissionError::Unauthenticated("not an admin key".into()))?
            .to_owned();
        let key = self.admins.iter().find(|(_, k)| k.kid() == kid).map(|(_, k)| *k);
        let key = key.ok_or_else(|| AdmissionError::Unauthenticated("not an admin key".into()))?;
        key.verify_b64(&pae(ADMIN_MEDIA_TYPE, body), sig)
            .map_err(|e| AdmissionError::Unauthenticated(format!("admin signature: {e}")))?;
        let req: AdminRequest = json::parse(body, self.settings.body_limit)
            .map_err(|e| AdmissionError::Parse(e.to_string()))?;
        if req.admin != name {
            return Err(AdmissionError::Unauthenticated(format!(
                "request names `{}` but is signed by `{name}`",
                short(&req.admin)
            )));
        }
        if req.at_ms.abs_diff(now) > self.settings.max_age_ms {
            return Err(AdmissionError::Stale(
                "admin request is outside the freshness window".into(),
            ));
        }
        // Remembered in the store: a request replayed to any replica, or after a restart,
        // is refused. Ids older than twice the freshness window are stale anyway.
        let horizon = now.saturating_sub(self.settings.max_age_ms.saturating_mul(2));
        if !self.state()?.admin_request_once(&req.request_id, req.at_ms, horizon).await? {
            warn!(admin = %req.admin, request_id = %short(&req.request_id), "admin request replayed: refused");
            return Err(AdmissionError::Conflict("admin request replayed".into()));
        }
        Ok(req)
    }

    /// A signed admin request to load a policy. Returns the new policy epoch.
    pub async fn load_policy(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<u64, AdmissionError> {
        let req = self.admin(body, signature).await?;
        if req.commands() != 1 && req.load_policy.is_some() {
            return Err(AdmissionError::Parse("one command per request".into()));
        }
        let text = req
            .load_policy
            .ok_or_else(|| AdmissionError::Parse("`load_policy` is missing".into()))?;
        if req.revoke.is_some() {
            return Err(AdmissionError::Parse("one command per request".into()));
        }
        self.load_policy_text(&text, &req.admin).await
    }

    /// A signed admin request to revoke. Returns the signed statement of the new state.
    pub async fn revoke(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<Envelope, AdmissionError> {
        let req = self.admin(body, signature).await?;
        if req.commands() != 1 {
            return Err(AdmissionError::Parse("one command per request".into()));
        }
        let what = req.revoke.ok_or_else(|| AdmissionError::Parse("`revoke` is missing".into()))?;
        if req.load_policy.is_some() {
            return Err(AdmissionError::Parse("one command per request".into()));
        }
        self.revoke_as(what, &req.admin).await
    }

    /// Revoke (already authorised). Appends a signed epoch statement in the same store
    /// transaction; pending proposals of a revoked agent are denied.
    pub async fn revoke_as(&self, what: Revocation, by: &str) -> Result<Envelope, AdmissionError> {
        match &what {
            Revocation::Cid(c) if uuid::Uuid::parse_str(c).is_err() => {
                return Err(AdmissionError::Parse(format!("cid `{}` is not a UUID", short(c))));
            }
            Revocation::Agent(a) if a.is_empty() || a.len() > 128 => {
                return Err(AdmissionError::Parse("agent name must be 1..128 characters".into()));
            }
            _ => {}
        }
        let statement = {
            let _g = self.epoch_lock.lock().await;
            let now = self.now()?;
            let statement =
                self.epoch_statement_after(&EpochChange::Revoke(what.clone()), now).await?;
            let signed = sign_statement(&statement, &self.issuer)?;
            self.store.revoke(what.clone(), now, Some(signed.entry)).await?;
            statement
        };
        warn!(revocation = ?what, by, "revoked");
        if let Revocation::Agent(agent) = &what {
            let pending = self
                .state()?
                .proposals(ProposalFilter {
                    status: Some("pending".into()),
                    agent: Some(agent.clone()),
                    limit: 0,
                })
                .await?;
            for p in pending {
                self.deny_pending(&p.proposal_id, &format!("agent `{agent}` was revoked")).await?;
            }
        }
        Ok(sign_statement(&statement, &self.issuer)?.envelope)
    }

    /// A fresh signed epoch statement for brokers that do not share the store.
    pub async fn statement(&self) -> Result<Envelope, AdmissionError> {
        let now = self.now()?;
        let epochs = self.store.epochs().await?;
        let (revoked_cids, revoked_agents) = self.store.revocations().await?;
        let s = EpochStatement {
            policy_epoch: epochs.policy_epoch,
            revocation_epoch: epochs.revocation_epoch,
            revoked_cids,
            revoked_agents,
            issued_at_ms: now,
            ttl_ms: self.settings.statement_ttl_ms,
        };
        Ok(sign_statement(&s, &self.issuer)?.envelope)
    }

    /// The active epochs and revocations (unsigned).
    pub async fn epochs(&self) -> Result<Value, AdmissionError> {
        let e = self.store.epochs().await?;
        let (cids, agents) = self.store.revocations().await?;
        Ok(serde_json::json!({
            "policy_epoch": e.policy_epoch,
            "revocation_epoch": e.revocation_epoch,
            "updated_at_ms": e.updated_at_ms,
            "revoked_cids": cids,
            "revoked_agents": agents,
        }))
    }
}
