//! W5 cold join: a room holding the final state of the editing trace. A join is timed from
//! the start of the TCP connection until the frame that completes the joiner's document has
//! been read (sync step 2, or a later update from a server that answers before it has loaded
//! the document); applying that frame on the client is the same for every server and left
//! out. Every joiner must end up with the trace's end content (the convergence check).
//!
//! Warm: a loader connection keeps the room open, joins follow one after another. Burst:
//! `burst` joins at once; each only reads its reply while they are timed, and applies it
//! afterwards (the load generator runs on one thread: a joiner applying a 267 KB document
//! would otherwise delay the reads of the others and add its client work to their times). From storage: every connection leaves, the load generator waits
//! for the server to unload the room, then one join loads it back (repeated `cold_rounds`
//! times).

use crate::Error;
use crate::client::{self, PATIENCE};
use crate::results::Join;
use crate::target::{Room, Target};
use crate::trace::{self, Trace};
use crate::wire::Incoming;
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

/// How W5 runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Sequential warm joins.
    pub warm: usize,
    /// Simultaneous joins.
    pub burst: usize,
    /// Joins from storage (each after an unload).
    pub cold_rounds: usize,
    /// How long to wait for the server to unload an empty room.
    pub unload_wait: Duration,
    /// The server keeps documents when they unload (false: Hocuspocus without extensions).
    pub storage: bool,
}

/// Runs W5.
pub async fn run(target: &Target, trace: &Trace, plan: &Plan) -> Result<Join, Error> {
    let room = target.rooms(1).await?.remove(0);
    let loader_doc = canvas_engine::new_doc_with_client_id(4);
    let (mut loader, mut loader_rx) = client::join(&room, target.kind.acks(), &loader_doc).await?;
    loader.send(room.framer.update(&trace.final_state)).await?;
    if target.kind.acks() {
        // Wait for the acknowledgement, so the state is durable before anyone joins.
        loop {
            let frame = tokio::time::timeout(PATIENCE, loader_rx.frame())
                .await
                .map_err(|_| Error::Timeout("loader acknowledgement".into()))??
                .ok_or_else(|| Error::Protocol("loader closed".into()))?;
            match loader_rx.framer.parse(&frame)? {
                Incoming::AckThrough(_) | Incoming::AckOne => break,
                Incoming::Refused(why) => return Err(Error::Protocol(why)),
                _ => {}
            }
        }
    }
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = loader_rx.frame().await {} });

    let mut converged = true;
    let mut warm = hist()?;
    for _ in 0..plan.warm {
        let (ms, ok) = timed_join(&room, &trace.end_content).await?;
        converged &= ok;
        warm.saturating_record((ms * 1000.0) as u64);
    }
    let burst_joins = timed_burst(&room, plan.burst, &trace.end_content).await?;
    let mut burst = hist()?;
    for (ms, ok) in burst_joins {
        converged &= ok;
        burst.saturating_record((ms * 1000.0) as u64);
    }
    loader.close().await;
    drain.abort();

    let storage_p50_ms = if plan.storage && plan.cold_rounds > 0 {
        let mut cold = vec![];
        for _ in 0..plan.cold_rounds {
            tokio::time::sleep(plan.unload_wait).await;
            let (ms, ok) = timed_join(&room, &trace.end_content).await?;
            converged &= ok;
            cold.push(ms);
        }
        cold.sort_by(f64::total_cmp);
        cold.get(cold.len() / 2).copied()
    } else {
        None
    };
    let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(Join {
        doc_bytes: trace.final_state.len(),
        warm_p50_ms: q(&warm, 0.5),
        warm_p99_ms: q(&warm, 0.99),
        burst: plan.burst,
        burst_p50_ms: q(&burst, 0.5),
        burst_p99_ms: q(&burst, 0.99),
        storage_p50_ms,
        converged,
    })
}

fn hist() -> Result<Histogram<u64>, Error> {
    Histogram::new_with_bounds(1, 600_000_000, 3).map_err(|e| Error::Protocol(e.to_string()))
}

