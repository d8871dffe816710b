//! Group commit: the reservations, completions and appends waiting on one store run together
//! in ONE PostgreSQL transaction.
//!
//! Every transaction that appends locks the `ledger_head` row, and a commit waits for the
//! WAL flush (an fsync, milliseconds on real disks) while still holding that lock: one
//! request per transaction would cap every replica together at one fsync per request. A
//! batch pays the lock, the reads and the fsync once.
//!
//! A batch transaction (READ COMMITTED):
//! 1. locks the head row (`SELECT ... FOR UPDATE`): from here on no other replica can append,
//!    revoke, bump an epoch or reserve until this transaction ends;
//! 2. reads, in statements that start AFTER the lock was granted (so their snapshots contain
//!    every transaction committed before it, in particular every revocation), the epochs,
//!    which of the batch's cids and agents are revoked, and which of its (cid, nonce) are
//!    already reserved or completed;
//! 3. decides every request in order, exactly as if they ran one by one (a second request
//!    for the same (cid, nonce) in the batch is a `Replay`), and builds the ledger rows;
//! 4. writes the rows with one multi-row statement per table (pipelined), then commits.
//!
//! When a statement fails before the commit, the transaction rolls back and each request is
//! retried alone, so one bad request only fails itself. When the COMMIT itself fails, its
//! outcome is unknown: every request of the batch gets [`StoreError::Unavailable`] and none
//! is retried (a retry could append twice). The (cid, nonce) primary key stays the last line
//! of defence: even a logic error here could not reserve a nonce twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deadpool_postgres::{GenericClient, Pool};
use seb_store::{Epochs, Reservation, ReserveResult, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::IsolationLevel;

use crate::ledger::Appends;
use crate::{Lease, pg_err, read_epochs_row, to_sql_int};

/// One request to the writer.
#[derive(Debug)]
pub(crate) enum Op {
    Reserve(Reservation),
    Append(Vec<Vec<u8>>),
    Complete { cid: String, nonce: String, entry: Vec<u8> },
}

/// The answer to one [`Op`].
#[derive(Debug)]
pub(crate) enum Done {
    Reserve(ReserveResult),
    Indices(Vec<u64>),
    Index(u64),
}

pub(crate) type Reply = oneshot::Sender<Result<Done, StoreError>>;

/// Serve batches until every sender is gone.
pub(crate) async fn run(
    pool: Pool,
    lease: Arc<Lease>,
    mut rx: mpsc::Receiver<(Op, Reply)>,
    max_batch: usize,
) {
    let max_batch = max_batch.max(1);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // Requests whose caller gave up (a dropped future) are still executed: the caller
        // cannot know whether they were, and a half-known state is worse.
        let (ops, replies): (Vec<Op>, Vec<Reply>) = batch.into_iter().unzip();
        let results = execute(&pool, &lease, &ops).await;
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// Run a batch, falling back to one transaction per request when it fails before commit.
async fn execute(pool: &Pool, lease: &Lease, ops: &[Op]) -> Vec<Result<Done, StoreError>> {
    let unavailable = |e: &StoreError| ops.iter().map(|_| Err(e.clone())).collect::<Vec<_>>();
    // Only a reservation needs the lease (it records its owner); outcomes and records of
    // executions already reserved are written whenever the database answers.
    let owner = lease.owner();
    let mut client = match pool.get().await {
        Ok(c) => c,
        Err(e) => return unavailable(&StoreError::unavailable_from("postgres pool", e)),
    };
    match batch(&mut client, owner, ops).await {
        Ok(results) => results,
        Err(Failure::Commit(e)) => unavailable(&e),
        Err(Failure::Before(e)) if ops.len() == 1 => vec![Err(e)],
        Err(Failure::Before(e)) => {
            tracing::debug!(error = %e, size = ops.len(), "postgres: batch failed, retrying one by one");
            let mut out = Vec::with_capacity(ops.len());
            for op in ops {
                let one = std::slice::from_ref(op);
                match batch(&mut client, owner, one).await {
                    Ok(mut r) => out.push(r.pop().unwrap_or_else(|| {
                        Err(StoreError::corrupt("postgres: a batch of one gave no answer"))
                    })),
                    Err(Failure::Commit(e) | Failure::Before(e)) => out.push(Err(e)),
                }
            }
            out
        }
    }
}

/// Where a batch failed.
enum Failure {
    /// Before COMMIT was sent: nothing of the batch is durable.
    Before(StoreError),
    /// At COMMIT: the outcome is unknown.
    Commit(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Before(e)
    }
}

/// The state of one (cid, nonce) as the batch sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exec {
    Pending,
    Completed,
}

/// New reservation rows.
#[derive(Default)]
struct NewReservations {
    cid: Vec<String>,
    nonce: Vec<String>,
    agent: Vec<String>,
    admit_index: Vec<i64>,
    intent: Vec<Vec<u8>>,
    admitted_at_ms: Vec<i64>,
    owner: Vec<i32>,
}

/// Outcome indices to set.
#[derive(Default)]
struct Completions {
    cid: Vec<String>,
    nonce: Vec<String>,
    idx: Vec<i64>,
}

async fn batch(
    client: &mut deadpool_postgres::Client,
    owner: Option<i32>,
    ops: &[Op],
) -> Result<Vec<Result<Done, StoreError>>, Failure> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(pg_err)?;
    // 1. The lock. Everything read below is read by statements that start after it.
    let mut appends = Appends::lock(&tx).await?;

    // 2. What the decisions need, in pipelined statements.
    let mut cids: Vec<&str> = Vec::new();
    let mut agents: Vec<&str> = Vec::new();
    let mut key_cids: Vec<&str> = Vec::new();
    let mut key_nonces: Vec<&str> = Vec::new();
    for op in ops {
        match op {
            Op::Reserve(r) => {
                cids.push(&r.cid);
                agents.push(&r.agent);
                key_cids.push(&r.cid);
                key_nonces.push(&r.nonce);
            }
            Op::Complete { cid, nonce, .. } => {
                key_cids.push(cid);
                key_nonces.push(nonce);
            }
            Op::Append(_) => {}
        }
    }
    let any_reserve = !cids.is_empty();
    let st_epochs = tx
        .prepare_cached(
            "SELECT policy_epoch, revocation_epoch, updated_at_ms FROM epochs WHERE id = 0",
        )
        .await
        .map_err(pg_err)?;
    let st_cids = tx
        .prepare_cached("SELECT cid FROM revoked_cids WHERE cid = ANY($1::text[])")
        .await
        .map_err(pg_err)?;
    let st_agents = tx
        .prepare_cached("SELECT agent FROM revoked_agents WHERE agent = ANY($1::text[])")
        .await
        .map_err(pg_err)?;
    let st_known = tx
        .prepare_cached(
            "SELECT r.cid, r.nonce, r.outcome_index IS NOT NULL FROM reservations r \
             JOIN unnest($1::text[], $2::text[]) AS k(cid, nonce) \
             ON r.cid = k.cid AND r.nonce = k.nonce",
        )
        .await
        .map_err(pg_err)?;
    let (epochs_row, revoked_cids, revoked_agents, known) = tokio::join!(
        async {
            if any_reserve { tx.query_one(&st_epochs, &[]).await.map(Some) } else { Ok(None) }
        },
        async { if any_reserve { tx.query(&st_cids, &[&cids]).await } else { Ok(Vec::new()) } },
        async { if any_reserve { tx.query(&st_agents, &[&agents]).await } else { Ok(Vec::new()) } },
        async {
            if key_cids.is_empty() {
                Ok(Vec::new())
            } else {
                tx.query(&st_known, &[&key_cids, &key_nonces]).await
            }
        },
    );
    let epochs: Option<Epochs> =
        epochs_row.map_err(pg_err)?.map(|row| read_epochs_row(&row)).transpose()?;
    let revoked_cids: HashSet<String> = revoked_cids
        .map_err(pg_err)?
        .iter()
        .map(|row| row.try_get::<_, String>(0))
        .collect::<Result<_, _>>()
        .map_err(pg_err)?;
    let revoked_agents: HashSet<String> = revoked_agents
        .map_err(pg_err)?
        .iter()
        .map(|row| row.try_get::<_, String>(0))
        .collect::<Result<_, _>>()
        .map_err(pg_err)?;
    let mut state: HashMap<(String, String), Exec> = HashMap::new();
    for row in known.map_err(pg_err)? {
        let cid: String = row.try_get(0).map_err(pg_err)?;
        let nonce: String = row.try_get(1).map_err(pg_err)?;
        let done: bool = row.try_get(2).map_err(pg_err)?;
        state.insert((cid, nonce), if done { Exec::Completed } else { Exec::Pending });
    }

    // 3. Decide, in order.
    let mut results = Vec::with_capacity(ops.len());
    let mut new = NewReservations::default();
    let mut completions = Completions::default();
    for op in ops {
        let result = match op {
            Op::Reserve(r) => decide_reserve(
                r,
                epochs,
                &revoked_cids,
                &revoked_agents,
                &mut state,
                owner,
                &mut appends,
                &mut new,
            )?,
            Op::Append(entries) => {
                let mut indices = Vec::with_capacity(entries.len());
                for e in entries {
                    indices.push(appends.push(e)?);
                }
                Ok(Done::Indices(indices))
            }
            Op::Complete { cid, nonce, entry } => {
                match state.get(&(cid.clone(), nonce.clone())).copied() {
                    None => {
                        Err(StoreError::invalid(format!("unknown execution `{cid}`/`{nonce}`")))
                    }
                    Some(Exec::Completed) => {
                        Err(StoreError::AlreadyCompleted { cid: cid.clone(), nonce: nonce.clone() })
                    }
                    Some(Exec::Pending) => {
                        let index = appends.push(entry)?;
                        state.insert((cid.clone(), nonce.clone()), Exec::Completed);
                        completions.cid.push(cid.clone());
                        completions.nonce.push(nonce.clone());
                        completions.idx.push(to_sql_int(index, "ledger index")?);
                        Ok(Done::Index(index))
                    }
                }
            }
        };
        results.push(result);
    }
    if appends.is_empty() {
        // Nothing to write (replays, refusals): end the transaction without a WAL flush.
        tx.rollback().await.map_err(pg_err)?;
        return Ok(results);
    }

    // 4. Write and commit.
    let st_reserve = tx
        .prepare_cached(
            "INSERT INTO reservations \
             (cid, nonce, agent, admit_index, intent, admitted_at_ms, owner) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], \
                                  $5::bytea[], $6::bigint[], $7::integer[])",
        )
        .await
        .map_err(pg_err)?;
    let st_complete = tx
        .prepare_cached(
            "UPDATE reservations AS r SET outcome_index = k.idx \
             FROM unnest($1::text[], $2::text[], $3::bigint[]) AS k(cid, nonce, idx) \
             WHERE r.cid = k.cid AND r.nonce = k.nonce AND r.outcome_index IS NULL",
        )
        .await
        .map_err(pg_err)?;
    let (reserved, completed) = tokio::join!(
        async {
            if new.cid.is_empty() {
                Ok(0)
            } else {
                tx.execute(
                    &st_reserve,
                    &[
                        &new.cid,
                        &new.nonce,
                        &new.agent,
                        &new.admit_index,
                        &new.intent,
                        &new.admitted_at_ms,
                        &new.owner,
                    ],
                )
                .await
            }
        },
        async {
            if completions.cid.is_empty() {
                Ok(0)
            } else {
                tx.execute(&st_complete, &[&completions.cid, &completions.nonce, &completions.idx])
                    .await
            }
        },
    );
    let reserved = reserved.map_err(pg_err)?;
    let completed = completed.map_err(pg_err)?;
    if reserved != new.cid.len() as u64 || completed != completions.cid.len() as u64 {
        return Err(Failure::Before(StoreError::corrupt(format!(
            "postgres: wrote {reserved}/{} reservations and {completed}/{} outcomes under the lock",
            new.cid.len(),
            completions.cid.len()
        ))));
    }
    appends.write(&tx).await?;
    tx.commit().await.map_err(|e| Failure::Commit(pg_err(e)))?;
    Ok(results)
}

