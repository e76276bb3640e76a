//! What a replay found: a verdict per captured client command, and the wire
//! log of the replay. The comparison rules are in the [module docs](super).

use std::fmt;

use media::netstatus::NetStatus;
use serde::Serialize;

use super::log::LogOrder;

/// A NetStatus as compared: its code and level, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// E.g. `NetStream.Play.StreamNotFound`.
    pub code: String,
    /// `status`, `warning` or `error`.
    pub level: String,
}

impl From<&NetStatus> for Status {
    fn from(status: &NetStatus) -> Self {
        Status {
            code: status.code.clone(),
            level: status.level.as_str().to_string(),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code, self.level)
    }
}

/// The `_result` or `_error` carrying a command's transaction id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResultAnswer {
    /// `_result` or `_error`.
    pub name: String,
    /// The NetStatus it carried (connect's answer does; createStream's does not).
    pub status: Option<Status>,
}

impl fmt::Display for ResultAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(status) = &self.status {
            write!(f, " {status}")?;
        }
        Ok(())
    }
}

/// A server's answer to a command, as far as it is compared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// The `_result`/`_error` with the command's transaction id.
    pub result: Option<ResultAnswer>,
    /// The `onStatus` codes attributed to the command, in order.
    pub statuses: Vec<Status>,
}

impl Answer {
    /// Whether there is nothing at all.
    pub fn is_empty(&self) -> bool {
        self.result.is_none() && self.statuses.is_empty()
    }
}

/// `_result NetConnection.Connect.Success (status)`,
/// `onStatus NetStream.Play.Reset (status), NetStream.Play.Start (status)`, or `no answer`.
impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no answer");
        }
        if let Some(result) = &self.result {
            write!(f, "{result}")?;
            if !self.statuses.is_empty() {
                f.write_str("; ")?;
            }
        }
        if !self.statuses.is_empty() {
            f.write_str("onStatus ")?;
            let codes: Vec<String> = self.statuses.iter().map(Status::to_string).collect();
            f.write_str(&codes.join(", "))?;
        }
        Ok(())
    }
}

/// The verdict on one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The target answered as the captured server did (or the capture holds
    /// no answer to compare with).
    Match,
    /// The target answered differently.
    Differs {
        /// What the captured server said.
        expected: Answer,
        /// What the target said.
        actual: Answer,
    },
    /// The captured server answered; the target said nothing in time.
    Missing {
        /// What the captured server said.
        expected: Answer,
    },
    /// The command was never sent: the connection had ended.
    NotSent {
        /// Why.
        reason: String,
    },
}

impl Verdict {
    /// A short word: `match`, `DIFFERS`, `MISSING`, `NOT SENT`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::Differs { .. } => "DIFFERS",
            Verdict::Missing { .. } => "MISSING",
            Verdict::NotSent { .. } => "NOT SENT",
        }
    }
}

/// One captured client command and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandReport {
    /// Its position in the captured message log.
    pub index: usize,
    /// The command name.
    pub name: String,
    /// Its transaction id (kept as captured in the replay).
    pub transaction_id: f64,
    /// Its message stream id in the capture.
    pub stream_id: u32,
    /// The stream id it was sent with (after mapping), if sent.
    pub replayed_stream_id: Option<u32>,
    /// The captured command as a log line.
    pub captured: String,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Differences that do not count (server-specific answers, answers the
    /// capture lacks) and other remarks.
    pub notes: Vec<String>,
}

/// How many messages the replay sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SentCounts {
    /// Commands.
    pub commands: usize,
    /// Audio, video and aggregate messages.
    pub media: usize,
    /// Data messages.
    pub data: usize,
    /// Protocol and user control messages (the captured ones and the
    /// replay's own acknowledgements and ping responses).
    pub control: usize,
    /// Captured client messages not replayed (acknowledgements, ping
    /// responses, aborts, answers to the captured server's calls).
    pub skipped: usize,
}

/// The outcome of replaying one captured session against a target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    /// The capture replayed (a path, or two paths joined by ` + `).
    pub source: String,
    /// Which RTMP connection of the capture (0-based) and how many it holds.
    pub connection: usize,
    /// RTMP connections in the capture.
    pub connections: usize,
    /// How the captured log was ordered.
    pub order: LogOrder,
    /// The tcUrl the replay connected with.
    pub target: String,
    /// The handshake sent (`simple` or `flash-digest`).
    pub handshake: String,
    /// A verdict per captured client command, in order.
    pub commands: Vec<CommandReport>,
    /// Captured stream ids and the target's, as createStream mapped them.
    pub stream_ids: Vec<(u32, u32)>,
    /// What was sent.
    pub sent: SentCounts,
    /// Messages received from the target.
    pub received: usize,
    /// Whether the target closed the connection before the replay ended.
    pub closed_by_target: bool,
    /// How long the replay took, in milliseconds.
    pub duration_ms: u64,
    /// Every message of the replay, both directions, one line each (same
    /// format as the captured log).
    pub wire_log: Vec<String>,
}

impl ReplayReport {
    /// Whether every command matched.
    pub fn is_match(&self) -> bool {
        self.commands.iter().all(|c| c.verdict == Verdict::Match)
    }

    /// The commands whose verdict is not [`Verdict::Match`].
    pub fn mismatches(&self) -> impl Iterator<Item = &CommandReport> {
        self.commands.iter().filter(|c| c.verdict != Verdict::Match)
    }

    /// The report of the first command with this name.
    pub fn command(&self, name: &str) -> Option<&CommandReport> {
        self.commands.iter().find(|c| c.name == name)
    }
}

/// A summary: the verdict, counts, and `Expected: … Actual: …` for each
/// command that did not match.
impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |word: &str| self.commands.iter().filter(|c| c.verdict.word() == word).count();
        writeln!(
            f,
            "replay of {} (connection {} of {}) against {}: {}",
            self.source,
            self.connection + 1,
            self.connections,
            self.target,
            if self.is_match() { "MATCH" } else { "DIFFERS" }
        )?;
        writeln!(
            f,
            "  {} commands: {} match, {} differ, {} missing, {} not sent; {} media messages sent; \
             {} messages received; {} ms{}",
            self.commands.len(),
            count("match"),
            count("DIFFERS"),
            count("MISSING"),
            count("NOT SENT"),
            self.sent.media,
            self.received,
            self.duration_ms,
            if self.closed_by_target {
                "; the target closed the connection"
            } else {
                ""
            }
        )?;
        for command in &self.commands {
            write!(
                f,
                "  #{} {}: {}",
                command.index,
                command.captured,
                command.verdict.word()
            )?;
            match &command.verdict {
                Verdict::Match => {}
                Verdict::Differs { expected, actual } => {
                    write!(f, "\n      Expected: {expected}\n      Actual:   {actual}")?
                }
                Verdict::Missing { expected } => write!(f, "\n      Expected: {expected}\n      Actual:   no answer")?,
                Verdict::NotSent { reason } => write!(f, " ({reason})")?,
            }
            writeln!(f)?;
            for note in &command.notes {
                writeln!(f, "      note: {note}")?;
            }
        }
        Ok(())
    }
}
