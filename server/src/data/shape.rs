//! Shaping a query's result for a bound block (pure: no I/O, unit-tested alone).
//!
//! - Charts: `config` `{x_axis, y_axis, color, aggregation}` turns the rows into series, one
//!   per `color` value (one named after `y_axis` without a color), each a list of `{x, y}`
//!   points with `y` aggregated (`sum`, the default, `avg`, `count`, `min`, `max`) over the
//!   rows sharing `x` (and color). Points keep the order in which their `x` first appears
//!   (the query's `ORDER BY`).
//! - Tables: `columns` (`field`, `header`, `type`), `pagination.pageSize`,
//!   `sorting.defaultSort` and the caller's sort (`field`, `-field`, `field:desc`), and a
//!   filter (`text`: any column contains it, case-insensitively; `field:text`: that column)
//!   give one page of the rows.
//! - Narrative metrics: the numbers of a source block (a chart's points, totalled per `x`
//!   across series; a table's first numeric column) reduced by a calculation.
//!
//! A config naming a column the result lacks is a [`ShapeError`] with code `unknown_column`.

use canvas_analytics::Column;
use serde::Serialize;
use serde_json::{Number, Value, json};
use std::cmp::Ordering;
use std::collections::HashMap;

/// Why a block's data cannot be shaped as its content asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError {
    /// `unknown_column`, `invalid_config` or `invalid_request`.
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

impl ShapeError {
    fn new(code: &'static str, message: impl Into<String>) -> ShapeError {
        ShapeError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// How a chart reduces the rows sharing an `x` (and color).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Sum of `y`.
    Sum,
    /// Mean of `y`.
    Avg,
    /// Number of rows.
    Count,
    /// Least `y`.
    Min,
    /// Greatest `y`.
    Max,
}

impl std::str::FromStr for Aggregation {
    type Err = ShapeError;

    fn from_str(s: &str) -> Result<Self, ShapeError> {
        Ok(match s {
            "sum" => Aggregation::Sum,
            "avg" => Aggregation::Avg,
            "count" => Aggregation::Count,
            "min" => Aggregation::Min,
            "max" => Aggregation::Max,
            other => {
                return Err(ShapeError::new(
                    "invalid_config",
                    format!(
                        "config.aggregation must be sum, avg, count, min or max, got {other:?}"
                    ),
                ));
            }
        })
    }
}

/// A chart block's `config`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartConfig {
    /// Column of the x values.
    pub x_axis: String,
    /// Column of the y values (not needed to count).
    pub y_axis: Option<String>,
    /// Column whose values split the rows into series.
    pub color: Option<String>,
    /// How rows sharing an x are reduced.
    pub aggregation: Aggregation,
}

impl ChartConfig {
    /// Reads `config` from a chart block's content JSON.
    pub fn from_content(content: &Value) -> Result<ChartConfig, ShapeError> {
        let Some(config) = content.get("config").filter(|c| c.is_object()) else {
            return Err(ShapeError::new(
                "invalid_config",
                "a bound chart needs config {x_axis, y_axis, color?, aggregation?}",
            ));
        };
        let text = |key: &str| -> Result<Option<String>, ShapeError> {
            match config.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(other) => Err(ShapeError::new(
                    "invalid_config",
                    format!("config.{key} must be a column name, got {other}"),
                )),
            }
        };
        let aggregation = match text("aggregation")? {
            Some(a) => a.parse()?,
            None => Aggregation::Sum,
        };
        let x_axis = text("x_axis")?
            .ok_or_else(|| ShapeError::new("invalid_config", "config.x_axis is missing"))?;
        let y_axis = text("y_axis")?;
        if y_axis.is_none() && aggregation != Aggregation::Count {
            return Err(ShapeError::new(
                "invalid_config",
                "config.y_axis is missing (only aggregation \"count\" needs none)",
            ));
        }
        Ok(ChartConfig {
            x_axis,
            y_axis,
            color: text("color")?,
            aggregation,
        })
    }
}

/// One series of a chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// The `color` value (as text), or the y column's name without a color.
    pub name: String,
    /// The points, in order of first appearance of their `x`.
    pub points: Vec<Point>,
}

/// One point of a series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// The x value as the query gave it.
    pub x: Value,
    /// The aggregated y value (`null` when no row had a number).
    pub y: Value,
}

