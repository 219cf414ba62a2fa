//! The y-websocket codec against real documents and awareness, byte compatibility with yrs,
//! and decoding of thousands of random, truncated and mutated frames (never a panic; what
//! decodes re-encodes to the same message).

use canvas_engine::new_doc_with_client_id;
use canvas_engine::protocol::{
    self, Ack, AwarenessUpdate, ErrorBody, Extension, MSG_ACK, MSG_ERROR, Message, ProtocolError,
    SyncMessage, decode, decode_extension, encode, encode_extension,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use yrs::sync::Awareness;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ClientID, GetString, ReadTxn, StateVector, Text, Transact, Update};

/// One frame of every kind, built from a real document and awareness.
fn sample_frames() -> Vec<(Message, Vec<u8>)> {
    let d = new_doc_with_client_id(42);
    let text = d.get_or_insert_text("t");
    let update = {
        let mut txn = d.transact_mut();
        text.push(&mut txn, "hello 😀");
        txn.encode_update_v1()
    };
    let sv = d.transact().state_vector();
    let full = d
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let mut aw = Awareness::new(d);
    aw.set_local_state(json!({"user": {"name": "Ann", "color": "#30bced"}, "cursor": null}))
        .expect("state");
    let aw_update = aw.update().expect("awareness update");

    let mut out = vec![
        (
            Message::Sync(SyncMessage::SyncStep1(sv.clone())),
            protocol::sync_step1(&sv),
        ),
        (
            Message::Sync(SyncMessage::SyncStep1(StateVector::default())),
            protocol::sync_step1(&StateVector::default()),
        ),
        (
            Message::Sync(SyncMessage::SyncStep2(full.clone())),
            protocol::sync_step2(&full),
        ),
        (
            Message::Sync(SyncMessage::Update(update.clone())),
            protocol::update(&update),
        ),
        (
            Message::Awareness(aw_update.clone()),
            protocol::awareness(&aw_update),
        ),
        (
            Message::Awareness(AwarenessUpdate {
                clients: Default::default(),
            }),
            protocol::awareness(&AwarenessUpdate {
                clients: Default::default(),
            }),
        ),
        (Message::AwarenessQuery, protocol::query_awareness()),
        (
            Message::Auth(Some("token expired".into())),
            protocol::auth(Some("token expired")),
        ),
        (Message::Auth(None), protocol::auth(None)),
    ];
    for ext in extensions() {
        let frame = encode_extension(&ext);
        let body = protocol::extension_body(&ext);
        out.push((Message::Custom(ext.tag(), body), frame));
    }
    out.push((
        Message::Custom(150, vec![1, 2, 3]),
        encode(&Message::Custom(150, vec![1, 2, 3])),
    ));
    out.push((
        Message::Custom(255, vec![]),
        encode(&Message::Custom(255, vec![])),
    ));
    out
}

fn extensions() -> Vec<Extension> {
    vec![
        Extension::Ack(Ack { through: 0 }),
        Extension::Ack(Ack { through: 1 << 40 }),
        Extension::Error(ErrorBody {
            code: "read_only".into(),
            message: "viewers cannot change the document".into(),
            seq: Some(17),
        }),
        Extension::Error(ErrorBody {
            code: "invalid_update".into(),
            message: "ünïcödé 😀".into(),
            seq: None,
        }),
    ]
}

#[test]
fn every_message_kind_round_trips() {
    for (msg, frame) in sample_frames() {
        assert_eq!(encode(&msg), frame, "{msg:?}");
        let decoded = decode(&frame).expect("decodes");
        assert_eq!(decoded, msg);
        assert_eq!(encode(&decoded), frame);
    }
}

#[test]
fn standard_frames_are_byte_compatible_with_yrs() {
    for (msg, frame) in sample_frames() {
        if let Message::Custom(tag, _) = msg
            && tag >= 128
        {
            // yrs writes a custom type as one raw byte but reads it as a varint; we write
            // a varint (as y-protocols reads it), so only types < 128 match yrs byte for byte.
            continue;
        }
        assert_eq!(frame, msg.encode_v1(), "{msg:?}");
        assert_eq!(Message::decode_v1(&frame).ok(), Some(msg));
    }
}

