//! The WebRTC publisher: a sendonly str0m peer that publishes one stream by
//! WHIP or the WebSocket channel and, once connected, sends a moving H.264
//! test pattern and an Opus sine tone in real time.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use str0m::format::{Codec, PayloadParams};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::{Event, Rtc, RtcConfig};

use super::http::Endpoint;
use super::peer::{PeerAction, PeerApp, PeerHandle, PeerStatus, Prepared, Shared};
use super::player::negotiate;
use super::sdp::SdpSummary;
use super::source::{H264Source, ToneSource};
use super::ws::WsRequest;
use super::{ActiveSignalling, Signalling, WebRtcError, SIGNALLING_TIMEOUT};

/// When the media is this far behind its schedule (a starved machine), the
/// frames in between are skipped rather than sent late, as a live source does.
const MAX_LAG: Duration = Duration::from_millis(200);
/// At most this many errors are kept in [`PublisherReport::errors`].
const MAX_ERRORS: usize = 100;

/// What the publisher offers and sends.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// Offer and send H.264 video.
    pub video: bool,
    /// Offer and send Opus audio.
    pub audio: bool,
    /// Picture width (even).
    pub width: usize,
    /// Picture height (even).
    pub height: usize,
    /// Frames per second.
    pub fps: u32,
    /// An IDR every this many frames (and on every PLI/FIR).
    pub idr_interval: u32,
    /// The H.264 encoder's target bitrate, bits per second.
    pub video_bitrate: u32,
    /// The H.264 `profile-level-id`s offered (packetization-mode 1), in order;
    /// the encoder makes Constrained Baseline.
    pub h264_profiles: Vec<u32>,
    /// The tone's frequency in Hz.
    pub tone_hz: f64,
    /// The tone's peak, 0.0 to 1.0 of full scale (0.5 is about -9 dBFS).
    pub tone_amplitude: f64,
    /// The address the UDP socket binds (port 0); by default (`None`) the
    /// one this machine reaches the signalling server's host from
    /// ([`super::local_address_for`]): 127.0.0.1 for a local server.
    pub bind: Option<IpAddr>,
    /// How long to wait for the SDP answer.
    pub signalling_timeout: Duration,
}

impl Default for PublisherOptions {
    /// H.264 320x240 at 25 fps with an IDR every 50 frames (2 s), 500 kbit/s,
    /// and a 440 Hz tone at -9 dBFS, from 127.0.0.1.
    fn default() -> Self {
        PublisherOptions {
            video: true,
            audio: true,
            width: 320,
            height: 240,
            fps: 25,
            idr_interval: 50,
            video_bitrate: 500_000,
            h264_profiles: vec![0x42e01f, 0x42001f],
            tone_hz: 440.0,
            tone_amplitude: 0.5,
            bind: None,
            signalling_timeout: SIGNALLING_TIMEOUT,
        }
    }
}

impl PublisherOptions {
    /// A publisher shaped like Safari's offer: H.264 High 3.1 before
    /// Constrained Baseline 3.1 ([`SAFARI_H264_PROFILES`](super::SAFARI_H264_PROFILES)).
    pub fn safari() -> Self {
        PublisherOptions {
            h264_profiles: super::SAFARI_H264_PROFILES.to_vec(),
            ..Self::default()
        }
    }
}

impl PublisherOptions {
    fn rtc_config(&self) -> Result<RtcConfig, WebRtcError> {
        let mut config = Rtc::builder().clear_codecs();
        let codecs = config.codec_config();
        if self.audio {
            codecs.enable_opus(true, false);
        }
        if self.video {
            const PTS: [(u8, u8); 4] = [(102, 103), (104, 105), (106, 107), (108, 109)];
            if self.h264_profiles.is_empty() || self.h264_profiles.len() > PTS.len() {
                return Err(WebRtcError::Options(format!(
                    "video needs 1 to {} H.264 profiles, not {}",
                    PTS.len(),
                    self.h264_profiles.len()
                )));
            }
            for (&profile, &(pt, rtx)) in self.h264_profiles.iter().zip(PTS.iter()) {
                codecs.add_h264(pt.into(), Some(rtx.into()), true, profile);
            }
        }
        Ok(config)
    }
}

