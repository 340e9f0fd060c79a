//! The server binary: configuration, logging, signals. Everything else is
//! in the library.
use clap::Parser;
use switchboard::config::{Flags, Settings};
use switchboard::Application;
use tracing_subscriber::EnvFilter;

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
