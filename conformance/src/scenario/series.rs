//! A run of many cases against one target, in order, watching that the
//! target stays up between them (see [`crate::target::liveness`]).

use std::time::Duration;

use super::{run_case, RunOptions, Scenario};
use crate::target::Target;
use crate::verdict::{CaseResult, Verdict};

/// How long a server may take to accept connections again after a case
/// before the case counts as the one that brought it down.
const SETTLE: Duration = Duration::from_secs(2);
/// How long a restarted server may take to accept connections.
const RESTART: Duration = Duration::from_secs(30);

/// Runs `scenarios` against `target` one after another; `done` sees each
/// result as it comes. After a case that leaves an external target not
/// accepting connections, that case is FAILED; while the target stays down
/// (its restart command, if any, did not bring it back), cases are
/// TARGET-DOWN and not run.
pub async fn run_series(
    scenarios: &[Scenario],
    target: &Target,
    options: &RunOptions,
    mut done: impl FnMut(&CaseResult),
) -> Vec<CaseResult> {
    let liveness = target.liveness();
    let mut down: Option<(String, String)> = None;
    let mut results = Vec::with_capacity(scenarios.len());
    for scenario in scenarios {
        if let (Some(live), Some((since, why))) = (&liveness, &down) {
            match live.restart(RESTART).await {
                Ok(()) => down = None,
                Err(still) => {
                    let result = not_run(scenario, since, why, &still);
                    done(&result);
                    results.push(result);
                    continue;
                }
            }
        }
        let mut result = run_case(scenario, target, options).await;
        if let Some(live) = &liveness {
            if result.verdict != Verdict::Unimplemented {
                if let Err(why) = live.check(SETTLE).await {
                    stopped_answering(&mut result, &why);
                    down = Some((scenario.id.clone(), why));
                }
            }
        }
        done(&result);
        results.push(result);
    }
    results
}

/// Makes `result` the case that brought the target down.
fn stopped_answering(result: &mut CaseResult, why: &str) {
    let before = match (&result.expected, &result.actual) {
        (Some(expected), Some(actual)) if result.verdict != Verdict::Ok => {
            format!(
                " (before that, the case was {}: expected {expected}; actual {actual})",
                result.verdict
            )
        }
        _ => String::new(),
    };
    result.verdict = Verdict::Failed;
    result.expected = Some("the server to go on accepting connections after the case".into());
    result.actual = Some(format!("the server stopped answering after this case: {why}{before}"));
}

fn not_run(scenario: &Scenario, since: &str, why: &str, still: &str) -> CaseResult {
    CaseResult {
        id: scenario.id.clone(),
        title: scenario.title.clone(),
        requirement: scenario.requirement.clone(),
        strictness: scenario.strictness,
        verdict: Verdict::TargetDown,
        expected: Some("the target to accept connections".into()),
        actual: Some(format!("target down since {since} ({why}); {still}")),
        notes: vec![format!("not run: the target stopped answering after {since}")],
        log: Vec::new(),
        duration: Duration::ZERO,
    }
}
