//! `status`: the topology as statehouse sees it ([`Statehouse::topology`]: the kind, each
//! endpoint with its pool of WATCH connections, a Sentinel service's sentinels and the primary
//! they resolved to, a cluster's slot ranges and coverage), then every node as it describes
//! itself: the role its server reports (`ROLE`) and its replication (`ROLE` and
//! `INFO replication`): a primary's replicas with their state and offset lag (`INFO`'s list:
//! `ROLE` leaves out those still syncing), a replica's primary, link and lag. The nodes asked:
//! every endpoint; on a Sentinel service or a cluster also every replica a primary lists or the
//! slot map names, and a Sentinel service's sentinels. Readable, or one JSON document with `--json`;
//! URLs and errors never show a password.
//!
//! Each node is asked on a connection of its own, bounded by `--timeout-ms` (connect, and each
//! answer), so an unreachable one is reported as such next to the others (exit status 3). When
//! statehouse cannot connect at all, that error is shown (exit status 3), and a server's
//! endpoints are still asked, each saying why it fails.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use redis::IntoConnectionInfo;
use serde::Serialize;
use statehouse::{Settings, Statehouse, Topology, TopologyKind};
use statehouse_ports::{ClusterMap, PoolState, SentinelService};

use crate::output::{CliError, Output, StoreJson, store_name};

/// `status --json`.
#[derive(Debug, Serialize)]
struct Status {
    store: StoreJson,
    /// `memory` (embedded, no server), `single` (a server, and maybe a read replica),
    /// `sentinel` or `cluster`.
    topology: &'static str,
    /// Why statehouse could not connect (then only a server's URLs are asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// A Sentinel service as statehouse follows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    sentinel: Option<SentinelService>,
    /// A cluster's slot map as statehouse holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterMap>,
    /// The servers statehouse sends calls to.
    endpoints: Vec<Endpoint>,
    /// The other nodes asked: replicas, sentinels.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    nodes: Vec<Endpoint>,
}

/// One node, as statehouse uses it and as its server describes itself.
#[derive(Debug, Default, Serialize, PartialEq)]
struct Endpoint {
    /// An endpoint: `write` (every call; a cluster primary: its slots) or `read` (task reads);
    /// another node: `replica` or `sentinel`.
    endpoint: &'static str,
    /// The URL without its password (an endpoint's).
    #[serde(skip_serializing_if = "String::is_empty")]
    url: String,
    /// `host:port` or the socket path.
    address: String,
    /// Statehouse's pool of WATCH connections to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pool: Option<PoolState>,
    /// Why it could not be asked (then nothing below is known).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// `primary`, `replica` or `sentinel`.
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// Its replication offset (a primary's own, a replica's processed one).
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    /// A primary's connected replicas.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    replicas: Vec<Replica>,
    /// A replica's primary, `host:port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    primary: Option<String>,
    /// A replica's link to its primary: `up`, `down`, or the sync state.
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    /// A replica's lag behind its primary in bytes, when its primary was asked too (both offsets
    /// known).
    #[serde(skip_serializing_if = "Option::is_none")]
    lag_bytes: Option<u64>,
}

/// A replica as its primary reports it.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct Replica {
    address: String,
    /// `online`, `wait_bgsave`, `send_bulk`, … (`INFO replication`).
    state: String,
    offset: u64,
    /// How far behind the primary's offset, in bytes.
    lag_bytes: u64,
}