/// Steps 12–13 for one reservation, decided under the lock. `Ok(Err(_))` is a refusal of
/// this request alone (for example a clock value out of range); `Err(_)` fails the batch.
#[allow(clippy::too_many_arguments)]
fn decide_reserve(
    r: &Reservation,
    epochs: Option<Epochs>,
    revoked_cids: &HashSet<String>,
    revoked_agents: &HashSet<String>,
    state: &mut HashMap<(String, String), Exec>,
    owner: Option<i32>,
    appends: &mut Appends,
    new: &mut NewReservations,
) -> Result<Result<Done, StoreError>, Failure> {
    let Some(active) = epochs else {
        return Err(Failure::Before(StoreError::corrupt("postgres: epochs were not read")));
    };
    if active.policy_epoch != r.policy_epoch || active.revocation_epoch != r.revocation_epoch {
        return Ok(Ok(Done::Reserve(ReserveResult::EpochChanged { active })));
    }
    if revoked_cids.contains(&r.cid) {
        return Ok(Ok(Done::Reserve(ReserveResult::Revoked {
            reason: format!("certificate `{}` is revoked", r.cid),
        })));
    }
    if revoked_agents.contains(&r.agent) {
        return Ok(Ok(Done::Reserve(ReserveResult::Revoked {
            reason: format!("agent `{}` is revoked", r.agent),
        })));
    }
    let key = (r.cid.clone(), r.nonce.clone());
    if state.contains_key(&key) {
        return Ok(Ok(Done::Reserve(ReserveResult::Replay)));
    }
    let Some(owner) = owner else {
        return Ok(Err(StoreError::unavailable(
            "postgres: this replica holds no lease (its lease connection is down); \
             refusing to reserve until it is back",
        )));
    };
    let at = match to_sql_int(r.at_ms, "at_ms") {
        Ok(at) => at,
        Err(e) => return Ok(Err(e)),
    };
    let admit_index = appends.push(&r.admit_entry)?;
    state.insert(key, Exec::Pending);
    new.cid.push(r.cid.clone());
    new.nonce.push(r.nonce.clone());
    new.agent.push(r.agent.clone());
    new.admit_index.push(to_sql_int(admit_index, "ledger index")?);
    new.intent.push(r.intent.clone());
    new.admitted_at_ms.push(at);
    new.owner.push(owner);
    Ok(Ok(Done::Reserve(ReserveResult::Reserved { admit_index })))
}
