//! `cargo xtask conformance [--write]`: keeps `CONFORMANCE.md` true.
//!
//! `CONFORMANCE.md` has one table row per behaviour id (`CORE-07`, `NET-64`, ...):
//!
//! ```text
//! | id | behaviour | status | tests |
//! ```
//!
//! The id, the one-line behaviour and the status are written by hand (the status starts with
//! one of [`STATUSES`]); the tests column is generated: every `#[test]` function under
//! `crates/*/tests`, `crates/*/src`, `tests/` and `examples/` whose name starts with the id
//! in snake case (`core_07_...`). A name may start with several ids, each counted:
//! `net_39_40_...` (same prefix, numbers in a row) and `sub_05_sub_22_...` both cover two.
//! Also generated: the suffix `; no test yet` of the status of a row without tests, and the
//! headline between `<!-- conformance:summary -->` markers in `CONFORMANCE.md` and
//! `README.md`. Deviations from asyncio are explained under the heading
//! `## Deviations from asyncio`, one `### ` heading per deviation naming its ids.
//!
//! Without `--write` it checks and fails when an id cited anywhere in the repository (docs,
//! code, test names) has no row, when a row lists a test that no longer exists, when a
//! generated part is stale, when a status is not one of the known ones, or when a row marked
//! as a deviation has no explanation (or an explanation names an id not marked so). With
//! `--write` it regenerates the generated parts first, then checks the rest.
//!
//! Keeping the hand-written part in `CONFORMANCE.md` itself, rather than in a data file the
//! document is generated from, keeps one file to read and to edit: a row is changed where it
//! is read, and the generator touches only the cells it owns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The file this command keeps.
const FILE: &str = "CONFORMANCE.md";
/// The README, whose headline is kept too.
const README: &str = "README.md";
/// Id prefixes, as cited (`CORE-07`) and as in test names (`core_07`).
const PREFIXES: [(&str, &str); 9] = [
    ("CORE", "core"),
    ("TIMER", "timer"),
    ("NET", "net"),
    ("STREAM", "stream"),
    ("PIPE", "pipe"),
    ("SUB", "sub"),
    ("SIG", "sig"),
    ("EXEC", "exec"),
    ("TLS", "tls"),
];
/// What a status may start with.
pub const STATUSES: [&str; 4] = [
    "implemented",
    "Rust analogue",
    "deviation",
    "not implemented",
];
/// The generated status suffix of a row without tests.
const NO_TEST: &str = "; no test yet";
/// The markers around the generated headline.
const SUMMARY_OPEN: &str = "<!-- conformance:summary -->";
const SUMMARY_CLOSE: &str = "<!-- /conformance:summary -->";
/// How many out-of-date test lists are shown one by one.
const STALE_SHOWN: usize = 10;
/// The heading of the section that explains the deviations.
const DEVIATIONS: &str = "## Deviations from asyncio";

/// One test function named after ids.
struct TestFn {
    name: String,
    path: String,
    line: usize,
    ids: Vec<String>,
}

/// One table row of `CONFORMANCE.md`.
struct Row {
    id: String,
    /// Index of its line in the file.
    line: usize,
    behaviour: String,
    /// The hand-written status, without the generated suffix.
    status: String,
    /// Whether the status carried the generated suffix.
    no_test_suffix: bool,
    /// `(name, path)` pairs listed in the tests cell.
    tests: Vec<(String, String)>,
}

