//! Publish and play tokens (docs/tokens.md), over the wire: RTMP with the
//! token in the stream name or the tcUrl, WHIP and WHEP with a bearer token
//! (RFC 9725, section 4.7), and the WebSocket channel.

use std::time::Duration;

use conformance::client::{ClientProfile, RtmpClient};
use conformance::target::embedded;
use conformance::webrtc::http::{Endpoint, Offer, OfferShape};
use futures_util::{SinkExt, StreamExt};
use media::netstatus::code;
use reference_server::ServerHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WAIT: Duration = Duration::from_secs(5);

/// A server whose application `live` wants `pub-secret` to publish and
/// `play-secret` to play.
async fn guarded_server() -> ServerHandle {
    embedded(|config| {
        let live = config.apps.get_mut("live").expect("the default application live");
        live.publish_tokens = vec!["pub-secret".into()];
        live.play_tokens = vec!["play-secret".into()];
    })
    .await
    .unwrap()
}

async fn connected(server: &ServerHandle, app: &str) -> RtmpClient {
    let mut client = RtmpClient::open(server.rtmp_addr(), ClientProfile::encoder())
        .await
        .unwrap();
    let status = client.connect(&server.rtmp_url(app), vec![]).await.unwrap();
    assert_eq!(status.code, code::CONNECT_SUCCESS, "{status:?}");
    client
}

#[tokio::test]
async fn rtmp_publishers_and_players_need_their_tokens() {
    let server = guarded_server().await;
    // No token, a wrong one, a play token: refused, in words that say why.
    let mut stranger = connected(&server, "live").await;
    let s = stranger.create_stream().await.unwrap();
    let refused = stranger.publish(s, "cam").await.unwrap();
    assert_eq!(refused.code, code::PUBLISH_BAD_NAME, "{refused:?}");
    assert_eq!(refused.description, "Publishing cam needs a token.");
    for wrong in ["cam?token=guess", "cam?token=play-secret"] {
        let s = stranger.create_stream().await.unwrap();
        let refused = stranger.publish(s, wrong).await.unwrap();
        assert_eq!(
            refused.description, "Publishing cam was refused: the token is not accepted.",
            "{wrong}"
        );
    }
    // The token in the stream name.
    let mut publisher = connected(&server, "live").await;
    let s = publisher.create_stream().await.unwrap();
    let started = publisher.publish(s, "cam?token=pub-secret").await.unwrap();
    assert_eq!(started.code, code::PUBLISH_START, "{started:?}");
    // Without its token, a second publisher learns nothing, not even that
    // the name is live; with it, the name is in use.
    let s = stranger.create_stream().await.unwrap();
    let refused = stranger.publish(s, "cam").await.unwrap();
    assert_eq!(refused.description, "Publishing cam needs a token.");
    let mut second = connected(&server, "live?token=pub-secret").await;
    let s2 = second.create_stream().await.unwrap();
    let in_use = second.publish(s2, "cam").await.unwrap();
    assert_eq!(
        in_use.description, "cam is already being published.",
        "the tcUrl's token counts"
    );
    // Players: the play token, in the name or the tcUrl.
    let p = stranger.create_stream().await.unwrap();
    let refused = stranger.play(p, "cam").await.unwrap();
    assert_eq!(refused.code, code::PLAY_FAILED, "{refused:?}");
    assert_eq!(refused.description, "Playing cam needs a token.");
    let p = stranger.create_stream().await.unwrap();
    let refused = stranger.play(p, "cam?token=pub-secret").await.unwrap();
    assert_eq!(
        refused.description,
        "Playing cam was refused: the token is not accepted."
    );
    let mut player = connected(&server, "live?token=play-secret").await;
    let p = player.create_stream().await.unwrap();
    player.play(p, "cam").await.unwrap();
    player.wait_status(p, code::PLAY_START, WAIT).await.unwrap();
    // An application without tokens is open, as before.
    let mut open = connected(&server, "flashStreamingApp").await;
    let s = open.create_stream().await.unwrap();
    assert_eq!(open.publish(s, "cam").await.unwrap().code, code::PUBLISH_START);
    server.shutdown().await;
}