pub(super) async fn status(
    settings: &Settings,
    backend: &'static str,
    out: &mut Output<'_>,
) -> Result<(), CliError> {
    let timeout = settings.response_timeout;
    let seen = match Statehouse::with_settings(settings.clone()).await {
        Ok(state) => state.topology().await,
        Err(error) => Err(error),
    };
    let mut status = Status {
        store: StoreJson::new(settings, backend),
        topology: kind_of(settings).as_str(),
        error: None,
        sentinel: None,
        cluster: None,
        endpoints: Vec::new(),
        nodes: Vec::new(),
    };
    match seen {
        Ok(topology) => {
            status.topology = topology.kind.as_str();
            (status.endpoints, status.nodes) = ask_every_node(settings, &topology, timeout).await;
            status.sentinel = topology.sentinel;
            status.cluster = topology.cluster;
        }
        Err(error) => {
            status.error = Some(CliError::from(error).to_string());
            if status.topology == "single" {
                let write = probe("write", settings.url.as_str(), settings.redacted_url(), timeout).await;
                status.endpoints.push(write);
                if let (Some(read_url), Some(shown)) = (&settings.read_url, settings.redacted_read_url()) {
                    status
                        .endpoints
                        .push(probe("read", read_url.as_str(), shown, timeout).await);
                }
            }
        }
    }
    replica_lag(&mut status);
    out.print(&status, text(settings, &status))?;
    let failed: Vec<String> = status
        .endpoints
        .iter()
        .chain(&status.nodes)
        .filter(|endpoint| endpoint.error.is_some())
        .map(|endpoint| match endpoint.endpoint {
            "write" | "read" => format!("{} endpoint {}", endpoint.endpoint, endpoint.url),
            other => format!("{other} {}", endpoint.address),
        })
        .collect();
    if !failed.is_empty() {
        return Err(CliError::Failed(format!(
            "cannot reach the {}",
            failed.join(" and the ")
        )));
    }
    match status.error {
        Some(error) => Err(CliError::Failed(format!("cannot connect: {error}"))),
        None => Ok(()),
    }
}

/// Asks every node of `topology` (on a connection of its own, bounded by `timeout`): its
/// endpoints, then the other nodes: the replicas a Sentinel or cluster primary lists or the slot
/// map names, and a Sentinel service's sentinels.
async fn ask_every_node(
    settings: &Settings,
    topology: &Topology,
    timeout: Duration,
) -> (Vec<Endpoint>, Vec<Endpoint>) {
    // The nodes' URLs are the library's: the user info, database and parameters statehouse
    // itself reaches each node with.
    let config = settings.redis_config();
    let mut endpoints = Vec::new();
    for endpoint in &topology.endpoints {
        let url = match (topology.kind, endpoint.serves) {
            (TopologyKind::Single, "read") => Ok(settings.read_url.clone().unwrap_or_default()),
            (TopologyKind::Single, _) => Ok(settings.url.clone()),
            (_, "read") => config
                .read_node_url(&endpoint.address)
                .unwrap_or_else(|| config.node_url(&endpoint.address)),
            _ => config.node_url(&endpoint.address),
        };
        let mut found = probe_at(endpoint.serves, url, endpoint.url.clone(), timeout).await;
        found.address.clone_from(&endpoint.address);
        found.pool = endpoint.pool;
        endpoints.push(found);
    }
    let listed = endpoints
        .iter()
        .filter(|_| topology.kind != TopologyKind::Single)
        .flat_map(|endpoint| endpoint.replicas.iter().map(|replica| replica.address.clone()));
    let mapped = topology
        .cluster
        .iter()
        .flat_map(|map| map.ranges.iter().flat_map(|range| range.replicas.iter().cloned()));
    let mut replicas: Vec<String> = listed
        .chain(mapped)
        .filter(|addr| !endpoints.iter().any(|endpoint| endpoint.address == *addr))
        .collect();
    replicas.sort_unstable();
    replicas.dedup();
    let mut nodes = Vec::new();
    for addr in replicas {
        let mut found = probe_at("replica", config.node_url(&addr), String::new(), timeout).await;
        if found.address.is_empty() {
            found.address = addr;
        }
        nodes.push(found);
    }
    for addr in topology.sentinel.iter().flat_map(|service| &service.sentinels) {
        let mut found = probe_at("sentinel", config.sentinel_url(addr), String::new(), timeout).await;
        if found.address.is_empty() {
            found.address.clone_from(addr);
        }
        nodes.push(found);
    }
    (endpoints, nodes)
}