pub fn run(args: &[String]) -> ExitCode {
    let write = args.iter().any(|a| a == "--write");
    if let Some(bad) = args.iter().find(|a| *a != "--write") {
        eprintln!("usage: cargo xtask conformance [--write]   (unknown argument {bad})");
        return ExitCode::from(2);
    }
    let files = repo_files();
    let tests = test_fns(&files);
    let text = match std::fs::read_to_string(FILE) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("conformance: cannot read {FILE}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let readme = std::fs::read_to_string(README).unwrap_or_default();
    let mut problems = Vec::new();
    // The section `cargo xtask test --python` writes is its own: no rows, no deviations.
    let own = without_python_section(&text);
    let rows = parse_rows(&own, &mut problems);
    let by_id = tests_by_id(&tests);
    let summary = headline(&rows, &by_id, &tests);

    let new_text = regenerate(&text, &rows, &by_id, &summary);
    let new_readme = replace_summary(&readme, &summary);
    if write {
        for (path, old, new) in [(FILE, &text, &new_text), (README, &readme, &new_readme)] {
            match new {
                Some(new) if new != old => {
                    if let Err(e) = std::fs::write(path, new) {
                        eprintln!("conformance: cannot write {path}: {e}");
                        return ExitCode::FAILURE;
                    }
                    println!("conformance: wrote {path}");
                }
                Some(_) => {}
                None => problems.push(format!(
                    "{path} has no `{SUMMARY_OPEN}...{SUMMARY_CLOSE}` headline to fill in"
                )),
            }
        }
    } else {
        stale_checks(
            &rows,
            &by_id,
            &text,
            &new_text,
            &readme,
            &new_readme,
            &mut problems,
        );
    }
    hand_checks(&rows, &own, &files, &tests, &mut problems);

    println!("CONFORMANCE: {summary}");
    if problems.is_empty() {
        return ExitCode::SUCCESS;
    }
    for p in &problems {
        println!("conformance: {p}");
    }
    ExitCode::FAILURE
}

/// `text` with the lines of the section that `cargo xtask test --python` owns (between its
/// markers, see `python::report`) blanked, so that line numbers stay the same.
fn without_python_section(text: &str) -> String {
    use crate::python::report::{SECTION_CLOSE, SECTION_OPEN};
    let mut inside = false;
    let mut out: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.trim() == SECTION_OPEN {
            inside = true;
        }
        out.push(if inside { "" } else { line });
        if line.trim() == SECTION_CLOSE {
            inside = false;
        }
    }
    let mut s = out.join("\n");
    if text.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// The checks of the generated parts: which tests each row lists, the no-test suffix and
/// the headlines.
fn stale_checks(
    rows: &[Row],
    by_id: &BTreeMap<String, Vec<&TestFn>>,
    text: &str,
    new_text: &Option<String>,
    readme: &str,
    new_readme: &Option<String>,
    problems: &mut Vec<String>,
) {
    let fix = "run `cargo xtask conformance --write`";
    let before = problems.len();
    for row in rows {
        let found: BTreeSet<(String, String)> = by_id
            .get(&row.id)
            .map(|v| v.iter().map(|t| (t.name.clone(), t.path.clone())).collect())
            .unwrap_or_default();
        for (name, path) in &row.tests {
            if !found.contains(&(name.clone(), path.clone())) {
                problems.push(format!(
                    "{}:{}: {} lists the test `{name}` in {path}, which no longer exists \
                     (renamed or moved? {fix})",
                    FILE,
                    row.line + 1,
                    row.id
                ));
            }
        }
        let listed: BTreeSet<(String, String)> = row.tests.iter().cloned().collect();
        for (name, path) in found.difference(&listed) {
            problems.push(format!(
                "{}:{}: {} does not list its test `{name}` ({path}): {fix}",
                FILE,
                row.line + 1,
                row.id
            ));
        }
        if row.no_test_suffix != found.is_empty() {
            problems.push(format!(
                "{}:{}: the \"no test yet\" mark of {} is stale: {fix}",
                FILE,
                row.line + 1,
                row.id
            ));
        }
    }
    // A stale file can give hundreds of these: show the first few.
    let listed = problems.len() - before;
    if listed > STALE_SHOWN {
        problems.truncate(before + STALE_SHOWN);
        problems.push(format!(
            "... and {} more out-of-date test lists: {fix}",
            listed - STALE_SHOWN
        ));
    }
    match new_text {
        Some(new) if new != text => {
            if listed == 0 {
                problems.push(format!("{FILE} is stale (headline or test order): {fix}"));
            }
        }
        Some(_) => {}
        None => problems.push(format!(
            "{FILE} has no `{SUMMARY_OPEN}...{SUMMARY_CLOSE}` headline"
        )),
    }
    match new_readme {
        Some(new) if new != readme => problems.push(format!(
            "the conformance headline in {README} is stale: {fix}"
        )),
        Some(_) => {}
        None => problems.push(format!(
            "{README} has no `{SUMMARY_OPEN}...{SUMMARY_CLOSE}` headline"
        )),
    }
}

/// The checks of the hand-written parts: every cited id has a row, ids are unique, statuses
/// are known, deviations are explained.
fn hand_checks(
    rows: &[Row],
    text: &str,
    files: &[PathBuf],
    tests: &[TestFn],
    problems: &mut Vec<String>,
) {
    let mut seen = BTreeMap::new();
    for row in rows {
        if let Some(first) = seen.insert(row.id.clone(), row.line) {
            problems.push(format!(
                "{}:{}: {} has a second row (the first is on line {})",
                FILE,
                row.line + 1,
                row.id,
                first + 1
            ));
        }
        if !STATUSES.iter().any(|s| row.status.starts_with(s)) {
            problems.push(format!(
                "{}:{}: the status of {} must start with one of {:?}",
                FILE,
                row.line + 1,
                row.id,
                STATUSES
            ));
        }
        if row.behaviour.trim().is_empty() {
            problems.push(format!(
                "{}:{}: {} says nothing in its behaviour column",
                FILE,
                row.line + 1,
                row.id
            ));
        }
    }
    // Every id cited in the repository, and every id a test is named after, has a row.
    let mut missing: BTreeMap<String, String> = BTreeMap::new();
    for path in files {
        if path == Path::new(FILE) {
            continue;
        }
        let Ok(content) = std::fs::read_to_string(path) else {
            continue;
        };
        for (id, line) in cited_ids(&content) {
            if !seen.contains_key(&id) {
                missing
                    .entry(id)
                    .or_insert_with(|| format!("{}:{}", path.display(), line));
            }
        }
    }
    for t in tests {
        for id in &t.ids {
            if !seen.contains_key(id) {
                missing
                    .entry(id.clone())
                    .or_insert_with(|| format!("{}:{} (test `{}`)", t.path, t.line, t.name));
            }
        }
    }
    for (id, at) in &missing {
        problems.push(format!(
            "{id} is cited at {at} but {FILE} has no row for it: add one"
        ));
    }
    // Deviation rows and their explanations match.
    let explained = deviation_ids(text);
    for row in rows {
        if row.status.starts_with("deviation") && !explained.contains(&row.id) {
            problems.push(format!(
                "{}:{}: {} is marked as a deviation but no `### ` heading under \
                 \"{DEVIATIONS}\" names it: explain what evloop does instead and why",
                FILE,
                row.line + 1,
                row.id
            ));
        }
    }
    for id in &explained {
        if !rows
            .iter()
            .any(|r| &r.id == id && r.status.starts_with("deviation"))
        {
            problems.push(format!(
                "\"{DEVIATIONS}\" explains {id}, whose row is not marked as a deviation"
            ));
        }
    }
}

/// The files of the repository: tracked and untracked-but-not-ignored (`git ls-files`), or,
/// without git, every file outside `target` and `.git`.
fn repo_files() -> Vec<PathBuf> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output();
    if let Ok(out) = out {
        if out.status.success() {
            let mut v: Vec<PathBuf> = out
                .stdout
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| PathBuf::from(String::from_utf8_lossy(s).into_owned()))
                .filter(|p| p.is_file())
                .collect();
            v.sort();
            v.dedup();
            return v;
        }
    }
    let mut v = Vec::new();
    walk(Path::new("."), &mut v);
    v.sort();
    v
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p.strip_prefix("./").unwrap_or(&p).to_path_buf());
        }
    }
}