#[test]
fn frames_as_a_js_client_sends_them() {
    // y-websocket on connect with an empty doc: sync step 1 with an empty state vector.
    assert_eq!(
        decode(&[0, 0, 1, 0]).ok(),
        Some(Message::Sync(
            SyncMessage::SyncStep1(StateVector::default())
        ))
    );
    // query awareness
    assert_eq!(decode(&[3]).ok(), Some(Message::AwarenessQuery));
    // awareness: one client (id 300 = varint ac 02), clock 1, state "{}"
    let frame = [1, 7, 1, 0xac, 0x02, 1, 2, b'{', b'}'];
    let Ok(Message::Awareness(update)) = decode(&frame) else {
        panic!("awareness frame");
    };
    let entry = update.clients.get(&ClientID::new(300)).expect("client 300");
    assert_eq!((entry.clock, entry.json.as_ref()), (1, "{}"));
    // permission denied
    assert_eq!(
        decode(&[2, 0, 2, b'n', b'o']).ok(),
        Some(Message::Auth(Some("no".into())))
    );
}

#[test]
fn decoded_updates_apply_to_a_document() {
    let (_, frame) = sample_frames()
        .into_iter()
        .find(|(m, _)| matches!(m, Message::Sync(SyncMessage::SyncStep2(_))))
        .expect("step 2");
    let Ok(Message::Sync(SyncMessage::SyncStep2(bytes))) = decode(&frame) else {
        panic!("step 2");
    };
    let d = new_doc_with_client_id(7);
    let text = d.get_or_insert_text("t");
    d.transact_mut()
        .apply_update(Update::decode_v1(&bytes).expect("update"))
        .expect("applies");
    assert_eq!(text.get_string(&d.transact()), "hello 😀");
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut rng = StdRng::seed_from_u64(1);
    for (_, frame) in sample_frames() {
        for extra in 1..6 {
            let mut f = frame.clone();
            f.extend((0..extra).map(|_| rng.random::<u8>()));
            assert!(
                matches!(decode(&f), Err(ProtocolError::TrailingBytes(n)) if n == extra),
                "{frame:?} + {extra}"
            );
        }
        // Two messages in one frame are refused too.
        let mut two = frame.clone();
        two.extend_from_slice(&frame);
        assert!(matches!(decode(&two), Err(ProtocolError::TrailingBytes(_))));
    }
}

#[test]
fn every_truncation_is_an_error() {
    for (msg, frame) in sample_frames() {
        assert!(matches!(decode(&frame[..0]), Err(ProtocolError::Empty)));
        for cut in 1..frame.len() {
            // A cut can only succeed where a shorter message is complete, which none of
            // these are, except query awareness which has no body.
            assert!(decode(&frame[..cut]).is_err(), "{msg:?} cut at {cut}");
        }
    }
}

/// Decodes and, if it decodes, checks that re-encoding and decoding again is stable.
fn decode_never_panics(frame: &[u8]) -> bool {
    match decode(frame) {
        Ok(msg) => {
            let again = encode(&msg);
            assert_eq!(decode(&again).ok(), Some(msg), "unstable: {frame:?}");
            true
        }
        Err(_) => false,
    }
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = StdRng::seed_from_u64(0xC0FFEE);
    let mut ok = 0;
    for _ in 0..20_000 {
        let len = rng.random_range(0..48);
        let mut frame: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        // Bias the first byte towards real message types so the decoders get exercised.
        if !frame.is_empty() && rng.random_bool(0.7) {
            frame[0] = rng.random_range(0..4);
        }
        if frame.len() > 1 && frame[0] == 0 && rng.random_bool(0.5) {
            frame[1] = rng.random_range(0..3);
        }
        if decode_never_panics(&frame) {
            ok += 1;
        }
    }
    // Some random frames are valid (e.g. [3], or a sync update with a short buffer).
    assert!(ok > 0);
}

