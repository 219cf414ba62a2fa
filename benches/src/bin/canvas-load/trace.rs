//! The document updates the workloads send, made once up front with yrs.
//!
//! Every workload edits the text of one narrative block (`blocks/b1/content/text`), so our
//! server's schema inspection accepts the updates; the peers accept any document, so all
//! servers receive exactly the same bytes.
//!
//! [`load`] is the one entry point for the editing trace (W2, W5): the automerge-paper trace
//! (Kleppmann's LaTeX paper typed keystroke by keystroke, from diamond-types 0.1.0's
//! `benchmark_data/automerge-paper.json.gz`: `{startContent, endContent, txns: [{patches:
//! [[pos, del, ins]]}]}`), or a small seeded synthetic trace for the test suite. It is kept
//! behind this one function so that the shared trace loader of `benches/src/traces.rs` can
//! replace it.

use crate::Error;
use canvas_engine::yrs::{
    Doc, GetString, Map, MapRef, ReadTxn, StateVector, Text, TextRef, Transact,
};
use serde::Deserialize;
use std::path::Path;

/// The block whose text every workload edits.
pub const BLOCK: &str = "b1";

/// The client id of the trace's author (the W2 writer; the content of the W5 room).
const TRACE_CLIENT: u64 = 0x5eed;

/// An editing trace turned into yrs updates.
pub struct Trace {
    /// Creates the narrative block with an empty text.
    pub setup: Vec<u8>,
    /// One update per edit, in order.
    pub edits: Vec<Vec<u8>>,
    /// The whole final document as one update (setup and every edit).
    pub final_state: Vec<u8>,
    /// The text after every edit.
    pub end_content: String,
    /// The author's client id.
    pub client: u64,
    /// The author's clock after each edit (a deletion leaves it where it was): how a
    /// receiver tells how far into the trace it is, whether or not the server merged updates.
    pub clocks: Vec<u32>,
    /// Characters deleted by the edits up to each one (the other half of the measure: a
    /// deletion shows in the delete set of the update that carries it).
    pub deleted: Vec<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TraceFile {
    start_content: String,
    end_content: String,
    txns: Vec<TraceTxn>,
}

#[derive(Deserialize)]
struct TraceTxn {
    patches: Vec<(u32, u32, String)>,
}

/// The narrative block's text in `doc`, if the block exists.
pub fn block_text(doc: &Doc) -> Option<TextRef> {
    let txn = doc.transact();
    let blocks = txn.get_map("blocks")?;
    let block: MapRef = blocks.get(&txn, BLOCK)?.cast().ok()?;
    let content: MapRef = block.get(&txn, "content")?.cast().ok()?;
    content.get(&txn, "text")?.cast().ok()
}

/// The narrative block's text as a string ("" while the block is missing).
pub fn text_of(doc: &Doc) -> String {
    block_text(doc)
        .map(|t| t.get_string(&doc.transact()))
        .unwrap_or_default()
}

/// The update that creates the block, made by `doc` (whose client id it carries).
pub fn setup_update(doc: &Doc) -> Vec<u8> {
    let mut txn = doc.transact_mut();
    canvas_tests::add_block(&mut txn, BLOCK, "narrative", (0, 0, 12, 8));
    txn.encode_update_v1()
}

/// A document holding the block, with `client_id` for its own later edits.
pub fn doc_with_block(setup: &[u8], client_id: u64) -> Result<Doc, Error> {
    use canvas_engine::yrs::Update;
    use canvas_engine::yrs::updates::decoder::Decode;
    let doc = canvas_engine::new_doc_with_client_id(client_id);
    let update = Update::decode_v1(setup).map_err(|e| Error::Trace(e.to_string()))?;
    doc.transact_mut()
        .apply_update(update)
        .map_err(|e| Error::Trace(e.to_string()))?;
    Ok(doc)
}

/// Loads the editing trace: `Some(path)` reads the automerge-paper file (gzipped JSON),
/// `None` makes a seeded synthetic trace of `synthetic_edits` edits. `limit` keeps only the
/// first edits.
pub fn load(
    path: Option<&Path>,
    synthetic_edits: usize,
    limit: Option<usize>,
) -> Result<Trace, Error> {
    let patches: Vec<(u32, u32, String)> = match path {
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| Error::Trace(format!("{}: {e}", path.display())))?;
            let parsed: TraceFile = serde_json::from_reader(std::io::BufReader::new(
                flate2::read::GzDecoder::new(file),
            ))
            .map_err(|e| Error::Trace(format!("{}: {e}", path.display())))?;
            if !parsed.start_content.is_empty() {
                return Err(Error::Trace(
                    "traces with start content are not supported".into(),
                ));
            }
            let mut patches: Vec<_> = parsed.txns.into_iter().flat_map(|t| t.patches).collect();
            if limit.is_none_or(|l| l >= patches.len()) {
                let trace = build(&patches)?;
                if trace.end_content != parsed.end_content {
                    return Err(Error::Trace(
                        "replaying the trace does not give its end content".into(),
                    ));
                }
                return Ok(trace);
            }
            patches.truncate(limit.unwrap_or(usize::MAX));
            patches
        }
        None => synthetic(limit.map_or(synthetic_edits, |l| l.min(synthetic_edits))),
    };
    build(&patches)
}

