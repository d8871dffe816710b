//! The SQL behind every [`Store`](crate::Store) method: write operations run on the writer
//! thread inside their request's savepoint, read operations on a reader connection.
//!
//! Nothing here commits, begins or rolls back: transaction control belongs to
//! [`super::writer`]. Every integer crosses the `u64`/`i64` boundary through [`to_sql_int`]
//! (caller input out of range is [`StoreError::Invalid`]) or [`from_sql_int`] (a stored
//! negative is [`StoreError::Corrupt`]).

use rusqlite::{Connection, OptionalExtension as _, params};
use seb_ledger::LedgerError;
use seb_ledger::merkle::{self, Frontier, Hash, NodeReader, leaf_hash};

use super::writer::WriteCtx;
use crate::{
    EpochCheck, Epochs, InFlightKey, PendingExecution, Reservation, ReserveResult, Revocation,
    StoreError, StoredCheckpoint,
};

// ---------------------------------------------------------------------------------------------
// Errors and conversions
// ---------------------------------------------------------------------------------------------

/// Map a SQLite error to the store's error: damaged files and violated constraints (which
/// the writer never provokes on intact data) are [`StoreError::Corrupt`]; I/O, locking,
/// busy and everything else operational is [`StoreError::Unavailable`].
pub(super) fn db_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    use rusqlite::ErrorCode as C;
    let corrupt = match &e {
        E::SqliteFailure(f, _) => matches!(
            f.code,
            C::DatabaseCorrupt | C::NotADatabase | C::ConstraintViolation | C::TypeMismatch
        ),
        E::QueryReturnedNoRows
        | E::QueryReturnedMoreThanOneRow
        | E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..) => true,
        _ => false,
    };
    if corrupt {
        StoreError::corrupt_from("sqlite", e)
    } else {
        StoreError::unavailable_from("sqlite", e)
    }
}

/// `.db()` on rusqlite results: [`db_err`] without a closure at every call.
pub(super) trait DbResult<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> DbResult<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(db_err)
    }
}

/// Map a ledger-math error: arguments outside the tree are the caller's mistake
/// ([`StoreError::Invalid`]); a node missing inside the stored size is corruption; a failing
/// node read is whatever the database said.
pub(super) fn ledger_err(e: LedgerError) -> StoreError {
    match e {
        LedgerError::EmptyTree
        | LedgerError::IndexOutOfRange { .. }
        | LedgerError::SizeOutOfRange { .. }
        | LedgerError::TreeTooLarge { .. } => StoreError::invalid_from("ledger", e),
        LedgerError::Storage(source) => match source.downcast::<rusqlite::Error>() {
            Ok(db) => db_err(*db),
            Err(other) => StoreError::corrupt_from("merkle node store", other),
        },
        other => StoreError::corrupt_from("ledger", other),
    }
}

/// A caller-supplied `u64` as an SQLite integer.
pub(super) fn to_sql_int(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::invalid(format!("{what} {v} exceeds 2^63 - 1")))
}

/// A stored SQLite integer as a `u64`.
pub(super) fn from_sql_int(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::corrupt(format!("stored {what} {v} is negative")))
}

fn to_hash(bytes: &[u8], what: &str) -> Result<Hash, StoreError> {
    Hash::try_from(bytes)
        .map_err(|_| StoreError::corrupt(format!("stored {what} is {} bytes, not 32", bytes.len())))
}

fn unknown_execution(cid: &str, nonce: &str) -> StoreError {
    StoreError::invalid(format!("unknown execution `{cid}`/`{nonce}`"))
}

// ---------------------------------------------------------------------------------------------
// Merkle nodes
// ---------------------------------------------------------------------------------------------

/// A [`NodeReader`] over the `merkle_nodes` table of one connection: one primary-key lookup
/// per node, so every root and proof costs O(log n) reads.
pub(super) struct SqlNodes<'c>(pub(super) &'c Connection);

