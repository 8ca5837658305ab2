//! Resolution: asking the sentinels which node is the primary (every
//! sentinel at once, the newest configuration wins) or which replicas are
//! healthy (the first sentinel that answers), and confirming a node's role
//! with `ROLE`. A sentinel is reached with the same client settings as a
//! node ([`sentinel_client`]): with `rediss+sentinel://`, TLS with the CA
//! of the configuration.

use redis::aio::ConnectionManager;
use redis::{AsyncConnectionConfig, Client};
use statehouse_ports::StoreError;

use super::super::single::Single;
use super::url::{SentinelUrl, node_addr};
use crate::RedisConfig;
use crate::redact::Secrets;

/// The first primary the sentinels name that confirms it with `ROLE`.
pub(super) async fn connect(
    config: &RedisConfig,
    url: &SentinelUrl,
    secrets: &Secrets,
) -> Result<(String, Single), StoreError> {
    let withhold = |error| crate::error::withhold(error, secrets);
    let addr = ask_sentinels(config, url, secrets).await.map_err(withhold)?;
    let single = open_primary(config, url, &addr, secrets)
        .await
        .map_err(withhold)?;
    Ok((addr, single))
}

/// Connects to the primary at `addr` as to one server, and checks that it
/// says `master`.
pub(super) async fn open_primary(
    config: &RedisConfig,
    url: &SentinelUrl,
    addr: &str,
    secrets: &Secrets,
) -> Result<Single, StoreError> {
    let primary = RedisConfig {
        url: url.primary_url(addr),
        read_url: None,
        ..config.clone()
    };
    let single = Single::open(&primary, secrets).await?;
    if role_of(config, &single.shared).await.as_deref() != Some(b"master".as_slice()) {
        return Err(StoreError::Connection {
            op: "connect",
            key: config.redacted_url(),
            source: format!(
                "the sentinels name {addr} as the primary of {:?}, but it does not say `master` to ROLE",
                url.service
            )
            .into(),
        });
    }
    Ok(single)
}

/// The role the server behind `conn` names first in its `ROLE` reply
/// (`master`, `slave`), within the response timeout; `None` without an
/// answer.
pub(super) async fn role_of(config: &RedisConfig, conn: &ConnectionManager) -> Option<Vec<u8>> {
    let mut conn = conn.clone();
    let role = tokio::time::timeout(
        config.response_timeout,
        redis::cmd("ROLE").query_async::<redis::Value>(&mut conn),
    )
    .await;
    match role {
        Ok(Ok(redis::Value::Array(items))) => match items.into_iter().next() {
            Some(redis::Value::BulkString(role)) => Some(role),
            Some(redis::Value::SimpleString(role)) => Some(role.into_bytes()),
            _ => None,
        },
        _ => None,
    }
}

/// `host:port` of the primary per the sentinels: every sentinel is asked at
/// once (`SENTINEL MASTER` and `SENTINEL get-master-addr-by-name`, each
/// sentinel bounded by the connect timeout, connecting, and the response
/// timeout, the commands), and the answer of the newest configuration wins:
/// the highest `config-epoch`, and at the same epoch a sentinel running a
/// failover (whose `get-master-addr-by-name` already names the promoted
/// replica once it reconfigures the others). During a failover the
/// sentinels that have not heard of it yet still name the old primary,
/// which keeps saying `master` to `ROLE` until the sentinels reconfigure it
/// (up to 10 s later): asking only the first sentinel that answers could
/// switch to it, or back to it, and every write meanwhile would be lost.
pub(super) async fn ask_sentinels(
    config: &RedisConfig,
    url: &SentinelUrl,
    secrets: &Secrets,
) -> Result<String, StoreError> {
    let probe = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.response_timeout));
    let bound = config.connect_timeout + config.response_timeout;
    let clients = sentinel_clients(config, url, secrets)?;
    let asks = clients.into_iter().map(|(sentinel, client)| {
        let probe = probe.clone();
        async move {
            let ask = async {
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&probe)
                    .await?;
                redis::pipe()
                    .cmd("SENTINEL")
                    .arg("MASTER")
                    .arg(&url.service)
                    .cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&url.service)
                    .query_async::<(Vec<String>, Option<(String, u16)>)>(&mut conn)
                    .await
            };
            match tokio::time::timeout(bound, ask).await {
                Ok(Ok((fields, Some((host, port))))) => Ok((rank_of(&fields), node_addr(&host, port))),
                Ok(Ok((_, None))) => Err(format!("sentinel {sentinel} knows no service {:?}", url.service)),
                Ok(Err(error)) if error.to_string().contains("No such master") => {
                    Err(format!("sentinel {sentinel} knows no service {:?}", url.service))
                }
                Ok(Err(error)) => {
                    let mapped = crate::error::map_guarded("connect", sentinel, error, bound, secrets);
                    Err(format!("sentinel {sentinel}: {mapped}"))
                }
                Err(_) => Err(format!("sentinel {sentinel} did not answer within {bound:?}")),
            }
        }
    });
    let mut newest: Option<((u64, bool), String)> = None;
    let mut last = String::from("no sentinel is listed");
    for answer in futures_util::future::join_all(asks).await {
        match answer {
            Ok((epoch, addr)) => {
                if newest.as_ref().is_none_or(|(known, _)| epoch > *known) {
                    newest = Some((epoch, addr));
                }
            }
            Err(reason) => last = reason,
        }
    }
    newest
        .map(|(_, addr)| addr)
        .ok_or_else(|| StoreError::Connection {
            op: "connect",
            key: config.redacted_url(),
            source: format!("no sentinel named the primary of {:?}: {last}", url.service).into(),
        })
}

