//! The ledger on PostgreSQL: the locked head row (size + the frontier's right edge), the
//! rows an append writes, and roots and proofs with ONE round trip for their O(log n) nodes.
//!
//! Roots and proofs use the ledger crate's math over a [`NodeReader`], which is synchronous.
//! The nodes a computation reads depend only on the sizes and indices, never on the hashes,
//! so [`with_nodes`] runs it twice: once over a reader that records which nodes are asked for
//! (answering zeros), then, after fetching exactly those rows in one query, over the fetched
//! rows.

use std::cell::RefCell;
use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use seb_ledger::LedgerError;
use seb_ledger::merkle::{Frontier, Hash, NodeReader, leaf_hash};
use seb_store::StoreError;

use crate::{from_sql_int, ledger_err, pg_err, to_sql_int};

/// Lock the head row; every writer of the shared state takes this lock first.
pub(crate) const LOCK_HEAD: &str = "SELECT size, edge FROM ledger_head WHERE id = 0 FOR UPDATE";

/// The (level, index) of each complete subtree on the right edge of a tree of `size`
/// leaves, largest first (the order [`Frontier::nodes`] and the `edge` column use).
fn edge_positions(size: u64) -> Vec<(u8, u64)> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for level in (0u8..64).rev() {
        let width = 1u64 << level;
        if size & width != 0 {
            out.push((level, offset >> level));
            offset = offset.saturating_add(width);
        }
    }
    out
}

/// Rebuild the frontier from the head row.
pub(crate) fn frontier_from_head(size: i64, edge: &[u8]) -> Result<Frontier, StoreError> {
    let size = from_sql_int(size, "ledger size")?;
    let positions = edge_positions(size);
    if edge.len() != positions.len() * 32 {
        return Err(StoreError::corrupt(format!(
            "the ledger head holds {} bytes of frontier for size {size}, expected {}",
            edge.len(),
            positions.len() * 32
        )));
    }
    let mut nodes = HashMap::with_capacity(positions.len());
    for (pos, chunk) in positions.into_iter().zip(edge.chunks_exact(32)) {
        let hash = Hash::try_from(chunk)
            .map_err(|_| StoreError::corrupt("frontier hash is not 32 bytes"))?;
        nodes.insert(pos, hash);
    }
    Frontier::from_reader(&MapReader(nodes), size).map_err(ledger_err)
}

/// The `edge` column for a frontier.
pub(crate) fn edge_bytes(frontier: &Frontier) -> Vec<u8> {
    frontier.nodes().iter().flat_map(|n| n.hash).collect()
}

/// The rows one transaction appends: entries, their leaf and completed-subtree nodes, and
/// the new head.
#[derive(Debug)]
pub(crate) struct Appends {
    pub(crate) frontier: Frontier,
    idx: Vec<i64>,
    entry: Vec<Vec<u8>>,
    leaf: Vec<Vec<u8>>,
    node_level: Vec<i16>,
    node_idx: Vec<i64>,
    node_hash: Vec<Vec<u8>>,
}

impl Appends {
    /// Start from the locked head.
    pub(crate) fn new(frontier: Frontier) -> Self {
        Self {
            frontier,
            idx: Vec::new(),
            entry: Vec::new(),
            leaf: Vec::new(),
            node_level: Vec::new(),
            node_idx: Vec::new(),
            node_hash: Vec::new(),
        }
    }

    /// Lock the head row inside `tx` and start from it.
    pub(crate) async fn lock(tx: &impl GenericClient) -> Result<Self, StoreError> {
        let st = tx.prepare_cached(LOCK_HEAD).await.map_err(pg_err)?;
        let row = tx.query_one(&st, &[]).await.map_err(pg_err)?;
        let size: i64 = row.try_get(0).map_err(pg_err)?;
        let edge: Vec<u8> = row.try_get(1).map_err(pg_err)?;
        Ok(Self::new(frontier_from_head(size, &edge)?))
    }

    /// The index the next entry gets.
    pub(crate) fn next_index(&self) -> u64 {
        self.frontier.size()
    }

    /// Whether nothing was appended.
    pub(crate) fn is_empty(&self) -> bool {
        self.idx.is_empty()
    }

    /// Append one entry; returns its index.
    pub(crate) fn push(&mut self, entry: &[u8]) -> Result<u64, StoreError> {
        let index = self.frontier.size();
        let idx = to_sql_int(index, "ledger index")?;
        let leaf = leaf_hash(entry);
        let nodes = self.frontier.try_push(leaf).map_err(ledger_err)?;
        self.idx.push(idx);
        self.entry.push(entry.to_vec());
        self.leaf.push(leaf.to_vec());
        for n in nodes {
            self.node_level.push(i16::from(n.level));
            self.node_idx.push(to_sql_int(n.index, "node index")?);
            self.node_hash.push(n.hash.to_vec());
        }
        Ok(index)
    }

