//! Blocks bound to live data, end to end: charts, tables and narratives bound to saved
//! queries over a real CSV source (and a real PostgreSQL source on the services), seen over
//! WebSocket (extension message 102, narrative values in the document) and REST
//! (`GET /canvases/{id}/blocks/{block_id}/data`, the JSON view's rendered text).

use canvas_engine::bindings::json_to_any;
use canvas_engine::protocol::BlockDataBody;
use canvas_engine::yrs::{
    Any, Array, ArrayPrelim, In, Map, MapPrelim, MapRef, Out, ReadTxn, TextPrelim, Transact,
    TransactionMut, WriteTxn,
};
use canvas_tests::*;
use serde_json::{Value, json};
use std::time::Duration;

const SALES: &str = "region,product,amount\nnorth,widget,10\nsouth,widget,20\nnorth,gadget,5\n\
                     east,widget,7\nsouth,gadget,30\n";

/// A saved query of `project` by `user`; its id.
async fn saved_query(
    api: &Api,
    user: &TestUser,
    project: &str,
    text: &str,
    parameters: Value,
    source: Option<&str>,
) -> String {
    let mut body =
        json!({"name": "q", "query_text": text, "query_type": "sql", "parameters": parameters});
    if let Some(source) = source {
        body["data_source_id"] = json!(source);
    }
    let (status, query) = api
        .post(
            &format!("/api/v1/projects/{project}/queries"),
            Some(&user.token),
            body,
        )
        .await;
    assert_eq!(status, 201, "{query}");
    query["id"].as_str().expect("an id").to_owned()
}

fn any(v: Value) -> In {
    In::Any(json_to_any(&v))
}

fn int(v: i64) -> In {
    In::Any(Any::Number(canvas_engine::yrs::any::Number::Int(v)))
}

fn query_source(query: &str, parameters: Value) -> Value {
    json!({"type": "query", "query_id": query, "parameters": parameters})
}

/// Adds a block with `content` (plain values, and a narrative's text and bindings array).
fn add_bound(txn: &mut TransactionMut, id: &str, kind: &str, y: i64, content: MapPrelim) {
    let position = MapPrelim::from([("x", int(0)), ("y", int(y)), ("w", int(6)), ("h", int(4))]);
    let blocks = txn.get_or_insert_map("blocks");
    blocks.insert(
        txn,
        id,
        MapPrelim::from([
            ("id", In::Any(Any::from(id))),
            ("type", In::Any(Any::from(kind))),
            ("position", In::Map(position)),
            ("content", In::Map(content)),
            ("metadata", In::Map(MapPrelim::default())),
        ]),
    );
}

fn content_of<T: ReadTxn>(txn: &T, id: &str) -> MapRef {
    let blocks = txn.get_map("blocks").expect("blocks");
    let Some(Out::YMap(block)) = blocks.get(txn, id) else {
        panic!("no block {id}");
    };
    let Some(Out::YMap(content)) = block.get(txn, "content") else {
        panic!("block {id} has no content map");
    };
    content
}

fn chart_content(query: &str, config: Value) -> MapPrelim {
    MapPrelim::from([
        ("chart_type", any(json!("bar"))),
        ("data_source", any(query_source(query, json!({})))),
        ("config", any(config)),
    ])
}

fn sales_config() -> Value {
    json!({"x_axis": "region", "y_axis": "amount", "color": "product", "aggregation": "sum"})
}

/// The values of a narrative's bindings in a client's document, by key.
fn binding_values(doc: &canvas_engine::yrs::Doc, id: &str) -> Value {
    let txn = doc.transact();
    let Some(block) = canvas_engine::json::block_json(&txn, id) else {
        return json!({});
    };
    let mut out = serde_json::Map::new();
    for b in canvas_engine::bindings::bindings_in(&block["content"]) {
        out.insert(b.key, b.value.unwrap_or(Value::Null));
    }
    Value::Object(out)
}

/// Waits for a 102 with data (not `running`) about `block` that satisfies `pred`.
async fn wait_data(
    client: &mut WsClient,
    block: &str,
    mut pred: impl FnMut(&BlockDataBody) -> bool,
) -> BlockDataBody {
    let mut pred = move |d: &BlockDataBody| d.status != "running" && pred(d);
    if let Some(data) = client.block_data.get(block).filter(|d| pred(d)) {
        return data.clone();
    }
    match client
        .wait_for(|_, m| matches!(m, Incoming::BlockData(d) if d.block_id == block && pred(d)))
        .await
    {
        Incoming::BlockData(data) => *data,
        _ => unreachable!("wait_for returns what matched"),
    }
}

