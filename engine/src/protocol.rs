//! The y-websocket wire codec (y-protocols) and our MessagePack extension messages.
//!
//! One WebSocket frame carries exactly one protocol message: the JavaScript client decodes
//! only the first message of a frame, and [`decode`] refuses anything after it.
//!
//! Standard messages (as [`yrs::sync::Message`]):
//!
//! | type | message | body |
//! |---|---|---|
//! | 0 | sync | sub type (0 step 1 = state vector, 1 step 2 = update, 2 update), then a buffer |
//! | 1 | awareness | a buffer holding an awareness update |
//! | 2 | auth | 0 = permission denied + reason string; anything else = granted |
//! | 3 | query awareness | nothing |
//!
//! Extensions use type numbers from 100 up ([`MSG_ACK`], [`MSG_ERROR`]) and carry a
//! MessagePack map as their buffer: `[type: varUint][len: varUint][msgpack bytes]`. They
//! arrive as [`Message::Custom`]; [`decode_extension`] reads the body. Standard clients
//! ignore unknown message types.
//!
//! [`decode`] reads the frame with yrs's own primitives but checks what yrs would trust:
//! client ids above 2^53 (yrs's `ClientID::new` asserts on them in debug builds), bytes
//! left over inside a state vector or awareness buffer, bytes after the message, and an auth
//! permission other than denied (0) or granted (1).

use serde::{Deserialize, Serialize};
use yrs::encoding::read::{self, Cursor, Read};
use yrs::encoding::write::Write;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::protocol::{
    MSG_AUTH, MSG_AWARENESS, MSG_QUERY_AWARENESS, MSG_SYNC, MSG_SYNC_STEP_1, MSG_SYNC_STEP_2,
    MSG_SYNC_UPDATE, PERMISSION_DENIED, PERMISSION_GRANTED,
};
use yrs::updates::encoder::Encode;
use yrs::{ClientID, StateVector};

pub use yrs::sync::{AwarenessUpdate, Message, SyncMessage};

/// Message type of a durable-save acknowledgement ([`Ack`]).
pub const MSG_ACK: u8 = 100;
/// Message type of a typed error ([`ErrorBody`]).
pub const MSG_ERROR: u8 = 101;
/// Message type of a bound block's data ([`BlockDataBody`]).
pub const MSG_BLOCK_DATA: u8 = 102;

/// The largest client id Yjs can produce and yrs can hold (53 bits, a JS safe integer).
pub const MAX_CLIENT_ID: u64 = (1 << 53) - 1;

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The frame had no bytes at all.
    #[error("empty frame")]
    Empty,
    /// The frame ended in the middle of a message (a varint, a length-prefixed buffer, ...).
    #[error("truncated message: {0}")]
    Truncated(#[source] read::Error),
    /// The frame is not a well-formed message (bad varint, unknown sync sub type, bad UTF-8, ...).
    #[error("malformed message: {0}")]
    Malformed(#[source] read::Error),
    /// A state vector or awareness update names a client id above 2^53 - 1.
    #[error("client id {0} does not fit in 53 bits")]
    ClientIdOutOfRange(u64),
    /// Bytes were left after the message, or inside one of its nested buffers.
    #[error("{0} unexpected trailing bytes after the message")]
    TrailingBytes(usize),
    /// [`decode_extension`] was given a message type that is not one of our extensions.
    #[error("unknown extension message type {0}")]
    UnknownExtension(u8),
    /// An extension message's MessagePack body did not decode into its type.
    #[error("bad extension body: {0}")]
    ExtensionBody(#[from] rmp_serde::decode::Error),
}

impl ProtocolError {
    fn from_read(e: read::Error) -> Self {
        match e {
            read::Error::EndOfBuffer(_) => ProtocolError::Truncated(e),
            other => ProtocolError::Malformed(other),
        }
    }
}

/// Body of [`MSG_ACK`]: the server has fully processed (durably stored, or refused) the first
/// `through` document updates (sync step 2 and update messages) received on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// How many document updates from this connection are done, counting from 1.
    pub through: u64,
}

/// Body of [`MSG_ERROR`]: a typed error the server reports to one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `read_only`, `forbidden_sharing`, `invalid_update`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The connection's document update number this error is about, if any (see [`Ack`]).
    pub seq: Option<u64>,
}

