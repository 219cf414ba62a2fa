//! [`CanvasDoc`]: one canvas document (a yrs [`Doc`]) plus the [`DocIndex`] the inspector
//! needs. Every change, local or remote, goes through it so the index stays current.
//!
//! - [`CanvasDoc::apply_checked`]: an update from a client, judged by its role first.
//! - [`CanvasDoc::apply_batch`]: several queued updates from clients, one verdict each, the
//!   accepted runs merged and applied together (faster on large documents).
//! - [`CanvasDoc::apply_trusted`] / [`CanvasDoc::apply_remote`]: log replay and updates from
//!   other server nodes.
//! - [`CanvasDoc::edit`]: a change made by the server itself.

use crate::chain;
use crate::inspect::{self, DocIndex, InspectError, Inspection, Refusal, RefusalCode};
use crate::{Role, new_doc, schema};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use yrs::encoding::read::Error as ReadError;
use yrs::error::UpdateError;
use yrs::types::DeepObservable;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, TransactionMut, Update};

/// Errors of loading or changing a [`CanvasDoc`].
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    /// Bytes that should hold an update or a state vector do not decode.
    #[error("cannot decode: {0}")]
    Decode(#[source] ReadError),
    /// yrs refused to apply a decoded update.
    #[error("cannot apply the update: {0}")]
    Apply(#[source] UpdateError),
    /// The inspection was made against an older state of the document: inspect again.
    #[error("the inspection is stale: the document changed since it was made")]
    StaleInspection,
    /// The update depends on changes this document does not have yet (it would stay pending
    /// in yrs): catch up from the durable log first.
    #[error("the update depends on missing changes: {0}")]
    MissingDependency(String),
    /// The location index could not be built.
    #[error("cannot index the document: {0}")]
    Index(#[source] InspectError),
}

/// The outcome of an accepted update.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// Nothing changed (everything was already in the document): nothing to store or relay.
    pub noop: bool,
    /// Ids of the blocks the update created, changed or deleted, sorted.
    pub touched_blocks: Vec<String>,
    /// Those of `touched_blocks` whose map the update creates (new blocks, or a block it
    /// replaces whole): whatever metadata they carry is the client's, so the server replaces
    /// their creator.
    pub new_blocks: Vec<String>,
}

/// What [`CanvasDoc::apply_batch`] did.
#[derive(Debug, Default)]
pub struct BatchApplied {
    /// One verdict per update judged, in order (fewer than the batch if it stopped after a
    /// change to `sharing`).
    pub verdicts: Vec<Result<Applied, Refusal>>,
    /// The accepted updates that changed something, as the entries to log and relay, in the
    /// order they were applied.
    pub entries: Vec<LogEntry>,
}

/// One entry of a batch's log: an accepted update as it came, or a run the batch merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// The update at this index of the batch, unchanged.
    One(usize),
    /// The updates at these indices (two or more, in order) merged into one v1 update: the
    /// document it leads to is the same as theirs one after another.
    Merged {
        /// The merged update (v1).
        update: Vec<u8>,
        /// Indices into the batch.
        members: Vec<usize>,
    },
}

/// A canvas document and its location index.
#[derive(Debug)]
pub struct CanvasDoc {
    doc: Doc,
    index: DocIndex,
    /// Set by a deep observer on the `sharing` root whenever a change (local, remote or from
    /// the log) touches it, so callers recheck roles only when grants or visibility may have
    /// changed.
    sharing_changed: Arc<AtomicBool>,
}

impl Default for CanvasDoc {
    fn default() -> Self {
        Self::new()
    }
}

impl CanvasDoc {
    /// An empty canvas document.
    pub fn new() -> Self {
        Self::with_parts(new_doc(), DocIndex::default())
    }

    fn with_parts(doc: Doc, index: DocIndex) -> Self {
        let sharing_changed = Arc::new(AtomicBool::new(false));
        let flag = sharing_changed.clone();
        doc.get_or_insert_map(schema::SHARING)
            .observe_deep("canvas-doc-sharing", move |_, _| {
                flag.store(true, Ordering::Relaxed)
            });
        CanvasDoc {
            doc,
            index,
            sharing_changed,
        }
    }

