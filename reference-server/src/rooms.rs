//! Rooms, after WCS's Room API: participants join a named room of an
//! application and learn who is there (`STATE`), who comes and goes
//! (`JOINED`, `LEFT`), who publishes what (`PUBLISHED`), and exchange text
//! (`MESSAGE`); a request that cannot be met gets `FAILED` with the reason.
//! RTMP clients reach it through `sendData` calls and get `onRoomEvent`
//! calls back; WebSocket clients send `joinRoom`, `leaveRoom` and
//! `sendMessage` and get `{"type": "room", ...}` (docs/rooms.md).
//!
//! A connection joins through a [`Membership`]; dropping it (the client
//! left, or its connection dropped) tells the others `LEFT`. Every stream the
//! connection publishes while a member is announced as `PUBLISHED`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::RoomPolicy;

/// Events queued for one participant; a client that does not read them
/// loses the newest rather than make the server hold more.
pub const EVENT_QUEUE: usize = 256;

/// Longest room or participant name, in bytes.
pub const MAX_NAME: usize = 128;

/// Longest text message, in bytes.
pub const MAX_TEXT: usize = 16 * 1024;

/// Most rooms one connection may be in at once.
pub const MAX_ROOMS_PER_CONNECTION: usize = 16;

/// What happened in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventKind {
    /// The others in the room, to a participant that has just joined.
    State,
    /// A participant joined.
    Joined,
    /// A participant left or its connection dropped.
    Left,
    /// A participant publishes a stream.
    Published,
    /// A text message.
    Message,
    /// A request of this participant failed; `info` says why.
    Failed,
}

/// A participant as `STATE` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantState {
    /// Its name in the room.
    pub name: String,
    /// The streams it publishes.
    pub streams: Vec<String>,
}

/// One event, as a participant receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomEvent {
    /// The room.
    pub room: String,
    /// What happened.
    pub event: EventKind,
    /// Who joined, left or published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
    /// The stream a participant published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Who sent a message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// A message's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Why a request failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
    /// The others in the room (`STATE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participants: Option<Vec<ParticipantState>>,
}

impl RoomEvent {
    fn new(room: &str, event: EventKind) -> RoomEvent {
        RoomEvent {
            room: room.to_string(),
            event,
            participant: None,
            stream: None,
            from: None,
            text: None,
            info: None,
            participants: None,
        }
    }

    /// A `FAILED` event for a request about `room`.
    pub fn failed(room: &str, info: impl Into<String>) -> RoomEvent {
        RoomEvent {
            info: Some(info.into()),
            ..RoomEvent::new(room, EventKind::Failed)
        }
    }

    /// The event as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Why a room request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The name is taken in that room.
    #[error("participant name '{name}' is already taken in room '{room}'")]
    NameTaken {
        /// The room.
        room: String,
        /// The name.
        name: String,
    },
    /// Empty or too long.
    #[error("{what} must be 1 to {MAX_NAME} bytes")]
    BadName {
        /// "room name" or "participant name".
        what: &'static str,
    },
    /// The application does not allow rooms.
    #[error("application '{0}' has no rooms (rooms = \"off\")")]
    Disabled(String),
    /// The connection is not in that room.
    #[error("not a participant of room '{0}'")]
    NotJoined(String),
    /// The connection already is in that room.
    #[error("already a participant of room '{0}'")]
    AlreadyJoined(String),
    /// A message addressed to nobody in the room.
    #[error("no participant '{to}' in room '{room}'")]
    NoSuchParticipant {
        /// The room.
        room: String,
        /// The addressee.
        to: String,
    },
    /// Too long a text.
    #[error("messages are at most {MAX_TEXT} bytes")]
    TextTooLong,
    /// The connection is in as many rooms as it may be.
    #[error("a connection may be in at most {MAX_ROOMS_PER_CONNECTION} rooms")]
    TooManyRooms,
}

/// What a client asks of the rooms: the `method` of a `sendData` object
/// (RTMP) or of a `{"type": "room"}` message (WebSocket).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "method", rename_all = "camelCase")]
pub enum RoomRequest {
    /// Join `room` as `name`.
    JoinRoom {
        /// The room.
        room: String,
        /// The participant's name, unique in the room.
        name: String,
    },
    /// Leave `room`.
    LeaveRoom {
        /// The room.
        room: String,
    },
    /// Send `text` to the others in `room` (or only to `to`).
    SendMessage {
        /// The room.
        room: String,
        /// The text.
        text: String,
        /// One participant, instead of all.
        #[serde(default)]
        to: Option<String>,
    },
}

