//! The crate's modules depend on each other one way only: this test reads every source file,
//! builds the graph of which module refers to which, and fails naming a cycle if it has one.
//!
//! Nodes are the top-level modules (`http`, `jobs`, `meta`, `oplog`, …) and, inside `domain`,
//! its areas (`domain::oplog`, `domain::snapshots`, …): the layers and areas a newcomer
//! reasons about. A module referring to its own parent or submodules (`domain::oplog` using
//! `domain::Services`, `domain` declaring and using its areas) is not a cycle. Tests count
//! like any other code: a test helper that needs a higher layer is a dependency too.
//!
//! The reader is written by hand rather than with `syn`: `syn` parses one file into a syntax
//! tree but knows nothing of how files map to modules or what `super::` resolves to, so that
//! part would be written anyway, and its `full` feature would add a sizeable build to every
//! test run. What the graph needs is small: strip comments and literals, follow inline
//! `mod name { … }` blocks, and read every path that starts at `crate`, `super` or `self`
//! (in `use` trees, braces included, and in code). Paths through names a `use` brought in
//! (`coverage::merge`) need no reading: the `use` itself already named the module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One reference between two nodes, and where it was seen (for the failure message).
#[derive(Debug, Clone)]
struct Evidence {
    file: String,
    path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Semi,
    Star,
    Other,
}

/// The module a file defines: `src/domain/oplog/push.rs` → `domain::oplog::push`,
/// `src/domain/oplog/mod.rs` → `domain::oplog`, `src/lib.rs` → the crate root.
fn module_of(relative: &Path) -> Vec<String> {
    let mut segments: Vec<String> = relative
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let file = segments.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        segments.push(stem.to_owned());
    }
    segments
}

/// The source with comments, string, byte-string and char literals replaced by spaces, so
/// braces and paths inside them are not read as code. Lifetimes (`'a`) are kept.
fn strip_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && matches!(next, Some('#') | Some('"'))
            && !is_ident_char_before(&chars, i)
        {
            // A raw string: r"…", r#"…"#, with any number of #.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    Some(_) => j += 1,
                }
            }
            i = j;
            out.push(' ');
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a, 'static).
            let end = if next == Some('\\') {
                (i + 3..chars.len()).find(|&j| chars[j] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    i = end + 1;
                    out.push(' ');
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident_char_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

fn tokenize(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
            continue;
        }
        let token = match c {
            ':' if chars.get(i + 1) == Some(&':') => {
                i += 1;
                Token::PathSep
            }
            '{' => Token::Open,
            '}' => Token::Close,
            ',' => Token::Comma,
            ';' => Token::Semi,
            '*' => Token::Star,
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            _ => Token::Other,
        };
        tokens.push(token);
        i += 1;
    }
    tokens
}

fn ident(tokens: &[Token], at: usize) -> Option<&str> {
    match tokens.get(at) {
        Some(Token::Ident(name)) => Some(name),
        _ => None,
    }
}

/// Reads a path or use tree starting at `at` (`a::b::{c, d::e}`), adding every full path it
/// names to `found` with `prefix` in front. Returns the index after it.
fn read_tree(
    tokens: &[Token],
    mut at: usize,
    prefix: &[String],
    found: &mut Vec<Vec<String>>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match tokens.get(at) {
            Some(Token::Ident(name)) => {
                if name != "self" || path.is_empty() {
                    path.push(name.clone());
                }
                at += 1;
            }
            Some(Token::Open) => {
                at += 1;
                while !matches!(tokens.get(at), None | Some(Token::Close)) {
                    at = read_tree(tokens, at, &path, found);
                    if tokens.get(at) == Some(&Token::Comma) {
                        at += 1;
                    }
                }
                return at + 1;
            }
            Some(Token::Star) => at += 1,
            _ => break,
        }
        if tokens.get(at) == Some(&Token::PathSep) {
            at += 1;
        } else {
            break;
        }
    }
    found.push(path);
    at
}

/// The paths a file refers to, each resolved to a full path from the crate root.
fn references_of(module: &[String], source: &str) -> Vec<(Vec<String>, String)> {
    let tokens = tokenize(&strip_comments_and_literals(source));
    // Inline modules (`mod tests { … }`) open at a brace depth; `super::` inside one
    // refers to the file's module, not its parent.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut out = Vec::new();
    let mut at = 0;
    while at < tokens.len() {
        match &tokens[at] {
            Token::Open => depth += 1,
            Token::Close => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, open)| *open == depth) {
                    inline.pop();
                }
            }
            Token::Ident(word) if word == "mod" => {
                if let (Some(name), Some(Token::Open)) =
                    (ident(&tokens, at + 1), tokens.get(at + 2))
                {
                    inline.push((name.to_owned(), depth));
                    depth += 1;
                    at += 3;
                    continue;
                }
            }
            Token::Ident(word)
                if matches!(word.as_str(), "crate" | "super" | "self")
                    && tokens.get(at + 1) == Some(&Token::PathSep)
                    && (at == 0 || tokens[at - 1] != Token::PathSep) =>
            {
                let here: Vec<String> = module
                    .iter()
                    .cloned()
                    .chain(inline.iter().map(|(name, _)| name.clone()))
                    .collect();
                let mut found = Vec::new();
                let after = read_tree(&tokens, at, &[], &mut found);
                for path in found {
                    let written = path.join("::");
                    if let Some(resolved) = resolve(&here, &path) {
                        out.push((resolved, written));
                    }
                }
                at = after;
                continue;
            }
            _ => {}
        }
        at += 1;
    }
    out
}

