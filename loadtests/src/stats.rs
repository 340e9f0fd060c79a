//! Latency recording: one HDR histogram for the whole run plus one per
//! second for the plot of latency over time.
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Percentiles of one latency distribution, in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// One second of the run: when, how many, and the percentiles.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub t_secs: f64,
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

fn new_hist() -> Histogram<u64> {
    // 1 us .. 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub fn summarize(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        count: h.len(),
        mean_us: h.mean(),
        p50_us: h.value_at_quantile(0.50),
        p90_us: h.value_at_quantile(0.90),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    }
}

/// A thread-safe latency recorder whose clock starts at `start`.
pub struct Recorder {
    start: Instant,
    /// Samples observed before this go into the plot but not into the
    /// percentiles (see [`Recorder::after_warmup`]).
    counted_from: Instant,
    inner: Mutex<Inner>,
}

struct Inner {
    total: Histogram<u64>,
    per_sec: Vec<Histogram<u64>>,
}

/// No run is longer than this; later samples go into the last second.
const MAX_SECONDS: usize = 3600;

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder::after_warmup(start, Duration::ZERO)
    }

    /// A recorder whose percentiles leave out the first `warmup`: every
    /// connection's first frames (buffers allocated, pages faulted in) are
    /// slower than the steady state, and in a short run they would set the
    /// p99 alone. The per-second series keeps them, so the plot shows the
    /// warm-up.
    pub fn after_warmup(start: Instant, warmup: Duration) -> Recorder {
        Recorder {
            start,
            counted_from: start + warmup,
            inner: Mutex::new(Inner {
                total: new_hist(),
                per_sec: Vec::new(),
            }),
        }
    }

    /// Records a latency observed now.
    pub fn record(&self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, 60_000_000);
        let sec = (self.start.elapsed().as_secs() as usize).min(MAX_SECONDS);
        let counted = Instant::now() >= self.counted_from;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if counted {
            let _ = inner.total.record(us);
        }
        while inner.per_sec.len() <= sec {
            inner.per_sec.push(new_hist());
        }
        let _ = inner.per_sec[sec].record(us);
    }

    pub fn summary(&self) -> LatencySummary {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        summarize(&inner.total)
    }

    pub fn series(&self) -> Vec<SeriesPoint> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .per_sec
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let s = summarize(h);
                SeriesPoint {
                    t_secs: i as f64,
                    count: s.count,
                    p50_us: s.p50_us,
                    p99_us: s.p99_us,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_series() {
        let r = Recorder::new(Instant::now());
        for i in 1..=100u64 {
            r.record(Duration::from_micros(i * 10));
        }
        let s = r.summary();
        assert_eq!(s.count, 100);
        assert!(s.p50_us >= 490 && s.p50_us <= 510, "{s:?}");
        assert!(s.p99_us >= 980, "{s:?}");
        assert_eq!(r.series().len(), 1);
    }

    #[test]
    fn warmup_samples_are_plotted_but_not_counted() {
        let r = Recorder::after_warmup(Instant::now(), Duration::from_millis(50));
        r.record(Duration::from_millis(40));
        std::thread::sleep(Duration::from_millis(60));
        for _ in 0..10 {
            r.record(Duration::from_micros(100));
        }
        let s = r.summary();
        assert_eq!(s.count, 10, "{s:?}");
        assert!(s.max_us < 1_000, "the warm-up sample was counted: {s:?}");
        let plotted: u64 = r.series().iter().map(|p| p.count).sum();
        assert_eq!(plotted, 11);
    }
}
