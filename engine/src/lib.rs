//! # canvas-engine
//!
//! The canvas document model on [yrs] (the Rust port of Yjs), with no I/O at all: it takes
//! bytes and returns bytes, values and verdicts, so it can be tested and benchmarked alone.
//!
//! - [`schema`]: root types and defaults of a canvas document, and [`new_doc`], the one way
//!   to make a correctly configured yrs `Doc` for it.
//! - [`init`]: filling a new canvas (`meta` and the seed's defaults).
//! - [`blocks`]: blocks: typed edits (add, move, resize, remove, set content) and readers.
//! - [`text`]: the text of narrative blocks.
//! - [`sharing`]: sharing settings (visibility, grants, public link, embedding).
//! - [`inspect`]: the gatekeeper. Decides, before an incoming update touches the room's
//!   document, whether the sender's [`Role`] allows it and whether it keeps the schema.
//! - [`canvas`]: `CanvasDoc`, a document plus the index the inspector needs; every change,
//!   local or remote, goes through it.
//! - [`json`]: the JSON view in the seed's MongoDB shape (blocks as an array).
//! - [`protocol`]: the y-websocket codec (sync, awareness, auth, query awareness) and our
//!   MessagePack extension messages (durable acknowledgements, typed errors).
//! - [`merge`]: many updates merged into one, a few at a time (yrs merges all at once in
//!   quadratic time).
//! - [`presence`]: the awareness table of a room (who is there, what they announced).
//! - [`versions`]: diffs between versions and restoring a version (or one block) as a
//!   forward edit.
//! - [`patch`]: a block edit asked for as JSON, made into an update a client could send.
//! - [`attribution`]: the server-maintained `metadata` of each block (who created and last
//!   changed it).
//! - `fuzzing` (hidden, not API): the bodies of the fuzz targets in `fuzz/`, replayed by
//!   `tests/fuzz_corpus.rs`.
#![deny(missing_docs)]

pub mod attribution;
pub mod bindings;
pub mod blocks;
pub mod canvas;
mod chain;
#[doc(hidden)]
pub mod fuzzing;
pub mod init;
pub mod inspect;
pub mod json;
pub mod merge;
pub mod narrative;
pub mod patch;
pub mod presence;
pub mod protocol;
pub mod role;
pub mod schema;
pub mod sharing;
pub mod text;
mod values;
pub mod versions;

pub use canvas::CanvasDoc;
pub use role::Role;
pub use schema::{new_doc, new_doc_with_client_id};
pub use yrs;
