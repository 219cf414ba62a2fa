//! Api sources: fixtures served by an axum server on 127.0.0.1, and the SSRF guard.

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use canvas_analytics::{DataSource, Error, ErrorKind, SourceKind, SourceStatus, Target};
use serde_json::{Value, json};

use crate::support::*;

fn items(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"name": format!("item {i}"), "price": i as f64 * 1.5, "qty": i, "active": i % 2 == 0}))
            .collect(),
    )
}

/// Serves the fixtures; the returned task is aborted when dropped by the test's end.
async fn serve() -> (String, tokio::task::JoinHandle<()>) {
    let app = Router::new()
        .route("/items", get(|| async { axum::Json(items(30)) }))
        .route(
            "/nested",
            get(|| async { axum::Json(json!({"data": {"items": items(5)}, "total": 5})) }),
        )
        .route(
            "/private",
            get(|headers: HeaderMap| async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some("Bearer s3cret")
                {
                    Ok(axum::Json(items(3)))
                } else {
                    Err(StatusCode::UNAUTHORIZED)
                }
            }),
        )
        .route(
            "/broken",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route("/scalar", get(|| async { axum::Json(json!({"data": 3})) }))
        .route("/mixed", get(|| async { axum::Json(json!([{"a": 1}, 2])) }))
        .route("/big", get(|| async { axum::Json(items(5000)) }))
        .route("/text", get(|| async { "not json" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

fn api(name: &str, config: Value) -> DataSource {
    source(name, SourceKind::Api, config)
}

#[tokio::test]
async fn an_api_source_is_fetched_on_sync_and_queried_as_a_table() {
    bounded(async {
        let (base, server) = serve().await;
        let f = local();
        let s = api("products", json!({"url": format!("{base}/items")}));
        let report = f.analytics.sync(&s).await;
        assert_eq!(report.status, SourceStatus::Active, "{report:?}");
        let table = &report.schema_info.as_ref().expect("schema").tables[0];
        let mut types: Vec<(&str, &str)> = table.columns.iter().map(|c| (c.name.as_str(), c.data_type.as_str())).collect();
        // Columns come in serde_json's map order: by name, or as the objects have them when
        // another crate of the build turns on its `preserve_order` feature (the server's does).
        types.sort_unstable();
        assert_eq!(types, [("active", "boolean"), ("name", "string"), ("price", "number"), ("qty", "integer")]);
        assert_eq!(table.row_count, Some(30));
        let s = DataSource { data_version: report.data_version.clone(), ..s };
        let sources = [s.clone()];
        let r = run(&f.analytics, Target::Tables(&sources),
            "SELECT count(*) AS n, sum(qty) AS q FROM products WHERE active AND price >= {{p}}",
            json!({"p": {"type": "number", "default": 0}}), json!({"p": 15})).await.expect("query");
        let expected: Vec<usize> = (0..30).filter(|i| i % 2 == 0 && *i as f64 * 1.5 >= 15.0).collect();
        assert_eq!(r.rows[0], vec![json!(expected.len()), json!(expected.iter().sum::<usize>())]);

        // a JSON pointer, and headers (secrets) sent along
        let nested = api("nested", json!({"url": format!("{base}/nested"), "json_pointer": "/data/items"}));
        assert_eq!(f.analytics.sync(&nested).await.status, SourceStatus::Active);
        let private = api("private", json!({"url": format!("{base}/private"), "headers": {"Authorization": "Bearer s3cret"}}));
        let report = f.analytics.sync(&private).await;
        assert_eq!(report.status, SourceStatus::Active, "{report:?}");
        let sources = [nested, private];
        let r = sql(&f.analytics, Target::Tables(&sources), "SELECT (SELECT count(*) FROM nested) AS a, (SELECT count(*) FROM private) AS b").await.expect("two tables");
        assert_eq!(r.rows[0], vec![json!(5), json!(3)]);

        // failures are a status error with a message, and leave the last snapshot
        for (path, extra, needle) in [
            ("/broken", json!({}), "500"),
            ("/private", json!({}), "401"),
            ("/nested", json!({"json_pointer": "/nope"}), "/nope"),
            ("/scalar", json!({"json_pointer": "/data"}), "array"),
            ("/mixed", json!({}), "element 1"),
            ("/text", json!({}), "not JSON"),
        ] {
            let mut config = json!({"url": format!("{base}{path}")});
            for (k, v) in extra.as_object().expect("obj") {
                config[k] = v.clone();
            }
            let broken = DataSource { config: canvas_analytics::SourceConfig::parse(SourceKind::Api, &config).expect("config"), ..s.clone() };
            let report = f.analytics.sync(&broken).await;
            let SourceStatus::Error { message } = &report.status else { panic!("{path}: {report:?}") };
            assert!(message.contains(needle), "{path}: {message}");
        }
        let sources = [s];
        let r = sql(&f.analytics, Target::Tables(&sources), "SELECT count(*) FROM products")
            .await.expect("old snapshot");
        assert_eq!(r.rows[0][0], json!(30));
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed_and_bodies_are_capped() {
    bounded(async {
        let (base, server) = serve().await;
        let guarded = fixture(|c| c.allow_private_targets = false);
        let port = base.rsplit(':').next().expect("port");
        // literal addresses are refused before the request; names (localhost) by our
        // resolver, which checks every address a name has
        for url in [
            format!("{base}/items"),
            format!("http://localhost:{port}/items"),
            format!("http://[::1]:{port}/items"),
        ] {
            let s = api("x", json!({"url": url}));
            let e = guarded.analytics.try_sync(&s).await.expect_err(&url);
            assert!(matches!(e, Error::ForbiddenTarget(_)), "{url}: {e:?}");
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
        }

        let small = fixture(limits(|l| l.max_api_response_bytes = 10_000));
        let s = api("big", json!({"url": format!("{base}/big")}));
        let e = small.analytics.try_sync(&s).await.expect_err("too big");
        assert!(matches!(e, Error::TooLarge { limit: 10_000 }), "{e:?}");
        server.abort();
        // nothing listening: unavailable
        let e = local()
            .analytics
            .try_sync(&api("gone", json!({"url": format!("{base}/items")})))
            .await
            .expect_err("down");
        assert!(matches!(e, Error::SourceUnavailable(_)), "{e:?}");
    })
    .await;
}