/// Every `PREFIX-NN` in `text` standing as a word, with its 1-based line.
fn cited_ids(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let b = line.as_bytes();
        for (upper, _) in PREFIXES {
            let mut from = 0;
            while let Some(at) = line[from..].find(upper) {
                let start = from + at;
                from = start + upper.len();
                let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
                if start > 0 && word(b[start - 1]) {
                    continue;
                }
                if b.get(from) != Some(&b'-') {
                    continue;
                }
                let digits = b[from + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                let end = from + 1 + digits;
                if digits == 0 || b.get(end).is_some_and(|c| word(*c)) {
                    continue;
                }
                out.push((line[start..end].to_string(), n + 1));
            }
        }
    }
    out
}

/// The ids a test name starts with: `core_07_x` → CORE-07; `net_39_40_x` → NET-39, NET-40;
/// `sub_05_sub_22_x` → SUB-05, SUB-22. Numbers are two digits, as the ids are.
fn ids_of(name: &str) -> Vec<String> {
    let parts: Vec<&str> = name.split('_').collect();
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|c| c.is_ascii_digit());
    let prefix = |s: &str| PREFIXES.iter().find(|(_, l)| *l == s).map(|(u, _)| *u);
    let mut ids = Vec::new();
    let mut i = 0;
    let mut current: Option<&str> = None;
    while i < parts.len() {
        if let (Some(p), Some(n)) = (prefix(parts[i]), parts.get(i + 1)) {
            if two_digits(n) {
                current = Some(p);
                ids.push(format!("{p}-{n}"));
                i += 2;
                continue;
            }
        }
        match current {
            Some(p) if two_digits(parts[i]) && !ids.is_empty() => {
                ids.push(format!("{p}-{}", parts[i]));
                i += 1;
            }
            _ => break,
        }
    }
    ids
}

