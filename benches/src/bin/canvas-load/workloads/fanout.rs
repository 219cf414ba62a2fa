//! W3 fan-out: one room of N peers, the first few of them writers typing one character per
//! update at a fixed total rate; every delivery's latency is measured from the moment its
//! writer queued it to the moment a peer read it. Then the rate ramps up at one room size
//! until p99 passes 100 ms (the knee).
//!
//! Each writer's update is one character, one clock tick of its client id, so a receiver
//! finds every update's send time from the clocks an incoming message covers (servers may
//! merge updates, and some echo them to their writer), without a payload of our own. Receivers that
//! apply updates to a document pay the same yrs cost a real client does; to keep the load
//! generator (one core) from being the bottleneck at 200 peers, only the writers and every
//! `apply_every`-th peer apply, the others count and time. The convergence check compares
//! every applying peer's text with the writers' combined text, and every peer's delivery
//! count with what was sent.

use crate::Error;
use crate::client::{self, Rx, Tx};
use crate::procfs::Process;
use crate::results::{Fanout, FanoutPoint};
use crate::target::{Room, Target};
use crate::trace;
use crate::wire::Incoming;
use canvas_engine::yrs::updates::decoder::Decode;
use canvas_engine::yrs::{Doc, ReadTxn, StateVector, Text, Transact, Update};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How W3 runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Room sizes for the fixed rate.
    pub sizes: Vec<usize>,
    /// Writers among the peers.
    pub writers: usize,
    /// The fixed total rate, updates per second.
    pub rate: f64,
    /// Seconds at the fixed rate.
    pub secs: f64,
    /// Room size of the ramp (0: no ramp).
    pub ramp_peers: usize,
    /// Total rates of the ramp steps.
    pub ramp_rates: Vec<f64>,
    /// Seconds per ramp step.
    pub ramp_secs: f64,
    /// Every this many peers one applies updates to a document.
    pub apply_every: usize,
}

/// The p99 beyond which a ramp step counts as past the knee.
pub const KNEE_P99_MS: f64 = 100.0;

/// Send times of every writer's updates (nanoseconds since `epoch`), indexed by clock.
pub struct SendLog {
    /// When the clock started.
    pub epoch: Instant,
    /// Writer client ids start here; writer `w` is `FIRST_WRITER + w`.
    pub times: Vec<Vec<AtomicU64>>,
}

/// The client id of writer 0 (writer `w` is `FIRST_WRITER + w`).
pub const FIRST_WRITER: u64 = 1_000;

/// Latency histograms (microseconds), one per phase, shared by every peer of a run.
pub type Histograms = Arc<Mutex<Vec<Histogram<u64>>>>;

/// `phases` empty latency histograms (1 us to 10 minutes, 3 significant digits).
pub fn histograms(phases: usize) -> Result<Histograms, Error> {
    let list = (0..phases)
        .map(|_| Histogram::<u64>::new_with_bounds(1, 600_000_000, 3))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Protocol(e.to_string()))?;
    Ok(Arc::new(Mutex::new(list)))
}

/// One receiving connection of a run.
pub struct Peer {
    /// Its document, if it applies what it receives.
    pub doc: Option<Doc>,
    /// Deliveries it received (new clocks of writers other than itself).
    pub received: Arc<AtomicU64>,
    /// The task reading its frames; finished when the server closed it.
    pub task: tokio::task::JoinHandle<Result<(), Error>>,
    /// Its sending half (taken while it writes).
    pub tx: Option<Tx>,
}

/// Where a room's peers connect: writers to `writer`, every other peer to `reader`. The same
/// room for one server; the same document on two nodes (W8).
#[derive(Debug, Clone)]
pub struct Rooms {
    /// The room writers join.
    pub writer: Room,
    /// The room the other peers join.
    pub reader: Room,
}

impl Rooms {
    /// Writers and readers in one room.
    pub fn one(room: Room) -> Rooms {
        Rooms {
            writer: room.clone(),
            reader: room,
        }
    }
}

/// One room's run: who joins, which rates it holds for how long, what it samples.
pub struct RoomRun<'a> {
    /// Connections in the room, writers included.
    pub peers: usize,
    /// Writers among them (the first ones).
    pub writers: usize,
    /// One peer in this many applies what it receives (writers always do).
    pub apply_every: usize,
    /// The total rate of each phase, updates/s.
    pub rates: &'a [f64],
    /// Seconds per phase.
    pub secs: f64,
    /// Stop after the first phase past the knee (a ramp).
    pub stop_at_knee: bool,
    /// Server processes whose CPU time and RSS each point records (summed: both nodes in W8).
    pub servers: &'a [Process],
    /// Each writer keeps at most this many characters of its own: past it, each update also
    /// deletes the writer's oldest character, so the document stays the same size however
    /// long the run (W6).
    pub keep_chars: Option<usize>,
    /// The workload's name in progress lines.
    pub label: &'a str,
}

