//! Blocks bound to live data, as the document says them.
//!
//! - A chart or table block whose `content.data_source` is `{type: "query", query_id,
//!   parameters}` is *bound*: the server resolves the query and sends the result to the room
//!   (the result is derived data and never enters the document). [`bound_blocks`] lists
//!   them with their binding and their content (for `config`, `columns`, `pagination`, ...).
//! - A narrative block's `content.data_bindings` (`key`, `source` block id, `calculation`,
//!   `value`) name metrics computed from a bound block's data; the server writes `value`
//!   into the document ([`set_binding_value`]), clients never do (the inspector refuses it),
//!   and the JSON view renders `{{key}}` in the text with the values ([`render_text`]).
//!
//! Content entries may be plain JSON (Yjs `Any`) or nested Maps: both are read the same
//! (through the JSON view of the block). `data_bindings` is an Array whose entries are plain
//! objects or Maps; a plain `Any` array is read too. The pure reading of a content JSON
//! value (`bindings_in`, `render_text`) is in `crate::narrative`, below the JSON view.

use serde_json::{Map as JsonMap, Value};
use yrs::{Any, Array, ArrayRef, Map, MapRef, Number, Out, ReadTxn, TransactionMut};

use crate::blocks::{DATA_BINDINGS_KEY, NARRATIVE};
use crate::json::block_json;
pub use crate::narrative::{NarrativeBinding, VALUE_KEY, bindings_in, render_text};
use crate::schema::{BLOCKS, CONTENT};

/// Content key of a block's data source.
pub const DATA_SOURCE_KEY: &str = "data_source";
/// Block types that may be bound to a query.
pub const BINDABLE: [&str; 2] = ["chart", "table"];

/// A block's binding to a saved query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryBinding {
    /// The saved query (as written: the server checks it is a query of the canvas's project).
    pub query_id: String,
    /// The parameters given to it (an object; `{}` when absent).
    pub parameters: Value,
}

/// A chart or table block with a query data source.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundBlock {
    /// The block's id.
    pub id: String,
    /// `chart` or `table`.
    pub kind: String,
    /// The binding, or why it cannot be used (a missing `query_id`, parameters that are not
    /// an object).
    pub binding: Result<QueryBinding, String>,
    /// The block's content as JSON (`config`, `columns`, `pagination`, `sorting`, ...).
    pub content: Value,
}

/// Reads a block's query binding out of its content JSON: `None` when the block has no
/// query data source.
pub fn query_binding(content: &Value) -> Option<Result<QueryBinding, String>> {
    let source = content.get(DATA_SOURCE_KEY)?;
    if source.get("type").and_then(Value::as_str) != Some("query") {
        return None;
    }
    let query_id = match source.get("query_id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => {
            return Some(Err(
                "data_source.query_id must name a saved query (a string)".into(),
            ));
        }
    };
    let parameters = match source.get("parameters") {
        None | Some(Value::Null) => Value::Object(JsonMap::new()),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => return Some(Err("data_source.parameters must be an object".into())),
    };
    Some(Ok(QueryBinding {
        query_id,
        parameters,
    }))
}

