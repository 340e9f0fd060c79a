//! The generator refuses what it cannot do, in plain words, and quickly:
//! flags no run can honour (before anything connects), a chat set-up the
//! server turns down, a server that speaks the other protocol, and one
//! that goes away in the middle of a run.
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use switchboard_loadtests::cli::{run_scenario, Scenario};
use switchboard_loadtests::scenarios::{scrape, Protocol};

use crate::common::{args, first_allowed_core, start_server, start_server_with, REPS};

fn generator() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchboard-loadtests"));
    c.env("RUST_BACKTRACE", "0");
    c
}

/// `all`, with the server and the generator on a core this test may use
/// (both on one: these runs end before anything is measured).
fn all() -> Command {
    let core = first_allowed_core().to_string();
    let mut c = generator();
    c.args(["all", "--server-core", &core, "--generator-core", &core]);
    c
}

/// Runs the generator as `cmd` says and returns its exit code and stderr.
fn refused(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.output().expect("the generator runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn run_refuses_flags_it_cannot_honour_before_connecting() {
    // Something listens where the generator is sent: had a check come
    // after the first connection, this listener would have one waiting.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let server = format!("ws://{}/ws", listener.local_addr().unwrap());
    let out = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--scenario", "join-alert", "--rate=-5"],
            "--rate must be joins per second, above 0; it is -5",
        ),
        (
            &["--scenario", "join-alert", "--rate", "inf"],
            "--rate must be joins per second, above 0; it is inf",
        ),
        (
            &["--scenario", "join-alert", "--rate", "NaN"],
            "--rate must be joins per second, above 0; it is NaN",
        ),
        (
            &["--scenario", "join-alert", "--reps", "0"],
            "--reps (reps to alert) must be at least 1; it is 0",
        ),
        (
            &["--scenario", "idle", "--connections", "0"],
            "--connections (connections to hold) must be at least 1; it is 0",
        ),
        (
            &["--scenario", "idle", "--rate=-1"],
            "--rate must be connections per second, 0 for no limit; it is -1",
        ),
        (
            &["--scenario", "idle", "--procs", "0"],
            "--procs (generator processes) must be at least 1; it is 0",
        ),
        (
            &["--scenario", "routing", "--duration", "0"],
            "--duration (seconds measured) must be at least 1; it is 0",
        ),
        (
            &["--scenario", "routing", "--teams", "0"],
            "--teams (teams in the server's catalog) must be at least 1; it is 0",
        ),
        (
            &["--scenario", "chat", "--balls", "0"],
            "--balls (messages in flight per session) must be at least 1; it is 0",
        ),
        (
            &["--scenario", "routing", "--sources", "127.0.0.1,10.0.0.1"],
            "--sources 10.0.0.1: not a loopback address (127.0.0.0/8 or ::1)",
        ),
        (
            &["--scenario", "routing", "--sources", "127.0.0.300"],
            "--sources 127.0.0.300: not an IP address",
        ),
        (
            &["--scenario", "join-alert", "--team-fanout"],
            "--team-fanout is the relay's team baseline: add --protocol relay",
        ),
        (
            &["--scenario", "chat", "--protocol", "relay", "--team-fanout"],
            "--team-fanout is a baseline of --scenario join-alert only",
        ),
        (
            &[
                "--scenario",
                "join-alert",
                "--protocol",
                "relay",
                "--team-fanout",
                "--reps",
                "5",
                "--teams",
                "6",
            ],
            "--teams (6) must be at most --reps (5) with --team-fanout: every team needs a rep",
        ),
        (
            &["--scenario", "chat", "--message-bytes", "4097"],
            "--message-bytes must be at most 4096, the longest chat line Switchboard takes",
        ),
    ];
    for (flags, message) in cases {
        let dir = out.path().join("result");
        let (code, stderr) = refused(
            generator()
                .args(["run", "--server", &server, "--out"])
                .arg(&dir)
                .args(*flags),
        );
        assert_eq!(code, Some(1), "{flags:?}: {stderr}");
        assert!(
            stderr.contains(&format!("Error: {message}")),
            "{flags:?}: {stderr}"
        );
        assert!(!dir.exists(), "{flags:?} wrote a result");
    }
    // The same checks pass what they should: the URL is the first thing a
    // run that got past them touches.
    let (code, stderr) = refused(generator().args([
        "run",
        "--scenario",
        "idle",
        "--server",
        "http://127.0.0.1:1/ws",
    ]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("--server http://127.0.0.1:1/ws: give a ws:// URL"),
        "{stderr}"
    );
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a refused run connected to the server"
    );
}

