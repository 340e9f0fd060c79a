//! Command-line flags and what each subcommand does.
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use switchboard::domain::chat::MAX_CHAT_BYTES;
use switchboard::metrics::StoreMetrics;
use switchboard::store::SledStore;

use crate::report::Report;
use crate::scenarios::{self, Arrivals, Params, Protocol, ScenarioResult, Target};

#[derive(Debug, Parser)]
#[command(
    name = "switchboard-loadtests",
    about = "Load generator for Switchboard, with a bare-relay and a sled baseline"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Runs the bare WebSocket relay (the baseline) on 127.0.0.1:PORT.
    Relay {
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// tungstenite: the bare baseline; actix: the same relay on
        /// Switchboard's stack, actix-http with Switchboard's upgrade, served
        /// by Switchboard's workers, and its own WebSocket layer (until the
        /// twenty-fourth round it ran on actix-ws, until the thirty-ninth
        /// under actix-server).
        #[arg(long, value_enum, default_value_t = RelayStack::Tungstenite)]
        stack: RelayStack,
        /// A sled directory (made if missing): the bare relay writes each
        /// frame for another connection there through Switchboard's store,
        /// durably, before passing it on (routing's and chat's durable
        /// baseline).
        #[arg(long)]
        durable: Option<PathBuf>,
    },
    /// Measures sled's write rate with Switchboard's durability setting.
    SledBench(SledArgs),
    /// Writes the load-test catalog (teams, issue types, reps; see
    /// catalog.rs) as a server configuration file.
    Catalog {
        #[arg(long, default_value_t = 100)]
        teams: usize,
        #[arg(long, default_value_t = 1000)]
        reps: usize,
        /// The configuration file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Runs one scenario against running servers.
    Run(RunArgs),
    /// Starts the server and the relay pinned to one core and runs every
    /// scenario and baseline from another; writes `results/<timestamp>/`.
    All(crate::orchestrate::AllArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SledArgs {
    /// Parent directory for the databases (default: the system's temp).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    #[arg(long, default_value_t = 256)]
    pub writers: usize,
    #[arg(long, default_value_t = 512)]
    pub value_bytes: usize,
    /// Seconds for each of the three measurements.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RelayStack {
    Tungstenite,
    Actix,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Idle,
    JoinAlert,
    Routing,
    Chat,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// WebSocket URL of a server; repeat for a cluster (used round robin).
    #[arg(long = "server", required = true)]
    pub servers: Vec<String>,
    /// The server's process id, for its memory and CPU time.
    #[arg(long)]
    pub server_pid: Option<u32>,
    #[arg(long, value_enum, default_value_t = Protocol::Switchboard)]
    pub protocol: Protocol,
    /// idle: connections; routing: customer lanes; chat: sessions.
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// join-alert: joins per second; idle: connections per second (0: no
    /// limit).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// join-alert: joins at random (exponential gaps, the same schedule
    /// every run) or one every 1/rate seconds.
    #[arg(long, value_enum, default_value_t = Arrivals::Poisson)]
    pub arrivals: Arrivals,
    /// Seconds of the measured phase (idle against Switchboard: rounded up
    /// to whole heartbeats of the server, which its `welcome` gives).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Comma-separated local source addresses, used round robin.
    #[arg(long, default_value = "127.0.0.1")]
    pub sources: String,
    /// Reps logged in (join-alert).
    #[arg(long, default_value_t = 1000)]
    pub reps: usize,
    /// Teams in the server's catalog (see `all`).
    #[arg(long, default_value_t = 100)]
    pub teams: usize,
    /// Generator processes (idle).
    #[arg(long, default_value_t = 1)]
    pub procs: usize,
    /// Chat messages in flight per session.
    #[arg(long, default_value_t = 1)]
    pub balls: usize,
    #[arg(long, default_value_t = 64)]
    pub message_bytes: usize,
    /// join-alert against the relay: each customer's frame goes to every
    /// rep of its team (rep i is in team i mod --teams) instead of back to
    /// the sender, and a second one when it leaves, as Switchboard's
    /// alerts and `queue_left` do.
    #[arg(long)]
    pub team_fanout: bool,
    /// Where result.json, summary.md and latency.png go.
    #[arg(long, default_value = "loadtests/results/run")]
    pub out: PathBuf,
    /// This program as a child of `run --procs N` (idle).
    #[arg(long, hide = true)]
    pub child: bool,
    #[arg(long, hide = true, default_value_t = 0)]
    pub offset: usize,
    /// The program to start as children (default: this one).
    #[arg(long, hide = true)]
    pub exe: Option<PathBuf>,
}

impl RunArgs {
    pub fn target(&self) -> Result<Target, BadFlag> {
        Ok(Target {
            servers: self.servers.clone(),
            server_pid: self.server_pid,
            sources: self.sources()?,
        })
    }

    /// `--sources`: loopback addresses only, so the load stays on this
    /// machine.
    fn sources(&self) -> Result<Vec<IpAddr>, BadFlag> {
        let mut sources = Vec::new();
        for s in self
            .sources
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let ip = s
                .parse::<IpAddr>()
                .map_err(|_| BadFlag::new("--sources", format!("{s}: not an IP address")))?;
            if !ip.is_loopback() {
                return Err(BadFlag::new(
                    "--sources",
                    format!("{ip}: not a loopback address (127.0.0.0/8 or ::1)"),
                ));
            }
            sources.push(ip);
        }
        Ok(sources)
    }

    /// Refuses, before anything connects, a flag the scenario cannot
    /// honour. Without this a zero, negative or infinite value ran and
    /// wrote an empty "result" (`--connections 0`, `--rate -5`), or never
    /// ended (`--rate inf` scheduled endless joins at one instant).
    pub fn check(&self) -> Result<(), BadFlag> {
        for url in &self.servers {
            if !url.starts_with("ws://") {
                return Err(BadFlag::new(
                    "--server",
                    format!("{url}: give a ws:// URL, such as ws://127.0.0.1:8080/ws"),
                ));
            }
        }
        at_least_one("--duration", "seconds measured", self.duration)?;
        at_least_one("--teams", "teams in the server's catalog", self.teams)?;
        self.sources()?;
        if self.team_fanout && self.scenario != Scenario::JoinAlert {
            return Err(BadFlag::new(
                "--team-fanout",
                "is a baseline of --scenario join-alert only".into(),
            ));
        }
        match self.scenario {
            Scenario::Idle => {
                at_least_one("--connections", "connections to hold", self.connections)?;
                at_least_one("--procs", "generator processes", self.procs)?;
                if !(self.rate.is_finite() && self.rate >= 0.0) {
                    return Err(BadFlag::new(
                        "--rate",
                        format!(
                            "must be connections per second, 0 for no limit; it is {}",
                            self.rate
                        ),
                    ));
                }
            }
            Scenario::JoinAlert => {
                if !(self.rate.is_finite() && self.rate > 0.0) {
                    return Err(BadFlag::new(
                        "--rate",
                        format!("must be joins per second, above 0; it is {}", self.rate),
                    ));
                }
                if self.protocol == Protocol::Switchboard || self.team_fanout {
                    at_least_one("--reps", "reps to alert", self.reps)?;
                }
                if self.team_fanout && self.protocol != Protocol::Relay {
                    return Err(BadFlag::new(
                        "--team-fanout",
                        "is the relay's team baseline: add --protocol relay".into(),
                    ));
                }
                if self.team_fanout && self.teams > self.reps {
                    return Err(BadFlag::new(
                        "--teams",
                        format!(
                            "({}) must be at most --reps ({}) with --team-fanout: \
                             every team needs a rep",
                            self.teams, self.reps
                        ),
                    ));
                }
            }
            Scenario::Routing => {
                at_least_one("--connections", "customer lanes", self.connections)?;
            }
            Scenario::Chat => {
                at_least_one("--connections", "chat sessions", self.connections)?;
                at_least_one("--balls", "messages in flight per session", self.balls)?;
                if self.message_bytes > MAX_CHAT_BYTES {
                    return Err(BadFlag::new(
                        "--message-bytes",
                        format!(
                            "must be at most {MAX_CHAT_BYTES}, the longest chat line \
                             Switchboard takes; it is {}",
                            self.message_bytes
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn params(&self) -> Params {
        Params {
            protocol: self.protocol,
            connections: self.connections,
            rate: self.rate,
            arrivals: self.arrivals,
            duration: Duration::from_secs(self.duration),
            reps: self.reps,
            teams: self.teams,
            procs: self.procs,
            balls: self.balls,
            message_bytes: self.message_bytes,
            team_fanout: self.team_fanout,
        }
    }
}

/// A flag that [`RunArgs::check`] refused: its name (as `run` spells
/// it) and what is wrong with its value. `all` names its own flag instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFlag {
    pub flag: &'static str,
    pub problem: String,
}

impl BadFlag {
    fn new(flag: &'static str, problem: String) -> BadFlag {
        BadFlag { flag, problem }
    }
}

impl std::fmt::Display for BadFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.flag, self.problem)
    }
}

impl std::error::Error for BadFlag {}

/// `flag`, which counts `what`, is at least 1.
pub(crate) fn at_least_one<N: Default + PartialEq>(
    flag: &'static str,
    what: &str,
    value: N,
) -> Result<(), BadFlag> {
    if value == N::default() {
        return Err(BadFlag::new(
            flag,
            format!("({what}) must be at least 1; it is 0"),
        ));
    }
    Ok(())
}

/// Runs one scenario (the `run` subcommand without writing files).
pub async fn run_scenario(a: &RunArgs) -> anyhow::Result<ScenarioResult> {
    a.check()?;
    let t = a.target()?;
    let p = a.params();
    match a.scenario {
        Scenario::Idle => {
            let exe = match &a.exe {
                Some(e) => e.clone(),
                None => std::env::current_exe()?,
            };
            scenarios::idle::run(&t, &p, &exe).await
        }
        Scenario::JoinAlert => scenarios::join_alert::run(&t, &p).await,
        Scenario::Routing => scenarios::routing::run(&t, &p).await,
        Scenario::Chat => scenarios::chat::run(&t, &p).await,
    }
}

/// `relay --stack actix`, on the calling thread, until the process ends.
fn relay_on_actix(port: u16) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let (port, server) = crate::relay::actix_stack::bind(port)?;
        println!("relay listening on port {port}");
        server.stopped().await;
        Ok(())
    })
}

pub async fn main(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Relay {
            stack: RelayStack::Actix,
            durable: Some(_),
            ..
        } => Err(BadFlag::new(
            "--durable",
            "is for the bare relay: leave out --stack actix".into(),
        )
        .into()),
        Cmd::Relay {
            port,
            stack: RelayStack::Actix,
            durable: None,
        } => {
            // Switchboard's server needs an actix system of its own, on
            // a thread outside this tokio runtime.
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::spawn(move || {
                let _ = tx.send(relay_on_actix(port));
            });
            rx.await?
        }
        Cmd::Relay {
            port,
            durable: Some(dir),
            ..
        } => {
            let store = SledStore::open(
                &dir,
                crate::sled_bench::CACHE_BYTES,
                Arc::new(StoreMetrics::unregistered()),
            )
            .map_err(|e| anyhow::anyhow!("--durable {}: {e}", dir.display()))?;
            let (port, serve) = crate::relay::bind_durable(port, Arc::new(store)).await?;
            println!("relay listening on port {port}");
            serve.await;
            Ok(())
        }
        Cmd::Relay { port, .. } => {
            let (port, serve) = crate::relay::bind(port).await?;
            println!("relay listening on port {port}");
            serve.await;
            Ok(())
        }
        Cmd::SledBench(a) => {
            at_least_one("--seconds", "seconds each measurement runs", a.seconds)?;
            at_least_one("--batch", "writes per flush", a.batch)?;
            at_least_one("--writers", "concurrent store writers", a.writers)?;
            let parent = a.dir.clone().unwrap_or_else(std::env::temp_dir);
            std::fs::create_dir_all(&parent)?;
            let r = crate::sled_bench::run(
                &parent,
                a.batch,
                a.writers,
                a.value_bytes,
                Duration::from_secs(a.seconds),
            )
            .await?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Cmd::Catalog { teams, reps, out } => {
            at_least_one("--teams", "teams in the catalog", teams)?;
            // Only the catalog is written, so the data directory is unused.
            let settings = crate::catalog::settings(Path::new("."), teams, reps);
            crate::catalog::write_config(&settings, &out)
        }
        Cmd::Run(a) if a.child => {
            let t = a.target()?;
            scenarios::idle::run_child(&t, &a.params(), a.offset, Duration::from_secs(a.duration))
                .await
        }
        Cmd::Run(a) => {
            let r = run_scenario(&a).await?;
            let mut report = Report::new();
            report
                .commands
                .push(std::env::args().collect::<Vec<_>>().join(" "));
            report.add(r);
            report.check();
            report.write(&a.out)?;
            println!("{}", report.markdown());
            eprintln!("results in {}", a.out.display());
            Ok(())
        }
        Cmd::All(a) => crate::orchestrate::all(a).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrate::AllArgs;

    /// Splits one shell command into words, keeping "double-quoted" words
    /// whole: enough for the commands our scripts write.
    fn shell_words(command: &str) -> Vec<String> {
        let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
        for c in command.chars() {
            match c {
                '"' => quoted = !quoted,
                c if c.is_whitespace() && !quoted => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
        words
    }

    /// The words of the command in `script` from the line where `marker`
    /// is to the end of its backslash continuations, without the shell's
    /// redirections and `&`.
    fn command_words(script: &str, marker: &str) -> Vec<String> {
        let at = script
            .find(marker)
            .unwrap_or_else(|| panic!("the script has no {marker}"));
        let start = script[..at].rfind('\n').map_or(0, |n| n + 1);
        let mut command = String::new();
        for line in script[start..].lines() {
            command.push_str(line.trim_end().trim_end_matches('\\'));
            command.push(' ');
            if !line.trim_end().ends_with('\\') {
                break;
            }
        }
        let mut words = shell_words(&command);
        if let Some(end) = words.iter().position(|w| w.starts_with(['>', '&', '|'])) {
            words.truncate(end);
        }
        words
    }

    /// The words from the generator's program on, parsed with its own
    /// flags, the shell's `$variables` standing in as 1.
    fn generator_command(mut words: Vec<String>) -> Cmd {
        let program = words
            .iter()
            .position(|w| w.ends_with("switchboard-loadtests") || w == "$generator")
            .expect("the command runs the generator");
        words.drain(..program);
        words[0] = "switchboard-loadtests".into();
        for w in &mut words[1..] {
            if w.starts_with('$') {
                *w = "1".into();
            }
        }
        match Cli::try_parse_from(&words) {
            Ok(cli) => cli.cmd,
            Err(e) => panic!("{words:?}: {e}"),
        }
    }

    /// The generator's command line in `script`, from the line where
    /// `marker` is.
    fn scripts_command(script: &str, marker: &str) -> Cmd {
        generator_command(command_words(script, marker))
    }

    /// The words of one scenario's generator command in
    /// loadtests/callgrind.sh, flamegraph.sh or syscalls.sh:
    /// `start_generator`'s command with the flags its call for `scenario`
    /// passes in place of `"$@"`.
    fn scenario_words(script: &str, scenario: &str) -> Vec<String> {
        let mut words = command_words(script, "\"$generator\" run \"$@\"");
        let own = command_words(script, &format!("start_generator --scenario {scenario}"));
        let at = words
            .iter()
            .position(|w| w == "$@")
            .expect("start_generator passes its arguments on");
        words.splice(at..=at, own.into_iter().skip(1));
        words
    }

    fn scenario_command(script: &str, scenario: &str) -> Cmd {
        generator_command(scenario_words(script, scenario))
    }

    /// scripts/build-pgo.sh trains the server with `all` and is too slow
    /// for CI to run (two whole-program builds): a renamed flag would only
    /// show when someone next builds with it. This parses its command line.
    #[test]
    fn the_pgo_scripts_training_command_parses() {
        let script = include_str!("../../scripts/build-pgo.sh");
        let Cmd::All(all) = scripts_command(script, "switchboard-loadtests\" all") else {
            panic!("the script's command is not `all`")
        };
        assert_eq!(all.idle_connections, 4000);
    }

    /// The catalog a script's call of loadtests/server.sh's `start_server`
    /// (from the line where `marker` is) gives the server: (teams, reps).
    fn servers_catalog(script: &str, marker: &str) -> (usize, usize) {
        let server = include_str!("../server.sh");
        let Cmd::Catalog { .. } = scripts_command(server, "\"$generator\" catalog") else {
            panic!("server.sh's catalog command is not `catalog`")
        };
        let words = command_words(script, marker);
        let at = words
            .iter()
            .position(|w| w == "start_server")
            .expect("the line calls start_server");
        let number = |i: usize| -> usize {
            let w = &words[at + i];
            w.parse().unwrap_or_else(|_| panic!("{w} is not a count"))
        };
        (number(3), number(4))
    }

    /// The catalog loadtests/server.sh's `start_under_valgrind` gives the
    /// server for callgrind.sh and dhat.sh: (teams, reps).
    fn valgrind_servers_catalog() -> (usize, usize) {
        servers_catalog(include_str!("../server.sh"), "start_server \"$dir\"")
    }

    /// loadtests/callgrind.sh needs valgrind and minutes, so CI does not
    /// run it either; the same check for its generator commands, one per
    /// scenario it counts.
    #[test]
    fn the_callgrind_scripts_generator_commands_parse() {
        let script = include_str!("../callgrind.sh");
        let (teams, reps) = valgrind_servers_catalog();
        let Cmd::Run(join) = scenario_command(script, "join-alert") else {
            panic!("the script's join command is not `run`")
        };
        assert!(matches!(join.scenario, Scenario::JoinAlert));
        assert_eq!((join.reps, join.teams), (reps, teams));
        assert_eq!((join.reps, join.teams), (100, 10));
        let Cmd::Run(routing) = scenario_command(script, "routing") else {
            panic!("the script's routing command is not `run`")
        };
        assert!(matches!(routing.scenario, Scenario::Routing));
        assert_eq!((routing.reps, routing.teams), (reps, teams));
        assert_eq!(routing.connections, 1);
        let Cmd::Run(chat) = scenario_command(script, "chat") else {
            panic!("the script's chat command is not `run`")
        };
        assert!(matches!(chat.scenario, Scenario::Chat));
        assert_eq!(chat.teams, teams);
        assert_eq!((chat.connections, chat.balls), (1, 1));
    }

    /// loadtests/dhat.sh likewise: its waiting customers go to the teams
    /// of the catalog the server was given.
    #[test]
    fn the_dhat_scripts_generator_command_parses() {
        let script = include_str!("../dhat.sh");
        let Cmd::Run(idle) = scripts_command(script, "\"$generator\" run --scenario idle") else {
            panic!("the script's command is not `run`")
        };
        assert!(matches!(idle.scenario, Scenario::Idle));
        assert_eq!(idle.teams, valgrind_servers_catalog().0);
    }

    /// `all` with its default flags, the run of record's.
    fn alls_defaults() -> AllArgs {
        let Cmd::All(all) = generator_command(vec![
            "switchboard-loadtests".into(),
            "all".into(),
            "--server-bin".into(),
            "x".into(),
        ]) else {
            panic!("`all` does not parse")
        };
        all
    }

    /// Checks that `run`, a script's command for `scenario`, gives the
    /// generator the flags `all` gives that scenario.
    fn assert_runs_as_all(run: &RunArgs, all: &AllArgs, scenario: Scenario, flag: &str) {
        let want = all.run_args(scenario, Protocol::Switchboard, 1, 1, Path::new("x"));
        assert_eq!(run.scenario, scenario);
        // The flags the scenario reads: only join to alert has a rate,
        // and only chat's customers keep lines in flight (`--balls`).
        let flags = |r: &RunArgs| {
            let rate = (scenario == Scenario::JoinAlert).then_some(r.rate);
            let balls = (scenario == Scenario::Chat).then_some(r.balls);
            (r.connections, rate, r.reps, r.teams, balls)
        };
        assert_eq!(flags(run), flags(&want), "{flag}");
        assert_eq!(run.message_bytes, want.message_bytes, "{flag}");
    }

    /// `script` with each numeric default it gives a variable
    /// (`teams=${TEAMS:-100}`) in place of the variable's uses (`"$teams"`
    /// becomes `"100"`, whose quotes [`shell_words`] drops), so that its
    /// commands are checked as they run when nobody overrides them.
    fn with_numeric_defaults(script: &str) -> String {
        let mut out = script.to_owned();
        for line in script.lines() {
            let Some((name, rest)) = line.trim().split_once("=${") else {
                continue;
            };
            let Some((_, value)) = rest.strip_suffix('}').and_then(|r| r.split_once(":-")) else {
                continue;
            };
            let is_name =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if is_name && !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
                out = out.replace(&format!("${name}"), value);
            }
        }
        out
    }

    #[test]
    fn numeric_defaults_stand_in_for_their_variables_and_nothing_else() {
        let script =
            "teams=${TEAMS:-100}\nserver=${2:-target/x}\nrun --teams \"$teams\" $teams $server\n";
        assert_eq!(
            with_numeric_defaults(script).lines().last(),
            Some("run --teams \"100\" 100 $server")
        );
    }

    /// loadtests/flamegraph.sh samples each scenario at the scale of the
    /// run of record: its catalog and generator flags are `all`'s own
    /// unless `TEAMS` says otherwise.
    #[test]
    fn the_flamegraph_scripts_commands_are_alls() {
        let script = &with_numeric_defaults(include_str!("../flamegraph.sh"));
        let all = alls_defaults();
        assert_eq!(
            servers_catalog(script, "start_server \"$out\""),
            (all.teams, all.reps)
        );
        for (scenario, flag) in [
            (Scenario::JoinAlert, "join-alert"),
            (Scenario::Routing, "routing"),
            (Scenario::Chat, "chat"),
        ] {
            let Cmd::Run(run) = scenario_command(script, flag) else {
                panic!("the script's {flag} command is not `run`")
            };
            assert_runs_as_all(&run, &all, scenario, flag);
        }
    }

    /// loadtests/syscalls.sh counts calls at the run of record's scale
    /// too, against Switchboard and the relays alike.
    #[test]
    fn the_syscalls_scripts_commands_are_alls() {
        let script = include_str!("../syscalls.sh");
        let all = alls_defaults();
        assert_eq!(
            servers_catalog(script, "start_server \"$out\""),
            (all.teams, all.reps)
        );
        for (scenario, flag) in [(Scenario::Routing, "routing"), (Scenario::Chat, "chat")] {
            for protocol in ["switchboard", "relay"] {
                let words = scenario_words(script, flag)
                    .into_iter()
                    .map(|w| match w.as_str() {
                        "$protocol" => protocol.to_string(),
                        _ => w,
                    })
                    .collect();
                let Cmd::Run(run) = generator_command(words) else {
                    panic!("the script's {flag} command is not `run`")
                };
                assert_eq!(run.protocol.as_str(), protocol, "{flag}");
                assert_runs_as_all(&run, &all, scenario, flag);
            }
        }
    }
}
