//! # seb-store-postgres
//!
//! The [`Store`] on PostgreSQL, for running several broker and admission replicas as one:
//! a certificate is used at most once across all of them, a revocation stops every replica
//! at once, and there is one ledger with one history. PostgreSQL is the only coordinator;
//! there is no consensus of our own.
//!
//! ## How the invariants hold across replicas
//!
//! - **One order.** Every transaction that writes shared state (appends to the ledger,
//!   reserves, completes, revokes, bumps an epoch, stores a checkpoint) first locks the single
//!   `ledger_head` row with `SELECT ... FOR UPDATE`. The row holds the ledger size and the
//!   Merkle frontier's right edge, so appends from all replicas are serialised and the log
//!   has one order; the frontier travels with the lock instead of living in one process.
//! - **Zero-window revocation.** [`Store::reserve`] runs at READ COMMITTED and reads the
//!   epochs and the revocation sets in statements that start after the head lock is
//!   granted. A revocation also takes the head lock. So either the revocation committed
//!   before the reservation's lock was granted (and its later statements see it), or the
//!   revocation waits for the reservation to commit (and the reservation precedes it in the
//!   ledger). A revocation committed before a reservation starts is always seen: there is
//!   no cache and no propagation delay to wait for. `revocation_committed_first_always_wins`
//!   and `revocation_during_reservations_is_linearizable` in the conformance suite, and
//!   the multi-store tests of this crate, check it.
//! - **Single use.** `(cid, nonce)` is the primary key of `reservations`; the batch decides
//!   `Replay` from rows read under the lock, and the key would refuse a duplicate anyway.
//! - **Admit before credential.** The nonce row, the admit entry, its Merkle nodes, the new
//!   head and the intent commit in one transaction (with others: see [`writer`]).
//! - **Crash recovery across replicas.** Each store holds a *lease*: a session-level advisory
//!   lock on a fresh id, on a connection of its own. Reservations record the id.
//!   [`Store::pending`] lists the store's own unfinished executions and those whose lease
//!   holder is gone (PostgreSQL drops a session's locks when its process dies), so a
//!   replica that starts reconciles what a killed replica left behind, and never an
//!   execution that a live replica is still running; [`Store::orphans`] lists only the gone
//!   replicas' executions, which live replicas reconcile periodically once they have stayed
//!   orphaned for a grace period. When the lease session drops (the database restarted, a
//!   connection was cut) the store retakes the SAME id as soon as the database answers, so
//!   its executions never look orphaned for longer than that. [`Store::mark_dispatched`]
//!   refuses an execution reserved under another lease, so an orphan can no longer reach
//!   the target.
//!
//! ## Failure behaviour
//!
//! Database unreachable, a timeout, a lost connection: the call fails with
//! [`StoreError::Unavailable`] (the broker fails closed and keeps its outcome and decision
//! records in its spool until the store answers again). Without the lease only
//! reservations are refused; outcomes and records are written whenever the database
//! answers. Connection attempts, pool waits, statements and
//! lock waits are bounded by [`PostgresOptions`]. A COMMIT whose answer was lost is reported
//! as `Unavailable` although it may have committed: a reservation then stays pending and is
//! resolved by recovery (`not_attempted`), never executed.
//!
//! ## TLS
//!
//! `sslmode=require` plus a CA ([`PostgresOptions::tls_ca`] or `sslrootcert=<PEM file>` in
//! the URL) gives verified TLS over rustls with aws-lc-rs (see [`tls`]). Without a CA the
//! connection is plain TCP (`sslmode=disable`), which is only for loopback and private
//! networks.

#![warn(missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use deadpool_postgres::{
    GenericClient as _, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime,
};
use futures_util::StreamExt as _;
use seb_ledger::LedgerError;
use seb_ledger::merkle::{self, Hash};
use seb_store::{
    EpochCheck, Epochs, InFlightKey, PendingExecution, PreCheck, Reservation, ReserveResult,
    Revocation, Store, StoreError, StoreFuture, StoredCheckpoint,
};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, Config, Row};

mod admission;
mod approvers;
mod ledger;
mod net_effect;
pub mod schema;
pub mod tls;
pub mod writer;

pub use schema::SCHEMA_VERSION;
use tls::RustlsConnector;
use writer::{Done, Op};

/// The advisory-lock class of SEB's locks (`pg_advisory_lock(LEASE_CLASS, id)`): id 0
/// serialises migrations, ids from `owner_seq` are replica leases.
pub const LEASE_CLASS: i32 = 0x5EB0_0001;

/// The NOTIFY channel on which epoch changes are announced (payload: the new [`Epochs`] as
/// JSON). A hint for caches only: the transactional re-check in `reserve` is the guarantee.
pub const EPOCHS_CHANNEL: &str = "seb_epochs";

