//! Password hashing under a bound, password strength, and the dummy hash that makes a login
//! for an unknown email cost what a login for a known one costs.
//!
//! Argon2id is deliberately slow and large (about 19 MiB and tens of milliseconds a hash), so
//! unbounded concurrent signups or logins can take the server's memory and CPU from everyone
//! else. Every hash and every check goes through [`Passwords`]: at most `--hash-concurrency`
//! run at once (a [`Semaphore`]); a caller that cannot get a slot within `--hash-wait-ms` gets
//! [`ApiError::Busy`] (503 `busy` with `Retry-After`) instead of queueing without bound.
//!
//! Strength is estimated with `zxcvbn` (with the user's email and username as words an
//! attacker would try first); a password scoring below [`MIN_SCORE`] is refused as
//! `weak_password` with zxcvbn's feedback.

use crate::error::ApiError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OnceCell, Semaphore};

/// The lowest zxcvbn score accepted (0 to 4; 3 is "safely unguessable: moderate protection
/// from an offline slow-hash scenario").
pub const MIN_SCORE: u8 = 3;

/// How much of a password the strength estimator reads: zxcvbn's matching grows faster than
/// linearly with the length, and a longer password's first 128 characters already tell
/// whether it is a guessable one.
const ESTIMATED_CHARS: usize = 128;

/// What hashes and checks passwords, at most a configured number at once.
pub struct Passwords {
    permits: Arc<Semaphore>,
    wait: Duration,
    /// A hash of a random password with the same parameters as real ones, made on first
    /// need: what a login for an unknown email is checked against.
    dummy: OnceCell<String>,
}

/// Why a signup's password was refused or could not be hashed.
#[derive(Debug, thiserror::Error)]
enum HashFailure {
    #[error("{0}")]
    Weak(String),
    #[error(transparent)]
    Hash(#[from] canvas_storage::StorageError),
}

impl Passwords {
    /// At most `concurrency` hashes at once (at least one); a caller waits at most `wait`
    /// for a slot.
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        Passwords {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            wait,
            dummy: OnceCell::new(),
        }
    }

    /// The semaphore bounding the hashes (tests hold its permits to see callers refused).
    pub fn permits(&self) -> &Arc<Semaphore> {
        &self.permits
    }

    /// Runs `work` on the blocking pool once a hashing slot is free; `Busy` if none frees
    /// within the wait.
    async fn bounded<T: Send + 'static>(
        &self,
        what: &'static str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::Busy {
                retry_after_secs: 1,
            })?
            .map_err(|e| ApiError::internal_in(what, e))?;
        let result = tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await
        .map_err(|e| ApiError::internal_in(what, e))?;
        Ok(result)
    }

    /// Checks a new password's strength (`weak_password` below [`MIN_SCORE`], with the
    /// user's email and username counted as known words) and hashes it.
    pub async fn hash_new(
        &self,
        password: String,
        email: &str,
        username: &str,
    ) -> Result<String, ApiError> {
        let inputs = user_inputs(email, username);
        let result = self
            .bounded("password hashing task", move || {
                let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                if let Some(feedback) = weakness(&password, &inputs) {
                    return Err(HashFailure::Weak(feedback));
                }
                Ok(canvas_storage::password::hash(&password)?)
            })
            .await?;
        result.map_err(|failure| match failure {
            HashFailure::Weak(feedback) => ApiError::bad_request(
                "weak_password",
                format!("this password is too easy to guess. {feedback}"),
            ),
            HashFailure::Hash(cause) => ApiError::from(cause),
        })
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is
    /// none (an unknown email, or an account without a password), which then fails: both
    /// cases cost one Argon2 check, like a real one.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, ApiError> {
        let (phc, real) = match phc {
            Some(phc) => (phc, true),
            None => (self.dummy().await?, false),
        };
        let matches = self
            .bounded("password check task", move || {
                canvas_storage::password::verify(&password, &phc)
            })
            .await?;
        Ok(real && matches)
    }

    /// The dummy hash, made (under a hashing slot) on first need.
    async fn dummy(&self) -> Result<String, ApiError> {
        self.dummy
            .get_or_try_init(|| async {
                let secret = canvas_storage::random_secret();
                self.bounded("dummy password hash", move || {
                    canvas_storage::password::hash(&secret)
                })
                .await?
                .map_err(ApiError::from)
            })
            .await
            .cloned()
    }
}

/// The words of a user's identity an attacker tries first: the email, its local part and
/// the username.
fn user_inputs(email: &str, username: &str) -> Vec<String> {
    let email = email.trim().to_lowercase();
    let mut inputs = vec![email.clone(), username.to_lowercase()];
    if let Some((local, _)) = email.split_once('@') {
        inputs.push(local.to_owned());
    }
    inputs
}

/// Why a password is too weak (zxcvbn's warning and suggestions), or `None` if it scores
/// at least [`MIN_SCORE`].
fn weakness(password: &str, user_inputs: &[&str]) -> Option<String> {
    let estimated: String = password.chars().take(ESTIMATED_CHARS).collect();
    let entropy = zxcvbn::zxcvbn(&estimated, user_inputs);
    if u8::from(entropy.score()) >= MIN_SCORE {
        return None;
    }
    let feedback = entropy
        .feedback()
        .map(|f| f.to_string().trim().to_owned())
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "Add another word or two. Uncommon words are better.".to_owned());
    Some(feedback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_named_with_feedback() {
        let inputs = ["mallory@example.com", "mallory_x", "mallory"];
        for weak in [
            "password",
            "12345678",
            "        ",
            "mallory_x",
            "Mallory_X1",
        ] {
            assert!(
                weakness(weak, &inputs).is_some(),
                "{weak:?} must be refused"
            );
        }
        let feedback = weakness("password", &inputs).unwrap_or_default();
        assert!(feedback.contains("common"), "{feedback}");
        // What the tests, the SDK's tests and the load generator sign up with.
        for strong in [
            "correct horse battery",
            "correct horse battery staple",
            "tulip-ferry-quartz-88",
            "load generator password",
        ] {
            assert_eq!(
                weakness(strong, &inputs),
                None,
                "{strong:?} is strong enough"
            );
        }
    }

    #[test]
    fn only_the_first_characters_are_estimated() {
        let long = "x".repeat(100_000);
        assert!(
            weakness(&long, &[]).is_some(),
            "a long repeat is still weak"
        );
    }

    #[tokio::test]
    async fn a_caller_without_a_slot_is_told_busy() {
        let passwords = Passwords::new(1, Duration::from_millis(20));
        let held = passwords.permits().clone().acquire_owned().await;
        let refused = passwords.verify("pw".into(), None).await;
        assert!(matches!(refused, Err(ApiError::Busy { .. })), "{refused:?}");
        drop(held);
        assert!(!passwords.verify("pw".into(), None).await.unwrap_or(true));
    }
}