/// A snapshot of what a publisher has done.
#[derive(Debug, Clone, PartialEq)]
pub struct PublisherReport {
    /// ICE/DTLS state and datagram counts.
    pub peer: PeerStatus,
    /// Media is being sent (the peer connected).
    pub sending: bool,
    /// The payload type the answer gave H.264, if video was accepted.
    pub video_pt: Option<u8>,
    /// The payload type the answer gave Opus, if audio was accepted.
    pub audio_pt: Option<u8>,
    /// Video frames written.
    pub video_frames_sent: u64,
    /// IDR frames among them.
    pub video_keyframes_sent: u64,
    /// Bytes of H.264 written.
    pub video_bytes_sent: u64,
    /// Opus packets written.
    pub audio_frames_sent: u64,
    /// Video frames skipped because the machine could not keep up (0 normally).
    pub video_frames_skipped: u64,
    /// Audio frames skipped because the machine could not keep up (0 normally).
    pub audio_frames_skipped: u64,
    /// PLI/FIR received from the server.
    pub keyframe_requests_received: u64,
    /// Encoder errors, in order (at most 100).
    pub errors: Vec<String>,
    /// Time since the offer was made.
    pub elapsed: Duration,
}

struct Track<S> {
    mid: Mid,
    pt: Pt,
    source: S,
    /// The number of the next frame to send; frame `n` is due `n` frame durations after the start.
    next: u64,
    sent: u64,
    skipped: u64,
    failed: bool,
}

impl<S> Track<S> {
    fn new(mid: Mid, pt: Pt, source: S) -> Self {
        Track {
            mid,
            pt,
            source,
            next: 0,
            sent: 0,
            skipped: 0,
            failed: false,
        }
    }

    /// Frames `next..=due` are due. When more than [`MAX_LAG`] behind (a
    /// starved machine), the frames in between are skipped, as a live source
    /// drops frames.
    fn catch_up(&mut self, due: u64, frame: Duration, skip_to: impl FnOnce(&mut S, u64)) {
        let lag = (MAX_LAG.as_nanos() / frame.as_nanos().max(1)) as u64;
        if due > self.next + lag {
            self.skipped += due - self.next;
            self.next = due;
            skip_to(&mut self.source, due);
        }
    }
}

struct PublisherApp {
    started: Instant,
    video: Option<Track<H264Source>>,
    audio: Option<Track<ToneSource>>,
    sending_since: Option<Instant>,
    video_keyframes_sent: u64,
    video_bytes_sent: u64,
    keyframe_requests_received: u64,
    errors: Vec<String>,
}

/// The duration of one video frame at `fps`.
fn frame_duration(fps: u32) -> Duration {
    Duration::from_secs(1) / fps.max(1)
}

/// The number of the last frame due `elapsed` after the start, at one frame per `frame`.
fn due_index(elapsed: Duration, frame: Duration) -> u64 {
    (elapsed.as_nanos() / frame.as_nanos().max(1)) as u64
}

/// When frame `index` is due, at one frame per `frame`.
fn due_at(since: Instant, index: u64, frame: Duration) -> Instant {
    since + frame * u32::try_from(index).unwrap_or(u32::MAX)
}

impl PublisherApp {
    fn video_due(&self) -> Option<Instant> {
        let (since, track) = (self.sending_since?, self.video.as_ref()?);
        (!track.failed).then(|| due_at(since, track.next, frame_duration(track.source.fps())))
    }

    fn audio_due(&self) -> Option<Instant> {
        let (since, track) = (self.sending_since?, self.audio.as_ref()?);
        (!track.failed).then(|| due_at(since, track.next, ToneSource::FRAME))
    }

    fn error(&mut self, error: String) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(error);
        }
    }
}

