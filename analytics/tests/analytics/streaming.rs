//! Streaming sources: entries XADDed to a Redis stream, read at query time.

use canvas_analytics::{DataSource, Error, Query, SourceKind, SourceStatus, Target};
use redis::AsyncCommands;
use serde_json::json;

use crate::support::*;

struct StreamKey {
    client: redis::Client,
    key: String,
}

impl Drop for StreamKey {
    fn drop(&mut self) {
        if let Ok(mut c) = self.client.get_connection() {
            let _: Result<(), _> = redis::cmd("DEL").arg(&self.key).query(&mut c);
        }
    }
}

async fn stream() -> (StreamKey, redis::aio::MultiplexedConnection) {
    let url = env_url("REDIS_URL_TEST");
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis answers");
    (
        StreamKey {
            client,
            key: format!("canvas-analytics-test:{}", short_id()),
        },
        conn,
    )
}

#[tokio::test]
async fn a_redis_stream_is_queried_over_its_latest_entries() {
    bounded(async {
        let (key, mut conn) = stream().await;
        for i in 0..10 {
            let _: String = conn
                .xadd(&key.key, "*", &[("sensor", format!("s{}", i % 2)), ("value", format!("{}", i * 10)), ("ok", "true".to_string())])
                .await
                .expect("xadd");
        }
        let f = local();
        let s = source("readings", SourceKind::Streaming, json!({"stream": key.key, "latest": 4}));
        let report = f.analytics.sync(&s).await;
        assert_eq!(report.status, SourceStatus::Active, "{report:?}");
        let table = &report.schema_info.as_ref().expect("schema").tables[0];
        let types: Vec<(&str, &str)> = table.columns.iter().map(|c| (c.name.as_str(), c.data_type.as_str())).collect();
        assert_eq!(types, [("_id", "string"), ("_timestamp", "timestamp"), ("sensor", "string"), ("value", "integer"), ("ok", "boolean")]);
        let sources = [s.clone()];
        let r = sql(&f.analytics, Target::Tables(&sources), "SELECT value FROM readings")
            .await.expect("query");
        assert_eq!(r.rows, vec![vec![json!(60)], vec![json!(70)], vec![json!(80)], vec![json!(90)]]);
        let r = run(&f.analytics, Target::Tables(&sources),
            "SELECT sensor, sum(value) AS total FROM readings WHERE value > {{min}} GROUP BY sensor ORDER BY sensor",
            json!({"min": {"type": "number"}}), json!({"min": 60})).await.expect("aggregate");
        assert_eq!(r.rows, vec![vec![json!("s0"), json!(80)], vec![json!("s1"), json!(70 + 90)]]);

        // the version is the last entry: a new entry is a new cache key
        let q = Query::new("sql", "SELECT count(*) FROM readings", &json!(null)).expect("q").bind(&json!(null)).expect("b");
        let k1 = f.analytics.cache_key(&q, Target::Tables(&sources)).await.expect("key");
        let _: String = conn.xadd(&key.key, "*", &[("sensor", "s9"), ("value", "not a number")]).await.expect("xadd");
        let k2 = f.analytics.cache_key(&q, Target::Tables(&sources)).await.expect("key");
        assert_ne!(k1, k2);
        // a field that stops parsing as a number becomes text
        let r = sql(&f.analytics, Target::Tables(&sources), "SELECT value FROM readings ORDER BY _id DESC LIMIT 1")
            .await.expect("query");
        assert_eq!(r.rows[0][0], json!("not a number"));
        assert_eq!(r.columns[0].data_type, "string");
    })
    .await;
}

#[tokio::test]
async fn a_time_window_reads_only_recent_entries_and_a_missing_stream_is_an_error() {
    bounded(async {
        let (key, mut conn) = stream().await;
        let hour_ago = chrono::Utc::now().timestamp_millis() - 3_600_000;
        for i in 0..5 {
            let _: String = conn.xadd(&key.key, format!("{hour_ago}-{i}"), &[("n", i.to_string())]).await.expect("old");
        }
        for i in 5..8 {
            let _: String = conn.xadd(&key.key, "*", &[("n", i.to_string()), ("extra", "x".to_string())]).await.expect("new");
        }
        let f = local();
        let s = source("recent", SourceKind::Streaming, json!({"stream": key.key, "window_seconds": 600}));
        let sources = [s];
        let r = sql(&f.analytics, Target::Tables(&sources), "SELECT n, extra FROM recent")
            .await.expect("query");
        assert_eq!(r.rows, vec![vec![json!(5), json!("x")], vec![json!(6), json!("x")], vec![json!(7), json!("x")]]);
        let all = source("all", SourceKind::Streaming, json!({"stream": key.key, "latest": 100}));
        let sources = [all];
        let r = sql(&f.analytics, Target::Tables(&sources), "SELECT n, extra FROM \"all\" ORDER BY n LIMIT 2")
            .await.expect("query");
        // fields missing from older entries are null
        assert_eq!(r.rows, vec![vec![json!(0), json!(null)], vec![json!(1), json!(null)]]);

        let missing = DataSource { ..source("m", SourceKind::Streaming, json!({"stream": format!("{}-missing", key.key)})) };
        let report = f.analytics.sync(&missing).await;
        assert!(matches!(&report.status, SourceStatus::Error { message } if message.contains("no Redis stream")), "{report:?}");
        let sources = [missing];
        let e = sql(&f.analytics, Target::Tables(&sources), "SELECT * FROM m").await.expect_err("missing");
        assert!(matches!(e, Error::SourceUnavailable(_)), "{e:?}");
    })
    .await;
}
