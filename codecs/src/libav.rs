//! A small safe layer over the system libavcodec (FFmpeg 5.1 or newer, through
//! ffmpeg-sys-next) for the codecs taken from it: the Nellymoser decoder
//! ([`super::nellymoser`]), the AAC encoder ([`super::aac::AacEncoder`]) and
//! the Sorenson Spark decoder ([`super::spark`]) and the H.264 decoder
//! ([`super::avc::AvcDecoder`]).
//!
//! Three owners, each freeing what it holds when dropped: [`Context`] (an
//! opened codec), [`Frame`] (PCM or a picture) and [`Packet`] (compressed
//! data). Only float PCM is exposed, packed from decoders and planar to
//! encoders, which is what those audio codecs use; callers convert to and
//! from `i16` with [`f32_to_i16`] and [`i16_to_f32`] (no libswresample).
//! Pictures come out as YUV 4:2:0 planes, what those video decoders make.
//!
//! libav logs to stderr, outside `tracing`. Opening the first context lowers
//! its (process-wide) log level to errors only, so that the AAC encoder's
//! statistics and notes at close ("Qavg", "frames left in the queue") do not
//! reach a server's stderr each time a stream ends; what goes wrong reaches
//! the caller as a [`CodecError`] with libav's error text.

use std::ffi::{c_char, c_int, CStr};
use std::ptr::NonNull;

use ffmpeg_sys_next as ff;

use super::picture::Picture;
use super::CodecError;

/// A negative return code from libav.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AvError(c_int);

impl AvError {
    /// What libav says the code means (`av_strerror`).
    pub(crate) fn text(self) -> String {
        let mut buf: [c_char; 128] = [0; 128];
        // SAFETY: `buf` is writable for its whole length, which is what we pass;
        // av_strerror always NUL-terminates within it (truncating if needed).
        unsafe { ff::av_strerror(self.0, buf.as_mut_ptr(), buf.len()) };
        let bytes: Vec<u8> = buf.iter().map(|&c| c as u8).collect();
        match CStr::from_bytes_until_nul(&bytes) {
            Ok(text) if !text.is_empty() => format!("{} (error {})", text.to_string_lossy(), self.0),
            _ => format!("error {}", self.0),
        }
    }

    /// The error as damaged input data of `codec`.
    pub(crate) fn corrupt(self, codec: &'static str) -> CodecError {
        CodecError::corrupt(codec, self.text())
    }

    /// The error as a failure of libavcodec itself (a setting it refused, no memory).
    pub(crate) fn library(self, codec: &'static str) -> CodecError {
        CodecError::Libav {
            codec,
            detail: self.text(),
        }
    }

    fn is_again_or_eof(self) -> bool {
        self.0 == ff::AVERROR(ff::EAGAIN) || self.0 == ff::AVERROR_EOF
    }
}

fn check(ret: c_int) -> Result<c_int, AvError> {
    if ret < 0 {
        Err(AvError(ret))
    } else {
        Ok(ret)
    }
}

/// A float sample (full scale ±1.0) as `i16`, rounded as libswresample does
/// (`lrintf(x * 32768)`, ties to even, then clipped), so that our PCM is
/// bit-identical to what `ffmpeg -f s16le` writes from the same decoder.
pub(crate) fn f32_to_i16(sample: f32) -> i16 {
    // NaN becomes 0 through the saturating cast.
    (sample * 32768.0).round_ties_even().clamp(-32768.0, 32767.0) as i16
}

/// An `i16` sample as a float with full scale ±1.0.
pub(crate) fn i16_to_f32(sample: i16) -> f32 {
    f32::from(sample) / 32768.0
}

/// An opened libavcodec codec context.
pub(crate) struct Context {
    ptr: NonNull<ff::AVCodecContext>,
    codec: &'static str,
}

// SAFETY: an AVCodecContext is heap state with no thread affinity; libavcodec
// only forbids using one context from two threads at once, which `&mut self`
// on every call that touches it rules out. The pointer keeps the type !Sync.
unsafe impl Send for Context {}

