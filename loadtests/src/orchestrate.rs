//! `all`: the whole measurement in one command.
//!
//! The server (and the relays, and the sled benchmark) run pinned to one
//! core with `taskset`, the generator on another. The catalog is seeded
//! once into a template data directory (argon2 hashing of every rep's
//! password takes a while); every scenario then starts the server on a
//! fresh copy of it.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::catalog;
use crate::cli::{at_least_one, run_scenario, RelayStack, RunArgs, Scenario};
use crate::report::{
    median_round, Report, ACTIX_RELAY, ACTIX_TEAM_RELAY, DURABLE_RELAY, SLED_FIGURE, TEAM_RELAY,
};
use crate::scenarios::{Arrivals, Protocol, ScenarioResult};
use crate::sled_bench::SledBench;

#[derive(Debug, Clone, Args)]
pub struct AllArgs {
    /// The server binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/switchboard")]
    pub server_bin: PathBuf,
    /// Results go to `DIR/<unix time>/`.
    #[arg(long, default_value = "loadtests/results")]
    pub out: PathBuf,
    /// Core for the server, the relay and the sled benchmark.
    #[arg(long, default_value_t = 0)]
    pub server_core: usize,
    /// Core for the generator.
    #[arg(long, default_value_t = 1)]
    pub generator_core: usize,
    #[arg(long, default_value = "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4")]
    pub sources: String,
    #[arg(long, default_value_t = 19_000)]
    pub idle_connections: usize,
    #[arg(long, default_value_t = 2)]
    pub idle_procs: usize,
    /// Idle connections opened per second. The default spreads 19,000
    /// over about one heartbeat (25 s), as customers arriving over time
    /// would be: opened all at once, their pings came in one burst a
    /// heartbeat, which the server serves for a third of the CPU of pings
    /// spread over the heartbeat (docs/performance.md, "Reproduce").
    #[arg(long, default_value_t = 750.0)]
    pub idle_rate: f64,
    /// Idle window; Switchboard's is rounded up to whole heartbeats.
    #[arg(long, default_value_t = 15)]
    pub idle_secs: u64,
    #[arg(long, default_value_t = 1000.0)]
    pub join_rate: f64,
    /// Joins at random times (exponential gaps) or evenly spaced; until
    /// the thirty-fifth round they were evenly spaced.
    #[arg(long, value_enum, default_value_t = Arrivals::Poisson)]
    pub join_arrivals: Arrivals,
    #[arg(long, default_value_t = 10)]
    pub join_secs: u64,
    #[arg(long, default_value_t = 1000)]
    pub reps: usize,
    #[arg(long, default_value_t = 100)]
    pub teams: usize,
    #[arg(long, default_value_t = 400)]
    pub routing_lanes: usize,
    #[arg(long, default_value_t = 10)]
    pub routing_secs: u64,
    #[arg(long, default_value_t = 200)]
    pub chat_pairs: usize,
    #[arg(long, default_value_t = 2)]
    pub chat_balls: usize,
    #[arg(long, default_value_t = 10)]
    pub chat_secs: u64,
    #[arg(long, default_value_t = 5)]
    pub sled_secs: u64,
    /// Runs each scenario and its baselines this many times, interleaved,
    /// and reports, per scenario, the round whose ratio to the bare relay
    /// is the median (every round's headline figures are listed beside
    /// it): the machine is shared and noisy.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Scenarios to run (default: all four).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Scenario>,
    /// A note for the report (such as "other builds running").
    #[arg(long)]
    pub note: Vec<String>,
}

/// `program` run under `taskset`, on `core` alone.
pub fn pinned(core: usize, program: &Path) -> Command {
    let mut c = Command::new("taskset");
    c.arg("-c").arg(core.to_string()).arg(program);
    c
}

