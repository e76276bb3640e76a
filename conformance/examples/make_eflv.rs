//! Writes the Enhanced FLV fixtures `fixtures/flv/eflv_*_{320x240,640x360,1280x720}.flv`
//! for codecs Debian's ffmpeg 5.1 cannot put in FLV itself: ffmpeg encodes
//! 4 s of a lavfi test picture and sine as elementary streams,
//! `conformance::elementary` makes them into E-FLV tags, and
//! `media::flv::write_file` writes them, audio and video interleaved.
//!
//! ```text
//! cargo run -p conformance --example make_eflv -- OUT_DIR
//! ```
//!
//! The ffmpeg commands it runs are printed (and recorded in
//! `fixtures/README.md`); it adds `-hide_banner -loglevel error -y` to each.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use conformance::elementary::{self, FrameRate};
use media::flv::{self, Tag, TagKind};

/// Every video stream: 25 pictures a second, a keyframe every 25.
const RATE: FrameRate = FrameRate::per_second(25);

/// A video encoding: its codec arguments and the elementary stream format.
#[derive(Clone, Copy)]
enum Video {
    Hevc,
    Vp9,
    Vp8,
    Av1,
}

/// An audio encoding.
#[derive(Clone, Copy)]
enum Audio {
    Opus,
    Flac,
    Ac3,
    Eac3,
}

impl Video {
    /// The ffmpeg arguments after the input, and the output file's name.
    fn encode(self) -> (&'static [&'static str], &'static str) {
        match self {
            Video::Hevc => (
                &[
                    "-c:v",
                    "libx265",
                    "-preset",
                    "veryfast",
                    "-b:v",
                    "300k",
                    "-x265-params",
                    "keyint=25:min-keyint=25:scenecut=0:bframes=0",
                    "-f",
                    "hevc",
                ],
                "video.hevc",
            ),
            Video::Vp9 => (
                &[
                    "-c:v",
                    "libvpx-vp9",
                    "-b:v",
                    "300k",
                    "-g",
                    "25",
                    "-cpu-used",
                    "4",
                    "-f",
                    "ivf",
                ],
                "video_vp9.ivf",
            ),
            Video::Vp8 => (
                &[
                    "-c:v",
                    "libvpx",
                    "-b:v",
                    "300k",
                    "-g",
                    "25",
                    "-cpu-used",
                    "4",
                    "-f",
                    "ivf",
                ],
                "video_vp8.ivf",
            ),
            Video::Av1 => (
                &[
                    "-c:v",
                    "libaom-av1",
                    "-cpu-used",
                    "8",
                    "-b:v",
                    "300k",
                    "-g",
                    "25",
                    "-f",
                    "obu",
                ],
                "video.obu",
            ),
        }
    }

    fn tags(self, stream: &[u8]) -> Result<Vec<Tag>, elementary::ElementaryError> {
        match self {
            Video::Hevc => elementary::hevc_annexb(stream, RATE),
            Video::Vp9 | Video::Vp8 => elementary::ivf(stream),
            Video::Av1 => elementary::av1_obu(stream, RATE),
        }
    }
}

impl Audio {
    fn encode(self) -> (&'static [&'static str], &'static str) {
        match self {
            Audio::Opus => (&["-c:a", "libopus", "-b:a", "48k", "-f", "ogg"], "audio.opus"),
            Audio::Flac => (&["-c:a", "flac", "-f", "flac"], "audio.flac"),
            Audio::Ac3 => (&["-c:a", "ac3", "-b:a", "96k", "-f", "ac3"], "audio.ac3"),
            Audio::Eac3 => (&["-c:a", "eac3", "-b:a", "96k", "-f", "eac3"], "audio.eac3"),
        }
    }

    fn tags(self, stream: &[u8]) -> Result<Vec<Tag>, elementary::ElementaryError> {
        match self {
            Audio::Opus => elementary::opus_ogg(stream),
            Audio::Flac => elementary::flac(stream),
            Audio::Ac3 => elementary::ac3(stream),
            Audio::Eac3 => elementary::eac3(stream),
        }
    }
}

