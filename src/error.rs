//! Errors that reach a client.
//!
//! Every error a client can see carries a stable [`ErrorCode`] (a snake_case
//! string on the wire, in both the WebSocket protocol and the REST API) and a
//! sentence for a human. Codes are part of the protocol: never rename one,
//! only add. docs/protocol.md lists them all.
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// The stable machine-readable part of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not valid MessagePack (or JSON on the text subprotocol).
    MalformedFrame,
    /// The frame was larger than the server accepts.
    FrameTooLarge,
    /// The `type` tag names no message the server knows.
    UnknownType,
    /// A field is missing or has the wrong type or value.
    InvalidRequest,
    /// The first message on a connection must be `hello`.
    HelloRequired,
    /// `hello` was sent twice.
    AlreadyHello,
    /// The client speaks a protocol version the server does not.
    UnsupportedProtocol,
    /// The message needs a logged-in rep (send `login` first).
    LoginRequired,
    /// The message is for the other role (rep vs customer).
    WrongRole,
    /// Username or password is wrong.
    BadCredentials,
    /// The token is unknown or no longer valid.
    InvalidToken,
    /// The rep lacks the permission this action needs.
    PermissionDenied,
    /// The session, queue, rep, team or other object does not exist.
    NotFound,
    /// The session exists but the caller has no part in it.
    NotYourSession,
    /// Another rep accepted the session first.
    AlreadyTaken,
    /// The session is not waiting in a queue (it is active or ended).
    NotWaiting,
    /// The session has ended.
    SessionEnded,
    /// The action needs the session's owner.
    NotOwner,
    /// Control actions are refused: the customer's client is view-only (mobile).
    ViewOnly,
    /// The session key is not known.
    KeyUnknown,
    /// The session key's validity period is over.
    KeyExpired,
    /// The session key has already started a session.
    KeyUsed,
    /// The chosen rep is not logged in and visible, or not reachable.
    RepUnavailable,
    /// No session is waiting in any of the rep's team queues.
    QueueEmpty,
    /// The rep already takes part in the session.
    AlreadyInSession,
    /// The rep has no invitation to the session.
    NotInvited,
    /// The only rep in a session cannot leave it: end or transfer it instead.
    LastRep,
    /// The rep already runs as many sessions as they may.
    TooManySessions,
    /// There is no routing offer of that session for this rep.
    NoOffer,
    /// The object already exists.
    Conflict,
    /// The server is shutting down; reconnect.
    ShuttingDown,
    /// The store failed; nothing was changed.
    StorageError,
    /// A bug: something that should not happen did. Nothing was changed.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedFrame => "malformed_frame",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::HelloRequired => "hello_required",
            ErrorCode::AlreadyHello => "already_hello",
            ErrorCode::UnsupportedProtocol => "unsupported_protocol",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::WrongRole => "wrong_role",
            ErrorCode::BadCredentials => "bad_credentials",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotYourSession => "not_your_session",
            ErrorCode::AlreadyTaken => "already_taken",
            ErrorCode::NotWaiting => "not_waiting",
            ErrorCode::SessionEnded => "session_ended",
            ErrorCode::NotOwner => "not_owner",
            ErrorCode::ViewOnly => "view_only",
            ErrorCode::KeyUnknown => "key_unknown",
            ErrorCode::KeyExpired => "key_expired",
            ErrorCode::KeyUsed => "key_used",
            ErrorCode::RepUnavailable => "rep_unavailable",
            ErrorCode::QueueEmpty => "queue_empty",
            ErrorCode::AlreadyInSession => "already_in_session",
            ErrorCode::NotInvited => "not_invited",
            ErrorCode::LastRep => "last_rep",
            ErrorCode::TooManySessions => "too_many_sessions",
            ErrorCode::NoOffer => "no_offer",
            ErrorCode::Conflict => "conflict",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::StorageError => "storage_error",
            ErrorCode::Internal => "internal",
        }
    }

    /// Every code, for docs tests and metrics.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::MalformedFrame,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnknownType,
        ErrorCode::InvalidRequest,
        ErrorCode::HelloRequired,
        ErrorCode::AlreadyHello,
        ErrorCode::UnsupportedProtocol,
        ErrorCode::LoginRequired,
        ErrorCode::WrongRole,
        ErrorCode::BadCredentials,
        ErrorCode::InvalidToken,
        ErrorCode::PermissionDenied,
        ErrorCode::NotFound,
        ErrorCode::NotYourSession,
        ErrorCode::AlreadyTaken,
        ErrorCode::NotWaiting,
        ErrorCode::SessionEnded,
        ErrorCode::NotOwner,
        ErrorCode::ViewOnly,
        ErrorCode::KeyUnknown,
        ErrorCode::KeyExpired,
        ErrorCode::KeyUsed,
        ErrorCode::RepUnavailable,
        ErrorCode::QueueEmpty,
        ErrorCode::AlreadyInSession,
        ErrorCode::NotInvited,
        ErrorCode::LastRep,
        ErrorCode::TooManySessions,
        ErrorCode::NoOffer,
        ErrorCode::Conflict,
        ErrorCode::ShuttingDown,
        ErrorCode::StorageError,
        ErrorCode::Internal,
    ];

    /// The HTTP status the REST API answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedFrame
            | ErrorCode::UnknownType
            | ErrorCode::InvalidRequest
            | ErrorCode::HelloRequired
            | ErrorCode::AlreadyHello
            | ErrorCode::UnsupportedProtocol
            | ErrorCode::WrongRole => 400,
            ErrorCode::FrameTooLarge => 413,
            ErrorCode::LoginRequired | ErrorCode::BadCredentials | ErrorCode::InvalidToken => 401,
            ErrorCode::PermissionDenied | ErrorCode::NotYourSession | ErrorCode::NotOwner => 403,
            ErrorCode::NotFound | ErrorCode::KeyUnknown => 404,
            ErrorCode::KeyExpired | ErrorCode::KeyUsed => 410,
            ErrorCode::AlreadyTaken
            | ErrorCode::NotWaiting
            | ErrorCode::SessionEnded
            | ErrorCode::ViewOnly
            | ErrorCode::RepUnavailable
            | ErrorCode::QueueEmpty
            | ErrorCode::AlreadyInSession
            | ErrorCode::NotInvited
            | ErrorCode::LastRep
            | ErrorCode::TooManySessions
            | ErrorCode::NoOffer
            | ErrorCode::Conflict => 409,
            ErrorCode::ShuttingDown => 503,
            ErrorCode::StorageError | ErrorCode::Internal => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of the application layer (domain, actors, HTTP): a code and a
/// sentence. Lower layers convert into it at their boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        AppError::new(ErrorCode::NotFound, format!("no {what} with id '{id}'"))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::InvalidRequest, message)
    }

    pub fn permission(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::PermissionDenied, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::Internal, message)
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => AppError::new(
                ErrorCode::Conflict,
                "the record was changed by someone else; try again",
            ),
            other => AppError::new(
                ErrorCode::StorageError,
                format!("the store failed, nothing was changed: {other}"),
            ),
        }
    }
}

impl From<actix::MailboxError> for AppError {
    fn from(e: actix::MailboxError) -> Self {
        AppError::internal(format!("an actor did not answer: {e}"))
    }
}

pub type AppResult<T> = Result<T, AppError>;
