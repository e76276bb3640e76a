//! A WebRTC publisher: what its peer sends goes into the hub as FLV-shaped
//! frames, so RTMP and WebRTC players alike can play it.
//!
//! - H.264 arrives as Annex B access units (str0m depacketizes): the SPS and
//!   PPS become an AVC sequence header (sent again whenever they change), the
//!   other NAL units an AVCC video tag, a keyframe when it holds an IDR.
//! - Opus is kept as it is, in an enhanced-RTMP audio tag (FourCC `Opus`):
//!   WebRTC players get it untouched; RTMP players get it transcoded.
//!
//! Timestamps: each track's RTP clock is anchored at the arrival time of its
//! first packet, so audio and video share one millisecond timeline.
//!
//! Keyframes: a browser's encoder makes few of its own (one in 22 s was
//! seen), so the publisher is asked for one (PLI, or FIR when that is all it
//! negotiated) when a player joins, when a frame cannot be used, and whenever
//! its last keyframe is older than `webrtc.publisher_keyframe_interval`: late
//! joiners then start within that interval, and the cached group of pictures
//! stays short.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::h264::{self, nal_type, AvcConfig};
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaData, MediaKind as RtcKind, MediaTime, Mid};
use str0m::Rtc;

use crate::hub::{Frame, Publisher, TakenOver};
use crate::metrics::Metrics;
use crate::rtmp::session::MediaKind;

/// Keyframe requests closer together than this are folded into one.
const MIN_REQUEST_GAP: Duration = Duration::from_millis(500);

/// A track's RTP time anchored to the session's millisecond timeline.
#[derive(Clone, Copy)]
struct Anchor {
    rtp: MediaTime,
    ms: u64,
}

/// Takes one peer's media into the hub.
pub struct Ingest {
    publisher: Publisher,
    video_mid: Option<Mid>,
    start: Instant,
    audio_anchor: Option<Anchor>,
    video_anchor: Option<Anchor>,
    avc: Option<AvcConfig>,
    body: Vec<u8>,
    last_keyframe_request: Option<Instant>,
    /// When the last keyframe arrived.
    last_keyframe: Option<Instant>,
    /// Ask for a keyframe when the last one is older than this; `None`
    /// never asks on a schedule (a quirk).
    keyframe_interval: Option<Duration>,
    metrics: Arc<Metrics>,
}

impl Ingest {
    /// An ingest into the stream `publisher` holds, asking the peer for a
    /// keyframe whenever its last one is older than `keyframe_interval`
    /// (and never when `None`). `now` starts its millisecond timeline.
    pub fn new(
        publisher: Publisher,
        keyframe_interval: Option<Duration>,
        metrics: Arc<Metrics>,
        now: Instant,
    ) -> Ingest {
        let start = now;
        Ingest {
            publisher,
            video_mid: None,
            start,
            audio_anchor: None,
            video_anchor: None,
            avc: None,
            body: Vec::with_capacity(64 * 1024),
            last_keyframe_request: None,
            last_keyframe: None,
            keyframe_interval,
            metrics,
        }
    }

