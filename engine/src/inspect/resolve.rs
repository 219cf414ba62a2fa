//! Resolving where the new items of an update land, in the order yrs would integrate them.
//!
//! yrs integrates an update's blocks client by client, and when a block depends on an item it
//! does not have yet (its origin, right origin, parent, or the previous clock of its own
//! client), it first integrates the blocks of the client that provides it (a stack walk). This
//! module replays that walk over the [`DocIndex`] without touching the document, so every new
//! item is located from information that is already resolved: no recursion, no pending state.
//! Whatever yrs would have to keep pending (a gap, an unknown reference, a cycle) is reported
//! as missing.

use super::index::{Container, DocIndex, GC_LOC, IdHash, Loc, LocId};
use super::parse::{Block, BlockKind, Content, Parent, ParsedUpdate};
use std::collections::HashMap;
use yrs::{ClientID, ID};

/// Where a new item lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// yrs stores it as garbage (its parent is gone): no effect on the content.
    Gc,
    /// At a location the index has interned already.
    Known(LocId),
    /// At a location the index does not know yet.
    New(Loc),
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

fn missing(item: ID, dep: ID) -> ResolveError {
    ResolveError::Missing(format!(
        "item {} refers to {}, which the document does not have",
        fmt_id(item),
        fmt_id(dep)
    ))
}

/// Integration state of one client section.
#[derive(Debug, Clone, Copy)]
struct Section {
    /// Next clock before the update.
    base_next: u32,
    /// Next clock while integrating.
    next: u32,
    /// Next block to integrate.
    cursor: usize,
    /// End clock of the section's last block.
    end: u32,
    /// Offset of the section's blocks in the flat `places`.
    offset: usize,
    on_stack: bool,
}

/// Above this many clients, sections are found through a hash map.
const LINEAR_SECTIONS: usize = 16;

/// Section states; the first one inline (most updates have one client: no allocation).
struct Sections {
    first: Section,
    rest: Vec<Section>,
}

impl Sections {
    fn get(&self, i: usize) -> Option<&Section> {
        match i {
            0 => Some(&self.first),
            _ => self.rest.get(i - 1),
        }
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Section> {
        match i {
            0 => Some(&mut self.first),
            _ => self.rest.get_mut(i - 1),
        }
    }
}

struct Resolver<'a> {
    index: &'a DocIndex,
    update: &'a ParsedUpdate,
    by_client: Option<HashMap<ClientID, usize, IdHash>>,
    sections: Sections,
    /// Places of the blocks of multi-client updates (single-client updates find them in
    /// `out.items`, which is then in block order).
    places: Vec<Option<Place>>,
    total_blocks: usize,
    out: Resolved,
}

impl<'a> Resolver<'a> {
    fn new(index: &'a DocIndex, update: &'a ParsedUpdate) -> Self {
        let n = update.clients.len();
        let mut first = None;
        let mut rest = Vec::with_capacity(n.saturating_sub(1));
        let mut offset = 0;
        for c in &update.clients {
            let next = index.next_clock(c.client);
            let section = Section {
                base_next: next,
                next,
                cursor: 0,
                end: c.blocks.last().map(Block::end).unwrap_or(0),
                offset,
                on_stack: false,
            };
            if first.is_none() {
                first = Some(section);
            } else {
                rest.push(section);
            }
            offset += c.blocks.len();
        }
        let empty = Section {
            base_next: 0,
            next: 0,
            cursor: 0,
            end: 0,
            offset: 0,
            on_stack: false,
        };
        let sections = Sections {
            first: first.unwrap_or(empty),
            rest,
        };
        let by_client = (n > LINEAR_SECTIONS).then(|| {
            update
                .clients
                .iter()
                .enumerate()
                .map(|(i, c)| (c.client, i))
                .collect()
        });
        Resolver {
            index,
            update,
            by_client,
            sections,
            places: if n > 1 {
                vec![None; offset]
            } else {
                Vec::new()
            },
            total_blocks: offset,
            out: Resolved::default(),
        }
    }

    fn section_of(&self, client: ClientID) -> Option<usize> {
        match &self.by_client {
            Some(map) => map.get(&client).copied(),
            None => self.update.clients.iter().position(|c| c.client == client),
        }
    }

    fn base_next_of(&self, client: ClientID) -> u32 {
        match self.section_of(client) {
            Some(s) => self.sections.get(s).map(|x| x.base_next).unwrap_or(0),
            None => self.index.next_clock(client),
        }
    }

    fn is_available(&self, id: ID) -> bool {
        match self.section_of(id.client) {
            Some(s) => self.sections.get(s).is_some_and(|x| id.clock < x.next),
            None => id.clock < self.index.next_clock(id.client),
        }
    }

