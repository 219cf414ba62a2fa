//! The OpenAPI document (`GET /api/v1/openapi.json`): it parses as OpenAPI 3.1, every route
//! the server serves is in it (and nothing else), every error response is the documented
//! error shape, and authenticated operations name the bearer scheme.
//!
//! Route coverage is checked two ways against the real server: the document's operations
//! equal [`ROUTES`] (the routes as this test knows them: a route added to the server but not
//! here, or the other way round, fails), and each documented path answers exactly its
//! documented methods (an undocumented method gets the router's 405, a documented one never
//! the router's "no route" 404).

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_tests::*;
use serde_json::Value;
use std::collections::BTreeSet;

/// Every route of the server: method and path as OpenAPI writes it.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/auth/signup"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/me"),
    ("post", "/api/v1/projects"),
    ("get", "/api/v1/projects"),
    ("get", "/api/v1/projects/{id}"),
    ("patch", "/api/v1/projects/{id}"),
    ("post", "/api/v1/projects/{id}/members"),
    ("get", "/api/v1/projects/{id}/members"),
    ("delete", "/api/v1/projects/{id}/members/{user_id}"),
    ("post", "/api/v1/projects/{id}/canvases"),
    ("get", "/api/v1/projects/{id}/canvases"),
    ("get", "/api/v1/canvases/{id}"),
    ("delete", "/api/v1/canvases/{id}"),
    ("get", "/api/v1/canvases/{id}/presence"),
    ("get", "/api/v1/canvases/{id}/blocks/{block_id}/data"),
    ("get", "/api/v1/canvases/{id}/state"),
    ("post", "/api/v1/canvases/{id}/updates"),
    ("patch", "/api/v1/canvases/{id}/blocks/{block_id}"),
    ("post", "/api/v1/canvases/{id}/blocks/{block_id}/refresh"),
    ("put", "/api/v1/canvases/{id}/favorite"),
    ("delete", "/api/v1/canvases/{id}/favorite"),
    ("get", "/api/v1/favorites"),
    ("get", "/api/v1/templates"),
    ("post", "/api/v1/templates"),
    ("get", "/api/v1/templates/{id}"),
    ("get", "/api/v1/canvases/{id}/sharing"),
    ("patch", "/api/v1/canvases/{id}/sharing"),
    ("put", "/api/v1/canvases/{id}/sharing/permissions/{user_id}"),
    (
        "delete",
        "/api/v1/canvases/{id}/sharing/permissions/{user_id}",
    ),
    ("post", "/api/v1/canvases/{id}/sharing/public-link"),
    ("delete", "/api/v1/canvases/{id}/sharing/public-link"),
    ("get", "/api/v1/canvases/{id}/versions"),
    ("post", "/api/v1/canvases/{id}/versions"),
    ("get", "/api/v1/canvases/{id}/versions/{version}"),
    ("get", "/api/v1/canvases/{id}/versions/{version}/diff"),
    ("post", "/api/v1/canvases/{id}/versions/{version}/restore"),
    (
        "post",
        "/api/v1/canvases/{id}/versions/{version}/blocks/{block_id}/restore",
    ),
    ("get", "/api/v1/audit"),
    ("post", "/api/v1/projects/{id}/data-sources"),
    ("get", "/api/v1/projects/{id}/data-sources"),
    ("get", "/api/v1/data-sources/{id}"),
    ("patch", "/api/v1/data-sources/{id}"),
    ("delete", "/api/v1/data-sources/{id}"),
    ("put", "/api/v1/data-sources/{id}/file"),
    ("post", "/api/v1/data-sources/{id}/sync"),
    ("post", "/api/v1/projects/{id}/queries"),
    ("get", "/api/v1/projects/{id}/queries"),
    ("get", "/api/v1/queries/{id}"),
    ("patch", "/api/v1/queries/{id}"),
    ("delete", "/api/v1/queries/{id}"),
    ("post", "/api/v1/queries/{id}/execute"),
    ("get", "/api/v1/executions/{id}"),
    ("get", "/api/v1/executions/{id}/result"),
    ("post", "/api/v1/executions/{id}/cancel"),
    ("post", "/api/v1/projects/{id}/pipelines"),
    ("get", "/api/v1/projects/{id}/pipelines"),
    ("get", "/api/v1/pipelines/{id}"),
    ("patch", "/api/v1/pipelines/{id}"),
    ("delete", "/api/v1/pipelines/{id}"),
    ("post", "/api/v1/pipelines/{id}/run"),
    ("post", "/api/v1/projects/{id}/webhooks"),
    ("get", "/api/v1/projects/{id}/webhooks"),
    ("delete", "/api/v1/projects/{id}/webhooks/{webhook_id}"),
    (
        "get",
        "/api/v1/projects/{id}/webhooks/{webhook_id}/deliveries",
    ),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/"),
    ("get", "/assets/{file}"),
    ("get", "/ws/{canvas_id}"),
];

