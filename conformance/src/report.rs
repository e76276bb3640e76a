//! Reports of a run: the console summary, the JSON index CI diffs against a
//! checked-in expected-results file, JUnit XML for CI dashboards, and an HTML
//! page with the matrix of cases and each case's wire log.
//!
//! The JSON index is keyed by target, then case id, and holds only what is
//! stable from run to run for an unchanged server: the verdict and the
//! strictness, plus expected/actual and notes for cases that are not OK.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::verdict::{CaseResult, Verdict};

/// The results of one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetResults {
    /// The target's name.
    pub target: String,
    /// One per case run, in id order.
    pub cases: Vec<CaseResult>,
}

/// One case's entry in the JSON index.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct IndexEntry {
    /// The verdict.
    pub verdict: Verdict,
    /// `required`, `recommended` or `informational`.
    pub strictness: crate::scenario::Strictness,
    /// What was expected, when not OK.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expected: Option<String>,
    /// What happened, when not OK.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub actual: Option<String>,
    /// Why it was not run, which outcome matched.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub notes: Vec<String>,
}

/// The index: target → case id → entry.
pub type Index = BTreeMap<String, BTreeMap<String, IndexEntry>>;

/// Builds the JSON index of several targets' results.
pub fn index(results: &[TargetResults]) -> Index {
    results
        .iter()
        .map(|t| {
            let cases = t
                .cases
                .iter()
                .map(|c| {
                    let ok = c.verdict == Verdict::Ok;
                    let entry = IndexEntry {
                        verdict: c.verdict,
                        strictness: c.strictness,
                        expected: if ok { None } else { c.expected.clone() },
                        actual: if ok { None } else { c.actual.clone() },
                        notes: if ok { Vec::new() } else { c.notes.clone() },
                    };
                    (c.id.clone(), entry)
                })
                .collect();
            (t.target.clone(), cases)
        })
        .collect()
}

/// A case whose verdict is not the one an expected-results file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// The target.
    pub target: String,
    /// The case.
    pub id: String,
    /// The verdict expected (`None`: the file has no entry for the case).
    pub expected: Option<Verdict>,
    /// The verdict of this run.
    pub actual: Verdict,
    /// This run's actual, when not OK.
    pub detail: Option<String>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.expected {
            Some(expected) => write!(
                f,
                "{} {}: expected {expected}, got {}",
                self.target, self.id, self.actual
            )?,
            None => write!(
                f,
                "{} {}: not in the expected results, got {}",
                self.target, self.id, self.actual
            )?,
        }
        match &self.detail {
            Some(detail) => write!(f, " ({detail})"),
            None => Ok(()),
        }
    }
}

/// The cases of `results` whose verdict differs from `expected` (an index,
/// as `--write-expect` writes it). Only verdicts are compared: the words of
/// expected/actual may vary from run to run. Cases the file has but the run
/// did not run (filtered out) are not differences.
pub fn compare(expected: &Index, results: &[TargetResults]) -> Vec<Difference> {
    let mut differences = Vec::new();
    for target in results {
        let entries = expected.get(&target.target);
        for case in &target.cases {
            let want = entries.and_then(|e| e.get(&case.id)).map(|e| e.verdict);
            if want != Some(case.verdict) {
                differences.push(Difference {
                    target: target.target.clone(),
                    id: case.id.clone(),
                    expected: want,
                    actual: case.verdict,
                    detail: case.actual.clone().filter(|_| case.verdict != Verdict::Ok),
                });
            }
        }
    }
    differences
}

/// Reads expected-results files (indexes) into one; a later file's entries
/// for a target and case replace an earlier's.
pub fn read_expected(paths: &[std::path::PathBuf]) -> Result<Index, String> {
    let mut all = Index::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let index: Index = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for (target, cases) in index {
            all.entry(target).or_default().extend(cases);
        }
    }
    Ok(all)
}

/// The scenario catalogue as Markdown: one row per case with its id,
/// strictness, requirement and reference (`conformance list --markdown`;
/// scenarios/README.md holds it between [`CATALOGUE_BEGIN`] and [`CATALOGUE_END`]).
pub fn catalogue(scenarios: &[crate::scenario::Scenario]) -> String {
    let cell = |text: &str| text.replace('|', "\\|").replace('\n', " ");
    let mut out =
        String::from("| id | strictness | requirement | reference | seen failing on |\n|---|---|---|---|---|\n");
    for s in scenarios {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            s.id,
            format!("{:?}", s.strictness).to_lowercase(),
            cell(&s.requirement),
            cell(s.reference.as_deref().unwrap_or("")),
            cell(&s.seen_failing_on.join(", "))
        ));
    }
    out
}

/// The line before the catalogue in scenarios/README.md.
pub const CATALOGUE_BEGIN: &str = "<!-- catalogue: written by `conformance list --markdown`, checked by cargo test -->";
/// The line after it.
pub const CATALOGUE_END: &str = "<!-- end of catalogue -->";

