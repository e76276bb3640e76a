//! The RTMP side of the server: a sans-IO session per connection and the task
//! that drives it.

pub mod connection;
pub mod enhanced;
pub mod fanout;
pub mod session;
