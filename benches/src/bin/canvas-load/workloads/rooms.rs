//! W7 many rooms: 1,000 rooms of three members (by default), every member writing one
//! update per second (3,000 updates/s in all, each delivered to the two other members of
//! its room). What it measures: the server's CPU per 1,000 updates and the delivery latency
//! (send to receipt, as in W3) when the load is spread over many small rooms instead of one
//! large one: the case of a deployment with many small teams.
//!
//! Each member is a writer with a client id of its own in its room (W3's machinery: every
//! new clock of another member is one delivery, timed against its send time). The sends of
//! all members are spread evenly: the k-th update of the run goes out at k / (members x
//! rate) seconds, member after member, so no second starts with a burst.

use crate::Error;
use crate::client::{self, Tx};
use crate::procfs::Process;
use crate::results::ManyRooms;
use crate::target::{Room, Target};
use crate::trace;
use crate::workloads::fanout::{self, FIRST_WRITER, Peer, SendLog};
use canvas_engine::yrs::{Doc, ReadTxn, StateVector, Text, Transact};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How W7 runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Rooms.
    pub rooms: usize,
    /// Members per room.
    pub members: usize,
    /// Updates per second per member.
    pub rate_per_member: f64,
    /// Seconds of writing.
    pub secs: f64,
    /// Connections opening at once during setup.
    pub concurrency: usize,
}

/// The longest W7 waits for the last deliveries after the last send.
const DRAIN: Duration = Duration::from_secs(30);