/// Every chart or table block bound to a query, ordered by id.
pub fn bound_blocks<T: ReadTxn>(txn: &T) -> Vec<BoundBlock> {
    let mut out: Vec<BoundBlock> = block_ids(txn)
        .into_iter()
        .filter_map(|id| bound_block(txn, &id))
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Block `id` if it is a chart or table bound to a query.
pub fn bound_block<T: ReadTxn>(txn: &T, id: &str) -> Option<BoundBlock> {
    let block = block_json(txn, id)?;
    let kind = block.get("type")?.as_str()?.to_owned();
    if !BINDABLE.contains(&kind.as_str()) {
        return None;
    }
    let content = block.get(CONTENT).cloned().unwrap_or(Value::Null);
    let binding = query_binding(&content)?;
    Some(BoundBlock {
        id: id.to_owned(),
        kind,
        binding,
        content,
    })
}

fn block_ids<T: ReadTxn>(txn: &T) -> Vec<String> {
    match txn.get_map(BLOCKS) {
        Some(blocks) => blocks.keys(txn).map(str::to_owned).collect(),
        None => Vec::new(),
    }
}

/// Whether block `id` is a narrative with at least one data binding.
pub fn has_bindings<T: ReadTxn>(txn: &T, id: &str) -> bool {
    block_json(txn, id).is_some_and(|block| {
        block.get("type").and_then(Value::as_str) == Some(NARRATIVE)
            && block
                .get(CONTENT)
                .is_some_and(|content| !bindings_in(content).is_empty())
    })
}

/// Every narrative block with at least one data binding: `(block id, bindings)`, by id.
pub fn narratives<T: ReadTxn>(txn: &T) -> Vec<(String, Vec<NarrativeBinding>)> {
    let mut out: Vec<(String, Vec<NarrativeBinding>)> = block_ids(txn)
        .into_iter()
        .filter_map(|id| {
            let block = block_json(txn, &id)?;
            if block.get("type")?.as_str()? != NARRATIVE {
                return None;
            }
            let bindings = bindings_in(block.get(CONTENT)?);
            (!bindings.is_empty()).then_some((id, bindings))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn content_map<T: ReadTxn>(txn: &T, block: &str) -> Option<MapRef> {
    let Out::YMap(block) = txn.get_map(BLOCKS)?.get(txn, block)? else {
        return None;
    };
    match block.get(txn, CONTENT)? {
        Out::YMap(content) => Some(content),
        _ => None,
    }
}

/// Writes `value` into entry `index` of narrative `block`'s `data_bindings`, if that entry
/// still has `key`: set in a Map entry; a plain entry is replaced by one that carries it (a
/// plain `Any` array is replaced whole). Writes nothing (and returns `false`) when the value
/// is already there or the entry is gone.
pub fn set_binding_value(
    txn: &mut TransactionMut,
    block: &str,
    index: u32,
    key: &str,
    value: &Value,
) -> bool {
    let Some(content) = content_map(&*txn, block) else {
        return false;
    };
    let new_value = json_to_any(value);
    match content.get(&*txn, DATA_BINDINGS_KEY) {
        Some(Out::YArray(array)) => set_in_array(txn, &array, index, key, new_value),
        Some(Out::Any(Any::Array(items))) => {
            let Some(Any::Map(entry)) = items.get(index as usize) else {
                return false;
            };
            if !entry_matches(entry, key, &new_value) {
                return false;
            }
            let mut items = items.to_vec();
            items[index as usize] = with_value(entry, new_value);
            content.insert(txn, DATA_BINDINGS_KEY, Any::Array(items.into()));
            true
        }
        _ => false,
    }
}

/// Whether a plain entry is the one meant (same key) and lacks this value.
fn entry_matches(entry: &std::collections::HashMap<String, Any>, key: &str, value: &Any) -> bool {
    matches!(entry.get("key"), Some(Any::String(k)) if &**k == key)
        && entry.get(VALUE_KEY) != Some(value)
}

fn with_value(entry: &std::collections::HashMap<String, Any>, value: Any) -> Any {
    let mut entry = entry.clone();
    entry.insert(VALUE_KEY.to_owned(), value);
    Any::Map(entry.into())
}

fn set_in_array(
    txn: &mut TransactionMut,
    array: &ArrayRef,
    index: u32,
    key: &str,
    value: Any,
) -> bool {
    match array.get(&*txn, index) {
        Some(Out::YMap(entry)) => {
            let same_key =
                matches!(entry.get(&*txn, "key"), Some(Out::Any(Any::String(k))) if &*k == key);
            if !same_key {
                return false;
            }
            entry.try_update(txn, VALUE_KEY, value)
        }
        Some(Out::Any(Any::Map(entry))) => {
            if !entry_matches(&entry, key, &value) {
                return false;
            }
            let replaced = with_value(&entry, value);
            array.remove(txn, index);
            array.insert(txn, index, replaced);
            true
        }
        _ => false,
    }
}

/// A JSON value as a yrs `Any` (integral numbers stay integers).
pub fn json_to_any(value: &Value) -> Any {
    match value {
        Value::Null => Any::Null,
        Value::Bool(b) => Any::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) if i.unsigned_abs() <= (1 << 53) => Any::Number(Number::Int(i)),
            _ => Any::Number(Number::Float(n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => Any::String(s.as_str().into()),
        Value::Array(items) => Any::Array(items.iter().map(json_to_any).collect()),
        Value::Object(map) => Any::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_any(v)))
                .collect::<std::collections::HashMap<_, _>>()
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CanvasDoc;
    use serde_json::json;
    use yrs::{ArrayPrelim, In, MapPrelim, Transact, WriteTxn};

    fn add(c: &mut CanvasDoc, id: &str, kind: &str, content: MapPrelim) {
        c.edit(|txn| {
            let blocks = txn.get_or_insert_map(BLOCKS);
            blocks.insert(
                txn,
                id,
                MapPrelim::from([("type", In::from(kind)), ("content", In::Map(content))]),
            );
        });
    }

    fn any(v: Value) -> In {
        In::Any(json_to_any(&v))
    }

    #[test]
    fn bound_blocks_are_read_from_plain_values_and_maps() {
        let mut c = CanvasDoc::new();
        add(
            &mut c,
            "plain",
            "chart",
            MapPrelim::from([
                (
                    "data_source",
                    any(json!({"type": "query", "query_id": "q1", "parameters": {"min": 3}})),
                ),
                (
                    "config",
                    any(json!({"x_axis": "region", "y_axis": "amount"})),
                ),
            ]),
        );
        add(
            &mut c,
            "nested",
            "table",
            MapPrelim::from([(
                "data_source",
                In::Map(MapPrelim::from([
                    ("type", In::from("query")),
                    ("query_id", In::from("q2")),
                ])),
            )]),
        );
        add(
            &mut c,
            "bad",
            "chart",
            MapPrelim::from([("data_source", any(json!({"type": "query"})))]),
        );
        add(
            &mut c,
            "text",
            "narrative",
            MapPrelim::from([(
                "data_source",
                any(json!({"type": "query", "query_id": "q"})),
            )]),
        );
        let txn = c.doc().transact();
        let bound = bound_blocks(&txn);
        let ids: Vec<&str> = bound.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["bad", "nested", "plain"]);
        assert!(bound[0].binding.is_err());
        assert_eq!(
            bound[1].binding,
            Ok(QueryBinding {
                query_id: "q2".into(),
                parameters: json!({})
            })
        );
        assert_eq!(
            bound[2].binding.as_ref().map(|b| b.parameters.clone()),
            Ok(json!({"min": 3}))
        );
        assert_eq!(bound[2].content["config"]["x_axis"], "region");
    }

    #[test]
    fn values_are_set_in_maps_and_replace_plain_entries() {
        let mut c = CanvasDoc::new();
        let entry = |k: &str| json!({"key": k, "source": "b1", "calculation": "sum"});
        add(
            &mut c,
            "n",
            "narrative",
            MapPrelim::from([
                (
                    "text",
                    In::from(yrs::TextPrelim::new("total {{a}}, change {{b}} {{c}}")),
                ),
                (
                    "data_bindings",
                    In::Array(ArrayPrelim::from([
                        any(entry("a")),
                        In::Map(MapPrelim::from([
                            ("key", In::from("b")),
                            ("source", In::from("b1")),
                            ("calculation", In::from("percentage_change")),
                        ])),
                        any(entry("c")),
                    ])),
                ),
            ]),
        );
        let (done, update) = c.edit(|txn| set_binding_value(txn, "n", 0, "a", &json!(42)));
        assert!(done && update.is_some());
        let (done, _) = c.edit(|txn| set_binding_value(txn, "n", 1, "b", &json!(25.5)));
        assert!(done);
        // same value again: nothing written; wrong key at that index: nothing written
        let (done, update) = c.edit(|txn| set_binding_value(txn, "n", 0, "a", &json!(42)));
        assert!(!done && update.is_none());
        let (done, _) = c.edit(|txn| set_binding_value(txn, "n", 2, "a", &json!(1)));
        assert!(!done);
        let txn = c.doc().transact();
        let all = narratives(&txn);
        assert_eq!(all.len(), 1);
        let values: Vec<Option<Value>> = all[0].1.iter().map(|b| b.value.clone()).collect();
        assert_eq!(values, [Some(json!(42)), Some(json!(25.5)), None]);
        let view = crate::json::block_json(&txn, "n").expect("block");
        assert_eq!(
            view["content"]["rendered_text"],
            "total 42, change 25.5 {{c}}"
        );
        assert_eq!(view["content"]["text"], "total {{a}}, change {{b}} {{c}}");
    }

    #[test]
    fn a_plain_array_of_bindings_is_replaced_whole() {
        let mut c = CanvasDoc::new();
        add(
            &mut c,
            "n",
            "narrative",
            MapPrelim::from([(
                "data_bindings",
                any(json!([{"key": "k", "source": "b", "calculation": "max"}])),
            )]),
        );
        let (done, _) = c.edit(|txn| set_binding_value(txn, "n", 0, "k", &json!("x")));
        assert!(done);
        let txn = c.doc().transact();
        assert_eq!(narratives(&txn)[0].1[0].value, Some(json!("x")));
    }
}
