//! [`AdmissionState`] on PostgreSQL, shared by every replica.
//!
//! Every write is one transaction that first locks `ledger_head` (as every ledger append
//! does): admission changes and the records they append have one order across replicas, and
//! a compare-and-set (`UPDATE ... WHERE version = $expected`) decides between replicas racing
//! on one proposal. Reads of one proposal with its approvals run in one REPEATABLE READ
//! snapshot.

use deadpool_postgres::GenericClient;
use seb_store::admission::{
    Added, AdmissionState, Cas, NewProposal, PolicyLoad, ProposalFilter, ProposalUpdate,
    StoredApproval, StoredPolicy, StoredProposal, StoredSignature,
};
use seb_store::{Epochs, StoreError, StoreFuture};
use tokio_postgres::IsolationLevel;
use tokio_postgres::Row;

use crate::ledger::Appends;
use crate::{EPOCHS_CHANNEL, PostgresStore, from_sql_int, pg_err, read_epochs_row, to_sql_int};

fn opt_int(v: Option<u64>, what: &str) -> Result<Option<i64>, StoreError> {
    v.map(|x| to_sql_int(x, what)).transpose()
}

fn opt_u64(v: Option<i64>, what: &str) -> Result<Option<u64>, StoreError> {
    v.map(|x| from_sql_int(x, what)).transpose()
}

const COLUMNS: &str = "proposal_id, agent, status, version, received_at_ms, deadline_ms, \
     claim_until_ms, body";

