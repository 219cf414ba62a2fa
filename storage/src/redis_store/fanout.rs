//! [`Fanout`] on Redis pub/sub: channels `canvas:live:{canvas_id}` and `canvas:control`
//! (server-wide messages), one dedicated pub/sub
//! connection per subscription (a room), publishing on the shared connection.
//!
//! Pub/sub delivers at most once: a node that misses a message (a dropped connection) must
//! catch up from the durable log, which the server does before every checkpoint.

use super::RedisStore;
use crate::{Fanout, StorageResult};
use async_trait::async_trait;
use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Messages buffered per subscription before the subscriber is considered stuck.
const BUFFER: usize = 4096;

impl RedisStore {
    fn live_channel(&self, canvas_id: Uuid) -> String {
        self.key(format_args!("canvas:live:{canvas_id}"))
    }

    fn control_channel(&self) -> String {
        self.key(format_args!("canvas:control"))
    }
}

#[async_trait]
impl Fanout for RedisStore {
    fn is_shared(&self) -> bool {
        true
    }

    async fn publish(&self, canvas_id: Uuid, message: Vec<u8>) -> StorageResult<()> {
        let mut conn = self.conn();
        let _receivers: i64 = conn.publish(self.live_channel(canvas_id), message).await?;
        Ok(())
    }

    async fn subscribe(&self, canvas_id: Uuid) -> StorageResult<mpsc::Receiver<Vec<u8>>> {
        self.subscribe_channel(self.live_channel(canvas_id)).await
    }

    async fn publish_control(&self, message: Vec<u8>) -> StorageResult<()> {
        let mut conn = self.conn();
        let _receivers: i64 = conn.publish(self.control_channel(), message).await?;
        Ok(())
    }

    async fn subscribe_control(&self) -> StorageResult<mpsc::Receiver<Vec<u8>>> {
        self.subscribe_channel(self.control_channel()).await
    }
}

impl RedisStore {
    /// A dedicated pub/sub connection subscribed to one channel, forwarding its messages.
    async fn subscribe_channel(&self, channel: String) -> StorageResult<mpsc::Receiver<Vec<u8>>> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        let (tx, rx) = mpsc::channel(BUFFER);
        tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            loop {
                tokio::select! {
                    message = messages.next() => match message {
                        Some(message) => {
                            if tx.send(message.get_payload_bytes().to_vec()).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }
}
