//! Renders a trajectory whole with the model's own chat template, and keeps for every byte of the
//! rendered text the segment it came from.
//!
//! How the provenance is kept: the template is rendered twice, once with each message's content
//! replaced by a unique placeholder and once with the real contents. Putting the real contents in
//! place of the placeholders must give exactly the second rendering; then every segment's bytes
//! are known. Templates that transform content (`message['content'] | trim`) are recognised by
//! trying the trimmed content too; a template that changes content in any other way is an error,
//! never a silently misplaced mask.

use std::ops::Range;
use std::path::Path;

use minijinja::{Environment, ErrorKind, Value as JValue};

use super::template_worker::{TemplateMessage, Worker};
use super::{SegmentKind, Trajectory};
use crate::data::open::MAX_RECORD_BYTES;

/// ChatML, what SmolLM2, Qwen and many others use; the fallback for models without a template.
pub const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// The date `strftime_now` returns, so that renderings (and scores) are reproducible; it is the
/// date Hugging Face's Llama 3 templates fall back to.
const FIXED_DATE: &str = "26 Jul 2024";

const PLACEHOLDER_OPEN: char = '\u{F8F0}';
const PLACEHOLDER_CLOSE: char = '\u{F8F1}';

/// Why a trajectory could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("chat template {origin}: {message}")]
    Template { origin: String, message: String },
    #[error("chat template {origin} changes message content in a way that cannot be mapped back (message {message}); use --chat-template chatml or a template that inserts content verbatim")]
    ContentTransformed { origin: String, message: usize },
    #[error("chat template {origin} drops or repeats message {message}")]
    ContentMissing { origin: String, message: usize },
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

/// Which chat template renders trajectories (`--chat-template`): the model's own, ChatML, or a
/// file (Jinja, or a Hugging Face `tokenizer_config.json` or its folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateChoice {
    Model,
    ChatMl,
    File(std::path::PathBuf),
}

impl std::str::FromStr for TemplateChoice {
    type Err = std::convert::Infallible;

    /// `model`, `chatml`, or else a path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "model" => Self::Model,
            "chatml" => Self::ChatMl,
            path => Self::File(path.into()),
        })
    }
}

