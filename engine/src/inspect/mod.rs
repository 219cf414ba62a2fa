//! The gatekeeper: decides, before an incoming Yjs update (v1 encoding) is applied to a room's
//! document, whether the sender's [`Role`] allows it and whether it keeps the schema. A refused
//! update is not applied at all.
//!
//! # Why an own parser and index
//!
//! To judge an update we must know where each new item lands (`blocks.<id>.position.x`,
//! `sharing.permissions`, ...). An item names its parent only when it has no neighbours;
//! otherwise it inherits the parent of its origin (left neighbour) or right origin, which may
//! be anywhere in the document or earlier in the same update. yrs 0.28 keeps the answer to
//! "which type does item `x` live in" private (`Update::blocks`, `Item::parent`, the block
//! store lookups are `pub(crate)`), and the public detours (`StickyIndex`) walk siblings in
//! O(n). So the engine keeps its own answer:
//!
//! - `parse` reads the update with yrs's public v1 decoder traits, mirroring
//!   `Update::decode`, and is stricter than yrs wherever yrs would panic or blow the stack.
//! - [`DocIndex`] maps every integrated clock range of every client to its location
//!   (container + map key), knows which items are shared types (containers) and which ranges
//!   are deleted. Ranges are merged: a run of keystrokes of one client in one text is one
//!   entry. Lookups are `O(log n)`.
//! - `resolve` replays yrs's integration order over the index (without touching the
//!   document) and locates every new item from its explicit parent, its origin or its right
//!   origin. Anything yrs would have to keep pending (a gap in a client's clocks, an unknown
//!   reference) refuses the update with `missing_dependency`: the server never holds pending
//!   updates, the client must resync.
//! - `rules` applies the roles and the schema to the located changes (new items and
//!   deletions of items not deleted yet), reading the document only for the position of a
//!   block whose position changes and for `layout.columns`.
//!
//! - `fast` handles the most common update (one client, items that all land in one known
//!   location through their origins, and deletions of known items of that same text:
//!   typing, backspace, renaming) in one pass without
//!   building any of the above; anything else or doubtful goes to the general path, and a
//!   randomized test checks that both decide the same.
//!
//! After an accepted update is applied, the index takes the update's new ranges from the
//! [`Inspection`] and the deletions from the yrs transaction (which include the deletions yrs
//! makes on its own, e.g. the losing value of a concurrent map write).
//!
//! Known limitations: the position check merges the update's values over the document's
//! current ones and assumes the update's value of a key wins. If two clients write the same
//! position key concurrently, the loser's other keys are combined with the winner's value
//! without a second check. Also `layout.columns` is read from the document before the update.

mod fast;
mod index;
mod parse;
mod resolve;
mod rules;

pub use index::DocIndex;

use crate::{Role, schema};
use fast::{Fast, SimpleRun};
use parse::{BlockKind, Content, ParsedUpdate, parse_update};
use resolve::{Place, ResolveError, Resolved, has_changes, resolve};
use std::fmt;
use yrs::{ClientID, Doc, ID, IdSet, ReadTxn, StateVector, Transact};

/// Why an update was refused, as a stable machine-readable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalCode {
    /// The sender may only read the canvas.
    ReadOnly,
    /// The sender's role does not allow this change (e.g. an editor changing `sharing`).
    Forbidden,
    /// The change would break the canvas schema.
    InvalidSchema,
    /// The update builds on something the document does not have; the client must resync.
    MissingDependency,
    /// The bytes are not a valid Yjs v1 update.
    MalformedUpdate,
}

impl RefusalCode {
    /// The code as sent on the wire: `read_only`, `forbidden`, `invalid_schema`,
    /// `missing_dependency`, `malformed_update`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RefusalCode::ReadOnly => "read_only",
            RefusalCode::Forbidden => "forbidden",
            RefusalCode::InvalidSchema => "invalid_schema",
            RefusalCode::MissingDependency => "missing_dependency",
            RefusalCode::MalformedUpdate => "malformed_update",
        }
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused update: a code and a message for the developer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    /// Machine-readable reason.
    pub code: RefusalCode,
    /// Human-readable explanation, e.g. "editors cannot change sharing (sharing.permissions)".
    pub message: String,
}