/// Runs W3.
pub async fn run(target: &Target, plan: &Plan) -> Result<Fanout, Error> {
    let mut fixed = vec![];
    let mut converged = true;
    for &peers in &plan.sizes {
        let rooms = Rooms::one(target.rooms(1).await?.remove(0));
        let run = RoomRun {
            peers,
            writers: plan.writers,
            apply_every: plan.apply_every,
            rates: &[plan.rate],
            secs: plan.secs,
            stop_at_knee: false,
            servers: &[],
            keep_chars: None,
            label: "w3",
        };
        let mut outcome = room_run(&rooms, &run).await?;
        converged &= outcome.converged;
        fixed.append(&mut outcome.points);
    }
    let mut ramp = vec![];
    if plan.ramp_peers > 0 && !plan.ramp_rates.is_empty() {
        let rooms = Rooms::one(target.rooms(1).await?.remove(0));
        let run = RoomRun {
            peers: plan.ramp_peers,
            writers: plan.writers,
            apply_every: plan.apply_every,
            rates: &plan.ramp_rates,
            secs: plan.ramp_secs,
            stop_at_knee: true,
            servers: &[],
            keep_chars: None,
            label: "w3",
        };
        let outcome = room_run(&rooms, &run).await?;
        converged &= outcome.converged;
        ramp = outcome.points;
    }
    let knee_rate = knee(&ramp);
    Ok(Fanout {
        writers: plan.writers,
        fixed,
        ramp,
        knee_rate,
        converged,
    })
}

/// What one room's run measured.
pub struct Outcome {
    /// One point per phase run.
    pub points: Vec<FanoutPoint>,
    /// Every applying peer holds the writers' text, and every peer got every delivery (or
    /// a ramp step that lost some says so).
    pub converged: bool,
    /// Peers the server closed.
    pub disconnected: usize,
}

/// The first ramp step past the knee: p99 over 100 ms, or deliveries lost.
pub fn knee(ramp: &[FanoutPoint]) -> Option<f64> {
    ramp.iter()
        .find(|p| p.p99_ms > KNEE_P99_MS || p.delivered < p.expected)
        .map(|p| p.rate)
}