/// Operations that need no credentials (all others name the bearer scheme, alone).
const PUBLIC: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/auth/signup"),
    ("post", "/api/v1/auth/login"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/"),
    ("get", "/assets/{file}"),
    ("get", "/ws/{canvas_id}"),
];

/// Operations where the bearer token is optional (a public link token works instead).
const OPTIONAL_AUTH: &[(&str, &str)] = &[
    ("get", "/api/v1/canvases/{id}"),
    ("get", "/api/v1/canvases/{id}/state"),
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

async fn document(server: &TestServer) -> Value {
    let response = reqwest::get(format!("http://{}/api/v1/openapi.json", server.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.unwrap()
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(*method).is_some() {
                ops.insert(((*method).to_owned(), path.clone()));
            }
        }
    }
    ops
}

fn set(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect()
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

/// Every `$ref` in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref" {
                    out.push(v.as_str().unwrap_or_default().to_owned());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_well_formed() {
    let server = TestServer::start().await;
    let doc = document(&server).await;

    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    // The whole document reads as an OpenAPI 3.1 object model (the oas3 crate's, independent
    // of utoipa which writes it: a field of the wrong shape fails here).
    let parsed = oas3::from_json(doc.to_string()).unwrap();
    let version = parsed.validate_version().unwrap();
    assert_eq!((version.major, version.minor), (3, 1));
    assert_eq!(parsed.operations().count(), operations(&doc).len());

    let mut all = Vec::new();
    refs(&doc, &mut all);
    for reference in &all {
        assert!(
            resolve(&doc, reference).is_some(),
            "{reference} does not resolve"
        );
    }

    // The bearer scheme, and the error schema `{"error": {"code", "message"}}`.
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    let detail = match &error["properties"]["error"]["$ref"] {
        Value::String(r) => resolve(&doc, r).unwrap().clone(),
        _ => error["properties"]["error"].clone(),
    };
    let mut required: Vec<&str> = detail["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort_unstable();
    assert_eq!(required, ["code", "message"]);
    assert_eq!(detail["properties"]["code"]["type"], "string");
    assert_eq!(detail["properties"]["message"]["type"], "string");

    let public = set(PUBLIC);
    let optional = set(OPTIONAL_AUTH);
    let mut error_sets: std::collections::BTreeMap<String, BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let what = format!("{} {path}", method.to_uppercase());
        // path parameters are all declared
        for name in path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        {
            let declared = op["parameters"].as_array().is_some_and(|params| {
                params
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true)
            });
            assert!(declared, "{what}: path parameter {name} is not declared");
        }
        // security
        let key = (method.clone(), path.clone());
        let security = op.get("security").cloned().unwrap_or(Value::Null);
        if public.contains(&key) {
            assert!(
                security.is_null() || security == serde_json::json!([]),
                "{what}: {security}"
            );
        } else if optional.contains(&key) {
            assert_eq!(
                security,
                serde_json::json!([{ "bearer": [] }, {}]),
                "{what}"
            );
        } else {
            assert_eq!(security, serde_json::json!([{ "bearer": [] }]), "{what}");
        }
        // responses: a success, and every error with the error schema
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses
                .keys()
                .any(|s| s.starts_with('2') || s.as_str() == "101"),
            "{what}: no success response"
        );
        let mut errors: Vec<&str> = Vec::new();
        for (status, response) in responses {
            if status.starts_with('2') || status.as_str() == "101" {
                continue;
            }
            if path == "/readyz" && status == "503" {
                continue; // not an error: the readiness report itself
            }
            errors.push(status);
            let schema = &response["content"]["application/json"]["schema"];
            assert_eq!(
                schema["$ref"], "#/components/schemas/Error",
                "{what} {status}: {response}"
            );
        }
        // errors that follow from the operation's shape (server/src/http/openapi.rs)
        assert!(errors.contains(&"500"), "{what}: no 500 response");
        let reads_token = !public.contains(&key);
        for status in ["401", "429", "503"] {
            if reads_token {
                assert!(errors.contains(&status), "{what}: no {status} response");
            }
        }
        if !reads_token && path != "/api/v1/auth/login" {
            assert!(
                !errors.contains(&"401"),
                "{what}: a 401 without credentials"
            );
        }
        let has_body = op.get("requestBody").is_some();
        assert_eq!(errors.contains(&"413"), has_body, "{what}: 413 iff a body");
        if has_body {
            assert!(errors.contains(&"400"), "{what}: a body and no 400");
        }
        if path.contains('{') {
            assert!(
                errors.contains(&"404"),
                "{what}: a resource path and no 404"
            );
        }
        error_sets.insert(what.clone(), errors.iter().map(|s| s.to_string()).collect());
    }
    // what only some handlers answer is theirs: the lists differ by operation
    let errors_of = |what: &str| -> BTreeSet<String> {
        error_sets
            .get(what)
            .unwrap_or_else(|| panic!("{what} is not documented"))
            .clone()
    };
    let strings =
        |list: &[&str]| -> BTreeSet<String> { list.iter().map(|s| s.to_string()).collect() };
    assert_eq!(errors_of("GET /healthz"), strings(&["500"]));
    assert_eq!(
        errors_of("GET /api/v1/auth/me"),
        strings(&["401", "429", "500", "503"])
    );
    assert_eq!(
        errors_of("POST /api/v1/auth/signup"),
        strings(&["400", "409", "413", "429", "500", "503"])
    );
    assert_eq!(
        errors_of("POST /api/v1/canvases/{id}/updates"),
        strings(&[
            "400", "401", "403", "404", "413", "422", "429", "500", "503"
        ])
    );
    assert_eq!(
        errors_of("GET /api/v1/executions/{id}"),
        strings(&["400", "401", "404", "429", "500", "503"]),
        "any member reads an execution; a stranger gets 404, never 403"
    );
}

