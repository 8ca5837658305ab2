use std::sync::Arc;

#[cfg(feature = "memory")]
use statehouse_memory::MemoryStore;
use statehouse_ports::FieldStore;
use statehouse_ports::SyncedStore;
use statehouse_ports::{
    ChangeFeed, DocumentStore, RetryPolicy, StoreError, SubjectSpace, SubjectStore, TaskRepository, TaskSpace,
};
use statehouse_ports::{Durability, QueueStore, TriggerStore};
#[cfg(feature = "redis")]
use statehouse_redis::RedisStore;

use crate::layers::{Retrying, Traced};
use crate::{ConfigStore, Documents, Models, Queues, Settings, Subjects, Tasks, Tenant, Triggers};

/// The ports a [`Statehouse`] hands out facades over. Build one yourself to
/// inject any implementation (a mock, a decorator, a store of your own).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Ports {
    /// The key-value core behind [`Documents`].
    pub documents: Arc<dyn DocumentStore>,
    /// The task records behind [`Tasks`].
    pub tasks: Arc<dyn TaskRepository>,
    /// The subjects (KRules' layout).
    pub subjects: Arc<dyn SubjectStore>,
    /// The tenant hashes behind [`Tenant`](crate::Tenant)'s repositories.
    pub tenants: Arc<dyn FieldStore>,
    /// The expiration triggers behind [`Triggers`](crate::Triggers).
    pub triggers: Arc<dyn TriggerStore>,
    /// The batch queues behind [`Queues`](crate::Queues).
    pub queues: Arc<dyn QueueStore>,
    /// The change feed behind [`ConfigStore`](crate::ConfigStore) and
    /// [`Statehouse::watch`].
    pub changes: Arc<dyn ChangeFeed>,
    /// The synced models behind [`Synced`](crate::Synced).
    pub synced: Arc<dyn SyncedStore>,
}

impl Ports {
    /// Ports over the given implementations.
    #[allow(clippy::too_many_arguments, reason = "one argument per port")]
    pub fn new(
        documents: Arc<dyn DocumentStore>,
        tasks: Arc<dyn TaskRepository>,
        subjects: Arc<dyn SubjectStore>,
        tenants: Arc<dyn FieldStore>,
        triggers: Arc<dyn TriggerStore>,
        queues: Arc<dyn QueueStore>,
        changes: Arc<dyn ChangeFeed>,
        synced: Arc<dyn SyncedStore>,
    ) -> Self {
        Self {
            documents,
            tasks,
            subjects,
            tenants,
            triggers,
            queues,
            changes,
            synced,
        }
    }

    /// Every port over one store that implements them all (an adapter).
    pub fn of<
        S: DocumentStore
            + TaskRepository
            + SubjectStore
            + FieldStore
            + TriggerStore
            + QueueStore
            + ChangeFeed
            + SyncedStore,
    >(
        store: S,
    ) -> Self {
        let store = Arc::new(store);
        Self {
            documents: store.clone(),
            tasks: store.clone(),
            subjects: store.clone(),
            tenants: store.clone(),
            triggers: store.clone(),
            queues: store.clone(),
            changes: store.clone(),
            synced: store,
        }
    }
}

/// The composition root: picks the backend from a URL, puts the layers over
/// it and hands out typed facades.
///
/// The layers: [`Traced`] always (a span per call, free when no subscriber
/// wants DEBUG for `statehouse`); [`Retrying`] under it when
/// [`Settings::retry_attempts`] is more than 1 (off by default: a failed
/// call is reported at once, and the caller decides).
///
/// This is the only place that names concrete adapters.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
/// use statehouse::Statehouse;
///
/// let state = Statehouse::connect("memory://").await?;
/// assert_eq!(state.backend(), "memory");
/// assert!(state.documents().is_alive().await);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Statehouse {
    ports: Ports,
    settings: Settings,
    backend: &'static str,
    /// The wake-up hint shared by this instance's [`Triggers`].
    wake: Arc<tokio::sync::Notify>,
    /// The adapter's ports with another durability (none for injected
    /// ports).
    views: Option<Views>,
}

/// Makes the adapter's (unlayered) ports with another [`Durability`]: the
/// same store, connections and data.
#[derive(Clone)]
struct Views(Arc<dyn Fn(Durability) -> Result<Ports, StoreError> + Send + Sync>);

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Views(..)")
    }
}

