//! Control messages between server nodes: what one node does that must happen on every node
//! at once, sent on the fan-out's control channel (Redis `canvas:control`; nothing to send on
//! the embedded default, where there is one node).
//!
//! - `{"kind": "session_ended", "session": "<sha-256 of the token>"}`: a logout; every node
//!   closes the session's WebSockets with 4401 ([`LiveSessions`]).
//! - `{"kind": "execution_cancelled", "execution": "<uuid>"}`: a user cancelled a query
//!   execution; the node running it stops it (`Jobs::cancel`). The record already says
//!   `cancelled` before the message is sent, so a node that misses it (its subscription was
//!   broken at that moment) still never records the result: the job only runs on until its
//!   own end.
//! - `{"kind": "source_refreshed", "source": "<uuid>"}`: a data source has new data; this
//!   node's subscribers hear it (`crate::data::refresh`).
//!
//! Messages are JSON; a node ignores (and logs) a kind it does not know, so a newer node's
//! messages do not break an older one during a rolling upgrade.

use crate::state::AppState;
use crate::sync::sessions::LiveSessions;
use canvas_storage::Fanout;
use std::time::Duration;
use uuid::Uuid;

/// A control message between nodes.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Control {
    /// A login session ended (logout): close its connections.
    SessionEnded {
        /// [`crate::sync::sessions::session_key`] of the session.
        session: String,
    },
    /// A query execution was cancelled: stop it where it runs.
    ExecutionCancelled {
        /// The execution's id.
        execution: Uuid,
    },
    /// A data source has new data (sent by `crate::data::refresh::Refreshes::announce`):
    /// tell this node's subscribers.
    SourceRefreshed {
        /// The source's id.
        source: Uuid,
    },
}

/// Acts on a message from another node.
fn handle(state: &AppState, message: Control) {
    match message {
        Control::SessionEnded { session } => {
            state.live_sessions.end_here(&session);
        }
        Control::ExecutionCancelled { execution } => {
            if state.data.jobs.cancel(execution) {
                tracing::info!(%execution, "execution cancelled from another node");
            }
        }
        Control::SourceRefreshed { source } => state.data.refreshes.here(source),
    }
}

/// Tells the other nodes (nothing on the embedded default). A failure is logged: what the
/// message would have done happens later by other means (a session's sockets close at its
/// expiry; a cancelled execution's result is not recorded).
pub async fn publish(fanout: &dyn Fanout, message: &Control) {
    if !fanout.is_shared() {
        return;
    }
    let Ok(bytes) = serde_json::to_vec(message) else {
        return;
    };
    if let Err(cause) = fanout.publish_control(bytes).await {
        tracing::warn!(%cause, ?message, "cannot send a control message to the other nodes");
    }
}

/// Ends a login session's connections on this node and tells the other nodes.
pub async fn end_session(sessions: &LiveSessions, key: &str, fanout: &dyn Fanout) {
    sessions.end_here(key);
    publish(
        fanout,
        &Control::SessionEnded {
            session: key.to_owned(),
        },
    )
    .await;
}

/// Listens to the other nodes' control messages until the server shuts down (subscribing
/// again after a broken subscription). The first subscription is made before this returns,
/// so a message sent anywhere after the server started serving reaches this node.
pub async fn listen(state: &AppState) {
    let fanout = state.storage.fanout.clone();
    let stop = state.shutdown.clone();
    if !fanout.is_shared() {
        return;
    }
    let first = match fanout.subscribe_control().await {
        Ok(rx) => Some(rx),
        Err(cause) => {
            tracing::warn!(%cause, "cannot subscribe to control messages; retrying");
            None
        }
    };
    let state_in_task = state.clone();
    state.tasks.spawn(async move {
        let state = state_in_task;
        let mut subscription = first;
        while !stop.is_cancelled() {
            let mut rx = match subscription.take() {
                Some(rx) => rx,
                None => match fanout.subscribe_control().await {
                    Ok(rx) => rx,
                    Err(cause) => {
                        tracing::warn!(%cause, "cannot subscribe to control messages; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                            () = stop.cancelled() => return,
                        }
                    }
                },
            };
            loop {
                let message = tokio::select! {
                    message = rx.recv() => message,
                    () = stop.cancelled() => return,
                };
                let Some(message) = message else { break };
                match serde_json::from_slice::<Control>(&message) {
                    Ok(control) => handle(&state, control),
                    Err(cause) => tracing::warn!(%cause, "unknown or bad control message"),
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_round_trip() {
        let id = Uuid::nil();
        for (m, text) in [
            (
                Control::SessionEnded {
                    session: "ab".into(),
                },
                r#"{"kind":"session_ended","session":"ab"}"#.to_owned(),
            ),
            (
                Control::ExecutionCancelled { execution: id },
                format!(r#"{{"kind":"execution_cancelled","execution":"{id}"}}"#),
            ),
            (
                Control::SourceRefreshed { source: id },
                format!(r#"{{"kind":"source_refreshed","source":"{id}"}}"#),
            ),
        ] {
            let bytes = serde_json::to_vec(&m).unwrap_or_default();
            assert_eq!(String::from_utf8_lossy(&bytes), text);
            assert_eq!(serde_json::from_slice::<Control>(&bytes).ok(), Some(m));
        }
        assert!(serde_json::from_slice::<Control>(br#"{"kind":"later_kind"}"#).is_err());
    }
}
