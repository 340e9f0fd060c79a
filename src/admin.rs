//! Changing the catalog: loading it at start, seeding the demo on first
//! start, and the admin API's writes. Each write is validated against the
//! whole catalog, stored, then applied in memory, and the actors of new reps
//! and teams are started.
use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};

use crate::actors::{supervisor, Hub};
use crate::auth::hash_password;
use crate::config::Seed;
use crate::domain::catalog::*;
use crate::domain::ids::QueueId;
use crate::domain::rules::QueueRules;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::{self, Expect, Record, Store};

/// The kinds of catalog entry, each with its store prefix and REST path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rep,
    Team,
    IssueType,
    Portal,
    SupportButton,
    HelpLink,
}

impl Kind {
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Rep => "catalog/rep/",
            Kind::Team => "catalog/team/",
            Kind::IssueType => "catalog/issue_type/",
            Kind::Portal => "catalog/portal/",
            Kind::SupportButton => "catalog/support_button/",
            Kind::HelpLink => "catalog/help_link/",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Kind::Rep => "rep",
            Kind::Team => "team",
            Kind::IssueType => "issue type",
            Kind::Portal => "portal",
            Kind::SupportButton => "support button",
            Kind::HelpLink => "help link",
        }
    }
}

async fn load_kind<T: Record>(store: &dyn Store, kind: Kind) -> AppResult<Vec<T>> {
    Ok(store::load_all::<T>(store, kind.prefix())
        .await?
        .into_iter()
        .map(|(_, v, _)| v)
        .collect())
}

pub async fn load_catalog(store: &dyn Store) -> AppResult<Catalog> {
    let mut c = Catalog::default();
    for t in load_kind::<Team>(store, Kind::Team).await? {
        c.teams.insert(t.id.clone(), t);
    }
    for r in load_kind::<Rep>(store, Kind::Rep).await? {
        c.reps.insert(r.id.clone(), r);
    }
    for i in load_kind::<IssueType>(store, Kind::IssueType).await? {
        c.issue_types.insert(i.id.clone(), i);
    }
    for p in load_kind::<Portal>(store, Kind::Portal).await? {
        c.portals.insert(p.id.clone(), p);
    }
    for b in load_kind::<SupportButton>(store, Kind::SupportButton).await? {
        c.buttons.insert(b.id.clone(), b);
    }
    for l in load_kind::<HelpLink>(store, Kind::HelpLink).await? {
        c.help_links.insert(l.id.clone(), l);
    }
    Ok(c)
}

/// Writes the seed into an empty catalog. Returns whether it did. The
/// whole seed is checked first, so a bad entry stores nothing (and the next
/// start, with the file fixed, seeds again).
pub async fn seed_if_empty(store: &dyn Store, seed: &Seed) -> AppResult<bool> {
    let existing = load_catalog(store).await?;
    if !existing.teams.is_empty() || !existing.reps.is_empty() {
        return Ok(false);
    }
    let c = seed_catalog(seed)?;
    for t in c.teams.values() {
        put(store, Kind::Team, &t.id, t).await?;
    }
    for i in c.issue_types.values() {
        put(store, Kind::IssueType, &i.id, i).await?;
    }
    for p in c.portals.values() {
        put(store, Kind::Portal, &p.id, p).await?;
    }
    for b in c.buttons.values() {
        put(store, Kind::SupportButton, &b.id, b).await?;
    }
    for l in c.help_links.values() {
        put(store, Kind::HelpLink, &l.id, l).await?;
    }
    // Reps last: a store with reps counts as seeded.
    for r in c.reps.values() {
        put(store, Kind::Rep, &r.id, r).await?;
    }
    Ok(true)
}