/// Connection and batching settings.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections in the pool (reads, revocations, dispatch marks; the writer takes one
    /// per batch). One more connection holds the lease.
    pub pool_size: usize,
    /// Most requests committed in one transaction.
    pub max_batch: usize,
    /// Bound on opening a connection and on waiting for a pooled one.
    pub connect_timeout: Duration,
    /// `statement_timeout` of every session.
    pub statement_timeout: Duration,
    /// `lock_timeout` of every session (waiting for the head lock).
    pub lock_timeout: Duration,
    /// `idle_in_transaction_session_timeout`: a replica that stalls inside a transaction
    /// (frozen, partitioned) loses its session, and the head lock with it, after this long.
    pub idle_in_transaction_timeout: Duration,
    /// PEM file of the CA that signed the server's certificate. Setting it (or
    /// `sslrootcert=` in the URL) makes TLS mandatory and verified.
    pub tls_ca: Option<PathBuf>,
    /// `application_name` unless the URL sets one.
    pub application_name: String,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            max_batch: 256,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_secs(15),
            tls_ca: None,
            application_name: "seb".into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors and conversions
// ---------------------------------------------------------------------------------------------

/// Map a PostgreSQL error: data exceptions (class 22: a NUL in a text, a number out of
/// range) are [`StoreError::Invalid`]; integrity violations, missing objects, internal
/// errors and our append-only triggers (classes 23, 42, XX, P0) are
/// [`StoreError::Corrupt`]; everything else (connection, timeouts, shutdown, resources) is
/// [`StoreError::Unavailable`].
pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    // The error is kept as the source: its SQLSTATE stays reachable ([`sqlstate`]) and, for
    // a connection failure, its own source says why (refused, reset, which certificate check
    // failed).
    let Some(db) = e.as_db_error() else {
        return StoreError::unavailable_from("postgres", e);
    };
    let code = db.code().code().to_owned();
    let context = format!("postgres ({code})");
    match code.get(..2) {
        Some("22") => StoreError::invalid_from(context, e),
        Some("23" | "42" | "XX" | "P0") => StoreError::corrupt_from(context, e),
        _ => StoreError::unavailable_from(context, e),
    }
}

/// The SQLSTATE of the PostgreSQL error somewhere in `e`'s source chain (`23505`…), if any.
pub fn sqlstate(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(code) = err.downcast_ref::<tokio_postgres::Error>().and_then(|p| p.code()) {
            return Some(code.code().to_owned());
        }
        next = err.source();
    }
    None
}

/// Map a ledger-math error: arguments outside the tree are the caller's mistake; a node
/// missing inside the stored size is corruption.
pub(crate) fn ledger_err(e: LedgerError) -> StoreError {
    match e {
        LedgerError::EmptyTree
        | LedgerError::IndexOutOfRange { .. }
        | LedgerError::SizeOutOfRange { .. }
        | LedgerError::TreeTooLarge { .. } => StoreError::invalid_from("ledger", e),
        other => StoreError::corrupt_from("ledger", other),
    }
}

/// A caller-supplied `u64` as a PostgreSQL `bigint`.
pub(crate) fn to_sql_int(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::invalid(format!("{what} {v} exceeds 2^63 - 1")))
}

/// A stored `bigint` as a `u64`.
pub(crate) fn from_sql_int(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::corrupt(format!("stored {what} {v} is negative")))
}

/// `(policy_epoch, revocation_epoch, updated_at_ms)` columns 0..3.
pub(crate) fn read_epochs_row(row: &Row) -> Result<Epochs, StoreError> {
    let get = |i: usize, what: &str| -> Result<u64, StoreError> {
        from_sql_int(row.try_get::<_, i64>(i).map_err(pg_err)?, what)
    };
    Ok(Epochs {
        policy_epoch: get(0, "policy_epoch")?,
        revocation_epoch: get(1, "revocation_epoch")?,
        updated_at_ms: get(2, "updated_at_ms")?,
    })
}

// ---------------------------------------------------------------------------------------------
// Connection settings
// ---------------------------------------------------------------------------------------------

/// Remove `sslrootcert=...` from a URL or key/value connection string (tokio-postgres does
/// not know the parameter); returns the rest and the path.
fn take_sslrootcert(url: &str) -> (String, Option<PathBuf>) {
    let mut ca = None;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_owned(), None);
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|kv| match kv.strip_prefix("sslrootcert=") {
                Some(path) => {
                    ca = Some(PathBuf::from(path));
                    false
                }
                None => true,
            })
            .collect();
        let rest =
            if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        (rest, ca)
    } else {
        let kept: Vec<&str> = url
            .split_whitespace()
            .filter(|kv| match kv.strip_prefix("sslrootcert=") {
                Some(path) => {
                    ca = Some(PathBuf::from(path));
                    false
                }
                None => true,
            })
            .collect();
        (kept.join(" "), ca)
    }
}

