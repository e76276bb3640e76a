//! Every known-issue scenario, and every scenario written for a defect once
//! found in the reference server, catches its bug: run against the
//! reference server with that bug switched back on (quirks of its
//! configuration), the scenario misses (FAILED, or NON-STRICT for a SHOULD)
//! and its "actual" names the symptom. Against the plain server the same
//! scenarios pass (`tests/scenarios.rs`). The rows are in
//! `support/caught.rs`, where `seen_failing.rs` also reads them.

use std::sync::Arc;

use conformance::scenario::{embedded, run_case, RunOptions, Scenario};
use conformance::target::Target;
use conformance::verdict::Verdict;
use reference_server::config::Quirks;

#[path = "support/caught.rs"]
mod caught;
use caught::CAUGHT;

/// Cases run at once: most of a missing case's time is waiting for what
/// never comes, so a few share the two cores well.
const AT_ONCE: usize = 6;

/// Runs `scenario` against the server with `quirks` on; what was wrong, if anything.
async fn check(scenario: Scenario, quirks: &'static str, symptom: &'static str) -> Option<String> {
    let id = scenario.id.clone();
    let mut switched = Quirks::default();
    for quirk in quirks.split(',') {
        if let Err(error) = switched.set(quirk) {
            return Some(format!("{id}: {error}"));
        }
    }
    let result = run_case(&scenario, &Target::EmbeddedWithQuirks(switched), &RunOptions::default()).await;
    let actual = result.actual.clone().unwrap_or_default();
    // A case whose outcomes grade a lesser miss (a SHOULD) may say NON-STRICT.
    let graded = scenario
        .steps
        .iter()
        .any(|step| step.outcomes.iter().any(|o| o.verdict == Verdict::NonStrict));
    let missed =
        result.verdict == Verdict::of_miss(scenario.strictness) || (graded && result.verdict == Verdict::NonStrict);
    if !missed {
        return Some(format!(
            "{id} with {quirks} on should miss; {}",
            conformance::report::console_details(&result)
        ));
    }
    (!actual.contains(symptom)).then(|| format!("{id} with {quirks} on should say {symptom:?}; it says {actual:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caught_case_misses_with_its_quirks_on() {
    let scenarios = embedded().expect("the scenarios load");
    let slots = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    // A case's future is not Send: the cases run as local tasks of this
    // thread, the servers they start on the runtime's workers.
    let local = tokio::task::LocalSet::new();
    let wrong = local
        .run_until(async move {
            let mut runs = Vec::new();
            for (id, quirks, symptom) in CAUGHT {
                let Some(scenario) = scenarios.iter().find(|s| s.id == *id).cloned() else {
                    panic!("no scenario {id}");
                };
                let slots = slots.clone();
                runs.push(tokio::task::spawn_local(async move {
                    let _slot = slots.acquire_owned().await;
                    check(scenario, quirks, symptom).await
                }));
            }
            let mut wrong = Vec::new();
            for run in runs {
                wrong.extend(run.await.expect("a case ran"));
            }
            wrong
        })
        .await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