fn column_index(columns: &[Column], name: &str, what: &str) -> Result<usize, ShapeError> {
    columns.iter().position(|c| c.name == name).ok_or_else(|| {
        let known: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        ShapeError::new(
            "unknown_column",
            format!(
                "{what} names column {name:?}, which the query's result does not have \
                 (its columns: {})",
                known.join(", ")
            ),
        )
    })
}

/// A value as a number: JSON numbers and numeric strings (decimals may come as text).
pub fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// A float as JSON: integral values as integers, others rounded to 10 decimals (no float
/// noise such as 0.30000000000000004), non-finite ones as null.
pub fn to_json_number(f: f64) -> Value {
    if !f.is_finite() {
        return Value::Null;
    }
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        return json!(f as i64);
    }
    let rounded = (f * 1e10).round() / 1e10;
    Number::from_f64(rounded).map_or(Value::Null, Value::Number)
}

fn label(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[derive(Default, Clone)]
struct Acc {
    rows: u64,
    n: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
}

impl Acc {
    fn add(&mut self, y: Option<f64>) {
        self.rows += 1;
        if let Some(y) = y {
            self.n += 1;
            self.sum += y;
            self.min = Some(self.min.map_or(y, |m| m.min(y)));
            self.max = Some(self.max.map_or(y, |m| m.max(y)));
        }
    }

    fn value(&self, aggregation: Aggregation) -> Value {
        match aggregation {
            Aggregation::Count => json!(self.rows),
            _ if self.n == 0 => Value::Null,
            Aggregation::Sum => to_json_number(self.sum),
            Aggregation::Avg => to_json_number(self.sum / self.n as f64),
            Aggregation::Min => self.min.map_or(Value::Null, to_json_number),
            Aggregation::Max => self.max.map_or(Value::Null, to_json_number),
        }
    }
}

/// The chart's series (see the module's documentation).
pub fn chart_series(
    columns: &[Column],
    rows: &[Vec<Value>],
    config: &ChartConfig,
) -> Result<Vec<Series>, ShapeError> {
    let x = column_index(columns, &config.x_axis, "config.x_axis")?;
    let y = match &config.y_axis {
        Some(name) => Some(column_index(columns, name, "config.y_axis")?),
        None => None,
    };
    let color = match &config.color {
        Some(name) => Some(column_index(columns, name, "config.color")?),
        None => None,
    };
    let default_name = config.y_axis.clone().unwrap_or_else(|| "count".to_owned());
    // series in order of first appearance; in each, x values in order of first appearance
    let mut names: Vec<String> = Vec::new();
    let mut groups: HashMap<String, (Vec<Value>, HashMap<String, Acc>)> = HashMap::new();
    for row in rows {
        let cell = |i: usize| row.get(i).cloned().unwrap_or(Value::Null);
        let name = color.map_or_else(|| default_name.clone(), |c| label(&cell(c)));
        let x_value = cell(x);
        let y_value = y.and_then(|i| number(&cell(i)));
        let (xs, accs) = groups.entry(name.clone()).or_insert_with(|| {
            names.push(name.clone());
            (Vec::new(), HashMap::new())
        });
        let key = x_value.to_string();
        let acc = accs.entry(key).or_insert_with(|| {
            xs.push(x_value.clone());
            Acc::default()
        });
        acc.add(y_value);
    }
    Ok(names
        .into_iter()
        .filter_map(|name| {
            let (xs, accs) = groups.remove(&name)?;
            let points = xs
                .into_iter()
                .map(|x| {
                    let y = accs
                        .get(&x.to_string())
                        .map_or(Value::Null, |a| a.value(config.aggregation));
                    Point { x, y }
                })
                .collect();
            Some(Series { name, points })
        })
        .collect())
}

/// One column of a table block's `columns`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableColumn {
    /// The result column shown.
    pub field: String,
    /// Its heading.
    pub header: String,
    /// How it is shown: `string`, `number`, `currency` or `percentage`.
    #[serde(rename = "type")]
    pub format: String,
}

/// A table block's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSettings {
    /// The columns shown (empty: every result column).
    pub columns: Vec<TableColumn>,
    /// Rows per page (`None`: pagination off, one page).
    pub page_size: Option<usize>,
    /// Whether a caller may sort.
    pub sorting: bool,
    /// The sort when the caller gives none.
    pub default_sort: Option<String>,
    /// Whether a caller may filter.
    pub filtering: bool,
}

