//! `cargo xtask modgraph`: the module import graph of every crate of the workspace, and a check
//! that it has no cycle (no two modules of a crate import each other, directly or through
//! others). A step of `cargo xtask test`.
//!
//! A module is a source file (`mod x;`); inline modules (`mod tests { .. }`, `mod sealed { .. }`)
//! belong to their file. An edge `a -> b` means that code of `a` names an item defined in `b`:
//! through a `use` (`use crate::b::Item`, `use super::b`, `pub use b::Item` in a parent) or a
//! path in code (`crate::b::f()`, `b::f()` after `use crate::b`). A path through a re-export is
//! followed to the module that defines the item, so `crate::Error` re-exported by `lib.rs` from
//! `error.rs` is an edge to `error`, not to the crate root. Comments and string literals are
//! skipped; macros are not expanded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One module of a crate.
#[derive(Default, Debug)]
struct Module {
    /// Child modules declared with `mod x;` (file modules) or `mod x { .. }` (inline), by name
    /// → their module path.
    children: BTreeMap<String, String>,
    /// Names brought in by `use`, by bound name → the full path (from the crate root).
    imports: BTreeMap<String, Vec<String>>,
    /// Glob imports (`use x::*`), as full paths of what they import from.
    globs: Vec<Vec<String>>,
    /// Every path this module's code names, from the crate root (unresolved).
    paths: Vec<Vec<String>>,
    /// The file module this (possibly inline) module belongs to.
    file: String,
}

/// A crate's modules by path (`""` is the root; `a::b` a nested module).
type Modules = BTreeMap<String, Module>;

/// `cargo xtask modgraph`: prints every crate's graph; fails on a cycle.
pub fn run() -> ExitCode {
    let mut crates: Vec<(String, PathBuf)> = crate::cmd::member_crates()
        .into_iter()
        .map(|c| (c.clone(), Path::new("crates").join(c).join("src")))
        .collect();
    crates.push(("evloop".into(), PathBuf::from("src")));
    crates.push(("xtask".into(), PathBuf::from("xtask/src")));
    crates.push(("evloop-bench".into(), PathBuf::from("benches/src")));
    let mut cycles = Vec::new();
    let mut known_cycles = 0;
    let allowed = allowlist();
    for (name, src) in crates {
        let root = ["lib.rs", "main.rs"]
            .iter()
            .map(|f| src.join(f))
            .find(|p| p.exists());
        let Some(root) = root else { continue };
        let graph = match graph_of(&root) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("modgraph: {name}: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("{name}");
        for (m, deps) in &graph {
            let deps: Vec<&str> = deps.iter().map(|d| display(d)).collect();
            if deps.is_empty() {
                println!("  {}", display(m));
            } else {
                println!("  {} -> {}", display(m), deps.join(", "));
            }
        }
        for c in find_cycles(&graph) {
            let text: Vec<&str> = c.iter().map(|m| display(m)).collect();
            let members: BTreeSet<&str> = scc_of(&graph, &c[0]).into_iter().collect();
            let known = allowed
                .iter()
                .any(|(k, mods)| *k == name && members.iter().all(|m| mods.contains(*m)));
            let comp: Vec<&str> = members.iter().copied().collect();
            if known {
                println!(
                    "  known cycle (listed in {ALLOW}): {} [component: {}]",
                    text.join(" -> "),
                    comp.join(", ")
                );
                known_cycles += 1;
            } else {
                println!(
                    "  CYCLE: {} [component: {}]",
                    text.join(" -> "),
                    comp.join(", ")
                );
                cycles.push(format!("{name}: {}", text.join(" -> ")));
            }
        }
    }
    if known_cycles > 0 {
        println!(
            "modgraph: {known_cycles} known cycle(s) listed in {ALLOW}, to be removed; any other \
             cycle fails"
        );
    }
    if cycles.is_empty() {
        println!("modgraph: no module cycles beyond the known ones");
        ExitCode::SUCCESS
    } else {
        eprintln!("modgraph: {} module cycle(s):", cycles.len());
        for c in &cycles {
            eprintln!("  {c}");
        }
        ExitCode::FAILURE
    }
}

/// Cycles that exist and are being removed: `crate module module ...` per line, `#` comments.
/// A cycle passes only if every module of its component is listed for its crate, so a new
/// module joining a known cycle, or a new cycle, fails.
const ALLOW: &str = "xtask/modgraph-known-cycles.txt";

/// The known cycles: (crate, modules of the component).
fn allowlist() -> Vec<(String, BTreeSet<String>)> {
    let text = std::fs::read_to_string(ALLOW).unwrap_or_default();
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let krate = words.next()?.to_string();
            Some((krate, words.map(str::to_string).collect()))
        })
        .collect()
}

