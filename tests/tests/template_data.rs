//! Templates meet data: a canvas made from a template with a data source has the source's
//! columns checked against the template's `required_fields` and its bound blocks bound to
//! new saved queries reading that source; a template made from a bound canvas carries its
//! queries (the source table marked `{{source}}`) to other projects.

use canvas_tests::*;
use serde_json::{Value, json};
use std::time::Duration;

const SALES: &str = "date,region,sales_amount\n2024-01-01,north,10\n2024-01-01,south,20\n\
                     2024-01-02,north,5\n2024-01-02,east,7\n2024-01-03,south,30\n";

async fn queries_of(api: &Api, user: &TestUser, project: &str) -> Vec<Value> {
    let (status, body) = api
        .get(
            &format!("/api/v1/projects/{project}/queries"),
            Some(&user.token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["queries"].as_array().cloned().unwrap_or_default()
}

async fn canvas_count(api: &Api, user: &TestUser, project: &str) -> usize {
    let (status, body) = api
        .get(
            &format!("/api/v1/projects/{project}/canvases"),
            Some(&user.token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["canvases"].as_array().map_or(0, Vec::len)
}

fn block<'a>(view: &'a Value, id: &str) -> &'a Value {
    view["blocks"]
        .as_array()
        .and_then(|blocks| blocks.iter().find(|b| b["id"] == id))
        .unwrap_or_else(|| panic!("no block {id} in {view}"))
}

/// The block's data once its execution completed (the first request may start it).
async fn completed_data(api: &Api, user: &TestUser, canvas: &str, block: &str) -> Value {
    let path = format!("/api/v1/canvases/{canvas}/blocks/{block}/data");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = api.get(&path, Some(&user.token)).await;
        assert_eq!(status, 200, "{body}");
        if body["status"] == "completed" {
            return body;
        }
        assert_ne!(body["status"], "failed", "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "block {block} never completed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_canvas_from_a_template_with_a_source_gets_its_own_bound_queries() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let project = &team.project;
    let good = api
        .csv_source(&team.owner, project, "orders", Some(SALES))
        .await;
    let lacking = api
        .csv_source(
            &team.owner,
            project,
            "visits",
            Some("day,page\n2024-01-01,/\n"),
        )
        .await;
    let unsynced = api.csv_source(&team.owner, project, "empty", None).await;
    let canvases_before = canvas_count(api, &team.owner, project).await;
    let create = |body: Value| {
        let path = format!("/api/v1/projects/{project}/canvases");
        let token = team.editor.token.clone();
        async move { api.post(&path, Some(&token), body).await }
    };

    // A source lacking required fields: every missing one is named, nothing is made.
    let (status, body) = create(json!({
        "name": "Sales", "template_id": "sales-dashboard", "data_source_id": lacking
    }))
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "missing_fields", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    for field in ["date", "sales_amount", "region"] {
        assert!(message.contains(field), "{message}");
    }
    assert!(message.contains("day, page"), "{message}");
    // A source with no data yet, another project's source, a source without a template.
    let (status, body) = create(json!({
        "name": "Sales", "template_id": "sales-dashboard", "data_source_id": unsynced
    }))
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("source_not_synced")),
        "{body}"
    );
    let (status, other_project) = api
        .post(
            "/api/v1/projects",
            Some(&team.stranger.token),
            json!({"name": "elsewhere"}),
        )
        .await;
    assert_eq!(status, 201, "{other_project}");
    let other_project = other_project["id"].as_str().expect("an id").to_owned();
    let foreign = api
        .csv_source(&team.stranger, &other_project, "orders", Some(SALES))
        .await;
    let (status, body) = create(json!({
        "name": "Sales", "template_id": "sales-dashboard", "data_source_id": foreign
    }))
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_data_source")),
        "{body}"
    );
    let (status, body) = create(json!({"name": "Sales", "data_source_id": good})).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_data_source")),
        "{body}"
    );
    assert_eq!(
        canvas_count(api, &team.owner, project).await,
        canvases_before
    );
    assert!(queries_of(api, &team.owner, project).await.is_empty());

    // The right source: the template's chart and table read it through new queries.
    let (status, canvas) = create(json!({
        "name": "Sales", "template_id": "sales-dashboard", "data_source_id": good
    }))
    .await;
    assert_eq!(status, 201, "{canvas}");
    let canvas_id = canvas["id"].as_str().expect("an id").to_owned();
    let queries = queries_of(api, &team.owner, project).await;
    assert_eq!(queries.len(), 2, "{queries:?}");
    for q in &queries {
        let text = q["query_text"].as_str().unwrap_or_default();
        assert!(text.contains("FROM \"orders\""), "{text}");
        assert!(!text.contains("{{source}}"), "{text}");
        assert_eq!(q["created_by"], json!(team.editor.id), "{q}");
    }
    let (status, view) = api
        .get(
            &format!("/api/v1/canvases/{canvas_id}"),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let bound_to = |id: &str| {
        block(&view, id)["content"]["data_source"]["query_id"]
            .as_str()
            .map(str::to_owned)
    };
    let chart_query = bound_to("sales_chart").expect("the chart is bound");
    let table_query = bound_to("sales_table").expect("the table is bound");
    assert_ne!(chart_query, table_query);
    assert!(queries.iter().any(|q| q["id"] == chart_query.as_str()));
    assert!(queries.iter().any(|q| q["id"] == table_query.as_str()));
    assert!(
        block(&view, "sales_chart")["content"]["data_source"]
            .get("query")
            .is_none()
    );

    let chart = completed_data(api, &team.viewer, &canvas_id, "sales_chart").await;
    let series = &chart["series"][0]["points"];
    assert_eq!(
        series,
        &json!([{"x": "east", "y": 7}, {"x": "north", "y": 15}, {"x": "south", "y": 50}]),
        "{chart}"
    );
    let table = completed_data(api, &team.viewer, &canvas_id, "sales_table").await;
    assert_eq!(table["rows"][0][0], "south", "{table}");
    assert_eq!(table["total_rows"], 3, "{table}");

    // Without a source the template is as before: sample content, nothing bound.
    let (status, plain) = create(json!({"name": "Plain", "template_id": "sales-dashboard"})).await;
    assert_eq!(status, 201, "{plain}");
    let plain_id = plain["id"].as_str().expect("an id");
    let (_, plain_view) = api
        .get(
            &format!("/api/v1/canvases/{plain_id}"),
            Some(&team.owner.token),
        )
        .await;
    assert!(
        block(&plain_view, "sales_chart")["content"]
            .get("data_source")
            .is_none(),
        "{plain_view}"
    );
    assert_eq!(queries_of(api, &team.owner, project).await.len(), 2);
}

