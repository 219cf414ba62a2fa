//! File sources: CSV, Parquet and NDJSON uploads on a local folder and in an S3 API server.

use std::collections::BTreeMap;
use std::sync::Arc;

use canvas_analytics::{
    AnalyticsConfig, DataSource, Error, ErrorKind, FileFormat, Query, SourceKind, SourceStatus,
    Target,
};
use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use serde_json::json;

use crate::support::*;

const REGIONS: [&str; 4] = ["north", "south", "east", "west"];

/// `n` rows of region, amount, day; and the expected sum of amount by region for amount > min.
fn csv_rows(n: usize) -> String {
    let mut s = String::from("region,amount,day\n");
    for i in 0..n {
        s.push_str(&format!(
            "{},{},2024-01-{:02}\n",
            REGIONS[i % 4],
            i % 100,
            1 + i % 28
        ));
    }
    s
}

fn expected_sums(n: usize, min: i64) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for i in 0..n {
        let amount = (i % 100) as i64;
        if amount > min {
            *m.entry(REGIONS[i % 4].to_string()).or_insert(0) += amount;
        }
    }
    m
}

fn sums_of(r: &canvas_analytics::QueryResult) -> BTreeMap<String, i64> {
    r.rows
        .iter()
        .map(|row| {
            (
                row[0].as_str().expect("region").to_string(),
                row[1].as_i64().expect("sum"),
            )
        })
        .collect()
}

const SUM_SQL: &str = "SELECT region, sum(amount) AS total FROM sales WHERE amount > {{min}} GROUP BY region ORDER BY region";

fn min_decl() -> serde_json::Value {
    json!({"min": {"type": "number", "default": 0}})
}

async fn upload(
    f: &Fixture,
    source: &DataSource,
    format: FileFormat,
    bytes: impl Into<Vec<u8>>,
) -> canvas_analytics::Result<DataSource> {
    let report = f
        .analytics
        .upload_file(source, format, body(bytes, 1000))
        .await?;
    assert_eq!(report.status, SourceStatus::Active);
    Ok(DataSource {
        data_version: report.data_version,
        ..source.clone()
    })
}

#[tokio::test]
async fn csv_upload_infers_schema_and_answers_a_parameterised_query() {
    bounded(async {
        let f = local();
        let s = source("sales", SourceKind::File, json!({}));
        let report = f
            .analytics
            .upload_file(&s, FileFormat::Csv, body(csv_rows(5000), 777))
            .await
            .expect("upload");
        let schema = report.schema_info.expect("schema");
        let table = &schema.tables[0];
        assert_eq!(table.name, "sales");
        assert_eq!(table.row_count, Some(5000));
        let types: Vec<(&str, &str)> = table
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str()))
            .collect();
        assert_eq!(
            types,
            [("region", "string"), ("amount", "integer"), ("day", "date")]
        );
        assert_eq!(report.metadata["format"], "csv");
        let s = DataSource {
            data_version: report.data_version.clone(),
            ..s
        };
        let sources = [s.clone()];
        let r = run(
            &f.analytics,
            Target::Tables(&sources),
            SUM_SQL,
            min_decl(),
            json!({"min": 50}),
        )
        .await
        .expect("query");
        assert_eq!(col_names(&r), ["region", "total"]);
        assert_eq!(r.columns[1].data_type, "integer");
        assert_eq!(sums_of(&r), expected_sums(5000, 50));
        // the default applies when no value is given
        let r = run(
            &f.analytics,
            Target::Tables(&sources),
            SUM_SQL,
            min_decl(),
            json!({}),
        )
        .await
        .expect("query");
        assert_eq!(sums_of(&r), expected_sums(5000, 0));
        // a date parameter compares with a date column
        let r = run(
            &f.analytics,
            Target::Tables(&sources),
            "SELECT count(*) AS n FROM sales WHERE day >= {{from}}",
            json!({"from": {"type": "date"}}),
            json!({"from": "2024-01-27"}),
        )
        .await
        .expect("date query");
        let expected = (0..5000).filter(|i| 1 + i % 28 >= 27).count() as i64;
        assert_eq!(r.rows[0][0].as_i64(), Some(expected));
        // a sync of a file source reads the stored file again
        let again = f.analytics.sync(&s).await;
        assert_eq!(again.status, SourceStatus::Active);
        assert_eq!(
            again.schema_info.expect("schema").tables[0].row_count,
            Some(5000)
        );
    })
    .await;
}

