//! Languages of code inside actions, chosen from file extensions and markdown fence tags.

use serde::Serialize;

/// A language whose comments can be removed from action code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Python,
    Bash,
    JavaScript,
    TypeScript,
    Rust,
    Go,
    C,
    Cpp,
    Java,
}

impl Lang {
    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Bash => "bash",
            Lang::JavaScript => "javascript",
            Lang::TypeScript => "typescript",
            Lang::Rust => "rust",
            Lang::Go => "go",
            Lang::C => "c",
            Lang::Cpp => "cpp",
            Lang::Java => "java",
        }
    }

    /// The language of a file, from its extension (`src/app.py` -> Python).
    pub fn from_path(path: &str) -> Option<Lang> {
        let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
        Some(match ext.as_str() {
            "py" | "pyi" | "pyw" => Lang::Python,
            "sh" | "bash" | "zsh" => Lang::Bash,
            "js" | "mjs" | "cjs" | "jsx" => Lang::JavaScript,
            "ts" | "mts" | "cts" | "tsx" => Lang::TypeScript,
            "rs" => Lang::Rust,
            "go" => Lang::Go,
            "c" | "h" => Lang::C,
            "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" => Lang::Cpp,
            "java" => Lang::Java,
            _ => return None,
        })
    }

    /// The language named by a markdown fence's info string (```` ```python ````).
    pub fn from_fence_tag(tag: &str) -> Option<Lang> {
        let tag = tag.split_whitespace().next()?.to_ascii_lowercase();
        Some(match tag.as_str() {
            "python" | "py" | "python3" => Lang::Python,
            "bash" | "sh" | "shell" | "console" | "zsh" => Lang::Bash,
            "javascript" | "js" | "jsx" | "node" => Lang::JavaScript,
            "typescript" | "ts" | "tsx" => Lang::TypeScript,
            "rust" | "rs" => Lang::Rust,
            "go" | "golang" => Lang::Go,
            "c" => Lang::C,
            "cpp" | "c++" | "cxx" => Lang::Cpp,
            "java" => Lang::Java,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_from_paths_and_fences() {
        assert_eq!(Lang::from_path("/repo/src/app.py"), Some(Lang::Python));
        assert_eq!(Lang::from_path("lib/Main.JAVA"), Some(Lang::Java));
        assert_eq!(Lang::from_path("Makefile"), None);
        assert_eq!(Lang::from_path("archive.tar.gz"), None);
        assert_eq!(Lang::from_fence_tag("python title=x"), Some(Lang::Python));
        assert_eq!(Lang::from_fence_tag("diff"), None);
    }
}
