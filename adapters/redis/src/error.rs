//! THE one mapping from redis-rs errors to [`StoreError`] kinds.

use std::time::Duration;

use redis::{ErrorKind, RedisError, ServerErrorKind};
use statehouse_ports::{BoxError, StoreError};

use crate::redact::Secrets;

/// Maps a redis-rs error of operation `op` on `key` (the caller's key,
/// without prefix). `timeout` is the bound reported if it was a timeout.
pub(crate) fn map(op: &'static str, key: &str, error: RedisError, timeout: Duration) -> StoreError {
    let key = key.to_owned();
    if error.is_timeout() {
        return StoreError::Timeout {
            op,
            key,
            after: timeout,
        };
    }
    if is_wrong_type(&error) {
        return StoreError::wrong_type(op, key);
    }
    match error.kind() {
        // The connection broke, or the server is not there (yet).
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => StoreError::Connection {
            op,
            key,
            source: Box::new(error),
        },
        ErrorKind::Server(kind) if is_transient(kind) || is_aborted_by_transient(&error) => {
            StoreError::Connection {
                op,
                key,
                source: Box::new(error),
            }
        }
        ErrorKind::InvalidClientConfig => StoreError::InvalidInput {
            op,
            key,
            reason: error.to_string(),
        },
        // Authentication, permissions, read-only replicas, protocol
        // surprises: permanent until someone changes the setup.
        _ => StoreError::Operation {
            op,
            key,
            source: Box::new(error),
        },
    }
}

/// LOADING (a restarted server reading its AOF or RDB), TRYAGAIN, CLUSTERDOWN, MASTERDOWN: the
/// server or the cluster cannot serve the command now and will soon, and did not run it; a
/// temporary failure like a refused connection.
fn is_transient(kind: ServerErrorKind) -> bool {
    matches!(
        kind,
        ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
    )
}

/// A MULTI/EXEC transaction aborted (`EXECABORT`) because the server refused its commands while
/// queueing them, every one with a [transient](is_transient) error: nothing ran, and the kind is
/// that error's (a `LOADING` server refuses every command of `enqueue`'s transaction). An abort
/// with any other error among them (`READONLY`, `ERR`, ...) stays `Operation`, as that error alone
/// would be.
fn is_aborted_by_transient(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::ExecAbort)
        && error.clone().into_server_errors().is_some_and(|errors| {
            !errors.is_empty()
                && errors
                    .iter()
                    .all(|(_, error)| error.kind().is_some_and(is_transient))
        })
}

/// NOSCRIPT (an `EVALSHA` of a script the server does not hold), from a
/// command or from any command of a transaction.
pub(crate) fn is_no_script(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
        || error.code() == Some("NOSCRIPT")
        || error
            .clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "NOSCRIPT"))
}

/// READONLY (a write reached a replica: on a Sentinel service, a demoted
/// primary), from a command or from any command of a transaction.
pub(crate) fn is_read_only(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
        || error.code() == Some("READONLY")
        || error
            .clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "READONLY"))
}

/// What a Redis Cluster answer asks of a client, when an answer (of a
/// command, a pipeline or a transaction) says the request reached a node
/// that cannot serve it now: nothing ran (a transaction with a redirected
/// command is aborted as a whole, `EXECABORT`), so the request may be sent
/// again where it belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Redirect {
    /// `MOVED <slot> <host:port>`: the slot belongs to that node now.
    Moved { slot: u16, node: String },
    /// `ASK <slot> <host:port>`: the slot is being migrated and the key is
    /// on that node; send `ASKING` first, once.
    Ask { slot: u16, node: String },
    /// `TRYAGAIN` (a multi-key request whose keys are split by a
    /// migration), `CLUSTERDOWN`, `MASTERDOWN`, `READONLY` (the node was a
    /// primary and a failover made it a replica: the refreshed slot map
    /// names the promoted one): wait a little and ask again.
    Wait,
}

