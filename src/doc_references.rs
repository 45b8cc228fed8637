//! Every reference the sources make to the project's own documents resolves inside the
//! repository: `maths §N` names a section `## §N` of docs/maths.md, a `docs/…` path names a file
//! that exists, and nothing cites a document a fresh clone does not have.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every text file under the folders the code lives in, with Cargo.toml and the README.
fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("rs" | "wgsl" | "toml" | "md" | "sh")
            ) {
                out.push(p);
            }
        }
    }
    let mut out = vec![root().join("Cargo.toml"), root().join("README.md")];
    for dir in [
        "src", "shaders", "tests", "benches", "examples", "docs", "scripts",
    ] {
        walk(&root().join(dir), &mut out);
    }
    out
}

/// The section numbers `## §N` of docs/maths.md.
fn maths_sections() -> Vec<u32> {
    let text = std::fs::read_to_string(root().join("docs/maths.md")).expect("docs/maths.md");
    text.lines()
        .filter_map(|l| l.strip_prefix("## §"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The section numbers cited right after each `maths §` in `text`: `§2`, a range `§2–3` (both
/// ends) and a list `§3, §9`.
fn cited_sections(text: &str) -> Vec<u32> {
    fn number(s: &str) -> (Option<u32>, &str) {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        (s[..end].parse().ok(), &s[end..])
    }
    let mut out = Vec::new();
    for (i, _) in text.match_indices("maths §") {
        let mut rest = &text[i + "maths ".len()..];
        while let Some(after) = rest.strip_prefix('§') {
            let (n, tail) = number(after);
            let Some(n) = n else { break };
            out.push(n);
            rest = tail;
            if let Some(after) = rest.strip_prefix('–') {
                let (m, tail) = number(after);
                out.extend(m);
                rest = tail;
            }
            match rest.strip_prefix(", ") {
                Some(tail) if tail.starts_with('§') => rest = tail,
                _ => break,
            }
        }
    }
    out
}

/// The `docs/…` paths named in `text` (letters, digits, `_ . / -`), trailing dots trimmed.
fn cited_docs(text: &str) -> Vec<String> {
    text.match_indices("docs/")
        .filter(|(i, _)| *i == 0 || !text[..*i].ends_with(|c: char| c.is_alphanumeric()))
        .map(|(i, _)| {
            let tail: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "_./-".contains(*c))
                .collect();
            tail.trim_end_matches('.').to_string()
        })
        .collect()
}

#[test]
fn the_section_parser_reads_single_ranges_and_lists() {
    assert_eq!(cited_sections("(maths §2)"), [2]);
    assert_eq!(cited_sections("maths §2–3: x"), [2, 3]);
    assert_eq!(cited_sections("maths §3, §9, order"), [3, 9]);
    assert_eq!(cited_sections("maths §10. Then 4"), [10]);
    assert_eq!(
        cited_docs("see docs/maths.md. And docs/results/x.md)"),
        ["docs/maths.md", "docs/results/x.md"]
    );
}

#[test]
fn every_maths_section_and_docs_path_the_sources_cite_exists() {
    let sections = maths_sections();
    assert!(
        sections.len() >= 13,
        "docs/maths.md has sections {sections:?}"
    );
    let mut missing = Vec::new();
    for path in sources() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let name = path
            .strip_prefix(root())
            .unwrap_or(&path)
            .display()
            .to_string();
        if name == "src/doc_references.rs" {
            continue; // its own examples
        }
        if text.contains("SPEC §") || text.contains("SPEC.md") {
            missing.push(format!(
                "{name}: cites SPEC, which is not in the repository"
            ));
        }
        for n in cited_sections(&text) {
            if !sections.contains(&n) {
                missing.push(format!("{name}: maths §{n}"));
            }
        }
        for doc in cited_docs(&text) {
            if doc.ends_with('/') || doc.contains("results/<") {
                continue;
            }
            if !root().join(&doc).exists() {
                missing.push(format!("{name}: {doc}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "unresolved references:\n{}",
        missing.join("\n")
    );
}
