//! Actions as text: structured tool calls rendered the way agents write them (OpenHands /
//! SWE-agent XML function calls), SWE-agent command strings, and the actions found inside an
//! assistant's free text, each annotated with its tool-call markup and its code regions.
//!
//! Everything here returns [`Segment`]s whose `markup` and `code` ranges index the segment's own
//! text; [`super::clean`] uses them to drop tags and comments.

use std::ops::Range;

use serde_json::{Map, Value};

use super::{CodeRegion, Lang, Segment, SegmentKind};

/// Tools whose `command` / `cmd` parameter is a shell command (compared case-insensitively; a
/// name containing `bash` or `shell` counts too).
const SHELL_TOOLS: &[&str] = &[
    "execute_bash",
    "bash",
    "run",
    "shell",
    "terminal",
    "execute_command",
    "run_command",
];
const SHELL_PARAMS: &[&str] = &["command", "cmd"];
/// Tools whose `code` parameter is Python (a name containing `python` counts too).
const PYTHON_TOOLS: &[&str] = &["execute_ipython_cell", "ipython", "python", "run_ipython"];
const PYTHON_PARAMS: &[&str] = &["code"];
/// Parameters holding file content, whose language is the one of the file being edited.
const EDITOR_PARAMS: &[&str] = &[
    "new_str",
    "old_str",
    "file_text",
    "content",
    "insert_text",
    "code_edit",
];
/// Where the edited file's path is, first found wins (`path` is the OpenHands / SWE-agent
/// editor's; the others are other agents' spellings).
const PATH_PARAMS: &[&str] = &["path", "file_path", "target_file", "filename"];

/// Renders a tool call as the XML function-call text agents use (OpenHands / SWE-agent style),
/// with the tags recorded as `markup` and code-bearing parameter values recorded as `code`
/// regions.
///
/// The text is `<function=NAME>\n`, then per argument, in the map's order,
/// `<parameter=KEY>VALUE</parameter>\n`, then `</function>`. A string VALUE containing a newline
/// is written on its own lines, `<parameter=KEY>\nVALUE\n</parameter>` (without the second
/// newline when VALUE already ends with one); any other value is compact JSON. `markup` is
/// exactly the bytes of the tags (not the newlines); a code region is exactly a VALUE's bytes:
/// `command`/`cmd` of a shell tool (Bash), `code` of a Python tool, and the file-content
/// parameters (`new_str`, `old_str`, `file_text`, `content`, `insert_text`, `code_edit`) in the
/// language of the file named by `path` (none when that language is unknown).
pub fn render_tool_call(name: &str, arguments: &Map<String, Value>) -> Segment {
    let mut w = Builder::default();
    w.tag(&format!("<function={name}>"));
    w.text("\n");
    for (key, value) in arguments {
        w.tag(&format!("<parameter={key}>"));
        match value {
            Value::String(s) => {
                let multi_line = s.contains('\n');
                if multi_line {
                    w.text("\n");
                }
                w.code(s, param_lang(name, key, |k| arguments.get(k)?.as_str()));
                if multi_line && !s.ends_with('\n') {
                    w.text("\n");
                }
            }
            other => w.text(&other.to_string()),
        }
        w.tag("</parameter>");
        w.text("\n");
    }
    w.tag("</function>");
    w.finish()
}

/// A tool call whose arguments are not valid JSON: `<function=NAME>\n`, the raw text, a newline
/// unless the text ends with one, `</function>`. The two tags are markup; there are no code
/// regions (nothing is known about the text).
pub fn render_raw_tool_call(name: &str, raw_arguments: &str) -> Segment {
    let mut w = Builder::default();
    w.tag(&format!("<function={name}>"));
    w.text("\n");
    w.text(raw_arguments);
    if !raw_arguments.is_empty() && !raw_arguments.ends_with('\n') {
        w.text("\n");
    }
    w.tag("</function>");
    w.finish()
}

