//! The paper's cleaning of action segments, as a keep-mask over the bytes of the segment's text.
//!
//! Three steps, each switchable ([`CleanSteps`], the paper's ablation rows); the mask is the AND
//! of the enabled steps, each computed on the original text:
//!
//! 1. **markup**: tool-call syntax and markdown markup.
//!    - Every range of [`Segment::markup`] is removed.
//!    - Outside [`Segment::code`] regions and fenced blocks, tool-call tags found lexically are
//!      removed: `<NAME ...>`, `<NAME=VALUE ...>`, `<NAME .../>` and `</NAME>` where NAME is one
//!      of [`TAG_NAMES`] (optionally with a namespace prefix, `ns:invoke`). Attributes may use
//!      either quote style or be unquoted; a `>` inside a quoted value does not end the tag. Any
//!      other `<...>` stays (`a<b and c>d`, `cat < in > out`, `<div>`).
//!    - Outside code regions, markdown code-fence lines are removed whole (with their line break):
//!      an opening line is optional spaces or tabs, then 3 or more `` ` `` or `~`, then an info
//!      string (for backticks, without backticks); the block closes at a line of the same char
//!      repeated at least as many times and nothing but whitespace after it (CommonMark), else at
//!      the end of the text. So a ```` ```` ```` fence can hold ```` ``` ```` lines as content.
//!      Unlike CommonMark, a fence may be indented by any amount (fences in list items).
//!      Fenced content whose info string names a language ([`Lang::from_fence_tag`]) becomes a
//!      code region for the comments step (unless it overlaps an explicit one).
//!    - Outside code regions and fenced blocks, inline-code backticks are removed (the backticks
//!      only): a run of N backticks closed by a run of exactly N on the same line.
//! 2. **comments**: in every code region, explicit and fence-derived, the comments found by
//!    [`comments::find_comments`] (a tree-sitter parse; a lexical rule where the tree has errors,
//!    counted in [`CleanStats::fallbacks`], or for C++, counted in [`CleanStats::lexical_only`]).
//! 3. **whitespace** (redundant whitespace and symbols): a whitespace character (Unicode
//!    `White_Space`, so also newlines, tabs, U+00A0, U+3000) is kept only if it is a U+0020
//!    space directly followed by a non-whitespace character: the one space a word carries in
//!    front of it (byte-level BPE tokenizers glue it to the word: `    return` becomes `   ` +
//!    ` return`, and the word must stay scorable). All other whitespace (line breaks, tabs,
//!    the rest of indentation and of runs, trailing spaces) is removed. Runs of 3 or more of the same symbol from `-=*#_~` (separator lines
//!    like `=====`, `-----`, markdown `###`) are removed; `__init__`, `**` stay.
//!
//! All bytes of one UTF-8 character always get the same value: a character any of whose bytes
//! is removed is removed whole.

use std::ops::Range;

use serde::Serialize;

use super::comments::{self, Method};
use super::{CodeRegion, Lang, Segment};

/// Which cleaning steps run; each is independently switchable (the paper's ablation rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct CleanSteps {
    /// XML tool-call tags and markdown markup.
    pub markup: bool,
    /// Redundant whitespace and separator symbols.
    pub whitespace: bool,
    /// Code comments.
    pub comments: bool,
}

impl CleanSteps {
    /// Every step: the paper's default.
    pub const ALL: CleanSteps = CleanSteps {
        markup: true,
        whitespace: true,
        comments: true,
    };
}

/// How comment removal went, summed over a run and reported (fallbacks must be visible).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleanStats {
    /// Code regions (explicit and fence-derived, non-empty) whose comments were removed.
    pub code_regions: u64,
    /// Regions parsed by their grammar without errors.
    pub parsed: u64,
    /// Regions whose parse tree had errors: the lexical rule was used instead.
    pub fallbacks: u64,
    /// Regions in a language without a grammar (C++): the lexical rule was used.
    pub lexical_only: u64,
    /// Bytes removed as comments.
    pub comment_bytes: u64,
}