/// One column of a bound block's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataColumn {
    /// The column's name.
    pub name: String,
    /// Its portable type (`integer`, `number`, `string`, `date`, ...).
    #[serde(rename = "type")]
    pub data_type: String,
}

/// Why a bound block has no data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataError {
    /// Stable code: `query_not_found`, `forbidden_query`, `invalid_binding`,
    /// `unknown_column`, `invalid_config`, `execution_failed`, ...
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// Body of [`MSG_BLOCK_DATA`]: the data of a block bound to a query, sent to every
/// connection of the room whenever it is (re)computed, and once per bound block to a
/// connection that joins. Derived data: it never enters the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDataBody {
    /// The block.
    pub block_id: String,
    /// `completed`, `failed` / `error` (see `error`), or `running`: an execution for the
    /// block started (its id in `execution_id`; no data in the message).
    pub status: String,
    /// The execution that produced (or looked up) the result.
    pub execution_id: Option<String>,
    /// The result's columns.
    pub columns: Vec<DataColumn>,
    /// The result's rows, the first [`BLOCK_DATA_ROWS`] of them.
    pub rows: Vec<Vec<serde_json::Value>>,
    /// How many rows the result has (more than `rows` when capped).
    pub total_rows: u64,
    /// When the result was computed (RFC 3339).
    pub computed_at: Option<String>,
    /// Whether it came from the result cache.
    pub from_cache: bool,
    /// A chart's series (`[{name, points: [{x, y}]}]`), computed by the server from
    /// `config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<serde_json::Value>,
    /// Why there is no data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<DataError>,
    /// The binding this answers, `{query_id, parameters}` (absent for an unusable one): the
    /// message can reach a client before the document edit that made the binding, and a
    /// client tells by this whether the data it holds is for the binding it now sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<serde_json::Value>,
}

/// Most rows a [`BlockDataBody`] carries.
pub const BLOCK_DATA_ROWS: usize = 1000;

/// One of our extension messages, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    /// A durable-save acknowledgement ([`MSG_ACK`]).
    Ack(Ack),
    /// A typed error ([`MSG_ERROR`]).
    Error(ErrorBody),
    /// A bound block's data ([`MSG_BLOCK_DATA`]).
    BlockData(Box<BlockDataBody>),
}

impl Extension {
    /// The message type number this extension is sent with.
    pub fn tag(&self) -> u8 {
        match self {
            Extension::Ack(_) => MSG_ACK,
            Extension::Error(_) => MSG_ERROR,
            Extension::BlockData(_) => MSG_BLOCK_DATA,
        }
    }
}

/// Decodes exactly one y-websocket message from one WebSocket frame.
///
/// Never panics; an empty frame, a truncated or malformed message, a client id above 53
/// bits, and any trailing byte are errors. Sync step 2 and update payloads are returned as
/// raw bytes (not decoded here: the inspector does that); state vectors and awareness
/// updates are decoded.
pub fn decode(frame: &[u8]) -> Result<Message, ProtocolError> {
    if frame.is_empty() {
        return Err(ProtocolError::Empty);
    }
    let mut cur = Cursor::new(frame);
    let msg = read_message(&mut cur)?;
    let rest = frame.len().saturating_sub(cur.next);
    if rest > 0 {
        return Err(ProtocolError::TrailingBytes(rest));
    }
    Ok(msg)
}