/// The seed as a checked catalog, nothing stored.
fn seed_catalog(seed: &Seed) -> AppResult<Catalog> {
    use crate::domain::ids::check_admin_id;
    let mut c = Catalog::default();
    for t in &seed.teams {
        check_admin_id("team", &t.id)?;
        c.teams.insert(
            t.id.clone(),
            Team {
                id: t.id.clone(),
                name: t.name.clone(),
            },
        );
    }
    for r in &seed.reps {
        let rep = Rep {
            id: r.id.clone(),
            display_name: r.display_name.clone(),
            username: r.username.clone(),
            password_hash: hash_password(&r.password)?,
            teams: r.teams.clone(),
            permissions: r.permissions.clone(),
            public: r.public,
            skills: Default::default(),
            max_sessions: None,
        };
        c.validate_rep(&rep)?;
        c.reps.insert(rep.id.clone(), rep);
    }
    for i in &seed.issue_types {
        let it = IssueType {
            id: i.id.clone(),
            name: i.name.clone(),
            team: i.team.clone(),
            priority: 0,
            skills: Vec::new(),
        };
        c.validate_issue_type(&it)?;
        c.issue_types.insert(it.id.clone(), it);
    }
    for p in &seed.portals {
        check_admin_id("portal", &p.id)?;
        c.portals.insert(
            p.id.clone(),
            Portal {
                id: p.id.clone(),
                name: p.name.clone(),
            },
        );
    }
    for b in &seed.support_buttons {
        c.validate_queue_target("support button", &b.id, &b.queue)?;
        c.buttons.insert(
            b.id.clone(),
            SupportButton {
                id: b.id.clone(),
                name: b.name.clone(),
                queue: b.queue.clone(),
            },
        );
    }
    for l in &seed.help_links {
        c.validate_queue_target("help link", &l.id, &l.queue)?;
        c.help_links.insert(
            l.id.clone(),
            HelpLink {
                id: l.id.clone(),
                name: l.name.clone(),
                queue: l.queue.clone(),
            },
        );
    }
    Ok(c)
}

async fn put<T: Record>(store: &dyn Store, kind: Kind, id: &str, value: &T) -> AppResult<()> {
    store::save(store, &format!("{}{id}", kind.prefix()), value, Expect::Any).await?;
    Ok(())
}

/// A rep as the admin API takes it: the password in clear, optional on
/// update (the old hash stays).
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
pub struct RepInput {
    pub username: String,
    pub display_name: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub teams: Vec<String>,
    #[serde(default)]
    pub permissions: Permissions,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub skills: std::collections::BTreeMap<String, crate::domain::routing::SkillPreference>,
    #[serde(default)]
    pub max_sessions: Option<u32>,
}

/// A rep as the admin API shows it: never the password hash.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RepOutput {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub teams: Vec<String>,
    pub permissions: Permissions,
    pub public: bool,
    pub skills: std::collections::BTreeMap<String, crate::domain::routing::SkillPreference>,
    pub max_sessions: Option<u32>,
}

impl From<&Rep> for RepOutput {
    fn from(r: &Rep) -> Self {
        RepOutput {
            id: r.id.clone(),
            username: r.username.clone(),
            display_name: r.display_name.clone(),
            teams: r.teams.clone(),
            permissions: r.permissions.clone(),
            public: r.public,
            skills: r.skills.clone(),
            max_sessions: r.max_sessions,
        }
    }
}

pub async fn put_rep(hub: &Arc<Hub>, id: &str, input: RepInput) -> AppResult<RepOutput> {
    // The slow part first, outside the lock: argon2 takes tens of ms (off
    // the async threads, as login's checks).
    let new_hash = match input.password.clone() {
        Some(password) => Some(
            hub.password_work(move || hash_password(&password))
                .await
                .ok_or_else(|| AppError::internal("hashing the password failed"))??,
        ),
        None => None,
    };
    let _writing = hub.catalog_writes.lock().await;
    let existing = hub.catalog().reps.get(id).cloned();
    let password_hash = match (new_hash, &existing) {
        (Some(hash), _) => hash,
        (None, Some(old)) => old.password_hash.clone(),
        (None, None) => return Err(AppError::invalid("a new rep needs a password")),
    };
    let rep = Rep {
        id: id.to_string(),
        username: input.username,
        display_name: input.display_name,
        password_hash,
        teams: input.teams,
        permissions: input.permissions,
        public: input.public,
        skills: input.skills,
        max_sessions: input.max_sessions,
    };
    if rep.max_sessions == Some(0) {
        return Err(AppError::invalid("max_sessions must be at least 1"));
    }
    if rep.display_name.trim().is_empty() {
        return Err(AppError::invalid("a rep needs a display_name"));
    }
    hub.catalog().validate_rep(&rep)?;
    put(hub.store.as_ref(), Kind::Rep, id, &rep).await?;
    let out = RepOutput::from(&rep);
    hub.catalog_mut().reps.insert(id.to_string(), rep);
    supervisor::ensure_actors(hub).await?;
    Ok(out)
}

