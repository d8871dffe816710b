//! Checks 1–11 of spec section 7: authenticate the presentation, read the epoch and replay
//! state, observe the target; then hand over to the reservation.

use std::time::Instant;

use seb_core::pipeline::{self, Authenticated, EpochView};
use seb_core::types::{Decision, FailedCheck};
use seb_store::{PreCheck, StoreError, error_chain};
use seb_target::Execution;
use tracing::warn;

use super::{Broker, EpochSource, ExecResult, Timings, crash_point, store_reason};

impl Broker {
    /// Run one presentation through the whole pipeline. `client` identifies the transport
    /// peer (address or mTLS subject) for rate limiting and pre-auth records.
    pub async fn execute(&self, body: &[u8], client: &str) -> ExecResult {
        let total = Instant::now();
        let mut timings = Timings::default();
        let now_ms = match self.clock.now_ms() {
            Ok(t) => t,
            Err(e) => return Err(self.refuse_untimed(client, &e)),
        };
        // Checks 1–6.
        let t = Instant::now();
        // Bind first: the policy borrows non-Send trait objects and must not live across
        // an await.
        let approvers = self.enrolled.registry(&self.trust.approvers, self.store.as_ref()).await;
        let authenticated = pipeline::authenticate(body, &self.policy_with(&approvers), now_ms);
        let auth = match authenticated {
            Ok(a) => a,
            Err(rej) => return Err(self.refuse(rej, client, now_ms).await),
        };
        timings.record(&self.metrics, "authenticate", t);
        let c = auth.certificate().payload();
        let Some(target) = self.targets.get(&c.contract.platform).cloned() else {
            let rej = auth.reject(
                FailedCheck::Scope,
                Decision::Reject,
                format!("platform `{}` is not configured on this broker", c.contract.platform),
            );
            return Err(self.refuse(rej, client, now_ms).await);
        };
        // Checks 7–10.
        let t = Instant::now();
        // One read for the epoch, revocation and replay state. A store that cannot answer
        // is named as such (fail closed at `revocation`, the first check it serves), never
        // as a replay.
        let state = self.epoch_view(&c.cid, &c.nonce, &c.subject.agent, now_ms).await;
        let (epochs, reserved) = match state {
            Ok(s) => s,
            Err(e) => {
                let rej =
                    auth.reject(FailedCheck::Revocation, Decision::FailClosed, store_reason(&e));
                return Err(self.refuse(rej, client, now_ms).await);
            }
        };
        if let Err(rej) =
            pipeline::check_state(&auth, epochs.as_ref(), now_ms, target.as_ref(), reserved)
        {
            return Err(self.refuse(rej, client, now_ms).await);
        }
        timings.record(&self.metrics, "state", t);
        // Check 11.
        let mut exec = execution_of(&auth);
        let t = Instant::now();
        let observed = tokio::time::timeout(
            self.settings.target_timeout,
            target.observe(&exec.observe_request()),
        )
        .await;
        timings.record(&self.metrics, "observe", t);
        let observation = match observed {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(e)) => Err(error_chain(&e)),
            Err(_) => Err("timed out".to_owned()),
        };
        let observed_digest =
            match pipeline::check_drift(&auth, observation.as_ref().map_err(String::as_str)) {
                Ok(d) => d,
                Err(rej) => return Err(self.refuse(rej, client, now_ms).await),
            };
        exec.observed_version = observation.ok().and_then(|o| o.version);
        let mut presented = auth.presented().clone();
        presented.observed_digest = Some(observed_digest);
        // Whether the operation's profile has no precondition (recorded, spec section 7).
        let unpinned = target.profile(&exec.op).map(|p| p.precondition.is_none()).unwrap_or(true);
        // Checks 12–13.
        let t = Instant::now();
        let reserved = self.reserve(&auth, &presented, exec, unpinned, client, now_ms).await?;
        timings.record(&self.metrics, "reserve", t);
        crash_point("after_reserve");
        let mut out = self.run_reserved(target.as_ref(), reserved, &mut timings).await;
        timings.record(&self.metrics, "total", total);
        out.timings_us = timings.0;
        Ok(out)
    }

    /// The epoch state for checks 7–10 and whether the nonce is already reserved (check 10),
    /// from one [`seb_store::Store::pre_check`]: `Ok((None, _))` when there is no epoch state
    /// to trust (no statement yet; check 7 then fails closed before replay is looked at),
    /// `Err` when the store could not be read.
    pub(super) async fn epoch_view(
        &self,
        cid: &str,
        nonce: &str,
        agent: &str,
        now_ms: u64,
    ) -> Result<(Option<EpochView>, bool), StoreError> {
        // In statement mode the state is as fresh as the newest statement, and may be no
        // older than that statement's TTL.
        let (as_of_ms, max_staleness_ms) = match &self.settings.epoch_source {
            EpochSource::Store => (now_ms, self.settings.epoch_max_staleness_ms),
            EpochSource::Statement { .. } => match self.statement.lock().ok().and_then(|g| *g) {
                Some(fresh) => fresh,
                None => {
                    warn!("no epoch statement received yet");
                    return Ok((None, false));
                }
            },
        };
        match self.store.pre_check(cid, nonce, agent).await {
            Ok(PreCheck { epoch: ec, reserved }) => Ok((
                Some(EpochView {
                    policy_epoch: ec.epochs.policy_epoch,
                    revocation_epoch: ec.epochs.revocation_epoch,
                    revoked_cids: if ec.cid_revoked {
                        [cid.to_owned()].into()
                    } else {
                        Default::default()
                    },
                    revoked_agents: if ec.agent_revoked {
                        [agent.to_owned()].into()
                    } else {
                        Default::default()
                    },
                    as_of_ms,
                    max_staleness_ms,
                }),
                reserved,
            )),
            Err(e) => {
                warn!(error = %error_chain(&e), "epoch state unreadable");
                Err(e)
            }
        }
    }
}

fn execution_of(auth: &Authenticated) -> Execution {
    let c = auth.certificate().payload();
    let r = auth.request();
    Execution {
        cid: c.cid.clone(),
        nonce: c.nonce.clone(),
        agent: c.subject.agent.clone(),
        risk_level: c.contract.risk_level,
        platform: c.contract.platform,
        op: r.op.clone(),
        target: r.target.clone(),
        params: r.params.clone(),
        contract: c.contract.clone(),
        evidence: c.evidence.projection.clone(),
        observed_version: None,
        break_glass: auth.certificate().is_break_glass(),
    }
}
