//! Counting canvas openings (`interactions.views`) without a storage write per connect.
//!
//! Every admitted WebSocket counts a view of its canvas. Writing each one at once cost a
//! durable write per connect (an fsync on the embedded store, and on a reader connection,
//! which dropped every connection's page cache), the largest part of a storm of connects.
//! Here a connection only adds one to its canvas's count in memory; one writer task writes
//! what has gathered in one `record_views` batch, and again as soon as more has gathered
//! while it wrote. When the server shuts down it writes what is left.

use canvas_storage::InteractionStore;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Views counted and not yet written, and the task that writes them.
pub struct ViewCounter {
    store: Arc<dyn InteractionStore>,
    pending: Mutex<HashMap<Uuid, u64>>,
    wake: Notify,
    started: AtomicBool,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl ViewCounter {
    /// A counter writing to `store`; its writer starts with the first view (in the runtime
    /// of the caller) and is tracked by `tasks`, so shutdown waits for its last write.
    pub fn new(
        store: Arc<dyn InteractionStore>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(ViewCounter {
            store,
            pending: Mutex::default(),
            wake: Notify::new(),
            started: AtomicBool::new(false),
            tasks,
            shutdown,
        })
    }

    /// Counts one view of a canvas (written soon, with the others gathered meanwhile).
    pub fn count(self: &Arc<Self>, canvas_id: Uuid) {
        *self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(canvas_id)
            .or_insert(0) += 1;
        if !self.started.swap(true, Ordering::AcqRel) {
            let counter = self.clone();
            self.tasks.spawn(async move { counter.write_loop().await });
        }
        self.wake.notify_one();
    }

    async fn write_loop(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = self.wake.notified() => self.write().await,
                () = self.shutdown.cancelled() => {
                    self.write().await;
                    return;
                }
            }
        }
    }

    /// Writes what has gathered, in one batch.
    async fn write(&self) {
        let batch: Vec<(Uuid, u64)> = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_iter()
        .collect();
        if batch.is_empty() {
            return;
        }
        if let Err(cause) = self.store.record_views(&batch).await {
            tracing::warn!(%cause, canvases = batch.len(), "cannot count views");
        }
    }
}