impl Refusal {
    fn new(code: RefusalCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

/// Errors of building or feeding a [`DocIndex`] outside of an inspection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// The bytes are not a valid Yjs v1 update.
    #[error("malformed update: {0}")]
    Malformed(String),
    /// The update refers to items the index does not know (it would stay pending in yrs).
    #[error("unresolvable update: {0}")]
    Unresolvable(String),
    /// The inspection was made against another state of the index.
    #[error("the inspection is stale: the index changed since it was made")]
    Stale,
}

/// What the index must learn once an accepted update is applied.
#[derive(Debug, Clone, Default)]
enum IndexDelta {
    /// Nothing (a no-op update).
    #[default]
    Nothing,
    /// One run of one client at one known location (the fast path).
    Simple(SimpleRun),
    /// The parsed update and where its items land.
    Full {
        parsed: ParsedUpdate,
        resolved: Resolved,
    },
}

/// The verdict on an accepted update, and what the index needs after applying it.
#[derive(Debug, Clone)]
pub struct Inspection {
    noop: bool,
    touched_blocks: Vec<String>,
    new_blocks: Vec<String>,
    delta: IndexDelta,
    generation: u64,
}

impl Inspection {
    /// Whether the update changes nothing (everything in it is already in the document):
    /// nothing to apply, store or relay.
    pub fn is_noop(&self) -> bool {
        self.noop
    }

    /// Ids of the blocks the update creates, changes or deletes, sorted.
    pub fn touched_blocks(&self) -> &[String] {
        &self.touched_blocks
    }

    /// Takes the touched block ids.
    pub fn into_touched_blocks(self) -> Vec<String> {
        self.touched_blocks
    }

    /// Takes the touched block ids out (leaving the list empty).
    pub fn take_touched_blocks(&mut self) -> Vec<String> {
        std::mem::take(&mut self.touched_blocks)
    }

    /// Takes out the ids of the blocks whose map the update creates (new blocks, and blocks
    /// it replaces whole), leaving the list empty.
    pub fn take_new_blocks(&mut self) -> Vec<String> {
        std::mem::take(&mut self.new_blocks)
    }

