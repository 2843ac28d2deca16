//! `cargo xtask demo wire`: the wire round-trip demo. One `io.to("room1").emit(...)` written in every
//! protocol Switchboard speaks, decoded again, and compared with what Node itself sent.

use anyhow::{Result, bail};
use bytes::Bytes;
use switchboard_wire::{
    Body, ClusterMessage, Dialect, Limits, Opts, PacketObject, Value, map, mesh,
    redis::{ClassicBroadcast, ClassicChannels, ShardedChannels, SubscriptionMode},
};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn say(line: &str) {
    // the demo's output is its purpose
    #[allow(clippy::print_stdout)] // a CLI prints
    {
        println!("{line}");
    }
}

pub(crate) fn run() -> Result<()> {
    let limits = Limits::DEFAULT;
    let args = vec![
        Value::from("chat"),
        map![("from", "rust"), ("text", "hi")],
        Value::Bin(Bytes::from_static(&[1, 2, 3])),
    ];
    say("io.to(\"room1\").emit(\"chat\", {from: \"rust\", text: \"hi\"}, Buffer<01 02 03>)\n");

    let message = ClusterMessage::new(
        "3f2a9c0d11e4b7a8",
        "/",
        Body::Broadcast {
            packet: PacketObject::event(args.clone()),
            request_id: None,
            opts: Opts::to_rooms(vec!["room1".into()]),
        },
    );
    let sharded = message.to_json_unless_binary();
    // the channel of Node's `static` subscription mode, the one Switchboard's sharded adapter uses
    let channel =
        ShardedChannels::new("socket.io", "/").for_message(&message, SubscriptionMode::Static);
    say(&format!(
        "sharded redis   SPUBLISH {channel} ({} bytes, msgpack because of the binary)",
        sharded.len()
    ));
    say(&format!("                {}", hex(&sharded)));

    let classic = ClassicBroadcast {
        uid: "P0Imza".into(),
        packet: PacketObject {
            nsp: Some("/".into()),
            ..PacketObject::event(args)
        },
        opts: Opts::to_rooms(vec!["room1".into()]),
    };
    let classic_bytes = classic.to_msgpack();
    let channels = ClassicChannels::new("socket.io", "/");
    say(&format!(
        "classic redis   PUBLISH {} ({} bytes)",
        channels.for_rooms(&classic.opts.rooms),
        classic_bytes.len()
    ));
    say(&format!("                {}", hex(&classic_bytes)));

    let frame = mesh::mesh_frame(&message);
    say(&format!(
        "mesh            WebSocket binary frame ({} bytes)",
        frame.len()
    ));
    say(&format!("                {}", hex(&frame)));

    // decode everything again
    let a = ClusterMessage::decode(&sharded, Dialect::Cluster, &limits)?;
    let b = ClassicBroadcast::from_msgpack(&classic_bytes, &limits)?;
    let mesh::Frame::Mesh(c) = mesh::decode_frame(&frame, &limits)? else {
        bail!("the mesh frame did not decode as a cluster message")
    };
    if a != message || c != message || b != classic {
        bail!("a round trip changed the message");
    }
    say("\nall three decode back to the same message");

    // and what Node sent, byte for byte (shared/captures/redis-classic-adapter-and-emitter.txt)
    let node = "93a64d725270434183a47479706502a46461746192a361646dd6ff00000000a36e7370a62f61646d696e83a5726f6f6d7390a665786365707490a5666c61677380";
    let bytes: Vec<u8> = (0..node.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&node[i..i + 2], 16).ok())
        .collect();
    let from_node = ClassicBroadcast::from_msgpack(&bytes, &limits)?;
    let arg = from_node
        .packet
        .data
        .get(1)
        .map(|v| String::from_utf8_lossy(&switchboard_wire::json::to_vec(v)).into_owned())
        .unwrap_or_default();
    say(&format!(
        "\nNode's io.of(\"/admin\").emit(\"adm\", new Date(0)) decodes to event {:?} with {arg} (a msgpack timestamp)",
        from_node.packet.event_name().unwrap_or("?"),
    ));
    if from_node.to_msgpack() != bytes {
        bail!("re-encoding Node's message changed its bytes");
    }
    say("and re-encodes byte-identical to what Node published");
    Ok(())
}
