//! `GET /metrics` end to end: the series move with real traffic (a WebSocket edit, a refused
//! update, presence, a REST call, a query execution and a cache hit). Each test server has a
//! registry of its own, so the figures are this server's alone; the checks still compare
//! values before and after, never timings.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed unwrap is a failed test"
)]

use canvas_tests::*;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One scrape: `name{labels}` to value, for every sample line.
#[derive(Debug)]
struct Scrape(HashMap<String, f64>, String);

impl Scrape {
    /// A sample's value (0 when absent: a labelled series appears once first bumped).
    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }
}

async fn scrape(server: &TestServer) -> Scrape {
    let resp = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .expect("scrape");
    assert_eq!(resp.status().as_u16(), 200);
    let kind = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let text = resp.text().await.unwrap();
    let mut samples = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        samples.insert(series.to_owned(), value);
    }
    Scrape(samples, text)
}

/// Scrapes until `series` has moved past `floor` (work done off the request's path, such as
/// the room's presence writer), within a deadline.
async fn scrape_until(server: &TestServer, series: &str, floor: f64) -> Scrape {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = scrape(server).await;
        if now.get(series) > floor {
            return now;
        }
        assert!(Instant::now() < deadline, "{series} stayed at {floor}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn live_collaboration_and_rest_traffic_move_the_series() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let before = scrape(&server).await;
    for series in [
        "canvas_ws_connections",
        "canvas_rooms_loaded",
        r#"canvas_updates_total{outcome="accepted"}"#,
        "canvas_durable_write_duration_seconds_count",
    ] {
        assert!(
            before.1.lines().any(|l| l.starts_with(series)),
            "{series} is exported from the start:\n{}",
            before.1
        );
    }

    let url = server.ws_url(&team.canvas, &team.editor.token);
    let mut editor = WsClient::join(&url).await;
    let mut viewer = WsClient::join(&server.ws_url(&team.canvas, &team.viewer.token)).await;
    editor
        .edit(|txn| add_block(txn, "b1", "chart", (0, 0, 4, 4)))
        .await;
    editor.wait_acked().await;
    viewer
        .wait_doc(|d| block_ids(d).contains(&"b1".to_owned()))
        .await;
    viewer
        .edit(|txn| add_block(txn, "intruder", "chart", (0, 0, 4, 4)))
        .await;
    viewer
        .wait_for(|_, i| matches!(i, Incoming::Error { .. }))
        .await;
    editor
        .send_awareness(4242, 1, r#"{"user":{"name":"Ed"},"cursor":{"x":1,"y":2}}"#)
        .await;
    let (status, _) = team
        .api
        .get(
            &format!("/api/v1/canvases/{}", team.canvas),
            Some(&team.owner.token),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = team.api.get("/api/v1/no-such-route/42", None).await;
    assert_eq!(status, 404);

    let puts = r#"canvas_presence_writes_total{op="put"}"#;
    let after = scrape_until(&server, puts, before.get(puts)).await;
    let moved = |series: &str| after.get(series) - before.get(series);

    assert_eq!(after.get("canvas_ws_connections"), 2.0);
    assert_eq!(after.get("canvas_rooms_loaded"), 1.0);
    assert_eq!(after.get(r#"canvas_room_loads_total{outcome="ok"}"#), 1.0);
    assert_eq!(after.get("canvas_room_load_duration_seconds_count"), 1.0);
    assert_eq!(
        after.get(r#"canvas_room_loads_total{outcome="failed"}"#),
        0.0
    );
    assert_eq!(moved(r#"canvas_updates_total{outcome="accepted"}"#), 1.0);
    assert_eq!(moved(r#"canvas_updates_total{outcome="read_only"}"#), 1.0);
    assert!(moved("canvas_update_size_bytes_count") >= 2.0);
    assert!(moved("canvas_update_size_bytes_sum") > 0.0);
    assert!(moved("canvas_durable_write_duration_seconds_count") >= 1.0);
    // The editor's update went to one other connection, the viewer.
    assert!(moved("canvas_relay_fanout_connections_count") >= 1.0);
    assert!(moved("canvas_relay_fanout_connections_sum") >= 1.0);
    assert!(
        moved("canvas_ws_received_frames_total") >= 5.0,
        "2 syncs, 2 updates, awareness"
    );
    assert!(moved("canvas_ws_received_bytes_total") > 0.0);
    assert!(moved("canvas_ws_sent_frames_total") >= 4.0);
    assert!(moved("canvas_ws_sent_bytes_total") > 0.0);
    assert_eq!(moved("canvas_slow_consumer_closes_total"), 0.0);
    assert_eq!(moved("canvas_ws_oversized_frames_sent_total"), 0.0);

    // HTTP by route template and status, the WebSocket upgrades too; never a raw path.
    let canvas_get =
        r#"canvas_http_requests_total{method="GET",route="/api/v1/canvases/{id}",status="200"}"#;
    assert_eq!(moved(canvas_get), 1.0);
    assert_eq!(
        moved(
            r#"canvas_http_request_duration_seconds_count{method="GET",route="/api/v1/canvases/{id}"}"#
        ),
        1.0
    );
    assert_eq!(
        moved(r#"canvas_http_requests_total{method="GET",route="/ws/{canvas_id}",status="101"}"#),
        2.0
    );
    assert_eq!(
        moved(r#"canvas_http_requests_total{method="GET",route="unmatched",status="404"}"#),
        1.0
    );
    for secret in [
        team.canvas.as_str(),
        team.owner.token.as_str(),
        "no-such-route",
    ] {
        assert!(!after.1.contains(secret), "{secret} in the metrics");
    }

    // Leaving shows in the gauge.
    drop(editor);
    drop(viewer);
    let deadline = Instant::now() + WAIT;
    while scrape(&server).await.get("canvas_ws_connections") != 0.0 {
        assert!(Instant::now() < deadline, "connections never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn query_executions_and_cache_hits_are_counted() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let (status, source) = api
        .post(
            &format!("/api/v1/projects/{}/data-sources", team.project),
            Some(&team.owner.token),
            json!({"name": "sales", "type": "file"}),
        )
        .await;
    assert_eq!(status, 201, "{source}");
    let source = source["id"].as_str().unwrap();
    let resp = api
        .client
        .put(format!("{}/api/v1/data-sources/{source}/file", api.base))
        .bearer_auth(&team.owner.token)
        .header("content-type", "text/csv")
        .body("region,amount\nnorth,10\nsouth,20\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (status, query) = api
        .post(
            &format!("/api/v1/projects/{}/queries", team.project),
            Some(&team.editor.token),
            json!({"name": "q", "query_type": "sql", "parameters": {},
                   "query_text": "SELECT sum(amount) AS total FROM sales"}),
        )
        .await;
    assert_eq!(status, 201, "{query}");
    let query = query["id"].as_str().unwrap().to_owned();

    let before = scrape(&server).await;
    let first = execute(&team, &query).await;
    assert_eq!(first["from_cache"], false, "{first}");
    let second = execute(&team, &query).await;
    assert_eq!(second["from_cache"], true, "{second}");
    let after = scrape(&server).await;
    let moved = |series: &str| after.get(series) - before.get(series);

    assert_eq!(
        moved(r#"canvas_query_executions_total{status="completed"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"canvas_query_executions_total{status="failed"}"#),
        0.0
    );
    assert_eq!(moved("canvas_query_execution_duration_seconds_count"), 1.0);
    assert_eq!(moved("canvas_query_cache_hits_total"), 1.0);
    assert_eq!(
        moved(
            r#"canvas_http_requests_total{method="POST",route="/api/v1/queries/{id}/execute",status="200"}"#
        ) + moved(
            r#"canvas_http_requests_total{method="POST",route="/api/v1/queries/{id}/execute",status="202"}"#
        ),
        2.0
    );
}

/// Executes a query and polls the execution (bounded) until it has ended.
async fn execute(team: &Team, query: &str) -> serde_json::Value {
    let api = &team.api;
    let (status, answer) = api
        .post(
            &format!("/api/v1/queries/{query}/execute"),
            Some(&team.editor.token),
            json!({}),
        )
        .await;
    assert!(status == 200 || status == 202, "{status} {answer}");
    let id = answer["execution"]["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, execution) = api
            .get(
                &format!("/api/v1/executions/{id}"),
                Some(&team.editor.token),
            )
            .await;
        assert_eq!(status, 200, "{execution}");
        if ["completed", "failed", "cancelled"]
            .contains(&execution["status"].as_str().unwrap_or(""))
        {
            return execution;
        }
        assert!(Instant::now() < deadline, "execution {id} never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
