//! Every message of the wire protocol.
//!
//! Client to server: a [`Request`], a map with `type` (the request's name),
//! an optional `id` the reply echoes as `re`, and the request's fields.
//! Server to client: a [`ServerFrame`], a map whose `type` is `reply`,
//! `error`, `event`, `snapshot` or `goodbye`.
//!
//! All names are snake_case, all maps have named fields (so any language's
//! MessagePack library reads them), times are milliseconds since the Unix
//! epoch, queues are strings `team:<id>` / `rep:<id>`. docs/protocol.md is
//! the human version of this file and must match it.
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::chat::ChatLine;
use crate::domain::ids::*;
use crate::domain::queue::{InvitationSummary, SessionSummary, SortBy};
use crate::domain::rep_state::RepStatus;
use crate::domain::session::{HistoryEntry, Invitation, Participant, SessionState};
use crate::error::ErrorCode;

/// The protocol version this server speaks; `hello` must name it.
pub const PROTOCOL_VERSION: u32 = 1;

/// A client's request: `id` (0 when absent) plus the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    #[serde(default)]
    pub id: u64,
    #[serde(flatten)]
    pub body: RequestBody,
}

/// Where a reconnecting client left off: the stream it read and the last
/// event number it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeFrom {
    pub stream: String,
    pub after: u64,
}

/// How a customer starts a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Entry {
    /// A one-time key a rep gave them: the rep's personal queue.
    SessionKey { key: String },
    /// A rep chosen from the public list: that rep's personal queue.
    Rep { rep: RepId },
    /// A support button: the button's queue.
    SupportButton { button: ButtonId },
    /// The issue submission form: the queue of the team owning the type.
    IssueForm { issue_type: IssueTypeId },
    /// A web page's help link: a browser sharing session in its queue.
    HelpLink { link: HelpLinkId },
}

/// Writes the request enum twice from one list of variants: as
/// [`RequestBody`], the internally tagged enum clients build and the server
/// matches on, and as `RequestByType`, serde's remote view of the same
/// variants as an externally tagged enum, which `decode_request` uses once
/// it has read the frame's `type`. An internally tagged enum is read by
/// buffering every field of the map (each string copied into serde's
/// `Content`) before the tag picks the variant, then reading the variant
/// from that buffer; knowing the variant first, the fields are read
/// straight from the frame (docs/performance.md, change 30).
macro_rules! request_bodies {
    ($($variants:tt)*) => {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum RequestBody { $($variants)* }

        /// Only ever read into a [`RequestBody`], never made itself.
        #[allow(dead_code)]
        #[derive(Deserialize)]
        #[serde(remote = "RequestBody", rename_all = "snake_case")]
        pub(super) enum RequestByType { $($variants)* }
    };
}

request_bodies! {
    // --- any connection -------------------------------------------------
    /// First message on every connection.
    Hello {
        protocol: u32,
        role: Role,
        #[serde(default = "default_client")]
        client: ClientKind,
    },
    /// Answered with `pong`; for measuring round trips.
    Ping,

    // --- reps -------------------------------------------------------------
    /// With `username` and `password`, or with a `token` from an earlier
    /// login. `resume` asks for the events missed since.
    Login {
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        resume: Option<ResumeFrom>,
    },
    Logout,
    ListQueues,
    ViewQueue {
        queue: QueueId,
        #[serde(default)]
        sort: SortBy,
    },
    SessionDetails {
        session: SessionId,
    },
    Accept {
        session: SessionId,
    },
    /// Accepts the longest-waiting session of the rep's team queues.
    GetNext,
    Transfer {
        session: SessionId,
        to: QueueId,
    },
    Invite {
        session: SessionId,
        to: QueueId,
    },
    Join {
        session: SessionId,
    },
    Leave {
        session: SessionId,
    },
    /// A control action (remote input) for the customer's client. Refused
    /// with `view_only` on mobile sessions.
    Control {
        session: SessionId,
        input: String,
    },
    /// Asks to see the customer's screen; allowed on every client kind.
    RequestView {
        session: SessionId,
    },
    MySessions,
    Star {
        queue: QueueId,
    },
    Unstar {
        queue: QueueId,
    },
    TeamChat {
        team: TeamId,
        text: String,
    },
    TeamChatHistory {
        team: TeamId,
    },
    MarkTeamChatRead {
        team: TeamId,
    },
    GenerateSessionKey {
        valid_for_secs: u64,
        #[serde(default)]
        portal: Option<PortalId>,
    },
    ListTeams,
    ListReps,
    /// Available, busy or away; only available reps get routing offers.
    SetStatus {
        status: RepStatus,
    },
    /// Opt in to (true) or out of automatic routing offers.
    SetAutoAssign {
        enabled: bool,
    },
    /// Turns down a routing offer; it goes to the next rep and never comes
    /// back to this one. (To take an offer, `accept` the session.)
    DeclineOffer {
        session: SessionId,
    },

    // --- customers ----------------------------------------------------------
    /// The reps a customer may choose: logged in and public.
    PublicReps,
    StartSession {
        entry: Entry,
        name: String,
        #[serde(default)]
        company: String,
        #[serde(default)]
        description: String,
    },
    /// Back to a session after a dropped connection.
    ResumeSession {
        token: String,
        #[serde(default)]
        resume: Option<ResumeFrom>,
    },

    // --- both roles -----------------------------------------------------------
    /// Reps name the session; a customer's is implied.
    Chat {
        #[serde(default)]
        session: Option<SessionId>,
        text: String,
    },
    ChatHistory {
        #[serde(default)]
        session: Option<SessionId>,
    },
    /// Reps name the session; a customer's is implied.
    EndSession {
        #[serde(default)]
        session: Option<SessionId>,
    },
}

