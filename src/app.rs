//! Building and running one Switchboard node.
//!
//! [`Application::build`] does the start-up sequence, logging each step:
//! open the store, load (or seed) the catalog, rebuild every actor from the
//! store, bind the listener (port 0 picks a free one: tests read the real
//! port back). [`Application::shutdown`] is the ordered stop, driven by one
//! cancel signal: tell clients to go, stop accepting, drain, flush.
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use actix_http::HttpService;
use actix_service::{fn_factory, fn_service, map_config, IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::AppConfig;
use actix_web::{web, App};
use tokio_util::sync::CancellationToken;

use crate::actors::supervisor::{self, Supervisor};
use crate::actors::Hub;
use crate::admin;
use crate::config::Settings;
use crate::http::server::{self, ServerHandle};
use crate::metrics::Metrics;
use crate::store::{SharedStore, SledStore};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the store: {0}")]
    Store(String),
    #[error("cannot load the catalog: {0}")]
    Catalog(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

pub struct Application {
    port: u16,
    handle: ServerHandle,
    hub: Arc<Hub>,
}

/// How long a new connection has to send its request's head (actix-web's
/// default).
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection closed after a response gets to close its side
/// before the socket is dropped (actix-web's default).
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

impl Application {
    /// Must run inside an actix system (`#[actix_web::main]`,
    /// `#[actix_web::test]`): the actors live on its arbiter.
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        let metrics = Arc::new(Metrics::new());
        std::fs::create_dir_all(&settings.store.data_dir).map_err(|e| {
            StartError::Store(format!("{}: {e}", settings.store.data_dir.display()))
        })?;
        let store: SharedStore = Arc::new(
            SledStore::open(
                &settings.store.data_dir,
                settings.store.cache_bytes,
                metrics.store.clone(),
            )
            .map_err(|e| StartError::Store(e.to_string()))?,
        );
        tracing::info!(
            dir = %settings.store.data_dir.display(),
            backend = store.backend(),
            cache_bytes = settings.store.cache_bytes,
            "store open"
        );

        if admin::seed_if_empty(store.as_ref(), &settings.seed)
            .await
            .map_err(|e| StartError::Catalog(e.to_string()))?
        {
            tracing::info!("empty store: catalog seeded from the configuration");
        }
        let catalog = admin::load_catalog(store.as_ref())
            .await
            .map_err(|e| StartError::Catalog(e.to_string()))?;
        tracing::info!(
            reps = catalog.reps.len(),
            teams = catalog.teams.len(),
            issue_types = catalog.issue_types.len(),
            "catalog loaded"
        );

        let hub = Arc::new(Hub::new(
            store,
            metrics.clone(),
            settings.server.clone(),
            settings.supervisor.clone(),
            settings.rules.clone(),
            catalog,
            CancellationToken::new(),
        ));
        admin::load_rules(&hub)
            .await
            .map_err(|e| StartError::Catalog(e.to_string()))?;
        admin::check_rule_targets(&hub).map_err(|e| StartError::Catalog(e.message))?;
        let rebuilt = supervisor::rebuild(&hub)
            .await
            .map_err(|e| StartError::Catalog(e.to_string()))?;
        tracing::info!(
            waiting = rebuilt.waiting,
            active = rebuilt.active,
            keys_released = rebuilt.keys_released,
            "sessions restored"
        );
        let supervisor = Supervisor::new(hub.clone()).start();
        hub.directory.set_supervisor(supervisor);

        let bind_error = |source| StartError::Bind {
            addr: settings.server.listen.clone(),
            source,
        };
        let listener = TcpListener::bind(&settings.server.listen).map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        let port = local.port();
        let handle = http_server(listener, local, settings.server.workers, hub.clone())
            .map_err(bind_error)?;
        metrics.up.set(1);
        tracing::info!(port, "listening");
        Ok(Application { port, handle, hub })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    /// A handle that stops the server in order; see [`Stopper::stop`].
    pub fn stopper(&self) -> Stopper {
        Stopper {
            hub: self.hub.clone(),
            handle: self.handle.clone(),
        }
    }

    /// Serves until stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.handle.stopped().await;
        Ok(())
    }
}

/// The HTTP server on `listener`: actix-web's app on actix-http, with
/// an upgrade service, which takes a WebSocket's socket from actix-http
/// once the handshake is answered (src/http/ws.rs, docs/performance.md,
/// change 53), served by workers that accept their own connections
/// (src/http/server.rs, change 58), which says what `workers` means.
fn http_server(
    listener: TcpListener,
    local: std::net::SocketAddr,
    workers: usize,
    hub: Arc<Hub>,
) -> std::io::Result<ServerHandle> {
    let data = web::Data::new(hub.clone());
    let json_cfg = web::JsonConfig::default()
        .limit(64 * 1024)
        .error_handler(|e, _| crate::http::json_error(e));
    let path_cfg = web::PathConfig::default().error_handler(|e, _| crate::http::json_error(e));
    let query_cfg = web::QueryConfig::default().error_handler(|e, _| crate::http::json_error(e));
    let app = move || {
        App::new()
            .app_data(data.clone())
            .app_data(json_cfg.clone())
            .app_data(path_cfg.clone())
            .app_data(query_cfg.clone())
            .configure(crate::http::routes)
    };
    server::start(listener, workers, move |graceful: server::Graceful| {
        let hub = hub.clone();
        let app = app()
            .into_factory()
            .map_err(|e: actix_web::Error| e.error_response());
        HttpService::build()
            // Keep-alive connections close at once when the server
            // stops, not when their keep-alive runs out.
            .graceful_shutdown_signal(move || graceful.signal())
            // actix-web's defaults, which actix-http's builder does not
            // share.
            .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
            .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
            // Nagle's algorithm off on every accepted socket. With it on
            // (actix-http's default), a small frame written while the
            // client has not yet acknowledged the last one waits for
            // that acknowledgement, and a client that has nothing to
            // send delays it by up to 40 ms (Linux's delayed ACK): a
            // rep's alert, or the customer's "accepted" and "ended",
            // came 20 to 40 ms late in every routed session
            // (docs/performance.md, change 52). Frames are already
            // gathered into one write per wake-up (connection::socket),
            // so the kernel has nothing left to coalesce.
            .tcp_nodelay(true)
            .local_addr(local)
            .upgrade(fn_factory(move || {
                let hub = hub.clone();
                async move {
                    Ok::<_, ()>(fn_service(move |(req, framed)| {
                        crate::http::ws::serve(hub.clone(), req, framed)
                    }))
                }
            }))
            // Nothing in the routes reads the app's configuration (host
            // name, address): `ConnectionInfo` prefers the request's own
            // `Host`.
            .finish(map_config(app, |_| AppConfig::default()))
            .tcp()
    })
}

#[derive(Clone)]
pub struct Stopper {
    hub: Arc<Hub>,
    handle: ServerHandle,
}

impl Stopper {
    /// The ordered shutdown: every connection is told to reconnect and
    /// closed, the listener stops, in-flight requests finish, and the store
    /// is flushed. Every acknowledged write was already durable; the flush
    /// is belt and braces.
    pub async fn stop(&self) {
        tracing::info!("shutting down: telling clients to reconnect");
        self.hub.metrics.up.set(0);
        self.hub.shutdown.cancel();
        // Give connection loops a moment to send their goodbye frames.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.handle.stop().await;
        if let Err(e) = self.hub.store.flush().await {
            tracing::error!(error = %e, "final flush failed");
        }
        tracing::info!("stopped");
    }
}
