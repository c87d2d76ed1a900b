//! A turn-taking assistant that asks a chat-completions service (OpenAI's shape:
//! `POST {API_BASE}/v1/chat/completions`) over `wasi:http`, without ever blocking a
//! call on the network: the request goes out in `on-text` (or `on-utterance`), and
//! `next-reply` answers `pending` until the response has arrived, then emits the
//! service's text as the `reply` output and plays a tone as long as the text.
//!
//! It reads two variables from its environment (the stream's grant sets them):
//! `API_BASE` (e.g. `https://api.openai.com`) and `MODEL`. It never sees a key: the
//! host adds `authorization` to requests for the hosts its grant names.
//!
//! When the host refuses or a request fails, the reason (a `wasi:http` error code)
//! is the `reply` output, prefixed `error:`, and the reply ends without audio.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, FutureIncomingResponse, Headers, IncomingBody, Method, OutgoingBody,
    OutgoingRequest, Scheme,
};
use wasip2::io::streams::{InputStream, StreamError};
use wasmrtc_guest::*;

const RATE: u32 = 24_000;
/// Samples per reply chunk (100 ms).
const CHUNK: usize = RATE as usize / 10;
/// Largest response body read, in bytes.
const MAX_BODY: usize = 256 * 1024;

/// A request in flight.
enum Call {
    /// Headers not here yet.
    Waiting(FutureIncomingResponse),
    /// Reading the body as it arrives. `stream` is a child of `body` and is
    /// dropped first.
    Reading {
        stream: InputStream,
        _body: IncomingBody,
        data: Vec<u8>,
    },
}

#[derive(Default)]
struct Assistant {
    call: Option<Call>,
    /// The tone of the answer being played: samples left, samples played.
    tone: Option<(usize, usize)>,
}

impl Handler for Assistant {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::SendReceive)
            .sample_rates(16_000, RATE)
            .output(OutputSpec::new("reply", "Assistant", OutputKind::Text))
    }

    fn describe_turns() -> Option<TurnTaking> {
        Some(TurnTaking::default().pause_ms(500).interruptible(true))
    }

    fn on_text(&mut self, text: String) -> bool {
        self.ask(&text)
    }

    fn on_utterance(&mut self, utterance: AudioFrame) {
        let ms = utterance.samples.len() as u64 * 1000 / u64::from(utterance.sample_rate.max(1));
        self.ask(&format!("(the caller spoke for {ms} ms)"));
    }

    fn next_reply(&mut self) -> ReplyChunk {
        if let Some(call) = self.call.take() {
            match poll(call) {
                Ok(Poll::Pending(call)) => {
                    self.call = Some(call);
                    return ReplyChunk::Pending;
                }
                Ok(Poll::Done(body)) => match content(&body) {
                    Some(text) => {
                        emit_outputs(&[Value::Text(text.clone())]);
                        let ms = (300 + 40 * text.chars().count()).min(3_000);
                        self.tone = Some((ms * RATE as usize / 1000, 0));
                    }
                    None => {
                        emit_outputs(&[Value::Text("error: no choices[0].message.content in the response".into())]);
                        return ReplyChunk::Done;
                    }
                },
                Err(why) => {
                    emit_outputs(&[Value::Text(format!("error: {why}"))]);
                    return ReplyChunk::Done;
                }
            }
        }
        let Some((left, played)) = self.tone.as_mut() else {
            return ReplyChunk::Done;
        };
        if *left == 0 {
            self.tone = None;
            return ReplyChunk::Done;
        }
        let n = CHUNK.min(*left);
        *left -= n;
        let start = *played;
        *played += n;
        let samples = (start..start + n)
            .map(|i| {
                let t = i as f64 / f64::from(RATE);
                (8_000.0 * (2.0 * std::f64::consts::PI * 550.0 * t).sin()) as i16
            })
            .collect();
        ReplyChunk::Audio(AudioFrame {
            sample_rate: RATE,
            channels: 1,
            samples,
        })
    }

    fn on_interrupt(&mut self) {
        // Dropping the request's resources aborts it on the host.
        self.call = None;
        self.tone = None;
    }
}

impl Assistant {
    /// Send the question; the reply is pending from now on.
    fn ask(&mut self, question: &str) -> bool {
        self.tone = None;
        match send(question) {
            Ok(future) => self.call = Some(Call::Waiting(future)),
            Err(why) => {
                self.call = None;
                emit_outputs(&[Value::Text(format!("error: {why}"))]);
                return false;
            }
        }
        true
    }
}

enum Poll {
    Pending(Call),
    Done(Vec<u8>),
}

