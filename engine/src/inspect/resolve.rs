//! Resolving where the new items of an update land, in the order yrs would integrate them.
//!
//! yrs integrates an update's blocks client by client, and when a block depends on an item it
//! does not have yet (its origin, right origin, parent, or the previous clock of its own
//! client), it first integrates the blocks of the client that provides it (a stack walk). This
//! module replays that walk over the [`DocIndex`] without touching the document, so every new
//! item is located from information that is already resolved: no recursion, no pending state.
//! Whatever yrs would have to keep pending (a gap, an unknown reference, a cycle) is reported
//! as missing.

use super::index::{Container, DocIndex, GC_LOC, Loc};
use super::parse::{Block, BlockKind, Content, Parent, ParsedUpdate};
use std::collections::HashMap;
use yrs::{ClientID, ID};

/// Where a new item lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// yrs stores it as garbage (its parent is gone): no effect on the content.
    Gc,
    /// In this container, under this key.
    At(Loc),
}

/// A new (part of a) block, in integration order.
#[derive(Debug, Clone)]
pub(crate) struct NewItem {
    /// Index of the client section in the parsed update.
    pub section: usize,
    /// Index of the block in that section.
    pub block: usize,
    /// First new clock (later than the block's clock when it is partly known).
    pub start: u32,
    /// End clock.
    pub end: u32,
    pub place: Place,
}

/// A deletion of something not yet deleted.
#[derive(Debug, Clone)]
pub(crate) struct Deletion {
    pub place: Place,
    /// Whether the deleted range is an item of the same update.
    pub of_new_item: bool,
}

/// The result of resolving an update against an index.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    pub items: Vec<NewItem>,
    pub deletions: Vec<Deletion>,
}

/// Why an update cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResolveError {
    /// It needs something the document does not have (a gap, an unknown item, a cycle).
    Missing(String),
    /// It names as parent an item that is not a shared type.
    InvalidParent(String),
}

fn fmt_id(id: ID) -> String {
    format!("{}:{}", id.client, id.clock)
}

struct Resolver<'a> {
    index: &'a DocIndex,
    update: &'a ParsedUpdate,
    sections: HashMap<ClientID, usize>,
    /// Next clock per section before the update.
    base_next: Vec<u32>,
    /// Next clock per section while integrating.
    next: Vec<u32>,
    cursor: Vec<usize>,
    on_stack: Vec<bool>,
    places: Vec<Vec<Option<Place>>>,
    dead_memo: HashMap<ID, bool>,
    out: Resolved,
}

impl<'a> Resolver<'a> {
    fn new(index: &'a DocIndex, update: &'a ParsedUpdate) -> Self {
        let n = update.clients.len();
        let mut sections = HashMap::with_capacity(n);
        let mut base_next = Vec::with_capacity(n);
        for (i, c) in update.clients.iter().enumerate() {
            sections.insert(c.client, i);
            base_next.push(index.next_clock(c.client));
        }
        Resolver {
            index,
            update,
            sections,
            next: base_next.clone(),
            base_next,
            cursor: vec![0; n],
            on_stack: vec![false; n],
            places: update
                .clients
                .iter()
                .map(|c| vec![None; c.blocks.len()])
                .collect(),
            dead_memo: HashMap::new(),
            out: Resolved::default(),
        }
    }

    fn base_next_of(&self, client: ClientID) -> u32 {
        match self.sections.get(&client) {
            Some(&s) => self.base_next.get(s).copied().unwrap_or(0),
            None => self.index.next_clock(client),
        }
    }

    fn is_available(&self, id: ID) -> bool {
        match self.sections.get(&id.client) {
            Some(&s) => self.next.get(s).is_some_and(|&n| id.clock < n),
            None => id.clock < self.index.next_clock(id.client),
        }
    }

    fn find_block(&self, section: usize, clock: u32) -> Option<usize> {
        let blocks = &self.update.clients.get(section)?.blocks;
        let i = blocks.partition_point(|b| b.end() <= clock);
        let b = blocks.get(i)?;
        (b.clock <= clock && !matches!(b.kind, BlockKind::Skip)).then_some(i)
    }

