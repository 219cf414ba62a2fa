//! The room's connections: joining (sync step 1 and the known awareness), leaving, the
//! protocol messages they send, and sending frames to them.
//!
//! A connection that cannot keep up (its queue of
//! [`OUTBOUND_CAPACITY`](super::commands::OUTBOUND_CAPACITY) frames is full) is
//! not dropped: it starts *lagging*. It gets no more frames; the durable updates it misses
//! are kept (shared with every other lagging connection: they are the same `Bytes`), and once
//! its queue has drained to half it gets them as one merged update, then the current
//! awareness and its acknowledgement. Only a connection that stays stuck past
//! [`LAG_DEADLINE`], or misses more than [`MAX_LAG_BYTES`], is closed (1013: it reconnects
//! and resyncs).

use super::Room;
use super::commands::close;
use super::commands::{ConnId, JoinReply, JoinRequest, Queued};
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
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};
use uuid::Uuid;

/// How often lagging connections are checked for a drained queue (when no update comes to
/// check them).
const LAG_CHECK_EVERY: Duration = Duration::from_millis(50);

/// One joined connection, as the room sees it.
pub(super) struct Conn {
    pub(super) user_id: Uuid,
    /// The user's project-level access, kept to recompute the role when sharing or
    /// membership changes.
    pub(super) access: ProjectAccess,
    pub(super) username: String,
    pub(super) role: Role,
    pub(super) out: mpsc::Sender<Queued>,
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
    /// Set while the connection cannot keep up: what it missed.
    pub(super) lag: Option<Lag>,
}

/// A lagging connection stuck longer than this is closed (1013).
pub const LAG_DEADLINE: Duration = Duration::from_secs(30);

/// A lagging connection that missed more than this many bytes of updates is closed (1013):
/// resyncing costs it less than the room holding them.
pub const MAX_LAG_BYTES: usize = 32 * 1024 * 1024;

/// The close reason of a connection stuck behind its room.
const STUCK: &str = "connection too slow for the room; reconnect";

/// What a lagging connection missed.
#[derive(Debug)]
pub(super) struct Lag {
    /// The durable updates (yrs v1) it was not sent, in order.
    missed: Vec<Bytes>,
    bytes: usize,
    since: Instant,
}

impl Lag {
    fn new(now: Instant) -> Self {
        Lag {
            missed: Vec::new(),
            bytes: 0,
            since: now,
        }
    }

    fn miss(&mut self, update: &Bytes) {
        self.missed.push(update.clone());
        self.bytes += update.len();
    }
}

/// What became of a frame offered to a connection.
enum Offer {
    Sent,
    /// Not sent: the connection lags (and keeps the frame's document update, if any).
    Lagging,
    /// Its writer is gone.
    Gone,
}

impl Conn {
    /// Queues a frame, unless the connection lags; a full queue starts the lag. `update` is
    /// the document update the frame carries, kept for the catch-up when not sent.
    fn offer(&mut self, frame: &Queued, update: Option<&Bytes>, now: Instant) -> Offer {
        if self.lag.is_none() {
            match self.out.try_send(frame.clone()) {
                Ok(()) => return Offer::Sent,
                Err(TrySendError::Full(_)) => self.lag = Some(Lag::new(now)),
                Err(TrySendError::Closed(_)) => return Offer::Gone,
            }
        }
        if let (Some(lag), Some(update)) = (&mut self.lag, update) {
            lag.miss(update);
        }
        Offer::Lagging
    }

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
        let _ = out.try_send(Queued::frame(
            protocol::sync_step1(&self.canvas.state_vector()).into(),
        ));
        let known = self.presence.full_update();
        if !known.clients.is_empty() {
            let _ = out.try_send(Queued::frame(protocol::awareness(&known).into()));
        }
        debug!(conn = request.conn_id, user = %request.access.user_id, %role, "joined");
        if !self
            .conns
            .values()
            .any(|c| c.user_id == request.access.user_id)
        {
            self.announce(super::RoomEvent::PresenceJoined(request.access.user_id));
        }
        self.conns.insert(
            request.conn_id,
            Box::new(Conn {
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
                lag: None,
            }),
        );
        self.idle_since = None;
        self.publish_active_users();
        self.send_block_data(request.conn_id);
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
            self.announce(super::RoomEvent::PresenceLeft(conn.user_id));
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

