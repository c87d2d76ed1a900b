//! Events from a WebSocket or Twilio Media Streams client, parsed with serde.
//!
//! [`parse`] checks a text frame in the same order and with the same client-facing
//! messages as the session always has (not JSON, not an object, no string `event`, a
//! `media` without a string `media.payload`), then reads it into a [`ClientEvent`].
//! Everything else is lenient, as before: a field of the wrong type reads as absent
//! (`start` without a string `websocket_id` is the session's to refuse, a `mark`
//! without a string name is ignored), unknown fields are ignored, and an unknown event
//! is [`ClientEvent::Other`].
//!
//! Nothing here bounds sizes: the transport caps a frame's bytes, and the session checks
//! the lengths of ids and names it keeps.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde_json::{Map, Value};

/// Why a text frame is not a usable event. The texts are sent to the client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ParseError {
    /// The frame does not parse as JSON.
    #[error("frame is not JSON: {0}")]
    NotJson(serde_json::Error),
    /// The frame is JSON but not an object.
    #[error("frame is not a JSON object")]
    NotObject,
    /// The object has no `event`, or it is not a string.
    #[error("frame has no string \"event\" field")]
    NoEvent,
    /// A `media` event without a string `media.payload`.
    #[error("media has no string media.payload")]
    NoMediaPayload,
}

/// An event from the client: FastRTC's WebSocket (`start`, `media`, `stop`, …) or
/// Twilio's Media Streams (the same plus `connected`, `mark`, `dtmf`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub(crate) enum ClientEvent {
    /// The stream starts: the connection's id and, on FastRTC's WebSocket, the audio
    /// format asked for.
    Start {
        /// FastRTC's connection id.
        #[serde(default, deserialize_with = "string")]
        websocket_id: Option<String>,
        /// Twilio's `streamSid` at the top level.
        #[serde(default, rename = "streamSid", deserialize_with = "string")]
        stream_sid: Option<String>,
        /// Twilio's `start` object.
        #[serde(default, deserialize_with = "object")]
        start: Option<StartInfo>,
        /// The opt-in audio format (`"mulaw"`, `"pcm16"`), as sent; `null` reads as
        /// absent.
        #[serde(default)]
        format: Option<Value>,
        /// The opt-in sample rate (a number or a string), as sent; `null` reads as
        /// absent.
        #[serde(default)]
        sample_rate: Option<Value>,
    },
    /// A chunk of audio.
    Media {
        /// The `media` object.
        #[serde(deserialize_with = "media")]
        media: MediaPayload,
    },
    /// A mark in the client's audio, answered when the audio before it has played.
    Mark {
        /// The `mark` object.
        #[serde(default, deserialize_with = "object")]
        mark: Option<MarkInfo>,
    },
    /// The client ends the stream.
    Stop,
    /// Asks for a `pong`.
    Ping,
    /// Twilio's first message, before `start`.
    Connected,
    /// Twilio: a key was pressed.
    Dtmf,
    /// Any other event.
    #[serde(other)]
    Other,
}

/// Twilio's `start` object (the fields the host may use).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct StartInfo {
    /// The stream's id.
    #[serde(default, rename = "streamSid", deserialize_with = "string")]
    pub(crate) stream_sid: Option<String>,
    /// The call's id.
    #[allow(
        dead_code,
        reason = "kept for logs and handlers; the host itself reads only the streamSid"
    )]
    #[serde(default, rename = "callSid", deserialize_with = "string")]
    pub(crate) call_sid: Option<String>,
    /// The `<Parameter>`s of the TwiML `<Stream>`.
    #[allow(
        dead_code,
        reason = "kept for logs and handlers; the host itself reads only the streamSid"
    )]
    #[serde(default, rename = "customParameters", deserialize_with = "object")]
    pub(crate) custom_parameters: Option<Map<String, Value>>,
}

/// The `media` object of a `media` event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct MediaPayload {
    /// The audio, base64 (not yet decoded).
    pub(crate) payload: String,
}

/// The `mark` object of a `mark` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct MarkInfo {
    /// The mark's name, if it is a string.
    #[serde(default, deserialize_with = "string")]
    pub(crate) name: Option<String>,
}

