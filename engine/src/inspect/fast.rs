//! The fast path for the most common update: a run of items of one client that all land in
//! one location the index already knows (typing in a text, overwriting a map value), and/or
//! deletions of items of one text or array that the index knows (backspace, a selection
//! replaced by typing). It parses the update in one pass without building a block list and
//! needs no resolver state.
//!
//! Anything else, and anything doubtful (a malformed byte, a reference to a different
//! location, a dead container, a block position), returns `None`: the general path then
//! decides, with its exact error messages.

use super::index::{DocIndex, GC_LOC, LocId, PathInfo};
use super::parse::Dec;
use crate::Role;
use crate::schema;
use yrs::encoding::read::Read;
use yrs::updates::decoder::Decoder;
use yrs::{ClientID, ID};

const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const CONTENT_STRING: u8 = 4;
const CONTENT_ANY: u8 = 8;

/// An update the fast path accepted: the new clock range and where it lives (an empty range
/// for an update that only deletes), and the ranges it deletes.
#[derive(Debug, Clone)]
pub(crate) struct SimpleRun {
    pub client: ClientID,
    pub start: u32,
    pub end: u32,
    pub loc: LocId,
    /// `(client, start, end)` of every range of the update's delete set (all known to the
    /// index, all in sequence content at `loc`).
    pub deletes: Vec<(ClientID, u32, u32)>,
}

/// What the fast path found.
pub(crate) enum Fast<'a> {
    /// Accepted: the run and the path of its location.
    Accepted(SimpleRun, &'a PathInfo),
    /// Not a simple update: use the general path.
    NotSimple,
}

fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().map(char::len_utf16).sum()
    }
}

/// Tries the fast path. Role checks other than the location's (viewers are refused before).
pub(crate) fn try_simple<'a>(index: &'a DocIndex, role: Role, bytes: &[u8]) -> Fast<'a> {
    match parse_simple(index, bytes) {
        Some(run) => {
            let Some(path) = index.loc_path(run.loc) else {
                return Fast::NotSimple;
            };
            if !allowed(index, role, path) {
                return Fast::NotSimple;
            }
            Fast::Accepted(run, path)
        }
        None => Fast::NotSimple,
    }
}

/// Whether a change at `path` needs no further check. Everything that could be refused, and
/// block positions, go to the general path.
fn allowed(index: &DocIndex, role: Role, path: &PathInfo) -> bool {
    let Some(root) = path.root.as_deref() else {
        return false;
    };
    if !schema::ROOTS.contains(&root) || index.path_dead(path) || path.depth <= 1 {
        return false;
    }
    if root == schema::SHARING && !role.can_administer() {
        return false;
    }
    if root == schema::BLOCKS && (path.depth <= 3 && path.key(1) == Some(schema::POSITION)) {
        return false;
    }
    // Block metadata is the server's: the general path refuses client writes to it.
    if root == schema::BLOCKS && path.key(1) == Some(schema::METADATA) {
        return false;
    }
    // So are data bindings' values: the general path checks writes into data_bindings.
    if root == schema::BLOCKS && path.key(2) == Some(crate::blocks::DATA_BINDINGS_KEY) {
        return false;
    }
    true
}

fn parse_simple(index: &DocIndex, bytes: &[u8]) -> Option<SimpleRun> {
    let mut dec = Dec::new(bytes);
    let clients: u32 = dec.read_var().ok()?;
    let mut loc: Option<LocId> = None;
    let mut run = None;
    match clients {
        0 => {}
        1 => {
            let (client, start, end) = parse_run(index, &mut dec, &mut loc)?;
            run = Some((client, start, end));
        }
        _ => return None,
    }
    // the delete set: ranges of items the index knows, all in the same sequence content
    let ds_clients: u32 = dec.read_var().ok()?;
    let mut deletes = Vec::new();
    // every client named, with or without ranges (found by fuzzing: a client named twice
    // with no ranges went through here, while the general path refuses it)
    let mut seen = Vec::new();
    let mut changes = run.is_some();
    for _ in 0..ds_clients {
        let client = dec.read_client().ok()?;
        if seen.contains(&client) {
            return None; // the general path refuses this as malformed
        }
        seen.push(client);
        let ranges: u32 = dec.read_var().ok()?;
        for _ in 0..ranges {
            let start: u32 = dec.read_ds_clock().ok()?;
            let len: u32 = dec.read_ds_len().ok()?;
            let end = start.checked_add(len)?;
            // the update's own new items, or items the document lacks: general path
            if len == 0 || end > index.next_clock(client) {
                return None;
            }
            for (s, e) in index.undeleted_parts(client, start, end) {
                let mut ok = true;
                index.for_each_range(client, s, e, |_, _, here| {
                    let sequence = index.loc(here).is_some_and(|l| l.key.is_none());
                    if here == GC_LOC || !sequence || loc.is_some_and(|l| l != here) {
                        ok = false;
                    }
                    loc = Some(here);
                });
                if !ok {
                    return None;
                }
                changes = true;
            }
            deletes.push((client, start, end));
        }
    }
    if !changes {
        return None; // a no-op: the general path says so
    }
    let (client, start, end) = match run {
        Some(r) => r,
        None => (deletes.first()?.0, 0, 0),
    };
    Some(SimpleRun {
        client,
        start,
        end,
        loc: loc?,
        deletes,
    })
}

/// Reads the one client section of an update: a run of new items of that client starting at
/// its next clock, all landing in one known location (stored in `loc`).
fn parse_run(
    index: &DocIndex,
    dec: &mut Dec<'_>,
    loc: &mut Option<LocId>,
) -> Option<(ClientID, u32, u32)> {
    let blocks: u32 = dec.read_var().ok()?;
    let client = dec.read_client().ok()?;
    let mut clock: u32 = dec.read_var().ok()?;
    let start = index.next_clock(client);
    if clock != start || blocks == 0 {
        return None;
    }
    for _ in 0..blocks {
        let info = dec.read_info().ok()?;
        if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
            return None;
        }
        let mut refs = [None, None];
        if info & HAS_ORIGIN != 0 {
            refs[0] = Some(dec.read_left_id().ok()?);
        }
        if info & HAS_RIGHT_ORIGIN != 0 {
            refs[1] = Some(dec.read_right_id().ok()?);
        }
        let len: u32 = match info & 0b1_1111 {
            CONTENT_STRING => u32::try_from(utf16_len(dec.read_string().ok()?)).ok()?,
            CONTENT_ANY => {
                let count = dec.read_len().ok()?;
                for _ in 0..count {
                    dec.read_any().ok()?;
                }
                count
            }
            _ => return None,
        };
        if len == 0 {
            return None;
        }
        for id in refs.into_iter().flatten() {
            let here = if id.client == client && id.clock >= start {
                // an earlier item of this update: same location by construction
                if id.clock >= clock {
                    return None;
                }
                (*loc)?
            } else {
                if id.clock >= index.next_clock(id.client) {
                    return None;
                }
                index.lookup(ID::new(id.client, id.clock))?
            };
            if here == GC_LOC || loc.is_some_and(|l| l != here) {
                return None;
            }
            *loc = Some(here);
        }
        clock = clock.checked_add(len)?;
    }
    Some((client, start, clock))
}
