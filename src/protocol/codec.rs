//! Turning frames into requests and frames out of replies.
//!
//! Decoding is done in two steps so every bad frame gets the most useful
//! error: first the frame is read as a map with just `type` and `id`
//! (failing that, `malformed_frame`); an unknown `type` is `unknown_type`;
//! only then is the whole request read, and a missing or mistyped field is
//! `invalid_request` naming the field, with `re` set to the request's id.
use std::borrow::Cow;

use serde::de::{self, Deserializer, IntoDeserializer, Visitor};
use serde::Deserialize;

use super::messages::{Event, Request, RequestBody, RequestByType, ServerFrame};
use crate::error::{AppError, ErrorCode};

/// Binary frames carry MessagePack; text frames (the `switchboard.json`
/// subprotocol) carry the same maps as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    MessagePack,
    Json,
}

#[derive(Deserialize)]
struct Head<'a> {
    /// Borrowed from the frame when it can be (always, in MessagePack).
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<u64>,
}

/// A request that could not be decoded: the id if one was found, and why.
#[derive(Debug)]
pub struct DecodeError {
    pub re: Option<u64>,
    pub error: AppError,
}

fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8], enc: Encoding) -> Result<T, String> {
    match enc {
        Encoding::MessagePack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
        Encoding::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
    }
}

pub fn decode_request(bytes: &[u8], enc: Encoding) -> Result<Request, DecodeError> {
    let head: Head = parse(bytes, enc).map_err(|e| DecodeError {
        re: None,
        error: AppError::new(
            ErrorCode::MalformedFrame,
            format!("the frame is not a map with a 'type' field: {e}"),
        ),
    })?;
    let re = head.id;
    let kind = head.kind.ok_or_else(|| DecodeError {
        re,
        error: AppError::new(ErrorCode::InvalidRequest, "the frame has no 'type' field"),
    })?;
    if !RequestBody::TYPES.contains(&&*kind) {
        return Err(DecodeError {
            re,
            error: AppError::new(
                ErrorCode::UnknownType,
                format!(
                    "unknown message type '{}'",
                    kind.chars().take(64).collect::<String>()
                ),
            ),
        });
    }
    let body = parse_body(bytes, enc, &kind).map_err(|e| DecodeError {
        re,
        error: AppError::new(
            ErrorCode::InvalidRequest,
            format!("bad '{kind}' message: {e}"),
        ),
    })?;
    Ok(Request {
        id: re.unwrap_or(0),
        body,
    })
}

/// Reads the request whose `type` is `kind` from the whole frame.
fn parse_body(bytes: &[u8], enc: Encoding, kind: &str) -> Result<RequestBody, String> {
    match enc {
        Encoding::MessagePack => {
            let mut frame = rmp_serde::Deserializer::from_read_ref(bytes);
            RequestByType::deserialize(Typed {
                kind,
                frame: &mut frame,
            })
            .map_err(|e| e.to_string())
        }
        Encoding::Json => {
            let mut frame = serde_json::Deserializer::from_slice(bytes);
            RequestByType::deserialize(Typed {
                kind,
                frame: &mut frame,
            })
            .and_then(|body| frame.end().map(|()| body))
            .map_err(|e| e.to_string())
        }
    }
}

/// A frame whose `type` is known, shown to serde as an externally tagged
/// enum: the variant is the `type`, and the variant's fields are the
/// frame's own map, in which `type` and `id` are keys no variant has and
/// are skipped like any other unknown key.
struct Typed<'k, D> {
    kind: &'k str,
    frame: D,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Typed<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de, D: Deserializer<'de>> de::EnumAccess<'de> for Typed<'_, D> {
    type Error = D::Error;
    type Variant = Self;

    fn variant_seed<S: de::DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), D::Error> {
        let variant =
            seed.deserialize(IntoDeserializer::<D::Error>::into_deserializer(self.kind))?;
        Ok((variant, self))
    }
}

impl<'de, D: Deserializer<'de>> de::VariantAccess<'de> for Typed<'_, D> {
    type Error = D::Error;

    /// A request with no fields of its own (`ping`, `logout`): whatever
    /// else the map holds is read past and ignored, as for any request.
    fn unit_variant(self) -> Result<(), D::Error> {
        de::IgnoredAny::deserialize(self.frame).map(|_| ())
    }

