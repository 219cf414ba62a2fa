//! Attribution inside a room: after a client's update is accepted, the room stamps the
//! `metadata` of every block it touched with that connection's authenticated user and the
//! time ([`canvas_engine::attribution::stamp`]): `last_modified_by/at` always,
//! `created_by/at` when the block is new. The stamp is a server edit queued right behind the
//! client's update: stored in the same durable write and relayed to every connection,
//! the sender included. Clients cannot forge it: the inspector refuses client writes into
//! a block's `metadata`.
//!
//! Throttle: a block already stamped by the same user less than [`STAMP_INTERVAL`] ago is
//! not stamped again (so typing in a narrative does not double the traffic); a different
//! user, or a block without a creator (new), is always stamped at once. The cost is that
//! `last_modified_at` may lag behind a burst of edits by one user by up to that interval.

use super::Room;
use super::log::Accepted;
use canvas_engine::attribution;
use canvas_engine::yrs::Transact;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// How often one user's edits of one block re-stamp it at most.
pub const STAMP_INTERVAL: Duration = Duration::from_secs(5);

/// The time as stamped into block metadata: RFC 3339 UTC with milliseconds.
pub(super) fn now_stamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Room {
    /// Stamps `blocks` as changed by `user` now (those that still exist), except those the
    /// same user stamped less than [`STAMP_INTERVAL`] ago (unless they lack a creator).
    /// `created` (a subset of `blocks`) were created by the change: always stamped, their
    /// creator replaced by `user` (a client may re-create a block with the metadata it had,
    /// e.g. an undo of its removal; the creator is whoever made it exist now).
    pub(super) fn stamp_blocks(&mut self, user: Uuid, blocks: &[String], created: &[String]) {
        if blocks.is_empty() {
            return;
        }
        let now = Instant::now();
        let due: Vec<&String> = {
            let txn = self.canvas.doc().transact();
            blocks
                .iter()
                .filter(|id| {
                    created.contains(id)
                        || attribution::created_by(&txn, id).is_none()
                        || self.stamped.get(*id).is_none_or(|(by, at)| {
                            *by != user || now.duration_since(*at) >= STAMP_INTERVAL
                        })
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let by = user.to_string();
        let at = now_stamp();
        let (stamped, update) = self.canvas.edit(|txn| {
            due.iter()
                .filter(|id| attribution::stamp(txn, id, &by, &at, created.contains(id)))
                .map(|id| (*id).clone())
                .collect::<Vec<String>>()
        });
        for id in stamped {
            self.stamped.insert(id, (user, now));
        }
        if let Some(update) = update {
            self.accept(Accepted::server(update, None));
        }
    }
}
