//! The query engine over files: parameters that stay values, errors a server can tell
//! apart, refused statements, caps, timeout and cancellation.

use std::time::Duration;

use canvas_analytics::{
    DataSource, Error, ErrorKind, FileFormat, Query, SourceKind, Target, Truncation,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::*;

async fn numbers(f: &Fixture, name: &str, n: usize) -> DataSource {
    let s = source(name, SourceKind::File, json!({}));
    let mut csv = String::from("id,label\n");
    for i in 0..n {
        csv.push_str(&format!("{i},row {i}\n"));
    }
    let report = f
        .analytics
        .upload_file(&s, FileFormat::Csv, body(csv, 4096))
        .await
        .expect("upload");
    DataSource {
        data_version: report.data_version,
        ..s
    }
}

#[tokio::test]
async fn a_hostile_value_is_a_string_not_sql() {
    bounded(async {
        let f = local();
        let t = numbers(&f, "x", 5).await;
        let sources = [t];
        let hostile = "'; DROP TABLE x; --";
        let decl = json!({"s": {"type": "string"}});
        let r = run(
            &f.analytics,
            Target::Tables(&sources),
            "SELECT {{s}} AS v, count(*) AS n FROM x WHERE label = {{s}}",
            decl.clone(),
            json!({"s": hostile}),
        )
        .await
        .expect("query");
        assert_eq!(r.rows, vec![vec![json!(hostile), json!(0)]]);
        // the table is still there and whole
        let r = sql(
            &f.analytics,
            Target::Tables(&sources),
            "SELECT count(*) FROM x",
        )
        .await
        .expect("still there");
        assert_eq!(r.rows[0][0], json!(5));
        // a number parameter refuses text that is not a number
        let e = run(
            &f.analytics,
            Target::Tables(&sources),
            "SELECT * FROM x WHERE id > {{n}}",
            json!({"n": {"type": "number"}}),
            json!({"n": "1 OR 1=1"}),
        )
        .await
        .expect_err("not a number");
        assert!(matches!(e, Error::Parameter(_)), "{e:?}");
    })
    .await;
}

#[tokio::test]
async fn errors_tell_syntax_unknown_names_and_refused_statements_apart() {
    bounded(async {
        let f = local();
        let t = numbers(&f, "t", 10).await;
        let sources = [t];
        let target = Target::Tables(&sources);
        let none = json!(null);

        let e = sql(&f.analytics, target, "SELECT id\nFROM t WHERE )")
            .await
            .expect_err("syntax");
        let Error::Syntax {
            message,
            line,
            column,
        } = &e
        else {
            panic!("{e:?}")
        };
        assert!(!message.is_empty());
        assert_eq!(*line, Some(2), "{message}");
        assert!(column.is_some(), "{message}");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.code(), "syntax_error");

        let e = sql(&f.analytics, target, "SELEC id FROM t")
            .await
            .expect_err("syntax");
        assert!(matches!(e, Error::Syntax { .. }), "{e:?}");
        // an error at the end of the text points at its end
        let e = sql(&f.analytics, target, "SELECT id\nFROM t WHERE")
            .await
            .expect_err("eof");
        assert!(
            matches!(
                e,
                Error::Syntax {
                    line: Some(2),
                    column: Some(13),
                    ..
                }
            ),
            "{e:?}"
        );

        let e = sql(&f.analytics, target, "SELECT id FROM missing")
            .await
            .expect_err("table");
        assert!(
            matches!(&e, Error::Invalid(m) if m.contains("missing")),
            "{e:?}"
        );
        assert_eq!(e.code(), "invalid_query");

        let e = sql(&f.analytics, target, "SELECT nope FROM t")
            .await
            .expect_err("column");
        assert!(
            matches!(&e, Error::Invalid(m) if m.contains("nope")),
            "{e:?}"
        );

        for text in [
            "CREATE TABLE y AS SELECT * FROM t",
            "DROP TABLE t",
            "INSERT INTO t VALUES (1, 'a')",
            "CREATE VIEW v AS SELECT 1",
            "SET datafusion.execution.batch_size = 1",
        ] {
            let e = sql(&f.analytics, target, text).await.expect_err(text);
            assert!(matches!(e, Error::NotAllowed(_)), "{text}: {e:?}");
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
        }
        let e = sql(&f.analytics, target, "SELECT 1; SELECT 2")
            .await
            .expect_err("two");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
        // still there after all that
        let r = sql(&f.analytics, target, "SELECT count(*) FROM t")
            .await
            .expect("count");
        assert_eq!(r.rows[0][0], json!(10));

        let e = Query::new("python", "print(1)", &none).expect_err("python");
        assert!(
            matches!(e, Error::UnsupportedQueryType(ref t) if t == "python"),
            "{e:?}"
        );
        assert_eq!(e.code(), "unsupported_query_type");
        let e = Query::new("natural_language", "top regions", &none).expect_err("nl");
        assert!(matches!(e, Error::UnsupportedQueryType(_)), "{e:?}");

        // a source the query names but that has no data yet
        let empty = source("empty", SourceKind::File, json!({}));
        let with_empty = [empty];
        let e = sql(
            &f.analytics,
            Target::Tables(&with_empty),
            "SELECT * FROM empty",
        )
        .await
        .expect_err("no data");
        assert!(matches!(e, Error::NoData(_)), "{e:?}");
    })
    .await;
}

