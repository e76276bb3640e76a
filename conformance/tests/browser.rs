//! A real browser plays what a real encoder publishes: Debian's Chromium,
//! headless, opens the server's demo page, which plays a stream ffmpeg
//! publishes over RTMP (H.264 + AAC); the test reads decoded pictures
//! (`getStats`) and the received sound's level (WebAudio) from the page.
//! A second stream carries Flash's own codecs (Sorenson Spark and
//! Nellymoser), which reach the browser only through the server's
//! transcoders. The other way round, Chromium publishes its fake camera and
//! microphone from the demo page and ffmpeg joins over RTMP 10 s later. And
//! a stream whose picture starts 6 s after its sound, with no metadata, is
//! answered without video and then offered it over the WebSocket channel.

#[path = "support/tools.rs"]
mod tools;

use std::time::Duration;

use bytes::Bytes;
use conformance::browser::Browser;
use conformance::client::{ClientProfile, RtmpClient};
use conformance::target::embedded;
use reference_server::ServerHandle;
use serde_json::Value;
use tools::{ffmpeg_publish, ffmpeg_publish_flash_codecs, program};

async fn wait_live(server: &ServerHandle, app: &str, name: &str) {
    for _ in 0..200 {
        if server
            .hub()
            .describe(app, name)
            .is_some_and(|d| d.has_audio && d.has_video)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{app}/{name} never went live with audio and video");
}

/// What ffmpeg publishes.
#[derive(Clone, Copy)]
enum Codecs {
    /// H.264 and AAC.
    Encoder,
    /// Sorenson Spark and Nellymoser.
    Flash,
}

async fn browser_plays(signalling: &str, codecs: Codecs) {
    browser_plays_in("live", signalling, codecs).await;
}

/// Chromium plays from the demo page in `app`; the application
/// `countered` answers WHEP offers with counter-offers.
async fn browser_plays_in(app: &str, signalling: &str, codecs: Codecs) {
    let server = embedded(|config| {
        let mut countered = config.apps["live"].clone();
        countered.whep_counter_offer = true;
        config.apps.insert("countered".into(), countered);
    })
    .await
    .unwrap();
    let stream = format!("browser-{signalling}");
    let url = format!("{}/{stream}", server.rtmp_url(app));
    let mut publisher = match codecs {
        Codecs::Encoder => ffmpeg_publish(&url, true, Some(440), 60),
        Codecs::Flash => ffmpeg_publish_flash_codecs(&url, 440, 60),
    }
    .spawn()
    .unwrap();
    wait_live(&server, app, &stream).await;

    let page = format!(
        "{}/?app={app}&stream={stream}&signalling={signalling}&play=1",
        server.http_url()
    );
    let mut browser = Browser::open(&page).await.unwrap();
    let demo = browser
        .wait_for("window.demo", Duration::from_secs(20), |demo| {
            demo["framesDecoded"].as_u64().unwrap_or(0) >= 50 && demo["audioRmsMax"].as_f64().unwrap_or(0.0) > 0.01
        })
        .await
        .unwrap();
    let frames = demo["framesDecoded"].as_u64().unwrap_or(0);
    let rms = demo["audioRmsMax"].as_f64().unwrap_or(0.0);
    assert!(frames >= 50, "Chromium decoded {frames} pictures in 20 s: {demo}");
    assert_eq!(
        (demo["frameWidth"].as_u64(), demo["frameHeight"].as_u64()),
        (Some(320), Some(240)),
        "{demo}"
    );
    // ffmpeg's sine has amplitude 1/8: RMS 0.088 (-21 dBFS). Silence is 0.
    assert!(rms > 0.03, "Chromium heard audio at RMS {rms}: {demo}");
    assert_eq!(demo["status"], Value::from("PLAYING"), "{demo}");
    assert_eq!(
        demo["counterOffered"],
        Value::from(app == "countered"),
        "the page answered a counter-offer: {demo}"
    );
    assert!(
        server.metrics().webrtc_sessions.get() >= 1,
        "the page's session is open on the server"
    );
    drop(browser);
    let _ = publisher.kill().await;
    server.shutdown().await;
}

#[tokio::test]
async fn chromium_plays_an_ffmpeg_stream_over_whep_with_picture_and_sound() {
    browser_plays("whep", Codecs::Encoder).await;
}

#[tokio::test]
async fn chromium_plays_flash_sorenson_and_nellymoser_over_whep_as_h264_and_opus() {
    browser_plays("whep", Codecs::Flash).await;
}

/// With STUN and TURN servers configured, the demo page learns them from
/// the WHEP 201's `Link`s and gathers again with them: an ICE restart by
/// `PATCH` (RFC 9725 section 4.6's note; WHEP draft 03, section 4.5.3).
/// Chromium, a full ICE agent of its own, checks and nominates with the
/// server's new credentials, and the pictures and the sound go on. (No
/// STUN or TURN server listens: Chromium gathers nothing from them.)
#[tokio::test]
async fn chromium_restarts_ice_with_the_servers_a_whep_201_names_and_plays_on() {
    let server = embedded(|config| {
        config.webrtc.ice_servers = vec![
            reference_server::config::IceServer {
                url: "stun:127.0.0.1:3478".into(),
                username: None,
                credential: None,
            },
            reference_server::config::IceServer {
                url: "turn:127.0.0.1:3479?transport=udp".into(),
                username: Some("user".into()),
                credential: Some("pass\"word".into()),
            },
        ];
    })
    .await
    .unwrap();
    let stream = "browser-ice-restart";
    let mut publisher = ffmpeg_publish(&format!("{}/{stream}", server.rtmp_url("live")), true, Some(440), 60)
        .spawn()
        .unwrap();
    wait_live(&server, "live", stream).await;
    let page = format!("{}/?app=live&stream={stream}&signalling=whep&play=1", server.http_url());
    let mut browser = Browser::open(&page).await.unwrap();
    let demo = browser
        .wait_for("window.demo", Duration::from_secs(30), |demo| {
            let restarted_at = demo["framesAtRestart"].as_u64();
            let frames = demo["framesDecoded"].as_u64().unwrap_or(0);
            // A new pair is selected: Chromium's checks with the new
            // credentials were answered (unanswered, it would stay on the
            // pair it had).
            demo["iceRestarts"] == 1
                && demo["selectedPair"] != demo["pairAtRestart"]
                && restarted_at.is_some_and(|at| frames >= at + 50)
                && demo["audioRmsMax"].as_f64().unwrap_or(0.0) > 0.03
        })
        .await
        .unwrap();
    assert_eq!(demo["iceServers"], Value::from(2), "{demo}");
    assert_eq!(demo["status"], Value::from("PLAYING"), "{demo}");
    assert_eq!(server.metrics().webrtc_ice_restarts.get(), 1, "{demo}");
    drop(browser);
    let _ = publisher.kill().await;
    server.shutdown().await;
}

/// The server's counter-offer, answered by Chromium itself: a WebRTC stack
/// other than the suite's own takes the offer the server makes.
#[tokio::test]
async fn chromium_answers_a_whep_counter_offer_and_plays_with_picture_and_sound() {
    browser_plays_in("countered", "whep", Codecs::Encoder).await;
}

#[tokio::test]
async fn chromium_plays_an_ffmpeg_stream_over_the_websocket_channel_with_picture_and_sound() {
    browser_plays("ws", Codecs::Encoder).await;
}

/// Chromium publishes from the demo page (its encoder makes keyframes only
/// when asked); ffmpeg joins over RTMP 10 s later and must decode pictures
/// and hear sound at once: the server asks the browser for keyframes, so
/// the cached backlog is short, and the sound is not behind the video.
async fn browser_publishes_and_ffmpeg_joins_late(signalling: &str) {
    let server = embedded(|_| {}).await.unwrap();
    let stream = format!("chromecam-{signalling}");
    let page = format!(
        "{}/?app=live&stream={stream}&signalling={signalling}&publish=1",
        server.http_url()
    );
    let browser = Browser::open_with_fake_camera(&page).await.unwrap();
    wait_live(&server, "live", &stream).await;
    let published = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;

    let played = program("ffmpeg")
        .args(["-hide_banner", "-nostats", "-loglevel", "info", "-i"])
        .arg(format!("{}/{stream}", server.rtmp_url("live")))
        .args(["-t", "3", "-af", "astats=metadata=0", "-f", "null", "-"])
        .output()
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&played.stderr);
    assert!(played.status.success(), "ffmpeg's player failed: {log}");
    assert!(
        log.contains("Video: h264") && log.contains("Audio: speex"),
        "ffmpeg found both tracks in its probe: {log}"
    );
    // The null muxer's last line: "video:...kB audio:...kB" after "frame=  N".
    let frames: u64 = log
        .rsplit("frame=")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // Chromium's encoder lowers its frame rate when the machine is busy.
    assert!(frames >= 15, "ffmpeg decoded {frames} pictures in 3 s: {log}");
    assert!(
        !log.contains("Unexpected reply"),
        "ffmpeg understood every answer: {log}"
    );
    // astats: the overall RMS level of what ffmpeg decoded; silence is -inf.
    let rms = log
        .lines()
        .skip_while(|l| !l.contains("Overall"))
        .find_map(|l| l.split_once("RMS level dB:").map(|(_, v)| v.trim().to_string()))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(f64::NEG_INFINITY);
    assert!(
        rms > -60.0,
        "ffmpeg heard the browser's microphone at {rms} dBFS: {log}"
    );
    let requests = server.metrics().publisher_keyframe_requests.get();
    let seconds = published.elapsed().as_secs();
    assert!(
        requests >= 3,
        "the browser was asked for {requests} keyframes in {seconds} s (one on join, one per 2 s without)"
    );
    drop(browser);
    server.shutdown().await;
}

