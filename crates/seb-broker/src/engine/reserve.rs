//! Checks 12–13: sign the admit record and reserve the nonce with it in one durable commit.
//! Only a committed reservation constructs a [`Reserved`].

use seb_core::json;
use seb_core::pipeline::{Authenticated, Presented};
use seb_core::types::{Decision, FailedCheck};
use seb_store::{Reservation, ReserveResult};
use seb_target::Execution;
use tracing::info;

use super::{Broker, Refusal, Reserved, store_reason};

impl Broker {
    pub(super) async fn reserve(
        &self,
        auth: &Authenticated,
        presented: &Presented,
        exec: Execution,
        unpinned: bool,
        client: &str,
        now_ms: u64,
    ) -> Result<Reserved, Refusal> {
        let c = auth.certificate().payload();
        let record =
            self.signer.decision(Decision::Admit, None, "admitted", presented, None, now_ms);
        let intent = json::canonical(&exec);
        let signed = self.signer.sign_decision(&record);
        let (Ok(signed), Ok(intent)) = (signed, intent) else {
            let rej = auth.reject(
                FailedCheck::Reserve,
                Decision::FailClosed,
                "cannot encode the admit record",
            );
            return Err(self.refuse(rej, client, now_ms).await);
        };
        let res = self
            .store
            .reserve(Reservation {
                cid: c.cid.clone(),
                nonce: c.nonce.clone(),
                agent: c.subject.agent.clone(),
                policy_epoch: c.policy_epoch,
                revocation_epoch: c.revocation_epoch,
                admit_entry: signed.entry,
                intent,
                at_ms: now_ms,
            })
            .await;
        let fail = |decision, reason: String| {
            let mut rej = auth.reject(FailedCheck::Reserve, decision, reason);
            rej.presented = Box::new(presented.clone());
            rej
        };
        match res {
            Ok(ReserveResult::Reserved { admit_index }) => {
                self.metrics.decision("admit", None);
                info!(cid = %c.cid, nonce = %c.nonce, decision = "admit", ledger_index = admit_index, break_glass = record.break_glass, "admitted");
                Ok(Reserved {
                    exec,
                    admit_record_id: record.id,
                    admit_index,
                    reserved_ms: now_ms,
                    unpinned,
                })
            }
            Ok(ReserveResult::Replay) => {
                Err(self.refuse(fail(Decision::Reject, "nonce already reserved (lost the race)".into()), client, now_ms).await)
            }
            Ok(ReserveResult::EpochChanged { active }) => Err(self
                .refuse(
                    fail(
                        Decision::FailClosed,
                        format!(
                            "epochs changed before the reservation committed (policy {}, revocation {})",
                            active.policy_epoch, active.revocation_epoch
                        ),
                    ),
                    client,
                    now_ms,
                )
                .await),
            Ok(ReserveResult::Revoked { reason }) => {
                Err(self.refuse(fail(Decision::FailClosed, reason), client, now_ms).await)
            }
            Err(e) => Err(self.refuse(fail(Decision::FailClosed, store_reason(&e)), client, now_ms).await),
        }
    }
}