/// An SWE-agent command string as an action: Bash, except `edit N:M\n...\nend_of_edit` bodies
/// (also `insert`/`end_of_insert`, `append`/`end_of_append`), which take the language of
/// `current_file` (no region when unknown), and heredoc bodies written to a file
/// (`cat <<'EOF' > file.py`, `cat > f.py <<EOF`, `tee f.py <<EOF`) or fed to `python`
/// (`python - <<'PY'`), which take the language of that file, or Python. The command text is
/// kept as is; whitespace-only stretches get no region.
pub fn raw_command_action(command: &str, current_file: Option<&str>) -> Segment {
    let file_lang = current_file.and_then(Lang::from_path);
    let lines = line_spans(command);
    // Bodies that are not Bash, in order: (byte range, language or none).
    let mut bodies: Vec<(Range<usize>, Option<Lang>)> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = &command[lines[i].clone()];
        if let Some(end_word) = block_command_terminator(line) {
            let end = (i + 1..lines.len()).find(|&j| command[lines[j].clone()].trim() == end_word);
            if let Some(j) = end {
                bodies.push((lines[i].end..lines[j].start, file_lang));
                i = j + 1;
                continue;
            }
        }
        if let Some(doc) = heredoc(line) {
            let end = (i + 1..lines.len()).find(|&j| {
                let l = command[lines[j].clone()].trim_end_matches(['\n', '\r']);
                let l = if doc.strip_tabs {
                    l.trim_start_matches('\t')
                } else {
                    l
                };
                l == doc.delimiter
            });
            if let (Some(j), Some(lang)) = (end, doc.lang) {
                bodies.push((lines[i].end..lines[j].start, Some(lang)));
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    let mut code = Vec::new();
    let mut pos = 0;
    for (range, lang) in bodies {
        push_region(&mut code, command, pos..range.start, Lang::Bash);
        if let Some(lang) = lang {
            push_region(&mut code, command, range.clone(), lang);
        }
        pos = range.end;
    }
    push_region(&mut code, command, pos..command.len(), Lang::Bash);
    Segment {
        kind: SegmentKind::Action,
        text: command.to_string(),
        markup: Vec::new(),
        code,
    }
}

/// Follows SWE-agent's notion of the open file: an `open PATH [LINE]` or `create PATH` line in
/// `command` makes PATH the current file (the last such line wins).
pub(crate) fn track_current_file(command: &str, current: &mut Option<String>) {
    for line in command.lines() {
        let mut words = line.split_whitespace();
        if matches!(words.next(), Some("open" | "create")) {
            if let Some(path) = words.next() {
                *current = Some(unquote(path).to_string());
            }
        }
    }
}

/// Splits assistant free text into Thought and Action segments (their texts concatenate back to
/// `text`), for messages whose action is written in the content itself:
///
/// 1. each `<function=NAME>...</function>` block (to the next block or the end when the closing
///    tag is missing) is an Action, with its tags as markup and its parameter values as code
///    regions by the same rules as [`render_tool_call`];
/// 2. otherwise each fenced block tagged `bash`/`sh`/`shell` is an Action (mini-swe-agent's
///    "THOUGHT ... ```bash"): fence lines included, the two fences (without newlines) recorded as
///    markup, the body annotated by [`raw_command_action`];
/// 3. otherwise the last fenced block with no tag is the Action, the way SWE-agent's
///    thought-action parser reads a response.
///
/// Everything else is Thought. `current_file` is read for `edit` bodies and updated from
/// `open`/`create` commands in the actions.
pub(crate) fn split_actions(text: &str, current_file: &mut Option<String>) -> Vec<Segment> {
    let mut actions: Vec<(Range<usize>, Segment)> = function_blocks(text)
        .into_iter()
        .map(|r| {
            let seg = function_block_action(&text[r.clone()]);
            (r, seg)
        })
        .collect();
    if actions.is_empty() {
        let fences = fenced_blocks(text);
        let mut chosen: Vec<&Fence> = fences
            .iter()
            .filter(|f| matches!(f.tag.to_ascii_lowercase().as_str(), "bash" | "sh" | "shell"))
            .collect();
        if chosen.is_empty() {
            chosen.extend(fences.iter().rev().find(|f| f.tag.is_empty()));
        }
        for f in chosen {
            actions.push(fence_action(text, f, current_file));
        }
    }
    interleave(text, actions)
}

/// The number of fenced blocks in `text` whose tag is `tag` (compared case-insensitively).
///
/// For mini-swe-agent this is the number of actions its parser finds in a response (`tag` is
/// `bash` in v1, `mswea_bash_command` in v2): a fence line with that tag, then the body, then a
/// closing fence. The fences are found by [`fenced_blocks`], line by line like markdown.
pub(crate) fn count_tagged_fences(text: &str, tag: &str) -> usize {
    fenced_blocks(text)
        .iter()
        .filter(|f| f.tag.eq_ignore_ascii_case(tag))
        .count()
}

/// Splits `text` into Thought and Action segments (their texts concatenate back to `text`) where
/// exactly the fenced blocks tagged `tag` are Actions: fence lines included, the two fences
/// recorded as markup, the body annotated by [`raw_command_action`]. Fences with another tag
/// (```` ```python ```` in the prose) and untagged ones are Thought. `current_file` is read and
/// updated as in [`split_actions`].
pub(crate) fn split_tagged_fences(
    text: &str,
    tag: &str,
    current_file: &mut Option<String>,
) -> Vec<Segment> {
    let actions = fenced_blocks(text)
        .iter()
        .filter(|f| f.tag.eq_ignore_ascii_case(tag))
        .map(|f| fence_action(text, f, current_file))
        .collect();
    interleave(text, actions)
}

/// A fenced block as an Action: its byte range in `text`, and the segment (fence lines included,
/// the fences as markup, the body annotated by [`raw_command_action`]).
fn fence_action(
    text: &str,
    f: &Fence,
    current_file: &mut Option<String>,
) -> (Range<usize>, Segment) {
    let body = &text[f.body.clone()];
    let mut seg = raw_command_action(body, current_file.as_deref());
    track_current_file(body, current_file);
    let start = f.open.start;
    let end = f.close.as_ref().map_or(f.body.end, |c| c.end);
    seg = wrap(seg, &text[start..f.body.start], &text[f.body.end..end]);
    seg.markup = std::iter::once(f.open.clone())
        .chain(f.close.clone())
        .map(|r| r.start - start..r.end - start)
        .collect();
    (start..end, seg)
}

/// The Action segments at their ranges (sorted, disjoint), with the text between them as
/// Thought segments.
fn interleave(text: &str, actions: Vec<(Range<usize>, Segment)>) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut pos = 0;
    for (range, seg) in actions {
        if range.start > pos {
            out.push(Segment::plain(
                SegmentKind::Thought,
                &text[pos..range.start],
            ));
        }
        pos = range.end;
        out.push(seg);
    }
    if pos < text.len() {
        out.push(Segment::plain(SegmentKind::Thought, &text[pos..]));
    }
    out
}

/// `seg` with `prefix` before and `suffix` after its text, its ranges shifted accordingly.
pub(crate) fn wrap(mut seg: Segment, prefix: &str, suffix: &str) -> Segment {
    let shift = prefix.len();
    seg.text = format!("{prefix}{}{suffix}", seg.text);
    for r in &mut seg.markup {
        *r = r.start + shift..r.end + shift;
    }
    for c in &mut seg.code {
        c.range = c.range.start + shift..c.range.end + shift;
    }
    seg
}

/// The language of parameter `key` of tool `tool`, `arg` looking up another string argument.
fn param_lang<'a>(tool: &str, key: &str, arg: impl Fn(&str) -> Option<&'a str>) -> Option<Lang> {
    let tool = tool.to_ascii_lowercase();
    let key = key.to_ascii_lowercase();
    let key = key.as_str();
    if SHELL_PARAMS.contains(&key)
        && (SHELL_TOOLS.contains(&tool.as_str()) || tool.contains("bash") || tool.contains("shell"))
    {
        return Some(Lang::Bash);
    }
    if PYTHON_PARAMS.contains(&key)
        && (PYTHON_TOOLS.contains(&tool.as_str()) || tool.contains("python"))
    {
        return Some(Lang::Python);
    }
    if EDITOR_PARAMS.contains(&key) {
        return PATH_PARAMS
            .iter()
            .find_map(|p| arg(p))
            .and_then(Lang::from_path);
    }
    None
}