/// The index as pretty JSON.
pub fn index_json(results: &[TargetResults]) -> String {
    serde_json::to_string_pretty(&index(results)).unwrap_or_default() + "\n"
}

/// Verdict counts of one target, in report order.
pub fn counts(cases: &[CaseResult]) -> Vec<(Verdict, usize)> {
    [
        Verdict::Ok,
        Verdict::NonStrict,
        Verdict::Informational,
        Verdict::Unimplemented,
        Verdict::Failed,
        Verdict::TargetDown,
    ]
    .into_iter()
    .map(|v| (v, cases.iter().filter(|c| c.verdict == v).count()))
    .collect()
}

/// One console line for a finished case.
pub fn console_line(case: &CaseResult) -> String {
    format!(
        "{:<13} {:<48} {:>6} ms  {}",
        case.verdict.as_str(),
        case.id,
        case.duration.as_millis(),
        case.title
    )
}

/// The console text for a case that is neither OK nor UNIMPLEMENTED:
/// requirement, expected, actual and the end of the wire log.
pub fn console_details(case: &CaseResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  requirement: {}", case.requirement);
    if let Some(expected) = &case.expected {
        let _ = writeln!(out, "  expected:    {expected}");
    }
    if let Some(actual) = &case.actual {
        let _ = writeln!(out, "  actual:      {actual}");
    }
    for note in &case.notes {
        let _ = writeln!(out, "  note:        {note}");
    }
    let tail = case.log.len().saturating_sub(20);
    if !case.log.is_empty() {
        let _ = writeln!(out, "  wire log (last {} lines):", case.log.len() - tail);
        for line in &case.log[tail..] {
            let _ = writeln!(out, "    {line}");
        }
    }
    out
}

