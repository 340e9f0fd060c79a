//! What a rep changes about themselves: starred queues and how far they
//! have read each team's chat. Kept apart from the catalog entry, which
//! only admins change.
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ids::*;
use crate::store::Record;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepStatus {
    #[default]
    Available,
    Busy,
    Away,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepState {
    #[serde(default)]
    pub favorites: BTreeSet<QueueId>,
    /// team -> number of team chat lines the rep has read.
    #[serde(default)]
    pub chat_read: BTreeMap<TeamId, u64>,
    #[serde(default)]
    pub status: RepStatus,
    /// Takes offers from automatic routing.
    #[serde(default = "yes")]
    pub auto_assign: bool,
    /// When the rep last became available (routing prefers the longest).
    #[serde(default)]
    pub available_since: Millis,
}

impl Default for RepState {
    fn default() -> Self {
        RepState {
            favorites: BTreeSet::new(),
            chat_read: BTreeMap::new(),
            status: RepStatus::Available,
            auto_assign: true,
            available_since: 0,
        }
    }
}

impl Record for RepState {
    const KIND: &'static str = "rep_state";
    const VERSION: u32 = 1;
}

impl RepState {
    /// Unread when the team has more lines than the rep has read.
    pub fn unread(&self, team: &str, team_lines: u64) -> bool {
        self.chat_read.get(team).copied().unwrap_or(0) < team_lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unread_until_read_up_to_the_last_line() {
        let mut s = RepState::default();
        assert!(!s.unread("net", 0));
        assert!(s.unread("net", 1));
        s.chat_read.insert("net".into(), 1);
        assert!(!s.unread("net", 1));
        assert!(s.unread("net", 2));
    }
}
