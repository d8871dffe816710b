//! [`ApproverDirectory`] on SQLite: writes go through the group-commit writer (one savepoint
//! per request, the ledger record appended in the same transaction), reads through the pool.

use rusqlite::{Connection, OptionalExtension as _, params};

use super::SqliteStore;
use super::ops::{DbResult as _, append_entry, from_sql_int, to_sql_int};
use crate::StoreError;
use crate::StoreFuture;
use crate::approvers::{
    ApproverDirectory, CounterResult, EnrolResult, EnrolledApprover, Invitation, counter_advances,
};

/// Migration 2: the approver directory.
pub(super) const MIGRATION_APPROVERS: &str = "
CREATE TABLE approver_invitations (
    token_hash    TEXT PRIMARY KEY CHECK (length(token_hash) = 64),
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    challenge     BLOB NOT NULL,
    user_id       BLOB NOT NULL,
    invited_by    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL CHECK (created_at_ms >= 0),
    expires_at_ms INTEGER NOT NULL CHECK (expires_at_ms >= 0),
    used_at_ms    INTEGER
) STRICT;
CREATE TABLE approvers (
    kid            TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL,
    credential     TEXT NOT NULL,
    entry          BLOB NOT NULL,
    enrolled_at_ms INTEGER NOT NULL CHECK (enrolled_at_ms >= 0),
    sign_count     INTEGER NOT NULL DEFAULT 0 CHECK (sign_count >= 0 AND sign_count <= 4294967295)
) STRICT;
";

type InvRow = (String, String, String, Vec<u8>, Vec<u8>, String, i64, i64);

fn to_invitation(r: InvRow) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        token_hash: r.0,
        name: r.1,
        role: r.2,
        challenge: r.3,
        user_id: r.4,
        invited_by: r.5,
        created_at_ms: from_sql_int(r.6, "created_at_ms")?,
        expires_at_ms: from_sql_int(r.7, "expires_at_ms")?,
    })
}

fn usable_invitation(
    conn: &Connection,
    token_hash: &str,
    now_ms: u64,
) -> Result<Option<Invitation>, StoreError> {
    let row: Option<InvRow> = conn
        .prepare_cached(
            "SELECT token_hash, name, role, challenge, user_id, invited_by, created_at_ms, \
             expires_at_ms FROM approver_invitations \
             WHERE token_hash = ?1 AND used_at_ms IS NULL AND expires_at_ms > ?2",
        )
        .db()?
        .query_row(params![token_hash, to_sql_int(now_ms, "now_ms")?], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .optional()
        .db()?;
    row.map(to_invitation).transpose()
}

fn enrolled(conn: &Connection) -> Result<Vec<EnrolledApprover>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT name, role, kid, credential, entry, enrolled_at_ms FROM approvers ORDER BY name",
        )
        .db()?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .db()?;
    let mut out = Vec::new();
    for row in rows {
        let (name, role, kid, credential, entry, at) = row.db()?;
        out.push(EnrolledApprover {
            name,
            role,
            kid,
            credential,
            entry,
            enrolled_at_ms: from_sql_int(at, "enrolled_at_ms")?,
        });
    }
    Ok(out)
}

impl ApproverDirectory for SqliteStore {
    fn create_invitation(&self, inv: Invitation) -> StoreFuture<'_, ()> {
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "INSERT INTO approver_invitations (token_hash, name, role, challenge, user_id, \
                     invited_by, created_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .db()?
                .execute(params![
                    inv.token_hash,
                    inv.name,
                    inv.role,
                    inv.challenge,
                    inv.user_id,
                    inv.invited_by,
                    to_sql_int(inv.created_at_ms, "created_at_ms")?,
                    to_sql_int(inv.expires_at_ms, "expires_at_ms")?,
                ])
                .db()?;
            Ok(())
        })
    }

    fn invitation<'a>(
        &'a self,
        token_hash: &'a str,
        now_ms: u64,
    ) -> StoreFuture<'a, Option<Invitation>> {
        let token_hash = token_hash.to_owned();
        self.read(move |conn| usable_invitation(conn, &token_hash, now_ms))
    }

    fn enrol<'a>(
        &'a self,
        token_hash: &'a str,
        now_ms: u64,
        approver: EnrolledApprover,
        record: Vec<u8>,
    ) -> StoreFuture<'a, EnrolResult> {
        let token_hash = token_hash.to_owned();
        self.write(move |ctx| {
            let Some(inv) = usable_invitation(ctx.conn, &token_hash, now_ms)? else {
                return Ok(EnrolResult::InvitationUnusable);
            };
            if inv.name != approver.name {
                return Ok(EnrolResult::InvitationUnusable);
            }
            let taken: bool = ctx
                .conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM approvers WHERE name = ?1 OR kid = ?2)",
                )
                .db()?
                .query_row(params![approver.name, approver.kid], |r| r.get(0))
                .db()?;
            if taken {
                return Ok(EnrolResult::AlreadyEnrolled);
            }
            ctx.conn
                .prepare_cached(
                    "UPDATE approver_invitations SET used_at_ms = ?2 WHERE token_hash = ?1",
                )
                .db()?
                .execute(params![token_hash, to_sql_int(now_ms, "now_ms")?])
                .db()?;
            ctx.conn
                .prepare_cached(
                    "INSERT INTO approvers (kid, name, role, credential, entry, enrolled_at_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .db()?
                .execute(params![
                    approver.kid,
                    approver.name,
                    approver.role,
                    approver.credential,
                    approver.entry,
                    to_sql_int(approver.enrolled_at_ms, "enrolled_at_ms")?,
                ])
                .db()?;
            let index = append_entry(ctx.conn, ctx.frontier, &record)?;
            Ok(EnrolResult::Enrolled { index })
        })
    }

    fn enrolled(&self) -> StoreFuture<'_, Vec<EnrolledApprover>> {
        self.read(enrolled)
    }

    fn remove_approver<'a>(
        &'a self,
        name: &'a str,
        record: Vec<u8>,
    ) -> StoreFuture<'a, Option<u64>> {
        let name = name.to_owned();
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached("DELETE FROM approvers WHERE name = ?1")
                .db()?
                .execute([&name])
                .db()?;
            if n == 0 {
                return Ok(None);
            }
            Ok(Some(append_entry(ctx.conn, ctx.frontier, &record)?))
        })
    }

    fn advance_counter<'a>(&'a self, kid: &'a str, new: u32) -> StoreFuture<'a, CounterResult> {
        let kid = kid.to_owned();
        self.write(move |ctx| {
            let stored: Option<i64> = ctx
                .conn
                .prepare_cached("SELECT sign_count FROM approvers WHERE kid = ?1")
                .db()?
                .query_row([&kid], |r| r.get(0))
                .optional()
                .db()?;
            let Some(stored) = stored else {
                return Ok(CounterResult::Unknown);
            };
            let stored = u32::try_from(stored)
                .map_err(|_| StoreError::corrupt(format!("sign_count {stored} out of range")))?;
            if !counter_advances(stored, new) {
                return Ok(CounterResult::Regression { stored });
            }
            ctx.conn
                .prepare_cached("UPDATE approvers SET sign_count = ?2 WHERE kid = ?1")
                .db()?
                .execute(params![kid, i64::from(new)])
                .db()?;
            Ok(CounterResult::Advanced)
        })
    }
}
