//! Prometheus metrics, one struct per subsystem, all in one registry owned
//! by the application (never a global: each test's server has its own).
//!
//! Names follow Prometheus conventions: base units (seconds, bytes),
//! `_total` for counters, and label values from small fixed sets (message
//! types, error codes, client kinds) or from the catalog (queue ids).
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use foldhash::HashMap;
use prometheus::core::{MetricVec, MetricVecBuilder};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::protocol::{Event, RequestBody, ServerFrame};

/// Latency buckets from 50 µs to 10 s.
fn latency_buckets() -> Vec<f64> {
    vec![
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
        1.0, 2.5, 5.0, 10.0,
    ]
}

/// Wait buckets from 1 s to 1 h.
fn wait_buckets() -> Vec<f64> {
    vec![
        1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    ]
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

/// A labelled metric with its children for every label value known when
/// the server starts, looked up without `with_label_values`, which hashes
/// the labels with prometheus's own hasher, takes the vector's lock and
/// clones the child on every call: on every frame out that was about 3% of
/// a join's instructions (docs/performance.md, change 26), and a routed
/// session made 13 such calls more (change 37). Making the children up
/// front also starts them at zero, so rates and dashboards work before the
/// first event. A value outside the known set still works, the slow way.
/// The key is only the labels that vary: a label with one value at a call
/// site (a direction) is fixed in `make`, so a lookup compares one string.
pub struct Resolved<M, const N: usize> {
    children: HashMap<[&'static str; N], M>,
    /// Makes the child for a value not known up front.
    make: MakeChild<M, N>,
}

/// `with_label_values` on a vector, boxed: prometheus does not export the
/// vectors' builder types, so `Resolved` cannot name the vector itself.
type MakeChild<M, const N: usize> = Box<dyn Fn(&[&str; N]) -> M + Send + Sync>;

impl<M: Clone + Send + Sync, const N: usize> Resolved<M, N> {
    fn new(
        known: impl IntoIterator<Item = [&'static str; N]>,
        make: impl Fn(&[&str; N]) -> M + Send + Sync + 'static,
    ) -> Self {
        let children = known
            .into_iter()
            .map(|labels| (labels, make(&labels)))
            .collect();
        Resolved {
            children,
            make: Box::new(make),
        }
    }

    /// Every label of `vec` varies.
    fn of<T>(vec: MetricVec<T>, known: impl IntoIterator<Item = [&'static str; N]>) -> Self
    where
        T: MetricVecBuilder<M = M> + 'static,
    {
        Self::new(known, move |labels| vec.with_label_values(labels))
    }

    /// The child for these label values.
    pub fn get(&self, labels: [&'static str; N]) -> Cow<'_, M> {
        match self.children.get(&labels) {
            Some(child) => Cow::Borrowed(child),
            None => Cow::Owned((self.make)(&labels)),
        }
    }
}

/// Every value of one label.
fn each(values: &'static [&'static str]) -> impl Iterator<Item = [&'static str; 1]> {
    values.iter().map(|v| [*v])
}

/// The store's write path.
pub struct StoreMetrics {
    write_seconds: Histogram,
    flush_seconds: Histogram,
    flush_batch: Histogram,
}

impl StoreMetrics {
    pub fn new(r: &Registry) -> Self {
        StoreMetrics {
            write_seconds: histogram(
                r,
                "switchboard_store_write_seconds",
                "Seconds from a store write's start until it is durable (until visible for a write its caller flushes)",
                latency_buckets(),
            ),
            flush_seconds: histogram(
                r,
                "switchboard_store_flush_seconds",
                "Seconds one group-commit flush takes",
                latency_buckets(),
            ),
            flush_batch: histogram(
                r,
                "switchboard_store_flush_batch_writes",
                "Waiting writers (writes, or flushes after unflushed writes) released by one group-commit flush",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0],
            ),
        }
    }

    /// For tests of the store alone.
    pub fn unregistered() -> Self {
        Self::new(&Registry::new())
    }

    pub fn observe_write(&self, d: Duration) {
        self.write_seconds.observe(d.as_secs_f64());
    }

    pub fn observe_flush(&self, d: Duration, writers: usize) {
        self.flush_seconds.observe(d.as_secs_f64());
        self.flush_batch.observe(writers as f64);
    }

    /// Waiting writers released by flushes so far.
    pub fn writers_flushed(&self) -> u64 {
        self.flush_batch.get_sample_sum() as u64
    }
}

/// Sessions and queues.
pub struct QueueMetrics {
    pub waiting: IntGaugeVec,
    pub wait_seconds: HistogramVec,
    /// By [`SESSION_STATES`].
    pub by_state: Resolved<IntGauge, 1>,
    /// By [`ENTRY_PATHS`].
    pub entered: Resolved<IntCounter, 1>,
    pub accepts: IntCounter,
    pub transfers: IntCounter,
    /// By [`REQUEUE_REASONS`].
    pub requeues: Resolved<IntCounter, 1>,
    /// By [`RULE_ACTIONS`].
    pub rule_firings: Resolved<IntCounter, 1>,
    pub abandoned: IntCounter,
}

impl QueueMetrics {
    pub fn new(r: &Registry) -> Self {
        QueueMetrics {
            waiting: gauge_vec(
                r,
                "switchboard_sessions_waiting",
                "Sessions waiting in each queue",
                &["queue"],
            ),
            wait_seconds: histogram_vec(
                r,
                "switchboard_wait_seconds",
                "Seconds a session waited in a queue before a rep accepted it, from when it entered that queue",
                &["queue"],
                wait_buckets(),
            ),
            by_state: Resolved::of(
                gauge_vec(
                    r,
                    "switchboard_sessions",
                    "Live (not ended) sessions, by state (waiting, active)",
                    &["state"],
                ),
                each(SESSION_STATES),
            ),
            entered: Resolved::of(
                counter_vec(
                    r,
                    "switchboard_sessions_entered_total",
                    "Sessions that entered a queue, by path (session_key, rep_choice, support_button, issue_form, browser_link, transfer, requeue, rule)",
                    &["path"],
                ),
                each(ENTRY_PATHS),
            ),
            accepts: counter(
                r,
                "switchboard_accepts_total",
                "Waiting sessions accepted by a rep",
            ),
            transfers: counter(
                r,
                "switchboard_transfers_total",
                "Sessions transferred to another queue",
            ),
            requeues: Resolved::of(
                counter_vec(
                    r,
                    "switchboard_requeues_total",
                    "Sessions requeued, by reason",
                    &["reason"],
                ),
                each(REQUEUE_REASONS),
            ),
            rule_firings: Resolved::of(
                counter_vec(
                    r,
                    "switchboard_rule_firings_total",
                    "Waiting-session rule firings, by action",
                    &["action"],
                ),
                each(RULE_ACTIONS),
            ),
            abandoned: counter(
                r,
                "switchboard_sessions_abandoned_total",
                "Sessions ended because their customer never came back",
            ),
        }
    }
}

/// Label values of `switchboard_sessions{state}`.
pub const SESSION_STATES: &[&str] = &["waiting", "active"];

/// Label values of `switchboard_requeues_total{reason}`.
pub const REQUEUE_REASONS: &[&str] = &["rep_connection_lost"];

/// Label values of `switchboard_rule_firings_total{action}`.
pub const RULE_ACTIONS: &[&str] = &["mark", "transfer", "skip", "no_rep_available"];

/// Label values of `switchboard_sessions_entered_total{path}`: the entry
/// paths of [`crate::domain::ids::EntryPath`], then transfer, requeue (the
/// lost-rep fallback) and rule (moved by a waiting-session rule).
pub const ENTRY_PATHS: &[&str] = &[
    "session_key",
    "rep_choice",
    "support_button",
    "issue_form",
    "browser_link",
    "transfer",
    "requeue",
    "rule",
];

/// Connections and the protocol.
pub struct ConnectionMetrics {
    /// By role (`rep`, `customer`) and client kind.
    pub connected: Resolved<IntGauge, 2>,
    /// `switchboard_protocol_messages_total` by type, one direction each:
    /// requests in (and `invalid`), frames out.
    pub messages_in: Resolved<IntCounter, 1>,
    messages_out: Resolved<IntCounter, 1>,
    /// By error code.
    pub errors: Resolved<IntCounter, 1>,
    pub slow_consumers: IntCounter,
    pub bytes_in: IntCounter,
    bytes_out: IntCounter,
}

impl ConnectionMetrics {
    pub fn new(r: &Registry) -> Self {
        let messages = counter_vec(
            r,
            "switchboard_protocol_messages_total",
            "WebSocket protocol messages, by direction (in, out) and type (request type, or reply, error, event kind, snapshot, goodbye)",
            &["direction", "type"],
        );
        let bytes = counter_vec(
            r,
            "switchboard_protocol_bytes_total",
            "WebSocket payload bytes, by direction (in, out)",
            &["direction"],
        );
        let ins = RequestBody::TYPES.iter().chain(&["invalid"]);
        let outs = ServerFrame::PLAIN_KINDS.iter().chain(Event::KINDS);
        let messages_out = messages.clone();
        ConnectionMetrics {
            bytes_in: bytes.with_label_values(&["in"]),
            bytes_out: bytes.with_label_values(&["out"]),
            messages_in: Resolved::new(ins.map(|kind| [*kind]), move |[kind]| {
                messages.with_label_values(&["in", kind])
            }),
            messages_out: Resolved::new(outs.map(|kind| [*kind]), move |[kind]| {
                messages_out.with_label_values(&["out", kind])
            }),
            connected: Resolved::of(
                gauge_vec(
                    r,
                    "switchboard_connected_clients",
                    "Open client connections (logged-in reps, customers in a session) by role and client kind",
                    &["role", "client"],
                ),
                ["rep", "customer"].into_iter().flat_map(|role| {
                    ["desktop", "mobile", "browser"].map(|client| [role, client])
                }),
            ),
            errors: Resolved::of(
                counter_vec(
                    r,
                    "switchboard_errors_total",
                    "Errors sent to WebSocket clients, by error code",
                    &["code"],
                ),
                crate::error::ErrorCode::ALL.iter().map(|code| [code.as_str()]),
            ),
            slow_consumers: counter(
                r,
                "switchboard_slow_consumers_dropped_total",
                "Connections closed because their outbound queue was full",
            ),
        }
    }

    /// Counts one frame of `kind` (`ServerFrame::kind`) and `bytes` out.
    pub fn sent(&self, kind: &'static str, bytes: usize) {
        self.messages_out.get([kind]).inc();
        self.bytes_out.inc_by(bytes as u64);
    }
}

pub struct Metrics {
    pub registry: Registry,
    pub store: Arc<StoreMetrics>,
    pub queues: QueueMetrics,
    pub connections: ConnectionMetrics,
    pub up: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let up = IntGauge::new(
            "switchboard_up",
            "1 while the server is serving, 0 once it shuts down",
        )
        .expect("valid metric");
        registry
            .register(Box::new(up.clone()))
            .expect("unique metric");
        Metrics {
            store: Arc::new(StoreMetrics::new(&registry)),
            queues: QueueMetrics::new(&registry),
            connections: ConnectionMetrics::new(&registry),
            up,
            registry,
        }
    }

    /// The text exposition format served at /metrics.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find(|l| l.starts_with(series))
            .map(str::to_string)
    }

    #[test]
    fn resolved_children_start_at_zero_and_count_into_their_series() {
        let m = Metrics::new();
        let before = m.render();
        assert_eq!(
            line(
                &before,
                "switchboard_sessions_entered_total{path=\"transfer\"}"
            )
            .as_deref(),
            Some("switchboard_sessions_entered_total{path=\"transfer\"} 0")
        );
        assert!(line(
            &before,
            "switchboard_connected_clients{client=\"mobile\",role=\"rep\"}"
        )
        .is_some());

        m.queues.entered.get(["transfer"]).inc();
        m.queues.by_state.get(["waiting"]).inc();
        m.queues.by_state.get(["waiting"]).inc();
        m.queues.by_state.get(["waiting"]).dec();
        m.connections.connected.get(["rep", "mobile"]).inc();
        m.connections.sent("reply", 10);
        let after = m.render();
        for expected in [
            "switchboard_sessions_entered_total{path=\"transfer\"} 1",
            "switchboard_sessions{state=\"waiting\"} 1",
            "switchboard_connected_clients{client=\"mobile\",role=\"rep\"} 1",
            "switchboard_protocol_messages_total{direction=\"out\",type=\"reply\"} 1",
        ] {
            assert!(
                after.lines().any(|l| l == expected),
                "{expected} in\n{after}"
            );
        }
    }

    #[test]
    fn a_label_value_nobody_listed_still_counts() {
        let m = Metrics::new();
        m.connections.messages_in.get(["not_a_request"]).inc();
        m.connections.messages_in.get(["not_a_request"]).inc();
        let text = m.render();
        assert!(text.lines().any(|l| {
            l == "switchboard_protocol_messages_total{direction=\"in\",type=\"not_a_request\"} 2"
        }));
    }
}
