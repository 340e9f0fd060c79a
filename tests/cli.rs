//! switchboard-cli, the terminal client, against a real server: what the
//! README's tour types.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::*;

/// The CLI against the server on `port`, its stdin and stdout piped.
fn cli_command(port: u16, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchboard-cli"));
    c.arg("--url")
        .arg(format!("ws://127.0.0.1:{port}/ws"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    c
}

/// Runs the CLI with `lines` on its standard input (one command a line,
/// with a pause before each so replies and events interleave as typed).
fn cli(port: u16, args: &[&str], lines: &[&str]) -> String {
    let mut child = cli_command(port, args)
        .stderr(Stdio::piped())
        .spawn()
        .expect("cli starts");
    let mut stdin = child.stdin.take().expect("stdin");
    for line in lines {
        std::thread::sleep(std::time::Duration::from_millis(300));
        writeln!(stdin, "{line}").expect("cli reads");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("cli exits");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn a_rep_and_a_customer_take_the_tour() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let port = server.port;

    let customer = std::thread::spawn(move || {
        cli(
            port,
            &["customer", "issue", "vpn", "Dana", "--company", "Acme"],
            &["chat my vpn is down", "quit"],
        )
    });
    let customer_out = customer.join().unwrap();
    assert!(
        customer_out.contains("\"state\":\"waiting\""),
        "{customer_out}"
    );
    assert!(
        customer_out.contains("\"queue_name\":\"Network Support\""),
        "{customer_out}"
    );
    assert!(
        customer_out.contains("\"kind\":\"chat_sent\""),
        "{customer_out}"
    );

    let rep_out = cli(
        port,
        &["rep", "alice", "alice-demo"],
        &[
            "queues",
            "view team:network",
            "next",
            "status away",
            "status sideways",
            "fly",
            "quit",
        ],
    );
    assert!(rep_out.contains("\"queue\":\"team:network\""), "{rep_out}");
    assert!(rep_out.contains("\"customer_name\":\"Dana\""), "{rep_out}");
    assert!(
        rep_out.contains("\"owner\":\"alice\""),
        "next accepted the session: {rep_out}"
    );
    assert!(rep_out.contains("\"status\":\"away\""), "{rep_out}");
    assert!(
        rep_out.contains("'status' needs available, busy or away"),
        "{rep_out}"
    );
    assert!(rep_out.contains("unknown command 'fly'"), "{rep_out}");

    let bad = cli(port, &["rep", "alice", "wrong"], &[]);
    assert!(bad.contains("bad_credentials"), "{bad}");
}

/// A console running as a child, its output gathered line by line.
struct Console {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: LogLines,
}

impl Console {
    fn start(port: u16, args: &[&str]) -> Console {
        let mut child = cli_command(port, args)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cli starts");
        let stdin = child.stdin.take().expect("stdin");
        let out = capture_lines(child.stdout.take().expect("stdout"));
        Console { child, stdin, out }
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("cli reads");
    }

    /// Waits for a line containing `what` (after `from` lines); its index.
    fn wait_for(&self, what: &str, from: usize) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let lines = self.out.lock().unwrap().clone();
            if let Some(i) = lines.iter().skip(from).position(|l| l.contains(what)) {
                return from + i;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no '{what}' from the console:\n{}",
                lines.join("\n")
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Asserts that output line `at` contains `what`.
    fn line_says(&self, at: usize, what: &str) {
        let lines = self.out.lock().unwrap();
        assert!(
            lines[at].contains(what),
            "line {at} lacks {what}: {lines:?}"
        );
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Alice's console on a server with its data in `dir`, which then stops:
/// the console, the server's port, and the line where the console said
/// it is reconnecting.
fn alice_loses_her_server(dir: &std::path::Path) -> (Console, u16, usize) {
    let mut server = ServerProcess::start(dir, &[]);
    let port = server.port;
    let alice = Console::start(port, &["rep", "alice", "alice-demo"]);
    let at = alice.wait_for("logged in", 0);
    assert!(server.sigterm().success());
    let at = alice.wait_for("connection closed: reconnecting", at);
    (alice, port, at)
}

/// A server started on `port` (where an earlier one stopped) with its
/// data in `dir`.
fn restarted_on(port: u16, dir: &std::path::Path) -> ServerProcess {
    let listen = format!("127.0.0.1:{port}");
    ServerProcess::start(dir, &[("SWITCHBOARD_LISTEN", &listen)])
}

/// A server restarted on its port: the console reconnects by itself,
/// logs in again with its token and goes on taking commands.
#[test]
fn a_console_reconnects_to_a_restarted_server() {
    let dir = tempfile::tempdir().unwrap();
    let (mut alice, port, at) = alice_loses_her_server(dir.path());
    let _again = restarted_on(port, dir.path());
    let at = alice.wait_for("reconnected", at);
    alice.line_says(at, "\"kind\":\"logged_in\"");
    alice.say("queues");
    alice.wait_for("team:network", at + 1);
}

/// A server that refuses the console's way back in (here its token, which
/// a server with a fresh store never issued) is not asked again: the
/// console says why and exits.
#[test]
fn a_console_the_server_will_not_take_back_says_why_and_exits() {
    let first = tempfile::tempdir().unwrap();
    let (mut alice, port, at) = alice_loses_her_server(first.path());
    let fresh = tempfile::tempdir().unwrap();
    let _other = restarted_on(port, fresh.path());
    let at = alice.wait_for("cannot reconnect", at);
    alice.line_says(at, "invalid_token");
    let status = alice.child.wait().expect("the console exits");
    assert!(status.success(), "{status}");
}

/// A customer's console serves one session: once it has ended, a server
/// going away is the end of the console too, not a reason to reconnect.
#[test]
fn a_customer_console_whose_session_ended_does_not_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let mut dana = Console::start(server.port, &["customer", "issue", "vpn", "Dana"]);
    let at = dana.wait_for("commands:", 0);
    dana.say("end");
    let at = dana.wait_for("\"kind\":\"session_ended\"", at);
    assert!(server.sigterm().success());
    dana.wait_for("connection closed; the session had ended", at);
    let status = dana.child.wait().expect("the console exits");
    assert!(status.success(), "{status}");
    let out = dana.out.lock().unwrap().join("\n");
    assert!(!out.contains("reconnecting"), "{out}");
}
