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
//! Both also report `generator_lag`: how long a task the generator wakes
//! waits for its core ([`lag_probe`]). Every latency here is measured by
//! the generator, so it includes that wait; the two variants load the
//! generator very differently (a customer's connection, join and end and
//! ten alerts read per join, against one echo), and the lag says how much
//! of a tail is the generator's own.
//!
//! Both run `WARMUP` (2 s) longer than the measured `duration` and leave the
//! warm-up out of the percentiles (not out of the plot): in the first
//! second every connection handles its first frame, and that cold start
//! alone set the p99 of a 5 s run, the relay's most of all (1 to 2 ms in
//! its first second, 0.1 ms after).
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
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

type Pending = Arc<Mutex<HashMap<String, Sent>>>;

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

async fn run_switchboard(t: &Target, p: &Params) -> anyhow::Result<ScenarioResult> {
    let mut r = ScenarioResult::new("join_alert", p);
    let reps = login_reps(t, p.reps, 16, true).await?;
    let errors = Arc::new(Errors::default());
    let pending: Pending = Arc::default();
    let start = Instant::now();
    let alerts = Arc::new(Recorder::after_warmup(start, WARMUP));
    let at_socket = Arc::new(Recorder::after_warmup(start, WARMUP));
    let unstamped = Arc::new(AtomicU64::new(0));
    let joins = Arc::new(Recorder::after_warmup(start, WARMUP));
    let joined = Arc::new(AtomicU64::new(0));
    let fanout = Arc::new(AtomicU64::new(0));
    let run_for = WARMUP + p.duration;
    let stop_at = start + run_for + DRAIN + STAY;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut rep_tasks = Vec::new();
    for mut rep in reps {
        let pending = pending.clone();
        let (alerts, at_socket, unstamped) = (alerts.clone(), at_socket.clone(), unstamped.clone());
        let fanout = fanout.clone();
        let stop = stop.clone();
        rep_tasks.push(tokio::spawn(async move {
            while Instant::now() < stop_at && !stop.load(Ordering::Relaxed) {
                match rep.next_pushed_at(Duration::from_millis(200)).await {
                    Some((
                        Pushed::Event {
                            event: Event::QueueEntered { session, .. },
                            ..
                        },
                        arrived,
                    )) => {
                        fanout.fetch_add(1, Ordering::Relaxed);
                        let sent = pending
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&session.customer_name);
                        if let Some(sent) = sent {
                            alerts.record(sent.at.elapsed());
                            record_arrival(&at_socket, &unstamped, Some(sent.wall), arrived);
                        }
                    }
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
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let skipped = AtomicU64::new(0);
    let pb = timed_bar(run_for, "join-alert");
    let mut customers = Vec::new();
    for (i, offset) in (0..).zip(arrival_offsets(total, p.rate, p.arrivals)) {
        let at = start + offset;
        tokio::time::sleep_until(at.into()).await;
        pb.set_position(start.elapsed().as_secs());
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let (t, pending, joins, joined, errors) = (
            t.clone(),
            pending.clone(),
            joins.clone(),
            joined.clone(),
            errors.clone(),
        );
        let teams = p.teams.max(1);
        customers.push(tokio::spawn(async move {
            let _permit = permit;
            let i = i as usize;
            let name = format!("ja{i}");
            let mut c = match t.customer(i).await {
                Ok(c) => c,
                Err(e) => return errors.add(format!("connect: {e}")),
            };
            let sent = Sent {
                at: Instant::now(),
                wall: SystemTime::now(),
            };
            pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone(), sent);
            let entry = Entry::IssueForm {
                issue_type: catalog::issue_type(i % teams),
            };
            match c.start_session(entry, &name, "Load Test Ltd", "join").await {
                Ok(_) => {
                    joins.record(sent.at.elapsed());
                    joined.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&name);
                    return errors.add(format!("start_session: {e}"));
                }
            }
            tokio::time::sleep(STAY).await;
            if let Err(e) = c.request(RequestBody::EndSession { session: None }).await {
                errors.add(format!("end_session: {e}"));
            }
            c.close().await;
        }));
    }
    pb.finish_and_clear();
    let join_secs = start.elapsed().as_secs_f64();
    let _ = probe.await;
    for c in customers {
        let _ = tokio::time::timeout_at((stop_at + Duration::from_secs(30)).into(), c).await;
    }
    // Whatever alert is still missing after the drain never came.
    while Instant::now() < stop_at && !pending.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in rep_tasks {
        let _ = t.await;
    }
    let missing = pending.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
    r.count("customers", total);
    r.count("alerts_after_warmup", alerts.summary().count);
    r.count("alerts_unstamped", unstamped.load(Ordering::Relaxed));
    r.count("alerts_missing", missing);
    r.count("alert_fanout_events", fanout.load(Ordering::Relaxed));
    r.count("skipped_ticks", skipped.load(Ordering::Relaxed));
    r.count("errors", errors.total());
    r.count("reps", p.reps as u64);
    r.figure("join_phase_secs", join_secs);
    r.figure(
        "achieved_joins_per_sec",
        joined.load(Ordering::Relaxed) as f64 / join_secs.max(1e-9),
    );
    r.figure("warmup_secs", WARMUP.as_secs_f64());
    r.latency.insert("join_to_alert".into(), alerts.summary());
    r.latency
        .insert("join_to_alert_socket".into(), at_socket.summary());
    r.latency.insert("join_reply".into(), joins.summary());
    r.latency.insert("generator_lag".into(), lag.summary());
    r.series.insert("join_to_alert".into(), alerts.series());
    r.series
        .insert("join_to_alert_socket".into(), at_socket.series());
    r.server = watch.finish();
    r.errors = errors.first();
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