/// Creates or replaces a team, issue type, portal, button or help link.
pub async fn put_entry<T>(hub: &Arc<Hub>, kind: Kind, id: &str, value: T) -> AppResult<T>
where
    T: Record + Clone + HasId,
{
    if value.id() != id {
        return Err(AppError::invalid(format!(
            "the body's id '{}' differs from the path's '{id}'",
            value.id()
        )));
    }
    let _writing = hub.catalog_writes.lock().await;
    value.validate(&hub.catalog())?;
    put(hub.store.as_ref(), kind, id, &value).await?;
    value.clone().insert(&mut hub.catalog_mut());
    supervisor::ensure_actors(hub).await?;
    Ok(value)
}

/// Deletes a catalog entry that nothing else refers to.
pub async fn delete_entry(hub: &Arc<Hub>, kind: Kind, id: &str) -> AppResult<()> {
    let _writing = hub.catalog_writes.lock().await;
    let queue = match kind {
        Kind::Team => Some(QueueId::team(id)),
        Kind::Rep => Some(QueueId::rep(id)),
        _ => None,
    };
    {
        let c = hub.catalog();
        let exists = match kind {
            Kind::Rep => c.reps.contains_key(id),
            Kind::Team => c.teams.contains_key(id),
            Kind::IssueType => c.issue_types.contains_key(id),
            Kind::Portal => c.portals.contains_key(id),
            Kind::SupportButton => c.buttons.contains_key(id),
            Kind::HelpLink => c.help_links.contains_key(id),
        };
        if !exists {
            return Err(AppError::not_found(kind.noun(), id));
        }
        // A team or rep is also a queue: nothing may still point at it.
        if let Some(q) = &queue {
            let used = (kind == Kind::Team
                && (c.reps.values().any(|r| r.teams.iter().any(|t| t == id))
                    || c.issue_types.values().any(|i| i.team == id)))
                || c.buttons.values().any(|b| &b.queue == q)
                || c.help_links.values().any(|l| &l.queue == q);
            if used {
                return Err(AppError::new(
                    ErrorCode::Conflict,
                    format!(
                        "{} '{id}' is still used by reps, issue types, support buttons or help links: change those first",
                        kind.noun()
                    ),
                ));
            }
        }
    }
    // Waiting-session rules that move sessions into it would strand them,
    // and would stop the next start (`check_rule_targets`). A team's own
    // rules do not count: they go with it.
    if let Some(queue) = &queue {
        let owner = (kind == Kind::Team).then_some(id);
        if let Some(name) = rules_moving_into(hub, queue, owner) {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!(
                    "waiting-session rules ({name}) still move sessions to {queue}: change them first"
                ),
            ));
        }
    }
    // Customers still waiting there would be stranded.
    if let Some(q) = &queue {
        if let Ok(addr) = hub.directory.queue(q) {
            let stats = addr.send(crate::actors::queue::Stats).await?;
            if stats.waiting > 0 {
                return Err(AppError::new(
                    ErrorCode::Conflict,
                    format!(
                        "{} sessions still wait in {q}: move or end them first",
                        stats.waiting
                    ),
                ));
            }
        }
    }
    // Only now, with every refusal behind us, does anything stored go: a
    // refused delete leaves the team exactly as it was, rules included.
    if kind == Kind::Team {
        hub.store.delete(&rules_key(id), Expect::Any).await?;
        hub.set_team_rules(id, None);
    }
    hub.store
        .delete(&format!("{}{id}", kind.prefix()), Expect::Any)
        .await?;
    let mut c = hub.catalog_mut();
    match kind {
        Kind::Rep => {
            c.reps.remove(id);
        }
        Kind::Team => {
            c.teams.remove(id);
        }
        Kind::IssueType => {
            c.issue_types.remove(id);
        }
        Kind::Portal => {
            c.portals.remove(id);
        }
        Kind::SupportButton => {
            c.buttons.remove(id);
        }
        Kind::HelpLink => {
            c.help_links.remove(id);
        }
    }
    Ok(())
}

pub fn rules_key(team: &str) -> String {
    format!("rules/team/{team}")
}

/// The rules in force, each with the name an operator knows it by: the
/// default and every team's that exists. A team deleted through the admin
/// API may still have rules in the configuration file; they apply to no
/// queue, so nothing holds them to their targets.
fn rules_in_force(hub: &Hub) -> Vec<(String, QueueRules)> {
    let rules = hub.rules();
    let catalog = hub.catalog();
    std::iter::once(("default".to_string(), rules.default))
        .chain(
            rules
                .teams
                .into_iter()
                .filter(|(team, _)| catalog.teams.contains_key(team))
                .map(|(team, r)| (format!("teams.{team}"), r)),
        )
        .collect()
}