/// One room: connect the peers (writers to `rooms.writer`, the others to `rooms.reader`),
/// run each rate for `secs`, check convergence, disconnect. With `stop_at_knee`, stops
/// after the first step past the knee.
pub async fn room_run(rooms: &Rooms, run: &RoomRun<'_>) -> Result<Outcome, Error> {
    let RoomRun {
        peers,
        rates,
        secs,
        stop_at_knee,
        ..
    } = *run;
    let writers = run.writers.clamp(1, peers.max(1));
    let room = &rooms.writer;
    let setup_doc = canvas_engine::new_doc_with_client_id(7);
    let setup = trace::setup_update(&setup_doc);

    // Updates per writer per step, made before the clock starts.
    let per_writer: Vec<usize> = rates
        .iter()
        .map(|r| (r / writers as f64 * secs).ceil() as usize)
        .collect();
    let total_per_writer: usize = per_writer.iter().sum();
    let writer_docs: Vec<Doc> = (0..writers)
        .map(|w| trace::doc_with_block(&setup, FIRST_WRITER + w as u64))
        .collect::<Result<_, _>>()?;
    // The frames, and each writer's whole state at the end of each phase (what the
    // convergence check needs, without keeping every update twice).
    let mut frames: Vec<Vec<Vec<u8>>> = Vec::with_capacity(writers);
    let mut states: Vec<Vec<Vec<u8>>> = Vec::with_capacity(writers);
    for doc in &writer_docs {
        let text = trace::block_text(doc).ok_or_else(|| Error::Trace("no text".into()))?;
        let mut list = Vec::with_capacity(total_per_writer);
        let mut at_phase_end = Vec::with_capacity(per_writer.len());
        let mut i = 0usize;
        for &n in &per_writer {
            for _ in 0..n {
                let mut txn = doc.transact_mut();
                // Each writer types at the end of its own run of text, as people typing in
                // different places do (inserting at one shared spot without seeing the others
                // would make every server resolve ever longer chains of concurrent inserts).
                let end = text.len(&txn);
                text.insert(&mut txn, end, if i % 5 == 4 { " " } else { "x" });
                if run
                    .keep_chars
                    .is_some_and(|keep| end as usize >= keep.max(1))
                {
                    text.remove_range(&mut txn, 0, 1);
                }
                let update = txn.encode_update_v1();
                list.push(room.framer.update(&update));
                i += 1;
            }
            at_phase_end.push(
                doc.transact()
                    .encode_state_as_update_v1(&StateVector::default()),
            );
        }
        frames.push(list);
        states.push(at_phase_end);
    }
    let log = Arc::new(SendLog {
        epoch: Instant::now(),
        times: (0..writers)
            .map(|_| (0..total_per_writer).map(|_| AtomicU64::new(0)).collect())
            .collect(),
    });
    // Which phase each clock belongs to.
    let phase_of: Arc<Vec<u8>> = Arc::new(
        per_writer
            .iter()
            .enumerate()
            .flat_map(|(i, n)| std::iter::repeat_n(i as u8, *n))
            .collect(),
    );

    // Connect: peer 0 brings the block, the others sync it.
    let histograms = histograms(rates.len())?;
    let mut peer_list = Vec::with_capacity(peers);
    for index in 0..peers {
        let doc = canvas_engine::new_doc_with_client_id(10_000 + index as u64);
        let joins = if index < writers {
            &rooms.writer
        } else {
            &rooms.reader
        };
        let (mut tx, rx) = client::join(joins, false, &doc).await?;
        if index == 0 {
            client::apply(&doc, &setup)?;
            tx.send(room.framer.update(&setup)).await?;
        }
        let applies = index < writers || index % run.apply_every.max(1) == 0;
        peer_list.push(spawn_peer(
            (index < writers).then_some(index),
            doc,
            applies,
            rx,
            tx,
            log.clone(),
            phase_of.clone(),
            histograms.clone(),
        ));
    }
    let label = run.label;
    // Every peer holds the block before the clock starts.
    for p in &peer_list {
        if let Some(doc) = &p.doc {
            wait_until(
                || trace::block_text(doc).is_some(),
                "the block reached every peer",
            )
            .await?;
        }
    }

    let mut points = vec![];
    let mut offsets = vec![0usize; writers];
    let mut expected_per_peer = vec![0u64; peers];
    let mut phases_done = 0usize;
    let mut awareness_clock = 0u64;
    let me = Process::watch(std::process::id());
    for (phase, (&rate, &n)) in rates.iter().zip(&per_writer).enumerate() {
        let cpu_before = cpu_of(run.servers);
        let my_cpu_before = me.and_then(|p| p.cpu_seconds());
        let started = Instant::now();
        let mut txs: Vec<Tx> = peer_list
            .iter_mut()
            .take(writers)
            .map(|p| {
                p.tx.take()
                    .ok_or_else(|| Error::Protocol("writer lost its sender".into()))
            })
            .collect::<Result<_, _>>()?;
        let sends = txs.iter_mut().enumerate().map(|(w, tx)| {
            let frames = &frames[w][offsets[w]..offsets[w] + n];
            pace(tx, frames, rate / writers as f64, &log, w, offsets[w])
        });
        // The other peers send their awareness every 15 s meanwhile, as real clients do
        // (Hocuspocus closes a connection that sent nothing for a minute).
        let mut readers: Vec<(u64, Tx)> = peer_list
            .iter_mut()
            .enumerate()
            .skip(writers)
            .filter_map(|(i, p)| p.tx.take().map(|tx| (10_000 + i as u64, tx)))
            .collect();
        let keep_alive = keep_alive(
            &mut readers,
            &rooms.reader.framer,
            &mut awareness_clock,
            started + Duration::from_secs_f64(secs),
        );
        // A writer whose connection the server closed (one that dropped it as too slow)
        // ends the ramp: the step is past the knee, its lost deliveries say so.
        let (sent_all, ()) =
            futures_util::future::join(futures_util::future::join_all(sends), keep_alive).await;
        let lost_writer = sent_all.into_iter().find_map(Result::err);
        let mut readers = readers.into_iter();
        for p in peer_list.iter_mut().skip(writers) {
            if p.tx.is_none() {
                p.tx = readers.next().map(|(_, tx)| tx);
            }
        }
        if let Some(why) = &lost_writer {
            eprintln!("  {label} {peers} peers, {rate:.0}/s: a writer's connection ended: {why}");
            if !stop_at_knee {
                return Err(Error::Protocol(format!(
                    "a writer's connection ended: {why}"
                )));
            }
        }
        for (p, tx) in peer_list.iter_mut().zip(txs) {
            p.tx = Some(tx);
        }
        for o in offsets.iter_mut() {
            *o += n;
        }
        phases_done += 1;
        let sent = (n * writers) as u64;
        for (i, e) in expected_per_peer.iter_mut().enumerate() {
            *e += if i < writers {
                (n * (writers - 1)) as u64
            } else {
                sent
            };
        }
        // Drain: wait until every peer has everything sent so far, or give up after 10 s.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && peer_list
                .iter()
                .zip(&expected_per_peer)
                .any(|(p, e)| p.received.load(Ordering::Relaxed) < *e)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let expected_phase: u64 = (0..peers)
            .map(|i| {
                if i < writers {
                    (n * (writers - 1)) as u64
                } else {
                    sent
                }
            })
            .sum();
        let wall = started.elapsed().as_secs_f64();
        let cpu_after = cpu_of(run.servers);
        let my_cpu_after = me.and_then(|p| p.cpu_seconds());
        let merged = histograms
            .lock()
            .map_err(|_| Error::Protocol("poisoned".into()))?
            .get(phase)
            .cloned()
            .ok_or_else(|| Error::Protocol("no histogram for the phase".into()))?;
        let ms = |q: f64| merged.value_at_quantile(q) as f64 / 1000.0;
        let point = FanoutPoint {
            peers,
            rate,
            sent,
            expected: expected_phase,
            delivered: merged.len(),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: merged.max() as f64 / 1000.0,
            server_cpu_ms_per_1k: cpu_before
                .zip(cpu_after)
                .filter(|_| sent > 0)
                .map(|(a, b)| (b - a) * 1000.0 / (sent as f64 / 1000.0)),
            server_rss_mib: rss_of(run.servers),
            load_generator_busy: my_cpu_before
                .zip(my_cpu_after)
                .map(|(a, b)| (b - a) / wall.max(1e-9)),
        };
        eprintln!(
            "  {label} {peers} peers, {rate:.0}/s: delivered {}/{}, p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms{}{}",
            point.delivered,
            point.expected,
            point.p50_ms,
            point.p99_ms,
            point.p999_ms,
            point
                .server_cpu_ms_per_1k
                .map_or(String::new(), |c| format!(", server CPU {c:.1} ms/1k")),
            point
                .server_rss_mib
                .map_or(String::new(), |r| format!(", RSS {r:.1} MiB")),
        );
        let past_knee =
            point.p99_ms > KNEE_P99_MS || point.delivered < point.expected || lost_writer.is_some();
        points.push(point);
        if stop_at_knee && past_knee {
            break;
        }
    }

    // Convergence: the writers' combined text (what they sent), against every applying peer.
    let reference = trace::doc_with_block(&setup, 5)?;
    let sent_state = |w: usize| {
        phases_done
            .checked_sub(1)
            .and_then(|last| states[w].get(last))
    };
    for w in 0..writers {
        if let Some(state) = sent_state(w) {
            client::apply(&reference, state)?;
        }
    }
    let expected_text = trace::text_of(&reference);
    let mut converged = true;
    let mut disconnected = 0;
    for (i, p) in peer_list.iter().enumerate() {
        if p.task.is_finished() {
            disconnected += 1;
            // The server closed this peer (in the ramp: one it dropped as too slow, which a
            // real client would resync after reconnecting). At a fixed rate that is a failure.
            eprintln!("  {label}: peer {i} was disconnected");
            converged = converged && stop_at_knee;
            continue;
        }
        if let Some(doc) = &p.doc {
            if i < writers
                && let Some(state) = sent_state(i)
            {
                client::apply(doc, state)?;
            }
            if trace::text_of(doc) != expected_text {
                eprintln!("  {label}: peer {i} diverged");
                converged = false;
            }
        }
        if p.received.load(Ordering::Relaxed) != expected_per_peer[i] {
            // A step that overloaded the server may lose deliveries; the point says so.
            converged = converged && points.iter().any(|pt| pt.delivered < pt.expected);
        }
    }
    for p in peer_list {
        if let Some(tx) = p.tx {
            tx.close().await;
        }
        p.task.abort();
    }
    Ok(Outcome {
        points,
        converged,
        disconnected,
    })
}

