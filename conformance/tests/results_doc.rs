//! docs/RESULTS.md's matrix says what the checked-in results say: its
//! reference-server column is the embedded run pinned by the scenarios
//! snapshot, and its nginx-rtmp and node-media-server columns are
//! `targets/<name>.expected.json`, which CI checks against fresh runs. Every
//! scenario has a row.

use std::collections::BTreeMap;
use std::path::Path;

fn repo(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// case id → verdict, from an index (target → case → entry).
fn verdicts(json: &str, target: &str) -> BTreeMap<String, String> {
    let index: serde_json::Value = serde_json::from_str(json).unwrap();
    index[target]
        .as_object()
        .unwrap_or_else(|| panic!("no target {target}"))
        .iter()
        .map(|(id, entry)| (id.clone(), entry["verdict"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn the_results_matrix_is_the_checked_in_results() {
    let doc = repo("docs/RESULTS.md");
    let table = doc
        .split_once("<!-- matrix:")
        .and_then(|(_, rest)| rest.split_once("<!-- end of matrix -->"))
        .map(|(inside, _)| inside)
        .expect("docs/RESULTS.md has the matrix markers");
    let snapshot = repo("conformance/tests/snapshots/scenarios__embedded_index.snap");
    let columns = [
        (3, verdicts(&snapshot[snapshot.find('{').unwrap()..], "embedded")),
        (4, verdicts(&repo("targets/nginx-rtmp.expected.json"), "nginx-rtmp")),
        (
            5,
            verdicts(&repo("targets/node-media-server.expected.json"), "node-media-server"),
        ),
    ];
    let mut rows = 0;
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let id = cells[1].trim_matches('`');
        for (column, expected) in &columns {
            let shown = match cells[*column] {
                "—" => "UNIMPLEMENTED",
                other => other.trim_matches('*'),
            };
            let want = expected.get(id).map(String::as_str).unwrap_or("(no entry)");
            assert_eq!(shown, want, "docs/RESULTS.md, {id}, column {column}");
        }
        rows += 1;
    }
    let scenarios = conformance::scenario::embedded().unwrap();
    assert_eq!(rows, scenarios.len(), "one row per scenario in docs/RESULTS.md");
}
