//! The checks can fail: scenarios run against a deliberately broken RTMP
//! server (it completes the handshake and answers connect and createStream,
//! but never answers publish) conclude FAILED with the right message, while
//! what it does right is OK and what it lacks is UNIMPLEMENTED.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use std::sync::Arc;

use conformance::scenario::{embedded, run_case, run_series, RunOptions};
use conformance::target::{Target, TargetSpec};
use conformance::verdict::Verdict;
use media::amf::Value;
use media::netstatus::{code, Level, NetStatus};
use media::rtmp::{ChunkDecoder, ChunkEncoder, ChunkLimits, Command, Message, ObjectEncoding, RawMessage, UserControl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "support/caught.rs"]
mod caught;

/// How a broken server behaves: it answers connect and createStream, and
/// ignores everything it is not told to answer.
#[derive(Debug, Clone, Copy, Default)]
struct Behaviour {
    /// Also answers publish (Publish.Start) and play (Play.Start, without
    /// the Play.Reset FMS sends first), and forwards no media.
    statuses: bool,
    /// Its Connect.Success has no `level`.
    no_level: bool,
    /// It refuses a connect with arguments after the command object.
    refuses_connect_arguments: bool,
    /// Its handshake goes wrong this way.
    handshake: Option<HandshakeFault>,
    /// It reads play's start in seconds only: a start other than -2 or -1
    /// asks for a recording, which it does not have (StreamNotFound).
    start_in_seconds: bool,
    /// It forwards a publisher's audio and video to its players (live
    /// only: a late joiner gets no sequence header), with this bug.
    forwards: Option<ForwardingBug>,
    /// It tells every player the stream is recorded (User Control
    /// StreamIsRecorded) before its Play.Start, live streams too.
    marks_recorded: bool,
}

/// What a broken server that forwards media gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ForwardingBug {
    /// It forwards only messages stamped at or after the newest it
    /// forwarded, compared as plain integers: past the 32-bit wrap, nothing
    /// more.
    NewerOnly,
    /// It takes an AVC end of sequence for the end of the publisher's
    /// video, and forwards no video after it.
    VideoEndsAtEndOfSequence,
    /// It takes a player's SetBufferLength once media flows for a pause,
    /// and forwards it nothing more.
    PausesAtSetBufferLength,
}

/// How a broken server's handshake goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandshakeFault {
    /// It looks for a client's digest where Flash Player puts it (offset
    /// bytes at 772) only, and answers any other C1 with the simple handshake.
    DigestAt772Only,
    /// Its simple handshake's S2 is random bytes, not an echo of C1.
    RandomS2,
    /// It takes C0C1 from one read, and closes the connection when that
    /// read brought fewer than 1537 bytes.
    OneRead,
}

impl Behaviour {
    /// The behaviour [`caught::BROKEN`] names.
    fn named(name: &str) -> Behaviour {
        match name {
            "never answers publish" => Behaviour::default(),
            "forwards no media" => Behaviour {
                statuses: true,
                ..Behaviour::default()
            },
            "connect without level" => Behaviour {
                no_level: true,
                ..Behaviour::default()
            },
            "refuses connect arguments" => Behaviour {
                refuses_connect_arguments: true,
                ..Behaviour::default()
            },
            "finds digests at 772 only" => Behaviour {
                handshake: Some(HandshakeFault::DigestAt772Only),
                ..Behaviour::default()
            },
            "answers with a random S2" => Behaviour {
                handshake: Some(HandshakeFault::RandomS2),
                ..Behaviour::default()
            },
            "takes start -1000 for a recording" => Behaviour {
                statuses: true,
                start_in_seconds: true,
                ..Behaviour::default()
            },
            "reads C0C1 in one read" => Behaviour {
                handshake: Some(HandshakeFault::OneRead),
                ..Behaviour::default()
            },
            "forwards media until its timestamps wrap" => Behaviour {
                statuses: true,
                forwards: Some(ForwardingBug::NewerOnly),
                ..Behaviour::default()
            },
            "stops forwarding at a SetBufferLength once media flows" => Behaviour {
                statuses: true,
                forwards: Some(ForwardingBug::PausesAtSetBufferLength),
                ..Behaviour::default()
            },
            "tells players of live streams they are recorded" => Behaviour {
                statuses: true,
                marks_recorded: true,
                ..Behaviour::default()
            },
            "forwards no video after an AVC end of sequence" => Behaviour {
                statuses: true,
                forwards: Some(ForwardingBug::VideoEndsAtEndOfSequence),
                ..Behaviour::default()
            },
            other => panic!("no broken server {other:?}"),
        }
    }
}

/// A server that answers connect and createStream, and ignores everything else.
async fn broken_server() -> SocketAddr {
    rtmp_server(Behaviour::default()).await
}