impl Statehouse {
    /// Connects to `url`: `memory://` (an embedded in-memory store; feature
    /// `memory`), `redis://…`, `unix://…`, `redis+cluster://[user:pw@]h1:p1,h2:p2`
    /// (a Redis Cluster, the listed nodes its seeds; feature `redis`),
    /// `redis+sentinel://[user:pw@]s1:26379,s2:26379/SERVICE[/DB]` (the
    /// primary of a Sentinel service; `?sentinel_username=…&sentinel_password=…`
    /// for the sentinels' own credentials),
    /// `rediss://…` or `rediss+cluster://…` (feature `tls`), with default
    /// settings. A URL whose adapter this
    /// build does not have is an `InvalidInput` error naming the feature to
    /// enable.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::with_settings(Settings::new(url)).await
    }

    /// Connects as configured by the `STATEHOUSE_*` environment variables
    /// (see [`Settings`]).
    pub async fn from_env() -> Result<Self, StoreError> {
        Self::with_settings(Settings::from_env()?).await
    }

    /// Connects with explicit settings. With a Redis URL and a
    /// [`Settings::read_url`], task reads go to the read URL (both
    /// endpoints are checked; a failure names the one that failed); a read
    /// URL with a `memory://` URL is an `InvalidInput` error.
    pub async fn with_settings(settings: Settings) -> Result<Self, StoreError> {
        let scheme = settings.url.split_once("://").map(|(scheme, _)| scheme);
        let (ports, backend) = match scheme {
            Some("memory") => {
                if let Some(read_url) = settings.redacted_read_url() {
                    return Err(StoreError::invalid_input(
                        "connect",
                        read_url,
                        "a read URL needs a Redis URL (redis://, rediss:// or unix://); \
                         memory:// has no read endpoint",
                    ));
                }
                (memory_ports(&settings)?, "memory")
            }
            Some(
                "redis" | "rediss" | "unix" | "redis+unix" | "redis+cluster" | "rediss+cluster"
                | "redis+sentinel" | "rediss+sentinel",
            ) => (redis_ports(&settings).await?, "redis"),
            _ => {
                return Err(StoreError::invalid_input(
                    "connect",
                    settings.redacted_url(),
                    "expected a URL starting with memory://, redis://, rediss://, unix://, redis+cluster://, \
                     rediss+cluster://, redis+sentinel:// or rediss+sentinel://",
                ));
            }
        };
        let (ports, views) = ports;
        let mut state = Self::assemble(ports, settings, backend);
        state.views = Some(views);
        Ok(state)
    }

    /// An embedded in-memory store: for tests, demos and single-process use
    /// (feature `memory`).
    #[cfg(feature = "memory")]
    pub fn memory() -> Self {
        let (ports, views) = memory_store(MemoryStore::new());
        let mut state = Self::assemble(ports, Settings::new("memory://"), "memory");
        state.views = Some(views);
        state
    }

    /// Facades over ports built elsewhere (dependency injection); they are
    /// used as given, without adding layers.
    pub fn from_ports(ports: Ports) -> Self {
        Self {
            ports,
            settings: Settings::new("custom://"),
            backend: "custom",
            wake: Arc::new(tokio::sync::Notify::new()),
            views: None,
        }
    }

    /// The same store (the same connections, data and wake-ups) with
    /// writes acknowledged as `durability` says: take the facades of the
    /// families whose writes must survive a failover from it, and keep the
    /// others on `self`. Reads never wait. An `InvalidInput` error if the
    /// `WAIT` timeout is over half the response timeout, or for ports
    /// injected with [`from_ports`](Self::from_ports).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
    /// use std::time::Duration;
    /// use statehouse::{Durability, ErrorKind, Statehouse};
    ///
    /// let state = Statehouse::connect("memory://").await?;
    /// // The memory store has no replicas: the write is applied, then
    /// // reported as not durable, as on a Redis server without replicas.
    /// let durable = state.with_durability(Durability::replicas(1, Duration::from_millis(500)))?;
    /// let error = durable.documents().set("order:1", &42).await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::NotDurable);
    /// assert_eq!(state.documents().get::<u32>("order:1").await?, Some(42));
    /// # Ok(()) }
    /// ```
    pub fn with_durability(&self, durability: Durability) -> Result<Self, StoreError> {
        let Some(views) = &self.views else {
            return Err(StoreError::invalid_input(
                "with_durability",
                self.settings.redacted_url(),
                "injected ports have no durability of their own: build them with it",
            ));
        };
        let ports = (views.0)(durability)?;
        let mut settings = self.settings.clone();
        settings.durability = durability;
        let mut view = Self::assemble(ports, settings, self.backend);
        view.wake = Arc::clone(&self.wake);
        view.views = self.views.clone();
        Ok(view)
    }

    fn assemble(ports: Ports, settings: Settings, backend: &'static str) -> Self {
        let ports = match settings.transient_retry() {
            Some(policy) => Ports {
                documents: Arc::new(Traced::new(Retrying::new(ports.documents, policy))),
                tasks: Arc::new(Traced::new(Retrying::new(ports.tasks, policy))),
                subjects: Arc::new(Traced::new(Retrying::new(ports.subjects, policy))),
                tenants: Arc::new(Traced::new(Retrying::new(ports.tenants, policy))),
                triggers: Arc::new(Traced::new(Retrying::new(ports.triggers, policy))),
                queues: Arc::new(Traced::new(Retrying::new(ports.queues, policy))),
                changes: Arc::new(Traced::new(Retrying::new(ports.changes, policy))),
                synced: Arc::new(Traced::new(Retrying::new(ports.synced, policy))),
            },
            None => Ports {
                documents: Arc::new(Traced::new(ports.documents)),
                tasks: Arc::new(Traced::new(ports.tasks)),
                subjects: Arc::new(Traced::new(ports.subjects)),
                tenants: Arc::new(Traced::new(ports.tenants)),
                triggers: Arc::new(Traced::new(ports.triggers)),
                queues: Arc::new(Traced::new(ports.queues)),
                changes: Arc::new(Traced::new(ports.changes)),
                synced: Arc::new(Traced::new(ports.synced)),
            },
        };
        Self {
            ports,
            settings,
            backend,
            wake: Arc::new(tokio::sync::Notify::new()),
            views: None,
        }
    }

    /// Typed documents.
    pub fn documents(&self) -> Documents {
        Documents::new(self.ports.documents.clone()).with_retry_policy(self.update_policy())
    }

    /// Synced models ([`Synced`](crate::Synced) handles load through
    /// them), with the update retry policy of the settings.
    pub fn models(&self) -> Models {
        Models::new(self.ports.synced.clone()).with_retry_policy(self.update_policy())
    }

    /// Task records, in the namespace, TTL and log cap of the settings.
    pub fn tasks(&self) -> Tasks {
        Tasks::new(self.ports.tasks.clone(), self.task_space())
    }

    /// Subjects (KRules' layout) without a subject prefix, with the update
    /// retry policy of the settings; [`Subjects::with_prefix`] picks one.
    pub fn subjects(&self) -> Subjects {
        Subjects::new(
            self.ports.subjects.clone(),
            SubjectSpace::default().with_policy(self.update_policy()),
        )
    }

    /// The repositories of tenant `id` (users, handler states, tables,
    /// shared states), with the update retry policy of the settings; a bad
    /// id is `InvalidInput` before any I/O.
    pub fn tenant(&self, id: &str) -> Result<Tenant, StoreError> {
        Tenant::new(self.ports.tenants.clone(), id, self.update_policy())
    }

    /// Expiration triggers; listeners of this `Statehouse` (and its clones)
    /// are woken by its `set`s, and all-tenants listeners also by other
    /// processes' (hints through the change feed).
    pub fn triggers(&self) -> Triggers {
        Triggers::with_wake(self.ports.triggers.clone(), self.wake.clone())
            .with_hints(self.ports.changes.clone())
    }

    /// Batch queues.
    pub fn queues(&self) -> Queues {
        Queues::new(self.ports.queues.clone())
    }

    /// Typed, versioned configuration with a local cache (plain mode; see
    /// [`ConfigStore::with_history`]), with the update retry policy of the
    /// settings. Each call makes a new store with its own cache and
    /// subscription: keep it (clones share them).
    pub fn config(&self) -> ConfigStore {
        ConfigStore::new(self.ports.documents.clone(), self.ports.changes.clone())
            .with_retry_policy(self.update_policy())
    }

    /// The raw change feed of the keys matching the glob `pattern`: what the
    /// `statehouse watch` command prints.
    pub async fn watch(&self, pattern: &str) -> Result<statehouse_ports::Subscription, StoreError> {
        let pattern = statehouse_ports::KeyPattern::new(pattern)
            .map_err(|reason| StoreError::invalid_input("watch", pattern, reason))?;
        self.ports
            .changes
            .subscribe(
                &statehouse_ports::Watched::Pattern(pattern),
                statehouse_ports::DEFAULT_FEED_CAPACITY,
            )
            .await
    }

    /// Where tasks are kept, from the settings.
    pub fn task_space(&self) -> TaskSpace {
        self.settings.task_space()
    }

    /// The ports, as layered.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// What the store is connected to now, as statehouse sees it (asking
    /// no server, but for one refresh of a cluster's slot map, bounded by
    /// the connect and response timeouts): the kind (`memory`, `single`, `sentinel`,
    /// `cluster`; `custom` for injected ports that do not say), each
    /// endpoint's address and redacted URL with its pool of WATCH
    /// connections, a Sentinel service's sentinels, the primary it resolved
    /// to and how many switches the store followed, a cluster's slot ranges
    /// with their primary and replicas and whether every slot is covered.
    /// Serialisable; no password in it. `statehouse status` prints it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), statehouse::StoreError> {
    /// use statehouse::TopologyKind;
    ///
    /// let state = statehouse::Statehouse::connect("memory://").await?;
    /// assert_eq!(state.topology().await?.kind, TopologyKind::Memory);
    /// # Ok(()) }
    /// ```
    pub async fn topology(&self) -> Result<crate::Topology, StoreError> {
        self.ports.documents.topology().await
    }

    /// `"memory"`, `"redis"` or `"custom"`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The settings in use (`Debug`/`Display` hide the password).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn update_policy(&self) -> RetryPolicy {
        self.settings.update_policy
    }
}

