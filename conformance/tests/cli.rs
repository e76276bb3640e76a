//! The installed `conformance` binary as a vendor meets it: it runs from any
//! directory (the scenarios and fixtures are built in), takes cases of one's
//! own with `--scenarios` and `--fixtures`, gates on `--expect`, and ends
//! quietly when its output pipe closes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn conformance(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the conformance binary runs")
}

/// An empty directory of this test's own, far from the repository.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("conformance-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn it_lists_the_built_in_cases_from_any_directory() {
    let dir = scratch("list");
    let out = conformance(&dir, &["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    let ids = conformance::scenario::embedded().unwrap();
    assert_eq!(listed.lines().count(), ids.len(), "{listed}");
    assert!(listed.contains("rtmp/netstatus/publish-badname"));
}

#[test]
fn cases_of_one_s_own_run_with_their_own_media() {
    let dir = scratch("own");
    std::fs::create_dir_all(dir.join("cases/mine")).unwrap();
    std::fs::create_dir_all(dir.join("media/flv")).unwrap();
    // A fixture of our own: the built-in one under another name.
    let flv = conformance::shipped::builtin("flv/ffmpeg_h264_aac_320x240_440hz.flv").unwrap();
    std::fs::write(dir.join("media/flv/my-camera.flv"), flv).unwrap();
    std::fs::write(
        dir.join("cases/mine/publish-and-play.toml"),
        r#"id = "mine/publish-and-play"
title = "My camera plays"
requirement = "What I publish plays over RTMP."
strictness = "required"

[actors]
camera = "encoder"
viewer = "encoder"

[[step]]
actor = "camera"
action = "publish"
stream = "cam"
media = "flv/my-camera.flv"

[[step]]
actor = "viewer"
action = "play"
stream = "cam"
expect = { statuses = ["NetStream.Play.Start"], rtmp_media = { audio = 10, video = 5 }, within = "8s" }
"#,
    )
    .unwrap();
    let out = conformance(
        &dir,
        &[
            "run",
            "--target",
            "embedded",
            "--scenarios",
            "cases",
            "--fixtures",
            "media",
            "mine/",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("OK            mine/publish-and-play"), "{stdout}");
    assert!(stdout.contains("embedded: 1 cases: 1 OK"), "{stdout}");

    // Without --fixtures the file is nowhere: the case says so.
    let out = conformance(&dir, &["run", "--target", "embedded", "--scenarios", "cases", "mine/"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("no fixture \"flv/my-camera.flv\" is built in"),
        "{stdout}"
    );
}

#[test]
fn expected_results_gate_on_changed_verdicts_only() {
    let dir = scratch("expect");
    let case = "rtmp/connect/amf0";
    let out = conformance(
        &dir,
        &["run", "--target", "embedded", "--write-expect", "expected.json", case],
    );
    assert!(out.status.success(), "{}", text(&out.stdout));
    let out = conformance(
        &dir,
        &["run", "--target", "embedded", "--expect", "expected.json", case],
    );
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("every verdict is the expected one"));

    // A file that expects FAILED sees the OK as a difference.
    let recorded = std::fs::read_to_string(dir.join("expected.json")).unwrap();
    let stale = recorded.replacen("\"OK\"", "\"FAILED\"", 1);
    assert_ne!(recorded, stale);
    std::fs::write(dir.join("stale.json"), stale).unwrap();
    let out = conformance(&dir, &["run", "--target", "embedded", "--expect", "stale.json", case]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("embedded {case}: expected FAILED, got OK")),
        "{stdout}"
    );
}

#[test]
fn a_closed_output_pipe_ends_it_quietly() {
    // A pipe whose read end is closed before the child starts: its first
    // line meets a closed pipe, as under `conformance list | head -0`.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .arg("list")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.stderr.is_empty(), "nothing on stderr: {}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(141), "the status after SIGPIPE, by convention");
}

/// When each run of a `bench --compare` began, by its JSON.
fn bench_starts(dir: &Path, extra: &[&str]) -> Vec<f64> {
    let mut args = vec![
        "bench",
        "--compare",
        "embedded",
        "--players",
        "1",
        "--duration",
        "3s",
        "--json",
        "runs.json",
    ];
    args.extend_from_slice(extra);
    let out = conformance(dir, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let runs: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("runs.json")).unwrap()).unwrap();
    let runs = runs.as_array().expect("a list of runs");
    assert_eq!(runs.len(), 2, "{runs:#?}");
    for run in runs {
        let decoded = &run["steps"][0]["frames_decoded"];
        assert!(decoded.as_u64().is_some_and(|n| n > 0), "{run:#}");
    }
    runs.iter().map(|run| run["started_unix"].as_f64().unwrap()).collect()
}

#[test]
fn compared_targets_are_measured_one_after_the_other_or_together() {
    let dir = scratch("together");
    let starts = bench_starts(&dir, &[]);
    assert!(
        starts[1] - starts[0] >= 3.0,
        "the second after the first's hold: {starts:?}"
    );
    let starts = bench_starts(&dir, &["--together"]);
    assert!((starts[1] - starts[0]).abs() < 1.0, "both at once: {starts:?}");
}
