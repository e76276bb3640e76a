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
}