/// A server that behaves as `behaviour` says.
async fn rtmp_server(behaviour: Behaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = behaviour.forwards.map(|_| tokio::sync::broadcast::channel(1024).0);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket, behaviour, None, Duration::ZERO, relay.clone()));
        }
    });
    addr
}

/// [`broken_server`], but the whole server dies (stops listening, as
/// node-media-server's process exits) when a connection sends a message of
/// the unknown type 0x30; it listens again `revive_after` later, if given
/// (as a supervisor would restart it).
async fn mortal_server(revive_after: Option<Duration>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut listener = listener;
        loop {
            let death = Arc::new(tokio::sync::Notify::new());
            loop {
                tokio::select! {
                    Ok((socket, _)) = listener.accept() => {
                        tokio::spawn(serve(socket, Behaviour::default(), Some(death.clone()), Duration::ZERO, None));
                    }
                    _ = death.notified() => break,
                }
            }
            drop(listener);
            let Some(after) = revive_after else { return };
            tokio::time::sleep(after).await;
            listener = TcpListener::bind(addr).await.unwrap();
        }
    });
    addr
}

/// Where a server that forwards media passes it from its publishers to its
/// players.
type Relay = tokio::sync::broadcast::Sender<RawMessage>;

/// Serves one connection as the servers above say; bytes that are not an
/// RTMP handshake are read on for `linger` before the connection closes.
async fn serve(
    mut socket: TcpStream,
    behaviour: Behaviour,
    death: Option<Arc<tokio::sync::Notify>>,
    linger: Duration,
    relay: Option<Relay>,
) -> std::io::Result<()> {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    // rml_rtmp's server handshake: simple, or with the digests Flash checks.
    let mut handshake = Handshake::new(PeerType::Server);
    let mut decoder = ChunkDecoder::new(ChunkLimits::default());
    let mut buf = vec![0u8; 64 * 1024];
    let mut first = match behaviour.handshake {
        None => None,
        Some(fault) => match faulty_handshake(&mut socket, fault).await? {
            Shaken::Closed => return Ok(()),
            Shaken::Done => Some(None),
            Shaken::Go(c0c1) => Some(Some(c0c1)),
        },
    };
    loop {
        let bytes = match first.take() {
            Some(None) => break,
            Some(Some(c0c1)) => c0c1,
            None => {
                let n = socket.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                buf[..n].to_vec()
            }
        };
        match handshake.process_bytes(&bytes) {
            Ok(HandshakeProcessResult::InProgress { response_bytes }) => socket.write_all(&response_bytes).await?,
            Ok(HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            }) => {
                socket.write_all(&response_bytes).await?;
                decoder.push(&remaining_bytes);
                break;
            }
            Err(_) => {
                let _ = tokio::time::timeout(linger, async {
                    while socket.read(&mut buf).await? > 0 {}
                    Ok::<_, std::io::Error>(())
                })
                .await;
                return Ok(());
            }
        }
    }
    let mut encoder = ChunkEncoder::new();
    // A player's media from the relay; a publisher's newest timestamp.
    let mut playing: Option<tokio::sync::broadcast::Receiver<RawMessage>> = None;
    let mut newest: Option<u32> = None;
    let mut video_ended = false;
    let mut media_flows = false;
    loop {
        while let Ok(Some(raw)) = decoder.next_message() {
            let buffer_length = matches!(
                Message::decode(raw.type_id, raw.payload.clone()),
                Ok(Message::UserControl(UserControl::SetBufferLength { .. }))
            );
            if buffer_length && media_flows && behaviour.forwards == Some(ForwardingBug::PausesAtSetBufferLength) {
                playing = None;
                continue;
            }
            if let (0x30, Some(death)) = (raw.type_id, &death) {
                death.notify_one();
                return Ok(());
            }
            if let (8 | 9, Some(relay)) = (raw.type_id, &relay) {
                let forward = match behaviour.forwards {
                    // The bug: a plain comparison, where serial-number
                    // arithmetic is needed.
                    Some(ForwardingBug::NewerOnly) => newest.is_none_or(|newest| raw.timestamp >= newest),
                    _ => {
                        video_ended |= raw.type_id == 9 && raw.payload.starts_with(&[0x17, 0x02]);
                        raw.type_id == 8 || !video_ended
                    }
                };
                if forward {
                    newest = Some(raw.timestamp);
                    let _ = relay.send(raw);
                }
                continue;
            }
            if let (Ok(Message::Command(command)), Some(relay)) =
                (Message::decode(raw.type_id, raw.payload.clone()), &relay)
            {
                if command.name == "play" {
                    playing = Some(relay.subscribe());
                }
            }
            answer(&mut socket, &mut encoder, raw, behaviour).await?;
        }
        let forwarded = async {
            match playing.as_mut() {
                Some(media) => media.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = socket.read(&mut buf) => {
                let n = read?;
                if n == 0 {
                    return Ok(());
                }
                decoder.push(&buf[..n]);
            }
            Ok(mut message) = forwarded => {
                media_flows = true;
                message.csid = if message.type_id == 8 { 4 } else { 6 };
                message.stream_id = 1;
                let mut out = BytesMut::new();
                encoder.encode(&message, &mut out);
                socket.write_all(&out).await?;
            }
        }
    }
}

