//! The blocks of a canvas (root `blocks`): their types, typed edits (add, move, resize,
//! remove a block, set one content key) and tolerant readers.
//!
//! Every edit takes the caller's [`TransactionMut`], so several edits (here, in
//! [`crate::text`] and in [`crate::sharing`]) can share one transaction (one update on the
//! wire). Edits validate their input against the document as it is now (block exists,
//! position inside the grid, text range valid) and write only the keys that change, so
//! concurrent edits of different keys of one block merge cleanly.
//!
//! Readers take any [`ReadTxn`] and never fail: a document may be mid-edit or hold values
//! written by other clients, so missing or ill-typed values fall back to the schema's
//! defaults. Numbers written by JavaScript clients may arrive as floats (`Number::Float(3.0)`)
//! and are accepted wherever an integer is expected, as long as they are integral.
//!
//! Block `metadata` is the server's (see [`crate::attribution`]): the block edits here that
//! write it ([`add_block`] fills it, the others update `last_modified_by/at` through their
//! `by`/`at` arguments) are for edits the server makes itself; the inspector refuses such
//! writes from clients, whose new blocks may carry an empty metadata map at most.

use serde::{Deserialize, Serialize};
use yrs::{
    Any, ArrayPrelim, In, Map, MapPrelim, MapRef, ReadTxn, TextPrelim, TransactionMut, WriteTxn,
};

use crate::schema::{BLOCKS, CONTENT, DEFAULT_COLUMNS, LAYOUT, METADATA, POSITION};
use crate::values::{child_map, int_at, string_at};

/// Largest value of any position coordinate, and of `y + h`: the largest integer lib0 (Yjs)
/// encodes as an integer (larger ones travel as floats).
pub const MAX_COORD: i64 = 0x7FFF_FFFF;

/// Block type whose `content.text` is a collaborative `Y.Text`.
pub const NARRATIVE: &str = "narrative";
/// Content key of a narrative block's text.
pub const TEXT_KEY: &str = "text";
/// Content key holding a block's data bindings, stored as a `Y.Array`.
pub const DATA_BINDINGS_KEY: &str = "data_bindings";

/// Why an edit was refused. The document is left unchanged when an edit returns an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// A block id must not be empty.
    #[error("block id must not be empty")]
    EmptyId,
    /// A block type must not be empty.
    #[error("block type must not be empty")]
    EmptyType,
    /// A block with this id already exists.
    #[error("block {0:?} already exists")]
    DuplicateBlock(String),
    /// There is no block with this id.
    #[error("no block {0:?}")]
    NoSuchBlock(String),
    /// The position is not inside the grid.
    #[error(
        "position x={x} y={y} w={w} h={h} is outside the grid \
         (need 0 <= x, 0 <= y, w >= 1, h >= 1, x + w <= {columns}, y + h <= {max})",
        max = MAX_COORD
    )]
    OutOfGrid {
        /// Requested column.
        x: i64,
        /// Requested row.
        y: i64,
        /// Requested width in columns.
        w: i64,
        /// Requested height in rows.
        h: i64,
        /// The grid's column count.
        columns: i64,
    },
    /// A block's content must be a JSON object.
    #[error("block content must be a JSON object")]
    ContentNotObject,
    /// One content value cannot be stored.
    #[error("content key {key:?}: {reason}")]
    InvalidContent {
        /// The offending content key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Text edits apply only to narrative blocks.
    #[error("block {0:?} is not a narrative block")]
    NotNarrative(String),
    /// The block exists but lacks a part the edit needs, or holds it with the wrong type.
    #[error("block {id:?} is malformed: {what}")]
    MalformedBlock {
        /// The block id.
        id: String,
        /// The missing or ill-typed part.
        what: &'static str,
    },
    /// A text index or range reaches past the end of the text.
    #[error("text range {index}..{index}+{len} is outside the text (length {text_len})")]
    TextOutOfRange {
        /// Requested start.
        index: u32,
        /// Requested length (0 for inserts).
        len: u32,
        /// Current text length in the document's offset unit.
        text_len: u32,
    },
    /// A text index falls inside a character (a surrogate pair or a UTF-8 sequence).
    #[error("text index {0} splits a character")]
    SplitsCharacter(u32),
}

/// A block's place on the grid, in columns (`x`, `w`) and rows (`y`, `h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Left column, from 0.
    pub x: i64,
    /// Top row, from 0.
    pub y: i64,
    /// Width in columns, at least 1.
    pub w: i64,
    /// Height in rows, at least 1.
    pub h: i64,
}

