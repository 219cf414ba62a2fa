//! Query parameters: declared with a type and a default, written `{{name}}` in the text,
//! bound as real placeholders (`$1`.. for DataFusion and PostgreSQL, `?` for MySQL). A value
//! never becomes SQL text.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// The declared type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// Any text.
    String,
    /// A JSON number (or a string holding one); integral values bind as 64-bit integers.
    Number,
    /// `true` or `false` (or those strings).
    Boolean,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
}

/// One declared parameter (`{"type": "number", "default": 0}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterSpec {
    /// Its type.
    #[serde(rename = "type")]
    pub param_type: ParamType,
    /// Used when an execution gives no value; without one the value is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// A label for forms (not used by the engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A description for forms (not used by the engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The `parameters` of a saved query: name -> declaration.
pub type ParameterDecls = BTreeMap<String, ParameterSpec>;

/// Parses a saved query's `parameters` JSON (`null` is none) and checks every default.
pub fn parse_decls(json: &Value) -> Result<ParameterDecls> {
    if json.is_null() {
        return Ok(ParameterDecls::new());
    }
    let decls: ParameterDecls = serde_json::from_value(json.clone())
        .map_err(|e| Error::Parameter(format!("parameters: {e}")))?;
    for (name, spec) in &decls {
        check_name(name)?;
        if let Some(default) = &spec.default {
            ParamValue::coerce(name, spec.param_type, default)?;
        }
    }
    Ok(decls)
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::Parameter(format!(
            "'{name}' is not a parameter name (letters, digits and _, not starting with a digit)"
        )))
    }
}

/// A bound value, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum ParamValue {
    /// Text.
    String(String),
    /// An integral number.
    Integer(i64),
    /// A fractional number.
    Float(f64),
    /// A boolean.
    Boolean(bool),
    /// A date.
    Date(NaiveDate),
}

impl ParamValue {
    /// Checks `value` against the declared type of parameter `name`.
    pub fn coerce(name: &str, ty: ParamType, value: &Value) -> Result<ParamValue> {
        let wrong = |what: &str| {
            Error::Parameter(format!("parameter '{name}' must be {what}, got {value}"))
        };
        match ty {
            ParamType::String => match value {
                Value::String(s) => Ok(ParamValue::String(s.clone())),
                _ => Err(wrong("a string")),
            },
            ParamType::Number => {
                let number = match value {
                    Value::Number(n) => n.clone(),
                    Value::String(s) => s
                        .trim()
                        .parse::<serde_json::Number>()
                        .map_err(|_| wrong("a number"))?,
                    _ => return Err(wrong("a number")),
                };
                if let Some(i) = number.as_i64() {
                    Ok(ParamValue::Integer(i))
                } else {
                    match number.as_f64() {
                        Some(f) if f.is_finite() => Ok(ParamValue::Float(f)),
                        _ => Err(wrong("a finite number")),
                    }
                }
            }
            ParamType::Boolean => match value {
                Value::Bool(b) => Ok(ParamValue::Boolean(*b)),
                Value::String(s) if s == "true" => Ok(ParamValue::Boolean(true)),
                Value::String(s) if s == "false" => Ok(ParamValue::Boolean(false)),
                _ => Err(wrong("a boolean")),
            },
            ParamType::Date => match value {
                Value::String(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map(ParamValue::Date)
                    .map_err(|_| wrong("a date (YYYY-MM-DD)")),
                _ => Err(wrong("a date (YYYY-MM-DD)")),
            },
        }
    }
}

/// How a target writes placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    /// `$1`, `$2`, ... (DataFusion, PostgreSQL); a parameter used twice is one number.
    Dollar,
    /// `?` (MySQL, MariaDB); a parameter used twice is bound twice.
    Question,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Text(String),
    Param(String),
    /// A `?` outside quotes, at this line.
    Question(usize),
}

/// A query text split at its `{{name}}` markers, checked against the declarations.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryTemplate {
    segments: Vec<Segment>,
    decls: ParameterDecls,
    normalized: String,
}

