//! A Redis Sentinel service:
//! `redis+sentinel://[user:password@]s1:26379,s2:26379/SERVICE[/DB][?sentinel_username=…&sentinel_password=…]`.
//!
//! The primary is resolved with `SENTINEL get-master-addr-by-name` from the
//! first sentinel that answers (each bounded by the connect and response
//! timeouts), confirmed with `ROLE`, then connected to as one server
//! ([`Single`]): the credentials, database and other query parameters of
//! the URL are the primary's. On a failover (a `READONLY` reply, a dropped
//! or refused connection, a timeout) the store calls [`Sentinel::suspect`]:
//! one resolution runs in the background and, when the sentinels name
//! another primary (or the known one no longer says `master`), a new
//! [`Single`] replaces the old one and the generation grows. The old
//! connections, its pool of WATCH connections included, are dropped with
//! it (a WATCH connection of the old generation still checked out goes back
//! to the dropped pool, which discards it); the new pool's connections are
//! opened to the confirmed primary.
//!
//! A failover is also noticed without a failing call: a task listens to
//! `+failover-state-reconf-slaves` (a replica was promoted) and
//! `+switch-master` on each sentinel's Pub/Sub and starts a resolution when
//! a message names the service. It holds the connections weakly and ends within a
//! second of the last store handle's drop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use statehouse_ports::Backoff;

use redis::aio::ConnectionManager;
use redis::{AsyncConnectionConfig, Client, RedisError};
use statehouse_ports::StoreError;

use super::single::Single;
use crate::RedisConfig;
use crate::redact::Secrets;

/// A parsed Sentinel URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SentinelUrl {
    /// `redis` or `rediss`.
    scheme: &'static str,
    /// The primary's user info, as written.
    userinfo: Option<String>,
    /// The sentinels, `host:port` each (port 26379 if none is given).
    pub(crate) sentinels: Vec<String>,
    /// The monitored service's name (percent-decoded).
    pub(crate) service: String,
    /// The primary's database, as written (empty: 0).
    db: String,
    /// The sentinels' user info (`user:password`, as written), from the
    /// `sentinel_username`/`sentinel_password` query parameters.
    sentinel_userinfo: Option<String>,
    /// Other query parameters (the primary's), as written, without `?`.
    query: String,
    /// `role=replica`: the URL names any replica of the service (a read
    /// endpoint), not its primary.
    pub(crate) replica: bool,
}

impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("scheme", &self.scheme)
            .field("sentinels", &self.sentinels)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl SentinelUrl {
    /// Parses a Sentinel URL; `None` if it is none (another scheme), an
    /// error that never quotes the URL if it is malformed.
    pub(crate) fn parse(url: &str) -> Option<Result<Self, String>> {
        let (scheme, body) = url.split_once("://")?;
        let scheme = if scheme.eq_ignore_ascii_case("redis+sentinel") {
            "redis"
        } else if scheme.eq_ignore_ascii_case("rediss+sentinel") {
            "rediss"
        } else {
            return None;
        };
        Some(Self::parse_body(scheme, body))
    }

    fn parse_body(scheme: &'static str, body: &str) -> Result<Self, String> {
        let (userinfo, rest) = match body.rfind('@') {
            Some(at) => (Some(body[..at].to_owned()), &body[at + 1..]),
            None => (None, body),
        };
        let (rest, _fragment) = rest.split_once('#').unwrap_or((rest, ""));
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut sentinels = Vec::new();
        for (index, node) in hosts.split(',').enumerate() {
            sentinels.push(sentinel_addr(node).ok_or_else(|| {
                format!(
                    "sentinel {} of the URL is not host:port (sentinels are separated by commas)",
                    index + 1
                )
            })?);
        }
        let mut parts = path.split('/');
        let service = parts.next().unwrap_or_default();
        if service.is_empty() {
            return Err(
                "a Sentinel URL names its service: redis+sentinel://s1:26379,s2:26379/SERVICE[/DB]".into(),
            );
        }
        let db = parts.next().unwrap_or_default().to_owned();
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err("the database of a Sentinel URL (after the service) is not a number".into());
        }
        if parts.next().is_some_and(|extra| !extra.is_empty()) {
            return Err("a Sentinel URL's path is /SERVICE[/DB]".into());
        }
        let (mut user, mut password) = (None, None);
        let mut kept = Vec::new();
        let mut replica = false;
        for parameter in query.split('&').filter(|p| !p.is_empty()) {
            match parameter.split_once('=') {
                Some(("sentinel_username", value)) => user = Some(value.to_owned()),
                Some(("sentinel_password", value)) => password = Some(value.to_owned()),
                Some(("role", "replica" | "slave")) => replica = true,
                Some(("role", "master" | "primary")) => replica = false,
                Some(("role", _)) => {
                    return Err("the role of a Sentinel URL is `master` (the default) or `replica`".into());
                }
                _ => kept.push(parameter),
            }
        }
        let sentinel_userinfo = match (user, password) {
            (None, None) => None,
            (user, password) => Some(format!(
                "{}:{}",
                user.unwrap_or_default(),
                password.unwrap_or_default()
            )),
        };
        Ok(Self {
            scheme,
            userinfo,
            sentinels,
            service: percent_decode(service),
            db,
            sentinel_userinfo,
            query: kept.join("&"),
            replica,
        })
    }

    /// The `redis://` (`rediss://`) URL of the primary at `addr`.
    pub(crate) fn primary_url(&self, addr: &str) -> String {
        let userinfo = self
            .userinfo
            .as_ref()
            .map_or_else(String::new, |u| format!("{u}@"));
        let query = if self.query.is_empty() {
            String::new()
        } else {
            format!("?{}", self.query)
        };
        format!("{}://{userinfo}{addr}/{}{query}", self.scheme, self.db)
    }

    /// The URL of the sentinel at `addr` (its own credentials, no database).
    fn sentinel_url(&self, addr: &str) -> String {
        match &self.sentinel_userinfo {
            Some(userinfo) => format!("{}://{userinfo}@{addr}", self.scheme),
            None => format!("{}://{addr}", self.scheme),
        }
    }
}

