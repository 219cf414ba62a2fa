//! The text of narrative blocks (`content.text`, a `Y.Text`): inserting, deleting and
//! reading it, with the conventions of [`crate::blocks`].
//!
//! Text offsets follow the document's [`yrs::OffsetKind`]: canvases use UTF-16 (as Yjs),
//! and an index that would split a character (a surrogate pair in UTF-16, a multi-byte
//! sequence in bytes) is refused rather than corrupting the text.

use yrs::{GetString, Map, MapRef, OffsetKind, ReadTxn, Text, TextRef, TransactionMut};

use crate::blocks::{EditError, NARRATIVE, TEXT_KEY, block_map, malformed, touch};
use crate::schema::CONTENT;
use crate::values::{child_map, string_at};

fn narrative_text<T: ReadTxn>(txn: &T, id: &str) -> Result<(MapRef, TextRef), EditError> {
    let block = block_map(txn, id)?;
    if string_at(txn, &block, "type").as_deref() != Some(NARRATIVE) {
        return Err(EditError::NotNarrative(id.to_owned()));
    }
    let content = child_map(txn, &block, CONTENT).ok_or_else(|| malformed(id, "no content map"))?;
    let text = content
        .get(txn, TEXT_KEY)
        .and_then(|o| o.cast::<TextRef>().ok())
        .ok_or_else(|| malformed(id, "content.text is not a Y.Text"))?;
    Ok((block, text))
}

/// Whether `index` (in the document's offset unit) is a character boundary of `s`.
fn is_boundary(s: &str, index: u32, kind: OffsetKind) -> bool {
    let index = index as usize;
    match kind {
        OffsetKind::Bytes => s.is_char_boundary(index),
        OffsetKind::Utf16 => {
            let mut at = 0usize;
            for c in s.chars() {
                if at >= index {
                    break;
                }
                at += c.len_utf16();
            }
            at == index
        }
    }
}

fn check_range(
    txn: &TransactionMut,
    text: &TextRef,
    index: u32,
    len: u32,
) -> Result<(), EditError> {
    let text_len = text.len(txn);
    let end = index.checked_add(len);
    if end.is_none_or(|end| end > text_len) {
        return Err(EditError::TextOutOfRange {
            index,
            len,
            text_len,
        });
    }
    let kind = txn.doc().offset_kind();
    let s = text.get_string(txn);
    for at in [index, index + len] {
        if !is_boundary(&s, at, kind) {
            return Err(EditError::SplitsCharacter(at));
        }
    }
    Ok(())
}

/// Inserts `text` at `index` of a narrative block's `content.text`.
pub fn insert_text(
    txn: &mut TransactionMut,
    block_id: &str,
    index: u32,
    text: &str,
    by: &str,
    at: &str,
) -> Result<(), EditError> {
    let (block, ytext) = narrative_text(&*txn, block_id)?;
    check_range(txn, &ytext, index, 0)?;
    if !text.is_empty() {
        ytext.insert(txn, index, text);
        touch(txn, &block, by, at);
    }
    Ok(())
}

/// Deletes `len` units from `index` of a narrative block's `content.text`.
pub fn delete_text(
    txn: &mut TransactionMut,
    block_id: &str,
    index: u32,
    len: u32,
    by: &str,
    at: &str,
) -> Result<(), EditError> {
    let (block, ytext) = narrative_text(&*txn, block_id)?;
    check_range(txn, &ytext, index, len)?;
    if len > 0 {
        ytext.remove_range(txn, index, len);
        touch(txn, &block, by, at);
    }
    Ok(())
}

/// A narrative block's text, if the block exists and its `content.text` is a `Y.Text`.
pub fn narrative<T: ReadTxn>(txn: &T, block_id: &str) -> Option<String> {
    let (_, text) = narrative_text(txn, block_id).ok()?;
    Some(text.get_string(txn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::{NARRATIVE, add_block, tests::block};
    use crate::init::tests::canvas;
    use serde_json::json;
    use yrs::Transact;

    #[test]
    fn narrative_text_edits() {
        let d = canvas();
        let mut txn = d.transact_mut();
        let mut b = block("n", NARRATIVE, 0, 0, 6, 4);
        b.content = json!({"text": "a😀b", "data_bindings": [{"key": "k", "value": 25.3}]});
        add_block(&mut txn, &b).expect("add");
        add_block(&mut txn, &block("c", "chart", 6, 0, 6, 4)).expect("add");
        assert_eq!(narrative(&txn, "n").as_deref(), Some("a😀b"));
        // 😀 is two UTF-16 units: indexes 1 and 3 are boundaries, 2 is not.
        assert_eq!(
            insert_text(&mut txn, "n", 2, "x", "u", "t"),
            Err(EditError::SplitsCharacter(2))
        );
        assert_eq!(
            delete_text(&mut txn, "n", 1, 1, "u", "t"),
            Err(EditError::SplitsCharacter(2))
        );
        assert!(matches!(
            insert_text(&mut txn, "n", 5, "x", "u", "t"),
            Err(EditError::TextOutOfRange { text_len: 4, .. })
        ));
        assert!(matches!(
            delete_text(&mut txn, "n", 3, u32::MAX, "u", "t"),
            Err(EditError::TextOutOfRange { .. })
        ));
        insert_text(&mut txn, "n", 3, "!", "u", "t").expect("insert");
        assert_eq!(narrative(&txn, "n").as_deref(), Some("a😀!b"));
        delete_text(&mut txn, "n", 1, 2, "u", "t").expect("delete");
        assert_eq!(narrative(&txn, "n").as_deref(), Some("a!b"));
        assert_eq!(
            insert_text(&mut txn, "c", 0, "x", "u", "t"),
            Err(EditError::NotNarrative("c".into()))
        );
        assert_eq!(
            insert_text(&mut txn, "zz", 0, "x", "u", "t"),
            Err(EditError::NoSuchBlock("zz".into()))
        );
        // A narrative without text gets an empty Y.Text.
        add_block(&mut txn, &block("n2", NARRATIVE, 0, 4, 6, 4)).expect("add");
        insert_text(&mut txn, "n2", 0, "hi", "u", "t").expect("insert");
        assert_eq!(narrative(&txn, "n2").as_deref(), Some("hi"));
    }
}
