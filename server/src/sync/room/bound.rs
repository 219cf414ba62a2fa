//! Blocks bound to live data, inside a room.
//!
//! A chart or table whose `content.data_source` is `{type: "query", query_id, parameters}`
//! is resolved by the room that accepted the edit creating or changing the binding: it asks
//! the [`BlockResolver`] (the data side of the server: the shared result cache, or an
//! execution) off its task, shapes the result ([`crate::data::shape`]: a chart's series) and
//! sends it to every connection as extension message 102 ([`BlockDataBody`]), viewers
//! included. The result is derived data and stays out of the document; the room keeps the
//! latest message per block to give a connection that joins. A change of the block's other
//! content (`config`, `columns`, ...) reshapes the held result without running anything.
//!
//! Results are recomputed when the binding (query or parameters) changes, when this node's
//! result expires (`--result-ttl-secs`, while people are connected), and when a source of the
//! project is uploaded or synced ([`RoomCmd::DataChanged`]).
//!
//! Several nodes: the node that resolves publishes the message to the others
//! ([`LiveKind::BlockData`]), which relay it to their connections and keep it for joins, so
//! one execution serves every node. A node that has no message for a block when someone
//! joins resolves it itself (usually from the shared cache).
//!
//! Narratives: each `data_bindings` entry whose `source` is a block with data gets its
//! `value` computed ([`crate::data::shape::calculate`]) and written into the document as a
//! server edit, stored and relayed like the attribution stamps (by the node that resolved).

use super::Room;
use super::commands::RoomCmd;
pub use super::commands::{BlockResolver, FetchFuture, Fetched};
use super::log::Accepted;
use crate::data::shape;
use crate::sync::shared::LiveKind;
use bytes::Bytes;
use canvas_engine::bindings::{self, BoundBlock};
use canvas_engine::protocol::{
    self, BLOCK_DATA_ROWS, BlockDataBody, DataColumn, DataError, Extension,
};
use canvas_engine::yrs::Transact;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{Instrument, debug, warn};
use uuid::Uuid;

/// What a room holds about its bound blocks.
#[derive(Default)]
pub(super) struct BoundBlocks {
    /// Each bound block as last seen (binding and content), to notice what an edit changed.
    seen: HashMap<String, BoundBlock>,
    /// The latest result this node fetched per block (for reshaping and narratives).
    results: HashMap<String, Fetched>,
    /// The latest 102 message per block (this node's or another node's), for joins.
    frames: HashMap<String, Bytes>,
    /// The request in flight per block (its ticket: a later one supersedes it).
    pending: HashMap<String, u64>,
    next_ticket: u64,
    /// When the results this node fetched expire.
    expires: HashMap<String, Instant>,
}

impl BoundBlocks {
    /// The next expiry, if any.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.expires.values().min().copied()
    }
}

fn error(code: &str, message: impl Into<String>) -> DataError {
    DataError {
        code: code.to_owned(),
        message: message.into(),
    }
}

