//! `hesnr serve`: any backend behind the OpenAI-compatible completions API with prompt
//! log-probabilities in vLLM's format (and the legacy `echo` form), so that the remote backend
//! can be tested against a real server process, and a machine with a GPU can serve others.
//!
//! The answers follow vLLM's documented shapes: `choices[0].prompt_logprobs` is a list with
//! `null` first and then, per prompt token, `{"<id>": {"logprob", "rank", "decoded_token"}}`
//! holding the top k and the prompt token itself. No text is generated: `max_tokens` is accepted
//! and ignored, as the point is scoring the prompt.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::engine::{Backend, EngineError};
use crate::metrics::PositionStats;

/// The most candidates a request may ask for (vLLM's default `max_logprobs` is 20).
pub const MAX_LOGPROBS: usize = 20;

/// Deliberately wrong answers, to show that a client's verification catches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Top-k lists one position early, each holding the next position's candidates (as
    /// llama-cpp-python 0.3.36's echo form returns them).
    ShiftTopk,
}

/// How the server answers.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The name under which the model is listed and must be requested.
    pub model_name: String,
    /// Required `Authorization: Bearer` key, if any.
    pub api_key: Option<String>,
    /// The largest request body read; a larger one is answered 413.
    pub max_body_bytes: usize,
    /// The time a client gets to send its whole request, and to take its answer; a slower
    /// one is answered 408 (or cut off) and disconnected.
    pub read_timeout: Duration,
    pub fault: Option<Fault>,
}

/// An HTTP answer: status and JSON body.
pub type Answer = (u16, Value);

fn error(status: u16, message: impl Into<String>) -> Answer {
    let kind = if status < 500 {
        "invalid_request_error"
    } else {
        "internal_error"
    };
    (
        status,
        json!({"error": {"message": message.into(), "type": kind, "code": status}}),
    )
}

/// Answers one request. Pure apart from the backend: the HTTP loop is in [`serve`].
pub fn handle(
    backend: &mut dyn Backend,
    opts: &ServeOptions,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &str,
) -> Answer {
    let path = path.split('?').next().unwrap_or(path);
    if let Some(key) = &opts.api_key {
        let given = authorization.and_then(|a| a.strip_prefix("Bearer "));
        if path != "/health" && given != Some(key.as_str()) {
            return error(401, "missing or wrong API key");
        }
    }
    match (method, path) {
        ("GET", "/health") => (200, json!({})),
        ("GET", "/v1/models") => (
            200,
            json!({"object": "list", "data": [{
                "id": opts.model_name,
                "object": "model",
                "owned_by": "hesnr",
                "max_model_len": backend.max_window(),
            }]}),
        ),
        ("POST", "/tokenize") => tokenize(backend, body),
        ("POST", "/v1/completions") => completions(backend, opts, body),
        (_, "/health" | "/v1/models" | "/tokenize" | "/v1/completions") => {
            error(405, format!("{method} is not allowed on {path}"))
        }
        _ => error(404, format!("no route {path}")),
    }
}

/// The prompt's token ids: as sent, or hesnr's tokenization of the text.
fn prompt_ids(backend: &dyn Backend, prompt: &Value) -> Result<Vec<u32>, Answer> {
    match prompt {
        Value::String(s) => backend
            .tokenize(s)
            .map(|t| t.ids)
            .map_err(|e| error(400, e.to_string())),
        Value::Array(a) if a.iter().all(Value::is_u64) => Ok(a
            .iter()
            .map(|v| v.as_u64().unwrap_or_default() as u32)
            .collect()),
        Value::Array(_) => Err(error(
            400,
            "`prompt` must be a string or a list of token ids (one prompt per request)",
        )),
        _ => Err(error(400, "`prompt` is missing")),
    }
}

fn tokenize(backend: &dyn Backend, body: &str) -> Answer {
    let req: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return error(400, format!("body is not JSON: {e}")),
    };
    match prompt_ids(backend, req.get("prompt").unwrap_or(&Value::Null)) {
        Ok(ids) => (
            200,
            json!({"count": ids.len(), "max_model_len": backend.max_window(), "tokens": ids}),
        ),
        Err(a) => a,
    }
}