fn default_client() -> ClientKind {
    ClientKind::Desktop
}

impl RequestBody {
    /// Every `type` a client may send, for telling an unknown type from a
    /// known one with bad fields.
    pub const TYPES: &'static [&'static str] = &[
        "hello",
        "ping",
        "login",
        "logout",
        "list_queues",
        "view_queue",
        "session_details",
        "accept",
        "get_next",
        "transfer",
        "invite",
        "join",
        "leave",
        "control",
        "request_view",
        "my_sessions",
        "star",
        "unstar",
        "team_chat",
        "team_chat_history",
        "mark_team_chat_read",
        "generate_session_key",
        "list_teams",
        "list_reps",
        "set_status",
        "set_auto_assign",
        "decline_offer",
        "public_reps",
        "start_session",
        "resume_session",
        "chat",
        "chat_history",
        "end_session",
    ];

    /// The `type` tag, for metrics and logs.
    pub fn type_name(&self) -> &'static str {
        match self {
            RequestBody::Hello { .. } => "hello",
            RequestBody::Ping => "ping",
            RequestBody::Login { .. } => "login",
            RequestBody::Logout => "logout",
            RequestBody::ListQueues => "list_queues",
            RequestBody::ViewQueue { .. } => "view_queue",
            RequestBody::SessionDetails { .. } => "session_details",
            RequestBody::Accept { .. } => "accept",
            RequestBody::GetNext => "get_next",
            RequestBody::Transfer { .. } => "transfer",
            RequestBody::Invite { .. } => "invite",
            RequestBody::Join { .. } => "join",
            RequestBody::Leave { .. } => "leave",
            RequestBody::Control { .. } => "control",
            RequestBody::RequestView { .. } => "request_view",
            RequestBody::MySessions => "my_sessions",
            RequestBody::Star { .. } => "star",
            RequestBody::Unstar { .. } => "unstar",
            RequestBody::TeamChat { .. } => "team_chat",
            RequestBody::TeamChatHistory { .. } => "team_chat_history",
            RequestBody::MarkTeamChatRead { .. } => "mark_team_chat_read",
            RequestBody::GenerateSessionKey { .. } => "generate_session_key",
            RequestBody::ListTeams => "list_teams",
            RequestBody::ListReps => "list_reps",
            RequestBody::SetStatus { .. } => "set_status",
            RequestBody::SetAutoAssign { .. } => "set_auto_assign",
            RequestBody::DeclineOffer { .. } => "decline_offer",
            RequestBody::PublicReps => "public_reps",
            RequestBody::StartSession { .. } => "start_session",
            RequestBody::ResumeSession { .. } => "resume_session",
            RequestBody::Chat { .. } => "chat",
            RequestBody::ChatHistory { .. } => "chat_history",
            RequestBody::EndSession { .. } => "end_session",
        }
    }
}

