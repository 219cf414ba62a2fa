//! Real editing traces, turned into per-edit yrs updates.
//!
//! The traces are the ones the `diamond-types` crate (version 0.1.0, crates.io) ships in its
//! `benchmark_data/` folder: recordings of people writing a paper (`automerge-paper`: 259,778
//! keystrokes, 104,852 characters at the end), a Rust file (`rustcode`) and a Svelte
//! component (`sveltecomponent`). No one on this team wrote them. Format:
//! `{startContent, endContent, txns: [{patches: [[pos, del, ins]]}]}`, positions in Unicode
//! characters, the patches of a transaction applied one after the other.
//!
//! They are not committed here. [`trace_file`] finds them in the local cargo registry by
//! resolving a throwaway manifest (`target/trace-fetch/Cargo.toml`, depending on
//! `diamond-types = "=0.1.0"`) with `cargo metadata`, which downloads the crate once.
//! [`load_trace`] replays a trace on a yrs document, one update per transaction, checks that
//! the text ends as `endContent`, and caches the updates in `target/traces/` (the replay of
//! `automerge-paper` takes a few seconds; reading the cache, milliseconds).
//!
//! The updates are self-contained: the first one adds a narrative block [`TRACE_BLOCK`]
//! (with `startContent` as its text) to the `blocks` root, the others edit its
//! `content.text`. So they apply, in order, to any canvas document, for example one the
//! server created: they all come from one client, [`TRACE_CLIENT`].

use canvas_engine::blocks::{self, NewBlock, Position};
use canvas_engine::schema;
use flate2::read::GzDecoder;
use serde::Deserialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, Map, Out, ReadTxn, Text, Transact, Update};

/// The traces `diamond-types` 0.1.0 ships, smallest first.
pub const TRACES: [&str; 3] = ["sveltecomponent", "rustcode", "automerge-paper"];

/// The id of the narrative block the trace is typed into.
pub const TRACE_BLOCK: &str = "trace";

/// The yrs client id of the trace's author.
pub const TRACE_CLIENT: yrs::ClientID = yrs::ClientID::new(0x7ace);

/// Bumped whenever the way updates are generated changes, so old caches are rebuilt.
const CACHE_FORMAT: u32 = 1;
const CACHE_MAGIC: &[u8; 8] = b"CTRACE\0\0";