/// A join whose reply has been read but not applied yet.
struct Pending {
    started: Instant,
    tx: client::Tx,
    rx: client::Rx,
    /// When the sync step 2 frame had been read.
    at: Duration,
    /// The frames read so far (sync step 2 last), unapplied.
    frames: Vec<tokio_tungstenite::tungstenite::Bytes>,
}

/// Joins and times it until the frame that completes the document has been read (sync
/// step 2, or for a server that loads from storage after answering, a later update); the
/// client's decoding and applying of the frames is not timed. Returns (ms, converged).
async fn timed_join(room: &Room, expected: &str) -> Result<(f64, bool), Error> {
    let pending = read_reply(room).await?;
    finish(pending, expected).await
}

/// Simultaneous joins: every joiner first only reads its reply (on the load generator's one
/// thread, applying a large document would hold up the other joiners' reads and be counted
/// in their times), then each applies what it read and checks it.
async fn timed_burst(room: &Room, n: usize, expected: &str) -> Result<Vec<(f64, bool)>, Error> {
    let pending = futures_util::future::try_join_all((0..n).map(|_| read_reply(room))).await?;
    let mut out = Vec::with_capacity(n);
    for p in pending {
        out.push(finish(p, expected).await?);
    }
    Ok(out)
}

/// The next frame within `left`; `None` once the time is up. A closed connection is an error.
async fn next_frame(
    rx: &mut client::Rx,
    left: Duration,
) -> Result<Option<tokio_tungstenite::tungstenite::Bytes>, Error> {
    match tokio::time::timeout(left, rx.frame()).await {
        Ok(Ok(Some(frame))) => Ok(Some(frame)),
        Ok(Ok(None)) => Err(Error::Protocol("closed while joining".into())),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(None),
    }
}

/// Opens a connection and reads until sync step 2 arrives, without applying anything.
async fn read_reply(room: &Room) -> Result<Pending, Error> {
    let doc = canvas_engine::new_doc_with_client_id(0);
    let started = Instant::now();
    let (tx, mut rx) = client::open(room, false, &doc).await?;
    let mut frames = Vec::new();
    loop {
        let Some(frame) = next_frame(&mut rx, PATIENCE).await? else {
            return Err(Error::Timeout("sync step 2".into()));
        };
        let at = started.elapsed();
        match rx.framer.parse(&frame)? {
            Incoming::Step2(_) => {
                frames.push(frame);
                return Ok(Pending {
                    started,
                    tx,
                    rx,
                    at,
                    frames,
                });
            }
            Incoming::Update(_) => frames.push(frame),
            Incoming::Refused(why) => return Err(Error::Protocol(why)),
            _ => {}
        }
    }
}

/// Applies what a join read; if that is not the whole document yet (a server that answers
/// before it has loaded), reads on until it is, timing the frame that completes it.
async fn finish(pending: Pending, expected: &str) -> Result<(f64, bool), Error> {
    let Pending {
        started,
        tx,
        mut rx,
        at,
        frames,
    } = pending;
    let doc = canvas_engine::new_doc_with_client_id(0);
    for frame in &frames {
        if let Incoming::Step2(u) | Incoming::Update(u) = rx.framer.parse(frame)? {
            client::apply(&doc, u)?;
        }
    }
    let (mut elapsed, mut complete) = (at, trace::text_of(&doc) == expected);
    let deadline = started + PATIENCE;
    while !complete {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(frame) = next_frame(&mut rx, left).await? else {
            elapsed = started.elapsed();
            break;
        };
        elapsed = started.elapsed();
        match rx.framer.parse(&frame)? {
            Incoming::Step2(u) | Incoming::Update(u) => {
                client::apply(&doc, u)?;
                complete = trace::text_of(&doc) == expected;
            }
            Incoming::Refused(why) => return Err(Error::Protocol(why)),
            _ => {}
        }
    }
    tx.close().await;
    Ok((elapsed.as_secs_f64() * 1000.0, complete))
}
