//! Typed edits on a canvas document, and tolerant readers of its settings.
//!
//! Every edit takes the caller's [`TransactionMut`], so several edits can share one
//! transaction (one update on the wire). Edits validate their input against the document
//! as it is now (block exists, position inside the grid, text range valid) and write only
//! the keys that change, so concurrent edits of different keys of one block merge cleanly.
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
//!
//! Text offsets follow the document's [`yrs::OffsetKind`]: canvases use UTF-16 (as Yjs),
//! and an index that would split a character (a surrogate pair in UTF-16, a multi-byte
//! sequence in bytes) is refused rather than corrupting the text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use yrs::types::ToJson;
use yrs::{
    Any, Array, ArrayPrelim, ArrayRef, GetString, In, Map, MapPrelim, MapRef, OffsetKind, Out,
    ReadTxn, Text, TextPrelim, TextRef, TransactionMut, WriteTxn,
};

use crate::role::Role;
use crate::schema::{
    BLOCKS, CONTENT, DEFAULT_BREAKPOINTS, DEFAULT_COLUMNS, DEFAULT_ROW_HEIGHT, LAYOUT, META,
    METADATA, POSITION, SHARING,
};

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

/// The canvas's descriptive fields (root `meta`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanvasMeta {
    /// Display name.
    pub name: String,
    /// Optional longer description.
    pub description: Option<String>,
    /// The project the canvas belongs to.
    pub project_id: String,
    /// The user who owns the canvas.
    pub owner_id: String,
    /// Free-form tags.
    pub tags: Vec<String>,
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

/// Who may see a canvas beyond its project members and grantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Only project members and grantees.
    #[default]
    Private,
    /// Every member of the organization may view.
    Team,
    /// Anyone with the public link may view.
    Public,
}

impl Visibility {
    /// The stored name: "private", "team" or "public".
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Team => "team",
            Visibility::Public => "public",
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a visibility that is not one of `private`, `team`, `public`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown visibility {0:?}: expected private, team or public")]
pub struct UnknownVisibility(pub String);

impl FromStr for Visibility {
    type Err = UnknownVisibility;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "private" => Ok(Visibility::Private),
            "team" => Ok(Visibility::Team),
            "public" => Ok(Visibility::Public),
            other => Err(UnknownVisibility(other.to_owned())),
        }
    }
}

/// One entry of `sharing.permissions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The user the role is granted to.
    pub user_id: String,
    /// The granted role (never [`Role::Owner`]: see [`sharing`]).
    pub role: Role,
    /// ISO-8601 time of the grant, if recorded.
    pub granted_at: Option<String>,
    /// Who granted it, if recorded.
    pub granted_by: Option<String>,
}

/// The canvas's sharing settings as read by [`sharing`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Sharing {
    /// Visibility (default private).
    pub visibility: Visibility,
    /// Grants, sorted by user id.
    pub grants: Vec<Grant>,
    /// The public link token, if any.
    pub public_link: Option<String>,
    /// Whether embedding is allowed.
    pub embed_enabled: bool,
    /// Domains allowed to embed.
    pub allowed_domains: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// small helpers

/// An integral number, whether stored as an integer or as an integral float (JS numbers).
pub(crate) fn out_i64(out: &Out) -> Option<i64> {
    match out {
        Out::Any(Any::Number(n)) => n.as_i64(),
        _ => None,
    }
}