impl Context {
    /// Opens libavcodec's decoder for `id` (named `codec` in errors) for a
    /// stream of `sample_rate` Hz and `channels` channels.
    pub(crate) fn open_decoder(
        id: ff::AVCodecID,
        codec: &'static str,
        sample_rate: u32,
        channels: usize,
    ) -> Result<Self, CodecError> {
        let (rate, channels) = audio_format(codec, sample_rate, channels)?;
        // SAFETY: a lookup in libavcodec's static codec table; no preconditions.
        let found = unsafe { ff::avcodec_find_decoder(id) };
        Self::open(found, codec, "decoder", |ctx| set_audio(ctx, rate, channels))
    }

    /// Opens libavcodec's decoder for the video codec `id` (named `codec` in
    /// errors), or the one named `prefer` when this libavcodec has it; the
    /// picture size comes from the stream.
    pub(crate) fn open_video_decoder(
        id: ff::AVCodecID,
        codec: &'static str,
        prefer: Option<&std::ffi::CStr>,
    ) -> Result<Self, CodecError> {
        // SAFETY: lookups in libavcodec's static codec table; the name is a
        // NUL-terminated string that outlives the call.
        let preferred = prefer.map_or(std::ptr::null(), |name| unsafe {
            ff::avcodec_find_decoder_by_name(name.as_ptr())
        });
        // SAFETY: as above.
        let found = if preferred.is_null() {
            unsafe { ff::avcodec_find_decoder(id) }
        } else {
            preferred
        };
        Self::open(found, codec, "decoder", |_| {})
    }

    /// Opens libavcodec's encoder for `id` (named `codec` in errors), taking
    /// planar float PCM of `sample_rate` Hz and `channels` channels, at
    /// `bit_rate` bits per second, with its configuration in
    /// [`Context::extradata`] (global header).
    pub(crate) fn open_encoder(
        id: ff::AVCodecID,
        codec: &'static str,
        sample_rate: u32,
        channels: usize,
        bit_rate: u32,
    ) -> Result<Self, CodecError> {
        let (rate, channels) = audio_format(codec, sample_rate, channels)?;
        // SAFETY: a lookup in libavcodec's static codec table; no preconditions.
        let found = unsafe { ff::avcodec_find_encoder(id) };
        Self::open(found, codec, "encoder", |ctx| {
            set_audio(ctx, rate, channels);
            ctx.sample_fmt = ff::AVSampleFormat::AV_SAMPLE_FMT_FLTP;
            ctx.bit_rate = i64::from(bit_rate);
            ctx.flags |= ff::AV_CODEC_FLAG_GLOBAL_HEADER as c_int;
        })
    }

    fn open(
        found: *const ff::AVCodec,
        codec: &'static str,
        kind: &str,
        configure: impl FnOnce(&mut ff::AVCodecContext),
    ) -> Result<Self, CodecError> {
        if found.is_null() {
            return Err(CodecError::Libav {
                codec,
                detail: format!("this libavcodec was built without the {codec} {kind}"),
            });
        }
        static QUIET: std::sync::Once = std::sync::Once::new();
        // libavcodec would print every decoding error on stderr ("non-existing
        // PPS 0 referenced"); its return codes carry them to our callers,
        // which count or log them, so only fatal messages are printed.
        // SAFETY: sets one global integer that av_log reads; no preconditions.
        QUIET.call_once(|| unsafe { ff::av_log_set_level(ff::AV_LOG_FATAL) });
        // SAFETY: `found` is a codec from libavcodec's table (checked non-null).
        let raw = unsafe { ff::avcodec_alloc_context3(found) };
        let ptr = NonNull::new(raw).ok_or(CodecError::Library("libavcodec (codec context)"))?;
        // From here `context` owns the allocation, and its Drop frees it on
        // every early return.
        let mut context = Context { ptr, codec };
        // SAFETY: the context was just allocated and nothing else refers to it.
        let ctx = unsafe { context.ptr.as_mut() };
        ctx.thread_count = 1;
        configure(ctx);
        // SAFETY: the context was allocated for `found`, is not open yet, and
        // no options dictionary is passed.
        let ret = unsafe { ff::avcodec_open2(ctx, found, std::ptr::null_mut()) };
        check(ret).map_err(|e| e.library(codec))?;
        Ok(context)
    }

