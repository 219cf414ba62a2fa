//! A narrative's `data_bindings` as its content JSON shows them, and its text rendered with
//! their values. Pure functions of a JSON value: the JSON view (`crate::json`) uses them to
//! add `rendered_text`, and `crate::bindings` to read and write bindings in the document.

use serde_json::Value;

use crate::blocks::DATA_BINDINGS_KEY;

/// Key of a data binding's computed value (written by the server only).
pub const VALUE_KEY: &str = "value";
/// One entry of a narrative's `data_bindings`.
#[derive(Debug, Clone, PartialEq)]
pub struct NarrativeBinding {
    /// Its index in the array.
    pub index: u32,
    /// The placeholder name (`{{key}}` in the text).
    pub key: String,
    /// The id of the bound block whose data it is computed from.
    pub source: String,
    /// `percentage_change`, `sum`, `avg`, `min`, `max`, `count`, `latest` or `first`.
    pub calculation: String,
    /// The value the server last wrote, if any.
    pub value: Option<Value>,
}

/// Reads `data_bindings` from a content JSON object (as the JSON view shows it): every
/// well-formed entry (`key`, `source`, `calculation` strings); others are skipped.
pub fn bindings_in(content: &Value) -> Vec<NarrativeBinding> {
    let Some(Value::Array(entries)) = content.get(DATA_BINDINGS_KEY) else {
        return Vec::new();
    };
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
            Some(NarrativeBinding {
                index: u32::try_from(i).ok()?,
                key: text("key")?,
                source: text("source")?,
                calculation: text("calculation")?,
                value: e.get(VALUE_KEY).filter(|v| !v.is_null()).cloned(),
            })
        })
        .collect()
}

/// `text` with every `{{key}}` whose binding has a value replaced by that value (numbers as
/// JSON writes them, strings as they are); other placeholders stay.
pub fn render_text(text: &str, bindings: &[NarrativeBinding]) -> String {
    let mut out = text.to_owned();
    for b in bindings {
        let Some(value) = &b.value else { continue };
        let shown = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out = out.replace(&format!("{{{{{}}}}}", b.key), &shown);
    }
    out
}

/// Adds `rendered_text` to a narrative's content JSON when it has data bindings (the JSON
/// view calls this; `text` stays the template people edit).
pub(crate) fn render_into(content: &mut Value) {
    let bindings = bindings_in(content);
    if bindings.is_empty() {
        return;
    }
    let Some(text) = content.get("text").and_then(Value::as_str) else {
        return;
    };
    let rendered = render_text(text, &bindings);
    if let Value::Object(map) = content {
        map.insert("rendered_text".into(), Value::String(rendered));
    }
}