/// Sends `frames` at `rate` per second (a 1 ms tick, catching up on what is due), noting
/// each send time.
pub async fn pace(
    tx: &mut Tx,
    frames: &[Vec<u8>],
    rate: f64,
    log: &SendLog,
    writer: usize,
    first_clock: usize,
) -> Result<(), Error> {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next = 0usize;
    while next < frames.len() {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate).floor() as usize + 1).min(frames.len());
        if due <= next {
            continue;
        }
        for (i, frame) in frames.iter().enumerate().take(due).skip(next) {
            let at = log.epoch.elapsed().as_nanos() as u64;
            log.times[writer][first_clock + i].store(at, Ordering::Relaxed);
            tx.feed(frame.clone()).await?;
        }
        tx.flush().await?;
        next = due;
    }
    Ok(())
}

/// Starts the task that reads `rx`: every new clock of a writer other than `own` is one
/// delivery, timed against its send time in `log` into the histogram of its phase.
#[allow(clippy::too_many_arguments)]
pub fn spawn_peer(
    own: Option<usize>,
    doc: Doc,
    applies: bool,
    mut rx: Rx,
    tx: Tx,
    log: Arc<SendLog>,
    phase_of: Arc<Vec<u8>>,
    histograms: Histograms,
) -> Peer {
    let received = Arc::new(AtomicU64::new(0));
    let task = {
        let received = received.clone();
        let histograms = histograms.clone();
        let doc = applies.then(|| doc.clone());
        tokio::spawn(async move {
            // Per writer, the clock this peer has seen up to.
            let mut seen = vec![0u64; log.times.len()];
            while let Some(frame) = rx.frame().await? {
                let Incoming::Update(u) = rx.framer.parse(&frame)? else {
                    continue;
                };
                let now = log.epoch.elapsed().as_nanos() as u64;
                let update = Update::decode_v1(u).map_err(|e| Error::Protocol(e.to_string()))?;
                // Servers may merge several updates into one message, and some echo a
                // writer's own updates back: every new clock of another writer is one delivery.
                let inserted = update.insertions(true);
                for (client, ranges) in inserted.iter() {
                    let w = client.get().wrapping_sub(FIRST_WRITER) as usize;
                    if Some(w) == own || w >= seen.len() {
                        continue;
                    }
                    let Some(end) = ranges.iter().map(|r| u64::from(r.end)).max() else {
                        continue;
                    };
                    if end <= seen[w] {
                        continue;
                    }
                    if let Ok(mut hs) = histograms.lock() {
                        for clock in seen[w]..end {
                            let sent = log.times[w]
                                .get(clock as usize)
                                .map_or(0, |t| t.load(Ordering::Relaxed));
                            let phase = phase_of.get(clock as usize).copied().unwrap_or(0) as usize;
                            if let Some(h) = hs.get_mut(phase) {
                                h.saturating_record((now.saturating_sub(sent) / 1000).max(1));
                            }
                        }
                    }
                    received.fetch_add(end - seen[w], Ordering::Relaxed);
                    seen[w] = end;
                }
                if let Some(doc) = &doc {
                    doc.transact_mut()
                        .apply_update(update)
                        .map_err(|e| Error::Protocol(e.to_string()))?;
                }
            }
            Ok(())
        })
    };
    Peer {
        doc: applies.then_some(doc),
        received,
        task,
        tx: Some(tx),
    }
}

