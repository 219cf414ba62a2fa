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
pub use super::commands::{
    BlockResolver, CachedFuture, FetchFuture, Fetched, RunningFor, StartedTx,
};
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
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{Instrument, debug, warn};
use uuid::Uuid;

/// What a room holds about its bound blocks.
#[derive(Default)]
pub(super) struct BoundBlocks {
    /// Each bound block as last seen (binding and content), to notice what an edit changed.
    seen: HashMap<String, BoundBlock>,
    /// What this node kept of the latest result it delivered per block (not its rows).
    kept: HashMap<String, Kept>,
    /// The latest 102 message with data per block (this node's or another node's), for joins.
    frames: HashMap<String, Bytes>,
    /// The `running` 102 message of an execution under way per block, for joins.
    running: HashMap<String, (Uuid, Bytes)>,
    /// The request in flight per block (its ticket: a later one supersedes it).
    pending: HashMap<String, u64>,
    next_ticket: u64,
    /// When the results this node holds expire (its own, and other nodes' a little later).
    expires: HashMap<String, Instant>,
}

/// What a room keeps of a result once it has sent it: not the rows (the shared result cache
/// holds them under `key`, and the 102 message holds the first [`BLOCK_DATA_ROWS`]), but
/// what reshaping and narratives need. A room's memory does not grow with a result's size
/// beyond its one capped message.
#[derive(Clone)]
struct Kept {
    execution_id: Option<Uuid>,
    from_cache: bool,
    key: Option<String>,
    /// Why the block has no result (the binding or its execution failed).
    error: Option<DataError>,
    /// The numbers narratives read from the block (as its content shaped them), if any.
    numbers: Option<Result<Vec<f64>, shape::ShapeError>>,
}

