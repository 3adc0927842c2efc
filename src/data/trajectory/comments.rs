//! Comments in action code: found by parsing the code with its language's tree-sitter grammar,
//! or, where that is not possible, by a string-aware lexical rule.
//!
//! [`find_comments`] is the entry point. It dedents the code (edit fragments such as an
//! `old_str`/`new_str` of a method body are indented as a whole, which a Python parser rejects),
//! parses it, and returns the byte ranges of every node whose kind contains `comment`, mapped back
//! to the original offsets. Python docstrings are string nodes and stay, as with Python's `ast`.
//! If the tree has errors the region is scanned lexically instead ([`Method::Fallback`]); C++ has
//! no grammar here and is always scanned lexically ([`Method::LexicalOnly`]).
//!
//! The lexical rules ([`lexical_comments`]) know each language's string syntax:
//! - Python: `#` to end of line, outside `'...'`, `"..."`, `'''...'''`, `"""..."""` (backslash
//!   escapes; one-quote strings end at an unescaped newline).
//! - Bash: `#` only at the start of a word (line start, or after whitespace or one of `;|&(`),
//!   outside `'...'`, `"..."`, `$'...'` and backslash escapes, and not in here-document bodies; so
//!   `echo a#b`, `$#` and `${#arr[@]}` keep their `#`.
//! - C family (C, C++, Java, Go, Rust, JavaScript, TypeScript): `//` to end of line and
//!   `/* ... */` (nested in Rust), outside `"..."` and `'...'`; JavaScript/TypeScript also skip
//!   `` `...` `` template strings, Go `` `...` `` raw strings, Java `"""..."""` text blocks, Rust
//!   `r#"..."#` raw strings and lifetimes (`'a`), C++ digit separators (`1'000`).

use std::cell::RefCell;
use std::ops::Range;

use tree_sitter::{Language, Parser};

use super::Lang;

/// How the comments of one code region were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// The grammar parsed the region without errors.
    Parsed,
    /// The parse tree had errors; the lexical rule was used.
    Fallback,
    /// The language has no grammar here (C++); the lexical rule was used.
    LexicalOnly,
}

/// The comments of one code region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comments {
    /// Byte ranges into the region's text, sorted and non-overlapping.
    pub ranges: Vec<Range<usize>>,
    pub method: Method,
}

/// Byte ranges of the comments in `code`: parsed if the grammar accepts it, else lexical.
pub fn find_comments(code: &str, lang: Lang) -> Comments {
    if lang == Lang::Cpp {
        return Comments {
            ranges: lexical_comments(code, lang),
            method: Method::LexicalOnly,
        };
    }
    match parsed_comments(code, lang) {
        Some(ranges) => Comments {
            ranges,
            method: Method::Parsed,
        },
        None => Comments {
            ranges: lexical_comments(code, lang),
            method: Method::Fallback,
        },
    }
}

/// The tree-sitter grammars used; TypeScript is tried as `.ts`, then as `.tsx`.
#[derive(Clone, Copy)]
enum Grammar {
    Python,
    Bash,
    JavaScript,
    TypeScript,
    Tsx,
    Rust,
    Go,
    C,
    Java,
}

const GRAMMARS: usize = 9;

impl Grammar {
    fn language(self) -> Language {
        match self {
            Grammar::Python => tree_sitter_python::LANGUAGE.into(),
            Grammar::Bash => tree_sitter_bash::LANGUAGE.into(),
            Grammar::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Grammar::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Grammar::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Grammar::Rust => tree_sitter_rust::LANGUAGE.into(),
            Grammar::Go => tree_sitter_go::LANGUAGE.into(),
            Grammar::C => tree_sitter_c::LANGUAGE.into(),
            Grammar::Java => tree_sitter_java::LANGUAGE.into(),
        }
    }

    fn for_lang(lang: Lang) -> &'static [Grammar] {
        match lang {
            Lang::Python => &[Grammar::Python],
            Lang::Bash => &[Grammar::Bash],
            Lang::JavaScript => &[Grammar::JavaScript],
            Lang::TypeScript => &[Grammar::TypeScript, Grammar::Tsx],
            Lang::Rust => &[Grammar::Rust],
            Lang::Go => &[Grammar::Go],
            Lang::C => &[Grammar::C],
            Lang::Java => &[Grammar::Java],
            Lang::Cpp => &[],
        }
    }
}

