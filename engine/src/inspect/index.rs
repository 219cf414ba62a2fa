//! The location index of a document: for every integrated clock range of every client, the
//! container and key it lives in; which items are shared types; which ranges are deleted.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::{Arc, OnceLock};
use yrs::{ClientID, ID};

/// A fast hasher for client ids and item ids (integers), keyed with a per-process random
/// seed so that clients cannot choose colliding ids. SipHash dominated the hot path.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IdHasher(u64);

const MUL: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // final avalanche (splitmix64)
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(MUL);
    }
}

/// Builds [`IdHasher`]s from the process seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdHash(u64);

impl Default for IdHash {
    fn default() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        IdHash(*SEED.get_or_init(|| RandomState::new().hash_one(0x5eed_u64) | 1))
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.0)
    }
}

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

/// At most this many keys of a path are kept (enough for `blocks.<id>.position.<key>` and
/// `blocks.<id>.content.data_bindings.<n>.value`).
const KEPT_KEYS: usize = 5;
/// At most this many container ids of a path are kept (and checked for deletion).
pub(crate) const KEPT_CHAIN: usize = 32;

/// Where a location or container sits, seen from its root. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct PathInfo {
    /// Root type name; `None` when the chain is lost (a container that is not a known type).
    pub root: Option<Arc<str>>,
    /// Keys from the root down (`None` for sequence content), the first [`KEPT_KEYS`].
    keys: Arc<[Option<Arc<str>>]>,
    /// Type item ids of the containers from the root down, the first [`KEPT_CHAIN`].
    pub chain: Arc<[ID]>,
    /// Number of keys in the full path.
    pub depth: u32,
}

impl PathInfo {
    /// The path of a root type.
    pub(crate) fn root(name: Arc<str>) -> PathInfo {
        PathInfo {
            root: Some(name),
            keys: Arc::from(Vec::new()),
            chain: Arc::from(Vec::new()),
            depth: 0,
        }
    }

    /// A path whose chain is lost: the container is garbage or not a type.
    pub(crate) fn lost() -> PathInfo {
        PathInfo {
            root: None,
            keys: Arc::from(Vec::new()),
            chain: Arc::from(Vec::new()),
            depth: 0,
        }
    }

    /// The path of entry `key` (or sequence content) of the container at `self`.
    pub(crate) fn with_key(&self, key: Option<Arc<str>>) -> PathInfo {
        let mut p = self.clone();
        if p.keys.len() < KEPT_KEYS {
            let mut keys = p.keys.to_vec();
            keys.push(key);
            p.keys = Arc::from(keys);
        }
        p.depth = p.depth.saturating_add(1);
        p
    }

    /// The path of the container created by the type item `id` located at `self`.
    pub(crate) fn container(&self, id: ID) -> PathInfo {
        let mut p = self.clone();
        if p.chain.len() < KEPT_CHAIN {
            let mut chain = p.chain.to_vec();
            chain.push(id);
            p.chain = Arc::from(chain);
        }
        p
    }

    /// The `i`-th key from the root.
    pub(crate) fn key(&self, i: usize) -> Option<&str> {
        self.keys.get(i).and_then(|k| k.as_deref())
    }

    /// Whether the `i`-th key exists and is a sequence position (no key).
    pub(crate) fn is_sequence_at(&self, i: usize) -> bool {
        self.keys.get(i).is_some_and(Option::is_none)
    }

    /// The type item id of the `i`-th container from the root.
    pub(crate) fn container_id(&self, i: usize) -> Option<ID> {
        self.chain.get(i).copied()
    }