impl QueryTemplate {
    /// Splits `text` at its `{{name}}` markers. Refused: a marker of an undeclared
    /// parameter, a marker inside a quoted string (it would never be bound; write it
    /// unquoted), an unclosed `{{`, and placeholders written by hand (`$1`, `?`).
    pub fn parse(text: &str, decls: ParameterDecls) -> Result<Self> {
        let segments = split(text)?;
        for seg in &segments {
            if let Segment::Param(name) = seg
                && !decls.contains_key(name)
            {
                return Err(Error::Parameter(format!(
                    "{{{{{name}}}}} is used in the query but not declared in its parameters"
                )));
            }
        }
        let normalized = normalize(&segments);
        if normalized.is_empty() {
            return Err(Error::Syntax {
                message: "the query is empty".into(),
                line: None,
                column: None,
            });
        }
        Ok(QueryTemplate {
            segments,
            decls,
            normalized,
        })
    }

    /// The declarations.
    pub fn decls(&self) -> &ParameterDecls {
        &self.decls
    }

    /// Binds `values` (name -> JSON value; `null` or absent is none): every declared
    /// parameter gets its value or its default; a value for an undeclared name, a missing
    /// value without a default, or a value of the wrong type is refused.
    pub fn bind(&self, values: &serde_json::Map<String, Value>) -> Result<BoundQuery> {
        if let Some(unknown) = values.keys().find(|k| !self.decls.contains_key(*k)) {
            return Err(Error::Parameter(format!(
                "'{unknown}' is not a declared parameter of this query"
            )));
        }
        let mut bound = BTreeMap::new();
        for (name, spec) in &self.decls {
            let value = match values.get(name).filter(|v| !v.is_null()) {
                Some(v) => v,
                None => spec.default.as_ref().ok_or_else(|| {
                    Error::Parameter(format!("parameter '{name}' has no value and no default"))
                })?,
            };
            bound.insert(
                name.clone(),
                ParamValue::coerce(name, spec.param_type, value)?,
            );
        }
        Ok(BoundQuery {
            template: self.clone(),
            values: bound,
        })
    }
}

/// A query with every parameter's value: ready to render for a target.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundQuery {
    template: QueryTemplate,
    values: BTreeMap<String, ParamValue>,
}

impl BoundQuery {
    /// The SQL text with placeholders, and the values in placeholder order. A `?` written
    /// in the text (outside quotes) is refused for [`Placeholders::Question`], where it
    /// would be a placeholder.
    pub fn render(&self, style: Placeholders) -> Result<(String, Vec<ParamValue>)> {
        let mut sql = String::new();
        let mut args: Vec<ParamValue> = Vec::new();
        let mut numbers: BTreeMap<&str, usize> = BTreeMap::new();
        for seg in &self.template.segments {
            match seg {
                Segment::Text(t) => sql.push_str(t),
                Segment::Question(line) => {
                    if style == Placeholders::Question {
                        return Err(Error::Parameter(format!(
                            "'?' at line {line} is a placeholder here: declare a parameter and write {{{{name}}}}"
                        )));
                    }
                    sql.push('?');
                }
                Segment::Param(name) => {
                    // bind() gave every declared parameter a value; parse() refused others
                    let Some(value) = self.values.get(name) else {
                        continue;
                    };
                    match style {
                        Placeholders::Question => {
                            sql.push('?');
                            args.push(value.clone());
                        }
                        Placeholders::Dollar => {
                            let n = *numbers.entry(name.as_str()).or_insert_with(|| {
                                args.push(value.clone());
                                args.len()
                            });
                            sql.push('$');
                            sql.push_str(&n.to_string());
                        }
                    }
                }
            }
        }
        Ok((sql, args))
    }

    /// The text with comments removed and white space collapsed (strings untouched): two
    /// texts that differ only in layout share a cache entry.
    pub fn normalized_text(&self) -> &str {
        &self.template.normalized
    }

    /// Every declared parameter's bound value (defaults included), by name.
    pub fn values(&self) -> &BTreeMap<String, ParamValue> {
        &self.values
    }
}

