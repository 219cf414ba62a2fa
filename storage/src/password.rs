//! Password hashing: Argon2id with the `argon2` crate's default parameters (19 MiB, two
//! passes, one lane), stored as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
//!
//! Both functions are deliberately slow (tens of milliseconds in release builds, far more in
//! unoptimised debug builds) and block the calling thread: async callers run them on the
//! blocking pool, e.g. `tokio::task::spawn_blocking(move || password::hash(&pw))`.

use crate::{StorageError, StorageResult};
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Hashes `password` with Argon2id and a fresh random salt; returns the PHC string to store
/// in `users.hashed_password`. CPU- and memory-heavy: call it from `spawn_blocking`.
pub fn hash(password: &str) -> StorageResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|phc| phc.to_string())
        .map_err(|e| StorageError::Password(e.to_string()))
}

/// Whether `password` matches the PHC string `phc` (made by [`hash`]). `false` for a wrong
/// password and for a malformed or unsupported hash; never panics. The parameters are read
/// from `phc`, so hashes made with other Argon2 parameters still verify. CPU-heavy: call it
/// from `spawn_blocking`.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash("correct horse").expect("hashing works");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify("correct horse", &phc));
        assert!(!verify("wrong horse", &phc));
        // A fresh salt each time.
        assert_ne!(phc, hash("correct horse").expect("hashing works"));
    }

    #[test]
    fn malformed_hashes_do_not_verify() {
        for bad in [
            "",
            "plain",
            "$argon2id$",
            "$argon2id$v=19$m=1,t=1,p=1$$",
            "$bcrypt$x",
        ] {
            assert!(!verify("pw", bad), "{bad:?} must not verify");
        }
    }
}