/// The keys of a bound block's content that its data is shaped by: a chart's `config`, a
/// table's settings (see [`TableSettings::from_content`]). Everything else (a title, the
/// chart type, a description) is presentation the clients draw from the document.
fn shaping_keys(kind: &str) -> &'static [&'static str] {
    if kind == "chart" {
        &["config"]
    } else {
        &["columns", "pagination", "sorting", "filtering"]
    }
}

/// Whether a block of `kind` with content `a` shapes its data (series, page, narrative
/// numbers) as with content `b`: if so, an edit from one to the other needs no reshape.
pub fn same_shape(kind: &str, a: &Value, b: &Value) -> bool {
    shaping_keys(kind)
        .iter()
        .all(|key| a.get(key) == b.get(key))
}

/// Rows per page when `pagination` gives no `pageSize`.
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// Most rows per page.
pub const MAX_PAGE_SIZE: usize = 1000;
const FORMATS: [&str; 4] = ["string", "number", "currency", "percentage"];

fn enabled(content: &Value, key: &str, default: bool) -> bool {
    match content.get(key) {
        Some(v) => v.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        None => default,
    }
}

impl TableSettings {
    /// Reads `columns`, `pagination`, `sorting` and `filtering` from a table's content JSON.
    pub fn from_content(content: &Value) -> Result<TableSettings, ShapeError> {
        let bad = |m: String| ShapeError::new("invalid_config", m);
        let columns = match content.get("columns") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let field = c
                        .get("field")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad(format!("columns[{i}].field is missing")))?;
                    let format = c.get("type").and_then(Value::as_str).unwrap_or("string");
                    if !FORMATS.contains(&format) {
                        return Err(bad(format!(
                            "columns[{i}].type must be string, number, currency or percentage, \
                             got {format:?}"
                        )));
                    }
                    Ok(TableColumn {
                        field: field.to_owned(),
                        header: c
                            .get("header")
                            .and_then(Value::as_str)
                            .unwrap_or(field)
                            .to_owned(),
                        format: format.to_owned(),
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(bad(format!("columns must be an array, got {other}"))),
        };
        let page_size = if enabled(content, "pagination", true) {
            let size = content
                .pointer("/pagination/pageSize")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_PAGE_SIZE, |n| {
                    usize::try_from(n).unwrap_or(MAX_PAGE_SIZE)
                });
            Some(size.clamp(1, MAX_PAGE_SIZE))
        } else {
            None
        };
        Ok(TableSettings {
            columns,
            page_size,
            sorting: enabled(content, "sorting", true),
            default_sort: content
                .pointer("/sorting/defaultSort")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            filtering: enabled(content, "filtering", true),
        })
    }
}

/// What a caller asks of a table: a page (from 1), a sort, a filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableRequest {
    /// The page, from 1 (`None`: the first).
    pub page: Option<usize>,
    /// `field`, `-field`, `field:asc` or `field:desc` (`None`: the default sort).
    pub sort: Option<String>,
    /// `text` or `field:text`.
    pub filter: Option<String>,
}

/// One page of a table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TablePage {
    /// The columns shown: `{name, type}` of the result plus `header` and `format`.
    pub columns: Vec<Value>,
    /// The rows of this page, in the columns' order.
    pub rows: Vec<Vec<Value>>,
    /// Rows after filtering (all pages).
    pub total_rows: usize,
    /// This page (from 1).
    pub page: usize,
    /// Rows per page.
    pub page_size: usize,
    /// Number of pages (at least 1).
    pub pages: usize,
    /// The sort applied, as `field` or `-field`.
    pub sort: Option<String>,
    /// The filter applied.
    pub filter: Option<String>,
}

/// Parses a sort (`field`, `-field`, `field:asc`, `field:desc`): the field and whether it is
/// descending.
fn parse_sort(sort: &str) -> (&str, bool) {
    if let Some(field) = sort.strip_prefix('-') {
        return (field, true);
    }
    if let Some(field) = sort.strip_suffix(":desc") {
        return (field, true);
    }
    (sort.strip_suffix(":asc").unwrap_or(sort), false)
}

/// Orders values: numbers numerically before text, text by code point, null last.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => label(a).cmp(&label(b)),
    }
}

