//! HTTP to one server: JSON in and out, timeouts, and retries with backoff for the failures a
//! fleet has (429, 5xx, a connection refused while a server restarts, a request that hangs).
//! The API key goes in a header and nowhere else: never in errors, logs or outputs.

use std::time::Duration;

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
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("base_url", &redact_url(&self.base_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
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
    #[error("{url}: {message} (after {attempts} attempts)")]
    Transport {
        url: String,
        message: String,
        attempts: u32,
    },
    #[error("{url}: the answer is not JSON: {message}")]
    Body { url: String, message: String },
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

    /// GET `path` (relative to the base URL), JSON back.
    pub fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        self.with_retries(path, |url| {
            let mut req = self.agent.get(url);
            if let Some(k) = &self.opts.api_key {
                req = req.header("Authorization", &format!("Bearer {k}"));
            }
            req.call()
        })
    }

    /// POST a JSON body to `path`, JSON back.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.with_retries(path, |url| {
            let mut req = self.agent.post(url);
            if let Some(k) = &self.opts.api_key {
                req = req.header("Authorization", &format!("Bearer {k}"));
            }
            req.send_json(body)
        })
    }

    fn with_retries(
        &self,
        path: &str,
        send: impl Fn(&str) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ClientError> {
        let url = self.url(path);
        let shown = redact_url(&url);
        let mut wait = self.opts.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = match send(&url) {
                Ok(resp) => self.read(resp, &shown),
                Err(e) => Attempt::Retry(e.to_string()),
            };
            match outcome {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(why) if attempt > self.opts.retries => {
                    return Err(ClientError::Transport {
                        url: shown,
                        message: why,
                        attempts: attempt,
                    })
                }
                Attempt::Retry(why) => {
                    tracing::warn!(url = %shown, attempt, "retrying in {:.1}s: {why}", wait.as_secs_f64());
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    fn read(&self, mut resp: ureq::http::Response<ureq::Body>, shown: &str) -> Attempt {
        let status = resp.status().as_u16();
        // Prompt log-probabilities of a long window run to megabytes.
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string();
        let body = match body {
            Ok(b) => b,
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
        };
        let shown = format!("{o:?}");
        assert!(
            !shown.contains("sk-secret") && !shown.contains(":p@"),
            "{shown}"
        );
    }
}
