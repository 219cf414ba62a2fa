//! The rules: who may change what, and what keeps the schema.

use super::index::{Container, DocIndex, PathInfo};
use super::parse::{self, Block, BlockKind, Content, ItemData, ParsedUpdate, TypeKind};
use super::resolve::{Place, Resolved};
use super::{Refusal, RefusalCode};
use crate::Role;
use crate::schema;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use yrs::branch::{Branch, BranchID};
use yrs::{Any, Doc, ID, Map, MapRef, Number, Out, ReadTxn, Transact};

/// Upper bound on the combinations of concurrent position values checked.
const MAX_COMBINATIONS: usize = 64;
/// Deepest path (number of keys from the root) a new item may have.
const MAX_DEPTH: u32 = 24;

/// Value of one position key after the update.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(i64),
    /// Not an integer: what it is instead.
    Bad(String),
    /// Deleted by the update.
    Removed,
    /// Never set.
    Missing,
}

/// Map entries of the update at `(container, key)`, sorted for binary search once sealed.
#[derive(Debug, Default)]
struct Entries(Vec<(ID, Arc<str>, usize)>);

impl Entries {
    fn push(&mut self, (container, key): (ID, Arc<str>), value: usize) {
        self.0.push((container, key, value));
    }

    fn seal(&mut self) {
        self.0
            .sort_by(|a, b| (a.0, &*a.1, a.2).cmp(&(b.0, &*b.1, b.2)));
    }

    /// The values at `(container, key)`, in insertion order.
    fn get(&self, container: ID, key: &str) -> Vec<usize> {
        let start = self
            .0
            .partition_point(|(c, k, _)| (*c, &**k) < (container, key));
        self.0
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(|(c, k, _)| *c == container && &**k == key)
            .map(|(_, _, v)| *v)
            .collect()
    }
}

struct Checker<'a> {
    doc: &'a Doc,
    index: &'a DocIndex,
    role: Role,
    update: &'a ParsedUpdate,
    bytes: &'a [u8],
    resolved: &'a Resolved,
    /// Paths of the containers the update creates.
    new_types: HashMap<ID, PathInfo>,
}

