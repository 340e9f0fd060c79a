//! The server binary: configuration, logging, signals, and three choices
//! for the whole process (the allocator, the threads' scheduling policy
//! and the size of its table of open files). Everything else is in the
//! library.
use clap::Parser;
use std::io::{BufWriter, IsTerminal};
use switchboard::config::{Flags, Settings};
use switchboard::Application;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// jemalloc instead of glibc's malloc. Every frame in and out allocates
/// (buffers, decoded requests, events), and glibc's malloc and free were
/// about a fifth of the server's instructions in join to alert; jemalloc's
/// thread caches took 11.5% off the instructions per customer and gave
/// routing about a tenth more sessions a second (docs/performance.md,
/// change 29). Only the server binary sets it: the library leaves the
/// choice to whoever links it, and the `jemalloc` feature (on by default)
/// can be turned off for allocation profiling (loadtests/dhat.sh).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main` (the `_rjem_` prefix is
/// tikv-jemalloc-sys's). Its defaults keep freed pages for ten seconds and
/// then only mark them reclaimable (MADV_FREE), which leaves them in the
/// resident set: 19,000 waiting customers cost 0.45 KiB each more than
/// with glibc (change 29). Returning every page the moment it empties
/// (both decays at zero) fixed that, but a busy server then gave back and
/// faulted in again the same pages all the time: an `madvise` and page
/// faults were 8% of a routed session's time (change 55). So a freed page
/// is kept for a second, for the next allocation to reuse, and then given
/// back by jemalloc's own background thread (`jemalloc_bg_thd`), which
/// also does so while the server is idle and no allocation would.
/// The variable `_RJEM_MALLOC_CONF` still overrides these at run time.
#[cfg(feature = "jemalloc")]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
static malloc_conf: Option<&'static u8> =
    Some(&b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0]);

/// Lines waiting for the log's writer thread before a thread that logs
/// waits for room: nothing is dropped, and a stalled stderr slows the
/// server rather than filling its memory.
const LOG_LINES_QUEUED: usize = 128 * 1024;

/// The log goes to stderr from a thread of its own, in batches: the
/// thread writes every line waiting, through a buffer, then flushes. At
/// the default level each routed session logs its start, acceptance and
/// end; written where they were made, each line was a `write` on the
/// thread serving sessions, and the log cost routing about an eighth of
/// its sessions a second (docs/performance.md, change 54). Colours only
/// on a terminal: a file or a journal gets plain lines. The guard writes
/// what is left when dropped, so every exit drops it first.
fn init_logging(settings: &Settings) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_LINES_QUEUED)
        .thread_name("log-writer")
        .finish(BufWriter::new(std::io::stderr()));
    let filter = EnvFilter::try_new(&settings.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    if settings.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    guard
}

/// Puts the calling thread under Linux's SCHED_BATCH policy, which every
/// thread it starts afterwards inherits (`server.batch_scheduling`).
/// Under the default policy a thread woken by another (the HTTP worker
/// handing a message to the rep and queue actors' thread, a flush waking
/// its writer) preempts the one that woke it; on a core they share that
/// is a switch for every hand-off, and each thread runs one message at a
/// time. Under SCHED_BATCH the woken thread waits for the waker to block
/// or use up its slice, and then finds several messages waiting: less CPU
/// a message, sometimes a little more latency (docs/performance.md,
/// changes 50 and 51; on unless configured off). Any process may choose
/// this policy for itself; no privilege is needed.
fn use_batch_scheduling() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that outlives the call, and
    // pid 0 names the calling thread.
    match unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// jemalloc starts its background threads before `main`, when it reads
/// its options, so they missed the scheduling policy `main` sets. Stopped
/// and started again from the main thread, they inherit it. Left off when
/// `_RJEM_MALLOC_CONF` turned them off. The error is jemalloc's `mallctl`
/// code.
#[cfg(feature = "jemalloc")]
fn restart_allocator_threads() -> Result<(), i32> {
    use std::ffi::c_void;
    use std::ptr::null_mut;
    let name = c"background_thread";
    let mut on = false;
    let mut len = std::mem::size_of::<bool>();
    // SAFETY: `background_thread` is a bool option of jemalloc's; the read
    // gets a pointer to a bool and its length, and each write a pointer to
    // a bool that outlives the call and its length.
    unsafe {
        let read = (&mut on as *mut bool).cast::<c_void>();
        match tikv_jemalloc_sys::mallctl(name.as_ptr(), read, &mut len, null_mut(), 0) {
            0 => {}
            code => return Err(code),
        }
        if !on {
            return Ok(());
        }
        for mut value in [false, true] {
            let write = (&mut value as *mut bool).cast::<c_void>();
            match tikv_jemalloc_sys::mallctl(name.as_ptr(), null_mut(), null_mut(), write, len) {
                0 => {}
                code => return Err(code),
            }
        }
    }
    Ok(())
}

fn main() {
    let settings = match Settings::load(Flags::parse()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchboard: {e}");
            std::process::exit(2);
        }
    };
    // Before the runtime, sled or actix start a thread (the log's writer
    // among them), so all inherit it.
    let batch = settings.server.batch_scheduling.then(use_batch_scheduling);
    let log = init_logging(&settings);
    match batch {
        Some(Ok(())) => {
            tracing::info!("threads scheduled as SCHED_BATCH");
            #[cfg(feature = "jemalloc")]
            if let Err(code) = restart_allocator_threads() {
                tracing::warn!("cannot restart jemalloc's background threads (error {code})");
            }
        }
        Some(Err(e)) => tracing::warn!("cannot use SCHED_BATCH, keeping the default policy: {e}"),
        None => {}
    }
    // Before the server opens its first connection: growing the table
    // later stops the accepting worker for a grace period each time it
    // doubles.
    match switchboard::fd_table::reserve() {
        Ok(n) => tracing::info!("table of open files holds {n}"),
        Err(e) => tracing::warn!("cannot grow the table of open files in advance: {e}"),
    }
    let code = actix_web::rt::System::new().block_on(serve(settings));
    // `exit` runs no destructors: the log's last lines are written first.
    drop(log);
    std::process::exit(code);
}

/// Runs the server until it is stopped; the process's exit status.
async fn serve(settings: Settings) -> i32 {
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            eprintln!("switchboard: {e}");
            return 1;
        }
    };
    // The handlers go in before the port is printed: a SIGTERM sent as
    // soon as a script has read the port must stop the server in order,
    // not kill it with the signal's default action.
    let signals = Signals::install();
    // Tests and scripts read the real port from this line.
    println!("switchboard listening on port {}", app.port());
    let stopper = app.stopper();
    let stopping = actix_web::rt::spawn(async move {
        signals.wait().await;
        stopper.stop().await;
    });
    if let Err(e) = app.run_until_stopped().await {
        tracing::error!("server error: {e}");
        return 1;
    }
    // The server only stops through the stopper (actix's own signal
    // handling is off): let it finish the ordered stop, through the final
    // flush, before the process exits (with status 0).
    let _ = stopping.await;
    0
}

/// SIGTERM and SIGINT, either of which stops the server in order.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).expect("can install a SIGTERM handler"),
            int: signal(SignalKind::interrupt()).expect("can install a SIGINT handler"),
        }
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM"),
            _ = self.int.recv() => tracing::info!("SIGINT"),
        }
    }
}
