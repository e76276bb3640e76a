//! The container target: a server's image started with testcontainers for
//! the length of a run, on the host's network (the suite talks to
//! 127.0.0.1 only, never to a bridge network), and removed afterwards.
//!
//! ```toml
//! name = "reference-server-container"
//! rtmp = "rtmp://127.0.0.1:19350/live"
//! whep = "http://127.0.0.1:18080/whep/{app}/{stream}"
//! [container]
//! image = "reference-server:local"
//! args = ["--rtmp", "127.0.0.1:19350", "--http", "127.0.0.1:18080"]
//! env = { RUST_LOG = "info" }
//! startup_timeout = "30s"
//! ```
//!
//! The server is ready when its RTMP port accepts a connection. Where no
//! Docker engine answers, starting fails with [`ContainerError::NoEngine`],
//! which test harnesses turn into a skip with that reason.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use testcontainers::core::client::docker_client_instance;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::sync::oneshot;

/// How to start the server's container (the `[container]` table of a target file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// `name[:tag]`, from the local engine or pulled.
    pub image: String,
    /// Arguments after the image's entrypoint.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How long the server may take until its RTMP port accepts connections.
    #[serde(default = "default_startup_timeout", with = "humantime_serde")]
    pub startup_timeout: Duration,
}

fn default_startup_timeout() -> Duration {
    Duration::from_secs(30)
}

impl ContainerSpec {
    /// A spec for `image` with no arguments.
    pub fn new(image: impl Into<String>) -> ContainerSpec {
        ContainerSpec {
            image: image.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            startup_timeout: default_startup_timeout(),
        }
    }

    /// `(name, tag)`; the tag defaults to `latest`. A registry's port is not a tag.
    fn name_and_tag(&self) -> (&str, &str) {
        match self.image.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, tag),
            _ => (self.image.as_str(), "latest"),
        }
    }
}

/// Why a container target could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// Nothing answers at DOCKER_HOST or the default socket.
    #[error("no Docker engine answers ({0}); the container target needs one")]
    NoEngine(String),
    /// The image is neither local nor pullable.
    #[error("image {image} is not in the Docker engine and could not be pulled: {reason}")]
    NoImage {
        /// The image.
        image: String,
        /// The engine's answer.
        reason: String,
    },
    /// The container did not start or never accepted RTMP connections.
    #[error("the container from {image} did not become ready: {reason}")]
    NotReady {
        /// The image.
        image: String,
        /// What happened, with the container's last output.
        reason: String,
    },
}

/// A running container, removed when dropped.
#[derive(Debug)]
pub struct Container {
    id: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Container {
    /// Starts `spec` on the host's network and waits until `ready` (the
    /// RTMP address) accepts a TCP connection. Blocks; safe to call from
    /// inside or outside a tokio runtime (the container lives on a thread
    /// of its own).
    pub fn start(spec: &ContainerSpec, ready: SocketAddr) -> Result<Container, ContainerError> {
        let (started_tx, started_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let spec = spec.clone();
        let thread = std::thread::Builder::new()
            .name("container".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = started_tx.send(Err(ContainerError::NoEngine(format!("no runtime: {e}"))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match start(&spec, ready).await {
                        Ok(container) => {
                            let _ = started_tx.send(Ok(container.id().to_string()));
                            let _ = stop_rx.await;
                            if let Err(error) = container.rm().await {
                                tracing::warn!(%error, "could not remove the container");
                            }
                        }
                        Err(error) => {
                            let _ = started_tx.send(Err(error));
                        }
                    }
                });
            })
            .map_err(|e| ContainerError::NoEngine(format!("no thread: {e}")))?;
        let id = match started_rx.recv() {
            Ok(result) => result?,
            Err(_) => return Err(ContainerError::NoEngine("the container thread ended".into())),
        };
        Ok(Container {
            id,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn start(spec: &ContainerSpec, ready: SocketAddr) -> Result<ContainerAsync<GenericImage>, ContainerError> {
    let docker = docker_client_instance()
        .await
        .map_err(|e| ContainerError::NoEngine(e.to_string()))?;
    docker
        .ping()
        .await
        .map_err(|e| ContainerError::NoEngine(e.to_string()))?;
    let local = docker.inspect_image(&spec.image).await.is_ok();
    let (name, tag) = spec.name_and_tag();
    let mut request = GenericImage::new(name, tag)
        .with_network("host")
        .with_cmd(spec.args.clone())
        .with_startup_timeout(spec.startup_timeout);
    for (key, value) in &spec.env {
        request = request.with_env_var(key, value);
    }
    let container = request.start().await.map_err(|e| {
        if local {
            ContainerError::NotReady {
                image: spec.image.clone(),
                reason: e.to_string(),
            }
        } else {
            ContainerError::NoImage {
                image: spec.image.clone(),
                reason: e.to_string(),
            }
        }
    })?;
    let deadline = tokio::time::Instant::now() + spec.startup_timeout;
    loop {
        if tokio::net::TcpStream::connect(ready).await.is_ok() {
            return Ok(container);
        }
        let running = container.is_running().await.unwrap_or(false);
        if !running || tokio::time::Instant::now() >= deadline {
            let why = if running {
                format!(
                    "nothing accepted connections on {ready} within {:?}",
                    spec.startup_timeout
                )
            } else {
                "it exited".to_string()
            };
            let reason = format!("{why}; its last output:\n{}", last_output(&container).await);
            let _ = container.rm().await;
            return Err(ContainerError::NotReady {
                image: spec.image.clone(),
                reason,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The container's last 20 lines of stdout and stderr.
async fn last_output(container: &ContainerAsync<GenericImage>) -> String {
    let mut text = String::from_utf8_lossy(&container.stdout_to_vec().await.unwrap_or_default()).into_owned();
    text.push_str(&String::from_utf8_lossy(
        &container.stderr_to_vec().await.unwrap_or_default(),
    ));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_split_into_name_and_tag() {
        assert_eq!(ContainerSpec::new("srs").name_and_tag(), ("srs", "latest"));
        assert_eq!(
            ContainerSpec::new("reference-server:local").name_and_tag(),
            ("reference-server", "local")
        );
        assert_eq!(
            ContainerSpec::new("registry:5000/ossrs/srs").name_and_tag(),
            ("registry:5000/ossrs/srs", "latest")
        );
        assert_eq!(
            ContainerSpec::new("registry:5000/ossrs/srs:5").name_and_tag(),
            ("registry:5000/ossrs/srs", "5")
        );
    }

    #[test]
    fn a_container_table_reads_with_defaults() {
        let spec: ContainerSpec = toml::from_str("image = \"srs:5\"\nargs = [\"-c\", \"x.conf\"]\n").unwrap();
        assert_eq!(spec.args, ["-c", "x.conf"]);
        assert_eq!(spec.startup_timeout, Duration::from_secs(30));
        assert!(toml::from_str::<ContainerSpec>("image = \"x\"\nport = 1\n").is_err());
    }
}
