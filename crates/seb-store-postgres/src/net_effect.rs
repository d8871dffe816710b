//! [`NetEffectLog`] on PostgreSQL. The compare-and-append takes a transaction-scoped
//! advisory lock on the hash of `(agent, scope_key)` before it reads the window, so appends
//! to one scope are serial across every replica (two replicas that scored two proposals
//! against the same window: the second one to get the lock sees the first's row and
//! answers `Conflict`). Appends to different scopes do not wait for each other.

use seb_store::net_effect::{CertifiedChange, NetEffectAppend, NetEffectLog, check_change};
use seb_store::{StoreError, StoreFuture};

use crate::{PostgresStore, from_sql_int, pg_err, to_sql_int};

/// The advisory-lock class of net-effect scopes (`pg_advisory_xact_lock(class, hash)`).
pub const NET_EFFECT_CLASS: i32 = 0x5EB0_0002;

/// Schema version 2 (net effect): the log of certified changes per agent and scope.
pub(crate) const MIGRATION: &str = "
CREATE TABLE net_effect_changes (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent       text NOT NULL,
    scope_key   text NOT NULL,
    proposal_id text NOT NULL,
    cid         text NOT NULL UNIQUE,
    at_ms       bigint NOT NULL CHECK (at_ms >= 0),
    risk_level  smallint NOT NULL CHECK (risk_level BETWEEN 0 AND 5),
    change      text NOT NULL
);
CREATE INDEX net_effect_window ON net_effect_changes (agent, scope_key, at_ms);
CREATE TRIGGER net_effect_changes_no_update BEFORE UPDATE ON net_effect_changes
    FOR EACH ROW EXECUTE FUNCTION seb_append_only();
";

fn row_to_change(
    r: &tokio_postgres::Row,
    agent: &str,
    scope_key: &str,
) -> Result<CertifiedChange, StoreError> {
    let level: i16 = r.try_get(4).map_err(pg_err)?;
    Ok(CertifiedChange {
        seq: from_sql_int(r.try_get(0).map_err(pg_err)?, "net effect seq")?,
        agent: agent.to_owned(),
        scope_key: scope_key.to_owned(),
        proposal_id: r.try_get(1).map_err(pg_err)?,
        cid: r.try_get(2).map_err(pg_err)?,
        at_ms: from_sql_int(r.try_get(3).map_err(pg_err)?, "net effect at_ms")?,
        risk_level: u8::try_from(level)
            .map_err(|_| StoreError::corrupt("stored net effect risk level out of range"))?,
        change: r.try_get(5).map_err(pg_err)?,
    })
}

impl NetEffectLog for PostgresStore {
    fn net_effect_window<'a>(
        &'a self,
        agent: &'a str,
        scope_key: &'a str,
        since_ms: u64,
    ) -> StoreFuture<'a, Vec<CertifiedChange>> {
        Box::pin(async move {
            let since = to_sql_int(since_ms, "since_ms")?;
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT seq, proposal_id, cid, at_ms, risk_level, change \
                     FROM net_effect_changes \
                     WHERE agent = $1 AND scope_key = $2 AND at_ms >= $3 ORDER BY seq",
                    &[&agent, &scope_key, &since],
                )
                .await
                .map_err(pg_err)?;
            rows.iter().map(|r| row_to_change(r, agent, scope_key)).collect()
        })
    }

    fn net_effect_append(
        &self,
        c: CertifiedChange,
        since_ms: u64,
        seen_seq: Option<u64>,
    ) -> StoreFuture<'_, NetEffectAppend> {
        Box::pin(async move {
            check_change(&c)?;
            let since = to_sql_int(since_ms, "since_ms")?;
            let seen = to_sql_int(seen_seq.unwrap_or(0), "seen_seq")?;
            let at = to_sql_int(c.at_ms, "at_ms")?;
            let level = i16::from(c.risk_level);
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg_err)?;
            // Serial per scope across replicas: the lock is held until COMMIT/ROLLBACK.
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2 || chr(10) || $3))",
                &[&NET_EFFECT_CLASS, &c.agent, &c.scope_key],
            )
            .await
            .map_err(pg_err)?;
            let newer = tx
                .query_opt(
                    "SELECT seq FROM net_effect_changes \
                     WHERE agent = $1 AND scope_key = $2 AND at_ms >= $3 AND seq > $4 LIMIT 1",
                    &[&c.agent, &c.scope_key, &since, &seen],
                )
                .await
                .map_err(pg_err)?;
            if newer.is_some() {
                tx.rollback().await.map_err(pg_err)?;
                return Ok(NetEffectAppend::Conflict);
            }
            let row = tx
                .query_one(
                    "INSERT INTO net_effect_changes \
                     (agent, scope_key, proposal_id, cid, at_ms, risk_level, change) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq",
                    &[&c.agent, &c.scope_key, &c.proposal_id, &c.cid, &at, &level, &c.change],
                )
                .await
                .map_err(|e| {
                    if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                        StoreError::invalid(format!(
                            "net effect: cid `{}` is already logged",
                            c.cid
                        ))
                    } else {
                        pg_err(e)
                    }
                })?;
            let seq = from_sql_int(row.try_get(0).map_err(pg_err)?, "net effect seq")?;
            tx.commit().await.map_err(pg_err)?;
            Ok(NetEffectAppend::Appended { seq })
        })
    }

    fn net_effect_prune(&self, before_ms: u64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let before = to_sql_int(before_ms, "before_ms")?;
            let client = self.client().await?;
            client
                .execute("DELETE FROM net_effect_changes WHERE at_ms < $1", &[&before])
                .await
                .map_err(pg_err)
        })
    }
}