/// Errors of finding, reading or replaying a trace.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// Not one of [`TRACES`].
    #[error("unknown trace {0:?} (known: sveltecomponent, rustcode, automerge-paper)")]
    Unknown(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `cargo metadata` could not locate `diamond-types` (no network, no cargo...).
    #[error("cannot locate diamond-types 0.1.0 with cargo metadata: {0}")]
    Locate(String),
    /// The trace file is not the expected JSON.
    #[error("trace {name}: bad JSON: {source}")]
    Json {
        /// The trace.
        name: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The replay or the check of the result failed.
    #[error("trace {name}: {message}")]
    Replay {
        /// The trace.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// One trace as per-edit updates.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Its name, one of [`TRACES`].
    pub name: String,
    /// v1 updates, in order: the first adds [`TRACE_BLOCK`], each other one is one
    /// transaction of the trace (one keystroke, a paste, a deletion...).
    pub updates: Vec<Vec<u8>>,
    /// The text the block must hold after all updates (`endContent`).
    pub end_content: String,
}

/// An empty canvas as the server creates it (`init_canvas`): the document the benches replay
/// the traces into (the trace's first update adds the block it types into).
pub fn empty_canvas() -> canvas_engine::CanvasDoc {
    let mut canvas = canvas_engine::CanvasDoc::new();
    let meta = canvas_engine::init::CanvasMeta {
        name: "bench".into(),
        description: None,
        project_id: "p".into(),
        owner_id: "o".into(),
        tags: vec![],
    };
    canvas.edit(|txn| canvas_engine::init::init_canvas(txn, &meta));
    canvas
}

/// The per-edit updates of trace `name` and its `endContent`, from the cache when possible.
/// This is what the load generator sends; see [`load_trace`].
pub fn trace_updates(name: &str) -> Result<(Vec<Vec<u8>>, String), TraceError> {
    let trace = load_trace(name)?;
    Ok((trace.updates, trace.end_content))
}

/// The workspace's target folder (`CARGO_TARGET_DIR` if set).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TraceError + '_ {
    move |source| TraceError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The path of `benchmark_data/{name}.json.gz` of `diamond-types` 0.1.0 in the local cargo
/// registry, downloading the crate first if needed.
pub fn trace_file(name: &str) -> Result<PathBuf, TraceError> {
    if !TRACES.contains(&name) {
        return Err(TraceError::Unknown(name.to_owned()));
    }
    let dir = target_dir().join("trace-fetch");
    std::fs::create_dir_all(dir.join("src")).map_err(io(&dir))?;
    let manifest = dir.join("Cargo.toml");
    let wanted = "[package]\nname = \"trace-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
        publish = false\n\n[dependencies]\ndiamond-types = \"=0.1.0\"\n\n[workspace]\n";
    if std::fs::read_to_string(&manifest).ok().as_deref() != Some(wanted) {
        std::fs::write(&manifest, wanted).map_err(io(&manifest))?;
    }
    let lib = dir.join("src/lib.rs");
    if !lib.exists() {
        std::fs::write(&lib, "").map_err(io(&lib))?;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(&manifest)
        .output()
        .map_err(|e| TraceError::Locate(format!("cannot run cargo: {e}")))?;
    if !output.status.success() {
        return Err(TraceError::Locate(
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| TraceError::Locate(format!("unreadable output: {e}")))?;
    let crate_manifest = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "diamond-types" && p["version"] == "0.1.0")
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or_else(|| TraceError::Locate("diamond-types 0.1.0 not in the metadata".into()))?;
    let file = Path::new(crate_manifest)
        .parent()
        .map(|d| d.join("benchmark_data").join(format!("{name}.json.gz")))
        .ok_or_else(|| TraceError::Locate(format!("odd manifest path {crate_manifest}")))?;
    if !file.is_file() {
        return Err(TraceError::Locate(format!("{} is missing", file.display())));
    }
    Ok(file)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTrace {
    start_content: String,
    end_content: String,
    txns: Vec<RawTxn>,
}

#[derive(Deserialize)]
struct RawTxn {
    patches: Vec<(usize, usize, String)>,
}

/// Trace `name` as per-edit updates: from `target/traces/{name}.bin` if it is there and
/// current, otherwise replayed from the trace file (and cached).
pub fn load_trace(name: &str) -> Result<Trace, TraceError> {
    let file = trace_file(name)?;
    let gz = std::fs::read(&file).map_err(io(&file))?;
    let cache_dir = target_dir().join("traces");
    let cache = cache_dir.join(format!("{name}.bin"));
    if let Ok(bytes) = std::fs::read(&cache)
        && let Some(trace) = read_cache(name, &bytes, gz.len() as u64)
    {
        return Ok(trace);
    }
    let trace = replay(name, &gz)?;
    std::fs::create_dir_all(&cache_dir).map_err(io(&cache_dir))?;
    // write, then rename: a concurrent reader never sees half a file
    let tmp = cache_dir.join(format!("{name}.bin.{}", std::process::id()));
    std::fs::write(&tmp, write_cache(&trace, gz.len() as u64)).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &cache).map_err(io(&cache))?;
    Ok(trace)
}

/// Replays a gzipped trace (the bytes of a `.json.gz` file) on a yrs document, one update per
/// transaction, and checks the final text against `endContent`.
pub fn replay(name: &str, gz: &[u8]) -> Result<Trace, TraceError> {
    let fail = |message: String| TraceError::Replay {
        name: name.to_owned(),
        message,
    };
    let mut json = Vec::new();
    GzDecoder::new(gz)
        .read_to_end(&mut json)
        .map_err(|e| fail(format!("not gzip: {e}")))?;
    let raw: RawTrace = serde_json::from_slice(&json).map_err(|source| TraceError::Json {
        name: name.to_owned(),
        source,
    })?;
    let doc = canvas_engine::new_doc_with_client_id(TRACE_CLIENT.get());
    let mut updates = Vec::with_capacity(raw.txns.len() + 1);
    {
        let mut txn = doc.transact_mut();
        let block = NewBlock {
            id: TRACE_BLOCK.to_owned(),
            block_type: "narrative".to_owned(),
            position: Position {
                x: 0,
                y: 0,
                w: 12,
                h: 20,
            },
            content: serde_json::json!({ "text": raw.start_content }),
            created_by: "trace".to_owned(),
            created_at: "2026-01-01T00:00:00Z".to_owned(),
        };
        blocks::add_block(&mut txn, &block).map_err(|e| fail(e.to_string()))?;
        updates.push(txn.encode_update_v1());
    }
    let text = narrative_text(&doc).ok_or_else(|| fail("the block has no text".into()))?;
    // Positions in the trace count characters, yrs counts UTF-16 units here. While the text
    // is all ASCII they agree; from the first other character on, a copy of the text converts.
    let mut shadow: Option<String> =
        (!raw.start_content.is_ascii()).then(|| raw.start_content.clone());
    for (i, t) in raw.txns.iter().enumerate() {
        let mut txn = doc.transact_mut();
        for (pos, del, ins) in &t.patches {
            if shadow.is_none() && !ins.is_ascii() {
                shadow = Some(text.get_string(&txn));
            }
            let (at, len) = match &mut shadow {
                None => (*pos, *del),
                Some(s) => {
                    let start =
                        byte_at(s, *pos).ok_or_else(|| fail(format!("txn {i}: bad pos")))?;
                    let end = byte_at(&s[start..], *del)
                        .map(|e| start + e)
                        .ok_or_else(|| fail(format!("txn {i}: bad delete")))?;
                    let at = s[..start].encode_utf16().count();
                    let len = s[start..end].encode_utf16().count();
                    s.replace_range(start..end, ins);
                    (at, len)
                }
            };
            let at = u32::try_from(at).map_err(|e| fail(e.to_string()))?;
            let len = u32::try_from(len).map_err(|e| fail(e.to_string()))?;
            if len > 0 {
                text.remove_range(&mut txn, at, len);
            }
            if !ins.is_empty() {
                text.insert(&mut txn, at, ins);
            }
        }
        updates.push(txn.encode_update_v1());
    }
    let end = text.get_string(&doc.transact());
    if end != raw.end_content {
        return Err(fail(format!(
            "the replayed text ({} chars) differs from endContent ({} chars)",
            end.chars().count(),
            raw.end_content.chars().count()
        )));
    }
    Ok(Trace {
        name: name.to_owned(),
        updates,
        end_content: raw.end_content,
    })
}

/// The byte offset of character `chars` of `s` (`s.len()` at the end).
fn byte_at(s: &str, chars: usize) -> Option<usize> {
    s.char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(s.len()))
        .nth(chars)
}

/// The trace block's text in any document holding the trace's updates (`None` if absent).
pub fn narrative_text(doc: &Doc) -> Option<yrs::TextRef> {
    let txn = doc.transact();
    let blocks = txn.get_map(schema::BLOCKS)?;
    let Some(Out::YMap(block)) = blocks.get(&txn, TRACE_BLOCK) else {
        return None;
    };
    let Some(Out::YMap(content)) = block.get(&txn, schema::CONTENT) else {
        return None;
    };
    match content.get(&txn, "text") {
        Some(Out::YText(text)) => Some(text),
        _ => None,
    }
}

/// The trace block's text in `doc`, or an empty string if there is none.
pub fn text_of(doc: &Doc) -> String {
    narrative_text(doc)
        .map(|t| t.get_string(&doc.transact()))
        .unwrap_or_default()
}

/// Applies updates to a fresh plain yrs document (UTF-16 offsets, like the server's), one
/// transaction each, and returns the document: the raw baseline.
pub fn apply_raw(base: &[u8], updates: &[Vec<u8>]) -> Result<Doc, String> {
    let doc = canvas_engine::new_doc();
    let all = std::iter::once(base)
        .filter(|b| !b.is_empty())
        .chain(updates.iter().map(Vec::as_slice));
    for u in all {
        let update = Update::decode_v1(u).map_err(|e| e.to_string())?;
        doc.transact_mut()
            .apply_update(update)
            .map_err(|e| e.to_string())?;
    }
    Ok(doc)
}

fn write_cache(trace: &Trace, source_len: u64) -> Vec<u8> {
    let total: usize = trace.updates.iter().map(|u| u.len() + 4).sum();
    let mut out = Vec::with_capacity(total + trace.end_content.len() + 32);
    out.extend_from_slice(CACHE_MAGIC);
    out.extend_from_slice(&CACHE_FORMAT.to_le_bytes());
    out.extend_from_slice(&source_len.to_le_bytes());
    out.extend_from_slice(&(trace.updates.len() as u64).to_le_bytes());
    for u in &trace.updates {
        out.extend_from_slice(&(u.len() as u32).to_le_bytes());
        out.extend_from_slice(u);
    }
    out.extend_from_slice(&(trace.end_content.len() as u64).to_le_bytes());
    out.extend_from_slice(trace.end_content.as_bytes());
    out
}

/// Reads a cache file; `None` if it is stale, of another format or damaged.
fn read_cache(name: &str, bytes: &[u8], source_len: u64) -> Option<Trace> {
    let mut r = bytes;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, rest) = r.split_at_checked(n)?;
        r = rest;
        Some(head)
    };
    if take(8)? != CACHE_MAGIC {
        return None;
    }
    let format = u32::from_le_bytes(take(4)?.try_into().ok()?);
    let len = u64::from_le_bytes(take(8)?.try_into().ok()?);
    if format != CACHE_FORMAT || len != source_len {
        return None;
    }
    let count = usize::try_from(u64::from_le_bytes(take(8)?.try_into().ok()?)).ok()?;
    let mut updates = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        updates.push(take(n)?.to_vec());
    }
    let n = usize::try_from(u64::from_le_bytes(take(8)?.try_into().ok()?)).ok()?;
    let end_content = String::from_utf8(take(n)?.to_vec()).ok()?;
    Some(Trace {
        name: name.to_owned(),
        updates,
        end_content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_real_trace_replays_to_its_end_content() {
        let name = TRACES[0];
        let trace = load_trace(name).expect("the trace is found and replays");
        assert!(trace.updates.len() > 18_000, "{}", trace.updates.len());
        assert_eq!(trace.end_content.len(), 18_451);
        // the updates alone rebuild the text in a fresh document
        let doc = apply_raw(&[], &trace.updates).expect("applies");
        assert_eq!(text_of(&doc), trace.end_content);
        // and the cache round-trips
        let bytes = write_cache(&trace, 7);
        let back = read_cache(name, &bytes, 7).expect("reads");
        assert_eq!(back.updates, trace.updates);
        assert_eq!(back.end_content, trace.end_content);
        assert!(read_cache(name, &bytes, 8).is_none(), "stale source");
        assert!(read_cache(name, &bytes[..bytes.len() - 1], 7).is_none());
    }

    #[test]
    fn unknown_traces_are_refused() {
        assert!(matches!(trace_file("nope"), Err(TraceError::Unknown(_))));
    }

    #[test]
    fn non_ascii_positions_count_characters() {
        // "é" is one character and one UTF-16 unit, "𝄞" one character and two units
        let raw = serde_json::json!({
            "startContent": "",
            "endContent": "a𝄞é!",
            "txns": [
                {"patches": [[0, 0, "a𝄞"]]},
                {"patches": [[2, 0, "xé"], [2, 1, ""]]},
                {"patches": [[3, 0, "!"]]},
            ]
        });
        let mut gz = Vec::new();
        {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
            enc.write_all(raw.to_string().as_bytes()).expect("writes");
            enc.finish().expect("finishes");
        }
        let trace = replay("tiny", &gz).expect("replays");
        assert_eq!(trace.updates.len(), 4);
        let doc = apply_raw(&[], &trace.updates).expect("applies");
        assert_eq!(text_of(&doc), "a𝄞é!");
    }
}