/// Whether `path` is where tests named after ids live: `crates/*/tests`, `crates/*/src`,
/// `tests/`, `examples/`.
fn test_path(path: &Path) -> bool {
    let parts: Vec<_> = path.components().map(|c| c.as_os_str()).collect();
    if path.extension().is_none_or(|e| e != "rs") {
        return false;
    }
    match parts.first().and_then(|p| p.to_str()) {
        Some("tests") | Some("examples") => true,
        Some("crates") => {
            parts.len() > 3 && matches!(parts[2].to_str(), Some("tests") | Some("src"))
        }
        _ => false,
    }
}

/// The `#[test]` functions whose names start with ids, in file and line order.
fn test_fns(files: &[PathBuf]) -> Vec<TestFn> {
    let mut out = Vec::new();
    for path in files.iter().filter(|p| test_path(p)) {
        let Ok(content) = std::fs::read_to_string(path) else {
            continue;
        };
        let lines: Vec<&str> = content.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let t = t.strip_prefix("pub ").unwrap_or(t);
            let t = t.strip_prefix("async ").unwrap_or(t);
            let Some(rest) = t.strip_prefix("fn ") else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let ids = ids_of(&name);
            if ids.is_empty() || !is_test(&lines, n) {
                continue;
            }
            out.push(TestFn {
                name,
                path: path.display().to_string(),
                line: n + 1,
                ids,
            });
        }
    }
    out
}

/// Whether the function on line `n` carries `#[test]` among the attributes above it.
fn is_test(lines: &[&str], n: usize) -> bool {
    for line in lines[..n].iter().rev().take(12) {
        let t = line.trim();
        if t.starts_with("#[test]") {
            return true;
        }
        if t.starts_with("//") {
            continue;
        }
        if t.is_empty() || t.ends_with('}') || t.ends_with(';') {
            return false;
        }
    }
    false
}

/// The tests of each id.
fn tests_by_id(tests: &[TestFn]) -> BTreeMap<String, Vec<&TestFn>> {
    let mut m: BTreeMap<String, Vec<&TestFn>> = BTreeMap::new();
    for t in tests {
        for id in &t.ids {
            m.entry(id.clone()).or_default().push(t);
        }
    }
    m
}

/// Splits a table line into its cells (`\|` does not split).
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev = '\0';
    for c in inner.chars() {
        if c == '|' && prev != '\\' {
            out.push(cur.trim().to_string());
            cur.clear();
        } else {
            cur.push(c);
        }
        prev = c;
    }
    out.push(cur.trim().to_string());
    out
}

/// Whether `s` is one id (`CORE-07`).
fn is_id(s: &str) -> bool {
    let ids = cited_ids(s);
    ids.len() == 1 && ids[0].0 == s
}

/// The behaviour rows of the file.
fn parse_rows(text: &str, problems: &mut Vec<String>) -> Vec<Row> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if !line.starts_with('|') {
            continue;
        }
        let c = cells(line);
        if !c.first().is_some_and(|id| is_id(id)) {
            continue;
        }
        if c.len() != 4 {
            problems.push(format!(
                "{FILE}:{}: a row has {} cells, not 4 (id, behaviour, status, tests); write `|` \
                 inside a cell as `\\|`",
                n + 1,
                c.len()
            ));
            continue;
        }
        let (status, no_test_suffix) = match c[2].strip_suffix(NO_TEST) {
            Some(s) => (s.to_string(), true),
            None => (c[2].clone(), false),
        };
        rows.push(Row {
            id: c[0].clone(),
            line: n,
            behaviour: c[1].clone(),
            status,
            no_test_suffix,
            tests: listed_tests(&c[3]),
        });
    }
    rows
}

/// The ``[`name`](path)`` links of a tests cell.
fn listed_tests(cell: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = cell;
    while let Some(at) = rest.find("[`") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find("`](") else { break };
        let name = rest[..end].to_string();
        rest = &rest[end + 3..];
        let Some(close) = rest.find(')') else { break };
        out.push((name, rest[..close].to_string()));
        rest = &rest[close + 1..];
    }
    out
}