/// The [`Redirect`] `error` carries, in a command's answer or in any
/// command of a pipeline or transaction; `None` for any other error (a
/// dropped connection included: whether a request it cut short ran is for
/// the caller to say).
pub(crate) fn redirect_of(error: &RedisError) -> Option<Redirect> {
    let errors = error.clone().into_server_errors()?;
    let mut wait = false;
    for (_, server) in errors.iter() {
        let parse = || {
            let mut words = server.details()?.split_ascii_whitespace();
            let slot: u16 = words.next()?.parse().ok()?;
            Some((slot, words.next()?.to_owned()))
        };
        match server.kind() {
            Some(ServerErrorKind::Moved) => {
                if let Some((slot, node)) = parse() {
                    return Some(Redirect::Moved { slot, node });
                }
            }
            Some(ServerErrorKind::Ask) => {
                if let Some((slot, node)) = parse() {
                    return Some(Redirect::Ask { slot, node });
                }
            }
            Some(
                ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly,
            ) => {
                wait = true;
            }
            _ => {}
        }
    }
    wait.then_some(Redirect::Wait)
}

/// [`map`], then [`withhold`]: the mapping for every redis-rs error of a
/// store whose URL carries `secrets`.
pub(crate) fn map_guarded(
    op: &'static str,
    key: &str,
    error: RedisError,
    timeout: Duration,
    secrets: &Secrets,
) -> StoreError {
    withhold(map(op, key, error, timeout), secrets)
}

/// `error` as it is, unless the text it got from redis-rs (its source
/// chain, `Display` and `Debug`, or its reason) shows one of `secrets`;
/// then the same error with that text replaced by its category and a note.
/// redis-rs may quote parts of the URL it was given (it quotes the value of
/// a `protocol` parameter, which a password holding `&protocol=` supplies).
pub(crate) fn withhold(error: StoreError, secrets: &Secrets) -> StoreError {
    if secrets.is_empty() {
        return error;
    }
    match error {
        StoreError::Connection { op, key, source } if shows(&*source, secrets) => StoreError::Connection {
            op,
            key,
            source: withheld(&*source),
        },
        StoreError::Operation { op, key, source } if shows(&*source, secrets) => StoreError::Operation {
            op,
            key,
            source: withheld(&*source),
        },
        StoreError::InvalidInput { op, key, reason } if secrets.found_in(&reason) => {
            StoreError::InvalidInput {
                op,
                key,
                reason: withheld_text("invalid client config"),
            }
        }
        other => other,
    }
}

/// Whether `error` or any of its sources shows a secret, in `Display` or
/// `Debug`.
fn shows(error: &(dyn std::error::Error + 'static), secrets: &Secrets) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if secrets.found_in(&error.to_string()) || secrets.found_in(&format!("{error:?}")) {
            return true;
        }
        next = error.source();
    }
    false
}

