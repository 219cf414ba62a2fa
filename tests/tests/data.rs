//! Data sources, saved queries and executions end to end through REST: a real CSV file,
//! a real PostgreSQL database, a real Redis stream; caching, parameters, bad input, roles.
//! (The engine's own suite, in `analytics/tests`, covers Parquet, NDJSON, MariaDB, api
//! sources and the S3 bucket.)

use canvas_tests::*;
use serde_json::{Value, json};
use std::time::Duration;

const SALES: &str = "region,product,amount\nnorth,widget,10\nsouth,widget,20\nnorth,gadget,5\n\
                     east,widget,7\nsouth,gadget,30\n";

/// Puts a raw body with a content type.
async fn put_raw(
    api: &Api,
    path: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let resp = api
        .client
        .put(format!("{}{path}", api.base))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    canvas_tests::contract::check("PUT", path, status);
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A file source named `name` with `csv` uploaded, by the owner; its JSON.
async fn csv_source(team: &Team, name: &str, csv: &str) -> Value {
    let api = &team.api;
    let (status, source) = api
        .post(
            &format!("/api/v1/projects/{}/data-sources", team.project),
            Some(&team.owner.token),
            json!({"name": name, "type": "file"}),
        )
        .await;
    assert_eq!(status, 201, "{source}");
    let id = source["id"].as_str().expect("an id");
    let (status, uploaded) = put_raw(
        api,
        &format!("/api/v1/data-sources/{id}/file"),
        &team.owner.token,
        "text/csv",
        csv.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{uploaded}");
    uploaded
}

/// A saved query by the editor.
async fn saved_query(team: &Team, text: &str, parameters: Value, source: Option<&str>) -> String {
    let mut body =
        json!({"name": "q", "query_text": text, "query_type": "sql", "parameters": parameters});
    if let Some(source) = source {
        body["data_source_id"] = json!(source);
    }
    let (status, query) = team
        .api
        .post(
            &format!("/api/v1/projects/{}/queries", team.project),
            Some(&team.editor.token),
            body,
        )
        .await;
    assert_eq!(status, 201, "{query}");
    query["id"].as_str().expect("an id").to_owned()
}

/// Executes a query as `user` and waits (by polling the execution, bounded) until it has
/// ended; the final execution JSON and the execute answer.
async fn run(team: &Team, user: &TestUser, query: &str, body: Value) -> (Value, Value) {
    let api = &team.api;
    let (status, answer) = api
        .post(
            &format!("/api/v1/queries/{query}/execute"),
            Some(&user.token),
            body,
        )
        .await;
    assert!(status == 200 || status == 202, "{status} {answer}");
    let id = answer["execution"]["id"]
        .as_str()
        .expect("an execution")
        .to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, execution) = api
            .get(&format!("/api/v1/executions/{id}"), Some(&user.token))
            .await;
        assert_eq!(status, 200, "{execution}");
        if ["completed", "failed", "cancelled"]
            .contains(&execution["status"].as_str().unwrap_or(""))
        {
            return (execution, answer);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "execution {id} never ended: {execution}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn result_rows(team: &Team, user: &TestUser, execution: &Value, query: &str) -> Value {
    let id = execution["id"].as_str().expect("an id");
    let (status, page) = team
        .api
        .get(
            &format!("/api/v1/executions/{id}/result{query}"),
            Some(&user.token),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page
}

#[tokio::test]
async fn a_csv_is_uploaded_queried_with_a_parameter_and_cached() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let source = csv_source(&team, "sales", SALES).await;
    let columns: Vec<&str> = source["schema_info"]["tables"][0]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(columns, ["region", "product", "amount"], "{source}");
    assert_eq!(source["status"], "active");
    assert!(source["last_sync_at"].is_string());

    // Viewers see the source; the query is an editor's.
    let (status, listed) = api
        .get(
            &format!("/api/v1/projects/{}/data-sources", team.project),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["data_sources"][0]["name"], "sales");
    let query = saved_query(
        &team,
        "SELECT region, sum(amount) AS total FROM sales WHERE amount > {{min}} \
         GROUP BY region ORDER BY region",
        json!({"min": {"type": "number", "default": 0}}),
        None,
    )
    .await;

    let (first, answer) = run(
        &team,
        &team.viewer,
        &query,
        json!({"parameters": {"min": 6}}),
    )
    .await;
    assert_eq!(first["status"], "completed", "{first}");
    assert_eq!(first["from_cache"], false);
    assert_eq!(first["rows_returned"], 3);
    let page = result_rows(&team, &team.viewer, &first, "").await;
    assert_eq!(
        page["rows"],
        json!([["east", 7], ["north", 10], ["south", 50]]),
        "{page}"
    );
    assert_eq!(page["total_rows"], 3);
    assert_eq!(page["columns"][1]["name"], "total");
    if answer["result"].is_object() {
        assert_eq!(
            answer["result"]["rows"], page["rows"],
            "the answer carries the rows"
        );
    }

    // The same query and values again: from the cache, computed when the first one was.
    let (again, answer) = run(
        &team,
        &team.viewer,
        &query,
        json!({"parameters": {"min": 6}}),
    )
    .await;
    assert_eq!(again["from_cache"], true, "{again}");
    assert_eq!(again["computed_at"], first["computed_at"]);
    assert_ne!(again["id"], first["id"]);
    assert_eq!(answer["result"]["rows"], page["rows"]);
    // Another value, and a fresh run, are computed.
    let (other, _) = run(
        &team,
        &team.viewer,
        &query,
        json!({"parameters": {"min": 0}}),
    )
    .await;
    assert_eq!(other["from_cache"], false);
    let (fresh, _) = run(
        &team,
        &team.viewer,
        &query,
        json!({"parameters": {"min": 6}, "fresh": true}),
    )
    .await;
    assert_eq!(fresh["from_cache"], false);
    // Pages.
    let all = result_rows(&team, &team.viewer, &other, "?offset=1&limit=1").await;
    assert_eq!(all["rows"], json!([["north", 15]]), "{all}");
    assert_eq!(
        (all["total_rows"].as_u64(), all["offset"].as_u64()),
        (Some(3), Some(1))
    );

    // A new file is new data: the cache does not answer with the old result.
    let uploaded = put_raw(
        api,
        &format!(
            "/api/v1/data-sources/{}/file",
            source["id"].as_str().unwrap()
        ),
        &team.owner.token,
        "text/csv",
        b"region,product,amount\nwest,widget,100\n".to_vec(),
    )
    .await;
    assert_eq!(uploaded.0, 200, "{}", uploaded.1);
    let (after, _) = run(
        &team,
        &team.viewer,
        &query,
        json!({"parameters": {"min": 6}}),
    )
    .await;
    assert_eq!(after["from_cache"], false, "{after}");
    let page = result_rows(&team, &team.viewer, &after, "").await;
    assert_eq!(page["rows"], json!([["west", 100]]));

    // A hostile value is a string, never SQL: nothing matches, nothing is dropped.
    let by_region = saved_query(
        &team,
        "SELECT count(*) AS n FROM sales WHERE region = {{region}}",
        json!({"region": {"type": "string", "default": "west"}}),
        None,
    )
    .await;
    let (hostile, _) = run(
        &team,
        &team.viewer,
        &by_region,
        json!({"parameters": {"region": "'; DROP TABLE sales; --"}}),
    )
    .await;
    assert_eq!(hostile["status"], "completed", "{hostile}");
    let page = result_rows(&team, &team.viewer, &hostile, "").await;
    assert_eq!(page["rows"], json!([[0]]));
    let (default, _) = run(&team, &team.viewer, &by_region, json!({})).await;
    assert_eq!(
        result_rows(&team, &team.viewer, &default, "").await["rows"],
        json!([[1]])
    );
}

#[tokio::test]
async fn bad_input_is_a_clear_error_and_changes_nothing() {
    let server = TestServer::start_with(|c| c.max_upload_bytes = 4096).await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let source = csv_source(&team, "sales", SALES).await;
    let id = source["id"].as_str().expect("an id");
    let queries = format!("/api/v1/projects/{}/queries", team.project);
    let create = |text: &str, kind: &str, parameters: Value| json!({"name": "bad", "query_text": text, "query_type": kind, "parameters": parameters});
    let expect = |answer: (u16, Value), status: u16, code: &str| {
        assert_eq!(answer.0, status, "{}", answer.1);
        assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
        answer.1["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    // Saving: undeclared markers, bad declarations, unsupported types.
    let token = Some(team.editor.token.as_str());
    expect(
        api.post(&queries, token, create("SELECT {{x}}", "sql", json!({})))
            .await,
        400,
        "invalid_parameter",
    );
    expect(
        api.post(
            &queries,
            token,
            create("SELECT 1", "sql", json!({"x": {"type": "colour"}})),
        )
        .await,
        400,
        "invalid_parameter",
    );
    expect(
        api.post(&queries, token, create("print(1)", "python", json!({})))
            .await,
        400,
        "unsupported_query_type",
    );
    expect(
        api.post(
            &queries,
            token,
            create("show me sales", "natural_language", json!({})),
        )
        .await,
        400,
        "unsupported_query_type",
    );

    // Running: syntax (with its position), unknown names, statements that are not reads.
    let syntax = saved_query(&team, "SELECT region FROM sales WHERE", json!({}), None).await;
    let message = expect(
        api.post(
            &format!("/api/v1/queries/{syntax}/execute"),
            Some(&team.viewer.token),
            json!({}),
        )
        .await,
        400,
        "syntax_error",
    );
    assert!(
        message.contains("line") && message.contains("column"),
        "{message}"
    );
    let unknown = saved_query(&team, "SELECT nope FROM sales", json!({}), None).await;
    expect(
        api.post(
            &format!("/api/v1/queries/{unknown}/execute"),
            Some(&team.viewer.token),
            json!({}),
        )
        .await,
        400,
        "invalid_query",
    );
    let missing = saved_query(&team, "SELECT * FROM nowhere", json!({}), None).await;
    expect(
        api.post(
            &format!("/api/v1/queries/{missing}/execute"),
            Some(&team.viewer.token),
            json!({}),
        )
        .await,
        400,
        "invalid_query",
    );
    let ddl = saved_query(&team, "DROP TABLE sales", json!({}), None).await;
    expect(
        api.post(
            &format!("/api/v1/queries/{ddl}/execute"),
            Some(&team.viewer.token),
            json!({}),
        )
        .await,
        400,
        "statement_not_allowed",
    );
    let typed = saved_query(
        &team,
        "SELECT {{n}} + 1 AS m",
        json!({"n": {"type": "number"}}),
        None,
    )
    .await;
    expect(
        api.post(
            &format!("/api/v1/queries/{typed}/execute"),
            Some(&team.viewer.token),
            json!({"parameters": {"n": "one"}}),
        )
        .await,
        400,
        "invalid_parameter",
    );

    // Uploads: a malformed row is named, an oversized body is 413; the old file stays.
    let file = format!("/api/v1/data-sources/{id}/file");
    let message = expect(
        put_raw(
            api,
            &file,
            &team.owner.token,
            "text/csv",
            b"region,product,amount\nnorth,widget,10\nsouth,widget\n".to_vec(),
        )
        .await,
        400,
        "malformed_data",
    );
    assert!(message.contains("line 3"), "{message}");
    expect(
        put_raw(
            api,
            &file,
            &team.owner.token,
            "text/csv",
            vec![b'x'; 10_000],
        )
        .await,
        413,
        "payload_too_large",
    );
    expect(
        put_raw(api, &file, &team.owner.token, "image/png", b"png".to_vec()).await,
        400,
        "unsupported_media_type",
    );
    let count = saved_query(&team, "SELECT count(*) AS n FROM sales", json!({}), None).await;
    let (done, _) = run(&team, &team.viewer, &count, json!({})).await;
    assert_eq!(
        result_rows(&team, &team.viewer, &done, "").await["rows"],
        json!([[5]])
    );

    // Bodies that are not what they should be.
    expect(
        api.post(
            &format!("/api/v1/projects/{}/data-sources", team.project),
            Some(&team.owner.token),
            json!({"name": "x", "type": "ftp"}),
        )
        .await,
        400,
        "invalid_config",
    );
    expect(
        api.post(
            &format!("/api/v1/projects/{}/data-sources", team.project),
            Some(&team.owner.token),
            json!({"name": "SALES", "type": "file"}),
        )
        .await,
        409,
        "conflict",
    );
    expect(
        api.post(
            &format!("/api/v1/projects/{}/data-sources", team.project),
            Some(&team.owner.token),
            json!({"name": "y", "type": "file", "connection_config": {"delimiter": 5}}),
        )
        .await,
        400,
        "invalid_config",
    );
    expect(
        api.get(
            &format!(
                "/api/v1/executions/{}/result?limit=0",
                done["id"].as_str().unwrap()
            ),
            Some(&team.viewer.token),
        )
        .await,
        400,
        "invalid_page",
    );
}

#[tokio::test]
async fn roles_decide_and_other_projects_are_invisible() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let sources = format!("/api/v1/projects/{}/data-sources", team.project);
    let body = json!({"name": "sales", "type": "file"});
    assert_eq!(
        api.post(&sources, Some(&team.viewer.token), body.clone())
            .await
            .0,
        403
    );
    assert_eq!(
        api.post(&sources, Some(&team.editor.token), body.clone())
            .await
            .0,
        403
    );
    assert_eq!(
        api.post(&sources, Some(&team.stranger.token), body.clone())
            .await
            .0,
        404
    );
    let source = csv_source(&team, "sales", SALES).await;
    let id = source["id"].as_str().unwrap();
    let query = saved_query(&team, "SELECT count(*) FROM sales", json!({}), None).await;
    let queries = format!("/api/v1/projects/{}/queries", team.project);
    assert_eq!(
        api.post(
            &queries,
            Some(&team.viewer.token),
            json!({"name": "v", "query_text": "SELECT 1"})
        )
        .await
        .0,
        403,
        "viewers run queries, they do not write them"
    );
    let (execution, _) = run(&team, &team.viewer, &query, json!({})).await;
    let execution = execution["id"].as_str().unwrap();

    // A stranger sees none of it: every path is a 404.
    let stranger = Some(team.stranger.token.as_str());
    for path in [
        format!("/api/v1/data-sources/{id}"),
        format!("/api/v1/queries/{query}"),
        format!("/api/v1/executions/{execution}"),
        format!("/api/v1/executions/{execution}/result"),
        sources.clone(),
        queries.clone(),
    ] {
        assert_eq!(api.get(&path, stranger).await.0, 404, "{path}");
    }
    assert_eq!(
        api.post(
            &format!("/api/v1/queries/{query}/execute"),
            stranger,
            json!({})
        )
        .await
        .0,
        404
    );
    assert_eq!(
        api.delete(&format!("/api/v1/data-sources/{id}"), stranger)
            .await
            .0,
        404
    );
    assert_eq!(
        api.delete(
            &format!("/api/v1/data-sources/{id}"),
            Some(&team.editor.token)
        )
        .await
        .0,
        403
    );
    assert_eq!(
        api.delete(
            &format!("/api/v1/queries/{query}"),
            Some(&team.viewer.token)
        )
        .await
        .0,
        403
    );

    // Changes are audited.
    let (_, audit) = api
        .get(
            "/api/v1/audit?resource_type=data_source",
            Some(&team.owner.token),
        )
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .map(|e| e.iter().filter_map(|x| x["action"].as_str()).collect())
        .unwrap_or_default();
    assert!(actions.contains(&"data_source.create"), "{audit}");
    assert_eq!(
        api.delete(
            &format!("/api/v1/queries/{query}"),
            Some(&team.editor.token)
        )
        .await
        .0,
        204
    );
    assert_eq!(
        api.delete(
            &format!("/api/v1/data-sources/{id}"),
            Some(&team.owner.token)
        )
        .await
        .0,
        204
    );
    assert_eq!(
        api.get(
            &format!("/api/v1/data-sources/{id}"),
            Some(&team.owner.token)
        )
        .await
        .0,
        404
    );
}

/// A fresh PostgreSQL database with a `orders` table; its URL (with a password, which the
/// machine's trust authentication ignores, so that redaction has something to hide).
async fn sample_database() -> (String, String) {
    let (admin, name) = fresh_database("src_").await;
    let (scheme, rest) = admin.split_once("://").expect("a URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split('/').next().unwrap_or(host);
    let url = format!("{scheme}://postgres:s3cret-pw@{host}/{name}");
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("the sample database answers");
    for statement in [
        "CREATE TABLE orders (id int, region text, amount numeric)",
        "INSERT INTO orders VALUES (1, 'north', 10.5), (2, 'south', 20), (3, 'north', 4.5)",
    ] {
        sqlx::query(statement)
            .execute(&mut db)
            .await
            .expect("sample data");
    }
    (url, name)
}

#[tokio::test]
async fn a_postgresql_source_runs_its_queries_on_its_database() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let (url, _name) = sample_database().await;
    let (status, source) = api
        .post(
            &format!("/api/v1/projects/{}/data-sources", team.project),
            Some(&team.owner.token),
            json!({"name": "warehouse", "type": "database", "connection_config": {"url": url}}),
        )
        .await;
    assert_eq!(status, 201, "{source}");
    assert!(
        !source.to_string().contains("s3cret-pw"),
        "the password is never shown: {source}"
    );
    let id = source["id"].as_str().unwrap().to_owned();
    let (status, synced) = api
        .post(
            &format!("/api/v1/data-sources/{id}/sync"),
            Some(&team.owner.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{synced}");
    assert_eq!(synced["status"], "active", "{synced}");
    assert!(
        synced["schema_info"].to_string().contains("orders"),
        "{synced}"
    );

    let query = saved_query(
        &team,
        "SELECT region, sum(amount) AS total FROM orders WHERE amount >= {{min}} GROUP BY region ORDER BY region",
        json!({"min": {"type": "number", "default": 0}}),
        Some(&id),
    )
    .await;
    let (done, _) = run(
        &team,
        &team.viewer,
        &query,
        json!({"parameters": {"min": 5}}),
    )
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    let page = result_rows(&team, &team.viewer, &done, "").await;
    assert_eq!(page["rows"][0][0], "north", "{page}");
    assert_eq!(page["rows"].as_array().map(Vec::len), Some(2));

    // Writes are refused by the database's READ ONLY transaction or before it.
    let write = saved_query(&team, "DELETE FROM orders", json!({}), Some(&id)).await;
    let (status, refused) = api
        .post(
            &format!("/api/v1/queries/{write}/execute"),
            Some(&team.viewer.token),
            json!({}),
        )
        .await;
    if status == 200 || status == 202 {
        let (ended, _) = run(&team, &team.viewer, &write, json!({})).await;
        assert_eq!(ended["status"], "failed", "{ended}");
    } else {
        assert_eq!(status, 400, "{refused}");
    }
    let (recount, _) = run(
        &team,
        &team.viewer,
        &query,
        json!({"parameters": {"min": 0}, "fresh": true}),
    )
    .await;
    assert_eq!(
        result_rows(&team, &team.viewer, &recount, "").await["total_rows"],
        2
    );

    // An unreachable database: a failed execution with the reason, and the source in error.
    let (status, _) = api
        .patch(
            &format!("/api/v1/data-sources/{id}"),
            Some(&team.owner.token),
            json!({"connection_config": {"url": "postgres://postgres@127.0.0.1:1/none"}}),
        )
        .await;
    assert_eq!(status, 200);
    let (failed, _) = run(&team, &team.viewer, &query, json!({"fresh": true})).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{failed}"
    );
    let (_, source) = api
        .get(
            &format!("/api/v1/data-sources/{id}"),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(source["status"], "error", "{source}");
    assert_eq!(
        api.delete(
            &format!("/api/v1/data-sources/{id}"),
            Some(&team.owner.token)
        )
        .await
        .0,
        409,
        "a source in use by a query stays"
    );
}

#[tokio::test]
async fn a_redis_stream_is_a_table_of_its_latest_entries() {
    let server = TestServer::start_with(|c| c.allow_private_targets = true).await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let redis_url = canvas_storage::testing::service_url(canvas_storage::testing::Service::Redis);
    let stream = format!("canvas-test:events:{}", uuid::Uuid::new_v4().simple());
    let client = redis::Client::open(redis_url.as_str()).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    for (kind, amount) in [("sale", 10), ("sale", 5), ("refund", 3)] {
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("kind")
            .arg(kind)
            .arg("amount")
            .arg(amount)
            .query_async(&mut conn)
            .await
            .expect("XADD");
    }
    let (status, source) = api
        .post(
            &format!("/api/v1/projects/{}/data-sources", team.project),
            Some(&team.owner.token),
            json!({"name": "events", "type": "streaming",
                   "connection_config": {"url": redis_url, "stream": stream, "latest": 100}}),
        )
        .await;
    assert_eq!(status, 201, "{source}");
    let query = saved_query(
        &team,
        "SELECT kind, sum(amount) AS total FROM events GROUP BY kind ORDER BY kind",
        json!({}),
        None,
    )
    .await;
    let (done, _) = run(&team, &team.viewer, &query, json!({})).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        result_rows(&team, &team.viewer, &done, "").await["rows"],
        json!([["refund", 3], ["sale", 15]])
    );
    // A new entry is new data: the cache does not answer.
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("kind")
        .arg("sale")
        .arg("amount")
        .arg(1)
        .query_async(&mut conn)
        .await
        .expect("XADD");
    let (again, _) = run(&team, &team.viewer, &query, json!({})).await;
    assert_eq!(again["from_cache"], false, "{again}");
    assert_eq!(
        result_rows(&team, &team.viewer, &again, "").await["rows"],
        json!([["refund", 3], ["sale", 16]])
    );
    let _: usize = redis::cmd("DEL")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .expect("DEL");
}

#[tokio::test]
async fn on_the_services_any_node_reads_any_execution() {
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
    let (url, _) = sample_database().await;
    let source = team
        .api
        .database_source(&team.owner, &team.project, "warehouse", &url)
        .await;
    let query = saved_query(
        &team,
        "SELECT count(*) AS n FROM orders",
        json!({}),
        Some(source.as_str()),
    )
    .await;
    let (done, _) = run(&team, &team.viewer, &query, json!({})).await;
    assert_eq!(done["status"], "completed", "{done}");

    // Node B: the execution, its result (from Redis), and a cache hit for the same query;
    // it opens the source's sealed secrets with the shared key.
    let on_b = Team {
        api: b.api(),
        ..team
    };
    let id = done["id"].as_str().unwrap();
    let (status, seen) = on_b
        .api
        .get(
            &format!("/api/v1/executions/{id}"),
            Some(&on_b.viewer.token),
        )
        .await;
    assert_eq!(
        (status, &seen["status"]),
        (200, &json!("completed")),
        "{seen}"
    );
    assert_eq!(
        result_rows(&on_b, &on_b.viewer, &done, "").await["rows"],
        json!([[3]])
    );
    let (hit, _) = run(&on_b, &on_b.viewer, &query, json!({})).await;
    assert_eq!(hit["from_cache"], true, "{hit}");
    let (fresh, _) = run(&on_b, &on_b.viewer, &query, json!({"fresh": true})).await;
    assert_eq!(fresh["status"], "completed", "{fresh}");
}

/// Active statements on the machine's PostgreSQL whose text holds `marker`.
async fn active_statements(marker: &str) -> i64 {
    let admin = canvas_storage::testing::service_url(canvas_storage::testing::Service::Postgres);
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("PostgreSQL answers");
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
         AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
    )
    .bind(marker)
    .fetch_one(&mut db)
    .await
    .expect("pg_stat_activity")
}

async fn wait_statements(marker: &str, want: i64, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while active_statements(marker).await != want {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A cancel sent to node B stops the query node A runs, on its database too (the control
/// message `execution_cancelled`): without it node A's job, and the statement, would run on
/// for their whole minute.
#[tokio::test]
async fn on_the_services_a_cancel_on_one_node_stops_the_query_on_another() {
    let services = ServiceSet::fresh().await;
    let secret = "A6E8Yq3sJ5ZzZt9r4bX9rV0kq1v3mJm8bqv2dQnUu7c=";
    let node = |c: &mut canvas_server::config::Config| {
        services.configure(c);
        c.secret_key = Some(secret.into());
        c.execute_wait_ms = 50;
        c.query_timeout_secs = 120;
    };
    let a = TestServer::start_with(node).await;
    let b = TestServer::start_with(node).await;
    let team = Team::new(&a).await;
    let (url, _) = sample_database().await;
    let source = team
        .api
        .database_source(&team.owner, &team.project, "warehouse", &url)
        .await;
    let marker = format!("slow_{}", uuid::Uuid::new_v4().simple());
    let query = saved_query(
        &team,
        &format!("SELECT pg_sleep(60) AS {marker}"),
        json!({}),
        Some(source.as_str()),
    )
    .await;
    let (status, started) = team
        .api
        .post(
            &format!("/api/v1/queries/{query}/execute"),
            Some(&team.viewer.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let id = started["execution"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    wait_statements(&marker, 1, "node A starts the statement").await;

    let (status, cancelled) = b
        .api()
        .post(
            &format!("/api/v1/executions/{id}/cancel"),
            Some(&team.viewer.token),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, &cancelled["status"]),
        (200, &json!("cancelled")),
        "{cancelled}"
    );
    wait_statements(&marker, 0, "node A stops the statement node B cancelled").await;
    let (_, seen) = team
        .api
        .get(
            &format!("/api/v1/executions/{id}"),
            Some(&team.viewer.token),
        )
        .await;
    assert_eq!(seen["status"], "cancelled", "{seen}");
}