fn read_message(cur: &mut Cursor<'_>) -> Result<Message, ProtocolError> {
    let tag: u8 = cur.read_var().map_err(ProtocolError::from_read)?;
    match tag {
        MSG_SYNC => {
            let sub: u8 = cur.read_var().map_err(ProtocolError::from_read)?;
            let buf = cur.read_buf().map_err(ProtocolError::from_read)?;
            match sub {
                MSG_SYNC_STEP_1 => Ok(Message::Sync(SyncMessage::SyncStep1(read_state_vector(
                    buf,
                )?))),
                MSG_SYNC_STEP_2 => Ok(Message::Sync(SyncMessage::SyncStep2(buf.to_vec()))),
                MSG_SYNC_UPDATE => Ok(Message::Sync(SyncMessage::Update(buf.to_vec()))),
                _ => Err(ProtocolError::Malformed(read::Error::UnexpectedValue)),
            }
        }
        MSG_AWARENESS => {
            let buf = cur.read_buf().map_err(ProtocolError::from_read)?;
            Ok(Message::Awareness(read_awareness(buf)?))
        }
        MSG_AUTH => {
            let permission: u8 = cur.read_var().map_err(ProtocolError::from_read)?;
            match permission {
                PERMISSION_DENIED => {
                    let reason = cur.read_string().map_err(ProtocolError::from_read)?;
                    Ok(Message::Auth(Some(reason.to_owned())))
                }
                PERMISSION_GRANTED => Ok(Message::Auth(None)),
                // yrs reads any other value as granted, which would re-encode differently
                _ => Err(ProtocolError::Malformed(read::Error::UnexpectedValue)),
            }
        }
        MSG_QUERY_AWARENESS => Ok(Message::AwarenessQuery),
        other => {
            let buf = cur.read_buf().map_err(ProtocolError::from_read)?;
            Ok(Message::Custom(other, buf.to_vec()))
        }
    }
}

fn read_client_id(cur: &mut Cursor<'_>) -> Result<ClientID, ProtocolError> {
    let raw: u64 = cur.read_var().map_err(ProtocolError::from_read)?;
    if raw > MAX_CLIENT_ID {
        return Err(ProtocolError::ClientIdOutOfRange(raw));
    }
    Ok(ClientID::new(raw))
}

fn ensure_consumed(cur: &Cursor<'_>) -> Result<(), ProtocolError> {
    let rest = cur.buf.len().saturating_sub(cur.next);
    if rest > 0 {
        Err(ProtocolError::TrailingBytes(rest))
    } else {
        Ok(())
    }
}

/// Reads a state vector like yrs's `StateVector::decode`, without trusting the client ids or
/// the declared length (entries are only stored as they are actually read).
fn read_state_vector(buf: &[u8]) -> Result<StateVector, ProtocolError> {
    let mut cur = Cursor::new(buf);
    let len: u32 = cur.read_var().map_err(ProtocolError::from_read)?;
    let mut entries = Vec::new();
    for _ in 0..len {
        let client = read_client_id(&mut cur)?;
        let clock: u32 = cur.read_var().map_err(ProtocolError::from_read)?;
        entries.push((client, clock));
    }
    ensure_consumed(&cur)?;
    Ok(entries.into_iter().collect())
}

/// Decodes an awareness update buffer (the body of an awareness message, or what another
/// server node publishes) like yrs's `AwarenessUpdate::decode_v1`, but without trusting it:
/// a client id above 2^53 - 1 is an error (yrs asserts on it in debug builds), the declared
/// entry count reserves nothing (yrs reserves room for it up front: a few bytes could ask for
/// gigabytes), and bytes left after the last entry are an error. A later entry for the same
/// client replaces an earlier one.
pub fn decode_awareness_update(buf: &[u8]) -> Result<AwarenessUpdate, ProtocolError> {
    read_awareness(buf)
}

/// [`decode_awareness_update`].
fn read_awareness(buf: &[u8]) -> Result<AwarenessUpdate, ProtocolError> {
    let mut cur = Cursor::new(buf);
    let len: u32 = cur.read_var().map_err(ProtocolError::from_read)?;
    let mut clients = std::collections::HashMap::new();
    for _ in 0..len {
        let client = read_client_id(&mut cur)?;
        let clock: u32 = cur.read_var().map_err(ProtocolError::from_read)?;
        let json = cur.read_string().map_err(ProtocolError::from_read)?;
        clients.insert(
            client,
            AwarenessUpdateEntry {
                clock,
                json: json.into(),
            },
        );
    }
    ensure_consumed(&cur)?;
    Ok(AwarenessUpdate { clients })
}