impl std::fmt::Display for TemplateChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Model => f.write_str("model"),
            Self::ChatMl => f.write_str("chatml"),
            Self::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A compiled chat template and the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// The process that renders this template when the binary runs templates in a worker
    /// (see [`super::template_worker`]); `None` renders here.
    worker: Option<Worker>,
    /// Where the template came from (`model`, `chatml`, a file path), for messages.
    pub origin: String,
    pub source: String,
    pub bos_token: String,
    pub eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles a Jinja chat template the way Hugging Face's `apply_chat_template` runs it
    /// (`trim_blocks`, `lstrip_blocks`, Python string methods, `raise_exception`).
    pub fn new(
        source: &str,
        origin: &str,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<Self, RenderError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // A template comes from a model file or the user: it must not run forever.
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", |_format: String| FIXED_DATE.to_string());
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| RenderError::Template {
                origin: origin.to_string(),
                message: format!("does not compile: {e:#}"),
            })?;
        Ok(Self {
            env,
            worker: Worker::for_template(source, bos_token, eos_token),
            origin: origin.to_string(),
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// ChatML with the given special tokens. It is hesnr's own template, so it always renders
    /// in process.
    pub fn chatml() -> Self {
        let mut chatml = Self::new(CHATML, "chatml", "", "<|im_end|>").expect("ChatML compiles");
        chatml.worker = None;
        chatml
    }

    /// A template from a file: a Jinja file, or a Hugging Face `tokenizer_config.json` (its
    /// `chat_template`, a string or a list of named templates of which `default` is used, and
    /// its `bos_token` / `eos_token`). A directory means its `tokenizer_config.json`.
    pub fn from_file(path: &Path) -> Result<Self, RenderError> {
        let path = if path.is_dir() {
            path.join("tokenizer_config.json")
        } else {
            path.to_path_buf()
        };
        let file_err = |message: String| RenderError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| file_err(e.to_string()))?;
        let origin = path.display().to_string();
        let is_json = path.extension().is_some_and(|e| e == "json");
        if !is_json {
            return Self::new(&text, &origin, "", "");
        }
        let config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| file_err(format!("invalid JSON: {e}")))?;
        let template = match config.get("chat_template") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(named)) => named
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .ok_or_else(|| {
                    file_err("field 'chat_template': no template named 'default'".into())
                })?
                .to_string(),
            Some(_) => {
                return Err(file_err(
                    "field 'chat_template': expected a string or a list of {name, template}".into(),
                ))
            }
            None => return Err(file_err("no field 'chat_template'".into())),
        };
        // Special tokens are strings, or objects with a `content` field.
        let token = |key: &str| match config.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v
                .get("content")
                .and_then(|c| c.as_str())
                .unwrap_or_default()
                .to_string(),
            None => String::new(),
        };
        Self::new(&template, &origin, &token("bos_token"), &token("eos_token"))
    }

    fn render_contents(
        &self,
        traj: &Trajectory,
        contents: &[String],
    ) -> Result<String, RenderError> {
        let messages: Vec<TemplateMessage> = traj
            .messages
            .iter()
            .zip(contents)
            .map(|(m, c)| TemplateMessage {
                role: m.role.as_str().to_string(),
                content: c.clone(),
            })
            .collect();
        let rendered = match &self.worker {
            Some(worker) => worker.render(&messages),
            None => self.render_here(&messages),
        };
        rendered.map_err(|message| RenderError::Template {
            origin: self.origin.clone(),
            message: format!("failed to render: {message}"),
        })
    }

    /// Renders in this process; `Err` says why rendering failed (also what a template worker
    /// answers, so the message is the same wherever the template ran).
    pub(super) fn render_here(&self, messages: &[TemplateMessage]) -> Result<String, String> {
        let messages: Vec<JValue> = messages
            .iter()
            .map(|m| {
                JValue::from_serialize(serde_json::json!({"role": m.role, "content": m.content}))
            })
            .collect();
        let template = self.env.get_template("chat").expect("added in new()");
        let mut out = BoundedOutput {
            bytes: Vec::new(),
            limit: MAX_RECORD_BYTES,
        };
        template
            .render_captured_to(
                minijinja::context! {
                    messages => messages,
                    add_generation_prompt => false,
                    bos_token => self.bos_token.as_str(),
                    eos_token => self.eos_token.as_str(),
                },
                &mut out,
            )
            .map_err(|e| match e.kind() {
                ErrorKind::OutOfFuel => format!(
                    "it ran over {TEMPLATE_FUEL} instructions (a template that loops without end?)"
                ),
                ErrorKind::WriteFailure => {
                    format!("its output grew over {} MiB", MAX_RECORD_BYTES >> 20)
                }
                _ => format!("{e:#}"),
            })?;
        String::from_utf8(out.bytes).map_err(|e| e.to_string())
    }
}

/// Instructions one rendering of a chat template may run: thousands of times what a real
/// template needs for the longest trajectory, and a few seconds of work; a template that loops
/// without end (nested `range(100000)`) stops with an error instead of taking the machine.
pub const TEMPLATE_FUEL: u64 = 100_000_000;

/// The rendered text, refused past `limit` bytes.
struct BoundedOutput {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for BoundedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("rendered text over the limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where one segment landed in the rendered text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSpan {
    /// Byte range in [`Rendered::text`]; it holds the segment's text, possibly trimmed by the
    /// template (see `offset`).
    pub range: Range<usize>,
    pub message: usize,
    pub segment: usize,
    pub kind: SegmentKind,
    /// Byte offset in the segment's own text of the first byte in `range` (non-zero when the
    /// template trimmed leading whitespace of the message).
    pub offset: usize,
}

/// A trajectory rendered whole, with its segments' places.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    /// In rendering order; non-overlapping; bytes in no span are template text.
    pub spans: Vec<SegmentSpan>,
}

impl Rendered {
    /// The kind of segment every byte came from (`None` for template text).
    pub fn byte_kinds(&self) -> Vec<Option<SegmentKind>> {
        let mut kinds = vec![None; self.text.len()];
        for s in &self.spans {
            kinds[s.range.clone()].fill(Some(s.kind));
        }
        kinds
    }
}

