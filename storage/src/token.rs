//! Session tokens, the same for every backend.
//!
//! A token is `{user_id}.{secret}`, the secret 32 random bytes in unpadded base64url, so a
//! backend can key sessions by user (`session:{user_id}` in Redis). Only the hex SHA-256 of
//! the whole token is stored, so a copy of the store holds no usable tokens. The secret has
//! 256 bits of entropy, so a plain (unsalted, fast) hash is enough: there is nothing to
//! brute-force.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::TimeDelta;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt::Write;
use std::time::Duration;
use uuid::Uuid;

/// Random bytes in a token's secret.
const SECRET_BYTES: usize = 32;

/// Longest session accepted; longer TTLs are cut to it (keeps `expires_at` in range).
const MAX_TTL: TimeDelta = TimeDelta::days(365 * 100);

/// A new random token for the user.
pub(crate) fn new_token(user_id: Uuid) -> String {
    format!("{user_id}.{}", random_secret())
}

/// 32 random bytes (256 bits) in unpadded base64url: session secrets, public link tokens.
pub fn random_secret() -> String {
    let mut secret = [0u8; SECRET_BYTES];
    // `ThreadRng` is a CSPRNG seeded from the OS.
    rand::rng().fill_bytes(&mut secret);
    URL_SAFE_NO_PAD.encode(secret)
}

/// A session lifetime as a `TimeDelta`, capped at [`MAX_TTL`].
pub(crate) fn session_ttl(ttl: Duration) -> TimeDelta {
    TimeDelta::from_std(ttl).unwrap_or(MAX_TTL).min(MAX_TTL)
}

/// The user id of a well-formed token (`{uuid}.{non-empty secret}`), else `None`.
pub(crate) fn token_user(token: &str) -> Option<Uuid> {
    let (user, secret) = token.split_once('.')?;
    if secret.is_empty() {
        return None;
    }
    Uuid::parse_str(user).ok()
}

/// Lowercase hex SHA-256 of the token: the stored key of a session.
pub(crate) fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_parsing() {
        let id = Uuid::new_v4();
        assert_eq!(token_user(&new_token(id)), Some(id));
        assert_eq!(token_user(&format!("{id}.abc")), Some(id));
        assert_eq!(token_user(&format!("{id}.")), None);
        assert_eq!(token_user(&id.to_string()), None);
        assert_eq!(token_user("nope.abc"), None);
        assert_eq!(token_user(""), None);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