fn completions(backend: &mut dyn Backend, opts: &ServeOptions, body: &str) -> Answer {
    let req: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return error(400, format!("body is not JSON: {e}")),
    };
    if let Some(m) = req.get("model").and_then(Value::as_str) {
        if m != opts.model_name {
            return error(404, format!("the model `{m}` does not exist"));
        }
    }
    let ids = match prompt_ids(backend, req.get("prompt").unwrap_or(&Value::Null)) {
        Ok(ids) => ids,
        Err(a) => return a,
    };
    let k_of = |name: &str| -> Result<Option<usize>, Answer> {
        match req.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(k) if (k as usize) <= MAX_LOGPROBS => Ok(Some(k as usize)),
                _ => Err(error(
                    400,
                    format!("`{name}` must be an integer in 0..={MAX_LOGPROBS}"),
                )),
            },
        }
    };
    let (prompt_k, echo_k) = match (k_of("prompt_logprobs"), k_of("logprobs")) {
        (Ok(p), Ok(l)) => (p, l),
        (Err(a), _) | (_, Err(a)) => return a,
    };
    let echo = req.get("echo").and_then(Value::as_bool).unwrap_or(false);
    let n = ids.len();
    if n > backend.max_window() {
        return error(
            400,
            format!(
                "This model's maximum context length is {} tokens. However, you requested {n} tokens in the prompt.",
                backend.max_window()
            ),
        );
    }
    let k = prompt_k.max(echo_k.filter(|_| echo)).unwrap_or(0);
    let stats = if k > 0 && n >= 2 {
        match backend.evaluate(&ids, 1..n, k) {
            Ok(s) => s,
            Err(e @ EngineError::Forward(_)) => return error(400, e.to_string()),
            Err(e) => return error(500, e.to_string()),
        }
    } else {
        Vec::new()
    };
    let tops: Vec<Vec<(u32, f64)>> = {
        let mut t: Vec<Vec<(u32, f64)>> = stats.iter().map(|s| top_logprobs(s, k)).collect();
        if opts.fault == Some(Fault::ShiftTopk) && !t.is_empty() {
            t.rotate_left(1);
        }
        t
    };
    let mut choice = Map::new();
    choice.insert("index".into(), json!(0));
    choice.insert("text".into(), json!(""));
    choice.insert("finish_reason".into(), json!("length"));
    if let Some(pk) = prompt_k.filter(|&k| k > 0) {
        let mut list = vec![Value::Null];
        for (s, top) in stats.iter().zip(&tops) {
            let mut m = Map::new();
            for (j, &(id, lp)) in top.iter().take(pk).enumerate() {
                m.insert(id.to_string(), entry(backend, id, lp, j as u32 + 1));
            }
            m.entry(s.true_id.to_string())
                .or_insert_with(|| entry(backend, s.true_id, true_logprob(s), s.true_rank));
            list.push(Value::Object(m));
        }
        choice.insert("prompt_logprobs".into(), Value::Array(list));
    }
    if echo {
        let texts: Vec<String> = ids.iter().map(|&i| backend.token_text(i)).collect();
        choice.insert("text".into(), json!(texts.concat()));
        if let Some(ek) = echo_k {
            let mut offsets = Vec::with_capacity(n);
            let mut at = 0usize;
            for t in &texts {
                offsets.push(at);
                at += t.chars().count();
            }
            let mut token_lps = vec![Value::Null];
            let mut top_lps = vec![Value::Null];
            for (s, top) in stats.iter().zip(&tops) {
                token_lps.push(json!(true_logprob(s)));
                let mut m = Map::new();
                for &(id, lp) in top.iter().take(ek) {
                    // Texts can collide (bytes of one character); the most probable is kept.
                    m.entry(backend.token_text(id)).or_insert(json!(lp));
                }
                top_lps.push(Value::Object(m));
            }
            choice.insert(
                "logprobs".into(),
                json!({"tokens": texts, "token_logprobs": token_lps,
                       "top_logprobs": top_lps, "text_offset": offsets}),
            );
        }
    }
    (
        200,
        json!({
            "id": "cmpl-hesnr",
            "object": "text_completion",
            "model": opts.model_name,
            "choices": [Value::Object(choice)],
            "usage": {"prompt_tokens": n, "completion_tokens": 0, "total_tokens": n},
        }),
    )
}

fn entry(backend: &dyn Backend, id: u32, lp: f64, rank: u32) -> Value {
    json!({"logprob": lp, "rank": rank, "decoded_token": backend.token_text(id)})
}

