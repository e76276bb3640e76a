//! The `ffmpeg` actor: FFmpeg's own RTMP client, the `ffmpeg` program run
//! as its users run it, publishing a fixture or playing a stream.
//!
//! A publisher is `ffmpeg -re -i pipe:0 -c copy -f flv URL`, fed the FLV
//! fixture on its standard input; FFmpeg's `rtmp_open` returns only once
//! the server has answered `publish` with `NetStream.Publish.Start`, so
//! progress past 0 µs of output means the server took the publish. A player
//! is `ffmpeg -i URL -f framecrc -`: every frame it decodes is one line,
//! counted per track. What FFmpeg writes on its standard error is kept as
//! the server's answer, in FFmpeg's words, for verdicts.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// How many of FFmpeg's last lines on standard error are kept.
const STDERR_LINES: usize = 6;

/// Whether this machine has an `ffmpeg` program; why not if it has none.
pub(super) fn available() -> Result<(), String> {
    super::runs("ffmpeg", "-version")
}

/// An `ffmpeg` actor's processes.
#[derive(Default)]
pub(super) struct FfmpegActor {
    /// Its publishing process, if it publishes.
    pub(super) publisher: Option<Process>,
    /// Its playing process, if it plays.
    pub(super) player: Option<Process>,
}

/// What an `ffmpeg` process has done so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counts {
    /// A publisher's output time (µs of media written).
    pub(super) written_us: u64,
    /// A player's decoded audio frames.
    pub(super) audio: u64,
    /// A player's decoded video frames.
    pub(super) video: u64,
}

/// What one process reported: its counts, its last words, its end.
#[derive(Debug, Default)]
struct Report {
    counts: Counts,
    stderr: VecDeque<String>,
    /// The track kinds of a player's `framecrc` output, by stream index.
    kinds: Vec<(usize, bool)>,
}

/// A running `ffmpeg`.
pub(super) struct Process {
    child: Child,
    report: Arc<Mutex<Report>>,
}

impl Process {
    /// Publishes `media` (FLV bytes) to `url` at the file's own pace.
    pub(super) fn publish(url: &str, media: Bytes) -> Result<Process, String> {
        let mut child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostats"])
            .args(["-progress", "pipe:1", "-stats_period", "0.1"])
            .args(["-re", "-f", "flv", "-i", "pipe:0", "-c", "copy", "-f", "flv", url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("ffmpeg: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            // The end of the file ends the publish, as it would for a user.
            tokio::spawn(async move {
                let _ = stdin.write_all(&media).await;
            });
        }
        Ok(Process::watch(child))
    }

    /// Plays `url`, decoding every frame.
    pub(super) fn play(url: &str) -> Result<Process, String> {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostats", "-nostdin"])
            .args(["-i", url, "-f", "framecrc", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("ffmpeg: {e}"))?;
        Ok(Process::watch(child))
    }

    /// Reads the child's standard output and error as they come.
    fn watch(mut child: Child) -> Process {
        let report = Arc::new(Mutex::new(Report::default()));
        if let Some(stdout) = child.stdout.take() {
            let report = report.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    report.lock().unwrap_or_else(|e| e.into_inner()).read(&line);
                }
            });
        }
        if let Some(stderr) = child.stderr.take() {
            let report = report.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut report = report.lock().unwrap_or_else(|e| e.into_inner());
                    if report.stderr.len() == STDERR_LINES {
                        report.stderr.pop_front();
                    }
                    report.stderr.push_back(line);
                }
            });
        }
        Process { child, report }
    }

    /// Its counts so far.
    pub(super) fn counts(&self) -> Counts {
        self.report.lock().unwrap_or_else(|e| e.into_inner()).counts
    }

    /// `None` while it runs; once it has exited, how, with its last words.
    pub(super) fn ended(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok().flatten()?;
        let report = self.report.lock().unwrap_or_else(|e| e.into_inner());
        let words: Vec<&str> = report.stderr.iter().map(String::as_str).collect();
        Some(match words.is_empty() {
            true => format!("ffmpeg exited ({status})"),
            false => format!("ffmpeg exited ({status}): {}", words.join(" | ")),
        })
    }

    /// Stops it as a user's Ctrl-C would: an interrupt (a publisher then
    /// closes its output: FCUnpublish and deleteStream), then a kill if it
    /// lingers past 3 s.
    pub(super) async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status().await;
        }
        if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

impl Report {
    /// One line of standard output: `-progress` keys of a publisher, or a
    /// `framecrc` header or frame of a player.
    fn read(&mut self, line: &str) {
        if let Some(us) = line.strip_prefix("out_time_us=") {
            self.counts.written_us = us.trim().parse().unwrap_or(self.counts.written_us);
        } else if let Some(rest) = line.strip_prefix("#media_type ") {
            // "#media_type 0: video"
            if let Some((index, kind)) = rest.split_once(':') {
                if let Ok(index) = index.trim().parse() {
                    self.kinds.push((index, kind.trim() == "video"));
                }
            }
        } else if !line.starts_with('#') {
            // "0,          0,          0,        1,   115200, 0x5f9c1e4e"
            let index = line.split(',').next().and_then(|i| i.trim().parse::<usize>().ok());
            if let Some(index) = index {
                match self.kinds.iter().find(|(i, _)| *i == index) {
                    Some((_, true)) => self.counts.video += 1,
                    Some((_, false)) => self.counts.audio += 1,
                    None => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_and_framecrc_lines_are_counted() {
        let mut report = Report::default();
        for line in [
            "#tb 0: 1/25",
            "#media_type 0: video",
            "#codec_id 0: rawvideo",
            "#tb 1: 1/44100",
            "#media_type 1: audio",
            "0,          0,          0,        1,   115200, 0x5f9c1e4e",
            "1,          0,          0,     1024,     4096, 0x00000000",
            "1,       1024,       1024,     1024,     4096, 0x00000000",
            "out_time_us=400000",
            "frame=10",
        ] {
            report.read(line);
        }
        assert_eq!(
            report.counts,
            Counts {
                written_us: 400_000,
                audio: 2,
                video: 1
            }
        );
    }
}
