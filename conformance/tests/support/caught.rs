//! What the suite's own tests prove each scenario catches: the evidence
//! behind the scenarios' `seen_failing_on = ["quirk …"]` and
//! `["broken target"]` claims (checked by `seen_failing.rs`), run by
//! `quirks_caught.rs` and `broken_target.rs`.
#![allow(dead_code)]

/// Each scenario, the quirks (comma-separated) that bring its bug back, and
/// what the suite must say it saw.
pub const CAUGHT: &[(&str, &str, &str)] = &[
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
        "webrtc/whep/audio-starts-late",
        "answer_only_tracks_sent",
        "the audio m-line is rejected, not sending; fewer than 50 audio frames",
    ),
    (
        "webrtc/whep/timestamps-restart",
        "timestamp_jumps_passed_on",
        "video frames were sent after a frame with a later RTP timestamp",
    ),
    (
        "webrtc/whep/ice-servers",
        "ice_server_credentials_left_out",
        "<turn:127.0.0.1:3478?transport=udp> is a TURN server without a username and a credential",
    ),
    (
        "webrtc/whip/ice-servers",
        "ice_server_credentials_left_out",
        "<turn:127.0.0.1:3478?transport=udp> is a TURN server without a username and a credential",
    ),
    (
        "webrtc/whep/events-active",
        "event_streams_lax",
        "no active event; events received: viewercount",
    ),
    (
        "webrtc/whep/events-unsupported-type",
        "event_streams_lax",
        "status 201, Location: /whep/",
    ),
    (
        "webrtc/whep/events-delete",
        "event_streams_lax",
        "status 200; saw HTTP 200 to GET",
    ),
    (
        "rtmp/lifecycle/player-resumes-after-republish",
        "players_dropped_on_unpublish",
        "fewer than 100 audio and 75 video messages (none came)",
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
    ("rtmp/connect/app-name-is-the-namespace", "rtmp_app_name_ignored", "409"),
    (
        "webrtc/ws/audio-only",
        "ki-1",
        "the video m-line is sendonly H264, not rejected",
    ),
    ("rtmp/hooks/url-params", "ki-3", r#""name":"stream1?s1=v1""#),
    ("rtmp/names/play-query", "ki-3", "NetStream.Play.StreamNotFound"),
    (
        "webrtc/whip/played-over-rtmp",
        "rtmp_app_name_ignored",
        "NetStream.Play.StreamNotFound",
    ),
    ("webrtc/ws/h264-aac", "rtmp_app_name_ignored", "Stream not found"),
    ("rooms/drop-is-left", "silent_joins", "JOINED bob"),
    (
        "rtmp/chunk/extended-timestamp",
        "extended_timestamps_never_repeated",
        "fewer than 200 audio and 150 video messages",
    ),
    (
        "rtmp/chunk/extended-timestamp-bare-continuations",
        "extended_timestamps_always_repeated",
        "fewer than 200 audio and 150 video messages",
    ),
    (
        "rtmp/chunk/interleaved",
        "chunk_interleaving_refused",
        "fewer than 100 audio and 100 video messages",
    ),
    (
        "ertmp/multitrack/audio-track-picked-over-ws",
        "track_selection_ignored",
        "no 880 Hz tone",
    ),
    (
        "ertmp/multitrack/audio-track-picked-over-whep",
        "track_selection_ignored",
        "no 880 Hz tone",
    ),
    (
        "webrtc/whep/h264-single-nal-only",
        "single_nal_mode_accepted",
        "the video m-line is sendonly H264, not rejected",
    ),
    (
        "webrtc/whep/timestamps-leap",
        "timestamp_jumps_passed_on",
        "RTP time leapt",
    ),
    (
        "rtmp/chunk/abort",
        "chunk_aborts_ignored",
        "fewer than 100 audio and 100 video messages",
    ),
    ("rooms/flash-webrtc-video-chat", "silent_joins", "JOINED browser-user"),
    ("rooms/published", "silent_joins", "JOINED alice"),
    ("rooms/three-participants", "silent_joins", "JOINED"),
    ("rooms/two-participants", "silent_joins", "JOINED bob"),
    ("rooms/duplicate-name", "duplicate_participants", "already taken"),
    (
        "webrtc/ws/smaller-picture",
        "size_ignored",
        "pictures of 320x240, not 160x120",
    ),
    ("webrtc/ws/h264-speex", "speex_dropped", "0 RTP audio"),
    (
        "webrtc/whip/played-over-whep",
        "webrtc_opus_not_forwarded",
        "0 RTP audio",
    ),
    (
        "ertmp/connect/server-states-support",
        "ertmp_ignored",
        "a legacy answer",
    ),
    ("ertmp/webrtc/opus-to-whep", "webrtc_opus_not_forwarded", "0 RTP audio"),
    (
        "ertmp/connect/fourcc-list-v1",
        "ertmp_fourcc_list_ignored",
        "no enhanced tag of av01, Opus (got: none)",
    ),
    (
        "ertmp/play/legacy-player-no-enhanced-tag",
        "ertmp_ignored",
        "Enhanced RTMP tags (av01)",
    ),
    (
        "ertmp/play/legacy-player-transcoded",
        "ertmp_ignored",
        "Enhanced RTMP tags (ac-3, hvc1)",
    ),
    (
        "clients/ffmpeg/plays-hevc-as-h264",
        "ertmp_ignored",
        "fewer than 25 audio and 25 video messages (none came)",
    ),
    (
        "ertmp/play/opus-as-is-from-webrtc",
        "ertmp_ignored",
        "no enhanced tag of Opus (got: none)",
    ),
    (
        "ertmp/webrtc/hevc-passes-through-to-whep",
        "enhanced_video_transcoded",
        "video in H264, not H265",
    ),
    (
        "ertmp/webrtc/av1-passes-through-to-whep",
        "enhanced_video_transcoded",
        "video in H264, not AV1",
    ),
    (
        "ertmp/webrtc/vp9-passes-through-to-whep",
        "enhanced_video_transcoded",
        "video in H264, not VP9",
    ),
    (
        "ertmp/webrtc/vp8-passes-through-to-whep",
        "enhanced_video_transcoded",
        "video in H264, not VP8",
    ),
    (
        "ertmp/play/legacy-player-gets-h264-aac-as-legacy-tags",
        "ertmp_ignored",
        "Enhanced RTMP tags (avc1, mp4a)",
    ),
    (
        "ertmp/play/multitrack-h264-to-legacy-player",
        "ertmp_ignored",
        "Enhanced RTMP tags (avc1, mp4a)",
    ),
    (
        "ertmp/multitrack/track-picked-over-rtmp",
        "track_selection_ignored",
        "enhanced tags of hvc1",
    ),
    (
        "ertmp/multitrack/track-picked-over-whep",
        "track_selection_ignored",
        "pictures of 320x240, not 640x360",
    ),
    (
        "ertmp/multitrack/track-picked-over-ws",
        "track_selection_ignored",
        "pictures of 320x240, not 640x360",
    ),
    (
        "ertmp/webrtc/opus-to-whep",
        "opus_transcoded",
        "audio payloads are not Opus packets the publisher sent",
    ),
    (
        "ertmp/multitrack/layer-selected-transcoded",
        "track_selection_ignored",
        "pictures of 320x240, not 640x360",
    ),
    (
        "ertmp/multitrack/layer-selected-over-whep",
        "track_selection_ignored",
        "pictures of 320x240, not 640x360",
    ),
    (
        "ertmp/multitrack/obs-style-tracks-kept-apart",
        "track_selection_ignored",
        "video in H264, not VP9",
    ),
    (
        "webrtc/whep/offer-from-firefox",
        "payload_types_fixed",
        "m-line 1 (audio) answers opus/48000 as payload type 111, which the offer gave it as 109",
    ),
    (
        "webrtc/whip/offer-from-firefox",
        "payload_types_fixed",
        "m-line 1 (audio) answers opus/48000 as payload type 111, which the offer gave it as 109",
    ),
    (
        "webrtc/whep/offer-from-safari",
        "payload_types_fixed",
        "m-line 2 (video) answers H264/90000 as payload type 102, which the offer gave it as",
    ),
    (
        "webrtc/whip/offer-from-safari",
        "payload_types_fixed",
        "m-line 2 (video) answers H264/90000 as payload type 102, which the offer gave it as",
    ),
    (
        "webrtc/whip/offer-from-obs",
        "payload_types_fixed",
        "m-line 2 (video) answers H264/90000 as payload type 102, which the offer gave it as 96",
    ),
    (
        "webrtc/whip/offer-from-ffmpeg",
        "payload_types_fixed",
        "m-line 2 (video) answers H264/90000 as payload type 102, which the offer gave it as 106",
    ),
    (
        "ertmp/multitrack/layer-selected-over-ws",
        "track_selection_ignored",
        "pictures of 320x240, not 640x360",
    ),
    (
        "webrtc/whep/sender-reports",
        "sender_reports_withheld",
        "no sender report for the audio",
    ),
    (
        "webrtc/whep/ice-restart-keeps-playing",
        "ice_restarts_unapplied",
        "no connectivity check made with the new credentials was answered",
    ),
    (
        "webrtc/whep/lost-packets-resent",
        "retransmissions_withheld",
        "video frames came with packets missing",
    ),
    (
        "webrtc/whep/lip-sync-aac",
        "transcoded_audio_stamped_late",
        // 100 to 109 ms: the quirk's 100 ms on top of a few of the
        // server's own (a miss is also required, so never 10 ms).
        "the sound comes 10",
    ),
    (
        "webrtc/whep/lip-sync-smaller-picture",
        "transcoded_audio_stamped_late",
        "ms after the picture on the sender's clock",
    ),
    (
        "webrtc/whep/lip-sync-speex",
        "transcoded_audio_stamped_late",
        "ms after the picture on the sender's clock",
    ),
    (
        "ertmp/multitrack/layer-selected-by-size-vp9",
        "track_selection_ignored",
        "pictures of 320x240, not 1280x720",
    ),
    (
        "rtmp/names/case",
        "stream_names_case_folded",
        "NetStream.Play.Start (status)",
    ),
    (
        "webrtc/whep/timestamp-wrap",
        "timestamp_wrap_ignored",
        "video frames were sent after a frame with a later RTP timestamp",
    ),
    (
        "webrtc/whep/keyframe-on-request",
        "player_keyframe_requests_ignored",
        "no keyframe since the keyframe request (PLI)",
    ),
];

/// Each scenario a small broken RTMP server of `broken_target.rs` makes
/// miss, and that server, by what it does wrong.
pub const BROKEN: &[(&str, &str)] = &[
    ("webrtc/whip/offer-from-chrome", "answers with the offer turned round"),
    ("webrtc/whip/offer-from-firefox", "answers with the offer turned round"),
    ("webrtc/whip/offer-from-safari", "answers with the offer turned round"),
    ("webrtc/whip/offer-from-obs", "answers with the offer turned round"),
    ("webrtc/whip/offer-from-ffmpeg", "answers with the offer turned round"),
    ("webrtc/whep/offer-from-chrome", "answers with the offer turned round"),
    ("webrtc/whep/offer-from-firefox", "answers with the offer turned round"),
    ("webrtc/whep/offer-from-safari", "answers with the offer turned round"),
    ("rtmp/netstatus/publish-start", "never answers publish"),
    ("rtmp/names/long", "never answers publish"),
    ("rtmp/names/empty", "never answers publish"),
    ("webrtc/whip/options-session", "has no CORS and refuses OPTIONS"),
    ("webrtc/whep/options-session", "has no CORS and refuses OPTIONS"),
    ("webrtc/whip/sendrecv-offer", "answers offers 200 with the offer echoed"),
    ("webrtc/whep/sendrecv-offer", "answers offers 200 with the offer echoed"),
    ("rtmp/control/window-ack-size-on-connect", "never answers publish"),
    ("rtmp/control/stream-begin-on-connect", "never answers publish"),
    ("rtmp/control/stream-begin-on-play", "forwards no media"),
    (
        "rtmp/control/live-not-recorded",
        "tells players of live streams they are recorded",
    ),
    ("rtmp/commands/publish-append", "never answers publish"),
    ("rtmp/control/peer-bandwidth-on-connect", "never answers publish"),
    ("rtmp/lifecycle/republish-same-connection", "never answers publish"),
    ("rtmp/lifecycle/play-before-publish", "never answers publish"),
    ("rtmp/commands/publish-record", "never answers publish"),
    ("rtmp/connect/url-params", "never answers publish"),
    ("rtmp/connect/unknown-app-key", "never answers publish"),
    ("rtmp/play/dimension-change", "forwards no media"),
    ("rtmp/media/timestamp-wrap", "forwards media until its timestamps wrap"),
    (
        "rtmp/media/avc-end-of-sequence",
        "forwards no video after an AVC end of sequence",
    ),
    ("rtmp/connect/amf0", "connect without level"),
    ("rtmp/connect/amf3", "connect without level"),
    ("rtmp/handshake/digest", "connect without level"),
    ("rtmp/handshake/simple", "connect without level"),
    ("rtmp/handshake/digest-8", "finds digests at 772 only"),
    ("rtmp/handshake/s2-echoes-c1", "answers with a random S2"),
    ("rtmp/handshake/byte-by-byte", "reads C0C1 in one read"),
    ("rtmp/handshake/stalled-c1-closed", "never answers publish"),
    ("rtmp/commands/play-live-only", "takes start -1000 for a recording"),
    ("clients/ffmpeg/publish-and-play", "never answers publish"),
    ("clients/ffmpeg/publishes-to-flash", "never answers publish"),
    ("clients/ffmpeg/plays-flash", "forwards no media"),
    (
        "clients/ffmpeg/publishes-to-whep",
        "answers offers 200 with the offer echoed",
    ),
    (
        "clients/browser/plays-encoder",
        "answers offers 200 with the offer echoed",
    ),
    (
        "clients/browser/publishes-to-browser",
        "answers offers 200 with the offer echoed",
    ),
    ("rtmp/connect/extra-args", "refuses connect arguments"),
    (
        "rtmp/control/set-buffer-length-mid-play",
        "stops forwarding at a SetBufferLength once media flows",
    ),
    (
        "rtmp/robustness/unknown-message-type",
        "dies on an unknown message type",
    ),
    ("webrtc/whip/created", "answers offers 200 with the offer echoed"),
    (
        "webrtc/whip/answer-direction",
        "answers offers 200 with the offer echoed",
    ),
    (
        "webrtc/whip/audio-only-offer",
        "answers offers 200 with the offer echoed",
    ),
    (
        "webrtc/whip/video-only-offer",
        "answers offers 200 with the offer echoed",
    ),
    ("webrtc/whip/bundle-rtcp-mux", "answers without BUNDLE or rtcp-mux"),
    ("webrtc/whip/options", "has no CORS and refuses OPTIONS"),
    ("webrtc/whip/cors-preflight", "has no CORS and refuses OPTIONS"),
    ("webrtc/whip/cors-location", "has no CORS and refuses OPTIONS"),
    ("webrtc/whip/delete", "refuses DELETE"),
    ("webrtc/whip/delete-ignores-if-match", "checks If-Match on DELETE"),
    ("webrtc/whep/created", "answers offers 200 with the offer echoed"),
    ("webrtc/whep/counter-offer", "counter-offers the offer itself"),
    (
        "clients/browser/answers-counter-offer",
        "counter-offers the offer itself",
    ),
    ("webrtc/whep/counter-offer-plays", "counter-offers the offer itself"),
    (
        "webrtc/whep/counter-offer-malformed-answer",
        "counter-offers the offer itself",
    ),
    (
        "webrtc/whep/answer-direction",
        "answers offers 200 with the offer echoed",
    ),
    (
        "webrtc/whep/audio-only-offer",
        "answers offers 200 with the offer echoed",
    ),
    (
        "webrtc/whep/video-only-offer",
        "answers offers 200 with the offer echoed",
    ),
    ("webrtc/whep/bundle-rtcp-mux", "answers without BUNDLE or rtcp-mux"),
    ("webrtc/whep/options", "has no CORS and refuses OPTIONS"),
    ("webrtc/whep/cors-preflight", "has no CORS and refuses OPTIONS"),
    ("webrtc/whep/cors-location", "has no CORS and refuses OPTIONS"),
    ("webrtc/whep/delete", "refuses DELETE"),
    ("webrtc/whep/delete-ignores-if-match", "checks If-Match on DELETE"),
    ("rtmp/tokens/publish-without-token", "ignores tokens"),
    ("rtmp/tokens/publish-wrong-token", "ignores tokens"),
    ("rtmp/tokens/publish-with-play-token", "ignores tokens"),
    ("rtmp/tokens/play-without-token", "ignores tokens"),
    ("rtmp/tokens/takeover-without-token", "forwards no media"),
    ("rtmp/tokens/publish-with-token", "refuses every token"),
    ("rtmp/tokens/token-in-connection-url", "refuses every token"),
    ("rtmp/tokens/play-with-token", "refuses every token"),
    ("webrtc/tokens/whip-without-token", "ignores tokens"),
    ("webrtc/tokens/whip-wrong-token", "ignores tokens"),
    ("webrtc/tokens/whep-without-token", "ignores tokens"),
    ("webrtc/tokens/ws-publish-without-token", "ignores tokens"),
    ("webrtc/tokens/whip-bearer-accepted", "refuses every token"),
    ("webrtc/tokens/whep-bearer-accepted", "refuses every token"),
    ("rtmp/robustness/half-messages", "forwards no media"),
    ("rtmp/robustness/bad-sequence-headers", "forwards no media"),
    ("rtmp/robustness/wrong-stream-ids", "forwards no media"),
    ("rtmp/robustness/slow-viewer", "forwards no media"),
    ("rtmp/robustness/command-flood", "forwards no media"),
    ("rtmp/robustness/timestamp-chaos", "forwards no media"),
    ("rtmp/robustness/create-stream-flood", "forwards no media"),
    ("rtmp/robustness/publish-cycles", "forwards no media"),
    ("rtmp/robustness/metadata-flood", "forwards no media"),
    ("rtmp/robustness/user-control-garbage", "forwards no media"),
    ("rtmp/robustness/slowloris", "forwards no media"),
    ("rtmp/robustness/ack-flood", "forwards no media"),
    (
        "webrtc/robustness/header-bomb",
        "answers offers 200 with the offer echoed",
    ),
    (
        "webrtc/robustness/udp-garbage",
        "answers offers 200 with the offer echoed",
    ),
    (
        "webrtc/robustness/whep-many-mlines",
        "answers offers 200 with the offer echoed",
    ),
    (
        "webrtc/robustness/whep-huge-body",
        "answers offers 200 with the offer echoed",
    ),
    (
        "webrtc/robustness/whep-flood",
        "answers offers 200 with the offer echoed",
    ),
    ("webrtc/robustness/ws-huge-message", "never reads its WebSocket"),
    (
        "webrtc/robustness/nack-storm",
        "answers offers 200 with the offer echoed",
    ),
    (
        "webrtc/robustness/deaf-webrtc-viewer",
        "answers offers 200 with the offer echoed",
    ),
    ("webrtc/robustness/ws-garbage", "never reads its WebSocket"),
];