    /// Sends a frame to one connection (`false` if it was not sent: the connection is
    /// lagging, or just started to).
    pub(super) fn send(&mut self, conn_id: ConnId, frame: Bytes) -> bool {
        let now = Instant::now();
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return false;
        };
        match conn.offer(&Queued::frame(frame), None, now) {
            Offer::Sent => true,
            Offer::Lagging => {
                self.lag_check_at.get_or_insert(now + LAG_CHECK_EVERY);
                false
            }
            Offer::Gone => {
                self.drop_slow(conn_id);
                false
            }
        }
    }

    /// Sends a frame (awareness) to every connection but `except`; lagging ones skip it
    /// (they get the whole awareness when they catch up).
    pub(super) fn broadcast(&mut self, except: Option<ConnId>, frame: Bytes) {
        self.offer_all(except, &frame, None);
    }

    /// Relays a durable document update (yrs v1) to every connection but `except`. A lagging
    /// connection keeps it for its catch-up instead.
    pub(super) fn relay_update(&mut self, except: Option<ConnId>, update: Bytes) {
        let frame: Bytes = protocol::update(&update).into();
        let others =
            self.conns.len() - usize::from(except.is_some_and(|c| self.conns.contains_key(&c)));
        self.deps.metrics.relay_fanout.observe(others as f64);
        self.offer_all(except, &frame, Some(&update));
        // A busy room may never reach its timer: check the lagging ones here once due.
        if self.lag_check_at.is_some_and(|at| at <= Instant::now()) {
            self.catch_up_lagging();
        }
    }

    fn offer_all(&mut self, except: Option<ConnId>, frame: &Bytes, update: Option<&Bytes>) {
        let now = Instant::now();
        // one queue item for every connection (each gets a pointer to it)
        let frame = Queued::frame(frame.clone());
        let mut lagging = false;
        let mut gone = Vec::new();
        for (id, conn) in &mut self.conns {
            if Some(*id) == except {
                continue;
            }
            match conn.offer(&frame, update, now) {
                Offer::Sent => {}
                Offer::Lagging => lagging = true,
                Offer::Gone => gone.push(*id),
            }
        }
        if lagging {
            self.lag_check_at.get_or_insert(now + LAG_CHECK_EVERY);
        }
        for id in gone {
            self.drop_slow(id);
        }
    }

    /// When the next check of lagging connections is due, if any lags.
    pub(super) fn lag_check_due(&self) -> Option<Instant> {
        self.lag_check_at
    }

    /// Sends each lagging connection whose queue has drained what it missed, as one merged
    /// update; closes those stuck past the deadline or the byte bound.
    pub(super) fn catch_up_lagging(&mut self) {
        let now = Instant::now();
        self.lag_check_at = None;
        let mut ready = Vec::new();
        let mut stuck = Vec::new();
        for (id, conn) in &self.conns {
            let Some(lag) = &conn.lag else { continue };
            if lag.bytes > MAX_LAG_BYTES || now.duration_since(lag.since) > LAG_DEADLINE {
                stuck.push(*id);
            } else if conn.out.capacity() >= conn.out.max_capacity() / 2 {
                ready.push(*id);
            }
        }
        for id in stuck {
            warn!(conn = id, "connection stuck behind the room; closing it");
            self.deps.metrics.slow_consumer_closes.inc();
            self.close_conn(id, close::TRY_AGAIN_LATER, STUCK.to_owned());
        }
        for id in ready {
            let Some(lag) = self.conns.get_mut(&id).and_then(|c| c.lag.take()) else {
                continue;
            };
            let missed = lag.missed.len();
            if missed > 0 {
                let merged = match canvas_engine::merge::merge_v1(&lag.missed) {
                    Ok(merged) => merged,
                    Err(cause) => {
                        warn!(conn = id, %cause, "cannot merge what a lagging connection missed");
                        self.deps.metrics.slow_consumer_closes.inc();
                        self.close_conn(id, close::TRY_AGAIN_LATER, STUCK.to_owned());
                        continue;
                    }
                };
                debug!(
                    conn = id,
                    missed,
                    bytes = merged.len(),
                    "lagging connection caught up"
                );
                if !self.send(id, protocol::update(&merged).into()) {
                    // Full again at once: it lags from here, having missed all of it.
                    if let Some(conn) = self.conns.get_mut(&id) {
                        conn.lag = Some(lag);
                    }
                    continue;
                }
            }
            let known = self.presence.full_update();
            if !known.clients.is_empty() {
                self.send(id, protocol::awareness(&known).into());
            }
            self.ack(id);
        }
        if self.conns.values().any(|c| c.lag.is_some()) {
            self.lag_check_at.get_or_insert(now + LAG_CHECK_EVERY);
        }
    }

    /// A connection whose task ended is dropped (its writer is gone).
    pub(super) fn drop_slow(&mut self, conn_id: ConnId) {
        debug!(conn = conn_id, "connection gone; dropping it");
        self.leave(conn_id);
    }

    /// Closes every connection and clears this node's presence for the canvas.
    pub(super) fn close_all(&mut self, code: u16, reason: &str) {
        let mut users = HashSet::new();
        let mut clients = Vec::new();
        for conn in self.conns.values() {
            let _ = conn.out.try_send(Queued::close(code, reason.to_owned()));
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
            self.announce(super::RoomEvent::PresenceLeft(user));
        }
        self.shared_writer.send(SharedOp::Active(Vec::new()));
    }

    pub(super) fn close_conn(&mut self, conn_id: ConnId, code: u16, reason: String) {
        if let Some(conn) = self.conns.get(&conn_id) {
            let _ = conn.out.try_send(Queued::close(code, reason));
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