impl PeerApp for PublisherApp {
    fn on_event(&mut self, now: Instant, event: Event, _actions: &mut Vec<PeerAction>) {
        match event {
            Event::Connected => {
                self.sending_since.get_or_insert(now);
            }
            Event::KeyframeRequest(request) => {
                self.keyframe_requests_received += 1;
                if let Some(video) = self.video.as_mut().filter(|v| v.mid == request.mid) {
                    video.source.request_keyframe();
                }
            }
            _ => {}
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        match (self.video_due(), self.audio_due()) {
            (Some(v), Some(a)) => Some(v.min(a)),
            (v, a) => v.or(a),
        }
    }

    fn on_wakeup(&mut self, now: Instant, actions: &mut Vec<PeerAction>) {
        let Some(since) = self.sending_since else { return };
        let elapsed = now.saturating_duration_since(since);
        let mut errors = Vec::new();
        if let Some(video) = self.video.as_mut().filter(|v| !v.failed) {
            let frame = frame_duration(video.source.fps());
            let due = due_index(elapsed, frame);
            video.catch_up(due, frame, H264Source::skip_to);
            while video.next <= due {
                match video.source.next_frame() {
                    Ok(encoded) => {
                        video.next = encoded.index + 1;
                        video.sent += 1;
                        if encoded.data.is_empty() {
                            continue;
                        }
                        self.video_keyframes_sent += u64::from(encoded.keyframe);
                        self.video_bytes_sent += encoded.data.len() as u64;
                        actions.push(PeerAction::Write {
                            mid: video.mid,
                            pt: video.pt,
                            wallclock: due_at(since, encoded.index, frame),
                            rtp_time: MediaTime::new(encoded.rtp_time, Frequency::NINETY_KHZ),
                            data: encoded.data,
                        });
                    }
                    Err(e) => {
                        video.failed = true;
                        errors.push(e.to_string());
                        break;
                    }
                }
            }
        }
        if let Some(audio) = self.audio.as_mut().filter(|a| !a.failed) {
            let due = due_index(elapsed, ToneSource::FRAME);
            audio.catch_up(due, ToneSource::FRAME, ToneSource::skip_to);
            while audio.next <= due {
                match audio.source.next_frame() {
                    Ok(encoded) => {
                        audio.next = encoded.index + 1;
                        audio.sent += 1;
                        actions.push(PeerAction::Write {
                            mid: audio.mid,
                            pt: audio.pt,
                            wallclock: due_at(since, encoded.index, ToneSource::FRAME),
                            rtp_time: MediaTime::new(encoded.rtp_time, Frequency::FORTY_EIGHT_KHZ),
                            data: encoded.data,
                        });
                    }
                    Err(e) => {
                        audio.failed = true;
                        errors.push(e.to_string());
                        break;
                    }
                }
            }
        }
        for e in errors {
            self.error(e);
        }
    }
}

fn report_of(shared: &Shared<PublisherApp>) -> PublisherReport {
    let app = &shared.app;
    PublisherReport {
        peer: shared.status.clone(),
        sending: app.sending_since.is_some(),
        video_pt: app.video.as_ref().map(|v| *v.pt),
        audio_pt: app.audio.as_ref().map(|a| *a.pt),
        video_frames_sent: app.video.as_ref().map_or(0, |v| v.sent),
        video_keyframes_sent: app.video_keyframes_sent,
        video_bytes_sent: app.video_bytes_sent,
        audio_frames_sent: app.audio.as_ref().map_or(0, |a| a.sent),
        video_frames_skipped: app.video.as_ref().map_or(0, |v| v.skipped),
        audio_frames_skipped: app.audio.as_ref().map_or(0, |a| a.skipped),
        keyframe_requests_received: app.keyframe_requests_received,
        errors: app.errors.clone(),
        elapsed: app.started.elapsed(),
    }
}

/// The H.264 payload type to send with: packetization-mode 1, Constrained
/// Baseline or Baseline (what openh264 makes) if the answer has one.
fn pick_h264(params: &[PayloadParams]) -> Option<Pt> {
    let h264 = || {
        params
            .iter()
            .filter(|p| p.spec().codec == Codec::H264 && p.spec().format.packetization_mode == Some(1))
    };
    let baseline = |p: &&PayloadParams| p.spec().format.profile_level_id.is_some_and(|id| id >> 16 == 0x42);
    h264().find(baseline).or_else(|| h264().next()).map(|p| p.pt())
}

/// A WebRTC publisher (see the module docs). Dropping it stops its peer
/// without signalling; call [`WebRtcPublisher::stop`] to end the session properly.
pub struct WebRtcPublisher {
    peer: PeerHandle<PublisherApp>,
    signalling: ActiveSignalling,
    stopped: bool,
    offer: String,
    answer_sdp: String,
    answer: SdpSummary,
}

impl std::fmt::Debug for WebRtcPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcPublisher")
            .field("signalling", &self.signalling)
            .field("report", &self.report())
            .finish()
    }
}