impl CleanStats {
    pub fn merge(&mut self, other: &CleanStats) {
        self.code_regions += other.code_regions;
        self.parsed += other.parsed;
        self.fallbacks += other.fallbacks;
        self.lexical_only += other.lexical_only;
        self.comment_bytes += other.comment_bytes;
    }
}

/// Tag names whose tags are tool-call markup wherever they appear outside code (see the module
/// documentation). Matched case-sensitively.
pub const TAG_NAMES: &[&str] = &[
    "tool_call",
    "tool_calls",
    "function_call",
    "function_calls",
    "invoke",
    "parameter",
    "function",
    "execute_bash",
    "str_replace_editor",
    "bash",
    "command",
    "action",
    "arguments",
    "think",
];

/// Keep-mask over the bytes of `seg.text` (true = kept). All bytes of one UTF-8 character get
/// the same value. Comment-removal outcomes are added to `stats`.
pub fn clean_action(seg: &Segment, steps: CleanSteps, stats: &mut CleanStats) -> Vec<bool> {
    let text = seg.text.as_str();
    let mut keep = vec![true; text.len()];
    if !(steps.markup || steps.whitespace || steps.comments) {
        return keep;
    }

    let code: Vec<CodeRegion> = seg
        .code
        .iter()
        .map(|c| CodeRegion {
            range: char_aligned(text, &c.range),
            lang: c.lang,
        })
        .filter(|c| !c.range.is_empty())
        .collect();

    if steps.markup || steps.comments {
        let ranges: Vec<Range<usize>> = code.iter().map(|c| c.range.clone()).collect();
        let md = scan_markup(text, &ranges);
        if steps.markup {
            for r in seg.markup.iter().chain(&md.removed) {
                let r = char_aligned(text, r);
                keep[r].fill(false);
            }
        }
        if steps.comments {
            for region in code.iter().chain(&md.code) {
                let base = region.range.start;
                let found = comments::find_comments(&text[region.range.clone()], region.lang);
                stats.code_regions += 1;
                match found.method {
                    Method::Parsed => stats.parsed += 1,
                    Method::Fallback => stats.fallbacks += 1,
                    Method::LexicalOnly => stats.lexical_only += 1,
                }
                for r in found.ranges {
                    stats.comment_bytes += r.len() as u64;
                    keep[base + r.start..base + r.end].fill(false);
                }
            }
        }
    }

    if steps.whitespace {
        remove_whitespace(text, &mut keep);
    }

    // One value per character (explicit ranges may split one).
    for (p, c) in text.char_indices() {
        let n = c.len_utf8();
        if n > 1 && keep[p..p + n].contains(&false) {
            keep[p..p + n].fill(false);
        }
    }
    keep
}

/// `r` clamped to the text and widened to character boundaries.
fn char_aligned(text: &str, r: &Range<usize>) -> Range<usize> {
    let mut end = r.end.min(text.len());
    let mut start = r.start.min(end);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    while !text.is_char_boundary(end) {
        end += 1;
    }
    start..end
}

fn overlaps(ranges: &[Range<usize>], r: &Range<usize>) -> bool {
    ranges.iter().any(|c| c.start < r.end && r.start < c.end)
}

/// What the markup scan found: byte ranges to remove and fenced code regions.
#[derive(Debug, Default)]
struct Markup {
    removed: Vec<Range<usize>>,
    code: Vec<CodeRegion>,
}

/// An opening fence line: (fence char, run length, info string).
fn fence_open(line: &str) -> Option<(u8, usize, &str)> {
    let rest = line.trim_start_matches([' ', '\t']);
    let ch = *rest.as_bytes().first()?;
    if ch != b'`' && ch != b'~' {
        return None;
    }
    let n = rest.bytes().take_while(|&c| c == ch).count();
    let info = rest[n..].trim();
    if n < 3 || (ch == b'`' && info.contains('`')) {
        return None;
    }
    Some((ch, n, info))
}

