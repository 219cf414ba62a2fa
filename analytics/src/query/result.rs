//! Query results: named, typed columns and rows of JSON values, with a MessagePack form the
//! server stores in Redis and shares between nodes.

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, RecordBatch, StringArray, StringViewArray,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The column's name (its alias in the query).
    pub name: String,
    /// A portable type: `integer`, `number`, `string`, `boolean`, `date`, `timestamp`,
    /// `time`, `json`, `binary` or `other`.
    #[serde(rename = "type")]
    pub data_type: String,
}

/// Why a result holds fewer rows than the query produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    /// The row cap ([`crate::Limits::max_result_rows`]) was reached.
    RowLimit,
    /// The byte cap ([`crate::Limits::max_result_bytes`]) was reached.
    ByteLimit,
}

/// A finished query's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Rows, each with one JSON value per column (dates and timestamps as ISO 8601 text,
    /// numbers as numbers, nulls as null).
    pub rows: Vec<Vec<Value>>,
    /// Set when rows were cut by a cap.
    pub truncated: Option<Truncation>,
    /// When it was computed.
    pub computed_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub execution_time_ms: u64,
}

/// A page of a result (`GET /executions/{id}/result?offset=&limit=`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultPage {
    /// Columns in order.
    pub columns: Vec<Column>,
    /// The page's rows.
    pub rows: Vec<Vec<Value>>,
    /// Rows in the whole result.
    pub total_rows: usize,
    /// Index of the first row of the page.
    pub offset: usize,
}

impl QueryResult {
    /// Rows `offset..offset + limit` (fewer at the end; none past it).
    pub fn page(&self, offset: usize, limit: usize) -> ResultPage {
        let start = offset.min(self.rows.len());
        let end = start.saturating_add(limit).min(self.rows.len());
        ResultPage {
            columns: self.columns.clone(),
            rows: self.rows[start..end].to_vec(),
            total_rows: self.rows.len(),
            offset,
        }
    }

    /// The MessagePack form (named fields), to store in Redis.
    pub fn to_msgpack(&self) -> Result<Vec<u8>> {
        rmp_serde::to_vec_named(self)
            .map_err(|e| Error::Execution(format!("result does not encode: {e}")))
    }

    /// Reads what [`QueryResult::to_msgpack`] wrote.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Self> {
        rmp_serde::from_slice(bytes)
            .map_err(|e| Error::Execution(format!("stored result does not decode: {e}")))
    }
}

/// The portable name of an Arrow type.
pub fn portable_type(dt: &DataType) -> &'static str {
    match dt {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => "integer",
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => "number",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string",
        DataType::Boolean => "boolean",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(..) => "timestamp",
        DataType::Time32(_) | DataType::Time64(_) => "time",
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "binary",
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..) => "json",
        _ => "other",
    }
}

/// Turns Arrow batches into JSON rows under the caps; rows past a cap are dropped and the
/// truncation recorded.
pub(crate) struct RowCollector {
    pub rows: Vec<Vec<Value>>,
    pub truncated: Option<Truncation>,
    bytes: usize,
    max_rows: usize,
    max_bytes: usize,
}

impl RowCollector {
    pub fn new(max_rows: usize, max_bytes: usize) -> Self {
        RowCollector {
            rows: Vec::new(),
            truncated: None,
            bytes: 0,
            max_rows,
            max_bytes,
        }
    }

    /// Whether a cap was reached (nothing more is kept).
    pub fn full(&self) -> bool {
        self.truncated.is_some()
    }

    /// Adds one row, unless it passes a cap.
    pub fn push(&mut self, row: Vec<Value>) {
        if self.full() {
            return;
        }
        if self.rows.len() >= self.max_rows {
            self.truncated = Some(Truncation::RowLimit);
            return;
        }
        let size: usize = row.iter().map(approx_json_size).sum::<usize>() + row.len() + 2;
        if self.bytes + size > self.max_bytes {
            self.truncated = Some(Truncation::ByteLimit);
            return;
        }
        self.bytes += size;
        self.rows.push(row);
    }

    /// Adds the rows of one batch.
    pub fn push_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let converters = batch
            .columns()
            .iter()
            .map(|a| Converter::new(a.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        for row in 0..batch.num_rows() {
            if self.full() {
                break;
            }
            self.push(converters.iter().map(|c| c.value(row)).collect());
        }
        Ok(())
    }
}

fn approx_json_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 12,
        Value::String(s) => s.len() + 2,
        other => other.to_string().len(),
    }
}

/// Converts one column's values to JSON.
struct Converter<'a> {
    array: &'a dyn Array,
    formatter: ArrayFormatter<'a>,
}

