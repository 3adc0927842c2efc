//! `hesnr report-select` end to end on a tiny model: profile, select, then the report of the
//! selection, with and without a model; changed inputs and wrong folders are refused.

use std::path::{Path, PathBuf};

use crate::common::{default_tiny, hesnr, scratch};
use serde_json::Value;

fn ok(out: &std::process::Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed: {stderr}");
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write_jsonl(path: &Path, records: &[Value]) {
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// Twelve code documents (one with a hostile id and text) and six general ones.
fn corpus(dir: &Path) -> (PathBuf, PathBuf) {
    let code = dir.join("code.jsonl");
    let mut recs = Vec::new();
    for i in 0..12 {
        let text = if i % 4 == 3 {
            // Boilerplate-like.
            "public int getX() { return x; }\npublic void setX(int x) { this.x = x; }\n"
                .repeat(1 + i % 3)
        } else {
            format!(
                "def step_{i}(values, k={k}):\n    \"\"\"Fold {i} values.\"\"\"\n    total = 0\n    for v in values[:k]:\n        total += v * {m} - {i}\n    return total if total > {k} else -total\n",
                k = i % 5 + 2,
                m = i * 3 + 1
            )
        };
        let id = if i == 5 {
            "<script>alert('id')</script>".to_string()
        } else {
            format!("code-{i}")
        };
        let text = if i == 5 {
            format!("{text}# <script>alert('text')</script>\n")
        } else {
            text
        };
        recs.push(serde_json::json!({"id": id, "text": text, "metadata": {"i": i}}));
    }
    write_jsonl(&code, &recs);
    let general = dir.join("general.jsonl");
    let recs: Vec<Value> = (0..6)
        .map(|i| {
            serde_json::json!({"id": format!("gen-{i}"), "text": format!("Paragraph {i} about gardens and the weather in spring, with {i} examples.")})
        })
        .collect();
    write_jsonl(&general, &recs);
    (code, general)
}

#[test]
fn profile_select_report() {
    let dir = scratch().join("report");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (code, general) = corpus(&dir);
    let model = default_tiny();
    let prof = dir.join("profile");
    ok(
        &hesnr(&["profile", s(&code), "--out", s(&prof), "--model", s(&model)]),
        "profile",
    );
    let config = dir.join("select.toml");
    std::fs::write(
        &config,
        format!(
            r#"seed = 3
general_ratio = 0.3
token_budget = 400

[[source]]
name = "code"
documents = "{}"
profile = "{}"
filter = [{{ score = "tokens", min = 30 }}, {{ score = "decision_density", top_fraction = 0.8 }}]
weight = {{ score = "decision_density", clip = [0.05, 1.0] }}

[[source]]
name = "general"
general = true
documents = "{}"
"#,
            s(&code),
            s(&prof),
            s(&general)
        ),
    )
    .unwrap();
    let sel = dir.join("selected");
    ok(&hesnr(&["select", s(&config), "--out", s(&sel)]), "select");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(sel.join("manifest.json")).unwrap()).unwrap();

    // With the model: decision tokens highlighted.
    let html = dir.join("report.html");
    let err = ok(
        &hesnr(&[
            "report-select",
            s(&sel),
            "-o",
            s(&html),
            "--model",
            s(&model),
            "--top",
            "6",
        ]),
        "report-select",
    );
    assert!(err.contains("re-scoring 1/"), "{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.to_lowercase().contains("<script"),
        "unescaped <script in the report"
    );
    // Escaped as minijinja does (`'` as `&#x27;`, `/` as `&#x2f;`).
    assert!(page.contains("&lt;script&gt;alert(&#x27;id&#x27;)&lt;&#x2f;script&gt;"));
    for name in ["code", "general"] {
        assert!(
            page.contains(&format!("<td class=\"name\">{name}")),
            "{name}"
        );
    }
    // The manifest's counts, per source and per filter.
    for src in manifest["sources"].as_array().unwrap() {
        for key in ["read", "kept", "selected"] {
            for unit in ["documents", "tokens"] {
                let v = &src[key][unit];
                assert!(
                    page.contains(&format!("<td class=\"num\">{v}</td>")),
                    "{} {key} {unit} = {v}",
                    src["name"]
                );
            }
        }
        for (j, f) in src["filters"].as_array().unwrap().iter().enumerate() {
            let label = format!(
                "dropped by filter {}: {}",
                j + 1,
                f["filter"].as_str().unwrap()
            );
            assert!(page.contains(&label), "{label}");
        }
    }
    assert!(
        page.contains("<span class=\"decision\""),
        "no decision token highlighted"
    );
    assert!(page.contains("<svg"), "no histogram");
    assert!(page.contains("decision_density"));

    // The JSON model agrees with the manifest.
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    for (a, b) in json["sources"]
        .as_array()
        .unwrap()
        .iter()
        .zip(manifest["sources"].as_array().unwrap())
    {
        assert_eq!(a["name"], b["name"]);
        for key in ["read", "kept", "selected", "filters", "no_profile"] {
            assert_eq!(a["counts"][key], b[key], "{key}");
        }
    }
    let code_src = &json["sources"][0];
    let shown =
        code_src["top"].as_array().unwrap().len() + code_src["bottom"].as_array().unwrap().len();
    assert_eq!(shown, 12, "every code document is ranked (12 <= 2 * 6)");
    let selected_shown = code_src["top"]
        .as_array()
        .unwrap()
        .iter()
        .chain(code_src["bottom"].as_array().unwrap())
        .filter(|d| d["selected"] == true)
        .count() as u64;
    assert_eq!(
        selected_shown,
        manifest["sources"][0]["selected"]["documents"]
    );
    let hist = &code_src["histograms"][0];
    let all: u64 = hist["all"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(all + hist["null"][0].as_u64().unwrap(), 12);
    // Re-scoring gave the profile's decision tokens (same model, same settings).
    assert!(
        !json["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("re-scored")),
        "{}",
        json["notes"]
    );

    // Without a model: the text, no highlighting (and no model is needed).
    let plain = dir.join("plain.html");
    ok(
        &hesnr(&["report-select", s(&sel), "-o", s(&plain), "--no-tokens"]),
        "report-select --no-tokens",
    );
    let page = std::fs::read_to_string(&plain).unwrap();
    assert!(!page.contains("<span class=\"decision\""));
    assert!(!page.to_lowercase().contains("<script"));
    assert!(page.contains("def step_0(values"));
    assert!(page.contains("# &lt;script&gt;alert(&#x27;text&#x27;)&lt;&#x2f;script&gt;"));
    assert!(dir.join("plain.json").is_file());

    // Not a selection folder.
    let o = hesnr(&["report-select", s(&prof), "--no-tokens"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("manifest.json"), "{e}");

    // An input changed since the selection.
    let mut text = std::fs::read_to_string(&general).unwrap();
    text.push_str("{\"id\": \"gen-new\", \"text\": \"More.\"}\n");
    std::fs::write(&general, text).unwrap();
    let o = hesnr(&["report-select", s(&sel), "--no-tokens"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("general.jsonl") && e.contains("changed since the selection"),
        "{e}"
    );
}
