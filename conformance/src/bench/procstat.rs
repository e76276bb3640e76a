//! CPU time and resident memory of a process, from Linux's /proc.

use std::time::Instant;

/// Clock ticks per second in /proc/PID/stat (USER_HZ, 100 on every Linux
/// architecture the suite runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// When it was taken.
    pub at: Instant,
    /// User and system CPU time so far, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
}

/// Reads process `pid`'s CPU time and RSS; `None` if it is gone or /proc
/// cannot be read.
pub fn read(pid: u32) -> Option<Reading> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Reading {
        at: Instant::now(),
        cpu_seconds: cpu_seconds(&stat)?,
        rss_bytes: rss_bytes(&status)?,
    })
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line, in seconds.
/// The command name (field 2) may hold spaces and parentheses: fields are
/// counted after its last `)`.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, index 11 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// `VmRSS` of /proc/PID/status, in bytes.
fn rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_past_a_command_name_with_spaces() {
        let stat = "4242 (tokio (rt) worker) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1000 1 2 3";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(rss_bytes("Name:\tx\nVmRSS:\t   2048 kB\n"), Some(2 * 1024 * 1024));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let reading = read(std::process::id()).unwrap();
        assert!(reading.rss_bytes > 1024 * 1024);
        assert!(reading.cpu_seconds >= 0.0);
    }
}