/// Where a [`faulty_handshake`] left the connection.
enum Shaken {
    /// The server closed it.
    Closed,
    /// The handshake is over.
    Done,
    /// C0C1, to be answered by the usual handshake.
    Go(Vec<u8>),
}

/// Reads C0C1 and goes wrong as `fault` says.
async fn faulty_handshake(socket: &mut TcpStream, fault: HandshakeFault) -> std::io::Result<Shaken> {
    use conformance::handshake::{verify_client_c1, DigestScheme, HANDSHAKE_SIZE};
    let mut c0c1 = vec![0u8; 1 + HANDSHAKE_SIZE];
    if fault == HandshakeFault::OneRead {
        let n = socket.read(&mut c0c1).await?;
        return Ok(if n < c0c1.len() {
            Shaken::Closed
        } else {
            Shaken::Go(c0c1)
        });
    }
    socket.read_exact(&mut c0c1).await?;
    let c1: [u8; HANDSHAKE_SIZE] = c0c1[1..].try_into().unwrap();
    let scheme = verify_client_c1(&c1).map(|(scheme, _)| scheme);
    let simple = match fault {
        HandshakeFault::DigestAt772Only => scheme != Some(DigestScheme::Scheme1),
        _ => scheme.is_none(),
    };
    if !simple {
        return Ok(Shaken::Go(c0c1));
    }
    // S0, then an S1 of time 0, version 0 and random bytes, then S2.
    let mut reply = vec![3u8];
    let mut s1 = [0u8; HANDSHAKE_SIZE];
    rand::Rng::fill(&mut rand::thread_rng(), &mut s1[8..]);
    reply.extend_from_slice(&s1);
    match fault {
        HandshakeFault::RandomS2 => {
            let mut s2 = [0u8; HANDSHAKE_SIZE];
            rand::Rng::fill(&mut rand::thread_rng(), &mut s2[..]);
            reply.extend_from_slice(&s2);
        }
        _ => reply.extend_from_slice(&c1),
    }
    socket.write_all(&reply).await?;
    let mut c2 = [0u8; HANDSHAKE_SIZE];
    socket.read_exact(&mut c2).await?;
    Ok(Shaken::Done)
}

/// Answers one message as [`rtmp_server`] says.
async fn answer(
    socket: &mut TcpStream,
    encoder: &mut ChunkEncoder,
    raw: RawMessage,
    behaviour: Behaviour,
) -> std::io::Result<()> {
    let Ok(Message::Command(command)) = Message::decode(raw.type_id, raw.payload) else {
        return Ok(());
    };
    let status = |code| {
        (
            "onStatus",
            0.0,
            vec![NetStatus::new(Level::Status, code, "ok").to_value()],
        )
    };
    let (name, transaction_id, args) = match command.name.as_str() {
        "connect" if behaviour.refuses_connect_arguments && !command.args.is_empty() => (
            "_error",
            command.transaction_id,
            vec![NetStatus::new(Level::Error, code::CONNECT_REJECTED, "no arguments").to_value()],
        ),
        "connect" => {
            let mut info = NetStatus::new(Level::Status, code::CONNECT_SUCCESS, "ok").to_value();
            if let (true, Value::Object { properties, .. }) = (behaviour.no_level, &mut info) {
                properties.retain(|(key, _)| key != "level");
            }
            ("_result", command.transaction_id, vec![info])
        }
        "createStream" => ("_result", command.transaction_id, vec![Value::Number(1.0)]),
        "publish" if behaviour.statuses => status(code::PUBLISH_START),
        "play"
            if behaviour.start_in_seconds
                && !matches!(command.args.get(1).and_then(Value::as_f64), None | Some(-2.0 | -1.0)) =>
        {
            let info = NetStatus::new(Level::Error, code::PLAY_STREAM_NOT_FOUND, "no such recording");
            ("onStatus", 0.0, vec![info.to_value()])
        }
        "play" if behaviour.statuses => {
            if behaviour.marks_recorded {
                let recorded = Message::UserControl(UserControl::StreamIsRecorded(raw.stream_id));
                let (type_id, payload) = recorded.encode();
                let mut out = BytesMut::new();
                encoder.encode(
                    &RawMessage {
                        csid: 2,
                        timestamp: 0,
                        type_id,
                        stream_id: 0,
                        payload,
                    },
                    &mut out,
                );
                socket.write_all(&out).await?;
            }
            status(code::PLAY_START)
        }
        _ => return Ok(()), // never answered
    };
    let reply = Message::Command(Command {
        encoding: ObjectEncoding::Amf0,
        name: name.into(),
        transaction_id,
        command_object: Value::Null,
        args,
    });
    let (type_id, payload) = reply.encode();
    let mut out = BytesMut::new();
    encoder.encode(
        &RawMessage {
            csid: 3,
            timestamp: 0,
            type_id,
            stream_id: if name == "onStatus" { raw.stream_id } else { 0 },
            payload,
        },
        &mut out,
    );
    socket.write_all(&out).await
}

