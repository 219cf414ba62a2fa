//! A parser for Yjs v1 updates over yrs's public decoding traits.
//!
//! It mirrors `Update::decode` / `Update::decode_block` of yrs 0.28.1 (`src/update.rs`) but
//! keeps what the inspector needs (ids, lengths, origins, parents, keys, a light view of the
//! content) and is stricter where yrs would panic, abort or allocate without bound on hostile
//! input:
//!
//! - client ids must fit in 53 bits (`ClientID::new` has a `debug_assert` on that);
//! - clock arithmetic is checked (yrs adds `clock + len` unchecked);
//! - `Any` values are pre-scanned iteratively with a nesting limit before yrs decodes them
//!   (yrs's `Any::decode` recurses without limit: a deep value would overflow the stack), and
//!   an integer in them may take at most 10 bytes (yrs's `read_var_i64` shifts an 11th byte
//!   by 69 bits: a panic with overflow checks, as in debug builds; found by fuzzing);
//! - a client may appear only once among the blocks and once in the delete set.
//!
//! Everything this parser accepts, yrs's own `Update::decode_v1` accepts too.

use std::sync::Arc;
use yrs::block::ItemContent;
use yrs::encoding::read::{Error as ReadError, Read};
use yrs::types::TypeRef;
use yrs::updates::decoder::{Decode, Decoder};
use yrs::{Any, ClientID, ID};

/// Largest client id a Yjs peer may use (53 bits).
const MAX_CLIENT: u64 = (1u64 << 53) - 1;
/// Longest signed var int accepted inside an `Any` value (yrs's `read_var_i64` overflows its
/// shift on an 11th byte).
const MAX_VAR_INT_BYTES: usize = 10;
/// Deepest nesting of arrays and maps accepted inside one `Any` value.
const MAX_ANY_DEPTH: usize = 64;

const BLOCK_GC: u8 = 0;
const BLOCK_SKIP: u8 = 10;
const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;

const CONTENT_DELETED: u8 = 1;
const CONTENT_JSON: u8 = 2;
const CONTENT_STRING: u8 = 4;
const CONTENT_TYPE: u8 = 7;
const CONTENT_ANY: u8 = 8;
const CONTENT_DOC: u8 = 9;

/// Why bytes could not be parsed as an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError(pub String);

impl From<ReadError> for ParseError {
    fn from(e: ReadError) -> Self {
        ParseError(e.to_string())
    }
}

fn bad(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

/// A v1 decoder over a byte slice that refuses what would make yrs panic.
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Dec { buf, pos: 0 }
    }

    fn read_id(&mut self) -> Result<ID, ReadError> {
        let client = self.read_client()?;
        let clock: u32 = self.read_var()?;
        Ok(ID::new(client, clock))
    }

    /// Skips one `Any` value without allocating, checking its nesting depth. Returns an error
    /// for truncated or too deeply nested values.
    fn scan_any(&mut self) -> Result<(), ReadError> {
        // Each entry: how many values are still to be read at that level, and whether the
        // level is a map (each value preceded by a key).
        let mut stack: Vec<(u64, bool)> = Vec::new();
        let mut pending: u64 = 1;
        let mut in_map = false;
        loop {
            if pending == 0 {
                match stack.pop() {
                    Some((p, m)) => {
                        pending = p;
                        in_map = m;
                        continue;
                    }
                    None => return Ok(()),
                }
            }
            pending -= 1;
            if in_map {
                self.read_buf()?;
            }
            match self.read_u8()? {
                127 | 126 | 121 | 120 => {}
                125 => {
                    // signed var int: continuation bit 0x80 on every byte but the last. yrs
                    // shifts the 11th byte by 69 bits, which panics with overflow checks
                    // (debug builds): at most 10 bytes, 64 bits and more than any JS number.
                    let mut bytes = 1;
                    while self.read_u8()? & 0x80 != 0 {
                        if bytes == MAX_VAR_INT_BYTES {
                            return Err(ReadError::InvalidVarInt);
                        }
                        bytes += 1;
                    }
                }
                124 => {
                    self.read_exact(4)?;
                }
                123 | 122 => {
                    self.read_exact(8)?;
                }
                119 | 116 => {
                    self.read_buf()?;
                }
                tag @ (118 | 117) => {
                    let len: u64 = self.read_var()?;
                    if stack.len() >= MAX_ANY_DEPTH {
                        return Err(ReadError::Custom(format!(
                            "value nested deeper than {MAX_ANY_DEPTH} levels"
                        )));
                    }
                    stack.push((pending, in_map));
                    pending = len;
                    in_map = tag == 118;
                }
                _ => return Err(ReadError::UnexpectedValue),
            }
        }
    }
}