/// Parse the URL and apply the options: TLS mode, timeouts, keepalives.
fn configure(url: &str, opts: &PostgresOptions) -> Result<(Config, RustlsConnector), StoreError> {
    let (url, url_ca) = take_sslrootcert(url);
    let mut cfg: Config =
        url.parse().map_err(|e| StoreError::invalid_from("postgres connection string", e))?;
    let tls = match opts.tls_ca.clone().or(url_ca) {
        Some(ca) => {
            cfg.ssl_mode(SslMode::Require);
            RustlsConnector::from_ca_file(&ca)?
        }
        None => {
            if matches!(cfg.get_ssl_mode(), SslMode::Require) {
                return Err(StoreError::invalid(
                    "postgres: sslmode=require needs the server's CA: add sslrootcert=<PEM file>",
                ));
            }
            cfg.ssl_mode(SslMode::Disable);
            RustlsConnector::untrusting()?
        }
    };
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(opts.connect_timeout);
    }
    cfg.keepalives(true);
    cfg.keepalives_idle(Duration::from_secs(10));
    cfg.keepalives_interval(Duration::from_secs(5));
    cfg.keepalives_retries(3);
    cfg.tcp_user_timeout(opts.statement_timeout);
    let ms = |d: Duration| d.as_millis().max(1);
    let mut options = cfg.get_options().unwrap_or_default().to_owned();
    options.push_str(&format!(
        " -c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
        ms(opts.statement_timeout),
        ms(opts.lock_timeout),
        ms(opts.idle_in_transaction_timeout),
    ));
    cfg.options(options.trim());
    if cfg.get_application_name().is_none() {
        cfg.application_name(&opts.application_name);
    }
    Ok((cfg, tls))
}

/// A connection outside the pool, its driver spawned; the handle ends when it closes.
async fn dedicated(
    cfg: &Config,
    tls: &RustlsConnector,
    timeout: Duration,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), StoreError> {
    let connecting = cfg.connect(tls.clone());
    let (client, connection) = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| StoreError::unavailable("postgres: connection timed out"))?
        .map_err(pg_err)?;
    let handle = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres: connection closed");
        }
    });
    Ok((client, handle))
}

// ---------------------------------------------------------------------------------------------
// The lease
// ---------------------------------------------------------------------------------------------

/// This store's lease id while its lease session is up; 0 while it is not.
#[derive(Debug, Default)]
pub(crate) struct Lease(AtomicI32);

impl Lease {
    pub(crate) fn owner(&self) -> Option<i32> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    fn set(&self, id: i32) {
        self.0.store(id, Ordering::Release);
    }
}

/// Take a fresh id and hold its advisory lock for the life of `client`'s session.
async fn acquire_lease(client: &tokio_postgres::Client) -> Result<i32, StoreError> {
    let id: i32 = client
        .query_one("SELECT nextval('owner_seq')::integer", &[])
        .await
        .map_err(pg_err)?
        .try_get(0)
        .map_err(pg_err)?;
    client
        .execute("SELECT pg_advisory_lock($1, $2)", &[&LEASE_CLASS, &id])
        .await
        .map_err(pg_err)?;
    Ok(id)
}

/// Take the lock of `id` again if nobody holds it (the database restarted, or our session
/// was cut): `false` when another session holds it.
async fn retake_lease(client: &tokio_postgres::Client, id: i32) -> Result<bool, StoreError> {
    client
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LEASE_CLASS, &id])
        .await
        .map_err(pg_err)?
        .try_get(0)
        .map_err(pg_err)
}

/// Keep the lease session up: when it drops, clear the lease (reservations are refused,
/// outcomes and records are still written), reconnect with backoff (at most 1 s apart) and
/// take the SAME id again, so this replica's open executions stay its own and no other
/// replica reconciles them. Only if that id is held elsewhere is a new one taken (the old
/// executions are then orphans, for reconciliation). Ends, closing the session, when the
/// store is dropped.
async fn keep_lease(
    cfg: Config,
    tls: RustlsConnector,
    lease: Arc<Lease>,
    client: tokio_postgres::Client,
    connection: tokio::task::JoinHandle<()>,
    mut shutdown: oneshot::Receiver<()>,
    timeout: Duration,
) {
    // The client keeps the session (and so the advisory lock) open; the handle ends with it.
    let mut session = (client, connection);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = &mut session.1 => {}
        }
        let previous = lease.owner();
        lease.set(0);
        tracing::error!(
            "postgres: the lease session was lost; reservations are refused until it is back"
        );
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                () = tokio::time::sleep(backoff) => {}
            }
            let attempt = async {
                let (c, h) = dedicated(&cfg, &tls, timeout).await?;
                let id = match previous {
                    Some(id) if retake_lease(&c, id).await? => id,
                    _ => acquire_lease(&c).await?,
                };
                Ok::<_, StoreError>((c, h, id))
            };
            match attempt.await {
                Ok((c, h, id)) => {
                    session = (c, h);
                    lease.set(id);
                    let same = previous == Some(id);
                    tracing::info!(lease = id, same, "postgres: lease session re-established");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "postgres: lease session not re-established yet");
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

/// The PostgreSQL store. Cheap to share behind an `Arc`; several instances (in one process
/// or many) on one database behave as one store.
#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool,
    writer: mpsc::Sender<(Op, writer::Reply)>,
    lease: Arc<Lease>,
    cfg: Config,
    tls: RustlsConnector,
    connect_timeout: Duration,
    _shutdown: oneshot::Sender<()>,
}

/// Epoch changes announced by any replica (see [`PostgresStore::subscribe`]).
#[derive(Debug)]
pub struct EpochSubscription {
    rx: mpsc::UnboundedReceiver<Epochs>,
    _client: tokio_postgres::Client,
}

