//! The server binary: configuration, logging, signals. Everything else is
//! in the library.
use clap::Parser;
use switchboard::config::{Flags, Settings};
use switchboard::Application;
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
/// tikv-jemalloc-sys's). By default jemalloc keeps freed pages for ten
/// seconds and then only marks them reclaimable (MADV_FREE), which leaves
/// them in the resident set: with it, 19,000 waiting customers cost 0.45
/// KiB each more than with glibc. With both decays at zero, freed pages go
/// back to the kernel at once and they cost 0.45 KiB less. The variable
/// `_RJEM_MALLOC_CONF` still overrides these at run time.
#[cfg(feature = "jemalloc")]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
static malloc_conf: Option<&'static u8> = Some(&b"dirty_decay_ms:0,muzzy_decay_ms:0\0"[0]);

fn init_logging(settings: &Settings) {
    let filter = EnvFilter::try_new(&settings.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if settings.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[actix_web::main]
async fn main() {
    let settings = match Settings::load(Flags::parse()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchboard: {e}");
            std::process::exit(2);
        }
    };
    init_logging(&settings);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            eprintln!("switchboard: {e}");
            std::process::exit(1);
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
        std::process::exit(1);
    }
    // The server only stops through the stopper (actix's own signal
    // handling is off): let it finish the ordered stop, through the final
    // flush, before the process exits (with status 0).
    let _ = stopping.await;
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