fn parquet_bytes(n: usize) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("region", DataType::Utf8, false),
        Field::new("amount", DataType::Int64, false),
        Field::new("ratio", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| REGIONS[i % 4]),
            )),
            Arc::new(Int64Array::from_iter_values(
                (0..n).map(|i| (i % 100) as i64),
            )),
            Arc::new(Float64Array::from_iter((0..n).map(|i| {
                if i % 10 == 0 {
                    None
                } else {
                    Some(i as f64 / 4.0)
                }
            }))),
        ],
    )
    .expect("batch");
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, schema, None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    out
}

fn ndjson_rows(n: usize) -> String {
    (0..n)
        .map(|i| {
            json!({"region": REGIONS[i % 4], "amount": i % 100, "tag": format!("t{}", i % 3)})
                .to_string()
                + "\n"
        })
        .collect()
}

#[tokio::test]
async fn parquet_and_ndjson_uploads_answer_the_same_query() {
    bounded(async {
        let f = local();
        for (format, bytes) in [
            (FileFormat::Parquet, parquet_bytes(3000)),
            (FileFormat::Ndjson, ndjson_rows(3000).into_bytes()),
        ] {
            let s = source("sales", SourceKind::File, json!({}));
            let s = upload(&f, &s, format, bytes).await.expect("upload");
            let sources = [s];
            let r = run(
                &f.analytics,
                Target::Tables(&sources),
                SUM_SQL,
                min_decl(),
                json!({"min": 10}),
            )
            .await
            .expect("query");
            assert_eq!(sums_of(&r), expected_sums(3000, 10), "{format:?}");
        }
        // nulls come back as null, floats as numbers
        let s = source("p", SourceKind::File, json!({}));
        let s = upload(&f, &s, FileFormat::Parquet, parquet_bytes(20))
            .await
            .expect("upload");
        let sources = [s];
        let r = sql(
            &f.analytics,
            Target::Tables(&sources),
            "SELECT ratio FROM p ORDER BY amount LIMIT 2",
        )
        .await
        .expect("query");
        assert_eq!(r.rows, vec![vec![json!(null)], vec![json!(0.25)]]);
        assert_eq!(r.columns[0].data_type, "number");
    })
    .await;
}

