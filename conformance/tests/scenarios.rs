//! Every scenario under `scenarios/` is its own test case, run against the
//! embedded reference server, which must pass them all:
//!
//! ```sh
//! cargo test -p conformance --test scenarios                 # all
//! cargo test -p conformance --test scenarios -- rtmp/netstatus   # by id
//! ```
//!
//! A case that is neither OK nor INFORMATIONAL fails with its requirement,
//! expected/actual and wire log. When every scenario ran, the JSON index of the run is pinned
//! with insta (`tests/snapshots/scenarios__embedded_index.snap`): a changed
//! verdict, or a scenario added or removed, shows as a snapshot diff.

use std::sync::{Arc, Mutex};

use conformance::report::{console_details, index_json, TargetResults};
use conformance::scenario::{default_dir, load_dir, run_case, RunOptions};
use conformance::target::Target;
use conformance::verdict::Verdict;
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let scenarios = match load_dir(&default_dir()) {
        Ok(scenarios) => scenarios,
        Err(error) => {
            eprintln!("cannot load the scenarios: {error}");
            std::process::exit(2);
        }
    };
    let total = scenarios.len();
    let results = Arc::new(Mutex::new(Vec::new()));
    let trials = scenarios
        .into_iter()
        .map(|scenario| {
            let results = results.clone();
            Trial::test(scenario.id.clone(), move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Failed::from(e.to_string()))?;
                let result = runtime.block_on(run_case(&scenario, &Target::Embedded, &RunOptions::default()));
                results.lock().unwrap_or_else(|p| p.into_inner()).push(result.clone());
                match result.verdict {
                    // Informational outcomes are pinned by the index snapshot below.
                    Verdict::Ok | Verdict::Informational => Ok(()),
                    verdict => Err(Failed::from(format!("{verdict}\n{}", console_details(&result)))),
                }
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    let mut cases = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    if !conclusion.has_failed() && cases.len() == total {
        cases.sort_by(|a, b| a.id.cmp(&b.id));
        let index = index_json(&[TargetResults {
            target: "embedded".into(),
            cases,
        }]);
        insta::assert_snapshot!("embedded_index", index);
    }
    conclusion.exit();
}
