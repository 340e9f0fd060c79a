//! The OpenAPI document (docs/openapi.json, served at /api/openapi.json)
//! matches the code: every route is documented, every documented operation
//! is routed, and schemathesis finds every response conforming (status
//! codes documented, bodies matching their schemas, no server errors).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::common::*;
use serde_json::Value;

const DOC: &str = include_str!("../docs/openapi.json");

fn doc() -> Value {
    serde_json::from_str(DOC).expect("docs/openapi.json is JSON")
}

/// (METHOD, path) of every documented operation.
fn documented() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc()["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// (METHOD, path) of every route registered in src/http/{api,admin,ops}.rs,
/// read from the source: each `web::<method>()` and the nearest path
/// literal before it, plus the three routes of each `entries::<..>(cfg, ..)`.
fn routed_in_source() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    for file in ["api.rs", "admin.rs", "ops.rs"] {
        let src = std::fs::read_to_string(root.join(file)).unwrap();
        for method in ["get", "post", "put", "delete"] {
            let needle = format!("web::{method}()");
            let mut from = 0;
            while let Some(at) = src[from..].find(&needle) {
                let at = from + at;
                from = at + needle.len();
                let before = &src[..at];
                let Some(end) = before.rfind('"') else {
                    continue;
                };
                let Some(start) = before[..end].rfind('"') else {
                    continue;
                };
                let path = &before[start + 1..end];
                if path.starts_with('/') && !path.contains("{path}") {
                    out.insert((method.to_uppercase(), path.to_string()));
                }
            }
        }
        let needle = "(cfg, \"";
        let mut from = 0;
        while let Some(at) = src[from..].find(needle) {
            let start = from + at + needle.len();
            let end = start + src[start..].find('"').unwrap();
            from = end;
            if !src[..start].trim_end_matches(needle).ends_with('>') {
                continue;
            }
            let kind = &src[start..end];
            out.insert(("GET".into(), format!("/api/admin/{kind}")));
            out.insert(("PUT".into(), format!("/api/admin/{kind}/{{id}}")));
            out.insert(("DELETE".into(), format!("/api/admin/{kind}/{{id}}")));
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_nothing_else() {
    let routed = routed_in_source();
    let documented = documented();
    assert!(
        routed.len() > 20,
        "the source scan found too little: {routed:?}"
    );
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty(),
        "routes missing from docs/openapi.json: {missing:?}"
    );
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
}

/// QueueItem and SessionDetails are flat maps that carry every field of
/// SessionSummary (`src/protocol/flat.rs`); OpenAPI 3.0 cannot extend a
/// closed schema, so each lists them again, and a field added to the
/// summary must be added to both. The schemathesis run below has no
/// session to show, so it would not notice.
#[test]
fn queue_items_and_session_details_carry_every_summary_field() {
    let doc = doc();
    let schemas = &doc["components"]["schemas"];
    let names = |schema: &str, part: &str| -> BTreeSet<String> {
        match &schemas[schema][part] {
            Value::Object(props) => props.keys().cloned().collect(),
            Value::Array(required) => required
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            other => panic!("{schema}.{part}: {other}"),
        }
    };
    for part in ["properties", "required"] {
        let summary = names("SessionSummary", part);
        assert!(!summary.is_empty());
        for flat in ["QueueItem", "SessionDetails"] {
            let listed = names(flat, part);
            let missing: Vec<_> = summary.difference(&listed).collect();
            assert!(missing.is_empty(), "{flat}.{part} lacks {missing:?}");
            assert_eq!(
                schemas[flat]["additionalProperties"],
                Value::Bool(false),
                "{flat} refuses fields it does not list"
            );
        }
    }
}

#[test]
fn the_error_codes_are_the_servers() {
    let doc = doc();
    let codes: BTreeSet<&str> = doc["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let server: BTreeSet<&str> = switchboard::error::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(
        codes, server,
        "the Error schema's code enum differs from ErrorCode::ALL"
    );
}

/// The schemathesis command (the console script, or the module through
/// python3 where the script is not on PATH).
fn schemathesis() -> Command {
    let on_path = Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        Command::new("schemathesis")
    } else {
        let mut c = Command::new("python3");
        c.args([
            "-c",
            "import sys; from schemathesis.cli import schemathesis; sys.argv[0] = 'schemathesis'; sys.exit(schemathesis())",
        ]);
        c
    }
}

fn run_schemathesis(port: u16, token: &str, filter: &[&str], report_dir: &Path) {
    let mut cmd = schemathesis();
    cmd.arg("run")
        .arg(format!("http://127.0.0.1:{port}/api/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "20"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--seed", "1"])
        // One worker: with two threads, hypothesis parses source with
        // Python's `ast` from both at once, and CPython 3.11 can fail that
        // ("AST constructor recursion depth mismatch"), which schemathesis
        // reports as an error of the run: a flaky failure that says nothing
        // about the server. The run takes about 8 s either way.
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .arg("--no-color")
        .args(["--report", "junit"])
        .arg("--report-dir")
        .arg(report_dir)
        .args(filter)
        // Its example database (.hypothesis/) and state go to the temporary
        // directory, not the repository: every run tests the same cases
        // (seed 1) as a fresh clone in CI does.
        .current_dir(report_dir);
    let out = cmd.output().expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found non-conforming responses:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("passed") && !stdout.contains(" 0 generated"),
        "schemathesis tested nothing:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_every_response_conforming() {
    let status = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ensure-test-tools.sh"))
        .status()
        .expect("bash runs");
    assert!(status.success(), "scripts/ensure-test-tools.sh failed");

    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let port = server.port;
    let http = reqwest::Client::new();

    // The served document is the file.
    let served = http
        .get(format!("http://127.0.0.1:{port}/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.text().await.unwrap(), DOC);

    // Every documented operation reaches a handler (the fallback for
    // unknown routes answers "no route for ...").
    let token = rest_login(port, "admin").await;
    for (method, path) in documented() {
        if path == "/api/logout" {
            continue;
        }
        let url = format!(
            "http://127.0.0.1:{port}{}",
            path.replace("{queue}", "team:nosuch")
                .replace(['{', '}'], "")
        );
        let req = match method.as_str() {
            "GET" => http.get(&url),
            "POST" => http.post(&url).json(&serde_json::json!({})),
            "PUT" => http.put(&url).json(&serde_json::json!({})),
            "DELETE" => http.delete(&url),
            other => panic!("{other}"),
        };
        let body = req
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !body.contains("no route for"),
            "{method} {path} is not routed: {body}"
        );
    }

    // Logging out revokes the token, and writes to the admin's own rep
    // could take away the admin permission: those run in a second pass, so
    // the first covers everything else with a working admin token.
    let reports = tempfile::tempdir().unwrap();
    let risky = "^(logout|adminPutRep|adminDeleteRep)$";
    run_schemathesis(
        port,
        &token,
        &["--exclude-operation-id-regex", risky],
        reports.path(),
    );
    let token = rest_login(port, "admin").await;
    run_schemathesis(
        port,
        &token,
        &["--include-operation-id-regex", risky],
        reports.path(),
    );
}
