//! One-time session keys.
//!
//! A rep generates a key; a customer types it (or follows its URL) to start
//! one session in that rep's personal queue. The key is random (rand's
//! CSPRNG), stored only as a SHA-256 hash, valid for a period *for starting
//! only*, and used at most once.
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::*;
use crate::error::{AppError, ErrorCode};
use crate::store::Record;

/// Keys are short enough to read over the phone: 12 characters from an
/// alphabet without look-alikes (no 0/O, 1/l/I), about 60 bits.
const KEY_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
const KEY_LEN: usize = 12;

pub const MIN_VALID_SECS: u64 = 60;
pub const MAX_VALID_SECS: u64 = 7 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionKey {
    pub rep: RepId,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub portal: Option<PortalId>,
    /// The session it started, once used.
    pub used_by: Option<SessionId>,
}

impl Record for SessionKey {
    const KIND: &'static str = "session_key";
    const VERSION: u32 = 1;
}

pub fn generate_key() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..KEY_LEN)
        .map(|_| KEY_ALPHABET[rng.gen_range(0..KEY_ALPHABET.len())] as char)
        .collect()
}

/// Random 32 bytes as hex: tokens and session ids.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill(&mut bytes);
    to_hex(&bytes)
}

/// A new session's id: the time it started (milliseconds since the Unix
/// epoch, 12 hex digits) and then 10 random bytes (20 hex digits), 32
/// characters in all. The random part keeps ids unguessable; the time in
/// front keeps them in the order they were made, so the records of recent
/// sessions, which are the ones being written, sit together at the end of
/// the store's key range, in the few leaves a small cache holds
/// (docs/performance.md, change 49).
pub fn new_session_id(now: Millis) -> String {
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&now.to_be_bytes()[2..]);
    rand::rngs::OsRng.fill(&mut bytes[6..]);
    to_hex(&bytes)
}

/// Random 16 bytes as hex: ids that must not be guessable.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill(&mut bytes);
    to_hex(&bytes)
}

pub fn hash_secret(secret: &str) -> String {
    to_hex(&Sha256::digest(secret.as_bytes()))
}

/// Lower-case hex, two digits a byte. Written here rather than with the
/// `hex` crate, whose `encode` collects a string one `char` at a time
/// through an iterator: about 1,700 instructions for 32 bytes, and a
/// routed session makes five of these (docs/performance.md, change 34).
fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(2 * bytes.len());
    for &b in bytes {
        hex.push(char::from(DIGITS[usize::from(b >> 4)]));
        hex.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    hex
}

/// Normalises what a customer typed (case, spaces, dashes) to the key.
pub fn normalise(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(|c| c.to_lowercase())
        .collect()
}

pub fn check_validity(valid_for_secs: u64) -> Result<(), AppError> {
    if !(MIN_VALID_SECS..=MAX_VALID_SECS).contains(&valid_for_secs) {
        return Err(AppError::invalid(format!(
            "valid_for_secs must be between {MIN_VALID_SECS} and {MAX_VALID_SECS}"
        )));
    }
    Ok(())
}

impl SessionKey {
    /// Whether the key may start a session now.
    pub fn check_usable(&self, now: Millis) -> Result<(), AppError> {
        if self.used_by.is_some() {
            return Err(AppError::new(
                ErrorCode::KeyUsed,
                "this session key has already been used",
            ));
        }
        if now >= self.expires_at {
            return Err(AppError::new(
                ErrorCode::KeyExpired,
                "this session key has expired",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_readable() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), KEY_LEN);
        assert!(a.bytes().all(|c| KEY_ALPHABET.contains(&c)));
        assert_eq!(normalise(" ABCD-efgh 2345 "), "abcdefgh2345");
    }

    /// Hashes of keys and tokens are stored and looked up by: the hex
    /// written by hand must be what the `hex` crate wrote before it.
    #[test]
    fn hashes_and_ids_are_lower_case_hex() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let every_byte: Vec<u8> = (0..=255).collect();
        let expected: String = every_byte.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(to_hex(&every_byte), expected);
        assert_eq!(random_id().len(), 32);
        assert_eq!(new_session_id(0).len(), 32);
        assert_eq!(random_token().len(), 64);
    }

    #[test]
    fn session_ids_sort_by_start_time_and_stay_unguessable() {
        // 2026-12-06 and a millisecond later: the later id sorts after, as a
        // string (the store's keys compare as bytes).
        let (t, later) = (1_796_530_000_000, 1_796_530_000_001);
        let ids: Vec<String> = (0..100).map(|_| new_session_id(t)).collect();
        assert!(ids.iter().all(|id| id < &new_session_id(later)));
        assert!(
            ids.iter().all(|id| id.starts_with("01a249885080")),
            "{ids:?}"
        );
        // Within one millisecond only the random part differs.
        let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        assert!(ids
            .iter()
            .all(|id| id.bytes().all(|c| c.is_ascii_hexdigit())));
    }

    #[test]
    fn one_use_within_the_period() {
        let mut k = SessionKey {
            rep: "a".into(),
            created_at: 0,
            expires_at: 1000,
            portal: None,
            used_by: None,
        };
        assert!(k.check_usable(999).is_ok());
        assert_eq!(
            k.check_usable(1000).unwrap_err().code,
            ErrorCode::KeyExpired
        );
        k.used_by = Some("s".into());
        assert_eq!(k.check_usable(0).unwrap_err().code, ErrorCode::KeyUsed);
        assert!(check_validity(30).is_err());
        assert!(check_validity(3600).is_ok());
    }
}