#[tokio::test]
async fn a_malformed_csv_row_is_named_and_the_old_file_stays() {
    bounded(async {
        let f = local();
        let s = source("sales", SourceKind::File, json!({}));
        let s = upload(&f, &s, FileFormat::Csv, csv_rows(100))
            .await
            .expect("first upload");
        // line 1 is the header: the 41st data row is on line 42
        let mut bad = csv_rows(40);
        bad.push_str("north,12,2024-01-01,surplus\n");
        bad.push_str(&csv_rows(30)[18..]);
        let e = f
            .analytics
            .upload_file(&s, FileFormat::Csv, body(bad, 64))
            .await
            .expect_err("malformed");
        assert!(matches!(e, Error::Malformed(_)), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let text = e.to_string();
        assert!(text.contains("line 42"), "{text}");
        // a value that does not fit its column's type
        // (past the 10,000 rows types are inferred from)
        let mut bad = csv_rows(12_000);
        bad.push_str("north,lots,2024-01-01\n");
        let e = f
            .analytics
            .upload_file(&s, FileFormat::Csv, body(bad, 4096))
            .await
            .expect_err("bad value");
        assert!(e.to_string().contains("line 12002"), "{e}");
        // not a Parquet file
        let e = f
            .analytics
            .upload_file(&s, FileFormat::Parquet, body("a,b\n1,2\n", 64))
            .await
            .expect_err("not parquet");
        assert!(matches!(e, Error::Malformed(_)), "{e:?}");
        // an empty body
        let e = f
            .analytics
            .upload_file(&s, FileFormat::Csv, body("", 64))
            .await
            .expect_err("empty");
        assert!(matches!(e, Error::Malformed(_)), "{e:?}");
        // NDJSON with a broken line
        let e = f
            .analytics
            .upload_file(&s, FileFormat::Ndjson, body("{\"a\": 1}\n{\"a\": \n", 64))
            .await
            .expect_err("bad json");
        assert!(matches!(e, Error::Malformed(_)), "{e:?}");
        // the first file is still the one queried, and nothing was left behind
        let sources = [s];
        let r = sql(
            &f.analytics,
            Target::Tables(&sources),
            "SELECT count(*) FROM sales",
        )
        .await
        .expect("query");
        assert_eq!(r.rows[0][0], json!(100));
        let dir = source_dir(&f, sources[0].id);
        let names = list_files(&dir);
        assert_eq!(names, ["data.csv"], "{names:?}");
    })
    .await;
}

fn list_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_dir() {
            for inner in list_files(&entry.path()) {
                out.push(format!("{}/{inner}", entry.file_name().to_string_lossy()));
            }
        } else {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn an_oversized_upload_is_refused_and_a_new_format_replaces_the_old() {
    bounded(async {
        let f = fixture(limits(|l| l.max_upload_bytes = 10_000));
        let s = source("sales", SourceKind::File, json!({}));
        let s = upload(&f, &s, FileFormat::Csv, csv_rows(100))
            .await
            .expect("small upload");
        let big = csv_rows(2000);
        assert!(big.len() > 10_000);
        let e = f
            .analytics
            .upload_file(&s, FileFormat::Csv, body(big, 1024))
            .await
            .expect_err("too large");
        assert!(matches!(e, Error::TooLarge { limit: 10_000 }), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        let sources = [s.clone()];
        let r = sql(
            &f.analytics,
            Target::Tables(&sources),
            "SELECT count(*) FROM sales",
        )
        .await
        .expect("old file");
        assert_eq!(r.rows[0][0], json!(100));
        // re-uploading as NDJSON replaces the CSV: one data file, a new version
        let s2 = upload(&f, &s, FileFormat::Ndjson, ndjson_rows(7))
            .await
            .expect("ndjson");
        assert_ne!(s2.data_version, s.data_version);
        let sources = [s2];
        let r = sql(
            &f.analytics,
            Target::Tables(&sources),
            "SELECT count(*) FROM sales",
        )
        .await
        .expect("new file");
        assert_eq!(r.rows[0][0], json!(7));
        let dir = source_dir(&f, s.id);
        assert_eq!(list_files(&dir), ["data.ndjson"]);
        // removing the source removes its data
        f.analytics.remove_source(s.id).await.expect("remove");
        let e = sql(
            &f.analytics,
            Target::Tables(&sources),
            "SELECT count(*) FROM sales",
        )
        .await
        .expect_err("gone");
        assert!(matches!(e, Error::NoData(_)), "{e:?}");
    })
    .await;
}

#[tokio::test]
async fn csv_options_delimiter_and_no_header() {
    bounded(async {
        let f = local();
        let s = source(
            "semi",
            SourceKind::File,
            json!({"delimiter": ";", "has_header": false}),
        );
        let s = upload(&f, &s, FileFormat::Csv, "a;1\nb;2\nc;3\n")
            .await
            .expect("upload");
        let sources = [s];
        let r = sql(
            &f.analytics,
            Target::Tables(&sources),
            "SELECT sum(column_2) FROM semi",
        )
        .await
        .expect("query");
        assert_eq!(r.rows[0][0], json!(6));
    })
    .await;
}

/// Creates a bucket in the S3 API server (moto accepts unsigned requests).
async fn create_bucket(endpoint: &str, bucket: &str) {
    let r = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("moto answers");
    assert!(r.status().is_success(), "create bucket: {}", r.status());
}

#[tokio::test]
async fn files_in_an_s3_bucket_upload_replace_and_query() {
    bounded(async {
        let endpoint = env_url("CANVAS_TEST_S3_ENDPOINT");
        let bucket = format!("canvas-{}", short_id());
        create_bucket(&endpoint, &bucket).await;
        let url = format!("s3://{bucket}/analytics/node-shared");
        let config_for = |dir: &std::path::Path| {
            let mut c = AnalyticsConfig::new(dir);
            c.object_store_url = Some(url.clone());
            c.object_store_options = vec![
                ("aws_endpoint".into(), endpoint.clone()),
                ("aws_access_key_id".into(), "test".into()),
                ("aws_secret_access_key".into(), "test".into()),
                ("aws_region".into(), "us-east-1".into()),
            ];
            c
        };
        let f = fixture(|c| {
            let dir = c.data_dir.clone();
            *c = config_for(&dir);
        });
        assert_eq!(f.analytics.storage_location(), url);
        let s = source("sales", SourceKind::File, json!({}));
        let s = upload(&f, &s, FileFormat::Csv, csv_rows(1200))
            .await
            .expect("upload to s3");
        // a failed re-upload leaves the object in the bucket
        let mut bad = csv_rows(10);
        bad.push_str("x\n");
        assert!(
            f.analytics
                .upload_file(&s, FileFormat::Csv, body(bad, 100))
                .await
                .is_err()
        );
        // a second node with the same bucket reads what the first stored
        let dir = tempfile::tempdir().expect("dir");
        let other = canvas_analytics::Analytics::new(config_for(dir.path())).expect("node 2");
        let sources = [s.clone()];
        let r = run(
            &other,
            Target::Tables(&sources),
            SUM_SQL,
            min_decl(),
            json!({"min": 90}),
        )
        .await
        .expect("query on node 2");
        assert_eq!(sums_of(&r), expected_sums(1200, 90));
        // Parquet replaces the CSV
        let s2 = upload(&f, &s, FileFormat::Parquet, parquet_bytes(400))
            .await
            .expect("parquet");
        let sources = [s2];
        let r = run(
            &other,
            Target::Tables(&sources),
            SUM_SQL,
            min_decl(),
            json!({}),
        )
        .await
        .expect("query parquet");
        assert_eq!(sums_of(&r), expected_sums(400, 0));
        other.remove_source(s.id).await.expect("remove");
        assert!(matches!(
            sql(
                &f.analytics,
                Target::Tables(&sources),
                "SELECT 1 FROM sales"
            )
            .await,
            Err(Error::NoData(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn the_cache_key_follows_the_data_version_and_the_bound_values() {
    bounded(async {
        let f = local();
        let s = source("sales", SourceKind::File, json!({}));
        let v1 = upload(&f, &s, FileFormat::Csv, csv_rows(10))
            .await
            .expect("v1");
        let q = Query::new("sql", SUM_SQL, &min_decl()).expect("query");
        let key = |src: &DataSource, min: i64| {
            let bound = q.bind(&json!({"min": min})).expect("bind");
            let sources = [src.clone()];
            let a = f.analytics.clone();
            async move {
                a.cache_key(&bound, Target::Tables(&sources))
                    .await
                    .expect("key")
            }
        };
        let k1 = key(&v1, 1).await;
        assert_eq!(k1, key(&v1, 1).await);
        assert_ne!(k1, key(&v1, 2).await);
        let v2 = upload(&f, &s, FileFormat::Csv, csv_rows(11))
            .await
            .expect("v2");
        assert_ne!(k1, key(&v2, 1).await);
        // the same bytes are the same version
        let v3 = upload(&f, &s, FileFormat::Csv, csv_rows(10))
            .await
            .expect("v3");
        assert_eq!(k1, key(&v3, 1).await);
        // a source the query does not read is not part of the key
        let unrelated = source("other", SourceKind::File, json!({}));
        let bound = q.bind(&json!({"min": 1})).expect("bind");
        let both = [v1.clone(), unrelated];
        assert_eq!(
            k1,
            f.analytics
                .cache_key(&bound, Target::Tables(&both))
                .await
                .expect("key")
        );
    })
    .await;
}