impl Position {
    /// Checks `0 <= x`, `0 <= y`, `w >= 1`, `h >= 1`, `x + w <= columns` and
    /// `y + h <= MAX_COORD`.
    pub fn check(&self, columns: i64) -> Result<(), EditError> {
        let Position { x, y, w, h } = *self;
        let fits_x = x.checked_add(w).is_some_and(|end| end <= columns);
        let fits_y = y.checked_add(h).is_some_and(|end| end <= MAX_COORD);
        if x >= 0 && y >= 0 && w >= 1 && h >= 1 && fits_x && fits_y {
            Ok(())
        } else {
            Err(EditError::OutOfGrid {
                x,
                y,
                w,
                h,
                columns,
            })
        }
    }
}

/// A block to add with [`add_block`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewBlock {
    /// Unique block id (the key in root `blocks`).
    pub id: String,
    /// Block type: "chart", "narrative", "table", ...
    pub block_type: String,
    /// Where it goes.
    pub position: Position,
    /// Its content: a JSON object. For a narrative block, `text` (a string, default empty)
    /// becomes a `Y.Text`; `data_bindings` (an array) becomes a `Y.Array` in any block.
    pub content: serde_json::Value,
    /// User id of the author.
    pub created_by: String,
    /// ISO-8601 creation time.
    pub created_at: String,
}

fn blocks_root<T: ReadTxn>(txn: &T) -> Option<MapRef> {
    txn.get_map(BLOCKS)
}

/// The block map with this id, or [`EditError::NoSuchBlock`].
pub(crate) fn block_map<T: ReadTxn>(txn: &T, id: &str) -> Result<MapRef, EditError> {
    blocks_root(txn)
        .and_then(|blocks| child_map(txn, &blocks, id))
        .ok_or_else(|| EditError::NoSuchBlock(id.to_owned()))
}

pub(crate) fn malformed(id: &str, what: &'static str) -> EditError {
    EditError::MalformedBlock {
        id: id.to_owned(),
        what,
    }
}

/// A block's position, if its position map holds four integers.
pub fn block_position<T: ReadTxn>(txn: &T, id: &str) -> Option<Position> {
    let block = block_map(txn, id).ok()?;
    read_position(txn, &block)
}

fn read_position<T: ReadTxn>(txn: &T, block: &MapRef) -> Option<Position> {
    let pos = child_map(txn, block, POSITION)?;
    Some(Position {
        x: int_at(txn, &pos, "x")?,
        y: int_at(txn, &pos, "y")?,
        w: int_at(txn, &pos, "w")?,
        h: int_at(txn, &pos, "h")?,
    })
}

pub(crate) fn touch(txn: &mut TransactionMut, block: &MapRef, by: &str, at: &str) {
    let meta: MapRef = block.get_or_init(txn, METADATA);
    meta.try_update(txn, "last_modified_by", by);
    meta.try_update(txn, "last_modified_at", at);
}

/// The grid's column count: `layout.columns` if it is a positive integer, else 12.
pub fn columns<T: ReadTxn>(txn: &T) -> i64 {
    txn.get_map(LAYOUT)
        .and_then(|layout| int_at(txn, &layout, "columns"))
        .filter(|&c| (1..=MAX_COORD).contains(&c))
        .unwrap_or(DEFAULT_COLUMNS)
}

/// Every block id, sorted.
pub fn block_ids<T: ReadTxn>(txn: &T) -> Vec<String> {
    let mut ids: Vec<String> = match blocks_root(txn) {
        Some(blocks) => blocks.keys(txn).map(str::to_owned).collect(),
        None => Vec::new(),
    };
    ids.sort();
    ids
}

/// Whether a block with this id exists (as a map).
pub fn has_block<T: ReadTxn>(txn: &T, id: &str) -> bool {
    block_map(txn, id).is_ok()
}

/// A block's type, if it has a string `type`.
pub fn block_type<T: ReadTxn>(txn: &T, id: &str) -> Option<String> {
    let block = block_map(txn, id).ok()?;
    string_at(txn, &block, "type")
}

