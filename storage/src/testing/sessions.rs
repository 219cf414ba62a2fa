//! [`SessionStore`]: token format, several sessions per user, logout of one, malformed and
//! unknown tokens, expiry.

use super::wait_until;
use crate::SessionStore;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The cases of this suite, for [`contract_tests!`](crate::contract_tests) and [`all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __session_cases {
    ($then:ident! $ctx:tt) => {
        $crate::$then! { $ctx sessions session_store [
            tokens_are_the_user_id_and_a_long_secret,
            sessions_of_different_users_are_separate,
            logout_ends_only_that_session,
            bad_tokens_are_none_never_errors,
            a_short_session_is_live_before_its_ttl,
            a_session_ends_once_its_ttl_has_passed,
            a_session_says_when_it_expires,
        ] }
    };
}

/// Every case at once.
pub async fn all(sessions: &dyn SessionStore) {
    crate::__session_cases!(__join_cases!(sessions));
}

const HOUR: Duration = Duration::from_secs(3600);

async fn create(sessions: &dyn SessionStore, user: Uuid, ttl: Duration) -> String {
    sessions
        .create_session(user, ttl)
        .await
        .expect("create_session")
}

async fn user_of(sessions: &dyn SessionStore, token: &str) -> Option<Uuid> {
    sessions.session_user(token).await.expect("session_user")
}

/// Every session gets its own token `{user_id}.{secret}` with a long secret, and the token
/// names its user.
pub async fn tokens_are_the_user_id_and_a_long_secret(sessions: &dyn SessionStore) {
    let user = Uuid::new_v4();
    let t1 = create(sessions, user, HOUR).await;
    let t2 = create(sessions, user, HOUR).await;
    assert_ne!(t1, t2, "every session gets its own token");
    for t in [&t1, &t2] {
        let (id, secret) = t.split_once('.').expect("token is {user_id}.{secret}");
        assert_eq!(id, user.to_string(), "token starts with the user id");
        assert!(secret.len() >= 32, "the secret is long: {secret:?}");
        assert_eq!(user_of(sessions, t).await, Some(user));
    }
}

/// Another user's session names that user.
pub async fn sessions_of_different_users_are_separate(sessions: &dyn SessionStore) {
    let (user, other_user) = (Uuid::new_v4(), Uuid::new_v4());
    let t1 = create(sessions, user, HOUR).await;
    let t3 = create(sessions, other_user, HOUR).await;
    assert_eq!(user_of(sessions, &t3).await, Some(other_user));
    assert_eq!(user_of(sessions, &t1).await, Some(user));
}

/// Logout ends only that session: the user's other sessions and other users' stay; ending
/// an ended session is a no-op.
pub async fn logout_ends_only_that_session(sessions: &dyn SessionStore) {
    let (user, other_user) = (Uuid::new_v4(), Uuid::new_v4());
    let t1 = create(sessions, user, HOUR).await;
    let t2 = create(sessions, user, HOUR).await;
    let t3 = create(sessions, other_user, HOUR).await;
    sessions.delete_session(&t1).await.expect("delete_session");
    assert_eq!(user_of(sessions, &t1).await, None, "logged out");
    assert_eq!(
        user_of(sessions, &t2).await,
        Some(user),
        "the user's other session stays"
    );
    assert_eq!(user_of(sessions, &t3).await, Some(other_user));
    sessions
        .delete_session(&t1)
        .await
        .expect("deleting an ended session is a no-op");
}

/// Unknown, forged and malformed tokens are `None` (and deleting them a no-op), never
/// errors, and leave the real sessions alone.
pub async fn bad_tokens_are_none_never_errors(sessions: &dyn SessionStore) {
    let (user, other_user) = (Uuid::new_v4(), Uuid::new_v4());
    let t2 = create(sessions, user, HOUR).await;
    create(sessions, other_user, HOUR).await;
    let (_, secret2) = t2.split_once('.').expect("token has a dot");
    let forged = [
        String::new(),
        "garbage".into(),
        ".".into(),
        user.to_string(),
        format!("{user}."),
        format!("{user}.{}", "A".repeat(43)),
        format!("not-a-uuid.{secret2}"),
        format!("{other_user}.{secret2}"),
        format!("{t2}x"),
    ];
    for token in &forged {
        assert_eq!(
            sessions
                .session_user(token)
                .await
                .expect("session_user never fails on bad input"),
            None,
            "token {token:?} must not be accepted"
        );
        sessions
            .delete_session(token)
            .await
            .expect("delete_session of a bad token is a no-op");
    }
    assert_eq!(user_of(sessions, &t2).await, Some(user));
}

/// A session of one second is live right after it is made (a TTL is not rounded down to
/// nothing). Only a check that came back within the second says anything: on a loaded
/// machine the round trips can take longer, and then it tries again.
pub async fn a_short_session_is_live_before_its_ttl(sessions: &dyn SessionStore) {
    let ttl = Duration::from_secs(1);
    let user = Uuid::new_v4();
    for _ in 0..20 {
        let started = Instant::now();
        let short = create(sessions, user, ttl).await;
        let found = user_of(sessions, &short).await;
        if started.elapsed() < ttl {
            assert_eq!(found, Some(user), "a one-second session is live at once");
            return;
        }
    }
    panic!("no create-and-check round trip finished within one second in 20 tries");
}

/// A session ends once its TTL has passed (and not before), without ending the user's other
/// sessions. Its TTL is short, and the check waits for the expiry itself, not a fixed time.
pub async fn a_session_ends_once_its_ttl_has_passed(sessions: &dyn SessionStore) {
    let ttl = Duration::from_millis(50);
    let user = Uuid::new_v4();
    let t2 = create(sessions, user, HOUR).await;
    let started = Instant::now();
    let short = create(sessions, user, ttl).await;
    wait_until(
        "the short session expires",
        Duration::from_secs(10),
        || async { user_of(sessions, &short).await.is_none() },
    )
    .await;
    assert!(
        started.elapsed() >= ttl,
        "expired after {:?}, before its ttl of {ttl:?}",
        started.elapsed()
    );
    assert_eq!(user_of(sessions, &short).await, None, "expired");
    assert_eq!(
        user_of(sessions, &t2).await,
        Some(user),
        "another session's expiry does not end this one"
    );
}

/// A session says when it expires: its TTL from its creation (to the second), so open
/// connections of the session can be closed at that moment.
pub async fn a_session_says_when_it_expires(sessions: &dyn SessionStore) {
    let user = Uuid::new_v4();
    let before = chrono::Utc::now();
    let token = create(sessions, user, HOUR).await;
    let after = chrono::Utc::now();
    let session = sessions
        .session(&token)
        .await
        .expect("session")
        .expect("a live session");
    assert_eq!(session.user_id, user);
    let hour = chrono::Duration::seconds(3600);
    let slack = chrono::Duration::seconds(1);
    assert!(
        session.expires_at >= before + hour - slack && session.expires_at <= after + hour + slack,
        "expires at {}, made between {before} and {after}",
        session.expires_at
    );
    assert_eq!(sessions.session("garbage").await.expect("session"), None);
}
