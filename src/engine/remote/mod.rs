//! A backend that asks an OpenAI-compatible completions server (vLLM, llama-cpp-python,
//! `hesnr serve`) for prompt log-probabilities instead of running the model here.
//!
//! The metrics need, per position, only the top-k log-probabilities and the true token's
//! log-probability, which such servers return for prompt tokens; the numbers are then the same as
//! the embedded engine's (up to the server's own arithmetic). hesnr tokenizes with the model's
//! GGUF tokenizer and sends token ids, so positions are known exactly; every answer is verified
//! ([`verify`]) before it is used, since some servers return misaligned numbers without error.

pub mod client;
pub mod protocol;
pub mod verify;

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::Value;

use self::client::{redact_url, Client, ClientError, ClientOptions};
use self::protocol::{Prompt, Protocol, ServerPosition};
use self::verify::SentPrompt;
use super::llama::GgufTokenizer;
use super::{model_store, Backend, EngineError, ModelInfo, Tokenizer};
use crate::metrics::PositionStats;

/// Settings of a remote backend.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    pub client: ClientOptions,
    /// The served model's name; `None` = the only one the server lists.
    pub model: Option<String>,
    /// `None` = find out which form the server answers.
    pub protocol: Option<Protocol>,
    /// Send text for the server to tokenize (checked token by token against hesnr's own
    /// tokenization) instead of token ids. Needed for servers that accept only text.
    pub send_text: bool,
    /// Tokens per request; `None` = the server's `max_model_len`, else the tokenizer's context.
    pub window: Option<usize>,
    /// Documents in flight at once.
    pub concurrency: usize,
}

/// A remote server seen through the [`Backend`] trait.
pub struct RemoteBackend {
    client: Arc<Client>,
    tok: Arc<GgufTokenizer>,
    /// Token text -> id, for naming the candidates of the echo form (built on first use).
    ids_by_text: Arc<OnceLock<HashMap<String, Option<u32>>>>,
    protocol: Protocol,
    send_text: bool,
    model: String,
    window: usize,
    concurrency: usize,
    info: ModelInfo,
}

/// What the server's model list says.
struct ServedModel {
    id: String,
    max_model_len: Option<usize>,
}

fn remote_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Remote(e.to_string())
}

fn served_models(client: &Client) -> Result<Vec<ServedModel>, EngineError> {
    let v = client.get_json("/v1/models").map_err(remote_err)?;
    let data = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| remote_err("/v1/models: no `data` list in the answer"))?;
    Ok(data
        .iter()
        .filter_map(|m| {
            Some(ServedModel {
                id: m.get("id")?.as_str()?.to_string(),
                max_model_len: m
                    .get("max_model_len")
                    .and_then(Value::as_u64)
                    .map(|x| x as usize),
            })
        })
        .collect())
}