/// Splits SQL text at its `{{name}}` markers and its `?`, outside quotes and comments.
fn split(text: &str) -> Result<Vec<Segment>> {
    let b = text.as_bytes();
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    let line_of = |pos: usize| text[..pos].matches('\n').count() + 1;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' | b'"' | b'`' => {
                let end = quoted_end(b, i, c).ok_or_else(|| Error::Syntax {
                    message: format!("unterminated quoted text starting at line {}", line_of(i)),
                    line: Some(line_of(i) as u64),
                    column: None,
                })?;
                let quoted = &text[i..end];
                if let Some(pos) = quoted.find("{{") {
                    return Err(Error::Parameter(format!(
                        "a {{{{parameter}}}} marker inside quotes (line {}) is never bound: write it unquoted, the value is a typed parameter",
                        line_of(i + pos)
                    )));
                }
                current.push_str(quoted);
                i = end;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                let end = text[i..].find('\n').map_or(b.len(), |p| i + p);
                current.push_str(&text[i..end]);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = text[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2);
                current.push_str(&text[i..end]);
                i = end;
            }
            b'{' if b.get(i + 1) == Some(&b'{') => {
                let close = text[i + 2..].find("}}").ok_or_else(|| {
                    Error::Parameter(format!("unclosed {{{{ at line {}", line_of(i)))
                })?;
                let name = text[i + 2..i + 2 + close].trim();
                check_name(name)?;
                if !current.is_empty() {
                    segments.push(Segment::Text(std::mem::take(&mut current)));
                }
                segments.push(Segment::Param(name.to_string()));
                i = i + 2 + close + 2;
            }
            b'?' => {
                // a placeholder for MySQL, an operator for PostgreSQL: render() decides
                segments.push(Segment::Text(std::mem::take(&mut current)));
                segments.push(Segment::Question(line_of(i)));
                i += 1;
            }
            b'$' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                return Err(Error::Parameter(format!(
                    "'${}' at line {} is a placeholder: declare a parameter and write {{{{name}}}}",
                    b[i + 1] as char,
                    line_of(i)
                )));
            }
            _ => {
                // copy one whole UTF-8 character
                let len = text[i..].chars().next().map_or(1, char::len_utf8);
                current.push_str(&text[i..i + len]);
                i += len;
            }
        }
    }
    if !current.is_empty() {
        segments.push(Segment::Text(current));
    }
    Ok(segments)
}

/// The end (exclusive) of a quoted run starting at `start`; a doubled quote is an escaped one.
fn quoted_end(b: &[u8], start: usize, quote: u8) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        if b[i] == b'\\' && quote == b'\'' {
            i += 2;
            continue;
        }
        if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

fn normalize(segments: &[Segment]) -> String {
    let mut out = String::new();
    for seg in segments {
        match seg {
            Segment::Param(name) => {
                out.push_str("{{");
                out.push_str(name);
                out.push_str("}}");
            }
            Segment::Text(t) => normalize_text(t, &mut out),
            Segment::Question(_) => out.push('?'),
        }
    }
    let trimmed = out.trim().trim_end_matches(';').trim_end();
    trimmed.to_string()
}