    fn raw(&self) -> &ff::AVCodecContext {
        // SAFETY: `ptr` is a live context owned by `self` until Drop.
        unsafe { self.ptr.as_ref() }
    }

    /// Samples per channel the encoder takes per frame (0: any number).
    pub(crate) fn frame_size(&self) -> usize {
        usize::try_from(self.raw().frame_size).unwrap_or(0)
    }

    /// Samples per channel of the encoder's delay: its first packet starts this
    /// long before the first sample given to it.
    pub(crate) fn initial_padding(&self) -> usize {
        usize::try_from(self.raw().initial_padding).unwrap_or(0)
    }

    /// The codec's global header (for AAC, the AudioSpecificConfig).
    pub(crate) fn extradata(&self) -> &[u8] {
        let ctx = self.raw();
        match usize::try_from(ctx.extradata_size) {
            Ok(len) if len > 0 && !ctx.extradata.is_null() => {
                // SAFETY: libavcodec allocated `extradata` with at least
                // `extradata_size` bytes; it lives as long as the context, and
                // `&self` keeps the context from changing meanwhile.
                unsafe { std::slice::from_raw_parts(ctx.extradata, len) }
            }
            _ => &[],
        }
    }

    /// Gives a decoder one packet.
    pub(crate) fn send_packet(&mut self, packet: &Packet) -> Result<(), AvError> {
        // SAFETY: an open context and a live packet with padded data (see
        // `Packet::fill`); libavcodec does not keep the pointer.
        check(unsafe { ff::avcodec_send_packet(self.ptr.as_ptr(), packet.0.as_ptr()) }).map(drop)
    }

    /// Takes the next decoded frame: `Ok(false)` when the decoder needs more input.
    pub(crate) fn receive_frame(&mut self, frame: &mut Frame) -> Result<bool, AvError> {
        // SAFETY: an open context and a live frame, which libavcodec unrefs
        // and fills with buffers it reference-counts.
        match check(unsafe { ff::avcodec_receive_frame(self.ptr.as_ptr(), frame.0.as_ptr()) }) {
            Ok(_) => Ok(true),
            Err(e) if e.is_again_or_eof() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives an encoder one frame of PCM.
    pub(crate) fn send_frame(&mut self, frame: &Frame) -> Result<(), AvError> {
        // SAFETY: an open context and a live frame; libavcodec takes its own
        // reference to the frame's buffers and does not keep the pointer.
        check(unsafe { ff::avcodec_send_frame(self.ptr.as_ptr(), frame.0.as_ptr()) }).map(drop)
    }

    /// Takes the next encoded packet: `Ok(false)` when the encoder needs more input.
    pub(crate) fn receive_packet(&mut self, packet: &mut Packet) -> Result<bool, AvError> {
        // SAFETY: an open context and a live packet, which libavcodec unrefs
        // and fills with a buffer it reference-counts.
        match check(unsafe { ff::avcodec_receive_packet(self.ptr.as_ptr(), packet.0.as_ptr()) }) {
            Ok(_) => Ok(true),
            Err(e) if e.is_again_or_eof() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Drops everything buffered inside the codec, as after a seek.
    pub(crate) fn flush(&mut self) {
        // SAFETY: an open context.
        unsafe { ff::avcodec_flush_buffers(self.ptr.as_ptr()) }
    }
}

/// A sample rate and channel count as libavcodec's integers.
fn audio_format(codec: &'static str, sample_rate: u32, channels: usize) -> Result<(c_int, c_int), CodecError> {
    match (c_int::try_from(sample_rate), c_int::try_from(channels)) {
        (Ok(rate), Ok(channels)) => Ok((rate, channels)),
        _ => Err(CodecError::InvalidParameter(format!(
            "{codec}: {sample_rate} Hz, {channels} channels"
        ))),
    }
}

/// Sets an audio context's rate, time base and channel layout.
fn set_audio(ctx: &mut ff::AVCodecContext, rate: c_int, channels: c_int) {
    ctx.sample_rate = rate;
    ctx.time_base = ff::AVRational { num: 1, den: rate };
    // SAFETY: `ch_layout` is the context's own, initialised by
    // avcodec_alloc_context3; uninit frees whatever it holds, and default
    // writes a native-order layout that needs no allocation.
    unsafe {
        ff::av_channel_layout_uninit(&mut ctx.ch_layout);
        ff::av_channel_layout_default(&mut ctx.ch_layout, channels);
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        let mut raw = self.ptr.as_ptr();
        // SAFETY: allocated by avcodec_alloc_context3, freed once here (this
        // closes the codec and frees extradata and the channel layout).
        unsafe { ff::avcodec_free_context(&mut raw) }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ctx = self.raw();
        f.debug_struct("Context")
            .field("codec", &self.codec)
            .field("sample_rate", &ctx.sample_rate)
            .field("channels", &ctx.ch_layout.nb_channels)
            .finish_non_exhaustive()
    }
}

/// A picture's width, height, its chroma subsampling, and its Y, U and V
/// planes with their strides.
pub(crate) type YuvPlanes<'a> = (usize, usize, (u8, u8), [(&'a [u8], usize); 3]);

/// An AVFrame: PCM going into an encoder or coming out of a decoder, or a
/// decoded picture.
pub(crate) struct Frame(NonNull<ff::AVFrame>);

// SAFETY: an AVFrame and the buffers it references have no thread affinity
// (buffer reference counts are atomic); `&mut self` guards every change.
unsafe impl Send for Frame {}

impl Frame {
    pub(crate) fn new() -> Result<Self, CodecError> {
        // SAFETY: no preconditions; returns null when out of memory.
        let raw = unsafe { ff::av_frame_alloc() };
        NonNull::new(raw)
            .map(Frame)
            .ok_or(CodecError::Library("libavutil (frame)"))
    }

