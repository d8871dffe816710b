//! Versioned migrations, run by every replica on start.
//!
//! Replicas starting together are serialised by a transaction-scoped advisory lock, and each
//! migration commits with its version row, so a half-applied schema is never visible. A
//! database whose schema is newer than this build is refused (an older broker must not
//! write into a layout it does not know).

use tokio_postgres::Client;

use crate::{LEASE_CLASS, pg_err};
use seb_store::StoreError;

/// The schema version this build writes. A database with a higher version is refused.
pub const SCHEMA_VERSION: i32 = 2;

/// Migration `n` (1-based) brings a database from version `n - 1` to `n`. Append only: a
/// released migration is never edited.
const MIGRATIONS: &[&str] = &[MIGRATION_1, crate::approvers::MIGRATION_APPROVERS];

/// Everything of schema version 1.
///
/// - `epochs`: exactly one row (`id = 0`).
/// - `ledger_head`: exactly one row (`id = 0`): the ledger size and the Merkle frontier's
///   right edge (the complete-subtree hashes of the set bits of `size`, largest first,
///   32 bytes each). EVERY transaction that appends to the ledger, changes the epochs or the
///   revocation sets, or stores a checkpoint locks this row first (`SELECT ... FOR UPDATE`):
///   that is what gives the ledger one order across replicas and what makes a committed
///   revocation visible to every reservation that starts after it.
/// - `reservations`: (cid, nonce) is the primary key; `owner` is the lease id of the store
///   that reserved it (see `pending`).
/// - `ledger_entries`, `merkle_nodes`: append-only (triggers refuse UPDATE, DELETE and
///   TRUNCATE), like `checkpoints`; reservations are never deleted.
const MIGRATION_1: &str = "
CREATE TABLE epochs (
    id               smallint PRIMARY KEY CHECK (id = 0),
    policy_epoch     bigint NOT NULL CHECK (policy_epoch >= 0),
    revocation_epoch bigint NOT NULL CHECK (revocation_epoch >= 0),
    updated_at_ms    bigint NOT NULL CHECK (updated_at_ms >= 0)
);
INSERT INTO epochs (id, policy_epoch, revocation_epoch, updated_at_ms) VALUES (0, 0, 0, 0);

CREATE TABLE revoked_cids (
    cid           text PRIMARY KEY,
    revoked_at_ms bigint NOT NULL
);

CREATE TABLE revoked_agents (
    agent         text PRIMARY KEY,
    revoked_at_ms bigint NOT NULL
);

CREATE TABLE ledger_head (
    id   smallint PRIMARY KEY CHECK (id = 0),
    size bigint NOT NULL CHECK (size >= 0),
    edge bytea NOT NULL CHECK (octet_length(edge) % 32 = 0)
);
INSERT INTO ledger_head (id, size, edge) VALUES (0, 0, '\\x');

CREATE TABLE ledger_entries (
    idx       bigint PRIMARY KEY CHECK (idx >= 0),
    entry     bytea NOT NULL,
    leaf_hash bytea NOT NULL CHECK (octet_length(leaf_hash) = 32)
);

CREATE TABLE merkle_nodes (
    level smallint NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx   bigint NOT NULL CHECK (idx >= 0),
    hash  bytea NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (level, idx)
);

CREATE SEQUENCE owner_seq AS integer MINVALUE 1 MAXVALUE 2147483647 CYCLE;

CREATE TABLE reservations (
    cid              text NOT NULL,
    nonce            text NOT NULL,
    agent            text NOT NULL,
    admit_index      bigint NOT NULL UNIQUE
                     REFERENCES ledger_entries (idx) DEFERRABLE INITIALLY DEFERRED,
    intent           bytea NOT NULL,
    dispatched_at_ms bigint,
    outcome_index    bigint UNIQUE
                     REFERENCES ledger_entries (idx) DEFERRABLE INITIALLY DEFERRED,
    admitted_at_ms   bigint NOT NULL CHECK (admitted_at_ms >= 0),
    owner            integer NOT NULL,
    PRIMARY KEY (cid, nonce)
);
CREATE INDEX reservations_pending ON reservations (admit_index) WHERE outcome_index IS NULL;

CREATE TABLE checkpoints (
    seq   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    size  bigint NOT NULL CHECK (size >= 0),
    note  text NOT NULL,
    at_ms bigint NOT NULL CHECK (at_ms >= 0)
);

CREATE FUNCTION seb_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'seb: % on % is refused: the table is append-only', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION seb_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION seb_append_only();
CREATE TRIGGER merkle_nodes_append_only BEFORE UPDATE OR DELETE ON merkle_nodes
    FOR EACH ROW EXECUTE FUNCTION seb_append_only();
CREATE TRIGGER merkle_nodes_no_truncate BEFORE TRUNCATE ON merkle_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION seb_append_only();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION seb_append_only();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION seb_append_only();
CREATE TRIGGER reservations_no_delete BEFORE DELETE ON reservations
    FOR EACH ROW EXECUTE FUNCTION seb_append_only();
CREATE TRIGGER reservations_no_truncate BEFORE TRUNCATE ON reservations
    FOR EACH STATEMENT EXECUTE FUNCTION seb_append_only();
";

/// Bring the schema to [`SCHEMA_VERSION`]; refuse a newer one.
pub(crate) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    // Replicas starting at once: one migrates, the others wait and then see its version.
    tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LEASE_CLASS]).await.map_err(pg_err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(pg_err)?;
    let current: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await
        .map_err(pg_err)?
        .try_get(0)
        .map_err(pg_err)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::invalid(format!(
            "database schema version {current} is newer than this build supports \
             ({SCHEMA_VERSION}); refusing to use it"
        )));
    }
    for (version, sql) in (1i32..).zip(MIGRATIONS) {
        if version > current {
            tx.batch_execute(sql).await.map_err(pg_err)?;
            tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&version])
                .await
                .map_err(pg_err)?;
            tracing::info!(version, "postgres store: migration applied");
        }
    }
    tx.commit().await.map_err(pg_err)
}
