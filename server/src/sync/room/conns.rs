//! The room's connections: joining (sync step 1 and the known awareness), leaving, the
//! protocol messages they send, and sending frames to them (a connection that cannot keep
//! up is dropped).

use super::Room;
use super::commands::{ConnId, JoinReply, JoinRequest, Outbound};
use super::presence::Budget;
use crate::domain::{Actor, ProjectAccess, effective_role};
use crate::sync::shared::{LiveKind, SharedOp};
use bytes::Bytes;
use canvas_engine::protocol::{self};
use canvas_engine::yrs::sync::{Message, SyncMessage};
use canvas_engine::yrs::updates::encoder::Encode;
use canvas_engine::yrs::{ClientID, StateVector};
use canvas_engine::{CanvasDoc, Role};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};
use uuid::Uuid;

/// One joined connection, as the room sees it.
pub(super) struct Conn {
    pub(super) user_id: Uuid,
    /// The user's project-level access, kept to recompute the role when sharing or
    /// membership changes.
    pub(super) access: ProjectAccess,
    pub(super) username: String,
    pub(super) role: Role,
    pub(super) out: mpsc::Sender<Outbound>,
    pub(super) wants_acks: bool,
    /// Document updates received from this connection so far (the sequence of acks).
    pub(super) received: u64,
    /// Sequence numbers of this connection's accepted updates not yet durable, in order.
    pub(super) unsaved: VecDeque<u64>,
    /// The last acknowledgement sent.
    pub(super) acked: u64,
    /// Awareness client ids this connection announced (removed when it leaves).
    pub(super) clients: HashSet<ClientID>,
    /// Who is connected, for the audit of sharing changes made through the document.
    pub(super) actor: Actor,
    /// The connection's allowance of awareness messages.
    pub(super) awareness_budget: Budget,
}

impl Conn {
    /// Everything up to this sequence number is durable or was refused.
    pub(super) fn ack_target(&self) -> u64 {
        self.unsaved
            .front()
            .map_or(self.received, |first| first - 1)
    }
}

impl Room {
    pub(super) fn join(&mut self, request: JoinRequest, reply: oneshot::Sender<JoinReply>) {
        let Some(role) = effective_role(&request.access, &self.sharing()) else {
            let _ = reply.send(JoinReply::Forbidden);
            return;
        };
        if reply.send(JoinReply::Joined(role)).is_err() {
            return; // the connection went away while waiting
        }
        let out = request.out;
        // y-websocket: the server opens with its sync step 1, then the awareness it knows,
        // each as its own frame (the JS client reads one message per frame).
        let _ = out.try_send(Outbound::Frame(
            protocol::sync_step1(&self.canvas.state_vector()).into(),
        ));
        let known = self.presence.full_update();
        if !known.clients.is_empty() {
            let _ = out.try_send(Outbound::Frame(protocol::awareness(&known).into()));
        }
        debug!(conn = request.conn_id, user = %request.access.user_id, %role, "joined");
        self.conns.insert(
            request.conn_id,
            Conn {
                user_id: request.access.user_id,
                access: request.access.clone(),
                username: request.username,
                role,
                out,
                wants_acks: request.wants_acks,
                received: 0,
                unsaved: VecDeque::new(),
                acked: 0,
                clients: HashSet::new(),
                actor: request.actor,
                awareness_budget: Budget::new(),
            },
        );
        self.idle_since = None;
        self.publish_active_users();
    }

    pub(super) fn leave(&mut self, conn_id: ConnId) {
        let Some(conn) = self.conns.remove(&conn_id) else {
            return;
        };
        let ids: Vec<ClientID> = conn.clients.iter().copied().collect();
        for id in &ids {
            self.awareness_owner.remove(id);
        }
        if let Some(removal) = self.presence.remove(&ids) {
            self.publish(LiveKind::Awareness, &removal.encode_v1());
            self.broadcast(None, protocol::awareness(&removal).into());
        }
        debug!(conn = conn_id, "left");
        if !self.conns.values().any(|c| c.user_id == conn.user_id) {
            self.presence_throttle.forget(conn.user_id);
            self.shared_writer.send(SharedOp::Remove(conn.user_id));
        }
        self.publish_active_users();
        if self.conns.is_empty() {
            self.idle_since = Some(Instant::now());
        }
    }