    fn raw(&self) -> &ff::AVFrame {
        // SAFETY: `self.0` is a live frame owned by `self` until Drop.
        unsafe { self.0.as_ref() }
    }

    /// Samples per channel.
    pub(crate) fn samples(&self) -> usize {
        usize::try_from(self.raw().nb_samples).unwrap_or(0)
    }

    /// The channel count.
    pub(crate) fn channels(&self) -> usize {
        usize::try_from(self.raw().ch_layout.nb_channels).unwrap_or(0)
    }

    /// The interleaved samples of a packed float frame (what the Nellymoser
    /// decoder produces); `None` for a frame in any other format.
    pub(crate) fn packed_f32(&self) -> Option<&[f32]> {
        let f = self.raw();
        if f.format != ff::AVSampleFormat::AV_SAMPLE_FMT_FLT as c_int || f.extended_data.is_null() {
            return None;
        }
        let len = self.samples() * self.channels();
        // SAFETY: `extended_data` of an audio frame points at one plane
        // pointer per plane, and a packed frame has one.
        let plane = unsafe { *f.extended_data };
        if len == 0 || plane.is_null() {
            return Some(&[]);
        }
        // SAFETY: a packed AV_SAMPLE_FMT_FLT plane holds nb_samples * channels
        // f32 samples in a buffer libav aligned for SIMD (so for f32); the
        // frame keeps it alive, and `&self` keeps it from being replaced.
        Some(unsafe { std::slice::from_raw_parts(plane.cast::<f32>(), len) })
    }