#[test]
fn all_names_its_own_flags_and_refuses_before_seeding() {
    // A server binary that does not exist: the flags are checked first, so
    // each refusal is about the flag, not the missing binary.
    let cases: &[(&[&str], &str)] = &[
        (
            &["--join-rate", "0"],
            "--join-rate must be joins per second, above 0; it is 0",
        ),
        (
            &["--chat-pairs", "0"],
            "--chat-pairs (chat sessions) must be at least 1; it is 0",
        ),
        (
            &["--routing-secs", "0"],
            "--routing-secs (seconds measured) must be at least 1; it is 0",
        ),
        (
            &["--idle-procs", "0"],
            "--idle-procs (generator processes) must be at least 1; it is 0",
        ),
        (
            &["--repeat", "0"],
            "--repeat (runs of each scenario) must be at least 1; it is 0",
        ),
        (
            &["--sources", "192.168.1.10"],
            "--sources 192.168.1.10: not a loopback address",
        ),
        (
            &["--teams", "20", "--reps", "10"],
            "--teams (20) must be at most --reps (10): every team needs a rep",
        ),
    ];
    for (flags, message) in cases {
        let (code, stderr) = refused(all().args(["--server-bin", "/nonexistent"]).args(*flags));
        assert_eq!(code, Some(1), "{flags:?}: {stderr}");
        assert!(
            stderr.contains(&format!("Error: {message}")),
            "{flags:?}: {stderr}"
        );
    }
    // The server's core is checked first, whatever the generator's.
    let (code, stderr) = refused(generator().args([
        "all",
        "--server-bin",
        "/nonexistent",
        "--server-core",
        "4096",
    ]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("Error: --server-core 4096 is not a core this machine lets"),
        "{stderr}"
    );
    // A flag only a skipped scenario uses is not held against the run.
    let (code, stderr) = refused(all().args([
        "--server-bin",
        "/nonexistent",
        "--only",
        "idle",
        "--chat-pairs",
        "0",
        "--teams",
        "20",
        "--reps",
        "10",
    ]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("/nonexistent not found"),
        "the flags passed, and the missing binary stopped it: {stderr}"
    );
}

#[test]
fn the_helper_commands_refuse_bad_flags_and_name_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("catalog.toml");
    let (code, stderr) = refused(
        generator()
            .args(["catalog", "--teams", "0", "--out"])
            .arg(&out),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("Error: --teams (teams in the catalog) must be at least 1; it is 0"),
        "{stderr}"
    );
    assert!(!out.exists(), "a refused catalog was written");
    let nowhere = dir.path().join("missing").join("catalog.toml");
    let (code, stderr) = refused(generator().args(["catalog", "--out"]).arg(&nowhere));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot write the catalog to {}",
            nowhere.display()
        )),
        "{stderr}"
    );
    for (flag, what) in [
        ("--seconds", "seconds each measurement runs"),
        ("--batch", "writes per flush"),
        ("--writers", "concurrent store writers"),
    ] {
        let (code, stderr) = refused(generator().args(["sled-bench", flag, "0"]));
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "Error: {flag} ({what}) must be at least 1; it is 0"
            )),
            "{stderr}"
        );
    }
    // A port already taken, on either stack.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for stack in ["tungstenite", "actix"] {
        let (code, stderr) =
            refused(generator().args(["relay", "--port", &port, "--stack", stack]));
        assert_eq!(code, Some(1), "{stack}: {stderr}");
        assert!(
            stderr.contains(&format!("the relay cannot listen on 127.0.0.1:{port}: ")),
            "{stack}: {stderr}"
        );
    }
    // The durable relay is the bare relay's, and needs a directory sled
    // can open: a file where the directory should be is named.
    let lines = dir.path().join("lines");
    let (code, stderr) = refused(
        generator()
            .args(["relay", "--stack", "actix", "--durable"])
            .arg(&lines),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("Error: --durable is for the bare relay: leave out --stack actix"),
        "{stderr}"
    );
    assert!(!lines.exists(), "a refused relay made its store");
    std::fs::write(&out, "not a directory").unwrap();
    let (code, stderr) = refused(generator().args(["relay", "--durable"]).arg(&out));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("Error: --durable {}: ", out.display())),
        "{stderr}"
    );
}

