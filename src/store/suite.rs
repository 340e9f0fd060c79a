//! The behaviour every [`Store`] backend must have, as one suite.
//!
//! A backend's tests call [`run_all`] on a fresh, empty store. The suite is
//! public (but hidden from docs) so that a backend living in another module
//! or crate, such as the cluster's JetStream store, runs exactly the same
//! checks as sled.
use futures_util::future::join_all;

use super::{Expect, Store, StoreError};

pub async fn run_all(store: &dyn Store) {
    missing_keys_read_as_none(store).await;
    create_then_update_counts_revisions(store).await;
    conditions_are_enforced(store).await;
    deletes_honour_conditions(store).await;
    scans_return_only_the_prefix_in_order(store).await;
    bad_keys_are_refused_not_stored(store).await;
    racing_conditional_writes_have_one_winner(store).await;
    unflushed_writes_obey_conditions_and_are_read_back(store).await;
}

async fn missing_keys_read_as_none(store: &dyn Store) {
    assert_eq!(store.get("suite/missing").await.unwrap(), None);
}

async fn create_then_update_counts_revisions(store: &dyn Store) {
    // Revisions only have to grow: a backend may number them per key
    // (sled) or per stream (NATS KV), so nothing here assumes their values.
    let r1 = store
        .put("suite/rev", b"a".to_vec(), Expect::Absent)
        .await
        .unwrap();
    assert!(r1 >= 1);
    let r2 = store
        .put("suite/rev", b"b".to_vec(), Expect::Revision(r1))
        .await
        .unwrap();
    assert!(r2 > r1, "{r2} after {r1}");
    let r3 = store
        .put("suite/rev", b"c".to_vec(), Expect::Any)
        .await
        .unwrap();
    assert!(r3 > r2, "{r3} after {r2}");
    let v = store.get("suite/rev").await.unwrap().unwrap();
    assert_eq!((v.revision, v.value), (r3, b"c".to_vec()));
}

/// A revision no backend hands out in a test run.
const NEVER: u64 = u64::MAX / 2;

async fn conditions_are_enforced(store: &dyn Store) {
    let r = store
        .put("suite/cond", b"x".to_vec(), Expect::Absent)
        .await
        .unwrap();
    let again = store.put("suite/cond", b"y".to_vec(), Expect::Absent).await;
    assert!(
        matches!(again, Err(StoreError::Conflict { found: Some(f), .. }) if f == r),
        "{again:?}"
    );
    let stale = store
        .put("suite/cond", b"y".to_vec(), Expect::Revision(NEVER))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    let absent = store
        .put("suite/never", b"y".to_vec(), Expect::Revision(r))
        .await;
    assert!(
        matches!(absent, Err(StoreError::Conflict { found: None, .. })),
        "{absent:?}"
    );
    // A refused write changes nothing.
    let v = store.get("suite/cond").await.unwrap().unwrap();
    assert_eq!((v.revision, v.value), (r, b"x".to_vec()));
    assert_eq!(store.get("suite/never").await.unwrap(), None);
}

async fn deletes_honour_conditions(store: &dyn Store) {
    let r = store
        .put("suite/del", b"x".to_vec(), Expect::Absent)
        .await
        .unwrap();
    let wrong = store.delete("suite/del", Expect::Revision(NEVER)).await;
    assert!(
        matches!(wrong, Err(StoreError::Conflict { .. })),
        "{wrong:?}"
    );
    assert!(store.get("suite/del").await.unwrap().is_some());
    store
        .delete("suite/del", Expect::Revision(r))
        .await
        .unwrap();
    assert_eq!(store.get("suite/del").await.unwrap(), None);
    // Deleting what is gone is fine unconditionally.
    store.delete("suite/del", Expect::Any).await.unwrap();
    // A key can be created again after a delete.
    store
        .put("suite/del", b"z".to_vec(), Expect::Absent)
        .await
        .unwrap();
}

async fn scans_return_only_the_prefix_in_order(store: &dyn Store) {
    for k in [
        "suite/scan/b",
        "suite/scan/a",
        "suite/scan/c",
        "suite/scanner",
    ] {
        store
            .put(k, k.as_bytes().to_vec(), Expect::Any)
            .await
            .unwrap();
    }
    let keys: Vec<String> = store
        .scan_prefix("suite/scan/")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["suite/scan/a", "suite/scan/b", "suite/scan/c"]);
    assert!(store
        .scan_prefix("suite/nothing/")
        .await
        .unwrap()
        .is_empty());
}

async fn bad_keys_are_refused_not_stored(store: &dyn Store) {
    for key in [
        "",
        "/lead",
        "trail/",
        "sp ace",
        "uni\u{e9}",
        "star*",
        &"k".repeat(300),
    ] {
        let r = store.put(key, b"x".to_vec(), Expect::Any).await;
        assert!(matches!(r, Err(StoreError::BadKey(_))), "{key:?}: {r:?}");
    }
}

async fn racing_conditional_writes_have_one_winner(store: &dyn Store) {
    let r = store
        .put("suite/race", b"0".to_vec(), Expect::Absent)
        .await
        .unwrap();
    // Twenty writers all read the same revision and try to move it on:
    // exactly one may win, as when fifty reps accept the same session.
    let tries = (0..20).map(|i| store.put("suite/race", vec![i], Expect::Revision(r)));
    let results = join_all(tries).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    assert!(results
        .iter()
        .filter(|r| r.is_err())
        .all(|r| matches!(r, Err(StoreError::Conflict { .. }))));
    let won = results.iter().find_map(|r| r.as_ref().ok()).copied();
    assert_eq!(
        Some(store.get("suite/race").await.unwrap().unwrap().revision),
        won
    );
}

async fn unflushed_writes_obey_conditions_and_are_read_back(store: &dyn Store) {
    // Whether it is durable before `flush` is the backend's business. That
    // `flush` makes it durable needs a crash, which this suite cannot make:
    // tests/restart.rs does, killing the server with SIGKILL right after
    // acknowledged session starts (written with `put_unflushed`, then
    // flushed: `a_session_started_right_before_kill_9_is_waiting_after_it`).
    // What every backend must do is apply the same conditions as `put` and
    // show the write to readers at once.
    let r1 = store
        .put_unflushed("suite/early", b"a".to_vec(), Expect::Absent)
        .await
        .unwrap();
    assert!(matches!(
        store
            .put_unflushed("suite/early", b"x".to_vec(), Expect::Absent)
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let got = store.get("suite/early").await.unwrap().unwrap();
    assert_eq!((got.revision, got.value.as_slice()), (r1, &b"a"[..]));
    store.flush().await.unwrap();
    let r2 = store
        .put("suite/early", b"b".to_vec(), Expect::Revision(r1))
        .await
        .unwrap();
    assert!(r2 > r1);
}
