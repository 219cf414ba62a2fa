//! The room without sockets: a room over the embedded store in a temporary folder, driven
//! through its methods; intervals pass in no real time by moving tokio's clock ([`skip`]).

use super::*;
use crate::domain::Actor;
use canvas_engine::Role;
use canvas_engine::init::{self, CanvasMeta};
use canvas_engine::sharing::{self, Visibility};
use canvas_storage::{NewCanvas, PresenceEntry, ServiceUrls, Storage, VersionKind};
use tokio::sync::oneshot;

/// A loaded room over a fresh embedded store, with the receiver of its write results.
struct Harness {
    _dir: tempfile::TempDir,
    storage: Storage,
    room: Room,
    written_rx: mpsc::Receiver<Box<Written>>,
}

fn config() -> RoomConfig {
    RoomConfig {
        idle_unload: Duration::from_secs(30),
        checkpoint_updates: 1000,
        checkpoint_every: Duration::from_secs(60),
        version_interval: Duration::from_secs(10),
        awareness: super::presence::AwarenessLimits {
            max_state_bytes: 1024,
            per_second: 10,
        },
        result_ttl: Duration::from_secs(3600),
    }
}

async fn harness(config: RoomConfig) -> Harness {
    harness_with(config, Unregister::new(|| {})).await
}

async fn harness_with(config: RoomConfig, unregister: Unregister) -> Harness {
    harness_over(config, unregister, |_| {}).await
}

/// A room over the embedded store, with its dependencies changed by `adjust` (a presence
/// store or fan-out that records what the room does).
async fn harness_over(
    config: RoomConfig,
    unregister: Unregister,
    adjust: impl FnOnce(&mut RoomDeps),
) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = Storage::connect(dir.path(), &ServiceUrls::default())
        .await
        .expect("embedded store opens");
    let new = NewCanvas {
        id: Uuid::new_v4(),
        project_id: Uuid::new_v4(),
        owner_id: Uuid::new_v4(),
        name: "Room test".into(),
        description: None,
    };
    let mut doc = CanvasDoc::new();
    let meta = CanvasMeta {
        name: new.name.clone(),
        description: None,
        project_id: new.project_id.to_string(),
        owner_id: new.owner_id.to_string(),
        tags: Vec::new(),
    };
    doc.edit(|txn| init::init_canvas(txn, &meta));
    let id = new.id;
    storage
        .canvases
        .create_canvas(new, &doc.encode_state(), &serde_json::json!({}))
        .await
        .expect("canvas created");
    let tasks = TaskTracker::new();
    let mut deps = RoomDeps {
        canvases: storage.canvases.clone(),
        versions: storage.versions.clone(),
        presence: storage.presence.clone(),
        fanout: storage.fanout.clone(),
        auditor: Auditor::new(storage.audit.clone(), tasks.clone()),
        tasks,
        shutdown: CancellationToken::new(),
        node_id: "test-node".into(),
        metrics: Arc::default(),
        config,
        resolver: Arc::new(NoData),
        events: Arc::new(NoEvents),
    };
    adjust(&mut deps);
    let (room, written_rx) = Room::load(id, deps, unregister).await.expect("room loads");
    Harness {
        _dir: dir,
        storage,
        room,
        written_rx,
    }
}

/// These tests announce nothing.
struct NoEvents;

impl super::RoomEvents for NoEvents {
    fn room_event(&self, _canvas: Uuid, _project: Uuid, _event: super::RoomEvent) {}
}

/// These tests bind no block to a query: a data side that has nothing.
struct NoData;

impl super::bound::BlockResolver for NoData {
    fn fetch(
        &self,
        _project: Uuid,
        _user: Option<Uuid>,
        _binding: canvas_engine::bindings::QueryBinding,
        _started: super::bound::StartedTx,
    ) -> super::bound::FetchFuture {
        Box::pin(async {
            super::bound::Fetched::failed(canvas_engine::protocol::DataError {
                code: "unavailable".into(),
                message: "no data side in room unit tests".into(),
            })
        })
    }

    fn cached(&self, _key: String) -> super::bound::CachedFuture {
        Box::pin(async { None })
    }
}

/// A client's update renaming the canvas (`meta.name`), made on `author`'s document.
fn rename(author: &canvas_engine::yrs::Doc, name: &str) -> Vec<u8> {
    use canvas_engine::yrs::{Map, Transact, WriteTxn};
    let mut txn = author.transact_mut();
    let meta = txn.get_or_insert_map(canvas_engine::schema::META);
    meta.insert(&mut txn, "name", name);
    txn.encode_update_v1()
}