/// The strongly connected component of `m` (the modules on a cycle through it).
fn scc_of<'a>(graph: &'a BTreeMap<String, BTreeSet<String>>, m: &str) -> Vec<&'a str> {
    let reach = |from: &str| -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = vec![from];
        while let Some(x) = stack.pop() {
            if let Some(deps) = graph.get(x) {
                for d in deps {
                    if seen.insert(d.as_str()) {
                        stack.push(d.as_str());
                    }
                }
            }
        }
        seen
    };
    let fwd = reach(m);
    graph
        .keys()
        .map(String::as_str)
        .filter(|k| fwd.contains(k) && reach(k).contains(m))
        .map(display)
        .collect()
}

/// The crate root shows as `(root)`.
fn display(m: &str) -> &str {
    if m.is_empty() {
        "(root)"
    } else {
        m
    }
}

/// The file-module graph of the crate rooted at `root`.
fn graph_of(root: &Path) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let mut mods = Modules::new();
    load(root, "", true, &mut mods)?;
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, m) in &mods {
        if m.file == *path {
            graph.entry(path.clone()).or_default();
        }
    }
    for (path, m) in &mods {
        for p in &m.paths {
            if let Some(target) = resolve(&mods, path, p, 0) {
                let to = mods[&target].file.clone();
                if to != m.file && std::env::var_os("MODGRAPH_WHY").is_some() {
                    eprintln!(
                        "  {} -> {}: {}",
                        display(&m.file),
                        display(&to),
                        p.join("::")
                    );
                }
                if to != m.file {
                    graph.entry(m.file.clone()).or_default().insert(to);
                }
            }
        }
    }
    Ok(graph)
}

/// Reads the file module `path` from `file` and the modules it declares.
fn load(file: &Path, path: &str, is_dir_owner: bool, mods: &mut Modules) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let toks = tokens(&strip(&text));
    let dir = if is_dir_owner {
        file.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        file.with_extension("")
    };
    let mut files = Vec::new();
    parse(&toks, path, path, mods, &mut files);
    for (name, child) in files {
        let a = dir.join(format!("{name}.rs"));
        let b = dir.join(&name).join("mod.rs");
        if a.exists() {
            load(&a, &child, false, mods)?;
        } else if b.exists() {
            load(&b, &child, true, mods)?;
        }
    }
    Ok(())
}

/// Joins a module path and a child name.
fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}::{name}")
    }
}

/// The segments of a module path.
fn segs(path: &str) -> Vec<String> {
    if path.is_empty() {
        Vec::new()
    } else {
        path.split("::").map(str::to_string).collect()
    }
}