/// The broken RTMP server as a target, short step limits, and a case by id.
async fn broken_target() -> (Target, RunOptions) {
    let addr = broken_server().await;
    let target = Target::External(Box::new(TargetSpec {
        name: "broken".into(),
        rtmp: Some(format!("rtmp://{addr}/live")),
        ..TargetSpec::default()
    }));
    let options = quick();
    (target, options)
}

fn case(id: &str) -> conformance::scenario::Scenario {
    let scenarios = embedded().unwrap();
    scenarios.into_iter().find(|s| s.id == id).unwrap()
}

/// Every case [`caught::BROKEN`] lists misses against its broken server:
/// the claims of the scenarios' `seen_failing_on = ["broken target"]`.
#[tokio::test]
async fn each_listed_case_misses_against_its_broken_server() {
    // Each case has servers of its own, so they all run at once.
    let runs = caught::BROKEN.iter().map(|(id, name)| async move {
        if let Some(result) = against_token_server(id, name).await {
            return (id, name, result);
        }
        // A broken WHIP/WHEP server comes with an RTMP server that takes
        // publishers, for the WHEP cases that publish first.
        let mut ws = None;
        let (addr, http) = match (*name, WhipBehaviour::named(name)) {
            (_, Some(whip)) => (
                rtmp_server(Behaviour::named("forwards no media")).await,
                Some(whip_server(whip).await),
            ),
            ("dies on an unknown message type", None) => (mortal_server(None).await, None),
            ("never reads its WebSocket", None) => {
                ws = Some(deaf_websocket_server().await);
                (rtmp_server(Behaviour::named("forwards no media")).await, None)
            }
            (name, None) => (rtmp_server(Behaviour::named(name)).await, None),
        };
        // It claims app keys (it takes any), so the cases that need them run.
        let target = Target::External(Box::new(TargetSpec {
            name: "broken".into(),
            rtmp: Some(format!("rtmp://{addr}/live")),
            whip: http.map(|http| format!("http://{http}/whip/{{app}}/{{stream}}")),
            whep: http.map(|http| format!("http://{http}/whep/{{app}}/{{stream}}")),
            ws: ws.map(|ws| format!("ws://{ws}/ws")),
            capabilities: vec![conformance::target::Capability::AppKeys],
            // And tokens, which it never asks for.
            tokens: Some(declared_tokens()),
            // And an application that counter-offers (the WHIP/WHEP server's
            // counter-offers, if any, are in all of them).
            counter_offer_app: Some("live".into()),
            ..TargetSpec::default()
        }));
        (id, name, run_case(&case(id), &target, &quick()).await)
    });
    let mut wrong = Vec::new();
    for (id, name, result) in futures_util::future::join_all(runs).await {
        if matches!(result.verdict, Verdict::Ok | Verdict::Unimplemented) {
            wrong.push(format!("{id} against the server that {name}: {result:#?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A WebSocket server that completes the upgrade and then reads nothing.
async fn deaf_websocket_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            if let Ok(ws) = tokio_tungstenite::accept_async(socket).await {
                held.push(ws);
            }
        }
    });
    addr
}

/// The tokens the broken servers claim to want.
fn declared_tokens() -> conformance::target::Tokens {
    conformance::target::Tokens {
        app: None,
        publish: "publish-token-1".into(),
        play: "play-token-1".into(),
    }
}

/// The reference server as a target that declares tokens it does not
/// keep: one `ignores tokens` (its applications want none) and one that
/// `refuses every token` (it knows others than it declares). `None` for
/// another broken server's name.
async fn against_token_server(id: &str, name: &str) -> Option<conformance::verdict::CaseResult> {
    let declared = declared_tokens();
    let other = match name {
        "ignores tokens" => None,
        "refuses every token" => Some(vec!["another-token".to_string()]),
        _ => return None,
    };
    let server = conformance::target::embedded(|config| {
        config.rtmp.max_connections_per_address = 0;
        config.webrtc.max_sessions_per_address = 0;
        for app in config.apps.values_mut() {
            if let Some(other) = &other {
                app.publish_tokens = other.clone();
                app.play_tokens = other.clone();
            }
        }
    })
    .await
    .unwrap();
    let mut spec = conformance::target::reference_server_spec("broken", server.rtmp_addr(), server.http_addr());
    spec.tokens = Some(declared);
    let options = quick();
    let result = run_case(&case(id), &Target::External(Box::new(spec)), &options).await;
    server.shutdown().await;
    Some(result)
}

#[tokio::test]
async fn a_server_that_never_answers_publish_fails_the_publish_cases() {
    let (target, options) = broken_target().await;

    let publish = run_case(&case("rtmp/netstatus/publish-start"), &target, &options).await;
    assert_eq!(publish.verdict, Verdict::Failed, "{publish:#?}");
    let expected = publish.expected.as_deref().unwrap_or_default();
    let actual = publish.actual.as_deref().unwrap_or_default();
    assert!(expected.contains("NetStream.Publish.Start"), "{expected}");
    assert!(
        actual.contains("no NetStream.Publish.Start") || actual.contains("an onStatus"),
        "{actual}"
    );
    assert!(
        publish.log.iter().any(|l| l.contains("publish(0)")),
        "the wire log shows the publish: {:#?}",
        publish.log
    );

    let connect = run_case(&case("rtmp/connect/amf0"), &target, &options).await;
    assert_eq!(connect.verdict, Verdict::Ok, "{connect:#?}");

    let whep = run_case(&case("webrtc/whep/h264-aac"), &target, &options).await;
    assert_eq!(whep.verdict, Verdict::Unimplemented, "{whep:#?}");
    assert!(whep.notes.iter().any(|n| n.contains("lacks whep")), "{:?}", whep.notes);
}

/// How a broken WHIP/WHEP server goes wrong; by default it answers an
/// offer `201` with a `Location`, an `ETag` and the offer with its
/// directions turned round, `DELETE` with `200`, and `OPTIONS` with CORS.
#[derive(Debug, Clone, Copy, Default)]
struct WhipBehaviour {
    /// Offers are answered `200` with the offer itself, and no `Location`.
    echoes_offers: bool,
    /// Its answers lose the offer's `a=group:BUNDLE` and `a=rtcp-mux`.
    no_bundle: bool,
    /// `OPTIONS` is `405`, and no answer has CORS header fields.
    no_cors: bool,
    /// `DELETE` is `405`.
    no_delete: bool,
    /// `DELETE` with an `If-Match` other than its `ETag` is `412`.
    delete_checks_if_match: bool,
    /// Offers are answered `406` with a `Location` and the offer itself as
    /// the counter-offer (its directions as the player gave them), and any
    /// `PATCH` is `200`.
    lazy_counter_offers: bool,
    /// Its counter-offers (as `lazy_counter_offers`) say they are valid
    /// until "tomorrow", which is no HTTP-date.
    bad_valid_until: bool,
}

impl WhipBehaviour {
    /// The behaviour [`caught::BROKEN`] names, if it names a WHIP/WHEP server.
    fn named(name: &str) -> Option<WhipBehaviour> {
        let normal = WhipBehaviour::default();
        Some(match name {
            "answers with the offer turned round" => normal,
            "answers offers 200 with the offer echoed" => WhipBehaviour {
                echoes_offers: true,
                ..normal
            },
            "answers without BUNDLE or rtcp-mux" => WhipBehaviour {
                no_bundle: true,
                ..normal
            },
            "has no CORS and refuses OPTIONS" => WhipBehaviour {
                no_cors: true,
                ..normal
            },
            "refuses DELETE" => WhipBehaviour {
                no_delete: true,
                ..normal
            },
            "checks If-Match on DELETE" => WhipBehaviour {
                delete_checks_if_match: true,
                ..normal
            },
            "counter-offers the offer itself" => WhipBehaviour {
                lazy_counter_offers: true,
                ..normal
            },
            "counter-offers valid until tomorrow" => WhipBehaviour {
                lazy_counter_offers: true,
                bad_valid_until: true,
                ..normal
            },
            _ => return None,
        })
    }
}

/// A WHIP and WHEP server that behaves as `behaviour` says (any path,
/// any stream); it sets up no media.
async fn whip_server(behaviour: WhipBehaviour) -> SocketAddr {
    use axum::http::{HeaderMap, Method, StatusCode};
    use axum::response::IntoResponse;
    let handler = move |method: Method, headers: HeaderMap, offer: String| async move {
        const ETAG: &str = "\"e1\"";
        let cors = [
            ("access-control-allow-origin", "*"),
            ("access-control-expose-headers", "Location, ETag"),
        ];
        let answer = match method {
            Method::POST if behaviour.echoes_offers => {
                (StatusCode::OK, vec![("content-type", "application/sdp")], offer)
            }
            Method::POST if behaviour.lazy_counter_offers => {
                let content_type = match behaviour.bad_valid_until {
                    true => "application/sdp; valid-until=\"tomorrow\"",
                    false => "application/sdp",
                };
                let fields = vec![("content-type", content_type), ("location", "/session/1")];
                (StatusCode::NOT_ACCEPTABLE, fields, offer)
            }
            Method::PATCH if behaviour.lazy_counter_offers => (StatusCode::OK, vec![], String::new()),
            Method::POST => {
                let turned = offer
                    .replace("a=sendonly", "a=SWAP")
                    .replace("a=recvonly", "a=sendonly")
                    .replace("a=SWAP", "a=recvonly");
                let answer: String = turned
                    .split_inclusive('\n')
                    .filter(|line| {
                        !(behaviour.no_bundle && (line.starts_with("a=group:BUNDLE") || line.starts_with("a=rtcp-mux")))
                    })
                    .collect();
                let fields = vec![
                    ("content-type", "application/sdp"),
                    ("location", "/session/1"),
                    ("etag", ETAG),
                ];
                (StatusCode::CREATED, fields, answer)
            }
            Method::OPTIONS if !behaviour.no_cors => (
                StatusCode::OK,
                vec![
                    ("access-control-allow-methods", "POST, DELETE, OPTIONS"),
                    ("access-control-allow-headers", "Content-Type"),
                ],
                String::new(),
            ),
            Method::DELETE if behaviour.no_delete => {
                (StatusCode::METHOD_NOT_ALLOWED, vec![("allow", "POST")], String::new())
            }
            Method::DELETE
                if behaviour.delete_checks_if_match
                    && headers
                        .get("if-match")
                        .is_some_and(|tag| tag.as_bytes() != ETAG.as_bytes()) =>
            {
                (StatusCode::PRECONDITION_FAILED, vec![], String::new())
            }
            Method::DELETE => (StatusCode::OK, vec![], String::new()),
            _ => (
                StatusCode::METHOD_NOT_ALLOWED,
                vec![("allow", "POST, DELETE")],
                String::new(),
            ),
        };
        let (status, mut fields, body) = answer;
        if !behaviour.no_cors {
            fields.extend(cors);
        }
        let mut response = (status, body).into_response();
        for (name, value) in fields {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        response
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(handler)).await });
    addr
}