    fn newtype_variant_seed<S: de::DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, D::Error> {
        seed.deserialize(self.frame)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.frame.deserialize_tuple(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.frame.deserialize_map(MapOnly(visitor))
    }
}

/// A request's fields come from a map only. serde's derived structs also
/// read an array, field by field, which here would take an array frame's
/// first element, its `type`, for the request's first field.
struct MapOnly<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for MapOnly<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map of the request's fields")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(map)
    }
}

/// Room reserved for an encoded frame. Frames average about 270 bytes (a
/// session's details about 500), and an encoder that starts from an empty
/// buffer doubles it six or seven times on the way: a realloc and a copy
/// each, for every frame sent.
const FRAME_CAPACITY: usize = 512;

pub fn encode_frame(frame: &ServerFrame, enc: Encoding) -> Vec<u8> {
    if let (
        Encoding::MessagePack,
        ServerFrame::Event {
            stream,
            seq,
            packed: Some(event),
            ..
        },
    ) = (enc, frame)
    {
        return encode_packed_event(stream, *seq, event);
    }
    // Encoding our own types cannot fail: every map key is a string and
    // every value serialisable. Should it ever, the client gets an error
    // frame rather than a dropped connection.
    let mut buf = Vec::with_capacity(FRAME_CAPACITY);
    let out = match enc {
        Encoding::MessagePack => rmp_serde::encode::write_named(&mut buf, frame)
            .map(|()| buf)
            .map_err(|e| e.to_string()),
        Encoding::Json => serde_json::to_writer(&mut buf, frame)
            .map(|()| buf)
            .map_err(|e| e.to_string()),
    };
    out.unwrap_or_else(|e| {
        let fallback = ServerFrame::Error {
            re: None,
            code: ErrorCode::Internal,
            message: format!("the server could not encode its answer: {e}"),
        };
        match enc {
            Encoding::MessagePack => rmp_serde::to_vec_named(&fallback).unwrap_or_default(),
            Encoding::Json => serde_json::to_vec(&fallback).unwrap_or_default(),
        }
    })
}

/// An event's MessagePack encoding, made once when the event goes to
/// several consoles: `None` (each frame then encodes its own) should
/// encoding ever fail. Sized up front as a frame is: grown from empty, the
/// buffer's reallocations cost more than the encoding of a short event.
pub fn pack_event(event: &Event) -> Option<bytes::Bytes> {
    let mut buf = Vec::with_capacity(FRAME_CAPACITY);
    rmp_serde::encode::write_named(&mut buf, event)
        .ok()
        .map(|()| buf.into())
}

