//! Audio transcoders: a stream's sound to Opus for WebRTC players, or a
//! WebRTC publisher's Opus to Speex or AAC for RTMP players. Decoder and
//! encoder state live as long as the transcoder: gaps and timestamp jumps
//! re-anchor the output clock without resetting them.

use std::sync::Arc;
use std::time::Instant;

use codecs::transcode::{FlvAudioTag, FlvAudioTarget, FromOpus, OpusPacket, ToOpus};
use codecs::CodecError;
use media::flv::AudioCodec;
use tokio::sync::mpsc::error::TrySendError;

use super::{Queue, Sink};
use crate::config::RtmpAudio;
use crate::hub::Frame;
use crate::metrics::Metrics;
use crate::rtmp::session::MediaKind;
use crate::warn::RateLimited;

/// What a transcoder produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Opus for WebRTC players, as enhanced-RTMP Opus tag bodies (20 ms each).
    Opus,
    /// Speex wideband for RTMP players of an Opus stream (a WebRTC publisher).
    Speex,
    /// AAC-LC for RTMP players of an Opus stream, for apps configured so.
    Aac,
}

impl From<RtmpAudio> for Target {
    fn from(audio: RtmpAudio) -> Target {
        match audio {
            RtmpAudio::Speex => Target::Speex,
            RtmpAudio::Aac => Target::Aac,
        }
    }
}

/// Opus bitrate for transcoded speech and music, in bits per second.
const OPUS_BITRATE: u32 = 48_000;
/// Input frames waiting for the codec thread before new ones are dropped.
const INPUT_QUEUE: usize = 128;

/// How late the quirk `transcoded_audio_stamped_late` stamps Opus: the
/// 100 ms a transcoder that buffers five packets holds them, stamped as
/// they leave.
const LATE_MS: u32 = 100;

/// Starts the codec thread of a transcoder to `target`; frames sent to
/// the returned queue come out of `sink`. Quirks: `opus_transcoded`
/// decodes and encodes Opus again even for an Opus target;
/// `transcoded_audio_stamped_late` stamps Opus made from another codec
/// [`LATE_MS`] late.
pub(super) fn start(
    name: &str,
    target: Target,
    quirks: &crate::config::Quirks,
    sink: Sink,
    metrics: Arc<Metrics>,
) -> std::io::Result<Queue> {
    let (input, work) = tokio::sync::mpsc::channel(INPUT_QUEUE);
    let reencode = quirks.opus_transcoded;
    let late = if quirks.transcoded_audio_stamped_late {
        LATE_MS
    } else {
        0
    };
    std::thread::Builder::new()
        .name(format!("{name} {target:?}"))
        .spawn(move || run_codecs(target, reencode, late, work, sink, metrics))?;
    Ok(input)
}

/// Feeds a stream's audio to the codec thread. A live frame that finds
/// the codec thread a full queue behind is dropped (a gap in the sound),
/// counted in `audio_transcode_frames_dropped_total`.
pub(super) struct Feed {
    input: Queue,
    metrics: Arc<Metrics>,
    behind: RateLimited,
}

impl Feed {
    pub(super) fn new(input: Queue, metrics: Arc<Metrics>) -> Feed {
        Feed {
            input,
            metrics,
            behind: RateLimited::default(),
        }
    }
}

impl super::Feed for Feed {
    fn queue(&self) -> &Queue {
        &self.input
    }

