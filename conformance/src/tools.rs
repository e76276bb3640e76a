//! Real programs the suite drives as peers (Debian's ffmpeg and ffprobe).

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