    /// The planes of a decoded 8-bit planar YUV picture (4:2:0, 4:2:2 or
    /// 4:4:4): width, height, the chroma planes' subsampling (horizontal,
    /// vertical: 1 halved, 0 full) and Y, U, V each with its line stride;
    /// or of planar RGB, subsampling (2, 2) and the G, B and R planes;
    /// `None` for a frame in any other format.
    pub(crate) fn yuv_planes(&self) -> Option<YuvPlanes<'_>> {
        let f = self.raw();
        // YUVJ420P is 4:2:0 in full range (cameras, JPEG-born streams): the
        // same planes; 4:2:2 and 4:4:4 have chroma planes twice as tall, or
        // wide and tall, which the caller subsamples.
        let subsampling = match f.format {
            x if x == ff::AVPixelFormat::AV_PIX_FMT_YUV420P as c_int => (1, 1),
            x if x == ff::AVPixelFormat::AV_PIX_FMT_YUVJ420P as c_int => (1, 1),
            x if x == ff::AVPixelFormat::AV_PIX_FMT_YUV422P as c_int => (1, 0),
            x if x == ff::AVPixelFormat::AV_PIX_FMT_YUVJ422P as c_int => (1, 0),
            x if x == ff::AVPixelFormat::AV_PIX_FMT_YUV444P as c_int => (0, 0),
            x if x == ff::AVPixelFormat::AV_PIX_FMT_YUVJ444P as c_int => (0, 0),
            // Planar RGB (G, B, R), as AV1 and HEVC may carry: 2 in both,
            // which the caller converts.
            x if x == ff::AVPixelFormat::AV_PIX_FMT_GBRP as c_int => (2, 2),
            _ => return None,
        };
        let (width, height) = (usize::try_from(f.width).ok()?, usize::try_from(f.height).ok()?);
        let plane = |index: usize, rows: usize| -> Option<(&[u8], usize)> {
            let stride = usize::try_from(f.linesize[index]).ok()?;
            let data = f.data[index];
            if data.is_null() || stride == 0 {
                return None;
            }
            // SAFETY: a decoded planar YUV frame's plane `index` holds `rows`
            // lines of `stride` bytes (stride is positive: checked), in a
            // buffer the frame references until it is unref'd, which `&self`
            // prevents meanwhile.
            Some((unsafe { std::slice::from_raw_parts(data, stride * rows) }, stride))
        };
        let chroma_rows = if subsampling.1 == 1 { height.div_ceil(2) } else { height };
        // (RGB planes are full size, like 4:4:4 chroma.)
        Some((
            width,
            height,
            subsampling,
            [plane(0, height)?, plane(1, chroma_rows)?, plane(2, chroma_rows)?],
        ))
    }

    /// Appends the samples of a decoded audio frame to `out`, interleaved
    /// 16-bit; whether its format is one of those read (signed 16- or
    /// 32-bit or float, packed or planar).
    pub(crate) fn append_i16(&self, out: &mut Vec<i16>) -> bool {
        use ff::AVSampleFormat as F;
        let f = self.raw();
        let (samples, channels) = (self.samples(), self.channels());
        let formats = [
            (F::AV_SAMPLE_FMT_S16, 2, false),
            (F::AV_SAMPLE_FMT_S16P, 2, true),
            (F::AV_SAMPLE_FMT_S32, 4, false),
            (F::AV_SAMPLE_FMT_S32P, 4, true),
            (F::AV_SAMPLE_FMT_FLT, 4, false),
            (F::AV_SAMPLE_FMT_FLTP, 4, true),
        ];
        let Some(&(format, width, planar)) = formats.iter().find(|(format, ..)| f.format == *format as c_int) else {
            return false;
        };
        if f.extended_data.is_null() || channels == 0 {
            return false;
        }
        let planes = if planar { channels } else { 1 };
        let per_plane = if planar { samples } else { samples * channels };
        // SAFETY: a decoded audio frame's `extended_data` holds one pointer
        // per plane (one per channel when planar, else one), each to
        // `per_plane` samples of `width` bytes, which the frame references
        // until it is unref'd; `&self` prevents that meanwhile.
        let plane = |index: usize| -> &[u8] {
            unsafe { std::slice::from_raw_parts(*f.extended_data.add(index), per_plane * width) }
        };
        let sample = |bytes: &[u8]| -> i16 {
            match format {
                F::AV_SAMPLE_FMT_S16 | F::AV_SAMPLE_FMT_S16P => i16::from_ne_bytes([bytes[0], bytes[1]]),
                F::AV_SAMPLE_FMT_S32 | F::AV_SAMPLE_FMT_S32P => {
                    (i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) >> 16) as i16
                }
                _ => f32_to_i16(f32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
            }
        };
        out.reserve(samples * channels);
        if planes == 1 {
            out.extend(plane(0).chunks_exact(width).map(sample));
        } else {
            let planes: Vec<&[u8]> = (0..planes).map(plane).collect();
            for index in 0..samples {
                for plane in &planes {
                    out.push(sample(&plane[index * width..(index + 1) * width]));
                }
            }
        }
        true
    }

