//! HTTP to one server: JSON in and out, timeouts, and retries with backoff for the failures a
//! fleet has (429, 5xx, a connection refused while a server restarts, a request that hangs).
//! The API key goes in a header and nowhere else: never in errors, logs or outputs.
//!
//! Two bounds keep a faulty or hostile server from taking the client with it: an answer is read
//! up to a size limit (derived from what the request can need, or `--max-response-mb`), and one
//! request, retries and waits included, takes at most `--total-timeout`.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::protocol::error_message;

/// How to reach a server and how patient to be with it.
#[derive(Clone)]
pub struct ClientOptions {
    pub base_url: String,
    pub api_key: Option<String>,
    /// Per request, end to end.
    pub timeout: Duration,
    /// Attempts after the first, for retryable failures.
    pub retries: u32,
    /// Wait before the first retry; doubles each time, capped at 30 s.
    pub backoff: Duration,
    /// The most one request may take, every attempt and wait included; at least one full
    /// `timeout` is always allowed.
    pub total_timeout: Duration,
    /// The largest answer read, in bytes, for every request; `None` = a bound derived from
    /// the request ([`Client::post_json_bounded`]) or [`DEFAULT_ANSWER_LIMIT`].
    pub max_answer_bytes: Option<usize>,
}

/// The largest answer read for a request without a bound of its own (`/v1/models`,
/// `/tokenize`), unless `--max-response-mb` says otherwise.
pub const DEFAULT_ANSWER_LIMIT: usize = 16 << 20;

/// The most one request may take by default, retries and waits included (`--total-timeout`).
pub const DEFAULT_TOTAL_TIMEOUT_SECS: f64 = 600.0;

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("base_url", &redact_url(&self.base_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("total_timeout", &self.total_timeout)
            .field("max_answer_bytes", &self.max_answer_bytes)
            .finish()
    }
}

/// Failures talking to a server, after retries.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: {message} (after {attempts} attempts{budget})")]
    Transport {
        url: String,
        message: String,
        attempts: u32,
        /// Set when the request's time ran out before its retries did.
        budget: String,
    },
    #[error("{url}: the answer is not JSON: {message}")]
    Body { url: String, message: String },
    #[error(
        "{url}: the answer is over {limit} bytes ({why}); a server that legitimately answers \
         more can be allowed with --max-response-mb"
    )]
    TooLarge {
        url: String,
        limit: usize,
        why: String,
    },
}

