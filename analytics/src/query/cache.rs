//! The result cache key: a SHA-256 over the sources a query reads (id and data version),
//! its normalised text and its bound parameters. The server keeps results under
//! `query:result:{key}`.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::params::{BoundQuery, ParamValue};

/// One source a query reads, at the version it reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceVersion {
    /// The source's id.
    pub id: Uuid,
    /// Its data version (see [`crate::SyncReport::data_version`]); `None` when unknown.
    pub version: Option<String>,
}

/// The cache key (64 hex digits) of `query` over `sources` (order does not matter).
pub fn cache_key(sources: &[SourceVersion], query: &BoundQuery) -> String {
    let mut sources = sources.to_vec();
    sources.sort();
    sources.dedup();
    let mut h = Sha256::new();
    // every part is length-prefixed, so no two inputs hash the same bytes
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(b"canvas-analytics/cache/v1");
    for s in &sources {
        part(s.id.as_bytes());
        match &s.version {
            Some(v) => part(format!("v:{v}").as_bytes()),
            None => part(b"none"),
        }
    }
    part(query.normalized_text().as_bytes());
    for (name, value) in query.values() {
        part(name.as_bytes());
        let text = match value {
            ParamValue::String(s) => format!("s:{s}"),
            ParamValue::Integer(i) => format!("i:{i}"),
            ParamValue::Float(f) => format!("f:{}", f.to_bits()),
            ParamValue::Boolean(b) => format!("b:{b}"),
            ParamValue::Date(d) => format!("d:{d}"),
        };
        part(text.as_bytes());
    }
    let digest = h.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::params::{QueryTemplate, parse_decls};
    use serde_json::json;

    fn bound(text: &str, v: serde_json::Value) -> BoundQuery {
        let decls = parse_decls(&json!({"n": {"type": "number", "default": 1}})).expect("decls");
        QueryTemplate::parse(text, decls)
            .expect("parse")
            .bind(v.as_object().expect("obj"))
            .expect("bind")
    }

    #[test]
    fn key_changes_with_each_part_and_not_with_layout() {
        let id = Uuid::new_v4();
        let src = |v: &str| {
            vec![SourceVersion {
                id,
                version: Some(v.into()),
            }]
        };
        let base = cache_key(&src("a"), &bound("SELECT {{n}}", json!({})));
        assert_eq!(base.len(), 64);
        assert_eq!(
            base,
            cache_key(&src("a"), &bound("SELECT   {{n}} ;", json!({"n": 1})))
        );
        assert_ne!(
            base,
            cache_key(&src("b"), &bound("SELECT {{n}}", json!({})))
        );
        assert_ne!(
            base,
            cache_key(&src("a"), &bound("SELECT {{n}}", json!({"n": 2})))
        );
        assert_ne!(
            base,
            cache_key(&src("a"), &bound("SELECT {{n}} + 0", json!({})))
        );
        let other = vec![SourceVersion {
            id: Uuid::new_v4(),
            version: Some("a".into()),
        }];
        assert_ne!(base, cache_key(&other, &bound("SELECT {{n}}", json!({}))));
    }
}