/// An HTTP server that reads each request and then closes the connection
/// without a response, or answers every request with `answer`.
async fn http_server(answer: Option<&'static str>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then the body the Content-Length announces.
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            break;
                        }
                    }
                }
                if let Some(answer) = answer {
                    let _ = socket.write_all(answer.as_bytes()).await;
                }
                // Dropped: the connection closes.
            });
        }
    });
    addr
}

/// A WHEP endpoint that closes the connection without any HTTP response has
/// not refused anything: `webrtc/whep/unknown-stream` is FAILED there, and
/// says what happened; a 404 is the refusal it asks for.
#[tokio::test]
async fn a_closed_connection_is_not_a_refusal() {
    let case = case("webrtc/whep/unknown-stream");
    let options = RunOptions {
        step_timeout: Duration::from_secs(2),
        case_timeout: Duration::from_secs(20),
        ..RunOptions::default()
    };
    let target = |addr: SocketAddr| {
        Target::External(Box::new(TargetSpec {
            name: "whep-only".into(),
            whep: Some(format!("http://{addr}/whep/{{app}}/{{stream}}")),
            ..TargetSpec::default()
        }))
    };

    let silent = run_case(&case, &target(http_server(None).await), &options).await;
    assert_eq!(silent.verdict, Verdict::Failed, "{silent:#?}");
    let actual = silent.actual.as_deref().unwrap_or_default();
    assert!(
        actual.contains("no refusal") && actual.contains("no HTTP response"),
        "the actual says the server closed without answering: {actual}"
    );

    let not_found = "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 16\r\nconnection: close\r\n\r\nStream not found";
    let refusing = run_case(&case, &target(http_server(Some(not_found)).await), &options).await;
    assert_eq!(refusing.verdict, Verdict::Ok, "{refusing:#?}");
}