impl NodeReader for SqlNodes<'_> {
    fn node(&self, level: u8, index: u64) -> Result<Hash, LedgerError> {
        let missing = LedgerError::MissingNode { level, index };
        let Ok(idx) = i64::try_from(index) else {
            return Err(missing);
        };
        let found: Option<Vec<u8>> = self
            .0
            .prepare_cached("SELECT hash FROM merkle_nodes WHERE level = ?1 AND idx = ?2")
            .and_then(|mut st| st.query_row(params![level, idx], |row| row.get(0)).optional())
            .map_err(|e| LedgerError::Storage(Box::new(e)))?;
        let bytes = found.ok_or(missing)?;
        Hash::try_from(bytes.as_slice()).map_err(|_| {
            LedgerError::Storage(
                format!("node (level {level}, index {index}) is {} bytes, not 32", bytes.len())
                    .into(),
            )
        })
    }
}

/// Number of stored ledger entries, from the dense `idx` primary key (O(log n)).
pub(super) fn ledger_size(conn: &Connection) -> Result<u64, StoreError> {
    let next: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(idx) + 1, 0) FROM ledger_entries")
        .db()?
        .query_row([], |row| row.get(0))
        .db()?;
    from_sql_int(next, "ledger size")
}

/// Append one entry at the frontier's size: the entry row with its leaf hash, then every
/// node [`Frontier::try_push`] reports (the level-0 leaf node and each subtree it completes).
/// The frontier is advanced; the writer restores it if the request's savepoint rolls back.
pub(super) fn append_entry(
    conn: &Connection,
    frontier: &mut Frontier,
    entry: &[u8],
) -> Result<u64, StoreError> {
    let index = frontier.size();
    let leaf = leaf_hash(entry);
    let nodes = frontier.try_push(leaf).map_err(ledger_err)?;
    conn.prepare_cached("INSERT INTO ledger_entries (idx, entry, leaf_hash) VALUES (?1, ?2, ?3)")
        .db()?
        .execute(params![to_sql_int(index, "ledger index")?, entry, leaf.as_slice()])
        .db()?;
    let mut insert_node = conn
        .prepare_cached("INSERT INTO merkle_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")
        .db()?;
    for node in nodes {
        insert_node
            .execute(params![
                node.level,
                to_sql_int(node.index, "node index")?,
                node.hash.as_slice()
            ])
            .db()?;
    }
    Ok(index)
}

// ---------------------------------------------------------------------------------------------
// Epochs and revocations
// ---------------------------------------------------------------------------------------------

/// The single `epochs` row.
pub(super) fn read_epochs(conn: &Connection) -> Result<Epochs, StoreError> {
    let row: Option<(i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT policy_epoch, revocation_epoch, updated_at_ms FROM epochs WHERE id = 0",
        )
        .db()?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()
        .db()?;
    let (p, r, u) = row.ok_or_else(|| StoreError::corrupt("the epochs row is missing"))?;
    Ok(Epochs {
        policy_epoch: from_sql_int(p, "policy_epoch")?,
        revocation_epoch: from_sql_int(r, "revocation_epoch")?,
        updated_at_ms: from_sql_int(u, "updated_at_ms")?,
    })
}

fn is_cid_revoked(conn: &Connection, cid: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM revoked_cids WHERE cid = ?1)")
        .db()?
        .query_row([cid], |row| row.get(0))
        .db()
}

fn is_agent_revoked(conn: &Connection, agent: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM revoked_agents WHERE agent = ?1)")
        .db()?
        .query_row([agent], |row| row.get(0))
        .db()
}

/// The epochs plus the two set memberships, read in one read transaction.
pub(super) fn epoch_check(
    conn: &Connection,
    cid: &str,
    agent: &str,
) -> Result<EpochCheck, StoreError> {
    Ok(EpochCheck {
        epochs: read_epochs(conn)?,
        cid_revoked: is_cid_revoked(conn, cid)?,
        agent_revoked: is_agent_revoked(conn, agent)?,
    })
}

