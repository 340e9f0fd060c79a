//! Scenario 1, idle density: as many connected, waiting customers as the
//! server holds; memory and idle CPU per connection.
//!
//! Switchboard customers say hello and start a session (so each is a
//! waiting session in a team queue, as in a real support center); relay
//! clients just connect. With `procs` above one the connections are opened
//! by copies of this program (`run --child`), each with its share, because
//! one process may only hold 20,000 files here.
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use switchboard::client::Client;
use switchboard::protocol::{Entry, RequestBody};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

use super::{bar, Errors, Params, Protocol, ScenarioResult, ServerWatch, Target};
use crate::{catalog, procstat, relay};

/// Connections opened at once by one process.
const PARALLEL: usize = 128;
/// The longest a ramp may take before the scenario gives up waiting.
const RAMP_LIMIT: Duration = Duration::from_secs(600);
/// Time for the server to settle after the ramp, before measuring.
const SETTLE: Duration = Duration::from_secs(3);

/// One held connection.
pub enum Held {
    Switchboard(Box<Client>),
    Relay(Box<relay::RelayClient>),
}

async fn open_one(t: &Target, p: &Params, i: usize) -> anyhow::Result<Held> {
    match p.protocol {
        Protocol::Relay => Ok(Held::Relay(Box::new(
            relay::connect(t.url(i), t.source(i), false).await?,
        ))),
        Protocol::Switchboard => {
            let mut c = t
                .customer(i)
                .await
                .map_err(|e| anyhow::anyhow!("connect: {e}"))?;
            let team = i % p.teams.max(1);
            c.start_session(
                Entry::IssueForm {
                    issue_type: catalog::issue_type(team),
                },
                &format!("idle{i}"),
                "Load Test Ltd",
                "waiting",
            )
            .await
            .map_err(|e| anyhow::anyhow!("start_session: {e}"))?;
            Ok(Held::Switchboard(Box::new(c)))
        }
    }
}

/// Opens connections `offset..offset+count`; `opened` counts successes as
/// they happen. With `rate` > 0, no faster than that per second.
pub async fn hold(
    t: &Target,
    p: &Params,
    offset: usize,
    count: usize,
    rate: f64,
    opened: &AtomicU64,
    errors: &Errors,
) -> Vec<Held> {
    let start = Instant::now();
    let deadline = start + RAMP_LIMIT;
    futures_util::stream::iter(0..count)
        .map(|k| async move {
            if rate > 0.0 {
                tokio::time::sleep_until((start + Duration::from_secs_f64(k as f64 / rate)).into())
                    .await;
            }
            if Instant::now() > deadline {
                return None;
            }
            match tokio::time::timeout(Duration::from_secs(30), open_one(t, p, offset + k)).await {
                Ok(Ok(h)) => {
                    opened.fetch_add(1, Ordering::Relaxed);
                    Some(h)
                }
                Ok(Err(e)) => {
                    errors.add(e);
                    None
                }
                Err(_) => {
                    errors.add("connection timed out");
                    None
                }
            }
        })
        .buffer_unordered(PARALLEL)
        .filter_map(|h| async move { h })
        .collect()
        .await
}

/// How long a held connection has to answer the check after the window.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// How many of `held` still answer a round trip: a Switchboard customer
/// its `ping`, a relay client its echo. The memory figure divides by the
/// connections opened, so one that the server closed during the window
/// (a missed heartbeat, say) would flatter it unseen.
pub async fn count_open(held: &mut [Held]) -> u64 {
    futures_util::stream::iter(held.iter_mut())
        .map(|h| async move {
            let answered = tokio::time::timeout(CHECK_TIMEOUT, async {
                match h {
                    Held::Switchboard(c) => c.request(RequestBody::Ping).await.is_ok(),
                    Held::Relay(r) => {
                        if r.sink.send(relay::frame(0, 1, 16)).await.is_err() {
                            return false;
                        }
                        matches!(r.stream.next().await, Some(Ok(Message::Binary(_))))
                    }
                }
            })
            .await;
            u64::from(answered == Ok(true))
        })
        .buffer_unordered(PARALLEL)
        .fold(0, |n, open| async move { n + open })
        .await
}

