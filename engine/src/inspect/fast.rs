//! The fast path for the most common update: a run of items of one client that all land in
//! one location the index already knows (typing in a text, overwriting a map value), with no
//! deletions. It parses the update in one pass without building a block list and needs no
//! resolver state.
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

/// An update the fast path accepted: the new clock range and where it lives.
#[derive(Debug, Clone)]
pub(crate) struct SimpleRun {
    pub client: ClientID,
    pub start: u32,
    pub end: u32,
    pub loc: LocId,
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
    true
}

fn parse_simple(index: &DocIndex, bytes: &[u8]) -> Option<SimpleRun> {
    let mut dec = Dec::new(bytes);
    let clients: u32 = dec.read_var().ok()?;
    if clients != 1 {
        return None;
    }
    let blocks: u32 = dec.read_var().ok()?;
    let client = dec.read_client().ok()?;
    let mut clock: u32 = dec.read_var().ok()?;
    let start = index.next_clock(client);
    if clock != start || blocks == 0 {
        return None;
    }
    let mut loc: Option<LocId> = None;
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
                loc?
            } else {
                if id.clock >= index.next_clock(id.client) {
                    return None;
                }
                index.lookup(ID::new(id.client, id.clock))?
            };
            if here == GC_LOC || loc.is_some_and(|l| l != here) {
                return None;
            }
            loc = Some(here);
        }
        clock = clock.checked_add(len)?;
    }
    // an empty delete set
    let ds_clients: u32 = dec.read_var().ok()?;
    if ds_clients != 0 {
        return None;
    }
    Some(SimpleRun {
        client,
        start,
        end: clock,
        loc: loc?,
    })
}
