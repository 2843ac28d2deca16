//! The packet bridge between socketioxide and the wire (protocol.md §9.3).
//!
//! It lives in the engine, not in `switchboard-wire`, so that a socketioxide upgrade never forces
//! a `wire` release.
//!
//! socketioxide keeps event arguments as `Value::Str(json, attachments)` (common parser, binary
//! replaced by `{"_placeholder":true,"num":n}`) or `Value::Bytes(msgpack)` (msgpack parser).
//! Adapter messages carry the arguments as a real array with real binary. Each conversion happens
//! once per message on a node, never once per client.

use std::time::Duration;

use bytes::Bytes;
use socketioxide_core::{
    Str, Value as SioValue,
    adapter::{BroadcastFlags, BroadcastOptions},
    packet::{Packet, PacketData},
};

use switchboard_wire::{DecodeError, Flags, Limits, Opts, PacketObject, Value, json, msgpack};

/// Which socketioxide parser a server uses, which decides the [`SioValue`] variant it expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum ParserKind {
    /// socketioxide's default JSON parser: `Value::Str` with binary attachments.
    #[default]
    Common,
    /// socketioxide-parser-msgpack: `Value::Bytes`.
    MsgPack,
}

impl ParserKind {
    /// The kind of parser that produced `value`.
    pub(crate) fn of(value: &SioValue) -> Self {
        match value {
            SioValue::Str(..) => ParserKind::Common,
            SioValue::Bytes(_) => ParserKind::MsgPack,
        }
    }
}

/// The argument array (`[event, ...args]` for events, `[...args]` for acks) of a socketioxide value.
pub(crate) fn args_from_socketioxide(
    value: &SioValue,
    limits: &Limits,
) -> Result<Vec<Value>, DecodeError> {
    let decoded = match value {
        SioValue::Str(text, bins) => {
            let bins: Vec<Bytes> = bins.iter().flatten().cloned().collect();
            json::from_str_with_attachments(text, &bins, limits)?
        }
        SioValue::Bytes(bytes) => msgpack::from_slice(bytes, limits)?,
    };
    match decoded {
        Value::Array(items) => Ok(items),
        _ => Err(DecodeError::field("args", "an array")),
    }
}

/// The socketioxide value for an argument array, for a server using `parser`.
pub(crate) fn args_to_socketioxide(args: &[Value], parser: ParserKind) -> SioValue {
    match parser {
        ParserKind::Common => {
            let (text, attachments) = json::array_to_string_with_placeholders(args);
            let attachments = (!attachments.is_empty()).then_some(attachments);
            SioValue::Str(Str::from(text), attachments)
        }
        ParserKind::MsgPack => SioValue::Bytes(msgpack::array_to_vec(args).into()),
    }
}

/// The packet object of a socketioxide EVENT (binary or not): type 2, `nsp` absent.
pub(crate) fn packet_to_wire(
    packet: &Packet,
    limits: &Limits,
) -> Result<PacketObject, DecodeError> {
    match &packet.inner {
        PacketData::Event(value, id) | PacketData::BinaryEvent(value, id) => Ok(PacketObject {
            kind: 2,
            data: args_from_socketioxide(value, limits)?,
            nsp: None,
            id: *id,
        }),
        _ => Err(DecodeError::field("packet", "an EVENT packet")),
    }
}

/// The socketioxide EVENT for a packet object received on namespace `ns` (its `nsp` is ignored,
/// as Node receivers overwrite it).
pub(crate) fn packet_from_wire(
    packet: &PacketObject,
    ns: Str,
    parser: ParserKind,
) -> Result<Packet, DecodeError> {
    if packet.kind != 2 && packet.kind != 5 {
        return Err(DecodeError::field("packet.type", "2 (EVENT)"));
    }
    let mut p = Packet::event(ns, args_to_socketioxide(&packet.data, parser));
    if let Some(id) = packet.id {
        p.inner.set_ack_id(id);
    }
    Ok(p)
}

/// A client's ack as Node sends it on: only the first argument (`undefined` → nil).
pub(crate) fn ack_to_wire(value: &SioValue, limits: &Limits) -> Result<Value, DecodeError> {
    Ok(args_from_socketioxide(value, limits)?
        .into_iter()
        .next()
        .unwrap_or(Value::Nil))
}

/// A remote ack value as socketioxide ack arguments (`[value]`).
pub(crate) fn ack_from_wire(value: &Value, parser: ParserKind) -> SioValue {
    args_to_socketioxide(std::slice::from_ref(value), parser)
}

/// The wire options for socketioxide's options.
///
/// `socket.broadcast` (sender `sid` + Broadcast flag) excludes the sender's room; an operation on
/// one socket (`sid` without Broadcast flag and no rooms) targets the room named by its id with
/// `expectSingleResponse`, as Node's `RemoteSocket` does. `timeout` is set for requests that wait.
pub(crate) fn opts_to_wire(opts: &BroadcastOptions, timeout: Option<Duration>) -> Opts {
    let mut rooms: Vec<String> = opts.rooms.iter().map(|r| r.to_string()).collect();
    let mut except: Vec<String> = opts.except.iter().map(|r| r.to_string()).collect();
    let mut flags = Flags::default();
    let broadcast = opts.has_flag(BroadcastFlags::Broadcast);
    if let Some(sid) = opts.sid {
        if broadcast {
            except.push(sid.to_string());
        } else if rooms.is_empty() {
            rooms.push(sid.to_string());
            flags.set("expectSingleResponse", Value::Bool(true));
        }
    }
    if opts.has_flag(BroadcastFlags::Volatile) {
        flags.set("volatile", Value::Bool(true));
    }
    if opts.has_flag(BroadcastFlags::Local) {
        flags.set("local", Value::Bool(true));
    }
    if let Some(t) = timeout {
        flags.set(
            "timeout",
            Value::Int(i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
        );
    }
    Opts {
        rooms,
        except,
        flags: Some(flags),
        ..Opts::default()
    }
}

/// socketioxide's options for wire options received from another node: rooms and except as sent,
/// the Broadcast flag set so that empty rooms mean the whole namespace, volatile and local kept.
pub(crate) fn opts_from_wire(opts: &Opts) -> BroadcastOptions {
    let mut out = BroadcastOptions::default();
    out.rooms = opts.rooms.iter().map(|r| r.clone().into()).collect();
    out.except = opts.except.iter().map(|r| r.clone().into()).collect();
    out.add_flag(BroadcastFlags::Broadcast);
    if opts.flags().volatile() {
        out.add_flag(BroadcastFlags::Volatile);
    }
    if opts.flags().local() {
        out.add_flag(BroadcastFlags::Local);
    }
    out
}

#[cfg(test)]
mod tests;
