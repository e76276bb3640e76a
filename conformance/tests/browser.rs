//! A real browser plays what a real encoder publishes: Debian's Chromium,
//! headless, opens the server's demo page, which plays a stream ffmpeg
//! publishes over RTMP (H.264 + AAC); the test reads decoded pictures
//! (`getStats`) and the received sound's level (WebAudio) from the page.
//! A second stream carries Flash's own codecs (Sorenson Spark and
//! Nellymoser), which reach the browser only through the server's
//! transcoders.

use std::time::Duration;

use conformance::browser::Browser;
use conformance::target::embedded;
use conformance::tools::{ffmpeg_publish, ffmpeg_publish_flash_codecs};
use reference_server::ServerHandle;
use serde_json::Value;

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
    let server = embedded(|_| {}).await.unwrap();
    let stream = format!("browser-{signalling}");
    let url = format!("{}/{stream}", server.rtmp_url("live"));
    let mut publisher = match codecs {
        Codecs::Encoder => ffmpeg_publish(&url, true, Some(440), 60),
        Codecs::Flash => ffmpeg_publish_flash_codecs(&url, 440, 60),
    }
    .spawn()
    .unwrap();
    wait_live(&server, "flashStreamingApp", &stream).await;

    let page = format!(
        "{}/?app=flashStreamingApp&stream={stream}&signalling={signalling}&play=1",
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

#[tokio::test]
async fn chromium_plays_an_ffmpeg_stream_over_the_websocket_channel_with_picture_and_sound() {
    browser_plays("ws", Codecs::Encoder).await;
}