impl RemoteBackend {
    /// Connects to a server, with `tokenizer` (a GGUF of the served model, or of any model
    /// sharing its tokenizer) for token ids and offsets. Finds the model and the protocol, and
    /// checks one small request end to end.
    pub fn connect(tokenizer: &Path, opts: &RemoteOptions) -> Result<Self, EngineError> {
        let tok = GgufTokenizer::load(tokenizer)?;
        let header = crate::gguf::read_gguf(tokenizer)?;
        let client = Client::new(opts.client.clone());
        let models = served_models(&client)?;
        let served = match &opts.model {
            Some(name) => models.iter().find(|m| &m.id == name).ok_or_else(|| {
                remote_err(format!(
                    "the server does not serve {name:?}; it serves: {}",
                    models
                        .iter()
                        .map(|m| m.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
            None => match models.as_slice() {
                [one] => one,
                [] => return Err(remote_err("the server lists no model")),
                many => {
                    return Err(remote_err(format!(
                        "the server serves several models; name one with --remote-model: {}",
                        many.iter()
                            .map(|m| m.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            },
        };
        let window = opts
            .window
            .or(served.max_model_len)
            .unwrap_or_else(|| header.context_length().unwrap_or(2048) as usize)
            .max(2);
        let shown_url = redact_url(&opts.client.base_url);
        let tok_sha = model_store::sha256_file(tokenizer).map_err(|e| EngineError::Load {
            path: tokenizer.into(),
            message: format!("cannot read: {e}"),
        })?;
        // Identity for caches: the endpoint, the served name and the tokenizer. A server that
        // swaps weights under the same name is the same model as far as hesnr can tell.
        let sha256 = crate::data::digest::sha256_hex(
            format!("remote\n{shown_url}\n{}\n{tok_sha}", served.id).as_bytes(),
        );
        let mut backend = Self {
            client: Arc::new(client),
            tok: Arc::new(tok),
            ids_by_text: Arc::new(OnceLock::new()),
            protocol: opts.protocol.unwrap_or(Protocol::PromptLogprobs),
            send_text: opts.send_text,
            model: served.id.clone(),
            window,
            concurrency: opts.concurrency.max(1),
            info: ModelInfo {
                path: shown_url.clone().into(),
                name: served.id.clone(),
                architecture: format!("{} (remote)", header.architecture().unwrap_or("unknown")),
                sha256,
                vocab_size: 0,
                train_context: window,
                add_bos: false,
                precision: "server".into(),
                compute: String::new(),
                threads: opts.concurrency.max(1),
            },
        };
        backend.info.vocab_size = backend.tok.vocab_size();
        backend.info.add_bos = backend.tok.add_bos();
        if let TokenizerCheck::Differs(why) = backend.check_tokenizer()? {
            return Err(remote_err(why));
        }
        backend.detect_protocol(opts)?;
        backend.info.compute = format!(
            "remote {shown_url} ({}, {}, {} in flight)",
            backend.protocol,
            if backend.send_text {
                "text"
            } else {
                "token ids"
            },
            backend.concurrency
        );
        tracing::info!(model = %backend.model, url = %shown_url, protocol = %backend.protocol, window, "remote server connected");
        Ok(backend)
    }

    /// Compares hesnr's tokenization of a probe text with the server's (`/tokenize`, which vLLM
    /// and `hesnr serve` have): token ids sent with another tokenizer would be scored as other
    /// tokens, and no check on the answers could tell. Servers without the endpoint are trusted
    /// here; their answers are still checked token by token.
    fn check_tokenizer(&self) -> Result<TokenizerCheck, EngineError> {
        let body = serde_json::json!({"model": self.model, "prompt": PROBE_TEXT});
        let answer = match self
            .client
            .with_retry_budget(1)
            .post_json("/tokenize", &body)
        {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!("no /tokenize on the server ({e}); tokenizer not compared");
                return Ok(TokenizerCheck::NotAvailable);
            }
        };
        let Some(theirs) = answer.get("tokens").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64().map(|x| x as u32))
                .collect::<Vec<u32>>()
        }) else {
            return Ok(TokenizerCheck::NotAvailable);
        };
        let ours = self.tok.tokenize(PROBE_TEXT, false)?.ids;
        // A BOS the server adds (or hesnr adds) is not a disagreement about the text.
        let strip = |ids: &[u32]| -> Vec<u32> {
            match (self.tok.bos(), ids.first()) {
                (Some(b), Some(&f)) if f == b => ids[1..].to_vec(),
                _ => ids.to_vec(),
            }
        };
        if strip(&ours) != strip(&theirs) {
            let show = |ids: &[u32]| {
                let head: Vec<String> = ids.iter().take(8).map(u32::to_string).collect();
                format!("[{}, ...] ({} tokens)", head.join(", "), ids.len())
            };
            return Ok(TokenizerCheck::Differs(format!(
                "the server tokenizes differently from the GGUF given with -m: {} here, {} on \
                 the server. Give -m a GGUF (a vocabulary-only one is enough) with the served \
                 model's tokenizer",
                show(&ours),
                show(&theirs)
            )));
        }
        Ok(TokenizerCheck::Agrees)
    }

    /// Settles on the first request form (the chosen one, or prompt-logprobs then echo; ids,
    /// then text unless text was asked for) whose answer to a small prompt passes every check.
    fn detect_protocol(&mut self, opts: &RemoteOptions) -> Result<(), EngineError> {
        let protocols = match opts.protocol {
            Some(p) => vec![p],
            None => vec![Protocol::PromptLogprobs, Protocol::Echo],
        };
        let prompts: &[bool] = if opts.send_text {
            &[true]
        } else {
            &[false, true]
        };
        let tokens = self.tok.tokenize(PROBE_TEXT, false)?;
        let n = tokens.ids.len();
        let mut notes = Vec::new();
        // A form the server rejects is rejected at once; don't wait out the whole backoff.
        let patient = Arc::clone(&self.client);
        self.client = Arc::new(patient.with_retry_budget(patient.options().retries.min(1)));
        let found = self.try_forms(&protocols, prompts, &tokens.ids, n, &mut notes);
        self.client = patient;
        if found {
            return Ok(());
        }
        Err(remote_err(format!(
            "no request form gave usable prompt log-probabilities: {}",
            notes.join(" | ")
        )))
    }

    fn try_forms(
        &mut self,
        protocols: &[Protocol],
        prompts: &[bool],
        ids: &[u32],
        n: usize,
        notes: &mut Vec<String>,
    ) -> bool {
        for &p in protocols {
            for &text in prompts {
                self.protocol = p;
                self.send_text = text;
                match self.evaluate(ids, 1..n, 10) {
                    Ok(_) => return true,
                    Err(e) => notes.push(format!(
                        "{p} with {}: {e}",
                        if text { "text" } else { "token ids" }
                    )),
                }
            }
        }
        false
    }

    /// The answer for `ids` as sent, before verification.
    fn request(&self, ids: &[u32], k: usize) -> Result<Vec<ServerPosition>, EngineError> {
        let text;
        let prompt = if self.send_text {
            text = self.text_prompt(ids)?;
            Prompt::Text(&text)
        } else {
            Prompt::Ids(ids)
        };
        let body = protocol::request_body(self.protocol, &self.model, &prompt, k);
        let why = format!(
            "what {} tokens with {k} candidates each can need",
            ids.len()
        );
        let resp = self
            .client
            .post_json_bounded("/v1/completions", &body, answer_limit(ids.len(), k), &why)
            .map_err(request_failure)?;
        let parsed = match self.protocol {
            // With text sent, a differently tokenized prompt shows as ids missing from entries.
            Protocol::PromptLogprobs => protocol::parse_prompt_logprobs(&resp, Some(ids), k),
            Protocol::Echo => protocol::parse_echo(&resp, k),
        }
        .map_err(|e| self.fault("form", format!("{} answer: {e}", self.protocol)))?;
        let mut positions = parsed.ok_or_else(|| {
            self.fault(
                "form",
                format!(
                    "the server ignored the {} request form (no prompt log-probabilities in \
                     its answer)",
                    self.protocol
                ),
            )
        })?;
        if self.send_text && self.tok.add_bos() && positions.len() + 1 == ids.len() {
            // The server tokenized text without adding the BOS that hesnr's sequence has.
            positions.insert(0, first_position());
        }
        Ok(positions)
    }

    /// The text of `ids`, for servers that tokenize themselves; a BOS at the front is left for
    /// the server to add.
    fn text_prompt(&self, ids: &[u32]) -> Result<String, EngineError> {
        let body = match self.tok.bos() {
            Some(bos) if ids.first() == Some(&bos) => &ids[1..],
            _ => ids,
        };
        let bytes: Vec<u8> = body
            .iter()
            .flat_map(|&i| self.tok.piece(i).iter().copied())
            .collect();
        String::from_utf8(bytes).map_err(|_| {
            remote_err("a window boundary splits a character; send token ids instead of text")
        })
    }

    /// Token texts that name exactly one token (texts several tokens share map to `None`).
    fn ids_by_text(&self) -> &HashMap<String, Option<u32>> {
        self.ids_by_text.get_or_init(|| {
            let mut m: HashMap<String, Option<u32>> = HashMap::new();
            for id in 0..self.tok.vocab_size() as u32 {
                let text = self.tok.token_text(id);
                let unique = !text.contains('\u{FFFD}');
                m.entry(text)
                    .and_modify(|v| *v = None)
                    .or_insert(unique.then_some(id));
            }
            m
        })
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// A failed check of this server's answers, naming the server.
    fn fault(&self, check: &'static str, detail: String) -> EngineError {
        EngineError::ServerFault {
            check,
            message: format!("{}: {detail}", self.info.path.display()),
        }
    }
}

/// Bytes allowed per candidate entry of an answer: an entry of vLLM's form
/// (`"12345": {"logprob": -1.2345678, "rank": 12, "decoded_token": "..."}`) takes about 80,
/// the rest is room for long or escaped token texts and fields a server adds.
pub const ANSWER_BYTES_PER_ENTRY: usize = 512;

/// The most a `/v1/completions` answer for `n` prompt tokens with `k` candidates each can
/// legitimately need: `(n + 1) x (k + 2)` entries (the top k, the prompt token, one generated
/// token) at [`ANSWER_BYTES_PER_ENTRY`] each, plus 1 MiB for the rest. A 2,048-token window
/// with k = 10 may answer 13 MiB.
pub fn answer_limit(n: usize, k: usize) -> usize {
    (n.saturating_add(1))
        .saturating_mul(k.saturating_add(2))
        .saturating_mul(ANSWER_BYTES_PER_ENTRY)
        .saturating_add(1 << 20)
}

/// What a failed `/v1/completions` request means for the run. Unreachable (after retries and
/// within the time allowed): stop, resumable. A refusal of this request (400, 413, 422: e.g.
/// too long for the server): skip the document. Any other error status, an answer that is not
/// JSON or is over its bound: the server is not one hesnr can score with, stop.
fn request_failure(e: ClientError) -> EngineError {
    let check = match &e {
        ClientError::Transport { .. } => return EngineError::Unavailable(e.to_string()),
        ClientError::Status {
            status: 400 | 413 | 422,
            ..
        } => return remote_err(e),
        ClientError::Status { .. } => "status",
        ClientError::Body { .. } => "json",
        ClientError::TooLarge { .. } => "size",
    };
    EngineError::ServerFault {
        check,
        message: e.to_string(),
    }
}

/// Whether the server's tokenizer is the one hesnr uses.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenizerCheck {
    Agrees,
    /// The server has no `/tokenize` (its answers are still checked token by token).
    NotAvailable,
    Differs(String),
}

fn first_position() -> ServerPosition {
    ServerPosition {
        token: None,
        logprob: None,
        rank: None,
        top: Vec::new(),
        text_offset: None,
    }
}

/// A small code prompt used to check a server end to end.
pub const PROBE_TEXT: &str =
    "def mean(xs):\n    \"\"\"Average of a list.\"\"\"\n    return sum(xs) / len(xs)\n";

impl Backend for RemoteBackend {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn tokenizer(&self) -> &dyn Tokenizer {
        &*self.tok
    }

    fn max_window(&self) -> usize {
        self.window
    }

    fn evaluate(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        k: usize,
    ) -> Result<Vec<PositionStats>, EngineError> {
        if targets.start == 0 || targets.end > tokens.len() || tokens.len() > self.window {
            return Err(EngineError::Forward(format!(
                "bad window: {} tokens, targets {:?}, window {}",
                tokens.len(),
                targets,
                self.window
            )));
        }
        // The last target is the last token the server needs to see.
        let sent_ids = &tokens[..targets.end];
        let positions = self.request(sent_ids, k)?;
        let tok = &self.tok;
        let text_of = |id: u32| tok.token_text(id);
        let id_of = |s: &str| self.ids_by_text().get(s).copied().flatten();
        let sent = SentPrompt {
            ids: sent_ids,
            text_of: &text_of,
            id_of: &id_of,
        };
        verify::to_stats(&positions, &sent, targets, k, tok.vocab_size()).map_err(|e| {
            self.fault(
                e.check,
                format!(
                    "at token {}: {}. The server's numbers cannot be trusted; `hesnr probe` \
                     shows what it returns",
                    e.position, e.detail
                ),
            )
        })
    }

    fn fork(&self) -> Option<Box<dyn Backend + Send>> {
        Some(Box::new(Self {
            client: Arc::clone(&self.client),
            tok: Arc::clone(&self.tok),
            ids_by_text: Arc::clone(&self.ids_by_text),
            protocol: self.protocol,
            send_text: self.send_text,
            model: self.model.clone(),
            window: self.window,
            concurrency: self.concurrency,
            info: self.info.clone(),
        }))
    }

    fn parallelism(&self) -> usize {
        self.concurrency
    }
}

/// What `hesnr probe` found out about one request form.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    pub protocol: Protocol,
    pub send_text: bool,
    /// The server answered with prompt log-probabilities at all.
    pub prompt_logprobs: bool,
    /// Candidates per position it returned (asked for `asked`).
    pub top_k: Option<usize>,
    pub asked: usize,
    /// `None` when every check passed, else the failed check and what was seen.
    pub failed_check: Option<String>,
    pub detail: String,
    /// Mean NLL over the probe text, when usable.
    pub mean_nll: Option<f64>,
}

/// What `hesnr probe` found out about a server.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub model: String,
    pub tokenizer: TokenizerCheck,
    pub forms: Vec<ProbeResult>,
}

/// Tries each request form against a server with the probe text and reports what happened.
pub fn probe(tokenizer: &Path, opts: &RemoteOptions) -> Result<ProbeReport, EngineError> {
    let tok = GgufTokenizer::load(tokenizer)?;
    let client = Client::new(opts.client.clone());
    let models = served_models(&client)?;
    let model = opts
        .model
        .clone()
        .or_else(|| models.first().map(|m| m.id.clone()))
        .ok_or_else(|| remote_err("the server lists no model"))?;
    let mut backend = RemoteBackend {
        client: Arc::new(client),
        tok: Arc::new(tok),
        ids_by_text: Arc::new(OnceLock::new()),
        protocol: Protocol::PromptLogprobs,
        send_text: false,
        model: model.clone(),
        window: usize::MAX,
        concurrency: 1,
        info: ModelInfo {
            path: redact_url(&opts.client.base_url).into(),
            name: model.clone(),
            architecture: "remote".into(),
            sha256: String::new(),
            vocab_size: 0,
            train_context: 0,
            add_bos: false,
            precision: "server".into(),
            compute: String::new(),
            threads: 1,
        },
    };
    backend.info.add_bos = backend.tok.add_bos();
    let tokenizer_check = backend.check_tokenizer()?;
    let asked = 10;
    let tokens = backend.tok.tokenize(PROBE_TEXT, false)?;
    let n = tokens.ids.len();
    let mut results = Vec::new();
    for protocol in [Protocol::PromptLogprobs, Protocol::Echo] {
        for send_text in [false, true] {
            backend.protocol = protocol;
            backend.send_text = send_text;
            let mut r = ProbeResult {
                protocol,
                send_text,
                prompt_logprobs: false,
                top_k: None,
                asked,
                failed_check: None,
                detail: String::new(),
                mean_nll: None,
            };
            match backend.request(&tokens.ids, asked) {
                Err(e) => r.detail = e.to_string(),
                Ok(positions) => {
                    r.prompt_logprobs = true;
                    r.top_k = positions.iter().map(|p| p.top.len()).max();
                    let text_of = |id: u32| backend.tok.token_text(id);
                    let id_of = |s: &str| backend.ids_by_text().get(s).copied().flatten();
                    let sent = SentPrompt {
                        ids: &tokens.ids,
                        text_of: &text_of,
                        id_of: &id_of,
                    };
                    match verify::to_stats(&positions, &sent, 1..n, asked, backend.tok.vocab_size())
                    {
                        Ok(stats) => {
                            r.detail = "every check passed".into();
                            let nll: f64 = stats.iter().map(|s| -(s.true_logit as f64)).sum();
                            r.mean_nll = Some(nll / stats.len().max(1) as f64);
                        }
                        Err(e) => {
                            r.failed_check = Some(e.check.to_string());
                            r.detail = e.to_string();
                        }
                    }
                }
            }
            results.push(r);
        }
    }
    Ok(ProbeReport {
        model,
        tokenizer: tokenizer_check,
        forms: results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> ClientError {
        ClientError::Status {
            url: "http://h/v1/completions".into(),
            status,
            message: "no".into(),
        }
    }

    #[test]
    fn a_refused_request_skips_the_document_other_failures_stop_the_run() {
        for s in [400, 413, 422] {
            assert!(!request_failure(status(s)).is_fatal(), "{s}");
        }
        for s in [401, 403, 404, 405, 302] {
            let e = request_failure(status(s));
            assert!(e.is_fatal(), "{s}");
            assert!(e.to_string().contains("`status`") && e.to_string().contains("http://h"));
        }
        let body = ClientError::Body {
            url: "http://h".into(),
            message: "x".into(),
        };
        assert!(request_failure(body).to_string().contains("`json`"));
        let large = ClientError::TooLarge {
            url: "http://h".into(),
            limit: 10,
            why: "w".into(),
        };
        assert!(request_failure(large).is_fatal());
    }

    #[test]
    fn answers_are_bounded_by_what_the_request_can_need() {
        assert_eq!(answer_limit(2048, 10), 2049 * 12 * 512 + (1 << 20));
        assert_eq!(answer_limit(usize::MAX, 10), usize::MAX);
    }
}
