//! Turning frames into requests and frames out of replies.
//!
//! Decoding is done in two steps so every bad frame gets the most useful
//! error: first the frame is read as a map with just `type` and `id`
//! (failing that, `malformed_frame`); an unknown `type` is `unknown_type`;
//! only then is the whole request read, and a missing or mistyped field is
//! `invalid_request` naming the field, with `re` set to the request's id.
use serde::Deserialize;

use super::messages::{Request, RequestBody, ServerFrame};
use crate::error::{AppError, ErrorCode};

/// Binary frames carry MessagePack; text frames (the `switchboard.json`
/// subprotocol) carry the same maps as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    MessagePack,
    Json,
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: Option<String>,
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
    if !RequestBody::TYPES.contains(&kind.as_str()) {
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
    let body: RequestBody = parse(bytes, enc).map_err(|e| DecodeError {
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

/// Room reserved for an encoded frame. Frames average about 270 bytes (a
/// session's details about 500), and an encoder that starts from an empty
/// buffer doubles it six or seven times on the way: a realloc and a copy
/// each, for every frame sent.
const FRAME_CAPACITY: usize = 512;

pub fn encode_frame(frame: &ServerFrame, enc: Encoding) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{ClientKind, Role};
    use serde_json::json;

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

    #[test]
    fn every_request_type_is_listed() {
        // A request that serialises must decode, and its tag must be known.
        let samples = [
            RequestBody::Ping,
            RequestBody::GetNext,
            RequestBody::Chat {
                session: None,
                text: "hi".into(),
            },
        ];
        for body in samples {
            assert!(RequestBody::TYPES.contains(&body.type_name()));
            let bytes = rmp_serde::to_vec_named(&Request {
                id: 2,
                body: body.clone(),
            })
            .unwrap();
            assert_eq!(
                decode_request(&bytes, Encoding::MessagePack).unwrap().body,
                body
            );
        }
    }
}
