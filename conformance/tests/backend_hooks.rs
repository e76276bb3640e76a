//! The backend hooks (`POST {backend_url}/connect`, `/publishStream`,
//! `/playStream`) against a real HTTP backend run inside the test: what the
//! server sends, how refusals and timeouts reach the client as NetStatus, and
//! that a slow backend holds up only the client it is answering.

use std::time::{Duration, Instant};

use conformance::backend::{Answer, HookCall};
use conformance::client::{ClientProfile, RtmpClient};
use conformance::target::embedded;
use media::amf::Value;
use media::netstatus::{code, Level};
use reference_server::config::AppConfig;
use reference_server::{Config, ServerHandle};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
}

/// The suite's backend on 127.0.0.1:0 with this test's rules: 403 when the
/// body's `name` is "forbidden" or its `login` is "denied", an answer after
/// 10 s when `login` is "slow", after N ms when it is "delay-N", a 302 to
/// `/elsewhere` for `name` "redirected"; else 200.
struct Backend(conformance::backend::Backend);

impl Backend {
    async fn start() -> Backend {
        let backend = conformance::backend::Backend::with_policy(([127, 0, 0, 1], 0).into(), rules)
            .await
            .expect("bind the test backend");
        Backend(backend)
    }

    /// Points application `app` at this backend (defining it if needed).
    fn attach(&self, config: &mut Config, app: &str) {
        config.apps.entry(app.to_string()).or_default().backend_url = Some(self.0.url());
    }

    fn all(&self) -> Vec<HookCall> {
        self.0.calls()
    }

    /// The bodies received on one hook path (e.g. "/hooks/connect"), in order.
    fn bodies(&self, path: &str) -> Vec<serde_json::Value> {
        self.all()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| r.body)
            .collect()
    }

    /// Waits until a request on `path` matching `pred` has arrived.
    async fn wait_for(
        &self,
        path: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
        within: Duration,
    ) -> serde_json::Value {
        match self.0.wait_for(|c| c.path == path && pred(&c.body), within).await {
            Ok(call) => call.body,
            Err(all) => {
                panic!("the backend received no matching {path} request within {within:?}; it received: {all:#?}")
            }
        }
    }
}

fn rules(call: &HookCall) -> Answer {
    if call.field("name") == Some("forbidden") || call.field("login") == Some("denied") {
        return Answer::status(403);
    }
    if call.field("name") == Some("redirected") {
        return Answer {
            location: Some("/elsewhere".into()),
            ..Answer::status(302)
        };
    }
    let delay = match call.field("login") {
        Some("slow") => Duration::from_secs(10),
        Some(login) => login.strip_prefix("delay-").map_or(Duration::ZERO, |ms| {
            Duration::from_millis(ms.parse().expect("delay-<milliseconds>"))
        }),
        None => Duration::ZERO,
    };
    Answer {
        delay,
        ..Answer::allow()
    }
}

/// The Flash application's connect arguments: `{login, appKey}`.
fn login_args(login: &str, app_key: &str) -> Vec<Value> {
    vec![Value::object([
        ("login", Value::from(login)),
        ("appKey", Value::from(app_key)),
    ])]
}

async fn open(server: &ServerHandle, profile: ClientProfile) -> RtmpClient {
    RtmpClient::open(server.rtmp_addr(), profile)
        .await
        .expect("TCP connect and handshake")
}

/// A client connected with success to `path` (e.g. `live?c1=v1`).
async fn connected(server: &ServerHandle, profile: ClientProfile, path: &str, args: Vec<Value>) -> RtmpClient {
    let mut client = open(server, profile).await;
    let status = client
        .connect(&format!("rtmp://{}/{path}", server.rtmp_addr()), args)
        .await
        .unwrap_or_else(|e| panic!("connect to {path}: {e}"));
    assert_eq!(
        status.code,
        code::CONNECT_SUCCESS,
        "connect to {path} should succeed; got {status:?}; wire: {:#?}",
        client.wire_log()
    );
    client
}