    fn send_live(&mut self, frame: Frame) -> bool {
        match self.input.try_send(frame) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.metrics.audio_transcode_dropped.inc();
                if let Some(held_back) = self.behind.allow(Instant::now()) {
                    tracing::warn!(held_back, "audio transcoder behind: live audio frame dropped");
                }
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// The Opus decoder and `target` encoder, made on first use.
fn from_opus_for(target: Target, from_opus: &mut Option<FromOpus>) -> Result<&mut FromOpus, CodecError> {
    match from_opus {
        Some(encoder) => Ok(encoder),
        None => FromOpus::new(match target {
            Target::Aac => FlvAudioTarget::Aac,
            _ => FlvAudioTarget::Speex,
        })
        .map(|e| from_opus.insert(e)),
    }
}

/// The codec thread: decodes, resamples, encodes, until its input closes.
fn run_codecs(
    target: Target,
    reencode: bool,
    late: u32,
    mut work: tokio::sync::mpsc::Receiver<Frame>,
    mut output: Sink,
    metrics: Arc<Metrics>,
) {
    let mut to_opus: Option<ToOpus> = None;
    let mut from_opus: Option<FromOpus> = None;
    let mut packets: Vec<OpusPacket> = Vec::new();
    let mut tags: Vec<FlvAudioTag> = Vec::new();
    let mut last_error: Option<String> = None;
    while let Some(frame) = work.blocking_recv() {
        let started = Instant::now();
        let codec = frame.audio_codec();
        let result = match (target, codec) {
            // Already the target format: nothing to do (players pass it through).
            (Target::Opus, Some(AudioCodec::Opus)) if !reencode => Ok(()),
            (Target::Opus, _) => match &mut to_opus {
                Some(encoder) => Ok(encoder),
                None => ToOpus::new(OPUS_BITRATE).map(|e| to_opus.insert(e)),
            }
            .and_then(|e| {
                // A multitrack message: its main track alone.
                let body = frame.enhanced.as_ref().and_then(|x| x.main_track.as_ref());
                e.push(frame.timestamp, body.unwrap_or(&frame.payload), &mut packets)
            }),
            (Target::Speex | Target::Aac, Some(AudioCodec::Opus)) => match frame.data().filter(|_| !frame.config) {
                Some(packet) => from_opus_for(target, &mut from_opus)
                    .and_then(|e| e.push(u64::from(frame.timestamp) * 48, packet, &mut tags)),
                None => Ok(()),
            },
            // Enhanced RTMP sound a legacy RTMP player cannot take: through
            // Opus (the codecs both ways are already here) to the target.
            (Target::Speex | Target::Aac, Some(AudioCodec::Flac | AudioCodec::Ac3 | AudioCodec::Eac3)) => {
                match &mut to_opus {
                    Some(encoder) => Ok(encoder),
                    None => ToOpus::new(OPUS_BITRATE).map(|e| to_opus.insert(e)),
                }
                .and_then(|e| {
                    let body = frame.enhanced.as_ref().and_then(|x| x.main_track.as_ref());
                    e.push(frame.timestamp, body.unwrap_or(&frame.payload), &mut packets)
                })
                .and_then(|()| {
                    let encoder = from_opus_for(target, &mut from_opus)?;
                    packets
                        .drain(..)
                        .try_for_each(|packet| encoder.push(packet.rtp_timestamp, &packet.data, &mut tags))
                })
                // Whatever failed, no Opus of this frame goes out as it is.
                .inspect_err(|_| packets.clear())
            }
            // Not Opus: RTMP players get it as it is.
            (Target::Speex | Target::Aac, _) => Ok(()),
        };
        metrics.transcoded_frames.inc();
        metrics.transcode_micros.add(started.elapsed().as_micros() as u64);
        if let Err(error) = result {
            metrics.transcode_errors.inc();
            let text = error.to_string();
            // Say it once, not fifty times a second.
            if last_error.as_deref() != Some(text.as_str()) {
                tracing::warn!(error = %text, "audio frame not transcoded");
                last_error = Some(text);
            }
        }
        for packet in packets.drain(..) {
            output.send(Frame::opus(
                ((packet.rtp_timestamp / 48) as u32).wrapping_add(late),
                &packet.data,
            ));
        }
        for tag in tags.drain(..) {
            output.send(Frame::new(MediaKind::Audio, tag.timestamp_ms, tag.data));
        }
    }
    tracing::info!(?target, "transcoder stopped");
}