impl Read for Dec<'_> {
    fn read_exact(&mut self, len: usize) -> Result<&[u8], ReadError> {
        let Some(slice) = self
            .pos
            .checked_add(len)
            .and_then(|end| self.buf.get(self.pos..end))
        else {
            return Err(ReadError::EndOfBuffer(len));
        };
        let end = self.pos + len;
        self.pos = end;
        Ok(slice)
    }

    fn read_u8(&mut self) -> Result<u8, ReadError> {
        let Some(&b) = self.buf.get(self.pos) else {
            return Err(ReadError::EndOfBuffer(1));
        };
        self.pos += 1;
        Ok(b)
    }
}

impl Decoder for Dec<'_> {
    fn reset_ds_cur_val(&mut self) {}

    fn read_ds_clock(&mut self) -> Result<u32, ReadError> {
        self.read_var()
    }

    fn read_ds_len(&mut self) -> Result<u32, ReadError> {
        self.read_var()
    }

    fn read_left_id(&mut self) -> Result<ID, ReadError> {
        self.read_id()
    }

    fn read_right_id(&mut self) -> Result<ID, ReadError> {
        self.read_id()
    }

    fn read_client(&mut self) -> Result<ClientID, ReadError> {
        let client: u64 = self.read_var()?;
        if client > MAX_CLIENT {
            return Err(ReadError::Custom(format!(
                "client id {client} does not fit in 53 bits"
            )));
        }
        Ok(ClientID::new(client))
    }

    fn read_info(&mut self) -> Result<u8, ReadError> {
        self.read_u8()
    }

    fn read_parent_info(&mut self) -> Result<bool, ReadError> {
        let info: u32 = self.read_var()?;
        Ok(info == 1)
    }

    fn read_type_ref(&mut self) -> Result<u8, ReadError> {
        self.read_u8()
    }

    fn read_len(&mut self) -> Result<u32, ReadError> {
        self.read_var()
    }

    fn read_any(&mut self) -> Result<Any, ReadError> {
        let start = self.pos;
        self.scan_any()?;
        let end = self.pos;
        self.pos = start;
        let any = Any::decode(self)?;
        if self.pos != end {
            return Err(ReadError::UnexpectedValue);
        }
        Ok(any)
    }

    fn read_json(&mut self) -> Result<Any, ReadError> {
        let src = self.read_string()?;
        Any::from_json(src)
    }

    fn read_key(&mut self) -> Result<Arc<str>, ReadError> {
        Ok(self.read_string()?.into())
    }

    fn read_to_end(&mut self) -> Result<&[u8], ReadError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        Ok(rest)
    }
}

/// The kind of a shared type created by an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeKind {
    /// Y.Map
    Map,
    /// Y.Array
    Array,
    /// Y.Text
    Text,
    /// A subdocument type reference.
    SubDoc,
    /// XML types and undefined types.
    Other,
}

impl TypeKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            TypeKind::Map => "a map",
            TypeKind::Array => "an array",
            TypeKind::Text => "a text",
            TypeKind::SubDoc => "a subdocument",
            TypeKind::Other => "an XML type",
        }
    }
}