/// `host:port` of one sentinel (port 26379 if none is given).
fn sentinel_addr(node: &str) -> Option<String> {
    let node = node.trim();
    let (host, port) = if let Some(v6) = node.strip_prefix('[') {
        let close = v6.find(']')?;
        let port = &v6[close + 1..];
        (&node[..close + 2], port.strip_prefix(':').unwrap_or(port))
    } else {
        node.rsplit_once(':').unwrap_or((node, ""))
    };
    if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
        return None;
    }
    let port: u16 = if port.is_empty() {
        26379
    } else {
        port.parse().ok()?
    };
    Some(format!("{host}:{port}"))
}

/// `host:port` as a sentinel names it (IPv6 in brackets).
fn node_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `%XX` escapes decoded (lossy); anything malformed kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The connections to a Sentinel service's current primary. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Sentinel {
    inner: Arc<Inner>,
}

struct Inner {
    url: SentinelUrl,
    config: RedisConfig,
    secrets: Secrets,
    /// The primary's `host:port` and its connections.
    current: RwLock<(String, Arc<Single>)>,
    generation: AtomicU64,
    /// Whether a resolution runs (at most one at a time).
    resolving: AtomicBool,
    /// A suspicion arrived: the running resolution (if any) resolves once
    /// more when it ends, so that a `+switch-master` seen during it is not
    /// lost.
    pending: AtomicBool,
    /// The read endpoint "any replica of the service", if one is set.
    read: Option<ReadSide>,
}

/// A read endpoint that is any replica of a Sentinel service
/// (`redis+sentinel://…/SERVICE?role=replica` as the read URL).
struct ReadSide {
    url: SentinelUrl,
    secrets: Secrets,
    /// The read URL, redacted (what a connect error names).
    redacted: String,
    /// The replica read from (`host:port`) and its connection; `None`
    /// while the sentinels name no healthy replica (reads go to the
    /// primary meanwhile).
    current: RwLock<Option<(String, ConnectionManager)>>,
}

impl Sentinel {
    /// Resolves the primary and connects to it, failing with the cause if
    /// no sentinel names a primary that confirms its role.
    ///
    /// With `read` (a `role=replica` URL, its secrets and its redacted
    /// form), task reads go to
    /// a replica the sentinels name healthy (`SENTINEL replicas`),
    /// confirmed with `ROLE`; to the primary while they name none. A
    /// service the read URL's sentinels do not know fails with operation
    /// `connect_read`.
    pub(super) async fn open(
        config: &RedisConfig,
        url: SentinelUrl,
        secrets: Secrets,
        read: Option<(SentinelUrl, Secrets, String)>,
    ) -> Result<Self, StoreError> {
        let (addr, single) = connect(config, &url, &secrets).await?;
        let sentinel = Self {
            inner: Arc::new(Inner {
                url,
                config: config.clone(),
                secrets,
                current: RwLock::new((addr, Arc::new(single))),
                generation: AtomicU64::new(0),
                resolving: AtomicBool::new(false),
                pending: AtomicBool::new(false),
                read: read.map(|(url, secrets, redacted)| ReadSide {
                    url,
                    secrets,
                    redacted,
                    current: RwLock::new(None),
                }),
            }),
        };
        if let Some(read) = &sentinel.inner.read {
            let replicas = ask_replicas(config, &read.url, &read.secrets)
                .await
                .map_err(|error| StoreError::Connection {
                    op: super::CONNECT_READ,
                    key: read.redacted.clone(),
                    source: crate::error::withhold(error, &read.secrets).to_string().into(),
                })?;
            sentinel.connect_reader(replicas).await;
        }
        for index in 0..sentinel.inner.url.sentinels.len() {
            tokio::spawn(follow_switches(Arc::downgrade(&sentinel.inner), index));
        }
        Ok(sentinel)
    }