    /// Whether `sharing` changed since the last call (and resets the answer).
    pub fn take_sharing_changed(&self) -> bool {
        self.sharing_changed.swap(false, Ordering::Relaxed)
    }

    /// Loads a document from its stored snapshot (a v1 update; may be empty bytes for an
    /// empty document) and the log of updates accepted since.
    pub fn from_stored<'a>(
        snapshot: &[u8],
        log: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, DocError> {
        let doc = new_doc();
        {
            let mut txn = doc.transact_mut();
            if !snapshot.is_empty() {
                let update = Update::decode_v1(snapshot).map_err(DocError::Decode)?;
                txn.apply_update(update).map_err(DocError::Apply)?;
            }
            for entry in log {
                let update = Update::decode_v1(entry).map_err(DocError::Decode)?;
                txn.apply_update(update).map_err(DocError::Apply)?;
            }
        }
        let index = DocIndex::build(&doc).map_err(DocError::Index)?;
        Ok(Self::with_parts(doc, index))
    }

    /// The yrs document (read it with read transactions; change it only through this type).
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// The location index.
    pub fn index(&self) -> &DocIndex {
        &self.index
    }

    /// Judges an update from a client with `role`. Changes nothing.
    pub fn inspect(&self, role: Role, update: &[u8]) -> Result<Inspection, Refusal> {
        inspect::inspect(&self.doc, &self.index, role, update)
    }

    /// Applies an update accepted by [`CanvasDoc::inspect`] (with no change in between).
    pub fn apply_inspected(
        &mut self,
        update: &[u8],
        inspection: Inspection,
    ) -> Result<(), DocError> {
        if !inspection.is_current_for(&self.index) {
            return Err(DocError::StaleInspection);
        }
        if inspection.is_noop() {
            return Ok(());
        }
        let decoded = Update::decode_v1(update).map_err(DocError::Decode)?;
        self.apply_located(decoded, Ok(inspection))
    }

    /// Applies a decoded update and records it in the index; re-indexes the whole document if
    /// the update was not located, did not fully integrate, or failed half-way.
    fn apply_located(
        &mut self,
        update: Update,
        located: Result<Inspection, InspectError>,
    ) -> Result<(), DocError> {
        let mut txn = self.doc.transact_mut();
        let result = txn.apply_update(update);
        let recorded = match (&result, located) {
            (Ok(()), Ok(located)) if !txn.has_missing_updates() => self
                .index
                .apply_inspection(&located, Some(txn.delete_set()))
                .is_ok(),
            _ => false,
        };
        drop(txn);
        if !recorded {
            self.reindex()?;
        }
        result.map_err(DocError::Apply)
    }

    /// Inspects an update from a client with `role` and applies it if accepted.
    pub fn apply_checked(&mut self, role: Role, update: &[u8]) -> Result<Applied, Refusal> {
        let mut inspection = self.inspect(role, update)?;
        let applied = Applied {
            noop: inspection.is_noop(),
            touched_blocks: inspection.take_touched_blocks(),
            new_blocks: inspection.take_new_blocks(),
        };
        self.apply_inspected(update, inspection)
            .map_err(|e| Refusal {
                code: RefusalCode::MalformedUpdate,
                message: e.to_string(),
            })?;
        Ok(applied)
    }

