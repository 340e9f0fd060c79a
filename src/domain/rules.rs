//! Waiting-session rules: what happens to a session that waits too long,
//! or waits where no rep can take it. Plain data and a pure function that
//! says what is due; the supervisor runs it on a timer and the session actor
//! carries it out.
//!
//! Bounce prevention: a session is moved by rules at most
//! [`QueueRules::MAX_RULE_MOVES`] times in its life, and never into a queue
//! it already left because of a rule. So two queues that overflow into each
//! other move a session once each way at most, then it stays.
use serde::{Deserialize, Serialize};

use super::ids::{Millis, QueueId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum OverdueAction {
    /// Show the session as overdue and alert the queue's reps again.
    Mark { after_secs: u64 },
    /// Move the session to another (overflow) queue.
    Transfer { after_secs: u64, to: QueueId },
}

impl OverdueAction {
    pub fn after_secs(&self) -> u64 {
        match self {
            OverdueAction::Mark { after_secs } | OverdueAction::Transfer { after_secs, .. } => {
                *after_secs
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            OverdueAction::Mark { .. } => "mark",
            OverdueAction::Transfer { .. } => "transfer",
        }
    }
}

/// When none of a team's reps is logged in and available.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoRepRule {
    /// Told to the customer.
    pub message: String,
    /// Offered to the customer (a web page, a phone number page).
    pub redirect_url: Option<String>,
    /// Where the session goes; `None` (or a persistent queue) keeps it.
    pub to: Option<QueueId>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// Reps accept by hand (or "get next").
    #[default]
    None,
    /// Offer each session to the available rep with the fewest sessions.
    LeastBusy,
    /// Match the session's skills first, then least busy.
    Skills,
}

/// The rules of one team queue (or the site default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueRules {
    /// Sessions stay until a rep or the API handles them: no rule moves
    /// them (marking overdue still happens).
    pub persistent: bool,
    /// Steps in order of `after_secs`, counted from when the session
    /// entered this queue.
    pub overdue: Vec<OverdueAction>,
    pub no_rep_available: Option<NoRepRule>,
    pub routing: Routing,
    /// Concurrent sessions a rep of this team may run, unless the rep has
    /// their own maximum.
    pub max_sessions_per_rep: Option<u32>,
}

/// Rules set through the admin API are stored under `rules/team/<id>` and
/// win over the configuration file's.
impl crate::store::Record for QueueRules {
    const KIND: &'static str = "queue_rules";
    const VERSION: u32 = 1;
}

impl QueueRules {
    pub const MAX_RULE_MOVES: u32 = 3;

    /// The longest an overdue step may wait: a year. Far beyond any support
    /// center's patience, and far from where seconds in milliseconds overflow.
    pub const MAX_AFTER_SECS: u64 = 365 * 24 * 3600;

    /// Rules that never act on a waiting session: no overdue steps, no
    /// no-rep rule, no routing (the default).
    pub fn inert(&self) -> bool {
        self.overdue.is_empty() && self.no_rep_available.is_none() && self.routing == Routing::None
    }

    /// The queues these rules may move sessions into.
    pub fn targets(&self) -> impl Iterator<Item = &QueueId> {
        self.overdue
            .iter()
            .filter_map(|s| match s {
                OverdueAction::Transfer { to, .. } => Some(to),
                OverdueAction::Mark { .. } => None,
            })
            .chain(self.no_rep_available.as_ref().and_then(|n| n.to.as_ref()))
    }

    /// Checks what an admin or config file supplied.
    pub fn validate(&self) -> Result<(), String> {
        let mut last = 0;
        for step in &self.overdue {
            if step.after_secs() == 0 {
                return Err("overdue steps need after_secs greater than 0".into());
            }
            if step.after_secs() > Self::MAX_AFTER_SECS {
                return Err(format!(
                    "overdue steps need after_secs of at most {} (a year)",
                    Self::MAX_AFTER_SECS
                ));
            }
            if step.after_secs() < last {
                return Err("overdue steps must be in increasing order of after_secs".into());
            }
            last = step.after_secs();
        }
        if self.max_sessions_per_rep == Some(0) {
            return Err("max_sessions_per_rep must be at least 1".into());
        }
        Ok(())
    }
}

/// What the rules need to know about one waiting session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub queue: QueueId,
    pub queued_at: Millis,
    /// Overdue steps already carried out in this queue.
    pub steps_done: u32,
    pub no_rep_handled: bool,
    pub rule_moves: u32,
    /// Queues the session already left because of a rule.
    pub left_by_rule: Vec<QueueId>,
}

/// What is due for a session now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Overdue step number `step` (0-based): mark.
    Mark { step: u32 },
    /// Overdue step `step`: move to `to`.
    Overflow { step: u32, to: QueueId },
    /// Overdue step `step` would move, but moving is not allowed (persistent
    /// queue, bounce limit): record it and go on.
    SkipStep { step: u32, why: &'static str },
    /// Nobody can take it: tell the customer, and move if `to` is set.
    NoRep {
        rule: NoRepRule,
        to: Option<QueueId>,
    },
}

