//! A synthetic canvas workload: what a few people arranging a board send, as per-edit v1
//! updates. Seeded, so every run measures the same bytes.
//!
//! Four clients take turns; before each edit the client catches up with everything sent so
//! far (as a connected client would), so edits build on each other's items. Edits are the
//! client-side writes a Yjs editor makes:
//!
//! - [`Edit::Add`]: a new narrative block (id, type, a complete position, content with a
//!   `Y.Text`, metadata), as `blocks::add_block` writes it;
//! - [`Edit::Move`]: `x` and `y` written into the block's `position` map;
//! - [`Edit::Resize`]: `w` and `h` written into it;
//! - [`Edit::Type`]: one character typed into a narrative text, mostly after the previous
//!   one, sometimes elsewhere; one in ten keystrokes deletes a character instead.
//!
//! Every position written stays inside the 12-column grid, so an editor's updates are all
//! accepted by the inspector.

use canvas_engine::blocks::{self, NewBlock, Position};
use canvas_engine::{json, schema};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yrs::updates::decoder::Decode;
use yrs::{Doc, Map, Out, ReadTxn, Text, Transact, TransactionMut, Update};

/// Blocks the base canvas holds before the workload starts.
pub const BASE_BLOCKS: usize = 10;

/// One kind of edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// Add a narrative block.
    Add,
    /// Move a block (`x`, `y`).
    Move,
    /// Resize a block (`w`, `h`).
    Resize,
    /// Type or delete one character of a narrative text.
    Type,
}

/// What a workload is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Only this kind of edit.
    Only(Edit),
    /// 5% adds, 20% moves, 15% resizes, 60% typing.
    Mixed,
}

impl Mix {
    /// A short name for benchmark ids.
    pub fn name(&self) -> &'static str {
        match self {
            Mix::Only(Edit::Add) => "add",
            Mix::Only(Edit::Move) => "move",
            Mix::Only(Edit::Resize) => "resize",
            Mix::Only(Edit::Type) => "type",
            Mix::Mixed => "mixed",
        }
    }

    fn pick(&self, rng: &mut StdRng) -> Edit {
        match self {
            Mix::Only(edit) => *edit,
            Mix::Mixed => match rng.random_range(0..100) {
                0..5 => Edit::Add,
                5..25 => Edit::Move,
                25..40 => Edit::Resize,
                _ => Edit::Type,
            },
        }
    }
}

/// A generated workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The canvas before the workload (a v1 snapshot with [`BASE_BLOCKS`] narrative blocks).
    pub base: Vec<u8>,
    /// The per-edit updates, in order.
    pub updates: Vec<Vec<u8>>,
    /// The blocks as JSON once every update is applied ([`blocks_json`]).
    pub expected: serde_json::Value,
}

/// The blocks of a document as JSON, to compare a replica with [`Workload::expected`].
pub fn blocks_json(doc: &Doc) -> serde_json::Value {
    serde_json::Value::Array(json::blocks_json(&doc.transact()))
}

fn new_block(id: String, x: i64, y: i64) -> NewBlock {
    NewBlock {
        id,
        block_type: "narrative".to_owned(),
        position: Position { x, y, w: 4, h: 4 },
        content: serde_json::json!({ "text": "Key insights" }),
        created_by: "bench".to_owned(),
        created_at: "2026-01-01T00:00:00Z".to_owned(),
    }
}

fn base_canvas() -> Vec<u8> {
    let mut canvas = crate::traces::empty_canvas();
    canvas.edit(|txn| {
        for i in 0..BASE_BLOCKS {
            let _ = blocks::add_block(txn, &new_block(format!("b{i}"), 0, i as i64 * 4));
        }
    });
    canvas.encode_state()
}

fn position_map(txn: &TransactionMut, id: &str) -> Option<yrs::MapRef> {
    let blocks = txn.get_map(schema::BLOCKS)?;
    let Some(Out::YMap(block)) = blocks.get(txn, id) else {
        return None;
    };
    match block.get(txn, schema::POSITION) {
        Some(Out::YMap(p)) => Some(p),
        _ => None,
    }
}

fn text_ref(txn: &TransactionMut, id: &str) -> Option<yrs::TextRef> {
    let blocks = txn.get_map(schema::BLOCKS)?;
    let Some(Out::YMap(block)) = blocks.get(txn, id) else {
        return None;
    };
    let Some(Out::YMap(content)) = block.get(txn, schema::CONTENT) else {
        return None;
    };
    match content.get(txn, "text") {
        Some(Out::YText(t)) => Some(t),
        _ => None,
    }
}

