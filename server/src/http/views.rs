//! Bodies that are views of a canvas document (the canvas JSON, a block, a version, a
//! diff). The server builds them from the live document as JSON ([`crate::view`], the
//! engine's `json` module), so their Rust type is a wrapper of that JSON, and their schemas
//! ([`CanvasDocument`], [`BlockView`], ...) describe the shape the document's schema
//! guarantees; `content` and `metadata` are free-form.

use canvas_storage::{Interactions, VersionRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// A canvas as JSON, documented as [`CanvasDocument`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CanvasView(pub Value);

/// A block as JSON, documented as [`BlockView`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BlockJson(pub Value);

/// The canvas in the seed's MongoDB shape, with the live blocks.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CanvasDocument {
    /// The canvas (also the WebSocket room name).
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Description.
    #[schema(required)]
    pub description: Option<String>,
    /// The project.
    pub project_id: Uuid,
    /// The creator.
    pub owner_id: Uuid,
    /// The latest version number.
    pub version: i64,
    /// The grid: `{type, columns, rowHeight, breakpoints}`.
    #[schema(value_type = Object)]
    pub layout: Value,
    /// The blocks.
    pub blocks: Vec<BlockView>,
    /// Visibility, grants, the public link's id and embed settings.
    #[schema(value_type = Object)]
    pub sharing: Value,
    /// Tags, timestamps, `version_history`, ...
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// How the canvas is used.
    pub interactions: Interactions,
    /// Whether the caller marked it (signed-in callers of `GET /canvases/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub is_favorite: Option<bool>,
}

/// One block of a canvas.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BlockView {
    /// The block's id (its key in the document's `blocks` map).
    pub id: String,
    /// `chart`, `narrative`, `table`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// `{x, y, w, h}` on the grid.
    #[schema(value_type = Object)]
    pub position: Value,
    /// The block's content (free-form per type).
    #[schema(value_type = Object)]
    pub content: Value,
    /// Who made it and when, ...
    #[schema(value_type = Object)]
    pub metadata: Value,
}

/// A version's canvas and record (`GET /canvases/{id}/versions/{v}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionJson(pub Value);

/// What a restore answers (`POST .../versions/{v}/restore`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Restored {
    /// The version the restore recorded.
    pub version: VersionRecord,
    /// The canvas as restored (the document's JSON view).
    #[schema(value_type = Object)]
    pub canvas: Value,
}

/// What restoring one block answers (`POST .../versions/{v}/blocks/{block_id}/restore`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BlockRestored {
    /// The block as restored (null when the version did not have it and it was removed).
    #[schema(required)]
    pub block: Option<BlockView>,
    /// The version the restore recorded.
    pub version: VersionRecord,
}

/// A JSON body built by a room command, documented per route.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Outcome(pub Value);

/// `PATCH /canvases/{id}/blocks/{block_id}` body (the schema of
/// [`canvas_engine::patch::BlockPatch`]).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockPatchBody {
    /// Position keys to set (`x`, `y`, `w`, `h`; any subset).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub position: Option<Value>,
    /// Content keys to set, or to remove (`null`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub content: Option<Value>,
}

/// A bound block's data (`GET .../blocks/{block_id}/data`, `POST .../refresh`): the fields of
/// extension message 102, plus a table's page or a chart's `rows_shown`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BlockDataJson(pub Value);

/// The schema of [`BlockDataJson`].
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BlockData {
    /// The block.
    pub block_id: String,
    /// `completed`, `failed` / `error`, or `running`.
    pub status: String,
    /// The execution that produced (or looked up) the result.
    #[schema(required)]
    pub execution_id: Option<String>,
    /// The result's columns (`{name, type}`).
    #[schema(value_type = Vec<Object>)]
    pub columns: Vec<Value>,
    /// The rows (a table's page, or the first rows of the result).
    pub rows: Vec<Vec<Value>>,
    /// How many rows the result (a table: the filtered result) has.
    pub total_rows: u64,
    /// When the result was computed (RFC 3339).
    #[schema(required)]
    pub computed_at: Option<String>,
    /// Whether it came from the result cache.
    pub from_cache: bool,
    /// A chart's series (`[{name, points: [{x, y}]}]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub series: Option<Value>,
    /// The binding this answers, `{query_id, parameters}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub binding: Option<Value>,
    /// A chart's or narrative's number of rows shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub rows_shown: Option<u64>,
    /// A table: the page (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub page: Option<u64>,
    /// A table: rows per page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub page_size: Option<u64>,
    /// A table: how many pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub pages: Option<u64>,
    /// A table: the sort applied (null: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable)]
    pub sort: Option<Value>,
    /// A table: the filter applied (null: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, nullable)]
    pub filter: Option<Value>,
}
