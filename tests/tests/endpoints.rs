//! Separate write and read endpoints, on real servers: a primary and a
//! replica of it (`RedisServer::start_replica_of`). Task reads go to the
//! read URL, everything else to the write URL; connecting names the
//! endpoint that failed; dropping closes both. Each test owns its servers.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use statehouse::{ErrorKind, PageRequest, Settings, Statehouse, TaskStatus};
use statehouse_tests::harness::{CommandCalls, RedisServer};

const CONNECT: Duration = Duration::from_millis(500);
const RESPONSE: Duration = Duration::from_millis(500);

fn settings(url: String, read_url: Option<String>) -> Settings {
    let mut settings = Settings::new(url);
    settings.read_url = read_url;
    settings.connect_timeout = CONNECT;
    settings.response_timeout = RESPONSE;
    settings
}

async fn connect(primary: &RedisServer, replica: &RedisServer) -> Statehouse {
    Statehouse::with_settings(settings(primary.url(), Some(replica.url())))
        .await
        .unwrap()
}

/// How many more times each of `commands` ran in `after` than in `before`.
fn grown(before: &CommandCalls, after: &CommandCalls, commands: &[&str]) -> Vec<(String, u64)> {
    let grown = after.since(before);
    commands
        .iter()
        .map(|command| ((*command).to_owned(), grown.of(command)))
        .collect()
}

