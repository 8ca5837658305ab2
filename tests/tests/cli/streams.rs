//! Commands that follow the store as it changes, and errors that name what they are about.

use statehouse_tests::harness::RedisServer;

use super::run;

/// Runs `args` in a thread while `poke` keeps changing the store, until the
/// command (which stops after `--count` lines) returns.
fn run_while_poking(
    server: &RedisServer,
    args: &'static [&'static str],
    poke: &[&str],
) -> (i32, String, String) {
    let url = server.url();
    let watcher = std::thread::spawn(move || {
        let mut argv = vec!["statehouse", "--url", url.as_str(), "--prefix", "cli:"];
        argv.extend_from_slice(args);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = statehouse_cli::main_with(argv.iter().map(Into::into), &mut out, &mut err);
        (
            code,
            String::from_utf8(out).expect("utf-8"),
            String::from_utf8(err).expect("utf-8"),
        )
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !watcher.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "the watch never saw a change"
        );
        assert_eq!(run(server, poke).0, 0);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    watcher.join().expect("the watch thread")
}

#[test]
fn watch_commands_print_changes_as_they_come() {
    let server = RedisServer::start();
    run(&server, &["config", "set", "api", "0"]);
    let (code, out, err) = run_while_poking(
        &server,
        &["config", "watch", "api", "--count", "2"],
        &["config", "set", "api", "1"],
    );
    assert_eq!((code, err.as_str()), (0, ""));
    // The current value first (the pokes may have begun), then a later one.
    let versions: Vec<u64> = out
        .lines()
        .map(|line| {
            let rest = line.strip_prefix("version ").expect("a version line");
            rest.split(' ')
                .next()
                .expect("a number")
                .parse()
                .expect("a number")
        })
        .collect();
    assert_eq!(versions.len(), 2, "{out}");
    assert!(versions[1] > versions[0], "{out}");
    assert!(
        out.lines().nth(1).is_some_and(|line| line.ends_with("  1")),
        "{out}"
    );

    let (code, out, _) = run_while_poking(
        &server,
        &["watch", "config:*", "--count", "2"],
        &["config", "set", "api", "2"],
    );
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "resync  \"subscribed\"");
    assert!(lines[1].starts_with("set  \"config:api\"  version "), "{out}");
}

/// Errors about what is stored (another Redis type, a value that is not
/// JSON, a status change the lifecycle forbids) name the key, task,
/// subject, tenant, queue or config entry they are about.
#[test]
fn errors_about_stored_data_name_what_they_are_about() {
    let server = RedisServer::start();
    let mut conn = server.connection();
    for (command, key, value) in [
        ("RPUSH", "cli:list", "x"),
        ("SET", "cli:config:api", "{not json"),
        ("HSET", "cli:s:sensor", "pcount"),
        ("SET", "cli:t:{acme}:user:u1", "a string"),
        ("SET", "cli:t:{acme}:triggers:due", "a string"),
        ("SET", "cli:t:{acme}:queue:mailer:nightly:send", "a string"),
    ] {
        let mut cmd = redis::cmd(command);
        cmd.arg(key);
        if command == "HSET" {
            cmd.arg(value).arg("{not json");
        } else {
            cmd.arg(value);
        }
        cmd.exec(&mut conn).expect("write");
    }
    assert_eq!(
        run(
            &server,
            &["tasks", "save", "job-1", "--service", "s", "--user", "u"]
        )
        .0,
        0
    );
    assert_eq!(run(&server, &["tasks", "set-status", "job-1", "completed"]).0, 0);

    let cases: &[(&[&str], i32, &[&str])] = &[
        (&["doc", "get", "list"], 3, &["\"list\""]),
        (&["doc", "ttl", "list"], 0, &[]),
        (&["config", "get", "api"], 3, &["api"]),
        (&["config", "set", "api", "1"], 3, &["api"]),
        (&["tenant", "acme", "users", "get", "u1"], 3, &["acme", "u1"]),
        (&["triggers", "acme"], 3, &["acme"]),
        (
            &["queue", "acme", "mailer", "nightly", "send"],
            3,
            &["acme", "mailer"],
        ),
        (
            &["tasks", "set-status", "job-1", "running"],
            2,
            &["task \"job-1\"", "cannot move the task from completed to running"],
        ),
    ];
    for (args, expected, named) in cases {
        let (code, _, err) = run(&server, args);
        assert_eq!(code, *expected, "statehouse {args:?}: {err}");
        for name in *named {
            assert!(
                err.contains(name),
                "statehouse {args:?} should name {name}: {err}"
            );
        }
    }

    // A property that is not JSON is shown as unreadable (with its error,
    // never its bytes), not left out.
    let (code, out, err) = run(&server, &["subject", "show", "sensor"]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(
        out.contains("default   count                    (unreadable: ") && !out.contains("not json"),
        "{out}"
    );
    let (_, out, _) = run(&server, &["--json", "subject", "show", "sensor"]);
    let shown: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(shown["errors"][0]["property"], "count", "{shown}");
    assert_eq!(shown["errors"][0]["kind"], "default", "{shown}");
}