/// Renders a trajectory and locates each of its segments in the result.
pub fn render(traj: &Trajectory, template: &ChatTemplate) -> Result<Rendered, RenderError> {
    let contents: Vec<String> = traj.messages.iter().map(|m| m.content()).collect();
    let placeholders: Vec<String> = (0..contents.len())
        .map(|i| format!("{PLACEHOLDER_OPEN}{i}{PLACEHOLDER_CLOSE}"))
        .collect();
    let skeleton = template.render_contents(traj, &placeholders)?;
    let real = template.render_contents(traj, &contents)?;

    // Split the skeleton at the placeholders, which must appear once each, in order.
    let mut literal: Vec<&str> = Vec::with_capacity(contents.len() + 1);
    let mut rest = skeleton.as_str();
    for (i, p) in placeholders.iter().enumerate() {
        let at = rest
            .find(p.as_str())
            .ok_or_else(|| RenderError::ContentMissing {
                origin: template.origin.clone(),
                message: i,
            })?;
        literal.push(&rest[..at]);
        rest = &rest[at + p.len()..];
    }
    literal.push(rest);
    if let Some(i) = literal.iter().position(|l| l.contains(PLACEHOLDER_OPEN)) {
        return Err(RenderError::ContentMissing {
            origin: template.origin.clone(),
            message: i.saturating_sub(1),
        });
    }

    // Walk the real rendering: template text from the skeleton, then each content as inserted.
    let transformed = |message: usize| RenderError::ContentTransformed {
        origin: template.origin.clone(),
        message,
    };
    let mut pos = 0usize;
    let mut spans = Vec::new();
    for (i, content) in contents.iter().enumerate() {
        pos += literal[i].len();
        if real.get(pos - literal[i].len()..pos) != Some(literal[i]) {
            return Err(transformed(i));
        }
        let (inserted, lead) =
            match_inserted(&real[pos..], content, literal[i + 1]).ok_or_else(|| transformed(i))?;
        // Segments of message i, shifted by what the template trimmed at the front.
        let mut seg_start = 0usize;
        for (j, seg) in traj.messages[i].segments.iter().enumerate() {
            let seg_end = seg_start + seg.text.len();
            let lo = seg_start.max(lead);
            let hi = seg_end.min(lead + inserted.len());
            if lo < hi {
                spans.push(SegmentSpan {
                    range: pos + lo - lead..pos + hi - lead,
                    message: i,
                    segment: j,
                    kind: seg.kind,
                    offset: lo - seg_start,
                });
            }
            seg_start = seg_end;
        }
        pos += inserted.len();
    }
    if real.get(pos..) != Some(literal[contents.len()]) {
        return Err(transformed(contents.len().saturating_sub(1)));
    }
    let text = real;
    Ok(Rendered { text, spans })
}

