//! Every scenario under `scenarios/` is its own test case, run against the
//! embedded reference server, which must pass them all:
//!
//! ```sh
//! cargo test -p conformance --test scenarios                 # all
//! cargo test -p conformance --test scenarios -- rtmp/netstatus   # by id
//! ```
//!
//! A case that is not OK fails with its requirement, expected/actual and
//! wire log.

use conformance::report::console_details;
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
    let trials = scenarios
        .into_iter()
        .map(|scenario| {
            Trial::test(scenario.id.clone(), move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Failed::from(e.to_string()))?;
                let result = runtime.block_on(run_case(&scenario, &Target::Embedded, &RunOptions::default()));
                match result.verdict {
                    Verdict::Ok => Ok(()),
                    verdict => Err(Failed::from(format!("{verdict}\n{}", console_details(&result)))),
                }
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
