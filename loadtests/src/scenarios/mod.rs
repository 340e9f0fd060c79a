//! The scenarios, and what they share: where to connect, the parameters,
//! the result record, error collection, progress bars and the server's
//! resource use.
pub mod chat;
pub mod idle;
pub mod join_alert;
pub mod routing;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use switchboard::client::Client;
use switchboard::domain::ids::{ClientKind, Role};
use switchboard::error::ErrorCode;

use crate::procstat::{self, FileLimit, ProcSample};
use crate::stats::{LatencySummary, SeriesPoint};

/// How join to alert spaces its joins in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// One every `1 / rate` seconds exactly.
    Steady,
    /// At random, as customers who do not know of each other arrive: the
    /// gaps are exponential with mean `1 / rate`, so joins sometimes come
    /// close together and queue behind each other in the server.
    Poisson,
}

/// When each of `total` joins at `rate` a second is due, from the start:
/// the same schedule in every run (the random gaps come from a fixed
/// seed), so the relay and Switchboard are given the same bursts.
pub fn arrival_offsets(total: u64, rate: f64, arrivals: Arrivals) -> Vec<Duration> {
    let mut state: u64 = 0x5eed_5eed_5eed_5eed;
    let mut at = 0.0;
    (0..total)
        .map(|i| match arrivals {
            Arrivals::Steady => Duration::from_secs_f64(i as f64 / rate),
            Arrivals::Poisson => {
                let offset = Duration::from_secs_f64(at);
                // splitmix64, then a uniform draw in (0, 1]: an exponential
                // gap is -ln(u) / rate.
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                let u = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
                at += -u.ln() / rate;
                offset
            }
        })
        .collect()
}

/// What the generator talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Switchboard's protocol (MessagePack over WebSocket).
    Switchboard,
    /// The bare relay baseline (`relay` subcommand).
    Relay,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Switchboard => "switchboard",
            Protocol::Relay => "relay",
        }
    }
}

/// Where connections go: servers (several for a cluster) and the local
/// source addresses, both used round robin.
#[derive(Debug, Clone)]
pub struct Target {
    pub servers: Vec<String>,
    pub server_pid: Option<u32>,
    pub sources: Vec<IpAddr>,
}

impl Target {
    pub fn url(&self, i: usize) -> &str {
        &self.servers[i % self.servers.len()]
    }

    pub fn source(&self, i: usize) -> Option<IpAddr> {
        if self.sources.is_empty() {
            None
        } else {
            Some(self.sources[i % self.sources.len()])
        }
    }

    /// Customer number `i`'s connection (desktop, not yet in a session),
    /// to its server from its source address.
    pub async fn customer(&self, i: usize) -> Result<Client, switchboard::client::ClientError> {
        Client::connect_from(
            self.url(i),
            self.source(i),
            Role::Customer,
            ClientKind::Desktop,
        )
        .await
    }

    /// `http://host:port` of the first server, for /metrics.
    pub fn http_base(&self) -> Option<String> {
        let rest = self.servers.first()?.strip_prefix("ws://")?;
        Some(rest.split('/').next()?.to_string())
    }
}

/// Scenario parameters (flags of `run`).
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub protocol: Protocol,
    /// idle: connections held; routing: concurrent customers; chat:
    /// sessions (customer and rep pairs).
    pub connections: usize,
    /// join-alert: joins per second; idle: connections opened per second
    /// (0: as fast as the concurrency allows).
    pub rate: f64,
    /// join-alert: how the joins are spaced.
    pub arrivals: Arrivals,
    /// Length of the measured phase.
    pub duration: Duration,
    /// Reps logged in (join-alert).
    pub reps: usize,
    /// Teams in the catalog; routing and chat log in one rep per team.
    pub teams: usize,
    /// Generator processes (idle).
    pub procs: usize,
    /// Messages in flight per chat session.
    pub balls: usize,
    /// Chat message size in bytes (text).
    pub message_bytes: usize,
    /// join-alert against the relay: each join's frame goes to every rep
    /// of its team instead of back to its sender.
    pub team_fanout: bool,
}

/// What one scenario measured. Maps keep the record open to new figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub protocol: String,
    pub params: serde_json::Value,
    pub counts: BTreeMap<String, u64>,
    pub figures: BTreeMap<String, f64>,
    pub latency: BTreeMap<String, LatencySummary>,
    pub series: BTreeMap<String, Vec<SeriesPoint>>,
    pub server: Option<ServerUsage>,
    pub errors: Vec<String>,
    /// When `all --repeat N` ran the scenario N times: every run's headline
    /// figures, each latency's p50, p99 and max and how busy the server
    /// and the generator were (`report::round_figures`), in the order they
    /// ran. This result is the reported round's (`report::median_round`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<BTreeMap<String, f64>>,
}

