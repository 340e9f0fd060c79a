//! switchboard-cli, the terminal client, against a real server: what the
//! README's tour types.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::*;

/// Runs the CLI with `lines` on its standard input (one command a line,
/// with a pause before each so replies and events interleave as typed).
fn cli(port: u16, args: &[&str], lines: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .arg("--url")
        .arg(format!("ws://127.0.0.1:{port}/ws"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
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
