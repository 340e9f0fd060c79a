//! What the generator's tests share: a real server with the load-test
//! catalog, the relay on Switchboard's stack, and `run`'s flags.
#![allow(dead_code)] // each of the two test binaries uses its own share

use std::path::PathBuf;
use std::time::Duration;

use switchboard::app::Stopper;
use switchboard::Settings;
use switchboard_loadtests::cli::{RunArgs, Scenario};
use switchboard_loadtests::scenarios::{Arrivals, Protocol};
use switchboard_loadtests::{catalog, relay};

pub const TEAMS: usize = 2;
pub const REPS: usize = 4;
/// Not a divisor of the idle scenario's 2 s, so the window must grow to
/// two heartbeats (3 s) for the idle CPU to count whole ping rounds.
pub const HEARTBEAT_MS: u64 = 1_500;

/// Starts a Switchboard node with the load-test catalog in its own actix
/// system on another thread; returns its port.
pub fn start_server(dir: PathBuf) -> u16 {
    start_server_with(dir, |_| {}).0
}

/// [`start_server`] with some settings changed by `change`; also returns
/// what stops it.
pub fn start_server_with(
    dir: PathBuf,
    change: impl FnOnce(&mut Settings) + Send + 'static,
) -> (u16, Stopper) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let mut settings = catalog::settings(&dir, TEAMS, REPS);
            settings.server.workers = 2;
            settings.server.heartbeat_ms = HEARTBEAT_MS;
            change(&mut settings);
            let app = switchboard::Application::build(settings)
                .await
                .expect("server starts");
            tx.send((app.port(), app.stopper()))
                .expect("test waits for the port");
            let _ = app.run_until_stopped().await;
        });
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("server starts in time")
}

/// The first core this process may run on: a container's cpuset need not
/// include core 0.
pub fn first_allowed_core() -> usize {
    switchboard_loadtests::procstat::allowed_cores()
        .and_then(|cores| cores.first().copied())
        .expect("Cpus_allowed_list in /proc/self/status")
}

/// Starts the relay on Switchboard's stack (the stack baseline) in its own actix
/// system on another thread; returns its port.
pub fn start_actix_relay() -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let (port, server) = relay::actix_stack::bind(0).expect("relay binds");
            tx.send(port).expect("test waits for the port");
            server.stopped().await;
        });
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("relay starts in time")
}

pub fn args(scenario: Scenario, url: String, protocol: Protocol) -> RunArgs {
    RunArgs {
        scenario,
        servers: vec![url],
        server_pid: Some(std::process::id()),
        protocol,
        connections: 20,
        rate: 20.0,
        arrivals: Arrivals::Poisson,
        duration: 2,
        sources: "127.0.0.1,127.0.0.2".into(),
        reps: REPS,
        teams: TEAMS,
        procs: 1,
        balls: 1,
        message_bytes: 32,
        team_fanout: false,
        out: PathBuf::new(),
        child: false,
        offset: 0,
        exe: None,
    }
}