impl RoomRequest {
    /// The room it is about.
    pub fn room(&self) -> &str {
        match self {
            RoomRequest::JoinRoom { room, .. }
            | RoomRequest::LeaveRoom { room }
            | RoomRequest::SendMessage { room, .. } => room,
        }
    }
}

/// One connection's side of the rooms: its memberships, and the queue its
/// events arrive on (the connection forwards them to its client).
pub struct RoomClient {
    rooms: Arc<Rooms>,
    app: String,
    policy: RoomPolicy,
    memberships: HashMap<String, Membership>,
    /// The queue of events for this connection's client, made when it
    /// first joins a room (only then can events come: the sender is handed
    /// out on joining). A connection that never joins one has no queue to
    /// keep or to look at.
    queue: Option<(mpsc::Sender<RoomEvent>, mpsc::Receiver<RoomEvent>)>,
}

impl RoomClient {
    /// Whether it may have room events to deliver: it is in a room, or
    /// events came before it left its last one.
    pub fn has_events(&self) -> bool {
        self.queue
            .as_ref()
            .is_some_and(|(_, events)| !self.memberships.is_empty() || !events.is_empty())
    }

    /// A connection of application `app` with `policy`.
    pub fn new(rooms: Arc<Rooms>, app: &str, policy: RoomPolicy) -> RoomClient {
        RoomClient {
            rooms,
            app: app.to_string(),
            policy,
            memberships: HashMap::new(),
            queue: None,
        }
    }

    /// Carries out a request; the caller tells its client of an error (a
    /// `FAILED` event made by [`RoomEvent::failed`]).
    pub fn request(&mut self, request: RoomRequest) -> Result<(), RoomError> {
        if self.policy == RoomPolicy::Off {
            return Err(RoomError::Disabled(self.app.clone()));
        }
        match request {
            RoomRequest::JoinRoom { room, name } => {
                if self.memberships.contains_key(&room) {
                    return Err(RoomError::AlreadyJoined(room));
                }
                if self.memberships.len() >= MAX_ROOMS_PER_CONNECTION {
                    return Err(RoomError::TooManyRooms);
                }
                let (sender, _) = self.queue.get_or_insert_with(|| mpsc::channel(EVENT_QUEUE));
                let membership = self.rooms.join(&self.app, &room, &name, sender.clone())?;
                self.memberships.insert(room, membership);
            }
            RoomRequest::LeaveRoom { room } => {
                self.memberships.remove(&room).ok_or(RoomError::NotJoined(room))?;
            }
            RoomRequest::SendMessage { room, text, to } => {
                let membership = self.memberships.get(&room).ok_or(RoomError::NotJoined(room))?;
                membership.message(&text, to.as_deref())?;
            }
        }
        Ok(())
    }

    /// Announces in every room joined that this connection publishes `stream`.
    pub fn published(&self, stream: &str) {
        for membership in self.memberships.values() {
            membership.published(stream);
        }
    }
}

/// The next event for a connection's client from the rooms it joined;
/// never, while it has no [`RoomClient`] (before connect) or has not
/// joined a room.
pub async fn next_event(client: &mut Option<RoomClient>) -> Option<RoomEvent> {
    match client {
        Some(RoomClient {
            queue: Some((_, events)),
            ..
        }) => events.recv().await,
        _ => std::future::pending().await,
    }
}

type Key = (String, String);

struct Member {
    events: mpsc::Sender<RoomEvent>,
    streams: Vec<String>,
}

/// Every room of every application.
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<Key, BTreeMap<String, Member>>>,
    /// The room bugs switched back on (see [`crate::config::Quirks`]).
    quirks: crate::config::Quirks,
}

