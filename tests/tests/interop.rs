//! Interoperability with the real npm packages `yjs` and `y-websocket`: runs
//! `tests/js/interop.mjs` with Node against a server started here.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_tests::*;
use std::path::PathBuf;
use std::process::Stdio;

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

#[tokio::test]
async fn yjs_and_y_websocket_clients_edit_together() {
    let dir = js_dir();
    assert!(
        dir.join("node_modules").is_dir(),
        "tests/js/node_modules is missing: run ./scripts/test.sh (or `npm ci` in tests/js) first"
    );
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg("interop.mjs")
            .current_dir(&dir)
            .env("CANVAS_WS_URL", format!("ws://{}/ws", server.addr))
            .env("CANVAS_ID", &team.canvas)
            .env("TOKEN_EDITOR_A", &team.owner.token)
            .env("TOKEN_EDITOR_B", &team.editor.token)
            .env("TOKEN_VIEWER", &team.viewer.token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output(),
    )
    .await
    .expect("node finishes in time")
    .expect("node runs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "interop.mjs failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // What the JS clients did is what the server holds.
    let view = team.api.canvas_json(&team.viewer, &team.canvas).await;
    let blocks = view["blocks"].as_array().expect("blocks array");
    assert_eq!(blocks.len(), 2, "{view}");
    assert!(blocks.iter().all(|b| b["position"]["x"].is_i64()), "{view}");
}
