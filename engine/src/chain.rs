//! Merging a run of keystrokes into one update without yrs's general merge.
//!
//! Typing sends one update per keystroke: one item of one client, a string, placed right
//! after that client's previous keystroke and before the same neighbour. A run of them is,
//! to Yjs, the same thing as one item holding the whole string (splitting that item at any
//! point gives back the keystrokes' items exactly: the right part's origin is the left
//! part's last character and its right origin is the item's). So a run merges by writing
//! that one item: the first keystroke's id and origins, the strings concatenated. That costs
//! a parse and a copy per keystroke, where `Update::merge_updates` decodes every update into
//! blocks and re-sorts its inputs for every block it writes (BENCHMARKS.md, W1).
//!
//! Only the exact shape is taken ([`Keystroke::parse`]); anything else (a deletion, a
//! second block, an embed, a jump elsewhere, the first character of an empty text, which
//! names its parent instead of a neighbour) ends the chain and goes through yrs's merge.

use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;
use yrs::{ClientID, ID};

const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const CONTENT_STRING: u8 = 4;

/// Largest client id a Yjs peer may use (53 bits; `ClientID::new` asserts it).
const MAX_CLIENT: u64 = (1u64 << 53) - 1;

fn read_client(cur: &mut Cursor<'_>) -> Option<ClientID> {
    let client: u64 = cur.read_var().ok()?;
    (client <= MAX_CLIENT).then(|| ClientID::new(client))
}

/// One keystroke update: one client, one string item with an origin, no deletions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keystroke<'a> {
    client: ClientID,
    clock: u32,
    /// Length in yrs's units (UTF-16 code units), what the item's clock range spans.
    len: u32,
    origin: Option<ID>,
    right: Option<ID>,
    text: &'a str,
}

impl<'a> Keystroke<'a> {
    /// `bytes` read as a keystroke, or `None` for any other update (or trailing bytes).
    pub(crate) fn parse(bytes: &'a [u8]) -> Option<Self> {
        let mut cur = Cursor::new(bytes);
        let clients: u32 = cur.read_var().ok()?;
        let blocks: u32 = cur.read_var().ok()?;
        if clients != 1 || blocks != 1 {
            return None;
        }
        let client = read_client(&mut cur)?;
        let clock: u32 = cur.read_var().ok()?;
        let info = cur.read_u8().ok()?;
        // a string with an origin or a right origin (else the parent would follow)
        let origins = info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN);
        if origins == 0 || info & !(HAS_ORIGIN | HAS_RIGHT_ORIGIN) != CONTENT_STRING {
            return None;
        }
        let read_id = |cur: &mut Cursor<'a>| -> Option<ID> {
            Some(ID::new(read_client(cur)?, cur.read_var().ok()?))
        };
        let origin = match info & HAS_ORIGIN {
            0 => None,
            _ => Some(read_id(&mut cur)?),
        };
        let right = match info & HAS_RIGHT_ORIGIN {
            0 => None,
            _ => Some(read_id(&mut cur)?),
        };
        // the string's bytes, borrowed from `bytes` (Read::read_string borrows the cursor)
        let byte_len: usize = cur.read_var().ok()?;
        let start = cur.next;
        let end = start.checked_add(byte_len)?;
        let text = std::str::from_utf8(bytes.get(start..end)?).ok()?;
        cur.next = end;
        let deleted_clients: u32 = cur.read_var().ok()?;
        if deleted_clients != 0 || cur.has_content() || text.is_empty() {
            return None;
        }
        let len = if text.is_ascii() {
            text.len()
        } else {
            text.chars().map(char::len_utf16).sum()
        };
        Some(Keystroke {
            client,
            clock,
            len: u32::try_from(len).ok()?,
            origin,
            right,
            text,
        })
    }

    /// The clock after this keystroke's last character.
    fn end(&self) -> Option<u32> {
        self.clock.checked_add(self.len)
    }
}

/// A run of keystrokes, each typed right after the one before, merged as it grows.
#[derive(Debug)]
pub(crate) struct Chain<'a> {
    first: Keystroke<'a>,
    end: u32,
    text: String,
}

impl<'a> Chain<'a> {
    /// A chain of one keystroke.
    pub(crate) fn new(first: Keystroke<'a>) -> Option<Self> {
        Some(Chain {
            end: first.end()?,
            text: first.text.to_owned(),
            first,
        })
    }