#[test]
fn all_says_so_when_the_server_ends_before_it_listens() {
    // `false` ends at once, as a server that cannot start does: the run
    // stops with that, not a five-minute wait for a port.
    let (code, stderr) = refused(all().args([
        "--server-bin",
        "/bin/false",
        "--only",
        "idle",
        "--teams",
        "1",
        "--reps",
        "1",
    ]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "/bin/false ended (exit status: 1) before it printed \"switchboard listening on port <port>\""
        ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_fails_fast_when_the_server_refuses_its_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _) = start_server_with(dir.path().join("data"), |s| {
        s.supervisor.max_sessions_per_rep = 2;
    });
    let mut chat = args(
        Scenario::Chat,
        format!("ws://127.0.0.1:{port}/ws"),
        Protocol::Switchboard,
    );
    // Two teams, one rep each, two sessions a rep: five is one too many.
    chat.connections = 5;
    let outcome = tokio::time::timeout(Duration::from_secs(60), run_scenario(&chat))
        .await
        .expect("the run ends without waiting out its set-up limit");
    let error = format!(
        "{:#}",
        outcome.expect_err("a chat run of fewer pairs than asked")
    );
    assert!(
        error.starts_with("chat set-up: 4 of 5 sessions were started and accepted"),
        "{error}"
    );
    assert!(error.contains("too_many_sessions"), "{error}");
    assert!(
        error.contains("fewer --connections or more --teams"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_names_a_server_that_went_away_and_counts_each_error() {
    let dir = tempfile::tempdir().unwrap();
    let (port, stopper) = start_server_with(dir.path().join("data"), |_| {});
    let mut routing = args(
        Scenario::Routing,
        format!("ws://127.0.0.1:{port}/ws"),
        Protocol::Switchboard,
    );
    routing.connections = 4;
    routing.duration = 4;
    // The server stops (telling every client, then closing) once sessions
    // are under way, while the run still has seconds to go.
    let http = format!("127.0.0.1:{port}");
    tokio::spawn(async move {
        loop {
            let entered = scrape(&http, "switchboard_sessions_entered_total").await;
            if entered.is_some_and(|n| n >= 20.0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stopper.stop().await;
    });
    let result = run_scenario(&routing).await.expect("the run reports");
    // A lane the stop caught mid-session names the closed connection, not
    // a session that took too long; one caught starting its next session
    // names it too (which of the two it catches is the machine's timing:
    // on a loaded one every lane was once starting).
    assert!(
        result.errors.iter().any(|e| {
            e.starts_with("the server closed the connection before the session ended")
                || e.starts_with("start_session: the connection is closed")
        }),
        "{:?}",
        result.errors
    );
    assert!(
        !result
            .errors
            .iter()
            .any(|e| e.contains("did not end in time")),
        "{:?}",
        result.errors
    );
    // Later attempts are refused again and again: one line, counted.
    let refused = result
        .errors
        .iter()
        .filter(|e| e.starts_with("connect: "))
        .collect::<Vec<_>>();
    assert!(
        refused.iter().any(|e| e.ends_with(" times)")),
        "{:?}",
        result.errors
    );
    let distinct: std::collections::HashSet<_> = result.errors.iter().collect();
    assert_eq!(distinct.len(), result.errors.len(), "{:?}", result.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rep_missing_from_the_servers_catalog_is_named_with_the_catalog_to_use() {
    let dir = tempfile::tempdir().unwrap();
    let port = start_server(dir.path().join("data"));
    let mut join = args(
        Scenario::JoinAlert,
        format!("ws://127.0.0.1:{port}/ws"),
        Protocol::Switchboard,
    );
    // The catalog has reps r0 to r3.
    join.reps = REPS + 1;
    let error = format!("{:#}", run_scenario(&join).await.expect_err("no rep r4"));
    assert!(
        error.starts_with("rep 4 login: server error bad_credentials"),
        "{error}"
    );
    assert!(
        error.contains("`switchboard-loadtests catalog` writes, with at least 5 reps"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_run_against_switchboard_says_which_server_it_found() {
    let dir = tempfile::tempdir().unwrap();
    // The server refuses a connection that sends no hello after 200 ms:
    // that refusal is the first frame the relay client sees.
    let (port, _) = start_server_with(dir.path().join("data"), |s| {
        s.server.hello_timeout_ms = 200;
    });
    let url = format!("ws://127.0.0.1:{port}/ws");
    let error = run_scenario(&args(Scenario::Routing, url.clone(), Protocol::Relay))
        .await
        .expect_err("Switchboard is not the relay");
    let error = format!("{error:#}");
    assert!(
        error.contains(&format!("{url} sent a "))
            && error.contains("where the relay sends its 8-byte id"),
        "{error}"
    );
    assert!(
        error.contains("Is it a Switchboard server? Then leave out --protocol relay"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchboard_run_against_the_relay_says_which_server_it_found() {
    let (port, serve) = switchboard_loadtests::relay::bind(0).await.unwrap();
    tokio::spawn(serve);
    // The relay never answers a hello: the client gives up after its
    // request timeout (10 s).
    let error = run_scenario(&args(
        Scenario::Idle,
        format!("ws://127.0.0.1:{port}/"),
        Protocol::Switchboard,
    ))
    .await
    .expect_err("the relay is not Switchboard");
    let error = format!("{error:#}");
    assert!(
        error.contains(
            "the server did not answer the hello. Is it the bare relay? Then add --protocol relay"
        ),
        "{error}"
    );
}
