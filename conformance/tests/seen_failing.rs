//! Every scenario has been seen to miss somewhere, and says where
//! (`seen_failing_on`): a check that never failed is not yet trusted. Each
//! claim is checked here against its evidence:
//! - `nginx-rtmp`, `node-media-server`: a verdict other than OK and
//!   UNIMPLEMENTED in `targets/<name>.expected.json`, which CI checks
//!   against a fresh run of that server;
//! - `srs`: such a verdict in docs/RESULTS.md's SRS column (a run by hand,
//!   dated there);
//! - `quirk NAMES`: a row of `support/caught.rs`'s CAUGHT, which
//!   `quirks_caught.rs` runs;
//! - `broken target`: a row of its BROKEN, which `broken_target.rs` runs.

use std::collections::BTreeMap;
use std::path::Path;

#[path = "support/caught.rs"]
mod caught;

fn repo(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Case id → verdict of `target` in its expected-results file.
fn expected(target: &str) -> BTreeMap<String, String> {
    let index: serde_json::Value = serde_json::from_str(&repo(&format!("targets/{target}.expected.json"))).unwrap();
    index[target]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, entry)| (id.clone(), entry["verdict"].as_str().unwrap().to_string()))
        .collect()
}

/// Case id → SRS's verdict in docs/RESULTS.md's matrix.
fn srs() -> BTreeMap<String, String> {
    repo("docs/RESULTS.md")
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let verdict = match cells[6] {
                "—" => "UNIMPLEMENTED",
                other => other.trim_matches('*'),
            };
            (cells[1].trim_matches('`').to_string(), verdict.to_string())
        })
        .collect()
}

fn missed(verdict: Option<&String>) -> bool {
    verdict.is_some_and(|v| v != "OK" && v != "UNIMPLEMENTED")
}

#[test]
fn every_scenario_is_seen_failing_where_it_says() {
    let nginx = expected("nginx-rtmp");
    let nms = expected("node-media-server");
    let srs = srs();
    let mut wrong = Vec::new();
    for scenario in conformance::scenario::embedded().unwrap() {
        let id = scenario.id.as_str();
        if scenario.seen_failing_on.is_empty() {
            wrong.push(format!("{id}: seen failing nowhere"));
        }
        for claim in &scenario.seen_failing_on {
            let holds = match claim.as_str() {
                "nginx-rtmp" => missed(nginx.get(id)),
                "node-media-server" => missed(nms.get(id)),
                "srs" => missed(srs.get(id)),
                "broken target" => caught::BROKEN.iter().any(|(case, _)| *case == id),
                other => match other.strip_prefix("quirk ") {
                    Some(quirks) => caught::CAUGHT.iter().any(|(case, q, _)| *case == id && *q == quirks),
                    None => false,
                },
            };
            if !holds {
                wrong.push(format!("{id}: no evidence that it misses on {claim:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