    /// The read endpoint's connection: a replica's, or `None` (no read URL
    /// set, or no healthy replica known: the primary serves the reads).
    pub(super) fn reader(&self) -> Option<ConnectionManager> {
        let read = self.inner.read.as_ref()?;
        let current = match read.current.read() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        current.as_ref().map(|(_, conn)| conn.clone())
    }

    /// The replica task reads go to (`host:port`), if any.
    pub(crate) fn replica_addr(&self) -> Option<String> {
        let read = self.inner.read.as_ref()?;
        let current = match read.current.read() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        current.as_ref().map(|(addr, _)| addr.clone())
    }

    /// Connects the reader to the first of `replicas` (other than the
    /// primary) that opens and says `slave` to `ROLE`; none: reads go to the
    /// primary.
    async fn connect_reader(&self, replicas: Vec<String>) {
        let Some(read) = &self.inner.read else { return };
        let config = &self.inner.config;
        let primary = self.primary_addr();
        let mut chosen = None;
        // Start at a different replica per process, so that readers spread.
        let start = std::process::id() as usize;
        let count = replicas.len();
        for index in 0..count {
            let addr = &replicas[(start + index) % count];
            if *addr == primary {
                continue;
            }
            let replica_url = read.url.primary_url(addr);
            match super::single::open_reader(config, &replica_url, super::single::shared_config(config)).await
            {
                Ok(conn) if role_of(config, &conn).await.as_deref() == Some(b"slave".as_slice()) => {
                    chosen = Some((addr.clone(), conn));
                    break;
                }
                Ok(_) => {
                    tracing::debug!(replica = %addr, "sentinel: a named replica does not say `slave` to ROLE")
                }
                Err(error) => {
                    tracing::debug!(replica = %addr, kind = ?error.kind(), "sentinel: connecting to a replica failed")
                }
            }
        }
        let found = chosen.is_some();
        match &chosen {
            Some((addr, _)) => tracing::debug!(replica = %addr, "sentinel: task reads from a replica"),
            None => tracing::info!("sentinel: no healthy replica; task reads go to the primary"),
        }
        if let Ok(mut current) = read.current.write() {
            *current = chosen;
        }
        if !found {
            // Reads on the primary fail nothing that would start another
            // resolution: look again shortly (a replica resynchronising after
            // a failover is healthy again within seconds).
            let inner = Arc::downgrade(&self.inner);
            tokio::spawn(async move {
                tokio::time::sleep(READER_RETRY).await;
                if let Some(inner) = inner.upgrade() {
                    Sentinel { inner }.suspect();
                }
            });
        }
    }

    /// Re-resolves the reader when it is unset (no replica was healthy),
    /// its server no longer says `slave` (promoted, or gone), or it is the
    /// primary's.
    async fn check_reader(&self) {
        let Some(read) = &self.inner.read else { return };
        let config = &self.inner.config;
        let healthy = match self.reader() {
            Some(conn) => {
                role_of(config, &conn).await.as_deref() == Some(b"slave".as_slice())
                    && self.replica_addr() != Some(self.primary_addr())
            }
            None => false,
        };
        if healthy {
            return;
        }
        match ask_replicas(config, &read.url, &read.secrets).await {
            Ok(replicas) => self.connect_reader(replicas).await,
            Err(error) => tracing::debug!(kind = ?error.kind(), "sentinel: resolving the replicas failed"),
        }
    }

    /// The current primary's connections.
    pub(super) fn current(&self) -> Arc<Single> {
        match self.inner.current.read() {
            Ok(current) => current.1.clone(),
            Err(poisoned) => poisoned.into_inner().1.clone(),
        }
    }