/// A light view of an item's content.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Content {
    /// A tombstone (`ContentDeleted`).
    Deleted,
    /// A text chunk.
    String,
    /// Primitive values: the byte range of the encoded values in the update and their count.
    Any {
        start: usize,
        end: usize,
        count: u32,
    },
    /// A shared type.
    Type(TypeKind),
    /// A subdocument.
    Doc,
    /// Obsolete JSON content (`ContentJSON`, Yjs before v13): yrs 0.28 reads one string more
    /// than its count says, so what it stores it cannot read back (refused by the rules).
    Json,
    /// Binary, embed or format content.
    Other(&'static str),
}

impl Content {
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Content::Deleted => "a deleted value",
            Content::String => "a text chunk",
            Content::Any { .. } => "a value",
            Content::Type(kind) => kind.name(),
            Content::Doc => "a subdocument",
            Content::Json => "obsolete JSON content",
            Content::Other(name) => name,
        }
    }
}

/// Where an item says its parent is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parent {
    /// A root type by name.
    Named(Arc<str>),
    /// The type created by the item with this id.
    Id(ID),
    /// Not encoded: inherited from the origin (or right origin).
    Unknown,
}

/// An item of an update.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ItemData {
    pub origin: Option<ID>,
    pub right_origin: Option<ID>,
    pub parent: Parent,
    pub parent_sub: Option<Arc<str>>,
    pub content: Content,
}

/// What a block of an update is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BlockKind {
    /// Garbage-collected range.
    Gc,
    /// A gap marker of merged updates: nothing to integrate.
    Skip,
    /// An item.
    Item(ItemData),
}

/// One block of an update: clock range `[clock, clock + len)` of its client.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Block {
    pub clock: u32,
    pub len: u32,
    pub kind: BlockKind,
}

impl Block {
    pub(crate) fn end(&self) -> u32 {
        // checked at parse time
        self.clock.saturating_add(self.len)
    }
}

/// The blocks of one client, in clock order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClientBlocks {
    pub client: ClientID,
    pub blocks: Vec<Block>,
}

/// A deleted clock range `[start, end)` of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DelRange {
    pub client: ClientID,
    pub start: u32,
    pub end: u32,
}

/// A parsed v1 update.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedUpdate {
    pub clients: Vec<ClientBlocks>,
    pub deletes: Vec<DelRange>,
}

impl ParsedUpdate {
    /// Whether the delete set covers `id`.
    pub(crate) fn deletes_id(&self, id: ID) -> bool {
        self.deletes
            .iter()
            .any(|d| d.client == id.client && d.start <= id.clock && id.clock < d.end)
    }
}

/// Parses a v1 update.
pub(crate) fn parse_update(bytes: &[u8]) -> Result<ParsedUpdate, ParseError> {
    let mut dec = Dec::new(bytes);
    let clients_len: u32 = dec.read_var()?;
    let mut clients: Vec<ClientBlocks> = Vec::new();
    for _ in 0..clients_len {
        let blocks_len: u32 = dec.read_var()?;
        let client = dec.read_client()?;
        if clients.iter().any(|c| c.client == client) {
            return Err(bad(format!("client {client} appears twice in the update")));
        }
        let mut clock: u32 = dec.read_var()?;
        let mut blocks = Vec::new();
        for _ in 0..blocks_len {
            if let Some(block) = parse_block(&mut dec, clock)? {
                clock = clock
                    .checked_add(block.len)
                    .ok_or_else(|| bad("clock overflow"))?;
                blocks.push(block);
            }
        }
        clients.push(ClientBlocks { client, blocks });
    }
    let deletes = parse_delete_set(&mut dec)?;
    Ok(ParsedUpdate { clients, deletes })
}

fn parse_delete_set(dec: &mut Dec<'_>) -> Result<Vec<DelRange>, ParseError> {
    let clients_len: u32 = dec.read_var()?;
    let mut seen: Vec<ClientID> = Vec::new();
    let mut out = Vec::new();
    for _ in 0..clients_len {
        let client = dec.read_client()?;
        if seen.contains(&client) {
            return Err(bad(format!(
                "client {client} appears twice in the delete set"
            )));
        }
        seen.push(client);
        let ranges: u32 = dec.read_var()?;
        for _ in 0..ranges {
            let start = dec.read_ds_clock()?;
            let len = dec.read_ds_len()?;
            if len == 0 {
                return Err(bad("empty range in the delete set"));
            }
            let end = start
                .checked_add(len)
                .ok_or_else(|| bad("clock overflow in the delete set"))?;
            out.push(DelRange { client, start, end });
        }
    }
    Ok(out)
}