/// A real Flash Player 9 session replayed against a server that leaves its
/// play unanswered is FAILED, not INFORMATIONAL: answers of another kind are
/// worth knowing, silence is a defect.
#[tokio::test]
async fn an_unanswered_replayed_command_fails() {
    let (target, options) = broken_target().await;
    let result = run_case(&case("replay/flash-player-9-play"), &target, &options).await;
    assert_eq!(result.verdict, Verdict::Failed, "{result:#?}");
    let actual = result.actual.as_deref().unwrap_or_default();
    assert!(
        actual.contains("play: expected onStatus") && actual.contains("no answer"),
        "the actual names the unanswered play: {actual}"
    );
}

/// Play.Start without the Play.Reset FMS sends first is NON-STRICT, not
/// FAILED: Flash Player plays without it.
#[tokio::test]
async fn play_start_without_reset_is_only_non_strict() {
    let addr = rtmp_server(Behaviour::named("forwards no media")).await;
    let target = Target::External(Box::new(TargetSpec {
        name: "no-reset".into(),
        rtmp: Some(format!("rtmp://{addr}/live")),
        ..TargetSpec::default()
    }));
    let (_, options) = broken_target().await;
    let result = run_case(&case("rtmp/netstatus/play-start"), &target, &options).await;
    assert_eq!(result.verdict, Verdict::NonStrict, "{result:#?}");
    assert!(
        result.notes.iter().any(|n| n.contains("no NetStream.Play.Reset")),
        "{:?}",
        result.notes
    );
}

