//! One WebSocket client connection, split into a sending and a receiving half so that a
//! writer can stream updates while another task drains what the server sends back.

use crate::Error;
use crate::target::Room;
use crate::wire::{Framer, Incoming};
use canvas_engine::yrs::updates::decoder::Decode;
use canvas_engine::yrs::{Doc, ReadTxn, Transact, Update};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The longest the load generator waits for any one expected message before it gives up.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The sending half.
pub struct Tx {
    sink: SplitSink<Ws, Message>,
}

/// The receiving half.
pub struct Rx {
    stream: SplitStream<Ws>,
    /// Parses this room's frames.
    pub framer: Framer,
}

impl Tx {
    /// Queues a frame without flushing.
    pub async fn feed(&mut self, frame: Vec<u8>) -> Result<(), Error> {
        Ok(self.sink.feed(Message::Binary(frame.into())).await?)
    }

    /// Writes out queued frames.
    pub async fn flush(&mut self) -> Result<(), Error> {
        Ok(self.sink.flush().await?)
    }

    /// Sends one frame now.
    pub async fn send(&mut self, frame: Vec<u8>) -> Result<(), Error> {
        Ok(self.sink.send(Message::Binary(frame.into())).await?)
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.sink.close().await;
    }
}

impl Rx {
    /// The next binary frame; `None` once the connection is closed.
    pub async fn frame(&mut self) -> Result<Option<tokio_tungstenite::tungstenite::Bytes>, Error> {
        loop {
            match self.stream.next().await {
                None | Some(Ok(Message::Close(None))) => return Ok(None),
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Err(Error::Protocol(format!(
                        "closed by the server: {} {}",
                        u16::from(frame.code),
                        frame.reason
                    )));
                }
                Some(Ok(Message::Binary(b))) => return Ok(Some(b)),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Reads until sync step 2 arrives and applies it (and any update before it) to `doc`.
    /// Returns how many bytes the step 2 payload had.
    pub async fn until_synced(&mut self, doc: &Doc) -> Result<usize, Error> {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.frame())
                .await
                .map_err(|_| Error::Timeout("sync step 2".into()))??
                .ok_or_else(|| Error::Protocol("closed before sync step 2".into()))?;
            match self.framer.parse(&frame)? {
                Incoming::Step2(u) => {
                    apply(doc, u)?;
                    return Ok(u.len());
                }
                Incoming::Update(u) => apply(doc, u)?,
                Incoming::Refused(why) => return Err(Error::Protocol(why)),
                _ => {}
            }
        }
    }
}

/// Applies a v1 update to a document.
pub fn apply(doc: &Doc, update: &[u8]) -> Result<(), Error> {
    let update = Update::decode_v1(update).map_err(|e| Error::Protocol(e.to_string()))?;
    doc.transact_mut()
        .apply_update(update)
        .map_err(|e| Error::Protocol(e.to_string()))
}

/// Opens a connection (small buffers, so ten thousand idle clients stay cheap) and sends
/// the dialect's greeting and sync step 1 for `doc`.
pub async fn open(room: &Room, acks: bool, doc: &Doc) -> Result<(Tx, Rx), Error> {
    let url = if acks { &room.ack_url } else { &room.url };
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(16 * 1024)
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let (ws, _) = tokio::time::timeout(
        PATIENCE,
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true),
    )
    .await
    .map_err(|_| Error::Timeout(format!("connect {url}")))??;
    let (sink, stream) = ws.split();
    let mut tx = Tx { sink };
    let rx = Rx {
        stream,
        framer: room.framer.clone(),
    };
    if let Some(hello) = room.framer.hello() {
        tx.feed(hello).await?;
    }
    let sv =
        canvas_engine::yrs::updates::encoder::Encode::encode_v1(&doc.transact().state_vector());
    tx.send(room.framer.step1(&sv)).await?;
    Ok((tx, rx))
}

/// Opens a connection and waits until it is synced into `doc`.
pub async fn join(room: &Room, acks: bool, doc: &Doc) -> Result<(Tx, Rx), Error> {
    let (tx, mut rx) = open(room, acks, doc).await?;
    rx.until_synced(doc).await?;
    Ok((tx, rx))
}
