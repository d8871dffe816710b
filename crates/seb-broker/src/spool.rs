//! The replica's spool: signed records the store did not take, kept until it does.
//!
//! Only the failure path writes here: an outcome record whose `complete` failed, a decision
//! record whose `append` failed. Each push is its own SQLite transaction with
//! `synchronous = FULL` (an fsync) before the broker answers, so an outcome a client was told
//! survives this replica crashing before the store is back. The broker then writes every
//! item with its original bytes (and so its original record id), oldest first, and removes
//! it once the store has taken it (see `Broker::flush_spool`).
//!
//! One spool belongs to one replica: the file is opened in SQLite's exclusive locking mode,
//! so a second process pointed at the same directory fails to open it instead of sharing it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::{Connection, params};

/// The file inside `broker.spool_dir`.
pub const SPOOL_FILE: &str = "spool.sqlite";

/// Why the spool could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The directory could not be created.
    #[error("spool directory `{path}`: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// SQLite refused (disk full, permissions, the file is in use by another replica).
    #[error("spool `{path}`: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored row is not a record the broker wrote.
    #[error("spool `{path}`: row {seq} is malformed: {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The row.
        seq: i64,
        /// What is wrong with it.
        what: &'static str,
    },
}

/// A signed record waiting for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spooled {
    /// An outcome record: `Store::complete(cid, nonce, entry)`.
    Outcome {
        /// The execution's certificate id.
        cid: String,
        /// The execution's nonce.
        nonce: String,
        /// The signed record, byte for byte.
        entry: Vec<u8>,
    },
    /// A decision record: `Store::append([entry])`.
    Record {
        /// The signed record, byte for byte.
        entry: Vec<u8>,
    },
}

/// Where a pushed item is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// In the spool file, synced to disk.
    Durable,
    /// In memory only (no spool file, or writing it failed): lost if the process dies.
    Memory,
}

/// The spool. Items are numbered in push order; [`Spool::items`] returns them in that order.
#[derive(Debug)]
pub struct Spool {
    file: Option<(PathBuf, Mutex<Connection>)>,
    /// Items the file could not take (or all of them without a file).
    memory: Mutex<VecDeque<(i64, Spooled)>>,
    next_memory_seq: AtomicUsize,
    len: AtomicUsize,
}

impl Default for Spool {
    fn default() -> Self {
        Self::in_memory()
    }
}

impl Spool {
    /// A spool without a file: nothing survives the process. For embedding and tests.
    pub fn in_memory() -> Self {
        Self {
            file: None,
            memory: Mutex::new(VecDeque::new()),
            next_memory_seq: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
        }
    }