/// `crate::…`, `super::…` and `self::…` as a path from the crate root.
fn resolve(here: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut base = here.to_vec();
    let mut rest = path;
    while let Some((first, tail)) = rest.split_first() {
        match first.as_str() {
            "crate" => base.clear(),
            "super" => {
                base.pop()?;
            }
            "self" => {}
            _ => break,
        }
        rest = tail;
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The node a full path belongs to: its longest prefix that is a module, reduced to a
/// top-level module, or to `domain::<area>` inside the domain.
fn node_of(path: &[String], modules: &BTreeSet<Vec<String>>) -> String {
    let known = (0..=path.len())
        .rev()
        .find(|&n| modules.contains(&path[..n]))
        .unwrap_or(0);
    let module = &path[..known];
    match module {
        [] => "crate".to_owned(),
        [domain, area, ..] if domain == "domain" => format!("domain::{area}"),
        [top, ..] => top.clone(),
    }
}

/// Whether one node is the other's parent (the domain and one of its areas, or the crate
/// root and anything): referring to your own parent or submodule is not a cycle.
fn nests(a: &str, b: &str) -> bool {
    a == "crate"
        || b == "crate"
        || b.starts_with(&format!("{a}::"))
        || a.starts_with(&format!("{b}::"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("the source directory is readable")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

type Graph = BTreeMap<String, BTreeMap<String, Evidence>>;

fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let sources: Vec<(String, Vec<String>, String)> = files
        .iter()
        .map(|file| {
            let relative = file.strip_prefix(src).expect("under src");
            let text = std::fs::read_to_string(file).expect("a readable source file");
            (relative.display().to_string(), module_of(relative), text)
        })
        .collect();
    let mut modules: BTreeSet<Vec<String>> = sources.iter().map(|(_, m, _)| m.clone()).collect();
    // Inline modules (`blocks::test_data`) need no entry: they always lie in their file's
    // node, which a path through them reduces to.
    modules.insert(Vec::new());
    let mut graph = Graph::new();
    for (file, module, text) in &sources {
        let from = node_of(module, &modules);
        for (target, written) in references_of(module, text) {
            let to = node_of(&target, &modules);
            if from == to || nests(&from, &to) {
                continue;
            }
            graph
                .entry(from.clone())
                .or_default()
                .entry(to)
                .or_insert_with(|| Evidence {
                    file: file.clone(),
                    path: written,
                });
        }
    }
    graph
}

/// A cycle of the graph, as the nodes along it, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            if let Some(cycle) = visit(next, graph, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

#[test]
fn the_crate_has_no_module_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    if let Some(cycle) = find_cycle(&graph) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|pair| {
                let seen = &graph[&pair[0]][&pair[1]];
                format!(
                    "{} -> {} ({} uses {})",
                    pair[0], pair[1], seen.file, seen.path
                )
            })
            .collect();
        panic!("module cycle: {}", steps.join("; "));
    }
}

#[test]
fn the_reader_resolves_paths_the_way_the_compiler_does() {
    let module = vec!["domain".to_owned(), "oplog".to_owned(), "push".to_owned()];
    let source = r#"
        use super::{blocking, Fixture};
        use crate::domain::{snapshots::block_error, Services};
        // crate::http::in_a_comment
        const TEXT: &str = "crate::jobs::in_a_string";
        fn f<'a>(x: &'a str) -> char { let _ = super::super::keys::x(); '{' }
        #[cfg(test)]
        mod tests {
            use super::*;
            use self::inner::Thing;
            mod inner {}
        }
        fn after() { let _ = self::after; }
    "#;
    let found: Vec<String> = references_of(&module, source)
        .into_iter()
        .map(|(path, _)| path.join("::"))
        .collect();
    assert_eq!(
        found,
        vec![
            "domain::oplog::blocking",
            "domain::oplog::Fixture",
            "domain::snapshots::block_error",
            "domain::Services",
            "domain::keys::x",
            "domain::oplog::push",
            "domain::oplog::push::tests::inner::Thing",
            "domain::oplog::push::after",
        ]
    );
    let modules: BTreeSet<Vec<String>> = [vec![], vec!["domain".into()], module.clone()]
        .into_iter()
        .collect();
    assert_eq!(node_of(&module, &modules), "domain::oplog");
    assert_eq!(
        node_of(&["domain".into(), "Services".into()], &modules),
        "domain"
    );
    assert!(nests("domain", "domain::oplog"));
    assert!(!nests("domain::oplog", "domain::oplogs"));
}

#[test]
fn a_cycle_is_found_along_its_edges() {
    let edge = |from: &str, to: &str| {
        (
            from.to_owned(),
            BTreeMap::from([(
                to.to_owned(),
                Evidence {
                    file: format!("{from}.rs"),
                    path: format!("crate::{to}"),
                },
            )]),
        )
    };
    let layered: Graph = [edge("http", "domain"), edge("domain", "meta")].into();
    assert_eq!(find_cycle(&layered), None);
    let cyclic: Graph = [edge("a", "b"), edge("b", "c"), edge("c", "a")].into();
    assert_eq!(
        find_cycle(&cyclic),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
