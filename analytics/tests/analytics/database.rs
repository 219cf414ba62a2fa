//! Database sources: push-down to a PostgreSQL and a MariaDB database created for the test.

use std::time::Duration;

use canvas_analytics::{
    DataSource, Error, ErrorKind, SecretKey, SourceConfig, SourceKind, SourceStatus, Target,
    Truncation,
};
use serde_json::json;
use sqlx::Executor;

use crate::support::*;

/// A database made for one test, dropped at the end (also when the test fails).
struct TempDb {
    admin_url: String,
    name: String,
    url: String,
    mysql: bool,
}

impl TempDb {
    async fn postgres() -> TempDb {
        let admin_url = env_url("DATABASE_URL_TEST");
        let name = format!("canvas_analytics_{}", short_id());
        let admin = sqlx::PgPool::connect(&admin_url)
            .await
            .expect("postgres answers");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create database");
        admin.close().await;
        let mut url = url::Url::parse(&admin_url).expect("url");
        url.set_path(&name);
        TempDb {
            admin_url,
            name,
            url: url.to_string(),
            mysql: false,
        }
    }

    async fn mariadb() -> TempDb {
        let admin_url = env_url("MYSQL_URL_TEST");
        let name = format!("canvas_analytics_{}", short_id());
        let admin = sqlx::MySqlPool::connect(&admin_url)
            .await
            .expect("mariadb answers");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create database");
        admin.close().await;
        let base = admin_url.trim_end_matches('/');
        TempDb {
            admin_url: admin_url.clone(),
            name: name.clone(),
            url: format!("{base}/{name}"),
            mysql: true,
        }
    }

    async fn drop_now(admin_url: String, name: String, mysql: bool) {
        if mysql {
            if let Ok(admin) = sqlx::MySqlPool::connect(&admin_url).await {
                let _ = admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name}"
                    )))
                    .await;
            }
        } else if let Ok(admin) = sqlx::PgPool::connect(&admin_url).await {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let (admin, name, mysql) = (self.admin_url.clone(), self.name.clone(), self.mysql);
        // Drop cannot await: a thread of its own with a runtime of its own
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(TempDb::drop_now(admin, name, mysql));
            }
        })
        .join();
    }
}

const SETUP_PG: &str = "CREATE TABLE sales (id int PRIMARY KEY, region text NOT NULL, \
     amount numeric(10,2), day date, ok boolean, seen timestamptz); \
     INSERT INTO sales SELECT i, (ARRAY['north','south','east','west'])[1 + i % 4], \
     (i % 100) + 0.5, DATE '2024-01-01' + (i % 28), i % 2 = 0, \
     TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL '1 minute' FROM generate_series(0, 999) i; \
     CREATE SCHEMA extra; CREATE TABLE extra.notes (body text);";