    /// When the next scheduled keyframe request is due; `None` without
    /// video or schedule.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let interval = self.keyframe_interval?;
        self.video_mid?;
        let since = [self.last_keyframe, self.last_keyframe_request]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(self.start);
        Some(since + interval)
    }

    /// Time passed: asks for a keyframe if one is due.
    pub fn handle_timeout(&mut self, rtc: &mut Rtc, now: Instant) {
        if self.poll_timeout().is_some_and(|due| due <= now) {
            self.request_keyframe(rtc, now, "the last keyframe is old");
        }
    }

    /// A player joined, or one asked for a keyframe.
    pub fn keyframe_wanted(&mut self, rtc: &mut Rtc, now: Instant) {
        if self.keyframe_interval.is_some() {
            self.request_keyframe(rtc, now, "a player wants one");
        }
    }

    /// What resolves when the hub wants a keyframe from this publisher.
    pub fn keyframe_requests(&self) -> crate::hub::KeyframeRequests {
        self.publisher.keyframe_requests()
    }

    /// An m-line of the offer.
    pub fn media_added(&mut self, mid: Mid, kind: RtcKind) {
        if kind == RtcKind::Video {
            self.video_mid = self.video_mid.or(Some(mid));
        }
    }

    /// One depacketized frame from the peer, at `now`; refused once another
    /// publisher took the stream over.
    pub fn media(&mut self, rtc: &mut Rtc, data: MediaData, now: Instant) -> Result<(), TakenOver> {
        let codec = data.params.spec().codec;
        match codec {
            Codec::Opus => {
                let ms = timestamp(&mut self.audio_anchor, self.start, &data);
                self.publisher.push(Frame::opus(ms, &data.data))?;
            }
            Codec::H264 => {
                let ms = timestamp(&mut self.video_anchor, self.start, &data);
                if !self.video(ms, &data.data, now)? || !data.contiguous {
                    self.request_keyframe(rtc, now, "a frame could not be used");
                }
            }
            other => tracing::debug!(?other, "media in a codec this server does not publish: ignored"),
        }
        Ok(())
    }

    /// Pushes an access unit; false when it cannot be used (no SPS/PPS yet).
    fn video(&mut self, ms: u32, annexb: &[u8], now: Instant) -> Result<bool, TakenOver> {
        let (mut sps, mut pps) = (None, None);
        for unit in h264::annexb_nal_units(annexb) {
            match h264::nal_unit_type(unit) {
                nal_type::SPS => sps = Some(unit),
                nal_type::PPS => pps = Some(unit),
                _ => {}
            }
        }
        if let (Some(sps), Some(pps)) = (sps, pps) {
            let changed = self.avc.as_ref().is_none_or(|avc| {
                avc.sps.first().map(|s| &s[..]) != Some(sps) || avc.pps.first().map(|p| &p[..]) != Some(pps)
            });
            if changed {
                if let Some(avc) = AvcConfig::from_parameter_sets(sps, pps) {
                    tracing::info!(
                        profile_level_id = format!("{:06x}", avc.profile_level_id()),
                        "H.264 parameter sets"
                    );
                    self.publisher
                        .push(Frame::new(MediaKind::Video, ms, avc.to_sequence_header()))?;
                    self.avc = Some(avc);
                }
            }
        }
        if self.avc.is_none() {
            return Ok(false);
        }
        let units = h264::annexb_nal_units(annexb)
            .filter(|u| !matches!(h264::nal_unit_type(u), nal_type::SPS | nal_type::PPS | nal_type::AUD));
        let keyframe = h264::annexb_nal_units(annexb).any(|u| h264::nal_unit_type(u) == nal_type::IDR);
        if keyframe {
            self.last_keyframe = Some(now);
        }
        self.body.clear();
        self.body
            .extend_from_slice(&[if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0]);
        h264::to_avcc(units, &mut self.body);
        if self.body.len() > 5 {
            self.publisher
                .push(Frame::new(MediaKind::Video, ms, Bytes::copy_from_slice(&self.body)))?;
        }
        Ok(true)
    }

    /// Sends a PLI (or a FIR, when only that was negotiated), at most one
    /// per [`MIN_REQUEST_GAP`].
    fn request_keyframe(&mut self, rtc: &mut Rtc, now: Instant, why: &str) {
        let Some(mid) = self.video_mid else { return };
        if self
            .last_keyframe_request
            .is_some_and(|t| now.saturating_duration_since(t) < MIN_REQUEST_GAP)
        {
            return;
        }
        self.last_keyframe_request = Some(now);
        let Some(mut writer) = rtc.writer(mid) else { return };
        let kind = [KeyframeRequestKind::Pli, KeyframeRequestKind::Fir]
            .into_iter()
            .find(|kind| writer.is_request_keyframe_possible(*kind));
        let Some(kind) = kind else {
            tracing::debug!("the publisher negotiated neither PLI nor FIR: no keyframe request");
            return;
        };
        match writer.request_keyframe(None, kind) {
            Ok(()) => {
                self.metrics.publisher_keyframe_requests.inc();
                tracing::debug!(?kind, why, "keyframe requested from the publisher");
            }
            Err(error) => tracing::debug!(%error, "keyframe request failed"),
        }
    }
}

/// Milliseconds on the session's timeline for a frame of a track.
fn timestamp(anchor: &mut Option<Anchor>, start: Instant, data: &MediaData) -> u32 {
    let anchor = *anchor.get_or_insert_with(|| Anchor {
        rtp: data.time,
        ms: data.network_time.saturating_duration_since(start).as_millis() as u64,
    });
    let rate = u64::from(data.time.frequency().get()).max(1);
    let elapsed = data.time.numer().saturating_sub(anchor.rtp.numer()) * 1000 / rate;
    (anchor.ms + elapsed) as u32
}