/// Waits for a `running` 102 about `block` (an execution for it started).
async fn wait_running(client: &mut WsClient, block: &str) -> BlockDataBody {
    match client
        .wait_for(
            |_, m| matches!(m, Incoming::BlockData(d) if d.block_id == block && d.status == "running"),
        )
        .await
    {
        Incoming::BlockData(data) => *data,
        _ => unreachable!("wait_for returns what matched"),
    }
}

async fn block_data(
    api: &Api,
    user: &TestUser,
    canvas: &str,
    block: &str,
    q: &str,
) -> (u16, Value) {
    api.get(
        &format!("/api/v1/canvases/{canvas}/blocks/{block}/data{q}"),
        Some(&user.token),
    )
    .await
}

#[tokio::test]
async fn bound_charts_tables_and_narratives_are_live_over_websocket_and_rest() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let source = api
        .csv_source(&team.owner, &team.project, "sales", Some(SALES))
        .await;
    let query = saved_query(
        api,
        &team.editor,
        &team.project,
        "SELECT region, product, amount FROM sales WHERE amount >= {{min}} ORDER BY amount",
        json!({"min": {"type": "number", "default": 0}}),
        None,
    )
    .await;
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    let mut viewer = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    editor
        .edit(|txn| {
            add_bound(
                txn,
                "chart",
                "chart",
                0,
                chart_content(&query, sales_config()),
            );
            add_bound(
                txn,
                "table",
                "table",
                4,
                MapPrelim::from([
                    ("title", any(json!("Detailed Sales Breakdown"))),
                    ("data_source", any(query_source(&query, json!({})))),
                    (
                        "columns",
                        any(json!([
                            {"field": "product", "header": "Product", "type": "string"},
                            {"field": "amount", "header": "Sales", "type": "currency"}
                        ])),
                    ),
                    ("pagination", any(json!({"enabled": true, "pageSize": 2}))),
                    (
                        "sorting",
                        any(json!({"enabled": true, "defaultSort": "-amount"})),
                    ),
                    ("filtering", any(json!({"enabled": true}))),
                ]),
            );
            add_bound(
                txn,
                "story",
                "narrative",
                8,
                MapPrelim::from([
                    (
                        "text",
                        In::from(TextPrelim::new("Total {{total}}, change {{change}}")),
                    ),
                    (
                        "data_bindings",
                        In::Array(ArrayPrelim::from([
                            any(json!({"key": "total", "source": "chart", "calculation": "sum"})),
                            In::Map(MapPrelim::from([
                                ("key", In::Any(Any::from("change"))),
                                ("source", In::Any(Any::from("chart"))),
                                ("calculation", In::Any(Any::from("percentage_change"))),
                            ])),
                        ])),
                    ),
                ]),
            );
        })
        .await;
    editor.wait_acked().await;

    // The viewer hears that the chart's query runs (nothing was cached), then gets the
    // chart's data from that execution with its series, and the table's.
    let running = wait_running(&mut viewer, "chart").await;
    assert!(running.execution_id.is_some() && running.rows.is_empty());
    assert_eq!(
        running.binding,
        Some(json!({"query_id": query, "parameters": {}}))
    );
    let chart = wait_data(&mut viewer, "chart", |d| d.status == "completed").await;
    assert_eq!(chart.execution_id, running.execution_id);
    assert_eq!(chart.total_rows, 5);
    assert_eq!(chart.columns.len(), 3);
    assert!(chart.execution_id.is_some() && chart.computed_at.is_some());
    assert_eq!(
        chart.series,
        Some(json!([
            {"name": "gadget", "points": [{"x": "north", "y": 5}, {"x": "south", "y": 30}]},
            {"name": "widget", "points": [{"x": "east", "y": 7}, {"x": "north", "y": 10},
                                          {"x": "south", "y": 20}]}
        ]))
    );
    let table = wait_data(&mut viewer, "table", |d| d.status == "completed").await;
    assert_eq!(table.total_rows, 5);
    assert!(table.series.is_none());

    // Narrative values are computed by the server and reach every client in the document:
    // totals per region (north 15, east 7, south 50): sum 72, last two +614.29 %.
    viewer
        .wait_doc(|doc| binding_values(doc, "story") == json!({"total": 72, "change": 614.29}))
        .await;
    let view = api.canvas_json(&team.viewer, &team.canvas).await;
    let story = view["blocks"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["id"] == "story"))
        .expect("the narrative");
    assert_eq!(story["content"]["rendered_text"], "Total 72, change 614.29");
    assert_eq!(
        story["content"]["text"],
        "Total {{total}}, change {{change}}"
    );

    // REST: the chart with its series; the table page by page, sorted and filtered.
    let (status, data) = block_data(api, &team.viewer, &team.canvas, "chart", "").await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["status"], "completed");
    assert_eq!(data["series"], chart.series.clone().expect("series"));
    assert_eq!(data["total_rows"], 5);
    let (status, page) = block_data(api, &team.viewer, &team.canvas, "table", "").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["rows"], json!([["gadget", 30], ["widget", 20]]));
    assert_eq!(
        (page["pages"].clone(), page["page_size"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(page["columns"][1]["header"], "Sales");
    assert_eq!(page["columns"][1]["format"], "currency");
    let (_, page3) = block_data(api, &team.viewer, &team.canvas, "table", "?page=3").await;
    assert_eq!(page3["rows"], json!([["gadget", 5]]));
    let (_, widgets) = block_data(
        api,
        &team.viewer,
        &team.canvas,
        "table",
        "?sort=amount&filter=widget",
    )
    .await;
    assert_eq!(widgets["rows"], json!([["widget", 7], ["widget", 10]]));
    assert_eq!(widgets["total_rows"], 3);
    assert_eq!(widgets["sort"], "amount");
    let (status, err) = block_data(api, &team.viewer, &team.canvas, "table", "?sort=price").await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (400, &json!("unknown_column")),
        "{err}"
    );
    let (status, _) = block_data(api, &team.stranger, &team.canvas, "chart", "").await;
    assert_eq!(status, 403);

    // A client cannot forge a narrative value.
    editor
        .edit(|txn| {
            let content = content_of(txn, "story");
            let Some(Out::YArray(bindings)) = content.get(txn, "data_bindings") else {
                panic!("bindings array");
            };
            let Some(Out::YMap(entry)) = bindings.get(txn, 1) else {
                panic!("a map entry");
            };
            entry.insert(txn, "value", 1000);
        })
        .await;
    editor
        .wait_for(|_, m| matches!(m, Incoming::Error { code, .. } if code == "forbidden"))
        .await;
    // (the editor's document now has a gap: it starts again with a fresh one)
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;

    // Parameters change: the block is resolved again, the narrative follows.
    editor
        .edit(|txn| {
            let content = content_of(txn, "chart");
            content.insert(
                txn,
                "data_source",
                json_to_any(&query_source(&query, json!({"min": 10}))),
            );
        })
        .await;
    let filtered = wait_data(&mut viewer, "chart", |d| d.total_rows == 3).await;
    assert_eq!(filtered.status, "completed");
    viewer
        .wait_doc(|doc| binding_values(doc, "story")["total"] == json!(60))
        .await;

    // Typing a title and switching bar to line change nothing the data is shaped by: no
    // message goes out for them (counted up to the config change's message below).
    for title in ["S", "Sa", "Sales"] {
        editor
            .edit(|txn| {
                content_of(txn, "chart").insert(txn, "title", title);
            })
            .await;
    }
    editor
        .edit(|txn| {
            content_of(txn, "chart").insert(txn, "chart_type", "line");
        })
        .await;
    // The config changes: reshaped from the same result (same execution).
    editor
        .edit(|txn| {
            let content = content_of(txn, "chart");
            content.insert(
                txn,
                "config",
                json_to_any(
                    &json!({"x_axis": "product", "y_axis": "amount", "aggregation": "max"}),
                ),
            );
        })
        .await;
    let mut chart_messages = 0;
    let reshaped = match viewer
        .wait_for(|_, m| match m {
            Incoming::BlockData(d) if d.block_id == "chart" => {
                chart_messages += 1;
                d.series.as_ref().is_some_and(|s| s[0]["name"] == "amount")
            }
            _ => false,
        })
        .await
    {
        Incoming::BlockData(data) => *data,
        _ => unreachable!("wait_for returns what matched"),
    };
    assert_eq!(
        chart_messages, 1,
        "only the config change reshaped the chart's data"
    );
    assert_eq!(reshaped.execution_id, filtered.execution_id);
    assert_eq!(
        reshaped.series,
        Some(
            json!([{"name": "amount", "points": [{"x": "widget", "y": 20}, {"x": "gadget", "y": 30}]}])
        )
    );

    // Someone joining gets each bound block's data once.
    let mut owner = WsClient::connect(&server.ws_url(&team.canvas, &team.owner.token)).await;
    owner.sync().await;
    wait_data(&mut owner, "chart", |d| d.total_rows == 3).await;
    wait_data(&mut owner, "table", |_| true).await;

    // The source is refreshed: new data reaches everyone, and the narrative.
    api.upload_csv(
        &team.owner.token,
        &source,
        "region,product,amount\nnorth,widget,100\nsouth,widget,200\n",
    )
    .await;
    let fresh = wait_data(&mut viewer, "chart", |d| d.total_rows == 2).await;
    assert!(!fresh.from_cache);
    // (the chart now shows the max per product: one point, widget 200, so no change)
    viewer
        .wait_doc(|doc| binding_values(doc, "story") == json!({"total": 200, "change": null}))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn bad_bindings_are_clear_errors_and_change_nothing_else() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    api.csv_source(&team.owner, &team.project, "sales", Some(SALES))
        .await;
    let query = saved_query(
        api,
        &team.editor,
        &team.project,
        "SELECT region, product, amount FROM sales",
        json!({}),
        None,
    )
    .await;
    // another project, with its own source and query
    let other = api.create_project(&team.stranger, "elsewhere").await;
    api.csv_source(
        &team.stranger,
        &other,
        "sales",
        Some("secret,amount\nx,1\n"),
    )
    .await;
    let foreign = saved_query(
        api,
        &team.stranger,
        &other,
        "SELECT * FROM sales",
        json!({}),
        None,
    )
    .await;

    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    editor
        .edit(|txn| {
            add_bound(
                txn,
                "good",
                "chart",
                0,
                chart_content(&query, sales_config()),
            );
            add_bound(
                txn,
                "story",
                "narrative",
                4,
                MapPrelim::from([(
                    "data_bindings",
                    any(json!([{"key": "total", "source": "good", "calculation": "sum"}])),
                )]),
            );
        })
        .await;
    wait_data(&mut editor, "good", |d| d.status == "completed").await;
    editor
        .wait_doc(|doc| binding_values(doc, "story") == json!({"total": 72}))
        .await;

    let unknown = uuid::Uuid::new_v4().to_string();
    editor
        .edit(|txn| {
            add_bound(
                txn,
                "unknown",
                "chart",
                8,
                chart_content(&unknown, sales_config()),
            );
            add_bound(
                txn,
                "foreign",
                "table",
                12,
                chart_content(&foreign, json!({})),
            );
            add_bound(
                txn,
                "column",
                "chart",
                16,
                chart_content(&query, json!({"x_axis": "regoin", "y_axis": "amount"})),
            );
            add_bound(
                txn,
                "params",
                "chart",
                20,
                MapPrelim::from([(
                    "data_source",
                    any(json!({"type": "query", "query_id": query, "parameters": [1]})),
                )]),
            );
        })
        .await;
    let cases = [
        ("unknown", "query_not_found", 404),
        ("foreign", "forbidden_query", 403),
        ("column", "unknown_column", 400),
        ("params", "invalid_binding", 400),
    ];
    for (block, code, status) in cases {
        let data = wait_data(&mut editor, block, |d| d.status != "pending").await;
        assert_eq!(data.status, "error", "{block}: {data:?}");
        let error = data.error.expect("an error");
        assert_eq!(error.code, code, "{block}: {}", error.message);
        assert!(
            data.rows.is_empty() && data.columns.is_empty(),
            "{block}: nothing leaks"
        );
        let (got, body) = block_data(api, &team.editor, &team.canvas, block, "").await;
        assert_eq!(got, status, "{block}: {body}");
        if status == 400 {
            assert_eq!(body["error"]["code"], code, "{block}: {body}");
        }
        assert_eq!(
            body["error"]["message"],
            error.message.as_str(),
            "{block}: {body}"
        );
    }
    // the other project's query never ran for this canvas, and nothing it holds is shown
    let (_, foreign_body) = block_data(api, &team.editor, &team.canvas, "foreign", "").await;
    assert!(
        !foreign_body.to_string().contains("secret"),
        "{foreign_body}"
    );
    // nothing else changed: the good block keeps its data, the narrative its value
    let (status, good) = block_data(api, &team.editor, &team.canvas, "good", "").await;
    assert_eq!((status, &good["total_rows"]), (200, &json!(5)), "{good}");
    assert_eq!(binding_values(&editor.doc, "story"), json!({"total": 72}));
    // a block without a binding, and one that does not exist
    editor
        .edit(|txn| add_block(txn, "plain", "chart", (6, 0, 6, 4)))
        .await;
    editor.wait_acked().await;
    let (status, body) = block_data(api, &team.editor, &team.canvas, "plain", "").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("not_bound")),
        "{body}"
    );
    let (status, _) = block_data(api, &team.editor, &team.canvas, "nope", "").await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn on_the_services_two_nodes_share_one_execution() {
    let services = ServiceSet::fresh().await;
    let secret = "A6E8Yq3sJ5ZzZt9r4bX9rV0kq1v3mJm8bqv2dQnUu7c=";
    let a = TestServer::start_with(|c| {
        services.configure(c);
        c.secret_key = Some(secret.into());
    })
    .await;
    let b = TestServer::start_with(|c| {
        services.configure(c);
        c.secret_key = Some(secret.into());
    })
    .await;
    let team = Team::new(&a).await;
    let (query, db) = orders_query(&team, "bound_").await;
    let mut editor = WsClient::join(&a.ws_url(&team.canvas, &team.editor.token)).await;
    let mut viewer = WsClient::join(&b.ws_url(&team.canvas, &team.viewer.token)).await;
    editor
        .edit(|txn| {
            add_bound(
                txn,
                "chart",
                "chart",
                0,
                chart_content(&query, sales_config()),
            );
            add_bound(
                txn,
                "story",
                "narrative",
                4,
                MapPrelim::from([(
                    "data_bindings",
                    any(json!([{"key": "top", "source": "chart", "calculation": "max"}])),
                )]),
            );
        })
        .await;
    let on_a = wait_data(&mut editor, "chart", |d| d.status == "completed").await;
    let on_b = wait_data(&mut viewer, "chart", |d| d.status == "completed").await;
    assert_eq!(
        on_a.execution_id, on_b.execution_id,
        "one execution for both nodes"
    );
    assert_eq!(on_a.series, on_b.series);
    assert_eq!(
        on_b.series,
        Some(json!([
            {"name": "widget", "points": [{"x": "north", "y": 10}, {"x": "south", "y": 20}]},
            {"name": "gadget", "points": [{"x": "north", "y": 5}]}
        ]))
    );
    // the narrative value written on node A reaches node B's client through the document
    viewer
        .wait_doc(|doc| binding_values(doc, "story") == json!({"top": 20}))
        .await;
    // node B answers REST from the shared cache
    let (status, data) = block_data(&b.api(), &team.viewer, &team.canvas, "chart", "").await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["from_cache"], true, "{data}");
    assert_eq!(data["series"], on_b.series.clone().expect("series"));
    // someone joining on node B gets the data node B relayed, without a new execution
    let mut late = WsClient::join(&b.ws_url(&team.canvas, &team.owner.token)).await;
    let joined = wait_data(&mut late, "chart", |_| true).await;
    assert_eq!(joined.execution_id, on_a.execution_id);
    drop(db);
    let _ = tokio::time::timeout(Duration::from_secs(30), a.stop()).await;
    let _ = tokio::time::timeout(Duration::from_secs(30), b.stop()).await;
}