    /// Makes this frame `samples` per channel of planar float audio in fresh
    /// buffers (`channels` channels at `sample_rate` Hz, presentation time
    /// `pts`), and has `fill` write each channel's plane: `fill(channel, plane)`.
    pub(crate) fn fill_planar_f32(
        &mut self,
        channels: usize,
        sample_rate: u32,
        samples: usize,
        pts: i64,
        mut fill: impl FnMut(usize, &mut [f32]),
    ) -> Result<(), AvError> {
        let (Ok(nb_channels), Ok(nb_samples), Ok(rate)) = (
            c_int::try_from(channels),
            c_int::try_from(samples),
            c_int::try_from(sample_rate),
        ) else {
            return Err(AvError(ff::AVERROR(ff::EINVAL)));
        };
        let frame = self.0.as_ptr();
        // SAFETY: a live frame owned by `self`. unref drops the buffers and
        // layout of the last use (an encoder may still hold its own reference
        // to those buffers, which is why new ones are allocated each time);
        // the fields set are the ones av_frame_get_buffer reads, and it
        // allocates one buffer per plane that only this frame references.
        unsafe {
            ff::av_frame_unref(frame);
            (*frame).format = ff::AVSampleFormat::AV_SAMPLE_FMT_FLTP as c_int;
            (*frame).nb_samples = nb_samples;
            (*frame).sample_rate = rate;
            (*frame).pts = pts;
            ff::av_channel_layout_default(&mut (*frame).ch_layout, nb_channels);
            check(ff::av_frame_get_buffer(frame, 0))?;
        }
        for channel in 0..channels {
            // SAFETY: av_frame_get_buffer gave a planar frame one plane pointer
            // per channel in `extended_data`, each to `samples` f32 samples
            // that nothing else references yet; `&mut self` is held meanwhile.
            let plane = unsafe {
                let plane = *(*frame).extended_data.add(channel);
                std::slice::from_raw_parts_mut(plane.cast::<f32>(), samples)
            };
            fill(channel, plane);
        }
        Ok(())
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        let mut raw = self.0.as_ptr();
        // SAFETY: allocated by av_frame_alloc, freed once here (with its buffers).
        unsafe { ff::av_frame_free(&mut raw) }
    }
}

/// An AVPacket: compressed data going into a decoder or out of an encoder.
pub(crate) struct Packet(NonNull<ff::AVPacket>);

// SAFETY: as for `Frame`: plain heap data with atomic buffer reference counts.
unsafe impl Send for Packet {}

impl Packet {
    pub(crate) fn new() -> Result<Self, CodecError> {
        // SAFETY: no preconditions; returns null when out of memory.
        let raw = unsafe { ff::av_packet_alloc() };
        NonNull::new(raw)
            .map(Packet)
            .ok_or(CodecError::Library("libavcodec (packet)"))
    }

    fn raw(&self) -> &ff::AVPacket {
        // SAFETY: `self.0` is a live packet owned by `self` until Drop.
        unsafe { self.0.as_ref() }
    }

