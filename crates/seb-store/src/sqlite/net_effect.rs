//! [`NetEffectLog`] on SQLite: one table; the compare-and-append runs on the single writer
//! thread inside its request's savepoint, under SQLite's write lock, so appends are serial.

use rusqlite::{Connection, OptionalExtension as _, params};

use super::SqliteStore;
use super::ops::{DbResult as _, from_sql_int, to_sql_int};
use crate::net_effect::{CertifiedChange, NetEffectAppend, NetEffectLog, check_change};
use crate::{StoreError, StoreFuture};

/// Schema version 2 (net effect): the log of certified changes per agent and scope.
/// `seq` is the rowid alias (AUTOINCREMENT: never reused, even after a prune).
pub(super) const MIGRATION: &str = "
CREATE TABLE net_effect_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    agent       TEXT NOT NULL,
    scope_key   TEXT NOT NULL,
    proposal_id TEXT NOT NULL,
    cid         TEXT NOT NULL UNIQUE,
    at_ms       INTEGER NOT NULL CHECK (at_ms >= 0),
    risk_level  INTEGER NOT NULL CHECK (risk_level BETWEEN 0 AND 5),
    change      TEXT NOT NULL
) STRICT;
CREATE INDEX net_effect_window ON net_effect_changes (agent, scope_key, at_ms);
";

fn window(
    conn: &Connection,
    agent: &str,
    scope_key: &str,
    since_ms: u64,
) -> Result<Vec<CertifiedChange>, StoreError> {
    let since = to_sql_int(since_ms, "since_ms")?;
    let mut st = conn
        .prepare_cached(
            "SELECT seq, proposal_id, cid, at_ms, risk_level, change FROM net_effect_changes \
             WHERE agent = ?1 AND scope_key = ?2 AND at_ms >= ?3 ORDER BY seq",
        )
        .db()?;
    let rows = st
        .query_map(params![agent, scope_key, since], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
            ))
        })
        .db()?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, proposal_id, cid, at_ms, level, change) = row.db()?;
        out.push(CertifiedChange {
            seq: from_sql_int(seq, "net effect seq")?,
            agent: agent.to_owned(),
            scope_key: scope_key.to_owned(),
            proposal_id,
            cid,
            at_ms: from_sql_int(at_ms, "net effect at_ms")?,
            risk_level: u8::try_from(level)
                .map_err(|_| StoreError::corrupt("stored net effect risk level out of range"))?,
            change,
        });
    }
    Ok(out)
}

fn append(
    conn: &Connection,
    c: &CertifiedChange,
    since_ms: u64,
    seen_seq: Option<u64>,
) -> Result<NetEffectAppend, StoreError> {
    check_change(c)?;
    let since = to_sql_int(since_ms, "since_ms")?;
    let seen = to_sql_int(seen_seq.unwrap_or(0), "seen_seq")?;
    let newer: Option<i64> = conn
        .prepare_cached(
            "SELECT seq FROM net_effect_changes \
             WHERE agent = ?1 AND scope_key = ?2 AND at_ms >= ?3 AND seq > ?4 LIMIT 1",
        )
        .db()?
        .query_row(params![c.agent, c.scope_key, since, seen], |r| r.get(0))
        .optional()
        .db()?;
    if newer.is_some() {
        return Ok(NetEffectAppend::Conflict);
    }
    let at = to_sql_int(c.at_ms, "at_ms")?;
    let seq: i64 = conn
        .prepare_cached(
            "INSERT INTO net_effect_changes \
             (agent, scope_key, proposal_id, cid, at_ms, risk_level, change) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING seq",
        )
        .db()?
        .query_row(
            params![
                c.agent,
                c.scope_key,
                c.proposal_id,
                c.cid,
                at,
                i64::from(c.risk_level),
                c.change
            ],
            |r| r.get(0),
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::invalid(format!("net effect: cid `{}` is already logged", c.cid))
            }
            other => super::ops::db_err(other),
        })?;
    Ok(NetEffectAppend::Appended { seq: from_sql_int(seq, "net effect seq")? })
}

impl NetEffectLog for SqliteStore {
    fn net_effect_window<'a>(
        &'a self,
        agent: &'a str,
        scope_key: &'a str,
        since_ms: u64,
    ) -> StoreFuture<'a, Vec<CertifiedChange>> {
        let (agent, scope_key) = (agent.to_owned(), scope_key.to_owned());
        self.read(move |conn| window(conn, &agent, &scope_key, since_ms))
    }

    fn net_effect_append(
        &self,
        change: CertifiedChange,
        since_ms: u64,
        seen_seq: Option<u64>,
    ) -> StoreFuture<'_, NetEffectAppend> {
        self.write(move |ctx| append(ctx.conn, &change, since_ms, seen_seq))
    }

    fn net_effect_prune(&self, before_ms: u64) -> StoreFuture<'_, u64> {
        self.write(move |ctx| {
            let before = to_sql_int(before_ms, "before_ms")?;
            let n = ctx
                .conn
                .prepare_cached("DELETE FROM net_effect_changes WHERE at_ms < ?1")
                .db()?
                .execute([before])
                .db()?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
    }
}