/// A PostgreSQL database source with a small `orders` table in a fresh database, and a
/// saved query over it (the services' two-node tests).
async fn orders_query(team: &Team, prefix: &str) -> (String, sqlx::PgConnection) {
    let (admin, name) = fresh_database(prefix).await;
    let (scheme, rest) = admin.split_once("://").expect("a URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split('/').next().unwrap_or(host);
    let url = format!("{scheme}://postgres@{host}/{name}");
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("the sample database answers");
    for statement in [
        "CREATE TABLE orders (id int, region text, product text, amount numeric)",
        "INSERT INTO orders VALUES (1, 'north', 'widget', 10), (2, 'south', 'widget', 20), \
         (3, 'north', 'gadget', 5)",
    ] {
        sqlx::query(statement)
            .execute(&mut db)
            .await
            .expect("sample data");
    }
    let source = team
        .api
        .database_source(&team.owner, &team.project, "warehouse", &url)
        .await;
    let query = saved_query(
        &team.api,
        &team.editor,
        &team.project,
        "SELECT region, product, amount FROM orders ORDER BY id",
        json!({}),
        Some(source.as_str()),
    )
    .await;
    (query, db)
}

#[tokio::test]
async fn on_the_services_a_node_refreshes_what_another_node_resolved_once_that_node_stops() {
    let services = ServiceSet::fresh().await;
    let secret = "A6E8Yq3sJ5ZzZt9r4bX9rV0kq1v3mJm8bqv2dQnUu7c=";
    let a = TestServer::start_with(|c| {
        services.configure(c);
        c.secret_key = Some(secret.into());
        c.result_ttl_secs = 1;
    })
    .await;
    let b = TestServer::start_with(|c| {
        services.configure(c);
        c.secret_key = Some(secret.into());
        c.result_ttl_secs = 1;
    })
    .await;
    let team = Team::new(&a).await;
    let (query, db) = orders_query(&team, "expiry_").await;
    let mut editor = WsClient::join(&a.ws_url(&team.canvas, &team.editor.token)).await;
    let mut viewer = WsClient::join(&b.ws_url(&team.canvas, &team.viewer.token)).await;
    editor
        .edit(|txn| {
            add_bound(
                txn,
                "chart",
                "chart",
                0,
                chart_content(&query, sales_config()),
            );
        })
        .await;
    editor.wait_acked().await;
    let first = wait_data(&mut viewer, "chart", |d| d.status == "completed").await;
    // Node A resolved it and keeps it fresh while its editor is connected. Node A goes
    // away: node B's viewer still gets fresh results, from executions node B starts.
    drop(editor);
    let _ = tokio::time::timeout(Duration::from_secs(30), a.stop()).await;
    let mut seen = std::collections::HashSet::new();
    seen.insert(first.execution_id.clone());
    // (node A may have refreshed once more before it stopped)
    let later = wait_data(&mut viewer, "chart", |d| {
        d.status == "completed" && !seen.contains(&d.execution_id)
    })
    .await;
    seen.insert(later.execution_id.clone());
    let from_b = wait_data(&mut viewer, "chart", |d| {
        d.status == "completed" && !seen.contains(&d.execution_id)
    })
    .await;
    assert_eq!(from_b.total_rows, 3);
    assert_eq!(from_b.series, first.series);
    drop(db);
    let _ = tokio::time::timeout(Duration::from_secs(30), b.stop()).await;
}

#[tokio::test]
async fn a_block_refreshed_by_hand_runs_again_and_reaches_every_connection() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    api.csv_source(&team.owner, &team.project, "sales", Some(SALES))
        .await;
    let query = saved_query(
        api,
        &team.editor,
        &team.project,
        "SELECT region, product, amount FROM sales ORDER BY amount",
        json!({}),
        None,
    )
    .await;
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    let mut viewer = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    editor
        .edit(|txn| {
            add_bound(
                txn,
                "chart",
                "chart",
                0,
                chart_content(&query, sales_config()),
            );
            add_bound(
                txn,
                "story",
                "narrative",
                4,
                MapPrelim::from([
                    ("text", In::from(TextPrelim::new("Total {{total}}"))),
                    (
                        "data_bindings",
                        In::Array(ArrayPrelim::from([any(
                            json!({"key": "total", "source": "chart", "calculation": "sum"}),
                        )])),
                    ),
                ]),
            );
        })
        .await;
    editor.wait_acked().await;
    let first = wait_data(&mut viewer, "chart", |d| d.status == "completed").await;
    let first_execution = first.execution_id.clone().expect("an execution");

    // A second read of the same binding is a cache hit; a refresh runs it again.
    let (status, cached) = block_data(api, &team.viewer, &team.canvas, "chart", "").await;
    assert_eq!(status, 200, "{cached}");
    assert_eq!(cached["from_cache"], true);
    let path = format!("/api/v1/canvases/{}/blocks/chart/refresh", team.canvas);
    let (status, refreshed) = api.post(&path, Some(&team.editor.token), json!({})).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["status"], "completed");
    assert_eq!(refreshed["from_cache"], false);
    assert_eq!(refreshed["total_rows"], 5);
    assert!(refreshed["series"].is_array(), "{refreshed}");
    let execution = refreshed["execution_id"].as_str().expect("an execution id");
    assert_ne!(execution, first_execution);
    assert!(refreshed["computed_at"].as_str() > first.computed_at.as_deref());

    // Every connection heard that the refresh ran, then gets the new result.
    let running = wait_running(&mut viewer, "chart").await;
    assert_eq!(running.execution_id.as_deref(), Some(execution));
    for client in [&mut viewer, &mut editor] {
        let heard = wait_data(client, "chart", |d| {
            d.execution_id.as_deref() == Some(execution)
        })
        .await;
        assert!(!heard.from_cache);
        assert_eq!(heard.total_rows, 5);
        // it says which binding it answers (it may reach a client before the edit does)
        assert_eq!(
            heard.binding,
            Some(json!({"query_id": query, "parameters": {}}))
        );
    }
    let (status, record) = api
        .get(
            &format!("/api/v1/executions/{execution}"),
            Some(&team.editor.token),
        )
        .await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(
        (&record["status"], &record["from_cache"]),
        (&json!("completed"), &json!(false))
    );
    viewer
        .wait_doc(|doc| binding_values(doc, "story") == json!({"total": 72}))
        .await;

    // Who may, and what may be refreshed.
    let (status, err) = api.post(&path, Some(&team.viewer.token), json!({})).await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (403, &json!("forbidden")),
        "{err}"
    );
    let (status, _) = api.post(&path, Some(&team.stranger.token), json!({})).await;
    assert!(status == 403 || status == 404, "{status}");
    let missing = format!("/api/v1/canvases/{}/blocks/nope/refresh", team.canvas);
    let (status, err) = api
        .post(&missing, Some(&team.editor.token), json!({}))
        .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (404, &json!("not_found")),
        "{err}"
    );
    let story = format!("/api/v1/canvases/{}/blocks/story/refresh", team.canvas);
    let (status, err) = api.post(&story, Some(&team.editor.token), json!({})).await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (400, &json!("not_bound")),
        "{err}"
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("only charts and tables")),
        "{err}"
    );
    // the fresh result replaced the cached one: later reads get it from the cache
    let (_, now) = block_data(api, &team.viewer, &team.canvas, "chart", "").await;
    assert_eq!(
        (&now["computed_at"], &now["from_cache"]),
        (&refreshed["computed_at"], &json!(true)),
        "{now}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_restored_binding_is_resolved_again() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    api.csv_source(&team.owner, &team.project, "sales", Some(SALES))
        .await;
    let query = saved_query(
        api,
        &team.editor,
        &team.project,
        "SELECT region, product, amount FROM sales WHERE amount >= {{min}} ORDER BY amount",
        json!({"min": {"type": "number", "default": 0}}),
        None,
    )
    .await;
    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    let mut viewer = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    editor
        .edit(|txn| {
            add_bound(
                txn,
                "chart",
                "chart",
                0,
                chart_content(&query, sales_config()),
            )
        })
        .await;
    editor.wait_acked().await;
    wait_data(&mut viewer, "chart", |d| {
        d.status == "completed" && d.total_rows == 5
    })
    .await;
    let versions = format!("/api/v1/canvases/{}/versions", team.canvas);
    let (status, named) = api
        .post(
            &versions,
            Some(&team.editor.token),
            json!({"changes": "every sale"}),
        )
        .await;
    assert_eq!(status, 201, "{named}");
    let version = named["version"].as_i64().expect("a version number");
    editor
        .edit(|txn| {
            content_of(txn, "chart").insert(
                txn,
                "data_source",
                json_to_any(&query_source(&query, json!({"min": 15}))),
            );
        })
        .await;
    editor.wait_acked().await;
    wait_data(&mut viewer, "chart", |d| {
        d.status == "completed" && d.total_rows == 2
    })
    .await;

    // The restore brings the old binding back: its data follows without any other edit.
    let (status, restored) = api
        .post(
            &format!("{versions}/{version}/restore"),
            Some(&team.editor.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{restored}");
    let back = wait_data(&mut viewer, "chart", |d| {
        d.status == "completed" && d.total_rows == 5
    })
    .await;
    assert_eq!(back.rows.len(), 5);
}
