//! The conformance table: what is counted, the text printed, the section of `CONFORMANCE.md`
//! and `summary.json`.
//!
//! A test is counted when it ran on a loop of the subject (the runner saw the subject's
//! factory or policy make a loop during the test: tests on asyncio's own `TestLoop` are not),
//! needs no TLS (no `ssl` or `tls` in its name) and was not skipped. The tests of a module are
//! the union of the counted tests over the subjects of the run, so every subject is measured
//! against the same list: a test a subject skips, or never reached, counts as not passed.
//! Tests that need TLS get a line of their own, outside the total.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::json::{quote, Outcome};

/// The markers around the section this command owns in `CONFORMANCE.md`.
pub const SECTION_OPEN: &str = "<!-- python:test_asyncio -->";
/// See [`SECTION_OPEN`].
pub const SECTION_CLOSE: &str = "<!-- /python:test_asyncio -->";

/// The outcomes of a run, by subject and module.
#[derive(Default)]
pub struct Results {
    by: BTreeMap<(String, String), Vec<Outcome>>,
}

impl Results {
    /// Adds the outcomes of one module on one subject.
    pub fn add(&mut self, subject: &str, module: &str, outcomes: Vec<Outcome>) {
        self.by
            .insert((subject.to_string(), module.to_string()), outcomes);
    }

    fn of(&self, subject: &str, module: &str) -> &[Outcome] {
        self.by
            .get(&(subject.to_string(), module.to_string()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The tests of `module` that count (`tls`: the TLS ones instead), over all subjects.
    fn counted(&self, module: &str, tls: bool) -> BTreeSet<String> {
        self.by
            .iter()
            .filter(|((_, m), _)| m == module)
            .flat_map(|(_, v)| v.iter())
            .filter(|t| t.custom_loop && t.tls == tls && t.outcome != "skip")
            .map(|t| t.test.clone())
            .collect()
    }

    /// How many of `tests` passed on `subject`.
    fn passed(&self, subject: &str, module: &str, tests: &BTreeSet<String>) -> usize {
        self.of(subject, module)
            .iter()
            .filter(|t| t.passed() && tests.contains(&t.test))
            .count()
    }

    /// How many of the counted (non-TLS) tests of `module` passed on `subject`: the figure of
    /// the table.
    pub fn passes(&self, subject: &str, module: &str) -> usize {
        self.passed(subject, module, &self.counted(module, false))
    }

    /// The counted tests of `subject` that did not pass, with their outcome and reason (a test
    /// never reached says so).
    fn failures(&self, subject: &str, modules: &[String]) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for m in modules {
            let got: BTreeMap<&str, &Outcome> = self
                .of(subject, m)
                .iter()
                .map(|t| (t.test.as_str(), t))
                .collect();
            for test in self.counted(m, false) {
                match got.get(test.as_str()) {
                    Some(t) if t.passed() => {}
                    Some(t) => {
                        let reason = if t.outcome == "skip" {
                            format!("skipped: {}", t.reason)
                        } else {
                            t.reason.clone()
                        };
                        out.push((format!("{m}.{test}"), t.outcome.clone(), reason))
                    }
                    None => out.push((
                        format!("{m}.{test}"),
                        "not run".into(),
                        "the module's run ended before this test".into(),
                    )),
                }
            }
        }
        out
    }
}

/// The table, as markdown.
pub struct Table {
    /// The markdown text.
    pub text: String,
}

/// The table of a run: one row per module, the counted tests, the passes of each subject.
pub fn table(r: &Results, subjects: &[String], modules: &[String]) -> Table {
    let mut text = String::new();
    text.push_str("| module | tests |");
    for s in subjects {
        text.push_str(&format!(" {s} |"));
    }
    text.push_str("\n|---|---:|");
    for _ in subjects {
        text.push_str("---:|");
    }
    text.push('\n');
    let mut total = 0;
    let mut total_passed = vec![0; subjects.len()];
    let mut tls_total = 0;
    let mut tls_passed = vec![0; subjects.len()];
    for m in modules {
        let tests = r.counted(m, false);
        total += tests.len();
        text.push_str(&format!("| {m} | {} |", tests.len()));
        for (i, s) in subjects.iter().enumerate() {
            let p = r.passed(s, m, &tests);
            total_passed[i] += p;
            text.push_str(&format!(" {p} |"));
        }
        text.push('\n');
        let tls = r.counted(m, true);
        tls_total += tls.len();
        for (i, s) in subjects.iter().enumerate() {
            tls_passed[i] += r.passed(s, m, &tls);
        }
    }
    text.push_str(&format!("| **total** | **{total}** |"));
    for p in &total_passed {
        text.push_str(&format!(" **{p}** |"));
    }
    text.push('\n');
    if tls_total > 0 {
        text.push_str(&format!("| TLS tests (not in the total) | {tls_total} |"));
        for p in &tls_passed {
            text.push_str(&format!(" {p} |"));
        }
        text.push('\n');
    }
    Table { text }
}

/// A failure reason with the parts that differ from run to run (addresses, ports, ids)
/// replaced, so that failures group by what went wrong.
fn normalise(reason: &str) -> String {
    let mut out = String::new();
    let mut chars = reason.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '0' && chars.peek() == Some(&'x') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                chars.next();
            }
            out.push_str("0x…");
        } else if c.is_ascii_digit() {
            while chars.peek().is_some_and(|c| c.is_ascii_digit()) {
                chars.next();
            }
            out.push('N');
        } else {
            out.push(c);
        }
    }
    out.chars().take(200).collect()
}