fn refuse(code: RefusalCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> Refusal {
    refuse(RefusalCode::InvalidSchema, message)
}

impl<'a> Checker<'a> {
    fn container_path(&self, container: &Container) -> PathInfo {
        if let Container::Type(id) = container
            && let Some(p) = self.new_types.get(id)
        {
            return p.clone();
        }
        self.index.container_path(container)
    }

    fn place_path(&self, place: &Place) -> Option<Cow<'a, PathInfo>> {
        match place {
            Place::Gc => None,
            Place::Known(l) => Some(match self.index.loc_path(*l) {
                Some(p) => Cow::Borrowed(p),
                None => Cow::Owned(PathInfo::lost()),
            }),
            Place::New(loc) => Some(Cow::Owned(
                self.container_path(&loc.container)
                    .with_key(loc.key.clone()),
            )),
        }
    }

    fn item_value(&self, block: &Block) -> Value {
        let BlockKind::Item(item) = &block.kind else {
            return Value::Removed;
        };
        match &item.content {
            Content::Deleted => Value::Removed,
            Content::Any { start, end, count } => {
                let values = parse::decode_values(self.bytes, *start, *end, *count);
                match values.last() {
                    Some(v) => to_int(v),
                    None => Value::Bad("nothing".into()),
                }
            }
            other => Value::Bad(other.describe().into()),
        }
    }

    fn check(mut self) -> Result<Judged, Refusal> {
        let mut touched: Vec<String> = Vec::new();
        // block item id -> block id, for blocks created by the update
        let mut created: BTreeMap<ID, String> = BTreeMap::new();
        // blocks whose position entry the update sets, or deletes
        let mut position_set: BTreeMap<ID, String> = BTreeMap::new();
        let mut position_deleted: BTreeMap<ID, String> = BTreeMap::new();
        // existing position maps the update writes to or deletes from -> (block item, block id)
        let mut position_touched: BTreeMap<ID, (ID, String)> = BTreeMap::new();
        // inserts at (container, key), for map entries: resolved item indices
        let mut entries = Entries::default();
        // deletions at (container, key), of existing items
        let mut deleted_entries = Entries::default();

        for (ri, item) in self.resolved.items.iter().enumerate() {
            let Some((id, block)) = self.resolved_block(ri) else {
                continue;
            };
            let BlockKind::Item(data) = &block.kind else {
                continue;
            };
            if matches!(data.content, Content::Doc | Content::Type(TypeKind::SubDoc)) {
                return Err(invalid("subdocuments are not allowed in a canvas"));
            }
            if data.content == Content::Json {
                // yrs reads ContentJSON back with one string more than it writes: the
                // document's snapshot would not load again (found by fuzzing)
                return Err(invalid(
                    "obsolete JSON content (Yjs before v13) is not allowed in a canvas",
                ));
            }
            let Some(path) = self.place_path(&item.place) else {
                continue;
            };
            if let Content::Type(_) = data.content {
                self.new_types.insert(id, path.container(id));
            }
            let dead = self.index.path_dead(&path);
            self.check_common(&path, dead)?;
            if dead {
                continue;
            }
            if path.depth > MAX_DEPTH {
                return Err(invalid(format!(
                    "{}...: nested deeper than {MAX_DEPTH} levels",
                    path.display(4)
                )));
            }
            if let Some(key) = self.entry_key(&item.place) {
                entries.push(key, ri);
            }
            if path.root.as_deref() == Some(schema::SHARING)
                && path.depth == 1
                && path.key(0) == Some(schema::VISIBILITY)
            {
                self.check_visibility(&data.content)?;
            }
            if path.root.as_deref() == Some(schema::META)
                && path.depth == 1
                && path.key(0) == Some(schema::NAME)
            {
                self.check_name(&data.content)?;
            }
            if path.root.as_deref() != Some(schema::BLOCKS) {
                continue;
            }
            let Some(bid) = path.key(0) else {
                continue;
            };
            if touched.last().is_none_or(|t| t != bid) {
                touched.push(bid.to_owned());
            }
            if path.key(1) == Some(schema::METADATA) {
                self.check_metadata_item(&path, bid, &data.content)?;
            }
            if is_binding_path(&path) {
                self.check_binding_item(&path, bid, &data.content)?;
            }
            match path.depth {
                1 => match &data.content {
                    Content::Type(TypeKind::Map) => {
                        created.insert(id, bid.to_owned());
                    }
                    Content::Deleted => {}
                    other => {
                        return Err(invalid(format!(
                            "block {bid} must be a map, got {}",
                            other.describe()
                        )));
                    }
                },
                2 if path.key(1) == Some(schema::POSITION) => {
                    if let Some(b) = path.container_id(0) {
                        position_set.insert(b, bid.to_owned());
                    }
                }
                3 if path.key(1) == Some(schema::POSITION) => {
                    if let (Some(b), Some(p)) = (path.container_id(0), path.container_id(1)) {
                        position_touched.insert(p, (b, bid.to_owned()));
                    }
                }
                _ => {}
            }
        }

        for del in &self.resolved.deletions {
            let Some(path) = self.place_path(&del.place) else {
                continue;
            };
            let dead = self.index.path_dead(&path);
            self.check_common(&path, dead)?;
            if del.of_new_item || dead {
                continue;
            }
            if let Some(key) = self.entry_key(&del.place) {
                deleted_entries.push(key, 0);
            }
            if path.root.as_deref() != Some(schema::BLOCKS) {
                continue;
            }
            let Some(bid) = path.key(0) else {
                continue;
            };
            if touched.last().is_none_or(|t| t != bid) {
                touched.push(bid.to_owned());
            }
            if path.key(1) == Some(schema::METADATA)
                && path.depth >= 2
                && !path
                    .container_id(0)
                    .is_some_and(|b| self.update.deletes_id(b))
            {
                return Err(metadata_refusal(bid));
            }
            if is_binding_path(&path)
                && path.depth == 5
                && path.key(4) == Some(crate::bindings::VALUE_KEY)
                && !(0..4).any(|i| {
                    path.container_id(i)
                        .is_some_and(|c| self.update.deletes_id(c))
                })
            {
                return Err(binding_value_refusal(bid));
            }
            match path.depth {
                2 if path.key(1) == Some(schema::POSITION) => {
                    if let Some(b) = path.container_id(0) {
                        position_deleted.insert(b, bid.to_owned());
                    }
                }
                3 if path.key(1) == Some(schema::POSITION) => {
                    if let (Some(b), Some(p)) = (path.container_id(0), path.container_id(1)) {
                        position_touched.insert(p, (b, bid.to_owned()));
                    }
                }
                _ => {}
            }
        }
        touched.sort_unstable();
        touched.dedup();
        entries.seal();
        deleted_entries.seal();

        // positions
        let mut blocks: BTreeMap<ID, String> = BTreeMap::new();
        blocks.extend(created.iter().map(|(k, v)| (*k, v.clone())));
        blocks.extend(position_set.iter().map(|(k, v)| (*k, v.clone())));
        blocks.extend(position_deleted.iter().map(|(k, v)| (*k, v.clone())));
        for (b, bid) in position_touched.values() {
            blocks.insert(*b, bid.clone());
        }
        let judged = Judged {
            touched,
            created: created.values().cloned().collect(),
        };
        if blocks.is_empty() {
            return Ok(judged);
        }
        let txn = self.doc.transact();
        let columns = columns(&txn);
        for (b, bid) in &blocks {
            if self.update.deletes_id(*b) {
                continue;
            }
            let winners = self.winners(&entries, *b, schema::POSITION);
            if !winners.is_empty() {
                for w in winners {
                    let Some((id, block)) = self.resolved_block(w) else {
                        continue;
                    };
                    let deleted = self.update.deletes_id(id);
                    match &block.kind {
                        BlockKind::Item(ItemData {
                            content: Content::Type(TypeKind::Map),
                            ..
                        }) if !deleted => {
                            self.check_position(
                                bid,
                                id,
                                None,
                                &entries,
                                &deleted_entries,
                                columns,
                            )?;
                        }
                        BlockKind::Item(ItemData {
                            content: Content::Type(TypeKind::Map) | Content::Deleted,
                            ..
                        }) => {
                            return Err(invalid(format!("block {bid}: position was removed")));
                        }
                        BlockKind::Item(d) => {
                            return Err(invalid(format!(
                                "block {bid}: position must be a map, got {}",
                                d.content.describe()
                            )));
                        }
                        _ => {}
                    }
                }
                continue;
            }
            if created.contains_key(b) {
                return Err(invalid(format!(
                    "block {bid}: a new block needs a position with x, y, w and h"
                )));
            }
            if position_deleted.contains_key(b) {
                return Err(invalid(format!("block {bid}: position was removed")));
            }
            for (p, (pb, _)) in &position_touched {
                if pb != b {
                    continue;
                }
                if let Some(current) = live_position(&txn, bid, *b, *p) {
                    self.check_position(
                        bid,
                        *p,
                        Some(&current),
                        &entries,
                        &deleted_entries,
                        columns,
                    )?;
                }
            }
        }
        Ok(judged)
    }

    /// `(container, key)` of a map entry inside a shared type.
    fn entry_key(&self, place: &Place) -> Option<(ID, Arc<str>)> {
        let loc = match place {
            Place::Known(l) => self.index.loc(*l)?,
            Place::New(loc) => loc,
            Place::Gc => return None,
        };
        match (&loc.container, &loc.key) {
            (Container::Type(c), Some(k)) => Some((*c, k.clone())),
            _ => None,
        }
    }

    fn resolved_block(&self, ri: usize) -> Option<(ID, &'a Block)> {
        let item = self.resolved.items.get(ri)?;
        let section = self.update.clients.get(item.section)?;
        let block = section.blocks.get(item.block)?;
        Some((ID::new(section.client, block.clock), block))
    }

    /// The update's items at `(container, key)` that no other item of the update at the same
    /// place supersedes (usually one).
    fn winners(&self, entries: &Entries, container: ID, key: &str) -> Vec<usize> {
        let list = entries.get(container, key);
        if list.is_empty() {
            return Vec::new();
        }
        let origin_of = |ri: usize| match self.resolved_block(ri) {
            Some((
                _,
                Block {
                    kind: BlockKind::Item(d),
                    ..
                },
            )) => d.origin,
            _ => None,
        };
        // usually one item; quadratic only in the number of writes to one key
        list.iter()
            .copied()
            .filter(|&ri| {
                let Some((id, block)) = self.resolved_block(ri) else {
                    return false;
                };
                let last = ID::new(id.client, block.end().saturating_sub(1));
                !list.iter().any(|&other| origin_of(other) == Some(last))
            })
            .collect()
    }

    /// Checks the position map `p` of block `bid` after the update: `current` holds the
    /// document's values when `p` exists already (and is live).
    fn check_position(
        &self,
        bid: &str,
        p: ID,
        current: Option<&[Value; 4]>,
        entries: &Entries,
        deleted_entries: &Entries,
        columns: i64,
    ) -> Result<(), Refusal> {
        let mut options: Vec<Vec<Value>> = Vec::with_capacity(4);
        for (i, key) in schema::POSITION_KEYS.iter().enumerate() {
            let winners = self.winners(entries, p, key);
            let values: Vec<Value> = if !winners.is_empty() {
                winners
                    .iter()
                    .filter_map(|&ri| self.resolved_block(ri))
                    .map(|(id, block)| {
                        if self.update.deletes_id(id) {
                            Value::Removed
                        } else {
                            self.item_value(block)
                        }
                    })
                    .collect()
            } else if !deleted_entries.get(p, key).is_empty() {
                vec![Value::Removed]
            } else {
                vec![
                    current
                        .and_then(|c| c.get(i).cloned())
                        .unwrap_or(Value::Missing),
                ]
            };
            options.push(values);
        }
        let combos: usize = options.iter().map(|o| o.len().max(1)).product();
        if combos > MAX_COMBINATIONS {
            return Err(invalid(format!(
                "block {bid}: too many concurrent position values"
            )));
        }
        // validate every combination (usually exactly one)
        let mut idx = [0usize; 4];
        loop {
            let mut vals = [0i64; 4];
            for (i, key) in schema::POSITION_KEYS.iter().enumerate() {
                let v = options
                    .get(i)
                    .and_then(|o| o.get(idx[i]))
                    .cloned()
                    .unwrap_or(Value::Missing);
                vals[i] = match v {
                    Value::Int(n) => n,
                    Value::Bad(what) => {
                        return Err(invalid(format!(
                            "block {bid}: position.{key} must be an integer, got {what}"
                        )));
                    }
                    Value::Removed => {
                        return Err(invalid(format!("block {bid}: position.{key} was deleted")));
                    }
                    Value::Missing => {
                        return Err(invalid(format!("block {bid}: position.{key} is missing")));
                    }
                };
            }
            let [x, y, w, h] = vals;
            if x < 0 {
                return Err(invalid(format!(
                    "block {bid}: position.x = {x} must be >= 0"
                )));
            }
            if y < 0 {
                return Err(invalid(format!(
                    "block {bid}: position.y = {y} must be >= 0"
                )));
            }
            if w < 1 {
                return Err(invalid(format!(
                    "block {bid}: position.w = {w} must be >= 1"
                )));
            }
            if h < 1 {
                return Err(invalid(format!(
                    "block {bid}: position.h = {h} must be >= 1"
                )));
            }
            let right = i128::from(x) + i128::from(w);
            if right > i128::from(columns) {
                return Err(invalid(format!(
                    "block {bid}: position.x + position.w = {right} exceeds {columns} columns"
                )));
            }
            // next combination
            let mut i = 0;
            loop {
                if i == 4 {
                    return Ok(());
                }
                let len = options.get(i).map(Vec::len).unwrap_or(1);
                idx[i] += 1;
                if idx[i] < len {
                    break;
                }
                idx[i] = 0;
                i += 1;
            }
        }
    }

    /// A new item inside block `bid`'s `metadata`: allowed only inside a block this update
    /// creates (an empty map, or the metadata a re-created block carried, as when an undo
    /// brings back a removed block): the server overwrites all of it with its own stamp right
    /// after accepting the update. Into an existing block's metadata, nothing.
    fn check_metadata_item(
        &self,
        path: &PathInfo,
        bid: &str,
        content: &Content,
    ) -> Result<(), Refusal> {
        let new_block = path.container_id(0).is_some_and(|b| !self.index.is_type(b));
        let map_or_value =
            path.depth > 2 || matches!(content, Content::Type(TypeKind::Map) | Content::Deleted);
        if new_block && map_or_value {
            Ok(())
        } else {
            Err(metadata_refusal(bid))
        }
    }

    /// A narrative's `data_bindings[].value` is the server's: a client may add, change and
    /// remove bindings, but an entry it writes may not carry a `value` (plain objects), nor
    /// may it set or delete `value` in a Map entry.
    fn check_binding_item(
        &self,
        path: &PathInfo,
        bid: &str,
        content: &Content,
    ) -> Result<(), Refusal> {
        let carries = |any: &Any, depth: u32| match (any, depth) {
            (Any::Array(items), 3) => items.iter().any(has_value_key),
            (entry, 4) => has_value_key(entry),
            _ => false,
        };
        match content {
            Content::Any { start, end, count } if path.depth == 3 || path.depth == 4 => {
                let values = parse::decode_values(self.bytes, *start, *end, *count);
                if values.iter().any(|v| carries(v, path.depth)) {
                    return Err(binding_value_refusal(bid));
                }
                Ok(())
            }
            Content::Deleted => Ok(()),
            _ if path.depth == 5 && path.key(4) == Some(crate::bindings::VALUE_KEY) => {
                Err(binding_value_refusal(bid))
            }
            _ => Ok(()),
        }
    }

    /// `sharing.visibility` must be a visibility the server knows: an unknown one would read
    /// as private everywhere while the document said something else.
    fn check_visibility(&self, content: &Content) -> Result<(), Refusal> {
        let value = match content {
            // inserted and deleted by the same update: never a live value
            Content::Deleted => return Ok(()),
            Content::Any { start, end, count } => {
                parse::decode_values(self.bytes, *start, *end, *count).pop()
            }
            _ => None,
        };
        match value {
            Some(Any::String(s)) if s.parse::<crate::sharing::Visibility>().is_ok() => Ok(()),
            Some(v) => Err(invalid(format!(
                "sharing.visibility must be private, team or public, got {}",
                describe_any(&v)
            ))),
            None => Err(invalid(format!(
                "sharing.visibility must be private, team or public, got {}",
                content.describe()
            ))),
        }
    }

    /// `meta.name`: a string of at most [`schema::MAX_NAME_CHARS`] characters without control
    /// or text-direction characters, as a name given over REST (empty is allowed: an editor
    /// clearing the field before typing a new one; the JSON view shows it as "").
    fn check_name(&self, content: &Content) -> Result<(), Refusal> {
        let value = match content {
            Content::Deleted => return Ok(()),
            Content::Any { start, end, count } => {
                parse::decode_values(self.bytes, *start, *end, *count).pop()
            }
            _ => None,
        };
        let name = match value {
            Some(Any::String(s)) => s,
            Some(v) => {
                return Err(invalid(format!(
                    "meta.name must be a string, got {}",
                    describe_any(&v)
                )));
            }
            None => {
                return Err(invalid(format!(
                    "meta.name must be a string, got {}",
                    content.describe()
                )));
            }
        };
        if name.chars().count() > schema::MAX_NAME_CHARS {
            return Err(invalid(format!(
                "meta.name must be at most {} characters",
                schema::MAX_NAME_CHARS
            )));
        }
        if let Some(c) = name.chars().find(|&c| schema::is_unsafe_in_name(c)) {
            return Err(invalid(format!(
                "meta.name must not contain control or text-direction characters (found U+{:04X})",
                u32::from(c)
            )));
        }
        Ok(())
    }

    /// Root and role checks for a change at `path`.
    fn check_common(&self, path: &PathInfo, dead: bool) -> Result<(), Refusal> {
        let Some(root) = path.root.as_deref() else {
            return Ok(());
        };
        if !schema::ROOTS.contains(&root) {
            return Err(invalid(format!(
                "unknown root type {root:?}: a canvas has only {}",
                schema::ROOTS.join(", ")
            )));
        }
        if root == schema::SHARING && !self.role.can_administer() {
            return Err(refuse(
                RefusalCode::Forbidden,
                format!(
                    "{}s cannot change sharing ({})",
                    self.role.as_str(),
                    path.display(1)
                ),
            ));
        }
        if path.depth == 1 && path.is_sequence_at(0) && !dead {
            return Err(invalid(format!(
                "root {root} is a map: its entries need a key"
            )));
        }
        Ok(())
    }
}

