//! Canvas templates: list, read, make one from a canvas, and the built-in ones every server
//! ships (`created_by: "system"`). A canvas is created from a template with `template_id`
//! on `POST /projects/{id}/canvases` (see [`super::canvases::create`]), which counts a use.
//!
//! A template holds blocks in the canvas JSON shape without their `metadata` (attribution
//! belongs to whoever adds the blocks to a new canvas). A bound block carries its query,
//! not a query id, with `{{source}}` for the table it reads: a canvas made from the template
//! with a `data_source_id` gets its own saved queries reading that source
//! (`crate::data::templates`). Templates are public (every user) or
//! visible to the creator's organization only.
//!
//! A public template reaches every organization on the server, so making one is the
//! operator's decision, not any user's: only an admin of an organization listed in
//! `--template-publishers` may (every signup makes its user admin of an organization of
//! their own, so the organization role alone would stop nobody). A thumbnail is an
//! `http(s)` address, never `javascript:` or `data:`.

use super::{ApiJson, ApiPath, ClientInfo, audit};
use crate::access::canvas_access;
use crate::auth::AuthUser;
use crate::data::templates as data_templates;
use crate::error::{ApiError, ApiResult};
use crate::http::projects::{is_unsafe_in_name, valid_description, valid_name};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use canvas_engine::Role;
use canvas_engine::blocks::{NewBlock, Position};
use canvas_storage::{Storage, StorageResult, Template, User};
use chrono::{SubsecRound, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

/// The template if the user may use it (public, or of their organization); 404 otherwise.
pub async fn visible_template(state: &AppState, user: &User, id: &str) -> ApiResult<Template> {
    let template = state.storage.templates.template(id).await?;
    template
        .filter(|t| {
            t.is_public
                || (t.organization_id.is_some() && t.organization_id == user.organization_id)
        })
        .ok_or_else(|| ApiError::NotFound(format!("template {id} not found")))
}

/// `GET /templates`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TemplateList {
    /// The templates the caller may use.
    pub templates: Vec<Template>,
}

/// `GET /templates`: the templates the caller may use, by category and name.
#[utoipa::path(get, path = "/templates", tag = "templates", security(("bearer" = [])),
    responses((status = 200, description = "Public templates and the organization's", body = TemplateList)))]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
) -> ApiResult<Json<TemplateList>> {
    let templates = state
        .storage
        .templates
        .templates(caller.user.organization_id)
        .await?;
    Ok(Json(TemplateList { templates }))
}

/// `GET /templates/{id}`.
#[utoipa::path(get, path = "/templates/{id}", tag = "templates", security(("bearer" = [])),
    params(("id" = String, Path, description = "The template (a UUID, or a built-in's name)")),
    responses((status = 200, description = "The template", body = Template)))]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Template>> {
    Ok(Json(visible_template(&state, &caller.user, &id).await?))
}

/// `POST /templates` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    canvas_id: Uuid,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    thumbnail_url: Option<String>,
    #[serde(default)]
    is_public: bool,
    #[serde(default)]
    required_fields: Vec<String>,
}

fn short_text(field: &'static str, value: Option<String>, max: usize) -> ApiResult<Option<String>> {
    match value {
        Some(v) if v.chars().count() > max || v.contains('\0') => Err(ApiError::bad_request(
            "invalid_template",
            format!("{field} must be at most {max} characters"),
        )),
        other => Ok(other),
    }
}

/// Makes a template from a canvas's current blocks. Editors of the canvas may.
#[utoipa::path(post, path = "/templates", tag = "templates", security(("bearer" = [])),
    request_body = CreateTemplate,
    responses((status = 201, description = "The new template", body = Template),
        (status = 403, description = "No access to the canvas, or not allowed to publish a template from it"),
        (status = 404, description = "No canvas `canvas_id`, or not visible to the caller"),
        (status = 409, description = "A template with this id exists")))]
