//! The RTMP session driven directly, as quinn-proto's `Pair` drives its
//! connections: a client's bytes in, the session's bytes decoded back into
//! messages, no sockets and no clocks. Each test is one NetStatus sequence
//! of docs/netstatus.md, message by message.

use super::*;
use bytes::BytesMut;

/// The client side of the pair: an [`Endpoint`] as the suite's client has,
/// sending commands and decoding what the session sends.
struct Client {
    endpoint: Endpoint,
    encoding: ObjectEncoding,
}

impl Client {
    fn new(encoding: ObjectEncoding) -> Client {
        Client {
            endpoint: Endpoint::new(ChunkLimits::default()),
            encoding,
        }
    }

    /// The bytes of `message` (and of anything the client's endpoint owed the session first).
    fn bytes(&mut self, stream_id: u32, message: &Message) -> BytesMut {
        let csid = if stream_id == 0 { 3 } else { 8 };
        self.endpoint.send(csid, stream_id, 0, message);
        BytesMut::from(&self.endpoint.output().take_all()[..])
    }

    fn command(&mut self, stream_id: u32, name: &str, tid: f64, args: Vec<Value>) -> BytesMut {
        let object = if name == "connect" {
            Value::object([("app", Value::from("live")), ("tcUrl", Value::from("rtmp://h/live"))])
        } else {
            Value::Null
        };
        let message = Message::Command(Command {
            encoding: self.encoding,
            name: name.into(),
            transaction_id: tid,
            command_object: object,
            args,
        });
        self.bytes(stream_id, &message)
    }

    /// Everything the session sent since the last call, as (stream id, message).
    fn received(&mut self, session: &mut Session) -> Vec<(u32, Message)> {
        let out = session.output().take_all();
        self.endpoint.receive(&out);
        let mut messages = Vec::new();
        while let Some(raw) = self.endpoint.next_message().expect("the session's chunks decode") {
            let stream_id = raw.stream_id;
            messages.push((
                stream_id,
                Message::decode(raw.type_id, raw.payload).expect("its messages decode"),
            ));
        }
        messages
    }
}

/// A message as a line: commands by name and NetStatus code, controls by kind.
fn line(stream_id: u32, message: &Message) -> String {
    match message {
        Message::Command(c) => {
            let status = c.args.iter().find_map(NetStatus::from_value);
            match status {
                Some(s) => format!("[{stream_id}] {} {} {}", c.name, s.code, s.level.as_str()),
                None => format!(
                    "[{stream_id}] {} {}",
                    c.name,
                    c.args.iter().map(Value::to_string).collect::<Vec<_>>().join(" ")
                ),
            }
        }
        Message::Data(d) => format!(
            "[{stream_id}] data {}",
            d.values.iter().map(Value::to_string).collect::<Vec<_>>().join(" ")
        ),
        other => format!("[{stream_id}] {other:?}"),
    }
}

fn lines(messages: &[(u32, Message)]) -> Vec<String> {
    messages.iter().map(|(id, m)| line(*id, m)).collect()
}

fn config() -> SessionConfig {
    SessionConfig {
        continuations: media::rtmp::Continuations::default(),
        reader_faults: media::rtmp::ReaderFaults::default(),
        chunk_size: 4096,
        window_ack_size: 2_500_000,
        limits: ChunkLimits::default(),
        max_streams: 4,
        states_enhanced: true,
    }
}

/// A session and client past connect (accepted).
fn connected(encoding: ObjectEncoding) -> (Session, Client) {
    let mut session = Session::new(config(), "c1".into());
    let mut client = Client::new(encoding);
    let mut events = Vec::new();
    let connect = client.command(0, "connect", 1.0, Vec::new());
    session.handle_input(&connect, &mut events).unwrap();
    assert!(matches!(events.as_slice(), [Event::Connect(_)]), "{events:?}");
    session.accept_connect(encoding);
    session.resume(&mut events).unwrap();
    let _ = client.received(&mut session);
    (session, client)
}