    /// The current primary's `host:port`.
    pub(crate) fn primary_addr(&self) -> String {
        match self.inner.current.read() {
            Ok(current) => current.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    /// How many times the primary was replaced.
    pub(super) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// A call failed with `error`: if it may mean a failover, resolve the
    /// primary again in the background (once at a time).
    pub(super) fn suspect_error(&self, error: &RedisError) {
        if is_failover_sign(error) {
            self.suspect();
        }
    }

    /// Resolves the primary again in the background; if a resolution runs
    /// already, it runs once more when it ends.
    pub(super) fn suspect(&self) {
        self.inner.pending.store(true, Ordering::Release);
        if self.inner.resolving.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                while this.inner.pending.swap(false, Ordering::AcqRel) {
                    this.resolve_now().await;
                }
                this.inner.resolving.store(false, Ordering::Release);
                // A suspicion between the last check and the release, whose
                // caller saw `resolving` still set.
                if !this.inner.pending.load(Ordering::Acquire)
                    || this.inner.resolving.swap(true, Ordering::AcqRel)
                {
                    return;
                }
            }
        });
    }

    /// Asks the sentinels for the primary now and switches to it if it is
    /// another one, or if the known one no longer says `master`. A failure
    /// is logged and left to the next suspicion.
    pub(super) async fn resolve_now(&self) {
        self.resolve_primary().await;
        self.check_reader().await;
    }

    /// The primary's part of [`resolve_now`](Self::resolve_now).
    async fn resolve_primary(&self) {
        let inner = &self.inner;
        let known = self.primary_addr();
        let addr = match ask_sentinels(&inner.config, &inner.url, &inner.secrets).await {
            Ok(addr) => addr,
            Err(error) => {
                tracing::debug!(kind = ?error.kind(), "sentinel: resolving the primary failed");
                return;
            }
        };
        if addr == known
            && role_of(&inner.config, &self.current().shared).await.as_deref() == Some(b"master".as_slice())
        {
            return;
        }
        match open_primary(&inner.config, &inner.url, &addr, &inner.secrets).await {
            Ok(single) => {
                if let Ok(mut current) = inner.current.write() {
                    *current = (addr.clone(), Arc::new(single));
                }
                let generation = inner.generation.fetch_add(1, Ordering::AcqRel) + 1;
                crate::conn::report::failovers_seen("sentinel", 1);
                tracing::info!(primary = %addr, generation, "sentinel: switched to a new primary");
            }
            Err(error) => {
                tracing::debug!(kind = ?error.kind(), "sentinel: connecting to the resolved primary failed");
            }
        }
    }
}

/// How soon the replicas are asked again while none is healthy.
const READER_RETRY: Duration = Duration::from_secs(1);

/// How often the `+switch-master` listener checks that a store still holds
/// the connections.
const ALIVE_CHECK: Duration = Duration::from_secs(1);