#[test]
fn mutated_valid_frames_decode_losslessly_or_are_refused() {
    let mut rng = StdRng::seed_from_u64(7);
    let samples = sample_frames();
    // The frames mutated below decode, and are exactly what their message encodes to.
    for (msg, frame) in &samples {
        assert_eq!(decode(frame).as_ref().ok(), Some(msg), "{frame:?}");
        assert_eq!(&encode(msg), frame, "{msg:?}");
    }
    let (mut decoded, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let (_, base) = &samples[rng.random_range(0..samples.len())];
        let mut f = base.clone();
        for _ in 0..rng.random_range(1..4) {
            match rng.random_range(0..4) {
                0 if !f.is_empty() => {
                    let i = rng.random_range(0..f.len());
                    f[i] = rng.random();
                }
                1 if !f.is_empty() => {
                    let i = rng.random_range(0..f.len());
                    f[i] ^= 1 << rng.random_range(0..8);
                }
                2 => {
                    let i = rng.random_range(0..=f.len());
                    f.insert(i, rng.random());
                }
                _ if !f.is_empty() => {
                    let i = rng.random_range(0..f.len());
                    f.remove(i);
                }
                _ => {}
            }
        }
        match decode(&f) {
            // Accepted: every byte of the frame was read, so the message encodes back to it,
            // unless a number in it was an overlong varint (a continuation byte followed by a
            // zero byte; lib0 reads it as the shorter one, as yrs and the JS decoder do).
            Ok(msg) => {
                let again = encode(&msg);
                if again != f {
                    let overlong = f.windows(2).any(|w| w[0] >= 0x80 && w[1] == 0);
                    assert!(
                        overlong && again.len() < f.len(),
                        "{f:?} decodes to {msg:?}, which encodes to {again:?}"
                    );
                    assert_eq!(decode(&again).as_ref().ok(), Some(&msg), "{again:?}");
                }
                decoded += 1;
            }
            Err(_) => refused += 1,
        }
    }
    // Both outcomes are common: a changed byte inside an update or a string keeps a frame
    // valid, an inserted or removed byte mostly breaks a length or the frame's end.
    assert!(
        decoded > 1_000,
        "only {decoded} of 20000 mutated frames decode"
    );
    assert!(
        refused > 1_000,
        "only {refused} of 20000 mutated frames are refused"
    );
}

#[test]
fn hostile_lengths_and_varints_are_errors() {
    let cases: Vec<Vec<u8>> = vec![
        vec![0xff; 64],                              // endless varint
        vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x01],    // type does not fit in u8
        vec![0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f],    // step 2 claiming 4 GiB
        vec![1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0],    // awareness claiming 4 GiB
        vec![1, 5, 0xff, 0xff, 0xff, 0xff, 0x0f],    // awareness with 4 G entries
        vec![0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x0f], // state vector with 4 G entries
        vec![2, 0, 2, 0xff, 0xfe],                   // auth reason not UTF-8
        vec![1, 4, 1, 1, 1, 0xff],                   // awareness json not UTF-8
        vec![0, 3, 0],                               // unknown sync step
        vec![2, 2],                                  // unknown auth permission
        vec![100, 0xff, 0xff, 0xff, 0xff, 0x0f],     // extension claiming 4 GiB
    ];
    for f in cases {
        assert!(decode(&f).is_err(), "{f:?}");
    }
}

#[test]
fn extensions_decode_from_frames() {
    for ext in extensions() {
        let frame = encode_extension(&ext);
        let Ok(Message::Custom(tag, body)) = decode(&frame) else {
            panic!("custom frame");
        };
        assert!(tag == MSG_ACK || tag == MSG_ERROR);
        assert_eq!(decode_extension(tag, &body).ok(), Some(ext));
    }
    // Garbage bodies are errors, not panics.
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..5_000 {
        let body: Vec<u8> = (0..rng.random_range(0..24)).map(|_| rng.random()).collect();
        let _ = decode_extension(MSG_ACK, &body);
        let _ = decode_extension(MSG_ERROR, &body);
    }
    // An ack body as the TypeScript side would write it: {through: 3} in MessagePack.
    let body = [0x81, 0xa7, b't', b'h', b'r', b'o', b'u', b'g', b'h', 0x03];
    assert_eq!(
        decode_extension(MSG_ACK, &body).ok(),
        Some(Extension::Ack(Ack { through: 3 }))
    );
    // An error body without `seq` (the TS side may omit an undefined field).
    let ts =
        rmp_serde::to_vec_named(&json!({"code": "read_only", "message": "m"})).expect("msgpack");
    assert_eq!(
        decode_extension(MSG_ERROR, &ts).ok(),
        Some(Extension::Error(ErrorBody {
            code: "read_only".into(),
            message: "m".into(),
            seq: None
        }))
    );
}

#[test]
fn yrs_awareness_accepts_our_frames() {
    let (_, frame) = sample_frames()
        .into_iter()
        .find(|(m, _)| matches!(m, Message::Awareness(u) if !u.clients.is_empty()))
        .expect("awareness");
    let Ok(Message::Awareness(update)) = decode(&frame) else {
        panic!("awareness");
    };
    let mut other = Awareness::new(new_doc_with_client_id(9));
    other.apply_update(update).expect("applies");
    let state: Option<serde_json::Value> = other.state(ClientID::new(42));
    assert_eq!(
        state,
        Some(json!({"user": {"name": "Ann", "color": "#30bced"}, "cursor": null}))
    );
    // And yrs's own awareness update for that client encodes to the same frame.
    let theirs = other
        .update_with_clients([ClientID::new(42)])
        .expect("known client");
    assert_eq!(protocol::awareness(&theirs), frame);
}