/// The 102 body for `block` from what was fetched.
pub fn block_body(block: &BoundBlock, fetched: &Fetched) -> BlockDataBody {
    let mut body = BlockDataBody {
        block_id: block.id.clone(),
        status: "completed".into(),
        execution_id: fetched.execution_id.map(|id| id.to_string()),
        columns: Vec::new(),
        rows: Vec::new(),
        total_rows: 0,
        computed_at: None,
        from_cache: fetched.from_cache,
        series: None,
        error: None,
        binding: block
            .binding
            .as_ref()
            .ok()
            .map(|b| serde_json::json!({"query_id": b.query_id, "parameters": b.parameters})),
    };
    let result = match &fetched.result {
        Ok(result) => result,
        Err(e) => {
            body.status = if e.code == "execution_failed" {
                "failed".into()
            } else {
                "error".into()
            };
            body.error = Some(e.clone());
            return body;
        }
    };
    body.columns = result
        .columns
        .iter()
        .map(|c| DataColumn {
            name: c.name.clone(),
            data_type: c.data_type.clone(),
        })
        .collect();
    body.total_rows = result.rows.len() as u64;
    body.rows = result.rows.iter().take(BLOCK_DATA_ROWS).cloned().collect();
    body.computed_at = Some(
        result
            .computed_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    let shaped = match block.kind.as_str() {
        "chart" => shape::ChartConfig::from_content(&block.content)
            .and_then(|config| shape::chart_series(&result.columns, &result.rows, &config))
            .map(|series| Some(serde_json::to_value(series).unwrap_or(Value::Null))),
        _ => shape::TableSettings::from_content(&block.content)
            .and_then(|settings| {
                shape::table_page(
                    &result.columns,
                    &result.rows,
                    &settings,
                    &shape::TableRequest::default(),
                )
            })
            .map(|_| None),
    };
    match shaped {
        Ok(series) => body.series = series,
        Err(e) => {
            // the block cannot show this result: no data, the message names the columns
            body.status = "error".into();
            body.error = Some(error(e.code, e.message));
            body.columns.clear();
            body.rows.clear();
            body.total_rows = 0;
        }
    }
    body
}

impl Room {
    fn encode_block_data(body: BlockDataBody) -> Bytes {
        protocol::encode_extension(&Extension::BlockData(Box::new(body))).into()
    }

    /// After accepted changes to `blocks` (this node's clients'): a new or changed binding is
    /// resolved, a changed content reshaped, a block no longer bound forgotten, and the
    /// narratives' values brought up to date.
    pub(super) fn blocks_changed(&mut self, blocks: &[String], user: Option<Uuid>) {
        let (now, narrative_touched) = {
            let txn = self.canvas.doc().transact();
            let now: Vec<(String, Option<BoundBlock>)> = blocks
                .iter()
                .map(|id| (id.clone(), bindings::bound_block(&txn, id)))
                .collect();
            (
                now,
                blocks.iter().any(|id| bindings::has_bindings(&txn, id)),
            )
        };
        let mut changed = narrative_touched;
        for (id, block) in now {
            let Some(block) = block else {
                if self.bound.seen.remove(&id).is_some() {
                    changed = true;
                    self.bound.results.remove(&id);
                    self.bound.frames.remove(&id);
                    self.bound.pending.remove(&id);
                    self.bound.expires.remove(&id);
                }
                continue;
            };
            match self.bound.seen.get(&id) {
                Some(before) if before.binding == block.binding => {
                    if before.content != block.content {
                        changed = true;
                        self.bound.seen.insert(id.clone(), block.clone());
                        self.reshape(&block);
                    }
                }
                _ => {
                    self.bound.seen.insert(id.clone(), block.clone());
                    self.request(&block, user);
                }
            }
        }
        // typing in a narrative without bindings reads nothing more
        if changed {
            self.update_narratives();
        }
    }

    /// A connection joined: it gets the latest data of every bound block; blocks with none
    /// (the room just loaded), or whose result expired, are resolved.
    pub(super) fn send_block_data(&mut self, conn: super::ConnId) {
        let blocks = {
            let txn = self.canvas.doc().transact();
            bindings::bound_blocks(&txn)
        };
        let now = Instant::now();
        for block in blocks {
            if let Some(frame) = self.bound.frames.get(&block.id) {
                self.send(conn, frame.clone());
            }
            let expired = self
                .bound
                .expires
                .get(&block.id)
                .is_some_and(|at| *at <= now);
            let unknown = !self.bound.frames.contains_key(&block.id);
            let waiting = self.bound.pending.contains_key(&block.id);
            self.bound.seen.insert(block.id.clone(), block.clone());
            if (unknown || expired) && !waiting {
                self.request(&block, None);
            }
        }
    }

    /// Results this node fetched have expired: resolved again while people are connected.
    pub(super) fn block_data_expired(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .bound
            .expires
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &due {
            self.bound.expires.remove(id);
        }
        if self.conns.is_empty() {
            return;
        }
        for id in due {
            if let Some(block) = self.bound.seen.get(&id).cloned() {
                self.request(&block, None);
            }
        }
    }

    /// A source of the project changed (uploaded, synced): every bound block is resolved
    /// again (the cache key follows the sources' data versions).
    pub(super) fn data_changed(&mut self) {
        let blocks = {
            let txn = self.canvas.doc().transact();
            bindings::bound_blocks(&txn)
        };
        for block in blocks {
            self.bound.seen.insert(block.id.clone(), block.clone());
            self.request(&block, None);
        }
    }

    /// Asks the data side for `block`'s result, off the room's task; the answer comes back
    /// as [`RoomCmd::BlockData`]. A binding that cannot be used is answered at once.
    fn request(&mut self, block: &BoundBlock, user: Option<Uuid>) {
        let binding = match &block.binding {
            Ok(binding) => binding.clone(),
            Err(message) => {
                let fetched = Fetched {
                    execution_id: None,
                    result: Err(error("invalid_binding", message.clone())),
                    from_cache: false,
                };
                self.bound.pending.remove(&block.id);
                self.deliver(block, fetched);
                return;
            }
        };
        let Some(own) = self.own.as_ref().and_then(|own| own.upgrade()) else {
            return;
        };
        self.bound.next_ticket += 1;
        let ticket = self.bound.next_ticket;
        self.bound.pending.insert(block.id.clone(), ticket);
        let resolver = self.deps.resolver.clone();
        let project = self.record.project_id;
        let block_id = block.id.clone();
        self.deps.tasks.spawn(
            async move {
                let fetched = resolver.fetch(project, user, binding).await;
                let _ = own
                    .send(RoomCmd::BlockData(block_id, ticket, Box::new(fetched)))
                    .await;
            }
            .in_current_span(),
        );
    }

    /// The data side answered request `ticket` for `block_id`.
    pub(super) fn block_data(&mut self, block_id: String, ticket: u64, fetched: Fetched) {
        if self.bound.pending.get(&block_id) != Some(&ticket) {
            debug!(block = %block_id, "superseded block data dropped");
            return;
        }
        self.bound.pending.remove(&block_id);
        let block = {
            let txn = self.canvas.doc().transact();
            bindings::bound_block(&txn, &block_id)
        };
        let Some(block) = block else {
            return; // no longer bound
        };
        if fetched.result.is_ok() {
            self.bound
                .expires
                .insert(block_id.clone(), Instant::now() + self.result_ttl());
        }
        self.deliver(&block, fetched);
        self.update_narratives();
    }

    /// A block refreshed by hand: `fetched` (run fresh for `binding`) replaces what is held
    /// and supersedes a request in flight, unless the binding has changed since (then the
    /// change's own request answers).
    pub(super) fn block_refreshed(
        &mut self,
        block_id: String,
        binding: bindings::QueryBinding,
        fetched: Fetched,
    ) {
        let block = {
            let txn = self.canvas.doc().transact();
            bindings::bound_block(&txn, &block_id)
        };
        let Some(block) = block else {
            return; // no longer bound
        };
        if block.binding.as_ref() != Ok(&binding) {
            debug!(block = %block_id, "refreshed data of an older binding dropped");
            return;
        }
        self.bound.pending.remove(&block_id);
        self.bound.seen.insert(block_id.clone(), block.clone());
        if fetched.result.is_ok() {
            self.bound
                .expires
                .insert(block_id.clone(), Instant::now() + self.result_ttl());
        }
        self.deliver(&block, fetched);
        self.update_narratives();
    }

    fn result_ttl(&self) -> Duration {
        self.deps.config.result_ttl.max(Duration::from_secs(1))
    }

    /// Sends `block`'s data to every connection and every node, and keeps it.
    fn deliver(&mut self, block: &BoundBlock, fetched: Fetched) {
        let body = block_body(block, &fetched);
        self.bound.results.insert(block.id.clone(), fetched);
        match rmp_serde::to_vec_named(&body) {
            Ok(payload) => self.publish(LiveKind::BlockData, &payload),
            Err(cause) => warn!(%cause, "cannot encode block data for other nodes"),
        }
        let frame = Self::encode_block_data(body);
        self.bound.frames.insert(block.id.clone(), frame.clone());
        self.broadcast(None, frame);
    }

    /// The block's content changed but not its binding: the held result is shaped again.
    fn reshape(&mut self, block: &BoundBlock) {
        if let Some(fetched) = self.bound.results.get(&block.id).cloned() {
            self.deliver(block, fetched);
        }
    }

    /// Another node's 102 for a block: relayed to this node's connections and kept.
    pub(super) fn remote_block_data(&mut self, payload: &[u8]) {
        let body: BlockDataBody = match rmp_serde::from_slice(payload) {
            Ok(body) => body,
            Err(cause) => {
                warn!(%cause, "bad block data from another node");
                return;
            }
        };
        let id = body.block_id.clone();
        let frame = Self::encode_block_data(body);
        self.bound.frames.insert(id.clone(), frame.clone());
        // the other node keeps it fresh now
        self.bound.expires.remove(&id);
        self.broadcast(None, frame);
    }

    /// Computes every narrative binding whose source block has a result here and writes the
    /// values that changed, as one server edit.
    fn update_narratives(&mut self) {
        let narratives = {
            let txn = self.canvas.doc().transact();
            bindings::narratives(&txn)
        };
        let mut writes: Vec<(String, u32, String, Value)> = Vec::new();
        for (narrative, entries) in narratives {
            for entry in entries {
                let (Some(source), Some(fetched)) = (
                    self.bound.seen.get(&entry.source),
                    self.bound.results.get(&entry.source),
                ) else {
                    continue;
                };
                let Ok(result) = &fetched.result else {
                    continue;
                };
                let value = shape::block_numbers(
                    &source.kind,
                    &source.content,
                    &result.columns,
                    &result.rows,
                )
                .and_then(|numbers| shape::calculate(&entry.calculation, &numbers));
                match value {
                    Ok(value) if entry.value.as_ref() != Some(&value) => {
                        writes.push((narrative.clone(), entry.index, entry.key, value));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        debug!(block = %narrative, key = %entry.key, %e, "metric not computed")
                    }
                }
            }
        }
        if writes.is_empty() {
            return;
        }
        let (written, update) = self.canvas.edit(|txn| {
            writes
                .iter()
                .filter(|(block, index, key, value)| {
                    bindings::set_binding_value(txn, block, *index, key, value)
                })
                .count()
        });
        if let Some(update) = update {
            debug!(written, "narrative values written");
            self.log.push(Accepted::server(update, None));
        }
    }
}