/// Every revoked cid and agent, each sorted.
pub(super) fn revocations(conn: &Connection) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let list = |sql: &str| -> Result<Vec<String>, StoreError> {
        let mut st = conn.prepare_cached(sql).db()?;
        let rows = st.query_map([], |row| row.get::<_, String>(0)).db()?;
        rows.collect::<Result<Vec<_>, _>>().db()
    };
    Ok((
        list("SELECT cid FROM revoked_cids ORDER BY cid")?,
        list("SELECT agent FROM revoked_agents ORDER BY agent")?,
    ))
}

/// `updated_at_ms` never moves backwards, whatever clock the caller used.
const TOUCH_EPOCHS: &str = "UPDATE epochs SET updated_at_ms = MAX(updated_at_ms, ?1) WHERE id = 0";

/// Bump `policy_epoch` and append the optional record.
pub(super) fn bump_policy_epoch(
    ctx: &mut WriteCtx<'_>,
    at_ms: u64,
    record: Option<&[u8]>,
) -> Result<Epochs, StoreError> {
    let before = read_epochs(ctx.conn)?;
    let next = before
        .policy_epoch
        .checked_add(1)
        .ok_or_else(|| StoreError::invalid("policy_epoch cannot grow further"))?;
    ctx.conn
        .prepare_cached("UPDATE epochs SET policy_epoch = ?1 WHERE id = 0")
        .db()?
        .execute([to_sql_int(next, "policy_epoch")?])
        .db()?;
    ctx.conn.prepare_cached(TOUCH_EPOCHS).db()?.execute([to_sql_int(at_ms, "at_ms")?]).db()?;
    if let Some(record) = record {
        append_entry(ctx.conn, ctx.frontier, record)?;
    }
    read_epochs(ctx.conn)
}

/// Record a revocation and append the optional record. Only [`Revocation::All`] changes an
/// epoch; single cids and agents are checked by set membership.
pub(super) fn revoke(
    ctx: &mut WriteCtx<'_>,
    what: &Revocation,
    at_ms: u64,
    record: Option<&[u8]>,
) -> Result<Epochs, StoreError> {
    let at = to_sql_int(at_ms, "at_ms")?;
    match what {
        Revocation::All => {
            let before = read_epochs(ctx.conn)?;
            let next = before
                .revocation_epoch
                .checked_add(1)
                .ok_or_else(|| StoreError::invalid("revocation_epoch cannot grow further"))?;
            ctx.conn
                .prepare_cached("UPDATE epochs SET revocation_epoch = ?1 WHERE id = 0")
                .db()?
                .execute([to_sql_int(next, "revocation_epoch")?])
                .db()?;
        }
        Revocation::Cid(cid) => {
            ctx.conn
                .prepare_cached(
                    "INSERT INTO revoked_cids (cid, revoked_at_ms) VALUES (?1, ?2) \
                     ON CONFLICT (cid) DO NOTHING",
                )
                .db()?
                .execute(params![cid, at])
                .db()?;
        }
        Revocation::Agent(agent) => {
            ctx.conn
                .prepare_cached(
                    "INSERT INTO revoked_agents (agent, revoked_at_ms) VALUES (?1, ?2) \
                     ON CONFLICT (agent) DO NOTHING",
                )
                .db()?
                .execute(params![agent, at])
                .db()?;
        }
    }
    ctx.conn.prepare_cached(TOUCH_EPOCHS).db()?.execute([at]).db()?;
    if let Some(record) = record {
        append_entry(ctx.conn, ctx.frontier, record)?;
    }
    read_epochs(ctx.conn)
}

// ---------------------------------------------------------------------------------------------
// Executions
// ---------------------------------------------------------------------------------------------