/// Text with its markup and code annotations, built piece by piece.
#[derive(Default)]
struct Builder {
    text: String,
    markup: Vec<Range<usize>>,
    code: Vec<CodeRegion>,
}

impl Builder {
    fn text(&mut self, s: &str) {
        self.text.push_str(s);
    }

    fn tag(&mut self, s: &str) {
        let start = self.text.len();
        self.text.push_str(s);
        self.markup.push(start..self.text.len());
    }

    fn code(&mut self, s: &str, lang: Option<Lang>) {
        let start = self.text.len();
        self.text.push_str(s);
        if let (Some(lang), false) = (lang, s.is_empty()) {
            self.code.push(CodeRegion {
                range: start..self.text.len(),
                lang,
            });
        }
    }

    fn finish(self) -> Segment {
        Segment {
            kind: SegmentKind::Action,
            text: self.text,
            markup: self.markup,
            code: self.code,
        }
    }
}

/// Adds a region unless it is empty or whitespace only.
fn push_region(code: &mut Vec<CodeRegion>, text: &str, range: Range<usize>, lang: Lang) {
    if !text[range.clone()].trim().is_empty() {
        code.push(CodeRegion { range, lang });
    }
}

/// Byte ranges of the lines of `text`, each with its newline.
fn line_spans(text: &str) -> Vec<Range<usize>> {
    let mut pos = 0;
    text.split_inclusive('\n')
        .map(|l| {
            let r = pos..pos + l.len();
            pos = r.end;
            r
        })
        .collect()
}

