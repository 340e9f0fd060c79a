//! Chat lines: between a session's customer and its reps, and among a team.
use serde::{Deserialize, Serialize};

use super::ids::*;
use crate::error::AppError;
use crate::store::Record;

/// The longest chat line accepted, in bytes.
pub const MAX_CHAT_BYTES: usize = 4096;

/// Who said it: `rep:<id>` or `customer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    /// Position in the transcript, from 0.
    pub seq: u64,
    pub at: Millis,
    pub from: String,
    /// The speaker's display name at the time.
    pub name: String,
    pub text: String,
}

impl Record for ChatLine {
    const KIND: &'static str = "chat_line";
    const VERSION: u32 = 1;
}

pub fn check_text(text: &str) -> Result<(), AppError> {
    if text.trim().is_empty() {
        return Err(AppError::invalid("a chat message cannot be empty"));
    }
    if text.len() > MAX_CHAT_BYTES {
        return Err(AppError::invalid(format!(
            "a chat message is at most {MAX_CHAT_BYTES} bytes; this one is {}",
            text.len()
        )));
    }
    Ok(())
}

/// Store key of a session chat line: zero-padded so a prefix scan returns
/// the transcript in order.
pub fn session_chat_key(session: &str, seq: u64) -> String {
    format!("chat/{session}/{seq:012}")
}

pub fn team_chat_key(team: &str, seq: u64) -> String {
    format!("teamchat/{team}/{seq:012}")
}