fn normalize_text(t: &str, out: &mut String) {
    let b = t.as_bytes();
    let mut i = 0;
    let mut space = false;
    let push_space = |out: &mut String, space: &mut bool| {
        if *space && !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
        *space = false;
    };
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => {
                let end = quoted_end(b, i, b[i]).unwrap_or(b.len());
                push_space(out, &mut space);
                out.push_str(&t[i..end]);
                i = end;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = t[i..].find('\n').map_or(b.len(), |p| i + p);
                space = true;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = t[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2);
                space = true;
            }
            c if c.is_ascii_whitespace() => {
                space = true;
                i += 1;
            }
            _ => {
                push_space(out, &mut space);
                let len = t[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&t[i..i + len]);
                i += len;
            }
        }
    }
    if space {
        out.push(' ');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decls(v: Value) -> ParameterDecls {
        parse_decls(&v).expect("decls")
    }

    #[test]
    fn markers_become_numbered_or_question_placeholders() {
        let t = QueryTemplate::parse(
            "SELECT * FROM t WHERE a > {{min}} AND b = {{ name }} OR a < {{min}}",
            decls(json!({"min": {"type": "number", "default": 0}, "name": {"type": "string"}})),
        )
        .expect("parse");
        let b = t
            .bind(json!({"name": "x"}).as_object().expect("obj"))
            .expect("bind");
        let (sql, args) = b.render(Placeholders::Dollar).expect("render");
        assert_eq!(sql, "SELECT * FROM t WHERE a > $1 AND b = $2 OR a < $1");
        assert_eq!(
            args,
            vec![ParamValue::Integer(0), ParamValue::String("x".into())]
        );
        let (sql, args) = b.render(Placeholders::Question).expect("render");
        assert_eq!(sql, "SELECT * FROM t WHERE a > ? AND b = ? OR a < ?");
        assert_eq!(args.len(), 3);
    }

    #[test]
    fn hostile_values_stay_values() {
        let t = QueryTemplate::parse("SELECT {{s}}", decls(json!({"s": {"type": "string"}})))
            .expect("parse");
        let b = t
            .bind(
                json!({"s": "'; DROP TABLE x; --"})
                    .as_object()
                    .expect("obj"),
            )
            .expect("bind");
        let (sql, args) = b.render(Placeholders::Dollar).expect("render");
        assert_eq!(sql, "SELECT $1");
        assert_eq!(args, vec![ParamValue::String("'; DROP TABLE x; --".into())]);
    }

    #[test]
    fn refusals() {
        let none = ParameterDecls::new();
        assert!(QueryTemplate::parse("SELECT {{x}}", none.clone()).is_err());
        assert!(
            QueryTemplate::parse("SELECT '{{x}}'", decls(json!({"x": {"type": "string"}})))
                .is_err()
        );
        assert!(QueryTemplate::parse("SELECT {{x", none.clone()).is_err());
        assert!(QueryTemplate::parse("SELECT $1", none.clone()).is_err());
        let q = QueryTemplate::parse("SELECT j ? 'k' FROM t", none.clone()).expect("pg operator");
        let q = q.bind(&serde_json::Map::new()).expect("bind");
        assert!(q.render(Placeholders::Dollar).is_ok());
        assert!(q.render(Placeholders::Question).is_err());
        assert!(QueryTemplate::parse("SELECT 'unterminated", none.clone()).is_err());
        assert!(QueryTemplate::parse("  -- only a comment\n ", none.clone()).is_err());
        // quotes and comments may hold ? and $1
        assert!(QueryTemplate::parse("SELECT '?', \"$1\" -- ?\n /* $2 */", none.clone()).is_ok());
        assert!(parse_decls(&json!({"x": {"type": "integer"}})).is_err());
        assert!(parse_decls(&json!({"x": {"type": "number", "default": "abc"}})).is_err());
        assert!(parse_decls(&json!({"1x": {"type": "number"}})).is_err());
        let t = QueryTemplate::parse("SELECT {{d}}", decls(json!({"d": {"type": "date"}})))
            .expect("parse");
        assert!(
            t.bind(&serde_json::Map::new()).is_err(),
            "no value, no default"
        );
        assert!(
            t.bind(json!({"d": "2024-13-01"}).as_object().expect("o"))
                .is_err()
        );
        assert!(
            t.bind(json!({"e": "2024-01-01"}).as_object().expect("o"))
                .is_err()
        );
        assert!(
            t.bind(json!({"d": "2024-02-29"}).as_object().expect("o"))
                .is_ok()
        );
    }

    #[test]
    fn normalised_text_ignores_layout_and_comments_not_strings() {
        let a = QueryTemplate::parse("SELECT  a,\n\tb -- c\nFROM t;", ParameterDecls::new())
            .expect("a");
        let b = QueryTemplate::parse("SELECT a, b FROM t", ParameterDecls::new()).expect("b");
        assert_eq!(a.normalized, b.normalized);
        let c = QueryTemplate::parse("SELECT 'a  b'", ParameterDecls::new()).expect("c");
        assert_eq!(c.normalized, "SELECT 'a  b'");
    }
}