    /// Whether this inspection was made against the current state of `index`.
    pub fn is_current_for(&self, index: &DocIndex) -> bool {
        self.generation == index.generation
    }
}

fn read_only() -> Refusal {
    Refusal::new(RefusalCode::ReadOnly, "viewers cannot change the canvas")
}

fn malformed(e: parse::ParseError) -> Refusal {
    Refusal::new(
        RefusalCode::MalformedUpdate,
        format!("the update does not decode as a Yjs v1 update: {}", e.0),
    )
}

fn unresolved(e: ResolveError) -> Refusal {
    match e {
        ResolveError::Missing(m) => Refusal::new(
            RefusalCode::MissingDependency,
            format!("{m}; resync with a fresh document"),
        ),
        ResolveError::InvalidParent(m) => Refusal::new(RefusalCode::MalformedUpdate, m),
    }
}

/// Inspects an update against a document and its index. Pure: changes nothing.
///
/// `doc` is read only when a block position changes (the block's position map and
/// `layout.columns`).
pub fn inspect(
    doc: &Doc,
    index: &DocIndex,
    role: Role,
    update: &[u8],
) -> Result<Inspection, Refusal> {
    inspect_with(doc, index, role, update, true)
}

/// [`inspect`], optionally without the fast path (tests compare both).
pub(crate) fn inspect_with(
    doc: &Doc,
    index: &DocIndex,
    role: Role,
    update: &[u8],
    fast_path: bool,
) -> Result<Inspection, Refusal> {
    if !fast_path {
        return inspect_general(doc, index, role, update);
    }
    if let Fast::Accepted(run, path) = fast::try_simple(index, role, update) {
        if !role.can_edit() {
            return Err(read_only());
        }
        let touched_blocks = match (path.root.as_deref(), path.key(0)) {
            (Some(schema::BLOCKS), Some(bid)) => vec![bid.to_owned()],
            _ => Vec::new(),
        };
        return Ok(Inspection {
            noop: false,
            touched_blocks,
            new_blocks: Vec::new(),
            delta: IndexDelta::Simple(run),
            generation: index.generation,
        });
    }
    inspect_general(doc, index, role, update)
}

/// The fast path alone, for batches: `Some((inspection, map_entry))` for an update it
/// accepts, `map_entry` telling whether the update writes a map entry (yrs then deletes the
/// entry's previous value on its own, which the index learns only from the transaction).
/// `None`: judge the update with [`inspect`] against the current document.
///
/// It reads only the index, never the document, so it stays exact while the index is ahead
/// of the document (updates of a batch recorded but not applied yet).
pub(crate) fn inspect_fast_only(
    index: &DocIndex,
    role: Role,
    update: &[u8],
) -> Option<(Inspection, bool)> {
    if !role.can_edit() {
        return None;
    }
    let Fast::Accepted(run, path) = fast::try_simple(index, role, update) else {
        return None;
    };
    if path.root.as_deref() == Some(schema::SHARING) {
        // An admin's sharing change may change the roles of the updates after it: the
        // batch must stop right after it (`CanvasDoc::apply_batch`), so it takes the general
        // path, whose transaction the sharing observer sees at once.
        return None;
    }
    let map_entry = index.loc(run.loc).is_none_or(|l| l.key.is_some());
    let touched_blocks = match (path.root.as_deref(), path.key(0)) {
        (Some(schema::BLOCKS), Some(bid)) => vec![bid.to_owned()],
        _ => Vec::new(),
    };
    Some((
        Inspection {
            noop: false,
            touched_blocks,
            new_blocks: Vec::new(),
            delta: IndexDelta::Simple(run),
            generation: index.generation,
        },
        map_entry,
    ))
}

fn inspect_general(
    doc: &Doc,
    index: &DocIndex,
    role: Role,
    update: &[u8],
) -> Result<Inspection, Refusal> {
    let parsed = parse_update(update).map_err(malformed)?;
    if !has_changes(index, &parsed) {
        return Ok(Inspection {
            noop: true,
            touched_blocks: Vec::new(),
            new_blocks: Vec::new(),
            delta: IndexDelta::default(),
            generation: index.generation,
        });
    }
    if !role.can_edit() {
        return Err(read_only());
    }
    let resolved = resolve(index, &parsed).map_err(unresolved)?;
    let judged = rules::check(doc, index, role, &parsed, update, &resolved)?;
    Ok(Inspection {
        noop: false,
        touched_blocks: judged.touched,
        new_blocks: judged.created,
        delta: IndexDelta::Full { parsed, resolved },
        generation: index.generation,
    })
}

/// Locates an update's changes against an index without judging them (trusted updates and
/// the server's own edits). The result feeds [`DocIndex::apply_inspection`].
pub(crate) fn locate(index: &DocIndex, update: &[u8]) -> Result<Inspection, InspectError> {
    let parsed = parse_update(update).map_err(|e| InspectError::Malformed(e.0))?;
    let resolved = resolve(index, &parsed).map_err(|e| match e {
        ResolveError::Missing(m) | ResolveError::InvalidParent(m) => InspectError::Unresolvable(m),
    })?;
    Ok(Inspection {
        noop: false,
        touched_blocks: Vec::new(),
        new_blocks: Vec::new(),
        delta: IndexDelta::Full { parsed, resolved },
        generation: index.generation,
    })
}

/// Whether an update parses and holds obsolete JSON content, which the rules refuse (yrs
/// cannot read back what it stores of it). For the fuzz targets.
pub(crate) fn holds_obsolete_json(update: &[u8]) -> bool {
    parse_update(update).is_ok_and(|parsed| {
        parsed.clients.iter().any(|c| {
            c.blocks
                .iter()
                .any(|b| matches!(&b.kind, BlockKind::Item(data) if data.content == Content::Json))
        })
    })
}

impl DocIndex {
    /// Builds the index of a document from its full state.
    pub fn build(doc: &Doc) -> Result<DocIndex, InspectError> {
        let state = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let mut index = DocIndex::default();
        index.ingest(&state)?;
        Ok(index)
    }

    /// Records an update that has been (or is about to be) applied to the document, without
    /// any rule check. Deletions that yrs makes on its own while integrating (the losing value
    /// of concurrent map writes) are not in the update: prefer
    /// [`crate::canvas::CanvasDoc`], which also takes them from the transaction.
    pub fn ingest(&mut self, update: &[u8]) -> Result<(), InspectError> {
        let located = locate(self, update)?;
        self.apply_delta(&located.delta);
        Ok(())
    }

