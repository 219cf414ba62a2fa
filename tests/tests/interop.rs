//! Interoperability with the real npm packages `yjs` and `y-websocket`: runs
//! `tests/js/interop.mjs` with Node against a server started here (on the embedded store;
//! `services.rs` runs it on PostgreSQL + MongoDB + Redis).

use canvas_tests::*;

#[tokio::test]
async fn yjs_and_y_websocket_clients_edit_together() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    run_js_interop(&server, &team).await;
}
