//! Scenario 3, routing throughput: whole sessions per second through join,
//! alert, accept and end, every step durable.
//!
//! One rep per team is logged in (reps `0..teams`), so an alert has exactly
//! one taker and no accept is lost to a race. `connections` customer lanes
//! run closed loops: connect, join the lane's team queue, wait for the
//! session to end, leave, again. Reps accept on the alert, then end the
//! session. The durable writes per session are read from the server's
//! /metrics (`switchboard_store_write_seconds_count`).
//!
//! The relay variant does the same connections and requests with no queue
//! and no storage (see [`run_relay`]), so the ratio of the two says what
//! Switchboard's own work costs per session on top of its WebSocket stack.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use switchboard::client::{Missed, Pushed};
use switchboard::protocol::{Entry, Event, RequestBody};
use tokio_tungstenite::tungstenite::Message;

use super::{
    login_reps, scrape, timed_bar, Errors, Params, Protocol, ScenarioResult, ServerWatch, Target,
};
use crate::stats::Recorder;
use crate::{catalog, relay};

/// How long a customer waits for their session to end before giving up.
const SESSION_LIMIT: Duration = Duration::from_secs(15);
/// Warm-up before the measured window.
const WARMUP: Duration = Duration::from_secs(2);

const WRITES: &str = "switchboard_store_write_seconds_count";

pub async fn run(t: &Target, p: &Params) -> anyhow::Result<ScenarioResult> {
    match p.protocol {
        Protocol::Switchboard => run_switchboard(t, p).await,
        Protocol::Relay => run_relay(t, p).await,
    }
}

