//! [`UserStore`]: signup with an organization, lookups, case-insensitive email and
//! username, conflicts, last login.

use super::{assert_conflict, assert_not_found, unique};
use crate::{NewUser, User, UserStore};
use chrono::{TimeDelta, Utc};
use uuid::Uuid;

/// The cases of this suite, for [`contract_tests!`](crate::contract_tests) and [`all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __user_cases {
    ($then:ident! $ctx:tt) => {
        $crate::$then! { $ctx users user_store [
            signup_makes_an_admin_with_an_organization,
            user_by_id_returns_what_create_user_returned,
            email_lookup_ignores_case_and_returns_the_hash,
            taken_email_in_other_case_is_a_conflict,
            taken_username_is_a_conflict,
            taken_username_in_other_case_is_a_conflict,
            concurrent_usernames_differing_in_case_one_wins,
            a_refused_signup_reserves_nothing,
            usernames_with_the_same_slug_get_their_own_organizations,
            record_login_sets_last_login_at,
            record_login_of_an_unknown_user_is_not_found,
        ] }
    };
}

/// Every case at once.
pub async fn all(users: &dyn UserStore) {
    crate::__user_cases!(__join_cases!(users));
}

/// A fresh signup with a mixed-case email and username; its tag, email and username.
async fn alice(users: &dyn UserStore) -> (User, String, String, String) {
    let tag = Uuid::new_v4().simple().to_string();
    let email = format!("Alice.{tag}@Example.COM");
    let username = format!("Alice_{tag}");
    let alice = users
        .create_user(NewUser {
            email: email.clone(),
            username: username.clone(),
            hashed_password: "$argon2id$alice".into(),
        })
        .await
        .expect("create_user");
    (alice, tag, email, username)
}

/// Signup stores the email and username as given, makes the user admin of a new
/// organization, and stamps `created_at` now.
pub async fn signup_makes_an_admin_with_an_organization(users: &dyn UserStore) {
    let before = Utc::now() - TimeDelta::seconds(1);
    let (alice, _, email, username) = alice(users).await;
    assert_eq!(alice.email, email, "email is stored as given");
    assert_eq!(alice.username, username);
    assert_eq!(
        alice.role, "admin",
        "the signing-up user is admin of their organization"
    );
    assert!(
        alice.organization_id.is_some(),
        "signup makes an organization"
    );
    assert_eq!(alice.last_login_at, None);
    assert!(alice.created_at >= before && alice.created_at <= Utc::now() + TimeDelta::seconds(1));
}

/// `user_by_id` returns what `create_user` returned; an unknown id is `None`.
pub async fn user_by_id_returns_what_create_user_returned(users: &dyn UserStore) {
    let (alice, ..) = alice(users).await;
    let by_id = users.user_by_id(alice.id).await.expect("user_by_id");
    assert_eq!(
        by_id.as_ref(),
        Some(&alice),
        "user_by_id returns what create_user returned"
    );
    assert_eq!(
        users.user_by_id(Uuid::new_v4()).await.expect("user_by_id"),
        None
    );
}

/// `user_by_email` finds the user in any case with their stored hash; an unknown email is
/// `None`.
pub async fn email_lookup_ignores_case_and_returns_the_hash(users: &dyn UserStore) {
    let (alice, _, email, _) = alice(users).await;
    for variant in [email.clone(), email.to_lowercase(), email.to_uppercase()] {
        let (found, hash) = users
            .user_by_email(&variant)
            .await
            .expect("user_by_email")
            .unwrap_or_else(|| panic!("user_by_email({variant:?}) must find the user"));
        assert_eq!(found, alice, "user_by_email({variant:?})");
        assert_eq!(
            hash.as_deref(),
            Some("$argon2id$alice"),
            "the stored hash comes back"
        );
    }
    assert_eq!(
        users
            .user_by_email(&unique("nobody"))
            .await
            .expect("user_by_email"),
        None
    );
}

/// Emails are compared case-insensitively: a taken one in other case is `Conflict("email")`.
pub async fn taken_email_in_other_case_is_a_conflict(users: &dyn UserStore) {
    let (_, tag, email, _) = alice(users).await;
    assert_conflict(
        users
            .create_user(NewUser {
                email: email.to_uppercase(),
                username: format!("other_{tag}"),
                hashed_password: "x".into(),
            })
            .await,
        "email",
        "signup with a taken email in other case",
    );
}

/// Usernames are compared exactly: a taken one is `Conflict("username")`.
pub async fn taken_username_is_a_conflict(users: &dyn UserStore) {
    let (_, tag, _, username) = alice(users).await;
    assert_conflict(
        users
            .create_user(NewUser {
                email: format!("other.{tag}@example.com"),
                username,
                hashed_password: "x".into(),
            })
            .await,
        "username",
        "signup with a taken username",
    );
}

