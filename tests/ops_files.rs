//! The files SREs deploy with: the Grafana dashboard queries only metrics
//! the server exposes (and covers every one), and the Dockerfile has the
//! shape the operations issue asks for. (Docker itself does not run here.)

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::*;
use serde_json::Value;
use switchboard::domain::ids::ClientKind;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `switchboard_*` name in the dashboard's queries.
fn queried_metrics(dash: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for panel in dash["panels"].as_array().expect("panels") {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(at) = rest.find("switchboard_") {
                let tail = &rest[at..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                names.insert(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
    }
    names
}

#[actix_web::test]
async fn the_dashboard_queries_what_the_server_exposes() {
    let text =
        std::fs::read_to_string(root().join("cluster/grafana/switchboard-dashboard.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).expect("the dashboard is valid JSON");
    assert_eq!(dash["uid"], "switchboard");
    let mut ids = BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id");
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(p["gridPos"]["w"].as_u64().is_some());
    }
    let queried = queried_metrics(&dash);

    // Some traffic, so histograms have observations.
    let app = spawn_app().await;
    let mut alice = app.rep("alice").await;
    let mut customer = app.customer(ClientKind::Desktop).await;
    let view = start_issue(&mut customer, "vpn", "Dana").await;
    alert_for(&mut alice, &view.session).await;
    accept(&alice, &view.session).await.expect("alice accepts");
    let exposition = reqwest::get(app.http("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exposed: BTreeSet<String> = exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    let unknown: Vec<_> = queried.difference(&exposed).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics the server does not expose: {unknown:?}"
    );

    // And every metric family has a panel.
    let families: BTreeSet<String> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let unshown: Vec<_> = families
        .iter()
        .filter(|f| {
            !queried.iter().any(|q| {
                q == *f
                    || q.strip_prefix(f.as_str())
                        .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
            })
        })
        .collect();
    assert!(
        unshown.is_empty(),
        "metrics without a dashboard panel: {unshown:?}"
    );
}

#[test]
fn the_dockerfile_has_the_required_shape() {
    let docker = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = docker
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    // Multi-stage: a Rust builder, a slim Debian runtime.
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].starts_with("FROM rust:") && froms[0].ends_with("AS builder"));
    assert!(froms[1].starts_with("FROM debian:") && froms[1].contains("-slim"));
    assert!(docker.contains("cargo build --release"));
    assert!(docker.contains("ca-certificates"));
    // A non-root user, data on a volume, the port, the settings.
    let user = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(!user.contains("root") && !user.contains(" 0"), "{user}");
    assert!(has("VOLUME") && docker.contains("/data"));
    assert!(has("EXPOSE 8080"));
    for env in [
        "SWITCHBOARD_LISTEN=0.0.0.0:8080",
        "SWITCHBOARD_DATA_DIR=/data",
        "SWITCHBOARD_CONFIG=/etc/switchboard/default.toml",
    ] {
        assert!(docker.contains(env), "missing {env}");
    }
    // The health check probes /healthz with a tool the image installs.
    assert!(has("HEALTHCHECK"));
    assert!(docker.contains("/healthz"));
    assert!(docker.contains("apt-get install") && docker.contains("curl"));
    // Files copied from the build context exist.
    for l in lines
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = l.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            if *src != "." {
                assert!(
                    root().join(src).exists(),
                    "COPY source {src} does not exist"
                );
            }
        }
    }
    // The build context keeps what the build needs (docs/openapi.json is
    // compiled in) and drops target/.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(ignored.contains(&"target/"));
    for needed in [
        "src",
        "docs",
        "config",
        "Cargo.toml",
        "Cargo.lock",
        "loadtests",
    ] {
        assert!(
            !ignored.iter().any(|i| i.trim_end_matches('/') == needed),
            "{needed} is needed by the build"
        );
    }
}