    /// Replaces the packet's data with a copy of `data` in a fresh buffer,
    /// followed by the zeroed padding libavcodec's bit readers may read.
    pub(crate) fn fill(&mut self, data: &[u8]) -> Result<(), AvError> {
        let len = c_int::try_from(data.len())
            .ok()
            .filter(|&len| len <= c_int::MAX - ff::AV_INPUT_BUFFER_PADDING_SIZE)
            .ok_or(AvError(ff::AVERROR(ff::EINVAL)))?;
        let packet = self.0.as_ptr();
        // SAFETY: a live packet owned by `self`; unref drops its old buffer,
        // av_new_packet allocates `len` bytes plus zeroed padding.
        unsafe {
            ff::av_packet_unref(packet);
            check(ff::av_new_packet(packet, len))?;
        }
        if !data.is_empty() {
            // SAFETY: `(*packet).data` has room for `len` = data.len() bytes and
            // is a fresh allocation, so it cannot overlap `data`.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), (*packet).data, data.len()) };
        }
        Ok(())
    }

    /// The packet's bytes.
    pub(crate) fn data(&self) -> &[u8] {
        let p = self.raw();
        match usize::try_from(p.size) {
            Ok(len) if len > 0 && !p.data.is_null() => {
                // SAFETY: `data` holds `size` bytes, kept alive by the packet;
                // `&self` keeps it from being replaced meanwhile.
                unsafe { std::slice::from_raw_parts(p.data, len) }
            }
            _ => &[],
        }
    }

    /// The presentation time in the codec's time base, when the codec set one.
    pub(crate) fn pts(&self) -> Option<i64> {
        Some(self.raw().pts).filter(|&pts| pts != ff::AV_NOPTS_VALUE)
    }
}

impl Drop for Packet {
    fn drop(&mut self) {
        let mut raw = self.0.as_ptr();
        // SAFETY: allocated by av_packet_alloc, freed once here (with its buffer).
        unsafe { ff::av_packet_free(&mut raw) }
    }
}

/// A video decoder that hands out YUV 4:2:0 pictures: one compressed
/// frame in, at most one picture out (later than its frame when the codec
/// reorders).
/// A libavcodec sound decoder for codecs whose packets say their own rate
/// and channels (FLAC, AC-3, E-AC-3): packets in, interleaved 16-bit PCM out.
pub(crate) struct SoundDecoder {
    context: Context,
    frame: Frame,
    packet: Packet,
    codec: &'static str,
}

impl SoundDecoder {
    /// libavcodec's decoder for `id`, named `codec` in errors.
    pub(crate) fn new(id: ff::AVCodecID, codec: &'static str) -> Result<Self, CodecError> {
        // SAFETY: a lookup in libavcodec's static codec table; no preconditions.
        let found = unsafe { ff::avcodec_find_decoder(id) };
        Ok(SoundDecoder {
            context: Context::open(found, codec, "decoder", |_| {})?,
            frame: Frame::new()?,
            packet: Packet::new()?,
            codec,
        })
    }

    /// Decodes one packet, appending its samples to `out` (interleaved);
    /// returns the sample rate and channel count, or `None` when no samples
    /// came out.
    pub(crate) fn decode(&mut self, data: &[u8], out: &mut Vec<i16>) -> Result<Option<(u32, usize)>, CodecError> {
        self.packet.fill(data).map_err(|e| e.corrupt(self.codec))?;
        self.context
            .send_packet(&self.packet)
            .map_err(|e| e.corrupt(self.codec))?;
        let mut format = None;
        while self
            .context
            .receive_frame(&mut self.frame)
            .map_err(|e| e.corrupt(self.codec))?
        {
            if !self.frame.append_i16(out) {
                return Err(CodecError::Unsupported(format!(
                    "{} samples in this format",
                    self.codec
                )));
            }
            let rate = u32::try_from(self.frame.raw().sample_rate).unwrap_or(0);
            format = Some((rate, self.frame.channels()));
        }
        Ok(format.filter(|(rate, channels)| *rate > 0 && *channels > 0))
    }
}

pub(crate) struct PictureDecoder {
    context: Context,
    frame: Frame,
    packet: Packet,
    codec: &'static str,
}

impl PictureDecoder {
    /// libavcodec's decoder for `id`, named `codec` in errors.
    pub(crate) fn new(id: ff::AVCodecID, codec: &'static str) -> Result<Self, CodecError> {
        Self::preferring(id, codec, None)
    }

