//! The location index of a document: for every integrated clock range of every client, the
//! container and key it lives in; which items are shared types; which ranges are deleted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use yrs::{ClientID, ID};

/// Interned location id. [`GC_LOC`] marks garbage-collected ranges (no location).
pub(crate) type LocId = u32;
/// Location id of garbage-collected ranges (or items yrs turned into GC).
pub(crate) const GC_LOC: LocId = u32::MAX;

/// A container of items: a root type or the shared type created by an item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Container {
    /// Root type by name.
    Root(Arc<str>),
    /// The type created by the item with this id.
    Type(ID),
}

/// Where an item lives: its container and, for map entries, its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Loc {
    pub container: Container,
    pub key: Option<Arc<str>>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct ClientIndex {
    /// start clock -> (end clock, location); disjoint, contiguous from 0.
    ranges: BTreeMap<u32, (u32, LocId)>,
    /// start clock -> end clock of deleted ranges; disjoint, merged.
    deleted: BTreeMap<u32, u32>,
}

/// The location index of one document (see the module docs of [`crate::inspect`]).
///
/// Memory grows with the number of distinct (client, location) runs, not with the number of
/// characters: consecutive keystrokes of one client in one text are one range.
#[derive(Debug, Default, Clone)]
pub struct DocIndex {
    clients: HashMap<ClientID, ClientIndex>,
    types: HashSet<ID>,
    locs: Vec<Loc>,
    loc_ids: HashMap<Loc, LocId>,
    /// Bumped on every change; an [`crate::inspect::Inspection`] is valid for one generation.
    pub(crate) generation: u64,
}

impl DocIndex {
    /// The next clock expected from `client` (its state vector entry).
    pub(crate) fn next_clock(&self, client: ClientID) -> u32 {
        self.clients
            .get(&client)
            .and_then(|c| c.ranges.last_key_value())
            .map(|(_, (end, _))| *end)
            .unwrap_or(0)
    }

    /// The location id of the integrated item covering `id`.
    pub(crate) fn lookup(&self, id: ID) -> Option<LocId> {
        let c = self.clients.get(&id.client)?;
        let (_, (end, loc)) = c.ranges.range(..=id.clock).next_back()?;
        (id.clock < *end).then_some(*loc)
    }

    /// Calls `f(start, end, loc)` for the integrated pieces of `[start, end)`.
    pub(crate) fn for_each_range(
        &self,
        client: ClientID,
        start: u32,
        end: u32,
        mut f: impl FnMut(u32, u32, LocId),
    ) {
        let Some(c) = self.clients.get(&client) else {
            return;
        };
        let first = c
            .ranges
            .range(..=start)
            .next_back()
            .map(|(s, _)| *s)
            .unwrap_or(start);
        for (&s, &(e, loc)) in c.ranges.range(first..end) {
            let a = s.max(start);
            let b = e.min(end);
            if a < b {
                f(a, b, loc);
            }
        }
    }

    /// Whether `id` is deleted.
    pub(crate) fn is_deleted(&self, id: ID) -> bool {
        self.clients.get(&id.client).is_some_and(|c| {
            c.deleted
                .range(..=id.clock)
                .next_back()
                .is_some_and(|(_, &e)| id.clock < e)
        })
    }

