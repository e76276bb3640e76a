//! Every known-issue scenario catches its bug: run against the reference
//! server with that bug switched back on (a quirk of its configuration), the
//! scenario ends FAILED and its "actual" names the symptom. Against the plain
//! server the same scenarios pass (`tests/scenarios.rs`).

use conformance::scenario::{default_dir, load_dir, run_case, RunOptions};
use conformance::target::Target;
use conformance::verdict::Verdict;
use reference_server::config::Quirks;

/// Each known-issue scenario, the quirk that brings its bug back, and what
/// the suite must say it saw.
const CAUGHT: &[(&str, &str, &str)] = &[
    (
        "known-issues/ki-1-audio-only-sound",
        "ki-1",
        "the video m-line is sendonly H264, not rejected; no sound within 2s: 0 RTP audio packets",
    ),
    (
        "known-issues/ki-1-audio-only-sound-ws",
        "ki-1",
        "no sound within 2s: 0 RTP audio packets",
    ),
    (
        "known-issues/ki-1-audio-only-sound-nellymoser",
        "ki-1",
        "no sound within 2s: 0 RTP audio packets",
    ),
    (
        "known-issues/ki-1-audio-only-sound-aac",
        "ki-1",
        "no sound within 2s: 0 RTP audio packets",
    ),
    (
        "known-issues/ki-2-second-stream-keeps-sound",
        "ki-2",
        "step 7 (phone Wait stream1): the sound stopped for",
    ),
    ("known-issues/ki-3-url-params", "ki-3", r#""name":"stream1?s1=v1""#),
];

async fn caught(id: &str) {
    let (_, quirk, symptom) = CAUGHT
        .iter()
        .find(|(case, ..)| *case == id)
        .expect("a row for the case");
    let scenario = load_dir(&default_dir())
        .expect("the scenarios load")
        .into_iter()
        .find(|s| s.id == id)
        .expect("the scenario exists");
    let mut quirks = Quirks::default();
    quirks.set(quirk).expect("a known quirk");
    let result = run_case(&scenario, &Target::EmbeddedWithQuirks(quirks), &RunOptions::default()).await;
    let actual = result.actual.clone().unwrap_or_default();
    assert_eq!(
        result.verdict,
        Verdict::Failed,
        "{id} with {quirk} on should fail; {}",
        conformance::report::console_details(&result)
    );
    assert!(
        actual.contains(symptom),
        "{id} with {quirk} on should say {symptom:?}; it says {actual:?}"
    );
}

#[tokio::test]
async fn ki_1_speex_over_whep_is_caught() {
    caught("known-issues/ki-1-audio-only-sound").await;
}

#[tokio::test]
async fn ki_1_speex_over_websocket_is_caught() {
    caught("known-issues/ki-1-audio-only-sound-ws").await;
}

#[tokio::test]
async fn ki_1_nellymoser_is_caught() {
    caught("known-issues/ki-1-audio-only-sound-nellymoser").await;
}

#[tokio::test]
async fn ki_1_aac_is_caught() {
    caught("known-issues/ki-1-audio-only-sound-aac").await;
}

#[tokio::test]
async fn ki_2_sound_taken_by_a_second_stream_is_caught() {
    caught("known-issues/ki-2-second-stream-keeps-sound").await;
}

#[tokio::test]
async fn ki_3_name_keeping_its_query_is_caught() {
    caught("known-issues/ki-3-url-params").await;
}

#[test]
fn every_known_issue_scenario_is_proven_here() {
    let mut ids: Vec<String> = load_dir(&default_dir())
        .expect("the scenarios load")
        .into_iter()
        .map(|s| s.id)
        .filter(|id| id.starts_with("known-issues/"))
        .collect();
    ids.sort();
    let mut proven: Vec<String> = CAUGHT.iter().map(|(id, ..)| id.to_string()).collect();
    proven.sort();
    assert_eq!(
        ids, proven,
        "each known-issue scenario needs a row in CAUGHT and a test"
    );
}
