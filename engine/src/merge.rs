//! Merging many yrs updates into one, a few at a time, round after round.
//!
//! yrs's `merge_updates_v1` keeps one decoder per input update and sorts them all again
//! before each block it writes, so merging `n` updates of a block or two each costs about
//! `n² log n`: the 190,000 block moves a lagging connection could miss took the room tens of
//! seconds to merge (BENCHMARKS.md, "The lag path"). Merged [`FAN_IN`] at a time, and the
//! results again until one is left, the same document costs about `n log n`. The merged
//! update may differ in bytes from a flat merge; applied, it gives the same document.

use yrs::encoding::read::Error;

/// How many updates one merge takes.
pub const FAN_IN: usize = 4;

/// One yrs v1 update holding everything in `updates` (which need not be contiguous: gaps
/// stay gaps, as in a flat merge). An empty list gives an empty update.
pub fn merge_v1<B: AsRef<[u8]>>(updates: &[B]) -> Result<Vec<u8>, Error> {
    let mut round: Vec<Vec<u8>> = updates
        .chunks(FAN_IN)
        .map(|chunk| yrs::merge_updates_v1(chunk.iter().map(AsRef::as_ref)))
        .collect::<Result<_, _>>()?;
    while round.len() > 1 {
        round = round
            .chunks(FAN_IN)
            .map(yrs::merge_updates_v1)
            .collect::<Result<_, _>>()?;
    }
    match round.pop() {
        Some(merged) => Ok(merged),
        None => yrs::merge_updates_v1(std::iter::empty::<&[u8]>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, GetString, Map, ReadTxn, Text, Transact, Update, WriteTxn};

    /// `n` edits by three clients, one update each: keystrokes into a shared text and
    /// overwrites of map keys (each a new item that deletes the one before).
    fn edits(n: usize) -> (Vec<Vec<u8>>, Doc) {
        let docs: Vec<Doc> = (1..=3).map(Doc::with_client_id).collect();
        let whole = Doc::with_client_id(99);
        let mut updates = Vec::new();
        for i in 0..n {
            let doc = &docs[i % 3];
            let mut txn = doc.transact_mut();
            if i % 2 == 0 {
                let text = txn.get_or_insert_text("text");
                let end = text.len(&txn);
                text.insert(&mut txn, end, "x");
            } else {
                let map = txn.get_or_insert_map("position");
                map.insert(&mut txn, format!("k{}", i % 5), i as i64);
            }
            let update = txn.encode_update_v1();
            drop(txn);
            whole
                .transact_mut()
                .apply_update(Update::decode_v1(&update).expect("valid"))
                .expect("applies");
            // every client sees the others' edits, as in a room
            for other in &docs {
                other
                    .transact_mut()
                    .apply_update(Update::decode_v1(&update).expect("valid"))
                    .expect("applies");
            }
            updates.push(update);
        }
        (updates, whole)
    }

    fn state(doc: &Doc) -> (String, String) {
        let txn = doc.transact();
        let text = txn
            .get_text("text")
            .map(|t| t.get_string(&txn))
            .unwrap_or_default();
        let map = txn
            .get_map("position")
            .map(|m| {
                let mut entries: Vec<String> =
                    m.iter(&txn).map(|(k, v)| format!("{k}={v}")).collect();
                entries.sort();
                entries.join(",")
            })
            .unwrap_or_default();
        (text, map)
    }

    #[test]
    fn merged_in_rounds_it_gives_the_document_of_every_update_applied() {
        for n in [0, 1, 2, 3, 4, 5, 15, 16, 17, 64, 257] {
            let (updates, whole) = edits(n);
            let merged = merge_v1(&updates).expect("merges");
            let doc = Doc::with_client_id(98);
            doc.transact_mut()
                .apply_update(Update::decode_v1(&merged).expect("valid"))
                .expect("applies");
            assert_eq!(state(&doc), state(&whole), "{n} updates");
            assert_eq!(
                doc.transact().state_vector(),
                whole.transact().state_vector(),
                "{n} updates"
            );
            let flat = yrs::merge_updates_v1(&updates).expect("merges");
            assert_eq!(
                Update::decode_v1(&merged).expect("valid").state_vector(),
                Update::decode_v1(&flat).expect("valid").state_vector(),
                "{n} updates: as much as a flat merge"
            );
        }
    }

    #[test]
    fn a_malformed_update_is_an_error_not_a_panic() {
        let (mut updates, _) = edits(9);
        updates.insert(5, vec![0xff, 0xff, 0xff]);
        assert!(merge_v1(&updates).is_err());
    }
}