fn metadata_refusal(bid: &str) -> Refusal {
    refuse(
        RefusalCode::Forbidden,
        format!(
            "block {bid}: metadata (created_by, last_modified_by, ...) is maintained by the \
             server; only a block the update creates may carry a metadata map (which the \
             server overwrites)"
        ),
    )
}

/// Whether a change at `path` is inside a block's `content.data_bindings`.
fn is_binding_path(path: &PathInfo) -> bool {
    path.key(1) == Some(schema::CONTENT)
        && path.key(2) == Some(crate::blocks::DATA_BINDINGS_KEY)
        && path.depth >= 3
}

fn has_value_key(any: &Any) -> bool {
    matches!(any, Any::Map(m) if m.contains_key(crate::bindings::VALUE_KEY))
}

fn binding_value_refusal(bid: &str) -> Refusal {
    refuse(
        RefusalCode::Forbidden,
        format!(
            "block {bid}: data_bindings[].value is computed by the server from the source \
             block's data; a client may write key, source and calculation only"
        ),
    )
}

fn describe_any(v: &Any) -> String {
    match v {
        Any::Null => "null".into(),
        Any::Undefined => "undefined".into(),
        Any::Bool(b) => b.to_string(),
        Any::Number(Number::Float(f)) => f.to_string(),
        Any::Number(Number::Int(i)) => i.to_string(),
        Any::String(s) => format!("the string {s:?}"),
        Any::Buffer(_) => "binary data".into(),
        Any::Array(_) => "an array".into(),
        Any::Map(_) => "an object".into(),
    }
}