/// The page a caller asked for (see the module's documentation).
pub fn table_page(
    columns: &[Column],
    rows: &[Vec<Value>],
    settings: &TableSettings,
    request: &TableRequest,
) -> Result<TablePage, ShapeError> {
    let invalid = |m: &str| ShapeError::new("invalid_request", m);
    // the columns shown, as indices into the result
    let shown: Vec<(usize, Value)> = if settings.columns.is_empty() {
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| (i, json!({"name": c.name, "type": c.data_type})))
            .collect()
    } else {
        settings
            .columns
            .iter()
            .map(|c| {
                let i = column_index(columns, &c.field, "columns[].field")?;
                let kind = columns.get(i).map_or("other", |c| c.data_type.as_str());
                Ok((
                    i,
                    json!({"name": c.field, "type": kind, "header": c.header, "format": c.format}),
                ))
            })
            .collect::<Result<_, ShapeError>>()?
    };
    let cell = |row: &[Value], i: usize| row.get(i).cloned().unwrap_or(Value::Null);
    let mut kept: Vec<&Vec<Value>> = rows.iter().collect();
    let filter = request.filter.as_deref().filter(|f| !f.is_empty());
    if let Some(filter) = filter {
        if !settings.filtering {
            return Err(invalid("filtering is disabled for this table"));
        }
        let (only, text) = match filter.split_once(':') {
            Some((field, text)) if columns.iter().any(|c| c.name == field) => {
                (Some(column_index(columns, field, "filter")?), text)
            }
            _ => (None, filter),
        };
        let needle = text.to_lowercase();
        kept.retain(|row| {
            let matches = |i: usize| label(&cell(row, i)).to_lowercase().contains(&needle);
            match only {
                Some(i) => matches(i),
                None => shown.iter().any(|(i, _)| matches(*i)),
            }
        });
    }
    let sort = match request.sort.as_deref().filter(|s| !s.is_empty()) {
        Some(s) if !settings.sorting => {
            return Err(invalid(&format!(
                "sorting is disabled for this table (asked for {s:?})"
            )));
        }
        Some(s) => Some(s.to_owned()),
        None => settings.default_sort.clone(),
    };
    let sort = match sort {
        Some(s) => {
            let (field, descending) = parse_sort(&s);
            let i = column_index(columns, field, "sort")?;
            // stable: rows that compare equal keep the query's order
            kept.sort_by(|a, b| {
                let o = compare(&cell(a, i), &cell(b, i));
                if descending { o.reverse() } else { o }
            });
            Some(if descending {
                format!("-{field}")
            } else {
                field.to_owned()
            })
        }
        None => None,
    };
    let total_rows = kept.len();
    let page_size = settings.page_size.unwrap_or(total_rows.max(1));
    let pages = total_rows.div_ceil(page_size).max(1);
    let page = match request.page {
        Some(0) => return Err(invalid("page counts from 1")),
        Some(p) => p,
        None => 1,
    };
    let rows = kept
        .into_iter()
        .skip((page - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|row| shown.iter().map(|(i, _)| cell(row, *i)).collect())
        .collect();
    Ok(TablePage {
        columns: shown.into_iter().map(|(_, c)| c).collect(),
        rows,
        total_rows,
        page,
        page_size,
        pages,
        sort,
        filter: filter.map(str::to_owned),
    })
}

