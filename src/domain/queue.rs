//! A queue's contents: the sessions waiting in it, in order, and the
//! invitations to shared sessions addressed to it. Team queue actors and rep
//! actors (for the personal queue) each hold one.
use std::collections::{BTreeMap, VecDeque};

use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use super::ids::*;
use super::session::Session;

/// How many recent waits feed the estimate.
const RECENT_WAITS: usize = 20;

/// A waiting session as a queue shows it. Its `Serialize` is written by
/// hand in `protocol::flat`, beside the maps it is flattened into.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SessionSummary {
    pub session: SessionId,
    /// The customer's name, `[Browser] ` prefixed for browser sessions.
    pub display_name: String,
    pub customer_name: String,
    pub company: String,
    pub issue_type: Option<IssueTypeId>,
    pub description: String,
    pub client: ClientKind,
    pub browser: bool,
    pub view_only: bool,
    pub entry: EntryPath,
    pub wait_start: Millis,
    pub queued_at: Millis,
    /// A waiting rule marked it overdue.
    #[serde(default)]
    pub overdue: bool,
    #[serde(default)]
    pub priority: u8,
    #[serde(default)]
    pub required_skills: Vec<String>,
    /// Why the system put it back in a queue, if it did.
    #[serde(default)]
    pub requeued: Option<String>,
    #[serde(skip)]
    pub order: u64,
    /// What the waiting rules need (not on the wire).
    #[serde(skip)]
    pub rules: RuleState,
}

/// A waiting session's progress through its queue's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleState {
    pub overdue_steps: u32,
    pub no_rep_handled: bool,
    pub rule_moves: u32,
    pub left_by_rule: Vec<QueueId>,
}

impl SessionSummary {
    pub fn of(s: &Session) -> Self {
        SessionSummary {
            session: s.id.clone(),
            display_name: s.display_name(),
            customer_name: s.customer.name.clone(),
            company: s.customer.company.clone(),
            issue_type: s.customer.issue_type.clone(),
            description: s.customer.description.clone(),
            client: s.customer.client,
            browser: s.browser,
            view_only: s.view_only,
            entry: s.entry,
            wait_start: s.wait_start,
            queued_at: s.queued_at,
            overdue: s.overdue,
            priority: s.priority,
            required_skills: s.required_skills.clone(),
            requeued: s.requeued.clone(),
            order: s.order,
            rules: RuleState {
                overdue_steps: s.overdue_steps,
                no_rep_handled: s.no_rep_handled,
                rule_moves: s.rule_moves,
                left_by_rule: s.left_by_rule.clone(),
            },
        }
    }
}

/// An invitation to join a shared session, as a queue shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationSummary {
    pub session: SessionId,
    pub display_name: String,
    pub invited_by: RepId,
    pub at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// Longest waiting first (the default).
    #[default]
    Wait,
    /// Customer name, A to Z.
    Name,
    /// Issue type, then longest waiting.
    Issue,
}

#[derive(Debug, Default)]
pub struct Queue {
    /// Waiting sessions by their order key: iteration is queue order.
    /// Boxed: a B-tree node has room for eleven values and is about two
    /// thirds full when sessions arrive in order, so summaries held
    /// inline (264 bytes each) cost a waiting customer about 0.5 KiB of
    /// node; a box is allocated at its own size, and the node holds only
    /// its pointer (docs/performance.md, change 43).
    waiting: BTreeMap<u64, Box<SessionSummary>>,
    /// session id -> order key, for removal by id.
    index: HashMap<SessionId, u64>,
    invitations: BTreeMap<SessionId, InvitationSummary>,
    /// Milliseconds waited by the most recently accepted sessions.
    recent_waits: VecDeque<u64>,
}

impl Queue {
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Adds (or moves) a waiting session.
    pub fn insert(&mut self, s: SessionSummary) {
        self.remove(&s.session);
        self.index.insert(s.session.clone(), s.order);
        self.waiting.insert(s.order, Box::new(s));
    }

    pub fn remove(&mut self, session: &str) -> Option<SessionSummary> {
        let order = self.index.remove(session)?;
        self.waiting.remove(&order).map(|s| *s)
    }

    pub fn contains(&self, session: &str) -> bool {
        self.index.contains_key(session)
    }

    /// Records how long an accepted session waited, for estimates.
    pub fn record_wait(&mut self, waited_ms: u64) {
        if self.recent_waits.len() == RECENT_WAITS {
            self.recent_waits.pop_front();
        }
        self.recent_waits.push_back(waited_ms);
    }

    /// 1-based position in queue order.
    pub fn position(&self, session: &str) -> Option<usize> {
        let order = self.index.get(session)?;
        Some(self.waiting.range(..order).count() + 1)
    }

    /// Estimated seconds until a rep accepts the session at `position`: the
    /// mean of the recent waits in this queue for each place ahead, or
    /// `None` before any session has been accepted here.
    pub fn estimate_secs(&self, position: usize) -> Option<u64> {
        if self.recent_waits.is_empty() {
            return None;
        }
        let mean = self.recent_waits.iter().sum::<u64>() / self.recent_waits.len() as u64;
        Some(mean.saturating_mul(position as u64) / 1000)
    }

    /// The session that has waited longest (first in queue order).
    pub fn first(&self) -> Option<&SessionSummary> {
        self.waiting.values().next().map(|s| &**s)
    }

