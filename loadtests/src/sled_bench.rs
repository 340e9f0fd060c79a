//! The storage baseline: how fast sled writes on this machine with the
//! durability Switchboard asks for (nothing acknowledged before a flush).
//!
//! * raw, batched: insert a batch of keys, flush once, repeat;
//! * raw, one at a time: insert, flush (the fsync rate);
//! * through Switchboard's `SledStore` (`Store::put` with group commit)
//!   from many concurrent writers, the path every server write takes.
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switchboard::metrics::StoreMetrics;
use switchboard::store::{Expect, SledStore, Store};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SledBench {
    pub value_bytes: usize,
    pub seconds_each: f64,
    pub batch: usize,
    /// Writes per second, `batch` inserts per flush.
    pub raw_batched_writes_per_sec: f64,
    /// Writes per second, one flush per insert.
    pub raw_single_writes_per_sec: f64,
    pub store_writers: usize,
    /// Writes per second through `SledStore::put` (group commit).
    pub store_put_writes_per_sec: f64,
}

/// The page cache Switchboard's default configuration gives sled.
pub const CACHE_BYTES: u64 = switchboard::config::StoreSettings::DEFAULT_CACHE_BYTES;

fn open_raw(dir: &Path) -> anyhow::Result<sled::Db> {
    // The same configuration as SledStore: its cache, no timer flushes (we
    // flush).
    Ok(sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_BYTES)
        .flush_every_ms(None)
        .open()?)
}

/// Inserts `batch` keys, flushes, and again, for `duration`; writes/s.
pub fn raw(
    dir: &Path,
    batch: usize,
    value_bytes: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let db = open_raw(dir)?;
    let value = vec![b'v'; value_bytes];
    let start = Instant::now();
    let mut n: u64 = 0;
    // Bounded by time and, as a guard, by count.
    while start.elapsed() < duration && n < 100_000_000 {
        for _ in 0..batch.max(1) {
            db.insert(format!("bench/{n:012}"), value.as_slice())?;
            n += 1;
        }
        db.flush()?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// `writers` tasks each put fresh keys through `SledStore` for
/// `duration`; writes/s.
pub async fn store_puts(
    dir: &Path,
    writers: usize,
    value_bytes: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let store = Arc::new(SledStore::open(
        dir,
        CACHE_BYTES,
        Arc::new(StoreMetrics::unregistered()),
    )?);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers.max(1) {
        let store = store.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let value = vec![b'v'; value_bytes];
            let mut i: u64 = 0;
            while start.elapsed() < duration && i < 10_000_000 {
                let key = format!("bench/{w}/{i}");
                if store
                    .put(&key, value.clone(), Expect::Absent)
                    .await
                    .is_err()
                {
                    break;
                }
                i += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// All three, each in a fresh directory under `parent`.
pub async fn run(
    parent: &Path,
    batch: usize,
    writers: usize,
    value_bytes: usize,
    each: Duration,
) -> anyhow::Result<SledBench> {
    let d1 = tempfile::tempdir_in(parent)?;
    let d2 = tempfile::tempdir_in(parent)?;
    let d3 = tempfile::tempdir_in(parent)?;
    let (p1, p2) = (d1.path().to_path_buf(), d2.path().to_path_buf());
    let batched = tokio::task::spawn_blocking(move || raw(&p1, batch, value_bytes, each)).await??;
    let single = tokio::task::spawn_blocking(move || raw(&p2, 1, value_bytes, each)).await??;
    let store = store_puts(d3.path(), writers, value_bytes, each).await?;
    Ok(SledBench {
        value_bytes,
        seconds_each: each.as_secs_f64(),
        batch,
        raw_batched_writes_per_sec: batched,
        raw_single_writes_per_sec: single,
        store_writers: writers,
        store_put_writes_per_sec: store,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn measures_something() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(dir.path(), 16, 4, 64, Duration::from_millis(200))
            .await
            .unwrap();
        assert!(r.raw_batched_writes_per_sec > 0.0);
        assert!(r.raw_single_writes_per_sec > 0.0);
        assert!(r.store_put_writes_per_sec > 0.0);
    }
}
