//! Reading `callgrind_annotate`: each function's self cost, and how much of it is the C
//! library's allocator.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::callgrind::INSTALL;

/// Self cost of every function in a callgrind profile, from `callgrind_annotate`: the
/// function's `file:name [object]` as it prints it -> instructions.
pub(super) fn self_costs(profile: &Path) -> Result<BTreeMap<String, u64>, String> {
    let out = Command::new("callgrind_annotate")
        .args(["--threshold=100", "--auto=no"])
        .arg(profile)
        .output()
        .map_err(|e| format!("could not run callgrind_annotate ({INSTALL}): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "callgrind_annotate {} failed:\n{}",
            profile.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(parse_annotate(&String::from_utf8_lossy(&out.stdout)))
}

/// The function rows of `callgrind_annotate` output: `12,345 (1.2%)  file:function [object]`.
pub(super) fn parse_annotate(text: &str) -> BTreeMap<String, u64> {
    let mut costs = BTreeMap::new();
    for line in text.lines() {
        let l = line.trim_start();
        let Some((count, rest)) = l.split_once(' ') else {
            continue;
        };
        let Ok(count) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        let mut rest = rest.trim_start();
        if rest.starts_with('(') {
            rest = rest.split_once(')').map_or("", |(_, r)| r.trim_start());
        }
        if rest.is_empty() || rest == "PROGRAM TOTALS" {
            continue;
        }
        *costs.entry(rest.to_string()).or_insert(0) += count;
    }
    costs
}

/// The parts of a function as `callgrind_annotate` names it, `file:function [object]`: the
/// source file (`???` when unknown), the function, the object when shown.
pub(super) fn parse_key(key: &str) -> (&str, &str, Option<&str>) {
    let (key, object) = match key.rsplit_once(" [") {
        Some((k, o)) if o.starts_with('/') && o.ends_with(']') => (k, Some(&o[..o.len() - 1])),
        _ => (key, None),
    };
    match key.split_once(':') {
        Some((f, n)) if !f.contains(' ') && !f.contains('<') => (f, n, object),
        _ => ("???", key, object),
    }
}

/// The C library allocator's functions, by name, for a C library without source information.
pub(super) const ALLOCATOR_FNS: &[&str] = &[
    "malloc",
    "free",
    "calloc",
    "realloc",
    "cfree",
    "_int_malloc",
    "_int_free",
    "_int_realloc",
    "malloc_consolidate",
    "sysmalloc",
    "unlink_chunk",
    "tcache_init",
    "__libc_malloc",
    "__libc_free",
    "__libc_calloc",
    "__libc_realloc",
];

/// Instructions spent in the C library's allocator (glibc's `malloc/` sources, or its
/// allocator functions by name), from [`self_costs`].
pub(super) fn allocator_ir(costs: &BTreeMap<String, u64>) -> u64 {
    costs
        .iter()
        .filter(|(k, _)| {
            let (file, func, object) = parse_key(k);
            file.contains("malloc/")
                || (object.is_some_and(|o| o.contains("/libc.so")) && ALLOCATOR_FNS.contains(&func))
        })
        .map(|(_, v)| v)
        .sum()
}

/// A function as `callgrind_annotate` names it, made short: the name, then the source file or
/// the library when it is not the benchmark binary.
pub(super) fn short_name(key: &str, bin: &Path) -> String {
    let (file, func, object) = parse_key(key);
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    let place = if file != "???" {
        Some(base(file))
    } else {
        object.filter(|o| Path::new(o) != bin).map(base)
    };
    match place {
        Some(p) => format!("{func}  [{p}]"),
        None => func.to_string(),
    }
}