impl<'a> Converter<'a> {
    fn new(array: &'a dyn Array) -> Result<Self> {
        let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())
            .map_err(|e| Error::Execution(format!("cannot show a column: {e}")))?;
        Ok(Converter { array, formatter })
    }

    fn value(&self, i: usize) -> Value {
        let a = self.array;
        if a.is_null(i) {
            return Value::Null;
        }
        let num = |f: f64| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
        match a.data_type() {
            DataType::Boolean => Value::Bool(
                a.as_any()
                    .downcast_ref::<BooleanArray>()
                    .is_some_and(|b| b.value(i)),
            ),
            DataType::Int8 => a.as_primitive::<Int8Type>().value(i).into(),
            DataType::Int16 => a.as_primitive::<Int16Type>().value(i).into(),
            DataType::Int32 => a.as_primitive::<Int32Type>().value(i).into(),
            DataType::Int64 => a.as_primitive::<Int64Type>().value(i).into(),
            DataType::UInt8 => a.as_primitive::<UInt8Type>().value(i).into(),
            DataType::UInt16 => a.as_primitive::<UInt16Type>().value(i).into(),
            DataType::UInt32 => a.as_primitive::<UInt32Type>().value(i).into(),
            DataType::UInt64 => a.as_primitive::<UInt64Type>().value(i).into(),
            DataType::Float16 => num(a.as_primitive::<Float16Type>().value(i).to_f64()),
            DataType::Float32 => num(f64::from(a.as_primitive::<Float32Type>().value(i))),
            DataType::Float64 => num(a.as_primitive::<Float64Type>().value(i)),
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..) => {
                let text = self.formatter.value(i).to_string();
                text.parse::<f64>().map_or(Value::String(text), num)
            }
            DataType::Utf8 => a
                .as_any()
                .downcast_ref::<StringArray>()
                .map_or(Value::Null, |s| Value::String(s.value(i).to_string())),
            DataType::LargeUtf8 => Value::String(a.as_string::<i64>().value(i).to_string()),
            DataType::Utf8View => a
                .as_any()
                .downcast_ref::<StringViewArray>()
                .map_or(Value::Null, |s| Value::String(s.value(i).to_string())),
            DataType::Date32 => a
                .as_primitive::<Date32Type>()
                .value_as_date(i)
                .map_or(Value::Null, |d| Value::String(d.to_string())),
            DataType::Date64 => a
                .as_primitive::<Date64Type>()
                .value_as_date(i)
                .map_or(Value::Null, |d| Value::String(d.to_string())),
            DataType::Timestamp(unit, tz) => {
                let dt = match unit {
                    TimeUnit::Second => {
                        a.as_primitive::<TimestampSecondType>().value_as_datetime(i)
                    }
                    TimeUnit::Millisecond => a
                        .as_primitive::<TimestampMillisecondType>()
                        .value_as_datetime(i),
                    TimeUnit::Microsecond => a
                        .as_primitive::<TimestampMicrosecondType>()
                        .value_as_datetime(i),
                    TimeUnit::Nanosecond => a
                        .as_primitive::<TimestampNanosecondType>()
                        .value_as_datetime(i),
                };
                match (dt, tz) {
                    // with a zone the stored value is UTC
                    (Some(dt), Some(_)) => Value::String(dt.and_utc().to_rfc3339()),
                    (Some(dt), None) => {
                        Value::String(dt.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
                    }
                    (None, _) => Value::String(self.formatter.value(i).to_string()),
                }
            }
            DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::Struct(_)
            | DataType::Map(..) => {
                // Arrow's display form of nested values, kept as text
                Value::String(self.formatter.value(i).to_string())
            }
            _ => Value::String(self.formatter.value(i).to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn msgpack_round_trip_and_pages() {
        let r = QueryResult {
            columns: vec![
                Column {
                    name: "a".into(),
                    data_type: "integer".into(),
                },
                Column {
                    name: "b".into(),
                    data_type: "string".into(),
                },
            ],
            rows: (0..10)
                .map(|i| vec![json!(i), json!(format!("r{i}"))])
                .collect(),
            truncated: Some(Truncation::RowLimit),
            computed_at: Utc::now(),
            execution_time_ms: 3,
        };
        let bytes = r.to_msgpack().expect("encode");
        assert_eq!(QueryResult::from_msgpack(&bytes).expect("decode"), r);
        assert!(QueryResult::from_msgpack(b"\x93nonsense").is_err());
        let p = r.page(8, 5);
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.total_rows, 10);
        assert_eq!(r.page(20, 5).rows.len(), 0);
    }

    #[test]
    fn caps_cut_rows() {
        let mut c = RowCollector::new(2, 1000);
        for i in 0..5 {
            c.push(vec![json!(i)]);
        }
        assert_eq!(c.rows.len(), 2);
        assert_eq!(c.truncated, Some(Truncation::RowLimit));
        let mut c = RowCollector::new(100, 20);
        for _ in 0..5 {
            c.push(vec![json!("0123456789")]);
        }
        assert_eq!(c.rows.len(), 1);
        assert_eq!(c.truncated, Some(Truncation::ByteLimit));
    }
}
