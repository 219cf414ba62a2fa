//! The rules: who may change what, and what keeps the schema.

use super::index::{Container, DocIndex, Loc};
use super::parse::{self, Block, BlockKind, Content, ItemData, ParsedUpdate, TypeKind};
use super::resolve::{Place, Resolved};
use super::{Refusal, RefusalCode};
use crate::Role;
use crate::schema;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use yrs::branch::{Branch, BranchID};
use yrs::{Any, Doc, ID, Map, MapRef, Number, Out, ReadTxn, Transact};

/// At most this many keys and type ids of a path are kept (enough for
/// `blocks.<id>.position.<key>`).
const KEPT_KEYS: usize = 4;
const KEPT_TYPES: usize = 3;
/// Upper bound on the combinations of concurrent position values checked.
const MAX_COMBINATIONS: usize = 64;

/// Where a container or location sits, seen from its root.
#[derive(Debug, Clone)]
struct PathInfo {
    root: Arc<str>,
    /// Keys from the root down (`None` for sequence content), the first [`KEPT_KEYS`].
    keys: Vec<Option<Arc<str>>>,
    /// Ids of the type items from the root down, the first [`KEPT_TYPES`].
    types: Vec<ID>,
    /// Number of keys (levels) in the full path.
    depth: usize,
    /// Whether a container of the path was deleted before the update.
    dead: bool,
}

impl PathInfo {
    fn key(&self, i: usize) -> Option<&str> {
        self.keys.get(i).and_then(|k| k.as_deref())
    }

    /// `root.key1.key2` with at most `levels` keys.
    fn display(&self, levels: usize) -> String {
        let mut s = self.root.to_string();
        for k in self.keys.iter().take(levels) {
            s.push('.');
            s.push_str(k.as_deref().unwrap_or("[]"));
        }
        s
    }

    fn child(&self, key: Option<Arc<str>>) -> PathInfo {
        let mut p = self.clone();
        if p.keys.len() < KEPT_KEYS {
            p.keys.push(key);
        }
        p.depth += 1;
        p
    }
}

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