    fn find_block(&self, section: usize, clock: u32) -> Option<usize> {
        let blocks = &self.update.clients.get(section)?.blocks;
        let i = blocks.partition_point(|b| b.end() <= clock);
        let b = blocks.get(i)?;
        (b.clock <= clock && !matches!(b.kind, BlockKind::Skip)).then_some(i)
    }

    /// The block of the update covering an id at or above the base clock, and its section.
    fn update_block(&self, id: ID) -> Option<(usize, usize, &'a Block)> {
        let s = self.section_of(id.client)?;
        if id.clock < self.sections.get(s)?.base_next {
            return None;
        }
        let b = self.find_block(s, id.clock)?;
        let block = self.update.clients.get(s)?.blocks.get(b)?;
        Some((s, b, block))
    }

    fn stored_place(&self, section: usize, block: usize) -> Option<&Place> {
        if self.update.clients.len() == 1 {
            let items = &self.out.items;
            let i = items.partition_point(|it| it.block < block);
            return items
                .get(i)
                .filter(|it| it.block == block)
                .map(|it| &it.place);
        }
        let offset = self.sections.get(section)?.offset;
        self.places.get(offset + block)?.as_ref()
    }

    /// The place of an available id (`None` if unknown).
    fn place_of(&self, id: ID) -> Option<Place> {
        if id.clock < self.base_next_of(id.client) {
            let loc = self.index.lookup(id)?;
            return Some(if loc == GC_LOC {
                Place::Gc
            } else {
                Place::Known(loc)
            });
        }
        let (s, b, _) = self.update_block(id)?;
        self.stored_place(s, b).cloned()
    }

    /// Whether a place lies in a container that was dead before the update.
    fn is_dead(&self, place: &Place) -> bool {
        let mut container = match place {
            Place::Gc => return true,
            Place::Known(l) => {
                return self
                    .index
                    .loc_path(*l)
                    .is_none_or(|p| self.index.path_dead(p));
            }
            Place::New(loc) => loc.container.clone(),
        };
        // containers created by this update: follow their places up
        for _ in 0..self.total_blocks + 1 {
            let id = match container {
                Container::Root(_) => return false,
                Container::Type(id) => id,
            };
            if id.clock < self.base_next_of(id.client) {
                return self.index.container_dead(id);
            }
            match self.place_of(id) {
                Some(Place::New(loc)) => container = loc.container,
                Some(p @ Place::Known(_)) => return self.is_dead(&p),
                _ => return true,
            }
        }
        true
    }

