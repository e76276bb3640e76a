//! Peer text in the server's own output: names and parameters a client
//! chose go into logs and answers clipped, so that a client that sends a
//! megabyte of name is not echoed a megabyte back, nor logged one.

use std::fmt;

/// How much of a peer's text is shown.
pub const SHOWN: usize = 128;

/// `text` clipped to [`SHOWN`] bytes (at a character boundary), with how
/// long it was when it was longer: `nnnn…(1048576 bytes)`.
#[derive(Debug, Clone, Copy)]
pub struct Clipped<'a>(pub &'a str);

impl fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = prefix(self.0, SHOWN);
        f.write_str(shown)?;
        if shown.len() < self.0.len() {
            write!(f, "…({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// A client's parameters (a stream name's or a connection's query) for a
/// log line: `{k: "v", token: "…"}`, clipped like [`Clipped`], with the
/// value of every `token` hidden so that logs never hold a credential.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a>(pub &'a media::rtmp::url::Params);

impl fmt::Display for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: std::collections::BTreeMap<&str, &str> = self
            .0
            .iter()
            .map(|(key, value)| {
                let value = if key == crate::admission::TOKEN {
                    "…"
                } else {
                    value.as_str()
                };
                (key.as_str(), value)
            })
            .collect();
        Clipped(&format!("{shown:?}")).fmt(f)
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends at a
/// character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_clipped_at_a_character_boundary_with_its_length() {
        assert_eq!(Clipped("cam1").to_string(), "cam1");
        let long = "é".repeat(100); // 200 bytes
        let shown = Clipped(&long).to_string();
        assert_eq!(shown, format!("{}…(200 bytes)", "é".repeat(64)));
        assert_eq!(prefix("aé", 2), "a");
    }

    #[test]
    fn logged_parameters_hide_tokens() {
        let params = media::rtmp::url::split_params("cam?token=s3cret&width=160").params;
        assert_eq!(Params(&params).to_string(), r#"{"token": "…", "width": "160"}"#);
    }
}
