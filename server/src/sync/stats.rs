//! Counters of the live-collaboration layer, kept for the operator: the future `/metrics`
//! endpoint exposes them; until then they are read in process (`AppState::sync_stats`).
//!
//! Plain atomics: they are bumped from every connection task and only ever added to, so no
//! lock is needed and a reader sees each counter's latest value.

use std::sync::atomic::{AtomicU64, Ordering};
use tracing::warn;
use uuid::Uuid;

/// What the WebSocket connections of this process did that an operator should see.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Frames sent that were larger than a client may send (`--max-message-bytes`).
    large_frames: AtomicU64,
    /// Their bytes, all together.
    large_frame_bytes: AtomicU64,
}

impl SyncStats {
    /// Notes an outbound frame of `bytes` for `canvas`, sent although it is larger than the
    /// inbound limit `limit` (a canvas grown past it is still sent whole: a limit on what
    /// clients send must not lock them out of what the room holds). Counted and logged: a
    /// client whose WebSocket library caps messages at that limit cannot read it.
    pub fn large_frame(&self, canvas: Uuid, bytes: usize, limit: usize) {
        self.large_frames.fetch_add(1, Ordering::Relaxed);
        self.large_frame_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        warn!(%canvas, bytes, limit, "sending a frame larger than clients may send");
    }

    /// Frames sent above the inbound limit since the process started.
    pub fn large_frames(&self) -> u64 {
        self.large_frames.load(Ordering::Relaxed)
    }

    /// The bytes of those frames, all together.
    pub fn large_frame_bytes(&self) -> u64 {
        self.large_frame_bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_frames_are_counted_with_their_bytes() {
        let stats = SyncStats::default();
        assert_eq!((stats.large_frames(), stats.large_frame_bytes()), (0, 0));
        stats.large_frame(Uuid::new_v4(), 5_000_000, 1_048_576);
        stats.large_frame(Uuid::new_v4(), 2_000_000, 1_048_576);
        assert_eq!(stats.large_frames(), 2);
        assert_eq!(stats.large_frame_bytes(), 7_000_000);
    }
}
