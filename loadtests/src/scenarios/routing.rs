//! Scenario 3, routing throughput: whole sessions per second through join,
//! alert, accept and end, every step durable.
//!
//! One rep per team is logged in (reps `0..teams`), so an alert has exactly
//! one taker and no accept is lost to a race. `connections` customer lanes
//! run closed loops: connect, join the lane's team queue, wait for the
//! session to end, leave, again. Reps accept on the alert, then end the
//! session. The durable writes per session are read from the server's
//! /metrics (`switchboard_store_write_seconds_count`).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard::client::Pushed;
use switchboard::protocol::{Entry, Event, RequestBody};

use super::{login_reps, scrape, timed_bar, Errors, Params, ScenarioResult, ServerWatch, Target};
use crate::catalog;
use crate::stats::Recorder;

/// How long a customer waits for their session to end before giving up.
const SESSION_LIMIT: Duration = Duration::from_secs(15);
/// Warm-up before the measured window.
const WARMUP: Duration = Duration::from_secs(2);

const WRITES: &str = "switchboard_store_write_seconds_count";

pub async fn run(t: &Target, p: &Params) -> anyhow::Result<ScenarioResult> {
    let mut r = ScenarioResult::new("routing", p);
    let teams = p.teams.max(1);
    let reps = login_reps(t, teams, 16).await?;
    let errors = Arc::new(Errors::default());
    let start = Instant::now();
    let measure_from = start + WARMUP;
    let measure_to = measure_from + p.duration;
    let stop_at = measure_to + SESSION_LIMIT;
    let sessions = Arc::new(Recorder::new(start));
    let accepts = Arc::new(Recorder::new(start));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
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
        let (t, errors, sessions, done) =
            (t.clone(), errors.clone(), sessions.clone(), done.clone());
        lanes.push(tokio::spawn(async move {
            // Stagger the lanes' first connections over the warm-up.
            let lanes_f = lane as f64 / 1000.0;
            tokio::time::sleep(Duration::from_secs_f64(lanes_f.min(1.0))).await;
            let mut k = 0usize;
            while Instant::now() < measure_to && k < 1_000_000 {
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
                    .wait_event(SESSION_LIMIT, |e| matches!(e, Event::SessionEnded { .. }))
                    .await;
                let now = Instant::now();
                match ended {
                    Some(_) => {
                        sessions.record(now - t0);
                        if now >= measure_from && now < measure_to {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => errors.add("session did not end in time"),
                }
                c.close().await;
            }
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let http = t.http_base();
    let writes_before = match &http {
        Some(h) => scrape(h, WRITES).await,
        None => None,
    };
    let watch = ServerWatch::start(t.server_pid);
    let pb = timed_bar(p.duration, "routing");
    while Instant::now() < measure_to {
        tokio::time::sleep(Duration::from_millis(250)).await;
        pb.set_position(measure_from.elapsed().as_secs());
        pb.set_message(format!("{} sessions", done.load(Ordering::Relaxed)));
    }
    pb.finish_and_clear();
    let usage = watch.finish();
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
    let completed = done.load(Ordering::Relaxed);
    let secs = p.duration.as_secs_f64();
    r.count("sessions_completed", completed);
    r.count("errors", errors.total());
    r.count("reps", teams as u64);
    r.count("customer_lanes", p.connections as u64);
    r.figure("sessions_per_sec", completed as f64 / secs);
    if let (Some(a), Some(b)) = (writes_after, writes_before) {
        r.figure("store_writes_per_sec", (a - b) / secs);
        if completed > 0 {
            r.figure("store_writes_per_session", (a - b) / completed as f64);
        }
    }
    r.latency
        .insert("session_join_to_end".into(), sessions.summary());
    r.latency.insert("accept_reply".into(), accepts.summary());
    r.series
        .insert("session_join_to_end".into(), sessions.series());
    r.server = usage;
    r.errors = errors.first();
    Ok(r)
}