/// The summary line of one target.
pub fn summary(results: &TargetResults) -> String {
    let parts: Vec<String> = counts(&results.cases)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(v, n)| format!("{n} {v}"))
        .collect();
    format!(
        "{}: {} cases: {}",
        results.target,
        results.cases.len(),
        parts.join(", ")
    )
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: a test suite per target, a test case per scenario. FAILED
/// cases (and NON-STRICT ones when `strict`) are failures, UNIMPLEMENTED ones
/// are skipped; the wire log goes to `system-out`.
pub fn junit(results: &[TargetResults], strict: bool) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"conformance\">\n");
    for target in results {
        let failures = target.cases.iter().filter(|c| c.verdict.fails(strict)).count();
        let skipped = target
            .cases
            .iter()
            .filter(|c| c.verdict == Verdict::Unimplemented)
            .count();
        let time: f64 = target.cases.iter().map(|c| c.duration.as_secs_f64()).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{time:.3}\">",
            xml_escape(&target.target),
            target.cases.len()
        );
        for case in &target.cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
                xml_escape(&target.target),
                xml_escape(&case.id),
                case.duration.as_secs_f64()
            );
            if case.verdict.fails(strict) {
                let _ = write!(
                    out,
                    "<failure message=\"{}\" type=\"{}\">expected: {}\nactual: {}</failure>",
                    xml_escape(&case.title),
                    case.verdict,
                    xml_escape(case.expected.as_deref().unwrap_or("")),
                    xml_escape(case.actual.as_deref().unwrap_or(""))
                );
            } else if case.verdict == Verdict::Unimplemented {
                let _ = write!(out, "<skipped message=\"{}\"/>", xml_escape(&case.notes.join("; ")));
            }
            let _ = write!(
                out,
                "<system-out>{} [{}]\n{}</system-out>",
                case.verdict,
                xml_escape(&case.notes.join("; ")),
                xml_escape(&case.log.join("\n"))
            );
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// One HTML page: the matrix of cases × targets, then every case's
/// requirement, expected/actual and wire log.
pub fn html(results: &[TargetResults]) -> String {
    let mut ids: Vec<&str> = results
        .iter()
        .flat_map(|t| t.cases.iter().map(|c| c.id.as_str()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Conformance report</title><style>\
         body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}\
         .OK{background:#cfc}.NON-STRICT{background:#ffc}.INFORMATIONAL{background:#cef}.UNIMPLEMENTED{background:#ddd}\
         .FAILED{background:#fcc}.TARGET-DOWN{background:#f99}pre{background:#f6f6f6;padding:8px;overflow:auto}</style></head><body>\n<h1>Conformance report</h1>\n",
    );
    for target in results {
        let _ = writeln!(out, "<p>{}</p>", xml_escape(&summary(target)));
    }
    out.push_str("<table><tr><th>case</th>");
    for target in results {
        let _ = write!(out, "<th>{}</th>", xml_escape(&target.target));
    }
    out.push_str("</tr>\n");
    for id in &ids {
        let _ = write!(out, "<tr><td>{}</td>", xml_escape(id));
        for target in results {
            match target.cases.iter().find(|c| c.id == *id) {
                Some(case) => {
                    let anchor = format!("{}--{}", target.target, case.id);
                    let _ = write!(
                        out,
                        "<td class=\"{v}\"><a href=\"#{a}\">{v}</a></td>",
                        v = case.verdict,
                        a = xml_escape(&anchor)
                    );
                }
                None => out.push_str("<td></td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    for target in results {
        for case in &target.cases {
            let anchor = format!("{}--{}", target.target, case.id);
            let _ = writeln!(
                out,
                "<h2 id=\"{}\" class=\"{}\">{} — {} — {}</h2>\n<p>{}</p><p><b>{}</b> ({:?}, {} ms)</p>",
                xml_escape(&anchor),
                case.verdict,
                xml_escape(&target.target),
                xml_escape(&case.id),
                xml_escape(&case.title),
                xml_escape(&case.requirement),
                case.verdict,
                case.strictness,
                case.duration.as_millis()
            );
            if let Some(expected) = &case.expected {
                let _ = writeln!(out, "<p>expected: {}</p>", xml_escape(expected));
            }
            if let Some(actual) = &case.actual {
                let _ = writeln!(out, "<p>actual: {}</p>", xml_escape(actual));
            }
            for note in &case.notes {
                let _ = writeln!(out, "<p>note: {}</p>", xml_escape(note));
            }
            let _ = writeln!(out, "<pre>{}</pre>", xml_escape(&case.log.join("\n")));
        }
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Strictness;
    use std::time::Duration;

    /// CI keeps scenarios/README.md's catalogue current: regenerate it with
    /// `conformance list --markdown` when a scenario changes.
    #[test]
    fn the_checked_in_catalogue_is_current() {
        let scenarios = crate::scenario::embedded().unwrap();
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/README.md")).unwrap();
        let inside = readme
            .split_once(CATALOGUE_BEGIN)
            .and_then(|(_, rest)| rest.split_once(CATALOGUE_END))
            .map(|(inside, _)| inside.trim())
            .expect("scenarios/README.md has the catalogue markers");
        assert!(
            inside == catalogue(&scenarios).trim(),
            "scenarios/README.md's catalogue is stale: run `cargo run -p conformance -- list --markdown` and paste it between the markers"
        );
    }

    fn case(id: &str, verdict: Verdict) -> CaseResult {
        CaseResult {
            id: id.into(),
            title: "t <1>".into(),
            requirement: "r".into(),
            strictness: Strictness::Required,
            verdict,
            expected: Some("NetStream.Publish.Start".into()),
            actual: Some("nothing & more".into()),
            notes: vec![],
            log: vec!["> connect".into()],
            duration: Duration::from_millis(12),
        }
    }

    #[test]
    fn the_index_keeps_only_what_is_stable() {
        let results = [TargetResults {
            target: "x".into(),
            cases: vec![case("a/ok", Verdict::Ok), case("a/bad", Verdict::Failed)],
        }];
        let json = index_json(&results);
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            parsed["x"]["a/ok"],
            serde_json::json!({"verdict": "OK", "strictness": "required"})
        );
        assert_eq!(parsed["x"]["a/bad"]["verdict"], "FAILED");
        assert_eq!(parsed["x"]["a/bad"]["actual"], "nothing & more");
        assert!(!json.contains("ms"), "no durations in the index: {json}");
    }

    #[test]
    fn only_changed_verdicts_are_differences() {
        let recorded = [TargetResults {
            target: "x".into(),
            cases: vec![case("a/ok", Verdict::Ok), case("a/bad", Verdict::Failed)],
        }];
        let expected: Index = serde_json::from_str(&index_json(&recorded)).unwrap();
        let mut same = recorded.clone();
        same[0].cases[1].actual = Some("other words".into());
        assert_eq!(compare(&expected, &same), vec![], "words may change, verdicts not");
        let changed = [TargetResults {
            target: "x".into(),
            cases: vec![case("a/ok", Verdict::Failed), case("a/new", Verdict::Ok)],
        }];
        let differences: Vec<String> = compare(&expected, &changed).iter().map(|d| d.to_string()).collect();
        assert_eq!(
            differences,
            [
                "x a/ok: expected OK, got FAILED (nothing & more)",
                "x a/new: not in the expected results, got OK"
            ]
        );
        let other_target = [TargetResults {
            target: "y".into(),
            cases: vec![case("a/ok", Verdict::Ok)],
        }];
        assert_eq!(compare(&expected, &other_target).len(), 1);
    }

    #[test]
    fn junit_marks_failures_and_skips_and_escapes() {
        let results = [TargetResults {
            target: "x".into(),
            cases: vec![
                case("a/bad", Verdict::Failed),
                case("a/ns", Verdict::NonStrict),
                case("a/un", Verdict::Unimplemented),
            ],
        }];
        let xml = junit(&results, false);
        assert!(xml.contains("tests=\"3\" failures=\"1\" skipped=\"1\""), "{xml}");
        assert!(xml.contains("nothing &amp; more") && xml.contains("t &lt;1&gt;"));
        assert!(junit(&results, true).contains("failures=\"2\""));
        let page = html(&results);
        assert!(page.contains("class=\"FAILED\"") && page.contains("&gt; connect"));
    }
}