/// The next thing due for `w` under `rules` at `now`, if any. Called again
/// after each action, so several overdue steps past due (after a restart)
/// are carried out one after the other.
pub fn due(rules: &QueueRules, w: &Waiting, now: Millis, reps_available: bool) -> Option<Due> {
    let may_move = |to: &QueueId| -> Result<(), &'static str> {
        if rules.persistent {
            Err("persistent queue")
        } else if w.rule_moves >= QueueRules::MAX_RULE_MOVES {
            Err("moved by rules too often")
        } else if *to == w.queue || w.left_by_rule.contains(to) {
            Err("would bounce back")
        } else {
            Ok(())
        }
    };
    if !reps_available && !w.no_rep_handled {
        if let Some(rule) = &rules.no_rep_available {
            let to = rule.to.clone().filter(|q| may_move(q).is_ok());
            return Some(Due::NoRep {
                rule: rule.clone(),
                to,
            });
        }
    }
    let step = rules.overdue.get(w.steps_done as usize)?;
    let waited_ms = now.saturating_sub(w.queued_at);
    if waited_ms < step.after_secs().saturating_mul(1000) {
        return None;
    }
    let n = w.steps_done;
    Some(match step {
        OverdueAction::Mark { .. } => Due::Mark { step: n },
        OverdueAction::Transfer { to, .. } => match may_move(to) {
            Ok(()) => Due::Overflow {
                step: n,
                to: to.clone(),
            },
            Err(why) => Due::SkipStep { step: n, why },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> QueueRules {
        QueueRules {
            overdue: vec![
                OverdueAction::Mark { after_secs: 120 },
                OverdueAction::Transfer {
                    after_secs: 300,
                    to: QueueId::team("overflow"),
                },
            ],
            ..QueueRules::default()
        }
    }

    fn waiting(steps_done: u32) -> Waiting {
        Waiting {
            queue: QueueId::team("net"),
            queued_at: 0,
            steps_done,
            no_rep_handled: false,
            rule_moves: 0,
            left_by_rule: vec![],
        }
    }

    #[test]
    fn steps_fire_in_order_when_due() {
        let r = rules();
        assert_eq!(due(&r, &waiting(0), 119_999, true), None);
        assert_eq!(
            due(&r, &waiting(0), 120_000, true),
            Some(Due::Mark { step: 0 })
        );
        assert_eq!(due(&r, &waiting(1), 200_000, true), None);
        assert_eq!(
            due(&r, &waiting(1), 300_000, true),
            Some(Due::Overflow {
                step: 1,
                to: QueueId::team("overflow")
            })
        );
        assert_eq!(due(&r, &waiting(2), 900_000, true), None);
        // After a restart long past both: one then the other.
        assert_eq!(
            due(&r, &waiting(0), 900_000, true),
            Some(Due::Mark { step: 0 })
        );
    }

    /// An admin's after_secs is bounded: seconds in milliseconds must not
    /// wrap around (in a release build, a step of 2^64/1000 s would
    /// otherwise fall due at once).
    #[test]
    fn after_secs_is_bounded() {
        let step = |after_secs| QueueRules {
            overdue: vec![OverdueAction::Mark { after_secs }],
            ..QueueRules::default()
        };
        assert!(step(QueueRules::MAX_AFTER_SECS).validate().is_ok());
        let huge = u64::MAX / 1000 + 1;
        for after_secs in [QueueRules::MAX_AFTER_SECS + 1, huge, u64::MAX] {
            let err = step(after_secs).validate().expect_err("refused");
            assert!(err.contains("at most"), "{err}");
        }
        // Even unchecked, such a step is never due in a lifetime.
        assert_eq!(due(&step(huge), &waiting(0), 4_000_000_000_000, true), None);
    }

    #[test]
    fn persistent_queues_and_bounces_do_not_move() {
        let mut r = rules();
        r.persistent = true;
        assert_eq!(
            due(&r, &waiting(1), 300_000, true),
            Some(Due::SkipStep {
                step: 1,
                why: "persistent queue"
            })
        );
        let r = rules();
        let mut w = waiting(1);
        w.left_by_rule = vec![QueueId::team("overflow")];
        assert_eq!(
            due(&r, &w, 300_000, true),
            Some(Due::SkipStep {
                step: 1,
                why: "would bounce back"
            })
        );
        let mut w = waiting(1);
        w.rule_moves = QueueRules::MAX_RULE_MOVES;
        assert_eq!(
            due(&r, &w, 300_000, true),
            Some(Due::SkipStep {
                step: 1,
                why: "moved by rules too often"
            })
        );
    }

    #[test]
    fn no_rep_rule_comes_first_and_once() {
        let mut r = rules();
        let rule = NoRepRule {
            message: "closed".into(),
            redirect_url: Some("https://example.test/hours".into()),
            to: Some(QueueId::team("night")),
        };
        r.no_rep_available = Some(rule.clone());
        let no_rep = |to: Option<&str>| {
            Some(Due::NoRep {
                rule: rule.clone(),
                to: to.map(QueueId::team),
            })
        };
        assert_eq!(due(&r, &waiting(0), 0, false), no_rep(Some("night")));
        assert_eq!(due(&r, &waiting(0), 0, true), None);
        // First: at 300 s both overdue steps are past due (the mark is
        // next), and the no-rep rule still goes before them.
        assert_eq!(
            due(&r, &waiting(0), 300_000, true),
            Some(Due::Mark { step: 0 })
        );
        assert_eq!(due(&r, &waiting(0), 300_000, false), no_rep(Some("night")));
        assert_eq!(due(&r, &waiting(1), 300_000, false), no_rep(Some("night")));
        // Once: handled, it gives way to the steps.
        let mut w = waiting(0);
        w.no_rep_handled = true;
        assert_eq!(due(&r, &w, 0, false), None);
        assert_eq!(due(&r, &w, 300_000, false), Some(Due::Mark { step: 0 }));
        r.persistent = true;
        assert_eq!(due(&r, &waiting(0), 0, false), no_rep(None));
    }

    #[test]
    fn validation_names_the_problem() {
        let mut r = rules();
        assert!(r.validate().is_ok());
        r.overdue.reverse();
        assert!(r.validate().unwrap_err().contains("increasing"));
    }
}
