//! Every known-issue scenario, and every scenario written for a defect once
//! found in the reference server, catches its bug: run against the
//! reference server with that bug switched back on (quirks of its
//! configuration), the scenario ends FAILED and its "actual" names the
//! symptom. Against the plain server the same scenarios pass
//! (`tests/scenarios.rs`).

use conformance::scenario::{embedded, run_case, RunOptions};
use conformance::target::Target;
use conformance::verdict::Verdict;
use reference_server::config::Quirks;

/// Each scenario, the quirks (comma-separated) that bring its bug back, and
/// what the suite must say it saw.
const CAUGHT: &[(&str, &str, &str)] = &[
    (
        "known-issues/ki-1-audio-only-sound",
        "ki-1",
        "the video m-line is sendonly H264, not rejected; no sound within 4s: 0 RTP audio packets",
    ),
    (
        "known-issues/ki-1-audio-only-sound-ws",
        "ki-1",
        "no sound within 4s: 0 RTP audio packets",
    ),
    (
        "known-issues/ki-1-audio-only-sound-nellymoser",
        "ki-1",
        "no sound within 4s: 0 RTP audio packets",
    ),
    (
        "known-issues/ki-1-audio-only-sound-aac",
        "ki-1",
        "no sound within 4s: 0 RTP audio packets",
    ),
    (
        "known-issues/ki-2-second-stream-keeps-sound",
        "ki-2",
        "step 7 (phone Wait stream1): the sound stopped for",
    ),
    ("known-issues/ki-3-url-params", "ki-3", r#""name":"stream1?s1=v1""#),
    (
        "webrtc/whep/video-starts-late",
        "answer_only_tracks_sent",
        "the video m-line is rejected, not sending; fewer than 25 pictures",
    ),
    (
        "webrtc/ws/video-starts-late",
        // Over the WebSocket channel a renegotiation would still bring the
        // pictures: both must be off for the player to stay without them.
        "answer_only_tracks_sent,no_renegotiation",
        "fewer than 25 pictures",
    ),
    (
        "webrtc/whip/late-rtmp-player-hears",
        "no_publisher_keyframe_requests,rtmp_audio_behind_video",
        "arrived after video",
    ),
    (
        "webrtc/whip/publisher-asked-for-keyframes",
        "no_publisher_keyframe_requests",
        "ahead of real time (a backlog sent at once)",
    ),
    (
        "webrtc/ws/video-added-later",
        "no_renegotiation",
        "fewer than 25 pictures; saw SDP audio: sendonly opus, video: rejected",
    ),
    ("rtmp/connect/app-name-is-the-namespace", "rtmp_app_name_ignored", "404"),
];

async fn caught(id: &str) {
    let (_, quirk, symptom) = CAUGHT
        .iter()
        .find(|(case, ..)| *case == id)
        .expect("a row for the case");
    let scenario = embedded()
        .expect("the scenarios load")
        .into_iter()
        .find(|s| s.id == id)
        .expect("the scenario exists");
    let mut quirks = Quirks::default();
    for quirk in quirk.split(',') {
        quirks.set(quirk).expect("a known quirk");
    }
    let result = run_case(&scenario, &Target::EmbeddedWithQuirks(quirks), &RunOptions::default()).await;
    let actual = result.actual.clone().unwrap_or_default();
    // A miss of the scenario's strictness: FAILED, or NON-STRICT for a SHOULD.
    assert_eq!(
        result.verdict,
        Verdict::of_miss(scenario.strictness),
        "{id} with {quirk} on should miss; {}",
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

#[tokio::test]
async fn a_player_answered_before_the_first_picture_is_caught_over_whep() {
    caught("webrtc/whep/video-starts-late").await;
}

#[tokio::test]
async fn a_player_answered_before_the_first_picture_is_caught_over_websocket() {
    caught("webrtc/ws/video-starts-late").await;
}

#[tokio::test]
async fn sound_behind_a_late_joiners_backlog_is_caught() {
    caught("webrtc/whip/late-rtmp-player-hears").await;
}

#[tokio::test]
async fn a_publisher_never_asked_for_keyframes_is_caught() {
    caught("webrtc/whip/publisher-asked-for-keyframes").await;
}

#[tokio::test]
async fn video_never_offered_after_the_answer_is_caught() {
    caught("webrtc/ws/video-added-later").await;
}

#[tokio::test]
async fn an_rtmp_application_name_that_chooses_nothing_is_caught() {
    caught("rtmp/connect/app-name-is-the-namespace").await;
}

#[test]
fn every_known_issue_scenario_is_proven_here() {
    let mut ids: Vec<String> = embedded()
        .expect("the scenarios load")
        .into_iter()
        .map(|s| s.id)
        .filter(|id| id.starts_with("known-issues/"))
        .collect();
    ids.sort();
    let mut proven: Vec<String> = CAUGHT
        .iter()
        .map(|(id, ..)| id.to_string())
        .filter(|id| id.starts_with("known-issues/"))
        .collect();
    proven.sort();
    assert_eq!(
        ids, proven,
        "each known-issue scenario needs a row in CAUGHT and a test"
    );
}
