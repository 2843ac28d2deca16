//! What the engine does with a message from another node.

use std::sync::Arc;

use futures_util::StreamExt;
use socketioxide_core::adapter::SocketEmitter;
use switchboard_wire::{Body, ClusterMessage, Value};

use super::{
    ClusterAdapter,
    requests::{AckEvent, Reply},
};
use crate::{Liveness, Transport, bridge, state::ServerEvent};

impl<E: SocketEmitter, T: Transport> ClusterAdapter<E, T> {
    pub(super) fn handle(self: &Arc<Self>, message: ClusterMessage) {
        // namespace first, then our own echo, then liveness (protocol.md §10 item 1)
        if message.nsp != self.nsp || message.uid == self.uid {
            return;
        }
        if let Some(m) = self.metrics() {
            m.received(message.message_type());
        }
        let from = message.uid;
        if self.liveness() == Liveness::Heartbeat && from != switchboard_wire::ids::EMITTER_UID {
            self.nodes.seen(&from);
        }
        match message.body {
            Body::InitialHeartbeat => {
                let _ = self.publish(Body::Heartbeat);
            }
            Body::Heartbeat | Body::Session(_) => {}
            Body::AdapterClose if self.nodes.remove(&from) => self.node_gone(&from),
            Body::AdapterClose => {}
            Body::Broadcast {
                packet,
                request_id,
                opts,
            } => {
                let local_opts = bridge::opts_from_wire(&opts);
                self.ensure_sid_rooms_wire(&opts);
                let packet = match bridge::packet_from_wire(
                    &packet,
                    self.local.path().clone(),
                    self.parser,
                ) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!(nsp = %self.nsp, %from, "dropped a broadcast: {}", crate::report(&e));
                        return;
                    }
                };
                match request_id {
                    None => {
                        if let Err(e) = self.local.broadcast(packet, local_opts) {
                            tracing::debug!(nsp = %self.nsp, "remote broadcast reached closed sockets: {e:?}");
                        }
                    }
                    Some(request_id) => {
                        let timeout = opts
                            .flags()
                            .timeout_ms()
                            .map(std::time::Duration::from_millis)
                            .unwrap_or_else(|| self.local.ack_timeout());
                        let (stream, count) =
                            self.local
                                .broadcast_with_ack(packet, local_opts, Some(timeout));
                        // the count first, even 0: the requester waits for one per node
                        self.respond(
                            &from,
                            Body::BroadcastClientCount {
                                request_id: request_id.clone(),
                                client_count: u64::from(count),
                            },
                        );
                        if count > 0 {
                            let weak = Arc::downgrade(self);
                            let limits = self.config.limits;
                            self.spawn(async move {
                                let mut stream = std::pin::pin!(stream);
                                while let Some((_, ack)) = stream.next().await {
                                    let Some(adapter) = weak.upgrade() else { break };
                                    // a client that did not answer sends nothing, as in Node
                                    let Ok(value) = ack else { continue };
                                    let packet =
                                        bridge::ack_to_wire(&value, &limits).unwrap_or(Value::Nil);
                                    adapter.respond(
                                        &from,
                                        Body::BroadcastAck {
                                            request_id: request_id.clone(),
                                            packet,
                                        },
                                    );
                                }
                            });
                        }
                    }
                }
            }
            Body::SocketsJoin { opts, rooms } => {
                self.ensure_sid_rooms_wire(&opts);
                self.local.add_sockets(bridge::opts_from_wire(&opts), rooms);
            }
            Body::SocketsLeave { opts, rooms } => {
                self.ensure_sid_rooms_wire(&opts);
                self.local.del_sockets(bridge::opts_from_wire(&opts), rooms);
            }
            Body::DisconnectSockets { opts, .. } => {
                // socketioxide's adapter API cannot close the underlying connection: `close` is
                // honoured as a namespace disconnect.
                self.ensure_sid_rooms_wire(&opts);
                if let Err(e) = self.local.disconnect_socket(bridge::opts_from_wire(&opts)) {
                    tracing::debug!(nsp = %self.nsp, "remote disconnect reached closed sockets: {e:?}");
                }
            }
            Body::FetchSockets { opts, request_id } => {
                self.ensure_sid_rooms_wire(&opts);
                let sockets = self.local_details(bridge::opts_from_wire(&opts));
                self.respond(
                    &from,
                    Body::FetchSocketsResponse {
                        request_id,
                        sockets,
                    },
                );
            }
            Body::FetchSocketsResponse {
                request_id,
                sockets,
            } => {
                self.requests
                    .reply(&request_id, &from, Reply::Sockets(sockets));
            }
            Body::ServerSideEmit { request_id, packet } => {
                self.server_event(from, request_id, packet)
            }
            Body::ServerSideEmitResponse { request_id, packet } => {
                self.requests
                    .reply(&request_id, &from, Reply::Value(packet));
            }
            Body::BroadcastClientCount {
                request_id,
                client_count,
            } => self.ack_event(
                &request_id,
                AckEvent::Count {
                    uid: from,
                    count: client_count,
                },
            ),
            Body::BroadcastAck { request_id, packet } => self.ack_event(
                &request_id,
                AckEvent::Ack {
                    uid: from,
                    value: packet,
                },
            ),
            _ => {}
        }
    }

    /// Runs the handler registered for a serverSideEmit; without a handler (or without an answer
    /// from it) nothing is sent back, as in Node.
    fn server_event(
        self: &Arc<Self>,
        from: String,
        request_id: Option<String>,
        packet: Vec<Value>,
    ) {
        let mut items = packet.into_iter();
        let Some(Value::Str(event)) = items.next() else {
            return;
        };
        let Some(handler) = self.registry.handler(&self.nsp, &event) else {
            return;
        };
        let reply = request_id.map(|request_id| {
            let weak = Arc::downgrade(self);
            let to = from.clone();
            Box::new(move |value: Value| {
                if let Some(adapter) = weak.upgrade() {
                    adapter.respond(
                        &to,
                        Body::ServerSideEmitResponse {
                            request_id,
                            packet: value,
                        },
                    );
                }
            }) as crate::state::Replier
        });
        let event = ServerEvent {
            from,
            event,
            args: items.collect(),
            reply,
        };
        tokio::spawn(handler(event));
    }
}

impl<E: SocketEmitter, T: Transport> ClusterAdapter<E, T> {
    /// Hands an event to the broadcast with acks it belongs to; one the caller has left unpolled
    /// for too long is dropped and counted.
    fn ack_event(&self, request_id: &str, event: AckEvent) {
        if !self.requests.ack_event(request_id, event) {
            tracing::debug!(nsp = %self.nsp, request_id, "ack dropped: the caller does not read its ack stream");
            if let Some(m) = self.metrics() {
                m.dropped("ack_backlog_full");
            }
        }
    }
}
