//! The scenarios as `cargo test` cases, for any target: each scenario is
//! one libtest-mimic trial, so `cargo test -- rtmp/netstatus` selects by id
//! and nextest runs them one by one.
//!
//! A server's own project runs the suite against its server with a test
//! file declared `harness = false`:
//!
//! ```no_run
//! // tests/conformance.rs, with [[test]] name = "conformance", harness = false
//! use conformance::target::{Target, TargetSpec};
//!
//! fn main() {
//!     // Start your server here (or in CI before the tests), then say where it is.
//!     let spec = TargetSpec {
//!         name: "my-server".into(),
//!         rtmp: Some("rtmp://127.0.0.1:1935/live".into()),
//!         whep: Some("http://127.0.0.1:8080/whep/{app}/{stream}".into()),
//!         ..TargetSpec::default()
//!     };
//!     conformance::harness::main(Target::External(Box::new(spec)));
//! }
//! ```
//!
//! A case passes when it is OK or INFORMATIONAL, and is ignored (with its
//! reason) when UNIMPLEMENTED: the target lacks what it needs or excludes it.
//! A case after which the server stops accepting connections fails with
//! "the server stopped answering after this case", and cases while it stays
//! down fail as TARGET-DOWN ([`Watch`]; with several test threads, the case
//! blamed is one that was running when it went down: `--test-threads=1`
//! names the exact one).
//!
//! A server shipped as an image runs with [`main_container`]: a spec with
//! a `[container]` table (see [`crate::target::container`]). Where no
//! Docker engine answers, or the image is missing, every case is skipped
//! with that reason printed; set `CONFORMANCE_REQUIRE_DOCKER=1` (in CI) to
//! make that a failure instead.

use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Conclusion, Failed, Trial};

use crate::report::console_details;
use crate::scenario::{embedded, run_case, RunOptions, Scenario, Watch};
use crate::target::container::ContainerError;
use crate::target::{Target, TargetError, TargetSpec};
use crate::verdict::{CaseResult, Verdict};

/// One trial per scenario, run against `target`; every result also goes to `results`.
pub fn trials(
    scenarios: Vec<Scenario>,
    target: &Target,
    options: &RunOptions,
    results: &Arc<Mutex<Vec<CaseResult>>>,
) -> Vec<Trial> {
    let spec = target.spec();
    let watch = Arc::new(Watch::new(target));
    scenarios
        .into_iter()
        .map(|scenario| {
            let unable = spec.cannot_run(&scenario).is_some();
            let (target, options, results, watch) = (target.clone(), options.clone(), results.clone(), watch.clone());
            Trial::test(scenario.id.clone(), move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Failed::from(e.to_string()))?;
                let result = runtime.block_on(async {
                    if let Some(not_run) = watch.before(&scenario).await {
                        return not_run;
                    }
                    let mut result = run_case(&scenario, &target, &options).await;
                    watch.after(&scenario, &mut result).await;
                    result
                });
                results.lock().unwrap_or_else(|p| p.into_inner()).push(result.clone());
                match result.verdict {
                    Verdict::Ok | Verdict::Informational | Verdict::Unimplemented => Ok(()),
                    verdict => Err(Failed::from(format!("{verdict}\n{}", console_details(&result)))),
                }
            })
            .with_ignored_flag(unable)
        })
        .collect()
}

/// Runs the repository's scenarios against `target` as a test binary and
/// exits with the test's status.
pub fn main(target: Target) -> ! {
    let args = Arguments::from_args();
    let scenarios = scenarios_or_exit();
    let conclusion = run(&args, scenarios, target);
    conclusion.exit()
}

/// Starts the container `spec` describes, runs the repository's scenarios
/// whose ids begin with one of `areas` (every one when `areas` is empty, or
/// when `CONFORMANCE_CONTAINER_ALL=1`) against it, removes it and exits with
/// the test's status.
pub fn main_container(spec: TargetSpec, areas: &[&str]) -> ! {
    let args = Arguments::from_args();
    let mut scenarios = scenarios_or_exit();
    let all = std::env::var_os("CONFORMANCE_CONTAINER_ALL").is_some_and(|v| v != "0");
    if !all && !areas.is_empty() {
        scenarios.retain(|s| areas.iter().any(|area| s.id.starts_with(area)));
    }
    let required = std::env::var_os("CONFORMANCE_REQUIRE_DOCKER").is_some_and(|v| v != "0");
    match Target::from_spec(spec) {
        Ok(target) => run(&args, scenarios, target).exit(),
        Err(TargetError::Container(error @ (ContainerError::NoEngine(_) | ContainerError::NoImage { .. })))
            if !required =>
        {
            eprintln!("skipping every case: {error}");
            let skipped = scenarios
                .into_iter()
                .map(|s| Trial::test(s.id, || Ok(())).with_ignored_flag(true))
                .collect();
            libtest_mimic::run(&args, skipped).exit()
        }
        Err(error) => {
            eprintln!("cannot start the target: {error}");
            std::process::exit(2);
        }
    }
}

fn scenarios_or_exit() -> Vec<Scenario> {
    match embedded() {
        Ok(scenarios) => scenarios,
        Err(error) => {
            eprintln!("cannot load the scenarios: {error}");
            std::process::exit(2);
        }
    }
}

/// Runs the trials, then drops the target (a container is removed) before
/// the caller exits.
fn run(args: &Arguments, scenarios: Vec<Scenario>, target: Target) -> Conclusion {
    let results = Arc::new(Mutex::new(Vec::new()));
    let trials = trials(scenarios, &target, &RunOptions::default(), &results);
    let conclusion = libtest_mimic::run(args, trials);
    drop(target);
    conclusion
}
