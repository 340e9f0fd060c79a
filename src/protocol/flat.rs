//! The flat maps of the protocol, written with their length.
//!
//! A [`SessionDetails`] is one map on the wire: a session's summary, its
//! state and the rest of its details side by side, and a [`QueueItem`] is a
//! summary with its place in the queue. serde's `#[serde(flatten)]` writes
//! such a map without knowing how many entries it will have, and rmp-serde,
//! which must write a map's length before its entries, then encodes the
//! entries into a scratch buffer to count them and copies them after the
//! header. That cost about 7,700 instructions per `SessionDetails`, twice in
//! every routed session (docs/performance.md, change 36). Here each part
//! writes its own entries into a map whose length is known up front; the
//! bytes are the same, and the tests below hold them to what the derived
//! code wrote. Reading is still derived.
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::messages::{QueueItem, SessionDetails};
use crate::domain::queue::SessionSummary;
use crate::domain::session::SessionState;

impl SessionSummary {
    /// How many entries [`Self::write_entries`] writes.
    const ENTRIES: usize = 16;

    /// Writes the summary's fields as entries of `map`, in declaration
    /// order; `order` and `rules` are the server's own and not on the wire.
    fn write_entries<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        map.serialize_entry("session", &self.session)?;
        map.serialize_entry("display_name", &self.display_name)?;
        map.serialize_entry("customer_name", &self.customer_name)?;
        map.serialize_entry("company", &self.company)?;
        map.serialize_entry("issue_type", &self.issue_type)?;
        map.serialize_entry("description", &self.description)?;
        map.serialize_entry("client", &self.client)?;
        map.serialize_entry("browser", &self.browser)?;
        map.serialize_entry("view_only", &self.view_only)?;
        map.serialize_entry("entry", &self.entry)?;
        map.serialize_entry("wait_start", &self.wait_start)?;
        map.serialize_entry("queued_at", &self.queued_at)?;
        map.serialize_entry("overdue", &self.overdue)?;
        map.serialize_entry("priority", &self.priority)?;
        map.serialize_entry("required_skills", &self.required_skills)?;
        map.serialize_entry("requeued", &self.requeued)
    }
}

/// The summary alone (in the alert, `queue_entered`) is the same map.
impl Serialize for SessionSummary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(Self::ENTRIES))?;
        self.write_entries(&mut map)?;
        map.end()
    }
}

/// The entries `SessionState`'s derived, internally tagged form has: the
/// `state` tag, then the variant's fields.
fn state_entries(state: &SessionState) -> usize {
    match state {
        SessionState::Waiting { .. } => 2,
        SessionState::Active => 1,
        SessionState::Ended { .. } => 3,
    }
}

fn write_state_entries<M: SerializeMap>(state: &SessionState, map: &mut M) -> Result<(), M::Error> {
    match state {
        SessionState::Waiting { queue } => {
            map.serialize_entry("state", "waiting")?;
            map.serialize_entry("queue", queue)
        }
        SessionState::Active => map.serialize_entry("state", "active"),
        SessionState::Ended { reason, at } => {
            map.serialize_entry("state", "ended")?;
            map.serialize_entry("reason", reason)?;
            map.serialize_entry("at", at)
        }
    }
}

impl Serialize for SessionDetails {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = SessionSummary::ENTRIES + state_entries(&self.state) + 8;
        let mut map = serializer.serialize_map(Some(entries))?;
        self.summary.write_entries(&mut map)?;
        write_state_entries(&self.state, &mut map)?;
        map.serialize_entry("created_at", &self.created_at)?;
        map.serialize_entry("entered_through", &self.entered_through)?;
        map.serialize_entry("last_queue", &self.last_queue)?;
        map.serialize_entry("owner", &self.owner)?;
        map.serialize_entry("participants", &self.participants)?;
        map.serialize_entry("invitations", &self.invitations)?;
        map.serialize_entry("history", &self.history)?;
        map.serialize_entry("chat_lines", &self.chat_lines)?;
        map.end()
    }
}

