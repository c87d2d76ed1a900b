//! Control messages to the client, byte for byte as FastRTC writes them (Python's
//! `json.dumps`: a space after `:` and `,`), on the data channel or a WebSocket, and
//! the WebSocket/Twilio media events, compact as Twilio writes them. Both are
//! serde-derived types; the tests compare bytes.

use serde::Serialize;

/// A control message to the client, in FastRTC's shapes.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ServerMessage<'a> {
    /// `{"type": "log", "data": …}`.
    Log { data: &'a str },
    /// `{"type": "send_input", "data": []}`.
    SendInput { data: [(); 0] },
    /// `{"type": "fetch_output", "data": []}`.
    FetchOutput { data: [(); 0] },
    /// `{"type": "end_stream", "data": …}`.
    EndStream { data: &'a str },
    /// `{"type": "update_connection", "data": …}`.
    UpdateConnection { data: &'a str },
    /// `{"type": "warning", "message": …}`.
    Warning { message: &'a str },
    /// `{"type": "error", "message": …}`.
    Error { message: &'a str },
}

impl ServerMessage<'_> {
    /// The message as FastRTC's Python writes it: `json.dumps` with its default
    /// separators (`", "` and `": "`), non-ASCII characters kept as they are.
    pub(crate) fn to_text(&self) -> String {
        let mut out = Vec::with_capacity(64);
        let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
        // Serializing strings and empty lists into a Vec cannot fail.
        let _ = self.serialize(&mut ser);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// `serde_json`'s compact output with a space after each `:` and `,`, as Python's
/// `json.dumps` separates items by default.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

/// `{"type": "log", "data": …}`.
pub fn log(data: &str) -> String {
    ServerMessage::Log { data }.to_text()
}

/// The echo of a client message.
pub fn echo(received: &str) -> String {
    log(&format!("Server received: {received}"))
}

/// Turn-taking: the caller started talking (FastRTC's `ReplyOnPause`).
pub fn started_talking() -> String {
    log("started_talking")
}

/// Turn-taking: the caller paused; the utterance goes to the handler.
pub fn pause_detected() -> String {
    log("pause_detected")
}

/// Turn-taking: the handler's reply starts.
pub fn response_starting() -> String {
    log("response_starting")
}

/// Turn-taking: the reply has been played to the end (wasmrtc's addition).
pub fn playback_finished() -> String {
    log("playback_finished")
}

/// Asks the client to send its inputs.
pub fn send_input() -> String {
    ServerMessage::SendInput { data: [] }.to_text()
}

/// Tells the client outputs are ready.
pub fn fetch_output() -> String {
    ServerMessage::FetchOutput { data: [] }.to_text()
}

/// The handler closed the stream.
pub fn end_stream(reason: &str) -> String {
    ServerMessage::EndStream { data: reason }.to_text()
}

/// The server closed the connection.
pub fn connection_closed() -> String {
    ServerMessage::UpdateConnection { data: "closed" }.to_text()
}

/// A warning for the user.
pub fn warning(message: &str) -> String {
    ServerMessage::Warning { message }.to_text()
}

/// An error for the user.
pub fn error(message: &str) -> String {
    ServerMessage::Error { message }.to_text()
}

/// A WebSocket or Twilio Media Streams event to the client, compact as Twilio writes
/// it: `{"event":…,"streamSid":…,…}`, `streamSid` only on the telephone.
#[derive(Debug, Serialize)]
pub(crate) struct WsEvent<'a> {
    event: &'a str,
    #[serde(rename = "streamSid", skip_serializing_if = "Option::is_none")]
    stream_sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    media: Option<Payload<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mark: Option<Name<'a>>,
}

#[derive(Debug, Serialize)]
struct Payload<'a> {
    payload: &'a str,
}

#[derive(Debug, Serialize)]
struct Name<'a> {
    name: &'a str,
}

impl<'a> WsEvent<'a> {
    /// An event with nothing but its name (`pong`, `clear`).
    pub(crate) fn bare(event: &'a str, stream_sid: Option<&'a str>) -> Self {
        Self {
            event,
            stream_sid,
            media: None,
            mark: None,
        }
    }

    /// `media` with a base64 payload.
    pub(crate) fn media(payload: &'a str, stream_sid: Option<&'a str>) -> Self {
        Self {
            media: Some(Payload { payload }),
            ..Self::bare("media", stream_sid)
        }
    }

    /// `mark` with its name.
    pub(crate) fn mark(name: &'a str, stream_sid: Option<&'a str>) -> Self {
        Self {
            mark: Some(Name { name }),
            ..Self::bare("mark", stream_sid)
        }
    }

    /// The event as text.
    pub(crate) fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_message_keeps_fastrtcs_bytes() {
        assert_eq!(super::send_input(), r#"{"type": "send_input", "data": []}"#);
        assert_eq!(
            super::fetch_output(),
            r#"{"type": "fetch_output", "data": []}"#
        );
        assert_eq!(
            super::end_stream("time limit reached"),
            r#"{"type": "end_stream", "data": "time limit reached"}"#
        );
        assert_eq!(
            super::connection_closed(),
            r#"{"type": "update_connection", "data": "closed"}"#
        );
        assert_eq!(
            super::error("a\nb é"),
            "{\"type\": \"error\", \"message\": \"a\\nb é\"}"
        );
        assert_eq!(
            super::WsEvent::media("/38=", Some("MZ1")).to_text(),
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"/38="}}"#
        );
        assert_eq!(
            super::WsEvent::mark("a \"b\"", None).to_text(),
            r#"{"event":"mark","mark":{"name":"a \"b\""}}"#
        );
        assert_eq!(
            super::WsEvent::bare("clear", Some("MZ1")).to_text(),
            r#"{"event":"clear","streamSid":"MZ1"}"#
        );
    }

    #[test]
    fn messages_match_fastrtc() {
        assert_eq!(
            super::echo("handshake"),
            r#"{"type": "log", "data": "Server received: handshake"}"#
        );
        assert_eq!(
            super::pause_detected(),
            r#"{"type": "log", "data": "pause_detected"}"#
        );
        assert_eq!(
            super::warning("a \"b\""),
            r#"{"type": "warning", "message": "a \"b\""}"#
        );
    }
}
