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
pub const SCHEMA_VERSION: i32 = 5;

/// Migration `n` (1-based) brings a database from version `n - 1` to `n`. Append only: a
/// released migration is never edited.
const MIGRATIONS: &[&str] = &[
    MIGRATION_1,
    MIGRATION_2,
    MIGRATION_3,
    crate::net_effect::MIGRATION,
    crate::approvers::MIGRATION_APPROVERS,
];

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

/// Admission's durable state (SEB-SPEC 5.3, [`seb_store::admission`]), shared by every
/// replica. Proposals are never deleted (the seen-proposal set), approvals, signatures and
/// policy versions are append-only (triggers refuse UPDATE and DELETE; TRUNCATE from
/// migration 3). Every admission write transaction locks `ledger_head` first (as every ledger
/// append does), so admission changes and their ledger records have one order.
///
/// - `admission_proposals`: one row per proposal id ever received (never deleted: the
///   seen-proposal set); `version` is the compare-and-set token.
/// - `admission_approvals`: (proposal, approver) primary key: one decision each.
/// - `admission_signatures`: (proposal, draft cid, operator): one signature each.
/// - `admission_admin_requests`: admin request ids inside the freshness window.
/// - `admission_policies`: every policy version; the last one is in force.
const MIGRATION_2: &str = "
CREATE TABLE admission_proposals (
    proposal_id    text PRIMARY KEY,
    agent          text NOT NULL,
    status         text NOT NULL,
    version        bigint NOT NULL CHECK (version >= 0),
    received_at_ms bigint NOT NULL CHECK (received_at_ms >= 0),
    deadline_ms    bigint,
    claim_until_ms bigint,
    body           bytea NOT NULL
);
CREATE INDEX admission_proposals_status ON admission_proposals (status, received_at_ms);
CREATE TRIGGER admission_proposals_no_delete BEFORE DELETE ON admission_proposals
    FOR EACH ROW EXECUTE FUNCTION seb_append_only();

CREATE TABLE admission_approvals (
    proposal_id text NOT NULL REFERENCES admission_proposals (proposal_id),
    approver    text NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    at_ms       bigint NOT NULL CHECK (at_ms >= 0),
    body        bytea NOT NULL,
    PRIMARY KEY (proposal_id, approver)
);
CREATE TRIGGER admission_approvals_append_only BEFORE UPDATE OR DELETE ON admission_approvals
    FOR EACH ROW EXECUTE FUNCTION seb_append_only();

CREATE TABLE admission_signatures (
    proposal_id text NOT NULL REFERENCES admission_proposals (proposal_id),
    cid         text NOT NULL,
    operator    text NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    at_ms       bigint NOT NULL CHECK (at_ms >= 0),
    body        bytea NOT NULL,
    PRIMARY KEY (proposal_id, cid, operator)
);
CREATE TRIGGER admission_signatures_append_only BEFORE UPDATE OR DELETE ON admission_signatures
    FOR EACH ROW EXECUTE FUNCTION seb_append_only();

CREATE TABLE admission_admin_requests (
    request_id text PRIMARY KEY,
    at_ms      bigint NOT NULL
);

CREATE TABLE admission_policies (
    policy_epoch bigint PRIMARY KEY CHECK (policy_epoch >= 0),
    digest       text NOT NULL,
    text         text NOT NULL,
    loaded_at_ms bigint NOT NULL CHECK (loaded_at_ms >= 0),
    loaded_by    text NOT NULL
);
CREATE TRIGGER admission_policies_append_only BEFORE UPDATE OR DELETE ON admission_policies
    FOR EACH ROW EXECUTE FUNCTION seb_append_only();
";

/// Admission notifications and the rest of admission's append-only guard:
/// `admission_notifications` holds the notification keys claimed (sent once across
/// replicas); TRUNCATE of the admission tables is refused like UPDATE and DELETE.
const MIGRATION_3: &str = "
CREATE TABLE admission_notifications (
    key   text PRIMARY KEY,
    at_ms bigint NOT NULL
);
CREATE TRIGGER admission_proposals_no_truncate BEFORE TRUNCATE ON admission_proposals
    FOR EACH STATEMENT EXECUTE FUNCTION seb_append_only();
CREATE TRIGGER admission_approvals_no_truncate BEFORE TRUNCATE ON admission_approvals
    FOR EACH STATEMENT EXECUTE FUNCTION seb_append_only();
CREATE TRIGGER admission_signatures_no_truncate BEFORE TRUNCATE ON admission_signatures
    FOR EACH STATEMENT EXECUTE FUNCTION seb_append_only();
CREATE TRIGGER admission_policies_no_truncate BEFORE TRUNCATE ON admission_policies
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