    /// Write the entries, nodes and the new head (inside the transaction that locked it).
    pub(crate) async fn write(&self, tx: &impl GenericClient) -> Result<(), StoreError> {
        if self.is_empty() {
            return Ok(());
        }
        let entries = tx
            .prepare_cached(
                "INSERT INTO ledger_entries (idx, entry, leaf_hash) \
                 SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])",
            )
            .await
            .map_err(pg_err)?;
        let nodes = tx
            .prepare_cached(
                "INSERT INTO merkle_nodes (level, idx, hash) \
                 SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])",
            )
            .await
            .map_err(pg_err)?;
        let head = tx
            .prepare_cached("UPDATE ledger_head SET size = $1, edge = $2 WHERE id = 0")
            .await
            .map_err(pg_err)?;
        let size = to_sql_int(self.frontier.size(), "ledger size")?;
        let edge = edge_bytes(&self.frontier);
        // Pipelined: sent together, executed in order by the server.
        let entry_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&self.idx, &self.entry, &self.leaf];
        let node_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&self.node_level, &self.node_idx, &self.node_hash];
        let head_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&size, &edge];
        let (a, b, c) = tokio::join!(
            tx.execute(&entries, &entry_params),
            tx.execute(&nodes, &node_params),
            tx.execute(&head, &head_params),
        );
        a.map_err(pg_err)?;
        b.map_err(pg_err)?;
        c.map_err(pg_err)?;
        Ok(())
    }
}

/// A [`NodeReader`] over fetched rows.
struct MapReader(HashMap<(u8, u64), Hash>);

impl NodeReader for MapReader {
    fn node(&self, level: u8, index: u64) -> Result<Hash, LedgerError> {
        self.0.get(&(level, index)).copied().ok_or(LedgerError::MissingNode { level, index })
    }
}

/// A [`NodeReader`] that records what is asked and answers zeros.
#[derive(Default)]
struct Recorder(RefCell<Vec<(u8, u64)>>);

impl NodeReader for Recorder {
    fn node(&self, level: u8, index: u64) -> Result<Hash, LedgerError> {
        self.0.borrow_mut().push((level, index));
        Ok([0u8; 32])
    }
}

/// Run a Merkle computation over the stored nodes it needs, fetched in one query.
pub(crate) async fn with_nodes<T>(
    client: &impl GenericClient,
    compute: impl Fn(&dyn NodeReader) -> Result<T, LedgerError>,
) -> Result<T, StoreError> {
    let recorder = Recorder::default();
    compute(&recorder).map_err(ledger_err)?;
    let wanted = recorder.0.into_inner();
    if wanted.is_empty() {
        return compute(&MapReader(HashMap::new())).map_err(ledger_err);
    }
    let mut levels = Vec::with_capacity(wanted.len());
    let mut indices = Vec::with_capacity(wanted.len());
    for (level, index) in &wanted {
        levels.push(i16::from(*level));
        indices.push(to_sql_int(*index, "node index")?);
    }
    let st = client
        .prepare_cached(
            "SELECT n.level, n.idx, n.hash FROM merkle_nodes n \
             JOIN unnest($1::smallint[], $2::bigint[]) AS k(level, idx) \
             ON n.level = k.level AND n.idx = k.idx",
        )
        .await
        .map_err(pg_err)?;
    let rows = client.query(&st, &[&levels, &indices]).await.map_err(pg_err)?;
    let mut nodes = HashMap::with_capacity(rows.len());
    for row in rows {
        let level: i16 = row.try_get(0).map_err(pg_err)?;
        let idx: i64 = row.try_get(1).map_err(pg_err)?;
        let hash: Vec<u8> = row.try_get(2).map_err(pg_err)?;
        let level = u8::try_from(level)
            .map_err(|_| StoreError::corrupt(format!("stored node level {level}")))?;
        let hash = Hash::try_from(hash.as_slice())
            .map_err(|_| StoreError::corrupt("stored node hash is not 32 bytes"))?;
        nodes.insert((level, from_sql_int(idx, "node index")?), hash);
    }
    compute(&MapReader(nodes)).map_err(ledger_err)
}

#[cfg(test)]
mod tests {
    use seb_ledger::merkle::MemoryTree;

    use super::*;

    #[test]
    fn head_round_trips_the_frontier() {
        let mut tree = MemoryTree::new();
        for n in 0..70u64 {
            let f = tree.frontier().clone();
            let back = frontier_from_head(n as i64, &edge_bytes(&f)).unwrap();
            assert_eq!(back, f, "size {n}");
            assert_eq!(back.root(), tree.root());
            tree.append(&n.to_be_bytes());
        }
    }

    #[test]
    fn a_short_edge_is_corrupt() {
        assert!(matches!(frontier_from_head(3, &[0u8; 32]), Err(StoreError::Corrupt { .. })));
        assert!(matches!(frontier_from_head(-1, &[]), Err(StoreError::Corrupt { .. })));
    }
}
