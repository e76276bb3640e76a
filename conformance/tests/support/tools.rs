//! Real programs the suite drives as peers (Debian's ffmpeg and ffprobe).

// Each test binary that includes this file uses a part of it.
#![allow(dead_code)]

use std::process::Stdio;

use tokio::process::Command;

/// A command for `program`, killed when dropped, with piped output. Panics
/// with what to install when the program is missing: a test that needs a real
/// peer fails rather than silently skipping.
pub fn program(program: &str) -> Command {
    let found = std::process::Command::new(program)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        found.is_ok_and(|s| s.success()),
        "{program} not found: install Debian's package for it (.ci/install-deps does)"
    );
    let mut command = Command::new(program);
    command
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// An ffmpeg that publishes a synthetic stream to `url` in real time for
/// `seconds`: a 320x240 test picture at 25 fps in H.264 (keyframe every 2 s)
/// and/or a sine at `tone_hz` in AAC.
pub fn ffmpeg_publish(url: &str, video: bool, tone_hz: Option<u32>, seconds: u32) -> Command {
    let mut command = program("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-re"]);
    if video {
        command.args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"]);
    }
    if let Some(hz) = tone_hz {
        command.args(["-f", "lavfi", "-i", &format!("sine=frequency={hz}:sample_rate=44100")]);
    }
    if video {
        // 4:2:0 as cameras and encoders send it (testsrc alone would give High 4:4:4).
        command.args([
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ]);
        command.args(["-g", "50"]);
    }
    if tone_hz.is_some() {
        command.args(["-c:a", "aac", "-b:a", "96k"]);
    }
    command.args(["-t", &seconds.to_string(), "-f", "flv", url]);
    command
}

/// An `ffmpeg` command that publishes to `url` in real time, for `seconds`,
/// what Flash Player's camera and microphone send by default: Sorenson
/// Spark video (testsrc 320x240, 15 frames per second, a keyframe every
/// second) and a `tone_hz` sine in Nellymoser (22.05 kHz mono).
pub fn ffmpeg_publish_flash_codecs(url: &str, tone_hz: u32, seconds: u32) -> Command {
    let mut command = program("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-re"]);
    command.args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=15"]);
    command.args([
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency={tone_hz}:sample_rate=22050"),
    ]);
    command.args(["-c:v", "flv1", "-g", "15", "-b:v", "300k"]);
    command.args(["-c:a", "nellymoser", "-ar", "22050", "-ac", "1"]);
    command.args(["-t", &seconds.to_string(), "-f", "flv", url]);
    command
}

/// What ffprobe says of a media file.
#[derive(Debug)]
pub struct Probed {
    /// Codec names of the streams (`h264`, `speex`, ...).
    pub codecs: Vec<String>,
    /// Picture width of the video stream (0 without video).
    pub width: u64,
    /// Picture height of the video stream.
    pub height: u64,
    /// Video packets read.
    pub video_packets: u64,
    /// Audio packets read.
    pub audio_packets: u64,
}

/// Probes `file` with ffprobe (codecs, picture size, packets per kind); panics when ffprobe fails.
pub async fn probe(file: &std::path::Path) -> Probed {
    let output = program("ffprobe")
        .args([
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "stream=codec_type,codec_name,width,height,nb_read_packets",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let streams = json["streams"].as_array().cloned().unwrap_or_default();
    let count = |kind: &str| {
        streams
            .iter()
            .filter(|s| s["codec_type"] == kind)
            .filter_map(|s| s["nb_read_packets"].as_str()?.parse::<u64>().ok())
            .sum()
    };
    let video = streams.iter().find(|s| s["codec_type"] == "video");
    Probed {
        codecs: streams
            .iter()
            .filter_map(|s| s["codec_name"].as_str().map(str::to_string))
            .collect(),
        width: video.and_then(|v| v["width"].as_u64()).unwrap_or(0),
        height: video.and_then(|v| v["height"].as_u64()).unwrap_or(0),
        video_packets: count("video"),
        audio_packets: count("audio"),
    }
}
