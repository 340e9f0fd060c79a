//! Typed configuration, in layers: built-in defaults, then the TOML file,
//! then `SWITCHBOARD_*` environment variables, then command-line flags.
//! [`Settings::validate`] runs at start; a bad value stops the server with a
//! message naming the key. docs/configuration.md lists every key.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::domain::catalog::Permissions;
use std::collections::BTreeMap;

use crate::domain::ids::QueueId;
use crate::domain::rules::QueueRules;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key '{key}' is invalid: {message}")]
    Invalid { key: &'static str, message: String },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub log: LogSettings,
    pub supervisor: SupervisorSettings,
    /// Waiting-session rules: the site default and per team queue. The
    /// admin API can override a team's rules at run time.
    pub rules: RulesSettings,
    /// The catalog written on first start, when the store has no teams or
    /// reps yet.
    pub seed: Seed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorSettings {
    /// A rep whose every console is gone this long loses their sessions to
    /// the fallback order, in ms.
    pub rep_grace_ms: u64,
    /// A customer gone this long abandons their session, in ms.
    pub customer_grace_ms: u64,
    /// How often waiting-session rules and routing run, in ms.
    pub rule_tick_ms: u64,
    /// How long a rep has to take an automatic-routing offer, in ms.
    pub offer_timeout_ms: u64,
    /// The last queue in the lost-rep fallback order.
    pub fallback_queue: Option<QueueId>,
    /// Concurrent sessions per rep when neither the rep nor their team
    /// sets a maximum.
    pub max_sessions_per_rep: u32,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        SupervisorSettings {
            rep_grace_ms: 30_000,
            customer_grace_ms: 60_000,
            rule_tick_ms: 1_000,
            offer_timeout_ms: 15_000,
            fallback_queue: None,
            max_sessions_per_rep: 5,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesSettings {
    /// Rules of every team queue without its own.
    pub default: QueueRules,
    /// team id -> that team queue's rules.
    pub teams: BTreeMap<String, QueueRules>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address for HTTP and WebSocket. Port 0 picks a free port.
    pub listen: String,
    /// The base URL customers reach the server at (portal links).
    pub public_url: String,
    /// Threads that serve connections (0: one per core this process may
    /// run on). One is the actors' own thread (src/http/server.rs).
    pub workers: usize,
    /// Largest WebSocket frame read, in bytes.
    pub max_frame_bytes: usize,
    /// Frames queued for one connection before it counts as a slow
    /// consumer and is closed.
    pub outbound_queue: usize,
    /// Recent events kept per rep or customer for replay on reconnect.
    pub replay_events: usize,
    /// Chat lines one session may hold. Lines are kept for good and a
    /// `chat_history` answers all of a session's in one frame, so without
    /// a bound one customer could grow the store and that frame at will.
    pub max_chat_lines: u64,
    /// Interval of WebSocket pings, in milliseconds.
    pub heartbeat_ms: u64,
    /// A ping unanswered (no pong, no frame) this long closes the
    /// connection, in ms.
    pub pong_timeout_ms: u64,
    /// How long a client has to send `hello` after connecting, in ms.
    pub hello_timeout_ms: u64,
    /// Run the server's threads under Linux's SCHED_BATCH policy: a thread
    /// woken by another does not preempt it, so each runs its work in
    /// longer stretches, less CPU for a little latency. Set by the server
    /// binary before any thread starts.
    pub batch_scheduling: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// Where sled keeps its files.
    pub data_dir: PathBuf,
    /// The most memory sled's page cache may hold, in bytes. The actors
    /// hold every live session's state, so the cache needs only the pages
    /// being written; sled's own default (1 GiB) kept a second copy of every
    /// waiting customer's record (docs/performance.md, change 49).
    pub cache_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` (human-readable) or `json`.
    pub format: String,
    /// A tracing filter, such as `info` or `switchboard=debug`.
    pub level: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Seed {
    pub teams: Vec<SeedTeam>,
    pub reps: Vec<SeedRep>,
    pub issue_types: Vec<SeedIssueType>,
    pub portals: Vec<SeedNamed>,
    pub support_buttons: Vec<SeedTarget>,
    pub help_links: Vec<SeedTarget>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedTeam {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRep {
    pub id: String,
    pub username: String,
    pub display_name: String,
    /// Plain text here; only its argon2 hash is stored.
    pub password: String,
    #[serde(default)]
    pub teams: Vec<String>,
    #[serde(default)]
    pub permissions: Permissions,
    #[serde(default)]
    pub public: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedIssueType {
    pub id: String,
    pub name: String,
    pub team: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedNamed {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedTarget {
    pub id: String,
    pub name: String,
    pub queue: QueueId,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            workers: 0,
            max_frame_bytes: 64 * 1024,
            outbound_queue: 1024,
            replay_events: 1024,
            max_chat_lines: 10_000,
            // A ping and its pong cost 17 to 31 us of server CPU (mostly the
            // kernel's TCP path), the whole idle cost of a connection: every
            // 25 s (as Centrifugo and Socket.IO) keeps it near 1.3 us/s. How
            // soon a dead connection is noticed is the pong timeout's: 10 to
            // 35 s after it went quiet (10 s after the next ping), where a
            // live client answers within a round trip. See
            // docs/performance-rounds.md, round 13.
            heartbeat_ms: 25_000,
            pong_timeout_ms: 10_000,
            hello_timeout_ms: 10_000,
            // On by default since the thirtieth round: in five pairs of
            // whole-benchmark runs on the server's one core it routed 10
            // to 28% more sessions a second and took 6 to 25% off a chat
            // line's CPU; the join's 2 ms p99 held in the run of record
            // with it on. The alert's median came a little later in most
            // earlier pairs, a tenth of a millisecond at most
            // (docs/performance.md, change 51).
            batch_scheduling: true,
        }
    }
}

impl StoreSettings {
    /// `store.cache_bytes` unless configured: smaller than 19,000 waiting
    /// customers' records (docs/performance.md, change 49).
    pub const DEFAULT_CACHE_BYTES: u64 = 8 * 1024 * 1024;
    /// The least `store.cache_bytes` may be.
    pub const MIN_CACHE_BYTES: u64 = 64 * 1024;
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            data_dir: PathBuf::from("./data"),
            cache_bytes: Self::DEFAULT_CACHE_BYTES,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// Command-line flags; each also reads a `SWITCHBOARD_*` variable. A flag
/// beats its variable, which beats the file.
#[derive(Debug, Parser, Default)]
#[command(
    name = "switchboard",
    version,
    about = "Switchboard support-session server"
)]
pub struct Flags {
    /// TOML configuration file.
    #[arg(
        long,
        env = "SWITCHBOARD_CONFIG",
        default_value = "config/default.toml"
    )]
    pub config: PathBuf,
    /// server.listen: address for HTTP and WebSocket.
    #[arg(long, env = "SWITCHBOARD_LISTEN")]
    pub listen: Option<String>,
    /// server.public_url: base URL for portal links.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// server.workers: threads that serve connections (0 = one per core).
    #[arg(long, env = "SWITCHBOARD_WORKERS")]
    pub workers: Option<usize>,
    /// server.heartbeat_ms: WebSocket ping interval.
    #[arg(long, env = "SWITCHBOARD_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
    /// server.pong_timeout_ms: close a connection whose ping is unanswered this long.
    #[arg(long, env = "SWITCHBOARD_PONG_TIMEOUT_MS")]
    pub pong_timeout_ms: Option<u64>,
    /// server.batch_scheduling: run the server's threads under SCHED_BATCH (true or false).
    #[arg(long, env = "SWITCHBOARD_BATCH_SCHEDULING", value_name = "BOOL")]
    pub batch_scheduling: Option<bool>,
    /// store.data_dir: where sled keeps its files.
    #[arg(long, env = "SWITCHBOARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// store.cache_bytes: the most memory sled's page cache may hold.
    #[arg(long, env = "SWITCHBOARD_STORE_CACHE_BYTES")]
    pub store_cache_bytes: Option<u64>,
    /// log.format: text or json.
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// log.level: a tracing filter such as info or switchboard=debug.
    #[arg(long, env = "SWITCHBOARD_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// supervisor.rep_grace_ms: how long a lost rep's sessions wait.
    #[arg(long, env = "SWITCHBOARD_REP_GRACE_MS")]
    pub rep_grace_ms: Option<u64>,
    /// supervisor.customer_grace_ms: how long a lost customer's session waits.
    #[arg(long, env = "SWITCHBOARD_CUSTOMER_GRACE_MS")]
    pub customer_grace_ms: Option<u64>,
    /// supervisor.rule_tick_ms: how often rules and routing run.
    #[arg(long, env = "SWITCHBOARD_RULE_TICK_MS")]
    pub rule_tick_ms: Option<u64>,
}

impl Settings {
    /// Reads a file layer (a missing default file means built-in defaults).
    pub fn from_file(path: &Path, must_exist: bool) -> Result<Settings, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(Settings::default())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.into(),
                    source,
                })
            }
        };
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// All layers: file, environment and flags.
    pub fn load(flags: Flags) -> Result<Settings, ConfigError> {
        let explicit = std::env::var_os("SWITCHBOARD_CONFIG").is_some()
            || std::env::args().any(|a| a == "--config" || a.starts_with("--config="));
        let mut s = Settings::from_file(&flags.config, explicit)?;
        s.apply(flags);
        s.validate()?;
        Ok(s)
    }

    pub fn apply(&mut self, f: Flags) {
        if let Some(v) = f.listen {
            self.server.listen = v;
        }
        if let Some(v) = f.public_url {
            self.server.public_url = v;
        }
        if let Some(v) = f.workers {
            self.server.workers = v;
        }
        if let Some(v) = f.heartbeat_ms {
            self.server.heartbeat_ms = v;
        }
        if let Some(v) = f.pong_timeout_ms {
            self.server.pong_timeout_ms = v;
        }
        if let Some(v) = f.batch_scheduling {
            self.server.batch_scheduling = v;
        }
        if let Some(v) = f.data_dir {
            self.store.data_dir = v;
        }
        if let Some(v) = f.store_cache_bytes {
            self.store.cache_bytes = v;
        }
        if let Some(v) = f.log_format {
            self.log.format = v;
        }
        if let Some(v) = f.log_level {
            self.log.level = v;
        }
        if let Some(v) = f.rep_grace_ms {
            self.supervisor.rep_grace_ms = v;
        }
        if let Some(v) = f.customer_grace_ms {
            self.supervisor.customer_grace_ms = v;
        }
        if let Some(v) = f.rule_tick_ms {
            self.supervisor.rule_tick_ms = v;
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_string(),
            })
        };
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return bad(
                "server.listen",
                "must be an IP address and port, such as 127.0.0.1:8080",
            );
        }
        if !(self.server.public_url.starts_with("http://")
            || self.server.public_url.starts_with("https://"))
        {
            return bad("server.public_url", "must start with http:// or https://");
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.server.max_frame_bytes) {
            return bad(
                "server.max_frame_bytes",
                "must be between 1024 and 16777216",
            );
        }
        if !(8..=1_000_000).contains(&self.server.outbound_queue) {
            return bad("server.outbound_queue", "must be between 8 and 1000000");
        }
        if !(16..=1_000_000).contains(&self.server.replay_events) {
            return bad("server.replay_events", "must be between 16 and 1000000");
        }
        if !(1..=1_000_000).contains(&self.server.max_chat_lines) {
            return bad("server.max_chat_lines", "must be between 1 and 1000000");
        }
        // The connection's timers: shorter than 10 ms is a typo, not a setting.
        for (key, ms) in [
            ("server.heartbeat_ms", self.server.heartbeat_ms),
            ("server.pong_timeout_ms", self.server.pong_timeout_ms),
            ("server.hello_timeout_ms", self.server.hello_timeout_ms),
        ] {
            if ms < 10 {
                return bad(key, "must be at least 10");
            }
        }
        let sup = &self.supervisor;
        if sup.rep_grace_ms == 0 {
            return bad("supervisor.rep_grace_ms", "must be at least 1");
        }
        if sup.customer_grace_ms == 0 {
            return bad("supervisor.customer_grace_ms", "must be at least 1");
        }
        if !(10..=60_000).contains(&sup.rule_tick_ms) {
            return bad("supervisor.rule_tick_ms", "must be between 10 and 60000");
        }
        if sup.offer_timeout_ms < 10 {
            return bad("supervisor.offer_timeout_ms", "must be at least 10");
        }
        if sup.max_sessions_per_rep == 0 {
            return bad("supervisor.max_sessions_per_rep", "must be at least 1");
        }
        if let Err(m) = self.rules.default.validate() {
            return bad("rules.default", &m);
        }
        for (team, r) in &self.rules.teams {
            if let Err(m) = r.validate() {
                return bad("rules.teams", &format!("team '{team}': {m}"));
            }
        }
        if self.store.data_dir.as_os_str().is_empty() {
            return bad("store.data_dir", "must not be empty");
        }
        if self.store.cache_bytes < StoreSettings::MIN_CACHE_BYTES {
            return bad(
                "store.cache_bytes",
                &format!("must be at least {}", StoreSettings::MIN_CACHE_BYTES),
            );
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad("log.format", "must be 'text' or 'json'");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return bad(
                "log.level",
                "must be a tracing filter such as 'info' or 'switchboard=debug'",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_demo_config_is_valid() {
        let s = Settings::from_file(Path::new("config/default.toml"), true).unwrap();
        s.validate().unwrap();
        assert!(s.seed.teams.len() >= 2, "the demo has teams to try");
        assert!(!s.seed.reps.is_empty());
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut s = Settings::default();
        s.server.listen = "here".into();
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("server.listen"), "{e}");
        let mut s = Settings::default();
        s.log.format = "xml".into();
        assert!(s.validate().unwrap_err().to_string().contains("log.format"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = toml::from_str::<Settings>("[server]\nlisten_port = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen_port"), "{e}");
    }
}