/// The check every REST call of the suite goes through (`canvas_tests::contract`): it finds
/// the operation a concrete path falls under and refuses a status the document does not
/// list for it.
#[test]
fn the_suite_holds_every_status_it_gets_to_the_document() {
    use canvas_tests::contract::{check, documented, template};
    let id = "3f6c4f0e-8a8e-4d43-9d55-0d0c6f1b2a11";
    assert_eq!(
        template(&format!("/api/v1/canvases/{id}/versions/7/diff?to=9")),
        Some("/api/v1/canvases/{id}/versions/{version}/diff")
    );
    // a literal segment wins over a parameter
    assert_eq!(template("/api/v1/favorites"), Some("/api/v1/favorites"));
    assert_eq!(template("/api/v1/no/such/route/here/at/all"), None);
    let healthz = documented("GET", "/healthz").unwrap();
    assert!(healthz.contains(&"200".to_owned()) && !healthz.contains(&"401".to_owned()));
    assert_eq!(documented("PATCH", "/healthz"), None, "no such operation");
    check("GET", &format!("/api/v1/canvases/{id}"), 403);
    check("PATCH", "/healthz", 405); // not an operation: not checked
    let undocumented = std::panic::catch_unwind(|| check("GET", "/healthz", 401));
    assert!(
        undocumented.is_err(),
        "a 401 from /healthz must fail the test"
    );
    let undocumented =
        std::panic::catch_unwind(|| check("GET", &format!("/api/v1/executions/{id}"), 403));
    assert!(
        undocumented.is_err(),
        "GET /executions/{{id}} documents no 403"
    );
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let documented = operations(&doc);
    let expected = set(ROUTES);
    let missing: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not in the document: {missing:?}; in the document but not in ROUTES: {extra:?}"
    );

    // Each documented path answers exactly its documented methods. Parameters get values that
    // parse (a UUID for ids, a number for versions), so a served route answers with its own
    // status (401 without a token, 404 for an unknown resource, ...), never the router's.
    let client = reqwest::Client::new();
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = path
            .replace("{version}", "1")
            .replace("{file}", "app.css")
            .split('/')
            .map(|s| {
                if s.starts_with('{') {
                    "00000000-0000-4000-8000-000000000000"
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in METHODS {
            let served = documented.contains(&((*method).to_owned(), path.clone()));
            let response = client
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("http://{}{concrete}", server.addr),
                )
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value =
                serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null);
            let what = format!("{} {concrete}: {status} {body}", method.to_uppercase());
            if served {
                assert_ne!(status, 405, "{what}");
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(!message.starts_with("no route for"), "{what}");
            } else {
                assert_eq!(status, 405, "{what}");
            }
            if status >= 400 {
                assert!(
                    body["error"]["code"].is_string() && body["error"]["message"].is_string(),
                    "{what}: not the error shape"
                );
            }
        }
    }
}

/// Every route reaches the router through utoipa-axum's `routes!` (which documents it): no
/// server source outside its tests registers one any other way (`.route(...)`,
/// `.route_service(...)`, `.nest_service(...)`, `.merge(...)`), and the one `.nest` is the
/// documented `/api/v1` router. With the test above, this covers routes the document and
/// the list would both miss.
#[test]
fn no_route_bypasses_the_document() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src");
    let mut files = vec![src];
    let mut offending = Vec::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // the file's own unit tests may build routers of their own
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            let plain = [".route(", ".route_service(", ".nest_service(", ".merge("]
                .iter()
                .any(|p| line.contains(p));
            let nest = line.contains(".nest(") && !line.contains(".nest(\"/api/v1\", api)");
            if plain || nest {
                offending.push(format!("{}:{}: {line}", path.display(), n + 1));
            }
        }
    }
    assert!(
        offending.is_empty(),
        "routes registered outside routes!(...):\n{}",
        offending.join("\n")
    );
}