const READS: &[&str] = &["get", "zrange", "mget", "exists"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_reads_go_to_the_replica_and_everything_else_to_the_primary() {
    let primary = RedisServer::start();
    let replica = RedisServer::start_replica_of(&primary);
    let state = connect(&primary, &replica).await;
    let tasks = state.tasks();

    // Writes: on the primary, as WATCH sections running the task script.
    let (primary_before, replica_before) = (primary.command_calls(), replica.command_calls());
    tasks.create("t1", "exporter", "ada").await.unwrap();
    tasks.create("t2", "exporter", "ada").await.unwrap();
    tasks
        .set_status("t1", TaskStatus::Running, Some("started"))
        .await
        .unwrap();
    tasks.append_log("t1", "half way").await.unwrap();
    let (primary_after, replica_after) = (primary.command_calls(), replica.command_calls());
    for (command, calls) in grown(&primary_before, &primary_after, &["evalsha", "exec", "watch"]) {
        assert_eq!(calls, 4, "primary {command}: one per write");
    }
    for (command, calls) in grown(&replica_before, &replica_after, &["evalsha", "watch"]) {
        assert_eq!(calls, 0, "replica {command}: no write was sent to it");
    }

    // A write becomes visible through the read endpoint.
    tasks.create("t3", "exporter", "ada").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while tasks.get("t3").await.unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "t3 not on the replica after 5 s:\n{}",
            replica.replication_info()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Replication applies writes in order: with t3 there, so is every
    // earlier write. (A WAIT here would prove nothing: it waits for the
    // writes of its own connection, and a fresh one has none.)

    // Reads: on the replica only.
    let (primary_before, replica_before) = (primary.command_calls(), replica.command_calls());
    let t1 = tasks.get("t1").await.unwrap().unwrap();
    assert_eq!(t1.status, TaskStatus::Running);
    assert!(
        t1.log.iter().any(|entry| entry.message == "half way"),
        "{:?}",
        t1.log
    );
    let page = tasks
        .list_by_service("exporter", PageRequest::first(10))
        .await
        .unwrap();
    let ids: Vec<String> = page
        .items
        .into_iter()
        .map(|item| item.unwrap().id.as_str().to_owned())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(tasks.count_by_user("ada").await.unwrap(), 3);
    let (primary_after, replica_after) = (primary.command_calls(), replica.command_calls());
    for (command, calls) in grown(&replica_before, &replica_after, READS) {
        assert!(calls >= 1, "replica {command}: the reads were not served here");
    }
    for (command, calls) in grown(&primary_before, &primary_after, READS) {
        assert_eq!(calls, 0, "primary {command}: a task read was sent to it");
    }

    // Documents stay on the write endpoint (read-your-writes).
    let docs = state.documents();
    let (primary_before, replica_before) = (primary.command_calls(), replica.command_calls());
    docs.set("greeting", &"hello").await.unwrap();
    assert_eq!(
        docs.get::<String>("greeting").await.unwrap().as_deref(),
        Some("hello")
    );
    let (primary_after, replica_after) = (primary.command_calls(), replica.command_calls());
    assert_eq!(grown(&primary_before, &primary_after, &["get"])[0].1, 1);
    assert_eq!(grown(&replica_before, &replica_after, &["get"])[0].1, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_read_endpoint_is_named_while_the_write_one_works() {
    let primary = RedisServer::start();
    let started = Instant::now();
    let err = Statehouse::with_settings(settings(
        primary.url(),
        Some("redis://:secret@127.0.0.1:1".to_owned()),
    ))
    .await
    .unwrap_err();
    assert!(started.elapsed() < CONNECT + RESPONSE + Duration::from_secs(1));
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    assert_eq!(err.op(), "connect_read", "{err}");
    assert_eq!(err.key(), "redis://***@127.0.0.1:1");
    let message = err.to_string();
    assert!(message.contains("refused"), "{message}");
    assert!(!message.contains("secret"), "{message}");
    assert!(!format!("{err:?}").contains("secret"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_write_endpoint_is_named_while_the_read_one_works() {
    let replica_like = RedisServer::start();
    let err = Statehouse::with_settings(settings(
        "redis://127.0.0.1:1".to_owned(),
        Some(replica_like.url()),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    assert_eq!(err.op(), "connect", "{err}");
    assert_eq!(err.key(), "redis://127.0.0.1:1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_read_endpoint_times_out_within_the_bound() {
    let primary = RedisServer::start();
    let replica = RedisServer::start_replica_of(&primary);
    replica.pause();
    let started = Instant::now();
    let result = Statehouse::with_settings(settings(primary.url(), Some(replica.url()))).await;
    let took = started.elapsed();
    replica.resume();
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert_eq!(err.op(), "connect_read", "{err}");
    assert_eq!(err.key(), replica.url());
    assert!(
        took < CONNECT + RESPONSE + Duration::from_secs(1),
        "took {took:?}"
    );
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Retries `check` every 20 ms until it holds, for at most 5 s.
async fn within_5s(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match check() {
            Ok(()) => return,
            Err(why) if Instant::now() < deadline => {
                let _ = why;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(why) => panic!("{what}: still not so after 5 s: {why}"),
        }
    }
}

/// One runtime thread, so every task of the store runs under the captured
/// (thread-local) subscriber and is counted by this runtime's metrics.
#[tokio::test(flavor = "current_thread")]
async fn dropping_the_statehouse_closes_both_endpoints_quietly() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let primary = RedisServer::start();
    let replica = RedisServer::start_replica_of(&primary);
    let clients = |server: &RedisServer| server.client_list().lines().count();
    let (primary_clients, replica_clients) = (clients(&primary), clients(&replica));
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();

    let state = connect(&primary, &replica).await;
    let tasks = state.tasks();
    tasks.create("t", "svc", "ada").await.unwrap();
    tasks.get("t").await.unwrap();
    assert_eq!(tasks.count_by_user("nobody").await.unwrap(), 0);
    assert!(clients(&replica) > replica_clients, "{}", replica.client_list());
    assert!(clients(&primary) > primary_clients, "{}", primary.client_list());
    assert!(metrics.num_alive_tasks() > tasks_before, "the store runs tasks");
    drop(tasks);
    drop(state);

    within_5s("every connection closed", || {
        let (now_primary, now_replica) = (clients(&primary), clients(&replica));
        if now_primary == primary_clients && now_replica == replica_clients {
            Ok(())
        } else {
            Err(format!(
                "primary:\n{}\nreplica:\n{}",
                primary.client_list(),
                replica.client_list()
            ))
        }
    })
    .await;
    within_5s("no task left running", || {
        let alive = metrics.num_alive_tasks();
        if alive == tasks_before {
            Ok(())
        } else {
            Err(format!("{alive} tasks alive, {tasks_before} before connecting"))
        }
    })
    .await;
    tracing::info!("canary");
    let logged = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("canary"), "the capture works: {logged}");
    assert!(
        !logged.contains("ERROR") && !logged.contains("WARN"),
        "logged:\n{logged}"
    );
}