/// The numbers a narrative's metrics are computed from: a chart's points (totalled per `x`
/// across its series, in the order the rows first give each `x`), a table's first numeric column (of its `columns`, else of
/// the result) after its default sort.
pub fn block_numbers(
    kind: &str,
    content: &Value,
    columns: &[Column],
    rows: &[Vec<Value>],
) -> Result<Vec<f64>, ShapeError> {
    if kind == "chart" {
        let config = ChartConfig::from_content(content)?;
        let series = chart_series(columns, rows, &config)?;
        let mut totals: HashMap<String, f64> = HashMap::new();
        for point in series.iter().flat_map(|s| &s.points) {
            if let Some(y) = number(&point.y) {
                *totals.entry(point.x.to_string()).or_default() += y;
            }
        }
        // x values in the order the rows first give them
        let x = column_index(columns, &config.x_axis, "config.x_axis")?;
        let mut seen = std::collections::HashSet::new();
        return Ok(rows
            .iter()
            .map(|row| row.get(x).unwrap_or(&Value::Null).to_string())
            .filter(|key| seen.insert(key.clone()))
            .filter_map(|key| totals.get(&key).copied())
            .collect());
    }
    let settings = TableSettings::from_content(content)?;
    let numeric = |t: &str| matches!(t, "integer" | "number");
    let field = settings
        .columns
        .iter()
        .find(|c| c.format != "string")
        .map(|c| c.field.clone())
        .or_else(|| {
            columns
                .iter()
                .find(|c| numeric(&c.data_type))
                .map(|c| c.name.clone())
        })
        .ok_or_else(|| ShapeError::new("invalid_config", "the table has no numeric column"))?;
    let all = TableSettings {
        page_size: None,
        columns: Vec::new(),
        ..settings
    };
    let page = table_page(columns, rows, &all, &TableRequest::default())?;
    let i = column_index(columns, &field, "columns[].field")?;
    Ok(page
        .rows
        .iter()
        .filter_map(|row| row.get(i).and_then(number))
        .collect())
}

/// The narrative calculations.
pub const CALCULATIONS: [&str; 8] = [
    "percentage_change",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "latest",
    "first",
];