/// Parses the tokens of module `path` (in file module `file`): `mod` declarations, `use`
/// trees and paths; inline modules recursively. File modules to load are pushed to `files`.
fn parse(
    toks: &[String],
    path: &str,
    file: &str,
    mods: &mut Modules,
    files: &mut Vec<(String, String)>,
) {
    mods.entry(path.to_string()).or_default().file = file.to_string();
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].as_str();
        // `#[cfg(test)] mod x { .. }`: unit tests may use anything of their crate; they are
        // not part of its module structure.
        if t == "#"
            && toks.get(i + 1).is_some_and(|t| t == "[")
            && toks.get(i + 2).is_some_and(|t| t == "cfg")
        {
            let close = matching(toks, i + 1);
            let attr = &toks[i + 2..close.min(toks.len())];
            let test_only = attr.iter().any(|t| t == "test")
                && !attr
                    .windows(3)
                    .any(|w| w[0] == "not" && w[1] == "(" && w[2] == "test");
            let mut j = close + 1;
            if toks.get(j).is_some_and(|t| t == "pub") {
                j += 1;
            }
            if test_only
                && toks.get(j).is_some_and(|t| t == "mod")
                && toks.get(j + 2).is_some_and(|t| t == "{")
            {
                i = matching(toks, j + 2) + 1;
                continue;
            }
        }
        if t == "mod" && i + 2 < toks.len() && is_ident(&toks[i + 1]) {
            let name = toks[i + 1].clone();
            let child = join(path, &name);
            mods.get_mut(path)
                .expect("entered")
                .children
                .insert(name.clone(), child.clone());
            if toks[i + 2] == ";" {
                files.push((name, child));
                i += 3;
                continue;
            }
            if toks[i + 2] == "{" {
                let end = matching(toks, i + 2);
                parse(&toks[i + 3..end], &child, file, mods, files);
                i = end + 1;
                continue;
            }
        }
        if t == "use" {
            let end = toks[i..]
                .iter()
                .position(|t| t == ";")
                .map_or(toks.len(), |p| i + p);
            let mut leaves = Vec::new();
            use_tree(&toks[i + 1..end], &mut Vec::new(), &mut leaves);
            for (full, bound) in leaves {
                let Some(abs) = absolute(mods, path, &full) else {
                    continue;
                };
                let m = mods.get_mut(path).expect("entered");
                match bound {
                    Some(b) => {
                        m.imports.insert(b, abs.clone());
                    }
                    None => m.globs.push(abs.clone()),
                }
                m.paths.push(abs);
            }
            i = end + 1;
            continue;
        }
        // A path in code: IDENT (:: IDENT)+, not preceded by `::` (that is a later segment).
        if is_ident(t)
            && toks.get(i + 1).is_some_and(|n| n == "::")
            && (i == 0 || toks[i - 1] != "::")
            && (i == 0 || toks[i - 1] != "$")
        {
            let mut p = vec![t.to_string()];
            let mut j = i + 1;
            while j + 1 < toks.len() && toks[j] == "::" && is_ident(&toks[j + 1]) {
                p.push(toks[j + 1].clone());
                j += 2;
            }
            if let Some(abs) = absolute(mods, path, &p) {
                mods.get_mut(path).expect("entered").paths.push(abs);
            } else if let Some(first) = mods[path].imports.get(&p[0]).cloned() {
                // `x::f()` where `x` was imported (a module, most likely).
                let mut abs = first;
                abs.extend(p[1..].iter().cloned());
                mods.get_mut(path).expect("entered").paths.push(abs);
            }
            i = j;
            continue;
        }
        i += 1;
    }
}

