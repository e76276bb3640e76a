//! The servers the suite runs against. For now the embedded target: the
//! reference server started in-process on ephemeral ports.

use reference_server::{Config, Server, ServerHandle};

/// Starts the reference server on 127.0.0.1 with ephemeral ports, after
/// `adjust` has changed the default configuration.
pub async fn embedded(adjust: impl FnOnce(&mut Config)) -> Result<ServerHandle, reference_server::StartError> {
    let mut config = Config::default();
    config.rtmp.listen = ([127, 0, 0, 1], 0).into();
    config.http.listen = ([127, 0, 0, 1], 0).into();
    config.webrtc.listen = ([127, 0, 0, 1], 0).into();
    adjust(&mut config);
    Server::start(config).await
}
