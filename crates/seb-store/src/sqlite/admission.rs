//! [`AdmissionState`] on SQLite: writes run on the single writer thread (so every
//! compare-and-set is serial), reads in one read transaction.

use rusqlite::{Connection, OptionalExtension as _, params};

use super::SqliteStore;
use super::ops::{self, DbResult as _, append_entry, from_sql_int, to_sql_int};
use super::writer::WriteCtx;
use crate::admission::{
    Added, AdmissionState, Cas, NewProposal, PolicyLoad, ProposalFilter, ProposalUpdate,
    StoredApproval, StoredPolicy, StoredProposal, StoredSignature,
};
use crate::{Epochs, StoreError, StoreFuture};

fn opt_int(v: Option<u64>, what: &str) -> Result<Option<i64>, StoreError> {
    v.map(|x| to_sql_int(x, what)).transpose()
}

fn opt_u64(v: Option<i64>, what: &str) -> Result<Option<u64>, StoreError> {
    v.map(|x| from_sql_int(x, what)).transpose()
}

const PROPOSAL_COLUMNS: &str = "proposal_id, agent, status, version, received_at_ms, \
     deadline_ms, claim_until_ms, body";

type Row8 = (String, String, String, i64, i64, Option<i64>, Option<i64>, Vec<u8>);

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row8> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn complete(conn: &Connection, r: Row8) -> Result<StoredProposal, StoreError> {
    let (proposal_id, agent, status, version, received, deadline, claim, body) = r;
    let approvals = conn
        .prepare_cached(
            "SELECT approver, body, at_ms FROM admission_approvals WHERE proposal_id = ?1 \
             ORDER BY seq",
        )
        .db()?
        .query_map([&proposal_id], |row| Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)?)))
        .db()?
        .map(|r| {
            let (approver, body, at): (String, Vec<u8>, i64) = r.db()?;
            Ok(StoredApproval { approver, body, at_ms: from_sql_int(at, "approval at_ms")? })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let signatures = conn
        .prepare_cached(
            "SELECT cid, operator, body, at_ms FROM admission_signatures WHERE proposal_id = ?1 \
             ORDER BY seq",
        )
        .db()?
        .query_map([&proposal_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get::<_, i64>(3)?))
        })
        .db()?
        .map(|r| {
            let (cid, operator, body, at): (String, String, Vec<u8>, i64) = r.db()?;
            Ok(StoredSignature { cid, operator, body, at_ms: from_sql_int(at, "signature at_ms")? })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(StoredProposal {
        proposal_id,
        agent,
        status,
        version: from_sql_int(version, "version")?,
        received_at_ms: from_sql_int(received, "received_at_ms")?,
        deadline_ms: opt_u64(deadline, "deadline_ms")?,
        claim_until_ms: opt_u64(claim, "claim_until_ms")?,
        body,
        approvals,
        signatures,
    })
}

fn get(conn: &Connection, id: &str) -> Result<Option<StoredProposal>, StoreError> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {PROPOSAL_COLUMNS} FROM admission_proposals WHERE proposal_id = ?1"
        ))
        .db()?
        .query_row([id], read_row)
        .optional()
        .db()?;
    row.map(|r| complete(conn, r)).transpose()
}

fn list(conn: &Connection, f: &ProposalFilter) -> Result<Vec<StoredProposal>, StoreError> {
    let limit = if f.limit == 0 { -1 } else { i64::try_from(f.limit).unwrap_or(i64::MAX) };
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {PROPOSAL_COLUMNS} FROM admission_proposals \
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR agent = ?2) \
             ORDER BY received_at_ms, proposal_id LIMIT ?3"
        ))
        .db()?
        .query_map(params![f.status, f.agent, limit], read_row)
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    rows.into_iter().map(|r| complete(conn, r)).collect()
}

fn overdue(conn: &Connection, status: &str, now: u64) -> Result<Vec<String>, StoreError> {
    let now = to_sql_int(now, "now_ms")?;
    conn.prepare_cached(
        "SELECT proposal_id FROM admission_proposals WHERE status = ?1 AND \
         ((deadline_ms IS NOT NULL AND deadline_ms < ?2) OR \
          (claim_until_ms IS NOT NULL AND claim_until_ms < ?2)) \
         ORDER BY received_at_ms, proposal_id",
    )
    .db()?
    .query_map(params![status, now], |row| row.get(0))
    .db()?
    .collect::<rusqlite::Result<Vec<String>>>()
    .db()
}

fn insert(ctx: &mut WriteCtx<'_>, p: &NewProposal) -> Result<bool, StoreError> {
    let n = ctx
        .conn
        .prepare_cached(&format!(
            "INSERT INTO admission_proposals ({PROPOSAL_COLUMNS}) \
             VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7) ON CONFLICT (proposal_id) DO NOTHING"
        ))
        .db()?
        .execute(params![
            p.proposal_id,
            p.agent,
            p.status,
            to_sql_int(p.received_at_ms, "received_at_ms")?,
            opt_int(p.deadline_ms, "deadline_ms")?,
            opt_int(p.claim_until_ms, "claim_until_ms")?,
            p.body,
        ])
        .db()?;
    Ok(n == 1)
}