// ---------------------------------------------------------------------------
// Server to client

// A frame is built, encoded and dropped (events are shared behind one
// `Arc` by all of a stream's consoles); what stays around for replay is the
// small `Event`, so boxing `Reply` would only add an allocation per reply.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The answer to request `re`.
    Reply { re: u64, body: Reply },
    /// A request failed (`re` is its id, absent when the frame could not be
    /// read far enough to find one). Nothing was changed.
    Error {
        #[serde(default)]
        re: Option<u64>,
        code: ErrorCode,
        message: String,
    },
    /// A pushed event, numbered within `stream`. The name is shared with
    /// the stream's outbox rather than copied into every frame, and so is
    /// the event: one alert goes to every rep watching the queue and stays
    /// in each one's replay ring, and a copy per rep was an allocation for
    /// every string in it (docs/performance.md, change 31).
    Event {
        stream: Arc<str>,
        seq: u64,
        event: Arc<Event>,
        /// Not on the wire: the event already encoded as MessagePack when
        /// it goes to several reps at once (an alert goes to every rep
        /// watching the queue), so `encode_frame` copies it in after the
        /// frame's own fields rather than encode it again for each rep.
        #[serde(skip)]
        packed: Option<bytes::Bytes>,
    },
    /// Everything the client should show, as of event `seq` of `stream`;
    /// sent instead of a replay when the gap is too old.
    Snapshot {
        stream: String,
        seq: u64,
        snapshot: Snapshot,
    },
    /// The server is going away (shutdown): reconnect, elsewhere in a
    /// cluster, and resume.
    Goodbye { reason: String },
}

impl ServerFrame {
    /// Every non-event `kind()`; events add `Event::KINDS`.
    pub const PLAIN_KINDS: [&'static str; 4] = ["reply", "error", "snapshot", "goodbye"];

    /// The frame's type, or an event's kind, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerFrame::Reply { .. } => "reply",
            ServerFrame::Error { .. } => "error",
            ServerFrame::Event { event, .. } => event.kind(),
            ServerFrame::Snapshot { .. } => "snapshot",
            ServerFrame::Goodbye { .. } => "goodbye",
        }
    }
}

// Replies are built, encoded and dropped at once; boxing the large
// variants would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    Welcome {
        protocol: u32,
        server: String,
        /// Largest frame the server reads, in bytes.
        max_frame_bytes: usize,
        /// How often the server pings, in milliseconds: a client that
        /// sees no ping for much longer knows the connection is dead.
        /// Both timings came after the rest of `welcome`, so a client that
        /// reads an older server's (a cluster mid-upgrade) gets 0, "not
        /// said", instead of failing its hello.
        #[serde(default)]
        heartbeat_ms: u64,
        /// A ping unanswered this long (no pong, no frame) closes the
        /// connection, in milliseconds.
        #[serde(default)]
        pong_timeout_ms: u64,
    },
    Pong,
    Ok,
    LoggedIn {
        rep: RepInfo,
        token: String,
        /// The rep's event stream; events follow this reply.
        stream: String,
        /// Events up to this number are reflected in what the rep fetches
        /// or in the replay that follows.
        seq: u64,
        /// The rep's availability as the server keeps it: a console that
        /// reconnects shows what routing will do without asking.
        status: RepStatus,
        auto_assign: bool,
    },
    Queues {
        queues: Vec<QueueInfo>,
    },
    QueueView(QueueView),
    Session {
        session: SessionDetails,
    },
    Sessions {
        sessions: Vec<SessionDetails>,
    },
    Favorites {
        favorites: Vec<QueueId>,
    },
    ChatSent {
        line: ChatLine,
    },
    ChatHistory {
        lines: Vec<ChatLine>,
    },
    SessionKey {
        key: String,
        /// The portal's unique URL for this key.
        url: String,
        expires_at: Millis,
    },
    Teams {
        teams: Vec<TeamInfo>,
    },
    Reps {
        reps: Vec<RepInfo>,
    },
    SessionStarted(CustomerView),
    /// The rep's availability after `set_status` / `set_auto_assign`.
    Status {
        status: RepStatus,
        auto_assign: bool,
    },
}