impl ScenarioResult {
    pub fn new(scenario: &str, p: &Params) -> ScenarioResult {
        ScenarioResult {
            scenario: scenario.to_string(),
            protocol: p.protocol.as_str().to_string(),
            params: serde_json::to_value(p).unwrap_or_default(),
            ..Default::default()
        }
    }

    pub fn count(&mut self, k: &str, v: u64) {
        self.counts.insert(k.to_string(), v);
    }

    pub fn figure(&mut self, k: &str, v: f64) {
        self.figures.insert(k.to_string(), v);
    }
}

/// The server process over the measured phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerUsage {
    pub pid: u32,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub cpu_secs: f64,
    pub wall_secs: f64,
    /// Average cores busy over the phase.
    pub cpu_cores: f64,
    pub threads: u64,
    pub open_files: Option<u64>,
    pub open_file_limit_soft: Option<u64>,
    pub open_file_limit_hard: Option<u64>,
    /// Average cores the generator's own process was busy over the same
    /// window (in idle with several processes, the first only). A
    /// latency includes the generator's own queueing, so a figure taken
    /// while the generator's core is busy is not the server's alone, and
    /// one near 1.0 may be the generator's limit.
    #[serde(default)]
    pub generator_cpu_cores: Option<f64>,
}

/// Readings of the server at the start and end of a phase.
pub struct ServerWatch {
    pid: Option<u32>,
    start: Instant,
    before: Option<ProcSample>,
    generator_before: Option<ProcSample>,
}

impl ServerWatch {
    pub fn start(pid: Option<u32>) -> ServerWatch {
        ServerWatch {
            pid,
            start: Instant::now(),
            before: pid.and_then(procstat::sample),
            generator_before: procstat::sample(std::process::id()),
        }
    }

    /// Restarts the CPU clock, keeping the memory reading of `start`.
    pub fn restart_cpu(&mut self) {
        let rss = self.before.map(|b| b.rss_kib);
        self.start = Instant::now();
        self.generator_before = procstat::sample(std::process::id());
        self.before = self.pid.and_then(procstat::sample).map(|mut s| {
            if let Some(r) = rss {
                s.rss_kib = r;
            }
            s
        });
    }

    pub fn finish(&self) -> Option<ServerUsage> {
        let pid = self.pid?;
        let before = self.before?;
        let after = procstat::sample(pid)?;
        let wall = self.start.elapsed().as_secs_f64();
        let cpu = after.cpu_secs - before.cpu_secs;
        let FileLimit { soft, hard } = procstat::open_file_limit(pid);
        let generator_cpu_cores =
            match (self.generator_before, procstat::sample(std::process::id())) {
                (Some(b), Some(a)) if wall > 0.0 => Some((a.cpu_secs - b.cpu_secs) / wall),
                _ => None,
            };
        Some(ServerUsage {
            pid,
            rss_before_kib: before.rss_kib,
            rss_after_kib: after.rss_kib,
            cpu_secs: cpu,
            wall_secs: wall,
            cpu_cores: if wall > 0.0 { cpu / wall } else { 0.0 },
            threads: after.threads,
            open_files: procstat::open_files(pid),
            open_file_limit_soft: soft,
            open_file_limit_hard: hard,
            generator_cpu_cores,
        })
    }
}

/// Counts errors, and how often each of the first few distinct messages
/// came: a run that goes wrong tends to go wrong the same way a thousand
/// times, and ten copies of one line hid the count.
#[derive(Default)]
pub struct Errors {
    total: AtomicU64,
    first: Mutex<Vec<(String, u64)>>,
}

/// Distinct messages kept; later new ones are only counted in the total.
const DISTINCT_ERRORS: usize = 10;

impl Errors {
    pub fn add(&self, what: impl std::fmt::Display) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let what = what.to_string();
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, n)) = first.iter_mut().find(|(m, _)| *m == what) {
            *n += 1;
        } else if first.len() < DISTINCT_ERRORS {
            first.push((what, 1));
        }
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The first distinct messages in the order they first came, each with
    /// how often it came when that was more than once.
    pub fn first(&self) -> Vec<String> {
        let first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        first
            .iter()
            .map(|(m, n)| match n {
                1 => m.clone(),
                n => format!("{m} ({n} times)"),
            })
            .collect()
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} {prefix:>14} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_prefix(what.to_string());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// A bar over the seconds of a timed phase.
pub fn timed_bar(d: Duration, what: &str) -> ProgressBar {
    bar(d.as_secs().max(1), what)
}

/// A client's first error, with a hint when it is what the bare relay
/// does with a Switchboard hello: nothing, until the client gives up.
pub fn not_switchboard(e: switchboard::client::ClientError) -> String {
    match e {
        switchboard::client::ClientError::Timeout => format!(
            "{e}: the server did not answer the hello. Is it the bare relay? \
             Then add --protocol relay"
        ),
        e => e.to_string(),
    }
}

