//! The embedded backend: sled, with group commit.
//!
//! sled keeps recent writes in memory and writes them out on its own
//! schedule, so a write that returned is not yet safe from `kill -9`. Each
//! `put` therefore waits for a flush. Flushing once per write would cap the
//! server at the disk's fsync rate, so writers share flushes: a single
//! flusher thread takes every writer waiting at that moment, runs one
//! `flush()`, and wakes them all (group commit). A writer is only woken by a
//! flush that *started after* its write, so its write is always included.
//!
//! The flusher is a plain thread, not a task: `flush()` blocks, and a task
//! would need a hop through tokio's blocking pool for every flush (two more
//! thread wake-ups each time: docs/performance.md, change 11). Before
//! flushing it yields the CPU while writers keep arriving, so a busy server
//! makes fewer, larger flushes and an idle one flushes at once.
//!
//! On disk a value is the revision (8 bytes, big endian) followed by the
//! record bytes.
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::{check_key, Expect, Store, StoreError, Versioned};
use crate::metrics::StoreMetrics;

/// How many writers may wait for the flusher before new writers wait for a
/// place: bounds memory under a write storm.
const FLUSH_QUEUE: usize = 65_536;

/// How many times the flusher gives up the CPU to let more writers join a
/// flush, as long as each turn brings new ones. On an idle server the first
/// yield returns at once with nobody new, so a lone write is not delayed.
const MAX_GATHER_YIELDS: usize = 8;

/// No new turn starts after this long: on a busy core one yield can last a
/// whole scheduler time slice (milliseconds), and every writer in the batch
/// waits for it.
const MAX_GATHER: std::time::Duration = std::time::Duration::from_micros(300);

type Waiter = oneshot::Sender<Result<(), String>>;

pub struct SledStore {
    db: sled::Db,
    /// The flusher's queue; taken (closed) when the store is dropped.
    flusher: Option<mpsc::Sender<Waiter>>,
    /// Joined when the store is dropped: the thread holds a handle to the
    /// database, and sled keeps its directory locked until the last handle
    /// is gone, so a dropped store leaves only sled's own threads to let
    /// go of it (see [`LOCK_WAIT`]).
    flusher_thread: Option<std::thread::JoinHandle<()>>,
    metrics: Arc<StoreMetrics>,
}

impl SledStore {
    /// Opens (or creates) the store in `dir` with a page cache of at most
    /// `cache_bytes`, and starts its flusher thread, which ends before a
    /// drop of the store returns.
    pub fn open(
        dir: &Path,
        cache_bytes: u64,
        metrics: Arc<StoreMetrics>,
    ) -> Result<Self, StoreError> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // We flush ourselves before acknowledging; sled's own timer
            // would only add extra flushes.
            .flush_every_ms(None);
        let db = open_when_unlocked(&config, dir)?;
        let (tx, rx) = mpsc::channel(FLUSH_QUEUE);
        let (flush_db, flush_metrics) = (db.clone(), metrics.clone());
        let flusher_thread = std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || flusher(flush_db, rx, flush_metrics))
            .map_err(|e| StoreError::Backend(format!("cannot start the flusher thread: {e}")))?;
        Ok(SledStore {
            db,
            flusher: Some(tx),
            flusher_thread: Some(flusher_thread),
            metrics,
        })
    }

    async fn durable(&self) -> Result<(), StoreError> {
        let stopped = || StoreError::Backend("the flusher has stopped".into());
        let (tx, rx) = oneshot::channel();
        let queue = self.flusher.as_ref().ok_or_else(stopped)?;
        queue.send(tx).await.map_err(|_| stopped())?;
        rx.await
            .map_err(|_| stopped())?
            .map_err(StoreError::Backend)
    }

    fn read(bytes: &[u8], key: &str) -> Result<Versioned, StoreError> {
        Ok(Versioned {
            revision: Self::revision(bytes, key)?,
            value: bytes[8..].to_vec(),
        })
    }

    /// The revision in a stored value's header: all the compare-and-swap
    /// loop needs, so it does not copy the record behind it.
    fn revision(bytes: &[u8], key: &str) -> Result<u64, StoreError> {
        match bytes.first_chunk::<8>() {
            Some(header) => Ok(u64::from_be_bytes(*header)),
            None => Err(StoreError::Corrupt {
                key: key.into(),
                reason: "value shorter than its revision header".into(),
            }),
        }
    }

    /// The compare-and-swap loop behind put and delete. `new` is `None` to
    /// delete. Returns the new revision (0 for a delete).
    fn swap(&self, key: &str, expect: Expect, new: Option<&[u8]>) -> Result<u64, StoreError> {
        if let (Expect::Absent, Some(value)) = (expect, new) {
            return self.create(key, value);
        }
        loop {
            let current = self.db.get(key).map_err(backend)?;
            let found = match &current {
                Some(bytes) => Some(Self::revision(bytes, key)?),
                None => None,
            };
            let ok = match expect {
                Expect::Any => true,
                Expect::Absent => found.is_none(),
                Expect::Revision(r) => found == Some(r),
            };
            if !ok {
                return Err(StoreError::Conflict {
                    key: key.into(),
                    expected: expect,
                    found,
                });
            }
            let revision = found.unwrap_or(0) + 1;
            let next = new.map(|value| {
                let mut buf = Vec::with_capacity(8 + value.len());
                buf.extend_from_slice(&revision.to_be_bytes());
                buf.extend_from_slice(value);
                buf
            });
            match self
                .db
                .compare_and_swap(key, current, next)
                .map_err(backend)?
            {
                Ok(()) => return Ok(if new.is_some() { revision } else { 0 }),
                // Someone wrote between our read and swap: read again and
                // re-check the condition against what is there now.
                Err(_) => continue,
            }
        }
    }
}