/// Move a call on without blocking.
fn poll(call: Call) -> Result<Poll, String> {
    match call {
        // `ready` moves the host's side on without blocking; `get` only reads it.
        Call::Waiting(future) if !future.subscribe().ready() => {
            Ok(Poll::Pending(Call::Waiting(future)))
        }
        Call::Waiting(future) => match future.get() {
            None => Ok(Poll::Pending(Call::Waiting(future))),
            Some(Err(())) => Err("response taken twice".into()),
            Some(Ok(Err(code))) => Err(describe(&code)),
            Some(Ok(Ok(response))) => {
                let status = response.status();
                if !(200..300).contains(&status) {
                    return Err(format!("HTTP status {status}"));
                }
                let body = response.consume().map_err(|()| "no body")?;
                let stream = body.stream().map_err(|()| "no body stream")?;
                poll(Call::Reading {
                    stream,
                    _body: body,
                    data: Vec::new(),
                })
            }
        },
        Call::Reading {
            stream,
            _body,
            mut data,
        } => {
            let outcome = loop {
                match stream.read(64 * 1024) {
                    Ok(chunk) if chunk.is_empty() => break None,
                    Ok(chunk) => {
                        data.extend_from_slice(&chunk);
                        if data.len() > MAX_BODY {
                            break Some(Err(format!("response over {MAX_BODY} bytes")));
                        }
                    }
                    Err(StreamError::Closed) => break Some(Ok(())),
                    Err(StreamError::LastOperationFailed(e)) => {
                        let code = wasip2::http::types::http_error_code(&e);
                        // A body cut by the host may come as text only: its first line.
                        let text = e.to_debug_string();
                        let first = text.lines().next().unwrap_or_default().to_string();
                        break Some(Err(code.map_or(first, |c| describe(&c))));
                    }
                }
            };
            match outcome {
                None => Ok(Poll::Pending(Call::Reading {
                    stream,
                    _body,
                    data,
                })),
                Some(done) => {
                    // A body's stream is its child: it goes first.
                    drop(stream);
                    drop(_body);
                    done.map(|()| Poll::Done(data))
                }
            }
        },
    }
}

/// A `wasi:http` error code as text, e.g. `HttpRequestDenied`.
fn describe(code: &ErrorCode) -> String {
    let text = format!("{code:?}");
    let text = text.strip_prefix("ErrorCode::").unwrap_or(&text).to_string();
    text.split_once(['(', ' ', '{']).map_or(text.clone(), |(head, _)| head.to_string())
}

/// Start `POST {API_BASE}/v1/chat/completions` with the question.
fn send(question: &str) -> Result<FutureIncomingResponse, String> {
    let base = std::env::var("API_BASE").map_err(|_| "API_BASE is not set")?;
    let model = std::env::var("MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());
    let (scheme, rest) = base.split_once("://").ok_or("API_BASE is not a URL")?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return Err("API_BASE is not http(s)".into()),
    };
    let (authority, prefix) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let body = format!(
        "{{\"model\":{},\"messages\":[{{\"role\":\"user\",\"content\":{}}}]}}",
        json_string(&model),
        json_string(question)
    );
    let headers = Headers::from_list(&[
        ("content-type".into(), b"application/json".to_vec()),
        ("content-length".into(), body.len().to_string().into_bytes()),
    ])
    .map_err(|e| format!("headers: {e:?}"))?;
    let request = OutgoingRequest::new(headers);
    let _ = request.set_method(&Method::Post);
    let _ = request.set_scheme(Some(&scheme));
    request
        .set_authority(Some(authority))
        .map_err(|()| "bad authority")?;
    let path = format!("/{}/v1/chat/completions", prefix.trim_matches('/'));
    let path = path.replacen("//", "/", 1);
    request
        .set_path_with_query(Some(&path))
        .map_err(|()| "bad path")?;
    let outgoing = request.body().map_err(|()| "no request body")?;
    let future = outgoing_handler::handle(request, None).map_err(|c| describe(&c))?;
    let written = {
        let stream = outgoing.write().map_err(|()| "no body stream")?;
        body.as_bytes()
            .chunks(4096)
            .try_for_each(|chunk| stream.blocking_write_and_flush(chunk))
    };
    match written {
        Ok(()) => OutgoingBody::finish(outgoing, None).map_err(|c| describe(&c))?,
        // The host ended the request while it was being written (it refused it, say):
        // the response future says why.
        Err(_) => drop(outgoing),
    }
    Ok(future)
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The first `"content": "…"` string of a chat-completions response, unescaped.
fn content(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let at = text.find("\"content\"")?;
    let rest = text[at + "\"content\"".len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?).unwrap_or('\u{fffd}'));
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

export_handler!(Assistant);