/// Starts a child and waits (bounded) for the stdout line `prefix<port>`.
pub fn start_and_read_port(mut cmd: Command, prefix: &str) -> anyhow::Result<(Child, u16)> {
    let program = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|w| w.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = prefix.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(p) = line.strip_prefix(&wanted) {
                let _ = tx.send(p.trim().parse::<u16>().ok());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(300)) {
        Ok(Some(port)) => Ok((child, port)),
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{prefix}: the line did not end in a port")
        }
        // Its output ended without the line: it exited (or is exiting),
        // and said why on the stderr it shares with us.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            let status = child.wait()?;
            anyhow::bail!(
                "{program} ended ({status}) before it printed \"{prefix}<port>\" \
                 (its own error, if any, is above)"
            )
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{program} printed no \"{prefix}<port>\" within 5 minutes")
        }
    }
}

/// SIGTERM, wait up to 30 s, then SIGKILL: only our own child, by pid.
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    for _ in 0..300 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}

struct Server {
    child: Child,
    port: u16,
}

fn start_server(a: &AllArgs, config: &Path, data: &Path) -> anyhow::Result<Server> {
    let mut cmd = pinned(a.server_core, &a.server_bin);
    cmd.env("SWITCHBOARD_CONFIG", config)
        .env("SWITCHBOARD_DATA_DIR", data)
        .env("SWITCHBOARD_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_LOG_LEVEL", "warn");
    let (child, port) = start_and_read_port(cmd, "switchboard listening on port ")?;
    Ok(Server { child, port })
}

/// Pins this process, and so every child it starts, to `core`. `main`
/// calls it for `all` before the runtime starts, so that the runtime
/// sees one core and runs one thread. A generator left unpinned would
/// share the server's core and measure something else, so a failure
/// stops the run.
pub fn pin_generator(core: usize) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string()])
        .arg(std::process::id().to_string())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run taskset to pin the generator: {e}"))?;
    anyhow::ensure!(
        status.success(),
        "taskset could not pin the generator to core {core} ({status}): see --generator-core"
    );
    Ok(())
}

impl AllArgs {
    /// The scenarios asked for, in the order they run.
    pub fn scenarios(&self) -> Vec<Scenario> {
        [
            Scenario::Idle,
            Scenario::JoinAlert,
            Scenario::Routing,
            Scenario::Chat,
        ]
        .into_iter()
        .filter(|s| self.only.is_empty() || self.only.contains(s))
        .collect()
    }

    /// What one run of `scenario` is given: these flags, against the
    /// relay or server listening on `port` with process id `pid`, with
    /// this program (`me`) for idle's extra generator processes.
    pub fn run_args(
        &self,
        scenario: Scenario,
        protocol: Protocol,
        port: u16,
        pid: u32,
        me: &Path,
    ) -> RunArgs {
        let mut r = RunArgs {
            scenario,
            servers: vec![match protocol {
                Protocol::Switchboard => format!("ws://127.0.0.1:{port}/ws"),
                Protocol::Relay => format!("ws://127.0.0.1:{port}/"),
            }],
            server_pid: Some(pid),
            protocol,
            connections: 100,
            rate: 0.0,
            arrivals: Arrivals::Poisson,
            duration: 10,
            sources: self.sources.clone(),
            reps: self.reps,
            teams: self.teams,
            procs: 1,
            balls: self.chat_balls,
            message_bytes: 64,
            team_fanout: false,
            out: PathBuf::new(),
            child: false,
            offset: 0,
            exe: Some(me.to_path_buf()),
        };
        match scenario {
            Scenario::Idle => {
                r.connections = self.idle_connections;
                r.procs = self.idle_procs;
                r.rate = self.idle_rate;
                r.duration = self.idle_secs;
            }
            Scenario::JoinAlert => {
                r.rate = self.join_rate;
                r.arrivals = self.join_arrivals;
                r.duration = self.join_secs;
            }
            Scenario::Routing => {
                r.connections = self.routing_lanes;
                r.duration = self.routing_secs;
            }
            Scenario::Chat => {
                r.connections = self.chat_pairs;
                r.duration = self.chat_secs;
            }
        }
        r
    }

