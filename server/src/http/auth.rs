//! Signup, login, logout.

use super::{ApiJson, ClientInfo, audit};
use crate::auth::{AuthUser, hash_password, verify_password};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canvas_storage::{NewUser, User};
use serde::Deserialize;
use serde_json::{Value, json};

/// `POST /auth/signup` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signup {
    email: String,
    username: String,
    password: String,
}

/// `POST /auth/login` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    email: String,
    password: String,
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

/// Creates a user with an organization of their own and logs them in.
pub async fn signup(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<Signup>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    validate_signup(&body)?;
    let hashed_password = hash_password(body.password).await?;
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
    Ok((
        StatusCode::CREATED,
        Json(json!({ "user": user, "token": token })),
    ))
}

/// Logs in with email and password.
pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<Login>,
) -> ApiResult<Json<Value>> {
    let invalid = || ApiError::Unauthorized("wrong email or password".into());
    let (user, hash) = state
        .storage
        .users
        .user_by_email(body.email.trim())
        .await?
        .ok_or_else(invalid)?;
    // Password guessing is limited per account, before the (slow) hash check.
    crate::auth::rate_limit(&state, user.id, "login", state.config.login_rate_limit).await?;
    let hash = hash.ok_or_else(invalid)?;
    if !verify_password(body.password, hash).await? {
        return Err(invalid());
    }
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
    Ok(Json(json!({ "user": user, "token": token })))
}

/// Ends the calling session (other sessions of the user stay).
pub async fn logout(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
) -> ApiResult<StatusCode> {
    state.storage.sessions.delete_session(&caller.token).await?;
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
pub async fn me(caller: AuthUser) -> Json<Value> {
    Json(json!({ "user": caller.user }))
}
