//! Scenario 2, join to alert: customers join team queues at a rate, at
//! random times by default (`Arrivals`), while reps are logged in; the
//! time from a customer's `start_session` request to the first rep
//! console that receives the `queue_entered` alert.
//!
//! Each latency is taken twice. `join_to_alert_socket` (the relay's
//! `round_trip_socket`) ends when the alert reached the rep's socket, by
//! the kernel's receive stamp ([`switchboard::client::Arrivals`]): the
//! issue's own measure, and the one the targets use. `join_to_alert`
//! (`round_trip`) ends when the generator read it, as every round before
//! the forty-second measured; the difference is the generator's wait for
//! its own thread.
//!
//! Each customer connects and says hello first (not timed), joins (timed),
//! waits a second in the queue, ends the session and leaves, so the number
//! of open connections stays bounded. The relay variant sends echo frames
//! at the same times over as many connections as there are reps: the bare
//! round trip.
//!
//! With `--team-fanout` the relay variant plays Switchboard's run instead
//! of a round trip ([`run_relay_team`]): customers connect at the same
//! times, each sends one frame that the relay passes to every rep of its
//! team, and a second later a second one (the leaving), then goes. No
//! queue and no storage, only the frames a join makes a server send: the
//! least a server that alerts a team of ten can do, against which
//! Switchboard's own work on a join can be told apart from the fan-out's
//! (docs/performance.md).
//!
//! All three also report `generator_lag`: how long a task the generator
//! wakes waits for its core ([`lag_probe`]). Every latency here is
//! measured by the generator, so it includes that wait; the variants load
//! the generator very differently (a customer's connection, join and end
//! and ten alerts read per join, against one echo), and the lag says how
//! much of a tail is the generator's own.
//!
//! All three run `WARMUP` (2 s) longer than the measured `duration` and
//! leave the warm-up out of the percentiles (not out of the plot): in the first
//! second every connection handles its first frame, and that cold start
//! alone set the p99 of a 5 s run, the relay's most of all (1 to 2 ms in
//! its first second, 0.1 ms after).
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use switchboard::client::Pushed;
use switchboard::protocol::{Entry, Event, RequestBody};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use super::{
    arrival_offsets, login_reps, timed_bar, Errors, Params, Protocol, ScenarioResult, ServerWatch,
    Target,
};
use crate::stats::Recorder;
use crate::{catalog, relay};

/// Customers in flight at once, at most (connect, join, wait, end).
const MAX_IN_FLIGHT: usize = 4000;
/// How long a customer stays in the queue before ending.
const STAY: Duration = Duration::from_secs(1);
/// Run this long before the measured window, at the same rate.
const WARMUP: Duration = Duration::from_secs(2);
/// How long to wait for late alerts after the last join.
const DRAIN: Duration = Duration::from_secs(5);
/// How often the lag probe takes a sample: often enough for a p99 over a
/// few seconds, rarely enough to cost the generator nothing it would
/// notice.
const PROBE_EVERY: Duration = Duration::from_millis(1);

/// Until `until`, every [`PROBE_EVERY`] gives up the generator's thread
/// and records how long the runtime takes to run this task again: the
/// wait of every task ready at that moment (such as a rep's connection
/// whose alert just arrived) plus a turn of the I/O driver. The samples
/// leave out the warm-up, as every latency here does.
fn lag_probe(start: Instant, until: Instant) -> (Arc<Recorder>, tokio::task::JoinHandle<()>) {
    let lag = Arc::new(Recorder::after_warmup(start, WARMUP));
    let rec = lag.clone();
    let probe = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while Instant::now() < until {
            tick.tick().await;
            let yielded = Instant::now();
            tokio::task::yield_now().await;
            rec.record(yielded.elapsed());
        }
    });
    (lag, probe)
}

pub async fn run(t: &Target, p: &Params) -> anyhow::Result<ScenarioResult> {
    match p.protocol {
        Protocol::Switchboard => run_switchboard(t, p).await,
        Protocol::Relay if p.team_fanout => run_relay_team(t, p).await,
        Protocol::Relay => run_relay(t, p).await,
    }
}