/// A server that dies in a case is FAILED in that case, with what the
/// suite saw ("stopped answering after this case", the connect error), not
/// NON-STRICT; the cases after it are TARGET-DOWN, not a page of
/// "Connection refused" FAILEDs.
#[tokio::test]
async fn a_server_that_dies_fails_the_case_that_killed_it_and_later_cases_are_target_down() {
    let (series, options) = dying_series(mortal_server(None).await, None);
    let results = run_series(&series, &Target::External(Box::new(options.0)), &options.1, |_| {}).await;
    let verdicts: Vec<Verdict> = results.iter().map(|r| r.verdict).collect();
    assert_eq!(
        verdicts,
        [Verdict::Ok, Verdict::Failed, Verdict::TargetDown],
        "{results:#?}"
    );
    let killer = results[1].actual.as_deref().unwrap_or_default();
    assert!(
        killer.contains("stopped answering after this case") && killer.contains("refused"),
        "{killer}"
    );
    let after = results[2].actual.as_deref().unwrap_or_default();
    assert!(
        after.contains("target down since rtmp/robustness/unknown-message-type"),
        "{after}"
    );
}

/// A target whose restart command brings it back runs the next case.
#[tokio::test]
async fn a_target_that_comes_back_after_its_restart_command_runs_the_next_case() {
    // Back later than the 5 s a server gets to answer after a case.
    let addr = mortal_server(Some(Duration::from_secs(7))).await;
    let (series, options) = dying_series(addr, Some("true".into()));
    let results = run_series(&series, &Target::External(Box::new(options.0)), &options.1, |_| {}).await;
    let verdicts: Vec<Verdict> = results.iter().map(|r| r.verdict).collect();
    assert_eq!(verdicts, [Verdict::Ok, Verdict::Failed, Verdict::Ok], "{results:#?}");
}

/// A case the server survives, the case that kills it, and one more.
fn dying_series(
    addr: SocketAddr,
    restart: Option<String>,
) -> (Vec<conformance::scenario::Scenario>, (TargetSpec, RunOptions)) {
    let spec = TargetSpec {
        name: "mortal".into(),
        rtmp: Some(format!("rtmp://{addr}/live")),
        restart,
        ..TargetSpec::default()
    };
    let options = RunOptions {
        step_timeout: Duration::from_secs(2),
        case_timeout: Duration::from_secs(20),
        ..RunOptions::default()
    };
    let series = vec![
        case("rtmp/connect/amf0"),
        case("rtmp/robustness/unknown-message-type"),
        case("rtmp/connect/amf0"),
    ];
    (series, (spec, options))
}

/// An HTTP request on the RTMP port may be closed only at the server's
/// handshake timeout: a server that closes it after 20 s (the case once
/// allowed 15 s) is OK, and keeps serving RTMP clients meanwhile.
#[tokio::test]
async fn a_server_that_closes_non_rtmp_bytes_at_its_handshake_timeout_is_ok() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(
                socket,
                Behaviour::named("forwards no media"),
                None,
                Duration::from_secs(20),
                None,
            ));
        }
    });
    let target = Target::External(Box::new(TargetSpec {
        name: "slow-to-close".into(),
        rtmp: Some(format!("rtmp://{addr}/live")),
        ..TargetSpec::default()
    }));
    let result = run_case(
        &case("rtmp/robustness/http-on-the-rtmp-port"),
        &target,
        &RunOptions::default(),
    )
    .await;
    assert_eq!(result.verdict, Verdict::Ok, "{result:#?}");
    assert!(
        result.log.iter().any(|l| l.contains("the connection closed 20.")),
        "the log says when it closed: {:#?}",
        result.log
    );
}

/// The cargo-test harness a vendor runs (`conformance::harness`) watches
/// the target the same way: the case that took the server down fails with
/// what happened, and the case after it is TARGET-DOWN.
#[test]
fn the_vendor_harness_blames_the_case_that_killed_the_server() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr = runtime.block_on(mortal_server(None));
    let (series, (spec, options)) = dying_series(addr, None);
    let results = Arc::new(std::sync::Mutex::new(Vec::new()));
    let target = Target::External(Box::new(spec));
    let trials = conformance::harness::trials(series, &target, &options, &results);
    let args = libtest_mimic::Arguments {
        test_threads: Some(1),
        quiet: true,
        ..libtest_mimic::Arguments::default()
    };
    let conclusion = libtest_mimic::run(&args, trials);
    assert_eq!(conclusion.num_failed, 2, "the killer and the case after it");
    let results = results.lock().unwrap();
    let verdicts: Vec<Verdict> = results.iter().map(|r| r.verdict).collect();
    assert_eq!(
        verdicts,
        [Verdict::Ok, Verdict::Failed, Verdict::TargetDown],
        "{results:#?}"
    );
    assert_eq!(results[1].id, "rtmp/robustness/unknown-message-type");
}

