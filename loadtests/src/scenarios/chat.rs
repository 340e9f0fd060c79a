//! Scenario 4, chat relay: messages per second between customers and reps
//! in active sessions.
//!
//! `connections` sessions are started and accepted (one rep per team, reps
//! `0..teams`). Then each session plays ping-pong with `balls` messages in
//! flight: the customer says something, the rep answers when it arrives,
//! the customer answers that, and so on. A message counts when it reaches
//! the other side; its latency is from the send to that arrival. Every
//! Switchboard chat line is a durable write. The relay variant plays the
//! same game between pairs of relay connections.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use switchboard::client::Pushed;
use switchboard::protocol::{Entry, Event, RequestBody};
use tokio_tungstenite::tungstenite::Message;

use super::{
    login_reps, since_stamp, stamp, timed_bar, Errors, Params, Protocol, ScenarioResult,
    ServerWatch, Target,
};
use crate::stats::Recorder;
use crate::{catalog, relay};

/// Set-up (sessions started and accepted) may take this long at most.
const SETUP_LIMIT: Duration = Duration::from_secs(120);
const WARMUP: Duration = Duration::from_secs(1);

pub async fn run(t: &Target, p: &Params) -> anyhow::Result<ScenarioResult> {
    match p.protocol {
        Protocol::Switchboard => run_switchboard(t, p).await,
        Protocol::Relay => run_relay(t, p).await,
    }
}

/// The shared clock of a run: set-up, then the measured window.
struct Phase {
    base: Instant,
    go: AtomicBool,
    /// Messages delivered inside the measured window.
    counting: AtomicBool,
    delivered: AtomicU64,
    stop: AtomicBool,
}

impl Phase {
    fn new() -> Arc<Phase> {
        Arc::new(Phase {
            base: Instant::now(),
            go: AtomicBool::new(false),
            counting: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        })
    }

