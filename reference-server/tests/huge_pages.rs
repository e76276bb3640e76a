//! The shipped binary asks for transparent huge pages (its jemalloc options,
//! in `main.rs`), and `_RJEM_MALLOC_CONF` still turns that off. Read from
//! the running process's memory map: a mapping jemalloc advised carries
//! the `hg` flag (`MADV_HUGEPAGE`), whether or not the kernel has found a
//! huge page for it yet.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts the server on free ports and waits until it listens.
fn start(malloc_conf: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reference-server"));
    command
        .args([
            "--rtmp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--webrtc",
            "127.0.0.1:0",
        ])
        .args(["--log", "info"])
        .env_remove("_RJEM_MALLOC_CONF")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(conf) = malloc_conf {
        command.env("_RJEM_MALLOC_CONF", conf);
    }
    let mut child = command.spawn().expect("the reference-server binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let listening = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("WebRTC listening"));
    assert!(listening, "the server said it listens before its output ended");
    child
}

/// How many of the process's mappings are advised for huge pages.
fn advised_mappings(child: &Child) -> usize {
    let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", child.id())).expect("the process's memory map");
    smaps
        .lines()
        .filter(|line| line.starts_with("VmFlags:") && line.split_whitespace().any(|flag| flag == "hg"))
        .count()
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether the kernel gives huge pages at all ("always" or "madvise").
fn kernel_has_huge_pages() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").is_ok_and(|mode| !mode.contains("[never]"))
}

#[test]
fn the_server_asks_for_huge_pages_unless_told_not_to() {
    let server = start(None);
    let advised = advised_mappings(&server);
    stop(server);
    if kernel_has_huge_pages() {
        assert!(advised > 0, "no mapping of the server's is advised for huge pages");
    } else {
        // jemalloc asks for none where the kernel has them off.
        assert_eq!(advised, 0, "mappings advised for huge pages the kernel does not give");
    }

    let server = start(Some("thp:default"));
    let advised = advised_mappings(&server);
    stop(server);
    assert_eq!(
        advised, 0,
        "_RJEM_MALLOC_CONF=thp:default left {advised} mappings advised for huge pages"
    );
}