fn parse_block(dec: &mut Dec<'_>, clock: u32) -> Result<Option<Block>, ParseError> {
    let info = dec.read_info()?;
    match info {
        BLOCK_SKIP => {
            let len: u32 = dec.read_var()?;
            if len == 0 {
                return Err(bad("empty skip block"));
            }
            Ok(Some(Block {
                clock,
                len,
                kind: BlockKind::Skip,
            }))
        }
        BLOCK_GC => {
            let len: u32 = dec.read_len()?;
            if len == 0 {
                return Err(bad("empty GC block"));
            }
            Ok(Some(Block {
                clock,
                len,
                kind: BlockKind::Gc,
            }))
        }
        info => {
            let cant_copy_parent_info = info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0;
            let origin = if info & HAS_ORIGIN != 0 {
                Some(dec.read_left_id()?)
            } else {
                None
            };
            let right_origin = if info & HAS_RIGHT_ORIGIN != 0 {
                Some(dec.read_right_id()?)
            } else {
                None
            };
            let parent = if cant_copy_parent_info {
                if dec.read_parent_info()? {
                    Parent::Named(dec.read_string()?.into())
                } else {
                    Parent::Id(dec.read_left_id()?)
                }
            } else {
                Parent::Unknown
            };
            let parent_sub = if cant_copy_parent_info && info & HAS_PARENT_SUB != 0 {
                Some(Arc::<str>::from(dec.read_string()?))
            } else {
                None
            };
            let (content, len) = parse_content(dec, info)?;
            if len == 0 {
                // yrs drops empty items without advancing the clock
                return Ok(None);
            }
            Ok(Some(Block {
                clock,
                len,
                kind: BlockKind::Item(ItemData {
                    origin,
                    right_origin,
                    parent,
                    parent_sub,
                    content,
                }),
            }))
        }
    }
}

/// UTF-16 length of a string (what yrs counts clocks in).
fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().map(char::len_utf16).sum()
    }
}

fn parse_content(dec: &mut Dec<'_>, info: u8) -> Result<(Content, u32), ParseError> {
    // yrs masks the content ref with 0b1111 (ItemContent::decode)
    match info & 0b1111 {
        CONTENT_DELETED => {
            let len = dec.read_len()?;
            Ok((Content::Deleted, len))
        }
        CONTENT_STRING => {
            let s = dec.read_string()?;
            let len = u32::try_from(utf16_len(s)).map_err(|_| bad("string too long"))?;
            Ok((Content::String, len))
        }
        CONTENT_ANY => {
            let count = dec.read_len()?;
            let start = dec.pos;
            for _ in 0..count {
                dec.scan_any()?;
            }
            let end = dec.pos;
            // decode once for exactness (yrs must accept what we accept)
            let mut check = Dec::new(bytes_between(dec.buf, start, end)?);
            for _ in 0..count {
                Any::decode(&mut check)?;
            }
            if check.pos != end - start {
                return Err(bad("malformed value"));
            }
            Ok((Content::Any { start, end, count }, count))
        }
        CONTENT_JSON => {
            // mirror yrs: it reads len + 1 strings (a negative count when len >= 2^31)
            let mut remaining = dec.read_len()? as i32;
            let mut count: u32 = 0;
            while remaining >= 0 {
                dec.read_string()?;
                remaining -= 1;
                count += 1;
            }
            Ok((Content::Json, count))
        }
        CONTENT_TYPE => {
            let kind = match TypeRef::decode(dec)? {
                TypeRef::Map => TypeKind::Map,
                TypeRef::Array => TypeKind::Array,
                TypeRef::Text => TypeKind::Text,
                TypeRef::SubDoc => TypeKind::SubDoc,
                _ => TypeKind::Other,
            };
            Ok((Content::Type(kind), 1))
        }
        CONTENT_DOC => {
            ItemContent::decode(dec, info)?;
            Ok((Content::Doc, 1))
        }
        _ => {
            let content = ItemContent::decode(dec, info)?;
            let name = match content {
                ItemContent::Binary(_) => "binary content",
                ItemContent::Embed(_) => "an embed",
                ItemContent::Format(_, _) => "a format mark",
                _ => "unexpected content",
            };
            Ok((Content::Other(name), content.len_utf16()))
        }
    }
}

