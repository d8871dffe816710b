//! Connection settings, versioned migrations and the open-time integrity check.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use seb_ledger::merkle::{Frontier, NodeReader as _, leaf_hash};

use super::ops::{self, DbResult as _, SqlNodes, from_sql_int};
use super::{SqliteOptions, Synchronous};
use crate::StoreError;

/// The schema version this build writes. A database with a higher version is refused.
pub const SCHEMA_VERSION: u32 = 5;

/// Migration `n` (1-based) brings a database from version `n - 1` to `n`. Append only: a
/// released migration is never edited.
const MIGRATIONS: &[&str] = &[
    MIGRATION_1,
    MIGRATION_2,
    MIGRATION_3,
    super::net_effect::MIGRATION,
    super::approvers::MIGRATION_APPROVERS,
];

/// Everything of schema version 1.
///
/// - `epochs`: exactly one row (`id = 0`).
/// - `reservations`: (cid, nonce) is the primary key, so a second reservation is a
///   uniqueness conflict; `admit_index` and `outcome_index` point into the ledger (deferred
///   foreign keys: the reservation row is written first so a replay writes nothing).
/// - `ledger_entries`: dense `idx` from 0, the entry bytes and their RFC 9162 leaf hash.
/// - `merkle_nodes`: every complete subtree hash, level 0 included (append only).
/// - `checkpoints`: `seq` orders them by insertion.
const MIGRATION_1: &str = "
CREATE TABLE epochs (
    id               INTEGER PRIMARY KEY CHECK (id = 0),
    policy_epoch     INTEGER NOT NULL CHECK (policy_epoch >= 0),
    revocation_epoch INTEGER NOT NULL CHECK (revocation_epoch >= 0),
    updated_at_ms    INTEGER NOT NULL CHECK (updated_at_ms >= 0)
) STRICT;
INSERT INTO epochs (id, policy_epoch, revocation_epoch, updated_at_ms) VALUES (0, 0, 0, 0);

CREATE TABLE revoked_cids (
    cid           TEXT NOT NULL PRIMARY KEY,
    revoked_at_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE revoked_agents (
    agent         TEXT NOT NULL PRIMARY KEY,
    revoked_at_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE ledger_entries (
    idx       INTEGER PRIMARY KEY CHECK (idx >= 0),
    entry     BLOB NOT NULL,
    leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32)
) STRICT;

CREATE TABLE merkle_nodes (
    level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx   INTEGER NOT NULL CHECK (idx >= 0),
    hash  BLOB NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE reservations (
    cid              TEXT NOT NULL,
    nonce            TEXT NOT NULL,
    agent            TEXT NOT NULL,
    admit_index      INTEGER NOT NULL UNIQUE
                     REFERENCES ledger_entries (idx) DEFERRABLE INITIALLY DEFERRED,
    intent           BLOB NOT NULL,
    dispatched_at_ms INTEGER,
    outcome_index    INTEGER UNIQUE
                     REFERENCES ledger_entries (idx) DEFERRABLE INITIALLY DEFERRED,
    admitted_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (cid, nonce)
) STRICT;
CREATE INDEX reservations_pending ON reservations (admit_index) WHERE outcome_index IS NULL;

CREATE TABLE checkpoints (
    seq   INTEGER PRIMARY KEY,
    size  INTEGER NOT NULL CHECK (size >= 0),
    note  TEXT NOT NULL,
    at_ms INTEGER NOT NULL CHECK (at_ms >= 0)
) STRICT;
";

/// Admission's durable state (SEB-SPEC 5.3, [`crate::admission`]).
///
/// - `admission_proposals`: one row per proposal id ever received (never deleted: the
///   seen-proposal set); `version` is the compare-and-set token.
/// - `admission_approvals`: (proposal, approver) is the primary key: one decision each.
/// - `admission_signatures`: (proposal, draft cid, operator): one signature each.
/// - `admission_admin_requests`: admin request ids inside the freshness window.
/// - `admission_policies`: every policy version; the last one is in force.
const MIGRATION_2: &str = "
CREATE TABLE admission_proposals (
    proposal_id    TEXT NOT NULL PRIMARY KEY,
    agent          TEXT NOT NULL,
    status         TEXT NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 0),
    received_at_ms INTEGER NOT NULL CHECK (received_at_ms >= 0),
    deadline_ms    INTEGER,
    claim_until_ms INTEGER,
    body           BLOB NOT NULL
) STRICT;
CREATE INDEX admission_proposals_status ON admission_proposals (status, received_at_ms);

CREATE TABLE admission_approvals (
    proposal_id TEXT NOT NULL REFERENCES admission_proposals (proposal_id),
    approver    TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL CHECK (at_ms >= 0),
    body        BLOB NOT NULL,
    PRIMARY KEY (proposal_id, approver)
) STRICT;

CREATE TABLE admission_signatures (
    proposal_id TEXT NOT NULL REFERENCES admission_proposals (proposal_id),
    cid         TEXT NOT NULL,
    operator    TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL CHECK (at_ms >= 0),
    body        BLOB NOT NULL,
    PRIMARY KEY (proposal_id, cid, operator)
) STRICT;

CREATE TABLE admission_admin_requests (
    request_id TEXT NOT NULL PRIMARY KEY,
    at_ms      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE admission_policies (
    policy_epoch INTEGER NOT NULL PRIMARY KEY CHECK (policy_epoch >= 0),
    digest       TEXT NOT NULL,
    text         TEXT NOT NULL,
    loaded_at_ms INTEGER NOT NULL CHECK (loaded_at_ms >= 0),
    loaded_by    TEXT NOT NULL
) STRICT;
";

/// Admission notifications (SEB-SPEC 5.3): `admission_notifications` holds the notification
/// keys claimed, so a notification is sent once across replicas and restarts.
const MIGRATION_3: &str = "
CREATE TABLE admission_notifications (
    key   TEXT NOT NULL PRIMARY KEY,
    at_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
";

impl Synchronous {
    fn pragma_value(self) -> i64 {
        match self {
            Synchronous::Normal => 1,
            Synchronous::Full => 2,
        }
    }
}

/// Open the read-write connection and apply the writer's settings. `None` = private
/// in-memory database.
pub(super) fn open_writer(
    path: Option<&Path>,
    opts: &SqliteOptions,
) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match path {
        Some(p) => Connection::open_with_flags(p, flags),
        None => Connection::open_in_memory_with_flags(flags),
    }
    .db()?;
    conn.busy_timeout(opts.busy_timeout).db()?;
    if path.is_some() {
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).db()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::unavailable(format!(
                "sqlite: journal_mode is `{mode}`, WAL is required"
            )));
        }
    }
    conn.pragma_update(None, "synchronous", opts.synchronous.pragma_value()).db()?;
    let sync: i64 = conn.pragma_query_value(None, "synchronous", |row| row.get(0)).db()?;
    if sync != opts.synchronous.pragma_value() {
        return Err(StoreError::unavailable(format!("sqlite: synchronous stayed at {sync}")));
    }
    conn.pragma_update(None, "foreign_keys", true).db()?;
    let fk: bool = conn.pragma_query_value(None, "foreign_keys", |row| row.get(0)).db()?;
    if !fk {
        return Err(StoreError::unavailable("sqlite: foreign keys cannot be enabled"));
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Open one read-only connection on an existing database file.
pub(super) fn open_reader(path: &Path, opts: &SqliteOptions) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).db()?;
    conn.busy_timeout(opts.busy_timeout).db()?;
    conn.pragma_update(None, "query_only", true).db()?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Bring the schema to [`SCHEMA_VERSION`] in one transaction; refuse a newer one.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY) STRICT",
    )
    .db()?;
    let current: i64 = tx
        .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |row| row.get(0))
        .db()?;
    let current = u32::try_from(current)
        .map_err(|_| StoreError::corrupt(format!("schema version {current} is out of range")))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::invalid(format!(
            "database schema version {current} is newer than this build supports \
             ({SCHEMA_VERSION}); refusing to open it"
        )));
    }
    for (version, sql) in (1u32..).zip(MIGRATIONS) {
        if version > current {
            tx.execute_batch(sql).db()?;
            tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [version]).db()?;
        }
    }
    tx.commit().db()
}