    /// The first dependency of a block that is not available yet.
    fn unmet_dependency(&self, block: &Block) -> Option<ID> {
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
    fn place_block(&self, client: ClientID, block: &Block) -> Result<Place, ResolveError> {
        let item = match &block.kind {
            BlockKind::Item(item) => item,
            _ => return Ok(Place::Gc),
        };
        match &item.parent {
            Parent::Named(name) => Ok(Place::New(Loc {
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
                    match self.update_block(p) {
                        Some((s, b, block)) => match (self.stored_place(s, b), &block.kind) {
                            (Some(Place::Gc) | None, _) => None,
                            (_, BlockKind::Item(d)) => match d.content {
                                Content::Type(_) => Some(true),
                                Content::Deleted => None,
                                _ => Some(false),
                            },
                            _ => None,
                        },
                        None => None,
                    }
                };
                match is_type {
                    Some(true) => Ok(Place::New(Loc {
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
                // yrs takes the parent of the left neighbour, else of the right one. When both
                // exist and differ, prefer a live location over a dead one so that a crafted
                // pair of origins cannot hide a change behind a deleted container.
                Ok(match (left, right) {
                    (Some(l), Some(r)) if l != r => {
                        let l_ok = !matches!(l, Place::Gc);
                        let r_ok = !matches!(r, Place::Gc);
                        if l_ok && !self.is_dead(&l) {
                            l
                        } else if r_ok && !self.is_dead(&r) {
                            r
                        } else if l_ok {
                            l
                        } else {
                            r
                        }
                    }
                    (Some(Place::Gc), Some(r)) => r,
                    (Some(l), _) => l,
                    (None, Some(r)) => r,
                    (None, None) => Place::Gc,
                })
            }
        }
    }

    fn set_on_stack(&mut self, section: usize, on: bool) {
        if let Some(s) = self.sections.get_mut(section) {
            s.on_stack = on;
        }
    }

    /// Integrates the next block of a section if its dependencies are available; returns the
    /// first unavailable dependency otherwise. The section must have a block left.
    fn try_integrate(&mut self, top: usize) -> Result<Option<ID>, ResolveError> {
        let update = self.update;
        let (Some(section), Some(state)) =
            (update.clients.get(top), self.sections.get(top).copied())
        else {
            return Ok(None);
        };
        let Some(block) = section.blocks.get(state.cursor) else {
            return Ok(None);
        };
        if block.clock > state.next {
            return Err(ResolveError::Missing(format!(
                "client {} skips clocks {}..{} (an earlier update of it is missing)",
                section.client, state.next, block.clock
            )));
        }
        if let Some(dep) = self.unmet_dependency(block) {
            return Ok(Some(dep));
        }
        let place = self.place_block(section.client, block)?;
        if let Some(slot) = self.places.get_mut(state.offset + state.cursor) {
            *slot = Some(place.clone());
        }
        self.out.items.push(NewItem {
            section: top,
            block: state.cursor,
            start: block.clock.max(state.next),
            end: block.end(),
            place,
        });
        if let Some(s) = self.sections.get_mut(top) {
            s.next = block.end();
            s.cursor += 1;
        }
        Ok(None)
    }

    fn run(mut self) -> Result<Resolved, ResolveError> {
        let update = self.update;
        let mut stack: Vec<usize> = Vec::new();
        for start in 0..update.clients.len() {
            while self.skip_known(start) {
                // fast path: everything it needs is there
                let Some(first_dep) = self.try_integrate(start)? else {
                    continue;
                };
                // slow path: integrate what it depends on first, like yrs's stack walk
                let mut dep = Some(first_dep);
                stack.push(start);
                self.set_on_stack(start, true);
                while let Some(&top) = stack.last() {
                    if let Some(d) = dep.take() {
                        let item = self.current_id(top);
                        let Some(ds) = self.section_of(d.client) else {
                            return Err(missing(item, d));
                        };
                        let Some(dstate) = self.sections.get(ds) else {
                            return Err(missing(item, d));
                        };
                        if d.clock >= dstate.end || dstate.on_stack {
                            return Err(missing(item, d));
                        }
                        stack.push(ds);
                        self.set_on_stack(ds, true);
                        continue;
                    }
                    if !self.skip_known(top) {
                        // nothing left in this section: what the dependent wanted is missing
                        stack.pop();
                        self.set_on_stack(top, false);
                        if let Some(&dependent) = stack.last() {
                            return Err(self.missing_for(dependent));
                        }
                        continue;
                    }
                    match self.try_integrate(top)? {
                        None => {
                            stack.pop();
                            self.set_on_stack(top, false);
                        }
                        Some(d) => dep = Some(d),
                    }
                }
            }
        }
        self.resolve_deletions()?;
        Ok(self.out)
    }

    fn current_id(&self, section: usize) -> ID {
        let c = self.update.clients.get(section);
        let cursor = self.sections.get(section).map(|s| s.cursor).unwrap_or(0);
        match c {
            Some(c) => ID::new(
                c.client,
                c.blocks.get(cursor).map(|b| b.clock).unwrap_or_default(),
            ),
            None => ID::new(ClientID::new(0), 0),
        }
    }

    fn missing_for(&self, section: usize) -> ResolveError {
        let what = self
            .update
            .clients
            .get(section)
            .and_then(|c| {
                let cursor = self.sections.get(section)?.cursor;
                let b = c.blocks.get(cursor)?;
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
        let Some(state) = self.sections.get_mut(section) else {
            return false;
        };
        while let Some(b) = c.blocks.get(state.cursor) {
            if matches!(b.kind, BlockKind::Skip) || b.end() <= state.next {
                state.cursor += 1;
            } else {
                return true;
            }
        }
        false
    }

    fn resolve_deletions(&mut self) -> Result<(), ResolveError> {
        let update = self.update;
        for d in &update.deletes {
            let section = self.section_of(d.client);
            let after = match section.and_then(|s| self.sections.get(s)) {
                Some(s) => s.next,
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
            if !self.index.has_undeleted(d.client, d.start, d.end) {
                continue;
            }
            let base = self.base_next_of(d.client);
            for (s, e) in self.index.undeleted_parts(d.client, d.start, d.end) {
                // known part
                if s < base {
                    let deletions = &mut self.out.deletions;
                    self.index
                        .for_each_range(d.client, s, e.min(base), |_, _, loc| {
                            deletions.push(Deletion {
                                place: if loc == GC_LOC {
                                    Place::Gc
                                } else {
                                    Place::Known(loc)
                                },
                                of_new_item: false,
                            });
                        });
                }
                // new part
                let Some(sec) = section else {
                    continue;
                };
                let mut clock = s.max(base);
                while clock < e {
                    let Some(bi) = self.find_block(sec, clock) else {
                        break;
                    };
                    let Some(block) = update.clients.get(sec).and_then(|c| c.blocks.get(bi)) else {
                        break;
                    };
                    let place = self.stored_place(sec, bi).cloned().unwrap_or(Place::Gc);
                    self.out.deletions.push(Deletion {
                        place,
                        of_new_item: true,
                    });
                    clock = block.end().min(e);
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
/// something not yet deleted. Cheap: no resolution, no allocation.
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
        .any(|d| index.has_undeleted(d.client, d.start, d.end))
}
