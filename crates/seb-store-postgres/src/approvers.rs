//! [`ApproverDirectory`] on PostgreSQL. Enrolment and removal take the ledger head lock (their
//! records join the one ledger order); the invitation row is locked `FOR UPDATE`, so of two
//! replicas enrolling with one token exactly one succeeds. The counter is a single
//! conditional `UPDATE` (row lock, condition re-checked after the lock): compare-and-set
//! across replicas.

use seb_store::StoreError;
use seb_store::StoreFuture;
use seb_store::approvers::{
    ApproverDirectory, CounterResult, EnrolResult, EnrolledApprover, Invitation,
};

use crate::{PostgresStore, from_sql_int, ledger, pg_err, to_sql_int};

/// Migration 2: the approver directory.
pub(crate) const MIGRATION_APPROVERS: &str = "
CREATE TABLE approver_invitations (
    token_hash    TEXT PRIMARY KEY CHECK (length(token_hash) = 64),
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    challenge     BYTEA NOT NULL,
    user_id       BYTEA NOT NULL,
    invited_by    TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL CHECK (created_at_ms >= 0),
    expires_at_ms BIGINT NOT NULL CHECK (expires_at_ms >= 0),
    used_at_ms    BIGINT
);
CREATE TABLE approvers (
    kid            TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL,
    credential     TEXT NOT NULL,
    entry          BYTEA NOT NULL,
    enrolled_at_ms BIGINT NOT NULL CHECK (enrolled_at_ms >= 0),
    sign_count     BIGINT NOT NULL DEFAULT 0 CHECK (sign_count >= 0 AND sign_count <= 4294967295)
);
";

const SELECT_INVITATION: &str = "SELECT token_hash, name, role, challenge, user_id, invited_by, \
     created_at_ms, expires_at_ms FROM approver_invitations \
     WHERE token_hash = $1 AND used_at_ms IS NULL AND expires_at_ms > $2";

fn to_invitation(row: &tokio_postgres::Row) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        token_hash: row.try_get(0).map_err(pg_err)?,
        name: row.try_get(1).map_err(pg_err)?,
        role: row.try_get(2).map_err(pg_err)?,
        challenge: row.try_get(3).map_err(pg_err)?,
        user_id: row.try_get(4).map_err(pg_err)?,
        invited_by: row.try_get(5).map_err(pg_err)?,
        created_at_ms: from_sql_int(row.try_get(6).map_err(pg_err)?, "created_at_ms")?,
        expires_at_ms: from_sql_int(row.try_get(7).map_err(pg_err)?, "expires_at_ms")?,
    })
}