/// A rep as other reps and customers see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepInfo {
    pub id: RepId,
    pub display_name: String,
    pub teams: Vec<TeamId>,
    pub online: bool,
    pub public: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamInfo {
    pub id: TeamId,
    pub name: String,
    pub queue: QueueId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    Personal,
    Team,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueInfo {
    pub queue: QueueId,
    pub kind: QueueKind,
    pub name: String,
    pub waiting: usize,
    pub invitations: usize,
    pub favorite: bool,
    /// Team queues: whether the team's chat has lines the rep has not read.
    pub chat_unread: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueView {
    pub queue: QueueId,
    pub name: String,
    pub sort: SortBy,
    pub items: Vec<QueueItem>,
    pub invitations: Vec<InvitationSummary>,
}

/// One map on the wire: the place in the queue beside the summary's fields.
/// Written by hand in `protocol::flat` (why is said there); read as derived.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QueueItem {
    /// Place in queue order (1 = next), whatever the sort.
    pub position: usize,
    pub waited_ms: u64,
    #[serde(flatten)]
    pub summary: SessionSummary,
}

/// Everything about a session, as its reps and the REST API see it: one
/// map, the summary's and the state's fields beside the rest. Written by
/// hand in `protocol::flat` (why is said there); read as derived.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SessionDetails {
    #[serde(flatten)]
    pub summary: SessionSummary,
    #[serde(flatten)]
    pub state: SessionState,
    pub created_at: Millis,
    pub entered_through: QueueId,
    pub last_queue: QueueId,
    pub owner: Option<RepId>,
    pub participants: Vec<Participant>,
    pub invitations: Vec<Invitation>,
    pub history: Vec<HistoryEntry>,
    pub chat_lines: u64,
}

/// A customer's view of their own session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerView {
    pub session: SessionId,
    /// The resume token: keep it to come back after a dropped connection.
    pub token: String,
    pub stream: String,
    pub seq: u64,
    /// `waiting`, `active` or `ended`.
    pub state: String,
    pub queue_name: Option<String>,
    pub position: Option<usize>,
    pub estimated_wait_secs: Option<u64>,
    /// Display names of the reps in the session.
    pub reps: Vec<String>,
    pub view_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Snapshot {
    Rep {
        queues: Vec<QueueView>,
        sessions: Vec<SessionDetails>,
        favorites: Vec<QueueId>,
        /// team id -> unread flag.
        chat_unread: std::collections::BTreeMap<TeamId, bool>,
        status: RepStatus,
        auto_assign: bool,
    },
    Customer {
        view: CustomerView,
        chat: Vec<ChatLine>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftQueueReason {
    Accepted,
    Transferred,
    Ended,
    Moved,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    // --- to reps ---------------------------------------------------------------
    /// A session entered one of the rep's queues: the popup alert.
    ///
    /// The summary is shared (`Arc`): one alert goes to every rep watching
    /// the queue and stays in each one's replay ring, and copying it per rep
    /// cost about 4 KiB of server memory per waiting customer.
    QueueEntered {
        queue: QueueId,
        position: usize,
        session: Arc<SessionSummary>,
    },
    QueueLeft {
        queue: QueueId,
        session: SessionId,
        reason: LeftQueueReason,
    },
    /// An invitation to a shared session appeared in one of the rep's queues.
    Invited {
        queue: QueueId,
        invitation: InvitationSummary,
    },
    InvitationWithdrawn {
        queue: QueueId,
        session: SessionId,
    },
    /// A session the rep is in changed (someone joined or left, owner).
    SessionUpdated {
        session: Box<SessionDetails>,
    },
    /// The rep is no longer in the session (ended, transferred).
    SessionClosed {
        session: SessionId,
        reason: String,
    },
    TeamChat {
        team: TeamId,
        line: ChatLine,
    },
    TeamUnread {
        team: TeamId,
        unread: bool,
    },
    Favorites {
        favorites: Vec<QueueId>,
    },
    /// Automatic routing offers the rep a session: `accept` it before
    /// `expires_at`, or `decline_offer`.
    Offer {
        queue: QueueId,
        session: Box<SessionSummary>,
        expires_at: Millis,
    },
    /// The offer is gone (expired, declined, or someone else took it).
    OfferWithdrawn {
        session: SessionId,
        reason: String,
    },
    /// The rep's availability changed (from another console too).
    Status {
        status: RepStatus,
        auto_assign: bool,
    },

    // --- to customers --------------------------------------------------------------
    QueuePosition {
        queue_name: String,
        position: usize,
        estimated_wait_secs: Option<u64>,
    },
    RepJoined {
        name: String,
    },
    RepLeft {
        name: String,
    },
    Transferred {
        queue_name: String,
    },
    ControlInput {
        input: String,
    },
    ViewRequested {
        by: String,
    },
    /// Nobody can take the session now (the queue's reps are all away).
    NoRepAvailable {
        message: String,
        redirect_url: Option<String>,
    },

    // --- to both -------------------------------------------------------------------
    Chat {
        session: SessionId,
        line: ChatLine,
    },
    SessionEnded {
        session: SessionId,
        reason: String,
    },
}

/// Writes `Event::KINDS` and `Event::kind()` from one list, so the two
/// cannot drift apart. The match is exhaustive, so a new variant does not
/// compile until it is named here; `event_kinds_list_is_complete`
/// (tests/docs_match_code.rs) checks the names against serde's, and
/// `each_kind_is_its_variant_in_snake_case` below checks the pairs.
macro_rules! event_kinds {
    ($($variant:ident => $name:literal,)*) => {
        impl Event {
            /// Every `kind()`, so per-kind counters can be made up front.
            pub const KINDS: &'static [&'static str] = &[$($name),*];

            /// The serde tag of the event, for metrics and logs.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Event::$variant { .. } => $name,)*
                }
            }
        }

        /// (variant, kind) pairs, for the test that they follow serde's
        /// `rename_all = "snake_case"`.
        #[cfg(test)]
        const EVENT_VARIANTS: &[(&str, &str)] = &[$((stringify!($variant), $name)),*];
    };
}