impl EpochSubscription {
    /// The next announced epochs; `None` once the listening session is gone (a cache fed by
    /// this must then be dropped or re-read).
    pub async fn next(&mut self) -> Option<Epochs> {
        self.rx.recv().await
    }
}

impl PostgresStore {
    /// Connect, run the migrations, take a lease and start the group-commit writer. Must be
    /// called inside a tokio runtime (its tasks are spawned there).
    ///
    /// `url`: `postgres://user:password@host:port/database[?sslmode=require&sslrootcert=ca.pem]`
    /// or the key/value form.
    pub async fn connect(url: &str, opts: PostgresOptions) -> Result<Self, StoreError> {
        let (cfg, tls) = configure(url, &opts)?;
        let (mut client, connection) = dedicated(&cfg, &tls, opts.connect_timeout).await?;
        schema::migrate(&mut client).await?;
        let lease = Arc::new(Lease::default());
        lease.set(acquire_lease(&client).await?);
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        tokio::spawn(keep_lease(
            cfg.clone(),
            tls.clone(),
            Arc::clone(&lease),
            client,
            connection,
            shutdown_rx,
            opts.connect_timeout,
        ));
        let manager = Manager::from_config(
            cfg.clone(),
            tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.connect_timeout))
            .create_timeout(Some(opts.connect_timeout))
            .recycle_timeout(Some(opts.connect_timeout))
            .build()
            .map_err(|e| StoreError::invalid_from("postgres pool", e))?;
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(writer::run(pool.clone(), Arc::clone(&lease), rx, opts.max_batch));
        Ok(Self {
            pool,
            writer: tx,
            lease,
            cfg,
            tls,
            connect_timeout: opts.connect_timeout,
            _shutdown: shutdown_tx,
        })
    }

    /// This store's lease id (`None` while its lease session is down).
    pub fn lease(&self) -> Option<i32> {
        self.lease.owner()
    }

    /// Listen for epoch changes made by any replica (`NOTIFY seb_epochs`, sent in the same
    /// transaction as the change, so only committed changes are announced). For warming or
    /// dropping caches only: the broker reads epochs per request and `reserve` re-checks them
    /// under the lock, which is the guarantee.
    pub async fn subscribe(&self) -> Result<EpochSubscription, StoreError> {
        let connecting = self.cfg.connect(self.tls.clone());
        let (client, mut connection) = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| StoreError::unavailable("postgres: connection timed out"))?
            .map_err(pg_err)?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notification(n) = message
                    && let Ok(epochs) = serde_json::from_str::<Epochs>(n.payload())
                    && tx.send(epochs).is_err()
                {
                    break;
                }
            }
        });
        client.batch_execute(&format!("LISTEN {EPOCHS_CHANNEL}")).await.map_err(pg_err)?;
        Ok(EpochSubscription { rx, _client: client })
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::unavailable_from("postgres pool", e))
    }

    async fn submit(&self, op: Op) -> Result<Done, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send((op, tx))
            .await
            .map_err(|_| StoreError::unavailable("postgres: the writer stopped"))?;
        rx.await.map_err(|_| StoreError::unavailable("postgres: the writer stopped"))?
    }

    async fn read_size(client: &impl deadpool_postgres::GenericClient) -> Result<u64, StoreError> {
        let st = client
            .prepare_cached("SELECT size FROM ledger_head WHERE id = 0")
            .await
            .map_err(pg_err)?;
        let size: i64 =
            client.query_one(&st, &[]).await.map_err(pg_err)?.try_get(0).map_err(pg_err)?;
        from_sql_int(size, "ledger size")
    }

    async fn check_size(
        client: &impl deadpool_postgres::GenericClient,
        size: u64,
    ) -> Result<(), StoreError> {
        let stored = Self::read_size(client).await?;
        if size > stored {
            return Err(StoreError::invalid(format!(
                "tree size {size} exceeds the ledger size {stored}"
            )));
        }
        Ok(())
    }

    /// An epoch or revocation change: under the head lock, with the optional record, and a
    /// NOTIFY delivered at commit.
    async fn change_epochs(
        &self,
        what: EpochChange,
        at_ms: u64,
        record: Option<Vec<u8>>,
    ) -> Result<Epochs, StoreError> {
        let at = to_sql_int(at_ms, "at_ms")?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let mut appends = ledger::Appends::lock(&tx).await?;
        match &what {
            EpochChange::Policy => {
                tx.execute("UPDATE epochs SET policy_epoch = policy_epoch + 1 WHERE id = 0", &[])
                    .await
                    .map_err(pg_err)?;
            }
            EpochChange::Revoke(Revocation::All) => {
                tx.execute(
                    "UPDATE epochs SET revocation_epoch = revocation_epoch + 1 WHERE id = 0",
                    &[],
                )
                .await
                .map_err(pg_err)?;
            }
            EpochChange::Revoke(Revocation::Cid(cid)) => {
                tx.execute(
                    "INSERT INTO revoked_cids (cid, revoked_at_ms) VALUES ($1, $2) \
                     ON CONFLICT (cid) DO NOTHING",
                    &[cid, &at],
                )
                .await
                .map_err(pg_err)?;
            }
            EpochChange::Revoke(Revocation::Agent(agent)) => {
                tx.execute(
                    "INSERT INTO revoked_agents (agent, revoked_at_ms) VALUES ($1, $2) \
                     ON CONFLICT (agent) DO NOTHING",
                    &[agent, &at],
                )
                .await
                .map_err(pg_err)?;
            }
        }
        // `updated_at_ms` never moves backwards, whatever clock the caller used.
        let row = tx
            .query_one(
                "UPDATE epochs SET updated_at_ms = GREATEST(updated_at_ms, $1) WHERE id = 0 \
                 RETURNING policy_epoch, revocation_epoch, updated_at_ms",
                &[&at],
            )
            .await
            .map_err(pg_err)?;
        let epochs = read_epochs_row(&row)?;
        if let Some(record) = record {
            appends.push(&record)?;
        }
        appends.write(&tx).await?;
        let payload = serde_json::to_string(&epochs)
            .map_err(|e| StoreError::invalid_from("epochs as JSON", e))?;
        tx.execute("SELECT pg_notify($1, $2)", &[&EPOCHS_CHANNEL, &payload])
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(epochs)
    }
}