/// Rebuild the frontier from the stored nodes and check that the tables agree:
/// entries dense from 0 (their count equals the size when `count_entries` is set, an O(n)
/// scan), as many level-0 nodes as entries, every frontier node present, and the last
/// entry's leaf hash equal to both its stored copies.
pub(super) fn load_frontier(
    conn: &Connection,
    count_entries: bool,
) -> Result<Frontier, StoreError> {
    let size = ops::ledger_size(conn)?;
    let first: Option<i64> =
        conn.query_row("SELECT MIN(idx) FROM ledger_entries", [], |row| row.get(0)).db()?;
    if size > 0 && first != Some(0) {
        return Err(StoreError::corrupt("the ledger does not start at index 0"));
    }
    if count_entries {
        let count: i64 =
            conn.query_row("SELECT COUNT(*) FROM ledger_entries", [], |row| row.get(0)).db()?;
        let count = from_sql_int(count, "entry count")?;
        if count != size {
            return Err(StoreError::corrupt(format!(
                "{count} ledger entries stored but their indices span {size}"
            )));
        }
    }
    let leaves: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(idx) + 1, 0) FROM merkle_nodes WHERE level = 0",
            [],
            |row| row.get(0),
        )
        .db()?;
    let leaves = from_sql_int(leaves, "leaf count")?;
    if leaves != size {
        return Err(StoreError::corrupt(format!(
            "{size} ledger entries but {leaves} stored leaf nodes"
        )));
    }
    let nodes = SqlNodes(conn);
    let frontier = Frontier::from_reader(&nodes, size).map_err(ops::ledger_err)?;
    if frontier.size() != size {
        return Err(StoreError::corrupt(format!(
            "frontier size {} differs from the ledger size {size}",
            frontier.size()
        )));
    }
    if let Some(last) = size.checked_sub(1) {
        let (stored, entry) = ops::stored_leaf(conn, last)?;
        let node = nodes.node(0, last).map_err(ops::ledger_err)?;
        if stored != leaf_hash(&entry) || node != stored {
            return Err(StoreError::corrupt(format!(
                "the leaf hash of entry {last} does not match its bytes"
            )));
        }
    }
    Ok(frontier)
}