#[test]
fn connect_is_answered_with_the_fms_preamble_then_connect_success() {
    let mut session = Session::new(config(), "c1".into());
    let mut client = Client::new(ObjectEncoding::Amf0);
    let mut events = Vec::new();
    session
        .handle_input(&client.command(0, "connect", 1.0, Vec::new()), &mut events)
        .unwrap();
    let Some(Event::Connect(request)) = events.first() else {
        panic!("{events:?}")
    };
    assert_eq!(request.app.name, "live");
    assert_eq!(request.tc_url.as_deref(), Some("rtmp://h/live"));
    assert!(
        client.received(&mut session).is_empty(),
        "nothing before the application answers"
    );
    session.accept_connect(ObjectEncoding::Amf0);
    assert_eq!(
        lines(&client.received(&mut session)),
        [
            "[0] WindowAckSize(2500000)",
            "[0] SetPeerBandwidth { size: 2500000, limit_type: 2 }",
            "[0] UserControl(StreamBegin(0))",
            "[0] SetChunkSize(4096)",
            "[0] _result NetConnection.Connect.Success status",
        ]
    );
}

#[test]
fn commands_sent_before_the_connect_answer_wait_for_it() {
    let mut session = Session::new(config(), "c1".into());
    let mut client = Client::new(ObjectEncoding::Amf0);
    let mut bytes = client.command(0, "connect", 1.0, Vec::new());
    bytes.extend_from_slice(&client.command(0, "createStream", 2.0, Vec::new()));
    let mut events = Vec::new();
    session.handle_input(&bytes, &mut events).unwrap();
    assert_eq!(events.len(), 1, "only the connect: {events:?}");
    session.accept_connect(ObjectEncoding::Amf0);
    session.resume(&mut events).unwrap();
    let answers = lines(&client.received(&mut session));
    assert_eq!(answers.last().map(String::as_str), Some("[0] _result 1"), "{answers:?}");
}

#[test]
fn an_encoder_publishes_and_unpublishes() {
    let (mut session, mut client) = connected(ObjectEncoding::Amf0);
    let mut events = Vec::new();
    let mut bytes = client.command(0, "releaseStream", 2.0, vec![Value::Null, Value::from("cam")]);
    bytes.extend_from_slice(&client.command(0, "FCPublish", 3.0, vec![Value::from("cam")]));
    bytes.extend_from_slice(&client.command(0, "createStream", 4.0, Vec::new()));
    bytes.extend_from_slice(&client.command(1, "publish", 5.0, vec![Value::from("cam"), Value::from("live")]));
    session.handle_input(&bytes, &mut events).unwrap();
    let [Event::Publish {
        stream_id: 1,
        name,
        publish_type,
    }] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!((name.name.as_str(), publish_type.as_str()), ("cam", "live"));
    let before = lines(&client.received(&mut session));
    assert!(
        before.contains(&"[0] _result 1".to_string()),
        "createStream answered: {before:?}"
    );
    assert!(
        !before.iter().any(|l| l.contains("Publish.")),
        "no status before the decision: {before:?}"
    );
    session.publish_started(1);
    assert_eq!(
        lines(&client.received(&mut session)),
        [
            "[0] UserControl(StreamBegin(1))",
            "[1] onStatus NetStream.Publish.Start status"
        ]
    );
    events.clear();
    let mut bytes = client.command(0, "FCUnpublish", 6.0, vec![Value::from("cam")]);
    bytes.extend_from_slice(&client.command(0, "deleteStream", 7.0, vec![Value::Number(1.0)]));
    session.handle_input(&bytes, &mut events).unwrap();
    assert_eq!(events, [Event::PublishStopped { stream_id: 1 }]);
    let after = lines(&client.received(&mut session));
    assert!(
        after.contains(&"[1] onStatus NetStream.Unpublish.Success status".to_string()),
        "{after:?}"
    );
}

#[test]
fn a_refused_publish_is_badname_at_level_error() {
    let (mut session, mut client) = connected(ObjectEncoding::Amf0);
    let mut events = Vec::new();
    let mut bytes = client.command(0, "createStream", 2.0, Vec::new());
    bytes.extend_from_slice(&client.command(1, "publish", 3.0, vec![Value::from("taken")]));
    session.handle_input(&bytes, &mut events).unwrap();
    let _ = client.received(&mut session);
    session.publish_refused(1, code::PUBLISH_BAD_NAME, "taken is already published.");
    assert_eq!(
        lines(&client.received(&mut session)),
        ["[1] onStatus NetStream.Publish.BadName error"]
    );
    // The stream is idle again: a later publish_started does nothing.
    session.publish_started(1);
    assert!(client.received(&mut session).is_empty());
}

