//! `status`: the topology as statehouse sees it. For each endpoint of the
//! settings (the write URL and, if set, the read URL of task reads): its
//! address, the role its server reports (`ROLE`), and its replication
//! (`ROLE` and `INFO replication`): a primary's replicas with their state
//! and offset lag (`INFO`'s list: `ROLE` leaves out those still syncing), a replica's primary, link and lag. Readable, or one
//! JSON document with `--json`; URLs and errors never show a password.
//!
//! Each endpoint is asked on a connection of its own, bounded by
//! `--timeout-ms` (connect, and each answer), so an unreachable endpoint
//! is reported as such next to the others (exit status 3).
//!
//! Sentinel services (the primary they resolve to) and clusters (slot
//! coverage) come with the library's support of those URLs.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use statehouse::Settings;

use crate::output::{CliError, Output, StoreJson, store_name};

/// `status --json`.
#[derive(Debug, Serialize)]
struct Status {
    store: StoreJson,
    /// `memory` (embedded, no server) or `single` (a server, and maybe
    /// a read replica).
    topology: &'static str,
    endpoints: Vec<Endpoint>,
}

/// One endpoint, as its server describes itself.
#[derive(Debug, Default, Serialize, PartialEq)]
struct Endpoint {
    /// `write` (every call) or `read` (task reads).
    endpoint: &'static str,
    /// The URL without its password.
    url: String,
    /// `host:port` or the socket path.
    address: String,
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
    /// A replica's lag behind its primary in bytes, when the primary is the
    /// write endpoint (both offsets known).
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
    let mut endpoints = Vec::new();
    if backend == "redis" {
        endpoints.push(probe("write", &settings.url, timeout).await);
        if let Some(read_url) = &settings.read_url {
            endpoints.push(probe("read", read_url, timeout).await);
        }
        read_lag(&mut endpoints);
    }
    let status = Status {
        store: StoreJson::new(settings, backend),
        topology: if backend == "redis" { "single" } else { "memory" },
        endpoints,
    };
    out.print(&status, text(settings, &status))?;
    let failed: Vec<String> = status
        .endpoints
        .iter()
        .filter(|endpoint| endpoint.error.is_some())
        .map(|endpoint| format!("{} endpoint {}", endpoint.endpoint, endpoint.url))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "cannot reach the {}",
            failed.join(" and the ")
        )))
    }
}

/// The backend a URL is served by, as `Statehouse::backend` names it.
pub(super) fn backend_of(settings: &Settings) -> &'static str {
    match settings.url.split_once("://").map(|(scheme, _)| scheme) {
        Some("memory") => "memory",
        _ => "redis",
    }
}

/// Asks the server at `url` for `ROLE` and `INFO replication`.
async fn probe(endpoint: &'static str, url: &str, timeout: Duration) -> Endpoint {
    let redacted = Settings::new(url).redacted_url();
    let mut found = Endpoint {
        endpoint,
        url: redacted,
        ..Endpoint::default()
    };
    let client = match redis::Client::open(url) {
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

/// A read replica's lag, when its primary is the write endpoint.
fn read_lag(endpoints: &mut [Endpoint]) {
    let Some(write) = endpoints.iter().find(|endpoint| endpoint.endpoint == "write") else {
        return;
    };
    let (address, offset) = (write.address.clone(), write.offset);
    for endpoint in endpoints
        .iter_mut()
        .filter(|endpoint| endpoint.role == Some("replica"))
    {
        if endpoint.primary.as_deref() == Some(address.as_str())
            && let (Some(primary), Some(own)) = (offset, endpoint.offset)
        {
            endpoint.lag_bytes = Some(primary.saturating_sub(own));
        }
    }
}

/// The status for people.
fn text(settings: &Settings, status: &Status) -> String {
    let mut text = format!("store: {}\ntopology: {}", store_name(settings), status.topology);
    if status.endpoints.is_empty() {
        text.push_str("\nembedded in this process: no server, no replication");
    }
    for endpoint in &status.endpoints {
        let _ = write!(
            text,
            "\n{} endpoint {} ({}): ",
            endpoint.endpoint, endpoint.url, endpoint.address
        );
        if let Some(error) = &endpoint.error {
            let _ = write!(text, "UNREACHABLE: {error}");
            continue;
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
                for replica in &endpoint.replicas {
                    let _ = write!(
                        text,
                        "\n  replica {}: {}, offset {}, {} bytes behind",
                        replica.address, replica.state, replica.offset, replica.lag_bytes
                    );
                }
            }
            Some("replica") => {
                let _ = write!(
                    text,
                    "replica of {}, link {}{offset}",
                    endpoint.primary.as_deref().unwrap_or("?"),
                    endpoint.link.as_deref().unwrap_or("?"),
                );
                if let Some(lag) = endpoint.lag_bytes {
                    let _ = write!(text, ", {lag} bytes behind the write endpoint");
                }
            }
            Some(role) => text.push_str(role),
            None => text.push('?'),
        }
    }
    text
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

    #[test]
    fn a_replica_names_its_primary_link_and_lag_behind_the_write_endpoint() {
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
        let role = Value::Array(vec![
            bulk("slave"),
            bulk("127.0.0.1"),
            Value::Int(9000),
            bulk("connected"),
            Value::Int(480),
        ]);
        describe(&mut read, &role, "role:slave\r\nmaster_link_status:up\r\n");
        let mut endpoints = [write, read];
        read_lag(&mut endpoints);
        let read = &endpoints[1];
        assert_eq!(read.role, Some("replica"));
        assert_eq!(read.primary.as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(read.link.as_deref(), Some("up"));
        assert_eq!(read.offset, Some(480));
        assert_eq!(read.lag_bytes, Some(20));
    }

    #[test]
    fn errors_and_urls_never_show_the_password() {
        assert_eq!(
            scrub("WRONGPASS for hunter2", Some("hunter2")),
            "WRONGPASS for ***"
        );
        let settings = Settings::new("redis://u:hunter2@127.0.0.1:1");
        let status = Status {
            store: StoreJson::new(&settings, "redis"),
            topology: "single",
            endpoints: vec![Endpoint {
                endpoint: "write",
                url: settings.redacted_url(),
                address: "127.0.0.1:1".to_owned(),
                error: Some("connect: refused".to_owned()),
                ..Endpoint::default()
            }],
        };
        let shown = text(&settings, &status);
        let json = serde_json::to_string(&status).unwrap();
        for output in [&shown, &json] {
            assert!(!output.contains("hunter2"), "{output}");
            assert!(output.contains("127.0.0.1:1"), "{output}");
        }
        assert!(shown.contains("UNREACHABLE: connect: refused"), "{shown}");
    }
}