    /// Inspects and applies several updates queued for this document (from one or several
    /// connections, in arrival order), with one verdict per update, in order: exactly the
    /// verdicts and the document that [`CanvasDoc::apply_checked`] on each update in turn
    /// would give. A refused update changes nothing and does not affect the others.
    ///
    /// It stops right after an update that changed `sharing` (an admin's grant or visibility
    /// change may change the roles the next updates must be judged with): the verdicts
    /// returned are for the first `n` updates only, and the caller judges the rest again
    /// with fresh roles. [`CanvasDoc::take_sharing_changed`] then says `true`.
    ///
    /// Faster than one by one on large documents: consecutive updates that the inspector's
    /// fast path accepts (typing, backspace, renaming: it reads only the index, which learns
    /// each update's items and deletions as soon as it is judged) are merged (runs of
    /// keystrokes by concatenating their strings, see `engine/src/chain.rs`; the rest by
    /// `Update::merge_updates`) and applied as one update in one transaction, so yrs
    /// integrates a run of keystrokes as one item and pays its per-transaction cost once.
    /// An update that needs the general path (it reads the document: positions, new blocks)
    /// first applies the run before it, then goes through [`CanvasDoc::apply_checked`]; a
    /// map-entry write ends its run, because the index learns the deletion of the entry's
    /// previous value only from the transaction. Figures: BENCHMARKS.md.
    ///
    /// A merged run is also one entry of [`BatchApplied::entries`]: the caller logs and
    /// relays it as one update (one log row and one frame per peer instead of one per
    /// keystroke).
    pub fn apply_batch<'a>(
        &mut self,
        batch: impl IntoIterator<Item = (Role, &'a [u8])>,
    ) -> BatchApplied {
        let mut results = Vec::new();
        let mut entries = Vec::new();
        let mut group: Vec<(usize, Member<'a>)> = Vec::new();
        // A change to sharing from before the batch stays reported, but must not stop it.
        let earlier_change = self.take_sharing_changed();
        for (role, bytes) in batch {
            if let Some((mut inspection, map_entry)) =
                inspect::inspect_fast_only(&self.index, role, bytes)
                && let Some(member) = Member::read(bytes)
                && self.index.apply_inspection(&inspection, None).is_ok()
            {
                group.push((results.len(), member));
                results.push(Ok(Applied {
                    noop: false,
                    touched_blocks: inspection.take_touched_blocks(),
                    // The fast path only edits existing blocks.
                    new_blocks: Vec::new(),
                }));
                if map_entry {
                    entries.extend(self.apply_group(&mut group, &mut results));
                }
                continue;
            }
            entries.extend(self.apply_group(&mut group, &mut results));
            let verdict = self.apply_checked(role, bytes);
            if verdict.as_ref().is_ok_and(|a| !a.noop) {
                entries.push(LogEntry::One(results.len()));
            }
            results.push(verdict);
            if self.sharing_changed.load(Ordering::Relaxed) {
                break;
            }
        }
        entries.extend(self.apply_group(&mut group, &mut results));
        if earlier_change {
            self.sharing_changed.store(true, Ordering::Relaxed);
        }
        BatchApplied {
            verdicts: results,
            entries,
        }
    }

    /// Applies the accepted updates of a batch (already recorded in the index) as one merged
    /// update in one transaction, then records the deletions yrs made. Merging first lets
    /// yrs integrate a run of keystrokes as one item instead of one item per keystroke.
    /// Returns the run's log entry.
    ///
    /// Runs of keystrokes typed one after another are merged by [`chain::Chain`] (one item
    /// with the whole string, written directly); what is left (deletions, other shapes, the
    /// merged chains between them) by `Update::merge_updates`, which then has a few inputs
    /// instead of one per keystroke.
    ///
    /// yrs refuses an update only for an item whose parent is not a shared type, which the
    /// fast path rules out (every item's location is a known container); should it happen
    /// anyway, every update of the group is reported refused and the index is rebuilt from
    /// the document.
    fn apply_group(
        &mut self,
        group: &mut Vec<(usize, Member<'_>)>,
        results: &mut [Result<Applied, Refusal>],
    ) -> Option<LogEntry> {
        let indices: Vec<usize> = group.iter().map(|(i, _)| *i).collect();
        let merged = match indices[..] {
            [] => return None,
            [only] => {
                let (_, member) = group.pop()?;
                member.into_update().map(|u| (u, LogEntry::One(only)))
            }
            _ => merge_group(group.drain(..).map(|(_, member)| member)).map(|(merged, update)| {
                let members = indices.clone();
                (merged, LogEntry::Merged { update, members })
            }),
        };
        let result = match merged {
            Ok((merged, entry)) => {
                let mut txn = self.doc.transact_mut();
                let result = txn.apply_update(merged);
                if result.is_ok() && !txn.has_missing_updates() {
                    self.index.insert_id_set(txn.delete_set());
                    return Some(entry);
                }
                drop(txn);
                let _ = self.reindex();
                match result {
                    // Applied, though not as the fast path foresaw: the index was rebuilt.
                    Ok(()) => return Some(entry),
                    Err(e) => DocError::Apply(e),
                }
            }
            Err(e) => {
                let _ = self.reindex();
                DocError::Decode(e)
            }
        };
        let message = result.to_string();
        for i in indices {
            if let Some(r) = results.get_mut(i) {
                *r = Err(Refusal {
                    code: RefusalCode::MalformedUpdate,
                    message: message.clone(),
                });
            }
        }
        None
    }

    /// Applies an update without any role or schema check (log replay, other server nodes),
    /// keeping the index current.
    pub fn apply_trusted(&mut self, update: &[u8]) -> Result<(), DocError> {
        let decoded = Update::decode_v1(update).map_err(DocError::Decode)?;
        let located = inspect::locate(&self.index, update);
        self.apply_located(decoded, located)
    }

    /// Applies an update another server node accepted (no role or schema check: its node
    /// checked it against its own state, and concurrent merges may legitimately combine
    /// differently here), but only if it integrates fully: an update that depends on
    /// changes this document lacks is refused with [`DocError::MissingDependency`] and
    /// changes nothing, so yrs never holds it pending.
    pub fn apply_remote(&mut self, update: &[u8]) -> Result<(), DocError> {
        let located = inspect::locate(&self.index, update).map_err(|e| match e {
            InspectError::Unresolvable(m) => DocError::MissingDependency(m),
            other => DocError::Index(other),
        })?;
        let decoded = Update::decode_v1(update).map_err(DocError::Decode)?;
        self.apply_located(decoded, Ok(located))
    }

    /// A change made by the server: runs `f` in a write transaction and returns its result
    /// and the v1 update it produced, or `None` if nothing changed (nothing to store or
    /// relay).
    pub fn edit<R>(&mut self, f: impl FnOnce(&mut TransactionMut) -> R) -> (R, Option<Vec<u8>>) {
        let mut txn = self.doc.transact_mut();
        let result = f(&mut txn);
        if !txn.has_changes() {
            return (result, None);
        }
        let update = txn.encode_update_v1();
        // locate the new items against the index as it was before the edit
        let recorded = match inspect::locate(&self.index, &update) {
            Ok(located) => self
                .index
                .apply_inspection(&located, Some(txn.delete_set()))
                .is_ok(),
            Err(_) => false,
        };
        drop(txn);
        if !recorded {
            // should not happen: the server's own edits always integrate
            let _ = self.reindex();
        }
        (result, Some(update))
    }

    fn reindex(&mut self) -> Result<(), DocError> {
        self.index = DocIndex::build(&self.doc).map_err(DocError::Index)?;
        Ok(())
    }

    /// The document's state vector.
    pub fn state_vector(&self) -> StateVector {
        self.doc.transact().state_vector()
    }

    /// The document's state vector, v1-encoded (sync step 1).
    pub fn encode_state_vector(&self) -> Vec<u8> {
        self.state_vector().encode_v1()
    }

    /// What a peer with state vector `remote_sv` is missing, as a v1 update (sync step 2).
    pub fn encode_diff(&self, remote_sv: &StateVector) -> Vec<u8> {
        self.doc.transact().encode_diff_v1(remote_sv)
    }

    /// The full state as a v1 update (a snapshot).
    pub fn encode_state(&self) -> Vec<u8> {
        self.doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }
}

/// An update of a batch the fast path accepted, read once: a keystroke (merged by
/// [`chain::Chain`] with those after it, and decoded by yrs only as part of the run), or
/// anything else, decoded by yrs when it is accepted (an update yrs cannot decode goes to the
/// general path, which refuses it alone).
enum Member<'a> {
    Key(chain::Keystroke<'a>, &'a [u8]),
    Decoded(Update),
}

impl<'a> Member<'a> {
    fn read(bytes: &'a [u8]) -> Option<Self> {
        match chain::Keystroke::parse(bytes) {
            Some(key) => Some(Member::Key(key, bytes)),
            None => Update::decode_v1(bytes).ok().map(Member::Decoded),
        }
    }