#[test]
fn a_player_gets_reset_start_and_sample_access_then_notifies() {
    let (mut session, mut client) = connected(ObjectEncoding::Amf3);
    let mut events = Vec::new();
    let mut bytes = client.command(0, "createStream", 2.0, Vec::new());
    bytes.extend_from_slice(&client.command(1, "play", 0.0, vec![Value::from("cam?token=1"), Value::Number(-2.0)]));
    session.handle_input(&bytes, &mut events).unwrap();
    let [Event::Play { stream_id: 1, name }] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(name.name, "cam", "the parameters are not part of the name");
    let _ = client.received(&mut session);
    session.play_started(1);
    assert_eq!(
        lines(&client.received(&mut session)),
        [
            "[0] UserControl(StreamBegin(1))",
            "[1] onStatus NetStream.Play.Reset status",
            "[1] onStatus NetStream.Play.Start status",
            "[1] data \"|RtmpSampleAccess\" true true",
            "[1] data \"onStatus\" {code: \"NetStream.Data.Start\"}",
        ]
    );
    session.unpublish_notify(1);
    assert_eq!(
        lines(&client.received(&mut session)),
        [
            "[1] onStatus NetStream.Play.UnpublishNotify status",
            "[0] UserControl(StreamEof(1))"
        ]
    );
    session.publish_notify(1);
    assert_eq!(
        lines(&client.received(&mut session)),
        [
            "[0] UserControl(StreamBegin(1))",
            "[1] onStatus NetStream.Play.PublishNotify status"
        ]
    );
}

#[test]
fn after_a_new_publisher_pictures_resume_at_a_keyframe_not_at_a_sequence_header() {
    let (mut session, mut client) = connected(ObjectEncoding::Amf0);
    let mut events = Vec::new();
    let mut bytes = client.command(0, "createStream", 2.0, Vec::new());
    bytes.extend_from_slice(&client.command(1, "play", 0.0, vec![Value::from("cam")]));
    session.handle_input(&bytes, &mut events).unwrap();
    session.play_started(1);
    session.publish_notify(1);
    let _ = client.received(&mut session);
    let picture = Bytes::from_static(&[0x27, 1, 0, 0, 0]);
    let header = Bytes::from_static(&[0x17, 0, 0, 0, 0]);
    let keyframe = Bytes::from_static(&[0x17, 1, 0, 0, 0]);
    let sent: Vec<bool> = [
        (&picture, Start::No),
        (&header, Start::Config),
        (&picture, Start::No),
        (&keyframe, Start::Keyframe),
        (&picture, Start::No),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (payload, start))| session.send_media(1, MediaKind::Video, 40 * i as u32, payload, start))
    .collect();
    assert_eq!(sent, [false, true, false, true, true]);
    assert_eq!(client.received(&mut session).len(), 3);
}

#[test]
fn play2_switches_a_playing_stream_and_refuses_what_it_cannot_do() {
    let (mut session, mut client) = connected(ObjectEncoding::Amf0);
    let mut events = Vec::new();
    let options = |transition: &str| {
        vec![Value::object([
            ("streamName", Value::from("cam-720?token=1")),
            ("oldStreamName", Value::from("cam-360")),
            ("transition", Value::from(transition)),
        ])]
    };
    // Not playing yet: an error, no event.
    let mut bytes = client.command(0, "createStream", 2.0, Vec::new());
    bytes.extend_from_slice(&client.command(1, "play2", 0.0, options("switch")));
    session.handle_input(&bytes, &mut events).unwrap();
    assert!(events.is_empty(), "{events:?}");
    let answers = lines(&client.received(&mut session));
    assert_eq!(answers.last().unwrap(), "[1] onStatus NetStream.Play.Failed error");
    // Playing: a switch is an event; a transition for playlists is refused.
    let bytes = client.command(1, "play", 0.0, vec![Value::from("cam-360")]);
    session.handle_input(&bytes, &mut events).unwrap();
    session.play_started(1);
    events.clear();
    let _ = client.received(&mut session);
    let bytes = client.command(1, "play2", 0.0, options("appendAndWait"));
    session.handle_input(&bytes, &mut events).unwrap();
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(
        lines(&client.received(&mut session)),
        ["[1] onStatus NetStream.Play.Failed error"]
    );
    let bytes = client.command(1, "play2", 0.0, options("switch"));
    session.handle_input(&bytes, &mut events).unwrap();
    let [Event::Play2 { stream_id: 1, name }] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(name.name, "cam-720", "the parameters are not part of the name");
    session.play_transition(1, "cam-720");
    session.play_transition_complete(1);
    assert_eq!(
        lines(&client.received(&mut session)),
        [
            "[1] onStatus NetStream.Play.Transition status",
            "[1] data \"onPlayStatus\" {level: \"status\", code: \"NetStream.Play.TransitionComplete\", description: \"Switched to cam-720.\", details: \"cam-720\"}",
        ]
    );
}

