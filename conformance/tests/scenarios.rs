//! Every scenario under `scenarios/` is its own test case, run against the
//! embedded reference server, which must pass them all:
//!
//! ```sh
//! cargo test -p conformance --test scenarios                 # all
//! cargo test -p conformance --test scenarios -- rtmp/netstatus   # by id
//! ```
//!
//! Four cases run at once (see [`CASES_AT_ONCE`]); `-- --test-threads N`
//! changes that.
//!
//! A case that is neither OK nor INFORMATIONAL fails with its requirement,
//! expected/actual and wire log. When every scenario ran, the JSON index of the run is pinned
//! with insta (`tests/snapshots/scenarios__embedded_index.snap`): a changed
//! verdict, or a scenario added or removed, shows as a snapshot diff.

use std::sync::{Arc, Mutex};

use conformance::harness::trials;
use conformance::report::{index_json, TargetResults};
use conformance::scenario::{embedded, RunOptions};
use conformance::target::Target;
use libtest_mimic::Arguments;

/// Cases run at once unless `--test-threads` says otherwise. Most of a
/// case's time is media sent at its own pace and waited for, not CPU: four
/// at a time on two cores take half the time of two (the whole run: about
/// 2 minutes instead of 4), with every verdict the same.
const CASES_AT_ONCE: usize = 4;

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads.get_or_insert(CASES_AT_ONCE);
    let scenarios = match embedded() {
        Ok(scenarios) => scenarios,
        Err(error) => {
            eprintln!("cannot load the scenarios: {error}");
            std::process::exit(2);
        }
    };
    let total = scenarios.len();
    let results = Arc::new(Mutex::new(Vec::new()));
    let trials = trials(scenarios, &Target::Embedded, &RunOptions::default(), &results);
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