thread_local! {
    /// One parser per grammar and thread, made on first use: this runs once per action.
    static PARSERS: RefCell<[Option<Parser>; GRAMMARS]> = const { RefCell::new([const { None }; GRAMMARS]) };
}

/// Comment ranges from an error-free parse of the dedented code, mapped back to `code`'s
/// offsets; `None` if the language has no grammar or every grammar's tree has errors.
pub fn parsed_comments(code: &str, lang: Lang) -> Option<Vec<Range<usize>>> {
    let (text, map) = dedent(code);
    Grammar::for_lang(lang).iter().find_map(|&g| {
        let ranges = parse_with(g, text.as_deref().unwrap_or(code))?;
        Some(match &map {
            None => ranges,
            Some(map) => ranges
                .into_iter()
                .map(|r| map[r.start]..map[r.end - 1] + 1)
                .collect(),
        })
    })
}

fn parse_with(g: Grammar, code: &str) -> Option<Vec<Range<usize>>> {
    PARSERS.with(|cell| {
        let mut parsers = cell.borrow_mut();
        let slot = &mut parsers[g as usize];
        if slot.is_none() {
            let mut p = Parser::new();
            p.set_language(&g.language()).ok()?;
            *slot = Some(p);
        }
        let parser = slot.as_mut()?;
        let tree = parser.parse(code, None);
        // A parse that did not finish leaves the parser mid-way; start the next one clean.
        parser.reset();
        let tree = tree?;
        let root = tree.root_node();
        if root.has_error() {
            return None;
        }
        let mut ranges = Vec::new();
        let mut cursor = root.walk();
        'walk: loop {
            let node = cursor.node();
            if node.kind().contains("comment") {
                let r = node.byte_range();
                if !r.is_empty() {
                    ranges.push(r);
                }
            } else if cursor.goto_first_child() {
                continue;
            }
            while !cursor.goto_next_sibling() {
                if !cursor.goto_parent() {
                    break 'walk;
                }
            }
        }
        Some(ranges)
    })
}

/// Removes the leading whitespace (spaces and tabs) common to all non-blank lines. Returns the
/// dedented text and, for each of its bytes, the offset in `code` (plus one entry for the end),
/// or `None`s if there is nothing to remove.
fn dedent(code: &str) -> (Option<String>, Option<Vec<usize>>) {
    let mut common: Option<&[u8]> = None;
    for line in code.split('\n') {
        let b = line.as_bytes();
        if b.iter().all(|c| c.is_ascii_whitespace()) {
            continue;
        }
        let lead = &b[..b.iter().take_while(|&&c| c == b' ' || c == b'\t').count()];
        common = Some(match common {
            None => lead,
            Some(c) => &c[..c.iter().zip(lead).take_while(|(a, b)| a == b).count()],
        });
    }
    let common = match common {
        Some(c) if !c.is_empty() => c,
        _ => return (None, None),
    };
    let mut out = String::with_capacity(code.len());
    let mut map = Vec::with_capacity(code.len() + 1);
    let mut start = 0;
    for line in code.split_inclusive('\n') {
        let b = line.as_bytes();
        let strip = b.iter().zip(common).take_while(|(a, b)| a == b).count();
        out.push_str(&line[strip..]);
        map.extend(start + strip..start + line.len());
        start += line.len();
    }
    map.push(code.len());
    (Some(out), Some(map))
}

/// Comment ranges by the language's lexical rule (see the module documentation).
pub fn lexical_comments(code: &str, lang: Lang) -> Vec<Range<usize>> {
    match lang {
        Lang::Python => hash_python(code.as_bytes()),
        Lang::Bash => hash_bash(code.as_bytes()),
        _ => c_family(code.as_bytes(), lang),
    }
}

/// End of the line that contains `i`: the offset of its `\n` (or `\r\n`), or the text's end.
fn line_end(b: &[u8], i: usize) -> usize {
    let mut e = b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| i + p);
    if e > i && b[e - 1] == b'\r' {
        e -= 1;
    }
    e
}

