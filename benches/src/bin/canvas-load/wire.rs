//! The y-websocket wire format, in the two dialects the load generator speaks.
//!
//! Plain y-websocket (our server, y-sweet, the y-websocket server): one lib0-encoded message
//! per frame, `varuint type`, then for sync messages `varuint subtype` and `varbytes payload`.
//! Hocuspocus prefixes every message with the document name (`varstring`), wants an auth
//! message before anything else, answers sync step 1 with its own type 4 ("sync reply") and
//! acknowledges every update with a type 8 "sync status" message.
//!
//! Frames are parsed by hand rather than through yrs' `Message` decoder so that a receiver
//! on the hot path only reads the few bytes it needs and borrows the update without copying.

/// Which framing a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Standard y-websocket framing.
    YWebsocket,
    /// Hocuspocus framing: document name before each message, auth first.
    Hocuspocus,
}

const SYNC: u64 = 0;
const AWARENESS: u64 = 1;
const AUTH: u64 = 2;
const HOCUSPOCUS_SYNC_REPLY: u64 = 4;
const HOCUSPOCUS_SYNC_STATUS: u64 = 8;
const EXT_ACK: u64 = 100;
const EXT_ERROR: u64 = 101;

/// One message a server sent, as far as the load generator cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// Sync step 1 (the server's state vector).
    Step1,
    /// Sync step 2: the part of the document the client lacked.
    Step2(&'a [u8]),
    /// A document update relayed from another client.
    Update(&'a [u8]),
    /// Our server's durable acknowledgement: the first `through` updates are durable.
    AckThrough(u64),
    /// Hocuspocus acknowledged one more update (sync status).
    AckOne,
    /// Hocuspocus accepted the auth message.
    Authenticated,
    /// The server refused something (our error extension, or Hocuspocus permission denied).
    Refused(String),
    /// Awareness, query awareness and anything else the load generator ignores.
    Ignored,
}

/// What went wrong reading a frame.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The frame ended inside a field.
    #[error("frame truncated")]
    Truncated,
    /// A varuint did not fit in 64 bits.
    #[error("varuint overflows 64 bits")]
    Overflow,
    /// The document name prefix was not UTF-8.
    #[error("document name is not UTF-8")]
    Utf8,
    /// Our server's extension body did not decode.
    #[error("extension message: {0}")]
    Extension(String),
}

/// A reader over a frame.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varuint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let (&byte, rest) = self.buf.split_first().ok_or(WireError::Truncated)?;
            self.buf = rest;
            if shift >= 64 {
                return Err(WireError::Overflow);
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = usize::try_from(self.varuint()?).map_err(|_| WireError::Overflow)?;
        if self.buf.len() < len {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    fn string(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError::Utf8)
    }
}

fn put_varuint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varuint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Encodes frames for one room in one dialect.
#[derive(Debug, Clone)]
pub struct Framer {
    dialect: Dialect,
    /// The Hocuspocus document name (unused for plain y-websocket).
    room: String,
}

impl Framer {
    /// A framer for `room` in `dialect`.
    pub fn new(dialect: Dialect, room: &str) -> Framer {
        Framer {
            dialect,
            room: room.to_owned(),
        }
    }

    fn start(&self, capacity: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(capacity + self.room.len() + 8);
        if self.dialect == Dialect::Hocuspocus {
            put_bytes(&mut out, self.room.as_bytes());
        }
        out
    }

    fn sync(&self, subtype: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = self.start(payload.len() + 4);
        put_varuint(&mut out, SYNC);
        put_varuint(&mut out, subtype);
        put_bytes(&mut out, payload);
        out
    }

    /// Sync step 1 with an encoded state vector.
    pub fn step1(&self, state_vector: &[u8]) -> Vec<u8> {
        self.sync(0, state_vector)
    }

    /// A document update.
    pub fn update(&self, update: &[u8]) -> Vec<u8> {
        self.sync(2, update)
    }