/// Until `until`, every 15 s, sends an awareness update from each of `peers` (client id,
/// sender). A send that fails is left alone: the peer's reader sees the close.
async fn keep_alive(
    peers: &mut [(u64, Tx)],
    framer: &crate::wire::Framer,
    clock: &mut u64,
    until: Instant,
) {
    const EVERY: Duration = Duration::from_secs(15);
    let mut at = Instant::now() + EVERY;
    while at < until {
        tokio::time::sleep_until(at.into()).await;
        *clock += 1;
        for (client, tx) in peers.iter_mut() {
            let _ = tx
                .send(framer.awareness(*client, *clock, "{\"user\":{\"name\":\"load\"}}"))
                .await;
        }
        at += EVERY;
    }
}

/// CPU seconds of all `servers` together; `None` if there are none or one is gone.
fn cpu_of(servers: &[Process]) -> Option<f64> {
    if servers.is_empty() {
        return None;
    }
    servers.iter().map(Process::cpu_seconds).sum()
}

/// Resident memory of all `servers` together, MiB.
fn rss_of(servers: &[Process]) -> Option<f64> {
    if servers.is_empty() {
        return None;
    }
    servers
        .iter()
        .map(Process::rss_bytes)
        .sum::<Option<u64>>()
        .map(crate::workloads::ingest::mib)
}

/// Polls `cond` every 10 ms for up to 30 s.
pub async fn wait_until(mut cond: impl FnMut() -> bool, what: &str) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        if Instant::now() > deadline {
            return Err(Error::Timeout(what.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