/// Options for a broken server: a step that waits for what never comes
/// fails in 2 s, a case in 30 s.
fn quick() -> RunOptions {
    RunOptions {
        step_timeout: Duration::from_secs(2),
        case_timeout: Duration::from_secs(30),
        ..RunOptions::default()
    }
}

/// Runs the case `id` against an RTMP server broken as `behaviour` says,
/// with the run's default times.
async fn run_against(behaviour: &str, id: &str) -> conformance::verdict::CaseResult {
    let addr = rtmp_server(Behaviour::named(behaviour)).await;
    let target = Target::External(Box::new(TargetSpec {
        name: "broken".into(),
        rtmp: Some(format!("rtmp://{addr}/live")),
        ..TargetSpec::default()
    }));
    run_case(&case(id), &target, &RunOptions::default()).await
}

/// The timestamp wrap case fails against a server that forwards media but
/// compares timestamps as plain numbers, for what it did: media that
/// stopped at the wrap, not a missing stream.
#[tokio::test]
async fn a_server_that_stops_forwarding_at_the_wrap_fails_the_wrap_case() {
    let result = run_against("forwards media until its timestamps wrap", "rtmp/media/timestamp-wrap").await;
    assert_eq!(result.verdict, Verdict::Failed, "{result:#?}");
    let actual = result.actual.unwrap_or_default();
    assert!(actual.contains("fewer than 300 audio"), "{actual}");
    // About 3 s of media came, the time before the wrap.
    let video: u32 = actual
        .rsplit_once(" audio and ")
        .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok())
        .unwrap_or_default();
    assert!((50..100).contains(&video), "{actual}");
}

/// The AVC end-of-sequence case catches a server that ends the video there:
/// its late joiner, who came after the restart, gets sound and no picture.
#[tokio::test]
async fn a_server_that_ends_the_video_at_an_end_of_sequence_fails_its_case() {
    let result = run_against(
        "forwards no video after an AVC end of sequence",
        "rtmp/media/avc-end-of-sequence",
    )
    .await;
    assert_eq!(result.verdict, Verdict::Failed, "{result:#?}");
    let actual = result.actual.unwrap_or_default();
    assert!(actual.starts_with("step 4 (late Play restarted)"), "{actual}");
    assert!(actual.contains("audio and 0 video messages"), "{actual}");
}

/// A target whose RTMP side forwards no media and whose WHEP endpoint
/// counter-offers as the WHIP/WHEP behaviour `name` says, in app `live`.
async fn counter_offering_target(name: &str) -> Target {
    let rtmp = rtmp_server(Behaviour::named("forwards no media")).await;
    let http = whip_server(WhipBehaviour::named(name).unwrap()).await;
    Target::External(Box::new(TargetSpec {
        name: "broken".into(),
        rtmp: Some(format!("rtmp://{rtmp}/live")),
        whep: Some(format!("http://{http}/whep/{{app}}/{{stream}}")),
        counter_offer_app: Some("live".into()),
        ..TargetSpec::default()
    }))
}

/// A WHEP endpoint that answers 406 with the player's own offer as its
/// counter-offer and takes any PATCH fails each counter-offer case for what
/// it did: a counter-offer that does not send, a garbage answer taken 200,
/// and a player that could not use the counter-offer.
#[tokio::test]
async fn a_lazy_counter_offer_fails_the_counter_offer_cases_for_what_it_did() {
    let target = counter_offering_target("counter-offers the offer itself").await;
    let options = quick();
    for (id, said) in [
        ("webrtc/whep/counter-offer", "recvonly"),
        ("webrtc/whep/counter-offer-malformed-answer", "200"),
        ("webrtc/whep/counter-offer-plays", "recvonly"),
    ] {
        let result = run_case(&case(id), &target, &options).await;
        assert_eq!(result.verdict, Verdict::Failed, "{result:#?}");
        let actual = result.actual.clone().unwrap_or_default();
        assert!(actual.contains(said), "{id}: {actual}");
    }
}

/// A counter-offer's `valid-until` MUST be an HTTP-date (WHEP draft 03,
/// section 4.2): the suite's player says so rather than answer it.
#[tokio::test]
async fn a_counter_offer_valid_until_no_date_fails_for_what_it_said() {
    let target = counter_offering_target("counter-offers valid until tomorrow").await;
    let result = run_case(&case("webrtc/whep/counter-offer-plays"), &target, &quick()).await;
    assert_eq!(result.verdict, Verdict::Failed, "{result:#?}");
    let actual = result.actual.clone().unwrap_or_default();
    assert!(
        actual.contains(r#"valid-until "tomorrow" is not an HTTP-date"#),
        "{actual}"
    );
}
