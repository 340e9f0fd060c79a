//! Automatic routing: which rep is offered a waiting session.
//!
//! Least busy: among available reps below their maximum who opted in and
//! have not declined this session, the one with the fewest sessions, and of
//! those the one available longest. Skills first: only reps having every
//! skill the session requires (and not marked "ignored" for it) qualify,
//! preferred skills beating less preferred ones; when nobody qualifies the
//! most specific (last) required skill is dropped and the match tried
//! again, down to no skills at all.
use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::ids::{Millis, RepId};
use super::rules::Routing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkillPreference {
    Preferred,
    LessPreferred,
    /// The rep has the skill but should not be routed work needing it.
    Ignored,
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub rep: RepId,
    pub sessions: u32,
    pub max_sessions: u32,
    pub available_since: Millis,
    pub skills: BTreeMap<String, SkillPreference>,
}

/// The rep to offer the session to, if any.
pub fn choose(
    routing: Routing,
    candidates: &[Candidate],
    required: &[String],
    declined: &HashSet<RepId>,
) -> Option<RepId> {
    let open: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.sessions < c.max_sessions && !declined.contains(&c.rep))
        .collect();
    let least_busy = |pool: &[&Candidate], penalty: &dyn Fn(&Candidate) -> usize| {
        pool.iter()
            .min_by_key(|c| (penalty(c), c.sessions, c.available_since, c.rep.clone()))
            .map(|c| c.rep.clone())
    };
    match routing {
        Routing::None => None,
        Routing::LeastBusy => least_busy(&open, &|_| 0),
        Routing::Skills => {
            for k in (0..=required.len()).rev() {
                let needed = &required[..k];
                let pool: Vec<&Candidate> = open
                    .iter()
                    .copied()
                    .filter(|c| {
                        needed.iter().all(|s| {
                            matches!(
                                c.skills.get(s),
                                Some(SkillPreference::Preferred | SkillPreference::LessPreferred)
                            )
                        })
                    })
                    .collect();
                let penalty = |c: &Candidate| {
                    needed
                        .iter()
                        .filter(|s| c.skills.get(*s) == Some(&SkillPreference::LessPreferred))
                        .count()
                };
                if let Some(rep) = least_busy(&pool, &penalty) {
                    return Some(rep);
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(rep: &str, sessions: u32, since: u64, skills: &[(&str, SkillPreference)]) -> Candidate {
        Candidate {
            rep: rep.into(),
            sessions,
            max_sessions: 3,
            available_since: since,
            skills: skills.iter().map(|(s, p)| (s.to_string(), *p)).collect(),
        }
    }

    #[test]
    fn least_busy_then_longest_available() {
        let c = [
            cand("a", 2, 0, &[]),
            cand("b", 1, 50, &[]),
            cand("c", 1, 10, &[]),
            cand("d", 3, 0, &[]),
        ];
        let none = HashSet::new();
        assert_eq!(choose(Routing::LeastBusy, &c, &[], &none), Some("c".into()));
        let declined: HashSet<RepId> = ["c".to_string()].into();
        assert_eq!(
            choose(Routing::LeastBusy, &c, &[], &declined),
            Some("b".into())
        );
        assert_eq!(choose(Routing::None, &c, &[], &none), None);
        let all: HashSet<RepId> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            choose(Routing::LeastBusy, &c, &[], &all),
            None,
            "d is at its maximum"
        );
    }

    #[test]
    fn skills_match_then_drop_the_most_specific() {
        use SkillPreference::*;
        let c = [
            cand("gen", 0, 0, &[("network", Preferred)]),
            cand(
                "vpn_less",
                1,
                0,
                &[("network", Preferred), ("vpn", LessPreferred)],
            ),
            cand(
                "vpn_pref",
                2,
                0,
                &[("network", Preferred), ("vpn", Preferred)],
            ),
            cand(
                "vpn_ignored",
                0,
                0,
                &[("network", Preferred), ("vpn", Ignored)],
            ),
        ];
        let none = HashSet::new();
        let req = vec!["network".to_string(), "vpn".to_string()];
        assert_eq!(
            choose(Routing::Skills, &c, &req, &none),
            Some("vpn_pref".into()),
            "preferred beats less busy"
        );
        let declined: HashSet<RepId> = ["vpn_pref".to_string()].into();
        assert_eq!(
            choose(Routing::Skills, &c, &req, &declined),
            Some("vpn_less".into())
        );
        let declined: HashSet<RepId> = ["vpn_pref".to_string(), "vpn_less".to_string()].into();
        // Nobody left with vpn: drop it, match on network. gen and
        // vpn_ignored tie on sessions (0) and available-since (0): the rep
        // id decides (supervisor.md 7.2), whatever order they come in.
        let reversed: Vec<Candidate> = c.iter().rev().cloned().collect();
        for candidates in [&c[..], &reversed[..]] {
            assert_eq!(
                choose(Routing::Skills, candidates, &req, &declined),
                Some("gen".into())
            );
        }
        // With a session more, gen loses to the less busy vpn_ignored.
        let mut busier = c.clone();
        busier[0].sessions = 1;
        assert_eq!(
            choose(Routing::Skills, &busier, &req, &declined),
            Some("vpn_ignored".into())
        );
    }
}
