//! The cost of durable acknowledgements, and what group commit buys back.
//!
//! One client types into a narrative block, one update per keystroke, against a server on
//! the embedded store (SQLite, WAL, `synchronous=FULL`) in a temporary directory. It keeps at
//! most `window` updates unacknowledged: with a window of 1 every update waits for its own
//! disk sync; with larger windows the room writes the updates that queued up behind a sync
//! in one transaction (group commit). The baseline is the same updates applied in memory by
//! the engine alone (inspect + apply, no I/O), in the same run.
//!
//! `cargo run --release -p canvas-bench --example durable_ingest [updates]`

use canvas_engine::yrs::{Doc, GetString, Text, TextPrelim, Transact, WriteTxn};
use canvas_engine::{CanvasDoc, Role};
use canvas_tests::{Team, TestServer, WsClient, add_block};
use std::time::Instant;

fn keystrokes(n: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    use canvas_engine::yrs::{Map, MapRef, ReadTxn};
    let doc = Doc::new();
    let setup = {
        let mut txn = doc.transact_mut();
        add_block(&mut txn, "n1", "narrative", (0, 0, 12, 4));
        let blocks = txn.get_or_insert_map("blocks");
        let block: MapRef = blocks
            .get(&txn, "n1")
            .and_then(|v| v.cast().ok())
            .expect("block");
        let content: MapRef = block
            .get(&txn, "content")
            .and_then(|v| v.cast().ok())
            .expect("content");
        content.insert(&mut txn, "text", TextPrelim::new(""));
        txn.encode_update_v1()
    };
    let text = {
        let txn = doc.transact();
        let blocks = txn.get_map("blocks").expect("blocks");
        let block: MapRef = blocks
            .get(&txn, "n1")
            .and_then(|v| v.cast().ok())
            .expect("block");
        let content: MapRef = block
            .get(&txn, "content")
            .and_then(|v| v.cast().ok())
            .expect("content");
        content
            .get(&txn, "text")
            .and_then(|v| v.cast::<canvas_engine::yrs::TextRef>().ok())
            .expect("text")
    };
    let mut updates = Vec::with_capacity(n);
    for i in 0..n {
        let mut txn = doc.transact_mut();
        let len = text.len(&txn);
        text.insert(&mut txn, len, if i % 7 == 6 { " " } else { "a" });
        updates.push(txn.encode_update_v1());
    }
    let _ = text.get_string(&doc.transact());
    (setup, updates)
}

fn in_memory(setup: &[u8], updates: &[Vec<u8>]) -> f64 {
    let mut canvas = CanvasDoc::new();
    canvas
        .apply_checked(Role::Editor, setup)
        .expect("setup accepted");
    let start = Instant::now();
    for u in updates {
        canvas.apply_checked(Role::Editor, u).expect("accepted");
    }
    updates.len() as f64 / start.elapsed().as_secs_f64()
}

async fn durable(setup: &[u8], updates: &[Vec<u8>], window: u64) -> f64 {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let mut client = WsClient::join(&server.ws_url(&team.canvas, &team.editor.token)).await;
    client.send_update(setup.to_vec()).await;
    client.wait_acked().await;
    let start = Instant::now();
    for u in updates {
        while client.sent - client.acked >= window {
            client.wait_for(|c, _| c.sent - c.acked < window).await;
        }
        client.send_update(u.clone()).await;
    }
    client.wait_acked().await;
    let rate = updates.len() as f64 / start.elapsed().as_secs_f64();
    assert!(client.errors.is_empty(), "refused: {:?}", client.errors);
    server.stop().await;
    rate
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3000);
    let (setup, updates) = keystrokes(n);
    let baseline = in_memory(&setup, &updates);
    println!("{n} keystroke updates; baseline (engine only, in memory): {baseline:.0} updates/s");
    println!("| window | durable acked updates/s | ratio to baseline | ratio to window 1 |");
    println!("|---|---|---|---|");
    let mut first = None;
    for window in [1u64, 8, 64, 256] {
        let rate = durable(&setup, &updates, window).await;
        let one = *first.get_or_insert(rate);
        println!(
            "| {window} | {rate:.0} | {:.3} | {:.1}x |",
            rate / baseline,
            rate / one
        );
    }
}