/// `run --child`: open this process's share, report progress on stdout
/// (`PROGRESS n`, then `READY n failed`), hold until stdin closes or
/// `hold_for` passes.
pub async fn run_child(
    t: &Target,
    p: &Params,
    offset: usize,
    hold_for: Duration,
) -> anyhow::Result<()> {
    let opened = Arc::new(AtomicU64::new(0));
    let errors = Errors::default();
    let reporter = {
        let opened = opened.clone();
        tokio::spawn(async move {
            loop {
                println!("PROGRESS {}", opened.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let rate = p.rate / p.procs.max(1) as f64;
    let held = hold(t, p, offset, p.connections, rate, &opened, &errors).await;
    reporter.abort();
    for e in errors.first() {
        println!("ERROR {e}");
    }
    println!("READY {} {}", held.len(), errors.total());
    // Hold until the parent closes our stdin, bounded by `hold_for`; each
    // `CHECK` line it sends is answered with `OPEN n`.
    let mut held = held;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let _ = tokio::time::timeout(hold_for, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim() == "CHECK" {
                println!("OPEN {}", count_open(&mut held).await);
            }
        }
    })
    .await;
    drop(held);
    Ok(())
}

/// The idle window, made a whole number of the server's heartbeats (at
/// least one). An idle connection's only traffic is the server's ping every
/// heartbeat, so a window of any other length counts more or fewer pings
/// depending on where the ramp happened to end: 10 s at a 15 s heartbeat
/// counted anywhere from none to every connection's. A zero heartbeat (a
/// relay, which sends no pings) leaves the window as asked.
pub fn whole_heartbeats(wanted: Duration, heartbeat: Duration) -> Duration {
    if heartbeat.is_zero() {
        return wanted;
    }
    let n = wanted.as_millis().div_ceil(heartbeat.as_millis()).max(1);
    heartbeat.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
}

/// The server's heartbeat, from the `welcome` of one short connection
/// (zero for a relay).
async fn server_heartbeat(t: &Target, p: &Params) -> anyhow::Result<Duration> {
    if !matches!(p.protocol, Protocol::Switchboard) {
        return Ok(Duration::ZERO);
    }
    let probe = t
        .customer(0)
        .await
        .map_err(|e| anyhow::anyhow!("heartbeat probe: {}", super::not_switchboard(e)))?;
    let heartbeat = probe.heartbeat();
    probe.close().await;
    Ok(heartbeat)
}

/// The scenario: ramp, settle, measure memory and idle CPU.
pub async fn run(t: &Target, p: &Params, exe: &Path) -> anyhow::Result<ScenarioResult> {
    let mut r = ScenarioResult::new("idle", p);
    // Before the watch starts, so the probe is not in the memory figure.
    let heartbeat = server_heartbeat(t, p).await?;
    let window = whole_heartbeats(p.duration, heartbeat);
    let mut watch = ServerWatch::start(t.server_pid);
    let errors = Errors::default();
    let pb = bar(p.connections as u64, "idle ramp");
    let ramp_start = Instant::now();
    let procs = p.procs.max(1);
    let mut held = Vec::new();
    let mut children = Vec::new();
    let mut open_answers = None;
    let connected: u64;
    let mut failed: u64 = 0;
    if procs == 1 {
        let opened = AtomicU64::new(0);
        let ramp = hold(t, p, 0, p.connections, p.rate, &opened, &errors);
        tokio::pin!(ramp);
        loop {
            tokio::select! {
                h = &mut ramp => { held = h; break; }
                _ = tokio::time::sleep(Duration::from_millis(250)) => {
                    pb.set_position(opened.load(Ordering::Relaxed));
                }
            }
        }
        connected = held.len() as u64;
        failed = errors.total();
    } else {
        let share = p.connections.div_ceil(procs);
        let progress: Arc<Vec<AtomicU64>> =
            Arc::new((0..procs).map(|_| AtomicU64::new(0)).collect());
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<(u64, u64, Vec<String>)>(procs);
        let (open_tx, open_rx) = tokio::sync::mpsc::channel::<u64>(procs);
        open_answers = Some(open_rx);
        for k in 0..procs {
            let count = share.min(p.connections.saturating_sub(k * share));
            let mut cmd = tokio::process::Command::new(exe);
            cmd.arg("run")
                .arg("--scenario")
                .arg("idle")
                .arg("--child")
                .arg("--offset")
                .arg((k * share).to_string())
                .arg("--connections")
                .arg(count.to_string())
                .arg("--protocol")
                .arg(p.protocol.as_str())
                .arg("--rate")
                .arg(p.rate.to_string())
                .arg("--procs")
                .arg(procs.to_string())
                .arg("--teams")
                .arg(p.teams.to_string())
                .arg("--duration")
                .arg((RAMP_LIMIT.as_secs() + 120 + window.as_secs()).to_string())
                .arg("--out")
                .arg(std::env::temp_dir())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            for s in &t.servers {
                cmd.arg("--server").arg(s);
            }
            if !t.sources.is_empty() {
                let list: Vec<String> = t.sources.iter().map(|s| s.to_string()).collect();
                cmd.arg("--sources").arg(list.join(","));
            }
            let mut child = cmd.spawn()?;
            let stdout = child.stdout.take().expect("piped stdout");
            let progress = progress.clone();
            let ready_tx = ready_tx.clone();
            let open_tx = open_tx.clone();
            tokio::spawn(async move {
                // ERROR lines come first, then READY; OPEN answers a CHECK.
                let mut lines = BufReader::new(stdout).lines();
                let mut errs = Vec::new();
                let mut ready = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut parts = line.split_whitespace();
                    match parts.next() {
                        Some("PROGRESS") => {
                            if let Some(n) = parts.next().and_then(|v| v.parse().ok()) {
                                progress[k].store(n, Ordering::Relaxed);
                            }
                        }
                        Some("ERROR") => errs.push(line[6..].to_string()),
                        Some("READY") => {
                            let n = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                            let f = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                            progress[k].store(n, Ordering::Relaxed);
                            let _ = ready_tx.send((n, f, std::mem::take(&mut errs))).await;
                            ready = true;
                        }
                        Some("OPEN") => {
                            let n = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                            let _ = open_tx.send(n).await;
                        }
                        _ => {}
                    }
                }
                if !ready {
                    let _ = ready_tx
                        .send((0, 0, vec!["child exited early".into()]))
                        .await;
                }
            });
            children.push(child);
        }
        drop(ready_tx);
        drop(open_tx);
        let mut got = 0;
        let mut total = 0;
        let deadline = tokio::time::Instant::now() + RAMP_LIMIT + Duration::from_secs(60);
        while got < procs {
            tokio::select! {
                m = ready_rx.recv() => match m {
                    Some((n, f, errs)) => {
                        got += 1;
                        total += n;
                        failed += f;
                        for e in errs { errors.add(e); }
                    }
                    None => break,
                },
                _ = tokio::time::sleep(Duration::from_millis(250)) => {
                    pb.set_position(progress.iter().map(|a| a.load(Ordering::Relaxed)).sum());
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        connected = total;
    }
    let ramp_secs = ramp_start.elapsed().as_secs_f64();
    pb.set_position(connected);
    pb.finish_and_clear();
    eprintln!(
        "idle: {connected} connected, {failed} failed in {ramp_secs:.1}s; settling, \
         then measuring {:.0} s (server heartbeat {:.0} s)",
        window.as_secs_f64(),
        heartbeat.as_secs_f64()
    );
    tokio::time::sleep(SETTLE).await;
    // Memory: from before the ramp to the end; CPU: the idle window only.
    watch.restart_cpu();
    let pb = super::timed_bar(window, "idle hold");
    let end = Instant::now() + window;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(1).min(end - Instant::now())).await;
        pb.inc(1);
    }
    pb.finish_and_clear();
    let usage = watch.finish();
    // After memory and CPU are read: every connection counted must still
    // be open, or the figures per connection are not what they say.
    let open = match open_answers.as_mut() {
        None => count_open(&mut held).await,
        Some(answers) => {
            for c in children.iter_mut() {
                if let Some(stdin) = c.stdin.as_mut() {
                    let _ = stdin.write_all(b"CHECK\n").await;
                }
            }
            let mut open = 0;
            let deadline = tokio::time::Instant::now() + CHECK_TIMEOUT + Duration::from_secs(30);
            for _ in 0..children.len() {
                match tokio::time::timeout_at(deadline, answers.recv()).await {
                    Ok(Some(n)) => open += n,
                    _ => break,
                }
            }
            open
        }
    };
    if open < connected {
        errors.add(format!(
            "{} of {connected} connections no longer answered after the idle window",
            connected - open
        ));
    }
    let generator_rss: u64 = if children.is_empty() {
        procstat::sample(std::process::id()).map_or(0, |s| s.rss_kib)
    } else {
        children
            .iter()
            .filter_map(|c| c.id())
            .filter_map(procstat::sample)
            .map(|s| s.rss_kib)
            .sum()
    };
    r.count("connected", connected);
    r.count("failed", failed);
    r.count("open_after_window", open);
    r.count("generator_processes", procs as u64);
    r.figure("ramp_secs", ramp_secs);
    r.figure("heartbeat_secs", heartbeat.as_secs_f64());
    r.figure("idle_window_secs", window.as_secs_f64());
    r.figure("generator_rss_kib", generator_rss as f64);
    if let Some(u) = &usage {
        let n = connected.max(1) as f64;
        r.figure(
            "server_kib_per_connection",
            (u.rss_after_kib as f64 - u.rss_before_kib as f64) / n,
        );
        r.figure(
            "server_cpu_us_per_sec_per_connection",
            u.cpu_secs / u.wall_secs.max(1e-9) / n * 1e6,
        );
    }
    r.server = usage;
    r.errors = errors.first();
    // Tear down: close the children's stdin, then wait (bounded), then kill.
    drop(held);
    for mut c in children {
        drop(c.stdin.take());
        if tokio::time::timeout(Duration::from_secs(30), c.wait())
            .await
            .is_err()
        {
            let _ = c.kill().await;
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::whole_heartbeats;
    use std::time::Duration;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_idle_window_is_rounded_up_to_whole_heartbeats() {
        assert_eq!(whole_heartbeats(S(10), S(15)), S(15));
        assert_eq!(whole_heartbeats(S(15), S(15)), S(15));
        assert_eq!(whole_heartbeats(S(16), S(15)), S(30));
        assert_eq!(whole_heartbeats(S(0), S(15)), S(15), "at least one");
        assert_eq!(whole_heartbeats(S(2), Duration::from_millis(1_500)), S(3));
    }

    #[test]
    fn a_relay_without_heartbeat_keeps_the_window_asked_for() {
        assert_eq!(whole_heartbeats(S(10), Duration::ZERO), S(10));
    }
}
