//! Channel names of the classic and sharded redis adapters.

use crate::{Body, ClusterMessage};

/// Channels of the classic adapter for one namespace: prefix `P` (option `key`), namespace `N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicChannels {
    broadcast: String,
    request: String,
    response: String,
}

impl ClassicChannels {
    /// Channels for namespace `nsp` under prefix `key` (Node's default: `socket.io`).
    pub fn new(key: &str, nsp: &str) -> Self {
        ClassicChannels {
            broadcast: format!("{key}#{nsp}#"),
            request: format!("{key}-request#{nsp}#"),
            response: format!("{key}-response#{nsp}#"),
        }
    }

    /// `P#N#`: broadcasts to 0 or 2+ rooms.
    pub fn broadcast(&self) -> &str {
        &self.broadcast
    }

    /// `P#N#<room>#`: broadcasts to exactly one room.
    pub fn room(&self, room: &str) -> String {
        format!("{}{room}#", self.broadcast)
    }

    /// The channel a broadcast to `rooms` is published on.
    pub fn for_rooms(&self, rooms: &[String]) -> String {
        match rooms {
            [room] => self.room(room),
            _ => self.broadcast.clone(),
        }
    }

    /// The PSUBSCRIBE pattern `P#N#*`, with glob characters of `P#N#` escaped so that a
    /// namespace like `/a*` does not also match `/ab`.
    pub fn pattern(&self) -> String {
        let mut p = String::with_capacity(self.broadcast.len() + 2);
        for c in self.broadcast.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push('*');
        p
    }

    /// `P-request#N#`: every request.
    pub fn request(&self) -> &str {
        &self.request
    }

    /// `P-response#N#`: responses, shared by all nodes.
    pub fn response(&self) -> &str {
        &self.response
    }

    /// `P-response#N#<uid>#`: responses to one node (`publishOnSpecificResponseChannel`).
    pub fn response_to(&self, uid: &str) -> String {
        format!("{}{uid}#", self.response)
    }

    /// For a channel matched by [`pattern`](Self::pattern): `Some(room)` for a room channel,
    /// `None` for the main broadcast channel or a foreign channel.
    pub fn room_of<'c>(&self, channel: &'c str) -> Option<&'c str> {
        channel
            .strip_prefix(self.broadcast.as_str())?
            .strip_suffix('#')
            .filter(|r| !r.is_empty())
    }
}

/// The sharded adapter's `subscriptionMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SubscriptionMode {
    /// No room channels: everything on `P#N#`.
    #[default]
    Static,
    /// Single public-room broadcasts go to `P#N#<room>#` (Node's default).
    Dynamic,
    /// Like dynamic, for socket-id rooms too.
    DynamicPrivate,
}

/// Node's `looksLikeASocketId`: a string of length 20 (socketioxide ids are 16 and do not match).
pub fn looks_like_node_socket_id(room: &str) -> bool {
    room.len() == 20
}

/// Channels of the sharded adapter for one namespace (`channelPrefix` `P`, namespace `N`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardedChannels {
    main: String,
}

impl ShardedChannels {
    /// Channels for namespace `nsp` under `channel_prefix` (Node's default: `socket.io`).
    pub fn new(channel_prefix: &str, nsp: &str) -> Self {
        ShardedChannels {
            main: format!("{channel_prefix}#{nsp}#"),
        }
    }

    /// `P#N#`: everything not room-targeted.
    pub fn main(&self) -> &str {
        &self.main
    }

    /// `P#N#<uid>#`: responses to that node.
    pub fn node(&self, uid: &str) -> String {
        format!("{}{uid}#", self.main)
    }

    /// `P#N#<room>#`: a room channel (dynamic modes).
    pub fn room(&self, room: &str) -> String {
        format!("{}{room}#", self.main)
    }

    /// Node's `computeChannel`: the channel a message is published on in `mode`.
    pub fn for_message(&self, message: &ClusterMessage, mode: SubscriptionMode) -> String {
        if let Body::Broadcast {
            request_id: None,
            opts,
            ..
        } = &message.body
            && let [room] = opts.rooms.as_slice()
        {
            let use_room = match mode {
                SubscriptionMode::Static => false,
                SubscriptionMode::Dynamic => !looks_like_node_socket_id(room),
                SubscriptionMode::DynamicPrivate => true,
            };
            if use_room {
                return self.room(room);
            }
        }
        self.main.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Opts, PacketObject};

    #[test]
    fn classic_names() {
        let c = ClassicChannels::new("socket.io", "/admin");
        assert_eq!(c.broadcast(), "socket.io#/admin#");
        assert_eq!(c.room("room1"), "socket.io#/admin#room1#");
        assert_eq!(c.request(), "socket.io-request#/admin#");
        assert_eq!(c.response(), "socket.io-response#/admin#");
        assert_eq!(c.response_to("zMD1UK"), "socket.io-response#/admin#zMD1UK#");
        assert_eq!(c.pattern(), "socket.io#/admin#*");
        assert_eq!(ClassicChannels::new("p", "/a*[").pattern(), "p#/a\\*\\[#*");
        assert_eq!(c.room_of("socket.io#/admin#room1#"), Some("room1"));
        assert_eq!(c.room_of("socket.io#/admin#"), None);
        assert_eq!(c.for_rooms(&["123".into()]), "socket.io#/admin#123#");
        assert_eq!(c.for_rooms(&["a".into(), "b".into()]), "socket.io#/admin#");
    }

    #[test]
    fn sharded_compute_channel() {
        let c = ShardedChannels::new("socket.io", "/");
        let bc = |rooms: &[&str], request_id: Option<&str>| {
            ClusterMessage::new(
                "u",
                "/",
                Body::Broadcast {
                    packet: PacketObject::event(vec![]),
                    request_id: request_id.map(str::to_owned),
                    opts: Opts::to_rooms(rooms.iter().map(|r| r.to_string()).collect()),
                },
            )
        };
        use SubscriptionMode::*;
        assert_eq!(
            c.for_message(&bc(&["chat"], None), Dynamic),
            "socket.io#/#chat#"
        );
        assert_eq!(c.for_message(&bc(&["chat"], None), Static), "socket.io#/#");
        assert_eq!(
            c.for_message(&bc(&["chat"], Some("r")), Dynamic),
            "socket.io#/#"
        );
        assert_eq!(
            c.for_message(&bc(&["s1aaaaaaaaaaaaaaaaaa"], None), Dynamic),
            "socket.io#/#"
        );
        assert_eq!(
            c.for_message(&bc(&["s1aaaaaaaaaaaaaaaaaa"], None), DynamicPrivate),
            "socket.io#/#s1aaaaaaaaaaaaaaaaaa#"
        );
        assert_eq!(
            c.for_message(&bc(&["16charsocketid00"], None), Dynamic),
            "socket.io#/#16charsocketid00#"
        );
        assert_eq!(
            c.for_message(&bc(&["a", "b"], None), Dynamic),
            "socket.io#/#"
        );
        assert_eq!(c.node("a329c19849ed2440"), "socket.io#/#a329c19849ed2440#");
    }
}