/// For an SWE-agent block command line (`edit 12:14`, `insert 5`, `append`), the line that ends
/// its body.
fn block_command_terminator(line: &str) -> Option<&'static str> {
    match line.split_whitespace().next()? {
        "edit" => Some("end_of_edit"),
        "insert" => Some("end_of_insert"),
        "append" => Some("end_of_append"),
        _ => None,
    }
}

struct Heredoc<'a> {
    delimiter: &'a str,
    /// `<<-`: leading tabs of the closing line are ignored.
    strip_tabs: bool,
    /// The body's language, from the file it is written to or the interpreter it is fed to.
    lang: Option<Lang>,
}

/// The heredoc opened on `line`, if any.
fn heredoc(line: &str) -> Option<Heredoc<'_>> {
    let at = line
        .match_indices("<<")
        .map(|(i, _)| i)
        .find(|&i| !line[..i].ends_with('<') && !line[i + 2..].starts_with('<'))?;
    let mut rest = &line[at + 2..];
    let strip_tabs = rest.starts_with('-');
    if strip_tabs {
        rest = &rest[1..];
    }
    rest = rest.trim_start_matches([' ', '\t']);
    let (delimiter, after) = match rest.chars().next()? {
        q @ ('\'' | '"') => {
            let end = rest[1..].find(q)? + 1;
            (&rest[1..end], &rest[end + 1..])
        }
        _ => {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        }
    };
    if delimiter.is_empty() {
        return None;
    }
    // The redirect may come before (`cat > f.py <<EOF`) or after (`cat <<EOF > f.py`).
    let words: Vec<&str> = line[..at]
        .split_whitespace()
        .chain(after.split_whitespace())
        .collect();
    let target = heredoc_target(&words);
    let lang = match target {
        Some(path) => Lang::from_path(path),
        None => words
            .iter()
            .any(|w| {
                let base = w.rsplit('/').next().unwrap_or(w);
                base == "python"
                    || base.strip_prefix("python3").is_some_and(|v| {
                        v.is_empty() || (v.starts_with('.') && v[1..].parse::<u32>().is_ok())
                    })
            })
            .then_some(Lang::Python),
    };
    Some(Heredoc {
        delimiter,
        strip_tabs,
        lang,
    })
}

