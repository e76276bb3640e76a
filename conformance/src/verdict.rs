//! Verdicts, in Autobahn|Testsuite's vocabulary, and the result of one case.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::scenario::Strictness;

/// What a case concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// Every expectation held.
    #[serde(rename = "OK", alias = "ok")]
    Ok,
    /// A recommended (SHOULD) expectation was missed.
    #[serde(rename = "NON-STRICT", alias = "non-strict")]
    NonStrict,
    /// Behaviour worth knowing; neither right nor wrong.
    #[serde(rename = "INFORMATIONAL", alias = "informational")]
    Informational,
    /// The target lacks what the case needs (or excludes it): not run.
    #[serde(rename = "UNIMPLEMENTED", alias = "unimplemented")]
    Unimplemented,
    /// A required (MUST) expectation was missed.
    #[serde(rename = "FAILED", alias = "failed")]
    Failed,
    /// Not run: the target stopped accepting connections in an earlier case
    /// (which is FAILED) and did not answer again.
    #[serde(rename = "TARGET-DOWN", alias = "target-down")]
    TargetDown,
}

impl Verdict {
    /// The name printed in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::NonStrict => "NON-STRICT",
            Verdict::Informational => "INFORMATIONAL",
            Verdict::Unimplemented => "UNIMPLEMENTED",
            Verdict::Failed => "FAILED",
            Verdict::TargetDown => "TARGET-DOWN",
        }
    }

    /// The verdict of missing an expectation of `strictness`.
    pub fn of_miss(strictness: Strictness) -> Verdict {
        match strictness {
            Strictness::Required => Verdict::Failed,
            Strictness::Recommended => Verdict::NonStrict,
            Strictness::Informational => Verdict::Informational,
        }
    }

    /// How bad it is, to keep the worst of several steps.
    fn rank(self) -> u8 {
        match self {
            Verdict::Ok => 0,
            Verdict::Informational => 1,
            Verdict::NonStrict => 2,
            Verdict::Unimplemented => 3,
            Verdict::Failed => 4,
            Verdict::TargetDown => 5,
        }
    }

    /// The worse of the two.
    pub fn worst(self, other: Verdict) -> Verdict {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// Whether a run fails on it: FAILED, TARGET-DOWN, and NON-STRICT when `strict`.
    pub fn fails(self, strict: bool) -> bool {
        matches!(self, Verdict::Failed | Verdict::TargetDown) || (strict && self == Verdict::NonStrict)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one case against one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// The scenario id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The requirement it checks.
    pub requirement: String,
    /// Its strictness.
    pub strictness: Strictness,
    /// What it concluded.
    pub verdict: Verdict,
    /// For anything but OK: what was expected.
    pub expected: Option<String>,
    /// For anything but OK: what happened.
    pub actual: Option<String>,
    /// Why a case did not run, or which outcome matched and its note.
    pub notes: Vec<String>,
    /// What went over the wire: RTMP messages and signalling both ways, RTP counts.
    pub log: Vec<String>,
    /// How long it took.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_verdict_wins() {
        assert_eq!(Verdict::Ok.worst(Verdict::NonStrict), Verdict::NonStrict);
        assert_eq!(Verdict::Failed.worst(Verdict::NonStrict), Verdict::Failed);
        assert_eq!(Verdict::Informational.worst(Verdict::Ok), Verdict::Informational);
        assert!(Verdict::NonStrict.fails(true) && !Verdict::NonStrict.fails(false));
        assert_eq!(serde_json::to_string(&Verdict::NonStrict).unwrap(), "\"NON-STRICT\"");
        let parsed: Verdict = toml::Value::String("non-strict".into()).try_into().unwrap();
        assert_eq!(parsed, Verdict::NonStrict);
    }
}