    fn into_update(self) -> Result<Update, ReadError> {
        match self {
            Member::Key(_, bytes) => Update::decode_v1(bytes),
            Member::Decoded(update) => Ok(update),
        }
    }
}

/// Two or more updates of a batch as one: runs of keystrokes merged by [`chain::Chain`],
/// then the pieces (merged runs and everything else, in order) by `Update::merge_updates`
/// when there is more than one. Returns the update decoded and encoded (v1).
fn merge_group<'a>(
    members: impl Iterator<Item = Member<'a>>,
) -> Result<(Update, Vec<u8>), ReadError> {
    enum Piece<'a> {
        Run(chain::Chain<'a>),
        Other(Update),
    }
    let mut pieces: Vec<Piece<'a>> = Vec::new();
    for member in members {
        let (key, bytes) = match member {
            Member::Key(key, bytes) => (key, bytes),
            Member::Decoded(update) => {
                pieces.push(Piece::Other(update));
                continue;
            }
        };
        let key = match pieces.last_mut() {
            Some(Piece::Run(run)) => match run.push(key) {
                Ok(()) => continue,
                Err(key) => key,
            },
            _ => key,
        };
        match chain::Chain::new(key) {
            Some(run) => pieces.push(Piece::Run(run)),
            None => pieces.push(Piece::Other(Update::decode_v1(bytes)?)),
        }
    }
    // one run (two keystrokes or more: a group has two members or more): its encoding is
    // the merged update
    if let [Piece::Run(run)] = &pieces[..] {
        let update = run.encode_v1();
        return Ok((Update::decode_v1(&update)?, update));
    }
    let decoded = pieces
        .into_iter()
        .map(|piece| match piece {
            Piece::Run(run) => Update::decode_v1(&run.encode_v1()),
            Piece::Other(update) => Ok(update),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let merged = Update::merge_updates(decoded);
    let update = merged.encode_v1();
    Ok((merged, update))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{self, CanvasMeta};
    use crate::{blocks, sharing, text};

    #[test]
    fn sharing_changes_are_flagged_and_others_are_not() {
        let mut canvas = CanvasDoc::new();
        let meta = CanvasMeta {
            name: "c".into(),
            description: None,
            project_id: "p".into(),
            owner_id: "o".into(),
            tags: vec![],
        };
        canvas.edit(|txn| init::init_canvas(txn, &meta));
        assert!(canvas.take_sharing_changed(), "init writes sharing");
        assert!(!canvas.take_sharing_changed(), "the flag resets");
        canvas.edit(|txn| {
            blocks::set_content(txn, "none", "k", &serde_json::json!(1), "u", "t").ok()
        });
        canvas.edit(|txn| {
            use yrs::{Map, WriteTxn};
            txn.get_or_insert_map(schema::META)
                .insert(txn, "name", "renamed");
        });
        assert!(!canvas.take_sharing_changed());
        canvas.edit(|txn| sharing::grant(txn, "u2", Role::Editor, "o", "t"));
        assert!(
            canvas.take_sharing_changed(),
            "a nested grant is a sharing change"
        );
        // a copy loaded from storage observes too
        let copy = CanvasDoc::from_stored(&canvas.encode_state(), []).expect("loads");
        assert!(!copy.take_sharing_changed());
    }

    #[test]
    fn an_edit_returns_its_update_only_if_it_changed_something() {
        use yrs::{Map, WriteTxn};
        let mut canvas = CanvasDoc::new();
        let name = |txn: &mut TransactionMut, name: &str| {
            txn.get_or_insert_map(schema::META)
                .try_update(txn, "name", name)
        };
        let (changed, update) = canvas.edit(|txn| name(txn, "a"));
        assert!(changed);
        let copy = CanvasDoc::from_stored(&[], [update.as_deref().expect("an update")])
            .expect("the update applies");
        assert_eq!(
            crate::json::canvas_json(&copy.doc().transact())["name"],
            "a"
        );
        let (changed, update) = canvas.edit(|txn| name(txn, "a"));
        assert!(!changed);
        assert_eq!(update, None, "the same value again writes nothing");
        let ((), update) = canvas.edit(|_| ());
        assert_eq!(update, None);
        // A value written and removed in one edit still leaves items to relay.
        let ((), update) = canvas.edit(|txn| {
            let meta = txn.get_or_insert_map(schema::META);
            meta.insert(txn, "draft", "x");
            meta.remove(txn, "draft");
        });
        assert!(update.is_some());
    }

    /// Updates from three clients, including refused ones, in arrival order. The two editors
    /// catch up with the server before each edit; the third never does, and sends as a viewer
    /// now and then, so it gets refusals and then updates with gaps.
    fn mixed_queue(base: &CanvasDoc) -> Vec<(Role, Vec<u8>)> {
        use yrs::{Map, Text, WriteTxn};
        let mut server = CanvasDoc::from_stored(&base.encode_state(), []).expect("loads");
        let clients: Vec<Doc> = (1..=3).map(crate::new_doc_with_client_id).collect();
        for c in &clients {
            let u = Update::decode_v1(&base.encode_state()).expect("decodes");
            c.transact_mut().apply_update(u).expect("applies");
        }
        let mut queue = Vec::new();
        for step in 0..240usize {
            let ci = step % 3;
            let c = &clients[ci];
            if ci != 2 {
                let sv = c.transact().state_vector();
                let diff = Update::decode_v1(&server.encode_diff(&sv)).expect("decodes");
                c.transact_mut().apply_update(diff).expect("applies");
            }
            let mut txn = c.transact_mut();
            let role = match step % 21 {
                2 => Role::Viewer,
                _ => Role::Editor,
            };
            match step % 12 {
                8 => {
                    txn.get_or_insert_map(schema::SHARING)
                        .insert(&mut txn, "visibility", "public");
                }
                4 | 7 => {
                    if let Some(Out::YMap(block)) =
                        txn.get_or_insert_map(schema::BLOCKS).get(&txn, "b")
                        && let Some(Out::YMap(pos)) = block.get(&txn, "position")
                    {
                        pos.insert(&mut txn, "x", (step % 14) as i64);
                    }
                }
                9 | 10 => {
                    let _ = text::delete_text(&mut txn, "b", 0, 1, "u", "t");
                }
                _ => {
                    if let Some(Out::YMap(block)) =
                        txn.get_or_insert_map(schema::BLOCKS).get(&txn, "b")
                        && let Some(Out::YMap(content)) = block.get(&txn, "content")
                        && let Some(Out::YText(text)) = content.get(&txn, "text")
                    {
                        let len = text.len(&txn);
                        text.insert(&mut txn, len.min(step as u32 % 5), "k");
                    }
                }
            }
            let update = txn.encode_update_v1();
            drop(txn);
            let _ = server.apply_checked(role, &update);
            queue.push((role, update));
        }
        queue
    }

    fn verdict(r: &Result<Applied, Refusal>) -> Result<(bool, Vec<String>), RefusalCode> {
        r.as_ref()
            .map(|a| (a.noop, a.touched_blocks.clone()))
            .map_err(|e| e.code)
    }

    use yrs::Out;

    #[test]
    fn a_batch_gives_the_verdicts_and_document_of_one_update_at_a_time() {
        let mut base = CanvasDoc::new();
        let (added, _) = base.edit(|txn| {
            blocks::add_block(
                txn,
                &blocks::NewBlock {
                    id: "b".into(),
                    block_type: "narrative".into(),
                    position: blocks::Position {
                        x: 0,
                        y: 0,
                        w: 4,
                        h: 2,
                    },
                    content: serde_json::json!({"text": "hello"}),
                    created_by: "u".into(),
                    created_at: "t".into(),
                },
            )
        });
        added.expect("adds");
        let queue = mixed_queue(&base);
        let mut one_by_one = CanvasDoc::from_stored(&base.encode_state(), []).expect("loads");
        let expected: Vec<_> = queue
            .iter()
            .map(|(role, u)| verdict(&one_by_one.apply_checked(*role, u)))
            .collect();
        let refused = expected.iter().filter(|v| v.is_err()).count();
        assert!(refused > 20, "the queue has refusals: {refused}");
        assert!(expected.len() - refused > 100, "and accepted updates");
        for size in [1, 2, 7, 64, 240] {
            let mut batched = CanvasDoc::from_stored(&base.encode_state(), []).expect("loads");
            let mut got = Vec::new();
            let mut log: Vec<Vec<u8>> = Vec::new();
            let mut merged = 0;
            for chunk in queue.chunks(size) {
                let results = batched.apply_batch(chunk.iter().map(|(r, u)| (*r, u.as_slice())));
                assert_eq!(results.verdicts.len(), chunk.len());
                got.extend(results.verdicts.iter().map(verdict));
                // The log entries stand for exactly the accepted updates that changed
                // something, in order, and replaying them gives the same document.
                let mut logged = Vec::new();
                for entry in &results.entries {
                    match entry {
                        LogEntry::One(i) => {
                            logged.push(*i);
                            log.push(chunk[*i].1.clone());
                        }
                        LogEntry::Merged { update, members } => {
                            assert!(members.len() >= 2);
                            merged += 1;
                            logged.extend(members);
                            log.push(update.clone());
                        }
                    }
                }
                let changed: Vec<usize> = (0..chunk.len())
                    .filter(|i| results.verdicts[*i].as_ref().is_ok_and(|a| !a.noop))
                    .collect();
                assert_eq!(logged, changed, "batches of {size}");
            }
            assert_eq!(got, expected, "batches of {size}");
            let txn = batched.doc().transact();
            assert_eq!(
                crate::json::canvas_json(&txn),
                crate::json::canvas_json(&one_by_one.doc().transact()),
                "batches of {size}"
            );
            drop(txn);
            assert!(batched.index().matches_state_vector(batched.doc()));
            assert_eq!(size == 1, merged == 0, "runs merged in batches of {size}");
            let replayed =
                CanvasDoc::from_stored(&base.encode_state(), log.iter().map(Vec::as_slice))
                    .expect("the log replays");
            assert_eq!(
                crate::json::canvas_json(&replayed.doc().transact()),
                crate::json::canvas_json(&one_by_one.doc().transact()),
                "the log of batches of {size}"
            );
        }
    }

    #[test]
    fn a_refused_update_in_a_batch_leaves_the_others_applied() {
        use yrs::{Text, WriteTxn};
        let mut canvas = CanvasDoc::new();
        let author = crate::new_doc_with_client_id(9);
        let mut updates = Vec::new();
        for word in ["a", "b", "c"] {
            let mut txn = author.transact_mut();
            let text = txn.get_or_insert_map(schema::META);
            use yrs::Map;
            text.insert(&mut txn, "name", word);
            updates.push(txn.encode_update_v1());
        }
        let forbidden = {
            let other = crate::new_doc_with_client_id(10);
            let mut txn = other.transact_mut();
            use yrs::Map;
            txn.get_or_insert_map(schema::SHARING)
                .insert(&mut txn, "visibility", "public");
            txn.encode_update_v1()
        };
        let typed = {
            let other = crate::new_doc_with_client_id(11);
            let mut txn = other.transact_mut();
            let t = txn.get_or_insert_text("not-a-root");
            t.insert(&mut txn, 0, "x");
            txn.encode_update_v1()
        };
        let batch = [
            (Role::Editor, updates[0].as_slice()),
            (Role::Editor, forbidden.as_slice()),
            (Role::Editor, updates[1].as_slice()),
            (Role::Viewer, updates[2].as_slice()),
            (Role::Editor, typed.as_slice()),
            (Role::Editor, b"\xff\xff".as_slice()),
            (Role::Editor, updates[2].as_slice()),
        ];
        let codes: Vec<_> = canvas
            .apply_batch(batch)
            .verdicts
            .iter()
            .map(verdict)
            .collect();
        assert!(
            codes[0].is_ok() && codes[2].is_ok() && codes[6].is_ok(),
            "{codes:?}"
        );
        assert_eq!(codes[1], Err(RefusalCode::Forbidden));
        assert_eq!(codes[3], Err(RefusalCode::ReadOnly));
        assert_eq!(codes[4], Err(RefusalCode::InvalidSchema));
        assert_eq!(codes[5], Err(RefusalCode::MalformedUpdate));
        let txn = canvas.doc().transact();
        assert_eq!(crate::json::canvas_json(&txn)["name"], "c");
        assert_eq!(crate::json::sharing_json(&txn)["visibility"], "private");
    }

    #[test]
    fn a_batch_stops_right_after_a_sharing_change() {
        use yrs::{Map, WriteTxn};
        let mut canvas = CanvasDoc::new();
        let name = |client: u64, word: &str| {
            let author = crate::new_doc_with_client_id(client);
            let mut txn = author.transact_mut();
            txn.get_or_insert_map(schema::META)
                .insert(&mut txn, "name", word);
            txn.encode_update_v1()
        };
        let (first, last) = (name(20, "first"), name(21, "last"));
        let grant = {
            let admin = crate::new_doc_with_client_id(22);
            let mut txn = admin.transact_mut();
            txn.get_or_insert_map(schema::SHARING)
                .insert(&mut txn, "visibility", "team");
            txn.encode_update_v1()
        };
        // a change to sharing from before the batch does not stop it
        canvas.sharing_changed.store(true, Ordering::Relaxed);
        let batch = [
            (Role::Editor, first.as_slice()),
            (Role::Admin, grant.as_slice()),
            (Role::Editor, last.as_slice()),
        ];
        let results = canvas.apply_batch(batch).verdicts;
        assert_eq!(results.len(), 2, "stops after the grant: {results:?}");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert!(canvas.take_sharing_changed());
        let txn = canvas.doc().transact();
        assert_eq!(crate::json::canvas_json(&txn)["name"], "first");
        assert_eq!(crate::json::sharing_json(&txn)["visibility"], "team");
        drop(txn);
        // the rest is judged again, as its own batch
        let rest = canvas
            .apply_batch([(Role::Editor, last.as_slice())])
            .verdicts;
        assert!(rest[0].is_ok());
        assert!(!canvas.take_sharing_changed());

        // an admin's batch without sharing changes goes through whole
        let more = [name(20, "again"), name(21, "and again")];
        let results = canvas.apply_batch(more.iter().map(|u| (Role::Admin, u.as_slice())));
        assert_eq!(results.verdicts.len(), 2);
    }

    #[test]
    fn an_unknown_visibility_is_refused_and_a_known_one_accepted() {
        use yrs::{Map, WriteTxn};
        let mut canvas = CanvasDoc::new();
        let visibility = |client: u64, value: yrs::Any| {
            let admin = crate::new_doc_with_client_id(client);
            let mut txn = admin.transact_mut();
            txn.get_or_insert_map(schema::SHARING)
                .insert(&mut txn, schema::VISIBILITY, value);
            txn.encode_update_v1()
        };
        for (client, bad) in [
            (30, yrs::Any::from("organization")),
            (31, yrs::Any::from(3.0)),
        ] {
            let refused = canvas
                .apply_checked(Role::Owner, &visibility(client, bad))
                .expect_err("refused");
            assert_eq!(refused.code, RefusalCode::InvalidSchema, "{refused}");
            assert!(refused.message.contains("sharing.visibility"), "{refused}");
        }
        let applied = canvas.apply_checked(Role::Admin, &visibility(32, yrs::Any::from("public")));
        assert!(applied.is_ok(), "{applied:?}");
        assert_eq!(
            crate::json::sharing_json(&canvas.doc().transact())["visibility"],
            "public"
        );
    }
}