impl Serialize for QueueItem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2 + SessionSummary::ENTRIES))?;
        map.serialize_entry("position", &self.position)?;
        map.serialize_entry("waited_ms", &self.waited_ms)?;
        self.summary.write_entries(&mut map)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{ClientKind, EntryPath, QueueId};
    use crate::domain::queue::RuleState;
    use crate::domain::session::{EndReason, HistoryEntry, HistoryEvent, Invitation, Participant};

    /// What the derived code (`#[serde(flatten)]`) wrote for the values
    /// below, before change 36: MessagePack as hex, and JSON.
    const BEFORE: &str = include_str!("testdata/flat.txt");

    fn before(name: &str) -> &'static str {
        BEFORE
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in testdata/flat.txt"))
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Every field set, none to its default, so a field left out of the
    /// hand-written map shows in the bytes and in the round trip.
    fn summary() -> SessionSummary {
        SessionSummary {
            session: "s1".into(),
            display_name: "[Browser] Ann".into(),
            customer_name: "Ann".into(),
            company: "Acme".into(),
            issue_type: Some("billing".into()),
            description: "cannot pay".into(),
            client: ClientKind::Browser,
            browser: true,
            view_only: true,
            entry: EntryPath::BrowserLink,
            wait_start: 1_700_000_000_001,
            queued_at: 1_700_000_000_002,
            overdue: true,
            priority: 3,
            required_skills: vec!["fr".into()],
            requeued: Some("rep lost".into()),
            // Not on the wire: the round trip gives them their defaults.
            order: 0,
            rules: RuleState::default(),
        }
    }

    fn details(state: SessionState) -> SessionDetails {
        SessionDetails {
            summary: summary(),
            state,
            created_at: 1_700_000_000_000,
            entered_through: QueueId::team("t1"),
            last_queue: QueueId::rep("r1"),
            owner: Some("r1".into()),
            participants: vec![Participant {
                rep: "r1".into(),
                joined_at: 5,
            }],
            invitations: vec![Invitation {
                queue: QueueId::team("t2"),
                by: "r1".into(),
                at: 6,
            }],
            history: vec![HistoryEntry {
                at: 4,
                actor: "system".into(),
                event: HistoryEvent::Created,
                detail: "x".into(),
            }],
            chat_lines: 9,
        }
    }

    fn states() -> [(&'static str, SessionState); 3] {
        [
            (
                "waiting",
                SessionState::Waiting {
                    queue: QueueId::team("t1"),
                },
            ),
            ("active", SessionState::Active),
            (
                "ended",
                SessionState::Ended {
                    reason: EndReason::NoFallback,
                    at: 8,
                },
            ),
        ]
    }

    #[test]
    fn session_details_are_written_as_before_in_every_state() {
        for (name, state) in states() {
            let d = details(state);
            let packed = rmp_serde::to_vec_named(&d).unwrap();
            assert_eq!(hex(&packed), before(&format!("details_{name}_msgpack")));
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, before(&format!("details_{name}_json")));
            // And the derived reading gets every field back.
            assert_eq!(rmp_serde::from_slice::<SessionDetails>(&packed).unwrap(), d);
            assert_eq!(serde_json::from_str::<SessionDetails>(&json).unwrap(), d);
        }
    }

    #[test]
    fn queue_items_and_summaries_are_written_as_before() {
        let item = QueueItem {
            position: 2,
            waited_ms: 1500,
            summary: summary(),
        };
        let packed = rmp_serde::to_vec_named(&item).unwrap();
        assert_eq!(hex(&packed), before("queue_item_msgpack"));
        let json = serde_json::to_string(&item).unwrap();
        assert_eq!(json, before("queue_item_json"));
        assert_eq!(rmp_serde::from_slice::<QueueItem>(&packed).unwrap(), item);

        let alone = rmp_serde::to_vec_named(&summary()).unwrap();
        assert_eq!(hex(&alone), before("summary_msgpack"));
        assert_eq!(
            rmp_serde::from_slice::<SessionSummary>(&alone).unwrap(),
            summary()
        );
    }

    #[test]
    fn the_state_entries_are_the_derived_states_own() {
        // `state_entries` and `write_state_entries` copy what serde
        // derives for the internally tagged `SessionState`: the same map.
        for (_, state) in states() {
            let mut by_hand = Vec::new();
            let mut ser = rmp_serde::Serializer::new(&mut by_hand).with_struct_map();
            let mut map = ser.serialize_map(Some(state_entries(&state))).unwrap();
            write_state_entries(&state, &mut map).unwrap();
            SerializeMap::end(map).unwrap();
            assert_eq!(by_hand, rmp_serde::to_vec_named(&state).unwrap());
        }
    }
}