    pub(super) fn message(&mut self, conn_id: ConnId, message: Message) {
        if !self.conns.contains_key(&conn_id) {
            return;
        }
        match message {
            Message::Sync(SyncMessage::SyncStep1(sv)) => {
                let frame = self.step2_for(&sv);
                self.send(conn_id, frame);
            }
            Message::Sync(SyncMessage::SyncStep2(update))
            | Message::Sync(SyncMessage::Update(update)) => {
                self.update(conn_id, update);
            }
            Message::Awareness(update) => self.awareness(conn_id, update),
            Message::AwarenessQuery => {
                let known = self.presence.full_update();
                self.send(conn_id, protocol::awareness(&known).into());
            }
            // Auth messages are server-to-client only; custom messages from clients have no
            // meaning yet. Both are ignored, as y-websocket servers do.
            Message::Auth(_) | Message::Custom(..) => {}
        }
    }

    /// Sync step 2 for a client at `sv`. A client with an empty document (every new joiner)
    /// gets the cached encoding of the whole document while nothing has changed since.
    pub(super) fn step2_for(&mut self, sv: &StateVector) -> Bytes {
        let encode =
            |canvas: &CanvasDoc| Bytes::from(protocol::sync_step2(&canvas.encode_diff(sv)));
        let Some(writes) = self.doc_writes.as_ref().filter(|_| sv.is_empty()) else {
            return encode(&self.canvas);
        };
        let now = writes.load(Ordering::Relaxed);
        if let Some((_, frame)) = self.full_state.as_ref().filter(|(at, _)| *at == now) {
            return frame.clone();
        }
        let frame = encode(&self.canvas);
        self.full_state = Some((now, frame.clone()));
        frame
    }

    pub(super) fn send(&mut self, conn_id: ConnId, frame: Bytes) {
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        if conn.out.try_send(Outbound::Frame(frame)).is_err() {
            self.drop_slow(conn_id);
        }
    }

    /// Sends a frame to every connection but `except`.
    pub(super) fn broadcast(&mut self, except: Option<ConnId>, frame: Bytes) {
        let mut slow = Vec::new();
        for (id, conn) in &self.conns {
            if Some(*id) != except && conn.out.try_send(Outbound::Frame(frame.clone())).is_err() {
                slow.push(*id);
            }
        }
        for id in slow {
            self.drop_slow(id);
        }
    }

    /// A connection whose queue is full (or whose task ended) is dropped: its writer sees the
    /// channel close and closes the socket with 1013; the client reconnects and resyncs.
    pub(super) fn drop_slow(&mut self, conn_id: ConnId) {
        warn!(conn = conn_id, "connection cannot keep up; dropping it");
        self.leave(conn_id);
    }

    /// Closes every connection and clears this node's presence for the canvas.
    pub(super) fn close_all(&mut self, code: u16, reason: &str) {
        let mut users = HashSet::new();
        let mut clients = Vec::new();
        for conn in self.conns.values() {
            let _ = conn.out.try_send(Outbound::Close(code, reason.to_owned()));
            users.insert(conn.user_id);
            clients.extend(conn.clients.iter().copied());
        }
        // Other nodes' clients must see this node's people leave.
        if let Some(removal) = self.presence.remove(&clients) {
            self.publish(LiveKind::Awareness, &removal.encode_v1());
        }
        self.conns.clear();
        for user in users {
            self.shared_writer.send(SharedOp::Remove(user));
        }
        self.shared_writer.send(SharedOp::Active(Vec::new()));
    }

    pub(super) fn close_conn(&mut self, conn_id: ConnId, code: u16, reason: String) {
        if let Some(conn) = self.conns.get(&conn_id) {
            let _ = conn.out.try_send(Outbound::Close(code, reason));
        }
        self.leave(conn_id);
    }

    /// Tells the shared store which users are connected here.
    pub(super) fn publish_active_users(&self) {
        let mut users: Vec<Uuid> = self.conns.values().map(|c| c.user_id).collect();
        users.sort();
        users.dedup();
        self.shared_writer.send(SharedOp::Active(users));
    }
}
