//! A Node Socket.IO server (`xtask/interop/server.js`) and a Switchboard server in one cluster,
//! clients on both: the scenario every transport with a Node counterpart runs, every operation in
//! both directions.

use std::{collections::BTreeSet, time::Duration};

use futures_util::StreamExt;
use serde_json::{Value as Json, json};
use switchboard_adapter_core::Transport;

use crate::{
    Event, TestClient, TestServer,
    services::NodeServer,
    wait::{check, eventually},
};

const WAIT: Duration = Duration::from_secs(10);

/// A Node server and a Rust server in one cluster, with the Node server's control connection.
pub struct NodeCluster<T: Transport> {
    /// The Node server (`xtask/interop/server.js`).
    pub node: NodeServer,
    /// The Rust server.
    pub rust: TestServer<T>,
    control: TestClient,
}

impl<T: Transport> NodeCluster<T> {
    /// Joins `node` and `rust`, which share a broker, and waits until each counts two servers.
    pub async fn start(node: NodeServer, rust: TestServer<T>) -> Self {
        let control = TestClient::connect(node.addr(), "/control", json!({}), None)
            .await
            .unwrap_or_else(|e| panic!("control: {e}"));
        let mut c = NodeCluster {
            node,
            rust,
            control,
        };
        // both sides count two servers
        eventually(WAIT, async || {
            let rust_count = c.rust.server_count().await;
            let node_count = c.cmd(json!({"op": "serverCount"})).await;
            check(rust_count == 2 && node_count == json!(2), || {
                format!("server counts: rust {rust_count}, node {node_count}")
            })
        })
        .await;
        c
    }

    /// Runs a command on the Node server and returns its answer.
    pub async fn cmd(&mut self, c: Json) -> Json {
        let answer = self
            .control
            .emit_with_ack("cmd", vec![c.clone()], WAIT)
            .await;
        let answer = answer.and_then(|mut a| (!a.is_empty()).then(|| a.remove(0)));
        let answer = answer.unwrap_or_else(|| panic!("no answer to {c}"));
        assert!(answer.get("error").is_none(), "{c} failed: {answer}");
        answer
    }

    /// `io.to(rooms).emit(event)` without arguments on the Rust server (every socket when
    /// `rooms` is empty).
    pub async fn rust_emit(&self, rooms: &[&str], event: &str) {
        let io = &self.rust.io;
        let op = if rooms.is_empty() {
            io.emit(event, &()).await
        } else {
            io.to(rooms.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>())
                .emit(event, &())
                .await
        };
        op.unwrap_or_else(|e| panic!("emit {event}: {e}"));
    }

    /// A client of the Node server (`on_node`) or of the Rust one, in `rooms`, acking with
    /// `{from: name}`.
    pub async fn client(&self, on_node: bool, rooms: &[&str], name: &str) -> TestClient {
        let addr = if on_node {
            self.node.addr()
        } else {
            self.rust.addr
        };
        TestClient::connect(
            addr,
            "/",
            json!({"rooms": rooms, "name": name}),
            Some(json!({"from": name})),
        )
        .await
        .unwrap_or_else(|e| panic!("client {name}: {e}"))
    }
}

/// Events a client got before `marker`.
async fn until(c: &mut TestClient, marker: &str) -> Vec<Event> {
    c.until(marker, WAIT)
        .await
        .unwrap_or_else(|| panic!("{marker} never arrived"))
}

fn names(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.name.clone()).collect()
}

