//! Synthetic media for the publisher, sans-IO: a moving test pattern encoded
//! with openh264 and a sine tone encoded with Opus. Each call gives the next
//! frame with its RTP timestamp; the caller decides when to send it.

use codecs::audio::sine;
use codecs::opus::{OpusEncoder, FRAME_SAMPLES, SAMPLE_RATE};
use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, RateControlMode, UsageType};
use openh264::formats::YUVSource;
use openh264::Timestamp;

use super::receive::annexb_nal_types;
use super::WebRtcError;

/// One encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The frame's number, from 0.
    pub index: u64,
    /// The RTP timestamp in the codec's clock (90 kHz video, 48 kHz Opus), from 0.
    pub rtp_time: u64,
    /// H.264 as an Annex B access unit (SPS and PPS before every IDR), or one Opus packet.
    pub data: Vec<u8>,
    /// Whether the frame holds an IDR slice.
    pub keyframe: bool,
}

/// A moving YUV 4:2:0 test pattern: a diagonal gradient that scrolls and a
/// bright square that crosses the picture, so that every frame differs from
/// the last and an encoder makes real inter frames.
#[derive(Debug, Clone)]
pub struct TestPattern {
    width: usize,
    height: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl TestPattern {
    /// A pattern of `width` x `height` (both even, at least 16, at most 3840x2160).
    pub fn new(width: usize, height: usize) -> Result<TestPattern, WebRtcError> {
        if width & 1 != 0
            || height & 1 != 0
            || width < 16
            || height < 16
            || width.max(height) > 3840
            || width.min(height) > 2160
        {
            return Err(WebRtcError::Options(format!(
                "test pattern size {width}x{height}: both sides must be even, 16 or more, within 3840x2160"
            )));
        }
        let chroma = (width / 2) * (height / 2);
        Ok(TestPattern {
            width,
            height,
            y: vec![0; width * height],
            u: vec![128; chroma],
            v: vec![128; chroma],
        })
    }

    /// Draws frame number `frame`.
    pub fn render(&mut self, frame: u64) {
        let (w, h) = (self.width, self.height);
        let shift = (frame * 4) as usize;
        let side = (h / 4).max(8);
        let square_x = (frame as usize * 6) % (w - side);
        let square_y = (h - side) / 2;
        for row in 0..h {
            for col in 0..w {
                let inside = (square_x..square_x + side).contains(&col) && (square_y..square_y + side).contains(&row);
                self.y[row * w + col] = if inside {
                    235
                } else {
                    ((col + row + shift) % 200 + 16) as u8
                };
            }
        }
        let (cw, ch) = (w / 2, h / 2);
        for row in 0..ch {
            for col in 0..cw {
                self.u[row * cw + col] = (64 + (col * 128) / cw) as u8;
                self.v[row * cw + col] = (64 + ((row + shift / 2) % ch * 128) / ch) as u8;
            }
        }
    }
}

impl TestPattern {
    /// Draws `value` as a frame mark over the top of the picture (see
    /// [`crate::bench::marks`]), after [`TestPattern::render`].
    pub fn mark(&mut self, value: u16) {
        crate::bench::marks::draw(&mut self.y, self.width, self.width, self.height, value);
    }
}

impl YUVSource for TestPattern {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }

    fn y(&self) -> &[u8] {
        &self.y
    }

    fn u(&self) -> &[u8] {
        &self.u
    }

    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// The test pattern encoded with openh264 (Constrained Baseline), an IDR
/// every `idr_interval` frames and whenever asked for one.
pub struct H264Source {
    encoder: Encoder,
    pattern: TestPattern,
    fps: u32,
    idr_interval: u64,
    index: u64,
    next_periodic_idr: u64,
    force_idr: bool,
    marked: bool,
}

impl std::fmt::Debug for H264Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Source")
            .field("size", &self.pattern.dimensions())
            .field("fps", &self.fps)
            .field("idr_interval", &self.idr_interval)
            .field("index", &self.index)
            .finish()
    }
}