#[tokio::test]
async fn hook_bodies_carry_names_parameters_and_session_known_issue_3() {
    logs();
    let backend = Backend::start().await;
    let server = embedded(|c| backend.attach(c, "live")).await.unwrap();

    // nc.connect("rtmp://host/live?c1=v1&c2=v2", {login: "user1", appKey: "live"})
    let mut flash = connected(
        &server,
        ClientProfile::flash_player(),
        "live?c1=v1&c2=v2",
        login_args("user1", "live"),
    )
    .await;
    let clientid = flash
        .connect_answer()
        .and_then(|a| a.args.first())
        .and_then(|info| info.get("clientid"))
        .and_then(Value::as_str)
        .expect("the connect _result carries a clientid")
        .to_string();

    let connects = backend.bodies("/hooks/connect");
    assert_eq!(
        connects.len(),
        1,
        "expected exactly one connect hook after one connect, got {connects:#?}"
    );
    let connect = &connects[0];
    assert_eq!(connect["appKey"], json!("live"), "connect body: {connect:#}");
    let session_id = connect["sessionId"].as_str().unwrap_or_default();
    assert!(!session_id.is_empty(), "connect body has no sessionId: {connect:#}");
    assert_eq!(
        session_id, clientid,
        "the hook's sessionId must be the clientid the client was given"
    );
    assert_eq!(connect["login"], json!("user1"), "connect body: {connect:#}");
    assert_eq!(
        connect["custom"],
        json!({"c1": "v1", "c2": "v2"}),
        "the application's URL parameters belong in custom: {connect:#}"
    );
    assert_eq!(
        connect["connectArgs"]["login"],
        json!("user1"),
        "connectArgs must carry the connect arguments: {connect:#}"
    );
    assert_eq!(
        connect["connectArgs"]["appKey"],
        json!("live"),
        "connectArgs must carry the connect arguments: {connect:#}"
    );
    assert_eq!(
        connect["flashVer"],
        json!("WIN 11,2,202,235"),
        "connect body: {connect:#}"
    );

    // ns.publish("stream1?s1=v1")
    let stream = flash.create_stream().await.unwrap();
    let status = flash.publish(stream, "stream1?s1=v1").await.unwrap();
    assert_eq!(
        (status.code.as_str(), status.level),
        (code::PUBLISH_START, Level::Status),
        "publish allowed by the backend should start; got {status:?}"
    );
    assert_eq!(
        status.details.as_deref(),
        Some("stream1"),
        "Publish.Start details are the name without its query"
    );
    let publishes = backend.bodies("/hooks/publishStream");
    assert_eq!(
        publishes.len(),
        1,
        "expected one publishStream hook, got {publishes:#?}"
    );
    let publish = &publishes[0];
    assert_eq!(publish["name"], json!("stream1"), "publish body: {publish:#}");
    assert_eq!(
        publish["custom"],
        json!({"s1": "v1"}),
        "the stream name's parameters belong in custom: {publish:#}"
    );
    assert_eq!(
        publish["connectionCustom"],
        json!({"c1": "v1", "c2": "v2"}),
        "the connection's parameters belong in connectionCustom: {publish:#}"
    );
    assert_eq!(publish["sessionId"], json!(clientid), "publish body: {publish:#}");
    assert_eq!(publish["appKey"], json!("live"), "publish body: {publish:#}");
    assert_eq!(publish["login"], json!("user1"), "publish body: {publish:#}");
    assert!(
        server.hub().is_live("live", "stream1"),
        "stream1 should be live in application live after Publish.Start"
    );

    // Publish tells no tracks yet; after one Speex frame the stream is audio-only.
    assert_eq!(publish.get("hasAudio"), None, "unknown at publish time: {publish:#}");
    flash
        .send_media(stream, 8, 0, bytes::Bytes::from_static(&[0xB2, 0x1E, 0x00]))
        .await
        .unwrap();
    for _ in 0..100 {
        if server.hub().tracks("live", "stream1") == Some((true, false)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // An encoder plays "stream1?p=1" in the same application.
    let mut player = connected(&server, ClientProfile::encoder(), "live?appKey=live", vec![]).await;
    let ps = player.create_stream().await.unwrap();
    player.play(ps, "stream1?p=1").await.unwrap();
    let start = player.wait_status(ps, code::PLAY_START, WAIT).await;
    assert!(
        start.is_ok(),
        "the backend allowed the play, expected Play.Start; got {start:?}, statuses {:?}",
        player.codes(ps)
    );
    let plays = backend.bodies("/hooks/playStream");
    assert_eq!(plays.len(), 1, "expected one playStream hook, got {plays:#?}");
    let play = &plays[0];
    assert_eq!(play["name"], json!("stream1"), "play body: {play:#}");
    assert_eq!(play["custom"], json!({"p": "1"}), "play body: {play:#}");
    assert_eq!(
        (play["hasAudio"].clone(), play["hasVideo"].clone()),
        (json!(true), json!(false)),
        "a live audio-only stream is announced as such: {play:#}"
    );
    assert_eq!(
        play["connectionCustom"],
        json!({"appKey": "live"}),
        "play body: {play:#}"
    );
    assert_ne!(
        play["sessionId"],
        json!(clientid),
        "the player is another session than the publisher"
    );
    assert_eq!(
        backend.bodies("/hooks/connect").len(),
        2,
        "the player's connect also went to the backend"
    );
    assert!(server.hub().is_live("live", "stream1"));
    assert_eq!(server.metrics().hook_calls.get(), 4);
    assert_eq!(server.metrics().hook_refusals.get(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn refusals_map_to_the_documented_netstatus() {
    logs();
    let backend = Backend::start().await;
    let server = embedded(|c| backend.attach(c, "live")).await.unwrap();
    let url = format!("rtmp://{}/live", server.rtmp_addr());

    // connect refused: Connect.Rejected, then the server closes the socket.
    let mut denied = open(&server, ClientProfile::flash_player()).await;
    let status = denied
        .connect(&url, login_args("denied", "live"))
        .await
        .expect("an answer to connect");
    assert_eq!(
        (status.code.as_str(), status.level),
        (code::CONNECT_REJECTED, Level::Error),
        "a connect the backend answers 403 must be rejected; got {status:?}"
    );
    assert!(
        status.description.contains("backend") && status.description.contains("403"),
        "the rejection should say the backend answered 403; description: {:?}",
        status.description
    );
    assert!(
        denied.wait_closed(WAIT).await,
        "the server did not close the connection within {WAIT:?} after rejecting connect"
    );

    // publish refused: Publish.BadName, and the stream is not live.
    let mut publisher = connected(
        &server,
        ClientProfile::flash_player(),
        "live",
        login_args("user1", "live"),
    )
    .await;
    let s = publisher.create_stream().await.unwrap();
    let status = publisher.publish(s, "forbidden?x=1").await.unwrap();
    assert_eq!(
        (status.code.as_str(), status.level),
        (code::PUBLISH_BAD_NAME, Level::Error),
        "a publish the backend answers 403 must get BadName; got {status:?}"
    );
    assert_eq!(status.details.as_deref(), Some("forbidden"));
    assert!(
        status.description.contains("backend") && status.description.contains("403"),
        "description: {:?}",
        status.description
    );
    assert!(
        !server.hub().is_live("live", "forbidden"),
        "a refused publish must not make the stream live"
    );

    // The same connection may still publish another name.
    let s2 = publisher.create_stream().await.unwrap();
    let status = publisher.publish(s2, "allowed").await.unwrap();
    assert_eq!(status.code, code::PUBLISH_START, "got {status:?}");

    // play refused: Play.Failed.
    let mut player = connected(&server, ClientProfile::encoder(), "live?appKey=live", vec![]).await;
    let p = player.create_stream().await.unwrap();
    let status = player.play(p, "forbidden").await.unwrap();
    assert_eq!(
        (status.code.as_str(), status.level),
        (code::PLAY_FAILED, Level::Error),
        "a play the backend answers 403 must get Play.Failed; got {status:?}"
    );
    assert!(
        status.description.contains("backend") && status.description.contains("403"),
        "description: {:?}",
        status.description
    );
    assert!(
        !player.codes(p).iter().any(|c| c == code::PLAY_START),
        "no Play.Start after a refusal: {:?}",
        player.codes(p)
    );
    assert_eq!(server.metrics().hook_refusals.get(), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn a_slow_backend_delays_only_its_own_client() {
    logs();
    let backend = Backend::start().await;
    let server = embedded(|c| {
        c.hooks.timeout = Duration::from_millis(500);
        backend.attach(c, "live");
    })
    .await
    .unwrap();
    let addr = server.rtmp_addr();
    assert!(
        server.hub().live_streams() == 0 && server.metrics().hook_calls.get() == 0,
        "fresh server"
    );

    // The slow client's connect waits on the backend.
    let mut slow_client = open(&server, ClientProfile::flash_player()).await;
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let status = slow_client
            .connect(&format!("rtmp://{addr}/live"), login_args("slow", "live"))
            .await;
        (status, started.elapsed(), slow_client)
    });
    backend
        .wait_for(
            "/hooks/connect",
            |b| b["login"] == json!("slow"),
            Duration::from_secs(2),
        )
        .await;
    let others_started = Instant::now();

    // Meanwhile others on an application without a backend get everything done.
    let mut publisher = connected(
        &server,
        ClientProfile::flash_player(),
        "flashStreamingApp",
        login_args("user2", "flashStreamingApp"),
    )
    .await;
    let s = publisher.create_stream().await.unwrap();
    let status = publisher.publish(s, "meanwhile").await.unwrap();
    assert_eq!(status.code, code::PUBLISH_START, "got {status:?}");
    let mut player = connected(&server, ClientProfile::encoder(), "anything", vec![]).await;
    let p = player.create_stream().await.unwrap();
    player.play(p, "meanwhile").await.unwrap();
    let start = player.wait_status(p, code::PLAY_START, WAIT).await;
    assert!(start.is_ok(), "expected Play.Start, got {start:?}");
    let others_took = others_started.elapsed();
    assert!(
        !slow.is_finished(),
        "the other clients should finish while the slow connect is still pending on the \
         backend, but the slow connect was answered first (others took {others_took:?})"
    );

    // The slow one is refused when the hook times out.
    let (status, elapsed, mut slow_client) = tokio::time::timeout(WAIT, slow)
        .await
        .expect("the slow client got no answer at all")
        .unwrap();
    let status = status.expect("an answer to the slow connect");
    assert_eq!(
        (status.code.as_str(), status.level),
        (code::CONNECT_REJECTED, Level::Error),
        "a backend that does not answer in time refuses the connect; got {status:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "the slow connect should be rejected about 500 ms after it was sent (hooks.timeout), \
         but took {elapsed:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(400),
        "the slow connect was answered after {elapsed:?}, before the 500 ms hook timeout could pass"
    );
    assert!(
        status.description.contains("did not answer") && status.description.contains("500ms"),
        "the rejection should mention the 500ms timeout; description: {:?}",
        status.description
    );
    assert!(
        slow_client.wait_closed(WAIT).await,
        "the server did not close the connection within {WAIT:?} after the timed-out connect"
    );
    assert!(server.hub().is_live("flashStreamingApp", "meanwhile"));
    assert_eq!(server.metrics().hook_refusals.get(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_backend_rejects_promptly() {
    logs();
    // A port nobody listens on.
    let closed_port = {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.local_addr().unwrap().port()
    };
    let server = embedded(|c| {
        c.apps.insert(
            "unreachable".into(),
            AppConfig {
                backend_url: Some(format!("http://127.0.0.1:{closed_port}/hooks")),
                ..AppConfig::default()
            },
        );
    })
    .await
    .unwrap();
    let mut client = open(&server, ClientProfile::flash_player()).await;
    let started = Instant::now();
    let status = client
        .connect(
            &format!("rtmp://{}/live", server.rtmp_addr()),
            login_args("user1", "unreachable"),
        )
        .await
        .expect("an answer to connect");
    let elapsed = started.elapsed();
    assert_eq!(
        (status.code.as_str(), status.level),
        (code::CONNECT_REJECTED, Level::Error),
        "a backend that refuses TCP connections must reject the connect; got {status:?}"
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "a refused TCP connection to the backend should reject at once, not after the 5 s \
         hook timeout; took {elapsed:?}"
    );
    assert!(
        status.description.contains("backend") && status.description.contains("failed"),
        "the rejection should say the backend call failed; description: {:?}",
        status.description
    );
    assert!(
        client.wait_closed(WAIT).await,
        "the server did not close the connection within {WAIT:?} after rejecting connect"
    );
    assert_eq!(server.metrics().hook_calls.get(), 1);
    assert_eq!(server.metrics().hook_refusals.get(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn no_backend_configured_makes_no_requests() {
    logs();
    let backend = Backend::start().await; // running, but configured nowhere
    let server = embedded(|_| {}).await.unwrap();
    let mut publisher = connected(
        &server,
        ClientProfile::flash_player(),
        "live?c1=v1",
        login_args("denied", "live"),
    )
    .await;
    let s = publisher.create_stream().await.unwrap();
    let status = publisher.publish(s, "forbidden").await.unwrap();
    assert_eq!(
        status.code,
        code::PUBLISH_START,
        "without a backend nothing is refused; got {status:?}"
    );
    let mut player = connected(&server, ClientProfile::encoder(), "live?appKey=live", vec![]).await;
    let p = player.create_stream().await.unwrap();
    player.play(p, "forbidden").await.unwrap();
    let start = player.wait_status(p, code::PLAY_START, WAIT).await;
    assert!(start.is_ok(), "expected Play.Start, got {start:?}");
    assert_eq!(
        server.metrics().hook_calls.get(),
        0,
        "no application has a backend_url, yet hooks were called"
    );
    assert!(
        backend.all().is_empty(),
        "the backend received requests: {:#?}",
        backend.all()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_redirect_from_the_backend_refuses_like_any_non_2xx() {
    logs();
    let backend = Backend::start().await;
    let server = embedded(|c| backend.attach(c, "live")).await.unwrap();
    let mut publisher = connected(
        &server,
        ClientProfile::flash_player(),
        "live",
        login_args("user1", "live"),
    )
    .await;
    let s = publisher.create_stream().await.unwrap();
    let status = publisher.publish(s, "redirected").await.unwrap();
    assert_eq!(
        (status.code.as_str(), status.level),
        (code::PUBLISH_BAD_NAME, Level::Error),
        "only a 2xx answer allows (docs/backend-hooks.md); the backend answered 302, yet the \
         publish got {status:?}; backend requests: {:#?}",
        backend.all()
    );
    assert!(
        status.description.contains("302"),
        "the refusal should name the 302; description: {:?}",
        status.description
    );
    assert!(
        backend.bodies("/elsewhere").is_empty(),
        "the server followed the backend's redirect"
    );
    assert!(!server.hub().is_live("live", "redirected"));
    server.shutdown().await;
}

#[tokio::test]
async fn time_spent_waiting_for_the_backend_is_not_client_idleness() {
    logs();
    let backend = Backend::start().await;
    let server = embedded(|c| {
        c.rtmp.idle_timeout = Duration::from_secs(1);
        backend.attach(c, "live");
    })
    .await
    .unwrap();
    // The backend takes 1.5 s to allow the connect: longer than the idle timeout.
    let mut client = connected(
        &server,
        ClientProfile::flash_player(),
        "live",
        login_args("delay-1500", "live"),
    )
    .await;
    // The client answered at once; the server must not call it idle now.
    let s = client.create_stream().await;
    assert!(
        s.is_ok(),
        "the client sent createStream right after its slow connect was accepted, but got \
         {s:?}; the server counted its own wait on the backend as client idleness; wire: {:#?}",
        client.wire_log()
    );
    let status = client.publish(s.unwrap(), "after-slow-connect").await.unwrap();
    assert_eq!(status.code, code::PUBLISH_START, "got {status:?}");
    // The publish hook took 1.5 s too (the body carries the same login): still not idle.
    let again = client.create_stream().await;
    assert!(
        again.is_ok(),
        "createStream right after a publish that waited 1.5 s on the backend got {again:?}"
    );
    assert_eq!(server.metrics().rtmp_protocol_errors.get(), 0);
    server.shutdown().await;
}