impl SledStore {
    /// A write that must create the key (chat lines, tokens, new sessions:
    /// most writes). One compare-and-swap against "absent" checks and
    /// writes atomically, without first reading the key as the general
    /// loop does (that read was 7% of the server's CPU under chat load).
    fn create(&self, key: &str, value: &[u8]) -> Result<u64, StoreError> {
        let mut buf = Vec::with_capacity(8 + value.len());
        buf.extend_from_slice(&1u64.to_be_bytes());
        buf.extend_from_slice(value);
        match self
            .db
            .compare_and_swap(key, None as Option<&[u8]>, Some(buf))
            .map_err(backend)?
        {
            Ok(()) => Ok(1),
            Err(e) => Err(StoreError::Conflict {
                key: key.into(),
                expected: Expect::Absent,
                found: match e.current {
                    Some(bytes) => Some(Self::revision(&bytes, key)?),
                    None => None,
                },
            }),
        }
    }
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// How long an open waits for sled's lock on the data directory before it
/// gives up. The lock can outlive the last handle to a database by a
/// moment: under load, one test run in three found a directory still
/// locked right after its store was dropped, most likely by the sled I/O
/// job that wrote the last buffer (it reports the write before it is
/// dropped with the files it holds). Without the wait a store reopened at
/// once would be refused. Anything still holding the lock after this is
/// another open of the store, most likely another server.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens sled with `config`, waiting up to [`LOCK_WAIT`] while `dir` is
/// locked, and says so plainly if it stays locked.
fn open_when_unlocked(config: &sled::Config, dir: &Path) -> Result<sled::Db, StoreError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let e = match config.open() {
            Ok(db) => return Ok(db),
            Err(e) => e,
        };
        if !directory_in_use(dir) {
            return Err(StoreError::Backend(format!(
                "cannot open sled at {}: {e}",
                dir.display()
            )));
        }
        if Instant::now() >= deadline {
            return Err(StoreError::Backend(format!(
                "the data directory {} is in use: another server (or another open \
                 of its store) holds it. Stop that one, or give this one another \
                 store.data_dir",
                dir.display()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Whether another open of the database holds sled's lock on `dir`. sled
/// refuses to open a locked directory with an I/O error that only says it
/// "could not acquire lock"; this asks the lock itself, after the open
/// failed, so that the message can say what is wrong.
fn directory_in_use(dir: &Path) -> bool {
    std::fs::File::open(dir.join("db"))
        .is_ok_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
}

impl Drop for SledStore {
    /// Closes the flusher's queue, so the thread ends once it has flushed
    /// for whoever was waiting, and waits for it: when this returns, only
    /// the store's own handle to the database is left, and it goes next.
    fn drop(&mut self) {
        self.flusher = None;
        if let Some(thread) = self.flusher_thread.take() {
            let _ = thread.join();
        }
    }
}

/// The group-commit loop (see the module comment). Runs on its own thread
/// until every sender is gone.
fn flusher(db: sled::Db, mut rx: mpsc::Receiver<Waiter>, metrics: Arc<StoreMetrics>) {
    let mut waiters = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        waiters.push(first);
        // Everyone already waiting shares this flush, and so does everyone
        // who arrives while other threads use the CPU we give up.
        drain(&mut rx, &mut waiters);
        let gathering = Instant::now();
        for _ in 0..MAX_GATHER_YIELDS {
            if gathering.elapsed() >= MAX_GATHER {
                break;
            }
            std::thread::yield_now();
            if drain(&mut rx, &mut waiters) == 0 {
                break;
            }
        }
        let started = Instant::now();
        let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
        metrics.observe_flush(started.elapsed(), waiters.len());
        for w in waiters.drain(..) {
            let _ = w.send(result.clone());
        }
    }
}

/// Moves every writer already queued into `waiters`; returns how many.
fn drain(rx: &mut mpsc::Receiver<Waiter>, waiters: &mut Vec<Waiter>) -> usize {
    let before = waiters.len();
    while let Ok(more) = rx.try_recv() {
        waiters.push(more);
    }
    waiters.len() - before
}

#[async_trait]
impl Store for SledStore {
    fn backend(&self) -> &'static str {
        "sled"
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        check_key(key)?;
        match self.db.get(key).map_err(backend)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(Self::read(&bytes, key)?)),
        }
    }

    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError> {
        check_key(key)?;
        let started = Instant::now();
        let revision = self.swap(key, expect, Some(&value))?;
        self.durable().await?;
        self.metrics.observe_write(started.elapsed());
        Ok(revision)
    }

    async fn put_unflushed(
        &self,
        key: &str,
        value: Vec<u8>,
        expect: Expect,
    ) -> Result<u64, StoreError> {
        check_key(key)?;
        let started = Instant::now();
        let revision = self.swap(key, expect, Some(&value))?;
        self.metrics.observe_write(started.elapsed());
        Ok(revision)
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
        check_key(key)?;
        if expect == Expect::Any && self.db.get(key).map_err(backend)?.is_none() {
            // Gone, but perhaps only from memory: another writer's delete
            // may be applied and still waiting for its flush (a rep's two
            // consoles logging out at once), or an earlier delete's flush
            // failed. Answering before a flush would acknowledge a removal
            // a kill -9 could undo.
            return self.durable().await;
        }
        let started = Instant::now();
        self.swap(key, expect, None)?;
        self.durable().await?;
        self.metrics.observe_write(started.elapsed());
        Ok(())
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(prefix) {
            let (k, v) = item.map_err(backend)?;
            let key = String::from_utf8(k.to_vec()).map_err(|_| StoreError::Corrupt {
                key: format!("{k:?}"),
                reason: "key is not UTF-8".into(),
            })?;
            let value = Self::read(&v, &key)?;
            out.push((key, value));
        }
        Ok(out)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.durable().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreSettings;

    fn open_with(dir: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        SledStore::open(dir, cache_bytes, Arc::new(StoreMetrics::unregistered()))
    }

    async fn open(dir: &Path) -> SledStore {
        open_with(dir, StoreSettings::DEFAULT_CACHE_BYTES).unwrap()
    }

    #[tokio::test]
    async fn sled_passes_the_store_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        crate::store::suite::run_all(&store).await;
    }

    /// A delete that finds its key gone still waits for a flush: the key
    /// may be gone from memory only, by another delete applied and not yet
    /// durable, and the caller is about to be told it is removed.
    #[tokio::test]
    async fn a_delete_that_finds_nothing_still_waits_for_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        store
            .put("token/t", b"x".to_vec(), Expect::Absent)
            .await
            .unwrap();
        // Another writer's delete, applied in memory, its flush not yet run.
        store.swap("token/t", Expect::Any, None).unwrap();
        let before = store.metrics.writers_flushed();
        store.delete("token/t", Expect::Any).await.unwrap();
        assert_eq!(
            store.metrics.writers_flushed(),
            before + 1,
            "the delete was answered without a flush"
        );
    }