impl Rooms {
    /// No rooms yet; `quirks` switches known bugs back on.
    pub fn new(quirks: crate::config::Quirks) -> Rooms {
        Rooms {
            rooms: Mutex::default(),
            quirks,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, BTreeMap<String, Member>>> {
        self.rooms.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Joins `room` of `app` as `name`; events for this participant go to
    /// `events`, starting with `STATE`. The others get `JOINED`.
    pub fn join(
        self: &Arc<Self>,
        app: &str,
        room: &str,
        name: &str,
        events: mpsc::Sender<RoomEvent>,
    ) -> Result<Membership, RoomError> {
        for (what, value) in [("room name", room), ("participant name", name)] {
            if value.is_empty() || value.len() > MAX_NAME {
                return Err(RoomError::BadName { what });
            }
        }
        let key = (app.to_string(), room.to_string());
        let mut rooms = self.lock();
        let members = rooms.entry(key.clone()).or_default();
        if members.contains_key(name) && !self.quirks.duplicate_participants {
            return Err(RoomError::NameTaken {
                room: room.into(),
                name: name.into(),
            });
        }
        let state = RoomEvent {
            participants: Some(
                members
                    .iter()
                    .map(|(name, m)| ParticipantState {
                        name: name.clone(),
                        streams: m.streams.clone(),
                    })
                    .collect(),
            ),
            ..RoomEvent::new(room, EventKind::State)
        };
        deliver(&events, state);
        let joined = RoomEvent {
            participant: Some(name.to_string()),
            ..RoomEvent::new(room, EventKind::Joined)
        };
        if !self.quirks.silent_joins {
            broadcast(members, None, &joined);
        }
        members.insert(
            name.to_string(),
            Member {
                events,
                streams: Vec::new(),
            },
        );
        tracing::info!(%app, %room, participant = %name, "joined a room");
        Ok(Membership {
            rooms: self.clone(),
            key,
            name: name.to_string(),
        })
    }

    /// The participants of a room now, with their streams.
    pub fn participants(&self, app: &str, room: &str) -> Vec<ParticipantState> {
        self.lock()
            .get(&(app.to_string(), room.to_string()))
            .map(|members| {
                members
                    .iter()
                    .map(|(name, m)| ParticipantState {
                        name: name.clone(),
                        streams: m.streams.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A connection's place in a room; leaving is dropping it.
pub struct Membership {
    rooms: Arc<Rooms>,
    key: Key,
    name: String,
}

impl Membership {
    /// The room's name.
    pub fn room(&self) -> &str {
        &self.key.1
    }

    /// Sends `text` to everyone else in the room, or only to `to`.
    pub fn message(&self, text: &str, to: Option<&str>) -> Result<(), RoomError> {
        if text.len() > MAX_TEXT {
            return Err(RoomError::TextTooLong);
        }
        let rooms = self.rooms.lock();
        let Some(members) = rooms.get(&self.key) else {
            return Ok(());
        };
        let event = RoomEvent {
            from: Some(self.name.clone()),
            text: Some(text.to_string()),
            ..RoomEvent::new(self.room(), EventKind::Message)
        };
        match to {
            Some(to) => match members.get(to) {
                Some(member) => deliver(&member.events, event),
                None => {
                    return Err(RoomError::NoSuchParticipant {
                        room: self.room().into(),
                        to: to.into(),
                    })
                }
            },
            None => broadcast(members, Some(&self.name), &event),
        }
        Ok(())
    }

    /// Announces that this participant publishes `stream`.
    pub fn published(&self, stream: &str) {
        let mut rooms = self.rooms.lock();
        let Some(members) = rooms.get_mut(&self.key) else {
            return;
        };
        if let Some(me) = members.get_mut(&self.name) {
            if !me.streams.iter().any(|s| s == stream) {
                me.streams.push(stream.to_string());
            }
        }
        let event = RoomEvent {
            participant: Some(self.name.clone()),
            stream: Some(stream.to_string()),
            ..RoomEvent::new(self.room(), EventKind::Published)
        };
        broadcast(members, Some(&self.name), &event);
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut rooms = self.rooms.lock();
        let Some(members) = rooms.get_mut(&self.key) else {
            return;
        };
        members.remove(&self.name);
        let left = RoomEvent {
            participant: Some(self.name.clone()),
            ..RoomEvent::new(&self.key.1, EventKind::Left)
        };
        broadcast(members, None, &left);
        if members.is_empty() {
            rooms.remove(&self.key);
        }
        tracing::info!(app = %self.key.0, room = %self.key.1, participant = %self.name, "left a room");
    }
}

fn broadcast(members: &BTreeMap<String, Member>, except: Option<&str>, event: &RoomEvent) {
    for (name, member) in members {
        if Some(name.as_str()) != except {
            deliver(&member.events, event.clone());
        }
    }
}

fn deliver(events: &mpsc::Sender<RoomEvent>, event: RoomEvent) {
    if let Err(mpsc::error::TrySendError::Full(event)) = events.try_send(event) {
        tracing::warn!(room = %event.room, event = ?event.event, "a participant's room events are not read: dropped one");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn participant(rooms: &Arc<Rooms>, name: &str) -> (Membership, mpsc::Receiver<RoomEvent>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        (rooms.join("app", "r1", name, tx).unwrap(), rx)
    }

    fn kinds(rx: &mut mpsc::Receiver<RoomEvent>) -> Vec<(EventKind, Option<String>)> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| (e.event, e.participant.or(e.from)))
            .collect()
    }

    #[test]
    fn joining_leaving_publishing_and_messages_reach_the_others() {
        let rooms = Arc::new(Rooms::default());
        let (alice, mut alice_rx) = participant(&rooms, "alice");
        let (bob, mut bob_rx) = participant(&rooms, "bob");
        alice.published("alice-cam");
        bob.message("hi", None).unwrap();
        assert_eq!(
            kinds(&mut alice_rx),
            [
                (EventKind::State, None),
                (EventKind::Joined, Some("bob".into())),
                (EventKind::Message, Some("bob".into()))
            ]
        );
        assert_eq!(
            kinds(&mut bob_rx),
            [(EventKind::State, None), (EventKind::Published, Some("alice".into()))]
        );
        let (_carol, mut carol_rx) = participant(&rooms, "carol");
        let state = carol_rx.try_recv().unwrap();
        assert_eq!(
            state.participants.unwrap(),
            [
                ParticipantState {
                    name: "alice".into(),
                    streams: vec!["alice-cam".into()]
                },
                ParticipantState {
                    name: "bob".into(),
                    streams: vec![]
                }
            ]
        );
        drop(bob);
        assert_eq!(
            kinds(&mut alice_rx),
            [
                (EventKind::Joined, Some("carol".into())),
                (EventKind::Left, Some("bob".into()))
            ]
        );
        assert_eq!(
            rooms.join("app", "r1", "alice", mpsc::channel(1).0).err(),
            Some(RoomError::NameTaken {
                room: "r1".into(),
                name: "alice".into()
            })
        );
        assert!(matches!(
            alice.message("x", Some("bob")),
            Err(RoomError::NoSuchParticipant { .. })
        ));
    }

    #[test]
    fn a_client_is_refused_what_its_application_or_membership_does_not_allow() {
        let rooms = Arc::new(Rooms::default());
        let join = |room: &str, name: &str| RoomRequest::JoinRoom {
            room: room.into(),
            name: name.into(),
        };
        let mut off = RoomClient::new(rooms.clone(), "app", RoomPolicy::Off);
        assert_eq!(off.request(join("r1", "a")), Err(RoomError::Disabled("app".into())));
        let mut client = RoomClient::new(rooms.clone(), "app", RoomPolicy::Open);
        let leave = RoomRequest::LeaveRoom { room: "r1".into() };
        assert_eq!(client.request(leave.clone()), Err(RoomError::NotJoined("r1".into())));
        client.request(join("r1", "a")).unwrap();
        assert_eq!(
            client.request(join("r1", "b")),
            Err(RoomError::AlreadyJoined("r1".into()))
        );
        assert_eq!(
            client.queue.as_mut().unwrap().1.try_recv().map(|e| e.event),
            Ok(EventKind::State)
        );
        client.request(leave).unwrap();
        assert!(rooms.participants("app", "r1").is_empty());
        let request: RoomRequest =
            serde_json::from_value(serde_json::json!({"method": "sendMessage", "room": "r1", "text": "hi"})).unwrap();
        assert_eq!(
            request,
            RoomRequest::SendMessage {
                room: "r1".into(),
                text: "hi".into(),
                to: None
            }
        );
    }

    #[test]
    fn an_empty_room_is_forgotten_and_names_are_bounded() {
        let rooms = Arc::new(Rooms::default());
        drop(participant(&rooms, "alone"));
        assert!(rooms.lock().is_empty());
        let long = "x".repeat(MAX_NAME + 1);
        assert!(matches!(
            rooms.join("app", &long, "a", mpsc::channel(1).0),
            Err(RoomError::BadName { .. })
        ));
    }
}