/// Steps 12–13 inside the request's savepoint: epochs and revocations re-read under the
/// write lock, the (cid, nonce) insert, the admit record and the intent. Every `Ok` outcome
/// other than `Reserved` has written nothing.
pub(super) fn reserve(
    ctx: &mut WriteCtx<'_>,
    r: &Reservation,
) -> Result<ReserveResult, StoreError> {
    let active = read_epochs(ctx.conn)?;
    if active.policy_epoch != r.policy_epoch || active.revocation_epoch != r.revocation_epoch {
        return Ok(ReserveResult::EpochChanged { active });
    }
    if is_cid_revoked(ctx.conn, &r.cid)? {
        return Ok(ReserveResult::Revoked {
            reason: format!("certificate `{}` is revoked", r.cid),
        });
    }
    if is_agent_revoked(ctx.conn, &r.agent)? {
        return Ok(ReserveResult::Revoked { reason: format!("agent `{}` is revoked", r.agent) });
    }
    let admit_index = ctx.frontier.size();
    // The foreign key to ledger_entries is deferred: the entry lands right below, in the
    // same savepoint, and a replay is detected before anything is written.
    let inserted = ctx
        .conn
        .prepare_cached(
            "INSERT INTO reservations (cid, nonce, agent, admit_index, intent, admitted_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (cid, nonce) DO NOTHING",
        )
        .db()?
        .execute(params![
            r.cid,
            r.nonce,
            r.agent,
            to_sql_int(admit_index, "ledger index")?,
            r.intent,
            to_sql_int(r.at_ms, "at_ms")?,
        ])
        .db()?;
    if inserted == 0 {
        return Ok(ReserveResult::Replay);
    }
    let appended = append_entry(ctx.conn, ctx.frontier, &r.admit_entry)?;
    if appended != admit_index {
        return Err(StoreError::corrupt(format!(
            "admit record landed at {appended}, expected {admit_index}"
        )));
    }
    Ok(ReserveResult::Reserved { admit_index })
}

/// `None` when (cid, nonce) is unknown, else whether it has an outcome.
fn execution_state(conn: &Connection, cid: &str, nonce: &str) -> Result<Option<bool>, StoreError> {
    conn.prepare_cached(
        "SELECT outcome_index IS NOT NULL FROM reservations WHERE cid = ?1 AND nonce = ?2",
    )
    .db()?
    .query_row([cid, nonce], |row| row.get(0))
    .optional()
    .db()
}

/// Note the dispatch (idempotent: the first time is kept).
pub(super) fn mark_dispatched(
    ctx: &mut WriteCtx<'_>,
    cid: &str,
    nonce: &str,
    at_ms: u64,
) -> Result<(), StoreError> {
    match execution_state(ctx.conn, cid, nonce)? {
        None => return Err(unknown_execution(cid, nonce)),
        Some(true) => {
            return Err(StoreError::AlreadyCompleted { cid: cid.into(), nonce: nonce.into() });
        }
        Some(false) => {}
    }
    ctx.conn
        .prepare_cached(
            "UPDATE reservations SET dispatched_at_ms = COALESCE(dispatched_at_ms, ?3) \
             WHERE cid = ?1 AND nonce = ?2",
        )
        .db()?
        .execute(params![cid, nonce, to_sql_int(at_ms, "at_ms")?])
        .db()?;
    Ok(())
}

/// Append the outcome record and close the intent.
pub(super) fn complete(
    ctx: &mut WriteCtx<'_>,
    cid: &str,
    nonce: &str,
    outcome_entry: &[u8],
) -> Result<u64, StoreError> {
    match execution_state(ctx.conn, cid, nonce)? {
        None => return Err(unknown_execution(cid, nonce)),
        Some(true) => {
            return Err(StoreError::AlreadyCompleted { cid: cid.into(), nonce: nonce.into() });
        }
        Some(false) => {}
    }
    let index = append_entry(ctx.conn, ctx.frontier, outcome_entry)?;
    ctx.conn
        .prepare_cached(
            "UPDATE reservations SET outcome_index = ?3 \
             WHERE cid = ?1 AND nonce = ?2 AND outcome_index IS NULL",
        )
        .db()?
        .execute(params![cid, nonce, to_sql_int(index, "ledger index")?])
        .db()?;
    Ok(index)
}

/// Whether (cid, nonce) is reserved.
pub(super) fn is_reserved(conn: &Connection, cid: &str, nonce: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM reservations WHERE cid = ?1 AND nonce = ?2)")
        .db()?
        .query_row([cid, nonce], |row| row.get(0))
        .db()
}