    #[tokio::test]
    async fn writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path()).await;
            store
                .put("a/b", b"one".to_vec(), Expect::Absent)
                .await
                .unwrap();
            store
                .put("a/b", b"two".to_vec(), Expect::Revision(1))
                .await
                .unwrap();
        }
        let store = open(dir.path()).await;
        let v = store.get("a/b").await.unwrap().unwrap();
        assert_eq!((v.revision, v.value.as_slice()), (2, &b"two"[..]));
    }

    /// sled keeps its directory locked while any handle to the database
    /// is open, and the flusher thread and sled's I/O threads let go of
    /// theirs just after a store is dropped. A store reopened at once must
    /// not be refused with "could not acquire lock" while they wind down:
    /// the drop joins the flusher, and the open waits for the rest.
    #[tokio::test]
    async fn a_dropped_store_can_be_opened_again_at_once() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..20u8 {
            let store = open(dir.path()).await;
            let expect = match round {
                0 => Expect::Absent,
                r => Expect::Revision(u64::from(r)),
            };
            store.put("a/b", vec![round], expect).await.unwrap();
            drop(store);
        }
        let store = open(dir.path()).await;
        let v = store.get("a/b").await.unwrap().unwrap();
        assert_eq!((v.revision, v.value), (20, vec![19]));
    }

    #[tokio::test]
    async fn a_directory_already_open_is_refused_with_a_plain_reason() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path()).await;
        let second = open_with(dir.path(), StoreSettings::DEFAULT_CACHE_BYTES);
        let Err(StoreError::Backend(message)) = second else {
            panic!("a second open of a directory in use must fail");
        };
        assert!(message.contains("is in use"), "{message}");
        assert!(message.contains("store.data_dir"), "{message}");
        // Refused, not harmed: the first store still works.
        first
            .put("a/b", b"x".to_vec(), Expect::Absent)
            .await
            .unwrap();
    }

    /// With the smallest cache the configuration allows, most pages live
    /// only in sled's files: every record must still read back, update by
    /// revision and survive reopening. 4 MB of records against 64 KiB.
    #[tokio::test]
    async fn records_far_beyond_a_small_cache_read_back() {
        const RECORDS: usize = 4_000;
        let record = |i: usize, round: u8| vec![round; 1_000 + i % 7];
        let key = |i: usize| format!("session/{i:08}");
        let dir = tempfile::tempdir().unwrap();
        let open_small = || open_with(dir.path(), StoreSettings::MIN_CACHE_BYTES).unwrap();
        {
            let store = open_small();
            for i in 0..RECORDS {
                store
                    .put(&key(i), record(i, 1), Expect::Absent)
                    .await
                    .unwrap();
            }
            // Every other record updated from its revision, which means
            // reading pages that were paged out long ago.
            for i in (0..RECORDS).step_by(2) {
                store
                    .put(&key(i), record(i, 2), Expect::Revision(1))
                    .await
                    .unwrap();
            }
        }
        let store = open_small();
        let all = store.scan_prefix("session/").await.unwrap();
        assert_eq!(all.len(), RECORDS);
        for (i, (k, v)) in all.iter().enumerate() {
            let round = if i % 2 == 0 { 2 } else { 1 };
            assert_eq!(k, &key(i));
            assert_eq!(
                (v.revision, &v.value),
                (u64::from(round), &record(i, round))
            );
        }
    }

    /// A value too short to hold its revision (a torn or foreign write) is
    /// reported as corrupt by every path that reads it, reads and the
    /// compare-and-swap alike, and no write replaces it unseen.
    #[tokio::test]
    async fn a_value_without_its_revision_header_is_corrupt_on_every_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        store.db.insert("session/s1", &b"abc"[..]).unwrap();
        let corrupt =
            |e: StoreError| matches!(e, StoreError::Corrupt { key, .. } if key == "session/s1");
        assert!(corrupt(store.get("session/s1").await.unwrap_err()));
        for expect in [Expect::Any, Expect::Revision(1), Expect::Absent] {
            let refused = store.put("session/s1", b"new".to_vec(), expect).await;
            assert!(corrupt(refused.unwrap_err()), "put with {expect:?}");
        }
        assert!(corrupt(
            store.delete("session/s1", Expect::Any).await.unwrap_err()
        ));
        assert_eq!(store.db.get("session/s1").unwrap().unwrap(), &b"abc"[..]);
    }
}
