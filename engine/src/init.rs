//! Filling a new canvas document: its descriptive fields (root `meta`) and the seed's
//! defaults for the other roots.

use serde::{Deserialize, Serialize};
use yrs::{Any, ArrayPrelim, In, Map, MapPrelim, TransactionMut, WriteTxn};

use crate::schema::{
    BLOCKS, DEFAULT_BREAKPOINTS, DEFAULT_COLUMNS, DEFAULT_ROW_HEIGHT, LAYOUT, META, SHARING,
};
use crate::sharing::Visibility;
use crate::values::strings_prelim;

/// The canvas's descriptive fields (root `meta`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanvasMeta {
    /// Display name.
    pub name: String,
    /// Optional longer description.
    pub description: Option<String>,
    /// The project the canvas belongs to.
    pub project_id: String,
    /// The user who owns the canvas.
    pub owner_id: String,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// Fills a new canvas: root `meta` from `meta`, `layout` with the seed's grid defaults,
/// an empty `blocks` map and private `sharing` (no grants, no public link, embedding off).
///
/// Meant for a fresh document; on an existing one it overwrites these keys (not blocks).
pub fn init_canvas(txn: &mut TransactionMut, meta: &CanvasMeta) {
    let root = txn.get_or_insert_map(META);
    root.insert(txn, "name", meta.name.as_str());
    root.insert(
        txn,
        "description",
        Any::from(meta.description.as_deref().map(Any::from)),
    );
    root.insert(txn, "project_id", meta.project_id.as_str());
    root.insert(txn, "owner_id", meta.owner_id.as_str());
    root.insert(txn, "tags", strings_prelim(&meta.tags));

    let layout = txn.get_or_insert_map(LAYOUT);
    layout.insert(txn, "type", "grid");
    layout.insert(txn, "columns", DEFAULT_COLUMNS);
    layout.insert(txn, "rowHeight", DEFAULT_ROW_HEIGHT);
    let breakpoints: MapPrelim = DEFAULT_BREAKPOINTS
        .iter()
        .map(|&(k, v)| (k, In::from(v)))
        .collect();
    layout.insert(txn, "breakpoints", breakpoints);

    txn.get_or_insert_map(BLOCKS);

    let sharing = txn.get_or_insert_map(SHARING);
    sharing.insert(txn, "visibility", Visibility::Private.as_str());
    sharing.insert(txn, "permissions", MapPrelim::default());
    sharing.insert(txn, "public_link", Any::Null);
    sharing.insert(
        txn,
        "embed_settings",
        MapPrelim::from([
            ("enabled", In::from(false)),
            ("allowed_domains", In::from(ArrayPrelim::default())),
        ]),
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::blocks::{block_ids, columns};
    use crate::new_doc;
    use crate::sharing::{Sharing, sharing};
    use yrs::{Doc, Out, ReadTxn, Transact};

    pub(crate) fn meta() -> CanvasMeta {
        CanvasMeta {
            name: "Q4".into(),
            description: None,
            project_id: "p1".into(),
            owner_id: "u1".into(),
            tags: vec!["sales".into(), "q4".into()],
        }
    }

    pub(crate) fn canvas() -> Doc {
        let d = new_doc();
        init_canvas(&mut d.transact_mut(), &meta());
        d
    }

    #[test]
    fn init_fills_defaults() {
        let d = canvas();
        let txn = d.transact();
        assert_eq!(columns(&txn), 12);
        assert_eq!(sharing(&txn), Sharing::default());
        assert!(block_ids(&txn).is_empty());
        let layout = txn.get_map(LAYOUT).expect("layout");
        // Stored as integers, not floats.
        assert_eq!(
            layout.get(&txn, "columns"),
            Some(Out::Any(Any::Number(yrs::any::Number::Int(12))))
        );
    }
}