/// Moves the room's clock (tokio's) forward by `by` at once. The clock runs between skips:
/// the embedded store's pool has timeouts that a clock left paused would fire while it waits
/// for its SQLite thread.
async fn skip(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

impl Harness {
    /// Joins connection `conn_id` as a new editor; returns where its frames arrive.
    async fn join_editor(&mut self, conn_id: ConnId, wants_acks: bool) -> mpsc::Receiver<Queued> {
        self.join_editor_with_queue(conn_id, wants_acks, 256).await
    }

    /// [`Harness::join_editor`] with a queue of `capacity` frames.
    async fn join_editor_with_queue(
        &mut self,
        conn_id: ConnId,
        wants_acks: bool,
        capacity: usize,
    ) -> mpsc::Receiver<Queued> {
        let (out, frames) = mpsc::channel(capacity);
        let (reply, joined) = oneshot::channel();
        let request = JoinRequest {
            conn_id,
            access: ProjectAccess {
                user_id: Uuid::new_v4(),
                project_role: Some(Role::Editor),
                ..ProjectAccess::default()
            },
            username: "ann".into(),
            out,
            wants_acks,
            actor: Actor::default(),
        };
        self.room.join(request, reply);
        assert!(matches!(joined.await, Ok(JoinReply::Joined(Role::Editor))));
        frames
    }

    /// An editor's change through the room (as a REST edit), made durable.
    async fn edit_as(&mut self, user: Uuid) {
        let request = EditRequest {
            access: ProjectAccess {
                user_id: user,
                project_role: Some(Role::Editor),
                ..ProjectAccess::default()
            },
            actor: Actor {
                user_id: Some(user),
                ..Actor::default()
            },
            required: Role::Editor,
            edit: Box::new(|txn| {
                let now = sharing::sharing(txn).visibility;
                let next = if now == Visibility::Team {
                    Visibility::Private
                } else {
                    Visibility::Team
                };
                sharing::set_visibility(txn, next);
                Ok(())
            }),
        };
        let EditReply::Applied { durable, .. } = self.room.server_edit(request) else {
            panic!("the edit was not applied");
        };
        assert!(matches!(
            self.room.flush(&mut self.written_rx).await,
            Flow::Continue
        ));
        durable.await.expect("the edit is durable");
    }

    /// The kinds of the canvas's stored versions, oldest first.
    async fn version_kinds(&self) -> Vec<VersionKind> {
        let list = self.storage.versions.versions(self.room.id).await;
        list.expect("versions read")
            .iter()
            .map(|v| v.kind)
            .collect()
    }
}

#[tokio::test]
async fn an_edited_canvas_gets_one_automatic_version_per_interval_and_none_when_unchanged() {
    let mut h = harness(config()).await;
    let editor = Uuid::new_v4();
    h.room.auto_version().await;
    assert_eq!(h.version_kinds().await, [VersionKind::Initial], "unchanged");

    h.edit_as(editor).await;
    h.room.auto_version().await;
    assert_eq!(
        h.version_kinds().await,
        [VersionKind::Initial],
        "changed, but the interval has not passed"
    );

    skip(config().version_interval).await;
    h.room.auto_version().await;
    assert_eq!(
        h.version_kinds().await,
        [VersionKind::Initial, VersionKind::Auto]
    );
    let versions = h.storage.versions.versions(h.room.id).await.expect("read");
    assert_eq!(
        versions[1].changed_by, editor,
        "attributed to the last editor"
    );
    assert_eq!(h.room.record.version, 2);

    // Nothing changed since: however long it stays so, no further automatic version.
    for _ in 0..3 {
        skip(config().version_interval * 2).await;
        h.room.auto_version().await;
    }
    assert_eq!(h.version_kinds().await.len(), 2);

    // A new change starts the next interval from the last version.
    h.edit_as(editor).await;
    h.room.auto_version().await;
    assert_eq!(
        h.version_kinds().await.len(),
        3,
        "the interval since the last version has long passed"
    );
    h.edit_as(editor).await;
    h.room.auto_version().await;
    assert_eq!(
        h.version_kinds().await.len(),
        3,
        "too soon after the last one"
    );
}

/// Makes `n` durable edits and returns the stored document after them.
async fn edits_then_stored(h: &mut Harness, n: usize) -> canvas_storage::StoredDocument {
    let editor = Uuid::new_v4();
    for _ in 0..n {
        h.edit_as(editor).await;
    }
    let stored = h.storage.canvases.load_document(h.room.id).await;
    stored.expect("read").expect("stored")
}

#[tokio::test]
async fn a_log_grown_past_the_threshold_is_compacted_after_a_write() {
    let mut quiet = harness(config()).await;
    let stored = edits_then_stored(&mut quiet, 40).await;
    assert_eq!(
        stored.updates.len(),
        40,
        "below --checkpoint-updates: no checkpoint"
    );

    let mut h = harness(RoomConfig {
        checkpoint_updates: 4,
        ..config()
    })
    .await;
    let stored = edits_then_stored(&mut h, 40).await;
    assert!(stored.snapshot_seq > 0, "compacted at least once");
    assert!(
        stored.updates.len() < 40 && stored.snapshot_seq + stored.updates.len() as i64 == 40,
        "the snapshot covers the log up to its sequence number: {} + {}",
        stored.snapshot_seq,
        stored.updates.len()
    );
    let reloaded = CanvasDoc::from_stored(
        &stored.snapshot,
        stored.updates.iter().map(|(_, u)| u.as_slice()),
    );
    let reloaded = reloaded.expect("stored document loads");
    assert_eq!(reloaded.state_vector(), h.room.canvas.state_vector());
    assert_eq!(
        json::canvas_json(&reloaded.doc().transact()),
        json::canvas_json(&h.room.canvas.doc().transact()),
        "snapshot and log hold the live document"
    );
}

#[tokio::test]
async fn an_idle_room_unloads_after_the_delay_and_not_before() {
    let (unloaded_tx, unloaded_rx) = std::sync::mpsc::channel();
    let unregister = Unregister::new(move || {
        let _ = unloaded_tx.send(());
    });
    let h = harness_with(config(), unregister).await;
    let storage = h.storage.clone();
    let id = h.room.id;
    let (tx, rx) = mpsc::channel(8);
    let forwarding = tokio_util::sync::CancellationToken::new().drop_guard();
    let serving = tokio::spawn(h.room.serve(rx, h.written_rx, forwarding));
    let viewer = ProjectAccess {
        user_id: Uuid::new_v4(),
        project_role: Some(Role::Viewer),
        ..ProjectAccess::default()
    };
    let read = |tx: mpsc::Sender<RoomCmd>, access: ProjectAccess| async move {
        let (reply, answer) = oneshot::channel();
        tx.send(RoomCmd::Read(Box::new(access), reply))
            .await
            .expect("room takes commands");
        answer.await.expect("room answers")
    };
    skip(config().idle_unload - Duration::from_secs(1)).await;
    assert!(
        matches!(read(tx.clone(), viewer.clone()).await, ReadReply::View(_)),
        "still loaded a second before the delay"
    );
    assert!(unloaded_rx.try_recv().is_err());
    skip(Duration::from_secs(2)).await;
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("the room unloads")
        .expect("the room task ends cleanly");
    assert!(unloaded_rx.try_recv().is_ok(), "it left the registry");
    assert!(tx.is_closed(), "it takes no more commands");
    let stored = storage.canvases.load_document(id).await.expect("read");
    assert!(stored.is_some_and(|s| s.updates.is_empty()), "checkpointed");
}

/// A presence store that records every write it passes on: the cursors put (their `x`) and
/// how many active-user lists were set.
struct Counting {
    inner: Arc<dyn PresenceStore>,
    puts: std::sync::Mutex<Vec<i64>>,
    actives: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl PresenceStore for Counting {
    async fn put_presence(
        &self,
        canvas_id: Uuid,
        entry: &PresenceEntry,
        ttl: Duration,
    ) -> canvas_storage::StorageResult<()> {
        let x = entry.cursor["x"].as_i64().unwrap_or(-1);
        self.puts.lock().expect("not poisoned").push(x);
        self.inner.put_presence(canvas_id, entry, ttl).await
    }
    async fn remove_presence(
        &self,
        canvas_id: Uuid,
        user_id: Uuid,
    ) -> canvas_storage::StorageResult<()> {
        self.inner.remove_presence(canvas_id, user_id).await
    }
    async fn presence(
        &self,
        canvas_id: Uuid,
        ttl: Duration,
    ) -> canvas_storage::StorageResult<Vec<PresenceEntry>> {
        self.inner.presence(canvas_id, ttl).await
    }
    async fn set_active_users(
        &self,
        canvas_id: Uuid,
        node_id: &str,
        users: &[Uuid],
    ) -> canvas_storage::StorageResult<()> {
        self.actives.fetch_add(1, Ordering::SeqCst);
        self.inner.set_active_users(canvas_id, node_id, users).await
    }
    async fn active_users(&self, canvas_id: Uuid) -> canvas_storage::StorageResult<Vec<Uuid>> {
        self.inner.active_users(canvas_id).await
    }
}

impl Counting {
    /// Waits until `n` active-user lists were set: the presence writer is FIFO, so every
    /// write queued before the `n`th list is done then.
    async fn wait_actives(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while self.actives.load(Ordering::SeqCst) < n {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the presence writer keeps up");
    }

    fn puts(&self) -> Vec<i64> {
        self.puts.lock().expect("not poisoned").clone()
    }
}

#[tokio::test]
async fn a_burst_of_cursor_moves_writes_the_presence_store_twice() {
    use canvas_engine::yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
    let counting = Arc::new(Counting {
        inner: Arc::new(canvas_storage::memory::MemoryPresence::default()),
        puts: std::sync::Mutex::default(),
        actives: std::sync::atomic::AtomicUsize::new(0),
    });
    let store = counting.clone();
    let mut h = harness_over(config(), Unregister::new(|| {}), |deps| {
        deps.presence = store
    })
    .await;
    let _frames = h.join_editor(1, false).await;
    for x in 1..=5u32 {
        let mut update = AwarenessUpdate {
            clients: HashMap::new(),
        };
        let state = format!(r#"{{"user":{{"name":"Ann"}},"cursor":{{"x":{x},"y":0}}}}"#);
        update.clients.insert(
            ClientID::new(4243),
            AwarenessUpdateEntry {
                clock: x,
                json: state.into(),
            },
        );
        h.room.awareness(1, update);
    }
    h.room.publish_active_users();
    counting.wait_actives(2).await;
    assert_eq!(
        counting.puts(),
        [1],
        "the first move at once, the others held back"
    );
    let due = h.room.presence_due().expect("a write is held back");
    skip(due - Instant::now()).await;
    h.room.flush_presence();
    h.room.publish_active_users();
    counting.wait_actives(3).await;
    assert_eq!(
        counting.puts(),
        [1, 5],
        "then only the last, once the interval is over"
    );
    assert_eq!(h.room.presence_due(), None);
}

/// Fan-out to other nodes (as if there were some) that records what the room publishes.
#[derive(Default)]
struct Recording {
    published: std::sync::Mutex<Vec<Vec<u8>>>,
}

#[async_trait::async_trait]
impl Fanout for Recording {
    fn is_shared(&self) -> bool {
        true
    }
    async fn publish(&self, _: Uuid, message: Vec<u8>) -> canvas_storage::StorageResult<()> {
        self.published.lock().expect("not poisoned").push(message);
        Ok(())
    }
    async fn subscribe(&self, _: Uuid) -> canvas_storage::StorageResult<mpsc::Receiver<Vec<u8>>> {
        Ok(mpsc::channel(1).1)
    }
}

impl Recording {
    /// Waits until `n` messages were published; returns them, decoded: the kind and, for
    /// awareness, the client ids it names (sorted).
    async fn wait_published(&self, n: usize) -> Vec<(crate::sync::shared::LiveKind, Vec<u64>)> {
        use crate::sync::shared::{LiveKind, decode_live};
        tokio::time::timeout(Duration::from_secs(10), async {
            while self.published.lock().expect("not poisoned").len() < n {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the shared writer keeps up");
        let published = self.published.lock().expect("not poisoned");
        published
            .iter()
            .map(|message| {
                let (node, kind, payload) = decode_live(message).expect("a live message");
                assert_eq!(node, "test-node");
                let mut ids: Vec<u64> = match kind {
                    LiveKind::Awareness => {
                        canvas_engine::protocol::decode_awareness_update(payload)
                            .expect("awareness")
                            .clients
                            .keys()
                            .map(|id| id.get())
                            .collect()
                    }
                    _ => Vec::new(),
                };
                ids.sort();
                (kind, ids)
            })
            .collect()
    }
}

/// One awareness entry.
fn awareness_of(client: u64, clock: u32, state: &str) -> canvas_engine::yrs::sync::AwarenessUpdate {
    use canvas_engine::yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
    AwarenessUpdate {
        clients: HashMap::from([(
            ClientID::new(client),
            AwarenessUpdateEntry {
                clock,
                json: state.into(),
            },
        )]),
    }
}

/// A room whose subscription to the other nodes broke and was made again publishes the
/// awareness of its own people (not what other nodes told it) and asks the other nodes for
/// theirs; asked, it answers with its own people's. So whichever node subscribes again first,
/// each ends up with the other's presence.
#[tokio::test]
async fn a_room_subscribed_again_announces_its_people_and_asks_for_the_others() {
    use crate::sync::shared::LiveKind;
    use canvas_engine::yrs::updates::encoder::Encode;
    let recording = Arc::new(Recording::default());
    let fanout = recording.clone();
    let mut h = harness_over(config(), Unregister::new(|| {}), |deps| {
        deps.fanout = fanout
    })
    .await;
    let _frames = h.join_editor(1, false).await;
    h.room
        .awareness(1, awareness_of(31, 1, r#"{"cursor":{"x":1,"y":0}}"#));
    let from_elsewhere = awareness_of(77, 1, r#"{"cursor":null}"#).encode_v1();
    h.room.remote(LiveKind::Awareness, from_elsewhere).await;
    assert_eq!(
        recording.wait_published(1).await,
        [(LiveKind::Awareness, vec![31])]
    );

    h.room.resubscribed().await;
    assert_eq!(
        recording.wait_published(3).await[1..],
        [
            (LiveKind::Awareness, vec![31]),
            (LiveKind::PresenceQuery, vec![])
        ]
    );
    h.room.remote(LiveKind::PresenceQuery, Vec::new()).await;
    assert_eq!(
        recording.wait_published(4).await[3..],
        [(LiveKind::Awareness, vec![31])],
        "the answer names this node's people only"
    );
}

/// Awareness published by another node is decoded without trusting it (found by the
/// `awareness` fuzz target): a client id above 53 bits made yrs's decoder assert, and a
/// declared entry count with nothing behind it made it reserve room for all of them.
#[tokio::test]
async fn a_bad_awareness_payload_from_another_node_is_dropped() {
    use crate::sync::shared::LiveKind;
    use canvas_engine::yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
    use canvas_engine::yrs::updates::encoder::Encode;
    let mut h = harness(config()).await;
    // one entry: client 2^60, clock 1, state "{}"
    let too_wide = vec![
        1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 1, 2, b'{', b'}',
    ];
    // 2^26 entries declared, none there
    let too_many = vec![0x80, 0x80, 0x80, 0x20];
    for payload in [too_wide, too_many] {
        h.room.remote(LiveKind::Awareness, payload).await;
    }
    assert!(h.room.presence.is_empty());
    let good = AwarenessUpdate {
        clients: HashMap::from([(
            ClientID::new(77),
            AwarenessUpdateEntry {
                clock: 1,
                json: r#"{"cursor":null}"#.into(),
            },
        )]),
    };
    h.room.remote(LiveKind::Awareness, good.encode_v1()).await;
    assert!(
        h.room.presence.contains(ClientID::new(77)),
        "the room goes on"
    );
}

#[tokio::test]
async fn updates_are_acknowledged_once_durable_and_not_before() {
    use canvas_engine::protocol::{Ack, Extension, encode_extension};
    use canvas_engine::yrs::Doc;
    let mut h = harness(config()).await;
    let mut frames = h.join_editor(1, true).await;
    while frames.try_recv().is_ok() {} // the room's sync step 1
    let author = Doc::with_client_id(9);
    for name in ["a", "b"] {
        h.room.update(1, rename(&author, name));
    }
    assert!(
        frames.try_recv().is_err(),
        "nothing is acknowledged (or echoed) before it is durable"
    );
    assert!(matches!(
        h.room.flush(&mut h.written_rx).await,
        Flow::Continue
    ));
    let expected = encode_extension(&Extension::Ack(Ack { through: 2 }));
    match frames.try_recv().map(Queued::into_inner) {
        Ok(Outbound::Frame(frame)) => assert_eq!(frame.as_ref(), expected.as_slice()),
        other => panic!("expected one acknowledgement through 2, got {other:?}"),
    }
    assert!(frames.try_recv().is_err(), "one write, one acknowledgement");
}

/// The relay does not wait for the disk: the other connections get an accepted update at
/// once, and its sender's acknowledgement comes only with the durable write.
#[tokio::test]
async fn updates_are_relayed_before_they_are_durable() {
    use canvas_engine::yrs::Doc;
    let mut h = harness(config()).await;
    let mut author_frames = h.join_editor(1, true).await;
    let mut peer_frames = h.join_editor(2, true).await;
    while author_frames.try_recv().is_ok() {}
    while peer_frames.try_recv().is_ok() {}
    let author = Doc::with_client_id(9);
    h.room.update(1, rename(&author, "a"));
    assert!(
        matches!(
            peer_frames.try_recv().map(Queued::into_inner),
            Ok(Outbound::Frame(_))
        ),
        "the peer has the update before it is durable"
    );
    assert!(
        author_frames.try_recv().is_err(),
        "no acknowledgement (and no echo) before the write"
    );
    assert!(matches!(
        h.room.flush(&mut h.written_rx).await,
        Flow::Continue
    ));
    assert!(
        matches!(
            author_frames.try_recv().map(Queued::into_inner),
            Ok(Outbound::Frame(_))
        ),
        "acknowledged once durable"
    );
    assert!(
        peer_frames.try_recv().is_err(),
        "nothing more for the peer: it was relayed once"
    );
}

/// An admin's REST edit setting the visibility to team. The actor has no ids: no user or
/// organization records exist in this store (the audit table's foreign keys would refuse
/// made-up ones).
fn set_team_visibility(admin: Uuid) -> EditRequest {
    EditRequest {
        access: ProjectAccess {
            user_id: admin,
            project_role: Some(Role::Admin),
            ..ProjectAccess::default()
        },
        actor: Actor::default(),
        required: Role::Admin,
        edit: Box::new(|txn| {
            sharing::set_visibility(txn, Visibility::Team);
            Ok(())
        }),
    }
}

#[tokio::test]
async fn a_rest_sharing_change_is_answered_with_its_audit_write() {
    let mut h = harness(config()).await;
    let admin = Uuid::new_v4();
    let EditReply::Applied { audited, .. } = h.room.server_edit(set_team_visibility(admin)) else {
        panic!("the edit was not applied");
    };
    // The REST handler awaits this before it answers, so a caller reading the audit trail
    // right after the answer finds the entry.
    audited
        .expect("a sharing change starts its audit write")
        .await
        .expect("the audit task ends");
    let filter = canvas_storage::AuditFilter {
        resource_type: Some("canvas".into()),
        resource_id: Some(h.room.id),
        ..Default::default()
    };
    let entries = h.storage.audit.list(filter).await.expect("audit read");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].action, "canvas.sharing.update");

    // The same again leaves sharing as it is: nothing to audit.
    let EditReply::Applied { audited, .. } = h.room.server_edit(set_team_visibility(admin)) else {
        panic!("the edit was not applied");
    };
    assert!(audited.is_none(), "no sharing change, no audit write");
}

/// A connection whose queue is full lags instead of being dropped: it gets nothing more
/// until its queue drains, then what it missed as one update (applying everything it got
/// gives the whole document); stuck past the deadline, it is closed with 1013.
#[tokio::test]
async fn a_lagging_connection_gets_one_merged_update_then_is_closed_if_stuck() {
    use canvas_engine::yrs::updates::decoder::Decode;
    use canvas_engine::yrs::{Doc, Map, ReadTxn, Transact, Update};
    let mut h = harness(config()).await;
    let _writer = h.join_editor(1, false).await;
    let mut slow = h.join_editor_with_queue(2, false, 4).await;
    let author = Doc::with_client_id(9);
    let edit = |h: &mut Harness, name: String| h.room.update(1, rename(&author, &name));
    for i in 0..20 {
        edit(&mut h, format!("name {i}"));
        assert!(matches!(
            h.room.flush(&mut h.written_rx).await,
            Flow::Continue
        ));
    }
    let received = |slow: &mut mpsc::Receiver<Queued>| {
        let mut frames = Vec::new();
        while let Ok(out) = slow.try_recv() {
            match out.into_inner() {
                Outbound::Frame(frame) => frames.push(frame),
                Outbound::Close(code, reason) => panic!("closed: {code} {reason}"),
            }
        }
        frames
    };
    let first = received(&mut slow);
    assert_eq!(first.len(), 4, "the queue's worth, then nothing");
    // Drained: the next check sends the rest as one update.
    h.room.catch_up_lagging();
    let rest = received(&mut slow);
    assert_eq!(rest.len(), 1, "one merged update: {rest:?}");
    let client = canvas_engine::new_doc();
    for frame in first.iter().chain(&rest) {
        if let Ok(canvas_engine::protocol::Message::Sync(
            canvas_engine::yrs::sync::SyncMessage::Update(update),
        )) = canvas_engine::protocol::decode(frame)
        {
            let update = Update::decode_v1(&update).expect("a valid update");
            client.transact_mut().apply_update(update).expect("applies");
        }
    }
    let txn = client.transact();
    let name = txn
        .get_map(canvas_engine::schema::META)
        .and_then(|m| m.get(&txn, "name"))
        .map(|v| v.to_string(&txn));
    assert_eq!(name.as_deref(), Some("name 19"), "everything arrived");
    drop(txn);

    // Lagging again and never reading: closed with 1013 once the deadline passes.
    for i in 20..30 {
        edit(&mut h, format!("name {i}"));
        assert!(matches!(
            h.room.flush(&mut h.written_rx).await,
            Flow::Continue
        ));
    }
    skip(super::conns::LAG_DEADLINE + Duration::from_secs(1)).await;
    h.room.catch_up_lagging();
    assert!(!h.room.conns.contains_key(&2), "the room let it go");
    // Its queue was full, so the close code may not fit: then the queue ends, which its
    // writer answers with 1013 too (`sync::connection`).
    let mut closed = None;
    loop {
        match slow.try_recv().map(Queued::into_inner) {
            Ok(Outbound::Close(code, _)) => closed = Some(code),
            Ok(Outbound::Frame(_)) => {}
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => panic!("the queue is still open"),
        }
    }
    assert!(
        matches!(closed, None | Some(close::TRY_AGAIN_LATER)),
        "{closed:?}"
    );
}

/// An update submitted over REST takes a connection's path: the caller's role first, the
/// inspector's verdict, the relay to the room's connections, then the durable log; the
/// reply's `durable` completes only once the write returned.
#[tokio::test]
async fn a_rest_update_is_relayed_at_once_and_answered_once_durable() {
    let mut h = harness(config()).await;
    let mut frames = h.join_editor(1, false).await;
    // what a join gets (sync steps, awareness)
    while frames.try_recv().is_ok() {}
    let user = Uuid::new_v4();
    let request = |role: Role, update: Vec<u8>| SubmitRequest {
        access: ProjectAccess {
            user_id: user,
            project_role: Some(role),
            ..ProjectAccess::default()
        },
        actor: Actor {
            user_id: Some(user),
            ..Actor::default()
        },
        update,
        block: None,
    };
    let author = canvas_engine::new_doc();
    let update = rename(&author, "Renamed over REST");
    assert!(matches!(
        h.room.submit(request(Role::Viewer, update.clone())),
        SubmitReply::Forbidden(Some(Role::Viewer))
    ));
    assert!(matches!(
        h.room.submit(request(Role::Editor, vec![0xff, 0xff, 0xff])),
        SubmitReply::Refused(refusal) if refusal.code == canvas_engine::inspect::RefusalCode::MalformedUpdate
    ));
    let SubmitReply::Accepted {
        mut durable, noop, ..
    } = h.room.submit(request(Role::Editor, update.clone()))
    else {
        panic!("an editor's rename is accepted");
    };
    assert!(!noop);
    assert!(durable.try_recv().is_err(), "not durable before the write");
    assert!(
        matches!(
            frames.try_recv().map(Queued::into_inner),
            Ok(Outbound::Frame(_))
        ),
        "relayed to the connection before the write"
    );
    assert!(matches!(
        h.room.flush(&mut h.written_rx).await,
        Flow::Continue
    ));
    durable.await.expect("durable after the write");
    let stored = h
        .storage
        .canvases
        .load_document(h.room.id)
        .await
        .expect("read")
        .expect("stored");
    assert!(stored.updates.iter().any(|(_, u)| *u == update));
    // the same update again is already there: answered at once
    let SubmitReply::Accepted {
        mut durable, noop, ..
    } = h.room.submit(request(Role::Editor, update))
    else {
        panic!("a repeated update is accepted");
    };
    assert!(noop);
    assert!(durable.try_recv().is_ok(), "nothing to wait for");
}
