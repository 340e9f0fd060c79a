//! The server binary runs on jemalloc with its decays at zero
//! (src/bin/switchboard.rs): freed pages go back to the kernel at once,
//! which is what keeps a waiting customer's memory below glibc's
//! (docs/performance.md, change 29). The options are a symbol jemalloc
//! reads before `main`; a renamed prefix or a different allocator would
//! drop them without a word, so the test asks jemalloc itself.

use std::time::Duration;

use crate::common::{eventually, start_capturing_log};

#[tokio::test]
async fn the_server_gives_freed_pages_back_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // `stats_print` makes jemalloc write its options and statistics to
    // stderr at exit; it is added to the compiled-in options, not instead.
    let (mut server, log) =
        start_capturing_log(dir.path(), &[("_RJEM_MALLOC_CONF", "stats_print:true")]);
    assert!(server.sigterm().success());
    let lines = eventually(
        Duration::from_secs(10),
        "jemalloc's statistics at exit (is jemalloc the allocator?)",
        || async {
            let lines = log.lock().unwrap().clone();
            lines
                .iter()
                .any(|l| l.contains("opt.muzzy_decay_ms"))
                .then_some(lines)
        },
    )
    .await;
    for option in ["opt.dirty_decay_ms: 0 ", "opt.muzzy_decay_ms: 0 "] {
        assert!(
            lines.iter().any(|l| l.contains(option)),
            "{option}is not set:\n{}",
            lines
                .iter()
                .filter(|l| l.contains("decay"))
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