    /// Open (creating) `dir/spool.sqlite`, exclusively for this process.
    pub fn open(dir: &Path) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| SpoolError::Dir { path: dir.to_owned(), source })?;
        let path = dir.join(SPOOL_FILE);
        let sq = |source| SpoolError::Sqlite { path: path.clone(), source };
        let conn = Connection::open(&path).map_err(sq)?;
        // EXCLUSIVE: the first write below takes the lock for the life of the connection.
        conn.execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 0;
             BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS spool (
                 seq   INTEGER PRIMARY KEY AUTOINCREMENT,
                 kind  TEXT NOT NULL CHECK (kind IN ('outcome', 'record')),
                 cid   TEXT,
                 nonce TEXT,
                 entry BLOB NOT NULL
             );
             COMMIT;",
        )
        .map_err(sq)?;
        let n: i64 = conn.query_row("SELECT count(*) FROM spool", [], |r| r.get(0)).map_err(sq)?;
        let spool = Self {
            file: Some((path.clone(), Mutex::new(conn))),
            memory: Mutex::new(VecDeque::new()),
            next_memory_seq: AtomicUsize::new(0),
            len: AtomicUsize::new(usize::try_from(n).unwrap_or(0)),
        };
        Ok(spool)
    }

    /// Whether pushed items survive the process (a spool file is open).
    pub fn is_durable(&self) -> bool {
        self.file.is_some()
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether nothing waits (one atomic load: the normal path's only cost).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keep `item`: in the file (synced before this returns) or, when that fails, in memory.
    pub fn push(&self, item: Spooled) -> (Kept, Option<SpoolError>) {
        let mut failure = None;
        if let Some((path, conn)) = &self.file {
            let written = conn.lock().map_err(|_| "poisoned").and_then(|c| {
                let (kind, cid, nonce, entry) = match &item {
                    Spooled::Outcome { cid, nonce, entry } => {
                        ("outcome", Some(cid.as_str()), Some(nonce.as_str()), entry)
                    }
                    Spooled::Record { entry } => ("record", None, None, entry),
                };
                c.execute(
                    "INSERT INTO spool (kind, cid, nonce, entry) VALUES (?1, ?2, ?3, ?4)",
                    params![kind, cid, nonce, entry],
                )
                .map_err(|e| {
                    failure = Some(SpoolError::Sqlite { path: path.clone(), source: e });
                    "insert failed"
                })
            });
            if written.is_ok() {
                self.len.fetch_add(1, Ordering::AcqRel);
                return (Kept::Durable, None);
            }
        }
        // Memory items are numbered -1, -2, ... (file rows are numbered from 1).
        let n = self.next_memory_seq.fetch_add(1, Ordering::AcqRel);
        let seq = i64::try_from(n).map_or(i64::MIN, |n| -1 - n);
        if let Ok(mut m) = self.memory.lock() {
            m.push_back((seq, item));
            self.len.fetch_add(1, Ordering::AcqRel);
        }
        (Kept::Memory, failure)
    }

    /// Every waiting item with its sequence number, oldest first (file items, then memory).
    pub fn items(&self) -> Result<Vec<(i64, Spooled)>, SpoolError> {
        let mut out = Vec::new();
        if let Some((path, conn)) = &self.file {
            let sq = |source| SpoolError::Sqlite { path: path.clone(), source };
            let c = conn.lock().map_err(|_| SpoolError::Malformed {
                path: path.clone(),
                seq: 0,
                what: "lock poisoned",
            })?;
            let mut st = c
                .prepare("SELECT seq, kind, cid, nonce, entry FROM spool ORDER BY seq")
                .map_err(sq)?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                    ))
                })
                .map_err(sq)?;
            for row in rows {
                let (seq, kind, cid, nonce, entry) = row.map_err(sq)?;
                let item = match (kind.as_str(), cid, nonce) {
                    ("outcome", Some(cid), Some(nonce)) => Spooled::Outcome { cid, nonce, entry },
                    ("record", _, _) => Spooled::Record { entry },
                    _ => {
                        return Err(SpoolError::Malformed {
                            path: path.clone(),
                            seq,
                            what: "an outcome without its cid and nonce",
                        });
                    }
                };
                out.push((seq, item));
            }
        }
        if let Ok(m) = self.memory.lock() {
            out.extend(m.iter().cloned());
        }
        Ok(out)
    }

    /// Whether an outcome for this execution waits here (recovery must leave it alone).
    pub fn has_outcome(&self, cid: &str, nonce: &str) -> bool {
        if self.is_empty() {
            return false;
        }
        self.items().map_or(true, |items| {
            items.iter().any(|(_, i)| {
                matches!(i, Spooled::Outcome { cid: c, nonce: n, .. } if c == cid && n == nonce)
            })
        })
    }

    /// Forget items the store has taken.
    pub fn remove(&self, seqs: &[i64]) -> Result<(), SpoolError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut removed = 0usize;
        if let Ok(mut m) = self.memory.lock() {
            let before = m.len();
            m.retain(|(s, _)| !seqs.contains(s));
            removed += before - m.len();
        }
        if let Some((path, conn)) = &self.file {
            let sq = |source| SpoolError::Sqlite { path: path.clone(), source };
            let mut c = conn.lock().map_err(|_| SpoolError::Malformed {
                path: path.clone(),
                seq: 0,
                what: "lock poisoned",
            })?;
            let tx = c.transaction().map_err(sq)?;
            for s in seqs.iter().filter(|s| **s > 0) {
                removed += tx.execute("DELETE FROM spool WHERE seq = ?1", [s]).map_err(sq)?;
            }
            tx.commit().map_err(sq)?;
        }
        // Saturating: never wraps below zero.
        let _ = self
            .len
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_sub(removed)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn outcome(n: &str) -> Spooled {
        Spooled::Outcome { cid: format!("c-{n}"), nonce: n.into(), entry: n.as_bytes().to_vec() }
    }

    #[test]
    fn items_survive_reopening_in_order_and_leave_when_removed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Spool::open(dir.path()).unwrap();
            assert!(s.is_empty() && s.is_durable());
            assert_eq!(s.push(outcome("a")).0, Kept::Durable);
            assert_eq!(s.push(Spooled::Record { entry: b"r".to_vec() }).0, Kept::Durable);
            assert_eq!(s.push(outcome("b")).0, Kept::Durable);
            assert!(s.has_outcome("c-a", "a") && !s.has_outcome("c-a", "b"));
        }
        let s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.len(), 3);
        let items = s.items().unwrap();
        let kinds: Vec<Spooled> = items.iter().map(|(_, i)| i.clone()).collect();
        assert_eq!(
            kinds,
            vec![outcome("a"), Spooled::Record { entry: b"r".to_vec() }, outcome("b")]
        );
        s.remove(&[items[0].0, items[1].0]).unwrap();
        assert_eq!(s.len(), 1);
        drop(s);
        let s = Spool::open(dir.path()).unwrap();
        assert_eq!(
            s.items().unwrap().iter().map(|(_, i)| i.clone()).collect::<Vec<_>>(),
            vec![outcome("b")]
        );
    }

    #[test]
    fn a_second_process_cannot_share_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Spool::open(dir.path()).unwrap();
        let second = Spool::open(dir.path());
        assert!(matches!(second, Err(SpoolError::Sqlite { .. })), "{second:?}");
    }

    #[test]
    fn without_a_file_items_are_kept_in_memory() {
        let s = Spool::in_memory();
        assert_eq!(s.push(outcome("a")).0, Kept::Memory);
        assert_eq!(s.push(outcome("b")).0, Kept::Memory);
        let items = s.items().unwrap();
        assert_eq!(items.len(), 2);
        s.remove(&[items[0].0]).unwrap();
        assert_eq!(s.items().unwrap(), vec![items[1].clone()]);
        assert_eq!(s.len(), 1);
    }
}