event_kinds! {
    QueueEntered => "queue_entered",
    QueueLeft => "queue_left",
    Invited => "invited",
    InvitationWithdrawn => "invitation_withdrawn",
    SessionUpdated => "session_updated",
    SessionClosed => "session_closed",
    TeamChat => "team_chat",
    TeamUnread => "team_unread",
    Favorites => "favorites",
    Offer => "offer",
    OfferWithdrawn => "offer_withdrawn",
    Status => "status",
    QueuePosition => "queue_position",
    RepJoined => "rep_joined",
    RepLeft => "rep_left",
    Transferred => "transferred",
    ControlInput => "control_input",
    ViewRequested => "view_requested",
    NoRepAvailable => "no_rep_available",
    Chat => "chat",
    SessionEnded => "session_ended",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_welcome_without_timings_reads_as_not_said() {
        let older = serde_json::json!({
            "type": "reply", "re": 1,
            "body": {"kind": "welcome", "protocol": 1, "server": "switchboard 0.0.9",
                     "max_frame_bytes": 65536}
        });
        let frame: ServerFrame = serde_json::from_value(older).expect("decodes");
        let ServerFrame::Reply {
            body:
                Reply::Welcome {
                    heartbeat_ms,
                    pong_timeout_ms,
                    ..
                },
            ..
        } = frame
        else {
            panic!("a welcome: {frame:?}")
        };
        assert_eq!((heartbeat_ms, pong_timeout_ms), (0, 0));
    }

    #[test]
    fn each_kind_is_its_variant_in_snake_case() {
        // serde's snake_case: an underscore before every inner capital.
        let snake = |variant: &str| {
            let mut out = String::new();
            for (i, c) in variant.chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            }
            out
        };
        // Both lists come from the one `event_kinds!` list, so their lengths
        // cannot differ; that every variant is named (against serde's own
        // list) is `event_kinds_list_is_complete` in tests/docs_match_code.rs.
        for (variant, kind) in EVENT_VARIANTS {
            assert_eq!(&snake(variant), kind, "Event::{variant}");
        }
    }

    /// Every event kept for replay sits in a per-recipient ring
    /// (`Outbox<Event>`), so an idle connection costs a few slots of
    /// `size_of::<Event>()` and rings hold thousands of events
    /// (docs/performance.md). The large payloads (`SessionSummary`,
    /// `SessionDetails`) sit behind a `Box` or a shared `Arc` to keep the
    /// enum small; this catches a new inline one.
    #[test]
    fn events_stay_small() {
        let size = std::mem::size_of::<Event>();
        assert!(size <= 128, "Event is {size} bytes: box the large variant");
    }
}