/// Listens to the failover events of the sentinel at `index` (only the
/// leading sentinel announces a promotion), and starts a resolution when one
/// names the service; reconnects after backoff; ends once `inner` is
/// dropped.
async fn follow_switches(inner: Weak<Inner>, index: usize) {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    let mut first = true;
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let (url, config) = (strong.url.clone(), strong.config.clone());
        drop(strong);
        let Some(sentinel) = url.sentinels.get(index) else {
            return;
        };
        let open = async {
            let client = Client::open(url.sentinel_url(sentinel))?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub
                .subscribe(&["+switch-master", "+failover-state-reconf-slaves"])
                .await?;
            Ok::<_, RedisError>(pubsub)
        };
        let bound = config.connect_timeout + config.response_timeout;
        let pubsub = match tokio::time::timeout(bound, open).await {
            Ok(Ok(pubsub)) => pubsub,
            _ => {
                tracing::debug!(%sentinel, "sentinel: listening to +switch-master failed");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        // A switch missed while no sentinel was listened to.
        if !first && let Some(strong) = inner.upgrade() {
            Sentinel { inner: strong }.suspect();
        }
        first = false;
        let mut stream = pubsub.into_on_message();
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    // `+switch-master`: `<service> <old ip> <old port> <new ip> <new port>`;
                    // `+failover-state-reconf-slaves` (the replica is promoted, the
                    // sentinel names it from now on): `master <service> <ip> <port>`.
                    Some(message) => {
                        let payload = message.get_payload_bytes();
                        let skip = usize::from(message.get_channel_name() != "+switch-master");
                        let named = payload
                            .split(|b| *b == b' ')
                            .nth(skip)
                            .is_some_and(|name| name == url.service.as_bytes());
                        if named {
                            let Some(strong) = inner.upgrade() else { return };
                            tracing::debug!("sentinel: +switch-master; resolving the primary");
                            Sentinel { inner: strong }.suspect();
                        }
                    }
                    None => break,
                },
                () = tokio::time::sleep(ALIVE_CHECK) => {
                    if inner.strong_count() == 0 {
                        return;
                    }
                }
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Whether `error` may mean the primary moved: `READONLY` (a demoted
/// primary), a dropped or refused connection, a timeout.
pub(crate) fn is_failover_sign(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || crate::error::is_read_only(error)
}

/// The first primary the sentinels name that confirms it with `ROLE`.
async fn connect(
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
async fn open_primary(
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
async fn role_of(config: &RedisConfig, conn: &ConnectionManager) -> Option<Vec<u8>> {
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
async fn ask_sentinels(
    config: &RedisConfig,
    url: &SentinelUrl,
    secrets: &Secrets,
) -> Result<String, StoreError> {
    let probe = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.response_timeout));
    let bound = config.connect_timeout + config.response_timeout;
    let asks = url.sentinels.iter().map(|sentinel| {
        let probe = probe.clone();
        async move {
            let ask = async {
                let client = Client::open(url.sentinel_url(sentinel))?;
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
    let field = |name: &str| {
        fields
            .chunks(2)
            .find(|pair| pair[0] == name)
            .and_then(|pair| pair.get(1))
            .map(String::as_str)
    };
    let epoch = field("config-epoch")
        .and_then(|epoch| epoch.parse().ok())
        .unwrap_or(0);
    let failing_over =
        field("flags").is_some_and(|flags| flags.split(',').any(|flag| flag == "failover_in_progress"));
    (epoch, failing_over)
}

/// `host:port` of each replica of the service that the first sentinel
/// that answers names healthy (`SENTINEL replicas`: not down, not
/// disconnected, its link to the primary up); possibly none.
async fn ask_replicas(
    config: &RedisConfig,
    url: &SentinelUrl,
    secrets: &Secrets,
) -> Result<Vec<String>, StoreError> {
    let mut command = redis::cmd("SENTINEL");
    command.arg("replicas").arg(&url.service);
    ask_each(config, url, secrets, &command, "the replicas", |answer| {
        let replicas = redis::from_redis_value::<Vec<Vec<String>>>(answer)
            .map_err(|error| format!("answered {error}"))?;
        Ok(replicas
            .iter()
            .filter_map(|fields| healthy_replica(fields))
            .collect())
    })
    .await
}

/// `host:port` of the replica one entry of `SENTINEL replicas` describes
/// (name, value, name, value, …), if it is healthy.
fn healthy_replica(fields: &[String]) -> Option<String> {
    let field = |name: &str| {
        fields
            .chunks(2)
            .find(|pair| pair[0] == name)
            .and_then(|pair| pair.get(1))
            .map(String::as_str)
    };
    let down = field("flags")?
        .split(',')
        .any(|flag| matches!(flag, "s_down" | "o_down" | "disconnected"));
    if down || field("master-link-status")? != "ok" {
        return None;
    }
    Some(node_addr(field("ip")?, field("port")?.parse().ok()?))
}

/// What the first sentinel that answers `command` says, through `accept`
/// (which names the reason a sentinel's answer does not do); each bounded
/// by the connect timeout (connecting) and the response timeout (the
/// command). `what` names what was asked in the error.
async fn ask_each<T>(
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
    for sentinel in &url.sentinels {
        let ask = async {
            let client = Client::open(url.sentinel_url(sentinel))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sentinels_service_db_and_credentials() {
        let url = SentinelUrl::parse(
            "redis+sentinel://u:p@w@s1:26380,s2,[::1]:26381/my%20svc/3?sentinel_username=su&sentinel_password=sp&protocol=3",
        )
        .unwrap()
        .unwrap();
        assert_eq!(url.sentinels, ["s1:26380", "s2:26379", "[::1]:26381"]);
        assert_eq!(url.service, "my svc");
        assert_eq!(url.primary_url("h:1"), "redis://u:p@w@h:1/3?protocol=3");
        assert_eq!(url.sentinel_url("s1:1"), "redis://su:sp@s1:1");
        assert!(!format!("{url:?}").contains("sp"));
        assert!(SentinelUrl::parse("redis://h").is_none());
    }

    #[test]
    fn malformed_urls_are_refused_without_quoting_them() {
        for bad in [
            "redis+sentinel://:hunter2@s1:1",
            "redis+sentinel://:hunter2@s1:x/svc",
            "redis+sentinel://:hunter2@s1:1/svc/db",
            "redis+sentinel://:hunter2@s1:1,,s2/svc",
        ] {
            let reason = SentinelUrl::parse(bad).unwrap().unwrap_err();
            assert!(!reason.contains("hunter2"), "{reason}");
        }
    }
}
