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

/// Store key of a session chat line: zero-padded so a prefix scan of
/// [`session_chat_prefix`] returns the transcript in order.
pub fn session_chat_key(session: &str, seq: u64) -> String {
    line_key(SESSION_CHAT, session, seq)
}

pub fn team_chat_key(team: &str, seq: u64) -> String {
    line_key(TEAM_CHAT, team, seq)
}

/// What every line key of a session's transcript starts with.
pub fn session_chat_prefix(session: &str) -> String {
    transcript_prefix(SESSION_CHAT, session, 0)
}

/// What every line key of a team's chat starts with.
pub fn team_chat_prefix(team: &str) -> String {
    transcript_prefix(TEAM_CHAT, team, 0)
}

const SESSION_CHAT: &str = "chat/";
const TEAM_CHAT: &str = "teamchat/";

/// `{kind}{owner}/`, with room for `more` bytes after it.
fn transcript_prefix(kind: &str, owner: &str, more: usize) -> String {
    let mut prefix = String::with_capacity(kind.len() + owner.len() + 1 + more);
    prefix.push_str(kind);
    prefix.push_str(owner);
    prefix.push('/');
    prefix
}

/// `format!("{kind}{owner}/{seq:012}")`, written out by hand: the
/// formatting machinery cost a chat line about 2% of its instructions
/// (docs/performance.md, change 33). A number of more than 12 digits is
/// written whole, as `format!` would.
fn line_key(kind: &str, owner: &str, seq: u64) -> String {
    const WIDTH: usize = 12;
    let mut digits = [b'0'; 20];
    let (mut n, mut start) = (seq, digits.len());
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let start = start.min(digits.len() - WIDTH);
    let mut key = transcript_prefix(kind, owner, digits.len() - start);
    key.extend(digits[start..].iter().map(|&d| char::from(d)));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys are stored: written by hand, they must stay what
    /// `format!` wrote, or old transcripts would not be found; and a scan
    /// of the prefix must find them.
    #[test]
    fn line_keys_are_what_format_wrote() {
        for seq in [
            0,
            7,
            10,
            999,
            123_456_789_012,
            999_999_999_999,
            1_000_000_000_000,
            u64::MAX,
        ] {
            assert_eq!(session_chat_key("s-1", seq), format!("chat/s-1/{seq:012}"));
            assert_eq!(team_chat_key("t0", seq), format!("teamchat/t0/{seq:012}"));
            assert!(session_chat_key("s-1", seq).starts_with(&session_chat_prefix("s-1")));
            assert!(team_chat_key("t0", seq).starts_with(&team_chat_prefix("t0")));
        }
    }
}
