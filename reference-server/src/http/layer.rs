//! WHEP's video layer selection extension (the WHEP extensions draft,
//! section "Video Layer Selection extension"). A player's `201 Created`
//! carries a `Link` to `{session}/layer`; the `layers` server-sent event
//! (see [`super::events`]) lists the layers; a `POST` of a JSON object picks
//! one for the session's video m-line.
//!
//! Here a layer is a video track of an Enhanced RTMP multitrack stream (a
//! rendition of the publisher's ladder), its `rid` the track id: `"0"` for
//! the main track, `"1"`, `"2"`... The stream has no simulcast or scalable
//! layers, so `spatialLayerId` and `temporalLayerId` are refused. A switch
//! takes effect at once: the track's sequence header, then its cached
//! keyframe and the pictures since (or its next keyframe when none is
//! cached). An object without `rid` (nor `maxWidth` or
//! `maxHeight`) goes back to the track the session started with.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::whep::player_session_at;
use crate::hub::VideoLayer;
use crate::server::Context;
use crate::webrtc::SessionHandle;

/// The `rel` of the `Link` that announces the extension.
pub const REL: &str = "urn:ietf:params:whep:ext:core:layer";

/// The `Link` header of a player session at `session_url`.
pub fn link(session_url: &str) -> String {
    format!("<{session_url}/layer>; rel=\"{REL}\"")
}

/// A layer selection request: a `POST`'s body, or the fields of a
/// WebSocket `layer` message.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Request {
    /// The m-line's index, as a string (default: the video m-line).
    media_id: Option<String>,
    rid: Option<String>,
    spatial_layer_id: Option<u32>,
    temporal_layer_id: Option<u32>,
    max_spatial_layer_id: Option<u32>,
    max_temporal_layer_id: Option<u32>,
    max_width: Option<u32>,
    max_height: Option<u32>,
}

/// What a request asks for: a track, or the session's first one.
fn choose(request: &Request, video_line: Option<usize>, layers: &[VideoLayer]) -> Result<Option<u8>, String> {
    let line = video_line.ok_or("this session has no video m-line")?;
    if let Some(media_id) = &request.media_id {
        if *media_id != line.to_string() {
            return Err(format!(
                "mediaId {:?} is not this session's video m-line ({line})",
                crate::text::Clipped(media_id).to_string()
            ));
        }
    }
    if request.spatial_layer_id.is_some()
        || request.temporal_layer_id.is_some()
        || request.max_spatial_layer_id.is_some()
        || request.max_temporal_layer_id.is_some()
    {
        return Err(
            "this stream has no spatial or temporal layers: its layers are its video tracks, chosen by rid".into(),
        );
    }
    let rids = || {
        layers
            .iter()
            .map(|l| l.track.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(rid) = &request.rid {
        return match layers.iter().find(|l| l.track.to_string() == *rid) {
            Some(layer) => Ok(Some(layer.track)),
            None => Err(format!(
                "no layer with rid {:?} (the stream's: {})",
                crate::text::Clipped(rid).to_string(),
                rids()
            )),
        };
    }
    if request.max_width.is_none() && request.max_height.is_none() {
        return Ok(None);
    }
    let fits = |&(width, height): &(u32, u32)| {
        request.max_width.is_none_or(|max| width <= max) && request.max_height.is_none_or(|max| height <= max)
    };
    layers
        .iter()
        .filter_map(|l| Some((l.track, l.size?)))
        .filter(|(_, size)| fits(size))
        .max_by_key(|(_, (width, height))| u64::from(*width) * u64::from(*height))
        .map(|(track, _)| Some(track))
        .ok_or_else(|| "no layer of a known size fits maxWidth and maxHeight".into())
}

/// `POST {session}/layer`: switches the session's video to a layer.
pub async fn select(
    State(ctx): State<Arc<Context>>,
    Path(path): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: String,
) -> Response {
    let session = match player_session_at(&ctx, &path, &headers, query.as_deref(), "layers to select") {
        Ok(session) => session,
        Err(refused) => return refused.into_response(),
    };
    let request: Request = match body.trim() {
        "" => Request::default(),
        body => match serde_json::from_str(body) {
            Ok(request) => request,
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    "the body is not a JSON layer selection object\n",
                )
                    .into_response()
            }
        },
    };
    match select_for(&ctx, &session, &request) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    }
}

