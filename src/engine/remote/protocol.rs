//! The two forms of OpenAI-compatible `/v1/completions` that return log-probabilities of prompt
//! tokens, as JSON in and a neutral per-position form out. Pure: no I/O.
//!
//! - **prompt-logprobs** (vLLM): `"prompt_logprobs": k` gives, per prompt position after the
//!   first, an object `{ "<token id>": {"logprob", "rank", "decoded_token"} }` holding the top k
//!   and always the prompt token itself, with its full-vocabulary rank.
//! - **echo** (the legacy OpenAI form; vLLM, llama-cpp-python): `"echo": true, "logprobs": k`
//!   gives `logprobs.tokens`, `token_logprobs`, `top_logprobs` (keyed by token *text*) and
//!   `text_offset` for the prompt followed by any generated tokens.

use serde_json::{json, Map, Value};

/// Which request form a server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    PromptLogprobs,
    Echo,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::PromptLogprobs => "prompt-logprobs",
            Protocol::Echo => "echo",
        })
    }
}

/// What is sent as the prompt: token ids (exact; vLLM) or text the server tokenizes itself
/// (llama-cpp-python accepts only text), checked against hesnr's own tokenization.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt<'a> {
    Ids(&'a [u32]),
    Text(&'a str),
}

/// A token as a server names it: by id (prompt-logprobs) or by text (echo).
#[derive(Debug, Clone, PartialEq)]
pub enum ServerToken {
    Id(u32),
    Text(String),
}

/// One prompt position as the server reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerPosition {
    /// The prompt token at this position, if the server says which it is.
    pub token: Option<ServerToken>,
    /// log p(token | prefix); `None` for the first position.
    pub logprob: Option<f64>,
    /// The token's rank in the full vocabulary (1 = most probable), when the server gives it.
    pub rank: Option<u32>,
    /// The most probable tokens, sorted by log-probability, highest first.
    pub top: Vec<(ServerToken, f64)>,
    /// Character offset of the token in the prompt text (echo form).
    pub text_offset: Option<usize>,
}

/// The request body for scoring `prompt` with the top `k` log-probabilities per position.
pub fn request_body(protocol: Protocol, model: &str, prompt: &Prompt, k: usize) -> Value {
    let prompt = match prompt {
        Prompt::Ids(ids) => json!(ids),
        Prompt::Text(t) => json!(t),
    };
    let mut body = json!({
        "model": model,
        "prompt": prompt,
        "max_tokens": 1,
        "temperature": 0.0,
    });
    let m = body.as_object_mut().expect("object");
    match protocol {
        Protocol::PromptLogprobs => {
            m.insert("prompt_logprobs".into(), json!(k));
        }
        Protocol::Echo => {
            m.insert("echo".into(), json!(true));
            m.insert("logprobs".into(), json!(k));
        }
    }
    body
}

/// Why a response could not be read at all (before any consistency check).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn perr(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

fn first_choice(resp: &Value) -> Result<&Map<String, Value>, ParseError> {
    resp.get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(Value::as_object)
        .ok_or_else(|| perr("response has no `choices[0]` object"))
}

/// JSON numbers, and the strings some servers write for non-finite values.
fn as_logprob(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
            "nan" | "NaN" => Some(f64::NAN),
            _ => None,
        },
        _ => None,
    }
}

fn sort_top(top: &mut [(ServerToken, f64)]) {
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
}