#[tokio::test]
async fn chromium_publishes_over_whip_and_ffmpeg_joining_10_s_later_decodes_picture_and_sound() {
    browser_publishes_and_ffmpeg_joins_late("whip").await;
}

#[tokio::test]
async fn chromium_publishes_over_the_websocket_channel_and_ffmpeg_joining_late_decodes_picture_and_sound() {
    browser_publishes_and_ffmpeg_joins_late("ws").await;
}

/// A Flash-like publisher sends sound, no metadata, and its first picture
/// 6 s later; Chromium, answered without video once `webrtc.video_wait` has
/// passed, is offered the video by the server over the WebSocket channel
/// when it appears, answers from the demo page, and shows the pictures.
#[tokio::test]
async fn chromium_is_offered_video_that_appears_after_its_answer() {
    let server = embedded(|_| {}).await.unwrap();
    let file = conformance::shipped::builtin("flv/ffmpeg_h264_aac_320x240_440hz.flv")
        .unwrap()
        .to_vec();
    let tags: Vec<_> = media::flv::read_tags(&Bytes::from(file))
        .unwrap()
        .into_iter()
        .filter(|t| t.kind != media::flv::TagKind::Script)
        .collect();
    let tags = media::flv::track_from(tags, media::flv::TagKind::Video, 6000);
    let mut flash = RtmpClient::open(server.rtmp_addr(), ClientProfile::flash_player())
        .await
        .unwrap();
    flash.connect(&server.rtmp_url("live"), vec![]).await.unwrap();
    let stream = flash.create_stream().await.unwrap();
    flash.publish(stream, "latevideo").await.unwrap();
    let publishing = tokio::spawn(async move {
        let _ = flash.send_tags(stream, &tags, true).await;
        flash
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let page = format!("{}/?app=live&stream=latevideo&signalling=ws&play=1", server.http_url());
    let mut browser = Browser::open(&page).await.unwrap();
    let demo = browser
        .wait_for("window.demo", Duration::from_secs(25), |demo| {
            demo["framesDecoded"].as_u64().unwrap_or(0) >= 25
        })
        .await
        .unwrap();
    let frames = demo["framesDecoded"].as_u64().unwrap_or(0);
    assert!(frames >= 25, "Chromium decoded {frames} pictures: {demo}");
    assert_eq!(
        (demo["frameWidth"].as_u64(), demo["frameHeight"].as_u64()),
        (Some(320), Some(240)),
        "{demo}"
    );
    drop(browser);
    let _ = publishing.await;
    server.shutdown().await;
}

/// The demo page builds its peer connection with the STUN and TURN servers
/// the WebSocket channel's connection message names: Chromium sends a STUN
/// Binding Request to the one the server is configured with, before its
/// offer.
#[tokio::test]
async fn the_demo_page_uses_the_ice_servers_the_websocket_channel_names() {
    let stun = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let url = format!("stun:{}", stun.local_addr().unwrap());
    let server = embedded(|config| {
        config.webrtc.ice_servers = vec![reference_server::config::IceServer {
            url: url.clone(),
            username: None,
            credential: None,
        }];
    })
    .await
    .unwrap();
    let page = format!("{}/?app=live&stream=nobody&signalling=ws&play=1", server.http_url());
    let browser = Browser::open(&page).await.unwrap();
    let mut datagram = [0u8; 1500];
    let (len, from) = tokio::time::timeout(Duration::from_secs(20), stun.recv_from(&mut datagram))
        .await
        .expect("a datagram to the configured STUN server within 20 s")
        .unwrap();
    // RFC 8489, section 5: a Binding Request (0x0001) with the magic cookie.
    assert!(len >= 20, "{len} bytes from {from}");
    assert_eq!(
        datagram[..2],
        [0x00, 0x01],
        "not a Binding Request: {:02x?}",
        &datagram[..len.min(20)]
    );
    assert_eq!(datagram[4..8], [0x21, 0x12, 0xA4, 0x42]);
    drop(browser);
    server.shutdown().await;
}