/// What the template inserted for `content` at the start of `real`: the content verbatim, or
/// trimmed (both ends, start only, end only), as long as the template text that follows
/// (`next_literal`, up to the next placeholder) comes right after it. Returns the inserted text
/// and how many bytes were trimmed from the front.
fn match_inserted<'a>(
    real: &'a str,
    content: &str,
    next_literal: &str,
) -> Option<(&'a str, usize)> {
    let candidates = [
        (content, 0),
        (content.trim(), content.len() - content.trim_start().len()),
        (
            content.trim_start(),
            content.len() - content.trim_start().len(),
        ),
        (content.trim_end(), 0),
    ];
    candidates.into_iter().find_map(|(c, lead)| {
        let after = real.strip_prefix(c)?;
        after
            .starts_with(next_literal)
            .then(|| (&real[..c.len()], lead))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::trajectory::{Message, Role, Segment};

    fn traj(messages: Vec<Message>) -> Trajectory {
        Trajectory {
            id: "t".into(),
            source: "test".into(),
            line: 0,
            format: "chat",
            messages,
            metadata: None,
            warnings: Vec::new(),
        }
    }

    fn sample() -> Trajectory {
        traj(vec![
            Message {
                role: Role::User,
                segments: vec![Segment::plain(SegmentKind::Prompt, "Fix the bug.")],
            },
            Message {
                role: Role::Assistant,
                segments: vec![
                    Segment::plain(SegmentKind::Thought, "  Look first.\n"),
                    Segment::plain(SegmentKind::Action, "ls -la\n"),
                ],
            },
            Message {
                role: Role::Tool,
                segments: vec![Segment::plain(SegmentKind::Observation, "a.py\nb.py")],
            },
        ])
    }

    fn span_texts(r: &Rendered) -> Vec<(SegmentKind, &str)> {
        r.spans
            .iter()
            .map(|s| (s.kind, &r.text[s.range.clone()]))
            .collect()
    }

    /// A template that loops without end stops with an error naming the limit (nested
    /// `range(100000)` loops used to grow to gigabytes); so does one whose output explodes.
    #[test]
    fn runaway_templates_stop_with_an_error() {
        let looping =
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let t = ChatTemplate::new(looping, "hostile", "", "").unwrap();
        let e = render(&sample(), &t).unwrap_err().to_string();
        assert!(e.contains("hostile") && e.contains("instructions"), "{e}");

        use std::io::Write;
        let mut out = BoundedOutput {
            bytes: Vec::new(),
            limit: 10,
        };
        assert!(out.write(b"0123456789").is_ok() && out.write(b"x").is_err());
        assert_eq!(out.bytes, b"0123456789");
    }

    #[test]
    fn chatml_keeps_every_segment_in_place() {
        let r = render(&sample(), &ChatTemplate::chatml()).unwrap();
        assert_eq!(
            r.text,
            "<|im_start|>user\nFix the bug.<|im_end|>\n<|im_start|>assistant\n  Look first.\nls -la\n<|im_end|>\n<|im_start|>tool\na.py\nb.py<|im_end|>\n"
        );
        assert_eq!(
            span_texts(&r),
            vec![
                (SegmentKind::Prompt, "Fix the bug."),
                (SegmentKind::Thought, "  Look first.\n"),
                (SegmentKind::Action, "ls -la\n"),
                (SegmentKind::Observation, "a.py\nb.py"),
            ]
        );
        assert!(r.spans.iter().all(|s| s.offset == 0));
    }

    #[test]
    fn trimming_templates_are_mapped_with_offsets() {
        // Hugging Face style: trim_blocks, content | trim, a system prompt added when absent.
        let src = "{% for message in messages %}\n{% if loop.first and messages[0]['role'] != 'system' %}<s>[SYS]default[/SYS]{% endif %}\n[{{ message['role'] | upper }}] {{ message['content'] | trim }}\n{% endfor %}";
        let t = ChatTemplate::new(src, "test", "<s>", "</s>").unwrap();
        let r = render(&sample(), &t).unwrap();
        assert_eq!(
            r.text,
            "<s>[SYS]default[/SYS][USER] Fix the bug.\n[ASSISTANT] Look first.\nls -la\n[TOOL] a.py\nb.py\n"
        );
        let texts = span_texts(&r);
        assert_eq!(texts[1], (SegmentKind::Thought, "Look first.\n"));
        assert_eq!(texts[2], (SegmentKind::Action, "ls -la"));
        assert_eq!(r.spans[1].offset, 2);
    }

    #[test]
    fn python_methods_and_raise_exception_work() {
        let src = "{% for m in messages %}{% if m.role not in ['user', 'assistant', 'tool'] %}{{ raise_exception('bad role ' + m.role) }}{% endif %}{{ m.role.upper() }}:{{ m.content }};{% endfor %}";
        let t = ChatTemplate::new(src, "test", "", "").unwrap();
        let r = render(&sample(), &t).unwrap();
        assert!(r.text.starts_with("USER:Fix the bug.;"));
        let mut bad = sample();
        bad.messages[0].role = Role::System;
        let err = render(&bad, &t).unwrap_err().to_string();
        assert!(err.contains("bad role system"), "{err}");
    }

    #[test]
    fn content_changing_templates_are_refused() {
        let src = "{% for m in messages %}{{ m.content | replace('ls', 'dir') }}|{% endfor %}";
        let t = ChatTemplate::new(src, "test", "", "").unwrap();
        let err = render(&sample(), &t).unwrap_err();
        assert!(
            matches!(err, RenderError::ContentTransformed { message: 1, .. }),
            "{err}"
        );
        let dropping = ChatTemplate::new("{{ messages[0].content }}", "test", "", "").unwrap();
        assert!(matches!(
            render(&sample(), &dropping).unwrap_err(),
            RenderError::ContentMissing { message: 1, .. }
        ));
    }

    #[test]
    fn broken_templates_fail_clearly() {
        let err = ChatTemplate::new("{% for m in messages %}", "model", "", "").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("chat template model: does not compile"),
            "{err}"
        );
    }

    #[test]
    fn templates_from_tokenizer_config() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer_config.json");
        std::fs::write(
            &p,
            r#"{"chat_template": [{"name": "default", "template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"}], "bos_token": {"content": "<s>"}, "eos_token": "</s>"}"#,
        )
        .unwrap();
        let t = ChatTemplate::from_file(dir.path()).unwrap();
        assert_eq!(t.bos_token, "<s>");
        assert_eq!(t.eos_token, "</s>");
        let r = render(&sample(), &t).unwrap();
        assert!(r.text.starts_with("<s>Fix the bug."));
        std::fs::write(&p, r#"{"bos_token": "<s>"}"#).unwrap();
        let err = ChatTemplate::from_file(&p).unwrap_err().to_string();
        assert!(err.contains("no field 'chat_template'"), "{err}");
    }
}