fn to_int(v: &Any) -> Value {
    match v {
        Any::Number(Number::Int(i)) => Value::Int(*i),
        Any::Number(Number::Float(f))
            if f.is_finite() && f.fract() == 0.0 && f.abs() <= Number::F64_MAX_SAFE_INTEGER =>
        {
            Value::Int(*f as i64)
        }
        other => Value::Bad(describe_any(other)),
    }
}

fn columns<T: ReadTxn>(txn: &T) -> i64 {
    let value = txn
        .get_map(schema::LAYOUT)
        .and_then(|layout| layout.get(txn, "columns"));
    match value {
        Some(Out::Any(v)) => match to_int(&v) {
            Value::Int(n) if n >= 1 => n,
            _ => schema::DEFAULT_COLUMNS,
        },
        _ => schema::DEFAULT_COLUMNS,
    }
}

fn branch_is(map: &MapRef, id: ID) -> bool {
    let branch: &Branch = map.as_ref();
    matches!(branch.id(), BranchID::Nested(i) if i == id)
}

/// The current values of the position map `p` of block `bid` (block item `b`), if that map is
/// the live one.
fn live_position<T: ReadTxn>(txn: &T, bid: &str, b: ID, p: ID) -> Option<[Value; 4]> {
    let blocks = txn.get_map(schema::BLOCKS)?;
    let Some(Out::YMap(block)) = blocks.get(txn, bid) else {
        return None;
    };
    if !branch_is(&block, b) {
        return None;
    }
    let Some(Out::YMap(position)) = block.get(txn, schema::POSITION) else {
        return None;
    };
    if !branch_is(&position, p) {
        return None;
    }
    Some(
        schema::POSITION_KEYS.map(|key| match position.get(txn, key) {
            None => Value::Missing,
            Some(Out::Any(a)) => to_int(&a),
            Some(_) => Value::Bad("a shared type".into()),
        }),
    )
}

/// What the rules found in an accepted update.
pub(crate) struct Judged {
    /// Blocks it creates, changes or deletes, sorted.
    pub touched: Vec<String>,
    /// Blocks whose map it creates (new ids, and ids whose block it replaces).
    pub created: Vec<String>,
}

/// Applies the rules to a resolved update.
pub(crate) fn check(
    doc: &Doc,
    index: &DocIndex,
    role: Role,
    update: &ParsedUpdate,
    bytes: &[u8],
    resolved: &Resolved,
) -> Result<Judged, Refusal> {
    Checker {
        doc,
        index,
        role,
        update,
        bytes,
        resolved,
        new_types: HashMap::new(),
    }
    .check()
}
