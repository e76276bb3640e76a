//! The reference server as a **container target**: its image (built by
//! `bash docker/import-reference-server`) started with testcontainers on the
//! host's network, the scenarios of [`AREAS`] run against it (every one with
//! `CONFORMANCE_CONTAINER_ALL=1`), the container removed.
//!
//! Where no Docker engine answers or the image is missing, every case is
//! skipped with the reason; CI sets `CONFORMANCE_REQUIRE_DOCKER=1`, which
//! makes that a failure. `CONFORMANCE_CONTAINER_IMAGE` names another image
//! of the reference server.

use std::net::{SocketAddr, TcpListener, UdpSocket};

use conformance::target::container::ContainerSpec;
use conformance::target::reference_server_spec;

fn main() {
    let image = std::env::var("CONFORMANCE_CONTAINER_IMAGE").unwrap_or_else(|_| "reference-server:local".into());
    let (rtmp, http, webrtc) = (free_tcp(), free_tcp(), free_udp());
    let mut spec = reference_server_spec("reference-server-container", rtmp, http);
    let args = [("--rtmp", rtmp), ("--http", http), ("--webrtc", webrtc)];
    spec.container = Some(ContainerSpec {
        args: args
            .iter()
            .flat_map(|(flag, addr)| [flag.to_string(), addr.to_string()])
            .collect(),
        ..ContainerSpec::new(image)
    });
    conformance::harness::main_container(spec, AREAS);
}

/// The areas run against the image: every protocol it serves (RTMP, WHEP,
/// WHIP, the WebSocket channel, rooms, Enhanced RTMP to RTMP and WebRTC
/// players). The image runs the same binary that `scenarios.rs` runs every
/// case against in-process, so the whole suite once more would only repeat it.
const AREAS: &[&str] = &[
    "rtmp/connect/",
    "rtmp/netstatus/",
    "webrtc/whep/",
    "webrtc/whip/",
    "webrtc/ws/",
    "rooms/",
    "ertmp/connect/",
    "ertmp/webrtc/",
];

/// A port nothing listens on now, for the container to take.
fn free_tcp() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free TCP port");
    listener.local_addr().expect("its address")
}

fn free_udp() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a free UDP port");
    socket.local_addr().expect("its address")
}