/// What replaces an error whose message showed a secret.
fn withheld(error: &(dyn std::error::Error + 'static)) -> BoxError {
    let category = error
        .downcast_ref::<RedisError>()
        .map_or("error", RedisError::category);
    withheld_text(category).into()
}

fn withheld_text(category: &str) -> String {
    format!("{category} (details withheld: they quoted part of a secret of the URL)")
}

/// WRONGTYPE from a command, or from any command of a pipeline (redis-rs
/// reports pipeline failures as a list, without a top-level code).
fn is_wrong_type(error: &RedisError) -> bool {
    if error.code() == Some("WRONGTYPE") {
        return true;
    }
    error
        .clone()
        .into_server_errors()
        .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "WRONGTYPE"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use statehouse_ports::ErrorKind as Kind;

    fn server_error(line: &str) -> RedisError {
        match redis::parse_redis_value(format!("-{line}\r\n").as_bytes()) {
            Ok(redis::Value::ServerError(error)) => error.into(),
            other => panic!("not a server error: {other:?}"),
        }
    }

    fn kind_of(error: RedisError) -> Kind {
        map("get", "k", error, Duration::from_secs(1)).kind()
    }

    /// A server loading its AOF or RDB after a restart answers `LOADING`
    /// until it is done: a temporary failure like a refused connection
    /// (retryable, naming the key), not a refusal of the command.
    #[test]
    fn loading_is_a_retryable_connection_error_naming_the_key() {
        let error = map(
            "set",
            "orders:1",
            server_error("LOADING Redis is loading the dataset in memory"),
            Duration::from_secs(1),
        );
        assert_eq!(error.kind(), Kind::Connection, "{error}");
        assert!(error.is_retryable(), "{error}");
        assert_eq!((error.op(), error.key()), ("set", "orders:1"));
        assert!(error.to_string().contains("loading"), "{error}");
    }

    /// What redis-rs makes of a MULTI/EXEC pipeline (two `SET`s) whose commands a server refused
    /// while queueing them, each with its line of `refusals` (EXEC then answers `EXECABORT`): the
    /// pipeline sent on a real connection to a fake server on loopback that answers so.
    fn aborted_transaction(refusals: [&str; 2]) -> RedisError {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // The connection's setup (two CLIENT SETINFO, answers ignored), MULTI, the refused
        // commands, EXEC.
        let answers = format!(
            "+OK\r\n+OK\r\n+OK\r\n-{}\r\n-{}\r\n-EXECABORT Transaction discarded because of previous errors.\r\n",
            refusals[0], refusals[1]
        );
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            socket.write_all(answers.as_bytes()).unwrap();
            // Until the client hangs up, so that nothing it sent is answered with a reset.
            let mut sink = [0_u8; 1024];
            while matches!(socket.read(&mut sink), Ok(read) if read > 0) {}
        });
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        let mut connection = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap();
        connection.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let error = redis::pipe()
            .atomic()
            .set("a", 1)
            .set("b", 2)
            .query::<()>(&mut connection)
            .unwrap_err();
        drop(connection);
        server.join().unwrap();
        error
    }

    /// `enqueue`'s MULTI/EXEC on a server still loading its AOF is refused as a whole
    /// (`Transaction aborted: [(Index 0, error: BusyLoading: …), …]`): a temporary failure like
    /// `LOADING` alone, so retryable, naming the key. The soak found it reported as `Operation`.
    #[test]
    fn a_transaction_aborted_by_a_transient_refusal_is_that_refusal() {
        let loading = "LOADING Redis is loading the dataset in memory";
        let error = aborted_transaction([loading, loading]);
        assert_eq!(
            error.kind(),
            ErrorKind::Server(ServerErrorKind::ExecAbort),
            "{error}"
        );
        let mapped = map("enqueue", "t:{a}:q", error, Duration::from_secs(1));
        assert_eq!(mapped.kind(), Kind::Connection, "{mapped}");
        assert!(mapped.is_retryable(), "{mapped}");
        assert_eq!((mapped.op(), mapped.key()), ("enqueue", "t:{a}:q"));
        assert!(mapped.to_string().contains("loading"), "{mapped}");

        let table: [([&str; 2], Kind); 6] = [
            (
                ["TRYAGAIN Multiple keys request during rehashing of slot"; 2],
                Kind::Connection,
            ),
            (["CLUSTERDOWN The cluster is down"; 2], Kind::Connection),
            (["MASTERDOWN Link with MASTER is down"; 2], Kind::Connection),
            // READONLY alone is `Operation` (the Sentinel adapter reads it as a failover's sign).
            (
                ["READONLY You can't write against a read only replica."; 2],
                Kind::Operation,
            ),
            (["ERR unknown command 'SETX'"; 2], Kind::Operation),
            // Not every refusal temporary: the transaction would fail again once loaded.
            ([loading, "ERR unknown command 'SETX'"], Kind::Operation),
        ];
        for (refusals, expected) in table {
            let error = aborted_transaction(refusals);
            let shown = error.to_string();
            assert_eq!(kind_of(error), expected, "{shown}");
        }
    }

    #[test]
    fn mapping_table() {
        let io = |kind| RedisError::from(std::io::Error::new(kind, "io"));
        let table: Vec<(RedisError, Kind)> = vec![
            (io(std::io::ErrorKind::TimedOut), Kind::Timeout),
            (io(std::io::ErrorKind::ConnectionRefused), Kind::Connection),
            (io(std::io::ErrorKind::ConnectionReset), Kind::Connection),
            (io(std::io::ErrorKind::BrokenPipe), Kind::Connection),
            (io(std::io::ErrorKind::UnexpectedEof), Kind::Connection),
            (
                server_error("WRONGTYPE Operation against a key holding the wrong kind of value"),
                Kind::WrongType,
            ),
            (
                server_error("LOADING Redis is loading the dataset in memory"),
                Kind::Connection,
            ),
            (
                server_error("TRYAGAIN Multiple keys request during rehashing"),
                Kind::Connection,
            ),
            (server_error("CLUSTERDOWN The cluster is down"), Kind::Connection),
            (
                server_error("MASTERDOWN Link with MASTER is down"),
                Kind::Connection,
            ),
            (
                server_error("EXECABORT Transaction discarded because of previous errors."),
                Kind::Operation,
            ),
            (
                server_error("READONLY You can't write against a read only replica."),
                Kind::Operation,
            ),
            (
                server_error("NOPERM this user has no permissions"),
                Kind::Operation,
            ),
            (server_error("ERR unknown command"), Kind::Operation),
            (server_error("OOM command not allowed"), Kind::Operation),
            (
                RedisError::from((ErrorKind::AuthenticationFailed, "WRONGPASS")),
                Kind::Operation,
            ),
            (
                RedisError::from((ErrorKind::InvalidClientConfig, "bad url")),
                Kind::InvalidInput,
            ),
            (
                RedisError::from((ErrorKind::UnexpectedReturnType, "type")),
                Kind::Operation,
            ),
            (RedisError::from((ErrorKind::Parse, "garbage")), Kind::Operation),
        ];
        for (error, expected) in table {
            let shown = error.to_string();
            assert_eq!(kind_of(error), expected, "{shown}");
        }
    }

    #[test]
    fn errors_quoting_a_secret_are_withheld() {
        let secrets = Secrets::of("unix:///s?pass=ab&protocol=hunter2");
        let quoting = || {
            RedisError::from((
                ErrorKind::InvalidClientConfig,
                "Invalid protocol version",
                "hunter2".to_owned(),
            ))
        };
        let error = map_guarded(
            "connect",
            "unix:///s?pass=***",
            quoting(),
            Duration::ZERO,
            &secrets,
        );
        assert_eq!(error.kind(), Kind::InvalidInput);
        assert!(!format!("{error} {error:?}").contains("hunter2"), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("invalid client config (details withheld"),
            "{error}"
        );

        let io = RedisError::from(std::io::Error::other("no route to hunter2"));
        let error = map_guarded("connect", "", io, Duration::ZERO, &secrets);
        assert_eq!(error.kind(), Kind::Connection);
        let mut chain = format!("{error} {error:?}");
        let mut source = std::error::Error::source(&error);
        while let Some(next) = source {
            chain.push_str(&format!(" {next} {next:?}"));
            source = next.source();
        }
        assert!(!chain.contains("hunter2"), "{chain}");
        assert!(chain.contains("I/O error (details withheld"), "{chain}");

        // Text without a secret, or a URL without one, stays as it is.
        let refused = || RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let error = map_guarded("connect", "", refused(), Duration::ZERO, &secrets);
        assert!(
            std::error::Error::source(&error)
                .unwrap()
                .downcast_ref::<RedisError>()
                .is_some()
        );
        let error = map_guarded(
            "connect",
            "",
            quoting(),
            Duration::ZERO,
            &Secrets::of("redis://h"),
        );
        assert!(error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn cluster_redirects_are_read_from_commands_pipelines_and_transactions() {
        let moved = server_error("MOVED 3999 127.0.0.1:6381");
        assert_eq!(
            redirect_of(&moved),
            Some(Redirect::Moved {
                slot: 3999,
                node: "127.0.0.1:6381".into()
            })
        );
        assert_eq!(
            redirect_of(&server_error("ASK 12 10.0.0.2:7000")),
            Some(Redirect::Ask {
                slot: 12,
                node: "10.0.0.2:7000".into()
            })
        );
        for line in [
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "MASTERDOWN Link with MASTER is down",
            "READONLY You can't write against a read only replica.",
        ] {
            assert_eq!(redirect_of(&server_error(line)), Some(Redirect::Wait), "{line}");
        }
        for line in ["ERR boom", "WRONGTYPE Operation", "NOSCRIPT No matching script"] {
            assert_eq!(redirect_of(&server_error(line)), None, "{line}");
        }
        let dropped = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(redirect_of(&dropped), None);
    }

    #[test]
    fn mapped_errors_name_operation_and_key() {
        let error = map(
            "update",
            "user:1",
            server_error("ERR boom"),
            Duration::from_secs(1),
        );
        assert_eq!(error.op(), "update");
        assert_eq!(error.key(), "user:1");
        assert!(error.to_string().contains("boom"), "{error}");
    }
}
