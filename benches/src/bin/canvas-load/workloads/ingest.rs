//! W2 single-writer ingest: one writer streams the editing trace into one room, keeping at
//! most `window` updates that a second client (the observer) has not received yet. The
//! peers do not acknowledge updates, so the observer's receipts pace every server alike
//! (counted from the author's clock and the deletions in the observer's document, since
//! Hocuspocus merges the updates of one event-loop turn into one message);
//! our durable acknowledgements (and Hocuspocus' sync status) are timed as well.

use crate::Error;
use crate::client::{self, PATIENCE};
use crate::procfs::Process;
use crate::results::Ingest;
use crate::target::Target;
use crate::trace::{self, Trace};
use crate::wire::Incoming;
use canvas_engine::yrs::updates::decoder::Decode;
use canvas_engine::yrs::{Transact, Update};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::watch;

/// Runs W2.
pub async fn run(
    target: &Target,
    trace: &Trace,
    window: usize,
    server: Option<Process>,
) -> Result<Ingest, Error> {
    let room = target.rooms(1).await?.remove(0);
    let total = trace.edits.len() as u64 + 1;

    // The observer: applies what the server relays and tells how far it got.
    let observed_doc = canvas_engine::new_doc_with_client_id(2);
    let (_obs_tx, mut obs_rx) = client::join(&room, false, &observed_doc).await?;
    let (seen_tx, mut seen) = watch::channel(0u64);
    let observer = {
        let doc = observed_doc.clone();
        let clocks = trace.clocks.clone();
        let deletions = trace.deleted.clone();
        let author = trace.client;
        let expected = trace.end_content.clone();
        tokio::spawn(async move {
            let mut setup_seen = false;
            let mut deleted = 0u64;
            let final_clock = clocks.last().copied().unwrap_or(0);
            while let Some(frame) = obs_rx.frame().await? {
                match obs_rx.framer.parse(&frame)? {
                    Incoming::Update(u) | Incoming::Step2(u) => {
                        let update =
                            Update::decode_v1(u).map_err(|e| Error::Protocol(e.to_string()))?;
                        // How many edits the observer holds: those whose inserts (the author's
                        // clock) and deletions (counted from each update's delete set) it has.
                        // Exact whether or not the server merges updates into one message.
                        for (_, ranges) in update.delete_set().iter() {
                            deleted += ranges
                                .iter()
                                .map(|r| u64::from(r.end - r.start))
                                .sum::<u64>();
                        }
                        doc.transact_mut()
                            .apply_update(update)
                            .map_err(|e| Error::Protocol(e.to_string()))?;
                        if !setup_seen {
                            setup_seen = trace::block_text(&doc).is_some();
                            seen_tx.send_replace(u64::from(setup_seen));
                            continue;
                        }
                        let clock = trace::clock_of(&doc, author);
                        let by_clock = clocks.partition_point(|c| *c <= clock);
                        let by_deletes = deletions.partition_point(|d| *d <= deleted);
                        seen_tx.send_replace(1 + by_clock.min(by_deletes) as u64);
                        if clock >= final_clock && trace::text_of(&doc) == expected {
                            return Ok::<_, Error>(Instant::now());
                        }
                    }
                    Incoming::Refused(why) => return Err(Error::Protocol(why)),
                    _ => {}
                }
            }
            Err(Error::Protocol("observer disconnected".into()))
        })
    };

    // The writer: sends; its receiving half counts acknowledgements.
    let writer_doc = canvas_engine::new_doc_with_client_id(3);
    let (mut tx, mut rx) = client::join(&room, target.kind.acks(), &writer_doc).await?;
    let acked = Arc::new(AtomicU64::new(0));
    let acks = {
        let acked = acked.clone();
        tokio::spawn(async move {
            while let Some(frame) = rx.frame().await? {
                let through = match rx.framer.parse(&frame)? {
                    Incoming::AckThrough(n) => n,
                    Incoming::AckOne => acked.load(Ordering::Relaxed) + 1,
                    Incoming::Refused(why) => return Err(Error::Protocol(why)),
                    _ => continue,
                };
                acked.store(through, Ordering::Relaxed);
                if through >= total {
                    return Ok(Instant::now());
                }
            }
            Err::<Instant, _>(Error::Protocol(
                "writer disconnected before every acknowledgement".into(),
            ))
        })
    };

    tx.send(room.framer.update(&trace.setup)).await?;
    wait_seen(&mut seen, 1).await?;
    let frames: Vec<Vec<u8>> = trace.edits.iter().map(|e| room.framer.update(e)).collect();
    let bytes_per_update =
        frames.iter().map(Vec::len).sum::<usize>() as f64 / frames.len().max(1) as f64;

    let cpu_before = server.and_then(|p| p.cpu_seconds());
    let me = Process::watch(std::process::id());
    let my_cpu_before = me.and_then(|p| p.cpu_seconds());
    let start = Instant::now();
    for (sent, frame) in (1u64..).zip(frames) {
        if sent - *seen.borrow() >= window as u64 {
            tx.flush().await?;
            let limit = sent - window as u64;
            let waited = tokio::time::timeout(PATIENCE, seen.wait_for(|s| *s > limit))
                .await
                .map(|r| r.is_ok());
            match waited {
                Ok(true) => {}
                Ok(false) => {
                    // The observer ended: its own error says why.
                    return Err(match observer.await {
                        Ok(Err(e)) => e,
                        _ => Error::Protocol("observer stopped".into()),
                    });
                }
                Err(_) => {
                    let at = *seen.borrow();
                    return Err(Error::Timeout(format!("observer stuck at {at} of {total}")));
                }
            }
        }
        tx.feed(frame).await?;
    }
    tx.flush().await?;
    let observed_at = tokio::time::timeout(PATIENCE, observer)
        .await
        .map_err(|_| Error::Timeout(format!("observer saw {} of {total}", *seen.borrow())))?
        .map_err(|e| Error::Protocol(e.to_string()))??;
    let cpu_after = server.and_then(|p| p.cpu_seconds());
    let my_cpu_after = me.and_then(|p| p.cpu_seconds());
    let wall = observed_at.duration_since(start).as_secs_f64();
    let busy =
        |before: Option<f64>, after: Option<f64>| before.zip(after).map(|(a, b)| (b - a) / wall);

    let acked_per_sec = if target.kind.acks() {
        let last = tokio::time::timeout(PATIENCE, acks)
            .await
            .map_err(|_| {
                Error::Timeout(format!(
                    "acknowledged {} of {total}",
                    acked.load(Ordering::Relaxed)
                ))
            })?
            .map_err(|e| Error::Protocol(e.to_string()))??;
        Some(trace.edits.len() as f64 / last.duration_since(start).as_secs_f64())
    } else {
        acks.abort();
        None
    };
    tx.close().await;
    let edits = trace.edits.len();
    let converged = trace::text_of(&observed_doc) == trace.end_content;
    Ok(Ingest {
        updates: edits,
        window,
        received_per_sec: edits as f64 / observed_at.duration_since(start).as_secs_f64(),
        acked_per_sec,
        cpu_ms_per_1k: cpu_before
            .zip(cpu_after)
            .map(|(a, b)| (b - a) * 1000.0 / (edits as f64 / 1000.0)),
        bytes_per_update,
        server_rss_mib: server.and_then(|p| p.rss_bytes()).map(mib),
        server_busy: busy(cpu_before, cpu_after),
        load_generator_busy: busy(my_cpu_before, my_cpu_after),
        converged,
    })
}

async fn wait_seen(seen: &mut watch::Receiver<u64>, n: u64) -> Result<(), Error> {
    tokio::time::timeout(PATIENCE, seen.wait_for(|s| *s >= n))
        .await
        .map_err(|_| Error::Timeout("the observer never saw the setup update".into()))?
        .map_err(|_| Error::Protocol("observer stopped".into()))?;
    Ok(())
}

/// Bytes to MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