/// The file a heredoc command writes: the target of `>`/`>>` (not `2>`, `&>`, `>&`), or the
/// first non-option argument of `tee`.
fn heredoc_target<'a>(words: &[&'a str]) -> Option<&'a str> {
    for (i, w) in words.iter().enumerate() {
        let redirect = w.strip_prefix(">>").or_else(|| w.strip_prefix('>'));
        if let Some(rest) = redirect {
            if rest.starts_with('&') {
                continue;
            }
            let path = if rest.is_empty() {
                words.get(i + 1).copied()
            } else {
                Some(rest)
            };
            return path.map(unquote);
        }
        if *w == "tee" {
            return words[i + 1..]
                .iter()
                .find(|a| !a.starts_with('-'))
                .map(|a| unquote(a));
        }
    }
    None
}

fn unquote(s: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(inner) = s.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// Byte ranges of `<function=...>` blocks: to the end of `</function>`, or to the next block or
/// the end of the text when the closing tag is missing.
fn function_blocks(text: &str) -> Vec<Range<usize>> {
    const OPEN: &str = "<function=";
    const CLOSE: &str = "</function>";
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = text[pos..].find(OPEN) {
        let start = pos + i;
        let next = text[start + OPEN.len()..]
            .find(OPEN)
            .map_or(text.len(), |j| start + OPEN.len() + j);
        let end = match text[start..next].find(CLOSE) {
            Some(j) => start + j + CLOSE.len(),
            None => next,
        };
        out.push(start..end);
        pos = end;
    }
    out
}

/// A `<function=NAME>...</function>` block written by the model, annotated like
/// [`render_tool_call`]'s output: tags as markup, parameter values as code regions. A value's
/// region starts after the newline that follows its opening tag.
fn function_block_action(block: &str) -> Segment {
    let mut markup = Vec::new();
    let open_end = block.find('>').map_or(block.len(), |i| i + 1);
    let name = block["<function=".len()..open_end.max("<function=".len())]
        .trim_end_matches('>')
        .trim();
    markup.push(0..open_end);
    let body_end = match block.strip_suffix("</function>") {
        Some(b) => b.len(),
        None => block.len(),
    };
    // (key, value range), in order.
    let mut params: Vec<(&str, Range<usize>)> = Vec::new();
    let mut pos = open_end;
    while let Some(i) = block[pos..body_end].find("<parameter=") {
        let tag_start = pos + i;
        let Some(j) = block[tag_start..body_end].find('>') else {
            break;
        };
        let tag_end = tag_start + j + 1;
        markup.push(tag_start..tag_end);
        let key = block[tag_start + "<parameter=".len()..tag_end - 1].trim();
        let value_start = if block[tag_end..].starts_with('\n') {
            tag_end + 1
        } else {
            tag_end
        };
        let close = block[value_start..body_end].find("</parameter>");
        let next = block[value_start..body_end].find("<parameter=");
        let value_end = match (close, next) {
            (Some(c), Some(n)) if n < c => value_start + n,
            (Some(c), _) => {
                let c = value_start + c;
                markup.push(c..c + "</parameter>".len());
                c
            }
            (None, Some(n)) => value_start + n,
            (None, None) => body_end,
        };
        params.push((key, value_start..value_end));
        pos = if block[value_end..body_end].starts_with("</parameter>") {
            value_end + "</parameter>".len()
        } else {
            value_end
        };
    }
    if body_end < block.len() {
        markup.push(body_end..block.len());
    }
    let arg = |k: &str| {
        params
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, r)| block[r.clone()].trim())
    };
    let code = params
        .iter()
        .filter(|(_, r)| !block[r.clone()].trim().is_empty())
        .filter_map(|(key, r)| {
            param_lang(name, key, arg).map(|lang| CodeRegion {
                range: r.clone(),
                lang,
            })
        })
        .collect();
    Segment {
        kind: SegmentKind::Action,
        text: block.to_string(),
        markup,
        code,
    }
}