    fn apply_delta(&mut self, delta: &IndexDelta) {
        if let IndexDelta::Simple(run) = delta {
            self.insert_range(run.client, run.start, run.end, run.loc);
            for (client, start, end) in &run.deletes {
                self.insert_deleted(*client, *start, *end);
            }
        }
        if let IndexDelta::Full {
            parsed: update,
            resolved,
        } = delta
        {
            for item in &resolved.items {
                let Some(section) = update.clients.get(item.section) else {
                    continue;
                };
                let Some(block) = section.blocks.get(item.block) else {
                    continue;
                };
                let client = section.client;
                let loc = match &item.place {
                    Place::Gc => index::GC_LOC,
                    Place::Known(l) => *l,
                    Place::New(loc) => self.intern(loc),
                };
                self.insert_range(client, item.start, item.end, loc);
                let placed = loc != index::GC_LOC;
                match &block.kind {
                    BlockKind::Item(data) => {
                        if placed && matches!(data.content, Content::Type(_)) {
                            self.insert_type(ID::new(client, block.clock));
                        }
                        if !placed || matches!(data.content, Content::Deleted) {
                            self.insert_deleted(client, item.start, item.end);
                        }
                    }
                    _ => self.insert_deleted(client, item.start, item.end),
                }
            }
            for del in &update.deletes {
                self.insert_deleted(del.client, del.start, del.end);
            }
        }
        self.generation = self.generation.wrapping_add(1);
    }

    /// Records what an applied, inspected update changed. Pass the delete set of the yrs
    /// transaction that applied it (`TransactionMut::delete_set`), which also holds the
    /// deletions yrs made on its own; [`crate::canvas::CanvasDoc`] does all this for you.
    ///
    /// Fails (changing nothing) if the inspection was made against another state of the index.
    pub fn apply_inspection(
        &mut self,
        inspection: &Inspection,
        txn_deletes: Option<&IdSet>,
    ) -> Result<(), InspectError> {
        if !inspection.is_current_for(self) {
            return Err(InspectError::Stale);
        }
        self.apply_delta(&inspection.delta);
        if let Some(ds) = txn_deletes {
            self.insert_id_set(ds);
        }
        Ok(())
    }

    /// Marks every range of an [`IdSet`] deleted.
    pub(crate) fn insert_id_set(&mut self, ds: &IdSet) {
        for (client, ranges) in ds.iter() {
            for r in ranges.iter() {
                self.insert_deleted(*client, r.start, r.end);
            }
        }
    }

    /// The location of the item `id` as `root.key1.key2...` (tests and debugging).
    pub fn describe_location(&self, id: ID) -> Option<String> {
        let l = self.lookup(id)?;
        self.loc_path(l).map(|p| p.display(8))
    }

