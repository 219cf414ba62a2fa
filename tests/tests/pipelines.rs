//! Data pipelines end to end through REST: managing them (roles, bad input), a scheduled run
//! of an `api` source that changes its data (a local HTTP server the test changes), the
//! refresh announced to subscribers, queries that see the new rows, and two nodes on the
//! services running each due run once.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use canvas_tests::*;
use chrono::{Datelike, Timelike};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use uuid::Uuid;

/// What the fixture serves at `/{name}` and how often it was asked.
#[derive(Default)]
struct Feeds {
    bodies: Mutex<HashMap<String, Value>>,
    hits: Mutex<HashMap<String, usize>>,
}

impl Feeds {
    fn set(&self, name: &str, body: Value) {
        self.bodies.lock().expect("feeds").insert(name.into(), body);
    }

    fn hits(&self, name: &str) -> usize {
        self.hits
            .lock()
            .expect("hits")
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

async fn feed(State(feeds): State<Arc<Feeds>>, Path(name): Path<String>) -> axum::Json<Value> {
    *feeds
        .hits
        .lock()
        .expect("hits")
        .entry(name.clone())
        .or_default() += 1;
    let body = feeds
        .bodies
        .lock()
        .expect("feeds")
        .get(&name)
        .cloned()
        .unwrap_or(json!([]));
    axum::Json(body)
}

/// A local JSON server (dropped with the test's runtime); its base URL.
async fn fixture(feeds: Arc<Feeds>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().route("/{name}", get(feed)).with_state(feeds);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// Polls `check` every 100 ms until it gives a value, for at most `limit`.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until a subscriber has heard every one of `sources` (in any order: runs due at the
/// same time end in any order, and a node may hear its own refresh twice, directly and back
/// from the control channel).
async fn hears_all(rx: &mut broadcast::Receiver<Uuid>, sources: &[Uuid]) {
    let mut missing: std::collections::HashSet<Uuid> = sources.iter().copied().collect();
    tokio::time::timeout(WAIT, async {
        while !missing.is_empty() {
            match rx.recv().await {
                Ok(id) => {
                    missing.remove(&id);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("refreshes closed"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("refreshes not heard in time: {missing:?}"));
}

/// Waits for `source` among the refreshed ids a subscriber hears.
async fn hears(rx: &mut broadcast::Receiver<Uuid>, source: Uuid) {
    hears_all(rx, &[source]).await;
}

async fn api_source(team: &Team, name: &str, url: &str) -> Value {
    let (status, source) = team
        .api
        .post(
            &format!("/api/v1/projects/{}/data-sources", team.project),
            Some(&team.owner.token),
            json!({"name": name, "type": "api", "connection_config": {"url": url}}),
        )
        .await;
    assert_eq!(status, 201, "{source}");
    source
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// Runs a saved query and waits for it to end; the execution.
async fn execute(team: &Team, query: &str) -> Value {
    let api = &team.api;
    let (status, answer) = api
        .post(
            &format!("/api/v1/queries/{query}/execute"),
            Some(&team.viewer.token),
            json!({}),
        )
        .await;
    assert!(status == 200 || status == 202, "{status} {answer}");
    let id = answer["execution"]["id"].as_str().expect("id").to_owned();
    wait_for("the execution", WAIT, || async {
        let (_, e) = api
            .get(
                &format!("/api/v1/executions/{id}"),
                Some(&team.viewer.token),
            )
            .await;
        (e["status"] != "pending" && e["status"] != "running").then_some(e)
    })
    .await
}

async fn rows(team: &Team, execution: &Value) -> Value {
    let id = execution["id"].as_str().expect("id");
    let (status, page) = team
        .api
        .get(
            &format!("/api/v1/executions/{id}/result"),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["rows"].clone()
}

#[tokio::test]
async fn pipelines_are_managed_by_admins_read_by_viewers_and_bad_input_changes_nothing() {
    let server = TestServer::start_with(|c| c.allow_private_targets = true).await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let feeds = Arc::new(Feeds::default());
    let base = fixture(feeds.clone()).await;
    let source = api_source(&team, "sales", &format!("{base}/sales")).await;
    let source_id = source["id"].as_str().expect("id");
    let list = format!("/api/v1/projects/{}/pipelines", team.project);
    let owner = Some(team.owner.token.as_str());
    let good = json!({"name": "hourly", "source_id": source_id, "schedule_cron": "0 * * * *"});

    // Who may create.
    assert_eq!(
        api.post(&list, Some(&team.editor.token), good.clone())
            .await
            .0,
        403
    );
    assert_eq!(
        api.post(&list, Some(&team.stranger.token), good.clone())
            .await
            .0,
        404
    );
    assert_eq!(api.post(&list, None, good.clone()).await.0, 401);

    // Bad input: a clear 400 or 404, nothing stored.
    let other_project = api.create_project(&team.owner, "Other").await;
    let (status, elsewhere) = api
        .post(
            &format!("/api/v1/projects/{other_project}/data-sources"),
            owner,
            json!({"name": "elsewhere", "type": "api",
                   "connection_config": {"url": format!("{base}/x")}}),
        )
        .await;
    assert_eq!(status, 201, "{elsewhere}");
    let with = |patch: Value| {
        let mut body = good.clone();
        for (k, v) in patch.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };
    for (body, expected, expected_code) in [
        (
            with(json!({"schedule_cron": "every hour"})),
            400,
            "invalid_schedule",
        ),
        (
            with(json!({"schedule_cron": "61 * * * *"})),
            400,
            "invalid_schedule",
        ),
        (
            with(json!({"schedule_cron": "*/10 * * * * *"})),
            400,
            "invalid_schedule",
        ),
        (
            with(json!({"schedule_cron": "0 0 1 1 * 2020"})),
            400,
            "invalid_schedule",
        ),
        (with(json!({"name": "  "})), 400, "invalid_name"),
        (
            with(json!({"pipeline_config": [1, 2]})),
            400,
            "invalid_pipeline_config",
        ),
        (with(json!({"source_id": "not-a-uuid"})), 400, ""),
        (with(json!({"surprise": true})), 400, ""),
        (with(json!({"is_active": "yes"})), 400, ""),
        (
            with(json!({"source_id": Uuid::new_v4().to_string()})),
            404,
            "not_found",
        ),
        (
            with(json!({"source_id": elsewhere["id"].clone()})),
            404,
            "not_found",
        ),
    ] {
        let (status, answer) = api.post(&list, owner, body.clone()).await;
        assert_eq!(status, expected, "{body} -> {answer}");
        if !expected_code.is_empty() {
            assert_eq!(code(&answer), expected_code, "{body} -> {answer}");
        }
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    let (_, too_often) = api
        .post(
            &list,
            owner,
            with(json!({"schedule_cron": "*/10 * * * * *"})),
        )
        .await;
    assert!(
        too_often["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("60 s")),
        "{too_often}"
    );
    let (status, listed) = api.get(&list, Some(&team.viewer.token)).await;
    assert_eq!((status, &listed["pipelines"]), (200, &json!([])));

    // Created by an admin, read by a viewer.
    let (status, created) = api
        .post(
            &list,
            Some(&team.admin.token),
            with(json!({"pipeline_config": {"note": "top of the hour"}})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["is_active"], true);
    assert_eq!(created["run_count"], 0);
    assert_eq!(created["last_run_at"], Value::Null);
    assert!(created["next_run_at"].is_string(), "{created}");
    assert_eq!(
        created["pipeline_config"],
        json!({"note": "top of the hour"})
    );
    let id = created["id"].as_str().expect("id");
    let one = format!("/api/v1/pipelines/{id}");
    let (status, seen) = api.get(&one, Some(&team.viewer.token)).await;
    assert_eq!((status, &seen["name"]), (200, &json!("hourly")));
    assert_eq!(api.get(&one, Some(&team.stranger.token)).await.0, 404);
    let (_, listed) = api.get(&list, Some(&team.viewer.token)).await;
    assert_eq!(listed["pipelines"].as_array().map(Vec::len), Some(1));

    // Changing: admins only; a bad schedule changes nothing; off clears the next run.
    assert_eq!(
        api.patch(&one, Some(&team.viewer.token), json!({"is_active": false}))
            .await
            .0,
        403
    );
    let (status, bad) = api
        .patch(
            &one,
            owner,
            json!({"schedule_cron": "* * *", "name": "renamed"}),
        )
        .await;
    assert_eq!((status, code(&bad)), (400, "invalid_schedule"), "{bad}");
    assert_eq!(api.get(&one, owner).await.1, seen, "unchanged");
    let (status, off) = api.patch(&one, owner, json!({"is_active": false})).await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(
        (&off["is_active"], &off["next_run_at"]),
        (&json!(false), &Value::Null)
    );
    let (status, on) = api
        .patch(
            &one,
            owner,
            json!({"is_active": true, "schedule_cron": "30 2 * * *", "name": "nightly"}),
        )
        .await;
    assert_eq!(status, 200, "{on}");
    assert_eq!(on["schedule_cron"], "30 2 * * *");
    assert!(
        on["next_run_at"]
            .as_str()
            .is_some_and(|t| t.contains("T02:30:00")),
        "{on}"
    );

    // Running by hand and deleting: admins only.
    assert_eq!(
        api.post(&format!("{one}/run"), Some(&team.viewer.token), json!({}))
            .await
            .0,
        403
    );
    assert_eq!(api.delete(&one, Some(&team.editor.token)).await.0, 403);
    // The source is in use by the pipeline.
    assert_eq!(
        api.delete(&format!("/api/v1/data-sources/{source_id}"), owner)
            .await
            .0,
        409
    );
    assert_eq!(api.delete(&one, Some(&team.admin.token)).await.0, 204);
    assert_eq!(api.get(&one, owner).await.0, 404);
    assert_eq!(api.delete(&one, owner).await.0, 404);
    assert_eq!(api.get("/api/v1/pipelines/not-a-uuid", owner).await.0, 400);

    // Audited, in each actor's organization.
    for (who, actions) in [
        (&team.owner, &["pipeline.update"][..]),
        (&team.admin, &["pipeline.create", "pipeline.delete"][..]),
    ] {
        let (status, audit) = api
            .get(
                &format!("/api/v1/audit?resource_type=data_pipeline&resource_id={id}"),
                Some(&who.token),
            )
            .await;
        assert_eq!(status, 200, "{audit}");
        let text = audit.to_string();
        for action in actions {
            assert!(text.contains(action), "{action} in {audit}");
        }
    }
    assert_eq!(feeds.hits("sales"), 0, "nothing ran");
}

#[tokio::test]
async fn a_scheduled_run_brings_new_rows_that_queries_see_and_announces_them() {
    let server = TestServer::start_with(|c| {
        c.allow_private_targets = true;
        c.pipeline_min_interval_secs = 1;
        c.pipeline_tick_ms = 200;
    })
    .await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let owner = Some(team.owner.token.as_str());
    let feeds = Arc::new(Feeds::default());
    feeds.set("sales", json!([{"region": "north", "amount": 10}]));
    let base = fixture(feeds.clone()).await;
    let source = api_source(&team, "sales", &format!("{base}/sales")).await;
    let source_id = source["id"].as_str().expect("id").to_owned();
    let (status, synced) = api
        .post(
            &format!("/api/v1/data-sources/{source_id}/sync"),
            owner,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, &synced["status"]),
        (200, &json!("active")),
        "{synced}"
    );
    let version_before = synced["metadata"]["data_version"].clone();
    let (status, query) = api
        .post(
            &format!("/api/v1/projects/{}/queries", team.project),
            owner,
            json!({"name": "totals", "query_text":
                   "SELECT count(*) AS n, sum(amount) AS total FROM sales"}),
        )
        .await;
    assert_eq!(status, 201, "{query}");
    let query = query["id"].as_str().expect("id").to_owned();
    let first = execute(&team, &query).await;
    assert_eq!(rows(&team, &first).await, json!([[1, 10]]));
    let cached = execute(&team, &query).await;
    assert_eq!(cached["from_cache"], true, "{cached}");

    // New data at the source; a pipeline every second picks it up.
    feeds.set(
        "sales",
        json!([{"region": "north", "amount": 10}, {"region": "south", "amount": 20}]),
    );
    let mut refreshes = server.state.data.refreshes.subscribe();
    let (status, pipeline) = api
        .post(
            &format!("/api/v1/projects/{}/pipelines", team.project),
            owner,
            json!({"name": "every second", "source_id": source_id,
                   "schedule_cron": "* * * * * *"}),
        )
        .await;
    assert_eq!(status, 201, "{pipeline}");
    let id = pipeline["id"].as_str().expect("id").to_owned();
    hears(&mut refreshes, source_id.parse().expect("uuid")).await;
    let ran = wait_for("a scheduled run", WAIT, || async {
        let (_, p) = api.get(&format!("/api/v1/pipelines/{id}"), owner).await;
        (p["last_status"] == "ok").then_some(p)
    })
    .await;
    assert!(ran["run_count"].as_i64().is_some_and(|n| n >= 1), "{ran}");
    assert!(ran["last_run_at"].is_string(), "{ran}");
    // Stop the schedule before looking, so the numbers hold still.
    let (status, _) = api
        .patch(
            &format!("/api/v1/pipelines/{id}"),
            owner,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, after) = api
        .get(&format!("/api/v1/data-sources/{source_id}"), owner)
        .await;
    assert_ne!(after["metadata"]["data_version"], version_before, "{after}");
    let fresh = execute(&team, &query).await;
    assert_eq!(fresh["from_cache"], false, "{fresh}");
    assert_eq!(rows(&team, &fresh).await, json!([[2, 30]]));

    // Run now, by hand, while inactive: counted, announced; the schedule stays off.
    feeds.set("sales", json!([{"region": "east", "amount": 7}]));
    let hits = feeds.hits("sales");
    let (status, manual) = api
        .post(&format!("/api/v1/pipelines/{id}/run"), owner, json!({}))
        .await;
    assert_eq!(status, 200, "{manual}");
    assert_eq!(manual["outcome"]["status"], "ok", "{manual}");
    assert_eq!(manual["pipeline"]["is_active"], false);
    assert_eq!(manual["pipeline"]["next_run_at"], Value::Null);
    assert_eq!(manual["data_source"]["status"], "active");
    assert_eq!(feeds.hits("sales"), hits + 1);
    hears(&mut refreshes, source_id.parse().expect("uuid")).await;
    let latest = execute(&team, &query).await;
    assert_eq!(rows(&team, &latest).await, json!([[1, 7]]));

    // A failing source: the run says why, the old data stays.
    let broken = api_source(&team, "broken", "http://127.0.0.1:9/nothing").await;
    let (status, failing) = api
        .post(
            &format!("/api/v1/projects/{}/pipelines", team.project),
            owner,
            json!({"name": "broken", "source_id": broken["id"], "schedule_cron": "0 0 * * *"}),
        )
        .await;
    assert_eq!(status, 201, "{failing}");
    let (status, failed) = api
        .post(
            &format!(
                "/api/v1/pipelines/{}/run",
                failing["id"].as_str().expect("id")
            ),
            owner,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["outcome"]["status"], "error", "{failed}");
    assert_eq!(failed["pipeline"]["last_status"], "error");
    assert!(failed["pipeline"]["last_error"].is_string(), "{failed}");
}

#[tokio::test]
async fn on_the_services_two_nodes_run_each_due_run_once_and_both_hear_it() {
    let services = ServiceSet::fresh().await;
    let configure = |c: &mut canvas_server::Config| {
        services.configure(c);
        c.allow_private_targets = true;
        c.pipeline_min_interval_secs = 1;
        c.pipeline_tick_ms = 100;
    };
    // One data directory: the nodes share the object store folder and the secret key.
    let a = TestServer::start_with(configure).await;
    let b = TestServer::start_in(&a.data_dir, configure).await;
    let team = Team::new(&a).await;
    let owner = Some(team.owner.token.as_str());
    let feeds = Arc::new(Feeds::default());
    let base = fixture(feeds.clone()).await;
    let names = ["east", "west", "north"];
    let mut sources = Vec::new();
    for name in names {
        feeds.set(name, json!([{"region": name, "amount": 1}]));
        let source = api_source(&team, name, &format!("{base}/{name}")).await;
        sources.push(
            source["id"]
                .as_str()
                .expect("id")
                .parse::<Uuid>()
                .expect("uuid"),
        );
    }
    let mut on_a = a.state.data.refreshes.subscribe();
    let mut on_b = b.state.data.refreshes.subscribe();

    // Each pipeline is due once, a few seconds from now (the next time is a year later), and
    // both nodes look every 100 ms.
    let due = chrono::Utc::now() + chrono::Duration::seconds(4);
    let cron = format!(
        "{} {} {} {} {} *",
        due.second(),
        due.minute(),
        due.hour(),
        due.day(),
        due.month()
    );
    let on_b_api = b.api();
    let mut pipelines = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        // Created on either node.
        let api = if i % 2 == 0 { &team.api } else { &on_b_api };
        let (status, p) = api
            .post(
                &format!("/api/v1/projects/{}/pipelines", team.project),
                owner,
                json!({"name": names[i], "source_id": source, "schedule_cron": cron}),
            )
            .await;
        assert_eq!(status, 201, "{p}");
        pipelines.push(p["id"].as_str().expect("id").to_owned());
    }
    hears_all(&mut on_a, &sources).await;
    hears_all(&mut on_b, &sources).await;
    for (i, id) in pipelines.iter().enumerate() {
        let done = wait_for("the run's outcome", WAIT, || async {
            let (_, p) = team
                .api
                .get(&format!("/api/v1/pipelines/{id}"), owner)
                .await;
            p["last_status"].is_string().then_some(p)
        })
        .await;
        assert_eq!(done["last_status"], "ok", "{done}");
        assert_eq!(done["run_count"], 1, "claimed once: {done}");
        let next = done["next_run_at"].as_str().expect("a next run");
        assert!(
            next.starts_with(&(due.year() + 1).to_string()),
            "moved on a year: {done}"
        );
        assert_eq!(feeds.hits(names[i]), 1, "{} fetched once", names[i]);
    }
}

/// A scheduled run reaches the people watching: a chart bound to a query over the `api`
/// source gets message 102 with the new rows once a pipeline run brings them, with nobody
/// touching the canvas.
#[tokio::test]
async fn a_pipeline_run_refreshes_a_bound_chart_live() {
    use canvas_engine::yrs::{Any, Map, MapRef, WriteTxn};
    let server = TestServer::start_with(|c| {
        c.allow_private_targets = true;
        c.pipeline_min_interval_secs = 1;
        c.pipeline_tick_ms = 200;
    })
    .await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let owner = Some(team.owner.token.as_str());
    let feeds = Arc::new(Feeds::default());
    feeds.set("orders", json!([{"region": "north", "amount": 10}]));
    let base = fixture(feeds.clone()).await;
    let source = api_source(&team, "orders", &format!("{base}/orders")).await;
    let source_id = source["id"].as_str().expect("id").to_owned();
    let (status, _) = api
        .post(
            &format!("/api/v1/data-sources/{source_id}/sync"),
            owner,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, query) = api
        .post(
            &format!("/api/v1/projects/{}/queries", team.project),
            owner,
            json!({"name": "by region", "query_text":
                   "SELECT region, sum(amount) AS amount FROM orders GROUP BY region ORDER BY region"}),
        )
        .await;
    assert_eq!(status, 201, "{query}");
    let query = query["id"].as_str().expect("id").to_owned();

    let mut editor = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    let mut viewer = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    editor
        .edit(|txn| {
            add_block(txn, "chart", "chart", (0, 0, 6, 4));
            let blocks = txn.get_or_insert_map("blocks");
            let block: MapRef = blocks
                .get(txn, "chart")
                .and_then(|v| v.cast().ok())
                .expect("the block");
            let content: MapRef = block
                .get(txn, "content")
                .and_then(|v| v.cast().ok())
                .expect("its content");
            let binding = json!({"type": "query", "query_id": query, "parameters": {}});
            let config = json!({"x_axis": "region", "y_axis": "amount"});
            content.insert(
                txn,
                "data_source",
                canvas_engine::bindings::json_to_any(&binding),
            );
            content.insert(txn, "config", canvas_engine::bindings::json_to_any(&config));
            content.insert(txn, "chart_type", Any::from("bar"));
        })
        .await;
    editor.wait_acked().await;
    let rows_seen = |m: &Incoming, n: u64| {
        matches!(m, Incoming::BlockData(d)
            if d.block_id == "chart" && d.status == "completed" && d.total_rows == n)
    };
    if !viewer
        .block_data
        .get("chart")
        .is_some_and(|d| d.status == "completed" && d.total_rows == 1)
    {
        viewer.wait_for(|_, m| rows_seen(m, 1)).await;
    }

    // New data at the source, then a pipeline due every second: the chart follows.
    feeds.set(
        "orders",
        json!([{"region": "north", "amount": 10}, {"region": "south", "amount": 32}]),
    );
    let (status, pipeline) = api
        .post(
            &format!("/api/v1/projects/{}/pipelines", team.project),
            owner,
            json!({"name": "every second", "source_id": source_id, "schedule_cron": "* * * * * *"}),
        )
        .await;
    assert_eq!(status, 201, "{pipeline}");
    let Incoming::BlockData(data) = viewer.wait_for(|_, m| rows_seen(m, 2)).await else {
        unreachable!("wait_for returns what matched")
    };
    assert_eq!(json!(data.rows), json!([["north", 10], ["south", 32]]));
    assert!(
        !data.from_cache,
        "the new data was computed, not taken from the cache"
    );
}