#[tokio::test]
async fn postgres_push_down_runs_read_only_with_bound_parameters() {
    bounded(async {
        let db = TempDb::postgres().await;
        let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
        sqlx::raw_sql(SETUP_PG).execute(&pool).await.expect("setup");
        let f = local();
        // host/port/user form, sealed and opened as the server would store it
        let url = url::Url::parse(&db.url).expect("url");
        let plain = json!({"engine": "postgres", "host": url.host_str(), "port": url.port(),
                           "user": url.username(), "password": "unused-with-trust", "database": db.name});
        let key = SecretKey::from_string(&SecretKey::generate_string()).expect("key");
        let id = uuid::Uuid::new_v4();
        let sealed = SourceConfig::parse(SourceKind::Database, &plain).expect("parse").seal(id, &key).expect("seal");
        assert!(!sealed.to_string().contains("unused-with-trust"));
        let config = SourceConfig::open(SourceKind::Database, id, &sealed, &key).expect("open");
        let src = DataSource { id, name: "warehouse".into(), config, data_version: None };

        let report = f.analytics.sync(&src).await;
        assert_eq!(report.status, SourceStatus::Active, "{report:?}");
        let schema = report.schema_info.expect("schema");
        let sales = schema.tables.iter().find(|t| t.name == "sales").expect("sales");
        let types: Vec<(&str, &str)> = sales.columns.iter().map(|c| (c.name.as_str(), c.data_type.as_str())).collect();
        assert_eq!(types, [("id", "integer"), ("region", "string"), ("amount", "number"),
                           ("day", "date"), ("ok", "boolean"), ("seen", "timestamp")]);
        assert!(schema.tables.iter().any(|t| t.name == "extra.notes"), "{schema:?}");

        let target = Target::Database(&src);
        let r = run(&f.analytics, target,
            "SELECT region, sum(amount) AS total, count(*) AS n FROM sales \
             WHERE amount > {{min}} AND day >= {{from}} AND ok = {{ok}} GROUP BY region ORDER BY region",
            json!({"min": {"type": "number", "default": 0}, "from": {"type": "date"}, "ok": {"type": "boolean", "default": true}}),
            json!({"min": 49.5, "from": "2024-01-15"}))
            .await
            .expect("query");
        assert_eq!(col_names(&r), ["region", "total", "n"]);
        assert_eq!(r.columns[1].data_type, "number");
        let mut expected: std::collections::BTreeMap<&str, (f64, i64)> = Default::default();
        for i in 0..1000usize {
            let amount = (i % 100) as f64 + 0.5;
            if amount > 49.5 && i % 28 >= 14 && i % 2 == 0 {
                let e = expected.entry(["north", "south", "east", "west"][i % 4]).or_default();
                e.0 += amount;
                e.1 += 1;
            }
        }
        let got: std::collections::BTreeMap<&str, (f64, i64)> = r.rows.iter()
            .map(|row| (row[0].as_str().expect("region"), (row[1].as_f64().expect("total"), row[2].as_i64().expect("n"))))
            .collect();
        assert_eq!(got, expected);

        // values come back typed: dates and timestamps as ISO text
        let r = run(&f.analytics, target, "SELECT day, seen, ok, amount FROM sales WHERE id = {{id}};",
            json!({"id": {"type": "number"}}), json!({"id": 61})).await.expect("one row");
        assert_eq!(r.rows, vec![vec![json!("2024-01-06"), json!("2024-01-01T01:01:00+00:00"), json!(false), json!(61.5)]]);

        // a hostile string is a value
        let hostile = "'; DROP TABLE sales; --";
        let r = run(&f.analytics, target, "SELECT count(*) AS n, {{s}} AS v FROM sales WHERE region = {{s}}",
            json!({"s": {"type": "string"}}), json!({"s": hostile})).await.expect("hostile");
        assert_eq!(r.rows, vec![vec![json!(0), json!(hostile)]]);

        // writes are refused, by the check and by READ ONLY, and change nothing
        for text in ["DELETE FROM sales", "DROP TABLE sales", "UPDATE sales SET amount = 0",
                    "SELECT 1; DELETE FROM sales", "CREATE TABLE x (a int)"] {
            let e = sql(&f.analytics, target, text).await.expect_err(text);
            assert!(matches!(e, Error::NotAllowed(_)), "{text}: {e:?}");
        }
        let e = sql(&f.analytics, target, "WITH d AS (DELETE FROM sales RETURNING *) SELECT count(*) FROM d").await.expect_err("writable CTE");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
        let e = sql(&f.analytics, target, "SELECT nextval('nope_seq')").await.expect_err("fn");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM sales").fetch_one(&pool).await.expect("count");
        assert_eq!(count, 1000);

        // errors: syntax with position, unknown names
        let e = sql(&f.analytics, target, "SELECT id\nFROM sales WHERE id >").await.expect_err("syntax");
        let Error::Syntax { line, column, .. } = &e else { panic!("{e:?}") };
        assert_eq!(*line, Some(2), "{e}");
        assert!(column.is_some());
        let e = sql(&f.analytics, target, "SELECT * FROM missing").await.expect_err("table");
        assert!(matches!(&e, Error::Invalid(m) if m.contains("missing")), "{e:?}");
        let e = sql(&f.analytics, target, "SELECT nope FROM sales").await.expect_err("column");
        assert!(matches!(&e, Error::Invalid(m) if m.contains("nope")), "{e:?}");
        let e = sql(&f.analytics, target, "SELECT 1 AS a, 2 AS a").await.expect_err("dup");
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        let e = sql(&f.analytics, target, "SELECT 1 / 0").await.expect_err("runtime");
        assert!(matches!(e, Error::Execution(_)), "{e:?}");
        pool.close().await;
    })
    .await;
}