/// A URL without any `user:password@` part, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s && !url[s + 3..at].contains('/') => {
            format!("{}://<credentials>@{}", &url[..s], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

pub struct Client {
    agent: ureq::Agent,
    opts: ClientOptions,
}

/// What one attempt came to.
enum Attempt {
    Done(Value),
    Retry(String),
    Fail(ClientError),
}

impl Client {
    pub fn new(opts: ClientOptions) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(opts.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Self { agent, opts }
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// The same connection pool with another retry budget (short for probing requests).
    pub fn with_retry_budget(&self, retries: u32) -> Self {
        Self {
            agent: self.agent.clone(),
            opts: ClientOptions {
                retries,
                ..self.opts.clone()
            },
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.opts.base_url.trim_end_matches('/'), path)
    }

    /// GET `path` (relative to the base URL), JSON back (at most [`DEFAULT_ANSWER_LIMIT`]).
    pub fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        let limit = self.answer_limit(DEFAULT_ANSWER_LIMIT, "the default for small requests");
        self.with_retries(path, limit, |url, timeout| {
            self.prepared(self.agent.get(url), timeout).call()
        })
    }

    /// POST a JSON body to `path`, JSON back (at most [`DEFAULT_ANSWER_LIMIT`]).
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.post_json_bounded(
            path,
            body,
            DEFAULT_ANSWER_LIMIT,
            "the default for small requests",
        )
    }

    /// POST a JSON body to `path`, reading at most `limit` bytes of the answer (`why` says
    /// where the limit comes from); `--max-response-mb` replaces `limit` when given.
    pub fn post_json_bounded(
        &self,
        path: &str,
        body: &Value,
        limit: usize,
        why: &str,
    ) -> Result<Value, ClientError> {
        let limit = self.answer_limit(limit, why);
        self.with_retries(path, limit, |url, timeout| {
            self.prepared(self.agent.post(url), timeout).send_json(body)
        })
    }

    /// A request with this attempt's timeout and the API key, whatever its method.
    fn prepared<B>(
        &self,
        request: ureq::RequestBuilder<B>,
        timeout: Duration,
    ) -> ureq::RequestBuilder<B> {
        let request = request.config().timeout_global(Some(timeout)).build();
        match &self.opts.api_key {
            Some(k) => request.header("Authorization", &format!("Bearer {k}")),
            None => request,
        }
    }

    /// The bound on an answer: `--max-response-mb` when given, else `derived`.
    fn answer_limit(&self, derived: usize, why: &str) -> (usize, String) {
        match self.opts.max_answer_bytes {
            Some(n) => (n, "--max-response-mb".into()),
            None => (derived, why.to_string()),
        }
    }

    fn with_retries(
        &self,
        path: &str,
        limit: (usize, String),
        send: impl Fn(&str, Duration) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ClientError> {
        let url = self.url(path);
        let shown = redact_url(&url);
        let started = Instant::now();
        // One full attempt always fits, whatever the total.
        let total = self.opts.total_timeout.max(self.opts.timeout);
        let mut wait = self.opts.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let left = total.saturating_sub(started.elapsed());
            let outcome = match send(&url, self.opts.timeout.min(left)) {
                Ok(resp) => self.read(resp, &shown, &limit),
                Err(e) => Attempt::Retry(e.to_string()),
            };
            let why = match outcome {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(why) => why,
            };
            let out_of_time = started.elapsed() + wait >= total;
            if attempt > self.opts.retries || out_of_time {
                return Err(ClientError::Transport {
                    url: shown,
                    message: why,
                    attempts: attempt,
                    budget: if out_of_time && attempt <= self.opts.retries {
                        format!(
                            " in {:.0}s: one request may take at most {:.0}s, retries included \
                             (--total-timeout)",
                            started.elapsed().as_secs_f64(),
                            total.as_secs_f64()
                        )
                    } else {
                        String::new()
                    },
                });
            }
            tracing::warn!(url = %shown, attempt, "retrying in {:.1}s: {why}", wait.as_secs_f64());
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }

    fn read(
        &self,
        mut resp: ureq::http::Response<ureq::Body>,
        shown: &str,
        (limit, why): &(usize, String),
    ) -> Attempt {
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(*limit as u64)
            .read_to_string();
        let body = match body {
            Ok(b) => b,
            // Asking again would bring the same answer: a fault of the server, not of the line.
            Err(ureq::Error::BodyExceedsLimit(_)) => {
                return Attempt::Fail(ClientError::TooLarge {
                    url: shown.to_string(),
                    limit: *limit,
                    why: why.clone(),
                })
            }
            Err(e) => return Attempt::Retry(format!("reading the answer: {e}")),
        };
        if status == 429 || status >= 500 {
            let msg = self.server_text(&error_message(&body).unwrap_or(body));
            return Attempt::Retry(format!("HTTP {status}: {msg}"));
        }
        if !(200..300).contains(&status) {
            return Attempt::Fail(ClientError::Status {
                url: shown.to_string(),
                status,
                message: self.server_text(&error_message(&body).unwrap_or(body)),
            });
        }
        match serde_json::from_str(&body) {
            Ok(v) => Attempt::Done(v),
            Err(e) => Attempt::Fail(ClientError::Body {
                url: shown.to_string(),
                message: format!("{e}; starts with {:?}", self.server_text(&body)),
            }),
        }
    }

    /// A server's text as errors and logs show it: its start on one line, with the API key
    /// blanked out (a server may echo the request's `Authorization` header in its error).
    fn server_text(&self, body: &str) -> String {
        let text = snippet(body);
        match self.opts.api_key.as_deref() {
            Some(key) if !key.is_empty() => text.replace(key, "<api-key>"),
            _ => text,
        }
    }
}

/// The start of a server's message on one line: some servers answer with pages of detail.
fn snippet(body: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s: String = one_line.chars().take(300).collect();
    if one_line.chars().count() > 300 {
        s.push_str(" ...");
    }
    if s.is_empty() {
        "(empty body)".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echoed_api_key_is_blanked_out() {
        let client = Client::new(ClientOptions {
            base_url: "http://h".into(),
            api_key: Some("sk-secret".into()),
            timeout: Duration::from_secs(1),
            retries: 0,
            backoff: Duration::from_millis(1),
            total_timeout: Duration::from_secs(1),
            max_answer_bytes: None,
        });
        let shown =
            client.server_text("401: bad header Authorization: Bearer sk-secret (sk-secret)");
        assert_eq!(
            shown,
            "401: bad header Authorization: Bearer <api-key> (<api-key>)"
        );
        let open = Client::new(ClientOptions {
            api_key: None,
            ..client.options().clone()
        });
        assert_eq!(open.server_text("a  b"), "a b");
    }

    #[test]
    fn credentials_are_not_shown() {
        assert_eq!(
            redact_url("https://user:secret@host:8000/v1"),
            "https://<credentials>@host:8000/v1"
        );
        assert_eq!(redact_url("http://host/v1"), "http://host/v1");
        assert_eq!(redact_url("http://host/a@b"), "http://host/a@b");
        let o = ClientOptions {
            base_url: "http://u:p@h".into(),
            api_key: Some("sk-secret".into()),
            timeout: Duration::from_secs(1),
            retries: 0,
            backoff: Duration::from_millis(1),
            total_timeout: Duration::from_secs(1),
            max_answer_bytes: None,
        };
        let shown = format!("{o:?}");
        assert!(
            !shown.contains("sk-secret") && !shown.contains(":p@"),
            "{shown}"
        );
    }
}