/// Runs W7.
pub async fn run(
    target: &Target,
    plan: &Plan,
    server: Option<Process>,
) -> Result<ManyRooms, Error> {
    if plan.rooms == 0 || plan.members < 2 || !(plan.rate_per_member > 0.0 && plan.secs > 0.0) {
        return Err(Error::Setup(format!(
            "w7 needs rooms, at least two members, a positive rate and duration (got {} rooms of {}, {}/s, {} s)",
            plan.rooms, plan.members, plan.rate_per_member, plan.secs
        )));
    }
    let members = plan.members;
    let per_member = (plan.rate_per_member * plan.secs).ceil() as usize;
    let rooms = target.rooms(plan.rooms).await?;
    let setup_doc = canvas_engine::new_doc_with_client_id(7);
    let setup = trace::setup_update(&setup_doc);

    // Every member's updates, and its whole state after them (for the convergence check).
    let epoch = Instant::now();
    let mut frames: Vec<Vec<Vec<u8>>> = Vec::with_capacity(plan.rooms * members);
    let mut states: Vec<Vec<u8>> = Vec::with_capacity(plan.rooms * members);
    let mut logs: Vec<Arc<SendLog>> = Vec::with_capacity(plan.rooms);
    for room in &rooms {
        for m in 0..members {
            let doc = trace::doc_with_block(&setup, FIRST_WRITER + m as u64)?;
            let text = trace::block_text(&doc).ok_or_else(|| Error::Trace("no text".into()))?;
            let mut list = Vec::with_capacity(per_member);
            for i in 0..per_member {
                let mut txn = doc.transact_mut();
                let end = text.len(&txn);
                text.insert(&mut txn, end, if i % 5 == 4 { " " } else { "y" });
                list.push(room.framer.update(&txn.encode_update_v1()));
            }
            frames.push(list);
            states.push(
                doc.transact()
                    .encode_state_as_update_v1(&StateVector::default()),
            );
        }
        logs.push(Arc::new(SendLog {
            epoch,
            times: (0..members)
                .map(|_| (0..per_member).map(|_| AtomicU64::new(0)).collect())
                .collect(),
        }));
    }
    let phase_of: Arc<Vec<u8>> = Arc::new(vec![0; per_member]);
    let histograms = fanout::histograms(1)?;

    // Connect and sync every member, `concurrency` at a time.
    let connect_started = Instant::now();
    let joins: Vec<(usize, Room)> = rooms
        .iter()
        .enumerate()
        .flat_map(|(r, room)| (0..members).map(move |m| (r * members + m, room.clone())))
        .collect();
    let mut joined: Vec<(usize, Doc, Tx, client::Rx)> =
        futures_util::stream::iter(joins.into_iter().map(|(g, room)| async move {
            let doc = canvas_engine::new_doc_with_client_id(10_000 + (g % members) as u64);
            let (tx, rx) = client::join(&room, false, &doc).await?;
            Ok::<_, Error>((g, doc, tx, rx))
        }))
        .buffer_unordered(plan.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let connects_per_sec = joined.len() as f64 / connect_started.elapsed().as_secs_f64().max(1e-9);
    joined.sort_by_key(|j| j.0);
    let mut peers: Vec<Peer> = Vec::with_capacity(joined.len());
    for (g, doc, mut tx, rx) in joined {
        let (r, m) = (g / members, g % members);
        if m == 0 {
            client::apply(&doc, &setup)?;
            tx.send(rooms[r].framer.update(&setup)).await?;
        }
        peers.push(fanout::spawn_peer(
            Some(m),
            doc,
            true,
            rx,
            tx,
            logs[r].clone(),
            phase_of.clone(),
            histograms.clone(),
        ));
    }
    for p in &peers {
        if let Some(doc) = &p.doc {
            fanout::wait_until(
                || trace::block_text(doc).is_some(),
                "the block reached every member",
            )
            .await?;
        }
    }
    let mut txs: Vec<Tx> = peers
        .iter_mut()
        .map(|p| {
            p.tx.take()
                .ok_or_else(|| Error::Protocol("member lost its sender".into()))
        })
        .collect::<Result<_, _>>()?;

    // Write: the k-th update of the run at k / total_rate seconds.
    let connections = txs.len();
    let total_rate = plan.rate_per_member * connections as f64;
    let total = connections * per_member;
    let me = Process::watch(std::process::id());
    let cpu_before = server.and_then(|p| p.cpu_seconds());
    let my_cpu_before = me.and_then(|p| p.cpu_seconds());
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next = 0usize;
    while next < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * total_rate).floor() as usize + 1).min(total);
        for k in next..due {
            let (j, g) = (k / connections, k % connections);
            let (r, m) = (g / members, g % members);
            logs[r].times[m][j].store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
            txs[g].send(frames[g][j].clone()).await.map_err(|e| {
                Error::Protocol(format!("room {r} member {m}: the connection ended: {e}"))
            })?;
        }
        next = due.max(next);
    }
    let expected_each = ((members - 1) * per_member) as u64;
    let deadline = Instant::now() + DRAIN;
    while Instant::now() < deadline
        && peers
            .iter()
            .any(|p| p.received.load(Ordering::Relaxed) < expected_each)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu_after = server.and_then(|p| p.cpu_seconds());
    let my_cpu_after = me.and_then(|p| p.cpu_seconds());
    let busy =
        |before: Option<f64>, after: Option<f64>| before.zip(after).map(|(a, b)| (b - a) / wall);

    // Convergence: in every room, every member's text is the room's combined text.
    let mut converged = true;
    for (r, _) in rooms.iter().enumerate() {
        let reference = trace::doc_with_block(&setup, 5)?;
        for m in 0..members {
            client::apply(&reference, &states[r * members + m])?;
        }
        let expected_text = trace::text_of(&reference);
        for m in 0..members {
            let g = r * members + m;
            let p = &peers[g];
            if p.task.is_finished() {
                eprintln!("  w7: room {r} member {m} was disconnected");
                converged = false;
                continue;
            }
            if let Some(doc) = &p.doc {
                client::apply(doc, &states[g])?;
                if trace::text_of(doc) != expected_text {
                    eprintln!("  w7: room {r} member {m} diverged");
                    converged = false;
                }
            }
            if p.received.load(Ordering::Relaxed) != expected_each {
                converged = false;
            }
        }
    }
    let merged = histograms
        .lock()
        .map_err(|_| Error::Protocol("poisoned".into()))?
        .first()
        .cloned()
        .ok_or_else(|| Error::Protocol("no histogram".into()))?;
    let ms = |q: f64| merged.value_at_quantile(q) as f64 / 1000.0;
    let sent = total as u64;
    let result = ManyRooms {
        rooms: plan.rooms,
        members,
        rate_per_member: plan.rate_per_member,
        secs: plan.secs,
        sent,
        expected: expected_each * connections as u64,
        delivered: merged.len(),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: merged.max() as f64 / 1000.0,
        server_cpu_ms_per_1k: cpu_before
            .zip(cpu_after)
            .map(|(a, b)| (b - a) * 1000.0 / (sent as f64 / 1000.0)),
        server_busy: busy(cpu_before, cpu_after),
        server_rss_mib: server
            .and_then(|p| p.rss_bytes())
            .map(crate::workloads::ingest::mib),
        load_generator_busy: busy(my_cpu_before, my_cpu_after),
        connects_per_sec,
        converged,
    };
    eprintln!(
        "  w7 {} rooms x {members}, {}/s each: delivered {}/{}, p50 {:.2} ms, p99 {:.2} ms, server CPU {:?} ms/1k, busy: server {:?}, load generator {:?}, converged {}",
        plan.rooms,
        plan.rate_per_member,
        result.delivered,
        result.expected,
        result.p50_ms,
        result.p99_ms,
        result
            .server_cpu_ms_per_1k
            .map(|c| (c * 100.0).round() / 100.0),
        result.server_busy.map(|b| (b * 100.0).round() / 100.0),
        result
            .load_generator_busy
            .map(|b| (b * 100.0).round() / 100.0),
        converged
    );
    for (tx, p) in txs.into_iter().zip(peers) {
        tx.close().await;
        p.task.abort();
    }
    Ok(result)
}
