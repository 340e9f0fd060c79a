//! The HTTP server's workers: each accepts its own connections and serves
//! them on the thread that accepted them; one worker is the actors' thread.
//!
//! actix-web's `HttpServer` (actix-server) accepts every connection on a
//! thread of its own and hands it to a worker: a context switch for each
//! new connection, which a routed session pays once (docs/performance.md,
//! change 58). Here every worker thread takes connections from the shared
//! listening socket itself and serves each with the same actix-http
//! service actix-server would have given it.
//!
//! What actix-server did besides, this does too: a failed `accept` other
//! than a connection the client already dropped (running out of files, as
//! the idle scenario does at the process's limit) pauses that worker's
//! accepting for [`ACCEPT_ERROR_BACKOFF`] rather than spinning; and
//! [`ServerHandle::stop`] stops in order: no new connections, keep-alive
//! connections told to close, in-flight ones given [`SHUTDOWN_GRACE`] to
//! finish, then the workers stopped with whatever is left.
use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::rc::Rc;
use std::time::Duration;

use actix_rt::{Arbiter, ArbiterHandle};
use actix_service::{Service, ServiceFactory};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long in-flight requests get to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a worker waits before accepting again after `accept` failed
/// (actix-server's figure).
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(500);

/// Stops the server; clones stop the same server.
#[derive(Clone)]
pub struct ServerHandle {
    /// Cancelled to stop accepting.
    accepting: CancellationToken,
    /// Cancelled to tell keep-alive connections to close at once.
    graceful: CancellationToken,
    /// Every connection's task, to wait for at shutdown.
    connections: TaskTracker,
    workers: Vec<ArbiterHandle>,
    /// Cancelled once the workers are stopped.
    stopped: CancellationToken,
}

impl ServerHandle {
    /// Stops accepting, lets in-flight connections finish within
    /// [`SHUTDOWN_GRACE`], then stops the workers (which drops whatever
    /// connection is still open). Idempotent.
    pub async fn stop(&self) {
        self.accepting.cancel();
        self.graceful.cancel();
        self.connections.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.connections.len(),
                "connections still open after the shutdown grace: closing them"
            );
        }
        for worker in &self.workers {
            worker.stop();
        }
        self.stopped.cancel();
    }

    /// A future that ends once the server has stopped.
    pub fn stopped(&self) -> impl Future<Output = ()> + 'static {
        self.stopped.clone().cancelled_owned()
    }
}

/// Resolves when keep-alive connections should close: the signal
/// actix-http's `graceful_shutdown_signal` takes, one per connection.
#[derive(Clone)]
pub struct Graceful(CancellationToken);

impl Graceful {
    pub fn signal(&self) -> impl Future<Output = ()> + 'static {
        self.0.clone().cancelled_owned()
    }
}

/// Starts serving `listener` with the service `make` builds, on
/// `workers` threads: 0 is one per core this process may run on (its CPU
/// affinity, so `taskset -c 0` makes it one).
///
/// With one worker, connections are served on the calling arbiter: in
/// the server, the actors' own thread (src/app.rs). A node with one core
/// then runs its HTTP, WebSocket and actor work on one thread, and a
/// message between a connection and a rep's or queue's actor never wakes
/// another thread (docs/performance.md, change 58). With more, each is a
/// thread of its own, started here, and the actors' thread serves none.
pub fn start<F, S>(listener: TcpListener, workers: usize, make: F) -> io::Result<ServerHandle>
where
    F: Fn(Graceful) -> S + Send + Clone + 'static,
    S: ServiceFactory<tokio::net::TcpStream, Config = ()> + 'static,
    S::Service: 'static,
{
    let workers = match workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    listener.set_nonblocking(true)?;
    let mut handle = ServerHandle {
        accepting: CancellationToken::new(),
        graceful: CancellationToken::new(),
        connections: TaskTracker::new(),
        workers: Vec::new(),
        stopped: CancellationToken::new(),
    };
    let worker = |listener| Worker {
        listener,
        make: make.clone(),
        graceful: Graceful(handle.graceful.clone()),
        accepting: handle.accepting.clone(),
        connections: handle.connections.clone(),
    };
    if workers == 1 {
        tracing::info!("serving connections on the actors' thread (one worker)");
        actix_rt::spawn(worker(listener).accept_loop());
        return Ok(handle);
    }
    tracing::info!(workers, "serving connections on worker threads");
    let mut threads = Vec::with_capacity(workers);
    for _ in 0..workers {
        let worker = worker(listener.try_clone()?);
        let thread = Arbiter::new();
        // The loop holds the worker's service, which stays on its thread
        // (it is not `Send`): the loop is started there rather than sent.
        thread.spawn_fn(move || {
            actix_rt::spawn(worker.accept_loop());
        });
        threads.push(thread.handle());
    }
    handle.workers = threads;
    Ok(handle)
}

/// What one worker needs to accept and serve connections.
struct Worker<F> {
    listener: TcpListener,
    make: F,
    graceful: Graceful,
    accepting: CancellationToken,
    connections: TaskTracker,
}

impl<F> Worker<F> {
    /// Accepts until stopped, each connection a task of this thread.
    async fn accept_loop<S>(self)
    where
        F: Fn(Graceful) -> S,
        S: ServiceFactory<tokio::net::TcpStream, Config = ()>,
        S::Service: 'static,
    {
        let Worker {
            listener,
            make,
            graceful,
            accepting,
            connections,
        } = self;
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return tracing::error!(error = %e, "a worker cannot use the listener"),
        };
        let service = match make(graceful).new_service(()).await {
            Ok(s) => Rc::new(s),
            Err(_) => return tracing::error!("a worker cannot build its HTTP service"),
        };
        loop {
            let accepted = tokio::select! {
                _ = accepting.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    let service = service.clone();
                    actix_rt::spawn(connections.track_future(async move {
                        // The dispatcher's errors are the client's (a bad
                        // request head, a dropped socket): actix-http has
                        // answered or logged them.
                        let _ = service.call(stream).await;
                    }));
                }
                Err(e) if client_gone(&e) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot accept a connection; accepting again in 500 ms");
                    tokio::select! {
                        _ = accepting.cancelled() => return,
                        _ = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                    }
                }
            }
        }
    }
}

/// A connection that went away between the kernel's accepting it and our
/// taking it: nothing to pause for.
fn client_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