pub async fn create(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: AuthUser,
    ApiJson(body): ApiJson<CreateTemplate>,
) -> ApiResult<(StatusCode, Json<Template>)> {
    if body.required_fields.len() > 100
        || body
            .required_fields
            .iter()
            .any(|f| f.is_empty() || f.chars().count() > 100)
    {
        return Err(ApiError::bad_request(
            "invalid_template",
            "at most 100 required_fields of 1 to 100 characters",
        ));
    }
    let name = valid_name(&body.name)?;
    let description = valid_description(body.description)?;
    let category = short_text("category", body.category, 100)?;
    if category
        .as_deref()
        .is_some_and(|c| c.chars().any(is_unsafe_in_name))
    {
        return Err(ApiError::bad_request(
            "invalid_template",
            "category must not contain control or text-direction characters",
        ));
    }
    let thumbnail_url = short_text("thumbnail_url", body.thumbnail_url, 2048)?
        .map(|u| valid_thumbnail(&u))
        .transpose()?;
    if body.is_public && !may_publish(&state, &caller.user) {
        return Err(ApiError::Forbidden(
            "public templates reach every organization: only admins of an organization the \
             operator lists in --template-publishers make them"
                .into(),
        ));
    }
    let found = canvas_access(&state.storage, &caller.user, body.canvas_id).await?;
    let view = state
        .rooms
        .read(body.canvas_id, &found.access)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::Forbidden("you have no access to this canvas".into()))?;
    let role = crate::domain::effective_role(&found.access, &view.sharing);
    if !role.is_some_and(Role::can_edit) {
        return Err(ApiError::Forbidden(
            "only editors of a canvas make templates from it".into(),
        ));
    }
    let mut blocks: Vec<Value> = view.json["blocks"]
        .as_array()
        .map(|blocks| blocks.iter().map(template_block).collect())
        .unwrap_or_default();
    // A query id names a query of this project only: the template carries the query.
    data_templates::embed_queries(&state, found.canvas.project_id, &mut blocks).await?;
    let template = Template {
        id: Uuid::new_v4().to_string(),
        name,
        description,
        category,
        thumbnail_url,
        is_public: body.is_public,
        usage_count: 0,
        blocks: Value::Array(blocks),
        required_fields: body.required_fields,
        created_by: caller.user.id.to_string(),
        organization_id: caller.user.organization_id,
        // Milliseconds: what every store keeps.
        created_at: Utc::now().trunc_subsecs(3),
    };
    state.storage.templates.create_template(&template).await?;
    audit(
        &state,
        &caller.user,
        &client,
        "template.create",
        ("template", None),
        json!({ "template_id": template.id, "name": template.name, "canvas_id": body.canvas_id }),
    )
    .await;
    Ok((StatusCode::CREATED, Json(template)))
}

/// Whether the user may make a public template: an admin of an organization the operator
/// listed in `--template-publishers`.
fn may_publish(state: &AppState, user: &User) -> bool {
    user.role == "admin"
        && user
            .organization_id
            .is_some_and(|org| state.config.template_publishers.contains(&org))
}

/// A thumbnail address: an absolute `http` or `https` URL with a host (a `javascript:` or
/// `data:` address would run or show whatever it holds where the template is listed).
fn valid_thumbnail(address: &str) -> ApiResult<String> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_template",
            "thumbnail_url must be an http:// or https:// address",
        )
    };
    let parsed = url::Url::parse(address.trim()).map_err(|_| invalid())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid());
    }
    Ok(parsed.to_string())
}

/// A block of a canvas as a template keeps it: id, type, position and content.
fn template_block(block: &Value) -> Value {
    let mut block = block.clone();
    if let Some(fields) = block.as_object_mut() {
        fields.remove("metadata");
    }
    block
}

/// The blocks of a template as blocks to add to a new canvas by `user` now. A block that is
/// not a valid block (no id, type or integral position) is an error naming it.
pub fn template_blocks(template: &Template, user: Uuid) -> ApiResult<Vec<NewBlock>> {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let invalid = |what: String| {
        ApiError::bad_request(
            "invalid_template",
            format!("template {}: {what}", template.id),
        )
    };
    let Some(blocks) = template.blocks.as_array() else {
        return Err(invalid("blocks is not an array".into()));
    };
    blocks
        .iter()
        .map(|block| {
            let text = |key: &str| block.get(key).and_then(Value::as_str).map(str::to_owned);
            let id = text("id").ok_or_else(|| invalid("a block has no id".into()))?;
            let block_type =
                text("type").ok_or_else(|| invalid(format!("block {id} has no type")))?;
            let position: Position = serde_json::from_value(block["position"].clone())
                .map_err(|e| invalid(format!("block {id}: position: {e}")))?;
            Ok(NewBlock {
                id,
                block_type,
                position,
                content: block.get("content").cloned().unwrap_or_else(|| json!({})),
                created_by: user.to_string(),
                created_at: now.clone(),
            })
        })
        .collect()
}