/// A seeded typing session: mostly appends and mid-text inserts, some deletions.
fn synthetic(n: usize) -> Vec<(u32, u32, String)> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift64*: deterministic, good enough to scatter edit positions.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut len = 0u32;
    (0..n)
        .map(|_| {
            let r = next();
            if len > 10 && r % 10 == 0 {
                let pos = (next() % u64::from(len)) as u32;
                len -= 1;
                (pos, 1, String::new())
            } else {
                let pos = if r % 3 == 0 {
                    (next() % u64::from(len + 1)) as u32
                } else {
                    len
                };
                len += 1;
                (pos, 0, ((b'a' + (r % 26) as u8) as char).to_string())
            }
        })
        .collect()
}

fn build(patches: &[(u32, u32, String)]) -> Result<Trace, Error> {
    let doc = canvas_engine::new_doc_with_client_id(TRACE_CLIENT);
    let setup = setup_update(&doc);
    let text = block_text(&doc).ok_or_else(|| Error::Trace("block text missing".into()))?;
    let mut edits = Vec::with_capacity(patches.len());
    let mut clocks = Vec::with_capacity(patches.len());
    let mut deleted = Vec::with_capacity(patches.len());
    let mut deleted_so_far = 0u64;
    for (pos, del, ins) in patches {
        deleted_so_far += u64::from(*del);
        deleted.push(deleted_so_far);
        let mut txn = doc.transact_mut();
        if *del > 0 {
            text.remove_range(&mut txn, *pos, *del);
        }
        if !ins.is_empty() {
            text.insert(&mut txn, *pos, ins);
        }
        edits.push(txn.encode_update_v1());
        drop(txn);
        clocks.push(clock_of(&doc, TRACE_CLIENT));
    }
    let final_state = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let end_content = text.get_string(&doc.transact());
    Ok(Trace {
        setup,
        edits,
        final_state,
        end_content,
        client: TRACE_CLIENT,
        clocks,
        deleted,
    })
}

/// The clock of `client` in `doc` (how many of its items the document holds).
pub fn clock_of(doc: &Doc, client: u64) -> u32 {
    doc.transact()
        .state_vector()
        .get(&canvas_engine::yrs::ClientID::new(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_trace_replays_to_its_end_content() {
        let trace = load(None, 500, None).expect("trace");
        assert_eq!(trace.edits.len(), 500);
        let doc = doc_with_block(&trace.setup, 9).expect("doc");
        for e in &trace.edits {
            use canvas_engine::yrs::Update;
            use canvas_engine::yrs::updates::decoder::Decode;
            doc.transact_mut()
                .apply_update(Update::decode_v1(e).expect("decodes"))
                .expect("applies");
        }
        assert_eq!(text_of(&doc), trace.end_content);
        assert!(!trace.end_content.is_empty());
    }
}