/// The backend a URL is served by, as `Statehouse::backend` names it.
pub(super) fn backend_of(settings: &Settings) -> &'static str {
    match settings.url.split_once("://").map(|(scheme, _)| scheme) {
        Some("memory") => "memory",
        _ => "redis",
    }
}

/// The topology a URL asks for, by its scheme (what is shown when statehouse cannot connect).
fn kind_of(settings: &Settings) -> TopologyKind {
    let scheme = settings
        .url
        .split_once("://")
        .map_or("", |(scheme, _)| scheme)
        .to_ascii_lowercase();
    match scheme.as_str() {
        "memory" => TopologyKind::Memory,
        "redis+sentinel" | "rediss+sentinel" => TopologyKind::Sentinel,
        "redis+cluster" | "rediss+cluster" => TopologyKind::Cluster,
        _ => TopologyKind::Single,
    }
}

/// [`probe`] of the node at `url`, or the endpoint's error if statehouse cannot say how to
/// reach it (a malformed URL; the error quotes nothing of it).
async fn probe_at(
    endpoint: &'static str,
    url: Result<String, statehouse::StoreError>,
    shown: String,
    timeout: Duration,
) -> Endpoint {
    match url {
        Ok(url) => probe(endpoint, url.as_str(), shown, timeout).await,
        Err(error) => Endpoint {
            endpoint,
            url: shown,
            error: Some(error.to_string()),
            ..Endpoint::default()
        },
    }
}

/// Asks the server `info` names for `ROLE` and `INFO replication`; `url` is what to show of it
/// (redacted; empty for a node statehouse has no URL of).
async fn probe(
    endpoint: &'static str,
    info: impl IntoConnectionInfo,
    url: String,
    timeout: Duration,
) -> Endpoint {
    let mut found = Endpoint {
        endpoint,
        url,
        ..Endpoint::default()
    };
    let client = match redis::Client::open(info) {
        Ok(client) => client,
        Err(error) => {
            found.error = Some(scrub(&error.to_string(), None));
            return found;
        }
    };
    let password = client.get_connection_info().redis_settings().password();
    found.address = client.get_connection_info().addr().to_string();
    match ask(&client, timeout).await {
        Ok((role, info)) => describe(&mut found, &role, &info),
        Err(error) => found.error = Some(scrub(&error, password)),
    }
    found
}

/// `ROLE` and `INFO replication` on a connection of their own, each step
/// bounded by `timeout`.
async fn ask(client: &redis::Client, timeout: Duration) -> Result<(redis::Value, String), String> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let bounded = |what: &str| format!("{what}: no answer within {} ms", timeout.as_millis());
    let connecting = client.get_multiplexed_async_connection_with_config(&config);
    let mut connection = tokio::time::timeout(timeout * 2, connecting)
        .await
        .map_err(|_| bounded("connect"))?
        .map_err(|error| format!("connect: {error}"))?;
    let role = tokio::time::timeout(timeout, redis::cmd("ROLE").query_async(&mut connection))
        .await
        .map_err(|_| bounded("ROLE"))?
        .map_err(|error| format!("ROLE: {error}"))?;
    let info = tokio::time::timeout(
        timeout,
        redis::cmd("INFO").arg("replication").query_async(&mut connection),
    )
    .await
    .map_err(|_| bounded("INFO replication"))?
    .map_err(|error| format!("INFO replication: {error}"))?;
    Ok((role, info))
}

/// `text` without `password` (redis-rs never puts it in an error, but an
/// error is no place to find out).
fn scrub(text: &str, password: Option<&str>) -> String {
    match password {
        Some(password) if !password.is_empty() => text.replace(password, "***"),
        _ => text.to_owned(),
    }
}