    /// Refuses flags some run could not honour, before the catalog's slow
    /// seeding: every run's own flags as `run` checks them, what the
    /// catalog `all` writes must hold, and cores this process may use (so
    /// call it before pinning).
    pub fn check(&self, me: &Path) -> anyhow::Result<()> {
        if let Some(cores) = crate::procstat::allowed_cores() {
            for (flag, core) in [
                ("--server-core", self.server_core),
                ("--generator-core", self.generator_core),
            ] {
                anyhow::ensure!(
                    cores.contains(&core),
                    "{flag} {core} is not a core this machine lets the generator use \
                     (Cpus_allowed_list: {cores:?})"
                );
            }
        }
        at_least_one("--repeat", "runs of each scenario", self.repeat)?;
        for scenario in self.scenarios() {
            for protocol in [Protocol::Relay, Protocol::Switchboard] {
                if let Err(bad) = self.run_args(scenario, protocol, 0, 0, me).check() {
                    anyhow::bail!("{} {}", all_flag(scenario, bad.flag), bad.problem);
                }
            }
        }
        // Rep i serves team i mod --teams: with fewer reps than teams,
        // some teams' customers would alert nobody (join to alert) or never
        // be accepted (routing and chat, which log in reps 0..teams).
        let needs_reps = self.scenarios().iter().any(|s| *s != Scenario::Idle);
        anyhow::ensure!(
            !needs_reps || self.teams <= self.reps,
            "--teams ({}) must be at most --reps ({}): every team needs a rep",
            self.teams,
            self.reps
        );
        Ok(())
    }
}