/// The ports of a new embedded in-memory store, with the settings'
/// durability, and its views.
#[cfg(feature = "memory")]
fn memory_ports(settings: &Settings) -> Result<(Ports, Views), StoreError> {
    Ok(memory_store(
        MemoryStore::new().with_durability(settings.durability),
    ))
}

/// The ports of `store` and its views.
#[cfg(feature = "memory")]
fn memory_store(store: MemoryStore) -> (Ports, Views) {
    let viewed = store.clone();
    let views = Views(Arc::new(move |durability| {
        Ok(Ports::of(viewed.with_durability(durability)))
    }));
    (Ports::of(store), views)
}

#[cfg(not(feature = "memory"))]
fn memory_ports(settings: &Settings) -> Result<(Ports, Views), StoreError> {
    Err(not_compiled_in(settings, "memory"))
}

/// The ports of a Redis store connected as `settings` say, and its views.
#[cfg(feature = "redis")]
async fn redis_ports(settings: &Settings) -> Result<(Ports, Views), StoreError> {
    let store = RedisStore::connect(settings.redis_config()).await?;
    let viewed = store.clone();
    let views = Views(Arc::new(move |durability| {
        Ok(Ports::of(viewed.with_durability(durability)?))
    }));
    Ok((Ports::of(store), views))
}