/// Refused signups leave nothing behind: their other username and email are still free, and
/// the signup that takes them gets an organization of its own.
pub async fn a_refused_signup_reserves_nothing(users: &dyn UserStore) {
    let (alice, tag, email, username) = alice(users).await;
    let other_name = format!("other_{tag}");
    let other_email = format!("other.{tag}@example.com");
    let refused = users
        .create_user(NewUser {
            email: email.to_uppercase(),
            username: other_name.clone(),
            hashed_password: "x".into(),
        })
        .await;
    assert_conflict(refused, "email", "signup with a taken email in other case");
    let refused = users
        .create_user(NewUser {
            email: other_email.clone(),
            username,
            hashed_password: "x".into(),
        })
        .await;
    assert_conflict(refused, "username", "signup with a taken username");
    let other = users
        .create_user(NewUser {
            email: other_email,
            username: other_name,
            hashed_password: "x".into(),
        })
        .await
        .expect("a refused signup must not reserve its username or email");
    assert_ne!(
        other.organization_id, alice.organization_id,
        "one organization per signup"
    );
}

/// Usernames that make the same organization slug still get organizations of their own.
pub async fn usernames_with_the_same_slug_get_their_own_organizations(users: &dyn UserStore) {
    let tag = Uuid::new_v4().simple().to_string();
    let a = users
        .create_user(NewUser {
            email: format!("slug1.{tag}@example.com"),
            username: format!("Slug.{tag}"),
            hashed_password: "x".into(),
        })
        .await
        .expect("create_user");
    let b = users
        .create_user(NewUser {
            email: format!("slug2.{tag}@example.com"),
            username: format!("slug-{tag}"),
            hashed_password: "x".into(),
        })
        .await
        .expect("usernames with the same slug must both sign up");
    assert_ne!(a.organization_id, b.organization_id);
}

/// `record_login` sets `last_login_at` to about now and changes nothing else.
pub async fn record_login_sets_last_login_at(users: &dyn UserStore) {
    let (alice, ..) = alice(users).await;
    users.record_login(alice.id).await.expect("record_login");
    let logged = users
        .user_by_id(alice.id)
        .await
        .expect("user_by_id")
        .expect("alice exists");
    let at = logged
        .last_login_at
        .expect("record_login sets last_login_at");
    assert!(
        (Utc::now() - at).abs() < TimeDelta::seconds(60),
        "last_login_at {at} must be about now"
    );
    assert_eq!(logged.created_at, alice.created_at);
}

/// `record_login` of an unknown user is `NotFound`.
pub async fn record_login_of_an_unknown_user_is_not_found(users: &dyn UserStore) {
    assert_not_found(
        users.record_login(Uuid::new_v4()).await,
        "record_login of an unknown user",
    );
}

/// A username that differs from a taken one only in case is taken too (`Alice_x` and
/// `alice_X` would be one name to every reader).
pub async fn taken_username_in_other_case_is_a_conflict(users: &dyn UserStore) {
    let (_, tag, _, username) = alice(users).await;
    for other in [username.to_lowercase(), username.to_uppercase()] {
        assert_conflict(
            users
                .create_user(NewUser {
                    email: format!("other.{}@example.com", Uuid::new_v4().simple()),
                    username: other.clone(),
                    hashed_password: "x".into(),
                })
                .await,
            "username",
            &format!("signup as {other} after {username} ({tag})"),
        );
    }
}

/// Two signups at once whose usernames differ only in case: one is created, the other is a
/// username conflict (the store's unique index decides, not only its check beforehand).
pub async fn concurrent_usernames_differing_in_case_one_wins(users: &dyn UserStore) {
    let tag = Uuid::new_v4().simple().to_string();
    let signup = |username: String| {
        users.create_user(NewUser {
            email: format!("{}@example.com", Uuid::new_v4().simple()),
            username,
            hashed_password: "x".into(),
        })
    };
    let (a, b) = futures_util::join!(signup(format!("Bob_{tag}")), signup(format!("bOB_{tag}")));
    let (ok, refused) = match (a, b) {
        (Ok(user), refused @ Err(_)) | (refused @ Err(_), Ok(user)) => (user, refused),
        (a, b) => panic!("exactly one signup wins: {a:?} / {b:?}"),
    };
    assert!(ok.username.eq_ignore_ascii_case(&format!("bob_{tag}")));
    assert_conflict(refused, "username", "the concurrent signup in other case");
}