fn update(ctx: &mut WriteCtx<'_>, u: &ProposalUpdate) -> Result<Cas, StoreError> {
    let expected = to_sql_int(u.expected_version, "version")?;
    let n = ctx
        .conn
        .prepare_cached(
            "UPDATE admission_proposals SET status = ?1, deadline_ms = ?2, claim_until_ms = ?3, \
             body = ?4, version = version + 1 WHERE proposal_id = ?5 AND version = ?6",
        )
        .db()?
        .execute(params![
            u.status,
            opt_int(u.deadline_ms, "deadline_ms")?,
            opt_int(u.claim_until_ms, "claim_until_ms")?,
            u.body,
            u.proposal_id,
            expected,
        ])
        .db()?;
    if n != 1 {
        return Ok(Cas::Stale);
    }
    let record_index = match &u.record {
        Some(r) => Some(append_entry(ctx.conn, ctx.frontier, r)?),
        None => None,
    };
    Ok(Cas::Done { version: u.expected_version.saturating_add(1), record_index })
}

fn status_and_version(conn: &Connection, id: &str) -> Result<Option<(String, i64)>, StoreError> {
    conn.prepare_cached("SELECT status, version FROM admission_proposals WHERE proposal_id = ?1")
        .db()?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .db()
}

fn bump(conn: &Connection, id: &str) -> Result<u64, StoreError> {
    let v: i64 = conn
        .prepare_cached(
            "UPDATE admission_proposals SET version = version + 1 WHERE proposal_id = ?1 \
             RETURNING version",
        )
        .db()?
        .query_row([id], |row| row.get(0))
        .db()?;
    from_sql_int(v, "version")
}

fn add_approval(
    ctx: &mut WriteCtx<'_>,
    id: &str,
    expected: &str,
    a: &StoredApproval,
    record: Option<&[u8]>,
) -> Result<Added, StoreError> {
    match status_and_version(ctx.conn, id)? {
        Some((status, _)) if status == expected => {}
        other => return Ok(Added::WrongStatus { status: other.map(|(s, _)| s) }),
    }
    let n = ctx
        .conn
        .prepare_cached(
            "INSERT INTO admission_approvals (proposal_id, approver, seq, at_ms, body) \
             SELECT ?1, ?2, COALESCE(MAX(seq) + 1, 0), ?3, ?4 FROM admission_approvals \
             WHERE proposal_id = ?1 \
             ON CONFLICT (proposal_id, approver) DO NOTHING",
        )
        .db()?
        .execute(params![id, a.approver, to_sql_int(a.at_ms, "at_ms")?, a.body])
        .db()?;
    if n != 1 {
        return Ok(Added::Duplicate);
    }
    if let Some(r) = record {
        append_entry(ctx.conn, ctx.frontier, r)?;
    }
    Ok(Added::Added { version: bump(ctx.conn, id)? })
}

fn add_signature(
    ctx: &mut WriteCtx<'_>,
    id: &str,
    expected: &str,
    s: &StoredSignature,
    record: Option<&[u8]>,
) -> Result<Added, StoreError> {
    match status_and_version(ctx.conn, id)? {
        Some((status, _)) if status == expected => {}
        other => return Ok(Added::WrongStatus { status: other.map(|(s, _)| s) }),
    }
    let n = ctx
        .conn
        .prepare_cached(
            "INSERT INTO admission_signatures (proposal_id, cid, operator, seq, at_ms, body) \
             SELECT ?1, ?2, ?3, COALESCE(MAX(seq) + 1, 0), ?4, ?5 FROM admission_signatures \
             WHERE proposal_id = ?1 \
             ON CONFLICT (proposal_id, cid, operator) DO NOTHING",
        )
        .db()?
        .execute(params![id, s.cid, s.operator, to_sql_int(s.at_ms, "at_ms")?, s.body])
        .db()?;
    if n != 1 {
        return Ok(Added::Duplicate);
    }
    if let Some(r) = record {
        append_entry(ctx.conn, ctx.frontier, r)?;
    }
    Ok(Added::Added { version: bump(ctx.conn, id)? })
}

fn admin_once(
    ctx: &mut WriteCtx<'_>,
    id: &str,
    at_ms: u64,
    forget_before: u64,
) -> Result<bool, StoreError> {
    ctx.conn
        .prepare_cached("DELETE FROM admission_admin_requests WHERE at_ms < ?1")
        .db()?
        .execute([to_sql_int(forget_before, "forget_before_ms")?])
        .db()?;
    let n = ctx
        .conn
        .prepare_cached(
            "INSERT INTO admission_admin_requests (request_id, at_ms) VALUES (?1, ?2) \
             ON CONFLICT (request_id) DO NOTHING",
        )
        .db()?
        .execute(params![id, to_sql_int(at_ms, "at_ms")?])
        .db()?;
    Ok(n == 1)
}

