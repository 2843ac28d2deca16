//! The classic protocol of `@socket.io/redis-adapter` (protocol.md §3) in terms of the engine's
//! cluster messages: what to publish for each message, and what each received payload means.
//! No I/O here.

use std::{
    collections::{HashMap, VecDeque},
    sync::atomic::{AtomicU64, Ordering},
};

use bytes::Bytes;
use switchboard_wire::{
    Body, ClusterMessage, DecodeError, Limits, Opts, PacketObject,
    redis::{
        ClassicBroadcast, ClassicChannels, ClassicRequest, ClassicResponse, RequestBody,
        ResponseBody,
    },
};

/// What a node asked for, when its answer takes another shape than a FETCH_SOCKETS_RESPONSE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// legacy SOCKETS (type 0): `{requestId, sockets: [sid]}`
    SocketIds,
    /// ALL_ROOMS (type 1): `{requestId, rooms}`
    Rooms,
}

/// Requests of other nodes being answered whose answer shape differs from the engine's: bounded.
#[derive(Debug, Default)]
pub(crate) struct Shapes {
    map: HashMap<String, Shape>,
    order: VecDeque<String>,
}

const MAX_SHAPES: usize = 4096;

impl Shapes {
    fn remember(&mut self, request_id: &str, shape: Shape) {
        if self.map.insert(request_id.to_owned(), shape).is_none() {
            self.order.push_back(request_id.to_owned());
        }
        while self.order.len() > MAX_SHAPES {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    fn take(&mut self, request_id: &str) -> Option<Shape> {
        let shape = self.map.remove(request_id)?;
        self.order.retain(|r| r != request_id);
        Some(shape)
    }
}

/// One namespace's view of the classic protocol.
#[derive(Debug)]
pub(crate) struct Classic {
    pub(crate) channels: ClassicChannels,
    pub(crate) nsp: String,
    pub(crate) uid: String,
    pub(crate) specific_responses: bool,
}

/// A payload to publish.
#[derive(Debug, PartialEq)]
pub(crate) struct Out {
    pub(crate) channel: String,
    pub(crate) payload: Bytes,
}

fn without_flags(mut opts: Opts) -> Opts {
    // Node's classic requests carry `{rooms, except}` only
    opts.flags = None;
    opts
}

fn with_nsp(mut packet: PacketObject, nsp: &str) -> PacketObject {
    packet.nsp = Some(nsp.to_owned());
    packet
}

/// A uid for each classic response: they do not say who sent them, and the engine counts
/// answers by sender.
static RESPONDERS: AtomicU64 = AtomicU64::new(0);

fn responder() -> String {
    format!(
        "redis-response-{}",
        RESPONDERS.fetch_add(1, Ordering::Relaxed)
    )
}

impl Classic {
    /// What to publish for a message to every other node; `None` for messages the classic
    /// protocol does not carry (heartbeats: liveness comes from subscriber counts).
    pub(crate) fn publish(&self, message: ClusterMessage) -> Option<Out> {
        let request = |request_id: Option<String>, body: RequestBody| ClassicRequest {
            uid: Some(self.uid.clone()),
            request_id,
            body,
        };
        let (channel, payload) = match message.body {
            Body::Broadcast {
                packet,
                request_id: None,
                opts,
            } => {
                let channel = self.channels.for_rooms(&opts.rooms);
                let b = ClassicBroadcast {
                    uid: self.uid.clone(),
                    packet: with_nsp(packet, &self.nsp),
                    opts,
                };
                (channel, b.to_msgpack())
            }
            Body::Broadcast {
                packet,
                request_id: Some(id),
                opts,
            } => {
                let body = RequestBody::Broadcast {
                    packet: with_nsp(packet, &self.nsp),
                    opts,
                };
                (
                    self.channels.request().to_owned(),
                    request(Some(id), body).encode(),
                )
            }
            Body::SocketsJoin { opts, rooms } => {
                let body = RequestBody::RemoteJoin {
                    opts: without_flags(opts),
                    rooms,
                };
                (
                    self.channels.request().to_owned(),
                    request(None, body).encode(),
                )
            }
            Body::SocketsLeave { opts, rooms } => {
                let body = RequestBody::RemoteLeave {
                    opts: without_flags(opts),
                    rooms,
                };
                (
                    self.channels.request().to_owned(),
                    request(None, body).encode(),
                )
            }
            Body::DisconnectSockets { opts, close } => {
                let body = RequestBody::RemoteDisconnect {
                    opts: without_flags(opts),
                    close: close.unwrap_or(false),
                };
                (
                    self.channels.request().to_owned(),
                    request(None, body).encode(),
                )
            }
            Body::FetchSockets { opts, request_id } => {
                let body = RequestBody::RemoteFetch {
                    opts: without_flags(opts),
                };
                (
                    self.channels.request().to_owned(),
                    request(Some(request_id), body).encode(),
                )
            }
            Body::ServerSideEmit { request_id, packet } => {
                let body = RequestBody::ServerSideEmit { data: packet };
                (
                    self.channels.request().to_owned(),
                    request(request_id, body).encode(),
                )
            }
            _ => return None,
        };
        Some(Out {
            channel,
            payload: Bytes::from(payload),
        })
    }

    /// What to publish for a response to node `to`.
    pub(crate) fn respond(
        &self,
        to: &str,
        message: ClusterMessage,
        shapes: &mut Shapes,
    ) -> Option<Out> {
        let channel = if self.specific_responses {
            self.channels.response_to(to)
        } else {
            self.channels.response().to_owned()
        };
        let (channel, response) = match message.body {
            Body::FetchSocketsResponse {
                request_id,
                sockets,
            } => {
                let body = match shapes.take(&request_id) {
                    Some(Shape::SocketIds) => {
                        ResponseBody::SocketIds(sockets.into_iter().map(|s| s.id).collect())
                    }
                    Some(Shape::Rooms) => {
                        let mut rooms: Vec<String> =
                            sockets.into_iter().flat_map(|s| s.rooms).collect();
                        rooms.sort();
                        rooms.dedup();
                        ResponseBody::Rooms(rooms)
                    }
                    None => ResponseBody::Sockets(sockets),
                };
                (channel, ClassicResponse { request_id, body })
            }
            // Node always answers serverSideEmit on the shared channel
            Body::ServerSideEmitResponse { request_id, packet } => (
                self.channels.response().to_owned(),
                ClassicResponse {
                    request_id,
                    body: ResponseBody::ServerSideEmit(packet),
                },
            ),
            Body::BroadcastClientCount {
                request_id,
                client_count,
            } => (
                channel,
                ClassicResponse {
                    request_id,
                    body: ResponseBody::ClientCount(client_count),
                },
            ),
            Body::BroadcastAck { request_id, packet } => (
                channel,
                ClassicResponse {
                    request_id,
                    body: ResponseBody::Ack(packet),
                },
            ),
            _ => return None,
        };
        Some(Out {
            channel,
            payload: Bytes::from(response.encode()),
        })
    }

    /// A payload received on `channel`, as a cluster message for the engine; `Ok(None)` for
    /// payloads to ignore (our own, answers to requests we did not make in a form we never ask).
    pub(crate) fn receive(
        &self,
        channel: &str,
        payload: &[u8],
        limits: &Limits,
        shapes: &mut Shapes,
    ) -> Result<Option<ClusterMessage>, DecodeError> {
        let message = |uid: String, body: Body| Some(ClusterMessage::new(uid, &self.nsp, body));
        if channel == self.channels.request() {
            let r = ClassicRequest::decode(payload, limits)?;
            let uid = r
                .uid
                .unwrap_or_else(|| switchboard_wire::ids::EMITTER_UID.to_owned());
            if uid == self.uid {
                return Ok(None);
            }
            let id = r.request_id;
            let need_id = || {
                id.clone().ok_or(DecodeError::Field {
                    field: "requestId",
                    expected: "a request id",
                })
            };
            let sid_opts = |sid: String| Opts::to_rooms(vec![sid]);
            let body = match r.body {
                RequestBody::Sockets { rooms } => {
                    let id = need_id()?;
                    shapes.remember(&id, Shape::SocketIds);
                    Body::FetchSockets {
                        opts: Opts::to_rooms(rooms),
                        request_id: id,
                    }
                }
                RequestBody::AllRooms => {
                    let id = need_id()?;
                    shapes.remember(&id, Shape::Rooms);
                    Body::FetchSockets {
                        opts: Opts::to_rooms(vec![]),
                        request_id: id,
                    }
                }
                RequestBody::RemoteJoin { opts, rooms } => Body::SocketsJoin { opts, rooms },
                RequestBody::RemoteLeave { opts, rooms } => Body::SocketsLeave { opts, rooms },
                RequestBody::RemoteDisconnect { opts, close } => Body::DisconnectSockets {
                    opts,
                    close: Some(close),
                },
                RequestBody::LegacyJoin { sid, room } => Body::SocketsJoin {
                    opts: sid_opts(sid),
                    rooms: vec![room],
                },
                RequestBody::LegacyLeave { sid, room } => Body::SocketsLeave {
                    opts: sid_opts(sid),
                    rooms: vec![room],
                },
                RequestBody::LegacyDisconnect { sid, close } => Body::DisconnectSockets {
                    opts: sid_opts(sid),
                    close: Some(close),
                },
                RequestBody::RemoteFetch { opts } => Body::FetchSockets {
                    opts,
                    request_id: need_id()?,
                },
                RequestBody::ServerSideEmit { data } => Body::ServerSideEmit {
                    request_id: id,
                    packet: data,
                },
                RequestBody::Broadcast { packet, opts } => Body::Broadcast {
                    packet,
                    request_id: Some(need_id()?),
                    opts,
                },
                _ => return Ok(None),
            };
            return Ok(message(uid, body));
        }
        if channel == self.channels.response() || channel == self.channels.response_to(&self.uid) {
            let r = ClassicResponse::decode(payload, limits)?;
            let request_id = r.request_id;
            let body = match r.body {
                ResponseBody::Sockets(sockets) => Body::FetchSocketsResponse {
                    request_id,
                    sockets,
                },
                ResponseBody::ServerSideEmit(packet) => {
                    Body::ServerSideEmitResponse { request_id, packet }
                }
                ResponseBody::ClientCount(client_count) => Body::BroadcastClientCount {
                    request_id,
                    client_count,
                },
                ResponseBody::Ack(packet) => Body::BroadcastAck { request_id, packet },
                // answers to requests this implementation never sends
                _ => return Ok(None),
            };
            return Ok(message(responder(), body));
        }
        // a broadcast on P#N# or P#N#<room>#; this server's own come back through the pattern
        // subscription (about a fifth of an emit's instructions went to decoding them): dropped
        // from their first bytes
        if ClassicBroadcast::peek_uid(payload) == Some(self.uid.as_str()) {
            return Ok(None);
        }
        let b = ClassicBroadcast::from_msgpack(payload, limits)?;
        if b.uid == self.uid || b.packet.nsp.as_deref().is_some_and(|n| n != self.nsp) {
            return Ok(None);
        }
        Ok(message(
            b.uid,
            Body::Broadcast {
                packet: b.packet,
                request_id: None,
                opts: b.opts,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use switchboard_wire::{SocketDetails, Value};

    use super::*;

    fn ns() -> Classic {
        Classic {
            channels: ClassicChannels::new("socket.io", "/"),
            nsp: "/".into(),
            uid: "0123456789abcdef".into(),
            specific_responses: false,
        }
    }

    fn text(out: &Out) -> String {
        String::from_utf8_lossy(&out.payload).into_owned()
    }

    #[test]
    fn publishes_what_node_publishes() {
        let c = ns();
        let join = c.publish(ClusterMessage::new(
            &c.uid,
            "/",
            Body::SocketsJoin {
                opts: Opts::to_rooms(vec!["room1".into()]),
                rooms: vec!["x".into()],
            },
        ));
        let join = join.unwrap_or_else(|| panic!("join"));
        assert_eq!(join.channel, "socket.io-request#/#");
        assert_eq!(
            text(&join),
            r#"{"uid":"0123456789abcdef","type":2,"opts":{"rooms":["room1"],"except":[]},"rooms":["x"]}"#
        );
        let fetch = c.publish(ClusterMessage::new(
            &c.uid,
            "/",
            Body::FetchSockets {
                opts: Opts::to_rooms(vec![]),
                request_id: "r1".into(),
            },
        ));
        assert_eq!(
            fetch.map(|o| text(&o)).as_deref(),
            Some(
                r#"{"uid":"0123456789abcdef","requestId":"r1","type":5,"opts":{"rooms":[],"except":[]}}"#
            )
        );
        let bc = c.publish(ClusterMessage::new(
            &c.uid,
            "/",
            Body::Broadcast {
                packet: PacketObject::event(vec!["r".into(), Value::Int(1)]),
                request_id: None,
                opts: Opts::to_rooms(vec!["room1".into()]),
            },
        ));
        let bc = bc.unwrap_or_else(|| panic!("broadcast"));
        assert_eq!(bc.channel, "socket.io#/#room1#");
        let back = ClassicBroadcast::from_msgpack(&bc.payload, &Limits::DEFAULT);
        assert_eq!(back.ok().and_then(|b| b.packet.nsp), Some("/".to_owned()));
        assert!(
            c.publish(ClusterMessage::new(&c.uid, "/", Body::Heartbeat))
                .is_none()
        );
    }

    #[test]
    fn answers_in_the_shape_asked() {
        let c = ns();
        let mut shapes = Shapes::default();
        let req = br#"{"uid":"P0Imza","requestId":"68U-Dm","type":1}"#;
        let m = c.receive("socket.io-request#/#", req, &Limits::DEFAULT, &mut shapes);
        let Ok(Some(m)) = m else { panic!("{m:?}") };
        assert_eq!(m.uid, "P0Imza");
        assert!(
            matches!(m.body, Body::FetchSockets { ref request_id, .. } if request_id == "68U-Dm")
        );
        let socket = SocketDetails {
            id: "a".into(),
            handshake: Default::default(),
            rooms: vec!["a".into(), "room1".into()],
            data: Value::map(),
        };
        let out = c.respond(
            "P0Imza",
            ClusterMessage::new(
                &c.uid,
                "/",
                Body::FetchSocketsResponse {
                    request_id: "68U-Dm".into(),
                    sockets: vec![socket],
                },
            ),
            &mut shapes,
        );
        let out = out.unwrap_or_else(|| panic!("answer"));
        assert_eq!(out.channel, "socket.io-response#/#");
        assert_eq!(
            text(&out),
            r#"{"requestId":"68U-Dm","rooms":["a","room1"]}"#
        );
        // an SSE answer always goes to the shared channel, even with specific responses
        let specific = Classic {
            specific_responses: true,
            ..ns()
        };
        let out = specific.respond(
            "P0Imza",
            ClusterMessage::new(
                &c.uid,
                "/",
                Body::ServerSideEmitResponse {
                    request_id: "g".into(),
                    packet: Value::from("a-1"),
                },
            ),
            &mut shapes,
        );
        assert_eq!(
            out.map(|o| (o.channel.clone(), text(&o))),
            Some((
                "socket.io-response#/#".into(),
                r#"{"type":6,"requestId":"g","data":"a-1"}"#.into()
            ))
        );
        let out = specific.respond(
            "P0Imza",
            ClusterMessage::new(
                &c.uid,
                "/",
                Body::BroadcastClientCount {
                    request_id: "d".into(),
                    client_count: 1,
                },
            ),
            &mut shapes,
        );
        assert_eq!(
            out.map(|o| o.channel),
            Some("socket.io-response#/#P0Imza#".into())
        );
    }

    #[test]
    fn receives_emitters_and_ignores_itself() {
        let c = ns();
        let mut shapes = Shapes::default();
        // the emitter's join has no uid
        let m = c.receive(
            "socket.io-request#/#",
            br#"{"type":2,"opts":{"rooms":[],"except":[]},"rooms":["x"]}"#,
            &Limits::DEFAULT,
            &mut shapes,
        );
        assert!(
            matches!(m, Ok(Some(ClusterMessage { ref uid, body: Body::SocketsJoin { .. }, .. })) if uid == "emitter")
        );
        let own = format!(r#"{{"uid":"{}","type":6,"data":["x"]}}"#, c.uid);
        assert!(matches!(
            c.receive(
                "socket.io-request#/#",
                own.as_bytes(),
                &Limits::DEFAULT,
                &mut shapes
            ),
            Ok(None)
        ));
        // garbage is an error for the caller to count
        assert!(
            c.receive("socket.io#/#", b"\xc1", &Limits::DEFAULT, &mut shapes)
                .is_err()
        );
        assert!(
            c.receive(
                "socket.io-request#/#",
                b"{\"type\":99}",
                &Limits::DEFAULT,
                &mut shapes
            )
            .is_err()
        );
        // two responses get two responders
        let a = c.receive(
            "socket.io-response#/#",
            br#"{"type":8,"requestId":"d","clientCount":1}"#,
            &Limits::DEFAULT,
            &mut shapes,
        );
        let b = c.receive(
            "socket.io-response#/#",
            br#"{"type":8,"requestId":"d","clientCount":1}"#,
            &Limits::DEFAULT,
            &mut shapes,
        );
        let (Ok(Some(a)), Ok(Some(b))) = (a, b) else {
            panic!()
        };
        assert_ne!(a.uid, b.uid);
    }
}