struct Checker<'a> {
    doc: &'a Doc,
    index: &'a DocIndex,
    role: Role,
    update: &'a ParsedUpdate,
    bytes: &'a [u8],
    resolved: &'a Resolved,
    /// Locations of the shared types the update creates.
    new_types: HashMap<ID, Option<Loc>>,
    memo: HashMap<ID, PathInfo>,
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
    fn block_of(&self, section: usize, block: usize) -> Option<&'a Block> {
        self.update.clients.get(section)?.blocks.get(block)
    }

    fn type_loc(&self, id: ID) -> Option<Loc> {
        if let Some(l) = self.new_types.get(&id) {
            return l.clone();
        }
        self.index.type_loc(id).cloned()
    }

    /// Path of a container (iterative, memoised).
    fn container_path(&mut self, container: &Container) -> PathInfo {
        let mut chain: Vec<(ID, Option<Arc<str>>)> = Vec::new();
        let mut cur = container.clone();
        let base = loop {
            match cur {
                Container::Root(name) => {
                    break PathInfo {
                        root: name,
                        keys: Vec::new(),
                        types: Vec::new(),
                        depth: 0,
                        dead: false,
                    };
                }
                Container::Type(id) => {
                    if let Some(p) = self.memo.get(&id) {
                        break p.clone();
                    }
                    match self.type_loc(id) {
                        Some(loc) if chain.len() < 100_000 => {
                            chain.push((id, loc.key.clone()));
                            cur = loc.container;
                        }
                        _ => {
                            chain.push((id, None));
                            break PathInfo {
                                root: Arc::from("?"),
                                keys: Vec::new(),
                                types: Vec::new(),
                                depth: 0,
                                dead: true,
                            };
                        }
                    }
                }
            }
        };
        let mut path = base;
        for (id, key) in chain.into_iter().rev() {
            path = path.child(key);
            if path.types.len() < KEPT_TYPES {
                path.types.push(id);
            }
            if self.index.is_deleted(id) {
                path.dead = true;
            }
            self.memo.insert(id, path.clone());
        }
        path
    }

    fn loc_path(&mut self, loc: &Loc) -> PathInfo {
        self.container_path(&loc.container).child(loc.key.clone())
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

    fn check(mut self) -> Result<Vec<String>, Refusal> {
        for item in &self.resolved.items {
            let Some(block) = self.block_of(item.section, item.block) else {
                continue;
            };
            if let BlockKind::Item(ItemData {
                content: Content::Type(_),
                ..
            }) = &block.kind
            {
                let client = self.update.clients.get(item.section).map(|c| c.client);
                if let Some(client) = client {
                    let loc = match &item.place {
                        Place::At(l) => Some(l.clone()),
                        Place::Gc => None,
                    };
                    self.new_types.insert(ID::new(client, block.clock), loc);
                }
            }
        }

        let mut touched: BTreeSet<String> = BTreeSet::new();
        // block item id -> block id, for blocks created by the update
        let mut created: BTreeMap<ID, String> = BTreeMap::new();
        // blocks whose position entry the update deletes
        let mut position_deleted: HashSet<ID> = HashSet::new();
        // blocks whose position entry the update sets
        let mut position_set: BTreeMap<ID, String> = BTreeMap::new();
        // existing position maps the update writes to or deletes from -> (block item, block id)
        let mut position_touched: BTreeMap<ID, (ID, String)> = BTreeMap::new();
        // inserts per (container, key), for map entries: resolved item indices
        let mut entries: HashMap<(ID, Arc<str>), Vec<usize>> = HashMap::new();
        // deletions per (container, key), of existing items
        let mut deleted_entries: HashSet<(ID, Arc<str>)> = HashSet::new();

        for (ri, item) in self.resolved.items.iter().enumerate() {
            let Some(block) = self.block_of(item.section, item.block) else {
                continue;
            };
            let BlockKind::Item(data) = &block.kind else {
                continue;
            };
            if matches!(data.content, Content::Doc | Content::Type(TypeKind::SubDoc)) {
                return Err(invalid("subdocuments are not allowed in a canvas"));
            }
            let Place::At(loc) = &item.place else {
                continue;
            };
            let path = self.loc_path(loc);
            self.check_common(&path)?;
            if let (Container::Type(c), Some(k)) = (&loc.container, &loc.key) {
                entries.entry((*c, k.clone())).or_default().push(ri);
            }
            if path.dead || &*path.root != schema::BLOCKS {
                continue;
            }
            let Some(bid) = path.key(0).map(str::to_owned) else {
                continue;
            };
            touched.insert(bid.clone());
            let client = self.update.clients.get(item.section).map(|c| c.client);
            let Some(client) = client else {
                continue;
            };
            let id = ID::new(client, block.clock);
            match path.depth {
                1 => match &data.content {
                    Content::Type(TypeKind::Map) => {
                        created.insert(id, bid);
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
                    if let Some(&b) = path.types.first() {
                        position_set.insert(b, bid);
                    }
                }
                3 if path.key(1) == Some(schema::POSITION) => {
                    if let (Some(&b), Some(&p)) = (path.types.first(), path.types.get(1)) {
                        position_touched.insert(p, (b, bid));
                    }
                }
                _ => {}
            }
        }

        for del in &self.resolved.deletions {
            let Place::At(loc) = &del.place else {
                continue;
            };
            let path = self.loc_path(loc);
            self.check_common(&path)?;
            if del.of_new_item {
                continue;
            }
            if let (Container::Type(c), Some(k)) = (&loc.container, &loc.key) {
                deleted_entries.insert((*c, k.clone()));
            }
            if path.dead || &*path.root != schema::BLOCKS {
                continue;
            }
            let Some(bid) = path.key(0).map(str::to_owned) else {
                continue;
            };
            touched.insert(bid.clone());
            match path.depth {
                2 if path.key(1) == Some(schema::POSITION) => {
                    if let Some(&b) = path.types.first() {
                        position_deleted.insert(b);
                    }
                }
                3 if path.key(1) == Some(schema::POSITION) => {
                    if let (Some(&b), Some(&p)) = (path.types.first(), path.types.get(1)) {
                        position_touched.insert(p, (b, bid));
                    }
                }
                _ => {}
            }
        }

        // positions
        let mut blocks: BTreeMap<ID, String> = BTreeMap::new();
        blocks.extend(created.iter().map(|(k, v)| (*k, v.clone())));
        blocks.extend(position_set.iter().map(|(k, v)| (*k, v.clone())));
        for (b, bid) in position_touched.values() {
            blocks.insert(*b, bid.clone());
        }
        if !position_deleted.is_empty() {
            // only blocks we know the id of through a path: find them in the paths memo
            for b in &position_deleted {
                if let Some(bid) = self.memo.get(b).and_then(|p| p.key(0)) {
                    blocks.insert(*b, bid.to_owned());
                }
            }
        }
        if blocks.is_empty() {
            return Ok(touched.into_iter().collect());
        }
        let txn = self.doc.transact();
        let columns = columns(&txn);
        for (b, bid) in &blocks {
            if self.update.deletes_id(*b) || self.container_path(&Container::Type(*b)).dead {
                continue;
            }
            let pos_key: Arc<str> = Arc::from(schema::POSITION);
            let winners = self.winners(&entries, *b, &pos_key);
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
                            content: Content::Type(TypeKind::Map),
                            ..
                        })
                        | BlockKind::Item(ItemData {
                            content: Content::Deleted,
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
            if position_deleted.contains(b) {
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
        Ok(touched.into_iter().collect())
    }

    fn resolved_block(&self, ri: usize) -> Option<(ID, &'a Block)> {
        let item = self.resolved.items.get(ri)?;
        let section = self.update.clients.get(item.section)?;
        let block = section.blocks.get(item.block)?;
        Some((ID::new(section.client, block.clock), block))
    }

    /// The update's items at `(container, key)` that no other item of the update at the same
    /// place supersedes (usually one).
    fn winners(
        &self,
        entries: &HashMap<(ID, Arc<str>), Vec<usize>>,
        container: ID,
        key: &Arc<str>,
    ) -> Vec<usize> {
        let Some(list) = entries.get(&(container, key.clone())) else {
            return Vec::new();
        };
        let origins: HashSet<ID> = list
            .iter()
            .filter_map(|&ri| match self.resolved_block(ri) {
                Some((
                    _,
                    Block {
                        kind: BlockKind::Item(d),
                        ..
                    },
                )) => d.origin,
                _ => None,
            })
            .collect();
        list.iter()
            .copied()
            .filter(|&ri| {
                let Some((id, block)) = self.resolved_block(ri) else {
                    return false;
                };
                let last = ID::new(id.client, block.end().saturating_sub(1));
                !origins.contains(&last)
            })
            .collect()
    }

    /// Checks the position map `p` of block `bid` after the update: `current` holds the
    /// document's values when `p` exists already (and is live).
    fn check_position(
        &self,
        bid: &str,
        p: ID,
        current: Option<&HashMap<String, Value>>,
        entries: &HashMap<(ID, Arc<str>), Vec<usize>>,
        deleted_entries: &HashSet<(ID, Arc<str>)>,
        columns: i64,
    ) -> Result<(), Refusal> {
        let mut options: Vec<Vec<Value>> = Vec::with_capacity(4);
        for key in schema::POSITION_KEYS {
            let k: Arc<str> = Arc::from(key);
            let winners = self.winners(entries, p, &k);
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
            } else if deleted_entries.contains(&(p, k.clone())) {
                vec![Value::Removed]
            } else {
                vec![
                    current
                        .and_then(|c| c.get(key).cloned())
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

    /// Root and role checks for a change at `path`.
    fn check_common(&self, path: &PathInfo) -> Result<(), Refusal> {
        if !schema::ROOTS.contains(&&*path.root) {
            if path.dead {
                return Ok(());
            }
            return Err(invalid(format!(
                "unknown root type {:?}: a canvas has only {}",
                &*path.root,
                schema::ROOTS.join(", ")
            )));
        }
        if &*path.root == schema::SHARING && !self.role.can_administer() {
            return Err(refuse(
                RefusalCode::Forbidden,
                format!(
                    "{}s cannot change sharing ({})",
                    self.role.as_str(),
                    path.display(1)
                ),
            ));
        }
        if path.depth == 1 && path.keys.first().is_some_and(Option::is_none) && !path.dead {
            return Err(invalid(format!(
                "root {} is a map: its entries need a key",
                &*path.root
            )));
        }
        Ok(())
    }
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
fn live_position<T: ReadTxn>(txn: &T, bid: &str, b: ID, p: ID) -> Option<HashMap<String, Value>> {
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
    let mut out = HashMap::new();
    for key in schema::POSITION_KEYS {
        let v = match position.get(txn, key) {
            None => Value::Missing,
            Some(Out::Any(a)) => to_int(&a),
            Some(_) => Value::Bad("a shared type".into()),
        };
        out.insert(key.to_owned(), v);
    }
    Some(out)
}

/// Applies the rules to a resolved update. Returns the ids of the blocks it touches.
pub(crate) fn check(
    doc: &Doc,
    index: &DocIndex,
    role: Role,
    update: &ParsedUpdate,
    bytes: &[u8],
    resolved: &Resolved,
) -> Result<Vec<String>, Refusal> {
    Checker {
        doc,
        index,
        role,
        update,
        bytes,
        resolved,
        new_types: HashMap::new(),
        memo: HashMap::new(),
    }
    .check()
}