    /// Whether the index agrees with the document's state vector (a cheap consistency check).
    pub fn matches_state_vector(&self, doc: &Doc) -> bool {
        let sv = doc.transact().state_vector();
        let mine: Vec<(ClientID, u32)> = self.clocks().filter(|(_, c)| *c > 0).collect();
        mine.len() == sv.len() && mine.iter().all(|(c, clock)| sv.get(c) == *clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: a typing update whose delete set names one client twice, with no
    /// ranges, was accepted by the fast path and refused as malformed by the general one.
    #[test]
    fn a_client_named_twice_in_the_delete_set_is_malformed_on_both_paths() {
        use crate::fuzzing::{seed_canvas, seeds, split_updates};
        let canvas = seed_canvas();
        let seeds = seeds();
        let (.., typing) = seeds
            .iter()
            .find(|(t, name, _)| *t == "inspect" && name == "typing")
            .expect("a typing seed");
        let [(role, update)] = split_updates(typing)[..] else {
            panic!("one update");
        };
        let fast = inspect_with(canvas.doc(), canvas.index(), role, update, true);
        assert!(fast.is_ok_and(|i| !i.is_noop()), "typing is accepted");
        // the delete set: no clients -> client 0 with no ranges, twice
        assert_eq!(update.last(), Some(&0));
        let mut twice = update[..update.len() - 1].to_vec();
        twice.extend([2, 0, 0, 0, 0]);
        for fast_path in [true, false] {
            let r = inspect_with(canvas.doc(), canvas.index(), role, &twice, fast_path);
            assert_eq!(
                r.map(|i| i.is_noop()).map_err(|e| e.code),
                Err(RefusalCode::MalformedUpdate),
                "fast path: {fast_path}"
            );
        }
    }

    #[test]
    fn codes_have_wire_names() {
        assert_eq!(RefusalCode::ReadOnly.as_str(), "read_only");
        assert_eq!(RefusalCode::MalformedUpdate.to_string(), "malformed_update");
        let r = Refusal::new(RefusalCode::Forbidden, "editors cannot change sharing");
        assert_eq!(r.to_string(), "forbidden: editors cannot change sharing");
    }
}

#[cfg(test)]
mod equivalence {
    //! The fast path must decide exactly like the general path, and the incrementally kept
    //! index must locate items like one rebuilt from the document.
    use super::*;
    use crate::canvas::CanvasDoc;
    use rand::{Rng, SeedableRng};
    use yrs::updates::decoder::Decode;
    use yrs::{In, Map, MapPrelim, Out, Text, TextPrelim, Transact, Update, WriteTxn};

    fn position(x: i64, w: i64) -> MapPrelim {
        MapPrelim::from([
            ("x", In::Any(x.into())),
            ("y", In::Any(0.into())),
            ("w", In::Any(w.into())),
            ("h", In::Any(2.into())),
        ])
    }

    fn text_of(txn: &yrs::TransactionMut, bid: &str) -> Option<yrs::TextRef> {
        let blocks = txn.get_map(schema::BLOCKS)?;
        let Some(Out::YMap(b)) = blocks.get(txn, bid) else {
            return None;
        };
        let Some(Out::YMap(c)) = b.get(txn, "content") else {
            return None;
        };
        match c.get(txn, "text") {
            Some(Out::YText(t)) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn backspace_and_replacing_a_selection_take_the_fast_path() {
        let mut server = CanvasDoc::new();
        let client = crate::new_doc_with_client_id(5);
        let mut send = |f: &dyn Fn(&mut yrs::TransactionMut)| {
            let mut txn = client.transact_mut();
            f(&mut txn);
            let update = txn.encode_update_v1();
            drop(txn);
            let fast = inspect_with(server.doc(), server.index(), Role::Editor, &update, true)
                .expect("accepted");
            let general = inspect_with(server.doc(), server.index(), Role::Editor, &update, false)
                .expect("accepted");
            assert_eq!(fast.touched_blocks(), general.touched_blocks());
            let simple = matches!(fast.delta, IndexDelta::Simple(_));
            server.apply_inspected(&update, fast).expect("applies");
            simple
        };
        let created = send(&|txn| {
            let blocks = txn.get_or_insert_map(schema::BLOCKS);
            let content = MapPrelim::from([("text", In::from(TextPrelim::new("hello")))]);
            blocks.insert(
                txn,
                "b",
                MapPrelim::from([
                    ("position", In::Map(position(0, 4))),
                    ("content", In::Map(content)),
                ]),
            );
        });
        assert!(!created, "a new block takes the general path");
        assert!(send(&|txn| {
            let t = text_of(txn, "b").expect("text");
            t.insert(txn, 5, "!");
        }));
        assert!(send(&|txn| text_of(txn, "b")
            .expect("text")
            .remove_range(txn, 5, 1)));
        assert!(send(&|txn| {
            let t = text_of(txn, "b").expect("text");
            t.remove_range(txn, 1, 3);
            t.insert(txn, 1, "ipp");
        }));
        // the index knows the deletions like one rebuilt from the document
        let rebuilt = DocIndex::build(server.doc()).expect("builds");
        let me = yrs::ClientID::new(5);
        let mut deleted = 0;
        for clock in 0..server.state_vector().get(&me) {
            let id = ID::new(me, clock);
            assert_eq!(
                rebuilt.is_deleted(id),
                server.index().is_deleted(id),
                "{id:?}"
            );
            deleted += usize::from(rebuilt.is_deleted(id));
        }
        assert_eq!(deleted, 4, "one backspace and a selection of three");
    }

    #[test]
    fn fast_and_general_paths_agree() {
        for seed in [42, 7, 1234] {
            run_seed(seed);
        }
    }

    fn run_seed(seed: u64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut server = CanvasDoc::new();
        let mut clients: Vec<yrs::Doc> = (1..=4).map(crate::new_doc_with_client_id).collect();
        let mut next_client = 100;
        let roles = [Role::Editor, Role::Editor, Role::Admin, Role::Viewer];
        let mut fast_hits = 0;
        for step in 0..1500 {
            let ci = rng.random_range(0..clients.len());
            let c = clients[ci].clone();
            // sometimes work offline to create concurrency
            if rng.random_bool(0.8) || c.transact().state_vector().is_empty() {
                let sv = c.transact().state_vector();
                let diff = server.encode_diff(&sv);
                if let Ok(u) = Update::decode_v1(&diff) {
                    let _ = c.transact_mut().apply_update(u);
                }
            }
            let op = rng.random_range(0..16);
            let bid = format!("b{}", rng.random_range(0..4));
            let update = {
                let mut txn = c.transact_mut();
                match op {
                    0 => {
                        let blocks = txn.get_or_insert_map(schema::BLOCKS);
                        let content = MapPrelim::from([("text", In::from(TextPrelim::new("ab")))]);
                        let w = rng.random_range(1..14);
                        blocks.insert(
                            &mut txn,
                            bid.clone(),
                            MapPrelim::from([
                                ("position", In::Map(position(0, w))),
                                ("content", In::Map(content)),
                            ]),
                        );
                    }
                    1 => {
                        let blocks = txn.get_or_insert_map(schema::BLOCKS);
                        blocks.remove(&mut txn, &bid);
                    }
                    2 => {
                        let blocks = txn.get_or_insert_map(schema::BLOCKS);
                        if let Some(Out::YMap(b)) = blocks.get(&txn, &bid)
                            && let Some(Out::YMap(p)) = b.get(&txn, "position")
                        {
                            p.insert(&mut txn, "x", rng.random_range(-1..12));
                        }
                    }
                    3 => {
                        let meta = txn.get_or_insert_map(schema::META);
                        meta.insert(&mut txn, "name", format!("n{step}"));
                    }
                    4 => {
                        let sharing = txn.get_or_insert_map(schema::SHARING);
                        sharing.insert(&mut txn, "visibility", "team");
                    }
                    5 | 6 => {
                        if let Some(t) = text_of(&txn, &bid) {
                            let len = t.len(&txn);
                            if len > 0 && op == 6 {
                                let at = rng.random_range(0..len);
                                t.remove_range(&mut txn, at, 1);
                            } else {
                                let at = rng.random_range(0..=len);
                                t.insert(&mut txn, at, "xy");
                            }
                        }
                    }
                    _ => {
                        if let Some(t) = text_of(&txn, &bid) {
                            let len = t.len(&txn);
                            t.insert(&mut txn, len, "z");
                        }
                    }
                }
                txn.encode_update_v1()
            };
            let role = roles[ci];
            let fast = inspect_with(server.doc(), server.index(), role, &update, true);
            let general = inspect_with(server.doc(), server.index(), role, &update, false);
            let summary = |r: &Result<Inspection, Refusal>| match r {
                Ok(i) => Ok((i.is_noop(), i.touched_blocks().to_vec())),
                Err(e) => Err(e.code),
            };
            assert_eq!(summary(&fast), summary(&general), "step {step}: op {op}");
            match fast {
                Ok(i) => {
                    if matches!(i.delta, IndexDelta::Simple(_)) {
                        fast_hits += 1;
                    }
                    server.apply_inspected(&update, i).expect("applies");
                }
                Err(_) => {
                    // the client resyncs with a fresh document
                    next_client += 1;
                    clients[ci] = crate::new_doc_with_client_id(next_client);
                }
            }
        }
        assert!(fast_hits > 100, "fast path used {fast_hits} times");

        // the incrementally kept index locates every live item like a rebuilt one
        let rebuilt = DocIndex::build(server.doc()).expect("builds");
        let sv = server.state_vector();
        let mut compared = 0;
        for (client, clock) in sv.iter() {
            for k in 0..*clock {
                let id = ID::new(*client, k);
                if rebuilt.is_deleted(id) || server.index().is_deleted(id) {
                    assert_eq!(rebuilt.is_deleted(id), server.index().is_deleted(id));
                    continue;
                }
                assert_eq!(
                    rebuilt.describe_location(id),
                    server.index().describe_location(id),
                    "{id:?}"
                );
                compared += 1;
            }
        }
        println!("compared {compared} items, fast path {fast_hits} times");
        assert!(compared > 20, "compared {compared}, fast path {fast_hits}");
    }
}