/// Reads vLLM's `prompt_logprobs`. `prompt_ids` are hesnr's ids of the prompt (the position's
/// own token is the entry with that id); `prompt_token_ids` in the answer, when a server sends
/// them, take precedence, so that a different tokenization shows up as misalignment.
///
/// Returns `Ok(None)` when the field is absent: the server ignored the parameter.
pub fn parse_prompt_logprobs(
    resp: &Value,
    prompt_ids: Option<&[u32]>,
    k: usize,
) -> Result<Option<Vec<ServerPosition>>, ParseError> {
    let choice = first_choice(resp)?;
    let Some(list) = choice
        .get("prompt_logprobs")
        .or_else(|| resp.get("prompt_logprobs"))
        .filter(|v| !v.is_null())
    else {
        return Ok(None);
    };
    let list = list
        .as_array()
        .ok_or_else(|| perr("`prompt_logprobs` is not a list"))?;
    let echoed_ids: Option<Vec<u32>> = choice
        .get("prompt_token_ids")
        .or_else(|| resp.get("prompt_token_ids"))
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .map(|v| v.as_u64().map(|x| x as u32))
                .collect::<Option<Vec<u32>>>()
        });
    let ids = echoed_ids.as_deref().or(prompt_ids);
    let mut out = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let own = ids.and_then(|ids| ids.get(i)).copied();
        if entry.is_null() {
            out.push(ServerPosition {
                token: own.map(ServerToken::Id),
                logprob: None,
                rank: None,
                top: Vec::new(),
                text_offset: None,
            });
            continue;
        }
        let obj = entry
            .as_object()
            .ok_or_else(|| perr(format!("`prompt_logprobs[{i}]` is not an object")))?;
        let mut cands: Vec<(u32, f64, Option<u32>)> = Vec::with_capacity(obj.len());
        for (key, v) in obj {
            let id: u32 = key.parse().map_err(|_| {
                perr(format!(
                    "`prompt_logprobs[{i}]` has key {key:?}, not a token id"
                ))
            })?;
            let lp = v
                .get("logprob")
                .and_then(as_logprob)
                .ok_or_else(|| perr(format!("`prompt_logprobs[{i}][{key}].logprob` missing")))?;
            let rank = v.get("rank").and_then(Value::as_u64).map(|r| r as u32);
            cands.push((id, lp, rank));
        }
        let own_entry = own.and_then(|id| cands.iter().find(|c| c.0 == id).copied());
        // The top k: by rank where given (the prompt token may be an extra entry beyond k).
        let mut top: Vec<(ServerToken, f64)> = cands
            .iter()
            .filter(|c| c.2.is_none_or(|r| r as usize <= k))
            .map(|c| (ServerToken::Id(c.0), c.1))
            .collect();
        sort_top(&mut top);
        top.truncate(k);
        out.push(ServerPosition {
            token: own.map(ServerToken::Id),
            logprob: own_entry.map(|c| c.1),
            rank: own_entry.and_then(|c| c.2),
            top,
            text_offset: None,
        });
    }
    Ok(Some(out))
}

