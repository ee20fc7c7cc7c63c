//! The runner's JSON lines, read and written with the standard library only: each line is a
//! flat object whose values are strings, numbers, booleans or null.

use std::collections::BTreeMap;
use std::path::Path;

/// A JSON value of a flat object.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

/// One test's outcome.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// `Class.method`.
    pub test: String,
    /// `pass`, `fail`, `error`, `skip`, `xfail`, `hang` or `crash`.
    pub outcome: String,
    /// The exception's last line, or what happened.
    pub reason: String,
    /// Whether the test created a loop of the subject.
    pub custom_loop: bool,
    /// Whether the test needs TLS (by its name).
    pub tls: bool,
}

impl Outcome {
    /// Whether the table counts it: it ran on the subject's loop, needs no TLS and was not
    /// skipped.
    pub fn counted(&self) -> bool {
        self.custom_loop && !self.tls && self.outcome != "skip"
    }

    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.outcome == "pass"
    }
}

/// What a runner's output file holds.
#[derive(Default)]
pub struct Outcomes {
    /// The tests that ended.
    pub tests: Vec<Outcome>,
    /// A test that started and did not end (the process died in it).
    pub running: Option<String>,
    /// Whether the runner got to its end.
    pub finished: bool,
}

/// Reads a runner's output file (missing: empty).
pub fn read_outcomes(path: &Path) -> Outcomes {
    let mut out = Outcomes::default();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines() {
        let Some(obj) = parse_object(line) else {
            continue;
        };
        let s = |k: &str| match obj.get(k) {
            Some(Value::Str(s)) => s.clone(),
            _ => String::new(),
        };
        let b = |k: &str| matches!(obj.get(k), Some(Value::Bool(true)));
        if let Some(Value::Str(t)) = obj.get("start") {
            out.running = Some(t.clone());
        } else if obj.contains_key("outcome") {
            let test = s("test");
            if out.running.as_deref() == Some(test.as_str()) {
                out.running = None;
            }
            out.tests.push(Outcome {
                test,
                outcome: s("outcome"),
                reason: s("reason"),
                custom_loop: b("custom_loop"),
                tls: b("tls"),
            });
        } else if obj.contains_key("done") {
            out.finished = true;
        }
    }
    out
}

/// Appends the outcome of a test the process died in (`how` starts with `hang` or `crash`),
/// with the end of the process's output as its traceback. It counts as a test of the
/// subject's loop: the loop was made before it ran.
pub fn append_outcome(path: &Path, test: &str, how: &str, output: &str) {
    use std::io::Write;
    let outcome = if how.starts_with("hang") {
        "hang"
    } else {
        "crash"
    };
    let tb: String = {
        let lines: Vec<&str> = output.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    let tls = {
        let method = test.rsplit('.').next().unwrap_or(test).to_ascii_lowercase();
        method.contains("ssl") || method.contains("tls")
    };
    let line = format!(
        "{{\"test\": {}, \"outcome\": {}, \"reason\": {}, \"traceback\": {}, \"custom_loop\": true, \"tls\": {tls}}}\n",
        quote(test),
        quote(outcome),
        quote(how),
        quote(&tb)
    );
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(path) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// `s` as a JSON string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parses one flat JSON object; `None` if the line is not one.
pub fn parse_object(line: &str) -> Option<BTreeMap<String, Value>> {
    let mut p = Parser {
        s: line.trim().as_bytes(),
        i: 0,
    };
    let mut map = BTreeMap::new();
    p.eat(b'{')?;
    p.ws();
    if p.peek() == Some(b'}') {
        return Some(map);
    }
    loop {
        p.ws();
        let k = p.string()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        let v = p.value()?;
        map.insert(k, v);
        p.ws();
        match p.next()? {
            b',' => continue,
            b'}' => return Some(map),
            _ => return None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Option<Value> {
        match self.peek()? {
            b'"' => self.string().map(Value::Str),
            b't' => self.word("true", Value::Bool(true)),
            b'f' => self.word("false", Value::Bool(false)),
            b'n' => self.word("null", Value::Null),
            _ => {
                let start = self.i;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.i += 1;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()?
                    .parse()
                    .ok()
                    .map(Value::Num)
            }
        }
    }

    fn word(&mut self, w: &str, v: Value) -> Option<Value> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Some(v)
        } else {
            None
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
        self.i += 4;
        u32::from_str_radix(h, 16).ok()
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.next()? {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let c = match self.next()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                self.eat(b'\\')?;
                                self.eat(b'u')?;
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xD800) << 10) + (lo.checked_sub(0xDC00)?)
                            } else {
                                hi
                            };
                            char::from_u32(code).unwrap_or('\u{FFFD}')
                        }
                        _ => return None,
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_objects_parse() {
        let o = parse_object(
            r#"{"test": "A.b", "outcome": "fail", "reason": "x \"q\" \u00e9 \ud83d\ude00\n", "custom_loop": true, "tls": false, "seconds": 0.25, "n": null}"#,
        )
        .unwrap();
        assert_eq!(o["test"], Value::Str("A.b".into()));
        assert_eq!(o["reason"], Value::Str("x \"q\" é 😀\n".into()));
        assert_eq!(o["custom_loop"], Value::Bool(true));
        assert_eq!(o["seconds"], Value::Num(0.25));
        assert_eq!(o["n"], Value::Null);
        assert!(parse_object("not json").is_none());
        assert!(parse_object(r#"{"a": 1"#).is_none());
    }

    #[test]
    fn quoting_round_trips() {
        let s = "tab\t \"quote\" back\\slash \u{1} é";
        let o = parse_object(&format!("{{\"k\": {}}}", quote(s))).unwrap();
        assert_eq!(o["k"], Value::Str(s.into()));
    }
}