/// Fills `endpoint` from a `ROLE` reply and `INFO replication`.
fn describe(endpoint: &mut Endpoint, role: &redis::Value, info: &str) {
    let fields: HashMap<&str, &str> = info
        .lines()
        .filter_map(|line| line.trim().split_once(':'))
        .collect();
    let items = match role {
        redis::Value::Array(items) => items.as_slice(),
        _ => &[],
    };
    let text = |value: Option<&redis::Value>| -> Option<String> {
        value.and_then(|value| redis::from_redis_value_ref::<String>(value).ok())
    };
    let number = |value: Option<&redis::Value>| -> Option<u64> {
        value.and_then(|value| redis::from_redis_value_ref::<u64>(value).ok())
    };
    match text(items.first()).as_deref() {
        Some("master") => {
            endpoint.role = Some("primary");
            endpoint.offset = number(items.get(1)).or_else(|| fields.get("master_repl_offset")?.parse().ok());
            // Every replica the primary serves, whatever its state (`ROLE` lists only the online
            // ones), in `slaveN` order.
            let mut listed: Vec<(usize, &str)> = fields
                .iter()
                .filter_map(|(name, value)| Some((name.strip_prefix("slave")?.parse().ok()?, *value)))
                .collect();
            listed.sort_unstable();
            for (_, value) in listed {
                let pairs: HashMap<&str, &str> =
                    value.split(',').filter_map(|pair| pair.split_once('=')).collect();
                let (Some(ip), Some(port), Some(state)) =
                    (pairs.get("ip"), pairs.get("port"), pairs.get("state"))
                else {
                    continue;
                };
                let offset: u64 = pairs
                    .get("offset")
                    .and_then(|offset| offset.parse().ok())
                    .unwrap_or(0);
                endpoint.replicas.push(Replica {
                    address: format!("{ip}:{port}"),
                    state: (*state).to_owned(),
                    offset,
                    lag_bytes: endpoint.offset.unwrap_or(0).saturating_sub(offset),
                });
            }
        }
        Some("slave") => {
            endpoint.role = Some("replica");
            if let (Some(host), Some(port)) = (text(items.get(1)), number(items.get(2))) {
                endpoint.primary = Some(format!("{host}:{port}"));
            }
            endpoint.link = fields
                .get("master_link_status")
                .map(|status| (*status).to_owned())
                .or_else(|| text(items.get(3)));
            endpoint.offset = number(items.get(4)).or_else(|| fields.get("slave_repl_offset")?.parse().ok());
        }
        Some("sentinel") => endpoint.role = Some("sentinel"),
        other => endpoint.error = Some(format!("ROLE answered {other:?}")),
    }
}

/// Each replica's lag behind its primary, when the primary was asked too.
fn replica_lag(status: &mut Status) {
    let primaries: HashMap<String, u64> = status
        .endpoints
        .iter()
        .chain(&status.nodes)
        .filter(|node| node.role == Some("primary"))
        .filter_map(|node| Some((node.address.clone(), node.offset?)))
        .collect();
    for node in status
        .endpoints
        .iter_mut()
        .chain(&mut status.nodes)
        .filter(|node| node.role == Some("replica"))
    {
        if let (Some(primary), Some(own)) = (
            node.primary.as_ref().and_then(|addr| primaries.get(addr)),
            node.offset,
        ) {
            node.lag_bytes = Some(primary.saturating_sub(own));
        }
    }
}