/// Switches a player `session` to the layer `request` asks for (over WHEP
/// or the WebSocket channel); returns the track chosen (`None`: the one it
/// started with), or why the request is refused.
pub(crate) fn select_for(ctx: &Context, session: &SessionHandle, request: &Request) -> Result<Option<u8>, String> {
    let layers = ctx.hub.video_layers(&session.app, &session.stream);
    match choose(request, session.video_line, &layers) {
        Ok(track) => {
            tracing::info!(session = %session.id, ?track, "video layer selected");
            // The quirk: the answer says yes, the pictures stay the same.
            if !ctx.config.quirks.track_selection_ignored {
                session.select_video_track(track);
            }
            Ok(track)
        }
        Err(why) => {
            tracing::info!(session = %session.id, reason = %why, "video layer selection refused");
            Err(why)
        }
    }
}

/// The stream's layers as the `layers` event lists them, bitrates aside:
/// `[{"rid": "0", "width": 320, "height": 240}, ...]`.
pub(crate) fn listed(ctx: &Context, session: &SessionHandle) -> serde_json::Value {
    let layers = ctx.hub.video_layers(&session.app, &session.stream);
    layers.iter().map(entry).collect()
}

fn entry(layer: &VideoLayer) -> serde_json::Value {
    let mut entry = serde_json::json!({ "rid": layer.track.to_string() });
    if let Some((width, height)) = layer.size {
        entry["width"] = width.into();
        entry["height"] = height.into();
    }
    entry
}

/// The `layers` event's data: the session's video m-line and its layers,
/// each with its bitrate over the last `seconds` (from `before`, the bytes
/// of each track then).
pub fn event_data(video_line: usize, layers: &[VideoLayer], before: &[VideoLayer], seconds: f64) -> String {
    let entries: Vec<serde_json::Value> = layers
        .iter()
        .map(|layer| {
            let was = before
                .iter()
                .find(|b| b.track == layer.track)
                .map_or(layer.bytes, |b| b.bytes);
            let bitrate = ((layer.bytes.saturating_sub(was)) as f64 * 8.0 / seconds.max(0.001)).round() as u64;
            let mut entry = entry(layer);
            entry["bitrate"] = bitrate.into();
            entry
        })
        .collect();
    serde_json::json!({ video_line.to_string(): entries }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LADDER: [VideoLayer; 2] = [
        VideoLayer {
            track: 0,
            bytes: 1000,
            size: Some((320, 240)),
        },
        VideoLayer {
            track: 1,
            bytes: 4000,
            size: Some((640, 360)),
        },
    ];

    fn request(json: &str) -> Request {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_request_picks_a_track_by_rid_or_size_or_goes_back_to_the_first() {
        let choose = |json: &str| choose(&request(json), Some(1), &LADDER);
        assert_eq!(choose(r#"{"mediaId":"1","rid":"1"}"#), Ok(Some(1)));
        assert_eq!(choose(r#"{"rid":"0"}"#), Ok(Some(0)));
        assert_eq!(choose(r#"{"mediaId":"1"}"#), Ok(None));
        assert_eq!(choose(r#"{"maxWidth":640}"#), Ok(Some(1)));
        assert_eq!(choose(r#"{"maxHeight":300}"#), Ok(Some(0)));
        assert!(choose(r#"{"maxWidth":100}"#).is_err());
        assert_eq!(
            choose(r#"{"rid":"hd"}"#).unwrap_err(),
            "no layer with rid \"hd\" (the stream's: 0, 1)"
        );
        assert!(choose(r#"{"mediaId":"0","rid":"1"}"#)
            .unwrap_err()
            .contains("not this session's video m-line"));
        assert!(choose(r#"{"spatialLayerId":1}"#)
            .unwrap_err()
            .contains("no spatial or temporal layers"));
    }

    #[test]
    fn the_layers_event_gives_rid_bitrate_and_size() {
        let before = [
            VideoLayer { bytes: 0, ..LADDER[0] },
            VideoLayer { bytes: 0, ..LADDER[1] },
        ];
        assert_eq!(
            event_data(1, &LADDER, &before, 2.0),
            r#"{"1":[{"bitrate":4000,"height":240,"rid":"0","width":320},{"bitrate":16000,"height":360,"rid":"1","width":640}]}"#
        );
        assert_eq!(
            link("/whep/live/cam/s1"),
            "</whep/live/cam/s1/layer>; rel=\"urn:ietf:params:whep:ext:core:layer\""
        );
    }
}
