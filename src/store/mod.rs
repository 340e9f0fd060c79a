//! Storage behind one trait.
//!
//! Every backend stores opaque values under string keys, each with a
//! *revision* that grows on every write. Writers can make a write
//! conditional on the revision they read ([`Expect`]), which is how two nodes
//! (or two actors) never overwrite each other's changes. A write that returns
//! `Ok` is durable: it survives `kill -9`.
//!
//! Values are [`record`] envelopes: MessagePack maps that name their kind and
//! schema version, so a record written today can be read, or migrated, by a
//! later release and by any backend. sled is the embedded default; a cluster
//! backend must pass the same suite in [`suite`].
mod record;
mod sled_store;
#[doc(hidden)]
pub mod suite;

pub use record::{decode, encode, Record};
pub use sled_store::SledStore;

use async_trait::async_trait;

/// A stored value with its revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// Grows with every write of the key. Only its order means anything:
    /// sled counts per key from 1, a NATS KV backend would use stream
    /// sequence numbers.
    pub revision: u64,
    pub value: Vec<u8>,
}

/// The condition a write is made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is there.
    Any,
    /// Write only if the key does not exist yet.
    Absent,
    /// Write only if the key is at exactly this revision.
    Revision(u64),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "conditional write on '{key}' failed: expected {expected:?}, found revision {found:?}"
    )]
    Conflict {
        key: String,
        expected: Expect,
        found: Option<u64>,
    },
    #[error("key '{0}' is not allowed: use 1 to 255 characters of a-z A-Z 0-9 - _ / . =")]
    BadKey(String),
    #[error("record under '{key}' cannot be read: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("backend error: {0}")]
    Backend(String),
}

/// The storage seam. Keys are `/`-separated paths such as `session/abc`;
/// a prefix scan returns keys in byte order.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The backend's name, for logs and metrics.
    fn backend(&self) -> &'static str;

    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;

    /// Writes `value` under `key` if `expect` holds; returns the new
    /// revision. Durable when it returns `Ok`.
    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError>;

    /// Like [`put`](Store::put), but may return once the write is visible to
    /// readers and before it is durable: the caller must [`flush`](Store::flush)
    /// before it acknowledges anything that depends on the write. For work
    /// that can start early without anyone relying on it yet (a new
    /// session's popup alert raised while the session is being flushed).
    /// A backend whose writes are durable when they return keeps this
    /// default.
    async fn put_unflushed(
        &self,
        key: &str,
        value: Vec<u8>,
        expect: Expect,
    ) -> Result<u64, StoreError> {
        self.put(key, value, expect).await
    }

    /// Removes `key` if `expect` holds. Removing a missing key with
    /// [`Expect::Any`] is not an error. Durable when it returns `Ok`.
    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError>;

    /// Every key starting with `prefix`, in byte order.
    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError>;

    /// Makes every write so far durable: those of `put_unflushed`, and at
    /// shutdown everything (the other writes already are when they return).
    async fn flush(&self) -> Result<(), StoreError>;
}

/// Keys are restricted to what every backend accepts (NATS KV is the
/// strictest): this keeps records portable between engines.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key.len() <= 255
        && !key.starts_with('/')
        && !key.ends_with('/')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/' | b'.' | b'='));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadKey(key.chars().take(64).collect()))
    }
}

/// A shared handle to whichever store the server runs on.
pub type SharedStore = std::sync::Arc<dyn Store>;

/// Typed helpers over any store: read and write [`Record`]s.
pub async fn load<T: Record>(store: &dyn Store, key: &str) -> Result<Option<(T, u64)>, StoreError> {
    match store.get(key).await? {
        None => Ok(None),
        Some(v) => Ok(Some((decode::<T>(key, &v.value)?, v.revision))),
    }
}

pub async fn save<T: Record>(
    store: &dyn Store,
    key: &str,
    record: &T,
    expect: Expect,
) -> Result<u64, StoreError> {
    store.put(key, encode(record)?, expect).await
}

/// [`save`] for a future that must own what it writes, such as an actor's
/// (`'static`): the record is encoded now, so the caller lends it rather
/// than cloning it into the future (a copy of the session or chat line
/// per write: docs/performance.md, changes 33 and 35).
pub fn save_owned<T: Record>(
    store: &SharedStore,
    key: String,
    record: &T,
    expect: Expect,
) -> impl std::future::Future<Output = Result<u64, StoreError>> + 'static {
    let store = store.clone();
    let value = encode(record);
    async move { store.put(&key, value?, expect).await }
}

/// [`save`] through [`Store::put_unflushed`]: flush before acknowledging.
pub async fn save_unflushed<T: Record>(
    store: &dyn Store,
    key: &str,
    record: &T,
    expect: Expect,
) -> Result<u64, StoreError> {
    store.put_unflushed(key, encode(record)?, expect).await
}

pub async fn load_all<T: Record>(
    store: &dyn Store,
    prefix: &str,
) -> Result<Vec<(String, T, u64)>, StoreError> {
    let mut out = Vec::new();
    for (key, v) in store.scan_prefix(prefix).await? {
        let rec = decode::<T>(&key, &v.value)?;
        out.push((key, rec, v.revision));
    }
    Ok(out)
}
