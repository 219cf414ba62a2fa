//! Templates meet data.
//!
//! A template's bound block carries its query rather than a query id (an id names a query of
//! one project): `content.data_source` is `{type: "query", query: {query_text, query_type?,
//! parameters?}, parameters?}`, where `{{source}}` in the text stands for the table chosen
//! when a canvas is made from the template ([`canvas_analytics::query::retarget`]).
//!
//! - [`embed_queries`]: a canvas's blocks as a template keeps them (`POST /templates`): each
//!   `query_id` binding becomes the query itself, its source table marked `{{source}}`.
//! - [`choose_source`] and [`check_required`]: the source a canvas is made with, and the
//!   template's `required_fields` held against its schema (`missing_fields` lists the gaps).
//! - [`bind_blocks`]: with a chosen source, each bound block of the template gets a saved
//!   query of the new canvas's project (reading the chosen table) and a binding to it;
//!   without one, the blocks keep the template's sample content, unbound.

use super::sources;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use canvas_analytics::query::retarget::{SOURCE_MARKER, fill_source, mark_source};
use canvas_analytics::source::database::DbEngine;
use canvas_analytics::{Query, SchemaInfo, SourceConfig};
use canvas_engine::blocks::NewBlock;
use canvas_storage::{DataSource, NewSavedQuery, SavedQuery, Template};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// The source and table a canvas is made with.
pub struct ChosenSource {
    source: DataSource,
    table: String,
    columns: Vec<String>,
    engine: Option<DbEngine>,
}

/// The source `source_id` of `project_id` and its table (`table` names one of a database
/// source's tables; a file, api or streaming source is one table, named after it). The
/// source must have been synced, so its columns are known.
pub async fn choose_source(
    state: &AppState,
    project_id: Uuid,
    source_id: Uuid,
    table: Option<&str>,
) -> ApiResult<ChosenSource> {
    let source = state
        .storage
        .data
        .source(source_id)
        .await?
        .filter(|s| s.project_id == project_id)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_data_source",
                format!("data source {source_id} is not a source of this project"),
            )
        })?;
    let schema: SchemaInfo = source
        .schema_info
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .filter(|s: &SchemaInfo| !s.tables.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "source_not_synced",
                format!(
                    "data source '{}' has no known columns yet: upload its data or sync it first",
                    source.name
                ),
            )
        })?;
    let names = || {
        schema
            .tables
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = match table {
        Some(wanted) => schema.tables.iter().find(|t| t.name == wanted),
        None if schema.tables.len() == 1 => schema.tables.first(),
        None => {
            return Err(ApiError::bad_request(
                "invalid_table",
                format!(
                    "data source '{}' has several tables: name one with `table` ({})",
                    source.name,
                    names()
                ),
            ));
        }
    };
    let table = found.ok_or_else(|| {
        ApiError::bad_request(
            "invalid_table",
            format!(
                "data source '{}' has no table '{}' (it has: {})",
                source.name,
                table.unwrap_or_default(),
                names()
            ),
        )
    })?;
    // Only a database source needs its (sealed) config opened: for the quoting of its SQL.
    let engine = match source.kind.as_str() {
        "database" => match sources::open(&state.data, &source)?.config {
            SourceConfig::Database(config) => Some(config.engine()?),
            _ => None,
        },
        _ => None,
    };
    Ok(ChosenSource {
        table: table.name.clone(),
        columns: table.columns.iter().map(|c| c.name.clone()).collect(),
        engine,
        source,
    })
}

/// Refuses a source that lacks any of the template's `required_fields` (matched to its
/// columns without regard to ASCII case), listing every missing one.
pub fn check_required(template: &Template, chosen: &ChosenSource) -> ApiResult<()> {
    let missing: Vec<&str> = template
        .required_fields
        .iter()
        .filter(|field| !chosen.columns.iter().any(|c| c.eq_ignore_ascii_case(field)))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "missing_fields",
        format!(
            "template '{}' needs the fields {}; table '{}' of data source '{}' lacks {} (its columns: {})",
            template.name,
            template.required_fields.join(", "),
            chosen.table,
            chosen.source.name,
            missing.join(", "),
            chosen.columns.join(", ")
        ),
    ))
}

/// A template block's embedded query, if its `data_source` carries one.
fn embedded_query(block: &NewBlock) -> Option<&Map<String, Value>> {
    let binding = block.content.get("data_source")?;
    if binding.get("type").and_then(Value::as_str) != Some("query") {
        return None;
    }
    binding.get("query")?.as_object()
}