    /// The parts of `[start, end)` not yet deleted.
    pub(crate) fn undeleted_parts(
        &self,
        client: ClientID,
        start: u32,
        end: u32,
    ) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let Some(c) = self.clients.get(&client) else {
            out.push((start, end));
            return out;
        };
        let first = c
            .deleted
            .range(..=start)
            .next_back()
            .map(|(s, _)| *s)
            .unwrap_or(start);
        let mut cur = start;
        for (&s, &e) in c.deleted.range(first..end) {
            if e <= cur {
                continue;
            }
            if s > cur {
                out.push((cur, s.min(end)));
            }
            cur = cur.max(e);
            if cur >= end {
                break;
            }
        }
        if cur < end {
            out.push((cur, end));
        }
        out
    }

    /// Whether the item `id` created a shared type.
    pub(crate) fn is_type(&self, id: ID) -> bool {
        self.types.contains(&id)
    }

    /// The location behind an id (`None` for [`GC_LOC`]).
    pub(crate) fn loc(&self, id: LocId) -> Option<&Loc> {
        self.locs.get(id as usize)
    }

    /// The location of the type created by item `id`, if it is a known, located type.
    pub(crate) fn type_loc(&self, id: ID) -> Option<&Loc> {
        if !self.is_type(id) {
            return None;
        }
        self.lookup(id).and_then(|l| self.loc(l))
    }

    fn intern(&mut self, loc: &Loc) -> LocId {
        if let Some(id) = self.loc_ids.get(loc) {
            return *id;
        }
        let id = LocId::try_from(self.locs.len()).unwrap_or(GC_LOC - 1);
        self.locs.push(loc.clone());
        self.loc_ids.insert(loc.clone(), id);
        id
    }

    /// Records `[start, end)` of `client` as integrated at `loc` (`None`: GC).
    pub(crate) fn insert_range(
        &mut self,
        client: ClientID,
        start: u32,
        end: u32,
        loc: Option<&Loc>,
    ) {
        let loc = match loc {
            Some(l) => self.intern(l),
            None => GC_LOC,
        };
        let next = self.next_clock(client);
        let start = start.max(next);
        if start >= end {
            return;
        }
        let c = self.clients.entry(client).or_default();
        if let Some(mut last) = c.ranges.last_entry() {
            let (last_end, last_loc) = *last.get();
            if last_end == start && last_loc == loc {
                last.get_mut().0 = end;
                return;
            }
        }
        c.ranges.insert(start, (end, loc));
    }

    /// Records the item `id` as a shared type.
    pub(crate) fn insert_type(&mut self, id: ID) {
        self.types.insert(id);
    }

    /// Marks `[start, end)` of `client` deleted.
    pub(crate) fn insert_deleted(&mut self, client: ClientID, start: u32, end: u32) {
        if start >= end {
            return;
        }
        let c = self.clients.entry(client).or_default();
        let mut s = start;
        let mut e = end;
        // merge with a range starting before `start` that reaches it
        if let Some((&ps, &pe)) = c.deleted.range(..=start).next_back()
            && pe >= start
        {
            if pe >= end {
                return;
            }
            s = ps;
            e = e.max(pe);
            c.deleted.remove(&ps);
        }
        // absorb ranges starting inside [s, e]
        let inside: Vec<(u32, u32)> = c.deleted.range(s..=e).map(|(a, b)| (*a, *b)).collect();
        for (a, b) in inside {
            c.deleted.remove(&a);
            e = e.max(b);
        }
        c.deleted.insert(s, e);
    }

    /// Number of stored ranges (for tests and metrics).
    pub fn range_count(&self) -> usize {
        self.clients.values().map(|c| c.ranges.len()).sum()
    }

    /// The state vector the index knows: client -> next clock.
    pub(crate) fn clocks(&self) -> impl Iterator<Item = (ClientID, u32)> + '_ {
        self.clients.keys().map(|c| (*c, self.next_clock(*c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u64) -> ClientID {
        ClientID::new(n)
    }

    #[test]
    fn ranges_merge_and_lookup() {
        let mut ix = DocIndex::default();
        let loc = Loc {
            container: Container::Root("meta".into()),
            key: None,
        };
        ix.insert_range(cid(1), 0, 3, Some(&loc));
        ix.insert_range(cid(1), 3, 5, Some(&loc));
        ix.insert_range(cid(1), 5, 6, None);
        assert_eq!(ix.range_count(), 2);
        assert_eq!(ix.next_clock(cid(1)), 6);
        assert_eq!(ix.lookup(ID::new(cid(1), 4)), Some(0));
        assert_eq!(ix.lookup(ID::new(cid(1), 5)), Some(GC_LOC));
        assert_eq!(ix.lookup(ID::new(cid(1), 6)), None);
    }

    #[test]
    fn deleted_ranges_merge() {
        let mut ix = DocIndex::default();
        let c = cid(2);
        ix.insert_deleted(c, 5, 7);
        ix.insert_deleted(c, 0, 2);
        ix.insert_deleted(c, 2, 3);
        ix.insert_deleted(c, 10, 12);
        assert_eq!(
            ix.undeleted_parts(c, 0, 13),
            vec![(3, 5), (7, 10), (12, 13)]
        );
        ix.insert_deleted(c, 1, 11);
        assert_eq!(ix.undeleted_parts(c, 0, 13), vec![(12, 13)]);
        assert!(ix.is_deleted(ID::new(c, 11)));
        assert!(!ix.is_deleted(ID::new(c, 12)));
    }
}