#[test]
fn a_missing_stream_is_stream_not_found_at_level_error() {
    let (mut session, mut client) = connected(ObjectEncoding::Amf0);
    let mut events = Vec::new();
    let mut bytes = client.command(0, "createStream", 2.0, Vec::new());
    bytes.extend_from_slice(&client.command(1, "play", 0.0, vec![Value::from("nobody")]));
    session.handle_input(&bytes, &mut events).unwrap();
    let _ = client.received(&mut session);
    session.play_refused(1, code::PLAY_STREAM_NOT_FOUND, "nobody is not published.");
    assert_eq!(
        lines(&client.received(&mut session)),
        ["[1] onStatus NetStream.Play.StreamNotFound error"]
    );
}

#[test]
fn acknowledgements_carry_the_exact_running_total() {
    let (mut session, mut client) = connected(ObjectEncoding::Amf0);
    let mut events = Vec::new();
    let window = client.bytes(0, &Message::WindowAckSize(100));
    session.handle_input(&window, &mut events).unwrap();
    let sent_before = session.bytes_received();
    // 250 bytes of a padded command: two windows filled, two acknowledgements.
    let padding = Value::from("x".repeat(200));
    let bytes = client.command(0, "sendData", 0.0, vec![padding]);
    session.handle_input(&bytes, &mut events).unwrap();
    let acks: Vec<u32> = client
        .received(&mut session)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Acknowledgement(n) => Some(n),
            _ => None,
        })
        .collect();
    // Less than a window received before it was set: the n-th
    // acknowledgement goes out when the running total reaches n windows,
    // and carries exactly that total.
    assert!(sent_before < 100, "{sent_before}");
    let total = sent_before + bytes.len() as u64;
    let expected: Vec<u32> = (1..=total / 100).map(|n| (100 * n) as u32).collect();
    assert!(expected.len() >= 2, "{total} bytes");
    assert_eq!(acks, expected, "after {} more bytes", bytes.len());
}

#[test]
fn commands_before_connect_and_a_second_connect_are_errors() {
    let mut session = Session::new(config(), "c1".into());
    let mut client = Client::new(ObjectEncoding::Amf0);
    let mut events = Vec::new();
    let early = client.command(0, "createStream", 1.0, Vec::new());
    assert!(matches!(
        session.handle_input(&early, &mut events),
        Err(SessionError::NotConnected(_))
    ));
    let (mut session, mut client) = connected(ObjectEncoding::Amf0);
    let again = client.command(0, "connect", 2.0, Vec::new());
    assert!(matches!(
        session.handle_input(&again, &mut events),
        Err(SessionError::SecondConnect)
    ));
}

#[test]
fn an_enhanced_rtmp_client_is_told_what_the_server_takes() {
    let mut session = Session::new(config(), "c1".into());
    let mut client = Client::new(ObjectEncoding::Amf0);
    let mut events = Vec::new();
    // A connect with a v1 fourCcList.
    let connect = Message::Command(Command {
        encoding: ObjectEncoding::Amf0,
        name: "connect".into(),
        transaction_id: 1.0,
        command_object: Value::object([
            ("app", Value::from("live")),
            (
                "fourCcList",
                Value::StrictArray(vec![Value::from("av01"), Value::from("Opus")]),
            ),
        ]),
        args: Vec::new(),
    });
    session.handle_input(&client.bytes(0, &connect), &mut events).unwrap();
    let Some(Event::Connect(request)) = events.first() else {
        panic!("{events:?}")
    };
    let announced = request.enhanced.as_ref().expect("a fourCcList is Enhanced RTMP");
    assert!(announced.takes(media::flv::TagKind::Video, media::eflv::FourCc::AV1));

    session.accept_connect(ObjectEncoding::Amf0);
    let answer = client.received(&mut session);
    let Some((_, Message::Command(result))) = answer.iter().find(|(_, m)| matches!(m, Message::Command(_))) else {
        panic!("no _result")
    };
    let server = media::rtmp::enhanced::Capabilities::from_object(&result.command_object)
        .expect("the server states its support");
    assert!(server.video.contains_key("*") && server.audio.contains_key("Opus"));
    assert!(server.has(media::rtmp::enhanced::caps_ex::MULTITRACK | media::rtmp::enhanced::caps_ex::MOD_EX));
}
