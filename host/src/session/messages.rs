//! Control messages to the client, byte for byte as FastRTC writes them (Python's
//! `json.dumps`: a space after `:` and `,`), on the data channel or a WebSocket.

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// `{"type": "log", "data": …}`.
pub fn log(data: &str) -> String {
    format!(r#"{{"type": "log", "data": {}}}"#, quote(data))
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
    r#"{"type": "send_input", "data": []}"#.to_string()
}

/// Tells the client outputs are ready.
pub fn fetch_output() -> String {
    r#"{"type": "fetch_output", "data": []}"#.to_string()
}

/// The handler closed the stream.
pub fn end_stream(reason: &str) -> String {
    format!(r#"{{"type": "end_stream", "data": {}}}"#, quote(reason))
}

/// The server closed the connection.
pub fn connection_closed() -> String {
    r#"{"type": "update_connection", "data": "closed"}"#.to_string()
}

/// A warning for the user.
pub fn warning(message: &str) -> String {
    format!(r#"{{"type": "warning", "message": {}}}"#, quote(message))
}

/// An error for the user.
pub fn error(message: &str) -> String {
    format!(r#"{{"type": "error", "message": {}}}"#, quote(message))
}

#[cfg(test)]
mod tests {
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