impl BoundBlocks {
    /// The next expiry, if any.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.expires.values().min().copied()
    }

    fn forget(&mut self, id: &str) {
        self.kept.remove(id);
        self.frames.remove(id);
        self.running.remove(id);
        self.pending.remove(id);
        self.expires.remove(id);
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
        binding: binding_value(block),
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

/// The 102 body telling that an execution for `block` is under way (no data in it: clients
/// keep showing what they have, with a spinner).
pub fn running_body(block: &BoundBlock, execution: Uuid) -> BlockDataBody {
    BlockDataBody {
        block_id: block.id.clone(),
        status: "running".into(),
        execution_id: Some(execution.to_string()),
        columns: Vec::new(),
        rows: Vec::new(),
        total_rows: 0,
        computed_at: None,
        from_cache: false,
        series: None,
        error: None,
        binding: binding_value(block),
    }
}

fn binding_value(block: &BoundBlock) -> Option<Value> {
    block
        .binding
        .as_ref()
        .ok()
        .map(|b| serde_json::json!({"query_id": b.query_id, "parameters": b.parameters}))
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
                    self.bound.forget(&id);
                }
                continue;
            };
            match self.bound.seen.get(&id) {
                Some(before) if before.binding == block.binding => {
                    // Typing a title or switching bar to line is not a reshape: no cache
                    // read, no message to everyone, per keystroke.
                    let reshape = before.kind != block.kind
                        || !shape::same_shape(&block.kind, &before.content, &block.content);
                    if *before != block {
                        self.bound.seen.insert(id.clone(), block.clone());
                    }
                    if reshape {
                        changed = true;
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

    /// After a change whose blocks are not listed (a REST edit): every bound block and
    /// narrative is looked at as if an edit had touched it.
    /// Nobody connected: nothing is resolved now (a join resolves what it needs).
    pub(super) fn all_blocks_changed(&mut self, user: Option<Uuid>) {
        if self.conns.is_empty() {
            return;
        }
        let mut ids: Vec<String> = {
            let txn = self.canvas.doc().transact();
            bindings::bound_blocks(&txn)
                .into_iter()
                .map(|b| b.id)
                .chain(bindings::narratives(&txn).into_iter().map(|(id, _)| id))
                .collect()
        };
        ids.extend(self.bound.seen.keys().cloned());
        ids.sort_unstable();
        ids.dedup();
        self.blocks_changed(&ids, user);
    }

    /// A connection joined: it gets the latest data of every bound block (and that an
    /// execution is under way, if one is); blocks with none (the room just loaded), or whose
    /// result expired, are resolved.
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
            if let Some((_, frame)) = self.bound.running.get(&block.id) {
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

    /// Results have expired: resolved again while people are connected.
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
        // (from the document: a block another node's client bound is not in `seen` here)
        let blocks: Vec<BoundBlock> = {
            let txn = self.canvas.doc().transact();
            due.iter()
                .filter_map(|id| bindings::bound_block(&txn, id))
                .collect()
        };
        for block in blocks {
            self.bound.seen.insert(block.id.clone(), block.clone());
            self.request(&block, None);
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
    /// as [`RoomCmd::BlockData`], preceded by [`RoomCmd::BlockRunning`] if an execution
    /// starts. A binding that cannot be used is answered at once.
    fn request(&mut self, block: &BoundBlock, user: Option<Uuid>) {
        self.ask(block, user, None);
    }

    /// Like [`Self::request`]; with `again`, the result kept in the shared cache under its
    /// key is read back (the same execution, shaped anew), and only run if it is gone.
    fn ask(&mut self, block: &BoundBlock, user: Option<Uuid>, again: Option<Kept>) {
        let binding = match &block.binding {
            Ok(binding) => binding.clone(),
            Err(message) => {
                self.bound.pending.remove(&block.id);
                self.deliver(
                    block,
                    Fetched::failed(error("invalid_binding", message.clone())),
                );
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
                if let Some(Kept {
                    execution_id,
                    from_cache,
                    key: Some(key),
                    ..
                }) = again
                    && let Some(result) = resolver.cached(key.clone()).await
                {
                    let fetched = Fetched {
                        execution_id,
                        result: Ok(result),
                        from_cache,
                        key: Some(key),
                    };
                    let _ = own
                        .send(RoomCmd::BlockData(block_id, ticket, Box::new(fetched)))
                        .await;
                    return;
                }
                let (started, on_start) = oneshot::channel();
                let running = {
                    let own = own.clone();
                    let block_id = block_id.clone();
                    async move {
                        if let Ok(execution) = on_start.await {
                            let for_ = RunningFor::Request(ticket);
                            let _ = own
                                .send(RoomCmd::BlockRunning(block_id, for_, execution))
                                .await;
                        }
                    }
                };
                let (fetched, ()) =
                    tokio::join!(resolver.fetch(project, user, binding, started), running);
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
        let reshaped = fetched.execution_id.is_some()
            && self.bound.kept.get(&block_id).map(|k| k.execution_id) == Some(fetched.execution_id);
        if fetched.result.is_ok() && !reshaped {
            self.bound
                .expires
                .insert(block_id.clone(), Instant::now() + self.result_ttl());
        }
        self.deliver(&block, fetched);
        self.update_narratives();
    }

    /// An execution started for `block_id`: if it is for the block's current request (or
    /// binding, for a refresh by hand), every connection and node hears it is running.
    pub(super) fn block_running(&mut self, block_id: String, for_: RunningFor, execution: Uuid) {
        let block = {
            let txn = self.canvas.doc().transact();
            bindings::bound_block(&txn, &block_id)
        };
        let Some(block) = block else {
            return;
        };
        let current = match &for_ {
            RunningFor::Request(ticket) => self.bound.pending.get(&block_id) == Some(ticket),
            RunningFor::Refresh(binding) => block.binding.as_ref() == Ok(&**binding),
        };
        if !current {
            return;
        }
        let body = running_body(&block, execution);
        match rmp_serde::to_vec_named(&body) {
            Ok(payload) => self.publish(LiveKind::BlockData, &payload),
            Err(cause) => warn!(%cause, "cannot encode block status for other nodes"),
        }
        let frame = Self::encode_block_data(body);
        self.bound
            .running
            .insert(block_id, (execution, frame.clone()));
        self.broadcast(None, frame);
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
            if let Some(execution) = fetched.execution_id
                && self
                    .bound
                    .running
                    .get(&block_id)
                    .is_some_and(|(running, _)| *running == execution)
            {
                self.bound.running.remove(&block_id);
            }
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

    /// Sends `block`'s data to every connection and every node, and keeps what reshaping
    /// and narratives need (not the rows).
    fn deliver(&mut self, block: &BoundBlock, fetched: Fetched) {
        let body = block_body(block, &fetched);
        let numbers = fetched.result.as_ref().ok().map(|result| {
            shape::block_numbers(&block.kind, &block.content, &result.columns, &result.rows)
        });
        self.bound.kept.insert(
            block.id.clone(),
            Kept {
                execution_id: fetched.execution_id,
                from_cache: fetched.from_cache,
                key: fetched.key,
                error: fetched.result.err(),
                numbers,
            },
        );
        match rmp_serde::to_vec_named(&body) {
            Ok(payload) => self.publish(LiveKind::BlockData, &payload),
            Err(cause) => warn!(%cause, "cannot encode block data for other nodes"),
        }
        let frame = Self::encode_block_data(body);
        self.bound.frames.insert(block.id.clone(), frame.clone());
        self.bound.running.remove(&block.id);
        self.broadcast(None, frame);
    }

    /// The block's content changed but not its binding: the result is shaped again, read
    /// back from the shared cache (the same execution); an error is sent again as it is; a
    /// block without a result here (another node resolved it) is resolved.
    fn reshape(&mut self, block: &BoundBlock) {
        match self.bound.kept.get(&block.id).cloned() {
            Some(Kept {
                error: Some(error),
                execution_id,
                from_cache,
                key,
                ..
            }) => {
                let fetched = Fetched {
                    execution_id,
                    result: Err(error),
                    from_cache,
                    key,
                };
                self.deliver(block, fetched);
            }
            Some(kept) if kept.key.is_some() => self.ask(block, None, Some(kept)),
            _ => self.request(block, None),
        }
    }

    /// Another node's 102 for a block: relayed to this node's connections and kept. While
    /// that node keeps the result fresh, its messages push this node's expiry back; if they
    /// stop (its room closed), this node resolves the block itself once the result is a
    /// half-life past due.
    pub(super) fn remote_block_data(&mut self, payload: &[u8]) {
        let body: BlockDataBody = match rmp_serde::from_slice(payload) {
            Ok(body) => body,
            Err(cause) => {
                warn!(%cause, "bad block data from another node");
                return;
            }
        };
        let id = body.block_id.clone();
        if body.status == "running" {
            let execution = body
                .execution_id
                .as_deref()
                .and_then(|e| e.parse().ok())
                .unwrap_or_default();
            let frame = Self::encode_block_data(body);
            self.bound.running.insert(id, (execution, frame.clone()));
            self.broadcast(None, frame);
            return;
        }
        let completed = body.status == "completed";
        let frame = Self::encode_block_data(body);
        self.bound.frames.insert(id.clone(), frame.clone());
        self.bound.running.remove(&id);
        if completed {
            let ttl = self.result_ttl();
            self.bound
                .expires
                .insert(id.clone(), Instant::now() + ttl + ttl / 2);
        }
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
                let Some(numbers) = self
                    .bound
                    .kept
                    .get(&entry.source)
                    .and_then(|kept| kept.numbers.as_ref())
                else {
                    continue;
                };
                let value = numbers
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|numbers| shape::calculate(&entry.calculation, numbers));
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
            self.accept(Accepted::server(update, None));
        }
    }
}