/// Skips a quoted string whose opening `quote` (of `qlen` bytes) starts at `i`; returns the offset
/// after its close (or the end). `escapes`: backslash escapes the next byte. `multiline`: a newline
/// does not end it.
fn skip_string(b: &[u8], i: usize, quote: &[u8], escapes: bool, multiline: bool) -> usize {
    let mut j = i + quote.len();
    while j < b.len() {
        if escapes && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j..].starts_with(quote) {
            return j + quote.len();
        }
        if !multiline && b[j] == b'\n' {
            return j;
        }
        j += 1;
    }
    b.len()
}

fn hash_python(b: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'#' => {
                let e = line_end(b, i);
                out.push(i..e);
                i = e;
            }
            q @ (b'\'' | b'"') => {
                i = if b[i..].starts_with(&[q, q, q]) {
                    skip_string(b, i, &[q, q, q], true, true)
                } else {
                    skip_string(b, i, &[q], true, false)
                };
            }
            _ => i += 1,
        }
    }
    out
}

fn hash_bash(b: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    // Here-documents opened on the current line: (delimiter, strip leading tabs).
    let mut heredocs: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'\'' if i > 0 && b[i - 1] == b'$' => i = skip_string(b, i, b"'", true, true),
            b'\'' => i = skip_string(b, i, b"'", false, true),
            b'"' => i = skip_string(b, i, b"\"", true, true),
            b'#' if i == 0
                || matches!(
                    b[i - 1],
                    b' ' | b'\t' | b'\n' | b'\r' | b';' | b'|' | b'&' | b'('
                ) =>
            {
                let e = line_end(b, i);
                out.push(i..e);
                i = e;
            }
            b'<' if b[i..].starts_with(b"<<") && !b[i..].starts_with(b"<<<") => {
                let (next, doc) = heredoc_start(b, i + 2);
                if let Some(doc) = doc {
                    heredocs.push(doc);
                }
                i = next;
            }
            b'\n' if !heredocs.is_empty() => {
                i += 1;
                for (delim, tabs) in heredocs.drain(..) {
                    // Skip body lines up to and including the delimiter line.
                    while i < b.len() {
                        let e = b[i..]
                            .iter()
                            .position(|&c| c == b'\n')
                            .map_or(b.len(), |p| i + p);
                        let mut line = &b[i..e];
                        if tabs {
                            while let [b'\t', rest @ ..] = line {
                                line = rest;
                            }
                        }
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        i = (e + 1).min(b.len());
                        if line == delim.as_slice() {
                            break;
                        }
                    }
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Parses a here-document operator's delimiter after `<<` (at `i`). Returns where scanning goes
/// on and the delimiter, if it is one (a word starting with a letter or `_`, or quoted).
fn heredoc_start(b: &[u8], mut i: usize) -> (usize, Option<(Vec<u8>, bool)>) {
    let tabs = b.get(i) == Some(&b'-');
    if tabs {
        i += 1;
    }
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    let quote = match b.get(i) {
        Some(&q @ (b'\'' | b'"')) => {
            i += 1;
            Some(q)
        }
        Some(b'\\') => {
            i += 1;
            None
        }
        _ => None,
    };
    let start = i;
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.';
    while i < b.len() && word(b[i]) {
        i += 1;
    }
    let delim = b[start..i].to_vec();
    let ok = match quote {
        Some(q) if b.get(i) == Some(&q) => {
            i += 1;
            !delim.is_empty()
        }
        Some(_) => false,
        None => delim
            .first()
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_'),
    };
    (i, ok.then_some((delim, tabs)))
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Length in bytes of the UTF-8 character starting with byte `c`.
fn utf8_len(c: u8) -> usize {
    match c {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

fn c_family(b: &[u8], lang: Lang) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if b[i..].starts_with(b"//") {
            let e = line_end(b, i);
            out.push(i..e);
            i = e;
        } else if b[i..].starts_with(b"/*") {
            let nest = lang == Lang::Rust;
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                if b[j..].starts_with(b"/*") && (depth == 0 || nest) {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            out.push(i..j);
            i = j;
        } else if c == b'"' {
            i = if lang == Lang::Java && b[i..].starts_with(b"\"\"\"") {
                skip_string(b, i, b"\"\"\"", true, true)
            } else {
                skip_string(b, i, b"\"", true, lang == Lang::Rust)
            };
        } else if c == b'\'' {
            i = match lang {
                Lang::Rust => {
                    // A char literal ('x', '\n', '\u{..}') or a lifetime / label ('a).
                    if b.get(i + 1) == Some(&b'\\') {
                        skip_string(b, i, b"'", true, false)
                    } else if let Some(&n) = b.get(i + 1) {
                        let after = i + 1 + utf8_len(n);
                        if b.get(after) == Some(&b'\'') {
                            after + 1
                        } else {
                            i + 1
                        }
                    } else {
                        i + 1
                    }
                }
                Lang::Cpp if i > 0 && is_ident(b[i - 1]) && number_before(b, i) => i + 1,
                _ => skip_string(b, i, b"'", true, false),
            };
        } else if c == b'`' && matches!(lang, Lang::JavaScript | Lang::TypeScript) {
            i = skip_string(b, i, b"`", true, true);
        } else if c == b'`' && lang == Lang::Go {
            i = skip_string(b, i, b"`", false, true);
        } else if lang == Lang::Rust
            && (c == b'r' || c == b'b' || c == b'c')
            && (i == 0 || !is_ident(b[i - 1]))
        {
            i = rust_raw_string(b, i).unwrap_or(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// Whether the identifier-like word that ends at `i` starts with a digit (a C++ number with
/// digit separators, `1'000'000`).
fn number_before(b: &[u8], i: usize) -> bool {
    let mut s = i;
    while s > 0 && (is_ident(b[s - 1]) || b[s - 1] == b'\'') {
        s -= 1;
    }
    b[s].is_ascii_digit()
}

/// A Rust raw string (`r"..."`, `r#"..."#`, `br"..."`, `cr"..."`) starting at `i`: its end.
fn rust_raw_string(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    if b[j] != b'r' {
        j += 1;
        if b.get(j) != Some(&b'r') {
            return None;
        }
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
    j += hashes;
    if b.get(j) != Some(&b'"') {
        return None;
    }
    j += 1;
    while j < b.len() {
        if b[j] == b'"'
            && b[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == b'#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The code with every comment range wrapped in `«` `»`.
    fn show(code: &str, ranges: &[Range<usize>]) -> String {
        let mut out = String::new();
        let mut at = 0;
        for r in ranges {
            out.push_str(&code[at..r.start]);
            out.push('«');
            out.push_str(&code[r.clone()]);
            out.push('»');
            at = r.end;
        }
        out.push_str(&code[at..]);
        out
    }

    /// Both paths: the parse (which must succeed) and the lexical rule give `expected`.
    fn both(code: &str, lang: Lang, expected: &str) {
        let parsed = find_comments(code, lang);
        assert_eq!(parsed.method, Method::Parsed, "{code:?} did not parse");
        assert_eq!(show(code, &parsed.ranges), expected, "parsed");
        assert_eq!(
            show(code, &lexical_comments(code, lang)),
            expected,
            "lexical"
        );
    }

    #[test]
    fn comment_markers_inside_strings_are_kept() {
        both(
            "s = \"# not a comment\"  # real\n",
            Lang::Python,
            "s = \"# not a comment\"  «# real»\n",
        );
        both(
            "t = '''# doc\n'''  # c\nu = 'it''s' # d\n",
            Lang::Python,
            "t = '''# doc\n'''  «# c»\nu = 'it''s' «# d»\n",
        );
        both(
            "let s = \"// no\"; // yes\nlet t = \"/* */\"; /* c */\n",
            Lang::JavaScript,
            "let s = \"// no\"; «// yes»\nlet t = \"/* */\"; «/* c */»\n",
        );
        both(
            "const u = `a // ${x} /* b */`; // t\n",
            Lang::TypeScript,
            "const u = `a // ${x} /* b */`; «// t»\n",
        );
        both(
            "s := `// raw` + \"/*\" // go\n",
            Lang::Go,
            "s := `// raw` + \"/*\" «// go»\n",
        );
        both(
            "char c = '\"'; /* x */ char *s = \"//\"; // y\n",
            Lang::C,
            "char c = '\"'; «/* x */» char *s = \"//\"; «// y»\n",
        );
        both(
            "String s = \"/* no */\"; // yes\n",
            Lang::Java,
            "String s = \"/* no */\"; «// yes»\n",
        );
    }

    #[test]
    fn hash_in_shell_and_python() {
        both("echo a#b # c\n", Lang::Bash, "echo a#b «# c»\n");
        both(
            "n=${#arr[@]}; echo $# \"#q\" '#s' x#y;# z\n",
            Lang::Bash,
            "n=${#arr[@]}; echo $# \"#q\" '#s' x#y;«# z»\n",
        );
        both("x = 1 # c\n", Lang::Python, "x = 1 «# c»\n");
        both("x = a#b\n", Lang::Python, "x = a«#b»\n");
    }

    #[test]
    fn bash_here_documents_are_not_comments() {
        both(
            "cat > t.py <<'EOF'  # write\n# header\nx = 1\nEOF\necho done # ok\n",
            Lang::Bash,
            "cat > t.py <<'EOF'  «# write»\n# header\nx = 1\nEOF\necho done «# ok»\n",
        );
        // Arithmetic shifts are not here-documents.
        assert_eq!(
            show(
                "echo $((1<<2)) # c\n# d\n",
                &lexical_comments("echo $((1<<2)) # c\n# d\n", Lang::Bash)
            ),
            "echo $((1<<2)) «# c»\n«# d»\n"
        );
    }

    #[test]
    fn rust_lifetimes_raw_strings_and_nested_comments() {
        both(
            "fn f<'a>(x: &'a str) -> char { let _ = r#\"// \"no\"\"#; '/' } // c\n/* a /* b */ c */\n",
            Lang::Rust,
            "fn f<'a>(x: &'a str) -> char { let _ = r#\"// \"no\"\"#; '/' } «// c»\n«/* a /* b */ c */»\n",
        );
    }

    #[test]
    fn cpp_is_lexical_only() {
        let code = "int n = 1'000'000; // c\nchar q = '\\''; /* d */\n";
        let c = find_comments(code, Lang::Cpp);
        assert_eq!(c.method, Method::LexicalOnly);
        assert_eq!(
            show(code, &c.ranges),
            "int n = 1'000'000; «// c»\nchar q = '\\''; «/* d */»\n"
        );
    }

    #[test]
    fn indented_fragments_parse_after_dedent() {
        let code =
            "    # handle empty input\n    if not rows:  # nothing to do\n\n        return []\n";
        let c = find_comments(code, Lang::Python);
        assert_eq!(c.method, Method::Parsed);
        assert_eq!(
            show(code, &c.ranges),
            "    «# handle empty input»\n    if not rows:  «# nothing to do»\n\n        return []\n"
        );
        // Tabs, CRLF and a multi-line block comment mapped back across removed indentation.
        let code = "\t\tint x = 1; /* a\r\n\t\t   b */\r\n\t\tx++; // c\r\n";
        let c = find_comments(code, Lang::C);
        assert_eq!(c.method, Method::Parsed);
        assert_eq!(
            show(code, &c.ranges),
            "\t\tint x = 1; «/* a\r\n\t\t   b */»\r\n\t\tx++; «// c\r»\n"
        );
    }

    #[test]
    fn broken_code_falls_back() {
        let code = "def f(:\n    x = '#'  # c\n";
        let c = find_comments(code, Lang::Python);
        assert_eq!(c.method, Method::Fallback);
        assert_eq!(show(code, &c.ranges), "def f(:\n    x = '#'  «# c»\n");
        let code = "if [ x; then # c\n";
        let c = find_comments(code, Lang::Bash);
        assert_eq!(c.method, Method::Fallback);
        assert_eq!(show(code, &c.ranges), "if [ x; then «# c»\n");
    }

    #[test]
    fn docstrings_are_strings() {
        both(
            "def f():\n    \"\"\"Doc # x.\"\"\"\n    return 1  # one\n",
            Lang::Python,
            "def f():\n    \"\"\"Doc # x.\"\"\"\n    return 1  «# one»\n",
        );
    }

    #[test]
    fn unicode_comments_and_code() {
        let code = "名前 = \"🚀 # 火\"  # 注释 🎉\n";
        both(code, Lang::Python, "名前 = \"🚀 # 火\"  «# 注释 🎉»\n");
        let r = &find_comments(code, Lang::Python).ranges;
        assert_eq!(r.len(), 1);
        assert_eq!(r[0], 23..36);
        assert_eq!(code.len(), 37);
    }
}