fn true_logprob(s: &PositionStats) -> f64 {
    s.true_logit as f64 - s.lse
}

fn top_logprobs(s: &PositionStats, k: usize) -> Vec<(u32, f64)> {
    s.top
        .iter()
        .take(k)
        .map(|t| (t.id, t.logit as f64 - s.lse))
        .collect()
}

/// Serves requests until the process ends.
///
/// The model answers one request at a time (on this thread: a backend is bound to one context),
/// but no client can hold the others up: every connection is read on a thread of its own, at
/// most [`ServeOptions::max_body_bytes`] of body, with at most [`MAX_READING`] connections being
/// read at once (more are answered 503 at once), and every answer is written on a thread of its
/// own. A client gets [`ServeOptions::read_timeout`] to send its whole request (head and body)
/// and again to take its answer: a client that stalls is answered 408 and disconnected, and its
/// slot is free again.
///
/// Connections are handled here rather than by an HTTP server library because the one used
/// before (tiny_http) sets no socket timeouts; request heads are parsed by `httparse`. One
/// request per connection (`Connection: close`), bodies by `Content-Length` (`Expect:
/// 100-continue` honoured; a chunked body is answered 411).
pub fn serve(backend: &mut dyn Backend, opts: &ServeOptions, listener: &TcpListener) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<(Incoming, TcpStream)>();
    let reading = Arc::new(AtomicUsize::new(0));
    let timeout = opts.read_timeout;
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut stream) = conn else { continue };
                if reading.fetch_add(1, Ordering::SeqCst) >= MAX_READING {
                    reading.fetch_sub(1, Ordering::SeqCst);
                    let busy = error(503, "too many requests being read; retry later");
                    respond_in_background(stream, busy, timeout);
                    continue;
                }
                let (tx, reading, limit) =
                    (ready_tx.clone(), Arc::clone(&reading), opts.max_body_bytes);
                std::thread::spawn(move || {
                    let request = read_request(&mut stream, limit, timeout);
                    reading.fetch_sub(1, Ordering::SeqCst);
                    match request {
                        // The receiver lives as long as the server: a failed send means shutdown.
                        Ok(request) => drop(tx.send((request, stream))),
                        Err(Some(answer)) => {
                            tracing::info!(status = answer.0, "request refused while reading");
                            respond(stream, answer, timeout);
                        }
                        Err(None) => {}
                    }
                });
            }
        });
        for (request, stream) in ready_rx {
            let Incoming {
                method,
                path,
                authorization,
                body,
            } = request;
            let (status, value) = handle(
                backend,
                opts,
                &method,
                &path,
                authorization.as_deref(),
                &body,
            );
            tracing::info!(%method, url = %path, status, "request");
            respond_in_background(stream, (status, value), timeout);
        }
    });
}

/// Connections whose requests may be read at once; one more is answered 503.
pub const MAX_READING: usize = 64;

/// The largest request head (request line and headers); a larger one is answered 431.
pub const MAX_HEAD_BYTES: usize = 64 << 10;

/// The seconds a client gets by default to send its request, and to take its answer.
pub const DEFAULT_READ_TIMEOUT_SECS: u64 = 60;

/// A request as read from a connection.
#[derive(Debug)]
struct Incoming {
    method: String,
    path: String,
    authorization: Option<String>,
    body: String,
}