fn json_to_any(key: &str, value: &serde_json::Value) -> Result<Any, EditError> {
    yrs::encoding::serde::to_any(value).map_err(|e| EditError::InvalidContent {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn content_prelim(block_type: &str, content: &serde_json::Value) -> Result<MapPrelim, EditError> {
    let obj = content.as_object().ok_or(EditError::ContentNotObject)?;
    let narrative = block_type == NARRATIVE;
    let mut prelim = MapPrelim::default();
    for (key, value) in obj {
        let input = if narrative && key == TEXT_KEY {
            let text = value.as_str().ok_or_else(|| EditError::InvalidContent {
                key: key.clone(),
                reason: "narrative text must be a string".into(),
            })?;
            In::from(TextPrelim::new(text))
        } else if key == DATA_BINDINGS_KEY {
            let items = value.as_array().ok_or_else(|| EditError::InvalidContent {
                key: key.clone(),
                reason: "data_bindings must be an array".into(),
            })?;
            let items = items
                .iter()
                .map(|v| json_to_any(key, v))
                .collect::<Result<Vec<Any>, _>>()?;
            In::from(ArrayPrelim::from(items))
        } else {
            In::Any(json_to_any(key, value)?)
        };
        prelim.insert(key.as_str().into(), input);
    }
    if narrative && !obj.contains_key(TEXT_KEY) {
        prelim.insert(TEXT_KEY.into(), In::from(TextPrelim::new("")));
    }
    Ok(prelim)
}

/// Adds a block: `blocks[id] = {id, type, position, content, metadata}`.
///
/// Refuses an empty id or type, an existing id, a position outside the grid (see
/// [`Position::check`] against [`columns`]) and content that is not a JSON object (or whose
/// narrative `text` is not a string, or whose `data_bindings` is not an array).
pub fn add_block(txn: &mut TransactionMut, block: &NewBlock) -> Result<(), EditError> {
    if block.id.is_empty() {
        return Err(EditError::EmptyId);
    }
    if block.block_type.is_empty() {
        return Err(EditError::EmptyType);
    }
    if let Some(blocks) = blocks_root(&*txn)
        && blocks.contains_key(&*txn, &block.id)
    {
        return Err(EditError::DuplicateBlock(block.id.clone()));
    }
    block.position.check(columns(&*txn))?;
    let content = content_prelim(&block.block_type, &block.content)?;

    let Position { x, y, w, h } = block.position;
    let position = MapPrelim::from([
        ("x", In::from(x)),
        ("y", In::from(y)),
        ("w", In::from(w)),
        ("h", In::from(h)),
    ]);
    let metadata = MapPrelim::from([
        ("created_by", In::from(block.created_by.as_str())),
        ("created_at", In::from(block.created_at.as_str())),
        ("last_modified_by", In::from(block.created_by.as_str())),
        ("last_modified_at", In::from(block.created_at.as_str())),
    ]);
    let map = MapPrelim::from([
        ("id", In::from(block.id.as_str())),
        ("type", In::from(block.block_type.as_str())),
        (POSITION, In::from(position)),
        (CONTENT, In::from(content)),
        (METADATA, In::from(metadata)),
    ]);
    let blocks = txn.get_or_insert_map(BLOCKS);
    blocks.insert(txn, block.id.as_str(), map);
    Ok(())
}

fn set_position(
    txn: &mut TransactionMut,
    id: &str,
    change: impl FnOnce(Position) -> Position,
    by: &str,
    at: &str,
) -> Result<(), EditError> {
    let block = block_map(&*txn, id)?;
    let pos_map =
        child_map(&*txn, &block, POSITION).ok_or_else(|| malformed(id, "no position map"))?;
    let old = read_position(&*txn, &block).ok_or_else(|| malformed(id, "position not integers"))?;
    let new = change(old);
    new.check(columns(&*txn))?;
    let mut changed = false;
    for (key, old_v, new_v) in [
        ("x", old.x, new.x),
        ("y", old.y, new.y),
        ("w", old.w, new.w),
        ("h", old.h, new.h),
    ] {
        if old_v != new_v {
            pos_map.insert(txn, key, new_v);
            changed = true;
        }
    }
    if changed {
        touch(txn, &block, by, at);
    }
    Ok(())
}

/// Moves a block to column `x`, row `y` (keeping its size). Writes only the coordinates that
/// change, and the block's `last_modified_by/at` if anything changed.
pub fn move_block(
    txn: &mut TransactionMut,
    id: &str,
    x: i64,
    y: i64,
    by: &str,
    at: &str,
) -> Result<(), EditError> {
    set_position(txn, id, |p| Position { x, y, ..p }, by, at)
}

/// Resizes a block to `w` columns by `h` rows (keeping its place). Writes only what changes.
pub fn resize_block(
    txn: &mut TransactionMut,
    id: &str,
    w: i64,
    h: i64,
    by: &str,
    at: &str,
) -> Result<(), EditError> {
    set_position(txn, id, |p| Position { w, h, ..p }, by, at)
}

/// Removes a block.
pub fn remove_block(txn: &mut TransactionMut, id: &str) -> Result<(), EditError> {
    let blocks = blocks_root(&*txn).ok_or_else(|| EditError::NoSuchBlock(id.to_owned()))?;
    if !blocks.contains_key(&*txn, id) {
        return Err(EditError::NoSuchBlock(id.to_owned()));
    }
    blocks.remove(txn, id);
    Ok(())
}

/// Sets one key of a block's content to a JSON value (a plain value, not a shared type);
/// writes nothing if the value is already there. Refuses `text` on a narrative block (use
/// [`insert_text`](crate::text::insert_text) / [`delete_text`](crate::text::delete_text));
/// a `data_bindings` array is stored as a `Y.Array`.
pub fn set_content(
    txn: &mut TransactionMut,
    id: &str,
    key: &str,
    value: &serde_json::Value,
    by: &str,
    at: &str,
) -> Result<(), EditError> {
    let block = block_map(&*txn, id)?;
    let kind = string_at(&*txn, &block, "type").unwrap_or_default();
    if kind == NARRATIVE && key == TEXT_KEY {
        return Err(EditError::InvalidContent {
            key: key.to_owned(),
            reason: "narrative text is edited with insert_text/delete_text".into(),
        });
    }
    let mut one = serde_json::Map::new();
    one.insert(key.to_owned(), value.clone());
    let mut prelim = content_prelim("", &serde_json::Value::Object(one))?;
    let content: MapRef = block.get_or_init(txn, CONTENT);
    let changed = match prelim.remove(key) {
        Some(In::Any(any)) => content.try_update(txn, key, any),
        Some(other) => {
            content.insert(txn, key, other);
            true
        }
        None => false,
    };
    if changed {
        touch(txn, &block, by, at);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::init::tests::canvas;
    use crate::values::child_map;
    use serde_json::json;
    use yrs::{Map, ReadTxn, Transact, WriteTxn};

    pub(crate) fn block(id: &str, kind: &str, x: i64, y: i64, w: i64, h: i64) -> NewBlock {
        NewBlock {
            id: id.into(),
            block_type: kind.into(),
            position: Position { x, y, w, h },
            content: json!({}),
            created_by: "u1".into(),
            created_at: "2024-01-15T10:30:00Z".into(),
        }
    }

    #[test]
    fn add_move_resize_remove() {
        let d = canvas();
        let mut txn = d.transact_mut();
        add_block(&mut txn, &block("b1", "chart", 0, 0, 6, 4)).expect("add");
        assert_eq!(
            add_block(&mut txn, &block("b1", "chart", 0, 0, 6, 4)),
            Err(EditError::DuplicateBlock("b1".into()))
        );
        move_block(&mut txn, "b1", 6, 2, "u2", "t2").expect("move");
        assert_eq!(
            block_position(&txn, "b1"),
            Some(Position {
                x: 6,
                y: 2,
                w: 6,
                h: 4
            })
        );
        assert!(matches!(
            move_block(&mut txn, "b1", 7, 0, "u2", "t3"),
            Err(EditError::OutOfGrid { .. })
        ));
        assert!(matches!(
            resize_block(&mut txn, "b1", 7, 1, "u2", "t3"),
            Err(EditError::OutOfGrid { .. })
        ));
        resize_block(&mut txn, "b1", 3, 1, "u3", "t4").expect("resize");
        assert_eq!(
            block_position(&txn, "b1"),
            Some(Position {
                x: 6,
                y: 2,
                w: 3,
                h: 1
            })
        );
        assert_eq!(block_ids(&txn), vec!["b1".to_string()]);
        remove_block(&mut txn, "b1").expect("remove");
        assert_eq!(
            remove_block(&mut txn, "b1"),
            Err(EditError::NoSuchBlock("b1".into()))
        );
        assert!(block_ids(&txn).is_empty());
    }

    #[test]
    fn add_block_validates() {
        let d = canvas();
        let mut txn = d.transact_mut();
        assert_eq!(
            add_block(&mut txn, &block("", "chart", 0, 0, 1, 1)),
            Err(EditError::EmptyId)
        );
        assert_eq!(
            add_block(&mut txn, &block("a", "", 0, 0, 1, 1)),
            Err(EditError::EmptyType)
        );
        for (x, y, w, h) in [
            (-1, 0, 1, 1),
            (0, -1, 1, 1),
            (0, 0, 0, 1),
            (0, 0, 1, 0),
            (11, 0, 2, 1),
            (i64::MAX, 0, 1, 1),
            (0, MAX_COORD, 1, 1),
            (0, i64::MAX, i64::MAX, 1),
        ] {
            assert!(
                matches!(
                    add_block(&mut txn, &block("a", "chart", x, y, w, h)),
                    Err(EditError::OutOfGrid { .. })
                ),
                "{x} {y} {w} {h}"
            );
        }
        let mut b = block("a", "chart", 0, 0, 12, 1);
        b.content = json!([1]);
        assert_eq!(add_block(&mut txn, &b), Err(EditError::ContentNotObject));
        b.content = json!({"data_bindings": 3});
        assert!(matches!(
            add_block(&mut txn, &b),
            Err(EditError::InvalidContent { .. })
        ));
        b.block_type = NARRATIVE.into();
        b.content = json!({"text": 3});
        assert!(matches!(
            add_block(&mut txn, &b),
            Err(EditError::InvalidContent { .. })
        ));
        b.content = json!({"big": u64::MAX});
        b.block_type = "chart".into();
        assert!(matches!(
            add_block(&mut txn, &b),
            Err(EditError::InvalidContent { .. })
        ));
        assert!(block_ids(&txn).is_empty());
    }

    #[test]
    fn columns_come_from_the_doc_and_accept_js_floats() {
        let d = canvas();
        let mut txn = d.transact_mut();
        let layout = txn.get_or_insert_map(LAYOUT);
        layout.insert(&mut txn, "columns", 24.0f64);
        assert_eq!(columns(&txn), 24);
        add_block(&mut txn, &block("wide", "chart", 12, 0, 12, 1)).expect("fits in 24");
        layout.insert(&mut txn, "columns", 2.5f64);
        assert_eq!(columns(&txn), 12);
        layout.insert(&mut txn, "columns", "many");
        assert_eq!(columns(&txn), 12);
        layout.insert(&mut txn, "columns", -3);
        assert_eq!(columns(&txn), 12);
    }

    #[test]
    fn positions_written_by_js_as_floats_are_read() {
        let d = canvas();
        let mut txn = d.transact_mut();
        add_block(&mut txn, &block("b", "chart", 0, 0, 2, 2)).expect("add");
        let pos = block_map(&txn, "b")
            .ok()
            .and_then(|b| child_map(&txn, &b, POSITION))
            .expect("pos");
        pos.insert(&mut txn, "x", 3.0f64);
        assert_eq!(
            block_position(&txn, "b"),
            Some(Position {
                x: 3,
                y: 0,
                w: 2,
                h: 2
            })
        );
        pos.insert(&mut txn, "x", 3.5f64);
        assert_eq!(block_position(&txn, "b"), None);
        assert!(matches!(
            move_block(&mut txn, "b", 1, 1, "u", "t"),
            Err(EditError::MalformedBlock { .. })
        ));
    }

    #[test]
    fn set_content_writes_one_key() {
        let d = canvas();
        let mut txn = d.transact_mut();
        let mut b = block("c", "chart", 0, 0, 6, 4);
        b.content = json!({"title": "a", "config": {"x_axis": "region"}});
        add_block(&mut txn, &b).expect("add");
        set_content(&mut txn, "c", "title", &json!("b"), "u9", "t9").expect("set");
        let content = block_map(&txn, "c")
            .ok()
            .and_then(|b| child_map(&txn, &b, CONTENT))
            .expect("content");
        assert_eq!(string_at(&txn, &content, "title").as_deref(), Some("b"));
        let sv = txn.state_vector();
        set_content(&mut txn, "c", "title", &json!("b"), "u9", "t10").expect("same value");
        assert_eq!(txn.state_vector(), sv, "an unchanged value writes nothing");
        let mut n = block("n", NARRATIVE, 0, 4, 6, 4);
        n.content = json!({"text": "x"});
        add_block(&mut txn, &n).expect("add");
        assert!(matches!(
            set_content(&mut txn, "n", "text", &json!("y"), "u", "t"),
            Err(EditError::InvalidContent { .. })
        ));
    }

    #[test]
    fn no_op_move_writes_nothing() {
        let d = canvas();
        add_block(&mut d.transact_mut(), &block("b", "chart", 0, 0, 2, 2)).expect("add");
        let sv = d.transact().state_vector();
        move_block(&mut d.transact_mut(), "b", 0, 0, "u", "t").expect("move");
        assert_eq!(d.transact().state_vector(), sv);
    }
}