/// The section of `CONFORMANCE.md`: how it was measured, the table, the notes of the run, and
/// evloop's failures grouped by reason.
pub fn section(
    table: &Table,
    r: &Results,
    versions: &[(String, String)],
    notes: &[String],
) -> String {
    let modules: Vec<String> = super::suite::MODULES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut s = String::new();
    s.push_str(SECTION_OPEN);
    s.push_str("\n## CPython's test_asyncio on the Python package\n\n");
    s.push_str(
        "Written by `cargo xtask test --python`; edit the generator (`xtask/src/python/`), not this \
         section. Each module of CPython's `test.test_asyncio` below runs in a process of its own \
         against each loop: the mixin modules (`test_events`'s `EventLoopTestsMixin` and \
         `SubprocessTestsMixin`, `test_sock_lowlevel`, `test_server`, `test_buffered_proto`, \
         `test_subprocess`'s `SubprocessMixin`) with the loop from `create_event_loop()` / \
         `new_loop()`, the others with the loop's event loop policy installed (and \
         `asyncio.DefaultEventLoopPolicy` set to it). A test counts when it ran on the loop \
         under test (tests on asyncio's `TestLoop` do not), needs no TLS, and was not skipped; \
         every loop is measured against the same list. A test that hangs or crashes its \
         process fails, and the module goes on without it.\n\n",
    );
    let v: Vec<String> = versions
        .iter()
        .map(|(s, v)| {
            if s == "stdlib" {
                format!("CPython {v} (stdlib asyncio)")
            } else {
                format!("{s} {v}")
            }
        })
        .collect();
    s.push_str(&format!("Measured with {}.\n\n", v.join(", ")));
    s.push_str(&table.text);
    s.push('\n');
    if !notes.is_empty() {
        s.push_str("Notes of the run:\n\n");
        for n in notes {
            s.push_str(&format!("* {}\n", n.replace('|', "\\|")));
        }
        s.push('\n');
    }
    // evloop first, then the other loops the table compares with.
    let mut listed: Vec<&str> = versions
        .iter()
        .map(|(s, _)| s.as_str())
        .filter(|s| *s != "stdlib")
        .collect();
    listed.sort_by_key(|s| *s != "evloop");
    for subject in listed {
        let failures = r.failures(subject, &modules);
        s.push_str(&failures_text(subject, &failures));
    }
    s.push_str(SECTION_CLOSE);
    s.push('\n');
    s
}