/// The status for people.
fn text(settings: &Settings, status: &Status) -> String {
    let mut text = format!("store: {}\ntopology: {}", store_name(settings), status.topology);
    if let Some(error) = &status.error {
        let _ = write!(text, "\nstatehouse cannot connect: {error}");
    } else if status.topology == "memory" {
        text.push_str("\nembedded in this process: no server, no replication");
    }
    if let Some(service) = &status.sentinel {
        let _ = write!(
            text,
            "\nservice {}: primary {} ({} switches followed), sentinels {}",
            service.service,
            service.primary,
            service.switches,
            service.sentinels.join(", ")
        );
        if let Some(replica) = &service.read_replica {
            let _ = write!(text, ", task reads from {replica}");
        }
    }
    if let Some(map) = &status.cluster {
        let _ = write!(
            text,
            "\nslots: {} of 16384 covered{}, map changed {} times",
            map.covered,
            if map.complete { "" } else { " (INCOMPLETE)" },
            map.changes
        );
        for range in &map.ranges {
            let _ = write!(
                text,
                "\n  {}-{}: primary {}, replicas [{}]",
                range.first,
                range.last,
                range.primary,
                range.replicas.join(", ")
            );
        }
    }
    for endpoint in status.endpoints.iter().chain(&status.nodes) {
        match endpoint.endpoint {
            "write" | "read" => {
                let _ = write!(
                    text,
                    "\n{} endpoint {} ({}): ",
                    endpoint.endpoint, endpoint.url, endpoint.address
                );
            }
            other => {
                let _ = write!(text, "\n{other} {}: ", endpoint.address);
            }
        }
        node_text(&mut text, endpoint);
    }
    text
}

