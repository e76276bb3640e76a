//! A vendor's conformance test: start your server, say where it listens,
//! hand it to the suite. Every scenario is a test case; `cargo test -p
//! vendor-suite -- rtmp/netstatus` runs some, UNIMPLEMENTED ones show as
//! ignored. Here "your server" is the reference server, started on its own
//! runtime and reached only through its URLs, like any external server.

use conformance::target::{Capability, Target, TargetSpec};

fn main() {
    let (rtmp, http) = start_my_server();
    let spec = TargetSpec {
        name: "my-server".into(),
        rtmp: Some(format!("rtmp://{rtmp}/live")),
        whep: Some(format!("http://{http}/whep/{{app}}/{{stream}}")),
        whip: Some(format!("http://{http}/whip/{{app}}/{{stream}}")),
        ws: Some(format!("ws://{http}/ws")),
        capabilities: vec![Capability::AppKeys, Capability::Rooms],
        ..TargetSpec::default()
    };
    conformance::harness::main(Target::External(Box::new(spec)));
}

/// Starts the server under test on free ports; returns its RTMP and HTTP addresses.
fn start_my_server() -> (std::net::SocketAddr, std::net::SocketAddr) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        runtime.block_on(async {
            let mut config = reference_server::Config::default();
            config.rtmp.listen = "127.0.0.1:0".parse().expect("an address");
            config.http.listen = "127.0.0.1:0".parse().expect("an address");
            config.webrtc.listen = "127.0.0.1:0".parse().expect("an address");
            let server = reference_server::Server::start(config)
                .await
                .expect("the server starts");
            let _ = tx.send((server.rtmp_addr(), server.http_addr()));
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("the server's addresses")
}
