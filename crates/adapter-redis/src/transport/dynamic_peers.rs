//! Sharded mode beside Node: a Node sharded adapter in `dynamic` subscription mode publishes
//! single-room broadcasts on room channels this transport does not subscribe to. Refused when
//! found at attach, and looked for again periodically after.

use std::time::{Duration, Instant};

use fred::{prelude::ClusterInterface, prelude::PubsubInterface, types::Value as RedisValue};
use switchboard_adapter_core::{TransportError, TransportErrorKind};
use switchboard_wire::redis::ShardedChannels;

use super::{Inner, Protocol, redis_error};

/// Node's sharded adapter defaults to `dynamic` mode and then publishes single-room broadcasts
/// to room channels this transport does not subscribe to: refuse to run beside it.
pub(super) async fn check_no_dynamic_peers(
    client: &fred::clients::Client,
    channels: &ShardedChannels,
) -> Result<(), TransportError> {
    match find_dynamic_peer(client, channels)
        .await
        .map_err(|e| redis_error(TransportErrorKind::Other, e))?
    {
        None => Ok(()),
        Some(room) => Err(TransportError::new(
            TransportErrorKind::Other,
            dynamic_peer_message(&room),
        )),
    }
}

fn dynamic_peer_message(room: &str) -> String {
    format!(
        "a Node sharded adapter in `dynamic` subscription mode is subscribed to the room channel {room}: \
         Switchboard's sharded transport supports `subscriptionMode: \"static\"` only, and misses the \
         single-room broadcasts such a peer publishes on room channels; configure the Node servers with \
         createShardedAdapter(..., {{ subscriptionMode: \"static\" }})"
    )
}

/// Checks every `every` that no Node peer in `dynamic` mode joined any sharded namespace since
/// it started (the check at attach only sees the peers already there).
pub(super) async fn watch_for_dynamic_peers(weak: std::sync::Weak<Inner>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut logged: Option<Instant> = None;
    loop {
        ticker.tick().await;
        let Some(inner) = weak.upgrade() else { break };
        let namespaces = inner
            .namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let client = inner.client.clone();
        // not holding the transport across the checks: dropping it aborts this task
        drop(inner);
        let mut found = None;
        for ns in &namespaces {
            let Protocol::Sharded(channels) = &ns.protocol else {
                continue;
            };
            match find_dynamic_peer(&client, channels).await {
                Ok(Some(room)) => {
                    ns.dropped("dynamic_peer");
                    found.get_or_insert(room);
                }
                Ok(None) => {}
                // redis away: its outage is logged by the clients, and the next check retries
                Err(e) => tracing::debug!(nsp = %ns.nsp, "dynamic peer check failed: {e}"),
            }
        }
        let Some(inner) = weak.upgrade() else { break };
        let mut seen = inner.dynamic_peer.lock().unwrap_or_else(|e| e.into_inner());
        match &found {
            Some(room) if seen.is_none() || logged.is_none_or(|t| t.elapsed() >= LOG_EVERY) => {
                tracing::error!("{}", dynamic_peer_message(room));
                logged = Some(Instant::now());
            }
            None if seen.is_some() => {
                tracing::warn!("the Node peer in `dynamic` subscription mode is gone");
                logged = None;
            }
            _ => {}
        }
        *seen = found;
    }
}

/// How often an ongoing dynamic peer is logged again.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// A room channel of the namespace some client is subscribed to, which only a Node sharded
/// adapter in `dynamic` mode does (one per room with a local socket). A dynamic peer with no
/// socket in any room has none and cannot be seen.
async fn find_dynamic_peer(
    client: &fred::clients::Client,
    channels: &ShardedChannels,
) -> Result<Option<String>, fred::error::Error> {
    let pattern: String = channels
        .main()
        .chars()
        .flat_map(|c| {
            let escape = matches!(c, '*' | '?' | '[' | ']' | '\\').then_some('\\');
            escape.into_iter().chain(std::iter::once(c))
        })
        .chain(std::iter::once('*'))
        .collect();
    let mut found: Vec<String> = Vec::new();
    let mut ask = |reply: RedisValue| {
        if let RedisValue::Array(items) = reply {
            found.extend(items.iter().filter_map(|v| v.as_string()));
        }
    };
    match client.cached_cluster_state() {
        Some(state) => {
            for server in state.unique_primary_nodes() {
                let reply = client
                    .with_cluster_node(server)
                    .pubsub_shardchannels::<RedisValue, _>(pattern.clone())
                    .await?;
                ask(reply);
            }
        }
        None => ask(client
            .pubsub_shardchannels::<RedisValue, _>(pattern.clone())
            .await?),
    }
    // the main channel and nodes' response channels (16 hex uids) are static mode's own
    let is_node_channel = |c: &str| {
        c == channels.main()
            || c.strip_prefix(channels.main())
                .and_then(|rest| rest.strip_suffix('#'))
                .is_some_and(|uid| uid.len() == 16 && uid.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    Ok(found.into_iter().find(|c| !is_node_channel(c)))
}