/// One node's line (and its replicas' lines) for people.
fn node_text(text: &mut String, endpoint: &Endpoint) {
    if let Some(error) = &endpoint.error {
        let _ = write!(text, "UNREACHABLE: {error}");
        return;
    }
    let offset = endpoint
        .offset
        .map_or_else(String::new, |offset| format!(", offset {offset}"));
    match endpoint.role {
        Some("primary") => {
            let _ = write!(
                text,
                "primary{offset}, {} replicas connected",
                endpoint.replicas.len()
            );
        }
        Some("replica") => {
            let _ = write!(
                text,
                "replica of {}, link {}{offset}",
                endpoint.primary.as_deref().unwrap_or("?"),
                endpoint.link.as_deref().unwrap_or("?"),
            );
            if let Some(lag) = endpoint.lag_bytes {
                let _ = write!(text, ", {lag} bytes behind its primary");
            }
        }
        Some(role) => text.push_str(role),
        None => text.push('?'),
    }
    if let Some(pool) = &endpoint.pool {
        let _ = write!(
            text,
            "; pool {} of {} open, {} in use",
            pool.open, pool.size, pool.in_use
        );
    }
    for replica in &endpoint.replicas {
        let _ = write!(
            text,
            "\n  replica {}: {}, offset {}, {} bytes behind",
            replica.address, replica.state, replica.offset, replica.lag_bytes
        );
    }
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn a_primary_lists_its_replicas_with_state_and_lag() {
        let role = Value::Array(vec![
            bulk("master"),
            Value::Int(3129659),
            Value::Array(vec![
                Value::Array(vec![bulk("127.0.0.1"), bulk("9001"), bulk("3129242")]),
                Value::Array(vec![bulk("127.0.0.1"), bulk("9002"), bulk("3129543")]),
            ]),
        ]);
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
                    slave0:ip=127.0.0.1,port=9001,state=online,offset=3129242,lag=0\r\n\
                    slave1:ip=127.0.0.1,port=9002,state=wait_bgsave,offset=3129543,lag=1\r\n";
        let mut endpoint = Endpoint::default();
        describe(&mut endpoint, &role, info);
        assert_eq!(endpoint.role, Some("primary"));
        assert_eq!(endpoint.offset, Some(3129659));
        assert_eq!(
            endpoint.replicas,
            [
                Replica {
                    address: "127.0.0.1:9001".to_owned(),
                    state: "online".to_owned(),
                    offset: 3129242,
                    lag_bytes: 417,
                },
                Replica {
                    address: "127.0.0.1:9002".to_owned(),
                    state: "wait_bgsave".to_owned(),
                    offset: 3129543,
                    lag_bytes: 116,
                },
            ]
        );
    }

    fn status_of(endpoints: Vec<Endpoint>, nodes: Vec<Endpoint>) -> Status {
        let settings = Settings::new("redis://u:hunter2@127.0.0.1:1");
        Status {
            store: StoreJson::new(&settings, "redis"),
            topology: "single",
            error: None,
            sentinel: None,
            cluster: None,
            endpoints,
            nodes,
        }
    }

    #[test]
    fn a_replica_names_its_primary_link_and_lag_behind_it() {
        let mut write = Endpoint {
            endpoint: "write",
            address: "127.0.0.1:9000".to_owned(),
            ..Endpoint::default()
        };
        describe(
            &mut write,
            &Value::Array(vec![bulk("master"), Value::Int(500), Value::Array(vec![])]),
            "role:master\r\n",
        );
        let mut read = Endpoint {
            endpoint: "read",
            ..Endpoint::default()
        };
        // `ROLE` of a replica of 127.0.0.1:9000 at `offset`.
        let replica_at = |offset| {
            Value::Array(vec![
                bulk("slave"),
                bulk("127.0.0.1"),
                Value::Int(9000),
                bulk("connected"),
                Value::Int(offset),
            ])
        };
        let up = "role:slave\r\nmaster_link_status:up\r\n";
        describe(&mut read, &replica_at(480), up);
        let mut other = Endpoint {
            endpoint: "replica",
            ..Endpoint::default()
        };
        describe(&mut other, &replica_at(450), up);
        let mut status = status_of(vec![write, read], vec![other]);
        replica_lag(&mut status);
        let read = &status.endpoints[1];
        assert_eq!(read.role, Some("replica"));
        assert_eq!(read.primary.as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(read.link.as_deref(), Some("up"));
        assert_eq!(read.offset, Some(480));
        assert_eq!(read.lag_bytes, Some(20));
        assert_eq!(
            status.nodes[0].lag_bytes,
            Some(50),
            "a replica among the other nodes"
        );
    }

    #[test]
    fn node_urls_keep_the_data_nodes_credentials_and_database() {
        let settings = Settings::new("redis+sentinel://u:p@w@s1:1,s2:2/svc/3?sentinel_password=x");
        assert_eq!(
            settings.redis_config().node_url("h:7").unwrap(),
            "redis://u:p@w@h:7/3"
        );
        let settings = Settings::new("rediss+cluster://:pw@a:1,b:2");
        assert_eq!(
            settings.redis_config().node_url("h:7").unwrap(),
            "rediss://:pw@h:7"
        );
        let settings = Settings::new("redis+sentinel://s1:1/svc");
        assert_eq!(settings.redis_config().node_url("h:7").unwrap(), "redis://h:7/");
        let mut settings = Settings::new("redis+sentinel://:data@s1:1/svc?sentinel_password=se%40cret");
        let url = settings.redis_config().sentinel_url("s1:1").unwrap();
        let info = url.as_str().into_connection_info().unwrap();
        assert_eq!(info.redis_settings().password(), Some("se@cret"));
        settings.sentinel_password = Some("other".to_owned());
        let url = settings.redis_config().sentinel_url("s1:1").unwrap();
        let info = url.as_str().into_connection_info().unwrap();
        assert_eq!(info.redis_settings().password(), Some("other"));
    }

    #[test]
    fn errors_and_urls_never_show_the_password() {
        assert_eq!(
            scrub("WRONGPASS for hunter2", Some("hunter2")),
            "WRONGPASS for ***"
        );
        let settings = Settings::new("redis://u:hunter2@127.0.0.1:1");
        let status = status_of(
            vec![Endpoint {
                endpoint: "write",
                url: settings.redacted_url(),
                address: "127.0.0.1:1".to_owned(),
                error: Some("connect: refused".to_owned()),
                ..Endpoint::default()
            }],
            vec![],
        );
        let shown = text(&settings, &status);
        let json = serde_json::to_string(&status).unwrap();
        for output in [&shown, &json] {
            assert!(!output.contains("hunter2"), "{output}");
            assert!(output.contains("127.0.0.1:1"), "{output}");
        }
        assert!(shown.contains("UNREACHABLE: connect: refused"), "{shown}");
    }
}