    /// Every waiting session in queue order, with positions.
    pub fn in_order(&self) -> impl Iterator<Item = (usize, &SessionSummary)> {
        self.waiting
            .values()
            .enumerate()
            .map(|(i, s)| (i + 1, &**s))
    }

    /// The queue as a rep views it, sorted as asked. Positions are always
    /// queue positions, whatever the sort.
    pub fn view(&self, sort: SortBy) -> Vec<(usize, SessionSummary)> {
        let mut items: Vec<(usize, SessionSummary)> =
            self.in_order().map(|(p, s)| (p, s.clone())).collect();
        match sort {
            SortBy::Wait => items.sort_by_key(|(p, s)| (s.wait_start, *p)),
            SortBy::Name => items.sort_by(|a, b| {
                a.1.customer_name
                    .to_lowercase()
                    .cmp(&b.1.customer_name.to_lowercase())
                    .then(a.0.cmp(&b.0))
            }),
            SortBy::Issue => items.sort_by(|a, b| {
                a.1.issue_type
                    .cmp(&b.1.issue_type)
                    .then(a.1.wait_start.cmp(&b.1.wait_start))
            }),
        }
        items
    }

    pub fn invite(&mut self, inv: InvitationSummary) {
        self.invitations.insert(inv.session.clone(), inv);
    }

    pub fn withdraw_invitation(&mut self, session: &str) -> Option<InvitationSummary> {
        self.invitations.remove(session)
    }

    pub fn invitations(&self) -> impl Iterator<Item = &InvitationSummary> {
        self.invitations.values()
    }
}

/// How long until a queue's next position round. Each queue has its own
/// instant in every `period` (`phase` after the start of each period since
/// `since_start` began), and a round only ever runs at that instant: at
/// most one round a `period`, and a change waits less than a `period` to
/// be told. Queues with different phases never run their rounds
/// together. Never zero: a change made at a round's own instant waits for
/// the next one.
pub fn until_position_round(
    since_start: std::time::Duration,
    phase: std::time::Duration,
    period: std::time::Duration,
) -> std::time::Duration {
    let period_us = period.as_micros().max(1);
    let into_period =
        (since_start.as_micros() + period_us - phase.as_micros() % period_us) % period_us;
    std::time::Duration::from_micros((period_us - into_period) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_position_round_waits_for_the_queue_s_own_instant() {
        let (ms, second) = (Duration::from_millis, Duration::from_secs(1));
        // A queue whose instant is 300 ms into each second.
        assert_eq!(until_position_round(ms(0), ms(300), second), ms(300));
        assert_eq!(until_position_round(ms(299), ms(300), second), ms(1));
        assert_eq!(until_position_round(ms(1_700), ms(300), second), ms(600));
        // A change at the instant itself waits a whole period, so two
        // rounds are never less than a period apart.
        assert_eq!(until_position_round(ms(2_300), ms(300), second), second);
        // A phase of a period or more is taken modulo the period.
        assert_eq!(until_position_round(ms(100), ms(1_300), second), ms(200));
        // However long the server has run, the wait is within (0, period].
        for t in (0..5_000).step_by(7) {
            let wait = until_position_round(ms(t), ms(450), second);
            assert!(wait > Duration::ZERO && wait <= second, "{t}: {wait:?}");
            assert_eq!((t + wait.as_millis() as u64) % 1_000, 450, "{t}");
        }
    }

    fn summary(id: &str, name: &str, issue: &str, order: u64, wait_start: u64) -> SessionSummary {
        SessionSummary {
            session: id.into(),
            display_name: name.into(),
            customer_name: name.into(),
            company: String::new(),
            issue_type: Some(issue.into()),
            description: String::new(),
            client: ClientKind::Desktop,
            browser: false,
            view_only: false,
            entry: EntryPath::IssueForm,
            wait_start,
            queued_at: wait_start,
            overdue: false,
            priority: 0,
            required_skills: vec![],
            requeued: None,
            order,
            rules: RuleState::default(),
        }
    }

    #[test]
    fn order_positions_and_removal() {
        let mut q = Queue::default();
        q.insert(summary("a", "Zed", "vpn", 10, 100));
        q.insert(summary("b", "amy", "mail", 11, 50));
        q.insert(summary("c", "Bo", "vpn", 12, 300));
        assert_eq!(q.position("a"), Some(1));
        assert_eq!(q.position("c"), Some(3));
        assert_eq!(q.first().unwrap().session, "a");
        let ids = |v: Vec<(usize, SessionSummary)>| {
            v.into_iter().map(|(_, s)| s.session).collect::<Vec<_>>()
        };
        assert_eq!(ids(q.view(SortBy::Wait)), ["b", "a", "c"]);
        assert_eq!(ids(q.view(SortBy::Name)), ["b", "c", "a"]);
        assert_eq!(ids(q.view(SortBy::Issue)), ["b", "a", "c"]);
        q.remove("a");
        assert_eq!(q.position("b"), Some(1));
        assert_eq!(q.position("a"), None);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn estimates_follow_recent_waits() {
        let mut q = Queue::default();
        assert_eq!(q.estimate_secs(1), None);
        q.record_wait(10_000);
        q.record_wait(20_000);
        assert_eq!(q.estimate_secs(1), Some(15));
        assert_eq!(q.estimate_secs(3), Some(45));
    }
}