/// The fixtures: file name, video, picture size, audio.
/// Each fixture: its file, its video codec and size, its audio codec and the
/// sine's frequency (Hz).
const FIXTURES: [(&str, Video, &str, Audio, u32); 10] = [
    ("eflv_hevc_opus_320x240.flv", Video::Hevc, "320x240", Audio::Opus, 440),
    ("eflv_vp9_opus_320x240.flv", Video::Vp9, "320x240", Audio::Opus, 440),
    ("eflv_vp8_opus_320x240.flv", Video::Vp8, "320x240", Audio::Opus, 440),
    ("eflv_av1_flac_320x240.flv", Video::Av1, "320x240", Audio::Flac, 440),
    ("eflv_hevc_ac3_640x360.flv", Video::Hevc, "640x360", Audio::Ac3, 440),
    ("eflv_vp9_eac3_320x240.flv", Video::Vp9, "320x240", Audio::Eac3, 440),
    // For the benches' per-720p-frame transcoding costs.
    ("eflv_hevc_opus_1280x720.flv", Video::Hevc, "1280x720", Audio::Opus, 440),
    ("eflv_av1_opus_1280x720.flv", Video::Av1, "1280x720", Audio::Opus, 440),
    ("eflv_vp9_opus_1280x720.flv", Video::Vp9, "1280x720", Audio::Opus, 440),
    // A second language for `eflv_vp8_opus_320x240.flv` (audio track 1).
    (
        "eflv_vp8_opus_320x240_880hz.flv",
        Video::Vp8,
        "320x240",
        Audio::Opus,
        880,
    ),
];

/// Runs ffmpeg on `input` (a lavfi source) with `encode`, writing `name` in
/// `dir`, and returns what it wrote.
fn ffmpeg(dir: &Path, input: &str, encode: &[&str], name: &str) -> anyhow::Result<Vec<u8>> {
    let mut args = vec!["-f", "lavfi", "-i", input, "-t", "4"];
    if encode[0] == "-c:v" {
        args.extend(["-pix_fmt", "yuv420p"]);
    }
    args.extend_from_slice(encode);
    args.push(name);
    println!("  ffmpeg {}", args.join(" "));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(&args)
        .current_dir(dir)
        .status()
        .context("running ffmpeg (Debian's ffmpeg package)")?;
    if !status.success() {
        bail!("ffmpeg failed ({status}) writing {name}");
    }
    std::fs::read(dir.join(name)).with_context(|| format!("reading {name}"))
}

fn main() -> anyhow::Result<()> {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        bail!("usage: make_eflv OUT_DIR");
    };
    std::fs::create_dir_all(&out)?;
    let work = std::env::temp_dir().join(format!("make_eflv-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    for (file, video, size, audio, hz) in FIXTURES {
        println!("{file}:");
        let (encode, name) = video.encode();
        let picture = format!("testsrc2=size={size}:rate=25");
        let video_stream = ffmpeg(&work, &picture, encode, name)?;
        let (encode, name) = audio.encode();
        let audio_stream = ffmpeg(&work, &format!("sine=frequency={hz}:sample_rate=48000"), encode, name)?;
        let video_tags = video.tags(&video_stream).with_context(|| format!("{file}: video"))?;
        let audio_tags = audio.tags(&audio_stream).with_context(|| format!("{file}: audio"))?;
        let tags = elementary::interleave(video_tags, audio_tags);
        let bytes = flv::write_file(&tags, true, true)?;
        std::fs::write(out.join(file), &bytes)?;
        let count = |kind| tags.iter().filter(|t| t.kind == kind).count();
        println!(
            "  {} bytes, {} video tags, {} audio tags",
            bytes.len(),
            count(TagKind::Video),
            count(TagKind::Audio)
        );
    }
    std::fs::remove_dir_all(&work)?;
    Ok(())
}
