//! Identifiers and the small shared vocabulary of the product.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::AppError;

pub type RepId = String;
pub type TeamId = String;
pub type SessionId = String;
pub type IssueTypeId = String;
pub type PortalId = String;
pub type ButtonId = String;
pub type HelpLinkId = String;

/// Milliseconds since the Unix epoch: every stored time.
pub type Millis = u64;

pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Ids given by admins (reps, teams, issue types, ...) are short and safe to
/// use inside store keys and URLs.
pub fn check_admin_id(what: &str, id: &str) -> Result<(), AppError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(AppError::invalid(format!(
            "{what} id '{}' is not allowed: use 1 to 64 characters of a-z A-Z 0-9 - _",
            id.chars().take(80).collect::<String>()
        )))
    }
}

/// A queue: a team's queue or a rep's personal queue. On the wire it is a
/// string, `team:<team id>` or `rep:<rep id>`, so any language can use it
/// as a map key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueId {
    Team(TeamId),
    Rep(RepId),
}

impl QueueId {
    pub fn team(id: impl Into<TeamId>) -> Self {
        QueueId::Team(id.into())
    }
    pub fn rep(id: impl Into<RepId>) -> Self {
        QueueId::Rep(id.into())
    }

    /// The wire form in two parts, `team:` or `rep:` and the id, for
    /// [`fmt::Display`] and for serialising without building a `String`.
    fn wire_parts(&self) -> (&'static str, &str) {
        match self {
            QueueId::Team(t) => ("team:", t),
            QueueId::Rep(r) => ("rep:", r),
        }
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, id) = self.wire_parts();
        write!(f, "{prefix}{id}")
    }
}

impl FromStr for QueueId {
    type Err = AppError;
    fn from_str(s: &str) -> Result<Self, AppError> {
        let bad = || {
            AppError::invalid(format!(
                "queue '{}' is not of the form team:<id> or rep:<id>",
                s.chars().take(80).collect::<String>()
            ))
        };
        let (kind, id) = s.split_once(':').ok_or_else(bad)?;
        check_admin_id("queue", id).map_err(|_| bad())?;
        match kind {
            "team" => Ok(QueueId::Team(id.to_string())),
            "rep" => Ok(QueueId::Rep(id.to_string())),
            _ => Err(bad()),
        }
    }
}

/// Room for a queue's wire form on the stack: `team:` and an id of at most
/// 64 bytes ([`check_admin_id`]), with some to spare.
const QUEUE_WIRE_MAX: usize = 80;

impl Serialize for QueueId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Every alert and every `queue_left` names its queue, ten reps at a
        // time. `collect_str` would build a `String` for each (rmp-serde
        // has no cheaper path), so the wire form is put together on the
        // stack instead; an id too long for the buffer (never made by the
        // admin API) still goes the slow way.
        let (prefix, id) = self.wire_parts();
        let len = prefix.len() + id.len();
        let mut buf = [0u8; QUEUE_WIRE_MAX];
        if len > buf.len() {
            return s.collect_str(self);
        }
        buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
        buf[prefix.len()..len].copy_from_slice(id.as_bytes());
        match std::str::from_utf8(&buf[..len]) {
            Ok(wire) => s.serialize_str(wire),
            // Two UTF-8 strings joined are UTF-8; kept total all the same.
            Err(_) => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for QueueId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: AppError| serde::de::Error::custom(e.message))
    }
}

/// The customer's client. Mobile clients can be watched but not controlled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    Desktop,
    Mobile,
    Browser,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Desktop => "desktop",
            ClientKind::Mobile => "mobile",
            ClientKind::Browser => "browser",
        }
    }
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Rep,
    Customer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Rep => "rep",
            Role::Customer => "customer",
        }
    }
}

/// How a session came into being (and metrics' `path` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryPath {
    SessionKey,
    RepChoice,
    SupportButton,
    IssueForm,
    BrowserLink,
}

impl EntryPath {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryPath::SessionKey => "session_key",
            EntryPath::RepChoice => "rep_choice",
            EntryPath::SupportButton => "support_button",
            EntryPath::IssueForm => "issue_form",
            EntryPath::BrowserLink => "browser_link",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ids_round_trip_as_strings() {
        let q: QueueId = "team:support-1".parse().unwrap();
        assert_eq!(q, QueueId::team("support-1"));
        assert_eq!(q.to_string(), "team:support-1");
        let r: QueueId = "rep:alice".parse().unwrap();
        assert_eq!(r, QueueId::rep("alice"));
        for bad in ["", "team", "team:", "desk:x", "rep:a b", "rep:a/b"] {
            assert!(bad.parse::<QueueId>().is_err(), "{bad}");
        }
    }

    /// The stack-built wire form must be exactly the displayed one, in both
    /// encodings, for the longest id the admin API allows and for one too
    /// long for the buffer.
    #[test]
    fn queue_ids_serialise_as_their_display_form() {
        let longest = "x".repeat(64);
        let too_long = "y".repeat(QUEUE_WIRE_MAX);
        for q in [
            QueueId::team("support-1"),
            QueueId::rep("alice"),
            QueueId::team(longest.as_str()),
            QueueId::rep(longest.as_str()),
            QueueId::team(too_long.as_str()),
        ] {
            let wire = q.to_string();
            assert_eq!(serde_json::to_value(&q).unwrap(), wire.as_str());
            let mp: String = rmp_serde::from_slice(&rmp_serde::to_vec(&q).unwrap()).unwrap();
            assert_eq!(mp, wire);
        }
    }
}