async fn complete(tx: &impl GenericClient, row: &Row) -> Result<StoredProposal, StoreError> {
    let proposal_id: String = row.try_get(0).map_err(pg_err)?;
    let approvals = tx
        .query(
            "SELECT approver, body, at_ms FROM admission_approvals WHERE proposal_id = $1 \
             ORDER BY seq",
            &[&proposal_id],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| {
            Ok(StoredApproval {
                approver: r.try_get(0).map_err(pg_err)?,
                body: r.try_get(1).map_err(pg_err)?,
                at_ms: from_sql_int(r.try_get(2).map_err(pg_err)?, "approval at_ms")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let signatures = tx
        .query(
            "SELECT cid, operator, body, at_ms FROM admission_signatures WHERE proposal_id = $1 \
             ORDER BY seq",
            &[&proposal_id],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| {
            Ok(StoredSignature {
                cid: r.try_get(0).map_err(pg_err)?,
                operator: r.try_get(1).map_err(pg_err)?,
                body: r.try_get(2).map_err(pg_err)?,
                at_ms: from_sql_int(r.try_get(3).map_err(pg_err)?, "signature at_ms")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(StoredProposal {
        proposal_id,
        agent: row.try_get(1).map_err(pg_err)?,
        status: row.try_get(2).map_err(pg_err)?,
        version: from_sql_int(row.try_get(3).map_err(pg_err)?, "version")?,
        received_at_ms: from_sql_int(row.try_get(4).map_err(pg_err)?, "received_at_ms")?,
        deadline_ms: opt_u64(row.try_get(5).map_err(pg_err)?, "deadline_ms")?,
        claim_until_ms: opt_u64(row.try_get(6).map_err(pg_err)?, "claim_until_ms")?,
        body: row.try_get(7).map_err(pg_err)?,
        approvals,
        signatures,
    })
}

/// Status of a proposal, row-locked (after the head lock) for the rest of the transaction.
async fn locked_status(tx: &impl GenericClient, id: &str) -> Result<Option<String>, StoreError> {
    tx.query_opt("SELECT status FROM admission_proposals WHERE proposal_id = $1 FOR UPDATE", &[&id])
        .await
        .map_err(pg_err)?
        .map(|r| r.try_get::<_, String>(0))
        .transpose()
        .map_err(pg_err)
}

async fn bump(tx: &impl GenericClient, id: &str) -> Result<u64, StoreError> {
    let v: i64 = tx
        .query_one(
            "UPDATE admission_proposals SET version = version + 1 WHERE proposal_id = $1 \
             RETURNING version",
            &[&id],
        )
        .await
        .map_err(pg_err)?
        .try_get(0)
        .map_err(pg_err)?;
    from_sql_int(v, "version")
}

impl PostgresStore {
    async fn add_child(
        &self,
        id: String,
        expected: String,
        insert: (&'static str, Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>),
        record: Option<Vec<u8>>,
    ) -> Result<Added, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let mut appends = Appends::lock(&tx).await?;
        match locked_status(&tx, &id).await? {
            Some(s) if s == expected => {}
            other => return Ok(Added::WrongStatus { status: other }),
        }
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = insert
            .1
            .iter()
            .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let n = tx.execute(insert.0, &params).await.map_err(pg_err)?;
        if n != 1 {
            return Ok(Added::Duplicate);
        }
        if let Some(r) = record {
            appends.push(&r)?;
        }
        appends.write(&tx).await?;
        let version = bump(&tx, &id).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(Added::Added { version })
    }
}

impl AdmissionState for PostgresStore {
    fn insert_proposal(&self, p: NewProposal) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let client = self.client().await?;
            let n = client
                .execute(
                    &format!(
                        "INSERT INTO admission_proposals ({COLUMNS}) \
                         VALUES ($1, $2, $3, 0, $4, $5, $6, $7) \
                         ON CONFLICT (proposal_id) DO NOTHING"
                    ),
                    &[
                        &p.proposal_id,
                        &p.agent,
                        &p.status,
                        &to_sql_int(p.received_at_ms, "received_at_ms")?,
                        &opt_int(p.deadline_ms, "deadline_ms")?,
                        &opt_int(p.claim_until_ms, "claim_until_ms")?,
                        &p.body,
                    ],
                )
                .await
                .map_err(pg_err)?;
            Ok(n == 1)
        })
    }

    fn proposal<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<StoredProposal>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg_err)?;
            let row = tx
                .query_opt(
                    &format!("SELECT {COLUMNS} FROM admission_proposals WHERE proposal_id = $1"),
                    &[&id],
                )
                .await
                .map_err(pg_err)?;
            let out = match row {
                Some(r) => Some(complete(&tx, &r).await?),
                None => None,
            };
            tx.commit().await.map_err(pg_err)?;
            Ok(out)
        })
    }

    fn proposals(&self, f: ProposalFilter) -> StoreFuture<'_, Vec<StoredProposal>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg_err)?;
            let limit: Option<i64> =
                (f.limit > 0).then(|| i64::try_from(f.limit).unwrap_or(i64::MAX));
            let rows = tx
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM admission_proposals \
                         WHERE ($1::text IS NULL OR status = $1) \
                         AND ($2::text IS NULL OR agent = $2) \
                         ORDER BY received_at_ms, proposal_id LIMIT $3"
                    ),
                    &[&f.status, &f.agent, &limit],
                )
                .await
                .map_err(pg_err)?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(complete(&tx, r).await?);
            }
            tx.commit().await.map_err(pg_err)?;
            Ok(out)
        })
    }

    fn overdue<'a>(&'a self, status: &'a str, now_ms: u64) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let now = to_sql_int(now_ms, "now_ms")?;
            let client = self.client().await?;
            client
                .query(
                    "SELECT proposal_id FROM admission_proposals WHERE status = $1 AND \
                     ((deadline_ms IS NOT NULL AND deadline_ms < $2) OR \
                      (claim_until_ms IS NOT NULL AND claim_until_ms < $2)) \
                     ORDER BY received_at_ms, proposal_id",
                    &[&status, &now],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| r.try_get(0).map_err(pg_err))
                .collect()
        })
    }

    fn update_proposal(&self, u: ProposalUpdate) -> StoreFuture<'_, Cas> {
        Box::pin(async move {
            let expected = to_sql_int(u.expected_version, "version")?;
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg_err)?;
            let mut appends = Appends::lock(&tx).await?;
            let n = tx
                .execute(
                    "UPDATE admission_proposals SET status = $1, deadline_ms = $2, \
                     claim_until_ms = $3, body = $4, version = version + 1 \
                     WHERE proposal_id = $5 AND version = $6",
                    &[
                        &u.status,
                        &opt_int(u.deadline_ms, "deadline_ms")?,
                        &opt_int(u.claim_until_ms, "claim_until_ms")?,
                        &u.body,
                        &u.proposal_id,
                        &expected,
                    ],
                )
                .await
                .map_err(pg_err)?;
            if n != 1 {
                return Ok(Cas::Stale);
            }
            let record_index = match &u.record {
                Some(r) => Some(appends.push(r)?),
                None => None,
            };
            appends.write(&tx).await?;
            tx.commit().await.map_err(pg_err)?;
            Ok(Cas::Done { version: u.expected_version.saturating_add(1), record_index })
        })
    }

    fn add_approval(
        &self,
        proposal_id: String,
        expected_status: String,
        a: StoredApproval,
        record: Option<Vec<u8>>,
    ) -> StoreFuture<'_, Added> {
        Box::pin(async move {
            let at = to_sql_int(a.at_ms, "at_ms")?;
            self.add_child(
                proposal_id.clone(),
                expected_status,
                (
                    "INSERT INTO admission_approvals (proposal_id, approver, at_ms, body) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (proposal_id, approver) DO NOTHING",
                    vec![
                        Box::new(proposal_id),
                        Box::new(a.approver),
                        Box::new(at),
                        Box::new(a.body),
                    ],
                ),
                record,
            )
            .await
        })
    }

    fn add_signature(
        &self,
        proposal_id: String,
        expected_status: String,
        s: StoredSignature,
        record: Option<Vec<u8>>,
    ) -> StoreFuture<'_, Added> {
        Box::pin(async move {
            let at = to_sql_int(s.at_ms, "at_ms")?;
            self.add_child(
                proposal_id.clone(),
                expected_status,
                (
                    "INSERT INTO admission_signatures (proposal_id, cid, operator, at_ms, body) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (proposal_id, cid, operator) DO NOTHING",
                    vec![
                        Box::new(proposal_id),
                        Box::new(s.cid),
                        Box::new(s.operator),
                        Box::new(at),
                        Box::new(s.body),
                    ],
                ),
                record,
            )
            .await
        })
    }

    fn admin_request_once<'a>(
        &'a self,
        request_id: &'a str,
        at_ms: u64,
        forget_before_ms: u64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let at = to_sql_int(at_ms, "at_ms")?;
            let before = to_sql_int(forget_before_ms, "forget_before_ms")?;
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg_err)?;
            tx.execute("DELETE FROM admission_admin_requests WHERE at_ms < $1", &[&before])
                .await
                .map_err(pg_err)?;
            let n = tx
                .execute(
                    "INSERT INTO admission_admin_requests (request_id, at_ms) VALUES ($1, $2) \
                     ON CONFLICT (request_id) DO NOTHING",
                    &[&request_id, &at],
                )
                .await
                .map_err(pg_err)?;
            tx.commit().await.map_err(pg_err)?;
            Ok(n == 1)
        })
    }

    fn load_policy(&self, load: PolicyLoad) -> StoreFuture<'_, (Epochs, bool)> {
        Box::pin(async move {
            let at = to_sql_int(load.at_ms, "at_ms")?;
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg_err)?;
            let mut appends = Appends::lock(&tx).await?;
            let epochs = read_epochs_row(
                &tx.query_one(
                    "SELECT policy_epoch, revocation_epoch, updated_at_ms FROM epochs WHERE id = 0",
                    &[],
                )
                .await
                .map_err(pg_err)?,
            )?;
            let latest = tx
                .query_opt(
                    "SELECT policy_epoch, digest FROM admission_policies \
                     ORDER BY policy_epoch DESC LIMIT 1",
                    &[],
                )
                .await
                .map_err(pg_err)?;
            if let Some(row) = latest {
                let epoch: i64 = row.try_get(0).map_err(pg_err)?;
                let digest: String = row.try_get(1).map_err(pg_err)?;
                if from_sql_int(epoch, "policy_epoch")? == epochs.policy_epoch
                    && digest == load.digest
                {
                    tx.commit().await.map_err(pg_err)?;
                    return Ok((epochs, false));
                }
            }
            let row = tx
                .query_one(
                    "UPDATE epochs SET policy_epoch = policy_epoch + 1, \
                     updated_at_ms = GREATEST(updated_at_ms, $1) WHERE id = 0 \
                     RETURNING policy_epoch, revocation_epoch, updated_at_ms",
                    &[&at],
                )
                .await
                .map_err(pg_err)?;
            let epochs = read_epochs_row(&row)?;
            tx.execute(
                "INSERT INTO admission_policies (policy_epoch, digest, text, loaded_at_ms, \
                 loaded_by) VALUES ($1, $2, $3, $4, $5)",
                &[
                    &to_sql_int(epochs.policy_epoch, "policy_epoch")?,
                    &load.digest,
                    &load.text,
                    &at,
                    &load.loaded_by,
                ],
            )
            .await
            .map_err(pg_err)?;
            if let Some(r) = &load.record {
                appends.push(r)?;
            }
            appends.write(&tx).await?;
            let payload = serde_json::to_string(&epochs)
                .map_err(|e| StoreError::invalid_from("epochs as JSON", e))?;
            tx.execute("SELECT pg_notify($1, $2)", &[&EPOCHS_CHANNEL, &payload])
                .await
                .map_err(pg_err)?;
            tx.commit().await.map_err(pg_err)?;
            Ok((epochs, true))
        })
    }

    fn policies(&self) -> StoreFuture<'_, Vec<StoredPolicy>> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .query(
                    "SELECT policy_epoch, digest, text, loaded_at_ms, loaded_by \
                     FROM admission_policies ORDER BY policy_epoch",
                    &[],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| {
                    Ok(StoredPolicy {
                        policy_epoch: from_sql_int(r.try_get(0).map_err(pg_err)?, "policy_epoch")?,
                        digest: r.try_get(1).map_err(pg_err)?,
                        text: r.try_get(2).map_err(pg_err)?,
                        loaded_at_ms: from_sql_int(r.try_get(3).map_err(pg_err)?, "loaded_at_ms")?,
                        loaded_by: r.try_get(4).map_err(pg_err)?,
                    })
                })
                .collect()
        })
    }
}
