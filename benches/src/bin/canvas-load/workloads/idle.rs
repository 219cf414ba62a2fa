//! W4 idle scale: thousands of synced, idle connections in rooms of ten; what each costs
//! the server in resident memory, and how fast they connect and sync.
//!
//! Each level first gives its new rooms one connection each (RSS growth per room, with its
//! first connection), then the other nine (RSS growth per additional connection). At the
//! end one member of every room writes, and every other member must receive it.

use crate::Error;
use crate::client::{self, PATIENCE};
use crate::procfs::Process;
use crate::results::{Idle, IdleLevel};
use crate::target::{Room, Target};
use crate::trace;
use crate::wire::Incoming;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};

/// Connections per room.
const ROOM_SIZE: usize = 10;

/// Runs W4 with cumulative `levels` of connections, at most `concurrency` connecting at a time.
pub async fn run(
    target: &Target,
    levels: &[usize],
    concurrency: usize,
    server: Option<Process>,
    settle: Duration,
) -> Result<Idle, Error> {
    let max = levels.iter().copied().max().unwrap_or(0);
    let rooms = target.rooms(max.div_ceil(ROOM_SIZE)).await?;
    let rss = || server.and_then(|p| p.rss_bytes()).unwrap_or(0) as f64 / 1024.0;
    tokio::time::sleep(settle).await;
    let base_kib = rss();
    let (go_tx, go_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<(), Error>>();
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = vec![];
    let mut out = vec![];
    let mut open_rooms = 0usize;
    let mut open = 0usize;
    for &level in levels {
        let new_rooms = level.div_ceil(ROOM_SIZE).saturating_sub(open_rooms);
        let started = Instant::now();
        let before = rss();
        // Phase A: the first member of each new room (it will write at the end).
        let first: Vec<Room> = rooms[open_rooms..open_rooms + new_rooms].to_vec();
        let (synced_tx, mut synced_rx) = mpsc::unbounded_channel();
        for room in &first {
            tasks.push(spawn_member(
                room.clone(),
                true,
                &gate,
                &synced_tx,
                &go_rx,
                &done_tx,
            ));
        }
        collect(&mut synced_rx, first.len()).await?;
        tokio::time::sleep(settle).await;
        let after_rooms = rss();
        // Phase B: the other members.
        let mut extra = 0;
        for room in &first {
            for _ in 1..ROOM_SIZE {
                tasks.push(spawn_member(
                    room.clone(),
                    false,
                    &gate,
                    &synced_tx,
                    &go_rx,
                    &done_tx,
                ));
                extra += 1;
            }
        }
        collect(&mut synced_rx, extra).await?;
        let elapsed = started.elapsed().as_secs_f64();
        tokio::time::sleep(settle).await;
        let now = rss();
        open_rooms += new_rooms;
        open += first.len() + extra;
        let level_result = IdleLevel {
            connections: open,
            rooms: open_rooms,
            rss_mib: now / 1024.0,
            kib_per_connection: (now - base_kib) / open.max(1) as f64,
            kib_per_room: (after_rooms - before) / first.len().max(1) as f64,
            kib_per_extra_connection: (now - after_rooms) / extra.max(1) as f64,
            connects_per_sec: (first.len() + extra) as f64 / elapsed,
        };
        eprintln!(
            "  w4 {open} connections: {:.1} KiB each, {:.0} connects/s",
            level_result.kib_per_connection, level_result.connects_per_sec
        );
        out.push(level_result);
    }
    // Convergence: every room's first member writes; every other member must receive it.
    go_tx.send_replace(true);
    let expected = open - open_rooms;
    let mut converged = true;
    for _ in 0..expected {
        match tokio::time::timeout(PATIENCE, done_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => {
                eprintln!("  w4: a member failed: {e}");
                converged = false;
            }
            Ok(None) | Err(_) => {
                converged = false;
                break;
            }
        }
    }
    for t in tasks {
        t.abort();
    }
    Ok(Idle {
        base_rss_mib: base_kib / 1024.0,
        levels: out,
        converged,
    })
}

async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Result<(), Error>>,
    n: usize,
) -> Result<(), Error> {
    for i in 0..n {
        tokio::time::timeout(PATIENCE, rx.recv())
            .await
            .map_err(|_| Error::Timeout(format!("{i} of {n} connections synced")))?
            .ok_or_else(|| Error::Protocol("connection tasks ended".into()))??;
    }
    Ok(())
}

fn spawn_member(
    room: Room,
    writes: bool,
    gate: &Arc<Semaphore>,
    synced: &mpsc::UnboundedSender<Result<(), Error>>,
    go: &watch::Receiver<bool>,
    done: &mpsc::UnboundedSender<Result<(), Error>>,
) -> tokio::task::JoinHandle<()> {
    let gate = gate.clone();
    let synced = synced.clone();
    let mut go = go.clone();
    let done = done.clone();
    tokio::spawn(async move {
        let doc = canvas_engine::new_doc_with_client_id(0);
        let joined = {
            let _permit = gate.acquire().await;
            client::join(&room, false, &doc).await
        };
        let (mut tx, mut rx) = match joined {
            Ok(c) => {
                let _ = synced.send(Ok(()));
                c
            }
            Err(e) => {
                let _ = synced.send(Err(e));
                return;
            }
        };
        let result: Result<(), Error> = async {
            loop {
                tokio::select! {
                    changed = go.changed(), if writes => {
                        if changed.is_err() { return Ok(()); }
                        let setup = trace::setup_update(&canvas_engine::new_doc_with_client_id(0));
                        tx.send(room.framer.update(&setup)).await?;
                        // The writer only needs to stay open.
                        std::future::pending::<()>().await;
                    }
                    frame = rx.frame() => {
                        let Some(frame) = frame? else {
                            return Err(Error::Protocol("closed while idle".into()));
                        };
                        if let Incoming::Update(u) = rx.framer.parse(&frame)? {
                            client::apply(&doc, u)?;
                            if trace::block_text(&doc).is_some() {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
        .await;
        let _ = done.send(result);
        // Stay connected until the workload ends (the task is aborted).
        std::future::pending::<()>().await;
    })
}