enum EpochChange {
    Policy,
    Revoke(Revocation),
}

fn to_checkpoint(row: &Row) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: from_sql_int(row.try_get(0).map_err(pg_err)?, "checkpoint size")?,
        note: row.try_get(1).map_err(pg_err)?,
        at_ms: from_sql_int(row.try_get(2).map_err(pg_err)?, "checkpoint at_ms")?,
    })
}

fn unexpected(what: &str) -> StoreError {
    StoreError::corrupt(format!("postgres: the writer answered {what} with another kind of result"))
}

impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn epochs(&self) -> StoreFuture<'_, Epochs> {
        Box::pin(async move {
            let client = self.client().await?;
            let st = client
                .prepare_cached(
                    "SELECT policy_epoch, revocation_epoch, updated_at_ms FROM epochs WHERE id = 0",
                )
                .await
                .map_err(pg_err)?;
            read_epochs_row(&client.query_one(&st, &[]).await.map_err(pg_err)?)
        })
    }

    fn epoch_check<'a>(&'a self, cid: &'a str, agent: &'a str) -> StoreFuture<'a, EpochCheck> {
        Box::pin(async move {
            let client = self.client().await?;
            let st = client
                .prepare_cached(
                    "SELECT e.policy_epoch, e.revocation_epoch, e.updated_at_ms, \
                     EXISTS (SELECT 1 FROM revoked_cids WHERE cid = $1), \
                     EXISTS (SELECT 1 FROM revoked_agents WHERE agent = $2) \
                     FROM epochs e WHERE e.id = 0",
                )
                .await
                .map_err(pg_err)?;
            let row = client.query_one(&st, &[&cid, &agent]).await.map_err(pg_err)?;
            Ok(EpochCheck {
                epochs: read_epochs_row(&row)?,
                cid_revoked: row.try_get(3).map_err(pg_err)?,
                agent_revoked: row.try_get(4).map_err(pg_err)?,
            })
        })
    }

    fn bump_policy_epoch(&self, at_ms: u64, record: Option<Vec<u8>>) -> StoreFuture<'_, Epochs> {
        Box::pin(self.change_epochs(EpochChange::Policy, at_ms, record))
    }

    fn revoke(
        &self,
        what: Revocation,
        at_ms: u64,
        record: Option<Vec<u8>>,
    ) -> StoreFuture<'_, Epochs> {
        Box::pin(self.change_epochs(EpochChange::Revoke(what), at_ms, record))
    }

    fn revocations(&self) -> StoreFuture<'_, (Vec<String>, Vec<String>)> {
        Box::pin(async move {
            let client = self.client().await?;
            let cids = client
                .query("SELECT cid FROM revoked_cids ORDER BY cid COLLATE \"C\"", &[])
                .await
                .map_err(pg_err)?;
            let agents = client
                .query("SELECT agent FROM revoked_agents ORDER BY agent COLLATE \"C\"", &[])
                .await
                .map_err(pg_err)?;
            let names = |rows: Vec<Row>| -> Result<Vec<String>, StoreError> {
                rows.iter().map(|r| r.try_get(0).map_err(pg_err)).collect()
            };
            Ok((names(cids)?, names(agents)?))
        })
    }

    fn is_reserved<'a>(&'a self, cid: &'a str, nonce: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let client = self.client().await?;
            let st = client
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM reservations WHERE cid = $1 AND nonce = $2)",
                )
                .await
                .map_err(pg_err)?;
            client.query_one(&st, &[&cid, &nonce]).await.map_err(pg_err)?.try_get(0).map_err(pg_err)
        })
    }

    fn pre_check<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        agent: &'a str,
    ) -> StoreFuture<'a, PreCheck> {
        Box::pin(async move {
            let client = self.client().await?;
            let st = client
                .prepare_cached(
                    "SELECT e.policy_epoch, e.revocation_epoch, e.updated_at_ms, \
                     EXISTS (SELECT 1 FROM revoked_cids WHERE cid = $1), \
                     EXISTS (SELECT 1 FROM revoked_agents WHERE agent = $2), \
                     EXISTS (SELECT 1 FROM reservations WHERE cid = $1 AND nonce = $3) \
                     FROM epochs e WHERE e.id = 0",
                )
                .await
                .map_err(pg_err)?;
            let row = client.query_one(&st, &[&cid, &agent, &nonce]).await.map_err(pg_err)?;
            Ok(PreCheck {
                epoch: EpochCheck {
                    epochs: read_epochs_row(&row)?,
                    cid_revoked: row.try_get(3).map_err(pg_err)?,
                    agent_revoked: row.try_get(4).map_err(pg_err)?,
                },
                reserved: row.try_get(5).map_err(pg_err)?,
            })
        })
    }

    fn reserve(&self, r: Reservation) -> StoreFuture<'_, ReserveResult> {
        Box::pin(async move {
            match self.submit(Op::Reserve(r)).await? {
                Done::Reserve(result) => Ok(result),
                _ => Err(unexpected("a reservation")),
            }
        })
    }

    fn mark_dispatched<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        at_ms: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let at = to_sql_int(at_ms, "at_ms")?;
            let owner = self
                .lease
                .owner()
                .ok_or_else(|| StoreError::unavailable("postgres: this replica holds no lease"))?;
            let client = self.client().await?;
            let st = client
                .prepare_cached(
                    "UPDATE reservations SET dispatched_at_ms = COALESCE(dispatched_at_ms, $3) \
                     WHERE cid = $1 AND nonce = $2 AND outcome_index IS NULL AND owner = $4",
                )
                .await
                .map_err(pg_err)?;
            if client.execute(&st, &[&cid, &nonce, &at, &owner]).await.map_err(pg_err)? == 1 {
                return Ok(());
            }
            // Why not: unknown, completed, or reserved under another (lost) lease.
            let row = client
                .query_opt(
                    "SELECT outcome_index IS NOT NULL, owner FROM reservations \
                     WHERE cid = $1 AND nonce = $2",
                    &[&cid, &nonce],
                )
                .await
                .map_err(pg_err)?;
            match row {
                None => Err(StoreError::invalid(format!("unknown execution `{cid}`/`{nonce}`"))),
                Some(row) if row.try_get::<_, bool>(0).map_err(pg_err)? => {
                    Err(StoreError::AlreadyCompleted { cid: cid.into(), nonce: nonce.into() })
                }
                Some(row) => {
                    let holder: i32 = row.try_get(1).map_err(pg_err)?;
                    Err(StoreError::unavailable(format!(
                        "postgres: execution `{cid}`/`{nonce}` was reserved under lease {holder}, \
                         which this replica no longer holds; recovery will resolve it"
                    )))
                }
            }
        })
    }

    fn complete<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
        outcome_entry: Vec<u8>,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let op = Op::Complete { cid: cid.into(), nonce: nonce.into(), entry: outcome_entry };
            match self.submit(op).await? {
                Done::Index(i) => Ok(i),
                _ => Err(unexpected("a completion")),
            }
        })
    }

    fn pending(&self) -> StoreFuture<'_, Vec<PendingExecution>> {
        Box::pin(async move {
            let me = self.lease.owner().unwrap_or(0);
            let client = self.client().await?;
            // Own executions, and those whose lease holder's session is gone.
            let st = client
                .prepare_cached(
                    "SELECT r.cid, r.nonce, r.intent, r.dispatched_at_ms IS NOT NULL, \
                            r.admitted_at_ms \
                     FROM reservations r \
                     WHERE r.outcome_index IS NULL \
                       AND (r.owner = $1 OR NOT EXISTS ( \
                           SELECT 1 FROM pg_locks l \
                           WHERE l.locktype = 'advisory' AND l.granted \
                             AND l.database = (SELECT oid FROM pg_database \
                                               WHERE datname = current_database()) \
                             AND l.classid = $2::integer::oid \
                             AND l.objid = r.owner::oid AND l.objsubid = 2)) \
                     ORDER BY r.admit_index",
                )
                .await
                .map_err(pg_err)?;
            let rows = client.query(&st, &[&me, &LEASE_CLASS]).await.map_err(pg_err)?;
            rows.iter().map(pending_row).collect()
        })
    }

    fn orphans(&self) -> StoreFuture<'_, Vec<PendingExecution>> {
        Box::pin(async move {
            // Without our own lease we cannot tell our executions from orphans.
            let me = self
                .lease
                .owner()
                .ok_or_else(|| StoreError::unavailable("postgres: this replica holds no lease"))?;
            let client = self.client().await?;
            let st = client
                .prepare_cached(
                    "SELECT r.cid, r.nonce, r.intent, r.dispatched_at_ms IS NOT NULL, \
                            r.admitted_at_ms \
                     FROM reservations r \
                     WHERE r.outcome_index IS NULL AND r.owner <> $1 \
                       AND NOT EXISTS ( \
                           SELECT 1 FROM pg_locks l \
                           WHERE l.locktype = 'advisory' AND l.granted \
                             AND l.database = (SELECT oid FROM pg_database \
                                               WHERE datname = current_database()) \
                             AND l.classid = $2::integer::oid \
                             AND l.objid = r.owner::oid AND l.objsubid = 2) \
                     ORDER BY r.admit_index",
                )
                .await
                .map_err(pg_err)?;
            let rows = client.query(&st, &[&me, &LEASE_CLASS]).await.map_err(pg_err)?;
            rows.iter().map(pending_row).collect()
        })
    }

    fn in_flight(&self) -> StoreFuture<'_, Vec<PendingExecution>> {
        Box::pin(async move {
            let client = self.client().await?;
            let st = client
                .prepare_cached(
                    "SELECT r.cid, r.nonce, r.intent, r.dispatched_at_ms IS NOT NULL, \
                            r.admitted_at_ms \
                     FROM reservations r WHERE r.outcome_index IS NULL ORDER BY r.admit_index",
                )
                .await
                .map_err(pg_err)?;
            let rows = client.query(&st, &[]).await.map_err(pg_err)?;
            rows.iter().map(pending_row).collect()
        })
    }

    fn in_flight_keys(&self, after: Option<u64>) -> StoreFuture<'_, Vec<InFlightKey>> {
        Box::pin(async move {
            // -1 (below every index) for all of them; above `after`, the unique index on
            // admit_index is walked from there (only the rows reserved since).
            let after: i64 = match after {
                None => -1,
                Some(a) => to_sql_int(a, "after")?,
            };
            let client = self.client().await?;
            let st = client
                .prepare_cached(
                    "SELECT r.admit_index, r.cid, r.nonce FROM reservations r \
                     WHERE r.outcome_index IS NULL AND r.admit_index > $1 \
                     ORDER BY r.admit_index",
                )
                .await
                .map_err(pg_err)?;
            let rows = client.query(&st, &[&after]).await.map_err(pg_err)?;
            rows.iter()
                .map(|r| {
                    Ok(InFlightKey {
                        admit_index: from_sql_int(r.try_get(0).map_err(pg_err)?, "admit_index")?,
                        cid: r.try_get(1).map_err(pg_err)?,
                        nonce: r.try_get(2).map_err(pg_err)?,
                    })
                })
                .collect()
        })
    }

    fn in_flight_execution<'a>(
        &'a self,
        cid: &'a str,
        nonce: &'a str,
    ) -> StoreFuture<'a, Option<PendingExecution>> {
        Box::pin(async move {
            let client = self.client().await?;
            let st = client
                .prepare_cached(
                    "SELECT r.cid, r.nonce, r.intent, r.dispatched_at_ms IS NOT NULL, \
                            r.admitted_at_ms \
                     FROM reservations r \
                     WHERE r.cid = $1 AND r.nonce = $2 AND r.outcome_index IS NULL",
                )
                .await
                .map_err(pg_err)?;
            let row = client.query_opt(&st, &[&cid, &nonce]).await.map_err(pg_err)?;
            row.as_ref().map(pending_row).transpose()
        })
    }

    fn append(&self, entries: Vec<Vec<u8>>) -> StoreFuture<'_, Vec<u64>> {
        Box::pin(async move {
            if entries.is_empty() {
                return Ok(Vec::new());
            }
            match self.submit(Op::Append(entries)).await? {
                Done::Indices(v) => Ok(v),
                _ => Err(unexpected("an append")),
            }
        })
    }

    fn ledger_size(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move { Self::read_size(&self.client().await?).await })
    }

    fn entries(&self, start: u64, end: u64) -> StoreFuture<'_, Vec<Vec<u8>>> {
        Box::pin(async move {
            if start > end {
                return Err(StoreError::invalid(format!(
                    "entry range start {start} exceeds end {end}"
                )));
            }
            let client = self.client().await?;
            Self::check_size(&client, end).await?;
            let st = client
                .prepare_cached(
                    "SELECT idx, entry FROM ledger_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                )
                .await
                .map_err(pg_err)?;
            let rows = client
                .query(&st, &[&to_sql_int(start, "entry index")?, &to_sql_int(end, "entry index")?])
                .await
                .map_err(pg_err)?;
            let mut out = Vec::with_capacity(rows.len());
            let mut expected = start;
            for row in rows {
                let idx = from_sql_int(row.try_get(0).map_err(pg_err)?, "entry index")?;
                if idx != expected {
                    return Err(StoreError::corrupt(format!("ledger entry {expected} is missing")));
                }
                out.push(row.try_get(1).map_err(pg_err)?);
                expected = expected.saturating_add(1);
            }
            if expected != end {
                return Err(StoreError::corrupt(format!("ledger entry {expected} is missing")));
            }
            Ok(out)
        })
    }

    fn root(&self, size: u64) -> StoreFuture<'_, Hash> {
        Box::pin(async move {
            let client = self.client().await?;
            Self::check_size(&client, size).await?;
            ledger::with_nodes(&client, |r| merkle::root_at(r, size)).await
        })
    }

    fn inclusion_proof(&self, index: u64, size: u64) -> StoreFuture<'_, Vec<Hash>> {
        Box::pin(async move {
            let client = self.client().await?;
            Self::check_size(&client, size).await?;
            ledger::with_nodes(&client, |r| merkle::inclusion_proof(r, index, size)).await
        })
    }

    fn consistency_proof(&self, old_size: u64, new_size: u64) -> StoreFuture<'_, Vec<Hash>> {
        Box::pin(async move {
            let client = self.client().await?;
            Self::check_size(&client, new_size).await?;
            ledger::with_nodes(&client, |r| merkle::consistency_proof(r, old_size, new_size)).await
        })
    }

    fn put_checkpoint(&self, cp: StoredCheckpoint) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let size = to_sql_int(cp.size, "checkpoint size")?;
            let at = to_sql_int(cp.at_ms, "at_ms")?;
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg_err)?;
            // The head lock orders checkpoints with appends and with each other.
            let head = ledger::Appends::lock(&tx).await?;
            let ledger_size = head.next_index();
            if cp.size > ledger_size {
                return Err(StoreError::invalid(format!(
                    "checkpoint size {} exceeds the ledger size {ledger_size}",
                    cp.size
                )));
            }
            let latest = tx
                .query_opt("SELECT size FROM checkpoints ORDER BY seq DESC LIMIT 1", &[])
                .await
                .map_err(pg_err)?;
            if let Some(row) = latest {
                let latest: i64 = row.try_get(0).map_err(pg_err)?;
                if size < latest {
                    return Err(StoreError::invalid(format!(
                        "checkpoint size {} is smaller than the newest stored checkpoint's {latest}",
                        cp.size
                    )));
                }
            }
            tx.execute(
                "INSERT INTO checkpoints (size, note, at_ms) VALUES ($1, $2, $3)",
                &[&size, &cp.note, &at],
            )
            .await
            .map_err(pg_err)?;
            tx.commit().await.map_err(pg_err)
        })
    }

    fn latest_checkpoint(&self) -> StoreFuture<'_, Option<StoredCheckpoint>> {
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT size, note, at_ms FROM checkpoints ORDER BY seq DESC LIMIT 1",
                    &[],
                )
                .await
                .map_err(pg_err)?;
            row.as_ref().map(to_checkpoint).transpose()
        })
    }

    fn approver_directory(&self) -> Option<&dyn seb_store::approvers::ApproverDirectory> {
        Some(self)
    }

    fn checkpoints(&self) -> StoreFuture<'_, Vec<StoredCheckpoint>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query("SELECT size, note, at_ms FROM checkpoints ORDER BY seq", &[])
                .await
                .map_err(pg_err)?;
            rows.iter().map(to_checkpoint).collect()
        })
    }

    fn admission(&self) -> Option<&dyn seb_store::admission::AdmissionState> {
        Some(self)
    }
}