/// The flag of `all` that [`AllArgs::run_args`] turns into `run`'s
/// `flag` for `scenario`.
fn all_flag(scenario: Scenario, flag: &'static str) -> &'static str {
    match (scenario, flag) {
        (Scenario::Idle, "--connections") => "--idle-connections",
        (Scenario::Idle, "--procs") => "--idle-procs",
        (Scenario::Idle, "--duration") => "--idle-secs",
        (Scenario::Idle, "--rate") => "--idle-rate",
        (Scenario::JoinAlert, "--rate") => "--join-rate",
        (Scenario::JoinAlert, "--duration") => "--join-secs",
        (Scenario::Routing, "--connections") => "--routing-lanes",
        (Scenario::Routing, "--duration") => "--routing-secs",
        (Scenario::Chat, "--connections") => "--chat-pairs",
        (Scenario::Chat, "--balls") => "--chat-balls",
        (Scenario::Chat, "--duration") => "--chat-secs",
        // --reps, --teams and --sources are the same flags in both.
        (_, flag) => flag,
    }
}

/// The whole measurement. `main` has run [`AllArgs::check`] and pinned
/// this process to the generator's core.
pub async fn all(a: AllArgs) -> anyhow::Result<()> {
    let me = std::env::current_exe()?;
    anyhow::ensure!(
        a.server_bin.exists(),
        "{} not found: cargo build --release -p switchboard",
        a.server_bin.display()
    );
    let mut report = Report::new();
    report.machine.notes.extend(a.note.iter().cloned());
    report.machine.notes.push(format!(
        "server, relay and sled benchmark pinned to core {}, generator to core {} (taskset); loopback only",
        a.server_core, a.generator_core
    ));
    report
        .commands
        .push("cargo build --release -p switchboard -p switchboard-loadtests".into());
    report
        .commands
        .push(std::env::args().collect::<Vec<_>>().join(" "));
    let scenarios = a.scenarios();
    let tmp = tempfile::tempdir()?;

    // The catalog, seeded once.
    let config = tmp.path().join("loadtest.toml");
    let template = tmp.path().join("template");
    let settings = catalog::settings(&template, a.teams, a.reps);
    catalog::write_config(&settings, &config)?;
    eprintln!(
        "seeding {} reps and {} teams (argon2: slow)",
        a.reps, a.teams
    );
    let seed = start_server(&a, &config, &template)?;
    stop(seed.child);

    for scenario in scenarios {
        // Every round's results, each by the result's protocol label.
        let mut rounds: Vec<BTreeMap<String, ScenarioResult>> = Vec::new();
        let repeat = a.repeat;
        // Each routing round's sled baseline, in the order the rounds ran.
        let mut sled_rounds: Vec<SledBench> = Vec::new();
        for round in 1..=repeat {
            let mut runs: BTreeMap<String, ScenarioResult> = BTreeMap::new();
            let of = if repeat > 1 {
                format!(" (run {round} of {repeat})")
            } else {
                String::new()
            };
            // Routing's floor is sled's raw rate, measured in each round
            // beside the relays and the server, as the rest of its
            // baselines are: once a run, the reported round could be
            // paired with a floor measured minutes away from it.
            let sled = if scenario == Scenario::Routing {
                eprintln!("sled baseline ({} s x 3){of}", a.sled_secs);
                sled_bench(&a, &me, tmp.path())
            } else {
                None
            };
            // The relay baselines first: the bare one, then the same relay
            // on Switchboard's stack.
            for stack in [RelayStack::Tungstenite, RelayStack::Actix] {
                let name = stack
                    .to_possible_value()
                    .map_or("?".into(), |v| v.get_name().to_string());
                let mut cmd = pinned(a.server_core, &me);
                cmd.args(["relay", "--port", "0", "--stack", &name]);
                let (relay, port) = start_and_read_port(cmd, "relay listening on port ")?;
                let mut args = a.run_args(scenario, Protocol::Relay, port, relay.id(), &me);
                // The join has a second baseline on the same relay: each
                // join's frame to its team's reps instead of back.
                let team_runs: &[bool] = if scenario == Scenario::JoinAlert {
                    &[false, true]
                } else {
                    &[false]
                };
                for &team in team_runs {
                    args.team_fanout = team;
                    let what = if team { ", to each team" } else { "" };
                    let on = format!("the {name} relay{what}{of}");
                    run_baseline(&args, relay_label(stack, team), &on, &mut runs).await;
                }
                stop(relay);
            }
            // The durable baseline: the bare relay writing each frame it
            // passes on (routing's join, accept and end; chat's lines)
            // through Switchboard's store first, on a fresh sled
            // directory of its own.
            if matches!(scenario, Scenario::Routing | Scenario::Chat) {
                let dir = tmp.path().join("durable-relay");
                let _ = std::fs::remove_dir_all(&dir);
                let mut cmd = pinned(a.server_core, &me);
                cmd.args(["relay", "--port", "0", "--durable"]).arg(&dir);
                let (relay, port) = start_and_read_port(cmd, "relay listening on port ")?;
                let args = a.run_args(scenario, Protocol::Relay, port, relay.id(), &me);
                let on = format!("the durable relay{of}");
                run_baseline(&args, DURABLE_RELAY, &on, &mut runs).await;
                stop(relay);
                let _ = std::fs::remove_dir_all(&dir);
            }
            let data = tmp.path().join(format!("data-{scenario:?}"));
            copy_dir(&template, &data)?;
            let server = start_server(&a, &config, &data)?;
            let args = a.run_args(
                scenario,
                Protocol::Switchboard,
                server.port,
                server.child.id(),
                &me,
            );
            eprintln!("== {scenario:?} on Switchboard{of}");
            match run_scenario(&args).await {
                Ok(mut r) => {
                    if let Some(s) = &sled {
                        r.figure(SLED_FIGURE, s.raw_batched_writes_per_sec);
                    }
                    runs.insert(r.protocol.clone(), r);
                }
                Err(e) => eprintln!("switchboard {scenario:?} failed: {e:#}"),
            }
            stop(server.child);
            let _ = std::fs::remove_dir_all(&data);
            sled_rounds.extend(sled);
            rounds.push(runs);
        }
        for r in median_round(rounds) {
            // The sled baseline of the round reported.
            if let Some(raw) = r.figures.get(SLED_FIGURE) {
                report.sled = sled_rounds
                    .iter()
                    .find(|s| s.raw_batched_writes_per_sec == *raw)
                    .cloned();
            }
            report.add(r);
        }
        // Partial results survive a later failure.
        report.check();
    }
    report.check();
    let dir = a.out.join(report.started_at_unix.to_string());
    report.write(&dir)?;
    println!("{}", report.markdown());
    eprintln!("results in {}", dir.display());
    Ok(())
}

/// Runs one baseline (`on` says which, for the log) and keeps its result
/// in `runs` under `label`; a failure is said, and the round goes on
/// without it.
async fn run_baseline(
    args: &RunArgs,
    label: &str,
    on: &str,
    runs: &mut BTreeMap<String, ScenarioResult>,
) {
    let scenario = args.scenario;
    eprintln!("== {scenario:?} on {on}");
    match run_scenario(args).await {
        Ok(mut r) => {
            r.protocol = label.into();
            runs.insert(label.into(), r);
        }
        Err(e) => eprintln!("{scenario:?} on {on} failed: {e:#}"),
    }
}

/// The label a relay's results go under in a round and in the report
/// (`Report::add`): by stack, and whether the join's frames went to each
/// team (`--team-fanout`).
fn relay_label(stack: RelayStack, team: bool) -> &'static str {
    match (stack, team) {
        (RelayStack::Tungstenite, false) => "relay",
        (RelayStack::Actix, false) => ACTIX_RELAY,
        (RelayStack::Tungstenite, true) => TEAM_RELAY,
        (RelayStack::Actix, true) => ACTIX_TEAM_RELAY,
    }
}