async fn run_switchboard(t: &Target, p: &Params) -> anyhow::Result<ScenarioResult> {
    let mut r = ScenarioResult::new("routing", p);
    let teams = p.teams.max(1);
    let reps = login_reps(t, teams, 16, false).await?;
    let errors = Arc::new(Errors::default());
    let tally = Tally::new(p.duration);
    let stop_at = tally.to + SESSION_LIMIT;
    let accepts = Arc::new(Recorder::new(tally.start));
    let stop = Arc::new(AtomicBool::new(false));
    let mut rep_tasks = Vec::new();
    for mut rep in reps {
        let (errors, accepts, stop) = (errors.clone(), accepts.clone(), stop.clone());
        rep_tasks.push(tokio::spawn(async move {
            while Instant::now() < stop_at && !stop.load(Ordering::Relaxed) {
                match rep.next_pushed(Duration::from_millis(200)).await {
                    Some(Pushed::Event {
                        event: Event::QueueEntered { session, .. },
                        ..
                    }) => {
                        let id = session.session.clone();
                        let t0 = Instant::now();
                        if let Err(e) = rep
                            .request(RequestBody::Accept {
                                session: id.clone(),
                            })
                            .await
                        {
                            errors.add(format!("accept: {e}"));
                            continue;
                        }
                        accepts.record(t0.elapsed());
                        if let Err(e) = rep
                            .request(RequestBody::EndSession { session: Some(id) })
                            .await
                        {
                            errors.add(format!("end_session: {e}"));
                        }
                    }
                    Some(Pushed::Closed) => break,
                    _ => {}
                }
            }
            rep.close().await;
        }));
    }
    let mut lanes = Vec::new();
    for lane in 0..p.connections.max(1) {
        let (t, errors, tally) = (t.clone(), errors.clone(), tally.clone());
        lanes.push(tokio::spawn(async move {
            stagger(lane).await;
            let mut k = 0usize;
            while Instant::now() < tally.to && k < 1_000_000 {
                let i = lane + k * 100_000;
                k += 1;
                let mut c = match t.customer(i).await {
                    Ok(c) => c,
                    Err(e) => {
                        errors.add(format!("connect: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let t0 = Instant::now();
                let entry = Entry::IssueForm {
                    issue_type: catalog::issue_type(lane % teams),
                };
                if let Err(e) = c
                    .start_session(entry, &format!("rt{lane}-{k}"), "Load Test Ltd", "route")
                    .await
                {
                    errors.add(format!("start_session: {e}"));
                    c.close().await;
                    continue;
                }
                let ended = c
                    .wait_for(SESSION_LIMIT, |e| matches!(e, Event::SessionEnded { .. }))
                    .await;
                // A server that closed the connection (one that stopped,
                // say) is not a session that took too long.
                match ended {
                    Ok(_) => tally.ended(t0),
                    Err(Missed::Closed) => {
                        errors.add("the server closed the connection before the session ended")
                    }
                    Err(Missed::TimedOut) => errors.add("session did not end in time"),
                }
                c.close().await;
            }
        }));
    }
    tokio::time::sleep_until(tally.from.into()).await;
    let http = t.http_base();
    let writes_before = match &http {
        Some(h) => scrape(h, WRITES).await,
        None => None,
    };
    let usage = tally.watch(t, p, "routing").await;
    let writes_after = match &http {
        Some(h) => scrape(h, WRITES).await,
        None => None,
    };
    for l in lanes {
        let _ = tokio::time::timeout_at(stop_at.into(), l).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in rep_tasks {
        let _ = t.await;
    }
    let completed = tally.completed();
    let secs = p.duration.as_secs_f64();
    record(&mut r, p, teams, &tally, &errors, usage);
    if let (Some(a), Some(b)) = (writes_after, writes_before) {
        r.figure("store_writes_per_sec", (a - b) / secs);
        if completed > 0 {
            r.figure("store_writes_per_session", (a - b) / completed as f64);
        }
    }
    r.latency.insert("accept_reply".into(), accepts.summary());
    Ok(r)
}

/// The figures both variants report.
fn record(
    r: &mut ScenarioResult,
    p: &Params,
    teams: usize,
    tally: &Tally,
    errors: &Errors,
    usage: Option<super::ServerUsage>,
) {
    let completed = tally.completed();
    r.count("sessions_completed", completed);
    r.count("errors", errors.total());
    r.count("reps", teams as u64);
    r.count("customer_lanes", p.connections as u64);
    r.figure(
        "sessions_per_sec",
        completed as f64 / p.duration.as_secs_f64(),
    );
    r.latency
        .insert("session_join_to_end".into(), tally.sessions.summary());
    r.series
        .insert("session_join_to_end".into(), tally.sessions.series());
    r.server = usage;
    r.errors = errors.first();
}

/// Whole sessions over a run, shared by its lanes: every session's join to
/// end time, and a count of those that ended inside the measured window
/// (after the warm-up, for the run's duration).
struct Tally {
    start: Instant,
    from: Instant,
    to: Instant,
    sessions: Recorder,
    done: AtomicU64,
}

impl Tally {
    fn new(duration: Duration) -> Arc<Tally> {
        let start = Instant::now();
        let from = start + WARMUP;
        Arc::new(Tally {
            start,
            from,
            to: from + duration,
            sessions: Recorder::new(start),
            done: AtomicU64::new(0),
        })
    }

    /// A session whose customer joined at `joined` has just ended.
    fn ended(&self, joined: Instant) {
        let now = Instant::now();
        self.sessions.record(now - joined);
        if now >= self.from && now < self.to {
            self.done.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn completed(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Watches the server over the measured window with a progress bar of
    /// sessions completed; call it at the window's start.
    async fn watch(&self, t: &Target, p: &Params, what: &str) -> Option<super::ServerUsage> {
        let watch = ServerWatch::start(t.server_pid);
        let pb = timed_bar(p.duration, what);
        while Instant::now() < self.to {
            tokio::time::sleep(Duration::from_millis(250)).await;
            pb.set_position(self.from.elapsed().as_secs());
            pb.set_message(format!("{} sessions", self.completed()));
        }
        pb.finish_and_clear();
        watch.finish()
    }
}

/// Staggers the lanes' first connections over the warm-up.
async fn stagger(lane: usize) {
    let secs = (lane as f64 / 1000.0).min(1.0);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
}

/// What a relay frame of this scenario says, in the frame's stamp field:
/// the customer's id for a join (so the rep knows whom to answer), these
/// two for the rep's answers.
const ACCEPTED: u64 = 1;
const ENDED: u64 = 2;

/// The relay baseline: a routed session's connection and requests, and
/// nothing else. `teams` rep connections stay open. Each customer lane
/// loops: open a new WebSocket (the relay sends it its id), send a frame to
/// itself and read it back (for the hello and its reply), send a join to
/// its lane's rep and wait for the rep's end; the rep answers each join
/// with an accept and an end sent to that customer; the customer closes.
/// Four frames in and five out per session, where Switchboard's session is
/// four requests in and eleven frames out (four replies and seven events)
/// and about four durable writes: those are Switchboard's own work.
async fn run_relay(t: &Target, p: &Params) -> anyhow::Result<ScenarioResult> {
    let mut r = ScenarioResult::new("routing", p);
    let teams = p.teams.max(1);
    let size = p.message_bytes + 16;
    let errors = Arc::new(Errors::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut rep_ids = Vec::new();
    let mut rep_tasks = Vec::new();
    for i in 0..teams {
        let mut rep = relay::connect(t.url(i), t.source(i), false).await?;
        rep_ids.push(rep.id);
        let (errors, stop) = (errors.clone(), stop.clone());
        rep_tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let next = tokio::time::timeout(Duration::from_millis(200), rep.stream.next());
                match next.await {
                    Ok(Some(Ok(Message::Binary(b)))) => {
                        let Some(customer) = relay::stamp_of(&b) else {
                            continue;
                        };
                        for answer in [ACCEPTED, ENDED] {
                            if let Err(e) =
                                rep.sink.send(relay::frame(customer, answer, size)).await
                            {
                                return errors.add(format!("rep answer: {e}"));
                            }
                        }
                    }
                    Ok(None) | Ok(Some(Err(_))) => break,
                    _ => {}
                }
            }
        }));
    }
    let tally = Tally::new(p.duration);
    let mut lanes = Vec::new();
    for lane in 0..p.connections.max(1) {
        let rep = rep_ids[lane % teams];
        let (t, errors, tally) = (t.clone(), errors.clone(), tally.clone());
        lanes.push(tokio::spawn(async move {
            stagger(lane).await;
            let mut k = 0usize;
            while Instant::now() < tally.to {
                let i = lane + k * 100_000;
                k += 1;
                let mut c = match relay::connect(t.url(i), t.source(i), false).await {
                    Ok(c) => c,
                    Err(e) => {
                        errors.add(format!("connect: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let t0 = Instant::now();
                match relay_session(&mut c, rep, size).await {
                    Ok(()) => tally.ended(t0),
                    Err(e) => errors.add(e),
                }
                // Close the way Switchboard's client does: a close frame,
                // then drop the connection without waiting for the answer.
                let _ = c.sink.close().await;
            }
        }));
    }
    tokio::time::sleep_until(tally.from.into()).await;
    let usage = tally.watch(t, p, "relay routing").await;
    for l in lanes {
        let _ = tokio::time::timeout_at((tally.to + SESSION_LIMIT).into(), l).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in rep_tasks {
        let _ = t.await;
    }
    record(&mut r, p, teams, &tally, &errors, usage);
    Ok(r)
}

/// One relay session on an open customer connection: hello (an echo),
/// join, then the rep's accept and end.
async fn relay_session(c: &mut relay::RelayClient, rep: u64, size: usize) -> Result<(), String> {
    let hello = relay::frame(0, 0, size);
    c.sink
        .send(hello)
        .await
        .map_err(|e| format!("hello: {e}"))?;
    let join = relay::frame(rep, c.id, size);
    let mut joined = false;
    loop {
        let next = tokio::time::timeout(SESSION_LIMIT, c.stream.next());
        match next.await {
            Ok(Some(Ok(Message::Binary(b)))) => match relay::stamp_of(&b) {
                Some(0) if !joined => {
                    joined = true;
                    c.sink
                        .send(join.clone())
                        .await
                        .map_err(|e| format!("join: {e}"))?;
                }
                Some(ENDED) => return Ok(()),
                _ => {}
            },
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(format!("session: {e}")),
            Ok(None) => return Err("the relay closed the session".into()),
            Err(_) => return Err("session did not end in time".into()),
        }
    }
}
