//! The `browser` actor: Debian's Chromium, headless, on the suite's own
//! page (`crate::browser::page`), playing over WHEP and publishing its fake
//! camera and microphone over WHIP as a web page would. What the page reads
//! from `getStats` and WebAudio becomes a player report, so the `media` and
//! `sdp` expectations of WebRTC steps apply, the ones a browser can show.

use std::time::Duration;

use crate::browser::page::{PageBrowser, PageState};
use crate::webrtc::receive::{AudioStats, VideoStats};
use crate::webrtc::{PlayerReport, SdpSummary};

use super::expect::{MediaExpect, Observed};

/// Whether this machine has Chromium (or the program `$CHROMIUM` names);
/// why not if it has none.
pub(super) fn available() -> Result<(), String> {
    let program = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_string());
    super::runs(&program, "--version")
}

/// A `browser` actor: its page, once opened.
#[derive(Default)]
pub(super) struct BrowserActor {
    pub(super) page: Option<PageBrowser>,
}

/// What a browser cannot show of `media`, if anything: it decodes in its
/// own pipeline, so RTP-level facts (the first frame an IDR, timestamps in
/// order, sequence breaks, gaps between frames) stay hidden.
pub(super) fn unobservable(media: &MediaExpect) -> Option<&'static str> {
    [
        (media.first_frame_idr, "first_frame_idr"),
        (media.pictures_in_order, "pictures_in_order"),
        (media.audio_continuous, "audio_continuous"),
        (media.max_audio_gap.is_some(), "max_audio_gap"),
    ]
    .into_iter()
    .find_map(|(asked, name)| asked.then_some(name))
}

/// Notes what the page has seen in `observed`.
pub(super) fn observe(state: &PageState, observed: &mut Observed) {
    observed.sdp = state.answer.as_deref().and_then(|sdp| SdpSummary::parse(sdp).ok());
    let ms = |at: Option<f64>| at.map(|ms| Duration::from_millis(ms.max(0.0) as u64));
    // Audio frames of 20 ms, as Opus sends them.
    let frame = u64::from(state.audio_clock_rate.max(50) / 50);
    observed.report = Some(PlayerReport {
        peer: Default::default(),
        counted: Default::default(),
        relay_lost: 0,
        lip_sync: Default::default(),
        audio: AudioStats {
            rtp_packets: state.audio_packets,
            decoded_frames: state.audio_samples / frame,
            decoded_samples: state.audio_samples,
            sample_rate: state.audio_clock_rate,
            first_sound_after: ms(state.first_sound_ms),
            ..AudioStats::default()
        },
        video: VideoStats {
            rtp_packets: state.video_packets,
            frames: state.frames_received,
            pictures: state.frames_decoded,
            width: state.frame_width,
            height: state.frame_height,
            first_picture_after: ms(state.first_picture_ms),
            ..VideoStats::default()
        },
        keyframe_requests_sent: 0,
        recent_audio_dbfs: None,
        elapsed: Duration::ZERO,
    });
    observed.tone = state.tone_hz;
    observed.dbfs = (state.rms_max > 0.0).then(|| 20.0 * state.rms_max.log10());
    match state.status.as_str() {
        "REFUSED" => observed.refusal = state.error.clone(),
        "ERROR" => observed.error = state.error.clone().map(|e| format!("the page: {e}")),
        _ => {}
    }
}

/// Whether a publishing page has media flowing; what it lacks if not.
pub(super) fn publishing(state: &PageState) -> Result<(), String> {
    let connected = matches!(state.ice_state.as_str(), "connected" | "completed");
    if state.status == "PUBLISHING" && connected && state.frames_encoded > 0 {
        return Ok(());
    }
    Err(format!(
        "the browser's publisher: {}, ICE {}, {} frames encoded{}",
        state.status,
        state.ice_state,
        state.frames_encoded,
        state.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_state_becomes_a_player_report() {
        let state = PageState {
            status: "PLAYING".into(),
            frames_decoded: 30,
            frame_width: 320,
            frame_height: 240,
            audio_samples: 48_000,
            audio_clock_rate: 48_000,
            rms_max: 0.1,
            tone_hz: Some(439.5),
            first_picture_ms: Some(812.0),
            ..PageState::default()
        };
        let mut observed = Observed::default();
        observe(&state, &mut observed);
        let report = observed.report.take().unwrap();
        assert_eq!((report.video.pictures, report.video.width), (30, 320));
        assert_eq!(report.audio.decoded_frames, 50);
        assert_eq!(report.video.first_picture_after, Some(Duration::from_millis(812)));
        assert_eq!(observed.dbfs, Some(-20.0));
        assert_eq!(observed.error, None);
        let refused = PageState {
            status: "REFUSED".into(),
            error: Some("HTTP 404: no stream".into()),
            ..PageState::default()
        };
        observe(&refused, &mut observed);
        assert_eq!(observed.refusal.as_deref(), Some("HTTP 404: no stream"));
        assert!(publishing(&refused).unwrap_err().contains("REFUSED"));
    }
}
