//! The server binary runs on jemalloc, which keeps a freed page for a
//! second for the next allocation and then gives it back to the kernel
//! from a background thread of its own (src/bin/switchboard.rs): what
//! keeps a waiting customer's memory below glibc's while a busy server
//! does not fault the same pages in again and again (docs/performance.md,
//! changes 29 and 55). The options are a symbol jemalloc reads before
//! `main`; a renamed prefix or a different allocator would drop them
//! without a word, so the test asks jemalloc and the kernel.

use std::time::Duration;

use crate::common::{eventually, start_capturing_log};

#[tokio::test]
async fn the_server_gives_freed_pages_back_after_a_second_from_a_thread_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    // `stats_print` makes jemalloc write its options and statistics to
    // stderr at exit; it is added to the compiled-in options, not instead.
    let (mut server, log) =
        start_capturing_log(dir.path(), &[("_RJEM_MALLOC_CONF", "stats_print:true")]);
    // The thread that gives pages back while nothing allocates, named by
    // jemalloc itself.
    let tasks = format!("/proc/{}/task", server.child.id());
    let tasks = tasks.as_str();
    eventually(
        Duration::from_secs(10),
        "jemalloc's background thread",
        move || async move {
            std::fs::read_dir(tasks)
                .ok()?
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .any(|name| name.trim() == "jemalloc_bg_thd")
                .then_some(())
        },
    )
    .await;
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
    for option in [
        "opt.background_thread: true ",
        "opt.dirty_decay_ms: 1000 ",
        "opt.muzzy_decay_ms: 0 ",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(option)),
            "{option}is not set:\n{}",
            lines
                .iter()
                .filter(|l| l.contains("decay") || l.contains("background"))
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