/// A rep console, logged in; `stamped`, its pushed frames carry when they
/// reached the socket ([`Client::connect_stamped`]).
pub async fn rep_login(t: &Target, i: usize, stamped: bool) -> anyhow::Result<Client> {
    let (url, local, role, kind) = (t.url(i), t.source(i), Role::Rep, ClientKind::Desktop);
    let connected = match stamped {
        true => Client::connect_stamped(url, local, role, kind).await,
        false => Client::connect_from(url, local, role, kind).await,
    };
    let mut c =
        connected.map_err(|e| anyhow::anyhow!("rep {i} connect: {}", not_switchboard(e)))?;
    c.login(
        &crate::catalog::rep_name(i),
        &crate::catalog::rep_password(i),
    )
    .await
    .map_err(|e| match e.code() {
        Some(ErrorCode::BadCredentials) => anyhow::anyhow!(
            "rep {i} login: {e}. The scenarios log in as the load-test catalog's \
             reps: start the server on the configuration `switchboard-loadtests \
             catalog` writes, with at least {} reps and the same --teams",
            i + 1
        ),
        _ => anyhow::anyhow!("rep {i} login: {e}"),
    })?;
    Ok(c)
}

/// Logs in reps `0..n`, `parallel` at a time, with a progress bar
/// (`stamped` as for [`rep_login`]).
pub async fn login_reps(
    t: &Target,
    n: usize,
    parallel: usize,
    stamped: bool,
) -> anyhow::Result<Vec<Client>> {
    use futures_util::StreamExt;
    let pb = bar(n as u64, "rep logins");
    let mut out: Vec<(usize, Client)> = futures_util::stream::iter(0..n)
        .map(|i| async move { rep_login(t, i, stamped).await.map(|c| (i, c)) })
        .buffer_unordered(parallel.max(1))
        .inspect(|_| pb.inc(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    pb.finish_and_clear();
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, c)| c).collect())
}

/// Reads one Prometheus counter (or a histogram's `_count`) from the
/// server's /metrics, summed over labels.
pub async fn scrape(http_base: &str, name: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(http_base),
    )
    .await
    .ok()?
    .ok()?;
    let req = format!("GET /metrics HTTP/1.0\r\nHost: {http_base}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut body))
        .await
        .ok()?
        .ok()?;
    let mut sum = None;
    for line in body.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            sum = Some(sum.unwrap_or(0.0) + v);
        }
    }
    sum
}

/// Nanoseconds since `base`, for stamps carried in messages.
pub fn stamp(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

/// The latency of a message stamped `sent` (see [`stamp`]).
pub fn since_stamp(base: Instant, sent: u64) -> Duration {
    Duration::from_nanos(stamp(base).saturating_sub(sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_kept_once_each_with_how_often_they_came() {
        let errors = Errors::default();
        for _ in 0..1000 {
            errors.add("connect: connection refused");
        }
        errors.add("session did not end in time");
        for i in 0..20 {
            errors.add(format!("odd error {i}"));
        }
        assert_eq!(errors.total(), 1021);
        let first = errors.first();
        assert_eq!(first.len(), DISTINCT_ERRORS);
        assert_eq!(first[0], "connect: connection refused (1000 times)");
        assert_eq!(first[1], "session did not end in time");
        assert_eq!(first[9], "odd error 7");
    }

    #[test]
    fn steady_joins_are_evenly_spaced() {
        let at = arrival_offsets(4, 1000.0, Arrivals::Steady);
        let us: Vec<u128> = at.iter().map(|d| d.as_micros()).collect();
        assert_eq!(us, [0, 1000, 2000, 3000]);
    }

    /// At random: the rate holds on average, the gaps vary as an
    /// exponential's do (as much as their mean), and every run is given
    /// the same schedule.
    #[test]
    fn random_joins_keep_the_rate_with_gaps_of_every_length() {
        let n = 20_000;
        let at = arrival_offsets(n, 1000.0, Arrivals::Poisson);
        assert_eq!(at, arrival_offsets(n, 1000.0, Arrivals::Poisson));
        assert!(at.windows(2).all(|w| w[0] <= w[1]), "in order");
        let span = at[at.len() - 1].as_secs_f64();
        let rate = (n - 1) as f64 / span;
        assert!((950.0..1050.0).contains(&rate), "{rate} a second");
        let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = var.sqrt() / mean;
        assert!((0.9..1.1).contains(&cv), "coefficient of variation {cv}");
        // Bursts: a tenth of the gaps are under a tenth of the mean.
        let short = gaps.iter().filter(|g| **g < mean / 10.0).count() as f64;
        assert!(short / gaps.len() as f64 > 0.08, "{short} short gaps");
    }
}