impl WebRtcPublisher {
    /// Makes a sendonly offer, sends it by `signalling`, applies the answer
    /// and starts the peer; media starts flowing once ICE and DTLS are up.
    /// A refusal carries the server's status and body, or its `FAILED` info.
    pub async fn publish(signalling: Signalling, options: PublisherOptions) -> Result<WebRtcPublisher, WebRtcError> {
        // Build the sources first: bad sizes or rates fail before anything is signalled.
        let video_source = options
            .video
            .then(|| {
                H264Source::new(
                    options.width,
                    options.height,
                    options.fps,
                    options.idr_interval,
                    options.video_bitrate,
                )
            })
            .transpose()?;
        let audio_source = options
            .audio
            .then(|| ToneSource::new(options.tone_hz, options.tone_amplitude))
            .transpose()?;
        let mut media = Vec::new();
        if options.audio {
            media.push((MediaKind::Audio, Direction::SendOnly));
        }
        if options.video {
            media.push((MediaKind::Video, Direction::SendOnly));
        }
        let bind = match options.bind {
            Some(bind) => bind,
            None => super::local_address_for(signalling.server_url()).await,
        };
        let mut prepared = Prepared::new(options.rtc_config()?, &media, bind).await?;
        let (answer_sdp, answer, active) = negotiate(
            &mut prepared,
            &signalling,
            Endpoint::Whip,
            WsRequest::Publish,
            options.signalling_timeout,
        )
        .await?;
        let video = match (video_source, prepared.mid(MediaKind::Video)) {
            (Some(source), Some(mid)) => pick_h264(&prepared.negotiated(mid)).map(|pt| Track::new(mid, pt, source)),
            _ => None,
        };
        let audio = match (audio_source, prepared.mid(MediaKind::Audio)) {
            (Some(source), Some(mid)) => {
                let pt = prepared
                    .negotiated(mid)
                    .iter()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .map(|p| p.pt());
                pt.map(|pt| Track::new(mid, pt, source))
            }
            _ => None,
        };
        let offer = prepared.offer().to_string();
        let app = PublisherApp {
            started: prepared.started(),
            video,
            audio,
            sending_since: None,
            video_keyframes_sent: 0,
            video_bytes_sent: 0,
            keyframe_requests_received: 0,
            errors: Vec::new(),
        };
        let peer = prepared.spawn(app);
        Ok(WebRtcPublisher {
            peer,
            signalling: active,
            stopped: false,
            offer,
            answer_sdp,
            answer,
        })
    }

    /// The SDP offer sent.
    pub fn offer_sdp(&self) -> &str {
        &self.offer
    }

    /// The SDP answer as the server sent it.
    pub fn answer_sdp(&self) -> &str {
        &self.answer_sdp
    }

    /// The SDP answer, read for checks.
    pub fn answer(&self) -> &SdpSummary {
        &self.answer
    }

    /// The WHIP session URL (`Location`), when signalled over HTTP.
    pub fn location(&self) -> Option<&str> {
        self.signalling.location()
    }

    /// What the publisher has done so far.
    pub fn report(&self) -> PublisherReport {
        report_of(&self.peer.lock())
    }

    /// Wakes whenever the publisher's report may have changed; for callers
    /// that wait on several things at once (see `wait_until` otherwise).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.peer.changes()
    }

    /// Waits until `check` holds for the report and returns that report. A
    /// timeout, or the peer ending first, is an error that shows the last report.
    pub async fn wait_until(
        &self,
        what: &str,
        check: impl FnMut(&PublisherReport) -> bool,
        timeout: Duration,
    ) -> Result<PublisherReport, WebRtcError> {
        self.peer.wait_report(what, timeout, report_of, check).await
    }

    /// Waits until ICE and DTLS are up (media starts then).
    pub async fn wait_connected(&self, timeout: Duration) -> Result<PublisherReport, WebRtcError> {
        self.wait_until("ICE and DTLS to connect", |r| r.peer.connected, timeout)
            .await
    }

    /// Restarts ICE over WHIP (RFC 9725, section 4.3.3); see
    /// [`super::peer::PeerHandle::restart_ice`]. Returns the server's
    /// answer, whatever its status.
    pub async fn restart_ice(&self) -> Result<super::http::Exchange, WebRtcError> {
        let url = self
            .location()
            .ok_or_else(|| {
                WebRtcError::Options("no WHIP session URL: the publisher was not signalled over HTTP".into())
            })?
            .to_string();
        self.peer.restart_ice(&url, &self.offer).await
    }

    /// Makes the next video frame an IDR, as a PLI would.
    pub fn force_keyframe(&self) {
        if let Some(video) = self.peer.lock().app.video.as_mut() {
            video.source.request_keyframe();
        }
    }

    /// Changes the picture size from the next frame on (an IDR with new
    /// parameter sets), as a camera switching resolution mid-call does.
    pub fn resize(&self, width: usize, height: usize) -> Result<(), WebRtcError> {
        match self.peer.lock().app.video.as_mut() {
            Some(video) => video.source.resize(width, height),
            None => Err(WebRtcError::Options("the publisher sends no video".into())),
        }
    }

    /// Ends the session: `DELETE` on the WHIP location or `stop` on the
    /// WebSocket, then closes the peer. The report stays readable. Calling it
    /// again does nothing.
    pub async fn stop(&mut self) -> Result<(), WebRtcError> {
        if std::mem::replace(&mut self.stopped, true) {
            return Ok(());
        }
        let result = self.signalling.stop().await;
        self.peer.close().await;
        result
    }

    /// Closes the peer (RTCP BYE, DTLS close_notify) without telling the
    /// signalling: the server has to notice the publisher going away.
    pub async fn close_peer(&self) {
        self.peer.close().await;
    }
}