/// The tests cell of an id.
fn tests_cell(tests: Option<&Vec<&TestFn>>) -> String {
    match tests {
        Some(v) if !v.is_empty() => v
            .iter()
            .map(|t| format!("[`{}`]({})", t.name, t.path))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "—".to_string(),
    }
}

/// The headline: behaviours, how many have tests, deviations, Rust analogues.
fn headline(rows: &[Row], by_id: &BTreeMap<String, Vec<&TestFn>>, tests: &[TestFn]) -> String {
    let with_tests = rows.iter().filter(|r| by_id.contains_key(&r.id)).count();
    let count = |s: &str| rows.iter().filter(|r| r.status.starts_with(s)).count();
    format!(
        "{} behaviours, {} with tests ({} test functions), {} deviations from asyncio, {} Rust \
         analogues",
        rows.len(),
        with_tests,
        tests.len(),
        count("deviation"),
        count("Rust analogue")
    )
}

/// `text` with its headline replaced, or `None` without markers.
fn replace_summary(text: &str, summary: &str) -> Option<String> {
    let open = text.find(SUMMARY_OPEN)? + SUMMARY_OPEN.len();
    let close = open + text[open..].find(SUMMARY_CLOSE)?;
    Some(format!("{}{summary}{}", &text[..open], &text[close..]))
}

/// The file with its generated parts rewritten, or `None` without headline markers.
fn regenerate(
    text: &str,
    rows: &[Row],
    by_id: &BTreeMap<String, Vec<&TestFn>>,
    summary: &str,
) -> Option<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for row in rows {
        let tests = by_id.get(&row.id);
        let suffix = if tests.is_some() { "" } else { NO_TEST };
        lines[row.line] = format!(
            "| {} | {} | {}{} | {} |",
            row.id,
            row.behaviour,
            row.status,
            suffix,
            tests_cell(tests)
        );
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    replace_summary(&out, summary)
}

/// The ids named in the `### ` headings of the deviations section.
fn deviation_ids(text: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("## ") {
            inside = line.trim() == DEVIATIONS;
        } else if inside && line.starts_with("### ") {
            ids.extend(cited_ids(line).into_iter().map(|(id, _)| id));
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names_give_their_ids() {
        assert_eq!(ids_of("core_07_stop_before_run"), ["CORE-07"]);
        assert_eq!(ids_of("net_39_40_close_stops"), ["NET-39", "NET-40"]);
        assert_eq!(ids_of("sub_05_sub_22_children"), ["SUB-05", "SUB-22"]);
        assert_eq!(ids_of("exec_10_core_51_panics"), ["EXEC-10", "CORE-51"]);
        assert_eq!(ids_of("stream_06_100_bytes"), ["STREAM-06"]);
        assert!(ids_of("core_7_x").is_empty());
        assert!(ids_of("reliability_load").is_empty());
    }

    #[test]
    fn citations_are_whole_words() {
        let found: Vec<String> = cited_ids("NET-55…NET-66, (CORE-07) XNET-01 SIGINT SUB-1x")
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(found, ["CORE-07", "NET-55", "NET-66"]);
    }

    #[test]
    fn the_python_section_is_not_read() {
        use crate::python::report::{SECTION_CLOSE, SECTION_OPEN};
        let text = format!(
            "| CORE-01 | a | implemented | — |\n{SECTION_OPEN}\n## T\n| CORE-02 | b | x | — |\n\
             {SECTION_CLOSE}\n| CORE-03 | c | implemented | — |\n"
        );
        let own = without_python_section(&text);
        assert_eq!(own.lines().count(), text.lines().count());
        let mut problems = Vec::new();
        let rows = parse_rows(&own, &mut problems);
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["CORE-01", "CORE-03"]);
        assert_eq!(rows[1].line, 5);
    }

    #[test]
    fn rows_round_trip() {
        let line = "| NET-03 | read\\|write interest | implemented; no test yet | [`net_03_a`](x.rs), [`net_03_b`](y.rs) |";
        let mut problems = Vec::new();
        let rows = parse_rows(line, &mut problems);
        assert!(problems.is_empty());
        assert_eq!(rows[0].behaviour, "read\\|write interest");
        assert_eq!(rows[0].status, "implemented");
        assert!(rows[0].no_test_suffix);
        assert_eq!(rows[0].tests.len(), 2);
        assert_eq!(
            rows[0].tests[1],
            ("net_03_b".to_string(), "y.rs".to_string())
        );
    }
}