/// Encodes one message as one frame.
///
/// Same bytes as yrs's `Message::encode_v1`, except that the type of a
/// [`Message::Custom`] is written as a varint (as y-protocols and [`decode`] read it), so
/// custom types 128..=255 round-trip too. A `Custom` message must not use types 0..=3.
pub fn encode(msg: &Message) -> Vec<u8> {
    match msg {
        Message::Custom(tag, body) => {
            let mut out = Vec::with_capacity(body.len() + 6);
            out.write_var(*tag);
            out.write_buf(body);
            out
        }
        other => other.encode_v1(),
    }
}

/// A sync step 1 frame carrying our state vector.
pub fn sync_step1(sv: &StateVector) -> Vec<u8> {
    encode(&Message::Sync(SyncMessage::SyncStep1(sv.clone())))
}

/// A sync step 2 frame carrying a (v1) update: the answer to a peer's step 1.
pub fn sync_step2(update: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(update.len() + 8);
    out.write_var(MSG_SYNC);
    out.write_var(MSG_SYNC_STEP_2);
    out.write_buf(update);
    out
}

/// A sync update frame carrying a (v1) update.
pub fn update(update: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(update.len() + 8);
    out.write_var(MSG_SYNC);
    out.write_var(MSG_SYNC_UPDATE);
    out.write_buf(update);
    out
}

/// An awareness frame.
pub fn awareness(update: &AwarenessUpdate) -> Vec<u8> {
    let mut out = Vec::new();
    out.write_var(MSG_AWARENESS);
    out.write_buf(update.encode_v1());
    out
}

/// A query awareness frame (asks the peer to send every awareness state it knows).
pub fn query_awareness() -> Vec<u8> {
    encode(&Message::AwarenessQuery)
}

/// An auth frame: `Some(reason)` denies permission, `None` grants it.
pub fn auth(deny_reason: Option<&str>) -> Vec<u8> {
    encode(&Message::Auth(deny_reason.map(str::to_owned)))
}

/// The MessagePack body of an extension (a map with field names, readable by
/// `@msgpack/msgpack`).
pub fn extension_body(ext: &Extension) -> Vec<u8> {
    // Serializing these plain structs into a Vec cannot fail: no maps with non-string keys,
    // no I/O errors. Fall back to an empty body rather than panic.
    let body = match ext {
        Extension::Ack(ack) => rmp_serde::to_vec_named(ack),
        Extension::Error(err) => rmp_serde::to_vec_named(err),
        Extension::BlockData(data) => rmp_serde::to_vec_named(data),
    };
    body.unwrap_or_default()
}

/// A full frame carrying an extension message.
pub fn encode_extension(ext: &Extension) -> Vec<u8> {
    encode(&Message::Custom(ext.tag(), extension_body(ext)))
}

