//! Cases run one after another against one target, watching that the
//! target stays up between them (see [`crate::target::liveness`]).

use std::sync::Mutex;
use std::time::Duration;

use super::{run_case, RunOptions, Scenario};
use crate::target::liveness::Liveness;
use crate::target::Target;
use crate::verdict::{CaseResult, Verdict};

/// How long a server may take to accept connections again after a case
/// before the case counts as the one that brought it down. A busy machine
/// (CI runs two servers' suites at once) once kept node-media-server from
/// answering a handshake for 2 s after a case that had not harmed it.
const SETTLE: Duration = Duration::from_secs(5);
/// How long a restarted server may take to accept connections.
const RESTART: Duration = Duration::from_secs(30);

/// Runs `scenarios` against `target` one after another; `done` sees each
/// result as it comes. See [`Watch`] for what happens when the target goes down.
pub async fn run_series(
    scenarios: &[Scenario],
    target: &Target,
    options: &RunOptions,
    mut done: impl FnMut(&CaseResult),
) -> Vec<CaseResult> {
    let watch = Watch::new(target);
    let mut results = Vec::with_capacity(scenarios.len());
    for scenario in scenarios {
        let result = match watch.before(scenario).await {
            Some(not_run) => not_run,
            None => {
                let mut result = run_case(scenario, target, options).await;
                watch.after(scenario, &mut result).await;
                result
            }
        };
        done(&result);
        results.push(result);
    }
    results
}

/// Whether a target outside this process is still up, across cases. After
/// a case that leaves it not accepting connections, that case is FAILED;
/// while it stays down (its restart command, if any, did not bring it
/// back), cases are TARGET-DOWN and not run. The embedded target, started
/// afresh for each case, is not watched.
#[derive(Debug)]
pub struct Watch {
    liveness: Option<Liveness>,
    /// The case after which the target stopped answering, and how it failed.
    down: Mutex<Option<(String, String)>>,
}

impl Watch {
    /// A watch over `target`.
    pub fn new(target: &Target) -> Watch {
        Watch {
            liveness: target.liveness(),
            down: Mutex::new(None),
        }
    }

    /// Before `scenario`: `None` when it may run; the TARGET-DOWN result
    /// when the target is down and a restart did not bring it back.
    pub async fn before(&self, scenario: &Scenario) -> Option<CaseResult> {
        let live = self.liveness.as_ref()?;
        let (since, why) = self.down.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
        match live.restart(RESTART).await {
            Ok(()) => {
                *self.down.lock().unwrap_or_else(|p| p.into_inner()) = None;
                None
            }
            Err(still) => Some(not_run(scenario, &since, &why, &still)),
        }
    }

    /// After `scenario` ran: makes `result` FAILED when the target stopped
    /// accepting connections (cases it could not run do not count).
    pub async fn after(&self, scenario: &Scenario, result: &mut CaseResult) {
        let Some(live) = &self.liveness else { return };
        if result.verdict == Verdict::Unimplemented {
            return;
        }
        if let Err(why) = live.check(SETTLE).await {
            stopped_answering(result, &why);
            *self.down.lock().unwrap_or_else(|p| p.into_inner()) = Some((scenario.id.clone(), why));
        }
    }
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
