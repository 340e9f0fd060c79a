//! Versioned MessagePack records.
//!
//! On disk every record is a MessagePack map `{kind, v, data}`: `kind` names
//! the record type, `v` its schema version, `data` the record with named
//! fields. Reading checks both, so a store full of old records is migrated
//! (or refused with a clear message) rather than misread.
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::StoreError;

/// A type that is stored. Bump `VERSION` when the layout changes in a way
/// old readers cannot follow, and teach `migrate` the old layout.
pub trait Record: Serialize + DeserializeOwned {
    const KIND: &'static str;
    const VERSION: u32;

    /// Turns the `data` of an older version (its MessagePack bytes) into
    /// this one. The default refuses: there is no older version yet.
    fn migrate(version: u32, _data: &[u8]) -> Result<Self, String> {
        Err(format!("no migration from version {version}"))
    }
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    kind: &'a str,
    v: u32,
    data: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeHead {
    kind: String,
    v: u32,
}

#[derive(Deserialize)]
struct EnvelopeIn<T> {
    data: T,
}

/// Room reserved for an encoded record (a session is 600 to 1,000 bytes):
/// an encoder starting from an empty buffer would double it about seven
/// times, copying each time, on every durable write.
const RECORD_CAPACITY: usize = 1024;

pub fn encode<T: Record>(record: &T) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::with_capacity(RECORD_CAPACITY);
    rmp_serde::encode::write_named(
        &mut buf,
        &EnvelopeOut {
            kind: T::KIND,
            v: T::VERSION,
            data: record,
        },
    )
    .map_err(|e| StoreError::Backend(format!("cannot encode {}: {e}", T::KIND)))?;
    Ok(buf)
}

pub fn decode<T: Record>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let head: EnvelopeHead =
        rmp_serde::from_slice(bytes).map_err(|e| corrupt(format!("not a record envelope: {e}")))?;
    if head.kind != T::KIND {
        return Err(corrupt(format!(
            "expected a '{}' record, found '{}'",
            T::KIND,
            head.kind
        )));
    }
    if head.v == T::VERSION {
        let env: EnvelopeIn<T> = rmp_serde::from_slice(bytes)
            .map_err(|e| corrupt(format!("bad {} v{}: {e}", T::KIND, head.v)))?;
        return Ok(env.data);
    }
    if head.v > T::VERSION {
        return Err(corrupt(format!(
            "{} v{} was written by a newer Switchboard (this one reads up to v{})",
            T::KIND,
            head.v,
            T::VERSION
        )));
    }
    // An older version: hand its `data`, untouched, to the migration.
    let raw: EnvelopeIn<rmpv::Value> =
        rmp_serde::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut data = Vec::new();
    rmpv::encode::write_value(&mut data, &raw.data).map_err(|e| corrupt(e.to_string()))?;
    T::migrate(head.v, &data).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Thing {
        name: String,
        n: u32,
    }
    impl Record for Thing {
        const KIND: &'static str = "thing";
        const VERSION: u32 = 2;
        fn migrate(version: u32, data: &[u8]) -> Result<Self, String> {
            #[derive(Deserialize)]
            struct V1 {
                name: String,
            }
            match version {
                1 => {
                    let old: V1 = rmp_serde::from_slice(data).map_err(|e| e.to_string())?;
                    Ok(Thing {
                        name: old.name,
                        n: 0,
                    })
                }
                v => Err(format!("no migration from version {v}")),
            }
        }
    }

    #[test]
    fn round_trip_keeps_named_fields() {
        let t = Thing {
            name: "a".into(),
            n: 3,
        };
        let bytes = encode(&t).unwrap();
        // Named fields: another language sees a map with these keys.
        let v: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(v["kind"], "thing");
        assert_eq!(v["v"], 2);
        assert_eq!(v["data"]["name"], "a");
        assert_eq!(decode::<Thing>("k", &bytes).unwrap(), t);
    }

    #[test]
    fn old_versions_migrate_and_newer_ones_are_refused() {
        let old =
            rmp_serde::to_vec_named(&serde_json::json!({"kind":"thing","v":1,"data":{"name":"x"}}))
                .unwrap();
        assert_eq!(
            decode::<Thing>("k", &old).unwrap(),
            Thing {
                name: "x".into(),
                n: 0
            }
        );
        let newer =
            rmp_serde::to_vec_named(&serde_json::json!({"kind":"thing","v":9,"data":{}})).unwrap();
        let err = decode::<Thing>("k", &newer).unwrap_err().to_string();
        assert!(err.contains("newer Switchboard"), "{err}");
    }

    #[test]
    fn wrong_kind_and_garbage_are_corrupt_not_panics() {
        let other =
            rmp_serde::to_vec_named(&serde_json::json!({"kind":"other","v":2,"data":{}})).unwrap();
        assert!(matches!(
            decode::<Thing>("k", &other),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            decode::<Thing>("k", b"\xc1\xff garbage"),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