/// Admitted executions without an outcome, oldest (lowest admit index) first.
pub(super) fn pending(conn: &Connection) -> Result<Vec<PendingExecution>, StoreError> {
    let mut st = conn
        .prepare_cached(
            "SELECT cid, nonce, intent, dispatched_at_ms IS NOT NULL, admitted_at_ms \
             FROM reservations WHERE outcome_index IS NULL ORDER BY admit_index",
        )
        .db()?;
    let rows = st
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Vec<u8>>(2)?,
                row.get::<_, bool>(3)?,
                row.get::<_, i64>(4)?,
            ))
        })
        .db()?;
    let mut out = Vec::new();
    for row in rows {
        let (cid, nonce, intent, dispatched, at) = row.db()?;
        out.push(PendingExecution {
            cid,
            nonce,
            intent,
            dispatched,
            admitted_at_ms: from_sql_int(at, "admitted_at_ms")?,
        });
    }
    Ok(out)
}

/// In-flight executions above `after` by key, oldest first ([`crate::Store::in_flight_keys`]).
pub(super) fn in_flight_keys(
    conn: &Connection,
    after: Option<u64>,
) -> Result<Vec<InFlightKey>, StoreError> {
    // -1 (below every index) for all of them.
    let after = match after {
        None => -1,
        Some(a) => to_sql_int(a, "after")?,
    };
    let mut st = conn
        .prepare_cached(
            "SELECT admit_index, cid, nonce FROM reservations \
             WHERE outcome_index IS NULL AND admit_index > ?1 ORDER BY admit_index",
        )
        .db()?;
    let rows = st
        .query_map([after], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?))
        })
        .db()?;
    let mut out = Vec::new();
    for row in rows {
        let (index, cid, nonce) = row.db()?;
        out.push(InFlightKey { admit_index: from_sql_int(index, "admit_index")?, cid, nonce });
    }
    Ok(out)
}

/// The execution `(cid, nonce)` if it is admitted and has no outcome yet.
pub(super) fn in_flight_execution(
    conn: &Connection,
    cid: &str,
    nonce: &str,
) -> Result<Option<PendingExecution>, StoreError> {
    let mut st = conn
        .prepare_cached(
            "SELECT intent, dispatched_at_ms IS NOT NULL, admitted_at_ms FROM reservations \
             WHERE cid = ?1 AND nonce = ?2 AND outcome_index IS NULL",
        )
        .db()?;
    let row = st
        .query_row([cid, nonce], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, bool>(1)?, row.get::<_, i64>(2)?))
        })
        .optional()
        .db()?;
    row.map(|(intent, dispatched, at)| {
        Ok(PendingExecution {
            cid: cid.to_owned(),
            nonce: nonce.to_owned(),
            intent,
            dispatched,
            admitted_at_ms: from_sql_int(at, "admitted_at_ms")?,
        })
    })
    .transpose()
}

// ---------------------------------------------------------------------------------------------
// Ledger
// ---------------------------------------------------------------------------------------------

/// Append records in order, all or nothing (the request's savepoint).
pub(super) fn append(ctx: &mut WriteCtx<'_>, entries: &[Vec<u8>]) -> Result<Vec<u64>, StoreError> {
    entries.iter().map(|e| append_entry(ctx.conn, ctx.frontier, e)).collect()
}

fn check_size(conn: &Connection, size: u64) -> Result<(), StoreError> {
    let stored = ledger_size(conn)?;
    if size > stored {
        return Err(StoreError::invalid(format!(
            "tree size {size} exceeds the ledger size {stored}"
        )));
    }
    Ok(())
}