    /// Adds `next` when it continues the chain: same client, the next clock, placed right
    /// after the chain's last character and before the same neighbour. Otherwise gives it
    /// back.
    pub(crate) fn push(&mut self, next: Keystroke<'a>) -> Result<(), Keystroke<'a>> {
        let continues = next.client == self.first.client
            && next.clock == self.end
            && self.end > 0
            && next.origin == Some(ID::new(self.first.client, self.end - 1))
            && next.right == self.first.right;
        match (continues, next.end()) {
            (true, Some(end)) => {
                self.text.push_str(next.text);
                self.end = end;
                Ok(())
            }
            _ => Err(next),
        }
    }

    /// The chain as one v1 update: one item with the first keystroke's id and origins and
    /// the whole string.
    pub(crate) fn encode_v1(&self) -> Vec<u8> {
        let first = &self.first;
        let mut out = Vec::with_capacity(self.text.len() + 32);
        out.write_var(1u32);
        out.write_var(1u32);
        out.write_var(first.client.get());
        out.write_var(first.clock);
        let mut info = CONTENT_STRING;
        if first.origin.is_some() {
            info |= HAS_ORIGIN;
        }
        if first.right.is_some() {
            info |= HAS_RIGHT_ORIGIN;
        }
        out.write_u8(info);
        for id in [first.origin, first.right].into_iter().flatten() {
            out.write_var(id.client.get());
            out.write_var(id.clock);
        }
        out.write_string(&self.text);
        out.write_var(0u32); // no deletions
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update, WriteTxn};

    /// The updates of typing `keys` one by one at `at` of a text already holding `seed`
    /// (written by another client), each update one keystroke.
    fn typing(seed: &str, at: u32, keys: &[&str]) -> (Doc, Vec<Vec<u8>>) {
        let base = Doc::with_client_id(1);
        {
            let mut txn = base.transact_mut();
            let text = txn.get_or_insert_text("t");
            text.insert(&mut txn, 0, seed);
        }
        let doc = Doc::with_client_id(7);
        {
            let state = base
                .transact()
                .encode_state_as_update_v1(&StateVector::default());
            doc.transact_mut()
                .apply_update(Update::decode_v1(&state).unwrap())
                .unwrap();
        }
        let text = doc.transact_mut().get_or_insert_text("t");
        let mut updates = Vec::new();
        let mut pos = at;
        for key in keys {
            let mut txn = doc.transact_mut();
            let before = txn.state_vector();
            text.insert(&mut txn, pos, key);
            pos += key.len() as u32; // the default offsets count bytes
            updates.push(txn.encode_state_as_update_v1(&before));
        }
        (base, updates)
    }

    fn text_of(doc: &Doc) -> String {
        let txn = doc.transact();
        txn.get_text("t")
            .map(|t| t.get_string(&txn))
            .unwrap_or_default()
    }

    fn apply(doc: &Doc, update: &[u8]) {
        doc.transact_mut()
            .apply_update(Update::decode_v1(update).unwrap())
            .unwrap();
    }

    #[test]
    fn a_run_of_keystrokes_merges_into_the_document_they_make_one_by_one() {
        for (seed, at, keys) in [
            ("hello world", 5, &[",", " ", "d", "e", "a", "r"][..]),
            ("ab", 0, &["x", "y", "z"][..]),
            ("end", 3, &["!", "!"][..]),
            ("x", 0, &["é", "🎉", "z", "日本"][..]),
        ] {
            let (base, updates) = typing(seed, at, keys);
            let one_by_one = Doc::with_client_id(99);
            apply(
                &one_by_one,
                &base
                    .transact()
                    .encode_state_as_update_v1(&StateVector::default()),
            );
            let merged_doc = Doc::with_client_id(98);
            apply(
                &merged_doc,
                &base
                    .transact()
                    .encode_state_as_update_v1(&StateVector::default()),
            );
            let mut keystrokes = updates
                .iter()
                .map(|u| Keystroke::parse(u).expect("a keystroke"));
            let mut chain = Chain::new(keystrokes.next().unwrap()).unwrap();
            for k in keystrokes {
                chain.push(k).expect("continues the chain");
            }
            for u in &updates {
                apply(&one_by_one, u);
            }
            apply(&merged_doc, &chain.encode_v1());
            assert_eq!(
                text_of(&merged_doc),
                text_of(&one_by_one),
                "{seed:?} {keys:?}"
            );
            assert_eq!(
                merged_doc.transact().state_vector(),
                one_by_one.transact().state_vector()
            );
            // and it is what yrs itself writes for that text once it is in a document (its
            // store squashes the keystrokes' items into one)
            let base_sv = base.transact().state_vector();
            assert_eq!(
                chain.encode_v1(),
                one_by_one.transact().encode_state_as_update_v1(&base_sv),
                "{seed:?} {keys:?}"
            );
        }
    }

    #[test]
    fn anything_but_the_next_keystroke_ends_the_chain() {
        let (_, updates) = typing("hello", 5, &["a", "b"]);
        let a = Keystroke::parse(&updates[0]).unwrap();
        let b = Keystroke::parse(&updates[1]).unwrap();
        // typed elsewhere: a different origin
        let mut chain = Chain::new(a.clone()).unwrap();
        let jumped = Keystroke {
            origin: Some(ID::new(ClientID::new(1), 0)),
            ..b.clone()
        };
        assert!(chain.push(jumped).is_err());
        // another client, a gap in the clock, another right neighbour
        for other in [
            Keystroke {
                client: ClientID::new(8),
                ..b.clone()
            },
            Keystroke {
                clock: b.clock + 1,
                ..b.clone()
            },
            Keystroke {
                right: Some(ID::new(ClientID::new(1), 2)),
                ..b.clone()
            },
        ] {
            assert!(Chain::new(a.clone()).unwrap().push(other).is_err());
        }
        assert!(chain.push(b).is_ok());
        // not keystrokes: a deletion, two blocks, trailing bytes, an empty update
        let doc = Doc::with_client_id(3);
        let text = doc.transact_mut().get_or_insert_text("t");
        text.insert(&mut doc.transact_mut(), 0, "abc");
        let deletion = {
            let mut txn = doc.transact_mut();
            let before = txn.state_vector();
            text.remove_range(&mut txn, 1, 1);
            txn.encode_state_as_update_v1(&before)
        };
        assert_eq!(Keystroke::parse(&deletion), None);
        let both = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        assert_eq!(Keystroke::parse(&both), None, "an item and a deletion");
        let mut trailing = updates[0].clone();
        trailing.push(0);
        assert_eq!(Keystroke::parse(&trailing), None);
        assert_eq!(Keystroke::parse(&[0, 0]), None);
        assert_eq!(Keystroke::parse(&[]), None);
    }
}