fn out_string(out: &Out) -> Option<String> {
    match out {
        Out::Any(Any::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

fn any_string(any: Option<&Any>) -> Option<String> {
    match any {
        Some(Any::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

fn child_map<T: ReadTxn>(txn: &T, map: &MapRef, key: &str) -> Option<MapRef> {
    map.get(txn, key)?.cast::<MapRef>().ok()
}

fn int_at<T: ReadTxn>(txn: &T, map: &MapRef, key: &str) -> Option<i64> {
    map.get(txn, key).as_ref().and_then(out_i64)
}

fn string_at<T: ReadTxn>(txn: &T, map: &MapRef, key: &str) -> Option<String> {
    map.get(txn, key).as_ref().and_then(out_string)
}

fn blocks_root<T: ReadTxn>(txn: &T) -> Option<MapRef> {
    txn.get_map(BLOCKS)
}

/// The block map with this id, or [`EditError::NoSuchBlock`].
fn block_map<T: ReadTxn>(txn: &T, id: &str) -> Result<MapRef, EditError> {
    blocks_root(txn)
        .and_then(|blocks| child_map(txn, &blocks, id))
        .ok_or_else(|| EditError::NoSuchBlock(id.to_owned()))
}

fn malformed(id: &str, what: &'static str) -> EditError {
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

fn touch(txn: &mut TransactionMut, block: &MapRef, by: &str, at: &str) {
    let meta: MapRef = block.get_or_init(txn, METADATA);
    meta.try_update(txn, "last_modified_by", by);
    meta.try_update(txn, "last_modified_at", at);
}

fn strings_prelim(items: &[String]) -> ArrayPrelim {
    items.iter().map(|s| Any::from(s.as_str())).collect()
}

// ---------------------------------------------------------------------------------------
// canvas

/// Fills a new canvas: root `meta` from `meta`, `layout` with the seed's grid defaults,
/// an empty `blocks` map and private `sharing` (no grants, no public link, embedding off).
///
/// Meant for a fresh document; on an existing one it overwrites these keys (not blocks).
pub fn init_canvas(txn: &mut TransactionMut, meta: &CanvasMeta) {
    let root = txn.get_or_insert_map(META);
    root.insert(txn, "name", meta.name.as_str());
    root.insert(
        txn,
        "description",
        Any::from(meta.description.as_deref().map(Any::from)),
    );
    root.insert(txn, "project_id", meta.project_id.as_str());
    root.insert(txn, "owner_id", meta.owner_id.as_str());
    root.insert(txn, "tags", strings_prelim(&meta.tags));

    let layout = txn.get_or_insert_map(LAYOUT);
    layout.insert(txn, "type", "grid");
    layout.insert(txn, "columns", DEFAULT_COLUMNS);
    layout.insert(txn, "rowHeight", DEFAULT_ROW_HEIGHT);
    let breakpoints: MapPrelim = DEFAULT_BREAKPOINTS
        .iter()
        .map(|&(k, v)| (k, In::from(v)))
        .collect();
    layout.insert(txn, "breakpoints", breakpoints);

    txn.get_or_insert_map(BLOCKS);

    let sharing = txn.get_or_insert_map(SHARING);
    sharing.insert(txn, "visibility", Visibility::Private.as_str());
    sharing.insert(txn, "permissions", MapPrelim::default());
    sharing.insert(txn, "public_link", Any::Null);
    sharing.insert(
        txn,
        "embed_settings",
        MapPrelim::from([
            ("enabled", In::from(false)),
            ("allowed_domains", In::from(ArrayPrelim::default())),
        ]),
    );
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

// ---------------------------------------------------------------------------------------
// blocks

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
/// writes nothing if the value is already there. Refuses `text` on a narrative block (use [`insert_text`] / [`delete_text`]); a
/// `data_bindings` array is stored as a `Y.Array`.
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

// ---------------------------------------------------------------------------------------
// narrative text

fn narrative_text<T: ReadTxn>(txn: &T, id: &str) -> Result<(MapRef, TextRef), EditError> {
    let block = block_map(txn, id)?;
    if string_at(txn, &block, "type").as_deref() != Some(NARRATIVE) {
        return Err(EditError::NotNarrative(id.to_owned()));
    }
    let content = child_map(txn, &block, CONTENT).ok_or_else(|| malformed(id, "no content map"))?;
    let text = content
        .get(txn, TEXT_KEY)
        .and_then(|o| o.cast::<TextRef>().ok())
        .ok_or_else(|| malformed(id, "content.text is not a Y.Text"))?;
    Ok((block, text))
}

/// Whether `index` (in the document's offset unit) is a character boundary of `s`.
fn is_boundary(s: &str, index: u32, kind: OffsetKind) -> bool {
    let index = index as usize;
    match kind {
        OffsetKind::Bytes => s.is_char_boundary(index),
        OffsetKind::Utf16 => {
            let mut at = 0usize;
            for c in s.chars() {
                if at >= index {
                    break;
                }
                at += c.len_utf16();
            }
            at == index
        }
    }
}

fn check_range(
    txn: &TransactionMut,
    text: &TextRef,
    index: u32,
    len: u32,
) -> Result<(), EditError> {
    let text_len = text.len(txn);
    let end = index.checked_add(len);
    if end.is_none_or(|end| end > text_len) {
        return Err(EditError::TextOutOfRange {
            index,
            len,
            text_len,
        });
    }
    let kind = txn.doc().offset_kind();
    let s = text.get_string(txn);
    for at in [index, index + len] {
        if !is_boundary(&s, at, kind) {
            return Err(EditError::SplitsCharacter(at));
        }
    }
    Ok(())
}

/// Inserts `text` at `index` of a narrative block's `content.text`.
pub fn insert_text(
    txn: &mut TransactionMut,
    block_id: &str,
    index: u32,
    text: &str,
    by: &str,
    at: &str,
) -> Result<(), EditError> {
    let (block, ytext) = narrative_text(&*txn, block_id)?;
    check_range(txn, &ytext, index, 0)?;
    if !text.is_empty() {
        ytext.insert(txn, index, text);
        touch(txn, &block, by, at);
    }
    Ok(())
}

/// Deletes `len` units from `index` of a narrative block's `content.text`.
pub fn delete_text(
    txn: &mut TransactionMut,
    block_id: &str,
    index: u32,
    len: u32,
    by: &str,
    at: &str,
) -> Result<(), EditError> {
    let (block, ytext) = narrative_text(&*txn, block_id)?;
    check_range(txn, &ytext, index, len)?;
    if len > 0 {
        ytext.remove_range(txn, index, len);
        touch(txn, &block, by, at);
    }
    Ok(())
}

/// A narrative block's text, if the block exists and its `content.text` is a `Y.Text`.
pub fn narrative<T: ReadTxn>(txn: &T, block_id: &str) -> Option<String> {
    let (_, text) = narrative_text(txn, block_id).ok()?;
    Some(text.get_string(txn))
}

// ---------------------------------------------------------------------------------------
// sharing

fn sharing_root(txn: &mut TransactionMut) -> MapRef {
    txn.get_or_insert_map(SHARING)
}

/// Sets `sharing.visibility`.
pub fn set_visibility(txn: &mut TransactionMut, visibility: Visibility) {
    let sharing = sharing_root(txn);
    sharing.try_update(txn, "visibility", visibility.as_str());
}

/// Grants `role` on this canvas to `user_id`: `permissions[user_id] = {role, granted_at,
/// granted_by}` (one map written at once, so a concurrent grant to the same user wins whole).
pub fn grant(
    txn: &mut TransactionMut,
    user_id: &str,
    role: Role,
    granted_by: &str,
    granted_at: &str,
) {
    let sharing = sharing_root(txn);
    let permissions: MapRef = sharing.get_or_init(txn, "permissions");
    permissions.insert(
        txn,
        user_id,
        MapPrelim::from([
            ("role", In::from(role.as_str())),
            ("granted_at", In::from(granted_at)),
            ("granted_by", In::from(granted_by)),
        ]),
    );
}

/// Removes `user_id`'s grant; `false` if there was none.
pub fn revoke(txn: &mut TransactionMut, user_id: &str) -> bool {
    let Some(permissions) = txn
        .get_map(SHARING)
        .and_then(|s| child_map(&*txn, &s, "permissions"))
    else {
        return false;
    };
    permissions.remove(txn, user_id).is_some()
}

/// Sets or clears `sharing.public_link`.
pub fn set_public_link(txn: &mut TransactionMut, link: Option<&str>) {
    let sharing = sharing_root(txn);
    sharing.try_update(txn, "public_link", Any::from(link.map(Any::from)));
}

/// Sets `sharing.embed_settings`: `enabled`, and `allowed_domains` replaced as a whole.
pub fn set_embed(txn: &mut TransactionMut, enabled: bool, allowed_domains: &[String]) {
    let sharing = sharing_root(txn);
    let embed: MapRef = sharing.get_or_init(txn, "embed_settings");
    embed.try_update(txn, "enabled", enabled);
    let current: Option<Vec<String>> = embed
        .get(&*txn, "allowed_domains")
        .and_then(|o| o.cast::<ArrayRef>().ok())
        .map(|a| a.iter(&*txn).filter_map(|o| out_string(&o)).collect());
    if current.as_deref() != Some(allowed_domains) {
        embed.insert(txn, "allowed_domains", strings_prelim(allowed_domains));
    }
}

/// Reads `sharing`, tolerating anything clients may have written: an unknown visibility reads
/// as private; a grant whose value is not a map (a `Y.Map` or a plain object) or whose role is
/// not a known role is skipped; an `owner` grant reads as [`Role::Admin`] (ownership comes
/// from the project, never from a grant); missing embed settings read as disabled.
pub fn sharing<T: ReadTxn>(txn: &T) -> Sharing {
    let Some(root) = txn.get_map(SHARING) else {
        return Sharing::default();
    };
    let visibility = string_at(txn, &root, "visibility")
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();

    let mut grants = Vec::new();
    if let Some(permissions) = child_map(txn, &root, "permissions") {
        for (user_id, value) in permissions.iter(txn) {
            let Any::Map(entry) = value.to_json(txn) else {
                continue;
            };
            let Some(role) = any_string(entry.get("role")).and_then(|r| r.parse::<Role>().ok())
            else {
                continue;
            };
            grants.push(Grant {
                user_id: user_id.to_owned(),
                role: role.min(Role::Admin),
                granted_at: any_string(entry.get("granted_at")),
                granted_by: any_string(entry.get("granted_by")),
            });
        }
    }
    grants.sort_by(|a, b| a.user_id.cmp(&b.user_id));

    let public_link = string_at(txn, &root, "public_link").filter(|s| !s.is_empty());

    let (embed_enabled, allowed_domains) =
        match root.get(txn, "embed_settings").map(|o| o.to_json(txn)) {
            Some(Any::Map(embed)) => {
                let enabled = matches!(embed.get("enabled"), Some(Any::Bool(true)));
                let domains = match embed.get("allowed_domains") {
                    Some(Any::Array(items)) => {
                        items.iter().filter_map(|a| any_string(Some(a))).collect()
                    }
                    _ => Vec::new(),
                };
                (enabled, domains)
            }
            _ => (false, Vec::new()),
        };

    Sharing {
        visibility,
        grants,
        public_link,
        embed_enabled,
        allowed_domains,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::new_doc;
    use serde_json::json;
    use yrs::{Doc, Transact};

    fn meta() -> CanvasMeta {
        CanvasMeta {
            name: "Q4".into(),
            description: None,
            project_id: "p1".into(),
            owner_id: "u1".into(),
            tags: vec!["sales".into(), "q4".into()],
        }
    }

    fn block(id: &str, kind: &str, x: i64, y: i64, w: i64, h: i64) -> NewBlock {
        NewBlock {
            id: id.into(),
            block_type: kind.into(),
            position: Position { x, y, w, h },
            content: json!({}),
            created_by: "u1".into(),
            created_at: "2024-01-15T10:30:00Z".into(),
        }
    }

    fn canvas() -> Doc {
        let d = new_doc();
        init_canvas(&mut d.transact_mut(), &meta());
        d
    }

    #[test]
    fn init_fills_defaults() {
        let d = canvas();
        let txn = d.transact();
        assert_eq!(columns(&txn), 12);
        assert_eq!(sharing(&txn), Sharing::default());
        assert!(block_ids(&txn).is_empty());
        let layout = txn.get_map(LAYOUT).expect("layout");
        // Stored as integers, not floats.
        assert_eq!(
            layout.get(&txn, "columns"),
            Some(Out::Any(Any::Number(yrs::any::Number::Int(12))))
        );
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
    fn narrative_text_edits() {
        let d = canvas();
        let mut txn = d.transact_mut();
        let mut b = block("n", NARRATIVE, 0, 0, 6, 4);
        b.content = json!({"text": "a😀b", "data_bindings": [{"key": "k", "value": 25.3}]});
        add_block(&mut txn, &b).expect("add");
        add_block(&mut txn, &block("c", "chart", 6, 0, 6, 4)).expect("add");
        assert_eq!(narrative(&txn, "n").as_deref(), Some("a😀b"));
        // 😀 is two UTF-16 units: indexes 1 and 3 are boundaries, 2 is not.
        assert_eq!(
            insert_text(&mut txn, "n", 2, "x", "u", "t"),
            Err(EditError::SplitsCharacter(2))
        );
        assert_eq!(
            delete_text(&mut txn, "n", 1, 1, "u", "t"),
            Err(EditError::SplitsCharacter(2))
        );
        assert!(matches!(
            insert_text(&mut txn, "n", 5, "x", "u", "t"),
            Err(EditError::TextOutOfRange { text_len: 4, .. })
        ));
        assert!(matches!(
            delete_text(&mut txn, "n", 3, u32::MAX, "u", "t"),
            Err(EditError::TextOutOfRange { .. })
        ));
        insert_text(&mut txn, "n", 3, "!", "u", "t").expect("insert");
        assert_eq!(narrative(&txn, "n").as_deref(), Some("a😀!b"));
        delete_text(&mut txn, "n", 1, 2, "u", "t").expect("delete");
        assert_eq!(narrative(&txn, "n").as_deref(), Some("a!b"));
        assert_eq!(
            insert_text(&mut txn, "c", 0, "x", "u", "t"),
            Err(EditError::NotNarrative("c".into()))
        );
        assert_eq!(
            insert_text(&mut txn, "zz", 0, "x", "u", "t"),
            Err(EditError::NoSuchBlock("zz".into()))
        );
        // A narrative without text gets an empty Y.Text.
        add_block(&mut txn, &block("n2", NARRATIVE, 0, 4, 6, 4)).expect("add");
        insert_text(&mut txn, "n2", 0, "hi", "u", "t").expect("insert");
        assert_eq!(narrative(&txn, "n2").as_deref(), Some("hi"));
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
    fn sharing_round_trip() {
        let d = canvas();
        let mut txn = d.transact_mut();
        set_visibility(&mut txn, Visibility::Team);
        grant(&mut txn, "u2", Role::Editor, "u1", "2024-01-10T09:00:00Z");
        grant(&mut txn, "u0", Role::Viewer, "u1", "2024-01-11T09:00:00Z");
        set_public_link(&mut txn, Some("tok"));
        set_embed(&mut txn, true, &["example.com".to_string()]);
        let s = sharing(&txn);
        assert_eq!(s.visibility, Visibility::Team);
        assert_eq!(
            s.grants
                .iter()
                .map(|g| (g.user_id.as_str(), g.role))
                .collect::<Vec<_>>(),
            vec![("u0", Role::Viewer), ("u2", Role::Editor)]
        );
        assert_eq!(s.grants[1].granted_by.as_deref(), Some("u1"));
        assert_eq!(s.public_link.as_deref(), Some("tok"));
        assert!(s.embed_enabled);
        assert_eq!(s.allowed_domains, vec!["example.com".to_string()]);
        assert!(revoke(&mut txn, "u2"));
        assert!(!revoke(&mut txn, "u2"));
        set_public_link(&mut txn, None);
        let s = sharing(&txn);
        assert_eq!(s.grants.len(), 1);
        assert_eq!(s.public_link, None);
    }

    #[test]
    fn sharing_reader_tolerates_garbage() {
        let d = new_doc();
        let mut txn = d.transact_mut();
        assert_eq!(sharing(&txn), Sharing::default());
        let root = txn.get_or_insert_map(SHARING);
        root.insert(&mut txn, "visibility", "everyone");
        root.insert(&mut txn, "embed_settings", 7);
        let perms = root.insert(&mut txn, "permissions", MapPrelim::default());
        perms.insert(
            &mut txn,
            "bad-role",
            MapPrelim::from([("role", In::from("god"))]),
        );
        perms.insert(&mut txn, "not-a-map", "editor");
        perms.insert(
            &mut txn,
            "owner",
            MapPrelim::from([("role", In::from("owner"))]),
        );
        // A JS client writing a plain object instead of a Y.Map.
        let plain = Any::from(std::collections::HashMap::from([(
            "role".to_string(),
            Any::from("admin"),
        )]));
        perms.insert(&mut txn, "plain", plain);
        let s = sharing(&txn);
        assert_eq!(s.visibility, Visibility::Private);
        assert!(!s.embed_enabled);
        assert_eq!(
            s.grants
                .iter()
                .map(|g| (g.user_id.as_str(), g.role))
                .collect::<Vec<_>>(),
            vec![("owner", Role::Admin), ("plain", Role::Admin)]
        );
        assert_eq!(s.grants[0].granted_at, None);
    }

    #[test]
    fn visibility_parses() {
        for v in [Visibility::Private, Visibility::Team, Visibility::Public] {
            assert_eq!(v.as_str().parse::<Visibility>(), Ok(v));
            assert_eq!(serde_json::to_value(v).ok(), Some(json!(v.as_str())));
        }
        assert!("open".parse::<Visibility>().is_err());
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
