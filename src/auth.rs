//! Rep passwords (argon2) and login tokens.
//!
//! A rep logs in with username and password and gets a random token; the
//! token (stored only as its SHA-256) logs them in again after a reconnect
//! and authenticates the REST API (`Authorization: Bearer <token>`).
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use serde::{Deserialize, Serialize};

use crate::domain::ids::{Millis, RepId};
use crate::domain::keys::{hash_secret, random_token};
use crate::error::{AppError, ErrorCode};
use crate::store::Record;

pub fn hash_password(password: &str) -> Result<String, AppError> {
    if password.len() < 4 || password.len() > 1024 {
        return Err(AppError::invalid("a password must be 4 to 1024 bytes long"));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(format!("cannot hash password: {e}")))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A rep's login token, stored under `token/<sha256 of token>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepToken {
    pub rep: RepId,
    pub created_at: Millis,
}

impl Record for RepToken {
    const KIND: &'static str = "rep_token";
    const VERSION: u32 = 1;
}

pub fn token_key(token: &str) -> String {
    format!("token/{}", hash_secret(token))
}

/// A customer's resume token is their session's id followed by 32 random
/// bytes in hex. The id finds the session's actor, and the session's record
/// holds the token's SHA-256, which the actor checks; so starting a session
/// writes no record for its token (docs/performance.md, change 48).
pub fn new_customer_token(session: &str) -> String {
    format!("{session}{}", random_token())
}

/// The session a customer token names, if it has the shape of one: 96
/// characters, of which the first 32 are the session's id.
pub fn customer_token_session(token: &str) -> Option<&str> {
    const SESSION_ID_LEN: usize = 32;
    const TOKEN_LEN: usize = SESSION_ID_LEN + 64;
    if token.len() != TOKEN_LEN {
        return None;
    }
    token.get(..SESSION_ID_LEN)
}

/// Before change 48 a customer's token was 64 hex characters and a record
/// at `customer_token/<sha256 of token>` pointed at its session. Sessions
/// started then may still be live after an upgrade, so their tokens are
/// still looked up this way; nothing writes these records any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerToken {
    pub session: String,
}

impl Record for CustomerToken {
    const KIND: &'static str = "customer_token";
    const VERSION: u32 = 1;
}

pub fn customer_token_key(token: &str) -> String {
    format!("customer_token/{}", hash_secret(token))
}

/// One answer for every token that does not resume a session (unknown,
/// wrong secret, ended session), so a wrong guess learns nothing.
pub fn invalid_customer_token() -> AppError {
    AppError::new(
        ErrorCode::InvalidToken,
        "that session token is unknown or its session has ended",
    )
}

pub fn bad_credentials() -> AppError {
    AppError::new(
        ErrorCode::BadCredentials,
        "unknown username or wrong password",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("secret", &h));
        assert!(!verify_password("s3cret", "not a hash"));
        assert!(hash_password("").is_err());
    }
}