/// `n` updates of the given mix, from `seed`.
pub fn canvas_workload(mix: Mix, n: usize, seed: u64) -> Workload {
    let base = base_canvas();
    let mut rng = StdRng::seed_from_u64(seed);
    let clients: Vec<Doc> = (1..=4).map(Doc::with_client_id).collect();
    for c in &clients {
        if let Ok(u) = Update::decode_v1(&base) {
            let _ = c.transact_mut().apply_update(u);
        }
    }
    let mut blocks: Vec<String> = (0..BASE_BLOCKS).map(|i| format!("b{i}")).collect();
    // where each client last typed, per block (typing mostly continues there)
    let mut cursor = [0u32; 4];
    let mut updates: Vec<Vec<u8>> = Vec::with_capacity(n);
    let mut seen = [0usize; 4];
    for step in 0..n {
        let ci = step % 4;
        let client = &clients[ci];
        // catch up with what the others sent
        {
            let mut txn = client.transact_mut();
            for u in &updates[seen[ci]..] {
                if let Ok(u) = Update::decode_v1(u) {
                    let _ = txn.apply_update(u);
                }
            }
        }
        seen[ci] = updates.len() + 1;
        let edit = mix.pick(&mut rng);
        let mut txn = client.transact_mut();
        match edit {
            Edit::Add => {
                let id = format!("n{step}");
                let block = new_block(id.clone(), rng.random_range(0..=8), step as i64 % 1000);
                let _ = blocks::add_block(&mut txn, &block);
                blocks.push(id);
            }
            Edit::Move | Edit::Resize => {
                let id = &blocks[rng.random_range(0..blocks.len())];
                let current = blocks::block_position(&txn, id);
                if let (Some(p), Some(map)) = (current, position_map(&txn, id)) {
                    if edit == Edit::Move {
                        map.insert(&mut txn, "x", rng.random_range(0..=12 - p.w));
                        map.insert(&mut txn, "y", rng.random_range(0..200i64));
                    } else {
                        map.insert(&mut txn, "w", rng.random_range(1..=12 - p.x));
                        map.insert(&mut txn, "h", rng.random_range(1..9i64));
                    }
                }
            }
            Edit::Type => {
                // a client keeps typing in one block for a while
                let id = &blocks[(step / 400 + ci) % blocks.len()];
                if let Some(text) = text_ref(&txn, id) {
                    let len = text.len(&txn);
                    let at = if rng.random_bool(0.9) {
                        cursor[ci].min(len)
                    } else {
                        rng.random_range(0..=len)
                    };
                    if len > 0 && rng.random_bool(0.1) {
                        let at = at.min(len - 1);
                        text.remove_range(&mut txn, at, 1);
                        cursor[ci] = at;
                    } else {
                        let ch = (b'a' + rng.random_range(0..26u8)) as char;
                        text.insert(&mut txn, at, ch.encode_utf8(&mut [0; 4]));
                        cursor[ci] = at + 1;
                    }
                }
            }
        }
        updates.push(txn.encode_update_v1());
    }
    // the expected result: every update applied in order to the base
    let truth = Doc::new();
    {
        let mut txn = truth.transact_mut();
        for u in std::iter::once(&base).chain(&updates) {
            if let Ok(u) = Update::decode_v1(u) {
                let _ = txn.apply_update(u);
            }
        }
    }
    let expected = blocks_json(&truth);
    Workload {
        base,
        updates,
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canvas_engine::{CanvasDoc, Role};

    #[test]
    fn an_editor_may_send_every_update_of_the_mixed_workload() {
        let w = canvas_workload(Mix::Mixed, 600, 3);
        assert_eq!(w.updates.len(), 600);
        let mut canvas = CanvasDoc::from_stored(&w.base, []).expect("loads");
        for (i, u) in w.updates.iter().enumerate() {
            let applied = canvas.apply_checked(Role::Editor, u);
            assert!(applied.is_ok(), "update {i}: {applied:?}");
        }
        assert_eq!(blocks_json(canvas.doc()), w.expected);
        let blocks = w.expected.as_array().map_or(0, Vec::len);
        assert!(blocks > BASE_BLOCKS, "blocks were added: {blocks}");
    }
}