/// What a failure means, for reasons known to have a cause outside the loop's behaviour.
const EXPLAINED: [(&str, &str); 4] = [
    (
        "has no attribute '_run_once'",
        "asyncio-internal attribute: the test wraps the selector loop's private `_run_once` to \
         count iterations; the loop's iterations are native and call no Python `_run_once`",
    ),
    (
        "loop is not a BaseSelectorEventLoop",
        "class identity: the test reads the selector loop's private self-pipe (`_internal_fds`, \
         `_csock`) and skips itself on any other loop class",
    ),
    (
        "is not an instance of <class 'asyncio.transports.",
        "class identity: the loop's transports are not subclasses of asyncio's transport classes",
    ),
    (
        "has no attribute '_stop_serving'",
        "asyncio-internal attribute: the test calls the selector loop's private `_stop_serving`",
    ),
];

/// How many failures are listed one by one; more are grouped by reason.
const LISTED: usize = 50;

/// A loop's failures: one by one with their reasons (and why, when known) when there are few,
/// grouped by reason otherwise.
fn failures_text(subject: &str, failures: &[(String, String, String)]) -> String {
    let mut s = String::new();
    let why = |reason: &str| {
        EXPLAINED
            .iter()
            .find(|(pat, _)| reason.contains(pat))
            .map(|(_, why)| format!(" — {why}"))
            .unwrap_or_default()
    };
    if failures.len() <= LISTED {
        s.push_str(&format!(
            "### What fails on {subject} ({} tests)\n\n",
            failures.len()
        ));
        s.push_str(&format!(
            "With tracebacks in `target/python/conformance/summary.json` and \
             `{subject}/<module>.jsonl` after a run.\n\n"
        ));
        for (test, outcome, reason) in failures {
            let reason = if reason.is_empty() { outcome } else { reason };
            let first = reason.lines().next().unwrap_or_default().replace('`', "'");
            s.push_str(&format!("* {test}: `{first}`{}\n", why(&first)));
        }
        s.push('\n');
        return s;
    }
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for (_, outcome, reason) in failures {
        let key = if reason.is_empty() {
            outcome.clone()
        } else {
            normalise(reason)
        };
        *by_reason.entry(key).or_default() += 1;
    }
    let mut sorted: Vec<(String, usize)> = by_reason.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    s.push_str(&format!(
        "### What fails on {subject} ({} tests), by reason\n\n",
        failures.len()
    ));
    s.push_str(&format!(
        "The per-test list, with tracebacks, is in \
         `target/python/conformance/summary.json` and `{subject}/<module>.jsonl` after a run.\n\n"
    ));
    for (reason, n) in sorted.iter().take(LISTED) {
        s.push_str(&format!(
            "* {n} × `{}`{}\n",
            reason.replace('`', "'"),
            why(reason)
        ));
    }
    if sorted.len() > LISTED {
        let rest: usize = sorted[LISTED..].iter().map(|(_, n)| n).sum();
        s.push_str(&format!(
            "* {rest} × other reasons ({} kinds)\n",
            sorted.len() - LISTED
        ));
    }
    s.push('\n');
    s
}

/// Puts `section` into `path` between the markers (appended when the file has none). Returns
/// whether the file changed.
pub fn write_section(path: &Path, section: &str) -> Result<bool, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let new = match (text.find(SECTION_OPEN), text.find(SECTION_CLOSE)) {
        (Some(a), Some(b)) if a < b => {
            let mut end = b + SECTION_CLOSE.len();
            if text[end..].starts_with('\n') {
                end += 1;
            }
            format!("{}{section}{}", &text[..a], &text[end..])
        }
        _ => {
            let sep = if text.ends_with("\n\n") {
                ""
            } else if text.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            format!("{text}{sep}{section}")
        }
    };
    if new == text {
        return Ok(false);
    }
    std::fs::write(path, new).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(true)
}

