//! Who is calling: bearer tokens on REST, the `token` query parameter on WebSocket.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use canvas_storage::{RateSubject, Session, User};

/// The authenticated caller of a REST request, from `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user the token belongs to.
    pub user: User,
    /// The token itself (logout ends exactly this session).
    pub token: String,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthorized("missing Authorization: Bearer <token> header".into())
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization header must be `Bearer <token>`".into())
            })?;
        let user = authenticate(state, token).await?;
        // Every authenticated REST call counts against the user's per-minute limit for
        // this endpoint (`rate_limit:{user_id}:{METHOD route}`).
        let route = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        let endpoint = format!("{} {route}", parts.method);
        rate_limit(state, user.id, &endpoint, state.config.rest_rate_limit).await?;
        Ok(AuthUser {
            user,
            token: token.to_owned(),
        })
    }
}

/// The user a token belongs to, or `Unauthorized` for an unknown, malformed or expired one.
pub async fn authenticate(state: &AppState, token: &str) -> Result<User, ApiError> {
    Ok(authenticate_session(state, token).await?.0)
}

/// [`authenticate`], with the session (when it expires).
pub async fn authenticate_session(
    state: &AppState,
    token: &str,
) -> Result<(User, Session), ApiError> {
    let session = state
        .storage
        .sessions
        .session(token)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("invalid or expired token".into()))?;
    let user = state
        .storage
        .users
        .user_by_id(session.user_id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the token's user no longer exists".into()))?;
    Ok((user, session))
}

/// [`authenticate_session`] for a WebSocket connect, through the admission cache
/// ([`crate::admission`]): a hit costs no storage read.
pub async fn authenticate_session_cached(
    state: &AppState,
    token: &str,
) -> Result<(User, Session), ApiError> {
    if let Some(hit) = state.admission.session(token) {
        return Ok(hit);
    }
    let generation = state.admission.generation();
    let (user, session) = authenticate_session(state, token).await?;
    state
        .admission
        .keep_session(generation, token, &user, &session);
    Ok((user, session))
}

/// Counts one call against a per-minute limit; `TooManyRequests` past it.
pub async fn rate_limit(
    state: &AppState,
    user_id: uuid::Uuid,
    endpoint: &str,
    limit: u32,
) -> Result<(), ApiError> {
    rate_limit_subject(state, &RateSubject::User(user_id), endpoint, limit).await
}

/// Counts one call by any subject (a client address, an account) against a per-minute
/// limit; `TooManyRequests` past it.
pub async fn rate_limit_subject(
    state: &AppState,
    subject: &RateSubject,
    endpoint: &str,
    limit: u32,
) -> Result<(), ApiError> {
    let decision = state
        .storage
        .rate_limits
        .hit_subject(subject, endpoint, 1, limit)
        .await?;
    if decision.allowed {
        Ok(())
    } else {
        Err(ApiError::TooManyRequests {
            retry_after_secs: decision.retry_after_secs,
        })
    }
}