#[tokio::test]
async fn row_and_byte_caps_cut_the_result_and_say_so() {
    bounded(async {
        let f = fixture(limits(|l| l.max_result_rows = 100));
        let t = numbers(&f, "t", 1000).await;
        let sources = [t];
        let r = sql(
            &f.analytics,
            Target::Tables(&sources),
            "SELECT * FROM t ORDER BY id",
        )
        .await
        .expect("query");
        assert_eq!(r.rows.len(), 100);
        assert_eq!(r.truncated, Some(Truncation::RowLimit));
        assert_eq!(r.rows[99], vec![json!(99), json!("row 99")]);

        let f = fixture(limits(|l| l.max_result_bytes = 2_000));
        let t = numbers(&f, "t", 1000).await;
        let sources = [t];
        let r = sql(&f.analytics, Target::Tables(&sources), "SELECT * FROM t")
            .await
            .expect("query");
        assert!(
            r.rows.len() < 1000 && !r.rows.is_empty(),
            "{}",
            r.rows.len()
        );
        assert_eq!(r.truncated, Some(Truncation::ByteLimit));
        let small = sql(
            &f.analytics,
            Target::Tables(&sources),
            "SELECT count(*) FROM t",
        )
        .await
        .expect("query");
        assert_eq!(small.truncated, None);
        // the stored form round-trips
        let back = canvas_analytics::QueryResult::from_msgpack(&r.to_msgpack().expect("encode"))
            .expect("decode");
        assert_eq!(back, r);
    })
    .await;
}

/// A query that takes far longer than any timeout here: a triple self cross join.
const SLOW: &str = "SELECT count(*) FROM t a, t b, t c WHERE a.id + b.id + c.id = -1";

#[tokio::test]
async fn a_slow_query_times_out_and_a_cancelled_one_stops() {
    bounded(async {
        let f = fixture(limits(|l| l.query_timeout = Duration::from_millis(300)));
        let t = numbers(&f, "t", 3000).await;
        let sources = [t];
        let started = std::time::Instant::now();
        let e = sql(&f.analytics, Target::Tables(&sources), SLOW)
            .await
            .expect_err("timeout");
        assert!(matches!(e, Error::Timeout(_)), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::ExecutionFailed);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );

        let f = local();
        let t = numbers(&f, "t", 3000).await;
        let sources = [t];
        let q = Query::new("sql", SLOW, &json!(null))
            .expect("q")
            .bind(&json!(null))
            .expect("bind");
        let cancel = CancellationToken::new();
        let analytics = f.analytics.clone();
        let c2 = cancel.clone();
        let task =
            tokio::spawn(async move { analytics.execute(&q, Target::Tables(&sources), &c2).await });
        cancel.cancel();
        let e = task.await.expect("join").expect_err("cancelled");
        assert!(matches!(e, Error::Cancelled), "{e:?}");
    })
    .await;
}

#[tokio::test]
async fn several_sources_join_by_name() {
    bounded(async {
        let f = local();
        let a = numbers(&f, "a", 50).await;
        let b = numbers(&f, "b", 20).await;
        let sources = [a, b];
        let r = run(
            &f.analytics,
            Target::Tables(&sources),
            "WITH j AS (SELECT a.id FROM a JOIN b ON a.id = b.id) SELECT count(*) AS n FROM j WHERE id >= {{lo}}",
            json!({"lo": {"type": "number", "default": 0}}),
            json!({"lo": 10}),
        )
        .await
        .expect("join");
        assert_eq!(r.rows[0][0], json!(10));
    })
    .await;
}

#[tokio::test]
async fn a_query_past_the_memory_pool_fails_and_the_next_one_runs() {
    bounded(async {
        let f = fixture(limits(|l| l.memory_pool_bytes = 512 * 1024));
        let t = numbers(&f, "t", 100_000).await;
        let sources = [t];
        let e = sql(
            &f.analytics,
            Target::Tables(&sources),
            "SELECT label, count(*) FROM t GROUP BY label ORDER BY label",
        )
        .await
        .expect_err("past the pool");
        assert!(
            matches!(&e, Error::Execution(m) if m.contains("memory")),
            "{e:?}"
        );
        assert_eq!(e.kind(), ErrorKind::ExecutionFailed);
        let r = sql(
            &f.analytics,
            Target::Tables(&sources),
            "SELECT count(*) FROM t",
        )
        .await
        .expect("a small query");
        assert_eq!(r.rows[0][0], json!(100_000));
    })
    .await;
}