    fn delivered(&self, rec: &Recorder, sent: u64) {
        if self.counting.load(Ordering::Relaxed) {
            self.delivered.fetch_add(1, Ordering::Relaxed);
            rec.record(since_stamp(self.base, sent));
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Text `c|<stamp>|padding` or `r|...`.
fn text(who: char, stamp: u64, size: usize) -> String {
    let mut s = format!("{who}|{stamp}|");
    while s.len() < size {
        s.push('x');
    }
    s
}

fn parse(text: &str) -> Option<(char, u64)> {
    let mut parts = text.splitn(3, '|');
    let who = parts.next()?.chars().next()?;
    let stamp = parts.next()?.parse().ok()?;
    Some((who, stamp))
}

async fn run_switchboard(t: &Target, p: &Params) -> anyhow::Result<ScenarioResult> {
    let mut r = ScenarioResult::new("chat", p);
    let teams = p.teams.max(1);
    let reps = login_reps(t, teams, 16, false).await?;
    let errors = Arc::new(Errors::default());
    let phase = Phase::new();
    let latency = Arc::new(Recorder::new(Instant::now()));
    let active = Arc::new(AtomicU64::new(0));
    let size = p.message_bytes;
    let mut tasks = Vec::new();
    for mut rep in reps {
        let (errors, phase, latency) = (errors.clone(), phase.clone(), latency.clone());
        tasks.push(tokio::spawn(async move {
            while !phase.stopped() {
                match rep.next_pushed(Duration::from_millis(200)).await {
                    Some(Pushed::Event {
                        event: Event::QueueEntered { session, .. },
                        ..
                    }) => {
                        let id = session.session.clone();
                        if let Err(e) = rep.request(RequestBody::Accept { session: id }).await {
                            errors.add(format!("accept: {e}"));
                        }
                    }
                    Some(Pushed::Event {
                        event: Event::Chat { session, line },
                        ..
                    }) => {
                        let Some(('c', sent)) = parse(&line.text) else {
                            continue;
                        };
                        phase.delivered(&latency, sent);
                        if phase.stopped() {
                            break;
                        }
                        let body = RequestBody::Chat {
                            session: Some(session),
                            text: text('r', stamp(phase.base), size),
                        };
                        if let Err(e) = rep.request(body).await {
                            errors.add(format!("rep chat: {e}"));
                        }
                    }
                    Some(Pushed::Closed) => break,
                    _ => {}
                }
            }
            rep.close().await;
        }));
    }
    let pb = super::bar(p.connections as u64, "chat set-up");
    for s in 0..p.connections {
        let (t, errors, phase, latency, active) = (
            t.clone(),
            errors.clone(),
            phase.clone(),
            latency.clone(),
            active.clone(),
        );
        let balls = p.balls.max(1);
        tasks.push(tokio::spawn(async move {
            let mut c = match t.customer(s).await {
                Ok(c) => c,
                Err(e) => return errors.add(format!("connect: {e}")),
            };
            let entry = Entry::IssueForm {
                issue_type: catalog::issue_type(s % teams),
            };
            if let Err(e) = c
                .start_session(entry, &format!("chat{s}"), "Load Test Ltd", "chat")
                .await
            {
                return errors.add(format!("start_session: {e}"));
            }
            if c.wait_event(SETUP_LIMIT, |e| matches!(e, Event::RepJoined { .. }))
                .await
                .is_none()
            {
                return errors.add("no rep joined");
            }
            active.fetch_add(1, Ordering::Relaxed);
            while !phase.go.load(Ordering::Relaxed) && !phase.stopped() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            for _ in 0..balls {
                let body = RequestBody::Chat {
                    session: None,
                    text: text('c', stamp(phase.base), size),
                };
                if let Err(e) = c.request(body).await {
                    return errors.add(format!("customer chat: {e}"));
                }
            }
            while !phase.stopped() {
                match c.next_pushed(Duration::from_millis(200)).await {
                    Some(Pushed::Event {
                        event: Event::Chat { line, .. },
                        ..
                    }) => {
                        let Some(('r', sent)) = parse(&line.text) else {
                            continue;
                        };
                        phase.delivered(&latency, sent);
                        if phase.stopped() {
                            break;
                        }
                        let body = RequestBody::Chat {
                            session: None,
                            text: text('c', stamp(phase.base), size),
                        };
                        if let Err(e) = c.request(body).await {
                            errors.add(format!("customer chat: {e}"));
                        }
                    }
                    Some(Pushed::Closed) => break,
                    _ => {}
                }
            }
            c.close().await;
        }));
    }
    let setup_deadline = Instant::now() + SETUP_LIMIT;
    while (active.load(Ordering::Relaxed) as usize) + (errors.total() as usize) < p.connections
        && Instant::now() < setup_deadline
    {
        pb.set_position(active.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pb.finish_and_clear();
    let ready = active.load(Ordering::Relaxed) as usize;
    if ready < p.connections {
        // A measurement of fewer pairs than asked for is not the one asked
        // for; and a customer whose accept was refused would wait out its
        // whole SETUP_LIMIT for a rep before the run could end.
        for task in &tasks {
            task.abort();
        }
        anyhow::bail!(
            "chat set-up: {ready} of {} sessions were started and accepted; {}",
            p.connections,
            setup_failure(&errors.first())
        );
    }
    let (delivered, secs, usage) = measure(&phase, t.server_pid, p.duration, "chat").await;
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
    }
    finish(
        &mut r,
        delivered,
        secs,
        active.load(Ordering::Relaxed),
        &errors,
        &latency,
    );
    r.server = usage;
    Ok(r)
}

/// Why chat's set-up fell short, from its first errors, with what to do
/// about the one a user can cause.
fn setup_failure(first: &[String]) -> String {
    let Some(error) = first.first() else {
        return format!("the rest were not ready within {} s", SETUP_LIMIT.as_secs());
    };
    let hint = if error.contains("too_many_sessions") {
        ". Each session is accepted by its team's rep (rep i serves team i, one \
         rep for each of --teams), and a rep runs at most the server's \
         supervisor.max_sessions_per_rep sessions at once (5 by default): ask for \
         fewer --connections or more --teams"
    } else {
        ""
    };
    format!("first error: {error}{hint}")
}

/// Starts the game, warms up, counts over `duration`, stops.
async fn measure(
    phase: &Phase,
    pid: Option<u32>,
    duration: Duration,
    what: &str,
) -> (u64, f64, Option<super::ServerUsage>) {
    phase.go.store(true, Ordering::Relaxed);
    tokio::time::sleep(WARMUP).await;
    let watch = ServerWatch::start(pid);
    let started = Instant::now();
    phase.counting.store(true, Ordering::Relaxed);
    let pb = timed_bar(duration, what);
    let end = started + duration;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(250).min(end - Instant::now())).await;
        pb.set_position(started.elapsed().as_secs());
        pb.set_message(format!(
            "{} messages",
            phase.delivered.load(Ordering::Relaxed)
        ));
    }
    phase.counting.store(false, Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let usage = watch.finish();
    phase.stop.store(true, Ordering::Relaxed);
    pb.finish_and_clear();
    (phase.delivered.load(Ordering::Relaxed), secs, usage)
}

fn finish(
    r: &mut ScenarioResult,
    delivered: u64,
    secs: f64,
    pairs: u64,
    errors: &Errors,
    latency: &Recorder,
) {
    r.count("messages_delivered", delivered);
    r.count("active_pairs", pairs);
    r.count("errors", errors.total());
    r.figure("messages_per_sec", delivered as f64 / secs.max(1e-9));
    r.figure("measured_secs", secs);
    r.latency
        .insert("message_delivery".into(), latency.summary());
    r.series.insert("message_delivery".into(), latency.series());
    r.errors = errors.first();
}

async fn run_relay(t: &Target, p: &Params) -> anyhow::Result<ScenarioResult> {
    let mut r = ScenarioResult::new("chat", p);
    let errors = Arc::new(Errors::default());
    let phase = Phase::new();
    let latency = Arc::new(Recorder::new(Instant::now()));
    let pairs = p.connections.max(1);
    let size = p.message_bytes + 16;
    // Open both ends of every pair first, so each knows the other's id.
    let mut ends: HashMap<usize, relay::RelayClient> = HashMap::new();
    let pb = super::bar(2 * pairs as u64, "relay set-up");
    for i in 0..2 * pairs {
        ends.insert(i, relay::connect(t.url(i), t.source(i), false).await?);
        pb.inc(1);
    }
    pb.finish_and_clear();
    let ids: Vec<u64> = (0..2 * pairs).map(|i| ends[&i].id).collect();
    let mut tasks = Vec::new();
    for i in 0..2 * pairs {
        let mut c = ends.remove(&i).expect("opened above");
        let peer = ids[i ^ 1];
        let starts = i % 2 == 0;
        let (errors, phase, latency) = (errors.clone(), phase.clone(), latency.clone());
        let balls = p.balls.max(1);
        tasks.push(tokio::spawn(async move {
            while !phase.go.load(Ordering::Relaxed) && !phase.stopped() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if starts {
                for _ in 0..balls {
                    if let Err(e) = c
                        .sink
                        .send(relay::frame(peer, stamp(phase.base), size))
                        .await
                    {
                        return errors.add(e);
                    }
                }
            }
            while !phase.stopped() {
                match tokio::time::timeout(Duration::from_millis(200), c.stream.next()).await {
                    Ok(Some(Ok(Message::Binary(b)))) => {
                        if let Some(sent) = relay::stamp_of(&b) {
                            phase.delivered(&latency, sent);
                        }
                        if phase.stopped() {
                            break;
                        }
                        if let Err(e) = c
                            .sink
                            .send(relay::frame(peer, stamp(phase.base), size))
                            .await
                        {
                            errors.add(e);
                            break;
                        }
                    }
                    Ok(None) | Ok(Some(Err(_))) => break,
                    _ => {}
                }
            }
        }));
    }
    let (delivered, secs, usage) = measure(&phase, t.server_pid, p.duration, "relay chat").await;
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
    }
    finish(&mut r, delivered, secs, pairs as u64, &errors, &latency);
    r.server = usage;
    Ok(r)
}
