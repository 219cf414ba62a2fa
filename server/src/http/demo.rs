//! The demo page at `/` (sign in, projects, canvases, live editing), embedded here at compile
//! time so the binary serves it with no npm step: the page and its style sheet straight from
//! `client-sdk/demo/static/`, its script as bundled from `client-sdk/demo/src/` into
//! `server/assets/demo/app.js`. Rebuild the bundle with `npm run build:demo` in
//! `client-sdk/`; the test command fails if the committed bundle is stale.

use crate::error::ApiError;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../../client-sdk/demo/static/index.html");
const APP_JS: &str = include_str!("../../assets/demo/app.js");
const APP_CSS: &str = include_str!("../../../client-sdk/demo/static/app.css");

fn asset_response(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // small and rebuilt with the binary: always revalidate
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the page.
#[utoipa::path(get, path = "/", tag = "meta",
    responses((status = 200, description = "The demo page", content_type = "text/html", body = String)))]
pub async fn index() -> Response {
    asset_response("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /assets/{file}`: the page's script and style sheet; 404 in the error shape for any
/// other name.
#[utoipa::path(get, path = "/assets/{file}", tag = "meta",
    params(("file" = String, Path, description = "`app.js` or `app.css`")),
    responses((status = 200, description = "The asset", content(
        (String = "text/javascript"),
        (String = "text/css")))))]
pub async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => asset_response("text/javascript; charset=utf-8", APP_JS),
        "app.css" => asset_response("text/css; charset=utf-8", APP_CSS),
        _ => ApiError::NotFound("no such asset".into()).into_response(),
    }
}