impl ApproverDirectory for PostgresStore {
    fn create_invitation(&self, inv: Invitation) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let created = to_sql_int(inv.created_at_ms, "created_at_ms")?;
            let expires = to_sql_int(inv.expires_at_ms, "expires_at_ms")?;
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO approver_invitations (token_hash, name, role, challenge, user_id, \
                     invited_by, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &inv.token_hash,
                        &inv.name,
                        &inv.role,
                        &inv.challenge,
                        &inv.user_id,
                        &inv.invited_by,
                        &created,
                        &expires,
                    ],
                )
                .await
                .map_err(pg_err)?;
            Ok(())
        })
    }

    fn invitation<'a>(
        &'a self,
        token_hash: &'a str,
        now_ms: u64,
    ) -> StoreFuture<'a, Option<Invitation>> {
        Box::pin(async move {
            let now = to_sql_int(now_ms, "now_ms")?;
            let client = self.client().await?;
            let row =
                client.query_opt(SELECT_INVITATION, &[&token_hash, &now]).await.map_err(pg_err)?;
            row.as_ref().map(to_invitation).transpose()
        })
    }

    fn enrol<'a>(
        &'a self,
        token_hash: &'a str,
        now_ms: u64,
        approver: EnrolledApprover,
        record: Vec<u8>,
    ) -> StoreFuture<'a, EnrolResult> {
        Box::pin(async move {
            let now = to_sql_int(now_ms, "now_ms")?;
            let at = to_sql_int(approver.enrolled_at_ms, "enrolled_at_ms")?;
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg_err)?;
            let mut appends = ledger::Appends::lock(&tx).await?;
            let locked = format!("{SELECT_INVITATION} FOR UPDATE");
            let Some(row) = tx.query_opt(&locked, &[&token_hash, &now]).await.map_err(pg_err)?
            else {
                return Ok(EnrolResult::InvitationUnusable);
            };
            if to_invitation(&row)?.name != approver.name {
                return Ok(EnrolResult::InvitationUnusable);
            }
            let taken: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM approvers WHERE name = $1 OR kid = $2)",
                    &[&approver.name, &approver.kid],
                )
                .await
                .map_err(pg_err)?
                .try_get(0)
                .map_err(pg_err)?;
            if taken {
                return Ok(EnrolResult::AlreadyEnrolled);
            }
            tx.execute(
                "UPDATE approver_invitations SET used_at_ms = $2 WHERE token_hash = $1",
                &[&token_hash, &now],
            )
            .await
            .map_err(pg_err)?;
            tx.execute(
                "INSERT INTO approvers (kid, name, role, credential, entry, enrolled_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &approver.kid,
                    &approver.name,
                    &approver.role,
                    &approver.credential,
                    &approver.entry,
                    &at,
                ],
            )
            .await
            .map_err(pg_err)?;
            let index = appends.push(&record)?;
            appends.write(&tx).await?;
            tx.commit().await.map_err(pg_err)?;
            Ok(EnrolResult::Enrolled { index })
        })
    }

    fn enrolled(&self) -> StoreFuture<'_, Vec<EnrolledApprover>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT name, role, kid, credential, entry, enrolled_at_ms FROM approvers \
                     ORDER BY name",
                    &[],
                )
                .await
                .map_err(pg_err)?;
            rows.iter()
                .map(|r| {
                    Ok(EnrolledApprover {
                        name: r.try_get(0).map_err(pg_err)?,
                        role: r.try_get(1).map_err(pg_err)?,
                        kid: r.try_get(2).map_err(pg_err)?,
                        credential: r.try_get(3).map_err(pg_err)?,
                        entry: r.try_get(4).map_err(pg_err)?,
                        enrolled_at_ms: from_sql_int(
                            r.try_get(5).map_err(pg_err)?,
                            "enrolled_at_ms",
                        )?,
                    })
                })
                .collect()
        })
    }

    fn remove_approver<'a>(
        &'a self,
        name: &'a str,
        record: Vec<u8>,
    ) -> StoreFuture<'a, Option<u64>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg_err)?;
            let mut appends = ledger::Appends::lock(&tx).await?;
            let n = tx
                .execute("DELETE FROM approvers WHERE name = $1", &[&name])
                .await
                .map_err(pg_err)?;
            if n == 0 {
                return Ok(None);
            }
            let index = appends.push(&record)?;
            appends.write(&tx).await?;
            tx.commit().await.map_err(pg_err)?;
            Ok(Some(index))
        })
    }

    fn advance_counter<'a>(&'a self, kid: &'a str, new: u32) -> StoreFuture<'a, CounterResult> {
        Box::pin(async move {
            let new = i64::from(new);
            let client = self.client().await?;
            let updated = client
                .query_opt(
                    "UPDATE approvers SET sign_count = $2::BIGINT WHERE kid = $1 \
                     AND ((sign_count = 0 AND $2::BIGINT = 0) OR sign_count < $2::BIGINT) RETURNING 1",
                    &[&kid, &new],
                )
                .await
                .map_err(pg_err)?;
            if updated.is_some() {
                return Ok(CounterResult::Advanced);
            }
            let row = client
                .query_opt("SELECT sign_count FROM approvers WHERE kid = $1", &[&kid])
                .await
                .map_err(pg_err)?;
            let Some(row) = row else {
                return Ok(CounterResult::Unknown);
            };
            let stored: i64 = row.try_get(0).map_err(pg_err)?;
            let stored = u32::try_from(stored)
                .map_err(|_| StoreError::corrupt(format!("sign_count {stored} out of range")))?;
            Ok(CounterResult::Regression { stored })
        })
    }
}