/// One row of `cid, nonce, intent, dispatched, admitted_at_ms`.
fn pending_row(row: &tokio_postgres::Row) -> Result<PendingExecution, StoreError> {
    Ok(PendingExecution {
        cid: row.try_get(0).map_err(pg_err)?,
        nonce: row.try_get(1).map_err(pg_err)?,
        intent: row.try_get(2).map_err(pg_err)?,
        dispatched: row.try_get(3).map_err(pg_err)?,
        admitted_at_ms: from_sql_int(row.try_get(4).map_err(pg_err)?, "admitted_at_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslrootcert_is_taken_out_of_urls() {
        let (u, ca) = take_sslrootcert("postgres://u@h:5/db?sslmode=require&sslrootcert=/a/b.pem");
        assert_eq!(u, "postgres://u@h:5/db?sslmode=require");
        assert_eq!(ca, Some(PathBuf::from("/a/b.pem")));
        let (u, ca) = take_sslrootcert("postgres://u@h/db?sslrootcert=/c.pem");
        assert_eq!(u, "postgres://u@h/db");
        assert_eq!(ca, Some(PathBuf::from("/c.pem")));
        let (u, ca) = take_sslrootcert("host=h dbname=d sslrootcert=/x.pem sslmode=require");
        assert_eq!(u, "host=h dbname=d sslmode=require");
        assert_eq!(ca, Some(PathBuf::from("/x.pem")));
        let (u, ca) = take_sslrootcert("postgres://u@h/db");
        assert_eq!((u.as_str(), ca), ("postgres://u@h/db", None));
    }

    #[test]
    fn require_without_a_ca_is_refused_and_plain_is_forced_otherwise() {
        let o = PostgresOptions::default();
        assert!(matches!(
            configure("postgres://u@h/db?sslmode=require", &o),
            Err(StoreError::Invalid { .. })
        ));
        let (cfg, _) = configure("postgres://u@h/db", &o).unwrap();
        assert!(matches!(cfg.get_ssl_mode(), SslMode::Disable));
        assert!(cfg.get_options().unwrap().contains("lock_timeout=10000"));
        assert_eq!(cfg.get_application_name(), Some("seb"));
    }
}