    /// libavcodec's decoder named `prefer` if it has one, else its decoder for `id`.
    pub(crate) fn preferring(
        id: ff::AVCodecID,
        codec: &'static str,
        prefer: Option<&std::ffi::CStr>,
    ) -> Result<Self, CodecError> {
        Ok(PictureDecoder {
            context: Context::open_video_decoder(id, codec, prefer)?,
            frame: Frame::new()?,
            packet: Packet::new()?,
            codec,
        })
    }

    /// Decodes `data`; fills `out` and returns true when a picture came out.
    pub(crate) fn decode(&mut self, data: &[u8], out: &mut Picture) -> Result<bool, CodecError> {
        self.packet.fill(data).map_err(|e| e.corrupt(self.codec))?;
        self.context
            .send_packet(&self.packet)
            .map_err(|e| e.corrupt(self.codec))?;
        if !self
            .context
            .receive_frame(&mut self.frame)
            .map_err(|e| e.corrupt(self.codec))?
        {
            return Ok(false);
        }
        let (width, height, subsampling, planes) = self
            .frame
            .yuv_planes()
            .ok_or_else(|| CodecError::Unsupported(format!("{} pictures other than 8-bit planar YUV", self.codec)))?;
        out.copy_from_planes(width, height, subsampling, planes);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_convert_as_libswresample_does() {
        assert_eq!(f32_to_i16(0.0), 0);
        assert_eq!(f32_to_i16(1.0), 32767, "clipped");
        assert_eq!(f32_to_i16(-1.0), -32768);
        assert_eq!(f32_to_i16(-2.5), -32768);
        assert_eq!(f32_to_i16(f32::NAN), 0);
        // Ties go to even, as lrintf does.
        assert_eq!(f32_to_i16(0.5 / 32768.0), 0);
        assert_eq!(f32_to_i16(1.5 / 32768.0), 2);
        assert_eq!(f32_to_i16(-2.5 / 32768.0), -2);
        for s in [i16::MIN, -1234, -1, 0, 1, 4321, i16::MAX] {
            assert_eq!(f32_to_i16(i16_to_f32(s)), s);
        }
    }

    #[test]
    fn errors_carry_libav_text() {
        let text = AvError(ff::AVERROR_INVALIDDATA).text();
        assert!(text.contains("Invalid data"), "{text}");
        let e = AvError(ff::AVERROR(ff::EINVAL)).library("aac");
        assert!(e.to_string().starts_with("libavcodec aac: Invalid argument"), "{e}");
        assert!(AvError(ff::AVERROR(ff::EAGAIN)).is_again_or_eof());
        assert!(AvError(ff::AVERROR_EOF).is_again_or_eof());
    }

    #[test]
    fn a_packet_holds_a_copy_of_its_data() {
        let mut packet = Packet::new().unwrap();
        assert_eq!(packet.data(), &[] as &[u8]);
        packet.fill(&[1, 2, 3]).unwrap();
        assert_eq!(packet.data(), &[1, 2, 3]);
        packet.fill(&[]).unwrap();
        assert_eq!(packet.data(), &[] as &[u8]);
        assert_eq!(packet.pts(), None);
    }

    #[test]
    fn refused_settings_and_missing_codecs_are_errors() {
        // 12345 Hz is not an AAC sampling frequency.
        let err = Context::open_encoder(ff::AVCodecID::AV_CODEC_ID_AAC, "aac", 12_345, 1, 64_000).unwrap_err();
        assert!(matches!(err, CodecError::Libav { codec: "aac", .. }), "{err}");
        eprintln!("{err}");
        let err = Context::open_decoder(ff::AVCodecID::AV_CODEC_ID_NONE, "none", 8_000, 1).unwrap_err();
        assert!(matches!(err, CodecError::Libav { codec: "none", .. }), "{err}");
        assert!(err.to_string().contains("without the none decoder"), "{err}");
    }

    #[test]
    fn wrappers_can_move_between_threads() {
        fn is_send<T: Send>() {}
        is_send::<Context>();
        is_send::<Frame>();
        is_send::<Packet>();
    }
}
