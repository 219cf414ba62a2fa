//! The canvas document schema: root types, their keys and the seed's defaults.
//!
//! One yrs `Doc` per canvas. Its root types (docs/DOCUMENT.md in the repository):
//!
//! - `meta` (Map): `name`, `description`, `project_id`, `owner_id`, `tags` (Array of strings).
//! - `layout` (Map): `type` ("grid"), `columns` (12), `rowHeight` (50), `breakpoints` (Map).
//! - `blocks` (Map: block id -> Map with `id`, `type`, `position`, `content`, `metadata`).
//! - `sharing` (Map): `visibility`, `permissions` (Map user id -> Map), `public_link` (an id,
//!   never the token),
//!   `embed_settings` (Map).
//!
//! Text offsets are UTF-16 code units, as in Yjs: every canvas document, the server's and
//! its clients' alike, is made by [`new_doc`] or [`new_doc_with_client_id`].

use yrs::{ClientID, Doc, OffsetKind, Options};

/// A new, empty canvas document: UTF-16 text offsets (as Yjs), a random client id, yrs's
/// defaults otherwise.
pub fn new_doc() -> Doc {
    Doc::with_options(options())
}

/// [`new_doc`] with a given client id (unique among the replicas of one document).
pub fn new_doc_with_client_id(client_id: u64) -> Doc {
    Doc::with_options(Options {
        client_id: ClientID::new(client_id),
        ..options()
    })
}

fn options() -> Options {
    Options {
        offset_kind: OffsetKind::Utf16,
        ..Default::default()
    }
}

/// Root map with the canvas's name, description, project, owner and tags.
pub const META: &str = "meta";
/// Root map with the grid layout settings.
pub const LAYOUT: &str = "layout";
/// Root map of blocks, keyed by block id.
pub const BLOCKS: &str = "blocks";
/// Root map of sharing settings (visibility, grants, public link, embedding).
pub const SHARING: &str = "sharing";
/// Every root type a canvas document may have; an update touching any other is refused.
pub const ROOTS: [&str; 4] = [META, LAYOUT, BLOCKS, SHARING];

/// Key of the visibility inside `sharing`: one of "private", "team", "public".
pub const VISIBILITY: &str = "visibility";

/// Key of the canvas's name inside `meta`: a string, checked like a name given over REST.
pub const NAME: &str = "name";
/// The longest name, in characters (of a canvas, project or template).
pub const MAX_NAME_CHARS: usize = 255;

/// Characters a name (of a project, canvas or template) may not hold: control characters
/// (NUL, line breaks, escapes: a name is one line) and the bidirectional formatting
/// characters (embeddings, overrides, isolates and marks, U+202A-U+202E, U+2066-U+2069,
/// U+200E, U+200F, U+061C), which make a name display as something other than what it is.
pub fn is_unsafe_in_name(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
        )
}

/// Key of a block's position map inside a block map.
pub const POSITION: &str = "position";
/// Key of a block's content map inside a block map.
pub const CONTENT: &str = "content";
/// Key of a block's metadata map inside a block map.
pub const METADATA: &str = "metadata";
/// The four integer keys of a block position.
pub const POSITION_KEYS: [&str; 4] = ["x", "y", "w", "h"];

/// Default grid columns (seed: `layout.columns`).
pub const DEFAULT_COLUMNS: i64 = 12;
/// Default row height in pixels (seed: `layout.rowHeight`).
pub const DEFAULT_ROW_HEIGHT: i64 = 50;
/// Default responsive breakpoints (seed: `layout.breakpoints`).
pub const DEFAULT_BREAKPOINTS: [(&str, i64); 4] =
    [("lg", 1200), ("md", 996), ("sm", 768), ("xs", 480)];