impl ClientEvent {
    /// The `streamSid` of a telephone `start`: in its `start` object, else at the top
    /// level. `None` for other events.
    pub(crate) fn telephone_sid(&self) -> Option<&str> {
        match self {
            ClientEvent::Start {
                stream_sid, start, ..
            } => start
                .as_ref()
                .and_then(|s| s.stream_sid.as_deref())
                .or(stream_sid.as_deref()),
            _ => None,
        }
    }

    /// The name of a `mark` event, when it has a string one.
    pub(crate) fn mark_name(&self) -> Option<&str> {
        match self {
            ClientEvent::Mark { mark } => mark.as_ref().and_then(|m| m.name.as_deref()),
            _ => None,
        }
    }
}

/// Parse one text frame from the client.
pub(crate) fn parse(text: &str) -> Result<ClientEvent, ParseError> {
    let map = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(ParseError::NotObject),
        Err(e) => return Err(ParseError::NotJson(e)),
    };
    let is_media = match map.get("event") {
        Some(Value::String(event)) => event == "media",
        _ => return Err(ParseError::NoEvent),
    };
    match ClientEvent::deserialize(Value::Object(map)) {
        Ok(event) => Ok(event),
        // Every other event reads whatever its fields hold.
        Err(_) if is_media => Err(ParseError::NoMediaPayload),
        Err(e) => {
            tracing::debug!("unreadable websocket event: {e}");
            Ok(ClientEvent::Other)
        }
    }
}

/// A string field, or `None` when absent, `null` or of another type.
fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// An object field read as `T`, or `None` when absent or not an object (or when it does
/// not read as `T`).
fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    Ok(match Value::deserialize(d)? {
        v @ Value::Object(_) => serde_json::from_value(v).ok(),
        _ => None,
    })
}