fn bytes_between(buf: &[u8], start: usize, end: usize) -> Result<&[u8], ParseError> {
    buf.get(start..end).ok_or_else(|| bad("malformed value"))
}

/// Decodes the values of `Any` content from the update's bytes.
pub(crate) fn decode_values(update: &[u8], start: usize, end: usize, count: u32) -> Vec<Any> {
    let Ok(slice) = bytes_between(update, start, end) else {
        return Vec::new();
    };
    let mut dec = Dec::new(slice);
    let mut out = Vec::new();
    for _ in 0..count {
        match Any::decode(&mut dec) {
            Ok(v) => out.push(v),
            Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Doc, Map, ReadTxn, StateVector, Text, Transact};

    #[test]
    fn parses_what_yrs_encodes() {
        let doc = Doc::with_client_id(7);
        let text = doc.get_or_insert_text("t");
        let map = doc.get_or_insert_map("m");
        {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, "héllo 😀");
            map.insert(&mut txn, "k", 1.5);
            map.insert(&mut txn, "k", 2);
        }
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let parsed = parse_update(&update).expect("parses");
        assert_eq!(parsed.clients.len(), 1);
        let blocks = &parsed.clients[0].blocks;
        // text "héllo 😀" = 8 UTF-16 units, then the two map values
        assert_eq!(blocks[0].len, 8);
        assert_eq!(parsed.clients[0].blocks.last().map(Block::end), Some(10));
        assert!(!parsed.deletes.is_empty());
    }

    /// One block of `Any` content in root map `m`, key `k`, holding the integer `int` (a
    /// signed var int as encoded, with its 125 tag).
    fn any_update(int: &[u8]) -> Vec<u8> {
        let mut bytes = vec![
            1,
            1,
            5,
            0,
            CONTENT_ANY | HAS_PARENT_SUB,
            1,
            1,
            b'm',
            1,
            b'k',
            1,
            125,
        ];
        bytes.extend(int);
        bytes.push(0);
        bytes
    }

    #[test]
    fn refuses_integers_longer_than_ten_bytes() {
        let ten = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        let ok = any_update(&ten);
        assert!(parse_update(&ok).is_ok());
        assert!(
            yrs::Update::decode_v1(&ok).is_ok(),
            "yrs reads ten bytes too"
        );
        // the 11th byte is the one yrs shifts by 69 bits
        let eleven = [
            0x80, 0xf4, 0xd7, 0xed, 0xff, 0xfe, 0xf5, 0xfd, 0x92, 0xa0, 0x01,
        ];
        assert!(parse_update(&any_update(&eleven)).is_err());
        assert!(parse_update(&any_update(&[0x80; 12])).is_err());
        assert!(parse_update(&any_update(&[0x7d])).is_ok());
    }

    #[test]
    fn refuses_deep_any_and_big_clients() {
        // one client, one block, client 0, clock 0, info ANY with parent named "m" key "k"
        let mut bytes = vec![
            1,
            1,
            0,
            0,
            CONTENT_ANY | HAS_PARENT_SUB,
            1,
            1,
            b'm',
            1,
            b'k',
            1,
        ];
        bytes.extend(std::iter::repeat_n([117u8, 1], 10_000).flatten());
        bytes.push(126);
        bytes.extend([0]);
        assert!(parse_update(&bytes).is_err());
        // client id 2^60
        let mut big = vec![1, 1];
        let mut v: u64 = 1 << 60;
        while v >= 0x80 {
            big.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        big.push(v as u8);
        big.extend([0, 0, 1, 0]);
        assert!(parse_update(&big).is_err());
    }
}