#[tokio::test]
async fn a_template_made_from_a_bound_canvas_carries_its_queries_to_another_project() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let source = api
        .csv_source(&team.owner, &team.project, "orders", Some(SALES))
        .await;
    let (status, canvas) = api
        .post(
            &format!("/api/v1/projects/{}/canvases", team.project),
            Some(&team.editor.token),
            json!({"name": "Sales", "template_id": "sales-dashboard", "data_source_id": source}),
        )
        .await;
    assert_eq!(status, 201, "{canvas}");
    let canvas_id = canvas["id"].as_str().expect("an id");
    let (status, template) = api
        .post(
            "/api/v1/templates",
            Some(&team.editor.token),
            json!({"canvas_id": canvas_id, "name": "Our sales", "required_fields": ["region", "sales_amount"]}),
        )
        .await;
    assert_eq!(status, 201, "{template}");
    let chart = template["blocks"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["id"] == "sales_chart"))
        .expect("the chart is in the template");
    let binding = &chart["content"]["data_source"];
    assert!(binding.get("query_id").is_none(), "{binding}");
    let text = binding["query"]["query_text"].as_str().unwrap_or_default();
    assert!(text.contains("FROM {{source}}"), "{text}");
    assert!(!text.contains("orders"), "{text}");

    // The editor's own project elsewhere, with the data under another name.
    let (status, other) = api
        .post(
            "/api/v1/projects",
            Some(&team.editor.token),
            json!({"name": "second"}),
        )
        .await;
    assert_eq!(status, 201, "{other}");
    let other = other["id"].as_str().expect("an id").to_owned();
    let shop = api
        .csv_source(&team.editor, &other, "shop_sales", Some(SALES))
        .await;
    let template_id = template["id"].as_str().expect("an id");
    let (status, copy) = api
        .post(
            &format!("/api/v1/projects/{other}/canvases"),
            Some(&team.editor.token),
            json!({"name": "Copy", "template_id": template_id, "data_source_id": shop}),
        )
        .await;
    assert_eq!(status, 201, "{copy}");
    let copy_id = copy["id"].as_str().expect("an id");
    let queries = queries_of(api, &team.editor, &other).await;
    assert_eq!(queries.len(), 2, "{queries:?}");
    assert!(
        queries.iter().all(|q| q["query_text"]
            .as_str()
            .unwrap_or_default()
            .contains("\"shop_sales\"")),
        "{queries:?}"
    );
    let chart = completed_data(api, &team.editor, copy_id, "sales_chart").await;
    assert_eq!(chart["total_rows"], 3, "{chart}");
}