/// Reads the echo form's `logprobs` for the first `n_prompt` positions (generated tokens after
/// them are dropped). Returns `Ok(None)` when the server sent no `logprobs`.
pub fn parse_echo(resp: &Value, k: usize) -> Result<Option<Vec<ServerPosition>>, ParseError> {
    let choice = first_choice(resp)?;
    let Some(lp) = choice.get("logprobs").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let field = |name: &str| {
        lp.get(name)
            .and_then(Value::as_array)
            .ok_or_else(|| perr(format!("`logprobs.{name}` is missing or not a list")))
    };
    let tokens = field("tokens")?;
    let token_logprobs = field("token_logprobs")?;
    let top_logprobs = field("top_logprobs")?;
    let offsets = lp.get("text_offset").and_then(Value::as_array);
    if token_logprobs.len() != tokens.len() || top_logprobs.len() != tokens.len() {
        return Err(perr(format!(
            "`logprobs` lists differ in length: {} tokens, {} token_logprobs, {} top_logprobs",
            tokens.len(),
            token_logprobs.len(),
            top_logprobs.len()
        )));
    }
    let mut out = Vec::with_capacity(tokens.len());
    for i in 0..tokens.len() {
        let text = tokens[i]
            .as_str()
            .ok_or_else(|| perr(format!("`logprobs.tokens[{i}]` is not a string")))?;
        let mut top: Vec<(ServerToken, f64)> = match &top_logprobs[i] {
            Value::Null => Vec::new(),
            Value::Object(m) => m
                .iter()
                .map(|(t, v)| {
                    as_logprob(v)
                        .map(|lp| (ServerToken::Text(t.clone()), lp))
                        .ok_or_else(|| perr(format!("`logprobs.top_logprobs[{i}][{t:?}]`")))
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(perr(format!(
                    "`logprobs.top_logprobs[{i}]` is not an object"
                )))
            }
        };
        sort_top(&mut top);
        top.truncate(k);
        out.push(ServerPosition {
            token: Some(ServerToken::Text(text.to_string())),
            logprob: as_logprob(&token_logprobs[i]),
            rank: None,
            top,
            text_offset: offsets
                .and_then(|o| o.get(i))
                .and_then(Value::as_u64)
                .map(|o| o as usize),
        });
    }
    Ok(Some(out))
}

/// The message of an OpenAI-style error body (`{"error": {"message": ...}}`), if there is one.
pub fn error_message(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let e = v.get("error").unwrap_or(&v);
    e.get("message")
        .or_else(|| e.get("detail"))
        .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_the_right_parameters() {
        let b = request_body(Protocol::PromptLogprobs, "m", &Prompt::Ids(&[1, 2]), 10);
        assert_eq!(b["prompt"], json!([1, 2]));
        assert_eq!(b["prompt_logprobs"], json!(10));
        assert!(b.get("echo").is_none());
        let b = request_body(Protocol::Echo, "m", &Prompt::Text("hi"), 5);
        assert_eq!(b["prompt"], json!("hi"));
        assert_eq!(b["echo"], json!(true));
        assert_eq!(b["logprobs"], json!(5));
    }

    #[test]
    fn reads_vllm_prompt_logprobs_with_an_extra_true_token() {
        let resp = json!({"choices": [{"text": "", "prompt_logprobs": [
            null,
            {"7": {"logprob": -0.1, "rank": 1, "decoded_token": "a"},
             "9": {"logprob": -2.5, "rank": 2, "decoded_token": "b"}},
            {"4": {"logprob": -0.5, "rank": 1}, "3": {"logprob": -1.5, "rank": 2},
             "8": {"logprob": -6.0, "rank": 40}}
        ]}]});
        let p = parse_prompt_logprobs(&resp, Some(&[5, 9, 8]), 2)
            .unwrap()
            .unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].logprob, None);
        assert_eq!(p[1].logprob, Some(-2.5));
        assert_eq!(p[1].rank, Some(2));
        assert_eq!(
            p[1].top,
            vec![(ServerToken::Id(7), -0.1), (ServerToken::Id(9), -2.5)]
        );
        // The prompt token (rank 40) is reported but is not part of the top 2.
        assert_eq!(p[2].logprob, Some(-6.0));
        assert_eq!(p[2].rank, Some(40));
        assert_eq!(p[2].top.len(), 2);
        assert_eq!(p[2].top[0], (ServerToken::Id(4), -0.5));
    }

    #[test]
    fn absent_field_means_unsupported() {
        let resp = json!({"choices": [{"text": "x"}]});
        assert_eq!(parse_prompt_logprobs(&resp, None, 10).unwrap(), None);
        assert_eq!(parse_echo(&resp, 10).unwrap(), None);
        assert!(parse_echo(&json!({}), 10).is_err());
    }

    #[test]
    fn reads_the_echo_form() {
        let resp = json!({"choices": [{"logprobs": {
            "tokens": ["def", " f"],
            "token_logprobs": [null, -1.25],
            "top_logprobs": [null, {" g": -0.5, " f": -1.25}],
            "text_offset": [0, 3]
        }}]});
        let p = parse_echo(&resp, 10).unwrap().unwrap();
        assert_eq!(p[0].logprob, None);
        assert!(p[0].top.is_empty());
        assert_eq!(p[1].token, Some(ServerToken::Text(" f".into())));
        assert_eq!(p[1].top[0], (ServerToken::Text(" g".into()), -0.5));
        assert_eq!(p[1].text_offset, Some(3));
    }

    #[test]
    fn echo_lists_of_unequal_length_are_refused() {
        let resp = json!({"choices": [{"logprobs": {
            "tokens": ["a", "b"], "token_logprobs": [null], "top_logprobs": [null, null]
        }}]});
        assert!(parse_echo(&resp, 10)
            .unwrap_err()
            .0
            .contains("differ in length"));
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_message(r#"{"error": {"message": "too long", "type": "x"}}"#).as_deref(),
            Some("too long")
        );
        assert_eq!(
            error_message(r#"{"detail": "nope"}"#).as_deref(),
            Some("nope")
        );
        assert_eq!(error_message("<html>"), None);
    }
}
