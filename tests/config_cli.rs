//! Configuration at start: a bad value stops the server with a message
//! naming the key and what is allowed, before anything is opened.

use std::process::{Command, Output};

use crate::common::config_path;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.env("SWITCHBOARD_CONFIG", config_path())
        .env("SWITCHBOARD_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_DATA_DIR", dir.path())
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // A valid configuration would start serving: the bad ones must exit on
    // their own, so bound the wait.
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary runs");
    let id = child.id();
    let guard = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(30));
        let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
    });
    let out = child.wait_with_output().expect("binary exits");
    drop(guard);
    out
}

fn assert_refused(out: &Output, key: &str, allowed: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started anyway: {stderr}");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(key),
        "message does not name {key}: {stderr}"
    );
    assert!(
        stderr.contains(allowed),
        "message does not say what is allowed ({allowed}): {stderr}"
    );
}

#[test]
fn bad_log_format_in_the_environment_names_log_format() {
    let out = run(&[], &[("SWITCHBOARD_LOG_FORMAT", "xml")]);
    assert_refused(&out, "log.format", "'text' or 'json'");
}

#[test]
fn bad_listen_flag_names_server_listen() {
    let out = run(&["--listen", "nonsense"], &[]);
    assert_refused(&out, "server.listen", "IP address and port");
}

#[test]
fn bad_value_in_the_file_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[server]\nheartbeat_ms = 1\n").unwrap();
    let out = run(&[], &[("SWITCHBOARD_CONFIG", file.to_str().unwrap())]);
    assert_refused(&out, "server.heartbeat_ms", "at least 10");
}

#[test]
fn unknown_key_in_the_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "[server]\nlisten_port = 8080\n").unwrap();
    let out = run(&[], &[("SWITCHBOARD_CONFIG", file.to_str().unwrap())]);
    assert_refused(&out, "listen_port", "unknown field");
}

#[test]
fn flags_beat_the_environment() {
    // The environment's value is good, the flag's bad: the flag wins.
    let out = run(
        &["--log-format", "xml"],
        &[("SWITCHBOARD_LOG_FORMAT", "json")],
    );
    assert_refused(&out, "log.format", "'text' or 'json'");
}

#[test]
fn a_pong_timeout_too_short_to_answer_is_refused() {
    let out = run(&["--pong-timeout-ms", "5"], &[]);
    assert_refused(&out, "server.pong_timeout_ms", "at least 10");
}

#[test]
fn a_store_cache_below_64_kib_is_refused() {
    let out = run(&[], &[("SWITCHBOARD_STORE_CACHE_BYTES", "4096")]);
    assert_refused(&out, "store.cache_bytes", "at least 65536");
}

#[test]
fn batch_scheduling_takes_only_true_or_false() {
    let out = run(&[], &[("SWITCHBOARD_BATCH_SCHEDULING", "maybe")]);
    assert_refused(&out, "--batch-scheduling", "maybe");
}