fn policies(conn: &Connection) -> Result<Vec<StoredPolicy>, StoreError> {
    conn.prepare_cached(
        "SELECT policy_epoch, digest, text, loaded_at_ms, loaded_by FROM admission_policies \
         ORDER BY policy_epoch",
    )
    .db()?
    .query_map([], |row| {
        Ok((row.get::<_, i64>(0)?, row.get(1)?, row.get(2)?, row.get::<_, i64>(3)?, row.get(4)?))
    })
    .db()?
    .map(|r| {
        let (epoch, digest, text, at, by) = r.db()?;
        Ok(StoredPolicy {
            policy_epoch: from_sql_int(epoch, "policy_epoch")?,
            digest,
            text,
            loaded_at_ms: from_sql_int(at, "loaded_at_ms")?,
            loaded_by: by,
        })
    })
    .collect()
}

fn load_policy(ctx: &mut WriteCtx<'_>, load: &PolicyLoad) -> Result<(Epochs, bool), StoreError> {
    let epochs = ops::read_epochs(ctx.conn)?;
    let in_force: Option<String> = ctx
        .conn
        .prepare_cached(
            "SELECT digest FROM admission_policies WHERE policy_epoch = \
             (SELECT MAX(policy_epoch) FROM admission_policies)",
        )
        .db()?
        .query_row([], |row| row.get(0))
        .optional()
        .db()?;
    let latest: Option<i64> = ctx
        .conn
        .prepare_cached("SELECT MAX(policy_epoch) FROM admission_policies")
        .db()?
        .query_row([], |row| row.get(0))
        .db()?;
    // Unchanged only if the digest matches AND nothing else bumped the epoch since.
    let current =
        latest.map(|e| from_sql_int(e, "policy_epoch")).transpose()? == Some(epochs.policy_epoch);
    if current && in_force.as_deref() == Some(load.digest.as_str()) {
        return Ok((epochs, false));
    }
    let epochs = ops::bump_policy_epoch(ctx, load.at_ms, load.record.as_deref())?;
    ctx.conn
        .prepare_cached(
            "INSERT INTO admission_policies (policy_epoch, digest, text, loaded_at_ms, loaded_by) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .db()?
        .execute(params![
            to_sql_int(epochs.policy_epoch, "policy_epoch")?,
            load.digest,
            load.text,
            to_sql_int(load.at_ms, "at_ms")?,
            load.loaded_by,
        ])
        .db()?;
    Ok((epochs, true))
}

impl AdmissionState for SqliteStore {
    fn insert_proposal(&self, p: NewProposal) -> StoreFuture<'_, bool> {
        self.write(move |ctx| insert(ctx, &p))
    }

    fn proposal<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<StoredProposal>> {
        let id = id.to_owned();
        self.read(move |conn| get(conn, &id))
    }

    fn proposals(&self, filter: ProposalFilter) -> StoreFuture<'_, Vec<StoredProposal>> {
        self.read(move |conn| list(conn, &filter))
    }

    fn overdue<'a>(&'a self, status: &'a str, now_ms: u64) -> StoreFuture<'a, Vec<String>> {
        let status = status.to_owned();
        self.read(move |conn| overdue(conn, &status, now_ms))
    }

    fn update_proposal(&self, u: ProposalUpdate) -> StoreFuture<'_, Cas> {
        self.write(move |ctx| update(ctx, &u))
    }

    fn add_approval(
        &self,
        proposal_id: String,
        expected_status: String,
        approval: StoredApproval,
        record: Option<Vec<u8>>,
    ) -> StoreFuture<'_, Added> {
        self.write(move |ctx| {
            add_approval(ctx, &proposal_id, &expected_status, &approval, record.as_deref())
        })
    }

    fn add_signature(
        &self,
        proposal_id: String,
        expected_status: String,
        signature: StoredSignature,
        record: Option<Vec<u8>>,
    ) -> StoreFuture<'_, Added> {
        self.write(move |ctx| {
            add_signature(ctx, &proposal_id, &expected_status, &signature, record.as_deref())
        })
    }

    fn admin_request_once<'a>(
        &'a self,
        request_id: &'a str,
        at_ms: u64,
        forget_before_ms: u64,
    ) -> StoreFuture<'a, bool> {
        let id = request_id.to_owned();
        self.write(move |ctx| admin_once(ctx, &id, at_ms, forget_before_ms))
    }

    fn load_policy(&self, load: PolicyLoad) -> StoreFuture<'_, (Epochs, bool)> {
        self.write(move |ctx| load_policy(ctx, &load))
    }

    fn policies(&self) -> StoreFuture<'_, Vec<StoredPolicy>> {
        self.read(policies)
    }
}
