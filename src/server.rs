//! `hesnr serve`: any backend behind the OpenAI-compatible completions API with prompt
//! log-probabilities in vLLM's format (and the legacy `echo` form), so that the remote backend
//! can be tested against a real server process, and a machine with a GPU can serve others.
//!
//! The answers follow vLLM's documented shapes: `choices[0].prompt_logprobs` is a list with
//! `null` first and then, per prompt token, `{"<id>": {"logprob", "rank", "decoded_token"}}`
//! holding the top k and the prompt token itself. No text is generated: `max_tokens` is accepted
//! and ignored, as the point is scoring the prompt.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
/// but no client can hold the others up: every request's body is read on a thread of its own,
/// at most [`ServeOptions::max_body_bytes`] of it, with at most [`MAX_READING`] reads under
/// way (more are answered 503 at once), and every answer is written on a thread of its own. A
/// client that stalls mid-body or never reads its answer ties up only its own thread.
pub fn serve(backend: &mut dyn Backend, opts: &ServeOptions, server: &tiny_http::Server) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<(tiny_http::Request, Body)>();
    let reading = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for request in server.incoming_requests() {
                if reading.fetch_add(1, Ordering::SeqCst) >= MAX_READING {
                    reading.fetch_sub(1, Ordering::SeqCst);
                    let busy = error(503, "too many requests being read; retry later");
                    respond_in_background(request, busy);
                    continue;
                }
                let (tx, reading, limit) =
                    (ready_tx.clone(), Arc::clone(&reading), opts.max_body_bytes);
                std::thread::spawn(move || {
                    let mut request = request;
                    let body = read_body(&mut request, limit);
                    reading.fetch_sub(1, Ordering::SeqCst);
                    // The receiver lives as long as the server: a failed send means shutdown.
                    let _ = tx.send((request, body));
                });
            }
        });
        for (request, body) in ready_rx {
            let method = request.method().as_str().to_uppercase();
            let url = request.url().to_string();
            let auth = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .map(|h| h.value.as_str().to_string());
            let (status, value) = match body {
                Ok(body) => handle(backend, opts, &method, &url, auth.as_deref(), &body),
                Err(answer) => answer,
            };
            tracing::info!(%method, %url, status, "request");
            respond_in_background(request, (status, value));
        }
    });
}

/// Requests whose bodies may be read at once; one more is answered 503.
pub const MAX_READING: usize = 64;

/// A request body as text, or the answer that refuses it.
type Body = Result<String, Answer>;

/// Reads at most `limit` bytes of a request's body (a declared length over it is refused before
/// anything is read).
fn read_body(request: &mut tiny_http::Request, limit: usize) -> Body {
    let too_large = || {
        error(
            413,
            format!("request body over {limit} bytes (the server's --max-body-mb)"),
        )
    };
    if request.body_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    let reader = request.as_reader();
    match std::io::Read::read_to_end(
        &mut std::io::Read::take(reader, limit as u64 + 1),
        &mut bytes,
    ) {
        Ok(_) if bytes.len() > limit => Err(too_large()),
        Ok(_) => String::from_utf8(bytes).map_err(|e| {
            error(
                400,
                format!("body is not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
            )
        }),
        Err(e) => Err(error(400, format!("cannot read the body: {e}"))),
    }
}

/// Writes an answer on a thread of its own, so a client that does not read cannot stall the
/// server.
fn respond_in_background(request: tiny_http::Request, (status, value): Answer) {
    std::thread::spawn(move || {
        let url = request.url().to_string();
        let header = tiny_http::Header::from_bytes("Content-Type", "application/json")
            .expect("static header");
        let response = tiny_http::Response::from_string(value.to_string())
            .with_status_code(status)
            .with_header(header);
        if let Err(e) = request.respond(response) {
            tracing::warn!("could not answer {url}: {e}");
        }
    });
}