/// When a join request went out: by the generator's steady clock, for the
/// latency as read, and by the wall clock, which the kernel's receive
/// stamps use.
#[derive(Clone, Copy)]
struct Sent {
    at: Instant,
    wall: SystemTime,
}

/// What a join run records, both Switchboard's and the team relay's: when
/// each join went out, by its key, until the first rep hears of it, and
/// then how long that took, as read and at the socket.
struct Alerts<K> {
    pending: Mutex<HashMap<K, Sent>>,
    as_read: Recorder,
    at_socket: Recorder,
    unstamped: AtomicU64,
    /// Every alert any rep received, the first of each join and the rest.
    fanout: AtomicU64,
}

impl<K: std::hash::Hash + Eq> Alerts<K> {
    fn new(start: Instant) -> Arc<Self> {
        Arc::new(Alerts {
            pending: Mutex::default(),
            as_read: Recorder::after_warmup(start, WARMUP),
            at_socket: Recorder::after_warmup(start, WARMUP),
            unstamped: AtomicU64::new(0),
            fanout: AtomicU64::new(0),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<K, Sent>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Join `key` goes out now.
    fn sent(&self, key: K) -> Sent {
        let sent = Sent {
            at: Instant::now(),
            wall: SystemTime::now(),
        };
        self.pending().insert(key, sent);
        sent
    }

    /// Join `key` failed: no alert is owed.
    fn withdraw(&self, key: &K) {
        self.pending().remove(key);
    }

    /// A rep heard of join `key`, its socket at `arrived`; the first rep
    /// of each join is the one timed.
    fn alerted(&self, key: &K, arrived: Option<SystemTime>) {
        self.fanout.fetch_add(1, Ordering::Relaxed);
        let sent = self.pending().remove(key);
        if let Some(sent) = sent {
            self.as_read.record(sent.at.elapsed());
            record_arrival(&self.at_socket, &self.unstamped, Some(sent.wall), arrived);
        }
    }

    /// Waits until every join sent has been heard of, or `until`.
    async fn drain(&self, until: Instant) {
        while Instant::now() < until && !self.pending().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The figures both runs report; whatever alert is still owed never
    /// came.
    fn report(&self, r: &mut ScenarioResult, customers: u64, skipped: u64, errors: &Errors) {
        r.count("customers", customers);
        r.count("alerts_after_warmup", self.as_read.summary().count);
        r.count("alerts_unstamped", self.unstamped.load(Ordering::Relaxed));
        r.count("alerts_missing", self.pending().len() as u64);
        r.count("alert_fanout_events", self.fanout.load(Ordering::Relaxed));
        r.count("skipped_ticks", skipped);
        r.count("errors", errors.total());
        r.figure("warmup_secs", WARMUP.as_secs_f64());
        r.latency
            .insert("join_to_alert".into(), self.as_read.summary());
        r.latency
            .insert("join_to_alert_socket".into(), self.at_socket.summary());
        r.series
            .insert("join_to_alert".into(), self.as_read.series());
        r.series
            .insert("join_to_alert_socket".into(), self.at_socket.series());
        r.errors = errors.first();
    }
}

/// Records how long after `sent_wall` a frame reached the socket, or
/// counts it as unstamped when the kernel gave no time (the first frames
/// after the generator starts, before the kernel has stamping on) or a
/// time before the send (the wall clock stepped).
fn record_arrival(
    socket: &Recorder,
    unstamped: &AtomicU64,
    sent_wall: Option<SystemTime>,
    arrived: Option<SystemTime>,
) {
    match (sent_wall, arrived) {
        (Some(sent), Some(arrived)) if arrived >= sent => {
            socket.record(arrived.duration_since(sent).unwrap_or_default())
        }
        _ => {
            unstamped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts customer `i` (`customer(i)`) at each of `total` times at `rate`
/// from `start`, at most [`MAX_IN_FLIGHT`] at once; a customer due while
/// that many are still in flight is skipped and counted. Returns the
/// customers' tasks and how many were skipped.
async fn customers<F, Fut>(
    p: &Params,
    start: Instant,
    total: u64,
    what: &str,
    mut customer: F,
) -> (Vec<tokio::task::JoinHandle<()>>, u64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut skipped = 0;
    let pb = timed_bar(WARMUP + p.duration, what);
    let mut tasks = Vec::new();
    for (i, offset) in (0..).zip(arrival_offsets(total, p.rate, p.arrivals)) {
        tokio::time::sleep_until((start + offset).into()).await;
        pb.set_position(start.elapsed().as_secs());
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        let run = customer(i);
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            run.await
        }));
    }
    pb.finish_and_clear();
    (tasks, skipped)
}

/// After the last customer started: waits for the lag probe, for the
/// customers to leave (at most 30 s past `stop_at`) and for the alerts
/// still owed (until `stop_at`), then stops the reps and waits for them.
async fn wind_down<K: std::hash::Hash + Eq>(
    probe: tokio::task::JoinHandle<()>,
    customers: Vec<tokio::task::JoinHandle<()>>,
    alerts: &Alerts<K>,
    stop_at: Instant,
    stop: &AtomicBool,
    reps: Vec<tokio::task::JoinHandle<()>>,
) {
    let _ = probe.await;
    for c in customers {
        let _ = tokio::time::timeout_at((stop_at + Duration::from_secs(30)).into(), c).await;
    }
    alerts.drain(stop_at).await;
    stop.store(true, Ordering::Relaxed);
    for rep in reps {
        let _ = rep.await;
    }
}

async fn run_switchboard(t: &Target, p: &Params) -> anyhow::Result<ScenarioResult> {
    let mut r = ScenarioResult::new("join_alert", p);
    let reps = login_reps(t, p.reps, 16, true).await?;
    let errors = Arc::new(Errors::default());
    let start = Instant::now();
    let alerts: Arc<Alerts<String>> = Alerts::new(start);
    let joins = Arc::new(Recorder::after_warmup(start, WARMUP));
    let joined = Arc::new(AtomicU64::new(0));
    let run_for = WARMUP + p.duration;
    let stop_at = start + run_for + DRAIN + STAY;
    let stop = Arc::new(AtomicBool::new(false));
    let mut rep_tasks = Vec::new();
    for mut rep in reps {
        let (alerts, stop) = (alerts.clone(), stop.clone());
        rep_tasks.push(tokio::spawn(async move {
            while Instant::now() < stop_at && !stop.load(Ordering::Relaxed) {
                match rep.next_pushed_at(Duration::from_millis(200)).await {
                    Some((
                        Pushed::Event {
                            event: Event::QueueEntered { session, .. },
                            ..
                        },
                        arrived,
                    )) => alerts.alerted(&session.customer_name, arrived),
                    Some((Pushed::Closed, _)) => break,
                    _ => {}
                }
            }
            rep.close().await;
        }));
    }
    let watch = ServerWatch::start(t.server_pid);
    let (lag, probe) = lag_probe(start, start + run_for);
    let total = (p.rate * run_for.as_secs_f64()).round() as u64;
    let teams = p.teams.max(1);
    let (tasks, skipped) = customers(p, start, total, "join-alert", |i| {
        let (t, alerts, joins, joined, errors) = (
            t.clone(),
            alerts.clone(),
            joins.clone(),
            joined.clone(),
            errors.clone(),
        );
        async move {
            let name = format!("ja{i}");
            let mut c = match t.customer(i).await {
                Ok(c) => c,
                Err(e) => return errors.add(format!("connect: {e}")),
            };
            let sent = alerts.sent(name.clone());
            let entry = Entry::IssueForm {
                issue_type: catalog::issue_type(i % teams),
            };
            match c.start_session(entry, &name, "Load Test Ltd", "join").await {
                Ok(_) => {
                    joins.record(sent.at.elapsed());
                    joined.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    alerts.withdraw(&name);
                    return errors.add(format!("start_session: {e}"));
                }
            }
            tokio::time::sleep(STAY).await;
            if let Err(e) = c.request(RequestBody::EndSession { session: None }).await {
                errors.add(format!("end_session: {e}"));
            }
            c.close().await;
        }
    })
    .await;
    let join_secs = start.elapsed().as_secs_f64();
    wind_down(probe, tasks, &alerts, stop_at, &stop, rep_tasks).await;
    alerts.report(&mut r, total, skipped, &errors);
    r.count("reps", p.reps as u64);
    r.figure("join_phase_secs", join_secs);
    r.figure(
        "achieved_joins_per_sec",
        joined.load(Ordering::Relaxed) as f64 / join_secs.max(1e-9),
    );
    r.latency.insert("join_reply".into(), joins.summary());
    r.latency.insert("generator_lag".into(), lag.summary());
    r.server = watch.finish();
    Ok(r)
}

/// The baseline: echo frames through the relay at `rate` per second over
/// `reps` connections; the round trip.
async fn run_relay(t: &Target, p: &Params) -> anyhow::Result<ScenarioResult> {
    let mut r = ScenarioResult::new("join_alert", p);
    let n = p.reps.max(1);
    let errors = Arc::new(Errors::default());
    let mut sinks = Vec::new();
    let base = Instant::now();
    let start = Instant::now();
    let rtt = Arc::new(Recorder::after_warmup(start, WARMUP));
    let at_socket = Arc::new(Recorder::after_warmup(start, WARMUP));
    let unstamped = Arc::new(AtomicU64::new(0));
    let run_for = WARMUP + p.duration;
    let stop_at = start + run_for + DRAIN;
    let mut readers = Vec::new();
    for i in 0..n {
        let c = relay::connect(t.url(i), t.source(i), true).await?;
        sinks.push(Arc::new(tokio::sync::Mutex::new(c.sink)));
        let (mut stream, arrivals) = (c.stream, c.arrivals);
        let (rtt, at_socket, unstamped) = (rtt.clone(), at_socket.clone(), unstamped.clone());
        readers.push(tokio::spawn(async move {
            while Instant::now() < stop_at {
                match tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
                    Ok(Some(Ok(Message::Binary(b)))) => {
                        if let Some(s) = relay::stamp_of(&b) {
                            rtt.record(super::since_stamp(base, s));
                            let arrived = arrivals.as_ref().and_then(|a| a.latest());
                            record_arrival(&at_socket, &unstamped, relay::wall_of(&b), arrived);
                        }
                    }
                    Ok(None) | Ok(Some(Err(_))) => break,
                    _ => {}
                }
            }
        }));
    }
    let watch = ServerWatch::start(t.server_pid);
    let (lag, probe) = lag_probe(start, start + run_for);
    let total = (p.rate * run_for.as_secs_f64()).round() as u64;
    let pb = timed_bar(run_for, "relay rtt");
    let mut sends = Vec::new();
    for (i, offset) in (0..).zip(arrival_offsets(total, p.rate, p.arrivals)) {
        let at = start + offset;
        tokio::time::sleep_until(at.into()).await;
        pb.set_position(start.elapsed().as_secs());
        let sink = sinks[i as usize % n].clone();
        let errors = errors.clone();
        sends.push(tokio::spawn(async move {
            // The size of a small Switchboard request.
            let f = relay::frame_with_wall(0, super::stamp(base), SystemTime::now(), 160);
            if let Err(e) = sink.lock().await.send(f).await {
                errors.add(e);
            }
        }));
    }
    pb.finish_and_clear();
    let _ = probe.await;
    for s in sends {
        let _ = s.await;
    }
    for rd in readers {
        let _ = rd.await;
    }
    r.count("sent", total);
    r.count("received_after_warmup", rtt.summary().count);
    r.count("round_trips_unstamped", unstamped.load(Ordering::Relaxed));
    r.figure("warmup_secs", WARMUP.as_secs_f64());
    r.count("connections", n as u64);
    r.count("errors", errors.total());
    r.latency.insert("round_trip".into(), rtt.summary());
    r.latency
        .insert("round_trip_socket".into(), at_socket.summary());
    r.latency.insert("generator_lag".into(), lag.summary());
    r.series.insert("round_trip".into(), rtt.series());
    r.series
        .insert("round_trip_socket".into(), at_socket.series());
    r.server = watch.finish();
    r.errors = errors.first();
    Ok(r)
}

/// The team baseline: customers at the same times as Switchboard's run,
/// each connecting (not timed), sending one [`relay::team_frame`] to the
/// reps of team `i % teams` (rep `j` is in team `j % teams`, as in the
/// catalog), and after [`STAY`] a second one (the leaving, not timed)
/// before it goes. The latency, as Switchboard's, runs from the send to
/// the first rep that reads the frame: `join_to_alert` as read,
/// `join_to_alert_socket` when it reached that rep's socket.
async fn run_relay_team(t: &Target, p: &Params) -> anyhow::Result<ScenarioResult> {
    let mut r = ScenarioResult::new("join_alert", p);
    let n = p.reps.max(1);
    let teams = p.teams.max(1);
    let errors = Arc::new(Errors::default());
    let start = Instant::now();
    // Keyed by the number a join's frame carries, from 1: the leaving
    // frames carry 0.
    let alerts: Arc<Alerts<u64>> = Alerts::new(start);
    let run_for = WARMUP + p.duration;
    let stop_at = start + run_for + DRAIN + STAY;
    let stop = Arc::new(AtomicBool::new(false));
    let mut members: Vec<Vec<u64>> = vec![Vec::new(); teams];
    let mut readers = Vec::new();
    for i in 0..n {
        let c = relay::connect(t.url(i), t.source(i), true).await?;
        members[catalog::team_of_rep(i, teams)].push(c.id);
        let (sink, mut stream, arrivals) = (c.sink, c.stream, c.arrivals);
        let (alerts, stop) = (alerts.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            // Held open for the run: a rep's connection.
            let _sink = sink;
            while Instant::now() < stop_at && !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
                    Ok(Some(Ok(Message::Binary(b)))) => {
                        if let Some(join) = relay::stamp_of(&b).filter(|j| *j > 0) {
                            let arrived = arrivals.as_ref().and_then(|a| a.latest());
                            alerts.alerted(&join, arrived);
                        }
                    }
                    Ok(None) | Ok(Some(Err(_))) => break,
                    _ => {}
                }
            }
        }));
    }
    let members = Arc::new(members);
    let watch = ServerWatch::start(t.server_pid);
    let (lag, probe) = lag_probe(start, start + run_for);
    let total = (p.rate * run_for.as_secs_f64()).round() as u64;
    let (tasks, skipped) = customers(p, start, total, "relay team", |i| {
        let (t, alerts, members, errors) =
            (t.clone(), alerts.clone(), members.clone(), errors.clone());
        async move {
            let join = i as u64 + 1;
            let team = &members[i % teams];
            // From the customer's own source address, as Switchboard's
            // customers connect (`Target::customer`).
            let mut c = match relay::connect(t.url(i), t.source(i), false).await {
                Ok(c) => c,
                Err(e) => return errors.add(format!("connect: {e}")),
            };
            let sent = alerts.sent(join);
            // The size of a small Switchboard request, as the round trip's.
            let frame = relay::team_frame(team, join, sent.wall, 160);
            if let Err(e) = c.sink.send(frame).await {
                alerts.withdraw(&join);
                return errors.add(format!("join: {e}"));
            }
            tokio::time::sleep(STAY).await;
            let leaving = relay::team_frame(team, 0, SystemTime::now(), 160);
            if let Err(e) = c.sink.send(leaving).await {
                errors.add(format!("leave: {e}"));
            }
            let _ = c.sink.close().await;
        }
    })
    .await;
    wind_down(probe, tasks, &alerts, stop_at, &stop, readers).await;
    alerts.report(&mut r, total, skipped, &errors);
    r.count("reps", n as u64);
    r.latency.insert("generator_lag".into(), lag.summary());
    r.server = watch.finish();
    Ok(r)
}