impl H264Source {
    /// A source of `width` x `height` at `fps` frames per second, aiming at
    /// `bitrate` bits per second, with an IDR every `idr_interval` frames.
    pub fn new(
        width: usize,
        height: usize,
        fps: u32,
        idr_interval: u32,
        bitrate: u32,
    ) -> Result<H264Source, WebRtcError> {
        if fps == 0 || fps > 120 || idr_interval == 0 {
            return Err(WebRtcError::Options(format!(
                "H.264 source: fps {fps} must be 1..=120 and the IDR interval {idr_interval} at least 1"
            )));
        }
        let pattern = TestPattern::new(width, height)?;
        // Periodic IDRs are forced here rather than left to the encoder, and
        // scene-change detection is off, so the IDR positions are exact.
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .usage_type(UsageType::CameraVideoRealTime)
            .skip_frames(false)
            .scene_change_detect(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .num_threads(1);
        let encoder =
            codecs::avc::quiet_encoder(config).map_err(|e| WebRtcError::Codec(format!("openh264 encoder: {e}")))?;
        Ok(H264Source {
            encoder,
            pattern,
            fps,
            idr_interval: u64::from(idr_interval),
            index: 0,
            next_periodic_idr: 0,
            force_idr: false,
            marked: false,
        })
    }

    /// Draws each frame's number (modulo 65536) into its picture as a
    /// [`crate::bench::marks`] mark, for latency measurements.
    pub fn with_marks(mut self) -> H264Source {
        self.marked = true;
        self
    }

    /// Frames per second.
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// Makes the next frame an IDR (the answer to a PLI or FIR).
    pub fn request_keyframe(&mut self) {
        self.force_idr = true;
    }

    /// Switches to pictures of `width` x `height` from the next frame, which
    /// is an IDR with new parameter sets (a camera changing resolution).
    pub fn resize(&mut self, width: usize, height: usize) -> Result<(), WebRtcError> {
        self.pattern = TestPattern::new(width, height)?;
        self.force_idr = true;
        Ok(())
    }

    /// Skips to frame `index` (a live source dropping frames it had no time
    /// for): the next frame has that number and its RTP time. Never goes back.
    pub fn skip_to(&mut self, index: u64) {
        self.index = self.index.max(index);
        while self.next_periodic_idr < self.index {
            self.next_periodic_idr += self.idr_interval;
        }
    }

    /// Renders and encodes the next frame.
    pub fn next_frame(&mut self) -> Result<EncodedFrame, WebRtcError> {
        let index = self.index;
        self.index += 1;
        self.pattern.render(index);
        if self.marked {
            self.pattern.mark(index as u16);
        }
        // The first frame is an IDR anyway; forcing one before the encoder is
        // initialised (on its first encode) is not possible.
        let periodic = index == self.next_periodic_idr;
        if periodic {
            self.next_periodic_idr += self.idr_interval;
        }
        if index > 0 && (self.force_idr || periodic) {
            self.encoder.force_intra_frame();
        }
        self.force_idr = false;
        let millis = index * 1000 / u64::from(self.fps);
        let data = self
            .encoder
            .encode_at(&self.pattern, Timestamp::from_millis(millis))
            .map_err(|e| WebRtcError::Codec(format!("openh264 encode of frame {index}: {e}")))?
            .to_vec();
        let keyframe = annexb_nal_types(&data).any(|t| t == 5);
        Ok(EncodedFrame {
            index,
            rtp_time: index * 90_000 / u64::from(self.fps),
            data,
            keyframe,
        })
    }
}

/// A sine tone as 20 ms mono Opus packets at 48 kHz, continuing its phase
/// from one packet to the next.
#[derive(Debug)]
pub struct ToneSource {
    encoder: OpusEncoder,
    frequency: f64,
    amplitude: f64,
    index: u64,
}

impl ToneSource {
    /// A tone at `frequency` Hz with its peak at `amplitude` (0.0 to 1.0 of
    /// full scale; 0.5 measures about -9 dBFS).
    pub fn new(frequency: f64, amplitude: f64) -> Result<ToneSource, WebRtcError> {
        if !(20.0..=20_000.0).contains(&frequency) {
            return Err(WebRtcError::Options(format!(
                "tone frequency {frequency} Hz is not within 20..=20000"
            )));
        }
        let encoder = OpusEncoder::new(1, 64_000).map_err(|e| WebRtcError::Codec(format!("opus encoder: {e}")))?;
        Ok(ToneSource {
            encoder,
            frequency,
            amplitude,
            index: 0,
        })
    }

    /// The duration of one packet.
    pub const FRAME: std::time::Duration = std::time::Duration::from_millis(20);

    /// Skips to packet `index`: the tone goes on as if the packets in between
    /// had been sent (a gap for the listener). Never goes back.
    pub fn skip_to(&mut self, index: u64) {
        self.index = self.index.max(index);
    }

    /// Encodes the next 20 ms.
    pub fn next_frame(&mut self) -> Result<EncodedFrame, WebRtcError> {
        let index = self.index;
        self.index += 1;
        let start = index * FRAME_SAMPLES as u64;
        let pcm = sine(self.frequency, SAMPLE_RATE, 1, start, FRAME_SAMPLES, self.amplitude);
        let data = self
            .encoder
            .encode(&pcm)
            .map_err(|e| WebRtcError::Codec(format!("opus encode: {e}")))?
            .to_vec();
        Ok(EncodedFrame {
            index,
            rtp_time: start,
            data,
            keyframe: false,
        })
    }
}