/// `media`: an object with a string `payload`.
fn media<'de, D: Deserializer<'de>>(d: D) -> Result<MediaPayload, D::Error> {
    match Value::deserialize(d)? {
        Value::Object(mut m) => match m.remove("payload") {
            Some(Value::String(payload)) => Ok(MediaPayload { payload }),
            _ => Err(D::Error::custom(ParseError::NoMediaPayload)),
        },
        _ => Err(D::Error::custom(ParseError::NoMediaPayload)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(text: &str) -> ClientEvent {
        match parse(text) {
            Ok(e) => e,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(e) => panic!("{text} parsed as {e:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn websocket_start() {
        assert_eq!(
            event(r#"{"event":"start","websocket_id":"abc"}"#),
            ClientEvent::Start {
                websocket_id: Some("abc".into()),
                stream_sid: None,
                start: None,
                format: None,
                sample_rate: None,
            }
        );
        let ClientEvent::Start {
            websocket_id,
            format,
            sample_rate,
            ..
        } = event(
            r#"{"event":"start","websocket_id":"w","format":"pcm16","sample_rate":16000,"extra":[1]}"#,
        )
        else {
            panic!("not a start");
        };
        assert_eq!(websocket_id.as_deref(), Some("w"));
        assert_eq!(format, Some(json!("pcm16")));
        assert_eq!(sample_rate, Some(json!(16000)));
        // The session judges ill-typed opt-ins; null is absent.
        let ClientEvent::Start {
            format,
            sample_rate,
            ..
        } = event(r#"{"event":"start","format":7,"sample_rate":null}"#)
        else {
            panic!("not a start");
        };
        assert_eq!((format, sample_rate), (Some(json!(7)), None));
    }

    #[test]
    fn a_start_with_ill_typed_ids_reads_them_as_absent() {
        for text in [
            r#"{"event":"start"}"#,
            r#"{"event":"start","websocket_id":5,"streamSid":null,"start":"x"}"#,
            r#"{"event":"start","websocket_id":["a"],"streamSid":{},"start":["MZ1"]}"#,
            r#"{"event":"start","start":{"streamSid":1,"callSid":[],"customParameters":"p"}}"#,
        ] {
            let e = event(text);
            assert_eq!(e.telephone_sid(), None, "{text}");
            let ClientEvent::Start {
                websocket_id,
                stream_sid,
                start,
                ..
            } = e
            else {
                panic!("{text}: not a start");
            };
            assert_eq!(websocket_id, None, "{text}");
            assert_eq!(stream_sid, None, "{text}");
            assert!(start.is_none_or(|s| s == StartInfo::default()), "{text}");
        }
    }

    #[test]
    fn telephone_start() {
        let e = event(
            r#"{"event":"start","sequenceNumber":"1","streamSid":"MZtop","start":{"streamSid":"MZ1","accountSid":"AC1","callSid":"CA1","tracks":["inbound"],"customParameters":{"k":"v"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#,
        );
        assert_eq!(e.telephone_sid(), Some("MZ1"));
        let ClientEvent::Start { start, .. } = e else {
            panic!("not a start");
        };
        let start = start.unwrap();
        assert_eq!(start.call_sid.as_deref(), Some("CA1"));
        assert_eq!(start.custom_parameters.unwrap().get("k"), Some(&json!("v")));
        // Without one in `start`, the top-level streamSid.
        for text in [
            r#"{"event":"start","streamSid":"MZtop"}"#,
            r#"{"event":"start","streamSid":"MZtop","start":{"streamSid":7}}"#,
            r#"{"event":"start","streamSid":"MZtop","start":"MZ1"}"#,
        ] {
            assert_eq!(event(text).telephone_sid(), Some("MZtop"), "{text}");
        }
        assert_eq!(event(r#"{"event":"ping"}"#).telephone_sid(), None);
    }

    #[test]
    fn media() {
        assert_eq!(
            event(r#"{"event":"media","media":{"payload":"/38="}}"#),
            ClientEvent::Media {
                media: MediaPayload {
                    payload: "/38=".into()
                }
            }
        );
        // Twilio's extra fields.
        assert_eq!(
            event(
                r#"{"event":"media","sequenceNumber":"3","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":""}}"#
            ),
            ClientEvent::Media {
                media: MediaPayload {
                    payload: String::new()
                }
            }
        );
    }

    #[test]
    fn media_without_a_string_payload() {
        for text in [
            r#"{"event":"media"}"#,
            r#"{"event":"media","media":null}"#,
            r#"{"event":"media","media":"AAAA"}"#,
            r#"{"event":"media","media":["AAAA"]}"#,
            r#"{"event":"media","media":{}}"#,
            r#"{"event":"media","media":{"payload":null}}"#,
            r#"{"event":"media","media":{"payload":12}}"#,
            r#"{"event":"media","media":{"payload":["AAAA"]}}"#,
        ] {
            assert_eq!(error(text), "media has no string media.payload", "{text}");
        }
    }

    #[test]
    fn mark() {
        let e = event(r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"a \"b\"\n😀"}}"#);
        assert_eq!(e.mark_name(), Some("a \"b\"\n😀"));
        for text in [
            r#"{"event":"mark"}"#,
            r#"{"event":"mark","mark":null}"#,
            r#"{"event":"mark","mark":"m"}"#,
            r#"{"event":"mark","mark":["m"]}"#,
            r#"{"event":"mark","mark":{}}"#,
            r#"{"event":"mark","mark":{"name":3}}"#,
        ] {
            let e = event(text);
            assert!(matches!(e, ClientEvent::Mark { .. }), "{text}: {e:?}");
            assert_eq!(e.mark_name(), None, "{text}");
        }
    }

    #[test]
    fn events_without_fields() {
        assert_eq!(event(r#"{"event":"stop"}"#), ClientEvent::Stop);
        assert_eq!(
            event(r#"{"event":"stop","streamSid":"MZ1","stop":{"callSid":"CA1"}}"#),
            ClientEvent::Stop
        );
        assert_eq!(event(r#"{"event":"ping"}"#), ClientEvent::Ping);
        assert_eq!(
            event(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#),
            ClientEvent::Connected
        );
        assert_eq!(
            event(r#"{"event":"dtmf","streamSid":"MZ1","dtmf":{"digit":"1"}}"#),
            ClientEvent::Dtmf
        );
    }

    #[test]
    fn unknown_events_are_other() {
        for text in [
            r#"{"event":"newer","x":1}"#,
            r#"{"event":""}"#,
            r#"{"event":"Media","media":{"payload":"AA=="}}"#,
            r#"{"event":"START"}"#,
        ] {
            assert_eq!(event(text), ClientEvent::Other, "{text}");
        }
    }

    #[test]
    fn frame_error_texts() {
        assert_eq!(
            error("not json"),
            format!(
                "frame is not JSON: {}",
                serde_json::from_str::<Value>("not json").unwrap_err()
            )
        );
        assert_eq!(
            error(""),
            "frame is not JSON: EOF while parsing a value at line 1 column 0"
        );
        assert_eq!(
            error(r#"{"event":"media""#),
            "frame is not JSON: EOF while parsing an object at line 1 column 16"
        );
        for text in ["[]", "3", "\"start\"", "null", r#"[{"event":"start"}]"#] {
            assert_eq!(error(text), "frame is not a JSON object", "{text}");
        }
        for text in [
            "{}",
            r#"{"event":null}"#,
            r#"{"event":3}"#,
            r#"{"event":["media"]}"#,
            r#"{"Event":"media"}"#,
        ] {
            assert_eq!(error(text), "frame has no string \"event\" field", "{text}");
        }
    }

    #[test]
    fn the_last_of_duplicate_keys_wins_as_before() {
        assert_eq!(
            event(r#"{"event":"media","event":"ping"}"#),
            ClientEvent::Ping
        );
        assert_eq!(
            event(r#"{"event":"mark","mark":{"name":"a"},"mark":{"name":"b"}}"#).mark_name(),
            Some("b")
        );
    }

    /// What the session read from a frame before this module: the error text, or the
    /// event and the fields it used (websocket_id, telephone sid, payload, mark name).
    type Read = (String, [Option<String>; 4]);

    fn read_before(text: &str) -> Result<Read, String> {
        let msg = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err("frame is not a JSON object".into()),
            Err(e) => return Err(format!("frame is not JSON: {e}")),
        };
        let Some(event) = msg.get("event").and_then(Value::as_str) else {
            return Err("frame has no string \"event\" field".into());
        };
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        Ok(match event {
            "media" => {
                let Some(p) = s(msg.get("media").and_then(|m| m.get("payload"))) else {
                    return Err("media has no string media.payload".into());
                };
                ("media".into(), [None, None, Some(p), None])
            }
            "start" => {
                let ws = s(msg.get("websocket_id"));
                let tel = s(msg.get("start").and_then(|s| s.get("streamSid")))
                    .or_else(|| s(msg.get("streamSid")));
                ("start".into(), [ws, tel, None, None])
            }
            "mark" => {
                let name = s(msg.get("mark").and_then(|m| m.get("name")));
                ("mark".into(), [None, None, None, name])
            }
            e @ ("ping" | "stop" | "connected" | "dtmf") => (e.into(), [None, None, None, None]),
            _ => ("other".into(), [None, None, None, None]),
        })
    }

    fn read_now(text: &str) -> Result<Read, String> {
        let e = parse(text).map_err(|e| e.to_string())?;
        let none = [None, None, None, None];
        Ok(match e {
            ClientEvent::Media { media } => {
                ("media".into(), [None, None, Some(media.payload), None])
            }
            ClientEvent::Start {
                ref websocket_id, ..
            } => (
                "start".into(),
                [
                    websocket_id.clone(),
                    e.telephone_sid().map(str::to_string),
                    None,
                    None,
                ],
            ),
            ClientEvent::Mark { .. } => (
                "mark".into(),
                [None, None, None, e.mark_name().map(str::to_string)],
            ),
            ClientEvent::Ping => ("ping".into(), none),
            ClientEvent::Stop => ("stop".into(), none),
            ClientEvent::Connected => ("connected".into(), none),
            ClientEvent::Dtmf => ("dtmf".into(), none),
            ClientEvent::Other => ("other".into(), none),
        })
    }

    #[test]
    fn reads_every_frame_as_the_session_did() {
        let values = [
            "null",
            "1",
            "\"s\"",
            "[]",
            "[\"x\"]",
            "{}",
            "{\"payload\":\"AA==\"}",
            "{\"payload\":1}",
            "{\"name\":\"n\"}",
            "{\"name\":null}",
            "{\"streamSid\":\"MZ1\"}",
            "{\"streamSid\":false}",
        ];
        let mut frames = vec![
            String::new(),
            "{".into(),
            "[]".into(),
            "7".into(),
            "{}".into(),
            r#"{"event":1}"#.into(),
        ];
        for event in [
            "media",
            "start",
            "mark",
            "ping",
            "stop",
            "connected",
            "dtmf",
            "x",
            "",
        ] {
            frames.push(format!(r#"{{"event":"{event}"}}"#));
            for field in ["media", "mark", "start", "websocket_id", "streamSid"] {
                for v in values {
                    frames.push(format!(r#"{{"event":"{event}","{field}":{v}}}"#));
                }
            }
        }
        for f in &frames {
            assert_eq!(read_now(f), read_before(f), "{f}");
        }
    }
}