fn fence_closes(line: &str, ch: u8, n: usize) -> bool {
    let rest = line.trim_start_matches([' ', '\t']);
    let run = rest.bytes().take_while(|&c| c == ch).count();
    run >= n && rest[run..].trim().is_empty()
}

/// Finds fences, tool-call tags and inline code outside the explicit code `regions`.
fn scan_markup(text: &str, regions: &[Range<usize>]) -> Markup {
    let mut md = Markup::default();
    // Open fence: (char, run, language, opening line range, content start).
    let mut open: Option<(u8, usize, Option<Lang>, usize)> = None;
    let mut free_start = 0;
    let mut ls = 0;
    while ls < text.len() {
        let le = text[ls..].find('\n').map_or(text.len(), |p| ls + p);
        let next = (le + 1).min(text.len());
        let line = &text[ls..le];
        if !overlaps(regions, &(ls..le)) {
            match open {
                None => {
                    if let Some((ch, n, info)) = fence_open(line) {
                        scan_free(text, free_start..ls, regions, &mut md);
                        md.removed.push(ls..next);
                        open = Some((ch, n, Lang::from_fence_tag(info), next));
                    }
                }
                Some((ch, n, lang, content)) => {
                    if fence_closes(line, ch, n) {
                        md.removed.push(ls..next);
                        add_fenced(&mut md, lang, content..ls, regions);
                        open = None;
                        free_start = next;
                    }
                }
            }
        }
        ls = next;
    }
    match open {
        Some((_, _, lang, content)) => add_fenced(&mut md, lang, content..text.len(), regions),
        None => scan_free(text, free_start..text.len(), regions, &mut md),
    }
    md
}

fn add_fenced(md: &mut Markup, lang: Option<Lang>, range: Range<usize>, regions: &[Range<usize>]) {
    if let Some(lang) = lang {
        if !range.is_empty() && !overlaps(regions, &range) {
            md.code.push(CodeRegion { range, lang });
        }
    }
}

/// Scans `span` minus the code `regions` for tool-call tags and inline code.
fn scan_free(text: &str, span: Range<usize>, regions: &[Range<usize>], md: &mut Markup) {
    let mut pieces = vec![span];
    for r in regions {
        pieces = pieces
            .into_iter()
            .flat_map(|p| {
                if r.end <= p.start || p.end <= r.start {
                    vec![p]
                } else {
                    vec![p.start..r.start.max(p.start), r.end.min(p.end)..p.end]
                }
            })
            .filter(|p| !p.is_empty())
            .collect();
    }
    let b = text.as_bytes();
    for p in pieces {
        let end = p.end;
        let mut i = p.start;
        while i < end {
            match b[i] {
                b'<' => match match_tag(b, i, end) {
                    Some(e) => {
                        md.removed.push(i..e);
                        i = e;
                    }
                    None => i += 1,
                },
                b'`' => {
                    let n = run(b, i, end, b'`');
                    match close_code_span(b, i + n, end, n) {
                        Some(j) => {
                            md.removed.push(i..i + n);
                            md.removed.push(j..j + n);
                            i = j + n;
                        }
                        None => i += n,
                    }
                }
                _ => i += 1,
            }
        }
    }
}

fn run(b: &[u8], i: usize, end: usize, c: u8) -> usize {
    b[i..end].iter().take_while(|&&x| x == c).count()
}