    /// The place of an available id: `None` if it is garbage (GC) or unknown.
    fn place_of(&self, id: ID) -> Option<Place> {
        if id.clock < self.base_next_of(id.client) {
            let loc = self.index.lookup(id)?;
            if loc == GC_LOC {
                return Some(Place::Gc);
            }
            return self.index.loc(loc).cloned().map(Place::At);
        }
        let s = *self.sections.get(&id.client)?;
        let b = self.find_block(s, id.clock)?;
        self.places.get(s)?.get(b)?.clone()
    }

    /// The block of the update covering an id at or above the base clock.
    fn update_block(&self, id: ID) -> Option<&'a Block> {
        if id.clock < self.base_next_of(id.client) {
            return None;
        }
        let s = *self.sections.get(&id.client)?;
        let b = self.find_block(s, id.clock)?;
        self.update.clients.get(s)?.blocks.get(b)
    }

    /// Whether a container was already dead before the update (its type item or an ancestor
    /// deleted, or garbage collected).
    fn is_dead(&mut self, container: &Container) -> bool {
        let mut chain: Vec<ID> = Vec::new();
        let mut cur = container.clone();
        let mut result = false;
        loop {
            let id = match cur {
                Container::Root(_) => break,
                Container::Type(id) => id,
            };
            if let Some(&d) = self.dead_memo.get(&id) {
                result = d;
                break;
            }
            chain.push(id);
            if chain.len() > 100_000 || self.index.is_deleted(id) {
                result = true;
                break;
            }
            match self.place_of(id) {
                Some(Place::At(loc)) => cur = loc.container,
                _ => {
                    result = true;
                    break;
                }
            }
        }
        for id in chain {
            self.dead_memo.insert(id, result);
        }
        result
    }

    /// The first dependency of a block that is not available yet.
    fn unmet_dependency(&self, section: usize, block: &Block) -> Option<ID> {
        let client = self.update.clients.get(section)?.client;
        let next = self.next.get(section).copied().unwrap_or(0);
        if block.clock > next {
            // a gap in the client's own sequence: reported by the caller
            return Some(ID::new(client, next));
        }
        if let BlockKind::Item(item) = &block.kind {
            for id in [item.origin, item.right_origin].into_iter().flatten() {
                if !self.is_available(id) {
                    return Some(id);
                }
            }
            if let Parent::Id(p) = item.parent
                && !self.is_available(p)
            {
                return Some(p);
            }
        }
        None
    }

    /// Computes where a block lands, all its dependencies being available.
    fn place_block(&mut self, client: ClientID, block: &Block) -> Result<Place, ResolveError> {
        let item = match &block.kind {
            BlockKind::Item(item) => item,
            _ => return Ok(Place::Gc),
        };
        match &item.parent {
            Parent::Named(name) => Ok(Place::At(Loc {
                container: Container::Root(name.clone()),
                key: item.parent_sub.clone(),
            })),
            Parent::Id(p) => {
                let p = *p;
                let is_type = if p.clock < self.base_next_of(p.client) {
                    if self.index.is_type(p) {
                        Some(true)
                    } else if self.index.lookup(p) == Some(GC_LOC) || self.index.is_deleted(p) {
                        None
                    } else {
                        Some(false)
                    }
                } else {
                    match (self.update_block(p), self.place_of(p)) {
                        (_, Some(Place::Gc)) | (None, _) => None,
                        (Some(b), _) => match &b.kind {
                            BlockKind::Item(d) => match d.content {
                                Content::Type(_) => Some(true),
                                Content::Deleted => None,
                                _ => Some(false),
                            },
                            _ => None,
                        },
                    }
                };
                match is_type {
                    Some(true) => Ok(Place::At(Loc {
                        container: Container::Type(p),
                        key: item.parent_sub.clone(),
                    })),
                    None => Ok(Place::Gc),
                    Some(false) => Err(ResolveError::InvalidParent(format!(
                        "item {} names {} as its parent, which is not a shared type",
                        fmt_id(ID::new(client, block.clock)),
                        fmt_id(p)
                    ))),
                }
            }
            Parent::Unknown => {
                let left = item.origin.and_then(|o| self.place_of(o));
                let right = item.right_origin.and_then(|r| self.place_of(r));
                // yrs takes the parent of the left neighbour, else of the right one. We prefer
                // a live location over a dead one so that a crafted pair of origins cannot hide
                // a change behind a deleted container.
                let mut first_at = None;
                for cand in [left, right].into_iter().flatten() {
                    if let Place::At(loc) = cand {
                        if !self.is_dead(&loc.container) {
                            return Ok(Place::At(loc));
                        }
                        if first_at.is_none() {
                            first_at = Some(loc);
                        }
                    }
                }
                Ok(first_at.map(Place::At).unwrap_or(Place::Gc))
            }
        }
    }

    fn run(mut self) -> Result<Resolved, ResolveError> {
        let n = self.update.clients.len();
        let mut stack: Vec<usize> = Vec::new();
        for start in 0..n {
            loop {
                if !self.skip_known(start) {
                    break;
                }
                stack.push(start);
                if let Some(f) = self.on_stack.get_mut(start) {
                    *f = true;
                }
                while let Some(&top) = stack.last() {
                    if !self.skip_known(top) {
                        // nothing left in this section: the dependent will report what it misses
                        stack.pop();
                        if let Some(f) = self.on_stack.get_mut(top) {
                            *f = false;
                        }
                        if let Some(&dep) = stack.last() {
                            return Err(self.missing_for(dep));
                        }
                        continue;
                    }
                    let update = self.update;
                    let Some(section) = update.clients.get(top) else {
                        break;
                    };
                    let bi = self.cursor.get(top).copied().unwrap_or(0);
                    let Some(block) = section.blocks.get(bi) else {
                        break;
                    };
                    let next = self.next.get(top).copied().unwrap_or(0);
                    if block.clock > next {
                        return Err(ResolveError::Missing(format!(
                            "client {} skips clocks {}..{} (an earlier update of it is missing)",
                            section.client, next, block.clock
                        )));
                    }
                    match self.unmet_dependency(top, block) {
                        None => {
                            let place = self.place_block(section.client, block)?;
                            let start_clock = block.clock.max(next);
                            if let Some(slot) = self.places.get_mut(top).and_then(|p| p.get_mut(bi))
                            {
                                *slot = Some(place.clone());
                            }
                            self.out.items.push(NewItem {
                                section: top,
                                block: bi,
                                start: start_clock,
                                end: block.end(),
                                place,
                            });
                            if let Some(x) = self.next.get_mut(top) {
                                *x = block.end();
                            }
                            if let Some(x) = self.cursor.get_mut(top) {
                                *x += 1;
                            }
                            stack.pop();
                            if let Some(f) = self.on_stack.get_mut(top) {
                                *f = false;
                            }
                        }
                        Some(dep) => {
                            let Some(&ds) = self.sections.get(&dep.client) else {
                                return Err(ResolveError::Missing(format!(
                                    "item {} refers to {}, which the document does not have",
                                    fmt_id(ID::new(section.client, block.clock)),
                                    fmt_id(dep)
                                )));
                            };
                            let ends = update
                                .clients
                                .get(ds)
                                .and_then(|c| c.blocks.last())
                                .map(Block::end)
                                .unwrap_or(0);
                            if dep.clock >= ends || self.on_stack.get(ds).copied().unwrap_or(true) {
                                return Err(ResolveError::Missing(format!(
                                    "item {} refers to {}, which the document does not have",
                                    fmt_id(ID::new(section.client, block.clock)),
                                    fmt_id(dep)
                                )));
                            }
                            stack.push(ds);
                            if let Some(f) = self.on_stack.get_mut(ds) {
                                *f = true;
                            }
                        }
                    }
                }
            }
        }
        self.resolve_deletions()?;
        Ok(self.out)
    }

    fn missing_for(&self, section: usize) -> ResolveError {
        let what = self
            .update
            .clients
            .get(section)
            .and_then(|c| {
                let b = c
                    .blocks
                    .get(self.cursor.get(section).copied().unwrap_or(0))?;
                Some(fmt_id(ID::new(c.client, b.clock)))
            })
            .unwrap_or_default();
        ResolveError::Missing(format!(
            "item {what} refers to an item the document does not have"
        ))
    }

    /// Moves the cursor of a section past skip blocks and fully known blocks. Returns whether
    /// a block remains.
    fn skip_known(&mut self, section: usize) -> bool {
        let Some(c) = self.update.clients.get(section) else {
            return false;
        };
        let next = self.next.get(section).copied().unwrap_or(0);
        let Some(cur) = self.cursor.get_mut(section) else {
            return false;
        };
        while let Some(b) = c.blocks.get(*cur) {
            if matches!(b.kind, BlockKind::Skip) || b.end() <= next {
                *cur += 1;
            } else {
                return true;
            }
        }
        false
    }

    fn resolve_deletions(&mut self) -> Result<(), ResolveError> {
        let update = self.update;
        for d in &update.deletes {
            let after = match self.sections.get(&d.client) {
                Some(&s) => self.next.get(s).copied().unwrap_or(0),
                None => self.index.next_clock(d.client),
            };
            if d.end > after {
                return Err(ResolveError::Missing(format!(
                    "the update deletes {}..{} of client {}, which the document does not have",
                    d.start.max(after),
                    d.end,
                    d.client
                )));
            }
            let base = self.base_next_of(d.client);
            for (s, e) in self.index.undeleted_parts(d.client, d.start, d.end) {
                // known part
                if s < base {
                    let kb = e.min(base);
                    let mut pieces = Vec::new();
                    self.index.for_each_range(d.client, s, kb, |a, b, loc| {
                        pieces.push((a, b, loc));
                    });
                    for (_, _, loc) in pieces {
                        let place = if loc == GC_LOC {
                            Place::Gc
                        } else {
                            self.index
                                .loc(loc)
                                .cloned()
                                .map(Place::At)
                                .unwrap_or(Place::Gc)
                        };
                        self.out.deletions.push(Deletion {
                            place,
                            of_new_item: false,
                        });
                    }
                }
                // new part
                if e > base {
                    let mut clock = s.max(base);
                    while clock < e {
                        let Some(&sec) = self.sections.get(&d.client) else {
                            break;
                        };
                        let Some(bi) = self.find_block(sec, clock) else {
                            break;
                        };
                        let Some(block) = update.clients.get(sec).and_then(|c| c.blocks.get(bi))
                        else {
                            break;
                        };
                        let end = block.end().min(e);
                        let place = self
                            .places
                            .get(sec)
                            .and_then(|p| p.get(bi))
                            .cloned()
                            .flatten()
                            .unwrap_or(Place::Gc);
                        self.out.deletions.push(Deletion {
                            place,
                            of_new_item: true,
                        });
                        clock = end;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Resolves an update against an index.
pub(crate) fn resolve(index: &DocIndex, update: &ParsedUpdate) -> Result<Resolved, ResolveError> {
    Resolver::new(index, update).run()
}

/// Whether the update changes anything: a block beyond what the index has, or a deletion of
/// something not yet deleted. Cheap: no resolution.
pub(crate) fn has_changes(index: &DocIndex, update: &ParsedUpdate) -> bool {
    for c in &update.clients {
        let next = index.next_clock(c.client);
        if c.blocks
            .iter()
            .any(|b| !matches!(b.kind, BlockKind::Skip) && b.end() > next)
        {
            return true;
        }
    }
    update
        .deletes
        .iter()
        .any(|d| !index.undeleted_parts(d.client, d.start, d.end).is_empty())
}