/// The templates every server ships, stored on startup unless already there (their use
/// counts are kept across restarts).
pub fn builtin_templates() -> Vec<Template> {
    let created_at = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let builtin = |id: &str,
                   name: &str,
                   description: &str,
                   category: &str,
                   required: &[&str],
                   blocks: Value| Template {
        id: id.to_owned(),
        name: name.to_owned(),
        description: Some(description.to_owned()),
        category: Some(category.to_owned()),
        thumbnail_url: None,
        is_public: true,
        usage_count: 0,
        blocks,
        required_fields: required.iter().map(|s| (*s).to_owned()).collect(),
        created_by: "system".to_owned(),
        organization_id: None,
        created_at,
    };
    vec![
        builtin(
            "sales-dashboard",
            "Sales Dashboard",
            "Standard template for sales analysis: sales by region, key insights and a breakdown table.",
            "sales",
            &["date", "sales_amount", "region"],
            json!([
                {"id": "sales_chart", "type": "chart", "position": {"x": 0, "y": 0, "w": 6, "h": 4},
                 "content": {"chart_type": "bar", "title": "Sales by Region",
                             "data_source": {"type": "query", "query": {
                                 "query_text": "SELECT region, sum(sales_amount) AS total_sales FROM {{source}} GROUP BY region ORDER BY region"}},
                             "data": [{"label": "North", "value": 120}, {"label": "South", "value": 95},
                                      {"label": "East", "value": 140}, {"label": "West", "value": 80}],
                             "config": {"x_axis": "region", "y_axis": "total_sales", "aggregation": "sum"},
                             "style": {"theme": "light", "colors": ["#1f77b4", "#ff7f0e", "#2ca02c"]}}},
                {"id": "sales_insights", "type": "narrative", "position": {"x": 6, "y": 0, "w": 6, "h": 4},
                 "content": {"text": "## Key Insights\n\nSales total **{{total_sales}}**; the best region sells **{{best_region}}**.\n\nDescribe what changed this period and why.",
                             "data_bindings": [{"key": "total_sales", "source": "sales_chart", "calculation": "sum"},
                                               {"key": "best_region", "source": "sales_chart", "calculation": "max"}]}},
                {"id": "sales_table", "type": "table", "position": {"x": 0, "y": 4, "w": 12, "h": 6},
                 "content": {"title": "Detailed Sales Breakdown",
                             "data_source": {"type": "query", "query": {
                                 "query_text": "SELECT region AS product, sum(sales_amount) AS sales, 100.0 * sum(sales_amount) / (SELECT sum(sales_amount) FROM {{source}}) AS growth FROM {{source}} GROUP BY region ORDER BY sales DESC"}},
                             "columns": [{"field": "product", "header": "Region", "type": "string"},
                                         {"field": "sales", "header": "Sales", "type": "currency"},
                                         {"field": "growth", "header": "Share %", "type": "percentage"}],
                             "rows": [{"product": "Widgets", "sales": 1200, "growth": 12.5},
                                      {"product": "Gadgets", "sales": 950, "growth": -3.1}],
                             "pagination": {"enabled": true, "pageSize": 20}}}
            ]),
        ),
        builtin(
            "kpi-overview",
            "KPI Overview",
            "Three headline metrics with a trend chart and commentary.",
            "operations",
            &["date", "metric", "value"],
            json!([
                {"id": "kpi_trend", "type": "chart", "position": {"x": 0, "y": 0, "w": 8, "h": 5},
                 "content": {"chart_type": "line", "title": "Trend",
                             "data_source": {"type": "query", "query": {
                                 "query_text": "SELECT date, metric, sum(value) AS value FROM {{source}} GROUP BY date, metric ORDER BY date"}},
                             "config": {"x_axis": "date", "y_axis": "value", "color": "metric", "aggregation": "sum"},
                             "data": [{"label": "Jan", "value": 10}, {"label": "Feb", "value": 14},
                                      {"label": "Mar", "value": 13}, {"label": "Apr", "value": 18}]}},
                {"id": "kpi_notes", "type": "narrative", "position": {"x": 8, "y": 0, "w": 4, "h": 5},
                 "content": {"text": "Latest: **{{latest}}**, {{change}} % on the point before. What moved the numbers this month?",
                             "data_bindings": [{"key": "latest", "source": "kpi_trend", "calculation": "latest"},
                                               {"key": "change", "source": "kpi_trend", "calculation": "percentage_change"}]}}
            ]),
        ),
        builtin(
            "blank-report",
            "Blank Report",
            "A title and one narrative block to start writing.",
            "general",
            &[],
            json!([
                {"id": "report_body", "type": "narrative", "position": {"x": 0, "y": 0, "w": 12, "h": 6},
                 "content": {"text": "# Report\n\n", "data_bindings": []}}
            ]),
        ),
    ]
}

/// Stores the built-in templates that are not stored yet.
pub async fn install_builtins(storage: &Storage) -> StorageResult<()> {
    for template in builtin_templates() {
        storage.templates.ensure_template(&template).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use canvas_engine::CanvasDoc;
    use canvas_engine::{blocks, init};

    #[test]
    fn builtin_templates_make_valid_canvases() {
        for template in builtin_templates() {
            let blocks = template_blocks(&template, Uuid::nil()).expect("valid blocks");
            assert!(!blocks.is_empty(), "{}", template.id);
            let mut canvas = CanvasDoc::new();
            let meta = init::CanvasMeta {
                name: template.name.clone(),
                description: None,
                project_id: Uuid::nil().to_string(),
                owner_id: Uuid::nil().to_string(),
                tags: vec![],
            };
            let (added, _) = canvas.edit(|txn| {
                init::init_canvas(txn, &meta);
                blocks.iter().try_for_each(|b| blocks::add_block(txn, b))
            });
            added.unwrap_or_else(|e| panic!("template {}: {e}", template.id));
        }
    }
}