/// A narrative metric over `numbers`: `null` when there is nothing to compute it from
/// (no numbers; for `percentage_change`, fewer than two or a last-but-one of zero).
/// `percentage_change` is rounded to two decimals.
pub fn calculate(calculation: &str, numbers: &[f64]) -> Result<Value, ShapeError> {
    let value = match calculation {
        "percentage_change" => match numbers {
            [.., before, last] if *before != 0.0 => {
                let change = (last - before) / before.abs() * 100.0;
                Some((change * 100.0).round() / 100.0)
            }
            _ => None,
        },
        "sum" => Some(numbers.iter().sum()),
        "avg" => (!numbers.is_empty()).then(|| numbers.iter().sum::<f64>() / numbers.len() as f64),
        "min" => numbers.iter().copied().reduce(f64::min),
        "max" => numbers.iter().copied().reduce(f64::max),
        "count" => Some(numbers.len() as f64),
        "latest" => numbers.last().copied(),
        "first" => numbers.first().copied(),
        other => {
            return Err(ShapeError::new(
                "invalid_binding",
                format!(
                    "calculation must be one of {}, got {other:?}",
                    CALCULATIONS.join(", ")
                ),
            ));
        }
    };
    Ok(value.map_or(Value::Null, to_json_number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_shapes_the_data_makes_a_reshape() {
        let chart = json!({"config": {"x_axis": "region"}, "title": "A", "chart_type": "bar"});
        let retitled = json!({"config": {"x_axis": "region"}, "title": "B", "chart_type": "line"});
        let reconfigured = json!({"config": {"x_axis": "product"}, "title": "A"});
        assert!(same_shape("chart", &chart, &retitled));
        assert!(!same_shape("chart", &chart, &reconfigured));
        let table = json!({"columns": [{"field": "a"}], "title": "T"});
        let resorted = json!({"columns": [{"field": "a"}], "sorting": {"defaultSort": "-a"}});
        assert!(same_shape(
            "table",
            &table,
            &json!({"columns": [{"field": "a"}]})
        ));
        assert!(!same_shape("table", &table, &resorted));
    }

    fn cols(names: &[(&str, &str)]) -> Vec<Column> {
        names
            .iter()
            .map(|(n, t)| Column {
                name: (*n).into(),
                data_type: (*t).into(),
            })
            .collect()
    }

    fn sales() -> (Vec<Column>, Vec<Vec<Value>>) {
        let columns = cols(&[
            ("region", "string"),
            ("product", "string"),
            ("amount", "integer"),
        ]);
        let rows = [
            ("north", "widget", 10),
            ("south", "widget", 20),
            ("north", "gadget", 5),
            ("east", "widget", 7),
            ("south", "gadget", 30),
            ("north", "widget", 4),
        ]
        .iter()
        .map(|(r, p, a)| vec![json!(r), json!(p), json!(a)])
        .collect();
        (columns, rows)
    }

    fn config(v: Value) -> ChartConfig {
        ChartConfig::from_content(&json!({ "config": v })).expect("valid config")
    }

    #[test]
    fn series_per_color_with_each_aggregation() {
        let (c, r) = sales();
        let s = chart_series(
            &c,
            &r,
            &config(
                json!({"x_axis": "region", "y_axis": "amount", "color": "product",
                           "aggregation": "sum"}),
            ),
        )
        .expect("series");
        assert_eq!(
            serde_json::to_value(&s).expect("json"),
            json!([
                {"name": "widget", "points": [{"x": "north", "y": 14}, {"x": "south", "y": 20},
                                              {"x": "east", "y": 7}]},
                {"name": "gadget", "points": [{"x": "north", "y": 5}, {"x": "south", "y": 30}]}
            ])
        );
        let ys = |agg: &str| -> Vec<Value> {
            let s = chart_series(
                &c,
                &r,
                &config(json!({"x_axis": "region", "y_axis": "amount", "aggregation": agg})),
            )
            .expect("series");
            assert_eq!(s.len(), 1);
            assert_eq!(s[0].name, "amount");
            s[0].points.iter().map(|p| p.y.clone()).collect()
        };
        assert_eq!(ys("sum"), [json!(19), json!(50), json!(7)]);
        assert_eq!(ys("avg"), [json!(6.3333333333), json!(25), json!(7)]);
        assert_eq!(ys("count"), [json!(3), json!(2), json!(1)]);
        assert_eq!(ys("min"), [json!(4), json!(20), json!(7)]);
        assert_eq!(ys("max"), [json!(10), json!(30), json!(7)]);
    }

    #[test]
    fn bad_chart_configs_are_clear() {
        let (c, r) = sales();
        let err = chart_series(
            &c,
            &r,
            &config(json!({"x_axis": "regoin", "y_axis": "amount"})),
        )
        .expect_err("unknown column");
        assert_eq!(err.code, "unknown_column");
        assert!(err.message.contains("regoin") && err.message.contains("region, product, amount"));
        for bad in [
            json!({}),
            json!({"config": {"y_axis": "amount"}}),
            json!({"config": {"x_axis": "region"}}),
            json!({"config": {"x_axis": "region", "y_axis": "amount", "aggregation": "median"}}),
            json!({"config": {"x_axis": 3, "y_axis": "amount"}}),
        ] {
            let err = ChartConfig::from_content(&bad).expect_err("invalid");
            assert_eq!(err.code, "invalid_config", "{bad}");
        }
        // count needs no y
        let s = chart_series(
            &c,
            &r,
            &config(json!({"x_axis": "product", "aggregation": "count"})),
        )
        .expect("series");
        assert_eq!(
            s[0].points[0],
            Point {
                x: json!("widget"),
                y: json!(4)
            }
        );
    }

    fn table(content: Value) -> TableSettings {
        TableSettings::from_content(&content).expect("valid settings")
    }

    #[test]
    fn tables_page_sort_and_filter() {
        let (c, r) = sales();
        let settings = table(json!({
            "columns": [{"field": "product", "header": "Product", "type": "string"},
                        {"field": "amount", "header": "Amount", "type": "currency"}],
            "pagination": {"enabled": true, "pageSize": 4},
            "sorting": {"enabled": true, "defaultSort": "amount"},
            "filtering": {"enabled": true}
        }));
        let first = table_page(&c, &r, &settings, &TableRequest::default()).expect("page");
        assert_eq!(
            first.columns[1],
            json!({"name": "amount", "type": "integer",
                                             "header": "Amount", "format": "currency"})
        );
        assert_eq!((first.total_rows, first.pages, first.page_size), (6, 2, 4));
        let amounts: Vec<&Value> = first.rows.iter().map(|row| &row[1]).collect();
        assert_eq!(amounts, [&json!(4), &json!(5), &json!(7), &json!(10)]);
        let second = table_page(
            &c,
            &r,
            &settings,
            &TableRequest {
                page: Some(2),
                ..TableRequest::default()
            },
        )
        .expect("page");
        assert_eq!(
            second.rows,
            [
                vec![json!("widget"), json!(20)],
                vec![json!("gadget"), json!(30)]
            ]
        );
        let desc = table_page(
            &c,
            &r,
            &settings,
            &TableRequest {
                sort: Some("-amount".into()),
                filter: Some("GADG".into()),
                page: None,
            },
        )
        .expect("page");
        assert_eq!(
            desc.rows,
            [
                vec![json!("gadget"), json!(30)],
                vec![json!("gadget"), json!(5)]
            ]
        );
        assert_eq!(
            (desc.total_rows, desc.sort.as_deref()),
            (2, Some("-amount"))
        );
        // a filter on one column: `region` is not shown but may be filtered on
        let north = table_page(
            &c,
            &r,
            &settings,
            &TableRequest {
                filter: Some("region:north".into()),
                ..TableRequest::default()
            },
        )
        .expect("page");
        assert_eq!(north.total_rows, 3);
        let beyond = table_page(
            &c,
            &r,
            &settings,
            &TableRequest {
                page: Some(9),
                ..TableRequest::default()
            },
        )
        .expect("page");
        assert!(beyond.rows.is_empty());
        // mistakes
        let err = |req: TableRequest, s: &TableSettings| {
            table_page(&c, &r, s, &req).expect_err("refused").code
        };
        assert_eq!(
            err(
                TableRequest {
                    sort: Some("price".into()),
                    ..TableRequest::default()
                },
                &settings
            ),
            "unknown_column"
        );
        assert_eq!(
            err(
                TableRequest {
                    page: Some(0),
                    ..TableRequest::default()
                },
                &settings
            ),
            "invalid_request"
        );
        let closed = table(json!({"sorting": {"enabled": false}, "filtering": {"enabled": false}}));
        assert_eq!(
            err(
                TableRequest {
                    sort: Some("amount".into()),
                    ..TableRequest::default()
                },
                &closed
            ),
            "invalid_request"
        );
        assert_eq!(
            err(
                TableRequest {
                    filter: Some("x".into()),
                    ..TableRequest::default()
                },
                &closed
            ),
            "invalid_request"
        );
        let wrong = table(json!({"columns": [{"field": "price"}]}));
        assert_eq!(err(TableRequest::default(), &wrong), "unknown_column");
        assert!(
            TableSettings::from_content(&json!({"columns": [{"field": "a", "type": "money"}]}))
                .is_err()
        );
        // pagination off: one page of everything, every column
        let all = table(json!({"pagination": {"enabled": false}}));
        let page = table_page(&c, &r, &all, &TableRequest::default()).expect("page");
        assert_eq!((page.rows.len(), page.pages, page.columns.len()), (6, 1, 3));
    }

    #[test]
    fn narrative_calculations() {
        let n = [100.0, 80.0, 100.0];
        let calc = |c: &str, n: &[f64]| calculate(c, n).expect("known");
        assert_eq!(calc("percentage_change", &n), json!(25));
        assert_eq!(calc("percentage_change", &[80.0, 101.24]), json!(26.55));
        assert_eq!(calc("percentage_change", &[-50.0, -25.0]), json!(50));
        assert_eq!(calc("percentage_change", &[0.0, 5.0]), Value::Null);
        assert_eq!(calc("percentage_change", &[5.0]), Value::Null);
        assert_eq!(calc("sum", &n), json!(280));
        assert_eq!(calc("avg", &n), json!(93.3333333333));
        assert_eq!(calc("min", &n), json!(80));
        assert_eq!(calc("max", &n), json!(100));
        assert_eq!(calc("count", &n), json!(3));
        assert_eq!(calc("latest", &[1.0, 2.5]), json!(2.5));
        assert_eq!(calc("first", &[1.0, 2.5]), json!(1));
        assert_eq!(calc("avg", &[]), Value::Null);
        assert_eq!(calc("sum", &[]), json!(0));
        assert_eq!(
            calculate("median", &n).expect_err("unknown").code,
            "invalid_binding"
        );
    }

    #[test]
    fn a_blocks_numbers() {
        let (c, r) = sales();
        let chart = json!({"config": {"x_axis": "region", "y_axis": "amount", "color": "product"}});
        // totals per region across both series, in order of first appearance
        assert_eq!(
            block_numbers("chart", &chart, &c, &r).expect("numbers"),
            [19.0, 50.0, 7.0]
        );
        let table = json!({"columns": [{"field": "product"}, {"field": "amount", "type": "number"}],
                           "sorting": {"defaultSort": "-amount"}});
        assert_eq!(
            block_numbers("table", &table, &c, &r).expect("numbers"),
            [30.0, 20.0, 10.0, 7.0, 5.0, 4.0]
        );
    }
}