/// Binds the template's blocks that carry a query: with `chosen`, each gets a new saved
/// query of `project_id` reading the chosen table (returned, so a canvas that then fails
/// can remove them); without, the binding is dropped and the block keeps its sample content.
pub async fn bind_blocks(
    state: &AppState,
    project_id: Uuid,
    user: Uuid,
    canvas_name: &str,
    blocks: &mut [NewBlock],
    chosen: Option<&ChosenSource>,
) -> ApiResult<Vec<SavedQuery>> {
    let mut made = Vec::new();
    for block in blocks.iter_mut() {
        let Some(embedded) = embedded_query(block).cloned() else {
            continue;
        };
        let Some(content) = block.content.as_object_mut() else {
            continue;
        };
        let Some(chosen) = chosen else {
            content.remove("data_source");
            continue;
        };
        let result = make_query(
            state,
            project_id,
            user,
            canvas_name,
            block_title(content, &block.id),
            &embedded,
            chosen,
        )
        .await;
        let query = match result {
            Ok(query) => query,
            Err(e) => {
                forget(state, &made).await;
                return Err(e);
            }
        };
        let values = content
            .get("data_source")
            .and_then(|d| d.get("parameters"))
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        content.insert(
            "data_source".into(),
            json!({"type": "query", "query_id": query.id.to_string(), "parameters": values}),
        );
        made.push(query);
    }
    Ok(made)
}

fn block_title(content: &Map<String, Value>, id: &str) -> String {
    content
        .get("title")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .unwrap_or(id)
        .to_string()
}

async fn make_query(
    state: &AppState,
    project_id: Uuid,
    user: Uuid,
    canvas_name: &str,
    title: String,
    embedded: &Map<String, Value>,
    chosen: &ChosenSource,
) -> ApiResult<SavedQuery> {
    let invalid = |what: String| ApiError::bad_request("invalid_template", what);
    let text = embedded
        .get("query_text")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("the query of block '{title}' has no query_text")))?;
    let query_type = embedded
        .get("query_type")
        .and_then(Value::as_str)
        .unwrap_or("sql")
        .to_string();
    let parameters = embedded.get("parameters").cloned().unwrap_or(json!({}));
    let query_text = fill_source(text, &chosen.table, chosen.engine);
    Query::new(&query_type, &query_text, &parameters)
        .map_err(|e| invalid(format!("the query of block '{title}': {e}")))?;
    let name: String = format!("{canvas_name}: {title}")
        .chars()
        .take(255)
        .collect();
    let query = state
        .storage
        .data
        .create_query(NewSavedQuery {
            project_id,
            name,
            query_text,
            query_type,
            parameters,
            created_by: Some(user),
            is_public: false,
            data_source_id: chosen.engine.map(|_| chosen.source.id),
        })
        .await?;
    Ok(query)
}

/// Removes queries made for a canvas that was not made after all (best effort).
pub async fn forget(state: &AppState, queries: &[SavedQuery]) {
    for query in queries {
        if let Err(e) = state.storage.data.delete_query(query.id).await {
            tracing::warn!(query = %query.id, error = %e, "cannot remove a template's query");
        }
    }
}

/// `blocks` (canvas JSON) as a template keeps them: each block bound to a query of
/// `project_id` carries that query instead, the table it reads marked `{{source}}` when it
/// reads exactly one of the project's sources (one table of a database source). A binding
/// to a query that is gone is dropped.
pub async fn embed_queries(
    state: &AppState,
    project_id: Uuid,
    blocks: &mut [Value],
) -> ApiResult<()> {
    let sources = state.storage.data.sources_in_project(project_id).await?;
    for block in blocks.iter_mut() {
        let Some(binding) = block
            .get_mut("content")
            .and_then(|c| c.get_mut("data_source"))
        else {
            continue;
        };
        let Some(query_id) = binding
            .get("query_id")
            .and_then(Value::as_str)
            .and_then(|id| Uuid::parse_str(id).ok())
        else {
            continue;
        };
        let query = state
            .storage
            .data
            .query(query_id)
            .await?
            .filter(|q| q.project_id == project_id);
        let Some(query) = query else {
            if let Some(content) = block.get_mut("content").and_then(Value::as_object_mut) {
                content.remove("data_source");
            }
            continue;
        };
        let text = marked_text(&query, &sources);
        let values = binding.get("parameters").cloned().unwrap_or(json!({}));
        *binding = json!({
            "type": "query",
            "query": {
                "query_text": text,
                "query_type": query.query_type,
                "parameters": query.parameters,
            },
            "parameters": values,
        });
    }
    Ok(())
}

/// The query's text with its one source table marked, or as written when it reads none or
/// several of the candidates.
fn marked_text(query: &SavedQuery, sources: &[DataSource]) -> String {
    let tables: Vec<String> = match query.data_source_id {
        Some(id) => sources
            .iter()
            .filter(|s| s.id == id)
            .filter_map(|s| s.schema_info.clone())
            .filter_map(|v| serde_json::from_value::<SchemaInfo>(v).ok())
            .flat_map(|schema| schema.tables.into_iter().map(|t| t.name))
            .collect(),
        None => sources
            .iter()
            .filter(|s| s.kind != "database")
            .map(|s| s.name.clone())
            .collect(),
    };
    let mut marked = tables
        .iter()
        .map(|t| mark_source(&query.query_text, t))
        .filter(|(_, n)| *n > 0);
    match (marked.next(), marked.next()) {
        (Some((text, _)), None) if !query.query_text.contains(SOURCE_MARKER) => text,
        _ => query.query_text.clone(),
    }
}
