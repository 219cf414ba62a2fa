//! Signup, login, logout.
//!
//! Signup and login are limited before any password is hashed (docs/SECURITY.md):
//! - signups per client address (`--signup-rate-limit`) and per email (`--login-rate-limit`);
//! - login attempts per client address, whatever the account (`--login-ip-rate-limit`);
//! - failed logins per account *from one address* (`--login-rate-limit`): past it that
//!   address is refused for that account, while the owner logging in from elsewhere is not;
//! - failed logins per account from all addresses (`--login-account-rate-limit`): past it,
//!   only addresses with no failure on the account this minute may try.
//!
//! Accounts are counted by a digest of the normalised email, so an email nobody signed up
//! with is limited exactly like a real one, and a login for it is checked against a dummy
//! hash ([`crate::passwords`]): its answer, status and cost are those of a wrong password.

use super::{ApiJson, ClientInfo, audit};
use crate::auth::{AuthUser, rate_limit_subject};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::sync::sessions::session_key;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canvas_storage::{NewUser, RateDecision, RateSubject, User};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use utoipa::ToSchema;

/// The rate-limit endpoint of failed logins (counted per account and per account + address).
const LOGIN_FAILURES: &str = "login_failures";

/// `POST /auth/signup` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Signup {
    /// `name@example.com`.
    #[schema(format = Email, max_length = 255)]
    email: String,
    /// 3 to 64 letters, digits, `_`, `-` or `.`.
    #[schema(pattern = r"^[A-Za-z0-9_.-]{3,64}$")]
    username: String,
    /// 8 to 1024 characters, and not a weak one (400 `weak_password`).
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
}

/// `POST /auth/login` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    email: String,
    password: String,
}

/// A signed-in session: the user and their new token (signup, login).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuthSession {
    /// The user.
    pub user: User,
    /// The session's bearer token.
    pub token: String,
}

/// `GET /auth/me`: the calling user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// The user.
    pub user: User,
}

fn validate_signup(body: &Signup) -> ApiResult<()> {
    let email = body.email.trim();
    let valid_email = email.len() <= 255
        && !email.contains('\0')
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if !valid_email {
        return Err(ApiError::bad_request(
            "invalid_email",
            "email must look like name@example.com",
        ));
    }
    let name = &body.username;
    if !(3..=64).contains(&name.chars().count())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(ApiError::bad_request(
            "invalid_username",
            "username must be 3 to 64 characters of letters, digits, '_', '-' or '.'",
        ));
    }
    if !(8..=1024).contains(&body.password.chars().count()) {
        return Err(ApiError::bad_request(
            "invalid_password",
            "password must be 8 to 1024 characters",
        ));
    }
    Ok(())
}

async fn session(state: &AppState, user: &User) -> ApiResult<String> {
    Ok(state
        .storage
        .sessions
        .create_session(user.id, state.config.session_ttl())
        .await?)
}

/// How rate limits name an account: a digest of its trimmed, lowercased email (the email
/// itself never becomes a key, and unknown emails get keys like known ones).
fn account_key(email: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The caller's address for rate limits. The server always knows it (it serves with
/// connect info); a router embedded without it counts every caller as one address.
fn rate_ip(client: &ClientInfo) -> IpAddr {
    client.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Reads a counter without adding to it.
async fn peek(state: &AppState, subject: &RateSubject, endpoint: &str) -> ApiResult<RateDecision> {
    Ok(state
        .storage
        .rate_limits
        .hit_subject(subject, endpoint, 0, u32::MAX)
        .await?)
}

/// Creates a user with an organization of their own and logs them in.
#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = Signup,
    responses((status = 201, description = "Signed up and signed in", body = AuthSession),
        (status = 409, description = "The email or username is taken"),
        (status = 429, description = "Too many signups from this address, or for this email, in the current minute"),
        (status = 503, description = "Every password-hashing slot is busy, or storage is unavailable; see `Retry-After`")))]