/// Reads one request, head and body, within `timeout` in all. `Err(Some(answer))`: answer
/// this and close; `Err(None)`: the client is gone, nothing to answer.
fn read_request(
    stream: &mut TcpStream,
    limit: usize,
    timeout: Duration,
) -> Result<Incoming, Option<Answer>> {
    let deadline = Instant::now() + timeout;
    let too_slow = || {
        Some(error(
            408,
            format!(
                "the request was not sent within {} s (the server's --read-timeout)",
                timeout.as_secs_f64()
            ),
        ))
    };
    // Reads more bytes into `buf`, within the deadline; `Ok(false)` at the end of the stream.
    let read_more = |stream: &mut TcpStream, buf: &mut Vec<u8>| -> Result<bool, Option<Answer>> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(too_slow());
        }
        stream.set_read_timeout(Some(left)).map_err(|_| None)?;
        let mut chunk = [0u8; 16 << 10];
        match stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(too_slow())
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(true),
            Err(_) => Err(None),
        }
    };
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(Some(error(
                431,
                format!("request head over {MAX_HEAD_BYTES} bytes"),
            )));
        }
        if !read_more(stream, &mut buf)? {
            return Err(None);
        }
    };
    let head = parse_head(&buf[..head_end]).map_err(Some)?;
    if head.content_length > limit {
        return Err(Some(error(
            413,
            format!("request body over {limit} bytes (the server's --max-body-mb)"),
        )));
    }
    if head.expect_continue {
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|_| None)?;
    }
    let mut body = buf.split_off(head_end);
    while body.len() < head.content_length {
        if !read_more(stream, &mut body)? {
            return Err(Some(error(400, "the body ended before its Content-Length")));
        }
    }
    body.truncate(head.content_length);
    let body = String::from_utf8(body).map_err(|e| {
        Some(error(
            400,
            format!("body is not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        ))
    })?;
    Ok(Incoming {
        method: head.method,
        path: head.path,
        authorization: head.authorization,
        body,
    })
}

/// What the head of a request says.
#[derive(Debug, PartialEq)]
struct Head {
    method: String,
    path: String,
    authorization: Option<String>,
    content_length: usize,
    expect_continue: bool,
}

/// The most headers a request may have; more are answered 431.
const MAX_HEADERS: usize = 64;

/// Parses a request head with `httparse` (hyper's parser), then reads what the server needs
/// from it.
fn parse_head(bytes: &[u8]) -> Result<Head, Answer> {
    let bad = |why: &str| error(400, format!("malformed request: {why}"));
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("the head ends early")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(error(431, format!("more than {MAX_HEADERS} headers")))
        }
        Err(e) => return Err(bad(&e.to_string())),
    }
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return Err(bad("no request line"));
    };
    // An absolute target (`http://host/path`) names the same path.
    let path = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let mut head = Head {
        method: method.to_uppercase(),
        path: path.to_string(),
        authorization: None,
        content_length: 0,
        expect_continue: false,
    };
    let mut length: Option<usize> = None;
    for header in request.headers.iter() {
        let value = std::str::from_utf8(header.value)
            .map_err(|_| bad("a header value that is not UTF-8"))?
            .trim();
        match header.name.to_ascii_lowercase().as_str() {
            "content-length" => {
                let n: usize = value.parse().map_err(|_| bad("Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(bad("two different Content-Length headers"));
                }
                length = Some(n);
            }
            "transfer-encoding" => {
                return Err(error(
                    411,
                    "send the body with a Content-Length (chunked bodies are not read)",
                ))
            }
            "expect" => head.expect_continue = value.eq_ignore_ascii_case("100-continue"),
            "authorization" => head.authorization = Some(value.to_string()),
            _ => {}
        }
    }
    head.content_length = length.unwrap_or(0);
    Ok(head)
}

/// Writes an answer and closes the connection, giving the client `timeout` to take it.
fn respond(mut stream: TcpStream, (status, value): Answer, timeout: Duration) {
    let body = value.to_string();
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    let written = stream
        .set_write_timeout(Some(timeout))
        .and_then(|()| stream.write_all(head.as_bytes()))
        .and_then(|()| stream.write_all(body.as_bytes()))
        .and_then(|()| stream.flush());
    if let Err(e) = written {
        tracing::warn!("could not answer a client: {e}");
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// Writes an answer on a thread of its own, so a client that does not read cannot stall the
/// server (and is cut off after `timeout`).
fn respond_in_background(stream: TcpStream, answer: Answer, timeout: Duration) {
    std::thread::spawn(move || respond(stream, answer, timeout));
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_and_bad_ones_refused() {
        let h = parse_head(
            b"post http://h:1/v1/completions?x=1 HTTP/1.1\r\nHost: h\r\ncontent-length: 12\r\n\
              Authorization: Bearer k\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            h,
            Head {
                method: "POST".into(),
                path: "/v1/completions?x=1".into(),
                authorization: Some("Bearer k".into()),
                content_length: 12,
                expect_continue: true,
            }
        );
        assert_eq!(
            parse_head(b"GET /health HTTP/1.0\r\n\r\n").unwrap().path,
            "/health"
        );
        for bad in [
            &b"GET /health\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        ] {
            assert_eq!(parse_head(bad).unwrap_err().0, 400);
        }
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(chunked).unwrap_err().0, 411);
    }
}
