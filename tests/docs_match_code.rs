//! The docs name everything a client or operator can meet: every request
//! type, error code and event kind in docs/protocol.md, every error code in
//! docs/api.md, every config key in docs/configuration.md with its
//! default, which config/default.toml writes out. No server needed.
use switchboard::config::Settings;
use switchboard::error::ErrorCode;
use switchboard::protocol::{Event, RequestBody};

fn doc(name: &str) -> String {
    let path = format!("{}/docs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The names from `names` that `text` does not mention as `name`.
fn missing<'a>(text: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    names
        .into_iter()
        .filter(|n| !text.contains(&format!("`{n}`")))
        .collect()
}

#[test]
fn protocol_md_names_every_request_type() {
    let m = missing(&doc("protocol.md"), RequestBody::TYPES.iter().copied());
    assert!(m.is_empty(), "docs/protocol.md does not mention: {m:?}");
}

#[test]
fn protocol_md_and_api_md_name_every_error_code() {
    for name in ["protocol.md", "api.md"] {
        let m = missing(&doc(name), ErrorCode::ALL.iter().map(|c| c.as_str()));
        assert!(m.is_empty(), "docs/{name} does not mention: {m:?}");
    }
}

#[test]
fn protocol_md_names_every_event_kind() {
    let m = missing(&doc("protocol.md"), Event::KINDS.iter().copied());
    assert!(m.is_empty(), "docs/protocol.md does not mention: {m:?}");
}

#[test]
fn event_kinds_list_is_complete() {
    // serde's "unknown variant" error lists every variant of the enum, so a
    // new Event variant makes this fail until Event::KINDS names it.
    let err = serde_json::from_str::<Event>(r#"{"kind":"no_such_kind"}"#)
        .unwrap_err()
        .to_string();
    let (_, expected) = err
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("unexpected serde message: {err}"));
    // `a`, `b`, `c`: the names are every other piece between backticks.
    let mut variants: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let mut listed = Event::KINDS.to_vec();
    listed.sort_unstable();
    variants.sort_unstable();
    assert_eq!(listed, variants, "Event::KINDS differs from the Event enum");
}

/// `section.key` and its value for every setting a table holds, `[seed]`
/// aside, in `settings` as TOML.
fn flatten(settings: &toml::Table) -> Vec<(String, toml::Value)> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(t) => walk(&path, t, out),
                v => out.push((path, v.clone())),
            }
        }
    }
    let mut table = settings.clone();
    table.remove("seed");
    let mut out = Vec::new();
    walk("", &table, &mut out);
    out
}

/// Every value of the default settings, by `section.key`.
fn default_values() -> Vec<(String, toml::Value)> {
    let text = toml::to_string(&Settings::default()).expect("settings serialise");
    flatten(&text.parse().expect("settings parse back"))
}

fn config_keys() -> Vec<String> {
    default_values().into_iter().map(|(k, _)| k).collect()
}

#[test]
fn configuration_md_names_every_config_key() {
    let keys = config_keys();
    assert!(keys.contains(&"server.listen".to_string()), "{keys:?}");
    let m = missing(&doc("configuration.md"), keys.iter().map(String::as_str));
    assert!(
        m.is_empty(),
        "docs/configuration.md does not mention: {m:?}"
    );
}

/// The default column of docs/configuration.md's table gives each key
/// the value `Settings::default()` has, as TOML writes it.
#[test]
fn configuration_md_gives_every_key_its_default() {
    let text = doc("configuration.md");
    let mut wrong = Vec::new();
    for (key, value) in default_values() {
        let row = format!("| `{key}` |");
        let Some(line) = text.lines().find(|l| l.starts_with(&row)) else {
            wrong.push(format!("{key}: no row in the table"));
            continue;
        };
        // | key | type | default | ...
        let cell = line.split('|').nth(3).unwrap_or("").trim();
        if !cell.starts_with(&format!("`{value}`")) {
            wrong.push(format!("{key}: the table says {cell}, the code {value}"));
        }
    }
    assert!(wrong.is_empty(), "docs/configuration.md: {wrong:?}");
}

/// config/default.toml writes the defaults out (docs/configuration.md),
/// except the fallback queue it names for the demo: every setting it
/// holds outside `[rules]` and `[seed]` has its default value.
#[test]
fn the_shipped_config_writes_the_defaults_out() {
    let text = std::fs::read_to_string(crate::common::config_path()).expect("config/default.toml");
    let mut shipped: toml::Table = text.parse().expect("config/default.toml parses");
    shipped.remove("rules");
    let defaults: std::collections::HashMap<_, _> = default_values().into_iter().collect();
    let mut differ = Vec::new();
    for (key, value) in flatten(&shipped) {
        if key == "supervisor.fallback_queue" {
            continue;
        }
        match defaults.get(&key) {
            Some(d) if *d == value => {}
            Some(d) => differ.push(format!("{key} = {value}, the default {d}")),
            None => differ.push(format!("{key}: not a setting")),
        }
    }
    assert!(differ.is_empty(), "config/default.toml: {differ:?}");
}

#[test]
fn protocol_md_counts_the_request_types() {
    let n = RequestBody::TYPES.len();
    let text = doc("protocol.md");
    assert!(
        text.contains(&format!("one of the {n} request types")),
        "docs/protocol.md should say there are {n} request types"
    );
}

#[test]
fn configuration_md_names_every_flag_and_variable() {
    use clap::CommandFactory;
    let text = doc("configuration.md");
    let mut m = Vec::new();
    for arg in switchboard::config::Flags::command().get_arguments() {
        if let Some(long) = arg.get_long() {
            if !matches!(long, "help" | "version") && !text.contains(&format!("`--{long}")) {
                m.push(format!("--{long}"));
            }
        }
        if let Some(env) = arg.get_env() {
            let env = env.to_string_lossy();
            if !text.contains(&format!("`{env}")) {
                m.push(env.into_owned());
            }
        }
    }
    assert!(
        m.is_empty(),
        "docs/configuration.md does not mention: {m:?}"
    );
}

#[test]
fn supervisor_md_states_the_bounce_limit() {
    use switchboard::domain::rules::QueueRules;
    let text = doc("supervisor.md");
    let limit = format!(
        "`QueueRules::MAX_RULE_MOVES` = **{}**",
        QueueRules::MAX_RULE_MOVES
    );
    assert!(
        text.contains(&limit),
        "docs/supervisor.md should say {limit}"
    );
}