/// A markdown fenced block: the opening fence (from its backticks to the end of the line, without
/// the newline), the body (whole lines), the closing fence (without its newline), if any.
struct Fence {
    open: Range<usize>,
    tag: String,
    body: Range<usize>,
    close: Option<Range<usize>>,
}

/// The fenced blocks of `text`, in order. An unclosed fence runs to the end of the text.
fn fenced_blocks(text: &str) -> Vec<Fence> {
    let lines = line_spans(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = &text[lines[i].clone()];
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        if !line[indent..].starts_with("```") {
            i += 1;
            continue;
        }
        let content = line.trim_end_matches(['\n', '\r']);
        let open = lines[i].start + indent..lines[i].start + content.len();
        let tag = content[indent..].trim_start_matches('`').trim().to_string();
        if tag.contains('`') {
            // Inline code (```x```), not a fence.
            i += 1;
            continue;
        }
        let body_start = lines[i].end;
        let close_at = (i + 1..lines.len()).find(|&j| {
            let l = text[lines[j].clone()].trim();
            l.len() >= 3 && l.chars().all(|c| c == '`')
        });
        match close_at {
            Some(j) => {
                let l = &text[lines[j].clone()];
                let lead = l.len() - l.trim_start().len();
                let s = lines[j].start + lead;
                let e = lines[j].start + l.trim_end().len();
                out.push(Fence {
                    open,
                    tag,
                    body: body_start..lines[j].start,
                    close: Some(s..e),
                });
                i = j + 1;
            }
            None => {
                out.push(Fence {
                    open,
                    tag,
                    body: body_start..text.len(),
                    close: None,
                });
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn spans<'a>(seg: &'a Segment, ranges: &[Range<usize>]) -> Vec<&'a str> {
        ranges.iter().map(|r| &seg.text[r.clone()]).collect()
    }

    fn regions(seg: &Segment) -> Vec<(&str, Lang)> {
        seg.code
            .iter()
            .map(|c| (&seg.text[c.range.clone()], c.lang))
            .collect()
    }

    #[test]
    fn tool_call_with_multi_line_python_edit() {
        let a = args(json!({
            "command": "str_replace",
            "path": "/repo/app.py",
            "old_str": "x = 1",
            "new_str": "# fix\nx = 2",
            "insert_line": 3,
        }));
        let seg = render_tool_call("str_replace_editor", &a);
        assert_eq!(seg.kind, SegmentKind::Action);
        let expected = "<function=str_replace_editor>\n\
            <parameter=command>str_replace</parameter>\n\
            <parameter=path>/repo/app.py</parameter>\n\
            <parameter=old_str>x = 1</parameter>\n\
            <parameter=new_str>\n# fix\nx = 2\n</parameter>\n\
            <parameter=insert_line>3</parameter>\n\
            </function>";
        assert_eq!(seg.text, expected);
        assert_eq!(
            seg.markup,
            vec![
                0..29,
                30..49,
                60..72,
                73..89,
                101..113,
                114..133,
                138..150,
                151..170,
                183..195,
                196..219,
                220..232,
                233..244
            ]
        );
        assert_eq!(
            spans(&seg, &seg.markup),
            vec![
                "<function=str_replace_editor>",
                "<parameter=command>",
                "</parameter>",
                "<parameter=path>",
                "</parameter>",
                "<parameter=old_str>",
                "</parameter>",
                "<parameter=new_str>",
                "</parameter>",
                "<parameter=insert_line>",
                "</parameter>",
                "</function>"
            ]
        );
        assert_eq!(
            seg.code,
            vec![
                CodeRegion {
                    range: 133..138,
                    lang: Lang::Python
                },
                CodeRegion {
                    range: 171..182,
                    lang: Lang::Python
                }
            ]
        );
        assert_eq!(
            regions(&seg),
            vec![("x = 1", Lang::Python), ("# fix\nx = 2", Lang::Python)]
        );
    }

    #[test]
    fn tool_call_value_ending_in_newline_and_shell_and_python_tools() {
        let seg = render_tool_call("execute_bash", &args(json!({"command": "ls\npwd\n"})));
        assert_eq!(
            seg.text,
            "<function=execute_bash>\n<parameter=command>\nls\npwd\n</parameter>\n</function>"
        );
        assert_eq!(regions(&seg), vec![("ls\npwd\n", Lang::Bash)]);
        let seg = render_tool_call("Bash", &args(json!({"cmd": "ls", "timeout": null})));
        assert_eq!(
            seg.text,
            "<function=Bash>\n<parameter=cmd>ls</parameter>\n<parameter=timeout>null</parameter>\n</function>"
        );
        assert_eq!(regions(&seg), vec![("ls", Lang::Bash)]);
        let seg = render_tool_call("execute_ipython_cell", &args(json!({"code": "print(1)"})));
        assert_eq!(regions(&seg), vec![("print(1)", Lang::Python)]);
        // `command` of the editor is not a shell command; unknown file language: no region.
        let seg = render_tool_call(
            "str_replace_editor",
            &args(json!({"command": "create", "path": "README", "file_text": "hi"})),
        );
        assert!(seg.code.is_empty());
        let seg = render_tool_call("finish", &Map::new());
        assert_eq!(seg.text, "<function=finish>\n</function>");
        assert_eq!(seg.markup, vec![0..17, 18..29]);
    }

    #[test]
    fn raw_tool_call() {
        let seg = render_raw_tool_call("execute_bash", "{\"command\": \"ls");
        assert_eq!(
            seg.text,
            "<function=execute_bash>\n{\"command\": \"ls\n</function>"
        );
        assert_eq!(
            spans(&seg, &seg.markup),
            vec!["<function=execute_bash>", "</function>"]
        );
        assert!(seg.code.is_empty());
    }

    #[test]
    fn swe_agent_edit_and_heredoc_bodies() {
        let cmd = "edit 3:4\n    # c\n    return x\nend_of_edit\n";
        let seg = raw_command_action(cmd, Some("src/m.py"));
        assert_eq!(seg.text, cmd);
        assert_eq!(
            regions(&seg),
            vec![
                ("edit 3:4\n", Lang::Bash),
                ("    # c\n    return x\n", Lang::Python),
                ("end_of_edit\n", Lang::Bash)
            ]
        );
        // Unknown language of the open file: the body has no region.
        let seg = raw_command_action(cmd, Some("notes.txt"));
        assert_eq!(
            regions(&seg),
            vec![("edit 3:4\n", Lang::Bash), ("end_of_edit\n", Lang::Bash)]
        );
        let cmd = "cat <<'EOF' > lib/a.rs\nfn f() {}\nEOF\npython - <<PY\nprint(1)\nPY";
        let seg = raw_command_action(cmd, None);
        assert_eq!(
            regions(&seg),
            vec![
                ("cat <<'EOF' > lib/a.rs\n", Lang::Bash),
                ("fn f() {}\n", Lang::Rust),
                ("EOF\npython - <<PY\n", Lang::Bash),
                ("print(1)\n", Lang::Python),
                ("PY", Lang::Bash)
            ]
        );
        // A heredoc to a file of unknown language stays inside the Bash region.
        let cmd = "cat > notes.txt <<EOF\nhello\nEOF\n";
        assert_eq!(
            regions(&raw_command_action(cmd, None)),
            vec![(cmd, Lang::Bash)]
        );
        let mut cur = None;
        track_current_file("open \"src/m.py\" 10\n", &mut cur);
        assert_eq!(cur.as_deref(), Some("src/m.py"));
        track_current_file("create new.js", &mut cur);
        assert_eq!(cur.as_deref(), Some("new.js"));
    }

    #[test]
    fn split_mini_swe_agent_fence() {
        let text = "THOUGHT: look.\n\n```bash\nls -la # all\n```\nthen";
        let segs = split_actions(text, &mut None);
        let kinds: Vec<_> = segs.iter().map(|s| (s.kind, s.text.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (SegmentKind::Thought, "THOUGHT: look.\n\n"),
                (SegmentKind::Action, "```bash\nls -la # all\n```"),
                (SegmentKind::Thought, "\nthen")
            ]
        );
        let a = &segs[1];
        assert_eq!(spans(a, &a.markup), vec!["```bash", "```"]);
        assert_eq!(regions(a), vec![("ls -la # all\n", Lang::Bash)]);
    }

    #[test]
    fn split_function_blocks_and_swe_agent_fence() {
        let text = "I'll edit.\n<function=str_replace_editor>\n<parameter=command>create</parameter>\n\
            <parameter=path>a.py</parameter>\n<parameter=file_text>\nx = 1\n</parameter>\n</function>";
        let segs = split_actions(text, &mut None);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].text, "I'll edit.\n");
        let a = &segs[1];
        assert_eq!(a.kind, SegmentKind::Action);
        assert_eq!(
            spans(a, &a.markup),
            vec![
                "<function=str_replace_editor>",
                "<parameter=command>",
                "</parameter>",
                "<parameter=path>",
                "</parameter>",
                "<parameter=file_text>",
                "</parameter>",
                "</function>"
            ]
        );
        assert_eq!(regions(a), vec![("x = 1\n", Lang::Python)]);
        // SWE-agent: the last untagged fence is the action; a python fence is not.
        let text = "DISCUSSION\n```python\nx\n```\nnow\n```\nopen a.py\n```\n";
        let mut cur = None;
        let segs = split_actions(text, &mut cur);
        let kinds: Vec<_> = segs.iter().map(|s| (s.kind, s.text.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (SegmentKind::Thought, "DISCUSSION\n```python\nx\n```\nnow\n"),
                (SegmentKind::Action, "```\nopen a.py\n```"),
                (SegmentKind::Thought, "\n")
            ]
        );
        assert_eq!(cur.as_deref(), Some("a.py"));
        let text = "no action here";
        assert_eq!(
            split_actions(text, &mut None),
            vec![Segment::plain(SegmentKind::Thought, text)]
        );
    }

    fn check_ranges(seg: &Segment) {
        let t = &seg.text;
        let mut prev = 0;
        for r in &seg.markup {
            assert!(r.start <= r.end && r.end <= t.len());
            assert!(t.is_char_boundary(r.start) && t.is_char_boundary(r.end));
            assert!(r.start >= prev, "markup sorted: {:?}", seg.markup);
            prev = r.end;
        }
        let mut prev = 0;
        for c in &seg.code {
            assert!(c.range.start < c.range.end && c.range.end <= t.len());
            assert!(t.is_char_boundary(c.range.start) && t.is_char_boundary(c.range.end));
            assert!(c.range.start >= prev, "code sorted: {:?}", seg.code);
            prev = c.range.end;
        }
    }

    proptest::proptest! {
        #[test]
        fn splitting_keeps_the_text_and_valid_ranges(
            parts in proptest::collection::vec(proptest::prop_oneof![
                proptest::prelude::Just("```bash\n".to_string()),
                proptest::prelude::Just("```\n".to_string()),
                proptest::prelude::Just("<function=bash>".to_string()),
                proptest::prelude::Just("<parameter=command>".to_string()),
                proptest::prelude::Just("</parameter>".to_string()),
                proptest::prelude::Just("</function>".to_string()),
                proptest::prelude::Just("edit 1:2\n".to_string()),
                proptest::prelude::Just("end_of_edit\n".to_string()),
                proptest::prelude::Just("cat <<'EOF' > a.py\n".to_string()),
                proptest::prelude::Just("EOF\n".to_string()),
                proptest::prelude::Just("open a.py\n".to_string()),
                "[a-z #<>'\"=\n\u{e9}\u{4e2d}-]{0,12}",
            ], 0..12)
        ) {
            let text: String = parts.concat();
            let mut cur = Some("x.py".to_string());
            let segs = split_actions(&text, &mut cur);
            let joined: String = segs.iter().map(|s| s.text.as_str()).collect();
            proptest::prop_assert_eq!(&joined, &text);
            for s in &segs {
                check_ranges(s);
            }
            let seg = raw_command_action(&text, Some("m.py"));
            proptest::prop_assert_eq!(&seg.text, &text);
            check_ranges(&seg);
        }
    }
}