#[tokio::test]
async fn postgres_statement_timeout_row_cap_and_an_unreachable_database() {
    bounded(async {
        let db = TempDb::postgres().await;
        let f = fixture(limits(|l| {
            l.query_timeout = Duration::from_millis(300);
            l.max_result_rows = 10;
            l.db_connect_timeout = Duration::from_secs(3);
        }));
        let src = source("w", SourceKind::Database, json!({"url": db.url}));
        let target = Target::Database(&src);
        let started = std::time::Instant::now();
        let e = sql(&f.analytics, target, "SELECT pg_sleep(30)")
            .await
            .expect_err("timeout");
        assert!(matches!(e, Error::Timeout(_)), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let r = sql(
            &f.analytics,
            target,
            "SELECT i FROM generate_series(1, 1000) i",
        )
        .await
        .expect("cap");
        assert_eq!(r.rows.len(), 10);
        assert_eq!(r.truncated, Some(Truncation::RowLimit));

        // a port nobody listens on
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let down = source(
            "down",
            SourceKind::Database,
            json!({"url": format!("postgres://postgres@127.0.0.1:{port}/x")}),
        );
        let e = sql(&f.analytics, Target::Database(&down), "SELECT 1")
            .await
            .expect_err("down");
        assert!(matches!(e, Error::SourceUnavailable(_)), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::ExecutionFailed);
        let report = f.analytics.sync(&down).await;
        assert!(
            matches!(report.status, SourceStatus::Error { .. }),
            "{report:?}"
        );
        // a database source is not a table of the engine
        let e = sql(
            &f.analytics,
            Target::Tables(std::slice::from_ref(&src)),
            "SELECT * FROM w",
        )
        .await
        .expect_err("not a table");
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    })
    .await;
}

const SETUP_MY: &str = "CREATE TABLE sales (id INT PRIMARY KEY, region VARCHAR(20) NOT NULL, \
     amount DECIMAL(10,2), day DATE, ok BOOLEAN, seen DATETIME, note JSON)";

#[tokio::test]
async fn mariadb_push_down_runs_read_only_with_bound_parameters() {
    bounded(async {
        let db = TempDb::mariadb().await;
        let pool = sqlx::MySqlPool::connect(&db.url).await.expect("connect");
        sqlx::raw_sql(SETUP_MY).execute(&pool).await.expect("setup");
        for i in 0..200i64 {
            sqlx::query("INSERT INTO sales VALUES (?, ?, ?, DATE_ADD('2024-01-01', INTERVAL ? DAY), ?, '2024-01-01 10:00:00', JSON_OBJECT('i', ?))")
                .bind(i).bind(["north", "south", "east", "west"][(i % 4) as usize])
                .bind(format!("{}.25", i % 50)).bind(i % 28).bind(i % 2 == 0).bind(i)
                .execute(&pool).await.expect("insert");
        }
        let f = fixture(limits(|l| l.query_timeout = Duration::from_millis(500)));
        let src = source("shop", SourceKind::Database, json!({"engine": "mariadb", "url": db.url}));
        let report = f.analytics.sync(&src).await;
        assert_eq!(report.status, SourceStatus::Active, "{report:?}");
        let schema = report.schema_info.expect("schema");
        let sales = schema.tables.iter().find(|t| t.name == "sales").expect("sales");
        assert_eq!(sales.columns.len(), 7);
        assert_eq!(sales.columns[2].data_type, "number");
        let target = Target::Database(&src);

        let r = run(&f.analytics, target,
            "SELECT region, SUM(amount) AS total FROM sales WHERE amount > {{min}} AND region <> {{skip}} AND amount > {{min}} GROUP BY region ORDER BY region",
            json!({"min": {"type": "number"}, "skip": {"type": "string", "default": "west"}}),
            json!({"min": 40})).await.expect("query");
        let mut expected: std::collections::BTreeMap<&str, f64> = Default::default();
        for i in 0..200usize {
            let amount = (i % 50) as f64 + 0.25;
            let region = ["north", "south", "east", "west"][i % 4];
            if amount > 40.0 && region != "west" {
                *expected.entry(region).or_default() += amount;
            }
        }
        let got: std::collections::BTreeMap<&str, f64> = r.rows.iter()
            .map(|row| (row[0].as_str().expect("region"), row[1].as_f64().expect("total"))).collect();
        assert_eq!(got, expected);

        let r = run(&f.analytics, target, "SELECT day, ok, seen, note FROM sales WHERE id = {{id}}",
            json!({"id": {"type": "number"}}), json!({"id": 3})).await.expect("row");
        assert_eq!(r.rows[0][..3], [json!("2024-01-04"), json!(false), json!("2024-01-01T10:00:00")]);
        // MariaDB's JSON is LONGTEXT (text here); MySQL's JSON type comes back parsed
        let note = match &r.rows[0][3] {
            serde_json::Value::String(s) => serde_json::from_str(s).expect("json text"),
            other => other.clone(),
        };
        assert_eq!(note, json!({"i": 3}));

        let hostile = "'; DROP TABLE sales; --";
        let r = run(&f.analytics, target, "SELECT COUNT(*) AS n, {{s}} AS v FROM sales WHERE region = {{s}}",
            json!({"s": {"type": "string"}}), json!({"s": hostile})).await.expect("hostile");
        assert_eq!(r.rows, vec![vec![json!(0), json!(hostile)]]);

        for text in ["DELETE FROM sales", "DROP TABLE sales", "INSERT INTO sales (id, region) VALUES (1000, 'x')"] {
            let e = sql(&f.analytics, target, text).await.expect_err(text);
            assert!(matches!(e, Error::NotAllowed(_)), "{text}: {e:?}");
        }
        let e = sql(&f.analytics, target, "SELECT * FROM sales WHERE id = ?").await.expect_err("?");
        assert!(matches!(e, Error::Parameter(_)), "{e:?}");
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sales").fetch_one(&pool).await.expect("count");
        assert_eq!(count, 200);

        let e = sql(&f.analytics, target, "SELECT id FROM sales WHERE").await.expect_err("syntax");
        assert!(matches!(e, Error::Syntax { line: Some(1), .. }), "{e:?}");
        let e = sql(&f.analytics, target, "SELECT * FROM missing").await.expect_err("table");
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        let e = sql(&f.analytics, target, "SELECT nope FROM sales").await.expect_err("column");
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        let started = std::time::Instant::now();
        let e = sql(&f.analytics, target, "SELECT SLEEP(20) AS s").await;
        assert!(started.elapsed() < Duration::from_secs(10), "{e:?}");
        match e {
            Err(Error::Timeout(_)) => {}
            // MariaDB ends an interrupted SLEEP with 1 instead of an error on some versions
            Ok(r) => assert_eq!(r.rows[0][0], json!(1)),
            Err(other) => panic!("{other:?}"),
        }
        pool.close().await;
    })
    .await;
}

/// How many statements containing `marker` run on the database now (PostgreSQL's
/// `pg_stat_activity` or MariaDB's process list), not counting the one asking.
async fn running(db: &TempDb, marker: &str) -> i64 {
    if db.mysql {
        let pool = sqlx::MySqlPool::connect(&db.admin_url)
            .await
            .expect("connect");
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE INFO LIKE CONCAT('%', ?, '%') AND ID <> CONNECTION_ID()",
        )
        .bind(marker)
        .fetch_one(&pool)
        .await
        .expect("processlist");
        pool.close().await;
        n
    } else {
        let pool = sqlx::PgPool::connect(&db.admin_url).await.expect("connect");
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
             AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
        )
        .bind(marker)
        .fetch_one(&pool)
        .await
        .expect("pg_stat_activity");
        pool.close().await;
        n
    }
}