    /// An awareness update for one client (`clock` must grow with each one), as a
    /// y-websocket provider sends every 15 s even when nothing changes.
    pub fn awareness(&self, client: u64, clock: u64, state: &str) -> Vec<u8> {
        let mut update = Vec::with_capacity(state.len() + 24);
        put_varuint(&mut update, 1);
        put_varuint(&mut update, client);
        put_varuint(&mut update, clock);
        put_bytes(&mut update, state.as_bytes());
        let mut out = self.start(update.len() + 8);
        put_varuint(&mut out, AWARENESS);
        put_bytes(&mut out, &update);
        out
    }

    /// The messages a client sends right after connecting, before step 1: Hocuspocus wants
    /// an auth message (an empty token: the peer runs without auth); others want nothing.
    pub fn hello(&self) -> Option<Vec<u8>> {
        (self.dialect == Dialect::Hocuspocus).then(|| {
            let mut out = self.start(4);
            put_varuint(&mut out, AUTH);
            put_varuint(&mut out, 0);
            put_bytes(&mut out, b"");
            out
        })
    }

    /// Parses one frame.
    pub fn parse<'a>(&self, frame: &'a [u8]) -> Result<Incoming<'a>, WireError> {
        let mut r = Reader { buf: frame };
        if self.dialect == Dialect::Hocuspocus {
            r.string()?;
        }
        let kind = r.varuint()?;
        Ok(match kind {
            SYNC | HOCUSPOCUS_SYNC_REPLY => match r.varuint()? {
                0 => Incoming::Step1,
                1 => Incoming::Step2(r.bytes()?),
                2 => Incoming::Update(r.bytes()?),
                _ => Incoming::Ignored,
            },
            AUTH if self.dialect == Dialect::Hocuspocus => match r.varuint()? {
                2 => Incoming::Authenticated,
                1 => Incoming::Refused(format!("permission denied: {}", r.string()?)),
                _ => Incoming::Ignored,
            },
            HOCUSPOCUS_SYNC_STATUS if self.dialect == Dialect::Hocuspocus => {
                if r.varuint()? == 1 {
                    Incoming::AckOne
                } else {
                    Incoming::Refused("update not applied (sync status false)".into())
                }
            }
            EXT_ACK | EXT_ERROR if self.dialect == Dialect::YWebsocket => {
                let tag = kind as u8;
                let body = r.bytes()?;
                match canvas_engine::protocol::decode_extension(tag, body)
                    .map_err(|e| WireError::Extension(e.to_string()))?
                {
                    canvas_engine::protocol::Extension::Ack(ack) => {
                        Incoming::AckThrough(ack.through)
                    }
                    canvas_engine::protocol::Extension::Error(e) => {
                        Incoming::Refused(format!("{}: {}", e.code, e.message))
                    }
                    // a bound block's data (102): not what the load generator measures
                    canvas_engine::protocol::Extension::BlockData(_) => Incoming::Ignored,
                }
            }
            AWARENESS => Incoming::Ignored,
            _ => Incoming::Ignored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_both_dialects() {
        for dialect in [Dialect::YWebsocket, Dialect::Hocuspocus] {
            let f = Framer::new(dialect, "room-1");
            assert_eq!(
                f.parse(&f.update(b"abc")).ok(),
                Some(Incoming::Update(b"abc"))
            );
            assert_eq!(f.parse(&f.step1(&[0])).ok(), Some(Incoming::Step1));
            assert_eq!(f.hello().is_some(), dialect == Dialect::Hocuspocus);
        }
        let plain = Framer::new(Dialect::YWebsocket, "r");
        assert_eq!(plain.update(&[7; 200])[..4], [0, 2, 0xc8, 0x01]);
    }

    #[test]
    fn truncated_frames_are_errors() {
        assert!(
            Framer::new(Dialect::YWebsocket, "r")
                .parse(&[0, 2, 9])
                .is_err()
        );
        assert!(
            Framer::new(Dialect::Hocuspocus, "r")
                .parse(&[5, b'a'])
                .is_err()
        );
    }
}
