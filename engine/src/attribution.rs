//! Who created and last changed each block: the block's `metadata` map
//! (`created_by`, `created_at`, `last_modified_by`, `last_modified_at`).
//!
//! The server maintains it, never the clients: the inspector refuses every client write into
//! a block's `metadata` (only the initial empty map of a block the update creates is
//! allowed, see [`crate::inspect`]), and after accepting a client's update the server stamps
//! the blocks it touched with the authenticated user of that connection ([`stamp`]), as an
//! edit of its own that is stored and relayed like any other.

use crate::schema::{BLOCKS, METADATA};
use yrs::{Any, Map, MapRef, Out, ReadTxn, TransactionMut};

/// Key of the creator's user id.
pub const CREATED_BY: &str = "created_by";
/// Key of the creation time (RFC 3339).
pub const CREATED_AT: &str = "created_at";
/// Key of the last modifier's user id.
pub const LAST_MODIFIED_BY: &str = "last_modified_by";
/// Key of the last modification time (RFC 3339).
pub const LAST_MODIFIED_AT: &str = "last_modified_at";

/// Stamps block `id` as changed by `user` at `at`: `last_modified_by/at` always, and
/// `created_by/at` too when the block has no creator yet or `created` says the change created
/// it (whatever creator the block came with is then replaced: clients never name one).
/// Creates the metadata map if the block lacks one. Returns `false` (writing nothing) if
/// there is no such block.
pub fn stamp(txn: &mut TransactionMut, id: &str, user: &str, at: &str, created: bool) -> bool {
    let Some(Out::YMap(block)) = txn.get_map(BLOCKS).and_then(|b| b.get(txn, id)) else {
        return false;
    };
    let metadata: MapRef = block.get_or_init(txn, METADATA);
    let has_creator = matches!(
        metadata.get(txn, CREATED_BY),
        Some(Out::Any(Any::String(_)))
    );
    if created || !has_creator {
        metadata.insert(txn, CREATED_BY, user);
        metadata.insert(txn, CREATED_AT, at);
    }
    metadata.try_update(txn, LAST_MODIFIED_BY, user);
    metadata.try_update(txn, LAST_MODIFIED_AT, at);
    true
}

/// The user who last changed block `id`, if recorded.
pub fn last_modified_by<T: ReadTxn>(txn: &T, id: &str) -> Option<String> {
    metadata_string(txn, id, LAST_MODIFIED_BY)
}

/// The user who created block `id`, if recorded.
pub fn created_by<T: ReadTxn>(txn: &T, id: &str) -> Option<String> {
    metadata_string(txn, id, CREATED_BY)
}

fn metadata_string<T: ReadTxn>(txn: &T, id: &str, key: &str) -> Option<String> {
    let Some(Out::YMap(block)) = txn.get_map(BLOCKS)?.get(txn, id) else {
        return None;
    };
    let Some(Out::YMap(metadata)) = block.get(txn, METADATA) else {
        return None;
    };
    match metadata.get(txn, key) {
        Some(Out::Any(Any::String(s))) => Some(s.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CanvasDoc;
    use crate::json::block_json;
    use serde_json::json;
    use yrs::{In, MapPrelim, Transact, WriteTxn};

    #[test]
    fn creator_once_modifier_every_time() {
        let mut c = CanvasDoc::new();
        c.edit(|txn| {
            let blocks = txn.get_or_insert_map(BLOCKS);
            blocks.insert(txn, "b", MapPrelim::from([("type", In::from("chart"))]));
        });
        let (stamped, _) = c.edit(|txn| stamp(txn, "b", "ann", "t1", true));
        assert!(stamped);
        c.edit(|txn| stamp(txn, "b", "bob", "t2", false));
        let v = block_json(&c.doc().transact(), "b").expect("block");
        assert_eq!(
            v["metadata"],
            json!({"created_by": "ann", "created_at": "t1",
                   "last_modified_by": "bob", "last_modified_at": "t2"})
        );
        assert_eq!(
            last_modified_by(&c.doc().transact(), "b").as_deref(),
            Some("bob")
        );
        let (stamped, update) = c.edit(|txn| stamp(txn, "gone", "ann", "t3", false));
        assert!(!stamped);
        assert_eq!(update, None);
    }
}