/// The first rules in force, other than `except_team`'s, that may move
/// sessions into `queue`.
fn rules_moving_into(hub: &Hub, queue: &QueueId, except_team: Option<&str>) -> Option<String> {
    let own = except_team.map(|t| format!("teams.{t}"));
    rules_in_force(hub)
        .into_iter()
        .filter(|(name, _)| Some(name) != own.as_ref())
        .find(|(_, r)| r.targets().any(|q| q == queue))
        .map(|(name, _)| name)
}

/// Every queue the rules in force may move sessions into must exist.
pub fn check_rule_targets(hub: &Hub) -> AppResult<()> {
    let rules = rules_in_force(hub);
    let catalog = hub.catalog();
    for (name, r) in rules {
        for q in r.targets() {
            if catalog.check_queue(q).is_err() {
                return Err(AppError::invalid(format!(
                    "config key 'rules.{name}' moves sessions to {q}, which does not exist"
                )));
            }
        }
    }
    Ok(())
}

/// Applies the rules stored through the admin API over the configuration's.
pub async fn load_rules(hub: &Hub) -> AppResult<()> {
    for (key, rules, _) in store::load_all::<QueueRules>(hub.store.as_ref(), "rules/team/").await? {
        if let Some(team) = key.strip_prefix("rules/team/") {
            hub.set_team_rules(team, Some(rules));
        }
    }
    Ok(())
}

/// Sets (`Some`) or clears (`None`: back to the configuration) a team's
/// waiting-session rules.
pub async fn put_rules(hub: &Hub, team: &str, rules: Option<QueueRules>) -> AppResult<()> {
    let _writing = hub.catalog_writes.lock().await;
    hub.catalog().team(team)?;
    match &rules {
        Some(r) => {
            r.validate().map_err(AppError::invalid)?;
            for q in r.targets() {
                hub.catalog().check_queue(q)?;
            }
            store::save(hub.store.as_ref(), &rules_key(team), r, Expect::Any).await?;
        }
        None => hub.store.delete(&rules_key(team), Expect::Any).await?,
    }
    hub.set_team_rules(team, rules);
    Ok(())
}

/// Catalog entries other than reps share one write path.
pub trait HasId: Serialize + DeserializeOwned {
    const CATALOG_KIND: Kind;
    fn id(&self) -> &str;
    fn validate(&self, c: &Catalog) -> AppResult<()>;
    fn insert(self, c: &mut Catalog);
}

impl HasId for Team {
    const CATALOG_KIND: Kind = Kind::Team;
    fn id(&self) -> &str {
        &self.id
    }
    fn validate(&self, _: &Catalog) -> AppResult<()> {
        crate::domain::ids::check_admin_id("team", &self.id)?;
        if self.name.trim().is_empty() {
            return Err(AppError::invalid("a team needs a name"));
        }
        Ok(())
    }
    fn insert(self, c: &mut Catalog) {
        c.teams.insert(self.id.clone(), self);
    }
}

impl HasId for IssueType {
    const CATALOG_KIND: Kind = Kind::IssueType;
    fn id(&self) -> &str {
        &self.id
    }
    fn validate(&self, c: &Catalog) -> AppResult<()> {
        c.validate_issue_type(self)
    }
    fn insert(self, c: &mut Catalog) {
        c.issue_types.insert(self.id.clone(), self);
    }
}

impl HasId for Portal {
    const CATALOG_KIND: Kind = Kind::Portal;
    fn id(&self) -> &str {
        &self.id
    }
    fn validate(&self, _: &Catalog) -> AppResult<()> {
        crate::domain::ids::check_admin_id("portal", &self.id)
    }
    fn insert(self, c: &mut Catalog) {
        c.portals.insert(self.id.clone(), self);
    }
}

impl HasId for SupportButton {
    const CATALOG_KIND: Kind = Kind::SupportButton;
    fn id(&self) -> &str {
        &self.id
    }
    fn validate(&self, c: &Catalog) -> AppResult<()> {
        c.validate_queue_target("support button", &self.id, &self.queue)
    }
    fn insert(self, c: &mut Catalog) {
        c.buttons.insert(self.id.clone(), self);
    }
}

impl HasId for HelpLink {
    const CATALOG_KIND: Kind = Kind::HelpLink;
    fn id(&self) -> &str {
        &self.id
    }
    fn validate(&self, c: &Catalog) -> AppResult<()> {
        c.validate_queue_target("help link", &self.id, &self.queue)
    }
    fn insert(self, c: &mut Catalog) {
        c.help_links.insert(self.id.clone(), self);
    }
}
