//! `all`, the command behind the run of record, end to end with tiny
//! numbers: the real server binary, both relays and the sled baseline, each
//! scenario once, and the report it writes. Not a benchmark: it checks
//! that the orchestration works and that the report holds what the
//! performance report is built from.
use std::path::PathBuf;
use std::process::Command;

use crate::common::first_allowed_core;

/// The server binary beside this test's own build, built if missing (a
/// `cargo test -p switchboard-loadtests` alone does not build it).
fn server_binary() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_switchboard-loadtests"));
    let bin = exe.with_file_name("switchboard");
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "switchboard", "--bin", "switchboard"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cannot build the server: {status}");
    }
    assert!(bin.exists(), "{} not built", bin.display());
    bin
}

#[test]
fn all_runs_every_scenario_and_writes_the_report() {
    let out = tempfile::tempdir().unwrap();
    let core = first_allowed_core().to_string();
    let run = Command::new(env!("CARGO_BIN_EXE_switchboard-loadtests"))
        .arg("all")
        .arg("--server-bin")
        .arg(server_binary())
        .arg("--out")
        .arg(out.path())
        .args(["--server-core", &core, "--generator-core", &core])
        .args([
            "--idle-connections",
            "20",
            "--idle-procs",
            "2",
            "--idle-secs",
            "1",
        ])
        .args(["--join-rate", "20", "--join-secs", "1"])
        .args(["--reps", "4", "--teams", "2"])
        .args(["--routing-lanes", "4", "--routing-secs", "1"])
        .args(["--chat-pairs", "2", "--chat-secs", "1"])
        .args(["--sled-secs", "1"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the generator runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{}\n{stderr}", run.status);

    let dirs: Vec<PathBuf> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "one result directory: {dirs:?}");
    let text = std::fs::read_to_string(dirs[0].join("result.json")).unwrap();
    let result: serde_json::Value = serde_json::from_str(&text).unwrap();
    for scenario in ["idle", "join_alert", "routing", "chat"] {
        for side in ["switchboard", "relay", "relay_actix"] {
            assert!(
                result[side][scenario].is_object(),
                "no {side} {scenario} in the result:\n{stderr}"
            );
            let errors = &result[side][scenario]["errors"];
            assert_eq!(errors, &serde_json::json!([]), "{side} {scenario}");
        }
    }
    // The join's team baselines ran on both relays, beside the round trip.
    for side in ["relay_team", "relay_actix_team"] {
        let team = &result[side]["join_alert"];
        assert_eq!(team["errors"], serde_json::json!([]), "{side}:\n{stderr}");
        assert_eq!(team["counts"]["alerts_missing"], 0, "{side}");
        assert!(team["latency"]["join_to_alert_socket"]["count"].as_u64() > Some(0));
    }
    // The durable baseline ran beside the bare relay, for routing and chat.
    for (scenario, rate) in [
        ("routing", "sessions_per_sec"),
        ("chat", "messages_per_sec"),
    ] {
        let durable = &result["relay_durable"][scenario];
        assert_eq!(
            durable["errors"],
            serde_json::json!([]),
            "{scenario}: {stderr}"
        );
        assert!(durable["figures"][rate].as_f64() > Some(0.0), "{scenario}");
    }
    let idle = &result["switchboard"]["idle"]["counts"];
    assert_eq!(idle["connected"], 20);
    assert_eq!(
        idle["open_after_window"], 20,
        "every idle customer answered"
    );
    // Routing's floor is the sled rate measured in its own round.
    let sled = result["sled"]["raw_batched_writes_per_sec"].as_f64();
    assert!(sled > Some(0.0), "{}", result["sled"]);
    assert_eq!(
        result["switchboard"]["routing"]["figures"]["sled_raw_batched_writes_per_sec"].as_f64(),
        sled
    );
    let routing_floor = result["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["scenario"] == "routing" && c["baseline"].is_number())
        .expect("routing's check against sled");
    let writes = result["switchboard"]["routing"]["figures"]["store_writes_per_session"]
        .as_f64()
        .unwrap();
    let floor = routing_floor["baseline"].as_f64().unwrap();
    assert!(
        (floor - sled.unwrap() / writes).abs() < 1e-6 * floor,
        "{routing_floor}"
    );
    let summary = std::fs::read_to_string(dirs[0].join("summary.md")).unwrap();
    assert!(summary.contains("## Targets"), "{summary}");
    assert!(summary.contains("## sled baseline"), "{summary}");
    assert!(dirs[0].join("latency.png").exists());
}