/// Waits (30 s at most) until `running(db, marker) == want`.
async fn wait_running(db: &TempDb, marker: &str, want: i64, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if running(db, marker).await == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Cancelling an execution stops its statement on the database too, not only the wait for
/// it: without `pg_cancel_backend` / `KILL QUERY` the sleep below would hold a database
/// session for its whole minute.
#[tokio::test]
async fn a_cancelled_execution_stops_its_statement_on_the_database() {
    bounded(async {
        for db in [TempDb::postgres().await, TempDb::mariadb().await] {
            let f = fixture(limits(|l| l.query_timeout = Duration::from_secs(120)));
            let src = source("w", SourceKind::Database, json!({"url": db.url}));
            let marker = format!("cancel_me_{}", short_id());
            let text = if db.mysql {
                format!("SELECT SLEEP(60) AS {marker}")
            } else {
                format!("SELECT pg_sleep(60) AS {marker}")
            };
            let query = canvas_analytics::Query::new("sql", &text, &serde_json::Value::Null)
                .expect("query");
            let bound = query.bind(&serde_json::Value::Null).expect("bind");
            let cancel = tokio_util::sync::CancellationToken::new();
            let analytics = f.analytics.clone();
            let token = cancel.clone();
            let job = tokio::spawn(async move {
                analytics
                    .execute(&bound, Target::Database(&src), &token)
                    .await
            });
            wait_running(&db, &marker, 1, "the statement starts").await;
            cancel.cancel();
            let e = job.await.expect("the job ends").expect_err("cancelled");
            assert!(matches!(e, Error::Cancelled), "{e:?}");
            wait_running(
                &db,
                &marker,
                0,
                "the database stops the cancelled statement",
            )
            .await;
        }
    })
    .await;
}