/// Makes a path absolute (from the crate root) if it starts with `crate`, `super`, `self` or
/// a child module of `path`; `None` for paths into other crates.
fn absolute(mods: &Modules, path: &str, p: &[String]) -> Option<Vec<String>> {
    let first = p.first()?;
    let mut base = segs(path);
    let mut rest = p;
    match first.as_str() {
        "crate" => {
            base.clear();
            rest = &p[1..];
        }
        "self" => rest = &p[1..],
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        name => {
            if !mods
                .get(path)
                .is_some_and(|m| m.children.contains_key(name))
            {
                return None;
            }
        }
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// Flattens a `use` tree into (full path, bound name) leaves; a glob has no bound name.
fn use_tree(
    toks: &[String],
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    let mut i = 0;
    let start = prefix.len();
    while i < toks.len() {
        let t = toks[i].as_str();
        match t {
            "::" => i += 1,
            "{" => {
                let end = matching(toks, i);
                // Split the inside at top-level commas.
                let inner = &toks[i + 1..end];
                let mut depth = 0;
                let mut from = 0;
                for (k, t) in inner.iter().enumerate() {
                    match t.as_str() {
                        "{" => depth += 1,
                        "}" => depth -= 1,
                        "," if depth == 0 => {
                            use_tree(&inner[from..k], prefix, out);
                            from = k + 1;
                        }
                        _ => {}
                    }
                }
                use_tree(&inner[from..], prefix, out);
                prefix.truncate(start);
                return;
            }
            "*" => {
                out.push((prefix.clone(), None));
                prefix.truncate(start);
                return;
            }
            "as" => {
                let alias = toks.get(i + 1).cloned().unwrap_or_default();
                if alias != "_" {
                    out.push((prefix.clone(), Some(alias)));
                }
                prefix.truncate(start);
                return;
            }
            "self" if prefix.len() > start || !prefix.is_empty() => {
                // `use a::{self}`: the prefix itself.
                if toks.get(i + 1).is_some_and(|n| n == "as") {
                    i += 1;
                    continue;
                }
                let bound = prefix.last().cloned();
                out.push((prefix.clone(), bound));
                prefix.truncate(start);
                return;
            }
            _ if is_ident(t) => {
                prefix.push(t.to_string());
                i += 1;
            }
            _ => i += 1,
        }
    }
    if prefix.len() > start {
        let bound = prefix.last().cloned();
        out.push((prefix.clone(), bound));
    }
    prefix.truncate(start);
}

/// The module that defines what the absolute path `p` names, seen from module `from`.
fn resolve(mods: &Modules, from: &str, p: &[String], depth: usize) -> Option<String> {
    if depth > 16 {
        return None;
    }
    let _ = from;
    let mut cur = String::new();
    for (k, seg) in p.iter().enumerate() {
        let m = mods.get(&cur)?;
        if let Some(child) = m.children.get(seg) {
            cur = child.clone();
            continue;
        }
        if let Some(target) = m.imports.get(seg) {
            let mut t = target.clone();
            t.extend(p[k + 1..].iter().cloned());
            if t.as_slice() != p {
                return resolve(mods, &cur, &t, depth + 1).or(Some(cur));
            }
        }
        for g in &m.globs {
            let mut t = g.clone();
            t.extend(p[k..].iter().cloned());
            if let Some(r) = resolve(mods, &cur, &t, depth + 1) {
                if r != cur {
                    return Some(r);
                }
            }
        }
        // An item (or an enum variant, an associated item) defined in `cur`.
        return Some(cur);
    }
    Some(cur)
}

/// Cycles: each strongly connected component of more than one module, shown as one cycle
/// through it.
fn find_cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let nodes: Vec<&String> = graph.keys().collect();
    let index: BTreeMap<&String, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let n = nodes.len();
    // Reachability by DFS from every node (crates are small).
    let reach = |a: usize| -> Vec<bool> {
        let mut seen = vec![false; n];
        let mut stack = vec![a];
        while let Some(x) = stack.pop() {
            for d in &graph[nodes[x]] {
                if let Some(&y) = index.get(d) {
                    if !seen[y] {
                        seen[y] = true;
                        stack.push(y);
                    }
                }
            }
        }
        seen
    };
    let reach: Vec<Vec<bool>> = (0..n).map(reach).collect();
    let mut done = vec![false; n];
    let mut out = Vec::new();
    for a in 0..n {
        if done[a] || !reach[a][a] {
            continue;
        }
        let scc: Vec<usize> = (0..n).filter(|&b| reach[a][b] && reach[b][a]).collect();
        for &b in &scc {
            done[b] = true;
        }
        // One cycle through `a`: a shortest path back to `a` (BFS).
        let mut prev = vec![usize::MAX; n];
        let mut queue = std::collections::VecDeque::from([a]);
        let mut found = false;
        while let Some(x) = queue.pop_front() {
            for d in &graph[nodes[x]] {
                let Some(&y) = index.get(d) else { continue };
                if y == a {
                    prev[a] = x;
                    found = true;
                    break;
                }
                if prev[y] == usize::MAX && y != a {
                    prev[y] = x;
                    queue.push_back(y);
                }
            }
            if found {
                break;
            }
        }
        let mut back = Vec::new();
        let mut x = prev[a];
        while x != a && x != usize::MAX {
            back.push(nodes[x].clone());
            x = prev[x];
        }
        back.reverse();
        let mut c = vec![nodes[a].clone()];
        c.extend(back);
        c.push(nodes[a].clone());
        out.push(c);
    }
    out
}

/// The index of the bracket closing the one at `open`.
fn matching(toks: &[String], open: usize) -> usize {
    let mut depth = 0;
    for (k, t) in toks.iter().enumerate().skip(open) {
        match t.as_str() {
            "{" | "(" | "[" => depth += 1,
            "}" | ")" | "]" => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && t.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Source text without comments, string, byte-string and char literals (each replaced by a
/// space).
fn strip(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
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
            continue;
        }
        // Raw strings: r"..", r#".."#, br#".."#.
        let raw_start = if c == 'r' && (next == Some('"') || next == Some('#')) {
            Some(i + 1)
        } else if c == 'b' && next == Some('r') {
            Some(i + 2)
        } else {
            None
        };
        let prev_ident = i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_');
        if let (Some(mut j), false) = (raw_start, prev_ident) {
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) == Some(&'"') {
                j += 1;
                loop {
                    if j >= b.len() {
                        break;
                    }
                    if b[j] == '"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                i = j;
                out.push(' ');
                continue;
            }
        }
        if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(' ');
            continue;
        }
        if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            if next == Some('\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
                out.push(' ');
                continue;
            }
            if b.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push(' ');
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Identifiers, `::`, brackets and single punctuation characters.
fn tokens(src: &str) -> Vec<String> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let s = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(b[s..i].iter().collect());
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(files: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
        let dir = std::env::temp_dir().join(format!(
            "evloop-modgraph-{}-{}",
            std::process::id(),
            files.len() * 7 + files[0].1.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let g = graph_of(&dir.join("lib.rs")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        g
    }

    #[test]
    fn re_exports_are_followed_and_cycles_found() {
        let g = graph(&[
            ("lib.rs", "mod a; mod b;\npub use a::A;\npub use b::B;\n"),
            ("a.rs", "use crate::B;\npub struct A;\n"),
            (
                "b.rs",
                "pub struct B;\nfn f() { let _ = crate::A; }\n// crate::nothing\n",
            ),
        ]);
        assert_eq!(g["a"], BTreeSet::from(["b".to_string()]));
        assert_eq!(g["b"], BTreeSet::from(["a".to_string()]));
        let cycles = find_cycles(&g);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].first(), cycles[0].last());
    }

    #[test]
    fn super_paths_inline_modules_and_strings() {
        let g = graph(&[
            ("lib.rs", "mod t;\n"),
            ("t/mod.rs", "mod raw;\nmod spawn;\npub use spawn::go;\n"),
            ("t/raw.rs", "pub struct H;\n#[cfg(test)]\nmod tests { use super::*; }\n"),
            (
                "t/spawn.rs",
                "use super::raw::{self, H};\npub fn go() { let _ = \"crate::t::spawn\"; let _ = raw::H; }\n",
            ),
        ]);
        assert_eq!(g["t::spawn"], BTreeSet::from(["t::raw".to_string()]));
        assert!(g["t::raw"].is_empty());
        assert!(find_cycles(&g).is_empty());
    }
}