#[tokio::test]
async fn whip_and_whep_want_a_bearer_token_and_say_so() {
    let server = guarded_server().await;
    let http = reqwest::Client::new();
    let whip = format!("{}/whip/live/cam", server.http_url());
    let offer = Offer::new(Endpoint::Whip, &OfferShape::default()).await.unwrap();
    let post = |token: Option<&str>| {
        let mut request = http
            .post(&whip)
            .header("Content-Type", "application/sdp")
            .body(offer.sdp().to_string());
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        request.send()
    };
    // RFC 9110 section 15.5.2: a 401 carries a challenge; RFC 6750 section
    // 3.1: invalid_token when one was presented.
    let missing = post(None).await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], r#"Bearer realm="media""#);
    assert_eq!(missing.text().await.unwrap(), "Publishing cam needs a token\n");
    let wrong = post(Some("play-secret")).await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.headers()["www-authenticate"],
        r#"Bearer realm="media", error="invalid_token""#
    );
    let created = post(Some("pub-secret")).await.unwrap();
    assert_eq!(created.status(), 201, "{:?}", created.text().await);
    let session = format!(
        "{}{}",
        server.http_url(),
        created.headers()["location"].to_str().unwrap()
    );
    // The session's own requests need the token too (RFC 9725, section 4.7).
    let delete = http.delete(&session).send().await.unwrap();
    assert_eq!(delete.status(), 401, "DELETE without the token");
    let delete = http
        .delete(&session)
        .header("Authorization", "Bearer pub-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 200, "DELETE with it");
    // WHEP: the play token; the scheme's name is case-insensitive; the
    // token may be in the URL instead (RFC 9725, section 4.7).
    let whep = format!("{}/whep/live/cam", server.http_url());
    let player_offer = Offer::new(Endpoint::Whep, &OfferShape::default()).await.unwrap();
    let refused = http
        .post(&whep)
        .header("Content-Type", "application/sdp")
        .header("Authorization", "Bearer pub-secret")
        .body(player_offer.sdp().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "a publish token does not let a player in");
    for (url, authorization) in [
        (whep.clone(), "bearer play-secret"),
        (format!("{whep}?token=play-secret"), ""),
    ] {
        let mut request = http
            .post(&url)
            .header("Content-Type", "application/sdp")
            .body(player_offer.sdp().to_string());
        if !authorization.is_empty() {
            request = request.header("Authorization", authorization);
        }
        let answer = request.send().await.unwrap();
        // Past the token, the player meets the usual answer for a stream
        // nobody publishes (WHEP draft 03, section 4.3.8).
        assert_eq!(answer.status(), 409, "{url} {authorization}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_websocket_channel_takes_the_token_from_connect_or_the_stream_name() {
    let server = guarded_server().await;
    let url = format!("ws://{}/ws", server.http_addr());
    let offer = Offer::new(Endpoint::Whip, &OfferShape::default()).await.unwrap();
    let mut statuses = Vec::new();
    for (params, stream) in [
        (serde_json::json!({}), "cam"),
        (serde_json::json!({"token": "pub-secret"}), "cam"),
        (serde_json::json!({}), "cam2?token=pub-secret"),
    ] {
        let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let connect = serde_json::json!({"type": "connect", "appKey": "live", "params": params});
        socket.send(WsMessage::text(connect.to_string())).await.unwrap();
        let publish = serde_json::json!({"type": "publish", "id": "1", "stream": stream, "sdp": offer.sdp()});
        socket.send(WsMessage::text(publish.to_string())).await.unwrap();
        let outcome = tokio::time::timeout(WAIT, async {
            while let Some(Ok(message)) = socket.next().await {
                let Ok(text) = message.into_text() else { continue };
                let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                match event["type"].as_str() {
                    Some("answer") => return "answer".to_string(),
                    Some("stream") if event["status"] == "FAILED" => return event["info"].to_string(),
                    _ => {}
                }
            }
            "closed".to_string()
        })
        .await
        .unwrap();
        statuses.push(outcome);
    }
    assert_eq!(statuses, [r#""Publishing cam needs a token""#, "answer", "answer"]);
    server.shutdown().await;
}