/// The start of a run of exactly `n` backticks after `i` on the same line.
fn close_code_span(b: &[u8], mut i: usize, end: usize, n: usize) -> Option<usize> {
    while i < end && b[i] != b'\n' {
        if b[i] == b'`' {
            let m = run(b, i, end, b'`');
            if m == n {
                return Some(i);
            }
            i += m;
        } else {
            i += 1;
        }
    }
    None
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// A tool-call tag starting at `b[i] == b'<'` and ending before `end`: the offset after its `>`.
fn match_tag(b: &[u8], i: usize, end: usize) -> Option<usize> {
    let b = &b[..end];
    let mut j = i + 1;
    let closing = b.get(j) == Some(&b'/');
    if closing {
        j += 1;
    }
    let name = |j: usize| {
        let n = b[j..].iter().take_while(|&&c| is_name_char(c)).count();
        (n > 0 && (b[j].is_ascii_alphabetic() || b[j] == b'_')).then_some(j + n)
    };
    let mut start = j;
    j = name(j)?;
    if b.get(j) == Some(&b':') {
        start = j + 1;
        j = name(start)?;
    }
    let tag = &b[start..j];
    if !TAG_NAMES.iter().any(|t| t.as_bytes() == tag) {
        return None;
    }
    let skip_ws = |mut j: usize| {
        while b.get(j).is_some_and(|c| c.is_ascii_whitespace()) {
            j += 1;
        }
        j
    };
    if closing {
        j = skip_ws(j);
        return (b.get(j) == Some(&b'>')).then_some(j + 1);
    }
    if b.get(j) == Some(&b'=') {
        j = attr_value(b, j + 1)?;
    }
    loop {
        let k = skip_ws(j);
        match b.get(k)? {
            b'>' => return Some(k + 1),
            b'/' if b.get(k + 1) == Some(&b'>') => return Some(k + 2),
            &c if k > j && (c.is_ascii_alphabetic() || c == b'_' || c == b':') => {
                j = k + b[k..]
                    .iter()
                    .take_while(|&&c| is_name_char(c) || c == b':' || c == b'.')
                    .count();
                let k = skip_ws(j);
                if b.get(k) == Some(&b'=') {
                    j = attr_value(b, skip_ws(k + 1))?;
                }
            }
            _ => return None,
        }
    }
}

/// An attribute value at `j` (quoted either way, or unquoted): the offset after it.
fn attr_value(b: &[u8], j: usize) -> Option<usize> {
    match *b.get(j)? {
        q @ (b'"' | b'\'') => b[j + 1..].iter().position(|&c| c == q).map(|p| j + 2 + p),
        _ => {
            let n = b[j..]
                .iter()
                .take_while(|&&c| !c.is_ascii_whitespace() && !b"\"'<>=`".contains(&c))
                .count();
            (n > 0).then_some(j + n)
        }
    }
}

/// The whitespace step (see the module documentation).
fn remove_whitespace(text: &str, keep: &mut [bool]) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(p, c)) in chars.iter().enumerate() {
        if !c.is_whitespace() {
            continue;
        }
        let word_space = c == ' ' && chars.get(k + 1).is_some_and(|&(_, n)| !n.is_whitespace());
        if !word_space {
            keep[p..p + c.len_utf8()].fill(false);
        }
    }
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let n = run(b, i, b.len(), c);
        if n >= 3 && b"-=*#_~".contains(&c) {
            keep[i..i + n].fill(false);
        }
        i += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::trajectory::SegmentKind;
    use proptest::prelude::*;

    /// The text with every run of removed characters wrapped in `«` `»`: exact, and readable.
    fn view(text: &str, keep: &[bool]) -> String {
        assert_eq!(keep.len(), text.len());
        let mut out = String::new();
        let mut removing = false;
        for (p, c) in text.char_indices() {
            let k = keep[p];
            assert!(
                keep[p..p + c.len_utf8()].iter().all(|&x| x == k),
                "split char at {p}"
            );
            if !k && !removing {
                out.push('«');
            } else if k && removing {
                out.push('»');
            }
            removing = !k;
            out.push(c);
        }
        if removing {
            out.push('»');
        }
        out
    }

    /// The kept characters.
    fn kept(text: &str, keep: &[bool]) -> String {
        let bytes: Vec<u8> = text
            .bytes()
            .zip(keep)
            .filter(|(_, &k)| k)
            .map(|(b, _)| b)
            .collect();
        String::from_utf8(bytes).expect("mask splits a character")
    }

    fn action(text: &str) -> Segment {
        Segment::plain(SegmentKind::Action, text)
    }

    /// `text` with the first occurrence of each `code` snippet marked as a code region.
    fn with_code(text: &str, code: &[(&str, Lang)]) -> Segment {
        let mut seg = action(text);
        for &(snippet, lang) in code {
            let s = text.find(snippet).expect("snippet in text");
            seg.code.push(CodeRegion {
                range: s..s + snippet.len(),
                lang,
            });
        }
        seg
    }

    const MARKUP: CleanSteps = CleanSteps {
        markup: true,
        whitespace: false,
        comments: false,
    };
    const COMMENTS: CleanSteps = CleanSteps {
        markup: false,
        whitespace: false,
        comments: true,
    };
    const WHITESPACE: CleanSteps = CleanSteps {
        markup: false,
        whitespace: true,
        comments: false,
    };

    fn clean(seg: &Segment, steps: CleanSteps) -> (String, CleanStats) {
        let mut stats = CleanStats::default();
        let keep = clean_action(seg, steps, &mut stats);
        (view(&seg.text, &keep), stats)
    }

    const EDIT: &str = "<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n<parameter=path>/repo/src/app.py</parameter>\n<parameter=new_str>\n    # handle empty input\n    if not rows:  # nothing to do\n        return []\n</parameter>\n</function>";
    const NEW_STR: &str =
        "    # handle empty input\n    if not rows:  # nothing to do\n        return []\n";

    #[test]
    fn no_steps_keep_everything() {
        let seg = with_code(EDIT, &[(NEW_STR, Lang::Python)]);
        let mut stats = CleanStats::default();
        assert!(clean_action(&seg, CleanSteps::default(), &mut stats)
            .iter()
            .all(|&k| k));
        assert_eq!(stats, CleanStats::default());
    }

    #[test]
    fn realistic_edit_each_step_and_all() {
        let seg = with_code(EDIT, &[(NEW_STR, Lang::Python)]);
        let (v, stats) = clean(&seg, MARKUP);
        assert_eq!(
            v,
            "«<function=str_replace_editor>»\n«<parameter=command>»str_replace«</parameter>»\n\
             «<parameter=path>»/repo/src/app.py«</parameter>»\n«<parameter=new_str>»\n    \
             # handle empty input\n    if not rows:  # nothing to do\n        return []\n\
             «</parameter>»\n«</function>»"
        );
        assert_eq!(stats, CleanStats::default());

        let (v, stats) = clean(&seg, COMMENTS);
        assert_eq!(
            v,
            "<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n\
             <parameter=path>/repo/src/app.py</parameter>\n<parameter=new_str>\n    \
             «# handle empty input»\n    if not rows:  «# nothing to do»\n        return []\n\
             </parameter>\n</function>"
        );
        let expected = CleanStats {
            code_regions: 1,
            parsed: 1,
            fallbacks: 0,
            lexical_only: 0,
            comment_bytes: 35,
        };
        assert_eq!(stats, expected);

        let (v, _) = clean(&seg, WHITESPACE);
        assert_eq!(
            v,
            "<function=str_replace_editor>«\n»<parameter=command>str_replace</parameter>«\n»\
             <parameter=path>/repo/src/app.py</parameter>«\n»<parameter=new_str>«\n   » \
             # handle empty input«\n   » if not rows:« » # nothing to do«\n       » return []«\n»\
             </parameter>«\n»</function>"
        );

        let mut stats = CleanStats::default();
        let keep = clean_action(&seg, CleanSteps::ALL, &mut stats);
        assert_eq!(
            kept(EDIT, &keep),
            "str_replace/repo/src/app.py  if not rows:  return []"
        );
        assert_eq!(stats, expected);

        // The same with the tags given as explicit markup ranges (as a reader would).
        let mut seg2 = seg.clone();
        for tag in ["<function=str_replace_editor>", "</function>"] {
            let s = EDIT.find(tag).unwrap();
            seg2.markup.push(s..s + tag.len());
        }
        let (v, _) = clean(&seg2, MARKUP);
        assert!(v.starts_with("«<function=str_replace_editor>»\n«<parameter=command>»"));
        assert!(v.ends_with("«</parameter>»\n«</function>»"));
    }

    #[test]
    fn raw_text_with_fence_and_swe_agent_command() {
        let seg = action("I'll run the tests.\n```bash\npytest -x tests/ # quick\n```");
        let (v, stats) = clean(
            &seg,
            CleanSteps {
                whitespace: false,
                ..CleanSteps::ALL
            },
        );
        assert_eq!(
            v,
            "I'll run the tests.\n«```bash\n»pytest -x tests/ «# quick»\n«```»"
        );
        assert_eq!((stats.code_regions, stats.parsed), (1, 1));
        let mut stats = CleanStats::default();
        let keep = clean_action(&seg, CleanSteps::ALL, &mut stats);
        assert_eq!(
            view(&seg.text, &keep),
            "I'll run the tests.«\n```bash\n»pytest -x tests/ «# quick\n```»"
        );

        let cmd = "grep -rn \"foo#bar\" src/  # find it";
        let seg = with_code(cmd, &[(cmd, Lang::Bash)]);
        let (v, _) = clean(&seg, CleanSteps::ALL);
        assert_eq!(v, "grep -rn \"foo#bar\" src/« » «# find it»");
    }

    #[test]
    fn comments_inside_strings_are_kept() {
        let py = "s = \"# not a comment\"  # real";
        let js = "let a = \"// no\"; // yes\nlet b = '/* */'; /* c */";
        let text = format!("```python\n{py}\n```\n```js\n{js}\n```\n");
        let (v, stats) = clean(&action(&text), COMMENTS);
        assert_eq!(
            v,
            "```python\ns = \"# not a comment\"  «# real»\n```\n```js\nlet a = \"// no\"; «// yes»\nlet b = '/* */'; «/* c */»\n```\n"
        );
        assert_eq!(
            (stats.code_regions, stats.parsed, stats.comment_bytes),
            (2, 2, 19)
        );
    }

    #[test]
    fn hash_in_shell_versus_python() {
        let text = "echo a#b # c\nx = 1 # c\n";
        let seg = with_code(
            text,
            &[
                ("echo a#b # c\n", Lang::Bash),
                ("x = 1 # c\n", Lang::Python),
            ],
        );
        let (v, stats) = clean(&seg, COMMENTS);
        assert_eq!(v, "echo a#b «# c»\nx = 1 «# c»\n");
        assert_eq!(stats.parsed, 2);
        // The same code, broken so that both fall back to the lexical rules.
        let text = "echo a#b # c\nif then\nx = (1 # c\n";
        let seg = with_code(
            text,
            &[
                ("echo a#b # c\nif then\n", Lang::Bash),
                ("x = (1 # c\n", Lang::Python),
            ],
        );
        let (v, stats) = clean(&seg, COMMENTS);
        assert_eq!(v, "echo a#b «# c»\nif then\nx = (1 «# c»\n");
        assert_eq!((stats.parsed, stats.fallbacks), (0, 2));
    }

    #[test]
    fn nested_fences() {
        let text = "Plan:\n````markdown\n```python\n# x\n```\n````\nThen `ls -a` and ``a`b``, not ```x```.\n";
        let (v, stats) = clean(
            &action(text),
            CleanSteps {
                whitespace: false,
                ..CleanSteps::ALL
            },
        );
        assert_eq!(
            v,
            "Plan:\n«````markdown\n»```python\n# x\n```\n«````\n»Then «`»ls -a«`» and «``»a`b«``», not «```»x«```».\n"
        );
        assert_eq!(stats.code_regions, 0, "a markdown block is not code");

        // A python block holding a ``` line; `~~~` does not close a backtick fence; a longer
        // run does; an unclosed fence runs to the end.
        let text = "````python\nx = '''\n```\n'''  # c\n~~~\n````\n```py\ny = 1 # d\n`````\n~~~bash\nls # e\n";
        let (v, stats) = clean(
            &action(text),
            CleanSteps {
                whitespace: false,
                ..CleanSteps::ALL
            },
        );
        assert_eq!(
            v,
            "«````python\n»x = '''\n```\n'''  «# c»\n~~~\n«````\n```py\n»y = 1 «# d»\n«`````\n~~~bash\n»ls «# e»\n"
        );
        // The python block has `~~~` as a statement line, which does not parse.
        assert_eq!(
            (stats.code_regions, stats.parsed, stats.fallbacks),
            (3, 2, 1)
        );
    }

    #[test]
    fn xml_tags_with_attributes_and_non_tags() {
        let text = "<function_calls>\n<invoke name=\"bash\">\n<parameter name=\"cmd\" note='a>b'>cat < in > out</parameter>\n</invoke>\n</function_calls>\n<tool_call >x</tool_call> <bash/> <div class=\"a\">y</div> <functions> < function> <ns:invoke\nname='z'>";
        let (v, _) = clean(&action(text), MARKUP);
        assert_eq!(
            v,
            "«<function_calls>»\n«<invoke name=\"bash\">»\n«<parameter name=\"cmd\" note='a>b'>»cat < in > out«</parameter>»\n«</invoke>»\n«</function_calls>»\n«<tool_call >»x«</tool_call>» «<bash/>» <div class=\"a\">y</div> <functions> < function> «<ns:invoke\nname='z'>»"
        );
        // Unterminated quote: not a tag.
        let (v, _) = clean(&action("<invoke name=\"bash>"), MARKUP);
        assert_eq!(v, "<invoke name=\"bash>");

        // Inside code, tags and comparisons stay.
        let code = "if a<b and c>d:\n    s = \"<parameter=x>`y`\"\n";
        let text = format!("<function=python>\n{code}</function>");
        let seg = with_code(&text, &[(code, Lang::Python)]);
        let (v, stats) = clean(
            &seg,
            CleanSteps {
                whitespace: false,
                ..CleanSteps::ALL
            },
        );
        assert_eq!(v, format!("«<function=python>»\n{code}«</function>»"));
        assert_eq!(stats.parsed, 1);
    }

    #[test]
    fn unicode_masks_per_character() {
        // U+3000 and U+00A0 are whitespace; CJK and emoji in code and comments.
        let text = "运行\u{a0}`测试` 🎉\n```python\n名 = \"火\u{3000}🚀\"  # 注释 🎉\n```\n";
        let mut stats = CleanStats::default();
        let keep = clean_action(&action(text), CleanSteps::ALL, &mut stats);
        assert_eq!(keep.len(), text.len());
        assert_eq!(text.len(), 70);
        assert_eq!(
            view(text, &keep),
            "运行«\u{a0}`»测试«`» 🎉«\n```python\n»名 = \"火«\u{3000}»🚀\"« » «# 注释 🎉\n```\n»"
        );
        assert_eq!(kept(text, &keep), "运行测试 🎉名 = \"火🚀\" ");
        assert_eq!(keep.iter().filter(|&&k| k).count(), 33);
        assert_eq!((stats.parsed, stats.comment_bytes), (1, 13));

        // An explicit range that splits a character removes the whole character.
        let mut seg = action("a火b");
        seg.markup.push(2..3);
        let mut stats = CleanStats::default();
        assert_eq!(
            clean_action(&seg, MARKUP, &mut stats),
            [true, false, false, false, true]
        );
    }

    #[test]
    fn indented_edit_fragment_parses_after_dedent() {
        let frag = "        # guard\n        if x:\n            return 1  # early\n        y = 2\n";
        let seg = with_code(frag, &[(frag, Lang::Python)]);
        let (v, stats) = clean(&seg, COMMENTS);
        assert_eq!(
            v,
            "        «# guard»\n        if x:\n            return 1  «# early»\n        y = 2\n"
        );
        assert_eq!((stats.parsed, stats.fallbacks), (1, 0));
    }

    #[test]
    fn broken_region_falls_back_and_is_counted() {
        let code = "def f(:\n    return '#'  # c\n";
        let cpp = "int n = 1; // c\n";
        let text = format!("{code}{cpp}");
        let seg = with_code(&text, &[(code, Lang::Python), (cpp, Lang::Cpp)]);
        let (v, stats) = clean(&seg, COMMENTS);
        assert_eq!(v, "def f(:\n    return '#'  «# c»\nint n = 1; «// c»\n");
        let expected = CleanStats {
            code_regions: 2,
            parsed: 0,
            fallbacks: 1,
            lexical_only: 1,
            comment_bytes: 7,
        };
        assert_eq!(stats, expected);
        let mut total = CleanStats::default();
        total.merge(&stats);
        total.merge(&stats);
        assert_eq!(
            (total.code_regions, total.fallbacks, total.comment_bytes),
            (4, 2, 14)
        );
    }

    #[test]
    fn whitespace_rule() {
        let text = "  def f(a,  b):\n\tx = a\t+ b \n\n=====\n# ---- __init__ a ** b ~~~ ___ #";
        let (v, _) = clean(&action(text), WHITESPACE);
        assert_eq!(
            v,
            "« » def f(a,« » b):«\n\t»x = a«\t»+ b« \n\n=====\n»# «----» __init__ a ** b «~~~» «___» #"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn never_panics_and_is_per_character(
            text in prop_oneof![
                any::<String>(),
                "[a-z#/*`'\"<>=~_ \\n\\t\\\\(){};$-]{0,120}",
                "(```(python|bash|js|rust|go|c|cpp|java|ts)?\\n|<function=f>|</parameter>|<invoke name=\"x\">|# |// |/\\*|\\*/|'''|\"|'|`|\\n|    |火|🎉|\u{3000}|[a-z]{1,4}| |=====){0,40}",
            ],
            regions in proptest::collection::vec((0usize..200, 0usize..200, 0usize..9), 0..4),
            markup in proptest::collection::vec((0usize..200, 0usize..200), 0..3),
            steps in 0u8..8,
        ) {
            const LANGS: [Lang; 9] = [Lang::Python, Lang::Bash, Lang::JavaScript, Lang::TypeScript,
                Lang::Rust, Lang::Go, Lang::C, Lang::Cpp, Lang::Java];
            let mut seg = action(&text);
            seg.code = regions.into_iter().map(|(a, b, l)| CodeRegion { range: a.min(b)..a.max(b), lang: LANGS[l] }).collect();
            seg.markup = markup.into_iter().map(|(a, b)| a.min(b)..a.max(b)).collect();
            let steps = CleanSteps { markup: steps & 1 != 0, whitespace: steps & 2 != 0, comments: steps & 4 != 0 };
            let mut stats = CleanStats::default();
            let keep = clean_action(&seg, steps, &mut stats);
            prop_assert_eq!(keep.len(), text.len());
            for (p, c) in text.char_indices() {
                prop_assert!(keep[p..p + c.len_utf8()].iter().all(|&k| k == keep[p]));
            }
            prop_assert_eq!(stats.code_regions, stats.parsed + stats.fallbacks + stats.lexical_only);
        }
    }
}