/// Decodes the body of a [`Message::Custom`] with one of our extension types.
pub fn decode_extension(tag: u8, body: &[u8]) -> Result<Extension, ProtocolError> {
    match tag {
        MSG_ACK => Ok(Extension::Ack(rmp_serde::from_slice(body)?)),
        MSG_ERROR => Ok(Extension::Error(rmp_serde::from_slice(body)?)),
        MSG_BLOCK_DATA => Ok(Extension::BlockData(Box::new(rmp_serde::from_slice(body)?))),
        other => Err(ProtocolError::UnknownExtension(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn aw(entries: &[(u64, u32, &str)]) -> AwarenessUpdate {
        AwarenessUpdate {
            clients: entries
                .iter()
                .map(|&(id, clock, json)| {
                    (
                        ClientID::new(id),
                        AwarenessUpdateEntry {
                            clock,
                            json: Arc::from(json),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn round_trips_standard_messages() {
        let sv: StateVector = [(ClientID::new(7), 3), (ClientID::new(MAX_CLIENT_ID), 9)]
            .into_iter()
            .collect();
        let msgs = [
            Message::Sync(SyncMessage::SyncStep1(sv)),
            Message::Sync(SyncMessage::SyncStep2(vec![0, 0])),
            Message::Sync(SyncMessage::Update(vec![1, 2, 3])),
            Message::Awareness(aw(&[(1, 2, r#"{"user":"a"}"#), (5, 1, "null")])),
            Message::Auth(Some("nope".into())),
            Message::Auth(None),
            Message::AwarenessQuery,
            Message::Custom(100, vec![9, 9]),
            Message::Custom(200, vec![]),
        ];
        for m in msgs {
            let frame = encode(&m);
            assert_eq!(decode(&frame).ok(), Some(m.clone()), "{m:?}");
            // Matches yrs's own encoding for the standard ones.
            if !matches!(m, Message::Custom(t, _) if t >= 128) {
                assert_eq!(frame, m.encode_v1());
            }
        }
    }

    #[test]
    fn convenience_encoders_match_encode() {
        let sv = StateVector::default();
        assert_eq!(
            sync_step1(&sv),
            encode(&Message::Sync(SyncMessage::SyncStep1(sv.clone())))
        );
        assert_eq!(
            sync_step2(&[4, 5]),
            encode(&Message::Sync(SyncMessage::SyncStep2(vec![4, 5])))
        );
        assert_eq!(
            update(&[4, 5]),
            encode(&Message::Sync(SyncMessage::Update(vec![4, 5])))
        );
        let a = aw(&[(3, 1, "{}")]);
        assert_eq!(awareness(&a), encode(&Message::Awareness(a.clone())));
        assert_eq!(query_awareness(), vec![3]);
        assert_eq!(auth(None), encode(&Message::Auth(None)));
    }

    #[test]
    fn rejects_empty_trailing_and_truncated() {
        assert!(matches!(decode(&[]), Err(ProtocolError::Empty)));
        let mut f = query_awareness();
        f.push(0);
        assert!(matches!(decode(&f), Err(ProtocolError::TrailingBytes(1))));
        let mut two = update(&[1]);
        two.extend(update(&[2]));
        assert!(matches!(decode(&two), Err(ProtocolError::TrailingBytes(_))));
        let u = update(&[1, 2, 3]);
        for cut in 1..u.len() {
            assert!(matches!(
                decode(&u[..cut]),
                Err(ProtocolError::Truncated(_))
            ));
        }
        // Unknown sync sub type.
        assert!(matches!(
            decode(&[0, 7, 0]),
            Err(ProtocolError::Malformed(_))
        ));
        // Varint that never ends / overflows u8.
        assert!(decode(&[0xff; 20]).is_err());
        assert!(matches!(
            decode(&[0x80, 0x02, 0]),
            Err(ProtocolError::Malformed(_))
        ));
        // Huge declared buffer length.
        assert!(matches!(
            decode(&[0, 2, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Err(ProtocolError::Truncated(_))
        ));
    }

    #[test]
    fn rejects_client_ids_above_53_bits() {
        // awareness with one entry, client id 2^60
        let mut inner = Vec::new();
        inner.write_var(1u32);
        inner.write_var(1u64 << 60);
        inner.write_var(1u32);
        inner.write_string("{}");
        let mut f = Vec::new();
        f.write_var(MSG_AWARENESS);
        f.write_buf(&inner);
        assert!(matches!(
            decode(&f),
            Err(ProtocolError::ClientIdOutOfRange(_))
        ));
        // state vector likewise
        let mut sv = Vec::new();
        sv.write_var(1u32);
        sv.write_var(u64::MAX);
        sv.write_var(1u32);
        let mut f = vec![0, 0];
        f.write_buf(&sv);
        assert!(matches!(
            decode(&f),
            Err(ProtocolError::ClientIdOutOfRange(_))
        ));
    }

    #[test]
    fn rejects_bytes_left_in_nested_buffers() {
        let mut sv = StateVector::default().encode_v1();
        sv.push(0);
        let mut f = vec![0, 0];
        f.write_buf(&sv);
        assert!(matches!(decode(&f), Err(ProtocolError::TrailingBytes(1))));
    }

    #[test]
    fn awareness_declared_length_is_not_trusted() {
        let mut inner = Vec::new();
        inner.write_var(u32::MAX);
        let mut f = Vec::new();
        f.write_var(MSG_AWARENESS);
        f.write_buf(&inner);
        assert!(matches!(decode(&f), Err(ProtocolError::Truncated(_))));
    }

    #[test]
    fn awareness_buffers_decode_checked() {
        let a = aw(&[(1, 2, r#"{"user":"a"}"#), (MAX_CLIENT_ID, 1, "null")]);
        assert_eq!(decode_awareness_update(&a.encode_v1()).ok(), Some(a));
        // client 2^60, clock 1, "{}": yrs's decoder asserts on it in debug builds
        let mut wide = vec![1];
        wide.write_var(1u64 << 60);
        wide.extend([1, 2, b'{', b'}']);
        assert!(matches!(
            decode_awareness_update(&wide),
            Err(ProtocolError::ClientIdOutOfRange(_))
        ));
        // 2^26 entries declared, none there: yrs reserves room for all of them first
        assert!(matches!(
            decode_awareness_update(&[0x80, 0x80, 0x80, 0x20]),
            Err(ProtocolError::Truncated(_))
        ));
        assert!(matches!(
            decode_awareness_update(&[0, 0]),
            Err(ProtocolError::TrailingBytes(1))
        ));
    }

    #[test]
    fn extensions_round_trip() {
        for ext in [
            Extension::Ack(Ack { through: 0 }),
            Extension::Ack(Ack { through: u64::MAX }),
            Extension::Error(ErrorBody {
                code: "read_only".into(),
                message: "viewers cannot edit".into(),
                seq: Some(3),
            }),
            Extension::Error(ErrorBody {
                code: "x".into(),
                message: String::new(),
                seq: None,
            }),
            Extension::BlockData(Box::new(BlockDataBody {
                block_id: "b1".into(),
                status: "completed".into(),
                execution_id: Some("e".into()),
                columns: vec![DataColumn {
                    name: "region".into(),
                    data_type: "string".into(),
                }],
                rows: vec![
                    vec![serde_json::json!("north")],
                    vec![serde_json::json!(null)],
                ],
                total_rows: 2,
                computed_at: Some("2026-01-01T00:00:00Z".into()),
                from_cache: false,
                series: Some(serde_json::json!([{"name": "a", "points": [{"x": 1, "y": 2.5}]}])),
                error: None,
                binding: Some(serde_json::json!({"query_id": "q", "parameters": {"min": 1}})),
            })),
        ] {
            let frame = encode_extension(&ext);
            let Ok(Message::Custom(tag, body)) = decode(&frame) else {
                panic!("not a custom message");
            };
            assert_eq!(tag, ext.tag());
            assert_eq!(decode_extension(tag, &body).ok(), Some(ext));
        }
    }

    #[test]
    fn extension_bodies_are_named_maps() {
        let body = extension_body(&Extension::Ack(Ack { through: 5 }));
        // fixmap(1) "through" 5
        assert_eq!(body[0], 0x81);
        assert_eq!(&body[1..9], b"\xa7through");
        assert_eq!(body[9], 5);
    }

    #[test]
    fn bad_extension_bodies_are_errors() {
        assert!(matches!(
            decode_extension(MSG_ACK, &[0xc1]),
            Err(ProtocolError::ExtensionBody(_))
        ));
        assert!(matches!(
            decode_extension(MSG_ERROR, &[]),
            Err(ProtocolError::ExtensionBody(_))
        ));
        assert!(matches!(
            decode_extension(150, &[]),
            Err(ProtocolError::UnknownExtension(150))
        ));
    }
}
