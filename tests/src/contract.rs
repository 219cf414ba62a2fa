//! The API contract, checked on every REST call the tests make through [`crate::Api`]: the
//! status a call gets must be one the server's OpenAPI document (`GET /api/v1/openapi.json`)
//! lists for that operation. The suite's calls reach most error paths on purpose (bad ids,
//! strangers, viewers, oversized bodies, refused updates), so a handler answering a status
//! its operation does not document fails the test that provoked it, deterministically;
//! Schemathesis (scripts/lib/api_contract.sh) does the same with generated requests.
//!
//! A call to a path or method the document does not describe (an unknown route's 404, a
//! 405) is not checked: there is no operation to hold it to.

use serde_json::Value;
use std::sync::OnceLock;

/// The document, as the server serves it.
fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let json = canvas_server::http::openapi::document()
            .to_json()
            .expect("the OpenAPI document renders");
        serde_json::from_str(&json).expect("the OpenAPI document is JSON")
    })
}

/// The document's path template a concrete path falls under (`/api/v1/canvases/{id}` for
/// `/api/v1/canvases/3f…`): segments equal or a `{parameter}`, the most literal segments
/// winning (`/templates/x` over `/{anything}/x`).
pub fn template(path: &str) -> Option<&'static str> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').collect();
    let paths = document().get("paths")?.as_object()?;
    paths
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') && part.ends_with('}') {
                    if segment.is_empty() {
                        return None;
                    }
                } else if part == segment {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, template.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template)
}

/// The statuses the document lists for `method path`, or `None` when it describes no such
/// operation.
pub fn documented(method: &str, path: &str) -> Option<Vec<String>> {
    let template = template(path)?;
    let operation = document()
        .get("paths")?
        .get(template)?
        .get(method.to_ascii_lowercase())?;
    let responses = operation.get("responses")?.as_object()?;
    Some(responses.keys().cloned().collect())
}

/// Panics, naming the operation, when `status` is not documented for `method path`.
pub fn check(method: &str, path: &str, status: u16) {
    let Some(listed) = documented(method, path) else {
        return;
    };
    let status = status.to_string();
    if listed.iter().any(|s| *s == status || s == "default") {
        return;
    }
    panic!(
        "{method} {path} answered {status}, which the OpenAPI document does not list for \
         {method} {} (it lists {})",
        template(path).unwrap_or_default(),
        listed.join(", ")
    );
}
