//! Every `#[test]` of the workspace's integration tests (`crates/*/tests/**/*.rs`,
//! `tests/**/*.rs`) takes a watchdog guard, so no test can hang `cargo test`.
//!
//! A test passes the check when the first statement of its body calls a function that takes
//! a guard: one of loop-testkit's `watchdog`, `watchdog_for`, `exclusive` or `run`, or a
//! helper of its own test directory (its `common` module, say) whose body calls one of those,
//! directly or through other helpers. First, because the guard also holds the shared side of
//! the test lock: a test that opened fds before taking it could show up in the counts of an
//! `exclusive()` test running at the same time. A test that runs no loop and blocks on
//! nothing may instead carry the comment `// testkit: no watchdog` (with a reason) in its
//! body.
//!
//! The check reads the sources: it blanks comments and literals, finds the functions (with
//! their `impl` type, so `Rig::new` is told from other `new`s), and follows calls by name
//! within each test directory. A helper of the same name defined locally shadows
//! loop-testkit's.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// loop-testkit's functions that take a guard.
const SEEDS: [&str; 4] = ["watchdog", "watchdog_for", "exclusive", "run"];

/// The comment that exempts a test.
const MARKER: &str = "testkit: no watchdog";

/// `src` with comments and the insides of string and char literals replaced by spaces (same
/// byte offsets, same line breaks).
fn blank(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let n = b.len();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    let wipe = |out: &mut Vec<u8>, r: Range<usize>| {
        for k in r {
            if out[k] != b'\n' {
                out[k] = b' ';
            }
        }
    };
    while i < n {
        let c = b[i];
        if c == b'/' && i + 1 < n && b[i + 1] == b'/' {
            let end = b[i..].iter().position(|&x| x == b'\n').map_or(n, |p| i + p);
            wipe(&mut out, i..end);
            i = end;
        } else if c == b'/' && i + 1 < n && b[i + 1] == b'*' {
            let mut depth = 0;
            let mut j = i;
            while j < n {
                if b[j] == b'/' && j + 1 < n && b[j + 1] == b'*' {
                    depth += 1;
                    j += 2;
                } else if b[j] == b'*' && j + 1 < n && b[j + 1] == b'/' {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            wipe(&mut out, i..j);
            i = j;
        } else if c == b'r'
            && (i == 0 || !ident(b[i - 1]) || (b[i - 1] == b'b' && (i < 2 || !ident(b[i - 2]))))
            && i + 1 < n
            && (b[i + 1] == b'"' || b[i + 1] == b'#')
        {
            let mut j = i + 1;
            let mut hashes = 0;
            while j < n && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < n && b[j] == b'"' {
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat(b'#').take(hashes))
                    .collect();
                let start = j + 1;
                let end = b[start..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .map_or(n, |p| start + p);
                wipe(&mut out, start..end);
                i = (end + close.len()).min(n);
            } else {
                i += 1;
            }
        } else if c == b'"' {
            let mut j = i + 1;
            while j < n && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            wipe(&mut out, i + 1..j.min(n));
            i = j + 1;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}', a multi-byte char) or a lifetime ('a).
            let j = if i + 1 < n && b[i + 1] == b'\\' {
                b[i + 2..]
                    .iter()
                    .position(|&x| x == b'\'')
                    .map(|p| i + 2 + p)
            } else {
                let len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                (i + 1 + len < n && b[i + 1 + len] == b'\'').then_some(i + 1 + len)
            };
            match j {
                Some(j) => {
                    wipe(&mut out, i + 1..j);
                    i = j + 1;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8(out).expect("only ASCII bytes were replaced")
}

/// The offset of the `}` matching the `{` at `open`.
fn matching_brace(code: &[u8], open: usize) -> usize {
    let mut depth = 0;
    for (k, &c) in code.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    code.len()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Offsets of the keyword `kw` (as a whole word) in `code`.
fn keyword(code: &str, kw: &str) -> Vec<usize> {
    let b = code.as_bytes();
    code.match_indices(kw)
        .map(|(i, _)| i)
        .filter(|&i| {
            (i == 0 || !is_ident(b[i - 1]))
                && (i + kw.len() >= b.len() || !is_ident(b[i + kw.len()]))
        })
        .collect()
}

/// The identifier starting at or after `from` (skipping spaces).
fn ident_at(code: &str, from: usize) -> (String, usize) {
    let b = code.as_bytes();
    let mut i = from;
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    let start = i;
    while i < b.len() && is_ident(b[i]) {
        i += 1;
    }
    (code[start..i].to_string(), i)
}

/// A function with a body.
struct Func {
    /// `name`, or `Type::name` inside an `impl Type` block.
    key: String,
    /// Offset of its `fn` keyword.
    at: usize,
    /// Its body, braces excluded.
    body: Range<usize>,
}

/// The type an `impl` header is for: `impl<T> Trait for Type<T>` gives `Type`.
fn impl_type(header: &str) -> String {
    let mut plain = String::new();
    let mut depth = 0;
    for c in header.chars() {
        match c {
            '<' => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let plain = plain.split(" where ").next().unwrap_or("");
    let ty = plain.rsplit(" for ").next().unwrap_or("");
    ty.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .rfind(|t| !t.is_empty() && *t != "dyn" && *t != "impl")
        .unwrap_or("")
        .rsplit("::")
        .next()
        .unwrap_or("")
        .to_string()
}

fn functions(code: &str) -> Vec<Func> {
    let b = code.as_bytes();
    let mut impls: Vec<(Range<usize>, String)> = Vec::new();
    for at in keyword(code, "impl") {
        let Some(open) = code[at..].find(['{', ';']).map(|p| at + p) else {
            continue;
        };
        if b[open] == b'{' {
            impls.push((
                open..matching_brace(b, open),
                impl_type(&code[at + 4..open]),
            ));
        }
    }
    let mut out = Vec::new();
    for at in keyword(code, "fn") {
        let (name, after) = ident_at(code, at + 2);
        if name.is_empty() {
            continue; // `fn(` in a type
        }
        // The body starts at the first `{` outside parentheses and brackets, unless a `;`
        // (a declaration) comes first.
        let mut depth = 0i32;
        let mut open = None;
        for (k, &c) in b.iter().enumerate().skip(after) {
            match c {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b'{' if depth == 0 => {
                    open = Some(k);
                    break;
                }
                b';' if depth == 0 => break,
                _ => {}
            }
        }
        let Some(open) = open else { continue };
        let close = matching_brace(b, open);
        let owner = impls
            .iter()
            .filter(|(r, _)| r.start < at && at < r.end)
            .min_by_key(|(r, _)| r.end - r.start);
        let key = match owner {
            Some((_, ty)) if !ty.is_empty() => format!("{ty}::{name}"),
            _ => name,
        };
        out.push(Func {
            key,
            at,
            body: open + 1..close,
        });
    }
    out
}

/// The paths called in `body`: `f(`, `a::b::f(`, `T::f::<U>(`; not methods or macros.
fn calls(body: &str) -> Vec<Vec<String>> {
    let b = body.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !is_ident(b[i]) || (i > 0 && is_ident(b[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        let mut path = Vec::new();
        let mut j = i;
        loop {
            let s = j;
            while j < b.len() && is_ident(b[j]) {
                j += 1;
            }
            path.push(body[s..j].to_string());
            let mut k = j;
            while k < b.len() && b[k].is_ascii_whitespace() {
                k += 1;
            }
            if body[k..].starts_with("::<") {
                // A turbofish: skip the generic arguments.
                let mut depth = 0;
                let mut m = k + 2;
                while m < b.len() {
                    match b[m] {
                        b'<' => depth += 1,
                        b'>' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    m += 1;
                }
                j = m + 1;
                break;
            }
            if body[k..].starts_with("::") && k + 2 < b.len() && is_ident(b[k + 2]) {
                j = k + 2;
                continue;
            }
            break;
        }
        let mut k = j;
        while k < b.len() && b[k].is_ascii_whitespace() {
            k += 1;
        }
        let method = start > 0 && body[..start].trim_end().ends_with('.');
        let definition = body[..start].trim_end().ends_with("fn");
        if k < b.len() && b[k] == b'(' && !method && !definition {
            out.push(path);
        }
        i = j.max(i + 1);
    }
    out
}

/// The first statement of a function body: up to the first `;` outside brackets, or all of
/// it.
fn first_statement(body: &str) -> &str {
    let mut depth = 0i32;
    for (k, c) in body.bytes().enumerate() {
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b';' if depth == 0 => return &body[..k],
            _ => {}
        }
    }
    body
}

/// One test directory's sources, as `(path, text)`.
type Sources = Vec<(PathBuf, String)>;

/// Checks the tests of one test directory; returns how many tests it saw and those that take
/// no guard (`path:line name`).
fn check(files: &Sources) -> (usize, Vec<String>) {
    struct Parsed {
        path: PathBuf,
        raw: String,
        code: String,
        funcs: Vec<Func>,
    }
    let parsed: Vec<Parsed> = files
        .iter()
        .map(|(path, raw)| {
            let code = blank(raw);
            let funcs = functions(&code);
            Parsed {
                path: path.clone(),
                raw: raw.clone(),
                code,
                funcs,
            }
        })
        .collect();
    // Every function's calls, by key (a key defined twice keeps both bodies' calls apart).
    let mut defs: BTreeMap<String, Vec<Vec<Vec<String>>>> = BTreeMap::new();
    for p in &parsed {
        for f in &p.funcs {
            defs.entry(f.key.clone())
                .or_default()
                .push(calls(&p.code[f.body.clone()]));
        }
    }
    let takes = |guarded: &BTreeSet<String>, path: &[String]| -> bool {
        let last = path.last().map(String::as_str).unwrap_or("");
        if path.len() > 1 && path[0] == "loop_testkit" {
            return SEEDS.contains(&last);
        }
        if path.len() >= 2 {
            let typed = format!("{}::{last}", path[path.len() - 2]);
            if defs.contains_key(&typed) {
                return guarded.contains(&typed);
            }
        }
        if defs.contains_key(last) {
            guarded.contains(last)
        } else {
            SEEDS.contains(&last)
        }
    };
    let mut guarded = BTreeSet::new();
    loop {
        let before = guarded.len();
        for (key, bodies) in &defs {
            // Every definition of the name must take a guard.
            if !guarded.contains(key)
                && bodies
                    .iter()
                    .all(|cs| cs.iter().any(|c| takes(&guarded, c)))
            {
                guarded.insert(key.clone());
            }
        }
        if guarded.len() == before {
            break;
        }
    }
    let mut seen = 0;
    let mut missing = Vec::new();
    for p in &parsed {
        for attr in p.code.match_indices("#[test]").map(|(i, _)| i) {
            let Some(f) = p.funcs.iter().filter(|f| f.at > attr).min_by_key(|f| f.at) else {
                continue;
            };
            seen += 1;
            let first = first_statement(&p.code[f.body.clone()]);
            let ok = calls(first).iter().any(|c| takes(&guarded, c))
                || p.raw[f.body.clone()].contains(MARKER);
            if !ok {
                let line = p.raw[..f.at].lines().count() + 1;
                let name = f.key.rsplit("::").next().unwrap_or("");
                missing.push(format!("{}:{line} {name}", p.path.display()));
            }
        }
    }
    (seen, missing)
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| Some(e.ok()?.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/loop-testkit is two levels below the workspace root")
        .to_path_buf()
}

#[test]
fn every_test_in_the_workspace_takes_a_watchdog_guard() {
    // testkit: no watchdog — reads source files, runs no loop, blocks on nothing.
    let root = workspace_root();
    let mut dirs = vec![root.join("tests")];
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("read crates/")
        .filter_map(|e| Some(e.ok()?.path().join("tests")))
        .filter(|p| p.is_dir())
        .collect();
    crates.sort();
    dirs.extend(crates);
    let mut total = 0;
    let mut missing = Vec::new();
    for dir in &dirs {
        let mut files = Vec::new();
        rust_files(dir, &mut files);
        let sources: Sources = files
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).expect("read a test source");
                (p.strip_prefix(&root).unwrap_or(&p).to_path_buf(), text)
            })
            .collect();
        let (seen, m) = check(&sources);
        total += seen;
        missing.extend(m);
    }
    // Guards against a scan that silently finds nothing (a moved directory, a broken parser).
    assert!(total > 400, "only {total} tests found under {dirs:?}");
    assert!(
        missing.is_empty(),
        "{} of {total} tests take no watchdog guard: make `let _w = loop_testkit::watchdog();` \
         (or `exclusive()` for a test that counts fds, threads or children) their first line, \
         or, for a test that runs no loop and blocks on nothing, add the comment \
         `// {MARKER} — <why>`:\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

/// The check itself: a guard through a helper counts, a local helper of the same name as a
/// loop-testkit one shadows it, the marker exempts, everything else is reported.
#[test]
fn the_check_tells_guarded_tests_from_unguarded_ones() {
    // testkit: no watchdog — parses strings only.
    let common = r#"
        pub fn serial() -> loop_testkit::Watchdog { loop_testkit::exclusive() }
        pub struct Rig { w: loop_testkit::Watchdog }
        impl Rig { pub fn new() -> Rig { Rig { w: serial() } } }
        impl Other { pub fn new() -> Other { Other } }
        fn run(x: u32) -> u32 { x } // shadows loop_testkit::run, takes no guard
    "#;
    let tests = r##"
        #[test]
        fn direct() { let _w = loop_testkit::watchdog(); }
        #[test]
        fn through_two_helpers() { let r = Rig::new(); }
        #[test]
        fn other_new_is_not_rigs() { let o = Other::new(); }
        #[test]
        fn shadowed_run() { run(3); }
        #[test]
        fn marked() {
            // testkit: no watchdog — pure arithmetic
            assert_eq!(1 + 1, 2);
        }
        #[test]
        #[cfg_attr(miri, ignore)]
        fn only_a_string() { let s = "watchdog()"; let c = '{'; }
        #[test]
        fn only_a_method() { x.watchdog(); y.exclusive(); }
        #[test]
        fn turbofish() { let _w = loop_testkit::run::<u8>(&lp, 1, f); }
        #[test]
        fn guard_second() { let lp = EventLoop::new(); let _w = loop_testkit::watchdog(); }
    "##;
    let files: Sources = vec![
        ("common/mod.rs".into(), common.into()),
        ("t.rs".into(), tests.into()),
    ];
    let (seen, missing) = check(&files);
    assert_eq!(seen, 9);
    let names: Vec<&str> = missing
        .iter()
        .map(|m| m.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "other_new_is_not_rigs",
            "shadowed_run",
            "only_a_string",
            "only_a_method",
            "guard_second"
        ]
    );
}

#[test]
fn blanking_keeps_offsets_and_removes_comments_and_literals() {
    // testkit: no watchdog — parses strings only.
    let src = "a(\"x{\") // b()\n/* c() /* d() */ */ e('}', '\\'', r#\"f()\"#) g::<T>(h) 'life";
    let code = blank(src);
    assert_eq!(code.len(), src.len());
    assert_eq!(code.lines().count(), src.lines().count());
    let cs: Vec<String> = calls(&code).into_iter().map(|p| p.join("::")).collect();
    assert_eq!(cs, ["a", "e", "g"]);
}
