//! Saved queries: their type, their parameters, and where they run.
//!
//! - [`params`]: `{{name}}` markers, declarations, binding to placeholders.
//! - `engine`: Apache DataFusion over file, api and streaming sources.
//! - [`result`]: columns, JSON rows, caps, MessagePack.
//! - [`cache`]: the result cache key.
//! - [`retarget`]: a template query's `{{source}}` table marker.
//! - `tables`: file tables decoded once per version and kept in memory, within a budget.

pub mod cache;
pub(crate) mod engine;
pub mod params;
pub mod result;
pub mod retarget;
pub(crate) mod tables;

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::source::DataSource;
use params::{BoundQuery, QueryTemplate};

/// A saved query's `query_type`. A type that is none of these parses to
/// [`Error::UnsupportedQueryType`] too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryType {
    /// SQL: runs.
    Sql,
    /// Python: stored, refused at execution ([`Error::UnsupportedQueryType`]).
    Python,
    /// Natural language: stored, refused at execution.
    NaturalLanguage,
}

impl FromStr for QueryType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sql" => Ok(QueryType::Sql),
            "python" => Ok(QueryType::Python),
            "natural_language" => Ok(QueryType::NaturalLanguage),
            other => Err(Error::UnsupportedQueryType(other.to_string())),
        }
    }
}

/// A saved query ready to bind: its text checked against its declared parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    template: QueryTemplate,
}

impl Query {
    /// Checks a saved query (`query_type`, `query_text`, `parameters` as stored). Only
    /// `sql` is accepted: `python` and `natural_language` give
    /// [`Error::UnsupportedQueryType`]. Run it when a query is saved, to refuse a text whose
    /// markers are undeclared, and again before each execution.
    pub fn new(query_type: &str, text: &str, parameters: &Value) -> Result<Query> {
        match query_type.parse::<QueryType>()? {
            QueryType::Sql => {}
            other => {
                let name = serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                return Err(Error::UnsupportedQueryType(name));
            }
        }
        let decls = params::parse_decls(parameters)?;
        Ok(Query {
            template: QueryTemplate::parse(text, decls)?,
        })
    }

    /// Binds an execution's `parameters` (a JSON object, or `null` for the defaults).
    pub fn bind(&self, values: &Value) -> Result<BoundQuery> {
        match values {
            Value::Null => self.template.bind(&serde_json::Map::new()),
            Value::Object(m) => self.template.bind(m),
            _ => Err(Error::Parameter(
                "parameters must be a JSON object of name -> value".into(),
            )),
        }
    }

    /// The declared parameters.
    pub fn parameters(&self) -> &params::ParameterDecls {
        self.template.decls()
    }
}

/// Where a query runs.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// DataFusion over these sources (a project's file, api and streaming sources): each is
    /// a table named after its source; only the tables the query names are opened.
    Tables(&'a [DataSource]),
    /// Pushed down to this database source.
    Database(&'a DataSource),
}
