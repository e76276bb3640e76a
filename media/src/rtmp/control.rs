//! The protocol-control duties every RTMP endpoint has, whatever its role
//! (the server's session, the suite's client, the replayer), sans-IO:
//!
//! - acknowledge the bytes received once per the window the peer announced
//!   with Window Acknowledgement Size (message type 5): an Acknowledgement
//!   (type 3) carrying the running total of bytes received, modulo 2^32;
//! - answer a user control Ping Request (event 6) with a Ping Response
//!   (event 7) carrying the same timestamp.
//!
//! The caller feeds what it received and sends what comes back; when and
//! how it sends is its own affair.

use super::message::{Message, UserControl};

/// One endpoint's control duties towards its peer.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// The peer's Window Acknowledgement Size; 0 until it announces one.
    window: u32,
    /// The byte count last acknowledged.
    acked: u64,
}

impl Control {
    /// A message from the peer: takes note of a Window Acknowledgement
    /// Size, and returns the answer a Ping Request needs.
    pub fn on_message(&mut self, message: &Message) -> Option<Message> {
        match message {
            Message::WindowAckSize(size) => {
                self.window = *size;
                None
            }
            Message::UserControl(UserControl::PingRequest(timestamp)) => {
                Some(Message::UserControl(UserControl::PingResponse(*timestamp)))
            }
            _ => None,
        }
    }

    /// The Acknowledgement due now that `received` bytes have come in (the
    /// running total since the handshake ended), if a window has filled
    /// since the last one.
    pub fn acknowledgement(&mut self, received: u64) -> Option<Message> {
        if self.window == 0 || received - self.acked < u64::from(self.window) {
            return None;
        }
        self.acked = received;
        // The sequence number is the running total, modulo 2^32: it wraps.
        Some(Message::Acknowledgement(received as u32))
    }

    /// How many more bytes may come in before the next Acknowledgement is
    /// due, given `received` so far; `None` before the peer announced a window.
    pub fn until_acknowledgement(&self, received: u64) -> Option<u64> {
        (self.window != 0).then(|| u64::from(self.window).saturating_sub(received - self.acked))
    }

    /// The peer's window, 0 before it announced one.
    pub fn window(&self) -> u32 {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_acknowledged_once_per_window_with_the_running_total() {
        let mut control = Control::default();
        assert_eq!(control.acknowledgement(10_000), None, "no window announced");
        assert_eq!(control.on_message(&Message::WindowAckSize(2500)), None);
        assert_eq!(control.window(), 2500);
        assert_eq!(control.acknowledgement(10_000), Some(Message::Acknowledgement(10_000)));
        assert_eq!(control.acknowledgement(12_499), None);
        assert_eq!(control.acknowledgement(12_500), Some(Message::Acknowledgement(12_500)));
        // Past 4 GiB the sequence number wraps.
        let total = (1u64 << 32) + 7;
        assert_eq!(control.acknowledgement(total), Some(Message::Acknowledgement(7)));
    }

    #[test]
    fn a_ping_request_is_answered_with_its_timestamp() {
        let mut control = Control::default();
        let ping = Message::UserControl(UserControl::PingRequest(123_456));
        assert_eq!(
            control.on_message(&ping),
            Some(Message::UserControl(UserControl::PingResponse(123_456)))
        );
        assert_eq!(control.on_message(&Message::SetChunkSize(4096)), None);
    }
}