/// How new a sentinel's view of the service is, from its `SENTINEL MASTER`
/// entry (name, value, name, value, …): the configuration epoch, then
/// whether it runs a failover.
fn rank_of(fields: &[String]) -> (u64, bool) {
    let field = |name: &str| entry_field(fields, name);
    let epoch = field("config-epoch")
        .and_then(|epoch| epoch.parse().ok())
        .unwrap_or(0);
    let failing_over =
        field("flags").is_some_and(|flags| flags.split(',').any(|flag| flag == "failover_in_progress"));
    (epoch, failing_over)
}

/// What the first sentinel that answers `command` says, through `accept`
/// (which names the reason a sentinel's answer does not do); each bounded
/// by the connect timeout (connecting) and the response timeout (the
/// command). `what` names what was asked in the error.
pub(super) async fn ask_each<T>(
    config: &RedisConfig,
    url: &SentinelUrl,
    secrets: &Secrets,
    command: &redis::Cmd,
    what: &str,
    accept: impl Fn(redis::Value) -> Result<T, String>,
) -> Result<T, StoreError> {
    let mut last = String::from("no sentinel is listed");
    let probe = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.response_timeout));
    let bound = config.connect_timeout + config.response_timeout;
    for (sentinel, client) in sentinel_clients(config, url, secrets)? {
        let ask = async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&probe)
                .await?;
            command.query_async::<redis::Value>(&mut conn).await
        };
        match tokio::time::timeout(bound, ask).await {
            Ok(Ok(answer)) => match accept(answer) {
                Ok(value) => return Ok(value),
                Err(reason) => last = format!("sentinel {sentinel} {reason}"),
            },
            Ok(Err(error)) => {
                let mapped = crate::error::map_guarded("connect", sentinel, error, bound, secrets);
                last = format!("sentinel {sentinel}: {mapped}");
            }
            Err(_) => last = format!("sentinel {sentinel} did not answer within {bound:?}"),
        }
    }
    Err(StoreError::Connection {
        op: "connect",
        key: config.redacted_url(),
        source: format!("no sentinel named {what} of {:?}: {last}", url.service).into(),
    })
}

/// The value of `name` in an entry of a sentinel's reply (name, value,
/// name, value, …: `SENTINEL MASTER`, each of `SENTINEL replicas`).
pub(super) fn entry_field<'a>(fields: &'a [String], name: &str) -> Option<&'a str> {
    fields
        .chunks(2)
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair.get(1))
        .map(String::as_str)
}

/// The client of each sentinel of `url`, with the same settings as a node's
/// (the TLS CA of `config`, if one is set); an error (a CA file that
/// cannot be read) is the configuration's, the same for every sentinel.
fn sentinel_clients<'a>(
    config: &RedisConfig,
    url: &'a SentinelUrl,
    secrets: &Secrets,
) -> Result<Vec<(&'a String, Client)>, StoreError> {
    url.sentinels
        .iter()
        .map(|sentinel| Ok((sentinel, sentinel_client(config, url, sentinel, secrets)?)))
        .collect()
}

/// The client of the sentinel at `sentinel` (`host:port`): its URL
/// (`rediss://` for `rediss+sentinel://`, the sentinels' credentials)
/// through THE client constructor of a node, so that it gets the TLS CA of
/// `config` like the primary and the replicas. Errors name the sentinel.
pub(super) fn sentinel_client(
    config: &RedisConfig,
    url: &SentinelUrl,
    sentinel: &str,
    secrets: &Secrets,
) -> Result<Client, StoreError> {
    super::super::client(config, &url.sentinel_url(sentinel), sentinel, secrets)
}