/// The passes of `subject` per module as the table in `path` (between the markers) records
/// them: what a `--check` run must not fall below.
pub fn recorded_passes(
    path: &Path,
    subject: &str,
) -> Result<std::collections::BTreeMap<String, usize>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (Some(a), Some(b)) = (text.find(SECTION_OPEN), text.find(SECTION_CLOSE)) else {
        return Err(format!(
            "{}: no test_asyncio table (run `cargo xtask test --python` to write one)",
            path.display()
        ));
    };
    let cells = |l: &str| -> Vec<String> {
        l.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let mut column = None;
    let mut out = std::collections::BTreeMap::new();
    for line in text[a..b].lines().filter(|l| l.starts_with('|')) {
        let row = cells(line);
        if row.first().map(String::as_str) == Some("module") {
            column = row.iter().position(|c| c == subject);
            continue;
        }
        let (Some(col), Some(module)) = (column, row.first()) else {
            continue;
        };
        if !module.starts_with("test_") {
            continue;
        }
        if let Some(n) = row.get(col).and_then(|c| c.parse().ok()) {
            out.insert(module.clone(), n);
        }
    }
    if out.is_empty() {
        return Err(format!(
            "{}: the test_asyncio table has no {subject} column",
            path.display()
        ));
    }
    Ok(out)
}