    /// `root.key1.key2` with at most `levels` keys.
    pub(crate) fn display(&self, levels: usize) -> String {
        let mut s = self.root.as_deref().unwrap_or("?").to_string();
        for k in self.keys.iter().take(levels) {
            s.push('.');
            s.push_str(k.as_deref().unwrap_or("[]"));
        }
        s
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct ClientIndex {
    /// start clock -> (end clock, location); disjoint, contiguous from 0.
    ranges: BTreeMap<u32, (u32, LocId)>,
    /// End of the last range: the client's next expected clock.
    next: u32,
    /// start clock -> end clock of deleted ranges; disjoint, merged.
    deleted: BTreeMap<u32, u32>,
    /// Clocks of the client's items that created shared types.
    types: BTreeSet<u32>,
}

/// The location index of one document (see the module docs of [`crate::inspect`]).
///
/// Memory grows with the number of distinct (client, location) runs, not with the number of
/// characters: consecutive keystrokes of one client in one text are one range.
#[derive(Debug, Default, Clone)]
pub struct DocIndex {
    clients: HashMap<ClientID, ClientIndex, IdHash>,
    types: HashSet<ID, IdHash>,
    /// Shared types that are deleted (their content is dead).
    deleted_types: HashSet<ID, IdHash>,
    locs: Vec<(Loc, PathInfo)>,
    loc_ids: HashMap<Loc, LocId>,
    /// Bumped on every change; an [`crate::inspect::Inspection`] is valid for one generation.
    pub(crate) generation: u64,
}

impl DocIndex {
    /// The next clock expected from `client` (its state vector entry).
    pub(crate) fn next_clock(&self, client: ClientID) -> u32 {
        self.clients.get(&client).map(|c| c.next).unwrap_or(0)
    }

    /// The location id of the integrated item covering `id`.
    pub(crate) fn lookup(&self, id: ID) -> Option<LocId> {
        let c = self.clients.get(&id.client)?;
        // most references point at the client's latest range (the previous keystroke)
        if let Some((&start, &(end, loc))) = c.ranges.last_key_value()
            && start <= id.clock
        {
            return (id.clock < end).then_some(loc);
        }
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

    /// Whether some part of `[start, end)` is not deleted.
    pub(crate) fn has_undeleted(&self, client: ClientID, start: u32, end: u32) -> bool {
        let Some(c) = self.clients.get(&client) else {
            return true;
        };
        // deleted ranges are merged: if the one covering `start` stops before `end`, the
        // clock where it stops is not deleted
        !matches!(c.deleted.range(..=start).next_back(), Some((_, &e)) if e >= end)
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
        self.locs.get(id as usize).map(|(l, _)| l)
    }

    /// The path of an interned location (`None` for [`GC_LOC`]).
    pub(crate) fn loc_path(&self, id: LocId) -> Option<&PathInfo> {
        self.locs.get(id as usize).map(|(_, p)| p)
    }

    /// The path of a container as the index knows it (lost if it is not a located type).
    pub(crate) fn container_path(&self, container: &Container) -> PathInfo {
        match container {
            Container::Root(name) => PathInfo::root(name.clone()),
            Container::Type(id) => match self.type_path(*id) {
                Some(p) => p.container(*id),
                None => PathInfo::lost(),
            },
        }
    }

    /// The path of the location of type item `id`, if it is a known, located type.
    fn type_path(&self, id: ID) -> Option<&PathInfo> {
        if !self.is_type(id) {
            return None;
        }
        self.lookup(id).and_then(|l| self.loc_path(l))
    }

    /// Whether a path lies in a deleted (or lost) container.
    pub(crate) fn path_dead(&self, path: &PathInfo) -> bool {
        path.root.is_none()
            || (!self.deleted_types.is_empty()
                && path.chain.iter().any(|id| self.deleted_types.contains(id)))
    }

    /// Whether a container known to the index is deleted or lies in a deleted container.
    pub(crate) fn container_dead(&self, id: ID) -> bool {
        match self.type_path(id) {
            Some(p) => self.is_deleted(id) || self.path_dead(p),
            None => true,
        }
    }

    /// Interns a location, computing its path (its container must be indexed already).
    pub(crate) fn intern(&mut self, loc: &Loc) -> LocId {
        if let Some(id) = self.loc_ids.get(loc) {
            return *id;
        }
        let Ok(id) = LocId::try_from(self.locs.len()) else {
            return GC_LOC;
        };
        if id == GC_LOC {
            return GC_LOC;
        }
        let path = self
            .container_path(&loc.container)
            .with_key(loc.key.clone());
        self.locs.push((loc.clone(), path));
        self.loc_ids.insert(loc.clone(), id);
        id
    }

    /// Records `[start, end)` of `client` as integrated at `loc` ([`GC_LOC`]: GC).
    pub(crate) fn insert_range(&mut self, client: ClientID, start: u32, end: u32, loc: LocId) {
        let next = self.next_clock(client);
        let start = start.max(next);
        if start >= end {
            return;
        }
        let c = self.clients.entry(client).or_default();
        c.next = end;
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
        let c = self.clients.entry(id.client).or_default();
        c.types.insert(id.clock);
        if self.is_deleted(id) {
            self.deleted_types.insert(id);
        }
    }

    /// Marks `[start, end)` of `client` deleted.
    pub(crate) fn insert_deleted(&mut self, client: ClientID, start: u32, end: u32) {
        if start >= end {
            return;
        }
        let c = self.clients.entry(client).or_default();
        for clock in c.types.range(start..end) {
            self.deleted_types.insert(ID::new(client, *clock));
        }
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
        while let Some((&a, &b)) = c.deleted.range(s..=e).next() {
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
            key: Some("name".into()),
        };
        let l = ix.intern(&loc);
        ix.insert_range(cid(1), 0, 3, l);
        ix.insert_range(cid(1), 3, 5, l);
        ix.insert_range(cid(1), 5, 6, GC_LOC);
        assert_eq!(
            ix.loc_path(l).map(|p| p.display(3)),
            Some("meta.name".into())
        );
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
        assert!(ix.has_undeleted(c, 0, 13));
        assert!(!ix.has_undeleted(c, 0, 12));
        assert!(!ix.has_undeleted(c, 3, 4));
        assert!(ix.has_undeleted(c, 12, 13));
        assert!(ix.is_deleted(ID::new(c, 11)));
        assert!(!ix.is_deleted(ID::new(c, 12)));
    }
}
