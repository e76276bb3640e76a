//! The reference RTMP/WebRTC gateway, as a library you can embed.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use reference_server::{Config, Server};
//! let mut config = Config::default();
//! config.rtmp.listen = "127.0.0.1:0".parse()?; // any free port
//! config.http.listen = "127.0.0.1:0".parse()?;
//! let server = Server::start(config).await?;
//! println!("publish to {}", server.rtmp_url("live"));
//! server.shutdown().await;
//! # Ok(()) }
//! ```

pub mod admission;
pub mod config;
pub mod continuity;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod hooks;
mod http;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod prefetch;
pub mod rooms;
pub mod rtmp;
mod server;
pub mod text;
pub mod transcode;
pub mod warn;
pub mod webrtc;

pub use config::Config;
pub use server::{Context, Server, ServerHandle, StartError};
