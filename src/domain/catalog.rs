//! The catalog: who and what the support center is made of (reps, teams,
//! issue types, portals, support buttons, browser help links), as the admin
//! API and config/default.toml define it. Plain data with the rules that
//! depend only on it, such as which queues a rep may see.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::*;
use super::routing::SkillPreference;
use crate::error::{AppError, ErrorCode};
use crate::store::Record;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Permissions {
    /// May use the admin REST API.
    pub admin: bool,
    /// May generate one-time session keys.
    pub generate_session_keys: bool,
    /// May transfer sessions to other queues.
    pub transfer: bool,
    /// May invite other reps or teams to share a session.
    pub share: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rep {
    pub id: RepId,
    pub display_name: String,
    /// The login name; unique across reps.
    pub username: String,
    /// Argon2 PHC string. Never leaves the server.
    #[serde(default)]
    pub password_hash: String,
    #[serde(default)]
    pub teams: Vec<TeamId>,
    #[serde(default)]
    pub permissions: Permissions,
    /// Listed on the public site for customers to choose (while logged in).
    #[serde(default)]
    pub public: bool,
    /// Skills for automatic routing, with the rep's preference for each.
    #[serde(default)]
    pub skills: BTreeMap<String, SkillPreference>,
    /// Concurrent sessions this rep may run (else the team or site default).
    #[serde(default)]
    pub max_sessions: Option<u32>,
}

impl Record for Rep {
    const KIND: &'static str = "rep";
    const VERSION: u32 = 1;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub id: TeamId,
    pub name: String,
}

impl Record for Team {
    const KIND: &'static str = "team";
    const VERSION: u32 = 1;
}

/// What a customer picks on the issue submission form; the owning team's
/// queue receives the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueType {
    pub id: IssueTypeId,
    pub name: String,
    pub team: TeamId,
    /// Routing priority of its sessions: higher is offered first.
    #[serde(default)]
    pub priority: u8,
    /// Skills a rep needs for it, general to specific.
    #[serde(default)]
    pub skills: Vec<String>,
}

impl Record for IssueType {
    const KIND: &'static str = "issue_type";
    const VERSION: u32 = 1;
}

/// A public site through which customers enter session keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Portal {
    pub id: PortalId,
    pub name: String,
}

impl Record for Portal {
    const KIND: &'static str = "portal";
    const VERSION: u32 = 1;
}

/// A support button deployed on a customer's machine, tied to a rep's
/// personal queue or a team queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportButton {
    pub id: ButtonId,
    pub name: String,
    pub queue: QueueId,
}

impl Record for SupportButton {
    const KIND: &'static str = "support_button";
    const VERSION: u32 = 1;
}

/// A help link on a web page: it starts a browser sharing session in the
/// configured queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelpLink {
    pub id: HelpLinkId,
    pub name: String,
    pub queue: QueueId,
}

impl Record for HelpLink {
    const KIND: &'static str = "help_link";
    const VERSION: u32 = 1;
}

/// Everything in the catalog, held in memory (it is small) and written
/// through to the store by the admin API.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub reps: BTreeMap<RepId, Rep>,
    pub teams: BTreeMap<TeamId, Team>,
    pub issue_types: BTreeMap<IssueTypeId, IssueType>,
    pub portals: BTreeMap<PortalId, Portal>,
    pub buttons: BTreeMap<ButtonId, SupportButton>,
    pub help_links: BTreeMap<HelpLinkId, HelpLink>,
}

impl Catalog {
    pub fn rep(&self, id: &str) -> Result<&Rep, AppError> {
        self.reps
            .get(id)
            .ok_or_else(|| AppError::not_found("rep", id))
    }

    pub fn team(&self, id: &str) -> Result<&Team, AppError> {
        self.teams
            .get(id)
            .ok_or_else(|| AppError::not_found("team", id))
    }

    pub fn rep_by_username(&self, username: &str) -> Option<&Rep> {
        self.reps.values().find(|r| r.username == username)
    }

    /// A queue exists when its team or rep does.
    pub fn check_queue(&self, queue: &QueueId) -> Result<(), AppError> {
        match queue {
            QueueId::Team(t) => self.team(t).map(|_| ()),
            QueueId::Rep(r) => self.rep(r).map(|_| ()),
        }
    }