/// Entries `[start, end)`; the range must lie inside the ledger.
pub(super) fn entries(conn: &Connection, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
    if start > end {
        return Err(StoreError::invalid(format!("entry range start {start} exceeds end {end}")));
    }
    check_size(conn, end)?;
    let mut st = conn
        .prepare_cached(
            "SELECT idx, entry FROM ledger_entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
        )
        .db()?;
    let rows = st
        .query_map([to_sql_int(start, "entry index")?, to_sql_int(end, "entry index")?], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .db()?;
    let mut out = Vec::new();
    let mut expected = start;
    for row in rows {
        let (idx, entry) = row.db()?;
        if from_sql_int(idx, "entry index")? != expected {
            return Err(StoreError::corrupt(format!("ledger entry {expected} is missing")));
        }
        out.push(entry);
        expected = expected.saturating_add(1);
    }
    if expected != end {
        return Err(StoreError::corrupt(format!("ledger entry {expected} is missing")));
    }
    Ok(out)
}

/// The root of the first `size` entries.
pub(super) fn root(conn: &Connection, size: u64) -> Result<Hash, StoreError> {
    check_size(conn, size)?;
    merkle::root_at(&SqlNodes(conn), size).map_err(ledger_err)
}

/// Inclusion proof of `index` in the tree of `size`.
pub(super) fn inclusion_proof(
    conn: &Connection,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, StoreError> {
    check_size(conn, size)?;
    merkle::inclusion_proof(&SqlNodes(conn), index, size).map_err(ledger_err)
}

/// Consistency proof from `old_size` to `new_size`.
pub(super) fn consistency_proof(
    conn: &Connection,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, StoreError> {
    check_size(conn, new_size)?;
    merkle::consistency_proof(&SqlNodes(conn), old_size, new_size).map_err(ledger_err)
}

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

fn checkpoint_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, String, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn to_checkpoint((size, note, at): (i64, String, i64)) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: from_sql_int(size, "checkpoint size")?,
        note,
        at_ms: from_sql_int(at, "checkpoint at_ms")?,
    })
}

/// The newest (last stored) checkpoint.
pub(super) fn latest_checkpoint(conn: &Connection) -> Result<Option<StoredCheckpoint>, StoreError> {
    conn.prepare_cached("SELECT size, note, at_ms FROM checkpoints ORDER BY seq DESC LIMIT 1")
        .db()?
        .query_row([], checkpoint_row)
        .optional()
        .db()?
        .map(to_checkpoint)
        .transpose()
}

/// Every checkpoint, oldest first.
pub(super) fn checkpoints(conn: &Connection) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let mut st =
        conn.prepare_cached("SELECT size, note, at_ms FROM checkpoints ORDER BY seq").db()?;
    let rows = st.query_map([], checkpoint_row).db()?;
    rows.map(|row| to_checkpoint(row.db()?)).collect()
}

/// Store a checkpoint: its size must lie inside the ledger and must not be smaller than the
/// newest stored checkpoint's (checkpoints only move forward).
pub(super) fn put_checkpoint(
    ctx: &mut WriteCtx<'_>,
    cp: &StoredCheckpoint,
) -> Result<(), StoreError> {
    let size = ctx.frontier.size();
    if cp.size > size {
        return Err(StoreError::invalid(format!(
            "checkpoint size {} exceeds the ledger size {size}",
            cp.size
        )));
    }
    if let Some(latest) = latest_checkpoint(ctx.conn)?
        && cp.size < latest.size
    {
        return Err(StoreError::invalid(format!(
            "checkpoint size {} is smaller than the newest stored checkpoint's {}",
            cp.size, latest.size
        )));
    }
    ctx.conn
        .prepare_cached("INSERT INTO checkpoints (size, note, at_ms) VALUES (?1, ?2, ?3)")
        .db()?
        .execute(params![
            to_sql_int(cp.size, "checkpoint size")?,
            cp.note,
            to_sql_int(cp.at_ms, "at_ms")?
        ])
        .db()?;
    Ok(())
}

/// The leaf hash stored beside entry `index`, for the open-time check.
pub(super) fn stored_leaf(conn: &Connection, index: u64) -> Result<(Hash, Vec<u8>), StoreError> {
    let (hash, entry): (Vec<u8>, Vec<u8>) = conn
        .prepare_cached("SELECT leaf_hash, entry FROM ledger_entries WHERE idx = ?1")
        .db()?
        .query_row([to_sql_int(index, "entry index")?], |row| Ok((row.get(0)?, row.get(1)?)))
        .db()?;
    Ok((to_hash(&hash, "leaf hash")?, entry))
}