/// sled's raw rates, on the server's core; `None` (and a line saying
/// why) if the benchmark fails.
fn sled_bench(a: &AllArgs, me: &Path, dir: &Path) -> Option<SledBench> {
    let out = pinned(a.server_core, me)
        .arg("sled-bench")
        .arg("--dir")
        .arg(dir)
        .arg("--seconds")
        .arg(a.sled_secs.to_string())
        .stderr(Stdio::inherit())
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            eprintln!("sled bench did not run: {e}");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str::<SledBench>(text.trim()) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("sled bench output unreadable: {e}: {text}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Cmd};
    use clap::Parser;

    fn all_args(words: &[&str]) -> AllArgs {
        let words = [&["switchboard-loadtests", "all"], words].concat();
        match Cli::try_parse_from(words) {
            Ok(Cli { cmd: Cmd::All(a) }) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_flag_of_all_set_to_zero_is_refused_by_its_own_name() {
        let me = Path::new("switchboard-loadtests");
        assert!(all_args(&[]).check(me).is_ok(), "the defaults pass");
        for flag in [
            "--idle-connections",
            "--idle-procs",
            "--idle-secs",
            "--join-rate",
            "--join-secs",
            "--reps",
            "--teams",
            "--routing-lanes",
            "--routing-secs",
            "--chat-pairs",
            "--chat-balls",
            "--chat-secs",
            "--repeat",
        ] {
            let error = all_args(&[flag, "0"])
                .check(me)
                .expect_err(flag)
                .to_string();
            assert!(error.starts_with(&format!("{flag} ")), "{flag}: {error}");
        }
    }

    #[test]
    fn the_idle_ramp_is_spread_unless_asked_otherwise() {
        let me = Path::new("switchboard-loadtests");
        let idle = |words: &[&str]| {
            all_args(words).run_args(Scenario::Idle, Protocol::Switchboard, 1, 1, me)
        };
        assert_eq!(idle(&[]).rate, 750.0);
        assert_eq!(idle(&["--idle-rate", "0"]).rate, 0.0, "0: no limit");
        let error = all_args(&["--idle-rate=-5"])
            .check(me)
            .expect_err("a negative rate")
            .to_string();
        assert!(error.starts_with("--idle-rate "), "{error}");
    }
}