    /// A queue's name as reps and customers see it.
    pub fn queue_name(&self, queue: &QueueId) -> String {
        match queue {
            QueueId::Team(t) => self.teams.get(t).map(|t| t.name.clone()),
            QueueId::Rep(r) => self.reps.get(r).map(|r| r.display_name.clone()),
        }
        .unwrap_or_else(|| queue.to_string())
    }

    /// A rep sees their own personal queue and the queues of their teams,
    /// nothing else.
    pub fn can_see(&self, rep: &str, queue: &QueueId) -> bool {
        match queue {
            QueueId::Rep(r) => r == rep,
            QueueId::Team(t) => self.reps.get(rep).is_some_and(|r| r.teams.contains(t)),
        }
    }

    /// The queues a rep sees: their personal queue first, then their teams.
    pub fn visible_queues(&self, rep: &str) -> Vec<QueueId> {
        let mut out = vec![QueueId::rep(rep)];
        if let Some(r) = self.reps.get(rep) {
            out.extend(
                r.teams
                    .iter()
                    .filter(|t| self.teams.contains_key(*t))
                    .map(|t| QueueId::team(t.clone())),
            );
        }
        out
    }

    /// The reps who see a queue: the owner of a personal queue, or a team's
    /// members.
    pub fn watchers(&self, queue: &QueueId) -> Vec<RepId> {
        match queue {
            QueueId::Rep(r) => vec![r.clone()],
            QueueId::Team(t) => self
                .reps
                .values()
                .filter(|r| r.teams.contains(t))
                .map(|r| r.id.clone())
                .collect(),
        }
    }

    /// Checks references between catalog entries, so the admin API cannot
    /// store an issue type owned by a team that does not exist.
    pub fn validate_rep(&self, rep: &Rep) -> Result<(), AppError> {
        check_admin_id("rep", &rep.id)?;
        if rep.username.trim().is_empty() {
            return Err(AppError::invalid("a rep needs a username"));
        }
        if let Some(other) = self.rep_by_username(&rep.username) {
            if other.id != rep.id {
                return Err(AppError::new(
                    ErrorCode::Conflict,
                    format!("username '{}' belongs to rep '{}'", rep.username, other.id),
                ));
            }
        }
        for t in &rep.teams {
            self.team(t)?;
        }
        Ok(())
    }

    pub fn validate_issue_type(&self, it: &IssueType) -> Result<(), AppError> {
        check_admin_id("issue type", &it.id)?;
        self.team(&it.team).map(|_| ())
    }

    pub fn validate_queue_target(
        &self,
        what: &str,
        id: &str,
        queue: &QueueId,
    ) -> Result<(), AppError> {
        check_admin_id(what, id)?;
        self.check_queue(queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        for (id, name) in [("net", "Network"), ("billing", "Billing")] {
            c.teams.insert(
                id.into(),
                Team {
                    id: id.into(),
                    name: name.into(),
                },
            );
        }
        c.reps.insert(
            "alice".into(),
            Rep {
                id: "alice".into(),
                display_name: "Alice".into(),
                username: "alice".into(),
                password_hash: String::new(),
                teams: vec!["net".into()],
                permissions: Permissions::default(),
                public: true,
                skills: BTreeMap::new(),
                max_sessions: None,
            },
        );
        c
    }

    #[test]
    fn a_rep_sees_only_their_queue_and_their_teams() {
        let c = catalog();
        assert!(c.can_see("alice", &QueueId::rep("alice")));
        assert!(c.can_see("alice", &QueueId::team("net")));
        assert!(!c.can_see("alice", &QueueId::team("billing")));
        assert!(!c.can_see("alice", &QueueId::rep("bob")));
        assert_eq!(
            c.visible_queues("alice"),
            vec![QueueId::rep("alice"), QueueId::team("net")]
        );
        assert_eq!(c.watchers(&QueueId::team("net")), vec!["alice".to_string()]);
        assert!(c.watchers(&QueueId::team("billing")).is_empty());
    }

    #[test]
    fn references_must_exist() {
        let c = catalog();
        let it = IssueType {
            id: "vpn".into(),
            name: "VPN".into(),
            team: "nope".into(),
            priority: 0,
            skills: vec![],
        };
        assert_eq!(
            c.validate_issue_type(&it).unwrap_err().code,
            ErrorCode::NotFound
        );
        let mut bob = c.reps["alice"].clone();
        bob.id = "bob".into();
        assert_eq!(c.validate_rep(&bob).unwrap_err().code, ErrorCode::Conflict);
    }
}