/// The bytes `rmp_serde` writes for an event frame, around an event it
/// encoded before: a map of `type`, `stream`, `seq` and `event`, in the
/// order `ServerFrame::Event` declares them (`packed` is skipped).
/// `a_packed_event_frame_is_the_same_bytes` holds the two to the byte.
fn encode_packed_event(stream: &str, seq: u64, event: &[u8]) -> Vec<u8> {
    use rmp::encode::{write_map_len, write_str, write_uint};
    let mut buf = Vec::with_capacity(FRAME_CAPACITY.max(event.len() + 32 + stream.len()));
    // Writing into a Vec cannot fail.
    let _ = write_map_len(&mut buf, 4);
    let _ = write_str(&mut buf, "type");
    let _ = write_str(&mut buf, "event");
    let _ = write_str(&mut buf, "stream");
    let _ = write_str(&mut buf, stream);
    let _ = write_str(&mut buf, "seq");
    let _ = write_uint(&mut buf, seq);
    let _ = write_str(&mut buf, "event");
    buf.extend_from_slice(event);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{ClientKind, Role};
    use serde_json::json;
    use std::sync::Arc;

    fn mp(v: serde_json::Value) -> Vec<u8> {
        rmp_serde::to_vec_named(&v).unwrap()
    }

    #[test]
    fn a_hello_decodes_from_a_plain_map() {
        let r = decode_request(
            &mp(json!({"type":"hello","id":1,"protocol":1,"role":"rep"})),
            Encoding::MessagePack,
        )
        .unwrap();
        assert_eq!(r.id, 1);
        assert_eq!(
            r.body,
            RequestBody::Hello {
                protocol: 1,
                role: Role::Rep,
                client: ClientKind::Desktop
            }
        );
        let j = decode_request(br#"{"type":"ping","id":9}"#, Encoding::Json).unwrap();
        assert_eq!((j.id, j.body), (9, RequestBody::Ping));
    }

    #[test]
    fn each_kind_of_bad_frame_has_its_code() {
        let code = |b: &[u8]| decode_request(b, Encoding::MessagePack).unwrap_err();
        assert_eq!(code(b"\xc1").error.code, ErrorCode::MalformedFrame);
        assert_eq!(
            code(&mp(json!([1, 2]))).error.code,
            ErrorCode::MalformedFrame
        );
        assert_eq!(
            code(&mp(json!({"id": 3}))).error.code,
            ErrorCode::InvalidRequest
        );
        let unknown = code(&mp(json!({"type":"fly","id":4})));
        assert_eq!(
            (unknown.re, unknown.error.code),
            (Some(4), ErrorCode::UnknownType)
        );
        let missing = code(&mp(json!({"type":"accept","id":5})));
        assert_eq!(
            (missing.re, missing.error.code),
            (Some(5), ErrorCode::InvalidRequest)
        );
        assert!(
            missing.error.message.contains("session"),
            "{}",
            missing.error.message
        );
        let wrong = code(&mp(json!({"type":"view_queue","id":6,"queue":"nowhere"})));
        assert_eq!(wrong.error.code, ErrorCode::InvalidRequest);
    }

    /// One request of every type, with its optional fields set.
    fn one_of_each_type() -> Vec<serde_json::Value> {
        let s = "s-1";
        vec![
            json!({"type":"hello","protocol":1,"role":"customer","client":"mobile"}),
            json!({"type":"ping"}),
            json!({"type":"login","username":"ann","password":"pw","token":"t",
                   "resume":{"stream":"rep:ann","after":7}}),
            json!({"type":"logout"}),
            json!({"type":"list_queues"}),
            json!({"type":"view_queue","queue":"team:support","sort":"name"}),
            json!({"type":"session_details","session":s}),
            json!({"type":"accept","session":s}),
            json!({"type":"get_next"}),
            json!({"type":"transfer","session":s,"to":"rep:bob"}),
            json!({"type":"invite","session":s,"to":"team:support"}),
            json!({"type":"join","session":s}),
            json!({"type":"leave","session":s}),
            json!({"type":"control","session":s,"input":"click 1 2"}),
            json!({"type":"request_view","session":s}),
            json!({"type":"my_sessions"}),
            json!({"type":"star","queue":"team:support"}),
            json!({"type":"unstar","queue":"rep:ann"}),
            json!({"type":"team_chat","team":"support","text":"hi"}),
            json!({"type":"team_chat_history","team":"support"}),
            json!({"type":"mark_team_chat_read","team":"support"}),
            json!({"type":"generate_session_key","valid_for_secs":600,"portal":"main"}),
            json!({"type":"list_teams"}),
            json!({"type":"list_reps"}),
            json!({"type":"set_status","status":"away"}),
            json!({"type":"set_auto_assign","enabled":true}),
            json!({"type":"decline_offer","session":s}),
            json!({"type":"public_reps"}),
            json!({"type":"start_session","entry":{"via":"issue_form","issue_type":"billing"},
                   "name":"Cy","company":"Acme","description":"no sound"}),
            json!({"type":"resume_session","token":"t","resume":{"stream":"session:s-1","after":3}}),
            json!({"type":"chat","session":s,"text":"hello"}),
            json!({"type":"chat_history","session":s}),
            json!({"type":"end_session","session":s}),
        ]
    }

    #[test]
    fn each_type_decodes_as_its_tagged_enum_does() {
        // Reading the variant straight from the frame must give what
        // serde's internally tagged enum gives, in both encodings, with
        // `id` and unknown keys anywhere in the map, before or after `type`.
        let samples = one_of_each_type();
        let sampled: std::collections::BTreeSet<_> =
            samples.iter().filter_map(|v| v["type"].as_str()).collect();
        let listed = RequestBody::TYPES.iter().copied().collect();
        assert_eq!(sampled, listed, "one sample of every request type");
        for mut v in samples {
            let tagged: RequestBody = serde_json::from_value(v.clone()).unwrap();
            v["id"] = json!(41);
            v["extra"] = json!({"nested": [1, "x"]});
            let json_bytes = serde_json::to_vec(&v).unwrap();
            for (bytes, enc) in [
                (mp(v.clone()), Encoding::MessagePack),
                (json_bytes, Encoding::Json),
            ] {
                let r = decode_request(&bytes, enc).unwrap_or_else(|e| panic!("{v}: {e:?}"));
                assert_eq!((r.id, &r.body), (41, &tagged), "{v}");
                assert_eq!(r.body.type_name(), v["type"], "{v}");
            }
        }
    }

    #[test]
    fn an_array_frame_is_not_read_as_a_request() {
        // protocol.md 2.5: an array `[type, id]` passes the head and is
        // then refused, rather than read field by field.
        for (v, re) in [
            (json!(["session_details", 5]), Some(5)),
            (json!(["login", 5]), Some(5)),
            // Read field by field, this one would be a valid request for
            // the history of a team named "team_chat_history".
            (json!(["team_chat_history"]), None),
        ] {
            let e = decode_request(&mp(v.clone()), Encoding::MessagePack).unwrap_err();
            assert_eq!((e.re, e.error.code), (re, ErrorCode::InvalidRequest), "{v}");
            let j = decode_request(v.to_string().as_bytes(), Encoding::Json).unwrap_err();
            assert_eq!((j.re, j.error.code), (re, ErrorCode::InvalidRequest), "{v}");
        }
    }

    #[test]
    fn a_request_without_fields_still_reads_past_its_map() {
        // JSON is checked for trailing bytes after the map: a field-less
        // request must have read its whole map first.
        let r = decode_request(br#"{"type":"ping","x":[1,{"y":2}],"id":3}"#, Encoding::Json);
        assert_eq!(r.map(|r| (r.id, r.body)).unwrap(), (3, RequestBody::Ping));
        let bad = decode_request(br#"{"type":"ping"} x"#, Encoding::Json).unwrap_err();
        assert_eq!(bad.error.code, ErrorCode::MalformedFrame);
    }

    #[test]
    fn a_packed_event_frame_is_the_same_bytes() {
        // The hand-written envelope must be what rmp_serde writes for the
        // same frame, for every width of `seq` and of the stream's name.
        let events: Vec<Event> = [
            json!({"kind":"queue_entered","queue":"team:support","position":3,"session":{
                "session":"s-1","display_name":"[Browser] Cy","customer_name":"Cy",
                "company":"Acme","issue_type":"billing","description":"no sound",
                "client":"browser","browser":true,"view_only":false,"entry":"browser_link",
                "wait_start":1_796_000_000_000u64,"queued_at":1_796_000_000_001u64,
                "overdue":true,"priority":2,"required_skills":["fr"],"requeued":"lost"}}),
            json!({"kind":"queue_left","queue":"rep:ann","session":"s-2","reason":"accepted"}),
            json!({"kind":"rep_joined","name":"Ann"}),
        ]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
        let long = "r".repeat(300);
        for event in events {
            let event = Arc::new(event);
            for stream in ["rep:ann", &long[..40], &long[..]] {
                for seq in [0, 127, 128, 255, 256, 65_536, 1 << 32, u64::MAX] {
                    let frame = |packed| ServerFrame::Event {
                        stream: stream.into(),
                        seq,
                        event: event.clone(),
                        packed,
                    };
                    let plain = encode_frame(&frame(None), Encoding::MessagePack);
                    let packed = encode_frame(&frame(pack_event(&event)), Encoding::MessagePack);
                    assert_eq!(packed, plain, "{event:?} seq {seq}");
                    // A JSON console ignores the MessagePack bytes.
                    assert_eq!(
                        encode_frame(&frame(pack_event(&event)), Encoding::Json),
                        encode_frame(&frame(None), Encoding::Json)
                    );
                }
            }
        }
    }

    #[test]
    fn what_the_client_sends_decodes_for_every_request_type() {
        // The client (src/client) writes a `Request` with serde, in
        // MessagePack; `each_type_decodes_as_its_tagged_enum_does` reads
        // hand-written maps. Every request type written by serde, in both
        // encodings, must decode to itself.
        for v in one_of_each_type() {
            let body: RequestBody = serde_json::from_value(v.clone()).unwrap();
            let request = Request {
                id: 2,
                body: body.clone(),
            };
            for (bytes, enc) in [
                (
                    rmp_serde::to_vec_named(&request).unwrap(),
                    Encoding::MessagePack,
                ),
                (serde_json::to_vec(&request).unwrap(), Encoding::Json),
            ] {
                let r = decode_request(&bytes, enc).unwrap_or_else(|e| panic!("{v}: {e:?}"));
                assert_eq!((r.id, &r.body), (2, &body), "{v} as {enc:?}");
            }
        }
    }
}