#[cfg(not(feature = "redis"))]
async fn redis_ports(settings: &Settings) -> Result<(Ports, Views), StoreError> {
    Err(not_compiled_in(settings, "redis"))
}

/// The error for a URL whose adapter this build does not have.
#[cfg(not(all(feature = "memory", feature = "redis")))]
fn not_compiled_in(settings: &Settings, feature: &str) -> StoreError {
    StoreError::invalid_input(
        "connect",
        settings.redacted_url(),
        format!("this build of statehouse has no {feature} adapter: enable the crate's `{feature}` feature"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use statehouse_ports::MockSyncedStore;
    use statehouse_ports::{
        ErrorKind, MockChangeFeed, MockDocumentStore, MockFieldStore, MockQueueStore, MockSubjectStore,
        MockTaskRepository, MockTriggerStore,
    };

    #[tokio::test]
    async fn unknown_schemes_are_invalid_input_without_the_password() {
        let err = Statehouse::connect("postgres://u:secret@db").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(err.to_string().contains("redis://"), "{err}");
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn unreachable_redis_fails_fast_with_a_connection_error() {
        // Port 1 on loopback: nothing listens there, the connect is refused.
        let mut settings = Settings::new("redis://:secret@127.0.0.1:1");
        settings.connect_timeout = std::time::Duration::from_millis(300);
        let err = Statehouse::with_settings(settings).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
        assert!(err.to_string().contains("refused"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[cfg(all(feature = "memory", feature = "redis"))]
    #[tokio::test]
    async fn a_read_url_with_memory_is_invalid_input_without_the_password() {
        let settings = Settings {
            read_url: Some("redis://:secret@replica:6380".to_owned()),
            ..Settings::default()
        };
        let err = Statehouse::with_settings(settings).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");
        assert_eq!(err.op(), "connect");
        assert_eq!(err.key(), "redis://***@replica:6380");
        assert!(
            err.to_string().contains("memory:// has no read endpoint"),
            "{err}"
        );
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn an_unreachable_read_endpoint_is_named_even_when_the_write_one_is_too() {
        // Both refused: the write endpoint is checked first and named.
        let mut settings = Settings::new("redis://127.0.0.1:1");
        settings.read_url = Some("redis://:secret@127.0.0.1:1/1".to_owned());
        settings.connect_timeout = std::time::Duration::from_millis(300);
        let err = Statehouse::with_settings(settings).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
        assert_eq!(err.op(), "connect", "{err}");
        assert_eq!(err.key(), "redis://127.0.0.1:1");
    }

    #[cfg(not(feature = "tls"))]
    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn rediss_without_the_tls_feature_says_so() {
        let err = Statehouse::connect("rediss://127.0.0.1:1").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");
        assert!(err.to_string().contains("`tls` feature"), "{err}");
    }

    fn flaky_get(failures: usize) -> MockDocumentStore {
        let mut mock = MockDocumentStore::new();
        let mut calls = 0;
        mock.expect_get().returning(move |key| {
            calls += 1;
            if calls <= failures {
                Err(StoreError::Connection {
                    op: "get",
                    key: key.to_string(),
                    source: "reset".into(),
                })
            } else {
                Ok(Some(b"7".to_vec()))
            }
        });
        mock
    }

    #[tokio::test]
    async fn by_default_a_temporary_failure_is_reported_at_once() {
        let state = Statehouse::assemble(
            Ports::new(
                Arc::new(flaky_get(1)),
                Arc::new(MockTaskRepository::new()),
                Arc::new(MockSubjectStore::new()),
                Arc::new(MockFieldStore::new()),
                Arc::new(MockTriggerStore::new()),
                Arc::new(MockQueueStore::new()),
                Arc::new(MockChangeFeed::new()),
                Arc::new(MockSyncedStore::new()),
            ),
            Settings::default(),
            "mock",
        );
        let err = state.documents().get::<u32>("k").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_attempts_add_the_retrying_layer() {
        let settings = Settings {
            retry_attempts: 3,
            ..Settings::default()
        };
        let state = Statehouse::assemble(
            Ports::new(
                Arc::new(flaky_get(2)),
                Arc::new(MockTaskRepository::new()),
                Arc::new(MockSubjectStore::new()),
                Arc::new(MockFieldStore::new()),
                Arc::new(MockTriggerStore::new()),
                Arc::new(MockQueueStore::new()),
                Arc::new(MockChangeFeed::new()),
                Arc::new(MockSyncedStore::new()),
            ),
            settings.clone(),
            "mock",
        );
        assert_eq!(state.documents().get::<u32>("k").await.unwrap(), Some(7));
        let state = Statehouse::assemble(
            Ports::new(
                Arc::new(flaky_get(3)),
                Arc::new(MockTaskRepository::new()),
                Arc::new(MockSubjectStore::new()),
                Arc::new(MockFieldStore::new()),
                Arc::new(MockTriggerStore::new()),
                Arc::new(MockQueueStore::new()),
                Arc::new(MockChangeFeed::new()),
                Arc::new(MockSyncedStore::new()),
            ),
            settings,
            "mock",
        );
        assert_eq!(
            state.documents().get::<u32>("k").await.unwrap_err().kind(),
            ErrorKind::Connection
        );
    }

    #[tokio::test]
    async fn injected_ports_are_used_as_given() {
        let mut mock = MockDocumentStore::new();
        mock.expect_ping().times(1).returning(|| {
            Err(StoreError::Connection {
                op: "ping",
                key: String::new(),
                source: "down".into(),
            })
        });
        let state = Statehouse::from_ports(Ports::new(
            Arc::new(mock),
            Arc::new(MockTaskRepository::new()),
            Arc::new(MockSubjectStore::new()),
            Arc::new(MockFieldStore::new()),
            Arc::new(MockTriggerStore::new()),
            Arc::new(MockQueueStore::new()),
            Arc::new(MockChangeFeed::new()),
            Arc::new(MockSyncedStore::new()),
        ));
        assert_eq!(state.backend(), "custom");
        assert!(!state.documents().is_alive().await);
    }
}