/// `summary.json`: per module the counted tests and each subject's passes, and per subject the
/// counted tests that did not pass, with outcome and reason.
pub fn write_summary(path: &Path, r: &Results, subjects: &[String]) -> Result<(), String> {
    let modules: Vec<String> = super::suite::MODULES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut s = String::from("{\n  \"modules\": {\n");
    let mut first = true;
    for m in &modules {
        let tests = r.counted(m, false);
        if tests.is_empty() && subjects.iter().all(|s| r.of(s, m).is_empty()) {
            continue;
        }
        if !first {
            s.push_str(",\n");
        }
        first = false;
        let passed: Vec<String> = subjects
            .iter()
            .map(|sub| format!("{}: {}", quote(sub), r.passed(sub, m, &tests)))
            .collect();
        s.push_str(&format!(
            "    {}: {{\"tests\": {}, \"passed\": {{{}}}}}",
            quote(m),
            tests.len(),
            passed.join(", ")
        ));
    }
    s.push_str("\n  },\n  \"failures\": {\n");
    for (i, sub) in subjects.iter().enumerate() {
        let rows: Vec<String> = r
            .failures(sub, &modules)
            .iter()
            .map(|(t, o, why)| {
                format!(
                    "      {{\"test\": {}, \"outcome\": {}, \"reason\": {}}}",
                    quote(t),
                    quote(o),
                    quote(why)
                )
            })
            .collect();
        s.push_str(&format!(
            "    {}: [\n{}\n    ]",
            quote(sub),
            rows.join(",\n")
        ));
        s.push_str(if i + 1 < subjects.len() { ",\n" } else { "\n" });
    }
    s.push_str("  }\n}\n");
    std::fs::write(path, s).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(test: &str, outcome: &str, tls: bool, custom: bool) -> Outcome {
        Outcome {
            test: test.into(),
            outcome: outcome.into(),
            reason: String::new(),
            custom_loop: custom,
            tls,
        }
    }

    #[test]
    fn every_subject_is_measured_against_the_union() {
        let mut r = Results::default();
        r.add(
            "a",
            "m",
            vec![
                t("C.x", "pass", false, true),
                t("C.y", "pass", false, false),
                t("C.tls", "pass", true, true),
            ],
        );
        r.add(
            "b",
            "m",
            vec![t("C.x", "fail", false, true), t("C.z", "pass", false, true)],
        );
        let tbl = table(&r, &["a".into(), "b".into()], &["m".into()]);
        assert!(tbl.text.contains("| m | 2 | 1 | 1 |"), "{}", tbl.text);
        assert!(tbl
            .text
            .contains("| TLS tests (not in the total) | 1 | 1 | 0 |"));
        let f = r.failures("a", &["m".into()]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].1, "not run");
        r.add("c", "m", vec![t("C.x", "skip", false, true)]);
        let f = r.failures("c", &["m".into()]);
        assert!(f
            .iter()
            .any(|(_, o, why)| o == "skip" && why.starts_with("skipped: ")));
    }

    #[test]
    fn reasons_group_without_addresses_and_numbers() {
        assert_eq!(
            normalise("<Foo at 0x7f12ab> port 4312"),
            "<Foo at 0x…> port N"
        );
    }

    #[test]
    fn few_failures_are_listed_one_by_one_with_the_known_why() {
        let few = vec![
            (
                "test_events.E.test_timeout_rounding".to_string(),
                "error".to_string(),
                "AttributeError: 'Loop' object has no attribute '_run_once'".to_string(),
            ),
            (
                "test_x.T.test_y".to_string(),
                "fail".to_string(),
                String::new(),
            ),
        ];
        let text = failures_text("evloop", &few);
        assert!(
            text.contains("### What fails on evloop (2 tests)\n"),
            "{text}"
        );
        assert!(text.contains("* test_events.E.test_timeout_rounding: `AttributeError"));
        assert!(text.contains("— asyncio-internal attribute"), "{text}");
        assert!(text.contains("* test_x.T.test_y: `fail`\n"), "{text}");
        let many: Vec<_> = (0..=LISTED)
            .map(|i| (format!("m.T.t{i}"), "error".into(), "OSError: boom".into()))
            .collect();
        let text = failures_text("evloop", &many);
        assert!(text.contains("by reason"), "{text}");
        assert!(
            text.contains(&format!("* {} × `OSError: boom`", LISTED + 1)),
            "{text}"
        );
    }

    #[test]
    fn the_section_replaces_only_itself() {
        let dir = std::env::temp_dir().join(format!("xtask-section-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("C.md");
        std::fs::write(&p, "# head\n\ntext\n").unwrap();
        let sec = format!("{SECTION_OPEN}\nA\n{SECTION_CLOSE}\n");
        assert!(write_section(&p, &sec).unwrap());
        let sec2 = format!("{SECTION_OPEN}\nB\n{SECTION_CLOSE}\n");
        assert!(write_section(&p, &sec2).unwrap());
        assert!(!write_section(&p, &sec2).unwrap());
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, format!("# head\n\ntext\n\n{sec2}"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn recorded_passes_reads_the_subjects_column_between_the_markers() {
        let dir = std::env::temp_dir().join(format!("xtask-recorded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("CONFORMANCE.md");
        let text = format!(
            "| module | tests | x |\n| test_a | 1 | 1 |\n{SECTION_OPEN}\nintro\n\n\
             | module | tests | stdlib | evloop |\n|---|---:|---:|---:|\n\
             | test_events | 62 | 62 | 61 |\n| test_tasks | 253 | 253 | 250 |\n\
             | **total** | **315** | **315** | **311** |\n{SECTION_CLOSE}\n"
        );
        std::fs::write(&path, text).unwrap();
        let got = recorded_passes(&path, "evloop").unwrap();
        let want: BTreeMap<String, usize> = [
            ("test_events".to_string(), 61),
            ("test_tasks".to_string(), 250),
        ]
        .into();
        assert_eq!(got, want);
        assert!(recorded_passes(&path, "trio")
            .unwrap_err()
            .contains("no trio column"));
        std::fs::write(&path, "no table here\n").unwrap();
        assert!(recorded_passes(&path, "evloop").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
