//! The generator against a real server with tiny numbers, so it cannot rot.
//! Not a benchmark: it checks that every scenario runs and reports sane
//! fields, never how fast.
//!
//! Its own test binary, not a module of tests/main.rs: the idle scenario
//! measures this process's memory and CPU (the server runs in it), and
//! other tests running beside it in one process would move both.
use switchboard_loadtests::cli::{run_scenario, Scenario};
use switchboard_loadtests::relay;
use switchboard_loadtests::report::{
    file_limit, Report, ACTIX_RELAY, ACTIX_TEAM_RELAY, DURABLE_RELAY, TEAM_RELAY,
};
use switchboard_loadtests::scenarios::Protocol;

mod common;

use common::{args, start_actix_relay, start_server, REPS, TEAMS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_a_real_server_and_both_relays() {
    let dir = tempfile::tempdir().unwrap();
    let port = start_server(dir.path().join("data"));
    let sb = format!("ws://127.0.0.1:{port}/ws");
    let (relay_port, serve) = relay::bind(0).await.unwrap();
    tokio::spawn(serve);
    let rl = format!("ws://127.0.0.1:{relay_port}/");
    let actix_rl = format!("ws://127.0.0.1:{}/", start_actix_relay());
    let mut report = Report::new();

    let idle = run_scenario(&args(Scenario::Idle, sb.clone(), Protocol::Switchboard))
        .await
        .unwrap();
    assert_eq!(idle.counts["connected"], 20, "{:?}", idle.errors);
    assert_eq!(idle.counts["open_after_window"], 20, "{:?}", idle.errors);
    assert!(idle.figures.contains_key("server_kib_per_connection"));
    let server = idle.server.as_ref().expect("server usage");
    // The server here is this test's own process: the result must carry
    // its open-file limit, as read by the kernel's own accounting.
    let (soft, hard) = (server.open_file_limit_soft, server.open_file_limit_hard);
    assert!(soft.is_some() && soft <= hard, "{soft:?}/{hard:?}");
    assert!(idle.figures["server_kib_per_connection"] > 0.0);
    assert_eq!(idle.figures["heartbeat_secs"], 1.5, "from the welcome");
    assert_eq!(idle.figures["idle_window_secs"], 3.0, "whole heartbeats");
    report.add(idle);

    let idle_relay = run_scenario(&args(Scenario::Idle, rl.clone(), Protocol::Relay))
        .await
        .unwrap();
    assert_eq!(idle_relay.counts["connected"], 20);
    assert_eq!(
        idle_relay.counts["open_after_window"], 20,
        "echoes answered"
    );
    assert_eq!(
        idle_relay.figures["idle_window_secs"], 2.0,
        "no pings to align to"
    );
    report.add(idle_relay);

    let ja = run_scenario(&args(
        Scenario::JoinAlert,
        sb.clone(),
        Protocol::Switchboard,
    ))
    .await
    .unwrap();
    let alert = &ja.latency["join_to_alert"];
    assert!(alert.count > 0, "no alerts: {:?}", ja.errors);
    assert!(alert.p99_us > 0 && alert.p99_us >= alert.p50_us);
    // Every alert also carries when it reached the rep's socket, which is
    // no later than when the generator read it.
    let at_socket = &ja.latency["join_to_alert_socket"];
    assert_eq!(ja.counts["alerts_unstamped"], 0);
    assert_eq!(at_socket.count, alert.count);
    assert!(at_socket.p50_us <= alert.p50_us, "{at_socket:?} {alert:?}");
    // The generator's own load is reported beside the server's, so a tail
    // set by the generator can be told from the server's.
    let generator = ja.server.as_ref().and_then(|s| s.generator_cpu_cores);
    assert!(generator.is_some_and(|g| g > 0.0), "{generator:?}");
    assert!(ja.latency["generator_lag"].count > 0, "the lag probe ran");
    report.add(ja);

    let ja_relay = run_scenario(&args(Scenario::JoinAlert, rl.clone(), Protocol::Relay))
        .await
        .unwrap();
    assert!(ja_relay.latency["round_trip"].count > 0);
    assert_eq!(
        ja_relay.latency["round_trip_socket"].count,
        ja_relay.latency["round_trip"].count
    );
    assert!(ja_relay.latency["generator_lag"].count > 0);
    report.add(ja_relay);

    // The join's team baseline, on both relays: each join's frame reaches
    // every rep of its team (rep i is in team i mod TEAMS), stamped at the
    // first one's socket, and none goes missing.
    for (url, label) in [
        (rl.clone(), TEAM_RELAY),
        (actix_rl.clone(), ACTIX_TEAM_RELAY),
    ] {
        let mut team = args(Scenario::JoinAlert, url.clone(), Protocol::Relay);
        team.team_fanout = true;
        let mut team = run_scenario(&team).await.unwrap();
        assert_eq!(team.counts["errors"], 0, "{url}: {:?}", team.errors);
        let alert = &team.latency["join_to_alert"];
        assert!(alert.count > 0, "{url}: no alerts");
        assert_eq!(team.latency["join_to_alert_socket"].count, alert.count);
        assert_eq!(team.counts["alerts_missing"], 0, "{url}");
        assert_eq!(
            team.counts["alert_fanout_events"],
            team.counts["customers"] * (REPS / TEAMS) as u64,
            "{url}: every join to each rep of its team"
        );
        team.protocol = label.into();
        report.add(team);
    }

    let mut routing = args(Scenario::Routing, sb.clone(), Protocol::Switchboard);
    routing.connections = 4;
    let routing = run_scenario(&routing).await.unwrap();
    assert!(
        routing.counts["sessions_completed"] > 0,
        "{:?}",
        routing.errors
    );
    assert!(routing.latency["session_join_to_end"].p99_us > 0);
    assert!(routing.figures["store_writes_per_session"] >= 1.0);
    report.add(routing);

    // The relay variant routes whole sessions on both stacks too.
    for url in [rl.clone(), actix_rl.clone()] {
        let mut routing = args(Scenario::Routing, url.clone(), Protocol::Relay);
        routing.connections = 4;
        let mut routing = run_scenario(&routing).await.unwrap();
        assert!(
            routing.counts["sessions_completed"] > 0,
            "{url}: {:?}",
            routing.errors
        );
        assert_eq!(routing.counts["errors"], 0, "{url}: {:?}", routing.errors);
        assert!(routing.latency["session_join_to_end"].p99_us > 0);
        if url == actix_rl {
            routing.protocol = ACTIX_RELAY.into();
        }
        report.add(routing);
    }

    for (url, protocol) in [
        (sb, Protocol::Switchboard),
        (rl, Protocol::Relay),
        (actix_rl.clone(), Protocol::Relay),
    ] {
        let mut chat = args(Scenario::Chat, url.clone(), protocol);
        chat.connections = 4;
        let mut chat = run_scenario(&chat).await.unwrap();
        assert!(
            chat.counts["messages_delivered"] > 0,
            "{url}: {:?}",
            chat.errors
        );
        assert!(chat.latency["message_delivery"].p99_us > 0);
        if url == actix_rl {
            chat.protocol = ACTIX_RELAY.into();
        }
        report.add(chat);
    }

    // The durable baseline: the bare relay writing each frame it passes
    // on through Switchboard's store first, for chat and routing.
    let lines = dir.path().join("relay-lines");
    let store = switchboard::store::SledStore::open(
        &lines,
        1 << 20,
        std::sync::Arc::new(switchboard::metrics::StoreMetrics::unregistered()),
    )
    .unwrap();
    let (durable_port, serve) = relay::bind_durable(0, std::sync::Arc::new(store))
        .await
        .unwrap();
    tokio::spawn(serve);
    for (scenario, done) in [
        (Scenario::Chat, "messages_delivered"),
        (Scenario::Routing, "sessions_completed"),
    ] {
        let url = format!("ws://127.0.0.1:{durable_port}/");
        let mut durable = args(scenario, url, Protocol::Relay);
        durable.connections = 4;
        let mut durable = run_scenario(&durable).await.unwrap();
        assert!(
            durable.counts[done] > 0,
            "durable relay, {scenario:?}: {:?}",
            durable.errors
        );
        durable.protocol = DURABLE_RELAY.into();
        report.add(durable);
    }

    // The stack baseline holds idle connections like the bare relay.
    let mut idle_actix = run_scenario(&args(Scenario::Idle, actix_rl, Protocol::Relay))
        .await
        .unwrap();
    assert_eq!(
        idle_actix.counts["connected"], 20,
        "{:?}",
        idle_actix.errors
    );
    assert_eq!(idle_actix.counts["open_after_window"], 20);
    idle_actix.protocol = ACTIX_RELAY.into();
    report.add(idle_actix);

    report.check();
    assert!(!report.checks.is_empty());
    let out = dir.path().join("out");
    report.write(&out).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert!(
        json["switchboard"]["join_alert"]["latency"]["join_to_alert"]["p99_us"].as_u64() > Some(0)
    );
    assert!(json["relay_actix"]["chat"]["figures"]["messages_per_sec"].as_f64() > Some(0.0));
    assert!(json["relay_actix"]["routing"]["figures"]["sessions_per_sec"].as_f64() > Some(0.0));
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("## The stack alone"), "{summary}");
    assert!(
        summary.contains("## The join beside a relay that tells each team"),
        "{summary}"
    );
    assert!(
        summary.contains("## Beside a relay that writes each step"),
        "{summary}"
    );
    assert!(json["relay_durable"]["chat"]["figures"]["messages_per_sec"].as_f64() > Some(0.0));
    assert!(
        json["relay_team"]["join_alert"]["latency"]["join_to_alert_socket"]["p99_us"].as_u64()
            > Some(0)
    );
    assert!(
        json["relay_actix_team"]["join_alert"]["latency"]["join_to_alert_socket"]["p99_us"]
            .as_u64()
            > Some(0)
    );
    assert!(
        summary.contains(&format!("open-file limit {}", file_limit(soft, hard))),
        "{summary}"
    );
    let png = std::fs::read(out.join("latency.png")).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "latency.png is not a PNG"
    );
}