/// Every operation in both directions between the Node server and the Rust server, with clients
/// on both: broadcasts (all, room, except, binary), broadcasts with acks, fetchSockets and
/// remote-socket operations, socketsJoin/Leave, serverSideEmit with acks, allRooms (asked of the
/// Node server too when `node_all_rooms`), disconnects.
pub async fn every_operation_both_ways<T: Transport>(c: &mut NodeCluster<T>, node_all_rooms: bool) {
    let mut rc = c.client(false, &["room1"], "rust").await;
    let mut nc = c.client(true, &["room1"], "node").await;
    let mut nc2 = c.client(true, &["other"], "node2").await;

    // broadcasts, Rust -> Node: all, room, except
    c.rust
        .io
        .emit("r-all", &"x")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.rust
        .io
        .to("room1")
        .emit("r-room", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.rust
        .io
        .except("room1")
        .emit("r-except", &2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.rust_emit(&[], "r-fence").await;
    assert_eq!(names(&until(&mut nc, "r-fence").await), ["r-all", "r-room"]);
    assert_eq!(
        names(&until(&mut nc2, "r-fence").await),
        ["r-all", "r-except"]
    );
    assert_eq!(names(&until(&mut rc, "r-fence").await), ["r-all", "r-room"]);

    // broadcasts, Node -> Rust
    c.cmd(json!({"op": "emit", "event": "n-all", "args": ["y"]}))
        .await;
    c.cmd(json!({"op": "emit", "event": "n-room", "rooms": ["room1"], "args": [1]}))
        .await;
    c.cmd(json!({"op": "emit", "event": "n-except", "except": ["room1"], "args": [2]}))
        .await;
    c.cmd(json!({"op": "emit", "event": "n-fence"})).await;
    let got = until(&mut rc, "n-fence").await;
    assert_eq!(names(&got), ["n-all", "n-room"]);
    assert_eq!(got[0].args, vec![json!("y")]);

    // binary both ways
    c.rust
        .io
        .emit("r-bin", &(bytes::Bytes::from_static(&[1, 2, 3]),))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = nc
        .expect("r-bin", WAIT)
        .await
        .unwrap_or_else(|| panic!("r-bin"));
    assert_eq!(e.binaries, vec![vec![1, 2, 3]]);
    c.cmd(json!({"op": "emit", "event": "n-bin", "args": [{"bin": [4, 5]}]}))
        .await;
    let e = rc
        .expect("n-bin", WAIT)
        .await
        .unwrap_or_else(|| panic!("n-bin"));
    assert_eq!(e.binaries, vec![vec![4, 5]]);

    // broadcast with acks, from Rust: acks from clients of both servers
    let stream = c
        .rust
        .io
        .timeout(Duration::from_secs(5))
        .emit_with_ack::<_, Json>("ask", &1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let acks: Vec<Json> = tokio::time::timeout(
        WAIT,
        stream.filter_map(|(_, r)| async move { r.ok() }).collect(),
    )
    .await
    .unwrap_or_else(|_| panic!("acks"));
    let from: BTreeSet<String> = acks
        .iter()
        .map(|a| a["from"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(
        from,
        ["node", "node2", "rust"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    // from Node
    let answer = c
        .cmd(json!({"op": "emitWithAck", "event": "ask", "timeout": 5000}))
        .await;
    let from: BTreeSet<String> = answer["responses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["from"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(
        from,
        ["node", "node2", "rust"]
            .into_iter()
            .map(String::from)
            .collect(),
        "{answer}"
    );

    // a silent client of the Node server: the Rust caller gets its acks and one timeout error
    // for the missing one, as Node's callback gets its timeout error
    {
        let mut silent = TestClient::connect(c.node.addr(), "/", json!({}), None)
            .await
            .unwrap_or_else(|e| panic!("silent client: {e}"));
        let stream = c
            .rust
            .io
            .timeout(Duration::from_millis(800))
            .emit_with_ack::<_, Json>("ask", &2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let results: Vec<Result<Json, String>> = tokio::time::timeout(
            WAIT,
            stream.map(|(_, r)| r.map_err(|e| e.to_string())).collect(),
        )
        .await
        .unwrap_or_else(|_| panic!("the ack stream ends at its timeout"));
        let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(results.len() - errors.len(), 3, "{results:?}");
        assert_eq!(
            errors.len(),
            1,
            "one timeout for the silent client: {results:?}"
        );
        assert!(errors[0].contains("timeout"), "{errors:?}");
        // gone from the Node server before the next steps count sockets
        let id = silent.sid().to_owned();
        c.cmd(json!({"op": "remote", "id": id, "action": "disconnect"}))
            .await;
        assert!(silent.disconnected(WAIT).await);
    }

    // fetchSockets from Rust: Node's sockets, with usable (aliased) ids
    let sockets = c
        .rust
        .io
        .fetch_sockets()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sockets.len(), 3);
    let in_room1 = c
        .rust
        .io
        .within("room1")
        .fetch_sockets()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(in_room1.len(), 2);
    // fetchSockets from Node: the Rust socket with its rooms and every handshake field
    let fetched = c.cmd(json!({"op": "fetchSockets"})).await;
    let rust_socket = fetched
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["id"] == json!(rc.sid()))
        .cloned()
        .unwrap_or_else(|| panic!("{fetched}"));
    let rooms: BTreeSet<&str> = rust_socket["rooms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect();
    assert_eq!(rooms, [rc.sid(), "room1"].into_iter().collect());
    for field in [
        "address", "headers", "time", "issued", "url", "query", "auth", "secure", "xdomain",
    ] {
        assert!(
            rust_socket["handshake"].get(field).is_some(),
            "handshake.{field} in {rust_socket}"
        );
    }
    // what the Rust server recorded (ServerSide::record_handshakes, set_data), as Node records it
    let hs = &rust_socket["handshake"];
    assert_eq!(
        hs["auth"],
        json!({"rooms": ["room1"], "name": "rust"}),
        "{rust_socket}"
    );
    assert_eq!(hs["address"], json!("127.0.0.1"), "{rust_socket}");
    assert_eq!(hs["query"]["EIO"], json!("4"), "{rust_socket}");
    assert!(hs["headers"]["host"].is_string(), "{rust_socket}");
    assert!(
        hs["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("/socket.io/?")),
        "{rust_socket}"
    );
    assert!(
        hs["time"]
            .as_str()
            .is_some_and(|t| t.ends_with("GMT+0000 (Coordinated Universal Time)")),
        "{rust_socket}"
    );
    assert!(
        hs["issued"].as_i64().is_some_and(|t| t > 1_700_000_000_000),
        "{rust_socket}"
    );
    assert_eq!(rust_socket["data"], json!({"name": "rust"}));

    // the Switchboard fetch from Rust: Node's sockets with their real ids, rooms, handshake and
    // data, and the operations through them
    let cluster = c
        .rust
        .server_side
        .of("/")
        .fetch_sockets(["room1"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cluster.len(), 2, "{cluster:?}");
    let node_socket = cluster
        .iter()
        .find(|s| !s.is_local())
        .unwrap_or_else(|| panic!("{cluster:?}"));
    assert_eq!(node_socket.id(), nc.sid());
    assert_eq!(node_socket.id().len(), 20);
    let rooms: BTreeSet<&str> = node_socket.rooms().iter().map(String::as_str).collect();
    assert_eq!(rooms, [nc.sid(), "room1"].into_iter().collect());
    let auth: Json = switchboard_adapter_core::from_value(&node_socket.handshake().auth)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(auth, json!({"rooms": ["room1"], "name": "node"}));
    let headers: Json = switchboard_adapter_core::from_value(&node_socket.handshake().headers)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(headers["host"].is_string(), "{headers}");
    assert!(!node_socket.handshake().time.is_empty());
    assert_eq!(
        node_socket
            .data_as::<Json>()
            .unwrap_or_else(|e| panic!("{e}")),
        json!({"name": "node"})
    );
    let local = cluster
        .iter()
        .find(|s| s.is_local())
        .unwrap_or_else(|| panic!("{cluster:?}"));
    assert_eq!(local.id(), rc.sid());
    assert_eq!(local.data_as::<Json>().ok(), Some(json!({"name": "rust"})));
    node_socket
        .emit("direct-cs", &"via-cluster-socket")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        nc.expect("direct-cs", WAIT).await.map(|e| e.args),
        Some(vec![json!("via-cluster-socket")])
    );
    node_socket
        .join(["vip-cs"])
        .unwrap_or_else(|e| panic!("{e}"));
    c.rust_emit(&["vip-cs"], "vip-cs").await;
    assert!(
        nc.receives("vip-cs", WAIT).await,
        "joined through the ClusterSocket"
    );
    node_socket
        .leave(["vip-cs"])
        .unwrap_or_else(|e| panic!("{e}"));
    c.rust_emit(&["vip-cs"], "vip-cs2").await;
    c.rust_emit(&[], "vip-cs-fence").await;
    assert!(!names(&until(&mut nc, "vip-cs-fence").await).contains(&"vip-cs2".to_owned()));
    {
        let mut doomed = c.client(true, &["doomed"], "doomed").await;
        let found = c
            .rust
            .server_side
            .of("/")
            .fetch_sockets(["doomed"])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.len(), 1, "{found:?}");
        found[0].disconnect().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            doomed.disconnected(WAIT).await,
            "disconnected through the ClusterSocket"
        );
    }

    // remote operations, Rust on a Node socket
    let remote_nc = c
        .rust
        .io
        .within("room1")
        .fetch_sockets()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let remote_nc = remote_nc
        .into_iter()
        .find(|s| s.data().id.as_str() != rc.sid())
        .unwrap_or_else(|| panic!("node socket"));
    remote_nc
        .emit("direct", &"to-node")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        nc.expect("direct", WAIT).await.map(|e| e.args),
        Some(vec![json!("to-node")])
    );
    remote_nc
        .join("vip")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.rust_emit(&["vip"], "vip").await;
    assert!(nc.receives("vip", WAIT).await, "the Node socket joined vip");
    remote_nc
        .leave("vip")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.rust_emit(&["vip"], "vip2").await;
    c.rust_emit(&[], "vip-fence").await;
    assert!(!names(&until(&mut nc, "vip-fence").await).contains(&"vip2".to_owned()));

    // remote operations, Node on the Rust socket
    c.cmd(json!({"op": "remote", "id": rc.sid(), "action": "emit", "event": "direct", "args": ["to-rust"]})).await;
    assert_eq!(
        rc.expect("direct", WAIT).await.map(|e| e.args),
        Some(vec![json!("to-rust")])
    );
    c.cmd(json!({"op": "remote", "id": rc.sid(), "action": "join", "room": "club"}))
        .await;
    c.cmd(json!({"op": "emit", "event": "club", "rooms": ["club"]}))
        .await;
    assert!(
        rc.receives("club", WAIT).await,
        "the Rust socket joined club"
    );

    // socketsJoin / socketsLeave across servers
    c.cmd(json!({"op": "socketsJoin", "rooms": ["room1"], "room": "r9"}))
        .await;
    c.cmd(json!({"op": "emit", "event": "nine", "rooms": ["r9"]}))
        .await;
    assert!(rc.receives("nine", WAIT).await);
    c.rust
        .io
        .within("room1")
        .leave("r9")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.rust_emit(&["r9"], "nine2").await;
    c.rust_emit(&[], "r9-fence").await;
    assert!(!names(&until(&mut nc, "r9-fence").await).contains(&"nine2".to_owned()));

    // serverSideEmit with acks both ways
    let replies = c
        .rust
        .server_side
        .of("/")
        .emit_with_ack("ping", &"r")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replies, vec![switchboard_wire::Value::from("node-pong-r")]);
    c.rust.server_side.of("/").on("ping", |mut e| async move {
        let arg: String = e.arg(0).unwrap_or_default();
        let _ = e.reply(&format!("rust-pong-{arg}"));
    });
    let answer = c
        .cmd(json!({"op": "serverSideEmit", "event": "ping", "arg": "n", "ack": true}))
        .await;
    assert_eq!(answer["responses"], json!(["rust-pong-n"]));

    // allRooms: the same answer from both servers, every socket's own id included
    let rooms: BTreeSet<String> = c
        .rust
        .io
        .rooms()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|r| r.to_string())
        .collect();
    let expected: BTreeSet<String> = ["room1", "other", "club", rc.sid(), nc.sid(), nc2.sid()]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(rooms, expected);
    if node_all_rooms {
        let all = c.cmd(json!({"op": "allRooms"})).await;
        let all: BTreeSet<String> = all
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .map(String::from)
            .collect();
        assert_eq!(all, rooms, "Node's allRooms and the Rust server's");
    }

    // disconnects both ways
    c.rust
        .io
        .within("other")
        .disconnect()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        nc2.disconnected(WAIT).await,
        "Rust disconnected a Node client"
    );
    c.cmd(json!({"op": "disconnectSockets", "rooms": ["club"], "close": true}))
        .await;
    assert!(
        rc.disconnected(WAIT).await,
        "Node disconnected a Rust client"
    );
}