pub async fn signup(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<Signup>,
) -> ApiResult<(StatusCode, Json<AuthSession>)> {
    validate_signup(&body)?;
    let ip = RateSubject::ip(rate_ip(&client));
    rate_limit_subject(&state, &ip, "signup", state.config.signup_rate_limit).await?;
    let account = RateSubject::Account(account_key(&body.email));
    rate_limit_subject(&state, &account, "signup", state.config.login_rate_limit).await?;
    let hashed_password = state
        .passwords
        .hash_new(body.password, &body.email, &body.username)
        .await?;
    let user = state
        .storage
        .users
        .create_user(NewUser {
            email: body.email.trim().to_owned(),
            username: body.username,
            hashed_password,
        })
        .await?;
    let token = session(&state, &user).await?;
    audit(
        &state,
        &user,
        &client,
        "user.signup",
        ("user", Some(user.id)),
        json!({ "email": user.email }),
    )
    .await;
    Ok((StatusCode::CREATED, Json(AuthSession { user, token })))
}

/// Logs in with email and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = Login,
    responses(
        (status = 200, description = "Signed in", body = AuthSession),
        (status = 401, description = "Wrong email or password (either)", body = crate::error::ErrorBody),
        (status = 429, description = "Too many failed logins for this account; see `Retry-After`"),
        (status = 503, description = "Every password-hashing slot is busy, or storage is unavailable; see `Retry-After`")))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<Login>,
) -> ApiResult<Json<AuthSession>> {
    let config = &state.config;
    let ip = rate_ip(&client);
    rate_limit_subject(
        &state,
        &RateSubject::ip(ip),
        "login",
        config.login_ip_rate_limit,
    )
    .await?;
    let account = account_key(&body.email);
    let here = RateSubject::account_ip(account.clone(), ip);
    let everywhere = RateSubject::Account(account);
    let failed_here = peek(&state, &here, LOGIN_FAILURES).await?;
    if failed_here.count >= config.login_rate_limit {
        return Err(ApiError::TooManyRequests {
            retry_after_secs: failed_here.retry_after_secs,
        });
    }
    if failed_here.count > 0 {
        // Under a spread-out attack on the account, addresses that already failed on it
        // wait; one that has not (the owner, typing the right password) may still try.
        let failed = peek(&state, &everywhere, LOGIN_FAILURES).await?;
        if failed.count >= config.login_account_rate_limit {
            return Err(ApiError::TooManyRequests {
                retry_after_secs: failed.retry_after_secs,
            });
        }
    }
    let (user, hash) = match state.storage.users.user_by_email(body.email.trim()).await? {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    // One Argon2 check either way: against the dummy hash without a user or a password.
    let matches = state.passwords.verify(body.password, hash).await?;
    let Some(user) = user.filter(|_| matches) else {
        for subject in [&here, &everywhere] {
            state
                .storage
                .rate_limits
                .hit_subject(subject, LOGIN_FAILURES, 1, u32::MAX)
                .await?;
        }
        return Err(ApiError::Unauthorized("wrong email or password".into()));
    };
    state.storage.users.record_login(user.id).await?;
    let token = session(&state, &user).await?;
    audit(
        &state,
        &user,
        &client,
        "user.login",
        ("user", Some(user.id)),
        json!({}),
    )
    .await;
    Ok(Json(AuthSession { user, token }))
}

/// Ends the calling session (other sessions of the user stay).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "The session is ended")))]
pub async fn logout(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
) -> ApiResult<StatusCode> {
    state.storage.sessions.delete_session(&caller.token).await?;
    // Its open WebSockets, on every node, are closed with 4401 now.
    crate::control::end_session(
        &state.live_sessions,
        &session_key(&caller.token),
        &*state.storage.fanout,
    )
    .await;
    audit(
        &state,
        &caller.user,
        &client,
        "user.logout",
        ("user", Some(caller.user.id)),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The calling user.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The calling user", body = Me)))]
pub async fn me(caller: AuthUser) -> Json<Me> {
    Json(Me { user: caller.user })
}
