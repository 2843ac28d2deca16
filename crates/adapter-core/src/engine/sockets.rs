//! The engine's side of [`crate::sockets`]: this server's sockets as FETCH_SOCKETS_RESPONSE
//! describes them (with the recorded handshake and data), every socket of the cluster for
//! [`ServerSideNamespace::fetch_sockets`](crate::ServerSideNamespace::fetch_sockets), and the
//! operations on one socket by its original id.

use std::collections::{BTreeSet, HashSet};

use socketioxide_core::{
    Sid,
    adapter::{BroadcastFlags, BroadcastOptions, Room, SocketEmitter},
    packet::Packet,
};
use switchboard_wire::{Body, PacketObject, SocketDetails};

use super::ClusterAdapter;
use crate::{
    Error, Transport, bridge,
    sockets::{Fetched, SocketOp},
};

impl<E: SocketEmitter, T: Transport> ClusterAdapter<E, T> {
    /// The ids of this server's sockets.
    pub(super) fn local_sids(&self) -> HashSet<Sid> {
        let mut all = BroadcastOptions::default();
        all.add_flag(BroadcastFlags::Broadcast);
        self.local.sockets(all).into_iter().collect()
    }

    /// The local sockets matching `opts`, as Node's FETCH_SOCKETS_RESPONSE describes them: the
    /// recorded handshake and data when the server records them, empty ones otherwise.
    pub(super) fn local_details(&self, opts: BroadcastOptions) -> Vec<SocketDetails> {
        let records = &self.registry.records;
        self.local
            .fetch_sockets(opts)
            .into_iter()
            .map(|s| {
                let id = s.id.to_string();
                let mut rooms: BTreeSet<String> = self
                    .local
                    .socket_rooms(s.id)
                    .into_iter()
                    .map(|r| r.to_string())
                    .collect();
                rooms.remove(&id);
                let mut list = vec![id.clone()];
                list.extend(rooms);
                let record = records.get(&self.nsp, s.id).unwrap_or_default();
                SocketDetails {
                    id,
                    handshake: record.handshake,
                    rooms: list,
                    data: record.data,
                }
            })
            .collect()
    }

    /// Every socket in `rooms` (all when empty), across the cluster.
    pub(super) async fn details_everywhere(&self, rooms: Vec<String>) -> Fetched {
        let mut opts = BroadcastOptions::default();
        opts.rooms = rooms.into_iter().map(Room::from).collect();
        opts.add_flag(BroadcastFlags::Broadcast);
        self.ensure_sid_rooms_of(&opts);
        let mut found: Vec<(String, SocketDetails, bool)> = self
            .local_details(opts.clone())
            .into_iter()
            .map(|d| (self.uid.clone(), d, true))
            .collect();
        let remote =
            |list: Vec<(String, SocketDetails)>| list.into_iter().map(|(uid, d)| (uid, d, false));
        Ok(match self.fetch_remote("fetchSockets", &opts).await? {
            Ok(list) => {
                found.extend(remote(list));
                Ok(found)
            }
            Err((list, answered, expected)) => {
                found.extend(remote(list));
                Err((found, answered, expected))
            }
        })
    }

    /// An operation on the socket `id` (Node's `RemoteSocket`): applied here when the socket is
    /// here (nothing published), otherwise published to the room named by its id.
    pub(super) fn op_on_socket(&self, id: &str, op: SocketOp) -> Result<(), Error> {
        let mut opts = BroadcastOptions::default();
        opts.rooms = std::iter::once(Room::from(id.to_owned())).collect();
        opts.add_flag(BroadcastFlags::Broadcast);
        self.ensure_sid_rooms_of(&opts);
        let here = !self.local.sockets(opts.clone()).is_empty();
        if here {
            opts.add_flag(BroadcastFlags::Local);
        }
        match op {
            SocketOp::Emit(packet) if here => {
                let packet = Packet::event(
                    self.local.path().clone(),
                    bridge::args_to_socketioxide(&packet, self.parser),
                );
                // a socket that left meanwhile only misses its event, as a local emit would
                let _ = self.local.broadcast(packet, opts);
                Ok(())
            }
            SocketOp::Emit(packet) => self.publish(Body::Broadcast {
                packet: PacketObject::event(packet),
                request_id: None,
                opts: self.wire_opts(&opts, None),
            }),
            SocketOp::Join(rooms) => {
                self.join_or_leave(true, opts, rooms.into_iter().map(Room::from).collect())
            }
            SocketOp::Leave(rooms) => {
                self.join_or_leave(false, opts, rooms.into_iter().map(Room::from).collect())
            }
            SocketOp::Disconnect if here => {
                let _ = self.local.disconnect_socket(opts);
                Ok(())
            }
            SocketOp::Disconnect => self.publish(Body::DisconnectSockets {
                opts: self.wire_opts(&opts, None),
                close: Some(false),
            }),
        }
    }
}
